-- The PostgreSQL schema: the same tables, keys and append-only rules as migrations/sqlite/ at
-- its latest version (consent steps with their consented and confirmed versions). Integers are
-- BIGINT throughout; times are RFC 3339 text exactly as the gateway wrote them, so that both
-- backends hand back the same bytes.

-- Refuses a change to a table that only grows; the message is the trigger's argument.
CREATE FUNCTION cgc_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END;
$$;

-- Cases: the current version of each case, and every version ever accepted.
-- `seq` orders the accepted updates; the store takes it from `case_seq` while it holds the
-- case's row lock, so a later version of a case always has a larger `seq`.
CREATE SEQUENCE case_seq AS BIGINT;

CREATE TABLE case_versions (
    seq         BIGINT PRIMARY KEY,
    center_id   TEXT   NOT NULL,
    case_id     TEXT   NOT NULL,
    version     BIGINT NOT NULL CHECK (version >= 1),
    body        TEXT   NOT NULL,
    received_at TEXT   NOT NULL,
    UNIQUE (center_id, case_id, version)
);

-- The row of a case is claimed first (it is the lock two writers of one case meet on), and
-- its version row written after it in the same transaction: the reference is checked at
-- commit.
CREATE TABLE cases (
    center_id TEXT   NOT NULL,
    case_id   TEXT   NOT NULL,
    version   BIGINT NOT NULL CHECK (version >= 1),
    seq       BIGINT NOT NULL UNIQUE REFERENCES case_versions (seq) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (center_id, case_id)
);

CREATE TRIGGER case_versions_immutable BEFORE UPDATE OR DELETE ON case_versions
FOR EACH ROW EXECUTE FUNCTION cgc_refuse_change('case versions are immutable');
CREATE TRIGGER case_versions_no_truncate BEFORE TRUNCATE ON case_versions
FOR EACH STATEMENT EXECUTE FUNCTION cgc_refuse_change('case versions are immutable');

-- The audit log: one row per Merkle leaf. `line` is the leaf's exact bytes.
CREATE TABLE audit_entries (
    idx       BIGINT PRIMARY KEY CHECK (idx >= 0),
    line      TEXT   NOT NULL,
    leaf_hash BYTEA  NOT NULL CHECK (octet_length(leaf_hash) = 32),
    kind      TEXT   NOT NULL,
    center_id TEXT,
    case_id   TEXT
);
CREATE INDEX audit_entries_by_case ON audit_entries (center_id, case_id, idx);

CREATE TABLE audit_checkpoints (
    tree_size    BIGINT PRIMARY KEY CHECK (tree_size >= 0),
    note         TEXT   NOT NULL,
    published_at TEXT   NOT NULL
);

CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
FOR EACH ROW EXECUTE FUNCTION cgc_refuse_change('the audit log is append-only');
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
FOR EACH STATEMENT EXECUTE FUNCTION cgc_refuse_change('the audit log is append-only');
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
FOR EACH ROW EXECUTE FUNCTION cgc_refuse_change('the audit log is append-only');
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
FOR EACH STATEMENT EXECUTE FUNCTION cgc_refuse_change('the audit log is append-only');

-- Sharing agreements and city opt-ins. Seeded once from `policies/` on first start; from then
-- on these tables are the source of truth. Nothing here is ever changed or deleted.
CREATE TABLE agreement_versions (
    agreement_id TEXT   NOT NULL,
    version      BIGINT NOT NULL CHECK (version >= 1),
    document     TEXT   NOT NULL,
    sha256       TEXT   NOT NULL CHECK (length(sha256) = 64),
    submitted_by TEXT   NOT NULL,
    submitted_at TEXT   NOT NULL,
    PRIMARY KEY (agreement_id, version)
);

-- One row per step of a city provider's opt-in; the current state is the last step's
-- `to_state`. `consented_version` and `confirmed_version` are, after the step, the agreement
-- version whose terms the city consented to and the one the prefecture confirmed.
CREATE TABLE consent_steps (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agreement_id      TEXT   NOT NULL,
    operator          TEXT   NOT NULL,
    action            TEXT   NOT NULL,
    from_state        TEXT   NOT NULL,
    to_state          TEXT   NOT NULL,
    consented_version BIGINT CHECK (consented_version >= 1),
    confirmed_version BIGINT CHECK (confirmed_version >= 1),
    actor             TEXT   NOT NULL,
    at                TEXT   NOT NULL
);
CREATE INDEX consent_steps_by_provider ON consent_steps (agreement_id, operator, seq);

-- Present once the files have been imported, so that a restart never re-imports them.
CREATE TABLE policy_seed (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    source    TEXT    NOT NULL,
    seeded_at TEXT    NOT NULL
);

CREATE TRIGGER agreement_versions_immutable BEFORE UPDATE OR DELETE ON agreement_versions
FOR EACH ROW EXECUTE FUNCTION cgc_refuse_change('agreement versions are immutable');
CREATE TRIGGER agreement_versions_no_truncate BEFORE TRUNCATE ON agreement_versions
FOR EACH STATEMENT EXECUTE FUNCTION cgc_refuse_change('agreement versions are immutable');
CREATE TRIGGER consent_steps_append_only BEFORE UPDATE OR DELETE ON consent_steps
FOR EACH ROW EXECUTE FUNCTION cgc_refuse_change('consent history is append-only');
CREATE TRIGGER consent_steps_no_truncate BEFORE TRUNCATE ON consent_steps
FOR EACH STATEMENT EXECUTE FUNCTION cgc_refuse_change('consent history is append-only');

-- The audit log's signing keys, in the order they took over (see migrations/sqlite/0003).
-- Only public keys are stored. Append-only, like the log it describes.
CREATE TABLE audit_keys (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_index  BIGINT NOT NULL CHECK (first_index >= 0),
    key_id       TEXT   NOT NULL,
    verifier_key TEXT   NOT NULL UNIQUE,
    activated_at TEXT   NOT NULL
);

CREATE TRIGGER audit_keys_append_only BEFORE UPDATE OR DELETE ON audit_keys
FOR EACH ROW EXECUTE FUNCTION cgc_refuse_change('the audit key history is append-only');
CREATE TRIGGER audit_keys_no_truncate BEFORE TRUNCATE ON audit_keys
FOR EACH STATEMENT EXECUTE FUNCTION cgc_refuse_change('the audit key history is append-only');

-- Terminals and officers revoked by an administrator. A revocation is permanent.
CREATE TABLE revocations (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       TEXT   NOT NULL CHECK (kind IN ('terminal', 'officer')),
    subject    TEXT   NOT NULL,
    revoked_by TEXT   NOT NULL,
    revoked_at TEXT   NOT NULL,
    UNIQUE (kind, subject)
);

CREATE TRIGGER revocations_permanent BEFORE UPDATE OR DELETE ON revocations
FOR EACH ROW EXECUTE FUNCTION cgc_refuse_change('revocations are permanent');
CREATE TRIGGER revocations_no_truncate BEFORE TRUNCATE ON revocations
FOR EACH STATEMENT EXECUTE FUNCTION cgc_refuse_change('revocations are permanent');

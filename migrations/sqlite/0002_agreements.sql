-- Sharing agreements and city opt-ins (SPEC §6). Seeded once from `policies/` on first start;
-- from then on these tables are the source of truth. Nothing here is ever changed or deleted:
-- every version and every consent step stays readable, as the audit log records them.
CREATE TABLE agreement_versions (
    agreement_id TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    document     TEXT    NOT NULL,
    sha256       TEXT    NOT NULL CHECK (length(sha256) = 64),
    submitted_by TEXT    NOT NULL,
    submitted_at TEXT    NOT NULL,
    PRIMARY KEY (agreement_id, version)
) STRICT;

-- One row per step of a city provider's opt-in; the current state is the last step's `to_state`.
CREATE TABLE consent_steps (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    agreement_id TEXT    NOT NULL,
    operator     TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    from_state   TEXT    NOT NULL,
    to_state     TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    at           TEXT    NOT NULL
) STRICT;
CREATE INDEX consent_steps_by_provider ON consent_steps (agreement_id, operator, seq);

-- Present once the files have been imported, so that a restart never re-imports them.
CREATE TABLE policy_seed (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    source    TEXT    NOT NULL,
    seeded_at TEXT    NOT NULL
) STRICT;

CREATE TRIGGER agreement_versions_no_update BEFORE UPDATE ON agreement_versions
BEGIN SELECT RAISE(ABORT, 'agreement versions are immutable'); END;
CREATE TRIGGER agreement_versions_no_delete BEFORE DELETE ON agreement_versions
BEGIN SELECT RAISE(ABORT, 'agreement versions are immutable'); END;
CREATE TRIGGER consent_steps_no_update BEFORE UPDATE ON consent_steps
BEGIN SELECT RAISE(ABORT, 'consent history is append-only'); END;
CREATE TRIGGER consent_steps_no_delete BEFORE DELETE ON consent_steps
BEGIN SELECT RAISE(ABORT, 'consent history is append-only'); END;

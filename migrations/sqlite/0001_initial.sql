-- Cases: the current version of each case, and every version ever accepted.
-- Nothing accepted is ever lost: case_versions refuses UPDATE and DELETE.
CREATE TABLE case_versions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    center_id   TEXT    NOT NULL,
    case_id     TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    body        TEXT    NOT NULL,
    received_at TEXT    NOT NULL,
    UNIQUE (center_id, case_id, version)
) STRICT;

CREATE TABLE cases (
    center_id TEXT    NOT NULL,
    case_id   TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    seq       INTEGER NOT NULL REFERENCES case_versions (seq),
    PRIMARY KEY (center_id, case_id)
) STRICT;

CREATE TRIGGER case_versions_no_update BEFORE UPDATE ON case_versions
BEGIN SELECT RAISE(ABORT, 'case versions are immutable'); END;
CREATE TRIGGER case_versions_no_delete BEFORE DELETE ON case_versions
BEGIN SELECT RAISE(ABORT, 'case versions are immutable'); END;

-- The audit log: one row per Merkle leaf. `line` is the leaf's exact bytes.
CREATE TABLE audit_entries (
    idx       INTEGER PRIMARY KEY CHECK (idx >= 0),
    line      TEXT    NOT NULL,
    leaf_hash BLOB    NOT NULL CHECK (length(leaf_hash) = 32),
    kind      TEXT    NOT NULL,
    center_id TEXT,
    case_id   TEXT
) STRICT;
CREATE INDEX audit_entries_by_case ON audit_entries (center_id, case_id, idx);

CREATE TABLE audit_checkpoints (
    tree_size    INTEGER PRIMARY KEY CHECK (tree_size >= 0),
    note         TEXT    NOT NULL,
    published_at TEXT    NOT NULL
) STRICT;

CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

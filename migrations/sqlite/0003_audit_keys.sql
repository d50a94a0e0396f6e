-- The audit log's signing keys, in the order they took over. A key signs the entries from
-- `first_index` until the next key's `first_index`, and the checkpoints whose tree size lies
-- in [first_index, next first_index] (a checkpoint at the hand-over size covers only the old
-- key's entries, so either key may sign it). Only public keys are stored. Append-only, like
-- the log it describes.
CREATE TABLE audit_keys (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    first_index  INTEGER NOT NULL CHECK (first_index >= 0),
    key_id       TEXT    NOT NULL,
    verifier_key TEXT    NOT NULL UNIQUE,
    activated_at TEXT    NOT NULL
) STRICT;

CREATE TRIGGER audit_keys_no_update BEFORE UPDATE ON audit_keys
BEGIN SELECT RAISE(ABORT, 'the audit key history is append-only'); END;
CREATE TRIGGER audit_keys_no_delete BEFORE DELETE ON audit_keys
BEGIN SELECT RAISE(ABORT, 'the audit key history is append-only'); END;

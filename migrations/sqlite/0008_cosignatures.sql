-- Witnesses' cosignatures (C2SP tlog-cosignature) of the log's checkpoints, one line each as the
-- witness answered it. A checkpoint is published with the lines of its size appended.
CREATE TABLE audit_cosignatures (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    tree_size INTEGER NOT NULL CHECK (tree_size >= 0),
    line      TEXT    NOT NULL,
    UNIQUE (tree_size, line)
) STRICT;
CREATE TRIGGER audit_cosignatures_no_update BEFORE UPDATE ON audit_cosignatures
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_cosignatures_no_delete BEFORE DELETE ON audit_cosignatures
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

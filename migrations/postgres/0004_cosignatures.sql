-- Witnesses' cosignatures (C2SP tlog-cosignature) of the log's checkpoints, one line each as the
-- witness answered it. A checkpoint is published with the lines of its size appended.
CREATE TABLE audit_cosignatures (
    seq       BIGSERIAL PRIMARY KEY,
    tree_size BIGINT NOT NULL CHECK (tree_size >= 0),
    line      TEXT   NOT NULL,
    UNIQUE (tree_size, line)
);
CREATE TRIGGER audit_cosignatures_append_only BEFORE UPDATE OR DELETE ON audit_cosignatures
FOR EACH ROW EXECUTE FUNCTION cgc_refuse_change('the audit log is append-only');
CREATE TRIGGER audit_cosignatures_no_truncate BEFORE TRUNCATE ON audit_cosignatures
FOR EACH STATEMENT EXECUTE FUNCTION cgc_refuse_change('the audit log is append-only');

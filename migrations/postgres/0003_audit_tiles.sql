-- The audit log's Merkle tree as C2SP tlog-tiles (see the SQLite migration of the same name):
-- one row per hash tile, grown in place until full, never changed otherwise, never deleted.
-- Written in the same transaction as the entries and the checkpoint of each group commit.
CREATE TABLE audit_tiles (
    level  SMALLINT NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx    BIGINT   NOT NULL CHECK (idx >= 0),
    hashes BYTEA    NOT NULL CHECK (octet_length(hashes) BETWEEN 32 AND 8192 AND octet_length(hashes) % 32 = 0),
    PRIMARY KEY (level, idx)
);

CREATE FUNCTION cgc_audit_tiles_only_grow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.level <> OLD.level OR NEW.idx <> OLD.idx
       OR octet_length(NEW.hashes) < octet_length(OLD.hashes)
       OR substring(NEW.hashes FROM 1 FOR octet_length(OLD.hashes)) <> OLD.hashes THEN
        RAISE EXCEPTION 'audit tiles only grow';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_tiles_only_grow BEFORE UPDATE ON audit_tiles
FOR EACH ROW EXECUTE FUNCTION cgc_audit_tiles_only_grow();
CREATE TRIGGER audit_tiles_no_delete BEFORE DELETE ON audit_tiles
FOR EACH ROW EXECUTE FUNCTION cgc_refuse_change('the audit log is append-only');
CREATE TRIGGER audit_tiles_no_truncate BEFORE TRUNCATE ON audit_tiles
FOR EACH STATEMENT EXECUTE FUNCTION cgc_refuse_change('the audit log is append-only');

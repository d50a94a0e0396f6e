-- The audit log's Merkle tree as C2SP tlog-tiles: one row per hash tile (`level` 0 holds leaf
-- hashes, level L the roots of full tiles of level L-1), `hashes` the tile's bytes (32 per
-- hash, at most 256). A tile that is not yet full grows in place until it is; every hash in it
-- is final, so a row may only be extended, never changed or shortened, and never deleted.
-- Written in the same transaction as the entries (and the checkpoint) of each group commit.
CREATE TABLE audit_tiles (
    level  INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx    INTEGER NOT NULL CHECK (idx >= 0),
    hashes BLOB    NOT NULL CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER audit_tiles_only_grow BEFORE UPDATE ON audit_tiles
WHEN NEW.level != OLD.level OR NEW.idx != OLD.idx
  OR length(NEW.hashes) < length(OLD.hashes)
  OR substr(NEW.hashes, 1, length(OLD.hashes)) != OLD.hashes
BEGIN SELECT RAISE(ABORT, 'audit tiles only grow'); END;
CREATE TRIGGER audit_tiles_no_delete BEFORE DELETE ON audit_tiles
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Case transfers between centers (転出・転入). A transfer is requested by the owning center and
-- accepted or declined by the receiving one; at most one is pending per case. On acceptance the
-- case continues under the receiving center (a new `cases` row, its first version a copy of the
-- last one under the new center) and the old row is marked `moved_to`: it is no longer current,
-- and its old center can no longer push it.
CREATE TABLE transfers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    center_id    TEXT NOT NULL,
    case_id      TEXT NOT NULL,
    to_center    TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'accepted', 'declined')),
    requested_at TEXT NOT NULL,
    decided_at   TEXT
) STRICT;
CREATE UNIQUE INDEX transfers_one_pending ON transfers (center_id, case_id) WHERE state = 'pending';
CREATE INDEX transfers_pending_to ON transfers (to_center) WHERE state = 'pending';
ALTER TABLE cases ADD COLUMN moved_to TEXT;

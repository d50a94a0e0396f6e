-- A case's latest row in the change log, found without a scan: a stream cursor names a position
-- in this log, and resuming it on another instance (or after a restart) asks which cases
-- changed after it.
CREATE INDEX changes_by_case ON changes (center_id, case_id, seq);

-- What each center's stream (`GET /v1/centers/{center_id}/stream`) carries, durably, in order:
-- police responses to its cases, terminals opening its cases, and its case transfers. A stream resumes from `seq`
-- (its `Last-Event-ID`), so nothing is lost across restarts; a police response's id is its
-- event's `seq`. Append-only.
CREATE TABLE center_events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    center_id TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('response', 'opened', 'transfer')),
    at        TEXT NOT NULL,
    body      TEXT NOT NULL
) STRICT;
CREATE INDEX center_events_by_center ON center_events (center_id, kind, seq);
CREATE TRIGGER center_events_no_update BEFORE UPDATE ON center_events
BEGIN SELECT RAISE(ABORT, 'center events are append-only'); END;
CREATE TRIGGER center_events_no_delete BEFORE DELETE ON center_events
BEGIN SELECT RAISE(ABORT, 'center events are append-only'); END;

-- What each center's stream (`GET /v1/centers/{center_id}/stream`) carries, durably, in order:
-- police responses to its cases, terminals opening its cases, and its case transfers. Every instance's center
-- streams read this table, so each sees every instance's events. Each writing transaction takes
-- one advisory lock just before its row and holds it until it commits, so `seq` order is commit
-- order and a reader of `seq > n` never skips a row that commits later. A police response's id
-- is its event's `seq`. Append-only.
CREATE TABLE center_events (
    seq       BIGSERIAL PRIMARY KEY,
    center_id TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('response', 'opened', 'transfer')),
    at        TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX center_events_by_center ON center_events (center_id, kind, seq);
CREATE TRIGGER center_events_append_only BEFORE UPDATE OR DELETE ON center_events
FOR EACH ROW EXECUTE FUNCTION cgc_refuse_change('center events are append-only');
CREATE TRIGGER center_events_no_truncate BEFORE TRUNCATE ON center_events
FOR EACH STATEMENT EXECUTE FUNCTION cgc_refuse_change('center events are append-only');

-- The changes every gateway instance follows, in commit order: a stored case version, a policy
-- change (agreement version, consent step, seed), a revocation. Each writing transaction takes
-- one advisory lock just before its row here and holds it until it commits, so `seq` order is
-- commit order and an instance reading `seq > n` never skips a row that commits later.
-- NOTIFY on `cgc_changes` is only a wake-up; this table is what instances read.
CREATE TABLE changes (
    seq       BIGSERIAL PRIMARY KEY,
    kind      TEXT NOT NULL CHECK (kind IN ('case', 'policy', 'revocation')),
    center_id TEXT,
    case_id   TEXT,
    CHECK ((kind = 'case') = (center_id IS NOT NULL AND case_id IS NOT NULL))
);

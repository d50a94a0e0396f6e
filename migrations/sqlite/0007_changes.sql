-- The changes a gateway instance follows, in commit order (see the PostgreSQL migration of the
-- same name). SQLite serves one instance, whose own writes reach its hub directly; the table is
-- kept so that both backends honour the same store contract.
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL CHECK (kind IN ('case', 'policy', 'revocation')),
    center_id TEXT,
    case_id   TEXT,
    CHECK ((kind = 'case') = (center_id IS NOT NULL AND case_id IS NOT NULL))
) STRICT;

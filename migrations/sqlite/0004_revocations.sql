-- Terminals and officers revoked by an administrator. A revocation is permanent: a terminal
-- comes back only with a new certificate, an officer with a new identity.
CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL CHECK (kind IN ('terminal', 'officer')),
    subject    TEXT    NOT NULL,
    revoked_by TEXT    NOT NULL,
    revoked_at TEXT    NOT NULL,
    UNIQUE (kind, subject)
) STRICT;

CREATE TRIGGER revocations_no_update BEFORE UPDATE ON revocations
BEGIN SELECT RAISE(ABORT, 'revocations are permanent'); END;
CREATE TRIGGER revocations_no_delete BEFORE DELETE ON revocations
BEGIN SELECT RAISE(ABORT, 'revocations are permanent'); END;

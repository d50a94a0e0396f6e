-- A city consents to terms, not to an agreement id: each consent step records, after the step,
-- the agreement version whose terms the city consented to and the one the prefecture confirmed.
-- A new version that widens what a city shares asks it again (action `reask`) while its cases
-- stay under the confirmed terms.
ALTER TABLE consent_steps ADD COLUMN consented_version INTEGER CHECK (consented_version >= 1);
ALTER TABLE consent_steps ADD COLUMN confirmed_version INTEGER CHECK (confirmed_version >= 1);

-- Steps recorded before this migration: a city that consented (or was confirmed) did so to the
-- latest version stored at that moment. Steps are append-only; the backfill is the one change.
DROP TRIGGER consent_steps_no_update;
UPDATE consent_steps
SET consented_version = (
        SELECT max(v.version) FROM agreement_versions v
        WHERE v.agreement_id = consent_steps.agreement_id AND v.submitted_at <= consent_steps.at
    )
WHERE to_state IN ('consented', 'active');
UPDATE consent_steps SET confirmed_version = consented_version WHERE to_state = 'active';
CREATE TRIGGER consent_steps_no_update BEFORE UPDATE ON consent_steps
BEGIN SELECT RAISE(ABORT, 'consent history is append-only'); END;

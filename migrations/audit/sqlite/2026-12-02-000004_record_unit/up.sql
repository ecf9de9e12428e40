-- The unit a record's act was done for (lookups, bulk jobs, refusals), so a unit supervisor reads
-- their unit's records. Hashed with the record; kept through disposal.
ALTER TABLE audit_records ADD COLUMN unit TEXT;
CREATE INDEX audit_records_unit_idx ON audit_records (agency, unit, occurred_at);

DROP TRIGGER audit_records_no_update;
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
WHEN NOT (
    OLD.disposed_at IS NULL AND NEW.disposed_at IS NOT NULL
    AND NEW.sequence = OLD.sequence AND NEW.id = OLD.id AND NEW.kind = OLD.kind
    AND NEW.occurred_at = OLD.occurred_at AND NEW.recorded_at = OLD.recorded_at
    AND NEW.source = OLD.source AND NEW.agency IS OLD.agency AND NEW.unit IS OLD.unit
    AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash AND NEW.hash_scheme = OLD.hash_scheme
    AND NEW.actor_user_id IS NULL AND NEW.correlation_id IS NULL AND NEW.subject_id IS NULL
    AND NEW.payload = ''
)
BEGIN
    SELECT RAISE(ABORT, 'audit_records is append-only: UPDATE refused (only disposal clears content)');
END;

-- The unit a record's act was done for (lookups, bulk jobs, refusals), so a unit supervisor reads
-- their unit's records. Hashed with the record; kept through disposal.
ALTER TABLE audit_records ADD COLUMN unit TEXT;
CREATE INDEX audit_records_unit_idx ON audit_records (agency, unit, occurred_at);

CREATE OR REPLACE FUNCTION audit_records_guard_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.disposed_at IS NULL AND NEW.disposed_at IS NOT NULL
       AND NEW.sequence = OLD.sequence AND NEW.id = OLD.id AND NEW.kind = OLD.kind
       AND NEW.occurred_at = OLD.occurred_at AND NEW.recorded_at = OLD.recorded_at
       AND NEW.source = OLD.source AND NEW.agency IS NOT DISTINCT FROM OLD.agency
       AND NEW.unit IS NOT DISTINCT FROM OLD.unit
       AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash AND NEW.hash_scheme = OLD.hash_scheme
       AND NEW.actor_user_id IS NULL AND NEW.correlation_id IS NULL AND NEW.subject_id IS NULL
       AND NEW.payload = '' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_records is append-only: UPDATE refused (only disposal clears content)'
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Retention and legal holds (R-AUD-01). A record past retention and not held has its content
-- removed by the disposal job: the one change the database lets happen to a record. Its sequence,
-- id, kind, times, source, agency and hashes stay, so the chain, the tree and every checkpoint and
-- proof still verify; a disposal record in the log names what was removed.
ALTER TABLE audit_records ADD COLUMN disposed_at TIMESTAMP;

CREATE TABLE audit_legal_holds (
    id TEXT PRIMARY KEY,
    -- Whose records: one agency's, or every agency's (NULL; the immigration agency only).
    agency TEXT,
    -- At most one narrower scope; none: the agency's every record.
    subject_id TEXT,
    case_number TEXT,
    from_sequence BIGINT,
    to_sequence BIGINT,
    reason TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at TIMESTAMP NOT NULL,
    lifted_by TEXT,
    lifted_at TIMESTAMP,
    lift_reason TEXT
);

CREATE INDEX audit_records_disposal_idx ON audit_records (recorded_at) WHERE disposed_at IS NULL;

-- Updates are refused except the disposal of a record's content: personal data cleared, the time of
-- disposal set, everything the hashes and the tree rest on unchanged.
DROP TRIGGER audit_records_no_update;
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
WHEN NOT (
    OLD.disposed_at IS NULL AND NEW.disposed_at IS NOT NULL
    AND NEW.sequence = OLD.sequence AND NEW.id = OLD.id AND NEW.kind = OLD.kind
    AND NEW.occurred_at = OLD.occurred_at AND NEW.recorded_at = OLD.recorded_at
    AND NEW.source = OLD.source AND NEW.agency IS OLD.agency
    AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash AND NEW.hash_scheme = OLD.hash_scheme
    AND NEW.actor_user_id IS NULL AND NEW.correlation_id IS NULL AND NEW.subject_id IS NULL
    AND NEW.payload = ''
)
BEGIN
    SELECT RAISE(ABORT, 'audit_records is append-only: UPDATE refused (only disposal clears content)');
END;

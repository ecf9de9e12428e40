DROP TRIGGER audit_records_no_update;
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit_records is append-only: UPDATE refused');
END;
DROP INDEX audit_records_disposal_idx;
DROP TABLE audit_legal_holds;
ALTER TABLE audit_records DROP COLUMN disposed_at;

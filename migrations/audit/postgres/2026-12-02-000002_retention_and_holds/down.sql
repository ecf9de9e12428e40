DROP TRIGGER audit_records_only_disposal ON audit_records;
DROP TRIGGER audit_records_append_only ON audit_records;
CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
DROP FUNCTION audit_records_guard_update();
DROP INDEX audit_records_disposal_idx;
DROP TABLE audit_legal_holds;
ALTER TABLE audit_records DROP COLUMN disposed_at;

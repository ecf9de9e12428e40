DROP TRIGGER audit_tree_hashes_no_truncate ON audit_tree_hashes;
DROP TRIGGER audit_tree_hashes_append_only ON audit_tree_hashes;
DROP TRIGGER audit_records_no_truncate ON audit_records;
DROP TRIGGER audit_records_append_only ON audit_records;
DROP FUNCTION audit_refuse_change();
DROP TABLE audit_checkpoints;
DROP TABLE audit_tree_hashes;
ALTER TABLE audit_chain_head DROP COLUMN tree_size;
ALTER TABLE audit_records DROP COLUMN hash_scheme;

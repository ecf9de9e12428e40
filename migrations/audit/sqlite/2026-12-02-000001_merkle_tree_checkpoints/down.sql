DROP TRIGGER audit_tree_hashes_no_delete;
DROP TRIGGER audit_tree_hashes_no_update;
DROP TRIGGER audit_records_no_delete;
DROP TRIGGER audit_records_no_update;
DROP TABLE audit_checkpoints;
DROP TABLE audit_tree_hashes;
ALTER TABLE audit_chain_head DROP COLUMN tree_size;
ALTER TABLE audit_records DROP COLUMN hash_scheme;

DROP TABLE audit_records;
DROP TABLE audit_chain_head;

-- The log as evidence (R-AUD-02): every stored field is hashed, the records form an RFC 6962 Merkle
-- tree whose stored hashes live beside them, signed checkpoints pin the tree, and nothing may
-- change or remove a record.

-- Records hashed before this migration cover every field but recorded_at (scheme 1); new records
-- cover every stored field (scheme 2). The scheme is itself covered by the scheme-2 hash.
ALTER TABLE audit_records ADD COLUMN hash_scheme SMALLINT NOT NULL DEFAULT 1;

-- How many records the Merkle tree covers (records appended before this migration are added to
-- the tree when the service starts).
ALTER TABLE audit_chain_head ADD COLUMN tree_size BIGINT NOT NULL DEFAULT 0;

-- The tree's stored hashes in the layout of Go's sumdb tlog (about two per record), keyed by
-- tlog's stored hash index.
CREATE TABLE audit_tree_hashes (
    hash_index BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL
);

-- Each checkpoint the service signed (c2sp.org/tlog-checkpoint as a c2sp.org/signed-note), with the
-- witness's cosignature lines appended to `note` once it has cosigned.
CREATE TABLE audit_checkpoints (
    tree_size BIGINT PRIMARY KEY,
    root_hash TEXT NOT NULL,
    note TEXT NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    witnessed_at TIMESTAMP
);

CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_tree_hashes_append_only BEFORE UPDATE OR DELETE ON audit_tree_hashes
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_tree_hashes_no_truncate BEFORE TRUNCATE ON audit_tree_hashes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

DROP TABLE identity_messages;
DROP INDEX vendor_personnel_contract;
-- SQLite cannot drop a column with a REFERENCES clause: rebuild the table as it was.
CREATE TABLE vendor_personnel_before_contracts (
    id TEXT PRIMARY KEY,
    vendor_id TEXT NOT NULL REFERENCES vendors (id),
    agency TEXT NOT NULL,
    national_id TEXT NOT NULL,
    name TEXT NOT NULL,
    job_title TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'departed')),
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    departed_at TIMESTAMP,
    UNIQUE (vendor_id, national_id),
    CHECK ((status = 'departed') = (departed_at IS NOT NULL))
);
INSERT INTO vendor_personnel_before_contracts
    SELECT id, vendor_id, agency, national_id, name, job_title, status, created_by, created_at, departed_at
    FROM vendor_personnel;
DROP TABLE vendor_personnel;
ALTER TABLE vendor_personnel_before_contracts RENAME TO vendor_personnel;
CREATE INDEX vendor_personnel_national_id ON vendor_personnel (national_id);
DROP TABLE vendor_contracts;

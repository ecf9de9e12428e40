-- Contractor personnel (委外人員). Identity refuses account applications from active personnel of any
-- agency (R-ACC-08, R-VEN-08); a departure ends the match at once (R-VEN-06). `national_id` holds the
-- normalised national ID or UI number.
CREATE TABLE vendor_personnel (
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
CREATE INDEX vendor_personnel_national_id ON vendor_personnel (national_id);

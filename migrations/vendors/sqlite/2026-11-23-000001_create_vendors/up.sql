-- Contractors (委外廠商). Later issues add contracts, personnel, agreements, devices and incidents.
CREATE TABLE vendors (
    id TEXT PRIMARY KEY,
    agency TEXT NOT NULL,
    name TEXT NOT NULL,
    business_number TEXT NOT NULL,
    contact_email TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (agency, business_number)
);

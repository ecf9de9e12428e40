-- Contracts per vendor (R-VEN-02): scope, period (Taipei dates), whether custom system development is
-- involved, and its security test certificate. A contract moves draft → active → ended (or draft →
-- ended); one that was ever activated with custom development has a certificate on file.
CREATE TABLE vendor_contracts (
    id TEXT PRIMARY KEY,
    vendor_id TEXT NOT NULL REFERENCES vendors (id),
    agency TEXT NOT NULL,
    title TEXT NOT NULL,
    scope TEXT NOT NULL,
    starts_on DATE NOT NULL,
    ends_on DATE NOT NULL,
    custom_development BOOLEAN NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'active', 'ended')),
    certificate_reference TEXT,
    certificate_issuer TEXT,
    certificate_issued_on DATE,
    certificate_filed_by TEXT,
    certificate_filed_at TIMESTAMP,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    activated_by TEXT,
    activated_at TIMESTAMP,
    ended_by TEXT,
    ended_at TIMESTAMP,
    end_reason TEXT,
    CHECK (starts_on <= ends_on),
    CHECK ((certificate_reference IS NULL) = (certificate_issuer IS NULL)
        AND (certificate_reference IS NULL) = (certificate_issued_on IS NULL)
        AND (certificate_reference IS NULL) = (certificate_filed_by IS NULL)
        AND (certificate_reference IS NULL) = (certificate_filed_at IS NULL)),
    CHECK ((activated_at IS NULL) = (activated_by IS NULL)),
    CHECK (status <> 'active' OR activated_at IS NOT NULL),
    CHECK ((status = 'ended') = (ended_at IS NOT NULL)),
    CHECK ((ended_at IS NULL) = (ended_by IS NULL) AND (ended_at IS NULL) = (end_reason IS NULL)),
    -- R-VEN-02: no custom development becomes active without a security test certificate on file.
    CHECK (NOT custom_development OR activated_at IS NULL OR certificate_reference IS NOT NULL)
);
CREATE INDEX vendor_contracts_vendor ON vendor_contracts (vendor_id, id);

-- Personnel per contract (optional, for clients that add personnel without one), the suitability
-- check (R-VEN-01) and the confidentiality agreement (R-VEN-04); no access to personal data without
-- a passed check and an agreement on file.
ALTER TABLE vendor_personnel ADD COLUMN contract_id TEXT REFERENCES vendor_contracts (id);
ALTER TABLE vendor_personnel ADD COLUMN suitability_status TEXT CHECK (suitability_status IN ('passed', 'failed'));
ALTER TABLE vendor_personnel ADD COLUMN suitability_checked_on DATE;
ALTER TABLE vendor_personnel ADD COLUMN suitability_checker TEXT;
ALTER TABLE vendor_personnel ADD COLUMN suitability_recorded_by TEXT;
ALTER TABLE vendor_personnel ADD COLUMN suitability_recorded_at TIMESTAMP;
ALTER TABLE vendor_personnel ADD COLUMN agreement_signed_on DATE;
ALTER TABLE vendor_personnel ADD COLUMN agreement_reference TEXT;
ALTER TABLE vendor_personnel ADD COLUMN agreement_filed_by TEXT;
ALTER TABLE vendor_personnel ADD COLUMN agreement_filed_at TIMESTAMP;
CREATE INDEX vendor_personnel_contract ON vendor_personnel (contract_id) WHERE contract_id IS NOT NULL;

-- The outbox of messages to identity (R-VEN-06 offboarding, R-VEN-08 registration): written in the
-- transaction of the change, delivered at least once in id (UUIDv7) order by the identity relay,
-- idempotent there by id. A message identity refuses as malformed (400/422) is set aside
-- (`rejected_at`) for an operator rather than blocking every later one.
CREATE TABLE identity_messages (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('offboarded', 'registered')),
    national_id TEXT NOT NULL,
    agency TEXT NOT NULL,
    vendor_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('departure', 'role_change', 'contract_end', 'registered')),
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    rejected_at TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    CHECK ((kind = 'registered') = (reason = 'registered'))
);
CREATE INDEX identity_messages_undelivered_idx ON identity_messages (id)
    WHERE delivered_at IS NULL AND rejected_at IS NULL;

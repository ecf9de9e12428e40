-- Dedicated machines (專屬設備, R-VEN-07; seed 003 pt 8): registered to one contract (the project it
-- serves), attested offline with its licensed software, re-attested before its due date (a Taipei
-- date); an attestation that falls overdue is flagged once by the sweep (`overdue_flagged_at`,
-- cleared by the next attestation). Asset tag and serial number are unique per agency among the
-- machines not retired, so one machine is never registered to two projects at once.
CREATE TABLE vendor_devices (
    id TEXT PRIMARY KEY,
    vendor_id TEXT NOT NULL REFERENCES vendors (id),
    contract_id TEXT NOT NULL REFERENCES vendor_contracts (id),
    agency TEXT NOT NULL,
    asset_tag TEXT NOT NULL,
    serial_number TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('registered', 'attested', 'retired')),
    -- The latest attestation: no internet, and the licensed software as JSON
    -- ([{"name": …, "licence_ref": …}]); who attested it and when.
    offline BOOLEAN,
    licensed_software TEXT,
    attested_by TEXT,
    attested_at TIMESTAMP,
    attestation_due_on DATE NOT NULL,
    overdue_flagged_at TIMESTAMP,
    registered_by TEXT NOT NULL,
    registered_at TIMESTAMP NOT NULL,
    retired_by TEXT,
    retired_at TIMESTAMP,
    retirement_reason TEXT,
    CHECK ((attested_at IS NULL) = (attested_by IS NULL)
        AND (attested_at IS NULL) = (offline IS NULL)
        AND (attested_at IS NULL) = (licensed_software IS NULL)),
    CHECK (status <> 'registered' OR attested_at IS NULL),
    CHECK (status <> 'attested' OR attested_at IS NOT NULL),
    -- R-VEN-07: a machine attested as connected to the internet is never accepted.
    CHECK (offline IS NULL OR offline),
    CHECK ((status = 'retired') = (retired_at IS NOT NULL)),
    CHECK ((retired_at IS NULL) = (retired_by IS NULL))
);
CREATE UNIQUE INDEX vendor_devices_asset_tag_idx ON vendor_devices (agency, asset_tag) WHERE status <> 'retired';
CREATE UNIQUE INDEX vendor_devices_serial_number_idx ON vendor_devices (agency, serial_number)
    WHERE status <> 'retired';
CREATE INDEX vendor_devices_contract_idx ON vendor_devices (contract_id, id);
-- The agency's list and the sweep: machines in use by due date.
CREATE INDEX vendor_devices_due_idx ON vendor_devices (attestation_due_on) WHERE status <> 'retired';

-- Incidents (R-VEN-03): when it happened, when the vendor learned of it, when it was reported (the
-- time of the report) and the measures taken; `late` when reported more than the configured limit
-- (`report_limit_minutes`, as applied) after learning of it.
CREATE TABLE vendor_incidents (
    id TEXT PRIMARY KEY,
    vendor_id TEXT NOT NULL REFERENCES vendors (id),
    agency TEXT NOT NULL,
    contract_id TEXT REFERENCES vendor_contracts (id),
    occurred_at TIMESTAMP NOT NULL,
    learned_at TIMESTAMP NOT NULL,
    reported_at TIMESTAMP NOT NULL,
    description TEXT NOT NULL,
    measures TEXT NOT NULL,
    late BOOLEAN NOT NULL,
    report_limit_minutes BIGINT NOT NULL,
    reported_by TEXT NOT NULL,
    CHECK (occurred_at <= learned_at AND learned_at <= reported_at)
);
CREATE INDEX vendor_incidents_vendor_idx ON vendor_incidents (vendor_id, id);

-- Audits of a vendor and their findings (R-VEN-05), tracked to closure like R-AUD-07: open →
-- remediated → closed, a remediation deadline (a Taipei date), closed by someone other than who
-- recorded the remediation; a finding past its deadline and not closed is flagged once by the sweep.
CREATE TABLE vendor_audits (
    id TEXT PRIMARY KEY,
    vendor_id TEXT NOT NULL REFERENCES vendors (id),
    agency TEXT NOT NULL,
    audited_on DATE NOT NULL,
    auditor TEXT NOT NULL,
    scope TEXT NOT NULL,
    summary TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL
);
CREATE INDEX vendor_audits_vendor_idx ON vendor_audits (vendor_id, id);

CREATE TABLE vendor_findings (
    id TEXT PRIMARY KEY,
    audit_id TEXT NOT NULL REFERENCES vendor_audits (id),
    vendor_id TEXT NOT NULL REFERENCES vendors (id),
    agency TEXT NOT NULL,
    description TEXT NOT NULL,
    deadline DATE NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'remediated', 'closed')),
    remediation TEXT,
    remediated_by TEXT,
    remediated_at TIMESTAMP,
    closure_note TEXT,
    closed_by TEXT,
    closed_at TIMESTAMP,
    overdue_flagged_at TIMESTAMP,
    opened_at TIMESTAMP NOT NULL,
    CHECK ((remediated_at IS NULL) = (remediated_by IS NULL) AND (remediated_at IS NULL) = (remediation IS NULL)),
    CHECK ((status = 'open') = (remediated_at IS NULL)),
    CHECK ((closed_at IS NULL) = (closed_by IS NULL)),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL)),
    -- Four eyes: who closes a finding is not who recorded its remediation.
    CHECK (closed_by IS NULL OR closed_by <> remediated_by)
);
CREATE INDEX vendor_findings_audit_idx ON vendor_findings (audit_id, id);
CREATE INDEX vendor_findings_agency_idx ON vendor_findings (agency, id);
CREATE INDEX vendor_findings_deadline_idx ON vendor_findings (deadline) WHERE status <> 'closed';

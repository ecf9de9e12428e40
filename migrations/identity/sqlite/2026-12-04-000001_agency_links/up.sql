-- Agency links (seed 003): the application and change form (申請暨異動書) with the immigration
-- agency's decision per item, the link's lifecycle with its clocks and reasons, anomaly notices and
-- resumption requests.

-- A non-public agency links only through its competent authority (R-LINK-11).
ALTER TABLE agencies ADD COLUMN is_public BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE agencies ADD COLUMN competent_authority_id TEXT REFERENCES agencies (id);

-- valid_from/valid_until are the data usage period (R-LINK-12). status_cause says why the link is
-- where it is (it names the SPEC rule a refused lookup cites). A link is idle since its last use, its
-- activation or the agency's last answer to a dormancy notice, whichever is latest (R-LINK-10).
ALTER TABLE agency_links ADD COLUMN sponsor_agency_id TEXT REFERENCES agencies (id);
ALTER TABLE agency_links ADD COLUMN status_cause TEXT;
ALTER TABLE agency_links ADD COLUMN status_reason TEXT;
ALTER TABLE agency_links ADD COLUMN status_changed_at TIMESTAMP;
ALTER TABLE agency_links ADD COLUMN suspended_at TIMESTAMP;
ALTER TABLE agency_links ADD COLUMN review_due_on DATE;
ALTER TABLE agency_links ADD COLUMN review_notified_on DATE;
ALTER TABLE agency_links ADD COLUMN termination_date DATE;
ALTER TABLE agency_links ADD COLUMN termination_noticed_at TIMESTAMP;
ALTER TABLE agency_links ADD COLUMN last_used_at TIMESTAMP;
ALTER TABLE agency_links ADD COLUMN dormant_notified_at TIMESTAMP;
ALTER TABLE agency_links ADD COLUMN dormancy_confirmed_at TIMESTAMP;
ALTER TABLE agency_links ADD COLUMN activated_at TIMESTAMP;

CREATE INDEX agency_links_agency_idx ON agency_links (agency_id, status);

-- A first or change application: the whole form as JSON (what the clerk filled in), and who filed
-- and decided it.
CREATE TABLE link_applications (
    id TEXT PRIMARY KEY,
    link_id TEXT NOT NULL REFERENCES agency_links (id),
    agency_id TEXT NOT NULL REFERENCES agencies (id),
    sponsor_agency_id TEXT REFERENCES agencies (id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    form TEXT NOT NULL,
    submitted_by TEXT NOT NULL REFERENCES users (id),
    submitted_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP
);

CREATE INDEX link_applications_link_idx ON link_applications (link_id, submitted_at);

-- Each requested item and the immigration agency's decision on it (R-LINK-03).
CREATE TABLE link_application_items (
    application_id TEXT NOT NULL REFERENCES link_applications (id),
    legal_basis TEXT NOT NULL,
    purpose_code TEXT NOT NULL,
    query_type TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT,
    decided_by TEXT REFERENCES users (id),
    decided_at TIMESTAMP,
    PRIMARY KEY (application_id, legal_basis, purpose_code, query_type)
);

-- Every move of a link's status: from, to, the rule, the reason, who (none: the sweep) and when.
CREATE TABLE link_transitions (
    id TEXT PRIMARY KEY,
    link_id TEXT NOT NULL REFERENCES agency_links (id),
    from_status TEXT,
    to_status TEXT NOT NULL,
    cause TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor_id TEXT REFERENCES users (id),
    at TIMESTAMP NOT NULL
);

CREATE INDEX link_transitions_link_idx ON link_transitions (link_id, at);

-- An anomaly the immigration agency found, with its deadline for explanation and remediation
-- (R-AUD-09); unremediated by then, the link is suspended (R-LINK-06).
CREATE TABLE anomaly_notices (
    id TEXT PRIMARY KEY,
    link_id TEXT NOT NULL REFERENCES agency_links (id),
    agency_id TEXT NOT NULL REFERENCES agencies (id),
    finding TEXT NOT NULL,
    deadline DATE NOT NULL,
    status TEXT NOT NULL,
    issued_by TEXT NOT NULL REFERENCES users (id),
    issued_at TIMESTAMP NOT NULL,
    explanation TEXT,
    remediation TEXT,
    remediated_by TEXT REFERENCES users (id),
    remediated_at TIMESTAMP,
    overdue_at TIMESTAMP
);

CREATE INDEX anomaly_notices_link_idx ON anomaly_notices (link_id, status);

-- A request to resume a suspended link and the immigration agency's decision (R-LINK-07).
CREATE TABLE link_resumption_requests (
    id TEXT PRIMARY KEY,
    link_id TEXT NOT NULL REFERENCES agency_links (id),
    remediation TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL REFERENCES users (id),
    requested_at TIMESTAMP NOT NULL,
    decided_by TEXT REFERENCES users (id),
    decided_at TIMESTAMP,
    decision_reason TEXT
);

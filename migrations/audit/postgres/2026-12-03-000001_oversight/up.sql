-- Oversight (R-AUD-03..08, R-GOV-02): what supervisors, account managers, auditors and the
-- immigration agency do with the log. The log stays the evidence; these tables are read models of
-- it (oversight_lookups, oversight_sessions: projected from records in the append's transaction) and
-- the oversight work itself (reviews, samples, self-audits, findings), each act of which is also a
-- record in the log.

-- How far the records have been projected into the read models (sequence, inclusive).
CREATE TABLE oversight_head (
    id INTEGER PRIMARY KEY,
    projected_through BIGINT NOT NULL
);
INSERT INTO oversight_head (id, projected_through) VALUES (1, 0);

-- One row per lookup: its lookup.requested record, completed by its lookup.completed record.
CREATE TABLE oversight_lookups (
    lookup_id TEXT PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    sequence BIGINT NOT NULL,
    agency TEXT NOT NULL,
    unit TEXT,
    user_id TEXT NOT NULL,
    -- The roles the user held when they looked up, comma-separated (who reviews it, R-AUD-04).
    actor_roles TEXT NOT NULL,
    session_id TEXT,
    requested_at TIMESTAMP NOT NULL,
    query_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    purpose_code TEXT NOT NULL,
    case_number TEXT NOT NULL,
    remarks TEXT,
    proxy_authorization_id TEXT,
    batch_id TEXT,
    outcome TEXT,
    completed_at TIMESTAMP
);
CREATE INDEX oversight_lookups_agency_idx ON oversight_lookups (agency, requested_at);
CREATE INDEX oversight_lookups_unit_idx ON oversight_lookups (agency, unit, requested_at);
CREATE INDEX oversight_lookups_subject_idx ON oversight_lookups (subject_id, requested_at);

-- Sessions as identity recorded them: who (and their name), from when to when (附件一's 登入登出).
CREATE TABLE oversight_sessions (
    session_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    display_name TEXT,
    agency TEXT,
    login_at TIMESTAMP,
    logout_at TIMESTAMP
);

-- The monthly supervisor review (主管稽核月明細表, R-AUD-04): one report per agency, unit, month and
-- reviewing role; its entries are the month's lookups that role reviews.
CREATE TABLE review_reports (
    id TEXT PRIMARY KEY,
    agency TEXT NOT NULL,
    unit TEXT NOT NULL,
    month TEXT NOT NULL,
    reviewer_role TEXT NOT NULL,
    opened_at TIMESTAMP NOT NULL,
    due_on DATE NOT NULL,
    completed_at TIMESTAMP,
    overdue_flagged_at TIMESTAMP,
    UNIQUE (agency, unit, month, reviewer_role)
);

CREATE TABLE review_entries (
    report_id TEXT NOT NULL REFERENCES review_reports (id),
    lookup_id TEXT NOT NULL,
    verdict TEXT,
    note TEXT,
    reviewed_by TEXT,
    reviewed_at TIMESTAMP,
    finding_id TEXT,
    PRIMARY KEY (report_id, lookup_id)
);
CREATE INDEX review_entries_lookup_idx ON review_entries (lookup_id);

-- Samples (R-AUD-06): the published rule's inputs and outputs, so anyone can draw it again.
CREATE TABLE samples (
    id TEXT PRIMARY KEY,
    agency TEXT NOT NULL,
    from_at TIMESTAMP NOT NULL,
    to_at TIMESTAMP NOT NULL,
    ratio TEXT NOT NULL,
    seed TEXT NOT NULL,
    seed_generated BOOLEAN NOT NULL,
    population BIGINT NOT NULL,
    size BIGINT NOT NULL,
    excluded_own BIGINT NOT NULL,
    drawn_by TEXT NOT NULL,
    drawn_at TIMESTAMP NOT NULL
);

CREATE TABLE sample_records (
    sample_id TEXT NOT NULL REFERENCES samples (id),
    position BIGINT NOT NULL,
    record_id TEXT NOT NULL,
    -- uniform: the rule's n; or a risk stratum drawn on top (off_hours, busy_user, shared_subject, proxy)
    stratum TEXT NOT NULL,
    outcome TEXT,
    note TEXT,
    checked_by TEXT,
    checked_at TIMESTAMP,
    finding_id TEXT,
    PRIMARY KEY (sample_id, position)
);

-- Self-audits (R-AUD-05, 002 附件三 and 附件四).
CREATE TABLE self_audits (
    id TEXT PRIMARY KEY,
    agency TEXT NOT NULL,
    form TEXT NOT NULL,
    audited_unit TEXT,
    audit_date DATE NOT NULL,
    status TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    auditor_name TEXT,
    section_chief_name TEXT,
    unit_head_name TEXT,
    completed_at TIMESTAMP
);
CREATE INDEX self_audits_agency_idx ON self_audits (agency, audit_date);

CREATE TABLE self_audit_items (
    self_audit_id TEXT NOT NULL REFERENCES self_audits (id),
    item_no INTEGER NOT NULL,
    answer BOOLEAN,
    explanation TEXT,
    PRIMARY KEY (self_audit_id, item_no)
);

-- Findings (R-AUD-07): a rule found violated, tracked to closure.
CREATE TABLE findings (
    id TEXT PRIMARY KEY,
    agency TEXT NOT NULL,
    unit TEXT,
    origin TEXT NOT NULL,
    origin_ref TEXT,
    description TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at TIMESTAMP NOT NULL,
    deadline DATE NOT NULL,
    status TEXT NOT NULL,
    remediation TEXT,
    recommendation TEXT,
    recommendation_note TEXT,
    closed_by TEXT,
    closed_at TIMESTAMP,
    overdue_flagged_at TIMESTAMP
);
CREATE INDEX findings_agency_idx ON findings (agency, opened_at);

-- Notifications the audit service sends through identity (which knows the addresses): written in
-- the transaction of what they announce, delivered at least once (idempotent by id).
CREATE TABLE audit_notifications (
    id TEXT PRIMARY KEY,
    agency TEXT NOT NULL,
    unit TEXT,
    recipient_roles TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX audit_notifications_pending_idx ON audit_notifications (created_at) WHERE delivered_at IS NULL;

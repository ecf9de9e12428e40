-- Paperwork around lookups: proxy authorisations (移民資料代查授權單, R-QRY-06), unit-supervisor
-- approvals of "other business" purposes (R-QRY-10), and doubt queries (疑義查詢表, 附件二) with their
-- official follow-up documents (R-QRY-09). What was filed is never edited: a revocation or a decision
-- fills its own columns once, a follow-up document is a row of its own, and triggers refuse the rest.
-- Timestamps are naive UTC; dates (fax date, due date, sent date) are Asia/Taipei business dates.

CREATE TABLE proxy_authorizations (
    id TEXT PRIMARY KEY,
    agency TEXT NOT NULL,
    grantor_user_id TEXT NOT NULL,
    grantor_name TEXT NOT NULL,
    grantee_user_id TEXT NOT NULL,
    grantee_name TEXT NOT NULL,
    case_number TEXT NOT NULL,
    -- JSON array of query type codes.
    query_types TEXT NOT NULL,
    valid_from TIMESTAMP NOT NULL,
    valid_until TIMESTAMP NOT NULL,
    reason TEXT,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    revoked_by TEXT,
    revocation_reason TEXT,
    CHECK (valid_until > valid_from),
    CHECK (grantor_user_id <> grantee_user_id)
);

CREATE INDEX proxy_authorizations_grantor_idx ON proxy_authorizations (agency, grantor_user_id);
CREATE INDEX proxy_authorizations_grantee_idx ON proxy_authorizations (agency, grantee_user_id);
CREATE INDEX proxy_authorizations_validity_idx ON proxy_authorizations (agency, valid_until);

CREATE TABLE purpose_approvals (
    id TEXT PRIMARY KEY,
    agency TEXT NOT NULL,
    -- The requester's unit when they asked: only a supervisor of that unit decides.
    unit TEXT NOT NULL,
    requester_user_id TEXT NOT NULL,
    purpose_code TEXT NOT NULL,
    case_number TEXT NOT NULL,
    business_description TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    requested_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP,
    decided_by TEXT,
    decision_reason TEXT,
    valid_until TIMESTAMP,
    CHECK (decided_by IS NULL OR decided_by <> requester_user_id)
);

CREATE INDEX purpose_approvals_requester_idx ON purpose_approvals (agency, requester_user_id, case_number);
CREATE INDEX purpose_approvals_unit_idx ON purpose_approvals (agency, unit, status);
CREATE INDEX purpose_approvals_status_idx ON purpose_approvals (agency, status);
-- One pending request per user, case and purpose.
CREATE UNIQUE INDEX purpose_approvals_one_pending_idx
    ON purpose_approvals (agency, requester_user_id, case_number, purpose_code) WHERE status = 'pending';

CREATE TABLE doubt_queries (
    id TEXT PRIMARY KEY,
    agency TEXT NOT NULL,
    filed_by TEXT NOT NULL,
    -- The filer's unit when they filed: their unit supervisor may record the follow-up.
    filer_unit TEXT,
    query_type TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    purpose_code TEXT NOT NULL,
    case_number TEXT NOT NULL,
    purpose_approval_id TEXT,
    requester_name TEXT NOT NULL,
    requester_title TEXT NOT NULL,
    requester_phone TEXT NOT NULL,
    requester_fax TEXT,
    subject_nationality_kind TEXT NOT NULL CHECK (subject_nationality_kind IN ('national', 'foreigner')),
    subject_name_zh TEXT,
    subject_name_en TEXT,
    subject_sex TEXT,
    subject_birth_date DATE,
    subject_national_id TEXT,
    subject_passport_number TEXT,
    subject_arc_number TEXT,
    subject_phone TEXT,
    reason TEXT NOT NULL,
    -- JSON array of {kind, pages, description}.
    attachments TEXT NOT NULL,
    receiving_unit TEXT NOT NULL,
    faxed_at TIMESTAMP NOT NULL,
    -- The Taipei business date of the fax plus three days (002 pt 10).
    due_on DATE NOT NULL,
    lookup_id TEXT,
    created_at TIMESTAMP NOT NULL,
    CHECK (subject_national_id IS NOT NULL OR subject_passport_number IS NOT NULL OR subject_arc_number IS NOT NULL)
);

CREATE INDEX doubt_queries_filer_idx ON doubt_queries (agency, filed_by);
CREATE INDEX doubt_queries_due_idx ON doubt_queries (agency, due_on);

CREATE TABLE doubt_query_follow_ups (
    doubt_query_id TEXT PRIMARY KEY REFERENCES doubt_queries (id),
    document_number TEXT NOT NULL,
    sent_on DATE NOT NULL,
    late BOOLEAN NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    recorded_by TEXT NOT NULL
);

-- Read-only once recorded (R-QRY-09, R-QRY-06, R-QRY-10).
CREATE FUNCTION immilink_paperwork_read_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'what was filed in % is read-only once recorded', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER doubt_queries_read_only
    BEFORE UPDATE ON doubt_queries
    FOR EACH ROW EXECUTE FUNCTION immilink_paperwork_read_only();

CREATE TRIGGER doubt_query_follow_ups_read_only
    BEFORE UPDATE ON doubt_query_follow_ups
    FOR EACH ROW EXECUTE FUNCTION immilink_paperwork_read_only();

CREATE TRIGGER proxy_authorizations_terms_read_only
    BEFORE UPDATE OF id, agency, grantor_user_id, grantor_name, grantee_user_id, grantee_name, case_number,
        query_types, valid_from, valid_until, reason, created_at ON proxy_authorizations
    FOR EACH ROW EXECUTE FUNCTION immilink_paperwork_read_only();

CREATE TRIGGER proxy_authorizations_revocation_read_only
    BEFORE UPDATE ON proxy_authorizations
    FOR EACH ROW WHEN (OLD.revoked_at IS NOT NULL)
    EXECUTE FUNCTION immilink_paperwork_read_only();

CREATE TRIGGER purpose_approvals_terms_read_only
    BEFORE UPDATE OF id, agency, unit, requester_user_id, purpose_code, case_number, business_description,
        requested_at ON purpose_approvals
    FOR EACH ROW EXECUTE FUNCTION immilink_paperwork_read_only();

CREATE TRIGGER purpose_approvals_decision_read_only
    BEFORE UPDATE ON purpose_approvals
    FOR EACH ROW WHEN (OLD.status <> 'pending')
    EXECUTE FUNCTION immilink_paperwork_read_only();

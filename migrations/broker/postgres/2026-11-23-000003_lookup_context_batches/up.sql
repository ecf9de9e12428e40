-- What a lookup ran under besides its declaration (R-QRY-06 proxy, R-QRY-10 approval, R-QRY-05 job).
ALTER TABLE lookups ADD COLUMN proxy_authorization_id TEXT;
ALTER TABLE lookups ADD COLUMN on_behalf_of_user_id TEXT;
ALTER TABLE lookups ADD COLUMN supervisor_approval_id TEXT;
ALTER TABLE lookups ADD COLUMN batch_id TEXT;

-- Bulk lookup jobs (R-QRY-05): one declaration, many subject IDs; each ID becomes its own audited
-- lookup when the worker reaches it. Items keep the minimised result for the submitter to fetch.
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    agency TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    query_type TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    purpose_code TEXT NOT NULL,
    case_number TEXT NOT NULL,
    remarks TEXT,
    supervisor_approval_id TEXT,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    failure TEXT
);

CREATE INDEX batches_status_idx ON batches (status, created_at);
CREATE INDEX batches_user_idx ON batches (user_id, created_at);

CREATE TABLE batch_items (
    batch_id TEXT NOT NULL REFERENCES batches (id),
    position INTEGER NOT NULL,
    subject_id TEXT NOT NULL,
    status TEXT NOT NULL,
    lookup_id TEXT,
    result TEXT,
    failure TEXT,
    completed_at TIMESTAMP,
    PRIMARY KEY (batch_id, position)
);

CREATE INDEX batch_items_pending_idx ON batch_items (batch_id, status, position);

-- R-QRY-12: what the upstream answered is never altered once stored.
CREATE FUNCTION immilink_results_read_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'results obtained from the upstream are read-only (R-QRY-12)';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER batch_items_result_read_only
    BEFORE UPDATE OF result ON batch_items
    FOR EACH ROW WHEN (OLD.result IS NOT NULL)
    EXECUTE FUNCTION immilink_results_read_only();

-- Lookups and the transactional outbox of audit events (R-QRY-08). A lookup row and its
-- `lookup.requested` event commit together before anything is forwarded upstream; the relay delivers
-- outbox rows to the audit service at least once (it stores each event id once).
CREATE TABLE lookups (
    id TEXT PRIMARY KEY,
    audit_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    agency TEXT NOT NULL,
    query_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    purpose_code TEXT NOT NULL,
    case_number TEXT NOT NULL,
    remarks TEXT,
    status TEXT NOT NULL,
    requested_at TIMESTAMP NOT NULL,
    completed_at TIMESTAMP,
    upstream_status INTEGER,
    failure TEXT
);

CREATE INDEX lookups_status_idx ON lookups (status, requested_at);
CREATE INDEX lookups_user_idx ON lookups (user_id, requested_at);

CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

CREATE INDEX outbox_pending_idx ON outbox (delivered_at, id);

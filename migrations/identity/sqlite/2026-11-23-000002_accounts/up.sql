-- Account lifecycle (R-ACC): per-agency settings, the person behind each account, lockout, account
-- applications with their review steps, lifecycle events and the notification outbox.
ALTER TABLE agencies ADD COLUMN requires_head_approval BOOLEAN NOT NULL DEFAULT FALSE;

-- The natural person (national ID) behind an account: separation of duties (R-ACC-04) and the
-- contractor check (R-ACC-08) compare people, not accounts.
ALTER TABLE users ADD COLUMN national_id TEXT;
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN status_reason TEXT;
ALTER TABLE users ADD COLUMN status_changed_at TIMESTAMP;
-- Failed-login lockout.
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until TIMESTAMP;

CREATE INDEX users_national_id_idx ON users (national_id);
CREATE INDEX sessions_live_idx ON sessions (user_id, logout_at);

-- An application for an account (R-ACC-01): who, what for, and where in the review it stands.
CREATE TABLE account_applications (
    id TEXT PRIMARY KEY,
    agency_id TEXT NOT NULL REFERENCES agencies (id),
    unit_id TEXT NOT NULL REFERENCES units (id),
    username TEXT NOT NULL,
    display_name TEXT NOT NULL,
    national_id TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    certificate_serial TEXT NOT NULL,
    ips TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    business_handled TEXT NOT NULL,
    requested_grants TEXT NOT NULL,
    granted TEXT,
    status TEXT NOT NULL,
    user_id TEXT REFERENCES users (id),
    nia_reference TEXT,
    submitted_ip TEXT NOT NULL,
    submitted_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE INDEX account_applications_agency_idx ON account_applications (agency_id, status);

-- Every review step: who, when, decision, reason. The NIA step has no local reviewer.
CREATE TABLE application_reviews (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES account_applications (id),
    step TEXT NOT NULL,
    reviewer_id TEXT REFERENCES users (id),
    reviewer_name TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    decided_at TIMESTAMP NOT NULL,
    UNIQUE (application_id, step)
);

-- What happened to an account and why (R-ACC-05..11): cancellations, suspensions, lending flags, ...
CREATE TABLE account_events (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    agency_id TEXT NOT NULL REFERENCES agencies (id),
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor_id TEXT,
    effective_date DATE NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE INDEX account_events_agency_idx ON account_events (agency_id, kind);

-- Notifications to applicants and account holders, delivered at least once by a background task.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

CREATE INDEX notifications_pending_idx ON notifications (delivered_at);

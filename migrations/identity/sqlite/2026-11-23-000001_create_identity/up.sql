-- Identity owns agencies, units, users, their roles, bound IPs and grants, agency links and sessions.
CREATE TABLE agencies (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE units (
    id TEXT PRIMARY KEY,
    agency_id TEXT NOT NULL REFERENCES agencies (id),
    name TEXT NOT NULL,
    UNIQUE (agency_id, name)
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    agency_id TEXT NOT NULL REFERENCES agencies (id),
    unit_id TEXT REFERENCES units (id),
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    certificate_serial TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
);

CREATE TABLE user_ips (
    user_id TEXT NOT NULL REFERENCES users (id),
    ip TEXT NOT NULL,
    PRIMARY KEY (user_id, ip)
);

-- Query types x purposes granted to a user (R-ACC-01).
CREATE TABLE user_grants (
    user_id TEXT NOT NULL REFERENCES users (id),
    query_type TEXT NOT NULL,
    purpose_code TEXT NOT NULL,
    PRIMARY KEY (user_id, query_type, purpose_code)
);

-- An agency's link with the immigration agency (R-LINK) and its approved items.
CREATE TABLE agency_links (
    id TEXT PRIMARY KEY,
    agency_id TEXT NOT NULL REFERENCES agencies (id),
    status TEXT NOT NULL,
    valid_from TIMESTAMP NOT NULL,
    valid_until TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE agency_link_items (
    link_id TEXT NOT NULL REFERENCES agency_links (id),
    legal_basis TEXT NOT NULL,
    purpose_code TEXT NOT NULL,
    query_type TEXT NOT NULL,
    PRIMARY KEY (link_id, legal_basis, purpose_code, query_type)
);

-- Every session with its login and logout time (R-ACC-12).
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    login_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    logout_at TIMESTAMP,
    end_reason TEXT
);

CREATE INDEX sessions_user_idx ON sessions (user_id);

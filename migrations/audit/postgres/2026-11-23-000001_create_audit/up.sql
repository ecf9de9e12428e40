-- The append-only, hash-chained audit log (R-AUD-02). Each record's hash covers its content and the
-- previous record's hash; the head row serialises appends (every append transaction updates it first,
-- which takes the row lock on PostgreSQL and the write lock on SQLite).
CREATE TABLE audit_chain_head (
    id INTEGER PRIMARY KEY,
    next_sequence BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);

INSERT INTO audit_chain_head (id, next_sequence, last_hash)
VALUES (1, 1, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_records (
    sequence BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    source TEXT NOT NULL,
    actor_user_id TEXT,
    agency TEXT,
    correlation_id TEXT,
    subject_id TEXT,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX audit_records_agency_idx ON audit_records (agency, occurred_at);
CREATE INDEX audit_records_subject_idx ON audit_records (subject_id);
CREATE INDEX audit_records_correlation_idx ON audit_records (correlation_id);

-- The transactional outbox of audit events (immilink_shared::outbox): each state change writes its
-- audit event here in the same transaction, and the relay delivers the rows to the audit service at
-- least once (it stores each event id once). The same table in every service that records audited acts.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

-- The relay reads the undelivered events in id order. Delivered rows stay (they are the service's own
-- record of what it sent), so without a partial index that read scans the whole history.
CREATE INDEX outbox_undelivered_idx ON outbox (id) WHERE delivered_at IS NULL;

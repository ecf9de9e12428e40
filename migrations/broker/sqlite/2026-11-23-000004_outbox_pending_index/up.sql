-- The relay reads the undelivered events in id order. Delivered rows stay (they are the broker's own
-- record of what it sent), so without a partial index that read scans the whole history.
CREATE INDEX outbox_undelivered_idx ON outbox (id) WHERE delivered_at IS NULL;

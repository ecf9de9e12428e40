DROP INDEX outbox_undelivered_idx;

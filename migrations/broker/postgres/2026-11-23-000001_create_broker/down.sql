DROP TABLE outbox;
DROP TABLE lookups;

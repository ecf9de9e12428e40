ALTER TABLE account_applications DROP COLUMN role;
ALTER TABLE users DROP COLUMN grants_suspended_reason;
ALTER TABLE users DROP COLUMN grants_suspended_at;
DROP TABLE personnel_messages;

-- Contractor personnel and accounts (R-VEN-06, R-VEN-08, R-ACC-08).

-- The vendors service's personnel messages (offboarded, registered), each taken once: a redelivered
-- id changes nothing. Written in the transaction that applies the message.
CREATE TABLE personnel_messages (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    accounts INTEGER NOT NULL,
    received_at TIMESTAMP NOT NULL
);

-- R-VEN-08 after the fact: the holder of lookup grants was registered as contractor personnel. Set,
-- the account's lookups are refused until an account manager resolves the conflict.
ALTER TABLE users ADD COLUMN grants_suspended_at TIMESTAMP;
ALTER TABLE users ADD COLUMN grants_suspended_reason TEXT;

-- The role an application asks for: caseworker (lookups, as before) or vendor_staff (contractor
-- personnel: no lookup grant, R-VEN-08).
ALTER TABLE account_applications ADD COLUMN role TEXT NOT NULL DEFAULT 'caseworker';

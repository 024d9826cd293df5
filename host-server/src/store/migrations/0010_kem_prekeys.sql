-- Schema version 10: KEM prekeys (PQXDH, PROTOCOL.md §4.8). Each device holds at most one
-- last-resort KEM prekey, kept beside its signed prekey in `devices` (replaced by a new one,
-- handed out whenever no one-time KEM prekey is), and a set of one-time KEM prekeys, each handed
-- out once. Both go when the device is revoked, when the account starts over (they were signed
-- by the old identity) and with the account. Nothing to migrate: no device has published one.
ALTER TABLE devices ADD COLUMN kem_id INTEGER;
ALTER TABLE devices ADD COLUMN kem_key BLOB;
ALTER TABLE devices ADD COLUMN kem_sig BLOB;

CREATE TABLE device_kem_prekeys (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_id  INTEGER NOT NULL,
    prekey_id  INTEGER NOT NULL,
    key        BLOB NOT NULL,
    signature  BLOB NOT NULL,
    PRIMARY KEY (account_id, device_id, prekey_id)
) WITHOUT ROWID;

-- Schema version 6: a record of each account's devices (PROTOCOL.md §6 Devices), for
-- `ListDevices`: the name a device gave itself, when it was added, last seen and revoked.
-- `accounts.device_id` stays the account's current device; each existing account gets a row for
-- it (its earlier devices, before this version, are not known).
CREATE TABLE devices (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_id  INTEGER NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    added_at   INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    revoked_at INTEGER,
    PRIMARY KEY (account_id, device_id)
) WITHOUT ROWID;
INSERT INTO devices (account_id, device_id, added_at, last_seen)
    SELECT id, device_id, created_at, created_at FROM accounts;

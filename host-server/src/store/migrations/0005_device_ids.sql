-- Schema version 5: the id of each account's device (PROTOCOL.md §6 Devices). Existing accounts
-- hold device 1; starting over with a new identity moves the account to the next id, never
-- reused, so a sender naming the old device in `SendToDevices` is refused with STALE_DEVICES.
ALTER TABLE accounts ADD COLUMN device_id INTEGER NOT NULL DEFAULT 1;

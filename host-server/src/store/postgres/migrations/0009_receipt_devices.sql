-- Schema version 9 (SQLite's version 9): a kept "delivered" receipt names the recipient's device
-- that acknowledged (PROTOCOL.md §3.4 `Delivered`), so a sender counts the devices that have a
-- message. Receipts kept before this version say device 0 (no device has that id).
ALTER TABLE receipts ADD COLUMN device_id BIGINT NOT NULL DEFAULT 0;

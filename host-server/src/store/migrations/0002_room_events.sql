-- Schema version 2: membership changes kept for members who were offline when they happened,
-- so their clients still start a new sender-key epoch. change: 0 joined, 1 left, 2 removed.
CREATE TABLE room_events (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    room       TEXT NOT NULL,
    username   TEXT NOT NULL,
    change     INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX room_events_account ON room_events (account_id, id);

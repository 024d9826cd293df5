-- Schema version 8 (SQLite's version 8): a room cursor per device (PROTOCOL.md §6 Devices). Each
-- of a member's devices acknowledges room messages on its own: its cursor is its `room_cursors`
-- row, or, while it has none, the member's `room_members.cursor` (the join point, or what the
-- account had acknowledged before this version), which acknowledgements no longer move. A device
-- added later gets a row past every message already stored, so it is not delivered the room's
-- earlier ones. The rows go with the membership (leaving, removal), the room and the account.
-- Nothing to migrate: every existing device starts at its member's cursor.
CREATE TABLE room_cursors (
    room_id    BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_id  BIGINT NOT NULL,
    cursor     BIGINT NOT NULL,
    PRIMARY KEY (room_id, account_id, device_id),
    FOREIGN KEY (room_id, account_id) REFERENCES room_members (room_id, account_id)
        ON DELETE CASCADE
);
CREATE INDEX room_cursors_account ON room_cursors (account_id, device_id);

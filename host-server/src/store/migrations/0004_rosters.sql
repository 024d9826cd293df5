-- Schema version 4: each room's chain of signed rosters (PROTOCOL.md §4.7), byte for byte as
-- published. Versions run 0, 1, 2, … without a gap (the server appends only the next one);
-- deleting the room deletes its chain.
CREATE TABLE room_rosters (
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    roster  BLOB NOT NULL,
    PRIMARY KEY (room_id, version)
) WITHOUT ROWID;

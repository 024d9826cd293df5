-- Schema version 4: each room's chain of signed rosters (PROTOCOL.md §4.7), byte for byte as
-- published; SQLite's schema version 4. Versions run 0, 1, 2, … without a gap: the server
-- appends only the next one, and the primary key makes a second node's insert of the same
-- version wait for the first and then do nothing. Deleting the room deletes its chain.
CREATE TABLE room_rosters (
    room_id BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    roster  BYTEA NOT NULL,
    PRIMARY KEY (room_id, version)
);

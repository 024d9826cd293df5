-- Sealroom server schema, version 1. Bodies are end-to-end ciphertext; nothing here is a
-- private key or a plaintext. Secrets the server must check are stored hashed (passwords as
-- PBKDF2 PHC strings, session tokens and recovery codes as SHA-256), except the TOTP secret,
-- which RFC 6238 requires the verifier to hold.
CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    email          TEXT NOT NULL,
    password_phc   TEXT NOT NULL,
    totp_secret    BLOB NOT NULL,
    confirmed      INTEGER NOT NULL DEFAULT 0,
    totp_last_step INTEGER,
    identity_sig   BLOB NOT NULL,
    identity_dh    BLOB NOT NULL,
    spk_id         INTEGER,
    spk_key        BLOB,
    spk_sig        BLOB,
    created_at     INTEGER NOT NULL
);

CREATE TABLE recovery_codes (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code_hash  BLOB NOT NULL,
    PRIMARY KEY (account_id, code_hash)
) WITHOUT ROWID;

CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE one_time_prekeys (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    prekey_id  INTEGER NOT NULL,
    key        BLOB NOT NULL,
    PRIMARY KEY (account_id, prekey_id)
) WITHOUT ROWID;

CREATE TABLE rooms (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    admin_id INTEGER NOT NULL REFERENCES accounts(id)
);

-- cursor: the highest room message id this member has acknowledged (or the last id that
-- existed when they joined: members do not receive what was sent before they joined).
CREATE TABLE room_members (
    room_id    INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    cursor     INTEGER NOT NULL,
    PRIMARY KEY (room_id, account_id)
);

-- One id space for direct and room messages: the server id in Accepted / Deliver / Ack.
-- A direct message has recipient_id set; a room message has room_id set and is stored once.
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    room_id      INTEGER REFERENCES rooms(id) ON DELETE CASCADE,
    sender_id    INTEGER NOT NULL,
    sender       TEXT NOT NULL,
    sent_at      INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    body         BLOB NOT NULL
);
CREATE INDEX messages_recipient ON messages (recipient_id, id) WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_room ON messages (room_id, id) WHERE room_id IS NOT NULL;
CREATE INDEX messages_expiry ON messages (expires_at);

-- "Delivered" receipts waiting for a sender who was offline when the recipient acknowledged.
CREATE TABLE receipts (
    id           INTEGER PRIMARY KEY,
    sender_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    server_id    INTEGER NOT NULL,
    recipient    TEXT NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX receipts_sender ON receipts (sender_id, id);

-- Sealroom server schema for PostgreSQL, version 1: the same tables as SQLite's schema
-- version 3 (host-server/src/store/migrations/), in PostgreSQL's types. Bodies are end-to-end
-- ciphertext; nothing here is a private key or a plaintext. Secrets the server must check are
-- stored hashed (passwords as PBKDF2 PHC strings, session tokens and recovery codes as
-- SHA-256), except the TOTP secret, which RFC 6238 requires the verifier to hold.
CREATE TABLE accounts (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    email          TEXT NOT NULL,
    password_phc   TEXT NOT NULL,
    totp_secret    BYTEA NOT NULL,
    confirmed      BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step BIGINT,
    identity_sig   BYTEA NOT NULL,
    identity_dh    BYTEA NOT NULL,
    spk_id         BIGINT,
    spk_key        BYTEA,
    spk_sig        BYTEA,
    created_at     BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code_hash  BYTEA NOT NULL,
    PRIMARY KEY (account_id, code_hash)
);

CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE one_time_prekeys (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    prekey_id  BIGINT NOT NULL,
    key        BYTEA NOT NULL,
    PRIMARY KEY (account_id, prekey_id)
);

CREATE TABLE rooms (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    admin_id BIGINT NOT NULL REFERENCES accounts(id)
);

-- cursor: the highest room message id this member has acknowledged (or the last id that
-- existed when they joined). seq keeps joining order (SQLite uses its rowid).
CREATE TABLE room_members (
    room_id    BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    cursor     BIGINT NOT NULL,
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (room_id, account_id)
);
CREATE INDEX room_members_account ON room_members (account_id);

-- One id space for direct and room messages: the server id in Accepted / Deliver / Ack.
-- Ids are handed out under a transaction-scoped advisory lock (see store/postgres/queue.rs),
-- so they become visible in increasing order even with several nodes writing.
CREATE TABLE messages (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient_id BIGINT REFERENCES accounts(id) ON DELETE CASCADE,
    room_id      BIGINT REFERENCES rooms(id) ON DELETE CASCADE,
    sender_id    BIGINT NOT NULL,
    sender       TEXT NOT NULL,
    sent_at      BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    body         BYTEA NOT NULL
);
CREATE INDEX messages_recipient ON messages (recipient_id, id) WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_recipient_sender ON messages (recipient_id, sender_id)
    WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_room ON messages (room_id, id) WHERE room_id IS NOT NULL;
CREATE INDEX messages_expiry ON messages (expires_at);

-- "Delivered" receipts waiting for a sender who was offline when the recipient acknowledged.
CREATE TABLE receipts (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sender_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    server_id  BIGINT NOT NULL,
    recipient  TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX receipts_sender ON receipts (sender_id, id);

-- Membership changes kept for members who were offline. change: 0 joined, 1 left, 2 removed,
-- 3 invited.
CREATE TABLE room_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    room       TEXT NOT NULL,
    username   TEXT NOT NULL,
    change     SMALLINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX room_events_account ON room_events (account_id, id);

CREATE TABLE room_invitations (
    room_id    BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    inviter_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, account_id)
);
CREATE INDEX room_invitations_account ON room_invitations (account_id, created_at);

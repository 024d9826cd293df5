-- Schema version 7 (SQLite's version 7): linked devices (PROTOCOL.md §6 Devices). A session says
-- which device it is (NULL: a session linking a new device, which is delivered nothing); each
-- device has its own signed and one-time prekeys; a direct message is stored once with one
-- ciphertext per device of the recipient (`message_copies`), each acknowledged on its own; a
-- link message waits for the device being linked. Existing accounts keep their one device, with
-- its keys and queue. As in SQLite, `accounts.spk_*` stay, always NULL from here on.
ALTER TABLE sessions ADD COLUMN device_id BIGINT;
UPDATE sessions SET device_id = a.device_id FROM accounts a WHERE a.id = sessions.account_id;

ALTER TABLE devices
    ADD COLUMN spk_id  BIGINT,
    ADD COLUMN spk_key BYTEA,
    ADD COLUMN spk_sig BYTEA;
UPDATE devices SET spk_id = a.spk_id, spk_key = a.spk_key, spk_sig = a.spk_sig
    FROM accounts a WHERE a.id = devices.account_id AND a.device_id = devices.device_id;
UPDATE accounts SET spk_id = NULL, spk_key = NULL, spk_sig = NULL;

CREATE TABLE device_prekeys (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_id  BIGINT NOT NULL,
    prekey_id  BIGINT NOT NULL,
    key        BYTEA NOT NULL,
    PRIMARY KEY (account_id, device_id, prekey_id)
);
INSERT INTO device_prekeys (account_id, device_id, prekey_id, key)
    SELECT p.account_id, a.device_id, p.prekey_id, p.key
    FROM one_time_prekeys p JOIN accounts a ON a.id = p.account_id;
DROP TABLE one_time_prekeys;

ALTER TABLE messages ADD COLUMN sender_device BIGINT NOT NULL DEFAULT 1;
UPDATE messages SET sender_device = a.device_id FROM accounts a WHERE a.id = messages.sender_id;
CREATE TABLE message_copies (
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL,
    device_id  BIGINT NOT NULL,
    body       BYTEA NOT NULL,
    PRIMARY KEY (account_id, device_id, message_id)
);
CREATE INDEX message_copies_message ON message_copies (message_id);
INSERT INTO message_copies (message_id, account_id, device_id, body)
    SELECT m.id, m.recipient_id, a.device_id, m.body
    FROM messages m JOIN accounts a ON a.id = m.recipient_id
    WHERE m.recipient_id IS NOT NULL;
UPDATE messages SET body = ''::BYTEA WHERE recipient_id IS NOT NULL;

CREATE TABLE links (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    link_id    BYTEA NOT NULL,
    message    BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, link_id)
);

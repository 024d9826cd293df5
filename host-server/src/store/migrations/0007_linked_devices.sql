-- Schema version 7: linked devices (PROTOCOL.md §6 Devices). A session says which device it is
-- (NULL: a session linking a new device, which is delivered nothing); each device has its own
-- signed and one-time prekeys; a direct message is stored once with one ciphertext per device
-- of the recipient (`message_copies`), each acknowledged on its own; a link message waits for
-- the device being linked. Existing accounts keep their one device, with its keys and queue.
ALTER TABLE sessions ADD COLUMN device_id INTEGER;
UPDATE sessions SET device_id = (SELECT device_id FROM accounts WHERE accounts.id = sessions.account_id);

ALTER TABLE devices ADD COLUMN spk_id INTEGER;
ALTER TABLE devices ADD COLUMN spk_key BLOB;
ALTER TABLE devices ADD COLUMN spk_sig BLOB;
UPDATE devices SET
    spk_id  = (SELECT spk_id  FROM accounts a WHERE a.id = devices.account_id AND a.device_id = devices.device_id),
    spk_key = (SELECT spk_key FROM accounts a WHERE a.id = devices.account_id AND a.device_id = devices.device_id),
    spk_sig = (SELECT spk_sig FROM accounts a WHERE a.id = devices.account_id AND a.device_id = devices.device_id);
UPDATE accounts SET spk_id = NULL, spk_key = NULL, spk_sig = NULL;

CREATE TABLE device_prekeys (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_id  INTEGER NOT NULL,
    prekey_id  INTEGER NOT NULL,
    key        BLOB NOT NULL,
    PRIMARY KEY (account_id, device_id, prekey_id)
) WITHOUT ROWID;
INSERT INTO device_prekeys (account_id, device_id, prekey_id, key)
    SELECT p.account_id, a.device_id, p.prekey_id, p.key
    FROM one_time_prekeys p JOIN accounts a ON a.id = p.account_id;
DROP TABLE one_time_prekeys;

ALTER TABLE messages ADD COLUMN sender_device INTEGER NOT NULL DEFAULT 1;
UPDATE messages SET sender_device = COALESCE(
    (SELECT device_id FROM accounts WHERE accounts.id = messages.sender_id), 1);
CREATE TABLE message_copies (
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL,
    device_id  INTEGER NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (account_id, device_id, message_id)
) WITHOUT ROWID;
CREATE INDEX message_copies_message ON message_copies (message_id);
INSERT INTO message_copies (message_id, account_id, device_id, body)
    SELECT m.id, m.recipient_id, a.device_id, m.body
    FROM messages m JOIN accounts a ON a.id = m.recipient_id
    WHERE m.recipient_id IS NOT NULL;
UPDATE messages SET body = x'' WHERE recipient_id IS NOT NULL;

CREATE TABLE links (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    link_id    BLOB NOT NULL,
    message    BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, link_id)
) WITHOUT ROWID;

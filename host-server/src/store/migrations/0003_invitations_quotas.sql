-- Schema version 3: room invitations the invitee accepts or declines (an invitation is not a
-- membership), and an index for the per-sender quota on a recipient's queue.
CREATE TABLE room_invitations (
    room_id    INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    inviter_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, account_id)
);
CREATE INDEX room_invitations_account ON room_invitations (account_id, created_at);
CREATE INDEX messages_recipient_sender ON messages (recipient_id, sender_id)
    WHERE recipient_id IS NOT NULL;

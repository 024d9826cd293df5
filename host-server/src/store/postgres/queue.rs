//! Queued ciphertext, receipts and kept membership changes in PostgreSQL.

use proto_core::RoomChange;

use super::{MESSAGE_ID_LOCK, PgStore, to_i64, to_u64};
use crate::store::{
    AccountId, AckOutcome, NewMessage, QueueStore, Receipt, RoomEvent, RoomId, StoreError,
    StoredMessage,
};

impl PgStore {
    fn count(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let n: i64 = self
            .row(sql, params)?
            .ok_or(StoreError::Corrupt("COUNT returned no row"))?
            .try_get(0)?;
        Ok(to_u64(n))
    }
}

impl QueueStore for PgStore {
    fn pending_direct_count(&mut self, recipient: AccountId) -> Result<u64, StoreError> {
        self.count(
            "SELECT COUNT(*) FROM messages WHERE recipient_id = $1",
            &[&recipient],
        )
    }

    fn pending_direct_count_from(
        &mut self,
        recipient: AccountId,
        sender: AccountId,
    ) -> Result<u64, StoreError> {
        self.count(
            "SELECT COUNT(*) FROM messages WHERE recipient_id = $1 AND sender_id = $2",
            &[&recipient, &sender],
        )
    }

    fn pending_room_count(&mut self, room: RoomId) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM messages WHERE room_id = $1", &[&room])
    }

    fn insert_message(&mut self, m: &NewMessage) -> Result<u64, StoreError> {
        // Held from here to the commit: ids are then taken in commit order across every node,
        // so no reader ever sees id n+1 before id n. (Taken again after a job rolled back, in
        // case the rollback released it; taking it twice is harmless.)
        if !self.id_lock_held {
            self.exec("SELECT pg_advisory_xact_lock($1)", &[&MESSAGE_ID_LOCK])?;
            self.id_lock_held = true;
        }
        let id: i64 = self
            .row(
                "INSERT INTO messages (recipient_id, room_id, sender_id, sender, sent_at, \
                 expires_at, body, sender_device) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 RETURNING id",
                &[
                    &m.recipient,
                    &m.room,
                    &m.sender_id,
                    &m.sender,
                    &to_i64(m.sent_at),
                    &to_i64(m.expires_at),
                    &m.body,
                    &i64::from(m.sender_device),
                ],
            )?
            .ok_or(StoreError::Corrupt("INSERT returned no id"))?
            .try_get(0)?;
        if let Some(recipient) = m.recipient {
            for (device, body) in &m.copies {
                self.exec(
                    "INSERT INTO message_copies (message_id, account_id, device_id, body) \
                     VALUES ($1, $2, $3, $4)",
                    &[&id, &recipient, &i64::from(*device), body],
                )?;
            }
        }
        Ok(to_u64(id))
    }

    fn pending_for(
        &mut self,
        account: AccountId,
        device: u32,
        after: u64,
        now: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = self.rows(
            "SELECT m.id, m.sender, NULL::TEXT, m.sent_at, c.body, m.sender_device \
               FROM message_copies c JOIN messages m ON m.id = c.message_id \
               WHERE c.account_id = $1 AND c.device_id = $5 AND c.message_id > $2 \
                 AND m.expires_at > $3 \
             UNION ALL \
             SELECT m.id, m.sender, r.name, m.sent_at, m.body, m.sender_device \
               FROM room_members rm \
               JOIN rooms r ON r.id = rm.room_id \
               LEFT JOIN room_cursors rc ON rc.room_id = rm.room_id \
                 AND rc.account_id = rm.account_id AND rc.device_id = $5 \
               JOIN messages m ON m.room_id = rm.room_id \
                 AND m.id > COALESCE(rc.cursor, rm.cursor) \
               WHERE rm.account_id = $1 AND m.id > $2 AND m.expires_at > $3 \
                 AND NOT (m.sender_id = $1 AND m.sender_device = $5) \
             ORDER BY 1 LIMIT $4",
            &[
                &account,
                &to_i64(after),
                &to_i64(now),
                &i64::try_from(limit).unwrap_or(i64::MAX),
                &i64::from(device),
            ],
        )?;
        rows.iter()
            .map(|r| {
                Ok(StoredMessage {
                    id: to_u64(r.try_get(0)?),
                    sender: r.try_get(1)?,
                    room: r.try_get(2)?,
                    sent_at: to_u64(r.try_get(3)?),
                    body: r.try_get(4)?,
                    sender_device: u32::try_from(r.try_get::<_, i64>(5)?).unwrap_or(0),
                })
            })
            .collect()
    }

    fn ack(
        &mut self,
        account: AccountId,
        device: u32,
        server_id: u64,
    ) -> Result<AckOutcome, StoreError> {
        let id = to_i64(server_id);
        let copy = self.exec(
            "DELETE FROM message_copies WHERE account_id = $2 AND device_id = $3 \
             AND message_id = $1",
            &[&id, &account, &i64::from(device)],
        )?;
        if copy > 0 {
            // The message's row lock, held to the commit: two devices acknowledging their last
            // two copies on two nodes at once take turns, and the second (whose next statement
            // sees the first's commit) finds no copy left and deletes the message.
            let sender_id = self
                .row(
                    "SELECT sender_id FROM messages WHERE id = $1 FOR UPDATE",
                    &[&id],
                )?
                .map(|r| r.try_get::<_, i64>(0))
                .transpose()?;
            // The last copy acknowledged: the message is done.
            self.exec(
                "DELETE FROM messages WHERE id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM message_copies WHERE message_id = $1)",
                &[&id],
            )?;
            return Ok(match sender_id {
                Some(sender_id) => AckOutcome::Direct { sender_id },
                None => AckOutcome::Unknown,
            });
        }
        let Some(row) = self.row(
            "SELECT m.room_id, m.sender_id FROM messages m JOIN room_members rm \
             ON rm.room_id = m.room_id AND rm.account_id = $2 \
             LEFT JOIN room_cursors rc ON rc.room_id = m.room_id \
               AND rc.account_id = $2 AND rc.device_id = $3 \
             WHERE m.id = $1 AND m.id > COALESCE(rc.cursor, rm.cursor)",
            &[&id, &account, &i64::from(device)],
        )?
        else {
            return Ok(AckOutcome::Unknown);
        };
        let (room_id, sender_id): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        // This device's cursor only: the member's other devices still have it to receive.
        // Only while still a member (another node may have just removed them), and GREATEST:
        // an acknowledgement of a later message committed meanwhile is not undone.
        self.exec(
            "INSERT INTO room_cursors (room_id, account_id, device_id, cursor) \
             SELECT room_id, account_id, $3, $4 FROM room_members \
             WHERE room_id = $1 AND account_id = $2 \
             ON CONFLICT (room_id, account_id, device_id) \
             DO UPDATE SET cursor = GREATEST(room_cursors.cursor, EXCLUDED.cursor)",
            &[&room_id, &account, &i64::from(device), &id],
        )?;
        Ok(AckOutcome::Room { sender_id })
    }

    fn put_link(
        &mut self,
        account: AccountId,
        link_id: &[u8; 16],
        message: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO links (account_id, link_id, message, expires_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, link_id) \
             DO UPDATE SET message = EXCLUDED.message, expires_at = EXCLUDED.expires_at",
            &[&account, &&link_id[..], &message, &to_i64(expires_at)],
        )?;
        Ok(())
    }

    fn take_link(
        &mut self,
        account: AccountId,
        link_id: &[u8; 16],
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.row(
            "DELETE FROM links WHERE account_id = $1 AND link_id = $2 AND expires_at > $3 \
             RETURNING message",
            &[&account, &&link_id[..], &to_i64(now)],
        )?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(Into::into)
    }

    fn add_receipt(
        &mut self,
        sender: AccountId,
        server_id: u64,
        recipient: &str,
        device: u32,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO receipts (sender_id, server_id, recipient, device_id, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &sender,
                &to_i64(server_id),
                &recipient,
                &i64::from(device),
                &to_i64(expires_at),
            ],
        )?;
        Ok(())
    }

    fn has_kept(&mut self, account: AccountId) -> Result<bool, StoreError> {
        Ok(self
            .row(
                "SELECT EXISTS (SELECT 1 FROM receipts WHERE sender_id = $1) \
                 OR EXISTS (SELECT 1 FROM room_events WHERE account_id = $1)",
                &[&account],
            )?
            .ok_or(StoreError::Corrupt("EXISTS returned no row"))?
            .try_get(0)?)
    }

    fn take_receipts(&mut self, sender: AccountId) -> Result<Vec<Receipt>, StoreError> {
        let rows = self.rows(
            "DELETE FROM receipts WHERE sender_id = $1 RETURNING id, server_id, recipient, device_id",
            &[&sender],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push((
                r.try_get::<_, i64>(0)?,
                to_u64(r.try_get(1)?),
                r.try_get::<_, String>(2)?,
                u32::try_from(r.try_get::<_, i64>(3)?)
                    .map_err(|_| StoreError::Corrupt("device id"))?,
            ));
        }
        out.sort_by_key(|(id, _, _, _)| *id);
        Ok(out
            .into_iter()
            .map(|(_, server_id, recipient, device)| Receipt {
                server_id,
                recipient,
                device,
            })
            .collect())
    }

    fn add_room_event(
        &mut self,
        account: AccountId,
        event: &RoomEvent,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO room_events (account_id, room, username, change, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &account,
                &event.room,
                &event.username,
                &change_code(event.change),
                &to_i64(expires_at),
            ],
        )?;
        Ok(())
    }

    fn take_room_events(&mut self, account: AccountId) -> Result<Vec<RoomEvent>, StoreError> {
        let rows = self.rows(
            "DELETE FROM room_events WHERE account_id = $1 RETURNING id, room, username, change",
            &[&account],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let code: i16 = r.try_get(3)?;
            let Some(change) = change_from_code(code) else {
                tracing::warn!(code, "skipping a kept room change of unknown kind");
                continue;
            };
            out.push((
                r.try_get::<_, i64>(0)?,
                RoomEvent {
                    room: r.try_get(1)?,
                    username: r.try_get(2)?,
                    change,
                },
            ));
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }

    fn sweep(&mut self, now: u64) -> Result<usize, StoreError> {
        let now = to_i64(now);
        let mut n = self.exec("DELETE FROM messages WHERE expires_at <= $1", &[&now])?;
        // Room messages every active device of every member but the sending one has moved past
        // are no longer needed by anyone (a device without a row of its own is at its member's
        // cursor).
        n += self.exec(
            "DELETE FROM messages WHERE room_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM room_members rm \
              JOIN devices d ON d.account_id = rm.account_id AND d.revoked_at IS NULL \
              LEFT JOIN room_cursors rc ON rc.room_id = rm.room_id \
                AND rc.account_id = rm.account_id AND rc.device_id = d.device_id \
              WHERE rm.room_id = messages.room_id \
              AND NOT (rm.account_id = messages.sender_id AND d.device_id = messages.sender_device) \
              AND COALESCE(rc.cursor, rm.cursor) < messages.id)",
            &[],
        )?;
        self.exec("DELETE FROM receipts WHERE expires_at <= $1", &[&now])?;
        self.exec("DELETE FROM room_events WHERE expires_at <= $1", &[&now])?;
        self.exec("DELETE FROM links WHERE expires_at <= $1", &[&now])?;
        self.exec("DELETE FROM sessions WHERE expires_at <= $1", &[&now])?;
        // Failed logins older than an hour no longer count (auth::LoginLedger).
        self.exec(
            "DELETE FROM login_failures WHERE at <= $1",
            &[&now.saturating_sub(3600)],
        )?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// The stored form of a [`RoomChange`] (as in SQLite).
fn change_code(change: RoomChange) -> i16 {
    match change {
        RoomChange::Joined => 0,
        RoomChange::Left => 1,
        RoomChange::Removed => 2,
        RoomChange::Invited => 3,
        RoomChange::Roster => 4,
    }
}

/// A [`RoomChange`] from its stored form.
fn change_from_code(code: i16) -> Option<RoomChange> {
    match code {
        0 => Some(RoomChange::Joined),
        1 => Some(RoomChange::Left),
        2 => Some(RoomChange::Removed),
        3 => Some(RoomChange::Invited),
        4 => Some(RoomChange::Roster),
        _ => None,
    }
}

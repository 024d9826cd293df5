//! Queued ciphertext, receipts and kept membership changes in SQLite.

use proto_core::RoomChange;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, to_i64, to_u64};
use crate::store::{
    AccountId, AckOutcome, NewMessage, QueueStore, Receipt, RoomEvent, RoomId, StoreError,
    StoredMessage,
};

impl QueueStore for SqliteStore {
    fn pending_direct_count(&mut self, recipient: AccountId) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM messages WHERE recipient_id = ?1")?
            .query_row([recipient], |r| r.get(0))?;
        Ok(to_u64(n))
    }

    fn pending_direct_count_from(
        &mut self,
        recipient: AccountId,
        sender: AccountId,
    ) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM messages WHERE recipient_id = ?1 AND sender_id = ?2",
            )?
            .query_row([recipient, sender], |r| r.get(0))?;
        Ok(to_u64(n))
    }

    fn pending_room_count(&mut self, room: RoomId) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM messages WHERE room_id = ?1")?
            .query_row([room], |r| r.get(0))?;
        Ok(to_u64(n))
    }

    fn insert_message(&mut self, m: &NewMessage) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO messages (recipient_id, room_id, sender_id, sender, sent_at, expires_at, \
                 body, sender_device) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                m.recipient,
                m.room,
                m.sender_id,
                m.sender,
                to_i64(m.sent_at),
                to_i64(m.expires_at),
                m.body,
                m.sender_device
            ])?;
        let id = self.conn.last_insert_rowid();
        if let Some(recipient) = m.recipient {
            let mut stmt = self.conn.prepare_cached(
                "INSERT INTO message_copies (message_id, account_id, device_id, body) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (device, body) in &m.copies {
                stmt.execute(params![id, recipient, device, body])?;
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
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.id, m.sender, NULL, m.sent_at, c.body, m.sender_device FROM message_copies c \
               JOIN messages m ON m.id = c.message_id \
               WHERE c.account_id = ?1 AND c.device_id = ?5 AND c.message_id > ?2 \
               AND m.expires_at > ?3 \
             UNION ALL \
             SELECT m.id, m.sender, r.name, m.sent_at, m.body, m.sender_device FROM room_members rm \
               JOIN rooms r ON r.id = rm.room_id \
               LEFT JOIN room_cursors rc ON rc.room_id = rm.room_id \
                 AND rc.account_id = rm.account_id AND rc.device_id = ?5 \
               JOIN messages m ON m.room_id = rm.room_id \
                 AND m.id > COALESCE(rc.cursor, rm.cursor) \
               WHERE rm.account_id = ?1 AND m.id > ?2 AND m.expires_at > ?3 \
               AND NOT (m.sender_id = ?1 AND m.sender_device = ?5) \
             ORDER BY 1 LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                account,
                to_i64(after),
                to_i64(now),
                i64::try_from(limit).unwrap_or(i64::MAX),
                device
            ],
            |r| {
                Ok(StoredMessage {
                    id: to_u64(r.get(0)?),
                    sender: r.get(1)?,
                    room: r.get(2)?,
                    sent_at: to_u64(r.get(3)?),
                    body: r.get(4)?,
                    sender_device: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                })
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    fn ack(
        &mut self,
        account: AccountId,
        device: u32,
        server_id: u64,
    ) -> Result<AckOutcome, StoreError> {
        let id = to_i64(server_id);
        let copy = self
            .conn
            .prepare_cached(
                "DELETE FROM message_copies WHERE account_id = ?2 AND device_id = ?3 \
                 AND message_id = ?1",
            )?
            .execute(params![id, account, device])?;
        if copy > 0 {
            let sender_id = self
                .conn
                .prepare_cached("SELECT sender_id FROM messages WHERE id = ?1")?
                .query_row([id], |r| r.get::<_, i64>(0))
                .optional()?;
            // The last copy acknowledged: the message is done.
            self.conn
                .prepare_cached(
                    "DELETE FROM messages WHERE id = ?1 AND NOT EXISTS \
                     (SELECT 1 FROM message_copies WHERE message_id = ?1)",
                )?
                .execute([id])?;
            return Ok(match sender_id {
                Some(sender_id) => AckOutcome::Direct { sender_id },
                None => AckOutcome::Unknown,
            });
        }
        let room = self
            .conn
            .prepare_cached(
                "SELECT m.room_id, m.sender_id FROM messages m JOIN room_members rm \
                 ON rm.room_id = m.room_id AND rm.account_id = ?2 \
                 LEFT JOIN room_cursors rc ON rc.room_id = m.room_id \
                   AND rc.account_id = ?2 AND rc.device_id = ?3 \
                 WHERE m.id = ?1 AND m.id > COALESCE(rc.cursor, rm.cursor)",
            )?
            .query_row(params![id, account, device], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?;
        let Some((room_id, sender_id)) = room else {
            return Ok(AckOutcome::Unknown);
        };
        // This device's cursor only: the member's other devices still have it to receive.
        self.conn
            .prepare_cached(
                "INSERT INTO room_cursors (room_id, account_id, device_id, cursor) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (room_id, account_id, device_id) \
                 DO UPDATE SET cursor = MAX(cursor, excluded.cursor)",
            )?
            .execute(params![room_id, account, device, id])?;
        Ok(AckOutcome::Room { sender_id })
    }

    fn put_link(
        &mut self,
        account: AccountId,
        link_id: &[u8; 16],
        message: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO links (account_id, link_id, message, expires_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![account, &link_id[..], message, to_i64(expires_at)])?;
        Ok(())
    }

    fn take_link(
        &mut self,
        account: AccountId,
        link_id: &[u8; 16],
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "DELETE FROM links WHERE account_id = ?1 AND link_id = ?2 AND expires_at > ?3 \
                 RETURNING message",
            )?
            .query_row(params![account, &link_id[..], to_i64(now)], |r| r.get(0))
            .optional()?)
    }

    fn add_receipt(
        &mut self,
        sender: AccountId,
        server_id: u64,
        recipient: &str,
        device: u32,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT INTO receipts (sender_id, server_id, recipient, device_id, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![sender, to_i64(server_id), recipient, device, to_i64(expires_at)])?;
        Ok(())
    }

    fn has_kept(&mut self, account: AccountId) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM receipts WHERE sender_id = ?1) \
                 OR EXISTS (SELECT 1 FROM room_events WHERE account_id = ?1)",
            )?
            .query_row([account], |r| r.get(0))?)
    }

    fn take_receipts(&mut self, sender: AccountId) -> Result<Vec<Receipt>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "DELETE FROM receipts WHERE sender_id = ?1 RETURNING id, server_id, recipient, device_id",
        )?;
        let rows = stmt.query_map([sender], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                to_u64(r.get(1)?),
                r.get::<_, String>(2)?,
                r.get::<_, u32>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
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
        self.conn
            .prepare_cached(
                "INSERT INTO room_events (account_id, room, username, change, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                account,
                event.room,
                event.username,
                change_code(event.change),
                to_i64(expires_at)
            ])?;
        Ok(())
    }

    fn take_room_events(&mut self, account: AccountId) -> Result<Vec<RoomEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "DELETE FROM room_events WHERE account_id = ?1 RETURNING id, room, username, change",
        )?;
        let rows = stmt.query_map([account], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u8>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, room, username, code) = row?;
            let Some(change) = change_from_code(code) else {
                tracing::warn!(code, "skipping a kept room change of unknown kind");
                continue;
            };
            out.push((
                id,
                RoomEvent {
                    room,
                    username,
                    change,
                },
            ));
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }

    fn sweep(&mut self, now: u64) -> Result<usize, StoreError> {
        let now = to_i64(now);
        let mut n = self
            .conn
            .prepare_cached("DELETE FROM messages WHERE expires_at <= ?1")?
            .execute([now])?;
        // Room messages every active device of every member but the sending one has moved past
        // are no longer needed by anyone (a device without a row of its own is at its member's
        // cursor).
        n += self
            .conn
            .prepare_cached(
                "DELETE FROM messages WHERE room_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM room_members rm \
              JOIN devices d ON d.account_id = rm.account_id AND d.revoked_at IS NULL \
              LEFT JOIN room_cursors rc ON rc.room_id = rm.room_id \
                AND rc.account_id = rm.account_id AND rc.device_id = d.device_id \
              WHERE rm.room_id = messages.room_id \
              AND NOT (rm.account_id = messages.sender_id AND d.device_id = messages.sender_device) \
              AND COALESCE(rc.cursor, rm.cursor) < messages.id)",
            )?
            .execute([])?;
        self.conn
            .prepare_cached("DELETE FROM receipts WHERE expires_at <= ?1")?
            .execute([now])?;
        self.conn
            .prepare_cached("DELETE FROM room_events WHERE expires_at <= ?1")?
            .execute([now])?;
        self.conn
            .prepare_cached("DELETE FROM links WHERE expires_at <= ?1")?
            .execute([now])?;
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
            .execute([now])?;
        Ok(n)
    }
}

/// The stored form of a [`RoomChange`].
fn change_code(change: RoomChange) -> u8 {
    match change {
        RoomChange::Joined => 0,
        RoomChange::Left => 1,
        RoomChange::Removed => 2,
        RoomChange::Invited => 3,
        RoomChange::Roster => 4,
    }
}

/// A [`RoomChange`] from its stored form.
fn change_from_code(code: u8) -> Option<RoomChange> {
    match code {
        0 => Some(RoomChange::Joined),
        1 => Some(RoomChange::Left),
        2 => Some(RoomChange::Removed),
        3 => Some(RoomChange::Invited),
        4 => Some(RoomChange::Roster),
        _ => None,
    }
}

//! Queued ciphertext, receipts and kept membership changes in memory.

use std::collections::BTreeMap;

use super::{MemoryStore, Msg};
use crate::store::{
    AccountId, AckOutcome, NewMessage, QueueStore, Receipt, RoomEvent, RoomId, StoreError,
    StoredMessage,
};

impl QueueStore for MemoryStore {
    fn pending_direct_count(&mut self, recipient: AccountId) -> Result<u64, StoreError> {
        Ok(self
            .messages
            .values()
            .filter(|m| m.recipient == Some(recipient))
            .count() as u64)
    }

    fn pending_direct_count_from(
        &mut self,
        recipient: AccountId,
        sender: AccountId,
    ) -> Result<u64, StoreError> {
        Ok(self
            .messages
            .values()
            .filter(|m| m.recipient == Some(recipient) && m.sender_id == sender)
            .count() as u64)
    }

    fn pending_room_count(&mut self, room: RoomId) -> Result<u64, StoreError> {
        Ok(self
            .messages
            .values()
            .filter(|m| m.room == Some(room))
            .count() as u64)
    }

    fn insert_message(&mut self, m: &NewMessage) -> Result<u64, StoreError> {
        self.next_message += 1;
        let id = self.next_message;
        self.messages.insert(
            id,
            Msg {
                recipient: m.recipient,
                room: m.room,
                sender_id: m.sender_id,
                sender: m.sender.clone(),
                sent_at: m.sent_at,
                expires_at: m.expires_at,
                body: m.body.clone(),
                sender_device: m.sender_device,
                copies: if m.recipient.is_some() {
                    m.copies.iter().cloned().collect()
                } else {
                    BTreeMap::new()
                },
            },
        );
        Ok(id)
    }

    fn pending_for(
        &mut self,
        account: AccountId,
        device: u32,
        after: u64,
        now: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut out = Vec::new();
        for (id, m) in self.messages.range(after.saturating_add(1)..) {
            if out.len() >= limit {
                break;
            }
            if m.expires_at <= now {
                continue;
            }
            let (room_name, body) = match m.room.and_then(|r| self.rooms.get(&r)) {
                Some(room) => match room.device_cursor(account, device) {
                    Some(c)
                        if *id > c && !(m.sender_id == account && m.sender_device == device) =>
                    {
                        (Some(room.name.clone()), m.body.clone())
                    }
                    _ => continue,
                },
                None if m.recipient == Some(account) => match m.copies.get(&device) {
                    Some(body) => (None, body.clone()),
                    None => continue,
                },
                None => continue,
            };
            out.push(StoredMessage {
                id: *id,
                sender: m.sender.clone(),
                room: room_name,
                sent_at: m.sent_at,
                body,
                sender_device: m.sender_device,
            });
        }
        Ok(out)
    }

    fn ack(
        &mut self,
        account: AccountId,
        device: u32,
        server_id: u64,
    ) -> Result<AckOutcome, StoreError> {
        let Some(m) = self.messages.get_mut(&server_id) else {
            return Ok(AckOutcome::Unknown);
        };
        if m.recipient == Some(account) && m.copies.remove(&device).is_some() {
            let sender_id = m.sender_id;
            // The last copy acknowledged: the message is done.
            if m.copies.is_empty() {
                self.messages.remove(&server_id);
            }
            return Ok(AckOutcome::Direct { sender_id });
        }
        let sender_id = m.sender_id;
        if let Some(room) = m.room.and_then(|r| self.rooms.get_mut(&r))
            && let Some(cursor) = room.device_cursor(account, device)
            && server_id > cursor
        {
            // This device's cursor only: the member's other devices still have it to receive.
            room.device_cursors.insert((account, device), server_id);
            return Ok(AckOutcome::Room { sender_id });
        }
        Ok(AckOutcome::Unknown)
    }

    fn put_link(
        &mut self,
        account: AccountId,
        link_id: &[u8; 16],
        message: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.links
            .insert((account, *link_id), (message.to_vec(), expires_at));
        Ok(())
    }

    fn take_link(
        &mut self,
        account: AccountId,
        link_id: &[u8; 16],
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = (account, *link_id);
        if self.links.get(&key).is_none_or(|(_, exp)| *exp <= now) {
            return Ok(None);
        }
        Ok(self.links.remove(&key).map(|(message, _)| message))
    }

    fn add_receipt(
        &mut self,
        sender: AccountId,
        server_id: u64,
        recipient: &str,
        device: u32,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let receipt = Receipt {
            server_id,
            recipient: recipient.to_owned(),
            device,
        };
        self.receipts.push((sender, receipt, expires_at));
        Ok(())
    }

    fn has_kept(&mut self, account: AccountId) -> Result<bool, StoreError> {
        Ok(self.receipts.iter().any(|(s, _, _)| *s == account)
            || self.room_events.iter().any(|(a, _, _)| *a == account))
    }

    fn take_receipts(&mut self, sender: AccountId) -> Result<Vec<Receipt>, StoreError> {
        let mut out = Vec::new();
        self.receipts.retain(|(s, r, _)| {
            if *s == sender {
                out.push(r.clone());
                false
            } else {
                true
            }
        });
        Ok(out)
    }

    fn add_room_event(
        &mut self,
        account: AccountId,
        event: &RoomEvent,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.room_events.push((account, event.clone(), expires_at));
        Ok(())
    }

    fn take_room_events(&mut self, account: AccountId) -> Result<Vec<RoomEvent>, StoreError> {
        let mut out = Vec::new();
        self.room_events.retain(|(a, e, _)| {
            if *a == account {
                out.push(e.clone());
                false
            } else {
                true
            }
        });
        Ok(out)
    }

    fn sweep(&mut self, now: u64) -> Result<usize, StoreError> {
        let before = self.messages.len();
        let rooms = &self.rooms;
        let devices = &self.devices;
        // A room message is kept while an active device of a member, other than the sending
        // device, has not moved past it (a device without a cursor of its own is at its
        // member's cursor).
        self.messages.retain(|id, m| {
            if m.expires_at <= now {
                return false;
            }
            match m.room.and_then(|r| rooms.get(&r)) {
                Some(room) => room.members.iter().any(|(a, c)| {
                    devices.get(a).is_some_and(|ds| {
                        ds.iter()
                            .filter(|d| d.revoked_at.is_none())
                            .filter(|d| !(*a == m.sender_id && d.device_id == m.sender_device))
                            .any(|d| room.device_cursors.get(&(*a, d.device_id)).unwrap_or(c) < id)
                    })
                }),
                None => m.room.is_none(),
            }
        });
        self.receipts.retain(|(_, _, exp)| *exp > now);
        self.room_events.retain(|(_, _, exp)| *exp > now);
        self.links.retain(|_, (_, exp)| *exp > now);
        self.sessions.retain(|_, (_, exp, _)| *exp > now);
        Ok(before - self.messages.len())
    }
}

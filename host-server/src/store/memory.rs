//! An in-memory [`Store`] for logic tests: the same behaviour as SQLite, nothing durable.
//!
//! Every method checks before it mutates, so a failing job leaves nothing half done and the
//! job/batch calls have nothing to undo.

use std::collections::{BTreeMap, HashMap};

use super::{
    Account, AccountId, AckOutcome, NewAccount, NewMessage, RoomEvent, RoomId, RoomInfo, Store,
    StoreError, StoredBundle, StoredMessage,
};

#[derive(Debug, Clone)]
struct Msg {
    recipient: Option<AccountId>,
    room: Option<RoomId>,
    sender_id: AccountId,
    sender: String,
    sent_at: u64,
    expires_at: u64,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Room {
    name: String,
    admin: AccountId,
    /// `(account, cursor)` in joining order.
    members: Vec<(AccountId, u64)>,
}

/// In-memory [`Store`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    accounts: BTreeMap<AccountId, Account>,
    recovery: HashMap<AccountId, Vec<[u8; 32]>>,
    sessions: HashMap<[u8; 32], (AccountId, u64)>,
    prekeys: HashMap<AccountId, BTreeMap<u32, [u8; 32]>>,
    messages: BTreeMap<u64, Msg>,
    receipts: Vec<(AccountId, u64, String, u64)>,
    room_events: Vec<(AccountId, RoomEvent, u64)>,
    rooms: BTreeMap<RoomId, Room>,
    next_account: AccountId,
    next_message: u64,
    next_room: RoomId,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn room_by_name(&self, name: &str) -> Option<(RoomId, &Room)> {
        self.rooms
            .iter()
            .find(|(_, r)| r.name == name)
            .map(|(id, r)| (*id, r))
    }
}

impl Store for MemoryStore {
    fn begin_batch(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn commit_batch(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn rollback_batch(&mut self) {}
    fn begin_job(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn end_job(&mut self, _ok: bool) -> Result<(), StoreError> {
        Ok(())
    }

    fn create_account(&mut self, a: &NewAccount) -> Result<AccountId, StoreError> {
        if self.accounts.values().any(|x| x.username == a.username) {
            return Err(StoreError::UsernameTaken);
        }
        self.next_account += 1;
        let id = self.next_account;
        self.accounts.insert(
            id,
            Account {
                id,
                username: a.username.clone(),
                password_phc: a.password_phc.clone(),
                totp_secret: a.totp_secret.clone(),
                confirmed: false,
                totp_last_step: None,
                identity_sig: a.identity_sig,
                identity_dh: a.identity_dh,
                spk: Some(a.spk),
                created_at: a.created_at,
            },
        );
        self.add_prekeys(id, &a.prekeys)?;
        Ok(id)
    }

    fn account_by_username(&mut self, username: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .accounts
            .values()
            .find(|a| a.username == username)
            .cloned())
    }

    fn account_by_id(&mut self, id: AccountId) -> Result<Option<Account>, StoreError> {
        Ok(self.accounts.get(&id).cloned())
    }

    fn confirm_account(&mut self, id: AccountId) -> Result<(), StoreError> {
        if let Some(a) = self.accounts.get_mut(&id) {
            a.confirmed = true;
        }
        Ok(())
    }

    fn delete_unconfirmed(
        &mut self,
        before: u64,
        only: Option<AccountId>,
    ) -> Result<usize, StoreError> {
        let doomed: Vec<AccountId> = self
            .accounts
            .values()
            .filter(|a| !a.confirmed && only.map_or(a.created_at < before, |id| id == a.id))
            .map(|a| a.id)
            .collect();
        for id in &doomed {
            self.accounts.remove(id);
            self.prekeys.remove(id);
            self.recovery.remove(id);
        }
        Ok(doomed.len())
    }

    fn accept_totp_step(&mut self, id: AccountId, step: u64) -> Result<bool, StoreError> {
        let Some(a) = self.accounts.get_mut(&id) else {
            return Ok(false);
        };
        if a.totp_last_step.is_some_and(|last| last >= step) {
            return Ok(false);
        }
        a.totp_last_step = Some(step);
        Ok(true)
    }

    fn set_recovery_codes(&mut self, id: AccountId, hashes: &[[u8; 32]]) -> Result<(), StoreError> {
        self.recovery.insert(id, hashes.to_vec());
        Ok(())
    }

    fn consume_recovery_code(
        &mut self,
        id: AccountId,
        hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        let Some(codes) = self.recovery.get_mut(&id) else {
            return Ok(false);
        };
        let before = codes.len();
        codes.retain(|c| c != hash);
        Ok(codes.len() != before)
    }

    fn create_session(
        &mut self,
        id: AccountId,
        token_hash: &[u8; 32],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.sessions.insert(*token_hash, (id, expires_at));
        Ok(())
    }

    fn session(
        &mut self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> Result<Option<(AccountId, u64)>, StoreError> {
        Ok(self
            .sessions
            .get(token_hash)
            .copied()
            .filter(|(_, exp)| *exp > now))
    }

    fn revoke_session(&mut self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.sessions.remove(token_hash);
        Ok(())
    }

    fn set_identity(
        &mut self,
        id: AccountId,
        identity_sig: &[u8; 32],
        identity_dh: &[u8; 32],
    ) -> Result<(), StoreError> {
        if let Some(a) = self.accounts.get_mut(&id) {
            a.identity_sig = *identity_sig;
            a.identity_dh = *identity_dh;
            a.spk = None;
        }
        self.prekeys.remove(&id);
        Ok(())
    }

    fn set_signed_prekey(
        &mut self,
        id: AccountId,
        spk: &super::StoredSpk,
    ) -> Result<(), StoreError> {
        if let Some(a) = self.accounts.get_mut(&id) {
            a.spk = Some(*spk);
        }
        Ok(())
    }

    fn count_prekeys(&mut self, id: AccountId) -> Result<u32, StoreError> {
        Ok(self
            .prekeys
            .get(&id)
            .map_or(0, |p| u32::try_from(p.len()).unwrap_or(u32::MAX)))
    }

    fn add_prekeys(
        &mut self,
        id: AccountId,
        prekeys: &[(u32, [u8; 32])],
    ) -> Result<(), StoreError> {
        let held = self.prekeys.entry(id).or_default();
        for (pid, key) in prekeys {
            held.insert(*pid, *key);
        }
        Ok(())
    }

    fn take_bundle(&mut self, username: &str) -> Result<Option<StoredBundle>, StoreError> {
        let Some(a) = self
            .accounts
            .values()
            .find(|a| a.username == username && a.confirmed)
            .cloned()
        else {
            return Ok(None);
        };
        let Some(spk) = a.spk else {
            return Ok(None);
        };
        let held = self.prekeys.entry(a.id).or_default();
        let prekey = held.pop_first();
        let remaining = u32::try_from(held.len()).unwrap_or(u32::MAX);
        Ok(Some(StoredBundle {
            owner: a.id,
            username: a.username,
            identity_sig: a.identity_sig,
            identity_dh: a.identity_dh,
            spk,
            prekey,
            remaining,
        }))
    }

    fn pending_direct_count(&mut self, recipient: AccountId) -> Result<u64, StoreError> {
        Ok(self
            .messages
            .values()
            .filter(|m| m.recipient == Some(recipient))
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
            },
        );
        Ok(id)
    }

    fn pending_for(
        &mut self,
        account: AccountId,
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
            let room_name = match m.room.and_then(|r| self.rooms.get(&r)) {
                Some(room) => {
                    let cursor = room
                        .members
                        .iter()
                        .find(|(a, _)| *a == account)
                        .map(|(_, c)| *c);
                    match cursor {
                        Some(c) if *id > c && m.sender_id != account => Some(room.name.clone()),
                        _ => continue,
                    }
                }
                None if m.recipient == Some(account) => None,
                None => continue,
            };
            out.push(StoredMessage {
                id: *id,
                sender: m.sender.clone(),
                room: room_name,
                sent_at: m.sent_at,
                body: m.body.clone(),
            });
        }
        Ok(out)
    }

    fn ack(&mut self, account: AccountId, server_id: u64) -> Result<AckOutcome, StoreError> {
        let Some(m) = self.messages.get(&server_id) else {
            return Ok(AckOutcome::Unknown);
        };
        if m.recipient == Some(account) {
            let sender_id = m.sender_id;
            self.messages.remove(&server_id);
            return Ok(AckOutcome::Direct { sender_id });
        }
        let sender_id = m.sender_id;
        if let Some(room) = m.room.and_then(|r| self.rooms.get_mut(&r))
            && let Some((_, cursor)) = room.members.iter_mut().find(|(a, _)| *a == account)
            && server_id > *cursor
        {
            *cursor = server_id;
            return Ok(AckOutcome::Room { sender_id });
        }
        Ok(AckOutcome::Unknown)
    }

    fn add_receipt(
        &mut self,
        sender: AccountId,
        server_id: u64,
        recipient: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.receipts
            .push((sender, server_id, recipient.to_owned(), expires_at));
        Ok(())
    }

    fn take_receipts(&mut self, sender: AccountId) -> Result<Vec<(u64, String)>, StoreError> {
        let mut out = Vec::new();
        self.receipts.retain(|(s, id, r, _)| {
            if *s == sender {
                out.push((*id, r.clone()));
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
        self.messages.retain(|id, m| {
            if m.expires_at <= now {
                return false;
            }
            match m.room.and_then(|r| rooms.get(&r)) {
                Some(room) => room
                    .members
                    .iter()
                    .any(|(a, c)| *c < *id && *a != m.sender_id),
                None => m.room.is_none(),
            }
        });
        self.receipts.retain(|(_, _, _, exp)| *exp > now);
        self.room_events.retain(|(_, _, exp)| *exp > now);
        self.sessions.retain(|_, (_, exp)| *exp > now);
        Ok(before - self.messages.len())
    }

    fn create_room(&mut self, name: &str, admin: AccountId) -> Result<RoomId, StoreError> {
        if self.room_by_name(name).is_some() {
            return Err(StoreError::RoomTaken);
        }
        self.next_room += 1;
        let id = self.next_room;
        self.rooms.insert(
            id,
            Room {
                name: name.to_owned(),
                admin,
                members: Vec::new(),
            },
        );
        self.add_member(id, admin)?;
        Ok(id)
    }

    fn room(&mut self, name: &str) -> Result<Option<RoomInfo>, StoreError> {
        let Some((id, room)) = self.room_by_name(name) else {
            return Ok(None);
        };
        let members = room
            .members
            .iter()
            .filter_map(|(a, _)| self.accounts.get(a).map(|acc| (*a, acc.username.clone())))
            .collect();
        Ok(Some(RoomInfo {
            id,
            name: room.name.clone(),
            admin: room.admin,
            members,
        }))
    }

    fn add_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        let newest = self.next_message;
        if let Some(r) = self.rooms.get_mut(&room)
            && !r.members.iter().any(|(a, _)| *a == account)
        {
            r.members.push((account, newest));
        }
        Ok(())
    }

    fn remove_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.retain(|(a, _)| *a != account);
        }
        Ok(())
    }

    fn set_admin(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.admin = account;
        }
        Ok(())
    }

    fn delete_room(&mut self, room: RoomId) -> Result<(), StoreError> {
        self.rooms.remove(&room);
        self.messages.retain(|_, m| m.room != Some(room));
        Ok(())
    }

    fn rooms_of(&mut self, account: AccountId) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .rooms
            .values()
            .filter(|r| r.members.iter().any(|(a, _)| *a == account))
            .map(|r| r.name.clone())
            .collect();
        names.sort();
        Ok(names)
    }
}

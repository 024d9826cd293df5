//! An in-memory [`Store`] for logic tests: the same behaviour as SQLite, nothing durable.
//!
//! Every method checks before it mutates, so a failing job leaves nothing half done and the
//! job/batch calls have nothing to undo.

use std::collections::{BTreeMap, HashMap};

use proto_core::{KemPrekeyPublic, OneTimePrekey, SignedPrekey};

use super::{Account, AccountId, Receipt, RoomEvent, RoomId, Store, StoreError};

mod accounts;
mod keys;
mod queue;
mod rooms;

#[derive(Debug, Clone)]
pub(super) struct Msg {
    pub(super) recipient: Option<AccountId>,
    pub(super) room: Option<RoomId>,
    pub(super) sender_id: AccountId,
    pub(super) sender: String,
    pub(super) sent_at: u64,
    pub(super) expires_at: u64,
    /// A room message's ciphertext (a direct message's live in `copies`).
    pub(super) body: Vec<u8>,
    pub(super) sender_device: u32,
    /// A direct message's ciphertext per device of the recipient, each acknowledged on its own.
    pub(super) copies: BTreeMap<u32, Vec<u8>>,
}

#[derive(Debug, Clone)]
pub(super) struct Room {
    pub(super) name: String,
    pub(super) admin: AccountId,
    /// `(account, cursor)` in joining order. The cursor of each of the member's devices that
    /// has no entry in `device_cursors`; acknowledgements do not move it.
    pub(super) members: Vec<(AccountId, u64)>,
    /// Room cursors per `(member, device)`: the highest room message id the device has
    /// acknowledged, or where it started when it was added.
    pub(super) device_cursors: BTreeMap<(AccountId, u32), u64>,
    /// Pending invitations `(invitee, inviter, at)`, oldest first.
    pub(super) invited: Vec<(AccountId, AccountId, u64)>,
    /// The signed rosters, version `i` at index `i`.
    pub(super) rosters: Vec<Vec<u8>>,
}

/// In-memory [`Store`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub(super) accounts: BTreeMap<AccountId, Account>,
    pub(super) recovery: HashMap<AccountId, Vec<[u8; 32]>>,
    /// `token hash -> (account, expires at, device)`; no device while it links a new one.
    pub(super) sessions: HashMap<[u8; 32], (AccountId, u64, Option<u32>)>,
    /// One-time prekeys per `(account, device)`.
    pub(super) prekeys: HashMap<(AccountId, u32), BTreeMap<u32, OneTimePrekey>>,
    /// Signed prekeys per `(account, device)`, of active devices only.
    pub(super) spks: HashMap<(AccountId, u32), SignedPrekey>,
    /// One-time KEM prekeys per `(account, device)`, by id.
    pub(super) kem_prekeys: HashMap<(AccountId, u32), BTreeMap<u32, KemPrekeyPublic>>,
    /// Last-resort KEM prekeys per `(account, device)`, of active devices only.
    pub(super) kem_last_resort: HashMap<(AccountId, u32), KemPrekeyPublic>,
    /// Link messages per `(account, link id)`: `(message, expires at)`.
    pub(super) links: HashMap<(AccountId, [u8; 16]), (Vec<u8>, u64)>,
    pub(super) messages: BTreeMap<u64, Msg>,
    pub(super) receipts: Vec<(AccountId, Receipt, u64)>,
    pub(super) room_events: Vec<(AccountId, RoomEvent, u64)>,
    pub(super) rooms: BTreeMap<RoomId, Room>,
    pub(super) next_account: AccountId,
    pub(super) next_message: u64,
    pub(super) next_room: RoomId,
    pub(super) devices: HashMap<AccountId, Vec<crate::store::DeviceRecord>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn device_mut(
        &mut self,
        id: AccountId,
        device: u32,
    ) -> Option<&mut crate::store::DeviceRecord> {
        self.devices
            .get_mut(&id)?
            .iter_mut()
            .find(|d| d.device_id == device)
    }

    /// Whether the account has this device, not revoked.
    pub(super) fn is_active(&self, id: AccountId, device: u32) -> bool {
        self.devices.get(&id).is_some_and(|ds| {
            ds.iter()
                .any(|d| d.device_id == device && d.revoked_at.is_none())
        })
    }

    /// The next device id of an account: past every id it has had.
    pub(super) fn next_device_id(&self, id: AccountId) -> Result<u32, StoreError> {
        let Some(a) = self.accounts.get(&id) else {
            return Err(StoreError::Corrupt("no such account"));
        };
        let highest = self
            .devices
            .get(&id)
            .and_then(|ds| ds.iter().map(|d| d.device_id).max())
            .unwrap_or(0)
            .max(a.device_id);
        highest
            .checked_add(1)
            .ok_or(StoreError::Corrupt("device id"))
    }

    /// Drops everything the account holds: keys, sessions, queued direct messages, links.
    pub(super) fn drop_account_data(&mut self, id: AccountId) {
        self.devices.remove(&id);
        self.recovery.remove(&id);
        self.sessions.retain(|_, (account, _, _)| *account != id);
        self.prekeys.retain(|(account, _), _| *account != id);
        self.spks.retain(|(account, _), _| *account != id);
        self.kem_prekeys.retain(|(account, _), _| *account != id);
        self.kem_last_resort
            .retain(|(account, _), _| *account != id);
        self.links.retain(|(account, _), _| *account != id);
        self.messages.retain(|_, m| m.recipient != Some(id));
    }

    /// Starts a new device's cursor, in every room the account is in, past every message
    /// stored: it is not delivered what was sent before it was added.
    pub(super) fn start_room_cursors(&mut self, id: AccountId, device: u32) {
        let newest = self.next_message;
        for room in self.rooms.values_mut() {
            if let Some((_, cursor)) = room.members.iter().find(|(a, _)| *a == id) {
                let start = newest.max(*cursor);
                room.device_cursors.insert((id, device), start);
            }
        }
    }

    pub(super) fn room_by_name(&self, name: &str) -> Option<(RoomId, &Room)> {
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
}

impl Room {
    /// The room cursor of a member's device: its own, or the member's if it has none; `None`
    /// if the account is not a member.
    pub(super) fn device_cursor(&self, account: AccountId, device: u32) -> Option<u64> {
        let member = self
            .members
            .iter()
            .find(|(a, _)| *a == account)
            .map(|(_, c)| *c)?;
        Some(
            self.device_cursors
                .get(&(account, device))
                .copied()
                .unwrap_or(member),
        )
    }
}

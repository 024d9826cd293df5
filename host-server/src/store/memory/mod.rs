//! An in-memory [`Store`] for logic tests: the same behaviour as SQLite, nothing durable.
//!
//! Every method checks before it mutates, so a failing job leaves nothing half done and the
//! job/batch calls have nothing to undo.

use std::collections::{BTreeMap, HashMap};

use proto_core::OneTimePrekey;

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
    pub(super) body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(super) struct Room {
    pub(super) name: String,
    pub(super) admin: AccountId,
    /// `(account, cursor)` in joining order.
    pub(super) members: Vec<(AccountId, u64)>,
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
    pub(super) sessions: HashMap<[u8; 32], (AccountId, u64)>,
    pub(super) prekeys: HashMap<AccountId, BTreeMap<u32, OneTimePrekey>>,
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

//! Storage: the one narrow module that knows where accounts, keys and queued ciphertext live.
//!
//! [`Store`] is the whole storage surface, synchronous and small enough for a second backend
//! (PostgreSQL) to implement without touching the protocol. [`SqliteStore`] is the durable
//! embedded backend; `PgStore` the one several nodes share (only with the `postgres` feature,
//! on by default); [`MemoryStore`] serves logic tests. [`Db`] runs a store on a thread of its
//! own, off the async reactor, and commits many requests per transaction when they queue up
//! (group commit): a request's reply is released only after the transaction holding it is
//! durable.
//!
//! This module does not judge requests (permissions, quotas, validation): callers do that
//! inside the closure they pass to [`Db::call`], which runs atomically.

mod db;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;
mod types;

use proto_core::{KemPrekeyPublic, OneTimePrekey, SignedPrekey};

pub use db::Db;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PgLedger, PgStore, connect as pg_connect, create_database, drop_database};
pub use sqlite::SqliteStore;
pub use types::{
    Account, AckOutcome, DeviceRecord, Invitation, Member, NewAccount, NewMessage, Receipt,
    RoomEvent, RoomInfo, SessionInfo, StoredBundle, StoredKemBundle, StoredMessage,
};

/// An account's row id.
pub type AccountId = i64;
/// A room's row id.
pub type RoomId = i64;

/// Why a storage request failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The username is already registered.
    #[error("username is taken")]
    UsernameTaken,
    /// The room name is already used.
    #[error("room name is taken")]
    RoomTaken,
    /// The database failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL error: {}", postgres::with_causes(.0))]
    Postgres(#[from] ::postgres::Error),
    /// A stored value has the wrong shape (corruption or a bad migration).
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// The storage thread has stopped (shutdown).
    #[error("storage is shut down")]
    Closed,
    /// Opening the database failed.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// The transaction holding this request failed to commit; nothing of it was kept.
    #[error("commit failed: {0}")]
    Commit(String),
}

/// Everything the server stores: one transaction surface and the four concerns below it.
///
/// Calls between [`begin_job`](Store::begin_job) and [`end_job`](Store::end_job) form one
/// atomic unit; jobs between [`begin_batch`](Store::begin_batch) and
/// [`commit_batch`](Store::commit_batch) become durable together.
pub trait Store: AccountStore + KeyStore + QueueStore + RoomStore + Send {
    /// Starts a transaction holding several jobs.
    fn begin_batch(&mut self) -> Result<(), StoreError>;
    /// Makes the batch durable.
    fn commit_batch(&mut self) -> Result<(), StoreError>;
    /// Abandons the batch.
    fn rollback_batch(&mut self);
    /// Starts one job inside the batch.
    fn begin_job(&mut self) -> Result<(), StoreError>;
    /// Ends a job: keeps its writes if `ok`, undoes them otherwise.
    fn end_job(&mut self, ok: bool) -> Result<(), StoreError>;
    /// A second handle that sees only committed data, for reads that must not wait for the
    /// writer's commits ([`Db::read`]); `None` if the backend has no such thing (then reads
    /// queue behind the writes).
    fn open_reader(&self) -> Result<Option<Box<dyn QueueStore + Send>>, StoreError> {
        Ok(None)
    }
}

/// Accounts, their second factor and their sessions.
pub trait AccountStore {
    /// Creates an unconfirmed account with its device keys.
    fn create_account(&mut self, account: &NewAccount) -> Result<AccountId, StoreError>;
    /// Looks an account up by (case-folded) username.
    fn account_by_username(&mut self, username: &str) -> Result<Option<Account>, StoreError>;
    /// Looks an account up by id.
    fn account_by_id(&mut self, id: AccountId) -> Result<Option<Account>, StoreError>;
    /// Marks enrollment finished.
    fn confirm_account(&mut self, id: AccountId) -> Result<(), StoreError>;
    /// Deletes accounts never confirmed and created before `before` (and, if given, this one).
    fn delete_unconfirmed(
        &mut self,
        before: u64,
        only: Option<AccountId>,
    ) -> Result<usize, StoreError>;
    /// Records `step` as accepted if it is later than the last accepted one; `false` if not.
    fn accept_totp_step(&mut self, id: AccountId, step: u64) -> Result<bool, StoreError>;
    /// Replaces the account's recovery codes (hashes).
    fn set_recovery_codes(&mut self, id: AccountId, hashes: &[[u8; 32]]) -> Result<(), StoreError>;
    /// Deletes a recovery code; `true` if it existed.
    fn consume_recovery_code(&mut self, id: AccountId, hash: &[u8; 32])
    -> Result<bool, StoreError>;
    /// Stores a session token's hash for one of the account's devices (`None`: a session
    /// linking a new device).
    fn create_session(
        &mut self,
        id: AccountId,
        token_hash: &[u8; 32],
        expires_at: u64,
        device: Option<u32>,
    ) -> Result<(), StoreError>;
    /// Makes a session that device's (a linked device's session, once added; a start-over's,
    /// once it has its new device).
    fn set_session_device(&mut self, token_hash: &[u8; 32], device: u32) -> Result<(), StoreError>;
    /// The account and expiry of a live session.
    fn session(
        &mut self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> Result<Option<SessionInfo>, StoreError>;
    /// Revokes a session.
    fn revoke_session(&mut self, token_hash: &[u8; 32]) -> Result<(), StoreError>;
    /// Replaces the password hash (PHC string).
    fn set_password(&mut self, id: AccountId, password_phc: &str) -> Result<(), StoreError>;
    /// Revokes every session of the account except `keep` (if given); returns how many went.
    fn revoke_sessions(
        &mut self,
        id: AccountId,
        keep: Option<&[u8; 32]>,
    ) -> Result<usize, StoreError>;
    /// Replaces the TOTP secret, recording `step` (the one that confirmed the new secret) as
    /// the last accepted, so that code cannot be used again.
    fn set_totp_secret(
        &mut self,
        id: AccountId,
        secret: &[u8],
        step: u64,
    ) -> Result<(), StoreError>;
    /// How many unused recovery codes the account has.
    fn count_recovery_codes(&mut self, id: AccountId) -> Result<u32, StoreError>;
    /// Deletes a confirmed account and what is its own: sessions, recovery codes, keys,
    /// queued messages to it, receipts and room events kept for it, its invitations (given and
    /// received) and room memberships. Rooms it administers must be handed over (or deleted)
    /// by the caller first; messages it sent to others stay theirs.
    fn delete_account(&mut self, id: AccountId) -> Result<(), StoreError>;
}

/// The key directory: identity keys, signed and one-time prekeys, KEM prekeys (PQXDH).
pub trait KeyStore {
    /// Replaces the identity keys; every device's signed, one-time and KEM prekeys are dropped
    /// with them (the old identity signed them), and so are the direct messages queued for the
    /// account (encrypted to the old identity, nobody can read them any more) and pending link
    /// messages. Every device is revoked (at `now`) and the account gets one new device, the
    /// next id, which it returns: a sender still naming an old one is refused
    /// (`STALE_DEVICES`). The old devices' room cursors go; the new one's start, as
    /// [`add_device`](KeyStore::add_device)'s, past every message stored.
    fn set_identity(
        &mut self,
        id: AccountId,
        identity_sig: &[u8; 32],
        identity_dh: &[u8; 32],
        now: u64,
    ) -> Result<u32, StoreError>;
    /// The ids of the account's active devices, ascending.
    fn active_devices(&mut self, id: AccountId) -> Result<Vec<u32>, StoreError>;
    /// The active devices that can be written to (they published a signed prekey), ascending:
    /// what `FetchDevices` lists and a send must name. A device half added (linked, its prekey
    /// not yet published) or just made by a start-over is not one yet.
    fn reachable_devices(&mut self, id: AccountId) -> Result<Vec<u32>, StoreError>;
    /// Adds a device with the next id (never reused within the account) and returns it. Its
    /// cursor in each of the account's rooms starts past every message stored: it is not
    /// delivered what the rooms were sent before it was added.
    fn add_device(&mut self, id: AccountId, name: &str, now: u64) -> Result<u32, StoreError>;
    /// Revokes an active device at `now`: its sessions, signed, one-time and KEM prekeys, its
    /// copies of queued messages and its room cursors go (a direct message no device still
    /// holds goes with them; a room message only it was missing, at the next
    /// [`QueueStore::sweep`]). The primary device moves to the lowest active one if it was
    /// this one. `false` if the account has no such active device.
    fn revoke_device(&mut self, id: AccountId, device: u32, now: u64) -> Result<bool, StoreError>;
    /// The account's devices, the most recent first, at most `limit`.
    fn devices(&mut self, id: AccountId, limit: usize) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Names one of the account's devices.
    fn name_device(&mut self, id: AccountId, device: u32, name: &str) -> Result<(), StoreError>;
    /// Records that the device entered a session at `now`.
    fn touch_device(&mut self, id: AccountId, device: u32, now: u64) -> Result<(), StoreError>;
    /// Replaces a device's signed prekey.
    fn set_signed_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        spk: &SignedPrekey,
    ) -> Result<(), StoreError>;
    /// One-time prekeys held for a device.
    fn count_prekeys(&mut self, id: AccountId, device: u32) -> Result<u32, StoreError>;
    /// Adds one-time prekeys for a device (an id already held is replaced).
    fn add_prekeys(
        &mut self,
        id: AccountId,
        device: u32,
        prekeys: &[OneTimePrekey],
    ) -> Result<(), StoreError>;
    /// Takes a bundle of an active device of a confirmed account (`None`: the primary device),
    /// removing the one-time prekey it hands out. With `one_time` false, no one-time prekey is
    /// handed out (the owner's are being fetched faster than they should be).
    fn take_bundle(
        &mut self,
        username: &str,
        device: Option<u32>,
        one_time: bool,
    ) -> Result<Option<StoredBundle>, StoreError>;
    /// One-time KEM prekeys held for a device.
    fn count_kem_prekeys(&mut self, id: AccountId, device: u32) -> Result<u32, StoreError>;
    /// The ids of every KEM prekey held for a device, its one-time ones and its last-resort
    /// one, in no particular order (an upload must not reuse one).
    fn kem_prekey_ids(&mut self, id: AccountId, device: u32) -> Result<Vec<u32>, StoreError>;
    /// Adds one-time KEM prekeys for an active device (a one-time id already held is
    /// replaced; the caller keeps ids apart from the last-resort one's). Signatures are checked
    /// before they get here.
    fn add_kem_prekeys(
        &mut self,
        id: AccountId,
        device: u32,
        prekeys: &[KemPrekeyPublic],
    ) -> Result<(), StoreError>;
    /// Replaces an active device's last-resort KEM prekey.
    fn set_last_resort_kem_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        prekey: &KemPrekeyPublic,
    ) -> Result<(), StoreError>;
    /// Hands out one KEM prekey of a device: with `one_time`, its one-time one of the lowest
    /// id, removed as it is handed out; without, or when none is left, its last-resort one
    /// (which stays); `None` if it has neither. The caller has checked that the device is
    /// active (it took the device's bundle in the same job).
    fn take_kem_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        one_time: bool,
    ) -> Result<Option<KemPrekeyPublic>, StoreError>;

    /// Takes a post-quantum bundle (`FetchKemBundle`): the device's X3DH bundle exactly as
    /// [`take_bundle`](KeyStore::take_bundle) takes it and, in the same job, one of its KEM
    /// prekeys as [`take_kem_prekey`](KeyStore::take_kem_prekey) hands it out, at the same
    /// pace (`one_time`). `None` as `take_bundle`.
    fn take_kem_bundle(
        &mut self,
        username: &str,
        device: u32,
        one_time: bool,
    ) -> Result<Option<StoredKemBundle>, StoreError> {
        let Some(bundle) = self.take_bundle(username, Some(device), one_time)? else {
            return Ok(None);
        };
        let kem_prekey = self.take_kem_prekey(bundle.owner, bundle.device, one_time)?;
        let kem_remaining = self.count_kem_prekeys(bundle.owner, bundle.device)?;
        Ok(Some(StoredKemBundle {
            bundle,
            kem_prekey,
            kem_remaining,
        }))
    }
}

/// Store-and-forward: queued ciphertext, receipts and kept membership changes.
pub trait QueueStore {
    /// Direct messages queued for a recipient.
    fn pending_direct_count(&mut self, recipient: AccountId) -> Result<u64, StoreError>;
    /// Direct messages from `sender` queued for `recipient`.
    fn pending_direct_count_from(
        &mut self,
        recipient: AccountId,
        sender: AccountId,
    ) -> Result<u64, StoreError>;
    /// Room messages stored and not yet acknowledged by every member.
    fn pending_room_count(&mut self, room: RoomId) -> Result<u64, StoreError>;
    /// Queues a message; returns its server id.
    fn insert_message(&mut self, message: &NewMessage) -> Result<u64, StoreError>;
    /// A device's undelivered messages with an id after `after`, oldest first, at most
    /// `limit`: its copies of direct messages, and its account's room messages past the
    /// device's room cursor (its own, or, if it has none, the member's: the join point).
    fn pending_for(
        &mut self,
        account: AccountId,
        device: u32,
        after: u64,
        now: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// Acknowledges a message for a device of `account`: a direct message's copy for that
    /// device goes (the message with its last copy); a room message moves that device's room
    /// cursor only (the member's other devices still receive it). A message the device has
    /// already passed is [`AckOutcome::Unknown`].
    fn ack(
        &mut self,
        account: AccountId,
        device: u32,
        server_id: u64,
    ) -> Result<AckOutcome, StoreError>;
    /// Keeps a link message for the account's device being linked under `link_id` (one per
    /// link id: a second replaces the first) until `expires_at`.
    fn put_link(
        &mut self,
        account: AccountId,
        link_id: &[u8; 16],
        message: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError>;
    /// Takes (removes) the link message kept under `link_id`, if one has not expired.
    fn take_link(
        &mut self,
        account: AccountId,
        link_id: &[u8; 16],
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores a "delivered" receipt for an offline sender: `recipient`'s `device` acknowledged
    /// the message `server_id`.
    fn add_receipt(
        &mut self,
        sender: AccountId,
        server_id: u64,
        recipient: &str,
        device: u32,
        expires_at: u64,
    ) -> Result<(), StoreError>;
    /// Whether receipts or membership changes are kept for `account`.
    fn has_kept(&mut self, account: AccountId) -> Result<bool, StoreError>;
    /// Takes (removes) a sender's stored receipts, oldest first.
    fn take_receipts(&mut self, sender: AccountId) -> Result<Vec<Receipt>, StoreError>;
    /// Keeps a membership change for an offline member.
    fn add_room_event(
        &mut self,
        account: AccountId,
        event: &RoomEvent,
        expires_at: u64,
    ) -> Result<(), StoreError>;
    /// Takes (removes) an account's kept membership changes, oldest first.
    fn take_room_events(&mut self, account: AccountId) -> Result<Vec<RoomEvent>, StoreError>;
    /// Drops expired messages, receipts, room events, link messages and sessions, and room
    /// messages every active device of every member but the sender has passed; returns how
    /// many messages went.
    fn sweep(&mut self, now: u64) -> Result<usize, StoreError>;
}

/// Rooms and their members.
pub trait RoomStore {
    /// Creates a room with its admin as the only member.
    fn create_room(&mut self, name: &str, admin: AccountId) -> Result<RoomId, StoreError>;
    /// A room and its members.
    fn room(&mut self, name: &str) -> Result<Option<RoomInfo>, StoreError>;
    /// Adds a member whose cursor starts after every message already stored.
    fn add_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError>;
    /// Removes a member, with its devices' room cursors.
    fn remove_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError>;
    /// Makes `account` the room's admin.
    fn set_admin(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError>;
    /// Deletes a room and its messages.
    fn delete_room(&mut self, room: RoomId) -> Result<(), StoreError>;
    /// Names of the rooms an account is in, sorted.
    fn rooms_of(&mut self, account: AccountId) -> Result<Vec<String>, StoreError>;
    /// Records an invitation of `account` to `room` by `inviter`; `false` if one was pending.
    fn add_invitation(
        &mut self,
        room: RoomId,
        account: AccountId,
        inviter: AccountId,
        at: u64,
    ) -> Result<bool, StoreError>;
    /// Removes an invitation; `true` if there was one.
    fn remove_invitation(&mut self, room: RoomId, account: AccountId) -> Result<bool, StoreError>;
    /// The invitations waiting for `account`, oldest first.
    fn invitations_of(&mut self, account: AccountId) -> Result<Vec<Invitation>, StoreError>;
    /// The room's latest signed roster (PROTOCOL.md §4.7), byte for byte as published.
    fn latest_roster(&mut self, room: RoomId) -> Result<Option<Vec<u8>>, StoreError>;
    /// The room's signed roster at `version`.
    fn roster(&mut self, room: RoomId, version: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Appends `roster` as version `version` of the room's chain, only if that is the next one:
    /// 0 when none is stored, else the latest plus one. `false`, storing nothing, otherwise
    /// (another version was stored first): the chain never holds a version twice or a gap.
    /// The caller checks the roster itself. Deleting the room deletes its chain.
    fn append_roster(
        &mut self,
        room: RoomId,
        version: u64,
        roster: &[u8],
    ) -> Result<bool, StoreError>;
}

/// A KEM prekey from its stored columns (id, key, signature), which a backend wrote from a
/// valid one: anything else is corruption.
fn kem_prekey(id: i64, key: &[u8], signature: &[u8]) -> Result<KemPrekeyPublic, StoreError> {
    let id = u32::try_from(id).map_err(|_| StoreError::Corrupt("KEM prekey id"))?;
    let signature = <&[u8; 64]>::try_from(signature)
        .map_err(|_| StoreError::Corrupt("signature is not 64 bytes"))?;
    KemPrekeyPublic::from_parts(id, key, signature)
        .map_err(|_| StoreError::Corrupt("KEM key is not 1,184 bytes"))
}

#[cfg(test)]
mod tests;

//! Storage: the one narrow module that knows where accounts, keys and queued ciphertext live.
//!
//! [`Store`] is the whole storage surface, synchronous and small enough for a second backend
//! (PostgreSQL) to implement without touching the protocol. [`SqliteStore`] is the durable
//! backend; [`MemoryStore`] serves logic tests. [`Db`] runs a store on a thread of its own, off
//! the async reactor, and commits many requests per transaction when they queue up (group
//! commit): a request's reply is released only after the transaction holding it is durable.
//!
//! This module does not judge requests (permissions, quotas, validation): callers do that
//! inside the closure they pass to [`Db::call`], which runs atomically.

mod memory;
mod sqlite;

use core::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

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

/// A signed prekey as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredSpk {
    /// The device's id for it.
    pub id: u32,
    /// X25519 public key.
    pub key: [u8; 32],
    /// Ed25519 signature by the identity key.
    pub signature: [u8; 64],
}

/// A new account, not yet confirmed by a TOTP code.
#[derive(Clone, Debug)]
pub struct NewAccount {
    /// Case-folded username.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// PBKDF2 PHC string.
    pub password_phc: String,
    /// TOTP secret (160 bits).
    pub totp_secret: Vec<u8>,
    /// Ed25519 identity key.
    pub identity_sig: [u8; 32],
    /// X25519 identity key.
    pub identity_dh: [u8; 32],
    /// Signed prekey.
    pub spk: StoredSpk,
    /// One-time prekeys `(id, key)`.
    pub prekeys: Vec<(u32, [u8; 32])>,
    /// Unix seconds.
    pub created_at: u64,
}

/// An account as stored.
#[derive(Clone, Debug)]
pub struct Account {
    /// Row id.
    pub id: AccountId,
    /// Case-folded username.
    pub username: String,
    /// PBKDF2 PHC string.
    pub password_phc: String,
    /// TOTP secret.
    pub totp_secret: Vec<u8>,
    /// Whether enrollment finished.
    pub confirmed: bool,
    /// The last TOTP step accepted (replay guard).
    pub totp_last_step: Option<u64>,
    /// Ed25519 identity key.
    pub identity_sig: [u8; 32],
    /// X25519 identity key.
    pub identity_dh: [u8; 32],
    /// Current signed prekey, if any.
    pub spk: Option<StoredSpk>,
    /// Unix seconds.
    pub created_at: u64,
}

/// A prekey bundle taken from the directory (its one-time prekey, if any, is now gone).
#[derive(Clone, Debug)]
pub struct StoredBundle {
    /// Owner.
    pub owner: AccountId,
    /// Owner's username.
    pub username: String,
    /// Ed25519 identity key.
    pub identity_sig: [u8; 32],
    /// X25519 identity key.
    pub identity_dh: [u8; 32],
    /// Signed prekey.
    pub spk: StoredSpk,
    /// The one-time prekey handed out, if any were left.
    pub prekey: Option<(u32, [u8; 32])>,
    /// One-time prekeys left after this one.
    pub remaining: u32,
}

/// A message to queue.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Recipient, for a direct message.
    pub recipient: Option<AccountId>,
    /// Room, for a room message.
    pub room: Option<RoomId>,
    /// Sender's id.
    pub sender_id: AccountId,
    /// Sender's username.
    pub sender: String,
    /// Unix seconds.
    pub sent_at: u64,
    /// Unix seconds after which it is dropped undelivered.
    pub expires_at: u64,
    /// Ciphertext, opaque.
    pub body: Vec<u8>,
}

/// A queued message, as delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Server id; queue order.
    pub id: u64,
    /// Sender's username.
    pub sender: String,
    /// Room name, for a room message.
    pub room: Option<String>,
    /// Unix seconds.
    pub sent_at: u64,
    /// Ciphertext.
    pub body: Vec<u8>,
}

/// What an acknowledgement did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// A direct message was deleted.
    Direct {
        /// Who sent it.
        sender_id: AccountId,
    },
    /// The member's room cursor moved past a room message.
    Room {
        /// Who sent it.
        sender_id: AccountId,
    },
    /// Nothing of this user's has that id (already acknowledged, expired, or not theirs).
    Unknown,
}

/// A membership change kept for a member who was offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomEvent {
    /// Room name.
    pub room: String,
    /// Whose membership changed.
    pub username: String,
    /// 0 joined, 1 left, 2 removed.
    pub change: u8,
}

/// A room with its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    /// Row id.
    pub id: RoomId,
    /// Name.
    pub name: String,
    /// Admin's id.
    pub admin: AccountId,
    /// Members `(id, username)`, in joining order.
    pub members: Vec<(AccountId, String)>,
}

impl RoomInfo {
    /// Whether `account` is a member.
    pub fn has_member(&self, account: AccountId) -> bool {
        self.members.iter().any(|(id, _)| *id == account)
    }

    /// The admin's username.
    pub fn admin_name(&self) -> &str {
        self.members
            .iter()
            .find(|(id, _)| *id == self.admin)
            .map_or("", |(_, name)| name.as_str())
    }
}

/// Everything the server stores, as one narrow synchronous interface.
///
/// Calls between [`begin_job`](Store::begin_job) and [`end_job`](Store::end_job) form one
/// atomic unit; jobs between [`begin_batch`](Store::begin_batch) and
/// [`commit_batch`](Store::commit_batch) become durable together.
pub trait Store: Send {
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

    // ---- accounts ----
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

    // ---- sessions ----
    /// Stores a session token's hash.
    fn create_session(
        &mut self,
        id: AccountId,
        token_hash: &[u8; 32],
        expires_at: u64,
    ) -> Result<(), StoreError>;
    /// The account and expiry of a live session.
    fn session(
        &mut self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> Result<Option<(AccountId, u64)>, StoreError>;
    /// Revokes a session.
    fn revoke_session(&mut self, token_hash: &[u8; 32]) -> Result<(), StoreError>;

    // ---- key directory ----
    /// Replaces the identity keys; the old signed and one-time prekeys are dropped with them.
    fn set_identity(
        &mut self,
        id: AccountId,
        identity_sig: &[u8; 32],
        identity_dh: &[u8; 32],
    ) -> Result<(), StoreError>;
    /// Replaces the signed prekey.
    fn set_signed_prekey(&mut self, id: AccountId, spk: &StoredSpk) -> Result<(), StoreError>;
    /// One-time prekeys held for the account.
    fn count_prekeys(&mut self, id: AccountId) -> Result<u32, StoreError>;
    /// Adds one-time prekeys (an id already held is replaced).
    fn add_prekeys(&mut self, id: AccountId, prekeys: &[(u32, [u8; 32])])
    -> Result<(), StoreError>;
    /// Takes a bundle for a confirmed account, removing the one-time prekey it hands out.
    fn take_bundle(&mut self, username: &str) -> Result<Option<StoredBundle>, StoreError>;

    // ---- messages ----
    /// Direct messages queued for a recipient.
    fn pending_direct_count(&mut self, recipient: AccountId) -> Result<u64, StoreError>;
    /// Room messages stored and not yet acknowledged by every member.
    fn pending_room_count(&mut self, room: RoomId) -> Result<u64, StoreError>;
    /// Queues a message; returns its server id.
    fn insert_message(&mut self, message: &NewMessage) -> Result<u64, StoreError>;
    /// A user's undelivered messages with an id after `after`, oldest first, at most `limit`.
    fn pending_for(
        &mut self,
        account: AccountId,
        after: u64,
        now: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// Acknowledges a message for `account`.
    fn ack(&mut self, account: AccountId, server_id: u64) -> Result<AckOutcome, StoreError>;
    /// Stores a "delivered" receipt for an offline sender.
    fn add_receipt(
        &mut self,
        sender: AccountId,
        server_id: u64,
        recipient: &str,
        expires_at: u64,
    ) -> Result<(), StoreError>;
    /// Takes (removes) a sender's stored receipts `(server_id, recipient)`.
    fn take_receipts(&mut self, sender: AccountId) -> Result<Vec<(u64, String)>, StoreError>;
    /// Keeps a membership change for an offline member.
    fn add_room_event(
        &mut self,
        account: AccountId,
        event: &RoomEvent,
        expires_at: u64,
    ) -> Result<(), StoreError>;
    /// Takes (removes) an account's kept membership changes, oldest first.
    fn take_room_events(&mut self, account: AccountId) -> Result<Vec<RoomEvent>, StoreError>;
    /// Drops expired messages, receipts, room events and sessions, and room messages every member has
    /// acknowledged; returns how many messages went.
    fn sweep(&mut self, now: u64) -> Result<usize, StoreError>;

    // ---- rooms ----
    /// Creates a room with its admin as the only member.
    fn create_room(&mut self, name: &str, admin: AccountId) -> Result<RoomId, StoreError>;
    /// A room and its members.
    fn room(&mut self, name: &str) -> Result<Option<RoomInfo>, StoreError>;
    /// Adds a member whose cursor starts after every message already stored.
    fn add_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError>;
    /// Removes a member.
    fn remove_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError>;
    /// Makes `account` the room's admin.
    fn set_admin(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError>;
    /// Deletes a room and its messages.
    fn delete_room(&mut self, room: RoomId) -> Result<(), StoreError>;
    /// Names of the rooms an account is in, sorted.
    fn rooms_of(&mut self, account: AccountId) -> Result<Vec<String>, StoreError>;
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut dyn Store) -> Completion + Send>;

/// Most jobs in one transaction: bounds the latency of the first job in a busy batch.
const MAX_BATCH: usize = 256;

/// A store running on its own thread; async callers queue closures to it.
///
/// Jobs that queue while a transaction commits are taken together into the next one, so
/// under load one `fsync` covers many messages. Dropping every `Db` clone (or calling
/// [`Db::shutdown`]) lets the thread finish the queued jobs, commit, and stop.
#[derive(Clone)]
pub struct Db {
    jobs: smol::channel::Sender<Job>,
    thread: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

impl Db {
    /// Starts the storage thread.
    pub fn spawn<S: Store + 'static>(store: S) -> Result<Self, StoreError> {
        let (tx, rx) = smol::channel::unbounded::<Job>();
        let thread = std::thread::Builder::new()
            .name("sealroom-db".into())
            .spawn(move || run_jobs(store, rx))
            .map_err(|e| StoreError::Open(format!("cannot start the storage thread: {e}")))?;
        Ok(Self {
            jobs: tx,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// Runs `f` atomically on the store and returns its result once it is durable.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<R, StoreError> + Send + 'static,
    {
        let (done_tx, done_rx) = smol::channel::bounded::<Result<R, StoreError>>(1);
        let job: Job = Box::new(move |store: &mut dyn Store| {
            let result = match store.begin_job() {
                Ok(()) => {
                    let r = f(store);
                    match store.end_job(r.is_ok()) {
                        Ok(()) => r,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            Box::new(move |committed: Result<(), StoreError>| {
                let out = match committed {
                    Ok(()) => result,
                    Err(e) => Err(e),
                };
                // The caller may have gone (connection closed); nothing to do then.
                let _ = done_tx.try_send(out);
            })
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        done_rx.recv().await.map_err(|_| StoreError::Closed)?
    }

    /// Stops taking jobs, lets the thread commit what is queued, and waits for it.
    pub fn shutdown(&self) {
        self.jobs.close();
        let handle = match self.thread.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn run_jobs<S: Store>(mut store: S, rx: smol::channel::Receiver<Job>) {
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_BATCH);
    let (mut commits, mut jobs) = (0u64, 0u64);
    // recv_blocking fails only once the channel is closed *and* empty: queued jobs still run.
    while let Ok(first) = rx.recv_blocking() {
        if let Err(e) = store.begin_batch() {
            // Run the job on its own: its savepoint is then its own transaction, committed
            // (or not) by `end_job`, so its own result is the truth.
            tracing::error!(error = %e, "cannot begin a batch transaction");
            let c = first(&mut store);
            c(Ok(()));
            continue;
        }
        completions.push(first(&mut store));
        while completions.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => completions.push(job(&mut store)),
                Err(_) => break,
            }
        }
        commits += 1;
        jobs += completions.len() as u64;
        let outcome = store.commit_batch();
        match outcome {
            Ok(()) => {
                for c in completions.drain(..) {
                    c(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = completions.len(), "commit failed");
                store.rollback_batch();
                let text = e.to_string();
                for c in completions.drain(..) {
                    c(Err(StoreError::Commit(text.clone())));
                }
            }
        }
    }
    tracing::info!(
        commits,
        requests = jobs,
        per_commit = format!("{:.1}", jobs as f64 / commits.max(1) as f64),
        "storage thread stopped"
    );
}

#[cfg(test)]
mod tests;

//! Wake-ups between nodes: when a commit on one node leaves something for an account whose
//! connection is on another node, that node must learn at once.
//!
//! [`WakeBus`] is the whole interface: [`publish`](WakeBus::publish) an account id after a
//! commit, and receive [`Wake`]s through the callback the bus was started with. A wake-up
//! names the account (never content); the receiving node's delivery tasks then read the
//! store as they always do. So a lost wake-up can delay a message but never lose it: a bus
//! that may have missed some (a reconnect, a restart) reports [`Wake::Everyone`], and every
//! delivery task on the node reads its queue again; so does a periodic resync.
//!
//! `PgWakeBus` carries them over PostgreSQL's LISTEN/NOTIFY (only with the `postgres` feature,
//! on by default); a broker (NATS, say) could implement the same trait without touching
//! delivery.

#[cfg(feature = "postgres")]
mod postgres;

use core::fmt;

#[cfg(feature = "postgres")]
pub use postgres::PgWakeBus;

use crate::store::AccountId;

/// What a node hears from the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something new was committed for this account.
    Account(AccountId),
    /// Wake-ups may have been missed: every local delivery task should read its queue again.
    Everyone,
    /// The account's sessions were revoked on another node (password changed, account
    /// deleted): its live connections here end now.
    Revoked(AccountId),
    /// One device of the account was revoked on another node: that device's live connections
    /// here end now; the account's other devices stay connected.
    DeviceRevoked(AccountId, u32),
}

/// Tells other nodes that an account has something new.
pub trait WakeBus: Send + Sync + fmt::Debug {
    /// Announces, after the commit that made it true, that `account` has something new. Never
    /// blocks; a bus that cannot deliver it now retries or drops it (receivers resync).
    fn publish(&self, account: AccountId);
    /// Announces, after the commit that revoked them, that `account`'s sessions are gone:
    /// every other node ends the account's live connections.
    fn publish_revoked(&self, account: AccountId);
    /// Announces, after the commit that revoked it, that one device of `account` is gone:
    /// every other node ends that device's live connections.
    fn publish_device_revoked(&self, account: AccountId, device: u32);
}

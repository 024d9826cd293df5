//! Where failed logins and known addresses are counted (and, with several nodes, the pace of
//! one-time prekey hand-outs): [`MemoryLedger`] in this process (one
//! node; a restart forgets), or a database every node shares (`store::PgLedger`), so that a
//! guesser spreading attempts over the nodes behind one address meets the same limits.
//!
//! The rules (what counts against what, when a key is refused) are `Auth`'s and
//! [`ratelimit::verdict`](super::ratelimit::verdict)'s, written once; a ledger only keeps counts.

use core::fmt;
use core::net::IpAddr;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::lock;
use super::ratelimit::{Limiter, Policy, Rate, RetryAfter};

/// One failure count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter<'a> {
    /// An account name from one source address.
    Pair(&'a str, IpAddr),
    /// An account name from addresses it never logged in from.
    Stranger(&'a str),
    /// A source address, whatever the account.
    Address(IpAddr),
    /// Registrations from a source address.
    Registration(IpAddr),
}

impl Counter<'_> {
    /// The stored form: a kind and a key of bytes (an address never contains a space, so
    /// `address ␠ name` cannot be read two ways).
    pub fn stored(&self) -> (i16, Vec<u8>) {
        match self {
            Counter::Pair(name, addr) => (0, format!("{addr} {name}").into_bytes()),
            Counter::Stranger(name) => (1, name.as_bytes().to_vec()),
            Counter::Address(addr) => (2, addr.to_string().into_bytes()),
            Counter::Registration(addr) => (3, addr.to_string().into_bytes()),
        }
    }
}

/// The ledger could not be read or written (its database is unreachable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("login ledger: {0}")]
pub struct LedgerError(pub String);

/// Failed-login counts and known addresses, wherever they are kept.
///
/// Calls may block (a database round trip) when [`is_remote`](LoginLedger::is_remote) says so;
/// `Auth` then makes them off the reactor.
pub trait LoginLedger: Send + Sync + fmt::Debug {
    /// Whether calls go to another process (and so may block).
    fn is_remote(&self) -> bool;
    /// Whether `counter` may try at `now` under `policy`.
    fn check(
        &self,
        counter: Counter<'_>,
        policy: &Policy,
        now: u64,
    ) -> Result<Result<(), RetryAfter>, LedgerError>;
    /// Records a failure at `now` (at most `policy.max_per_hour` are kept per key).
    fn fail(&self, counter: Counter<'_>, policy: &Policy, now: u64) -> Result<(), LedgerError>;
    /// Takes back the latest failure (an attempt counted up front succeeded).
    fn forgive(&self, counter: Counter<'_>) -> Result<(), LedgerError>;
    /// Forgets every failure of the key.
    fn clear(&self, counter: Counter<'_>) -> Result<(), LedgerError>;
    /// Whether `username` logged in from `addr` before.
    fn is_known(&self, username: &str, addr: IpAddr) -> Result<bool, LedgerError>;
    /// Remembers `addr` as one `username` logs in from (the newest [`KNOWN_PER_ACCOUNT`]).
    fn add_known(&self, username: &str, addr: IpAddr) -> Result<(), LedgerError>;
    /// Takes a token from `owner`'s one-time-prekey hand-out bucket, if this ledger keeps one
    /// every node shares: `Some(true)` if one was left. `None` (the default) leaves the pace
    /// to this node's in-memory bucket.
    fn take_handout(
        &self,
        _owner: &str,
        _rate: &Rate,
        _now: u64,
    ) -> Result<Option<bool>, LedgerError> {
        Ok(None)
    }
}

/// Source addresses remembered per account as "logged in from here before".
pub const KNOWN_PER_ACCOUNT: usize = 16;
/// Accounts whose known addresses a [`MemoryLedger`] remembers at most (oldest dropped first).
const KNOWN_ACCOUNTS: usize = 100_000;

/// The single-node ledger: bounded maps in this process.
#[derive(Debug)]
pub struct MemoryLedger {
    pairs: Mutex<Limiter<(String, IpAddr)>>,
    strangers: Mutex<Limiter<String>>,
    addresses: Mutex<Limiter<IpAddr>>,
    registrations: Mutex<Limiter<IpAddr>>,
    known: Mutex<Known>,
}

impl MemoryLedger {
    /// Empty counts with these policies (the ones later passed to each call).
    pub fn new(account: Policy, address: Policy, registration: Policy) -> Self {
        Self {
            pairs: Mutex::new(Limiter::new(account)),
            strangers: Mutex::new(Limiter::new(account)),
            addresses: Mutex::new(Limiter::new(address)),
            registrations: Mutex::new(Limiter::new(registration)),
            known: Mutex::new(Known::default()),
        }
    }
}

impl LoginLedger for MemoryLedger {
    fn is_remote(&self) -> bool {
        false
    }

    fn check(
        &self,
        counter: Counter<'_>,
        _policy: &Policy,
        now: u64,
    ) -> Result<Result<(), RetryAfter>, LedgerError> {
        Ok(match counter {
            Counter::Pair(n, a) => lock(&self.pairs).check(&(n.to_owned(), a), now),
            Counter::Stranger(n) => lock(&self.strangers).check(&n.to_owned(), now),
            Counter::Address(a) => lock(&self.addresses).check(&a, now),
            Counter::Registration(a) => lock(&self.registrations).check(&a, now),
        })
    }

    fn fail(&self, counter: Counter<'_>, _policy: &Policy, now: u64) -> Result<(), LedgerError> {
        match counter {
            Counter::Pair(n, a) => lock(&self.pairs).fail(&(n.to_owned(), a), now),
            Counter::Stranger(n) => lock(&self.strangers).fail(&n.to_owned(), now),
            Counter::Address(a) => lock(&self.addresses).fail(&a, now),
            Counter::Registration(a) => lock(&self.registrations).fail(&a, now),
        }
        Ok(())
    }

    fn forgive(&self, counter: Counter<'_>) -> Result<(), LedgerError> {
        match counter {
            Counter::Pair(n, a) => lock(&self.pairs).forgive(&(n.to_owned(), a)),
            Counter::Stranger(n) => lock(&self.strangers).forgive(&n.to_owned()),
            Counter::Address(a) => lock(&self.addresses).forgive(&a),
            Counter::Registration(a) => lock(&self.registrations).forgive(&a),
        }
        Ok(())
    }

    fn clear(&self, counter: Counter<'_>) -> Result<(), LedgerError> {
        match counter {
            Counter::Pair(n, a) => lock(&self.pairs).clear(&(n.to_owned(), a)),
            Counter::Stranger(n) => lock(&self.strangers).clear(&n.to_owned()),
            Counter::Address(a) => lock(&self.addresses).clear(&a),
            Counter::Registration(a) => lock(&self.registrations).clear(&a),
        }
        Ok(())
    }

    fn is_known(&self, username: &str, addr: IpAddr) -> Result<bool, LedgerError> {
        Ok(lock(&self.known).contains(username, addr))
    }

    fn add_known(&self, username: &str, addr: IpAddr) -> Result<(), LedgerError> {
        lock(&self.known).add(username, addr);
        Ok(())
    }
}

/// Addresses each account logged in from, newest last.
#[derive(Debug, Default)]
struct Known {
    by_account: HashMap<String, VecDeque<IpAddr>>,
    order: VecDeque<String>,
}

impl Known {
    fn contains(&self, account: &str, addr: IpAddr) -> bool {
        self.by_account
            .get(account)
            .is_some_and(|a| a.contains(&addr))
    }

    fn add(&mut self, account: &str, addr: IpAddr) {
        if !self.by_account.contains_key(account) {
            while self.by_account.len() >= KNOWN_ACCOUNTS {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                self.by_account.remove(&oldest);
            }
            self.order.push_back(account.to_owned());
        }
        let addrs = self.by_account.entry(account.to_owned()).or_default();
        addrs.retain(|a| *a != addr);
        addrs.push_back(addr);
        while addrs.len() > KNOWN_PER_ACCOUNT {
            addrs.pop_front();
        }
    }
}

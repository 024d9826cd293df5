//! Accounts' secrets and their checks: input validation, password hashing off the reactor,
//! TOTP, recovery codes, session tokens, and rate limits on failures.
//!
//! Nothing here talks to the network or the database; the connection handler composes these
//! checks with the store.

mod hashing;
pub mod ledger;
pub mod password;
pub mod ratelimit;
pub mod totp;

use hashing::HashQueue;
pub use hashing::{Busy, HASHES_PER_ADDRESS};

use core::net::IpAddr;
use std::sync::{Arc, Mutex};

use proto_core::names;
use sha2::{Digest, Sha256};
use smol::lock::Semaphore;

pub use ledger::{Counter, LedgerError, LoginLedger, MemoryLedger};
use ratelimit::{Policy, Rate, RetryAfter};

/// Recovery codes handed out at enrollment.
pub const RECOVERY_CODES: usize = 10;
/// Session lifetime: 30 days.
pub const SESSION_LIFETIME: u64 = 30 * 24 * 3600;

/// Why registration input was refused; the text is shown to the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A field is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The password is too weak.
    #[error("{0}")]
    WeakPassword(String),
}

/// Case-folds and checks a username with the protocol's grammar ([`proto_core::names`]).
pub fn normalize_username(raw: &str) -> Result<String, InputError> {
    let mut buf = [0u8; names::USERNAME_MAX_LEN];
    names::fold_username(raw, &mut buf)
        .map(str::to_owned)
        .map_err(|e| InputError::Invalid(e.to_string()))
}

/// Checks an email address's shape (one `@`, a dotted domain, no spaces, ≤ 254 bytes).
pub fn validate_email(email: &str) -> Result<(), InputError> {
    let bad =
        || InputError::Invalid("email address is not valid (expected name@example.org)".into());
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || domain.len() < 3
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
        || !domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
    {
        return Err(bad());
    }
    Ok(())
}

/// Checks a display name: 1 to 64 characters, no control characters.
pub fn validate_name(name: &str) -> Result<(), InputError> {
    let n = name.trim().chars().count();
    if n == 0 || n > 64 || name.chars().any(char::is_control) {
        return Err(InputError::Invalid(
            "name must be 1 to 64 characters without control characters".into(),
        ));
    }
    Ok(())
}

/// Checks password strength (the `passphrase` crate's rule, shared with the CLI's keystore:
/// ≥ 10 characters, zxcvbn score ≥ 3 of 4) and length (≤ 1024 bytes); the error says why.
pub fn check_password_strength(password: &str, hints: &[&str]) -> Result<(), InputError> {
    if password.chars().count() >= passphrase::MIN_CHARS && password.len() > 1024 {
        return Err(InputError::WeakPassword(
            "password is too long: use at most 1024 bytes".into(),
        ));
    }
    passphrase::check(password, hints)
        .map_err(|why| InputError::WeakPassword(format!("password is {why}")))
}

/// `N second(s)` for a wait told to a person ("1 second", "2 seconds").
pub fn seconds(n: u64) -> String {
    if n == 1 {
        "1 second".to_owned()
    } else {
        format!("{n} seconds")
    }
}

/// SHA-256 of a session token: what the store keeps.
pub fn token_hash(token: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// A new random 256-bit session token.
pub fn new_token() -> Result<[u8; 32], getrandom::Error> {
    let mut t = [0u8; 32];
    getrandom::fill(&mut t)?;
    Ok(t)
}

/// A recovery code as shown to the person: 16 base32 characters in four groups, 80 bits.
pub fn new_recovery_code() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 10];
    getrandom::fill(&mut raw)?;
    let s = totp::base32(&raw).to_ascii_lowercase();
    let mut out = String::with_capacity(19);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    Ok(out)
}

/// The stored hash of a recovery code, bound to its account; spaces, dashes and case ignored.
pub fn recovery_hash(account: i64, code: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"Sealroom recovery v1");
    h.update(account.to_be_bytes());
    for c in code.chars().filter(|c| c.is_ascii_alphanumeric()) {
        h.update([c.to_ascii_lowercase() as u8]);
    }
    h.finalize().into()
}

/// The key a source address is limited by: an IPv4 address as it is, an IPv6 address by its
/// /64 prefix (one host usually holds a whole /64, so per-address limits keyed by the full
/// address would be trivially bypassed), and an IPv4-mapped IPv6 address as its IPv4 address.
pub fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(core::net::Ipv6Addr::from_bits(
                v6.to_bits() & !u128::from(u64::MAX),
            )),
        },
    }
}

/// Shared authentication state: hashing settings, the hashing pool's permits, rate limiters.
///
/// Failed logins count per (account, source address) and per source address; failures from
/// addresses the account never logged in from also count against the account as a whole. So
/// a stranger can lock the account only for other strangers: its owner still logs in with
/// password and TOTP from an address used before, or with a recovery code from anywhere, and a
/// valid session token is never refused by these limits. The counts live in a [`LoginLedger`]:
/// this process's memory on one node, the shared database when several nodes serve one address.
#[derive(Debug, Clone)]
pub struct Auth {
    rounds: u32,
    decoy: Arc<String>,
    hashing: Arc<Semaphore>,
    policies: Policies,
    ledger: Arc<dyn LoginLedger>,
    queue: Arc<Mutex<HashQueue>>,
}

/// The three limiter policies.
#[derive(Debug, Clone, Copy)]
struct Policies {
    account: Policy,
    address: Policy,
    registration: Policy,
}

/// How long a login waits when the ledger cannot be read: the limits fail closed.
const LEDGER_DOWN_RETRY: u64 = 5;

/// A refusal by the rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited(pub RetryAfter);

/// What a login attempt may still use once the limits are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Password and TOTP, or a recovery code.
    Open,
    /// The account is locked for addresses it never logged in from: only a recovery code.
    RecoveryOnly,
}

fn worst(results: &[Result<(), RetryAfter>]) -> Result<(), Limited> {
    let wait = results.iter().filter_map(|r| r.err()).map(|r| r.0).max();
    match wait {
        Some(w) => Err(Limited(RetryAfter(w))),
        None => Ok(()),
    }
}

impl Auth {
    /// Auth state with `rounds` PBKDF2 iterations and these limiter policies, counting in
    /// this process's memory.
    pub fn new(
        rounds: u32,
        account_policy: Policy,
        address_policy: Policy,
        registration_policy: Policy,
    ) -> Self {
        let ledger = Arc::new(MemoryLedger::new(
            account_policy,
            address_policy,
            registration_policy,
        ));
        Self::with_ledger(
            rounds,
            account_policy,
            address_policy,
            registration_policy,
            ledger,
        )
    }

    /// As [`Auth::new`], counting in `ledger` (a database every node shares).
    pub fn with_ledger(
        rounds: u32,
        account_policy: Policy,
        address_policy: Policy,
        registration_policy: Policy,
        ledger: Arc<dyn LoginLedger>,
    ) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, core::num::NonZero::get);
        Self {
            rounds,
            decoy: Arc::new(password::decoy_hash(rounds)),
            hashing: Arc::new(Semaphore::new(cpus)),
            policies: Policies {
                account: account_policy,
                address: address_policy,
                registration: registration_policy,
            },
            ledger,
            queue: Arc::new(Mutex::new(HashQueue::new(64))),
        }
    }

    /// Password hashes that may wait at most (see [`Auth::turn`]).
    pub fn with_hash_queue(self, max_waiting: usize) -> Self {
        lock(&self.queue).max_waiting = max_waiting.max(1);
        self
    }

    /// PBKDF2 iterations for new hashes.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// Runs `f` on the ledger: here if it is in memory, on the blocking pool if it is remote.
    async fn on_ledger<R, F>(&self, f: F) -> Result<R, LedgerError>
    where
        R: Send + 'static,
        F: FnOnce(&dyn LoginLedger, &Policies) -> Result<R, LedgerError> + Send + 'static,
    {
        if self.ledger.is_remote() {
            let (ledger, policies) = (self.ledger.clone(), self.policies);
            smol::unblock(move || f(&*ledger, &policies)).await
        } else {
            f(&*self.ledger, &self.policies)
        }
    }

    /// Whether this account name may attempt a login from `addr` now, and with what. If the
    /// ledger cannot be read, the attempt is refused for a few seconds (fail closed).
    pub async fn check_login(
        &self,
        username: &str,
        addr: IpAddr,
        now: u64,
    ) -> Result<Gate, Limited> {
        let name = username.to_owned();
        let checked = self
            .on_ledger(move |l, p| {
                let counts = [
                    l.check(Counter::Address(addr), &p.address, now)?,
                    l.check(Counter::Pair(&name, addr), &p.account, now)?,
                ];
                if let Err(limited) = worst(&counts) {
                    return Ok(Err(limited));
                }
                if l.is_known(&name, addr)? {
                    return Ok(Ok(Gate::Open));
                }
                Ok(Ok(
                    match l.check(Counter::Stranger(&name), &p.account, now)? {
                        Ok(()) => Gate::Open,
                        Err(_) => Gate::RecoveryOnly,
                    },
                ))
            })
            .await;
        checked.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the login limits; refusing for now");
            Err(Limited(RetryAfter(LEDGER_DOWN_RETRY)))
        })
    }

    /// Counts a registration attempt from `addr`; refused when there were too many this hour.
    pub async fn check_registration(&self, addr: IpAddr, now: u64) -> Result<(), Limited> {
        let checked = self
            .on_ledger(move |l, p| {
                let counter = Counter::Registration(addr);
                if let Err(wait) = l.check(counter, &p.registration, now)? {
                    return Ok(Err(Limited(wait)));
                }
                l.fail(counter, &p.registration, now)?;
                Ok(Ok(()))
            })
            .await;
        checked.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the registration limits; refusing for now");
            Err(Limited(RetryAfter(LEDGER_DOWN_RETRY)))
        })
    }

    /// Records a failed attempt.
    pub async fn record_failure(&self, username: &str, addr: IpAddr, now: u64) {
        let name = username.to_owned();
        let recorded = self
            .on_ledger(move |l, p| {
                l.fail(Counter::Pair(&name, addr), &p.account, now)?;
                l.fail(Counter::Address(addr), &p.address, now)?;
                if !l.is_known(&name, addr)? {
                    l.fail(Counter::Stranger(&name), &p.account, now)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record a failed login");
        }
    }

    /// After a login succeeded: forgets this address's failures for the account, takes back
    /// the attempt counted up front, and remembers the address as one the account uses.
    pub async fn record_success(&self, username: &str, addr: IpAddr) {
        let name = username.to_owned();
        let recorded = self
            .on_ledger(move |l, _| {
                l.clear(Counter::Pair(&name, addr))?;
                l.forgive(Counter::Address(addr))?;
                if !l.is_known(&name, addr)? {
                    l.forgive(Counter::Stranger(&name))?;
                }
                l.add_known(&name, addr)
            })
            .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record a successful login");
        }
    }

    /// Takes a one-time-prekey hand-out token for `owner` from the bucket every node shares;
    /// `None` on a single node (the caller's in-memory bucket decides). If the shared bucket
    /// cannot be read, no prekey is handed out (the bundle still works without one).
    pub async fn take_shared_handout(&self, owner: &str, rate: Rate, now: u64) -> Option<bool> {
        if !self.ledger.is_remote() {
            return None;
        }
        let owner = owner.to_owned();
        match self
            .on_ledger(move |l, _| l.take_handout(&owner, &rate, now))
            .await
        {
            Ok(taken) => taken,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the prekey hand-out pace");
                Some(false)
            }
        }
    }

    /// Remembers `addr` as one `username` logged in from (registration, a resumed session).
    pub async fn record_known(&self, username: &str, addr: IpAddr) {
        let name = username.to_owned();
        if let Err(e) = self.on_ledger(move |l, _| l.add_known(&name, addr)).await {
            tracing::error!(error = %e, "cannot record a known address");
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a limiter cannot leave it inconsistent in a harmful way.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;

//! Rate limits on failed logins, per account name and per source address, with growing delays.
//!
//! Checked before any password hashing, so a flood of guesses costs the server nothing but a
//! map lookup. Failures are counted over a sliding hour: the first few are free, then each one
//! doubles the wait before the next attempt, and at the hourly cap (100 per account, OWASP ASVS
//! 2.2.1) the key is refused until old failures age out. Names that do not exist are limited
//! exactly like real ones, so the limiter reveals nothing about which accounts exist.
//!
//! State is in memory on a single node: a restart forgets it (documented in docs/SECURITY.md).
//! Nodes sharing a PostgreSQL database keep the same counts there instead (`auth::ledger`). Time is passed
//! in, so tests drive it without sleeping.

use core::hash::Hash;
use std::collections::{HashMap, VecDeque};

/// One limiter's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Failures allowed per hour; at this count the key is locked.
    pub max_per_hour: usize,
    /// Failures before delays start.
    pub free: usize,
    /// First delay, seconds; doubles with each further failure.
    pub base_delay: u64,
    /// Longest delay, seconds.
    pub max_delay: u64,
}

impl Policy {
    /// Per account: ≤ 100 failures an hour.
    pub const ACCOUNT: Policy = Policy {
        max_per_hour: 100,
        free: 5,
        base_delay: 1,
        max_delay: 300,
    };
    /// Per source address: more generous (NAT), still bounded.
    pub const ADDRESS: Policy = Policy {
        max_per_hour: 300,
        free: 10,
        base_delay: 1,
        max_delay: 60,
    };
    /// Registrations per source address: each costs a PBKDF2 hash.
    pub const REGISTRATION: Policy = Policy {
        max_per_hour: 30,
        free: 10,
        base_delay: 1,
        max_delay: 60,
    };
}

const HOUR: u64 = 3600;
/// Keys tracked at most; beyond this the oldest entries are dropped to bound memory.
const MAX_KEYS: usize = 100_000;

/// A refusal: wait this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// The rule itself: may a key with `n` failures in the last hour, the oldest at `oldest` and
/// the latest at `last`, try at `now`? Shared by the in-memory [`Limiter`] and the database
/// ledger several nodes use (`auth::ledger`), so both limit alike.
pub fn verdict(
    policy: &Policy,
    n: usize,
    oldest: u64,
    last: u64,
    now: u64,
) -> Result<(), RetryAfter> {
    if n >= policy.max_per_hour {
        return Err(RetryAfter((oldest + HOUR).saturating_sub(now).max(1)));
    }
    if n >= policy.free {
        let exp = u32::try_from(n - policy.free).unwrap_or(u32::MAX).min(30);
        let delay = policy
            .base_delay
            .saturating_mul(1u64 << exp)
            .min(policy.max_delay);
        let ready = last.saturating_add(delay);
        if now < ready {
            return Err(RetryAfter(ready - now));
        }
    }
    Ok(())
}

/// Failures older than this no longer count.
pub const WINDOW_SECS: u64 = HOUR;

/// Failure history per key.
#[derive(Debug)]
pub struct Limiter<K> {
    policy: Policy,
    failures: HashMap<K, VecDeque<u64>>,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    /// An empty limiter.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            failures: HashMap::new(),
        }
    }

    fn prune(&mut self, key: &K, now: u64) -> usize {
        match self.failures.get_mut(key) {
            Some(q) => {
                while q.front().is_some_and(|t| now.saturating_sub(*t) >= HOUR) {
                    q.pop_front();
                }
                let n = q.len();
                if n == 0 {
                    self.failures.remove(key);
                }
                n
            }
            None => 0,
        }
    }

    /// Whether `key` may try now.
    pub fn check(&mut self, key: &K, now: u64) -> Result<(), RetryAfter> {
        let n = self.prune(key, now);
        let Some(q) = self.failures.get(key) else {
            return Ok(());
        };
        let oldest = q.front().copied().unwrap_or(now);
        let last = q.back().copied().unwrap_or(0);
        verdict(&self.policy, n, oldest, last, now)
    }

    /// Records a failure.
    pub fn fail(&mut self, key: &K, now: u64) {
        if self.failures.len() >= MAX_KEYS && !self.failures.contains_key(key) {
            // Drop entries whose failures are all old; if none, drop an arbitrary one.
            self.failures
                .retain(|_, q| q.back().is_some_and(|t| now.saturating_sub(*t) < HOUR));
            if self.failures.len() >= MAX_KEYS
                && let Some(k) = self.failures.keys().next().cloned()
            {
                self.failures.remove(&k);
            }
        }
        let q = self.failures.entry(key.clone()).or_default();
        q.push_back(now);
        // Never keep more than the cap: older entries add nothing.
        while q.len() > self.policy.max_per_hour {
            q.pop_front();
        }
    }

    /// Takes back the most recent failure of a key (an attempt counted up front succeeded).
    pub fn forgive(&mut self, key: &K) {
        if let Some(q) = self.failures.get_mut(key) {
            q.pop_back();
            if q.is_empty() {
                self.failures.remove(key);
            }
        }
    }

    /// Forgets a key's failures (after a successful login).
    pub fn clear(&mut self, key: &K) {
        self.failures.remove(key);
    }
}

/// A request rate: `burst` at once, refilled at `per_hour`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed at once (the bucket's size).
    pub burst: u32,
    /// Requests added back per hour.
    pub per_hour: u32,
}

impl Rate {
    /// No practical limit (load tests).
    pub const UNLIMITED: Rate = Rate {
        burst: u32::MAX,
        per_hour: u32::MAX,
    };
}

/// Token buckets per key: each request takes a token; tokens come back at the rate's pace.
#[derive(Debug)]
pub struct Buckets<K> {
    rate: Rate,
    /// Tokens left and the time they were counted.
    buckets: HashMap<K, (f64, u64)>,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    /// Full buckets for every key.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `key`, or says how long until one is back.
    pub fn take(&mut self, key: &K, now: u64) -> Result<(), RetryAfter> {
        let burst = f64::from(self.rate.burst);
        let per_sec = f64::from(self.rate.per_hour) / HOUR as f64;
        if self.buckets.len() >= MAX_KEYS && !self.buckets.contains_key(key) {
            // Full buckets carry no information: drop them first.
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + per_sec * (now.saturating_sub(*at) as f64) < burst
            });
            if self.buckets.len() >= MAX_KEYS
                && let Some(k) = self.buckets.keys().next().cloned()
            {
                self.buckets.remove(&k);
            }
        }
        let (tokens, at) = self.buckets.entry(key.clone()).or_insert((burst, now));
        *tokens = (*tokens + per_sec * now.saturating_sub(*at) as f64).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else if per_sec > 0.0 {
            Err(RetryAfter(
                ((1.0 - *tokens) / per_sec).ceil().max(1.0) as u64
            ))
        } else {
            Err(RetryAfter(HOUR))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let mut b = Buckets::new(Rate {
            burst: 3,
            per_hour: 3600,
        });
        let now = 1_000;
        for _ in 0..3 {
            assert_eq!(b.take(&"a", now), Ok(()));
        }
        assert_eq!(b.take(&"a", now), Err(RetryAfter(1)));
        // Another key has its own bucket.
        assert_eq!(b.take(&"b", now), Ok(()));
        // One token a second comes back, never more than the burst.
        assert_eq!(b.take(&"a", now + 1), Ok(()));
        assert!(b.take(&"a", now + 1).is_err());
        for _ in 0..3 {
            assert_eq!(b.take(&"a", now + 100), Ok(()));
        }
        assert!(b.take(&"a", now + 100).is_err());
    }

    #[test]
    fn delays_grow_then_lock_at_100_per_hour() {
        let mut l = Limiter::new(Policy::ACCOUNT);
        let k = "alice".to_string();
        let mut now = 1_000_000;
        for _ in 0..5 {
            assert_eq!(l.check(&k, now), Ok(()));
            l.fail(&k, now);
        }
        // Sixth attempt right away: must wait 1 s; then 2 s, 4 s...
        assert_eq!(l.check(&k, now), Err(RetryAfter(1)));
        now += 1;
        assert_eq!(l.check(&k, now), Ok(()));
        l.fail(&k, now);
        assert_eq!(l.check(&k, now), Err(RetryAfter(2)));
        now += 2;
        l.fail(&k, now);
        assert_eq!(l.check(&k, now), Err(RetryAfter(4)));
        // Fill up to the cap within the hour.
        while l.failures.get(&k).map_or(0, VecDeque::len) < 100 {
            now += 1;
            l.fail(&k, now);
        }
        let start = now;
        now += 600;
        assert!(matches!(l.check(&k, now), Err(RetryAfter(_))));
        // Once the hour has passed for the oldest failures, attempts resume.
        now = start + HOUR + 400;
        assert!(l.check(&k, now).is_ok() || l.failures.get(&k).map_or(0, VecDeque::len) < 100);
        now += HOUR;
        assert_eq!(l.check(&k, now), Ok(()));
    }

    #[test]
    fn clear_resets() {
        let mut l = Limiter::new(Policy::ACCOUNT);
        for t in 0..10 {
            l.fail(&1u32, t);
        }
        assert!(l.check(&1, 10).is_err());
        l.clear(&1);
        assert_eq!(l.check(&1, 10), Ok(()));
    }
}

//! Wall-clock time in Unix seconds, replaceable in tests (TOTP steps, expiry, rate limits).

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of Unix seconds.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The system clock.
    System,
    /// A clock tests set by hand.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// Unix seconds now.
    pub fn now(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// A manual clock starting at `start`, and its handle.
    pub fn manual(start: u64) -> (Self, Arc<AtomicU64>) {
        let t = Arc::new(AtomicU64::new(start));
        (Clock::Manual(t.clone()), t)
    }
}

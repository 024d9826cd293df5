//! The one source of randomness for keys, nonces and ids: the operating system's generator.
//!
//! There is deliberately no seeded or time-based fallback: if the OS generator fails, the
//! program stops rather than make a weak key.

use getrandom::SysRng;
use rand_core::UnwrapErr;

/// The OS random generator as a `CryptoRng` (rand_core 0.10). It panics only if the OS
/// generator itself fails, which no key may survive.
pub(crate) fn os() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

/// A random `u64` (message ids, client references).
pub(crate) fn u64() -> u64 {
    use rand_core::Rng as _;
    os().next_u64()
}

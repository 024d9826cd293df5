//! Mistakes of the calling code, kept apart from what a peer's bytes can cause.
//!
//! Every decoder and decrypter here returns an error enum whose variants are faults of the
//! input (a peer, or stored state), plus one `Caller` variant holding a [`CallerError`]: the
//! code calling the core lent too small a buffer. A peer can never cause a `CallerError`, so a
//! host can treat it as a bug to fix rather than as hostile input.

use core::fmt;

/// The calling code's mistake, never the peer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallerError {
    /// The output (or receive) buffer lent to the call is too small for the result.
    BufferTooSmall,
}

impl CallerError {
    /// The name used in vectors (`reject:<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            CallerError::BufferTooSmall => "BufferTooSmall",
        }
    }
}

impl fmt::Display for CallerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallerError::BufferTooSmall => "the buffer lent to the call is too small",
        })
    }
}

impl core::error::Error for CallerError {}

//! The Double Ratchet (Signal's spec) over X3DH's shared secret, allocation-free.
//!
//! This module owns pairwise message encryption after X3DH: the root chain (`KDF_RK`), the sending
//! and receiving chains (`KDF_CK`), per-message keys (`HKDF … "Sealroom Message v1"`), the 40-byte
//! header, fixed-capacity storage of skipped keys, and the session's serialized state. It does
//! not carry messages, decide when to start a new session, or know about frames.
//!
//! One small file per concept, after vodozemac: [`root_key`], [`chain_key`], [`message_key`],
//! [`skipped`], and the [`Session`] that ties them together in [`session`] (state bytes in
//! [`state`]).
//!
//! # Ratchet message layout
//!
//! `header (40) || ciphertext (same length as the plaintext) || tag (16)`; the header is
//! `ratchet public key (32) || pn (u32 BE) || n (u32 BE)`, and the AEAD's associated data is
//! `AD (128, from X3DH) || header`.

use crate::caller::CallerError;
use core::fmt;

pub(crate) mod chain_key;
pub(crate) mod message_key;
mod root_key;
mod session;
pub(crate) mod skipped;
pub(crate) mod state;

pub use session::Session;
pub use state::StateError;

/// Length of a ratchet header: ratchet public key || `pn` || `n`.
pub const RATCHET_HEADER_LEN: usize = 40;
/// Bytes a ratchet message adds to its plaintext: header and tag.
pub const RATCHET_OVERHEAD: usize = RATCHET_HEADER_LEN + crate::aead::AEAD_TAG_LEN;
/// Default capacity of a session's skipped-key storage, and the most keys one message may skip.
pub const DEFAULT_MAX_SKIP: usize = 64;

/// A ratchet message header, as a typed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatchetHeader {
    /// The sender's current ratchet public key.
    pub ratchet_key: [u8; 32],
    /// `pn`: how many messages the sender sent in its previous sending chain.
    pub previous_chain_length: u32,
    /// `n`: this message's number in its sending chain.
    pub message_number: u32,
}

impl RatchetHeader {
    /// Decode the 40-byte header.
    pub fn from_bytes(b: &[u8; RATCHET_HEADER_LEN]) -> Self {
        let [ratchet_key @ .., p0, p1, p2, p3, n0, n1, n2, n3] = *b;
        Self {
            ratchet_key,
            previous_chain_length: u32::from_be_bytes([p0, p1, p2, p3]),
            message_number: u32::from_be_bytes([n0, n1, n2, n3]),
        }
    }

    /// Encode as 40 bytes.
    pub fn to_bytes(&self) -> [u8; RATCHET_HEADER_LEN] {
        let mut out = [0u8; RATCHET_HEADER_LEN];
        let (key, rest) = out.split_at_mut(32);
        key.copy_from_slice(&self.ratchet_key);
        let (pn, n) = rest.split_at_mut(4);
        pn.copy_from_slice(&self.previous_chain_length.to_be_bytes());
        n.copy_from_slice(&self.message_number.to_be_bytes());
        out
    }
}

/// Why [`Session::encrypt`] refused. All are the caller's doing, none the peer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncryptError {
    /// The output slice is shorter than plaintext + [`RATCHET_OVERHEAD`].
    BufferTooSmall,
    /// The responder has not yet decrypted a message, so it has no chain to send on.
    NotReady,
    /// The sending chain reached 2³² − 1 messages; start a new session.
    ChainExhausted,
}

impl fmt::Display for EncryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BufferTooSmall => "output buffer too small for the encrypted message",
            Self::NotReady => "no message received yet on this session; it cannot send",
            Self::ChainExhausted => "sending chain exhausted; start a new session",
        })
    }
}

impl core::error::Error for EncryptError {}

/// Why [`Session::decrypt`] rejected a message. The session is unchanged after any of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecryptError {
    /// Shorter than a header and a tag.
    Malformed,
    /// The output slice is shorter than the plaintext (the caller's fault, not the peer's).
    Caller(CallerError),
    /// Not authentic: any altered byte of header, ciphertext, tag or associated data, a wrong
    /// session, or a forged ratchet key. Deliberately carries no detail.
    Authentication,
    /// Already decrypted (or its key was discarded): a replay or an old duplicate.
    Replay,
    /// The message would skip more than the session's skipped-key capacity.
    TooManySkipped,
}

impl fmt::Display for DecryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "message too short to be a ratchet message",
            Self::Caller(_) => "output buffer too small for the plaintext",
            Self::Authentication => "message failed authentication",
            Self::Replay => "message already received (replay or duplicate)",
            Self::TooManySkipped => {
                "message skips more messages than this session can hold keys for"
            }
        })
    }
}

impl core::error::Error for DecryptError {}

#[cfg(test)]
mod tests;

//! Rooms: sender keys, one symmetric chain and one signing key per member and epoch.
//!
//! This module owns the room layer of PROTOCOL.md §4.4: each member has, per room and epoch, a random
//! 32-byte chain key and an Ed25519 signing key, and hands both to every other member in a
//! [`SenderKeyDistribution`] that the caller carries inside the pairwise Double Ratchet
//! sessions. A room message's key comes from `KDF_CK` on the sender's chain, its AEAD key and
//! nonce from `HKDF(salt = 32 zero bytes, mk, "Sealroom Room v1", 44)`; its associated data binds
//! the room id, sender, epoch and iteration; the sender signs the whole message. When a member
//! leaves or is removed everyone who remains starts a new epoch with fresh keys.
//!
//! It does not decide membership (the server's room changes and the client do) and does not
//! deliver distribution messages: the caller encrypts [`SenderKeyDistribution::to_bytes`] to
//! each member with their pairwise [`Session`](crate::Session), and passes what it decrypts to
//! [`Room::handle_distribution`] with the identity of the session's peer.
//!
//! # Distribution message (121 bytes, big-endian integers)
//!
//! | offset | len | field |
//! |---|---|---|
//! | 0 | 1 | version, `0x01` |
//! | 1 | 16 | room id |
//! | 17 | 32 | sender: the member's identity signing key `IKs` |
//! | 49 | 4 | epoch |
//! | 53 | 4 | iteration: the number of the sender's next message |
//! | 57 | 32 | chain key at that iteration |
//! | 89 | 32 | the sender's Ed25519 signing public key for this epoch |
//!
//! # Room message (137 + plaintext bytes)
//!
//! | offset | len | field |
//! |---|---|---|
//! | 0 | 1 | version, `0x01` |
//! | 1 | 16 | room id |
//! | 17 | 32 | sender (`IKs`) |
//! | 49 | 4 | epoch |
//! | 53 | 4 | iteration |
//! | 57 | n | ciphertext (ChaCha20-Poly1305, associated data = bytes 0..57) |
//! | 57 + n | 16 | tag |
//! | 73 + n | 64 | Ed25519 signature by the epoch signing key over bytes 0..73 + n |

use crate::caller::CallerError;
use core::fmt;

mod distribution;
mod group;
mod state;

pub use distribution::SenderKeyDistribution;
pub use group::{Room, RoomPlaintext};

/// Length of a room id.
pub const ROOM_ID_LEN: usize = 16;
/// Length of an encoded [`SenderKeyDistribution`].
pub const DISTRIBUTION_LEN: usize = 121;
/// The version byte room messages and distribution messages start with.
pub const ROOM_VERSION: u8 = 1;
/// Length of a room message's header (the AEAD associated data).
pub const ROOM_HEADER_LEN: usize = 57;
/// Bytes a room message adds to its plaintext: header, tag and signature.
pub const ROOM_OVERHEAD: usize = ROOM_HEADER_LEN + crate::aead::AEAD_TAG_LEN + 64;
/// Default number of other members a [`Room`] tracks.
pub const DEFAULT_ROOM_MEMBERS: usize = 32;

/// Why a membership change was refused (the caller's doing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipError {
    /// The room already tracks its capacity of members.
    RoomFull,
    /// That member is already in the room.
    AlreadyMember,
    /// That identity is not a member of the room.
    NotMember,
    /// The new epoch is not after the current one.
    StaleEpoch,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RoomFull => "the room is full",
            Self::AlreadyMember => "already a member of the room",
            Self::NotMember => "not a member of the room",
            Self::StaleEpoch => "the new epoch must be later than the current one",
        })
    }
}

impl core::error::Error for MembershipError {}

/// Why a sender-key distribution was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistributionError {
    /// Not 121 bytes.
    Malformed,
    /// The version byte is not [`ROOM_VERSION`].
    UnknownVersion,
    /// It is for another room.
    WrongRoom,
    /// It names a sender other than the peer of the pairwise session it came through.
    SenderMismatch,
    /// Its sender is not a member of the room.
    NotMember,
    /// Its epoch is older than the room's current epoch.
    WrongEpoch,
    /// The sender already gave a different signing key for this epoch.
    EpochConflict,
}

impl fmt::Display for DistributionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed sender key distribution",
            Self::UnknownVersion => "unknown sender key distribution version",
            Self::WrongRoom => "sender key distribution for another room",
            Self::SenderMismatch => {
                "sender key distribution names a different sender than its session"
            }
            Self::NotMember => "sender key distribution from a non-member",
            Self::WrongEpoch => "sender key distribution for an old epoch",
            Self::EpochConflict => "conflicting sender key for the same epoch",
        })
    }
}

impl core::error::Error for DistributionError {}

/// Why [`Room::encrypt`] refused (the caller's doing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomEncryptError {
    /// The output slice is shorter than plaintext + [`ROOM_OVERHEAD`].
    BufferTooSmall,
    /// Our chain reached 2³² − 1 messages; start a new epoch.
    ChainExhausted,
}

impl fmt::Display for RoomEncryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BufferTooSmall => "output buffer too small for the room message",
            Self::ChainExhausted => "sender chain exhausted; start a new epoch",
        })
    }
}

impl core::error::Error for RoomEncryptError {}

/// Why [`Room::decrypt`] rejected a message. The room is unchanged after any of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomDecryptError {
    /// Shorter than [`ROOM_OVERHEAD`], or an unknown version byte.
    Malformed,
    /// The output slice is shorter than the plaintext (the caller's fault, not the peer's).
    Caller(CallerError),
    /// The message is for another room.
    WrongRoom,
    /// No sender key from this sender (not a member, or no distribution received yet).
    UnknownSender,
    /// The message's epoch is not the sender's current epoch in this room.
    WrongEpoch,
    /// The signature does not verify: the message was altered or not sent by that member.
    BadSignature,
    /// The signature verified but the AEAD did not (the sender itself misbehaved).
    Authentication,
    /// Already decrypted (or its key was discarded).
    Replay,
    /// The message would skip more keys than the room's skipped-key capacity.
    TooManySkipped,
}

impl fmt::Display for RoomDecryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed room message",
            Self::Caller(_) => "output buffer too small for the plaintext",
            Self::WrongRoom => "room message for another room",
            Self::UnknownSender => "no sender key for this sender yet",
            Self::WrongEpoch => "room message from another epoch",
            Self::BadSignature => "room message signature does not verify",
            Self::Authentication => "room message failed authentication",
            Self::Replay => "room message already received",
            Self::TooManySkipped => "room message skips more messages than can be held",
        })
    }
}

impl core::error::Error for RoomDecryptError {}

#[cfg(test)]
mod tests;

/// The label hashed in front of a room's name to make its id.
pub const ROOM_ID_LABEL: &[u8] = b"Sealroom Room ID v1";

/// The 16-byte room id every member derives from the room's name on the server:
/// the first 16 bytes of `SHA-256("Sealroom Room ID v1" || name)`.
pub fn room_id_for_name(name: &str) -> [u8; ROOM_ID_LEN] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(ROOM_ID_LABEL)
        .chain_update(name.as_bytes())
        .finalize();
    let mut id = [0u8; ROOM_ID_LEN];
    for (dst, src) in id.iter_mut().zip(digest.iter()) {
        *dst = *src;
    }
    id
}

/// The label hashed in front of an identity and device id to make a room sender id.
pub const ROOM_SENDER_LABEL: &[u8] = b"Sealroom Room Sender v1";

/// The 32-byte id a device is known by in every room (PROTOCOL.md §4.4):
/// `SHA-256("Sealroom Room Sender v1" || IKs || device_id (u32 BE))`. Each device of an account
/// is its own sender; a receiver checks a distribution's and a message's sender against the id
/// of the (account identity, device) the session or delivery names.
pub fn room_sender_id(identity_sig: &[u8; 32], device: u32) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(ROOM_SENDER_LABEL)
        .chain_update(identity_sig)
        .chain_update(device.to_be_bytes())
        .finalize()
        .into()
}

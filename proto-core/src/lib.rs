//! Sealroom's protocol core: everything two Sealroom endpoints must agree on, byte for byte.
//!
//! `#![no_std]`, no `alloc`, no `unsafe`, and no panic on any input: the same code runs in the
//! server, the command-line client, and on a microcontroller.
//!
//! # A tour
//!
//! - [`limits`]: every capacity, as a `pub const`.
//! - Frames: a 4-byte big-endian length, a protocol version byte, then one postcard-encoded
//!   [`Message`]. [`encode_frame`] writes into the caller's slice; [`FrameDecoder`] is a sans-IO
//!   decoder over a caller-lent buffer; [`decode_frame`] parses one whole frame.
//! - Messages: [`Message`] and its borrowed payload types (`&str` / `&[u8]` fields, no copies).
//! - I/O: [`read_frame`] / [`write_frame`] over `embedded_io`, and async twins behind the
//!   `async` feature.
//! - Crypto: device keys, X3DH and its post-quantum form PQXDH (ML-KEM-768), the Double
//!   Ratchet, room sender keys and safety numbers, with randomness only from a caller's
//!   `CryptoRng`.
//!
//! docs/PROTOCOL.md gives the byte layout of everything here; conformance/vectors/ holds examples.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

pub mod limits;

mod envelope;
mod frame;
mod io;
mod message;
pub mod names;

// ---- crypto modules ----
mod aead;
mod caller;
mod device;
mod fingerprint;
mod kdf;
mod keys;
mod pqxdh;
mod ratchet;
mod room;
mod roster;
mod x3dh;
// ---- end crypto modules ----

#[doc(hidden)]
pub mod fuzzing;

// The public API at a glance.

// Frames: codec and errors.
pub use frame::{
    DecodeError, EncodeError, FrameDecoder, FrameHeader, NextFrame, PROTOCOL_VERSION, decode_frame,
    decode_frame_cobs, encode_frame, encode_frame_cobs, frame_is_push, frame_len, next_frame,
};
// Frame I/O over embedded-io.
pub use io::{IoError, read_frame, write_frame};
#[cfg(feature = "async")]
pub use io::{read_frame_async, write_frame_async};
// Messages.
pub use message::{
    DeviceBody, DeviceInfo, DeviceKeys, ErrorCode, KemPrekey, Key32, List, Message, OneTimePrekey,
    PrekeyBundle, RoomChange, Sig64, SignedPrekey,
};

// What travels inside a message body: the envelope and the decrypted content.
pub use envelope::{
    Content, ENVELOPE_PQ_PREKEY, ENVELOPE_PREKEY, ENVELOPE_RATCHET, Envelope, EnvelopeError,
};

// ---- crypto API ----
// Device keys: identity, signed and one-time prekeys (secrets zeroize, Debug is redacted).
pub use keys::{
    IdentityKeyPair, IdentityPublicKey, OneTimePrekeyPair, OneTimePrekeyPublic, SignatureError,
    SignedPrekeyPair, SignedPrekeyPublic,
};
// X3DH: the agreement and the initiator's fixed-layout prekey header.
pub use x3dh::{
    PREKEY_HEADER_LEN, PREKEY_HEADER_VERSION, PrekeyHeader, PrekeyHeaderError, RemoteBundle,
    X3DH_AD_LEN, X3dhAgreement, X3dhError,
};
// PQXDH: X3DH plus an ML-KEM-768 KEM prekey; how every new session starts.
pub use pqxdh::{
    KEM_CIPHERTEXT_LEN, KEM_HEADER_LEN, KEM_PREKEY_LABEL, KEM_PUBLIC_KEY_LEN, KEM_SEED_LEN,
    KemCiphertext, KemHeader, KemPrekeyPair, KemPrekeyPublic, PQXDH_INFO, PqxdhAgreement,
    PqxdhError,
};
// Double Ratchet: the pairwise session (sans-IO), its header, errors and state bytes.
pub use ratchet::{
    DEFAULT_MAX_SKIP, DecryptError, EncryptError, RATCHET_HEADER_LEN, RATCHET_OVERHEAD,
    RatchetHeader, Session, StateError,
};
// Rooms: sender keys, distribution messages, membership and epochs.
pub use room::{
    DEFAULT_ROOM_MEMBERS, DISTRIBUTION_LEN, DistributionError, MembershipError, ROOM_HEADER_LEN,
    ROOM_ID_LABEL, ROOM_ID_LEN, ROOM_OVERHEAD, ROOM_SENDER_LABEL, ROOM_VERSION, Room,
    RoomDecryptError, RoomEncryptError, RoomPlaintext, SenderKeyDistribution, room_id_for_name,
    room_sender_id,
};
// Randomness: every key comes from a caller's `rand_core::CryptoRng` (the OS RNG on a host, the
// integrator's hardware RNG on a device); the traits are re-exported so an integrator names the
// same rand_core version proto-core uses.
pub use caller::CallerError;
pub use rand_core;
// Signed rosters: room membership the server cannot forge (PROTOCOL.md §4.7).
pub use roster::{
    Members, ROSTER_LABEL, ROSTER_MAX_ADMINS, ROSTER_MAX_LEN, ROSTER_MAX_MEMBERS, Roster,
    RosterError, RosterFields, RosterMember, write_roster,
};
// Linked devices: the link code and the link message (PROTOCOL.md §4.6).
pub use device::{
    LINK_CODE_LEN, LINK_CODE_VERSION, LINK_ID_LEN, LINK_OVERHEAD, LINK_SECRET_LEN, LinkCode,
    LinkError, LinkKeyPair, seal_link, seal_link_with_ephemeral,
};
// Safety numbers.
pub use fingerprint::{FINGERPRINT_DIGITS, SAFETY_NUMBER_LEN, party_fingerprint, safety_number};

/// The primitive wrappers the protocol is built from: ChaCha20-Poly1305, HKDF/HMAC-SHA256,
/// X25519, Ed25519, and the protocol's labels.
///
/// Exported so that external vectors (RFCs, Wycheproof) can pin this crate's wiring — byte order,
/// nonce layout, key order — and so benchmarks can compare the ratchet with its bare primitives.
/// Protocol users never need them.
pub mod primitives {
    pub use crate::aead::{
        AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, AuthError, open_in_place, seal_in_place,
    };
    pub use crate::kdf::{
        DEVICE_PREKEY_LABEL, LINK_INFO, MESSAGE_INFO, OutputTooLong, RATCHET_INFO, ROOM_INFO,
        SIGNED_PREKEY_LABEL, X3DH_INFO, hkdf_sha256, hmac_sha256,
    };
    pub use crate::keys::{
        KEY_LEN, SIGNATURE_LEN, ed25519_check_public, ed25519_public, ed25519_sign, ed25519_verify,
        x25519, x25519_public,
    };
}
// ---- end crypto API ----

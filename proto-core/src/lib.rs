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
//! - Crypto: device keys, X3DH, the Double Ratchet, room sender keys and safety numbers, with
//!   randomness only from a caller's `CryptoRng`.
//!
//! docs/PROTOCOL.md gives the byte layout of everything here; conformance/vectors/ holds examples.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

pub mod limits;

mod frame;
mod io;
mod message;

// ---- crypto modules (issue 3) ----
mod aead;
mod fingerprint;
mod kdf;
mod keys;
mod ratchet;
mod room;
mod x3dh;
// ---- end crypto modules ----

#[doc(hidden)]
pub mod fuzzing;

// The public API at a glance.

// Frames: codec and errors.
pub use frame::{
    DecodeError, EncodeError, FrameDecoder, FrameHeader, PROTOCOL_VERSION, decode_frame,
    decode_frame_cobs, encode_frame, encode_frame_cobs, frame_len,
};
// Frame I/O over embedded-io.
pub use io::{IoError, read_frame, write_frame};
#[cfg(feature = "async")]
pub use io::{read_frame_async, write_frame_async};
// Messages.
pub use message::{
    DeviceKeys, ErrorCode, Key32, List, Message, OneTimePrekey, PrekeyBundle, RoomChange, Sig64,
    SignedPrekey,
};

// ---- crypto API (issue 3) ----
// ---- end crypto API ----

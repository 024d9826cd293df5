//! Every capacity in the protocol, as a `pub const`, so an integrator can size buffers at
//! compile time and a reviewer can see every bound in one place.

/// Bytes in a frame's length prefix (a `u32`, big-endian).
pub const LENGTH_PREFIX_LEN: usize = 4;

/// The largest value a frame's length prefix may hold: the version byte plus the encoded message.
///
/// Checked before any buffer grows: a peer announcing more is refused at once.
pub const MAX_FRAME: usize = 64 * 1024;

/// The largest whole frame on the wire, prefix included. A receive buffer this large can hold
/// any valid frame.
pub const MAX_FRAME_WIRE: usize = LENGTH_PREFIX_LEN + MAX_FRAME;

/// The largest ciphertext body a message frame may carry, leaving room for the frame's own
/// fields (names, ids) within [`MAX_FRAME`].
pub const MAX_BODY: usize = MAX_FRAME - 1024;

/// One-time prekeys in a single upload or registration.
pub const MAX_PREKEYS_PER_UPLOAD: usize = 100;

/// One-time KEM prekeys in a single `UploadKemPrekeys` (each is 1,184 bytes of ML-KEM-768
/// key and a signature, so 32 of them and a last-resort one fit in [`MAX_FRAME`]).
pub const MAX_KEM_PREKEYS_PER_UPLOAD: usize = 32;

/// Recovery codes handed out at MFA enrollment.
pub const MAX_RECOVERY_CODES: usize = 16;

/// Members of one room.
pub const MAX_ROOM_MEMBERS: usize = 256;

/// Rooms listed in one reply.
pub const MAX_ROOMS_LISTED: usize = 1024;

/// Active devices of one account: the most a `Devices` reply lists and a `SendToDevices`
/// request carries bodies for (PROTOCOL.md §4.6).
pub const MAX_DEVICES: usize = 16;

/// Devices, active and revoked, listed in one `DeviceList` reply (the most recent first).
pub const MAX_DEVICES_LISTED: usize = 64;

/// Characters in a device's name.
pub const MAX_DEVICE_NAME: usize = 64;

// The crypto capacities live beside the code that uses them; they are gathered here so this
// file stays the one place to read every bound.

/// Skipped message keys a ratchet session keeps (the default `Session` const generic).
pub use crate::ratchet::DEFAULT_MAX_SKIP;
/// Bytes a ratchet message adds to its plaintext (40-byte header + 16-byte tag).
pub use crate::ratchet::RATCHET_OVERHEAD;
/// Other members a room tracks (the default `Room` const generic).
pub use crate::room::DEFAULT_ROOM_MEMBERS;
/// Bytes a room message adds to its plaintext (57-byte header + tag + 64-byte signature).
pub use crate::room::ROOM_OVERHEAD;

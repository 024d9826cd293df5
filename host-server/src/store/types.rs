//! The values the store keeps and hands back.

use proto_core::{KemPrekeyPublic, OneTimePrekey, RoomChange, SignedPrekey};

use super::{AccountId, RoomId};

/// A new account, not yet confirmed by a TOTP code.
#[derive(Clone, Debug)]
pub struct NewAccount {
    /// Case-folded username.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// PBKDF2 PHC string.
    pub password_phc: String,
    /// TOTP secret (160 bits).
    pub totp_secret: Vec<u8>,
    /// Ed25519 identity key.
    pub identity_sig: [u8; 32],
    /// X25519 identity key.
    pub identity_dh: [u8; 32],
    /// Signed prekey (its signature checked before it gets here).
    pub spk: SignedPrekey,
    /// One-time prekeys.
    pub prekeys: Vec<OneTimePrekey>,
    /// Unix seconds.
    pub created_at: u64,
}

/// An account as stored.
#[derive(Clone, Debug)]
pub struct Account {
    /// Row id.
    pub id: AccountId,
    /// Case-folded username.
    pub username: String,
    /// PBKDF2 PHC string.
    pub password_phc: String,
    /// TOTP secret.
    pub totp_secret: Vec<u8>,
    /// Whether enrollment finished.
    pub confirmed: bool,
    /// The last TOTP step accepted (replay guard).
    pub totp_last_step: Option<u64>,
    /// Ed25519 identity key.
    pub identity_sig: [u8; 32],
    /// X25519 identity key.
    pub identity_dh: [u8; 32],
    /// Unix seconds.
    pub created_at: u64,
    /// The account's primary device (PROTOCOL.md §6 Devices): the one made at registration
    /// (1) or by the last start-over, or, once that one is revoked, the lowest active one. A
    /// `Login` that names no device is this device.
    pub device_id: u32,
}

/// One device of an account, as `ListDevices` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device's id within the account.
    pub device_id: u32,
    /// The name it gave itself; empty if none.
    pub name: String,
    /// When it was added, Unix seconds.
    pub added_at: u64,
    /// When it last entered a session, Unix seconds.
    pub last_seen: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
}

/// A prekey bundle taken from the directory (its one-time prekey, if any, is now gone).
#[derive(Clone, Debug)]
pub struct StoredBundle {
    /// Owner.
    pub owner: AccountId,
    /// Owner's username.
    pub username: String,
    /// Ed25519 identity key.
    pub identity_sig: [u8; 32],
    /// X25519 identity key.
    pub identity_dh: [u8; 32],
    /// Whose device.
    pub device: u32,
    /// Signed prekey.
    pub spk: SignedPrekey,
    /// The one-time prekey handed out, if any were left.
    pub prekey: Option<OneTimePrekey>,
    /// One-time prekeys left after this one.
    pub remaining: u32,
}

/// A post-quantum bundle taken from the directory (PQXDH, PROTOCOL.md §4.8): the device's
/// X3DH bundle, taken as [`KeyStore::take_bundle`](super::KeyStore::take_bundle) takes it, and
/// one of its KEM prekeys (a one-time one is now gone).
#[derive(Clone, Debug)]
pub struct StoredKemBundle {
    /// The X3DH part.
    pub bundle: StoredBundle,
    /// The KEM prekey handed out: a one-time one, else the last-resort one; `None` when the
    /// device has neither that may be handed out.
    pub kem_prekey: Option<KemPrekeyPublic>,
    /// One-time KEM prekeys left after this one.
    pub kem_remaining: u32,
}

/// A message to queue.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Recipient, for a direct message.
    pub recipient: Option<AccountId>,
    /// Room, for a room message.
    pub room: Option<RoomId>,
    /// Sender's id.
    pub sender_id: AccountId,
    /// Sender's username.
    pub sender: String,
    /// The sending device.
    pub sender_device: u32,
    /// Unix seconds.
    pub sent_at: u64,
    /// Unix seconds after which it is dropped undelivered.
    pub expires_at: u64,
    /// Ciphertext of a room message, opaque (empty for a direct message).
    pub body: Vec<u8>,
    /// A direct message's ciphertexts: one per device of the recipient, each acknowledged on
    /// its own.
    pub copies: Vec<(u32, Vec<u8>)>,
}

/// A queued message, as delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Server id; queue order.
    pub id: u64,
    /// Sender's username.
    pub sender: String,
    /// Room name, for a room message.
    pub room: Option<String>,
    /// Unix seconds.
    pub sent_at: u64,
    /// Ciphertext (this device's copy, for a direct message).
    pub body: Vec<u8>,
    /// The sending device.
    pub sender_device: u32,
}

/// What an acknowledgement did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// A direct message was deleted.
    Direct {
        /// Who sent it.
        sender_id: AccountId,
    },
    /// The device's room cursor moved past a room message.
    Room {
        /// Who sent it.
        sender_id: AccountId,
    },
    /// Nothing of this user's has that id (already acknowledged, expired, or not theirs).
    Unknown,
}

/// A membership change kept for a member who was offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomEvent {
    /// Room name.
    pub room: String,
    /// Whose membership changed.
    pub username: String,
    /// What happened.
    pub change: RoomChange,
}

/// A room with its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    /// Row id.
    pub id: RoomId,
    /// Name.
    pub name: String,
    /// Admin's id.
    pub admin: AccountId,
    /// Members, in joining order.
    pub members: Vec<Member>,
}

impl RoomInfo {
    /// Whether `account` is a member.
    pub fn has_member(&self, account: AccountId) -> bool {
        self.members.iter().any(|m| m.id == account)
    }

    /// The admin's username.
    pub fn admin_name(&self) -> &str {
        self.members
            .iter()
            .find(|m| m.id == self.admin)
            .map_or("", |m| m.username.as_str())
    }
}

/// A member of a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's account.
    pub id: AccountId,
    /// The member's username.
    pub username: String,
}

/// A "delivered" receipt kept for a sender who was offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The message's server id.
    pub server_id: u64,
    /// Who acknowledged it.
    pub recipient: String,
    /// Which of their devices (0 for a receipt kept before schema version 9).
    pub device: u32,
}

/// A live session: whose it is and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The account logged in.
    pub account: AccountId,
    /// Unix seconds.
    pub expires_at: u64,
    /// The device it is; `None` while it links a new device.
    pub device: Option<u32>,
}

/// An invitation waiting for its invitee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// The room's name.
    pub room: String,
    /// Who invited.
    pub from: String,
}

//! Every message two Sealroom endpoints exchange, as postcard-encoded types with borrowed fields.
//!
//! A decoded [`Message`] borrows its strings and byte strings from the frame buffer: nothing is
//! copied and nothing is allocated. Lists ([`List`]) are kept as their encoded bytes and decoded
//! item by item when iterated; every list is fully checked when its frame is decoded, so
//! iterating a decoded list never fails.
//!
//! This module owns the *shape* of messages. It does not frame them (see `frame`) and it does
//! not judge their content: username rules, password strength and the like belong to the server.
//!
//! The variant order of every enum here is the wire tag; it is fixed by docs/PROTOCOL.md and the
//! conformance vectors. New messages are appended, never inserted.

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use crate::frame::DecodeError;
use crate::limits::{
    MAX_DEVICES, MAX_DEVICES_LISTED, MAX_KEM_PREKEYS_PER_UPLOAD, MAX_PREKEYS_PER_UPLOAD,
    MAX_RECOVERY_CODES, MAX_ROOM_MEMBERS, MAX_ROOMS_LISTED,
};
use crate::pqxdh::KEM_PUBLIC_KEY_LEN;

/// A 32-byte public value (an X25519 or Ed25519 public key, a session token): 32 raw bytes on
/// the wire, no length prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Key32(pub [u8; 32]);

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// A 64-byte Ed25519 signature: 64 raw bytes on the wire, no length prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sig64(pub [u8; 64]);

impl fmt::Debug for Sig64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl Serialize for Sig64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(64)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Sig64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Sig64Visitor;
        impl<'de> Visitor<'de> for Sig64Visitor {
            type Value = Sig64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sig64, A::Error> {
                let mut out = [0u8; 64];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Sig64(out))
            }
        }
        d.deserialize_tuple(64, Sig64Visitor)
    }
}

/// A list of items kept as their postcard encoding and decoded lazily.
///
/// Wire form: a varint byte length, then the items' encodings back to back (no count: the
/// byte length bounds them). To send a list, build it with [`List::from_items`]; a decoded list
/// borrows the frame buffer.
#[derive(Clone, Copy)]
pub struct List<'a, T> {
    repr: ListRepr<'a, T>,
}

#[derive(Clone, Copy)]
enum ListRepr<'a, T> {
    Items(&'a [T]),
    Encoded(&'a [u8], PhantomData<T>),
}

impl<'a, T> List<'a, T>
where
    T: Serialize + Deserialize<'a> + Copy,
{
    /// A list to be sent, over items the caller holds.
    pub const fn from_items(items: &'a [T]) -> Self {
        Self {
            repr: ListRepr::Items(items),
        }
    }

    /// The empty list.
    pub const fn empty() -> Self {
        Self {
            repr: ListRepr::Items(&[]),
        }
    }

    /// The items, in order.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter { repr: self.repr }
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        match self.repr {
            ListRepr::Items(items) => items.len(),
            ListRepr::Encoded(..) => self.iter().count(),
        }
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Checks a decoded list: every item decodes and there are at most `max` of them.
    fn validate(&self, max: usize) -> Result<(), DecodeError> {
        match self.repr {
            ListRepr::Items(items) if items.len() <= max => Ok(()),
            ListRepr::Items(_) => Err(DecodeError::TooManyItems),
            ListRepr::Encoded(mut rest, _) => {
                let mut count = 0usize;
                while !rest.is_empty() {
                    count += 1;
                    if count > max {
                        return Err(DecodeError::TooManyItems);
                    }
                    let (_, tail) =
                        postcard::take_from_bytes::<T>(rest).map_err(DecodeError::from_postcard)?;
                    rest = tail;
                }
                Ok(())
            }
        }
    }
}

/// Iterator over a [`List`]'s items.
#[derive(Clone)]
pub struct ListIter<'a, T> {
    repr: ListRepr<'a, T>,
}

impl<'a, T> Iterator for ListIter<'a, T>
where
    T: Deserialize<'a> + Copy,
{
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.repr {
            ListRepr::Items(items) => {
                let (first, rest) = items.split_first()?;
                *items = rest;
                Some(*first)
            }
            ListRepr::Encoded(bytes, _) => {
                if bytes.is_empty() {
                    return None;
                }
                // A decoded list was validated whole, so this only stops on a list that was
                // built by hand from bad bytes; it then ends early instead of failing.
                match postcard::take_from_bytes::<T>(bytes) {
                    Ok((item, rest)) => {
                        *bytes = rest;
                        Some(item)
                    }
                    Err(_) => {
                        *bytes = &[];
                        None
                    }
                }
            }
        }
    }
}

impl<'a, T> PartialEq for List<'a, T>
where
    T: Serialize + Deserialize<'a> + Copy + PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a, T> fmt::Debug for List<'a, T>
where
    T: Serialize + Deserialize<'a> + Copy + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T> Serialize for List<'a, T>
where
    T: Serialize + Deserialize<'a> + Copy,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.repr {
            ListRepr::Encoded(bytes, _) => s.serialize_bytes(bytes),
            ListRepr::Items(items) => {
                // The same bytes `serialize_bytes` would give: varint length, then the items.
                let mut total = 0usize;
                for item in items {
                    total += postcard::experimental::serialized_size(item)
                        .map_err(serde::ser::Error::custom)?;
                }
                let mut t = s.serialize_tuple(items.len() + 1)?;
                t.serialize_element(&total)?;
                for item in items {
                    t.serialize_element(item)?;
                }
                t.end()
            }
        }
    }
}

impl<'de: 'a, 'a, T> Deserialize<'de> for List<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: &'a [u8] = <&'de [u8]>::deserialize(d)?;
        Ok(Self {
            repr: ListRepr::Encoded(bytes, PhantomData),
        })
    }
}

/// A signed prekey as published: its id, X25519 public key, and the Ed25519 signature by the
/// identity key over `"Sealroom SPK v1" || key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPrekey {
    /// Chosen by the device; names this prekey in an initial message.
    pub id: u32,
    /// X25519 public key.
    pub key: Key32,
    /// Ed25519 signature by the identity signing key.
    pub signature: Sig64,
}

/// A one-time prekey as published: its id and X25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimePrekey {
    /// Chosen by the device; names this prekey in an initial message.
    pub id: u32,
    /// X25519 public key.
    pub key: Key32,
}

/// A KEM prekey (PQXDH, PROTOCOL.md §4.8) as published and handed out: its id, ML-KEM-768
/// encapsulation key and the Ed25519 signature by the identity key over
/// `"Sealroom KEM PK v1" || device_id || id || key`. A message whose KEM key is not exactly
/// [`KEM_PUBLIC_KEY_LEN`](crate::KEM_PUBLIC_KEY_LEN) bytes does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KemPrekey<'a> {
    /// Chosen by the device; names this KEM prekey in a first message.
    pub id: u32,
    /// The encapsulation key `ek` (1,184 bytes).
    pub key: &'a [u8],
    /// Ed25519 signature by the identity signing key, for the owning device.
    pub signature: Sig64,
}

impl KemPrekey<'_> {
    fn validate(&self) -> Result<(), DecodeError> {
        if self.key.len() == KEM_PUBLIC_KEY_LEN {
            Ok(())
        } else {
            Err(DecodeError::Malformed)
        }
    }
}

/// A device's public keys, sent at registration. Private keys never leave the device.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceKeys<'a> {
    /// Ed25519 identity signing key `IKs`.
    pub identity_sig: Key32,
    /// X25519 identity key `IKd`.
    pub identity_dh: Key32,
    /// The current signed prekey.
    pub signed_prekey: SignedPrekey,
    /// A batch of one-time prekeys, at most [`MAX_PREKEYS_PER_UPLOAD`].
    #[serde(borrow)]
    pub one_time_prekeys: List<'a, OneTimePrekey>,
}

/// What a sender needs to start a session with a user: the server hands out each one-time
/// prekey once, and sends `None` when it has run out.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrekeyBundle<'a> {
    /// Whose bundle this is.
    pub username: &'a str,
    /// Ed25519 identity signing key `IKs`.
    pub identity_sig: Key32,
    /// X25519 identity key `IKd`.
    pub identity_dh: Key32,
    /// The current signed prekey; check its signature before use.
    pub signed_prekey: SignedPrekey,
    /// A one-time prekey, removed from the directory as it was handed out.
    pub one_time_prekey: Option<OneTimePrekey>,
}

/// One device's copy of a direct message in [`Message::SendToDevices`]: the ciphertext made
/// with the session to that device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceBody<'a> {
    /// The recipient device's id, as listed in [`Message::Devices`].
    pub device: u32,
    /// The end-to-end encrypted envelope for that device; at most
    /// [`MAX_BODY`](crate::limits::MAX_BODY) bytes.
    pub body: &'a [u8],
}

/// One device of the caller's own account in [`Message::DeviceList`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo<'a> {
    /// The device's id (assigned by the server, never reused within the account).
    pub device_id: u32,
    /// The name the device gave itself ([`Message::NameDevice`]); empty if it gave none.
    pub name: &'a str,
    /// When it was added, Unix seconds.
    pub added_at: u64,
    /// When it last logged in or resumed a session, Unix seconds.
    pub last_seen: u64,
    /// When it was revoked (the account started over, or a device revoked it), Unix seconds.
    pub revoked_at: Option<u64>,
}

/// What happened to a room's membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomChange {
    /// The user accepted an invitation and is now a member.
    Joined,
    /// The user left.
    Left,
    /// The room's admin removed the user.
    Removed,
    /// Sent to the invitee only: `username` invited them. They are not a member until they
    /// accept ([`Message::AcceptInvite`]); nothing of the room reaches them before.
    Invited,
    /// The room's signed roster has a new version (PROTOCOL.md §4.7): fetch it with
    /// [`Message::FetchRoster`]. `username` names who published it; the roster's own
    /// signature, not this notice, says who changed what.
    Roster,
}

/// A stable numeric error code. The text beside it in [`Message::Error`] is for people; programs
/// match on the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The frame could not be decoded.
    pub const BAD_FRAME: Self = Self(1);
    /// The frame's protocol version is not supported.
    pub const UNSUPPORTED_VERSION: Self = Self(2);
    /// The frame or a field in it is larger than allowed.
    pub const TOO_LARGE: Self = Self(3);
    /// The request is not valid in the connection's current state (e.g. not logged in).
    pub const BAD_STATE: Self = Self(4);
    /// Login failed. Deliberately says nothing about which factor or whether the user exists.
    pub const AUTH_FAILED: Self = Self(10);
    /// Too many attempts; try again later.
    pub const RATE_LIMITED: Self = Self(11);
    /// The password is too weak; the text says why.
    pub const WEAK_PASSWORD: Self = Self(12);
    /// The username is taken.
    pub const USERNAME_TAKEN: Self = Self(13);
    /// A field is invalid (email, username form, a key); the text says which.
    pub const INVALID_INPUT: Self = Self(14);
    /// The TOTP code was already used; wait for the next one.
    pub const CODE_REUSED: Self = Self(15);
    /// The session token is unknown, revoked or expired.
    pub const SESSION_EXPIRED: Self = Self(16);
    /// No such user or room.
    pub const NOT_FOUND: Self = Self(20);
    /// Not allowed (not a member, not the admin).
    pub const FORBIDDEN: Self = Self(21);
    /// The recipient's queue is full; try again later.
    pub const QUOTA_FULL: Self = Self(22);
    /// The room name is taken.
    pub const ROOM_TAKEN: Self = Self(23);
    /// A roster that is not the next version of the room's stored chain (another member
    /// published first): fetch the latest and try again.
    pub const CONFLICT: Self = Self(24);
    /// A [`Message::SendToDevices`] did not name exactly the recipient's active devices (one
    /// was added, revoked, or the account started over): fetch them with
    /// [`Message::FetchDevices`], check the identity, and send again. Nothing was stored.
    pub const STALE_DEVICES: Self = Self(25);
    /// The server is at capacity.
    pub const BUSY: Self = Self(30);
    /// The server failed; the request may be retried.
    pub const INTERNAL: Self = Self(31);
}

/// One protocol message. The variant order is the wire tag (see docs/PROTOCOL.md).
///
/// "C→S" marks what a client sends, "S→C" what the server sends.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message<'a> {
    // ---- account ----
    /// C→S: create an account. The server replies [`Message::TotpEnrollment`]; the account is
    /// usable only once [`Message::ConfirmTotp`] succeeds.
    Register {
        /// The person's name, shown to contacts.
        name: &'a str,
        /// Email address.
        email: &'a str,
        /// `[a-z0-9_]{3,32}`, unique, case-folded by the server.
        username: &'a str,
        /// The password, only ever sent inside TLS; the server stores a PBKDF2 hash.
        password: &'a str,
        /// The device's public keys.
        #[serde(borrow)]
        device: DeviceKeys<'a>,
    },
    /// S→C: the TOTP secret to enroll, as an `otpauth://` URI (shown as a QR code).
    TotpEnrollment {
        /// `otpauth://totp/Sealroom:<user>?secret=…&issuer=Sealroom`.
        uri: &'a str,
    },
    /// C→S: a code from the authenticator, finishing enrollment.
    ConfirmTotp {
        /// Six digits.
        code: &'a str,
    },
    /// S→C: enrollment is finished; these one-time recovery codes are shown once.
    EnrollmentComplete {
        /// At most [`MAX_RECOVERY_CODES`] codes.
        #[serde(borrow)]
        recovery_codes: List<'a, &'a str>,
    },
    /// C→S: first login factor.
    Login {
        /// The account's username.
        username: &'a str,
        /// The password.
        password: &'a str,
    },
    /// S→C: send the second factor next.
    TotpRequired,
    /// C→S: second login factor, a TOTP code.
    TotpCode {
        /// Six digits.
        code: &'a str,
    },
    /// C→S: second login factor, a one-time recovery code instead of TOTP.
    RecoveryCode {
        /// The recovery code as shown at enrollment.
        code: &'a str,
    },
    /// C→S: resume a session with a token from an earlier login.
    Resume {
        /// The account's username.
        username: &'a str,
        /// The 256-bit session token.
        token: Key32,
    },
    /// S→C: logged in (or resumed).
    Session {
        /// The 256-bit session token; the server keeps only its hash.
        token: Key32,
        /// Expiry, Unix seconds.
        expires_at: u64,
    },
    /// C→S: revoke the current session token.
    Logout,

    // ---- keys ----
    /// C→S: replace the device's identity keys (a new device). Contacts will see a key change.
    PublishIdentity {
        /// Ed25519 identity signing key `IKs`.
        identity_sig: Key32,
        /// X25519 identity key `IKd`.
        identity_dh: Key32,
    },
    /// C→S: replace the signed prekey; the server checks its signature.
    PublishSignedPrekey {
        /// The new signed prekey.
        prekey: SignedPrekey,
    },
    /// C→S: add one-time prekeys.
    UploadPrekeys {
        /// At most [`MAX_PREKEYS_PER_UPLOAD`].
        #[serde(borrow)]
        prekeys: List<'a, OneTimePrekey>,
    },
    /// C→S: ask for a user's prekey bundle.
    FetchBundle {
        /// Whose bundle.
        username: &'a str,
    },
    /// S→C: the bundle asked for.
    Bundle {
        /// The bundle.
        #[serde(borrow)]
        bundle: PrekeyBundle<'a>,
    },
    /// S→C: this many one-time prekeys are left; upload more.
    PrekeysLow {
        /// Prekeys remaining on the server.
        remaining: u32,
    },

    // ---- messaging ----
    /// C→S: store and forward a ciphertext to a user.
    SendToUser {
        /// Recipient's username.
        to: &'a str,
        /// The sender's reference, echoed in [`Message::Accepted`].
        client_id: u64,
        /// The end-to-end encrypted envelope; opaque to the server.
        body: &'a [u8],
    },
    /// C→S: store and forward a ciphertext to every other member of a room.
    SendToRoom {
        /// The room.
        room: &'a str,
        /// The sender's reference, echoed in [`Message::Accepted`].
        client_id: u64,
        /// The end-to-end encrypted room message; opaque to the server.
        body: &'a [u8],
    },
    /// S→C: the message is durably stored ("sent to server").
    Accepted {
        /// The sender's reference.
        client_id: u64,
        /// The server's id for the message.
        server_id: u64,
    },
    /// S→C: a stored message for this user, in queue order; acknowledge with [`Message::Ack`].
    Deliver {
        /// The server's id; also the order of the recipient's queue.
        server_id: u64,
        /// Sender's username.
        from: &'a str,
        /// The room, for a room message.
        room: Option<&'a str>,
        /// When the server accepted it, Unix seconds.
        sent_at: u64,
        /// The ciphertext as the sender sent it.
        body: &'a [u8],
        /// The sending device's id, as the server says (PROTOCOL.md §6 **Devices**): which of
        /// the sender's sessions the body belongs to. A wrong one makes the body undecryptable,
        /// never misattributed (the envelope binds the accounts' identities, not devices).
        device: u32,
    },
    /// C→S: the message is safely received; the server may delete it.
    Ack {
        /// The delivered message's id.
        server_id: u64,
    },
    /// S→C: a message this user sent was acknowledged by one of its recipient's devices
    /// ("delivered"). A direct message gets one per device it was stored for: the sender counts
    /// the distinct devices ("delivered to 2 of 3 devices").
    Delivered {
        /// The id given in [`Message::Accepted`].
        server_id: u64,
        /// Who acknowledged it.
        to: &'a str,
        /// Which of their devices acknowledged it.
        device: u32,
    },

    // ---- rooms ----
    /// C→S: create a room; the creator is its admin and first member.
    CreateRoom {
        /// `[a-z0-9_-]{1,32}`, unique.
        room: &'a str,
    },
    /// C→S: add a user to a room (members only).
    Invite {
        /// The room.
        room: &'a str,
        /// Who to add.
        username: &'a str,
    },
    /// C→S: leave a room.
    Leave {
        /// The room.
        room: &'a str,
    },
    /// C→S: remove a member (the room's admin only).
    Remove {
        /// The room.
        room: &'a str,
        /// Who to remove.
        username: &'a str,
    },
    /// C→S: list the rooms this user is in.
    ListRooms,
    /// S→C: the rooms this user is in.
    Rooms {
        /// At most [`MAX_ROOMS_LISTED`] room names.
        #[serde(borrow)]
        rooms: List<'a, &'a str>,
    },
    /// C→S: list a room's members.
    ListMembers {
        /// The room.
        room: &'a str,
    },
    /// S→C: a room's members.
    Members {
        /// The room.
        room: &'a str,
        /// The room's admin.
        admin: &'a str,
        /// At most [`MAX_ROOM_MEMBERS`] usernames.
        #[serde(borrow)]
        members: List<'a, &'a str>,
    },
    /// S→C: a room's membership changed; members start a new sender-key epoch.
    RoomChanged {
        /// The room.
        room: &'a str,
        /// Whose membership changed.
        username: &'a str,
        /// What happened.
        change: RoomChange,
    },

    // ---- generic ----
    /// S→C: the request succeeded and has no other reply.
    Ok,
    /// S→C: the request failed.
    Error {
        /// Stable, for programs.
        code: ErrorCode,
        /// Short, for people.
        text: &'a str,
    },
    /// Either way: are you there?
    Ping {
        /// Echoed in the pong.
        nonce: u64,
    },
    /// Either way: the answer to a ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },

    // ---- invitations (appended: tags 36-39) ----
    /// C→S: accept an invitation to a room; the user becomes a member and the members (the
    /// user included) get `RoomChanged { change: Joined }`.
    AcceptInvite {
        /// The room.
        room: &'a str,
    },
    /// C→S: decline an invitation to a room.
    DeclineInvite {
        /// The room.
        room: &'a str,
    },
    /// C→S: list the invitations waiting for this user.
    ListInvitations,
    /// S→C: the invitations waiting for this user: `rooms[i]` from `from[i]`.
    Invitations {
        /// At most [`MAX_ROOMS_LISTED`] room names.
        #[serde(borrow)]
        rooms: List<'a, &'a str>,
        /// Who invited, one per room, in the same order.
        #[serde(borrow)]
        from: List<'a, &'a str>,
    },

    // ---- account recovery (appended: tags 40-47) ----
    /// C→S (logged in): change the password. Needs the current password and a second factor
    /// (`code`: six digits are a TOTP code, anything else a recovery code, which is used up).
    /// Every other session of the account is revoked. Reply: `Ok`.
    ChangePassword {
        /// The current password.
        current: &'a str,
        /// The new password (the registration strength rule applies).
        new: &'a str,
        /// A TOTP code or a recovery code.
        code: &'a str,
    },
    /// C→S (logged in): start enrolling a new authenticator. Needs the password and a second
    /// factor (as in [`Message::ChangePassword`]). Reply: [`Message::TotpEnrollment`] with a new
    /// secret; the old secret stays in force until [`Message::ConfirmNewTotp`] succeeds.
    ReenrollTotp {
        /// The password.
        password: &'a str,
        /// A TOTP code (from the old authenticator) or a recovery code.
        code: &'a str,
    },
    /// C→S (logged in, after [`Message::ReenrollTotp`]): a code from the new authenticator;
    /// the new secret replaces the old one. Reply: `Ok`.
    ConfirmNewTotp {
        /// Six digits.
        code: &'a str,
    },
    /// C→S (logged in): replace every recovery code with new ones. Needs the password and a
    /// second factor. Reply: [`Message::RecoveryCodes`].
    RegenerateRecoveryCodes {
        /// The password.
        password: &'a str,
        /// A TOTP code or a recovery code.
        code: &'a str,
    },
    /// S→C: the account's new recovery codes, shown once; the old ones no longer work.
    RecoveryCodes {
        /// At most [`MAX_RECOVERY_CODES`] codes.
        #[serde(borrow)]
        codes: List<'a, &'a str>,
    },
    /// C→S (logged in): how many recovery codes are left? Reply: [`Message::RecoveryCodesLeft`].
    CountRecoveryCodes,
    /// S→C: the number of unused recovery codes.
    RecoveryCodesLeft {
        /// Unused recovery codes.
        remaining: u32,
    },
    /// C→S (logged in): delete the account: its sessions, keys, queued messages, receipts,
    /// invitations and room memberships (the rooms' members are told it left). Needs the
    /// password and a second factor. Reply: `Ok`, then the server closes the connection.
    DeleteAccount {
        /// The password.
        password: &'a str,
        /// A TOTP code or a recovery code.
        code: &'a str,
    },

    // ---- signed rosters (appended: tags 48-50; PROTOCOL.md §4.7) ----
    /// C→S (a member): append the next version of the room's signed roster. The server
    /// stores it only if it chains to the stored latest (or is a valid first roster when
    /// none is stored); it cannot make one itself. Reply: `Ok`, then every other member gets
    /// `RoomChanged { change: Roster }`; `CONFLICT` when the version is not the next one.
    PublishRoster {
        /// The room.
        room: &'a str,
        /// The encoded, signed roster (at most [`MAX_BODY`](crate::limits::MAX_BODY) bytes).
        roster: &'a [u8],
    },
    /// C→S (a member): the roster of `room` at `version`. Reply: [`Message::Roster`], or
    /// `NOT_FOUND` past the latest.
    FetchRoster {
        /// The room.
        room: &'a str,
        /// Which version.
        version: u64,
    },
    /// S→C: one stored roster, exactly as it was published.
    Roster {
        /// The room.
        room: &'a str,
        /// The encoded, signed roster.
        roster: &'a [u8],
    },

    // ---- devices (appended: tags 51-56; PROTOCOL.md §4.6, §6) ----
    /// C→S (logged in): the account's identity keys and the ids of its active devices; hands
    /// out no prekeys. Reply: [`Message::Devices`], or `NOT_FOUND`.
    FetchDevices {
        /// Whose devices.
        username: &'a str,
    },
    /// S→C: an account's identity keys and active devices. A client compares the identity
    /// with the one it trusts before it encrypts anything to the account.
    Devices {
        /// Whose devices.
        username: &'a str,
        /// Ed25519 identity signing key `IKs` (one per account, shared by its devices).
        identity_sig: Key32,
        /// X25519 identity key `IKd`.
        identity_dh: Key32,
        /// The active devices' ids, ascending, at most [`MAX_DEVICES`].
        #[serde(borrow)]
        devices: List<'a, u32>,
    },
    /// C→S: store and forward a direct message, one ciphertext per device of the recipient.
    /// The server stores them only if `bodies` names exactly the recipient's active devices,
    /// each once; otherwise `STALE_DEVICES` and nothing is stored. Reply: `Accepted`.
    SendToDevices {
        /// Recipient's username.
        to: &'a str,
        /// The sender's reference, echoed in [`Message::Accepted`].
        client_id: u64,
        /// One ciphertext per device, at most [`MAX_DEVICES`].
        #[serde(borrow)]
        bodies: List<'a, DeviceBody<'a>>,
    },
    /// C→S (logged in): name this device (shown in [`Message::DeviceList`]); 1 to
    /// [`MAX_DEVICE_NAME`](crate::limits::MAX_DEVICE_NAME) characters, no control or bidi formatting characters.
    /// Reply: `Ok`.
    NameDevice {
        /// The device's name, e.g. a host name or "Firefox on Linux".
        name: &'a str,
    },
    /// C→S (logged in): the devices of this account. Reply: [`Message::DeviceList`].
    ListDevices,
    /// S→C: the account's devices, the most recent first: the active one(s), then revoked ones.
    DeviceList {
        /// The id of the device this session belongs to.
        current: u32,
        /// At most [`MAX_DEVICES_LISTED`] devices.
        #[serde(borrow)]
        devices: List<'a, DeviceInfo<'a>>,
    },

    // ---- linked devices (appended: tags 57-64; PROTOCOL.md §4.6, §6) ----
    /// C→S: log in as one device of the account. `Login` with the device said first: `Some(id)`
    /// for a device the account has (its queue is delivered once `Session` is sent),
    /// `None` for a device being linked (a session that receives nothing until
    /// [`Message::AddDevice`]). Reply: `TotpRequired`, as `Login`.
    LoginDevice {
        /// The account name.
        username: &'a str,
        /// The password.
        password: &'a str,
        /// Which device logs in; `None` while linking a new one.
        device: Option<u32>,
    },
    /// C→S (a device of the account): relay a link message (PROTOCOL.md §4.6) to the account's
    /// session waiting for `link_id`. Reply: `Ok`; the server keeps it 10 minutes.
    SendLink {
        /// `SHA-256(L_pub)[0..16]` from the link code (16 bytes).
        link_id: &'a [u8],
        /// `E_pub || AEAD(..)`, at most [`MAX_BODY`](crate::limits::MAX_BODY) bytes.
        message: &'a [u8],
    },
    /// C→S (a session linking a new device): the link message sent to `link_id`, if one has
    /// arrived. Reply: [`Message::LinkMessage`], or `NOT_FOUND` (not yet: ask again).
    FetchLink {
        /// The link id of the code this device shows (16 bytes).
        link_id: &'a [u8],
    },
    /// S→C: the link message an existing device sent; the server hands it out once.
    LinkMessage {
        /// `E_pub || AEAD(..)` as sent.
        message: &'a [u8],
    },
    /// C→S (a session linking a new device): the account has a new device, this session's.
    /// Reply: [`Message::DeviceAdded`]; the session is that device from then on.
    AddDevice {
        /// The device's name (as [`Message::NameDevice`]).
        name: &'a str,
    },
    /// S→C: the new device's id (assigned by the server, never reused within the account).
    DeviceAdded {
        /// The id.
        device: u32,
    },
    /// C→S: one device's prekey bundle, handing out one of its one-time prekeys. Its signed
    /// prekey is signed for that device (PROTOCOL.md §4.6). Reply: [`Message::Bundle`], or
    /// `NOT_FOUND`.
    FetchDeviceBundle {
        /// Whose device.
        username: &'a str,
        /// Which device (as listed in [`Message::Devices`]).
        device: u32,
    },
    /// C→S (a device of the account): revoke another of the account's devices: its sessions
    /// end at once, its prekeys and queue are deleted. Reply: `Ok`, or `NOT_FOUND`.
    RevokeDevice {
        /// The device's id.
        device: u32,
    },
    /// C→S: a direct message to `to`'s devices (as [`Message::SendToDevices`]) and, in the same
    /// request, its sent transcript to the sender's other devices (PROTOCOL.md §6 **Devices**:
    /// "sent from another device"). Stored only if `bodies` names exactly `to`'s reachable
    /// devices and `own` exactly the sender's other reachable devices, each once; otherwise
    /// `STALE_DEVICES` and nothing is stored; both or neither. Reply: `Accepted` (the id of the
    /// message to `to`).
    SendSynced {
        /// Recipient's username (not the sender's own).
        to: &'a str,
        /// The sender's reference, echoed in [`Message::Accepted`].
        client_id: u64,
        /// One ciphertext per device of `to`, at most [`MAX_DEVICES`].
        #[serde(borrow)]
        bodies: List<'a, DeviceBody<'a>>,
        /// One ciphertext per other device of the sender, at most [`MAX_DEVICES`]; empty when
        /// it has none.
        #[serde(borrow)]
        own: List<'a, DeviceBody<'a>>,
    },

    // ---- post-quantum prekeys (appended: tags 66-69; PROTOCOL.md §4.8) ----
    /// C→S (a device of the account): publish KEM prekeys for this device. `last_resort`
    /// replaces the device's last-resort KEM prekey (handed out when no one-time one is left);
    /// `one_time` adds one-time KEM prekeys, each handed out once. The server checks every
    /// signature for this device. Reply: `Ok`.
    UploadKemPrekeys {
        /// The new last-resort KEM prekey, if it changes.
        #[serde(borrow)]
        last_resort: Option<KemPrekey<'a>>,
        /// One-time KEM prekeys, at most [`MAX_KEM_PREKEYS_PER_UPLOAD`].
        #[serde(borrow)]
        one_time: List<'a, KemPrekey<'a>>,
    },
    /// C→S: one device's post-quantum bundle: its X3DH bundle (handing out a one-time prekey,
    /// as `FetchDeviceBundle`) and one KEM prekey (a one-time one, removed as it is handed out,
    /// or else the last-resort one). Reply: [`Message::KemBundle`], or `NOT_FOUND`.
    FetchKemBundle {
        /// Whose device.
        username: &'a str,
        /// Which device (as listed in [`Message::Devices`]).
        device: u32,
    },
    /// S→C: a device's post-quantum bundle. A client checks both signatures for the device it
    /// asked for and refuses a bundle without a KEM prekey (there is no classical fallback).
    KemBundle {
        /// The X3DH part, exactly as in [`Message::Bundle`].
        #[serde(borrow)]
        bundle: PrekeyBundle<'a>,
        /// The KEM prekey; `None` when the device has published none.
        #[serde(borrow)]
        kem_prekey: Option<KemPrekey<'a>>,
    },
    /// S→C: this many one-time KEM prekeys are left for this device; upload more.
    KemPrekeysLow {
        /// One-time KEM prekeys remaining on the server.
        remaining: u32,
    },
}

impl Message<'_> {
    /// How many message variants exist; tags are `0..TAG_COUNT`.
    pub const TAG_COUNT: u32 = 70;

    /// Whether the server sends this message unasked (a push), rather than as the reply to a
    /// request (PROTOCOL.md §3.4): `Deliver`, `Delivered`, `RoomChanged`, `PrekeysLow`,
    /// `KemPrekeysLow` and the server's keep-alive `Ping`. A client routes pushes to its event handling and everything
    /// else to the request waiting for a reply.
    pub const fn is_push(&self) -> bool {
        matches!(
            self,
            Message::Deliver { .. }
                | Message::Delivered { .. }
                | Message::RoomChanged { .. }
                | Message::PrekeysLow { .. }
                | Message::Ping { .. }
                | Message::KemPrekeysLow { .. }
        )
    }

    /// [`is_push`](Self::is_push) by message tag (the numbers of PROTOCOL.md §3.4).
    pub const fn tag_is_push(tag: u32) -> bool {
        matches!(tag, 16 | 20 | 22 | 31 | 34 | 69)
    }

    /// The message's name as written in docs/PROTOCOL.md and the vectors.
    pub const fn name(&self) -> &'static str {
        match self {
            Message::Register { .. } => "Register",
            Message::TotpEnrollment { .. } => "TotpEnrollment",
            Message::ConfirmTotp { .. } => "ConfirmTotp",
            Message::EnrollmentComplete { .. } => "EnrollmentComplete",
            Message::Login { .. } => "Login",
            Message::TotpRequired => "TotpRequired",
            Message::TotpCode { .. } => "TotpCode",
            Message::RecoveryCode { .. } => "RecoveryCode",
            Message::Resume { .. } => "Resume",
            Message::Session { .. } => "Session",
            Message::Logout => "Logout",
            Message::PublishIdentity { .. } => "PublishIdentity",
            Message::PublishSignedPrekey { .. } => "PublishSignedPrekey",
            Message::UploadPrekeys { .. } => "UploadPrekeys",
            Message::FetchBundle { .. } => "FetchBundle",
            Message::Bundle { .. } => "Bundle",
            Message::PrekeysLow { .. } => "PrekeysLow",
            Message::SendToUser { .. } => "SendToUser",
            Message::SendToRoom { .. } => "SendToRoom",
            Message::Accepted { .. } => "Accepted",
            Message::Deliver { .. } => "Deliver",
            Message::Ack { .. } => "Ack",
            Message::Delivered { .. } => "Delivered",
            Message::CreateRoom { .. } => "CreateRoom",
            Message::Invite { .. } => "Invite",
            Message::Leave { .. } => "Leave",
            Message::Remove { .. } => "Remove",
            Message::ListRooms => "ListRooms",
            Message::Rooms { .. } => "Rooms",
            Message::ListMembers { .. } => "ListMembers",
            Message::Members { .. } => "Members",
            Message::RoomChanged { .. } => "RoomChanged",
            Message::Ok => "Ok",
            Message::Error { .. } => "Error",
            Message::Ping { .. } => "Ping",
            Message::Pong { .. } => "Pong",
            Message::AcceptInvite { .. } => "AcceptInvite",
            Message::DeclineInvite { .. } => "DeclineInvite",
            Message::ListInvitations => "ListInvitations",
            Message::Invitations { .. } => "Invitations",
            Message::ChangePassword { .. } => "ChangePassword",
            Message::ReenrollTotp { .. } => "ReenrollTotp",
            Message::ConfirmNewTotp { .. } => "ConfirmNewTotp",
            Message::RegenerateRecoveryCodes { .. } => "RegenerateRecoveryCodes",
            Message::RecoveryCodes { .. } => "RecoveryCodes",
            Message::CountRecoveryCodes => "CountRecoveryCodes",
            Message::RecoveryCodesLeft { .. } => "RecoveryCodesLeft",
            Message::DeleteAccount { .. } => "DeleteAccount",
            Message::PublishRoster { .. } => "PublishRoster",
            Message::FetchRoster { .. } => "FetchRoster",
            Message::Roster { .. } => "Roster",
            Message::FetchDevices { .. } => "FetchDevices",
            Message::Devices { .. } => "Devices",
            Message::SendToDevices { .. } => "SendToDevices",
            Message::NameDevice { .. } => "NameDevice",
            Message::ListDevices => "ListDevices",
            Message::DeviceList { .. } => "DeviceList",
            Message::LoginDevice { .. } => "LoginDevice",
            Message::SendLink { .. } => "SendLink",
            Message::FetchLink { .. } => "FetchLink",
            Message::LinkMessage { .. } => "LinkMessage",
            Message::AddDevice { .. } => "AddDevice",
            Message::DeviceAdded { .. } => "DeviceAdded",
            Message::FetchDeviceBundle { .. } => "FetchDeviceBundle",
            Message::RevokeDevice { .. } => "RevokeDevice",
            Message::SendSynced { .. } => "SendSynced",
            Message::UploadKemPrekeys { .. } => "UploadKemPrekeys",
            Message::FetchKemBundle { .. } => "FetchKemBundle",
            Message::KemBundle { .. } => "KemBundle",
            Message::KemPrekeysLow { .. } => "KemPrekeysLow",
        }
    }

    /// Checks what postcard alone cannot: every list decodes whole and is within its limit.
    pub(crate) fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Message::Register { device, .. } => {
                device.one_time_prekeys.validate(MAX_PREKEYS_PER_UPLOAD)
            }
            Message::EnrollmentComplete { recovery_codes } => {
                recovery_codes.validate(MAX_RECOVERY_CODES)
            }
            Message::RecoveryCodes { codes } => codes.validate(MAX_RECOVERY_CODES),
            Message::UploadPrekeys { prekeys } => prekeys.validate(MAX_PREKEYS_PER_UPLOAD),
            Message::Rooms { rooms } => rooms.validate(MAX_ROOMS_LISTED),
            Message::Members { members, .. } => members.validate(MAX_ROOM_MEMBERS),
            Message::Devices { devices, .. } => devices.validate(MAX_DEVICES),
            Message::SendToDevices { bodies, .. } => bodies.validate(MAX_DEVICES),
            Message::SendSynced { bodies, own, .. } => {
                bodies.validate(MAX_DEVICES)?;
                own.validate(MAX_DEVICES)
            }
            Message::DeviceList { devices, .. } => devices.validate(MAX_DEVICES_LISTED),
            Message::UploadKemPrekeys {
                last_resort,
                one_time,
            } => {
                one_time.validate(MAX_KEM_PREKEYS_PER_UPLOAD)?;
                if let Some(kem) = last_resort {
                    kem.validate()?;
                }
                one_time.iter().try_for_each(|kem| kem.validate())
            }
            Message::KemBundle {
                kem_prekey: Some(kem),
                ..
            } => kem.validate(),
            Message::Invitations { rooms, from } => {
                rooms.validate(MAX_ROOMS_LISTED)?;
                from.validate(MAX_ROOMS_LISTED)?;
                if rooms.len() == from.len() {
                    Ok(())
                } else {
                    Err(DecodeError::Malformed)
                }
            }
            _ => Ok(()),
        }
    }
}

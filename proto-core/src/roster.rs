//! Signed rosters: room membership that the server cannot forge (PROTOCOL.md §4.7).
//!
//! A room's membership is a chain of rosters, each signed by an identity key (`IKs`). Version 0
//! is signed by the room's creator, its first admin. Version N+1 names the SHA-256 of version N
//! and is valid when its signer is an admin of version N, or a member of N leaving (N+1 is N
//! minus that member alone). The epoch goes up by exactly one whenever anyone leaves or is
//! removed (a member whose identity key changed counts as removed and added), never otherwise,
//! and never past `u32::MAX`. Clients keep the latest roster that chains to the one they hold
//! and hand sender keys only to its members; the server stores and relays the chain but cannot
//! extend it.
//!
//! Encoding (big-endian), then `Ed25519(signer, "Sealroom Roster v1" || encoding)`:
//!
//! ```text
//! room_id 16 | version u64 | epoch u32 | prev 32 | n_admins u8 | admins (IKs 32 each)
//!   | n_members u16 | members (len u8 | username | IKs 32) | signer 32 | signature 64
//! ```
//!
//! Canonical form, checked by [`Roster::parse`]: usernames are folded, valid usernames
//! (PROTOCOL.md §3.5) in strictly ascending byte order; admins are in strictly ascending byte
//! order, at least one, each the key of a member; nothing follows the signature. Parsing
//! borrows the bytes and allocates nothing.
//!
//! This module owns the bytes and the chain rules. Who to invite, and what to show when the
//! roster changes, are the client's.

use core::fmt;

use sha2::{Digest, Sha256};

use crate::caller::CallerError;
use crate::keys::{IdentityKeyPair, KEY_LEN, SIGNATURE_LEN, ed25519_verify_parts};
use crate::names::{USERNAME_MAX_LEN, is_username};
use crate::room::ROOM_ID_LEN;

/// The prefix an identity key signs in front of a roster's encoding.
pub const ROSTER_LABEL: &[u8] = b"Sealroom Roster v1";
/// The most members a roster may list: a room's limit (PROTOCOL.md §3.3).
pub const ROSTER_MAX_MEMBERS: usize = crate::limits::MAX_ROOM_MEMBERS;
/// The most admins a roster may list (the count is one byte).
pub const ROSTER_MAX_ADMINS: usize = 255;
/// Bytes of a roster with no admins and no members: the fixed fields, signer and signature.
const FIXED_LEN: usize = ROOM_ID_LEN + 8 + 4 + 32 + 1 + 2 + KEY_LEN + SIGNATURE_LEN;
/// The longest roster: every member with the longest username, every admin. A buffer for
/// [`write_roster`] needs 18 bytes more (the label is assembled in front of the encoding).
pub const ROSTER_MAX_LEN: usize =
    FIXED_LEN + ROSTER_MAX_ADMINS * KEY_LEN + ROSTER_MAX_MEMBERS * (1 + USERNAME_MAX_LEN + KEY_LEN);

/// Why a roster, or a step of the chain, was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RosterError {
    /// The bytes end before the roster does.
    Truncated,
    /// Bytes follow the signature.
    TrailingBytes,
    /// More than [`ROSTER_MAX_MEMBERS`] members.
    TooManyMembers,
    /// A username is not a folded, valid username.
    BadUsername,
    /// Usernames or admins are not in strictly ascending order (or repeat).
    NotCanonical,
    /// The roster names no admin.
    NoAdmin,
    /// An admin's key is not the key of any member.
    AdminNotMember,
    /// The signature does not verify under the signer's key.
    BadSignature,
    /// A first roster that is not version 0 with an all-zero `prev`.
    NotFirst,
    /// A first roster whose signer is not one of its admins.
    SignerNotAdmin,
    /// The next roster is for another room.
    WrongRoom,
    /// The next roster's version is not the previous one's plus one.
    WrongVersion,
    /// The next roster's `prev` is not the hash of the previous roster.
    WrongPrevious,
    /// The signer may not make this change: not an admin of the previous roster, nor a member
    /// leaving (and changing nothing else).
    NotAuthorized,
    /// The epoch did not go up by exactly one when someone left, or moved when nobody did.
    WrongEpoch,
    /// Someone left a roster at epoch `u32::MAX`: there is no next epoch.
    EpochOverflow,
    /// A roster handed over as an invitation is not signed by the one who handed it over.
    NotFromSender,
    /// A roster handed over as an invitation does not list the receiver with its own key.
    NotListed,
    /// The calling code's mistake (an output buffer too small).
    Caller(CallerError),
}

impl RosterError {
    /// The name used in vectors (`reject:<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            RosterError::Truncated => "Truncated",
            RosterError::TrailingBytes => "TrailingBytes",
            RosterError::TooManyMembers => "TooManyMembers",
            RosterError::BadUsername => "BadUsername",
            RosterError::NotCanonical => "NotCanonical",
            RosterError::NoAdmin => "NoAdmin",
            RosterError::AdminNotMember => "AdminNotMember",
            RosterError::BadSignature => "BadSignature",
            RosterError::NotFirst => "NotFirst",
            RosterError::SignerNotAdmin => "SignerNotAdmin",
            RosterError::WrongRoom => "WrongRoom",
            RosterError::WrongVersion => "WrongVersion",
            RosterError::WrongPrevious => "WrongPrevious",
            RosterError::NotAuthorized => "NotAuthorized",
            RosterError::WrongEpoch => "WrongEpoch",
            RosterError::EpochOverflow => "EpochOverflow",
            RosterError::NotFromSender => "NotFromSender",
            RosterError::NotListed => "NotListed",
            RosterError::Caller(e) => e.name(),
        }
    }
}

impl fmt::Display for RosterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RosterError::Caller(e) => e.fmt(f),
            other => write!(f, "roster refused: {}", other.name()),
        }
    }
}

impl core::error::Error for RosterError {}

impl From<CallerError> for RosterError {
    fn from(e: CallerError) -> Self {
        RosterError::Caller(e)
    }
}

/// One member: a folded username and the account's identity signing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RosterMember<'a> {
    /// The folded username.
    pub username: &'a str,
    /// The account's `IKs`.
    pub identity: [u8; KEY_LEN],
}

/// What a new roster says, before it is signed.
#[derive(Clone, Copy, Debug)]
pub struct RosterFields<'a> {
    /// The room.
    pub room_id: [u8; ROOM_ID_LEN],
    /// 0 for the first roster, then the previous one's plus one.
    pub version: u64,
    /// The room's epoch under this roster.
    pub epoch: u32,
    /// [`Roster::hash`] of the previous roster; all zero for version 0.
    pub prev: [u8; 32],
    /// The admins' `IKs`, strictly ascending.
    pub admins: &'a [[u8; KEY_LEN]],
    /// The members, by strictly ascending username.
    pub members: &'a [RosterMember<'a>],
}

/// A parsed, signature-checked roster borrowing its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roster<'a> {
    bytes: &'a [u8],
    room_id: [u8; ROOM_ID_LEN],
    version: u64,
    epoch: u32,
    prev: [u8; 32],
    admins: &'a [u8],
    members: &'a [u8],
    member_count: usize,
    signer: [u8; KEY_LEN],
}

/// Reads fixed-size fields off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RosterError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(RosterError::Truncated)?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RosterError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(RosterError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
}

/// The members of a roster, in order.
#[derive(Clone, Debug)]
pub struct Members<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Members<'a> {
    type Item = RosterMember<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (member, rest) = next_member(self.rest).ok()??;
        self.rest = rest;
        Some(member)
    }
}

/// The member at the front of `bytes`, checked (`None` at the end).
#[allow(clippy::type_complexity, reason = "a private parsing step")]
fn next_member(bytes: &[u8]) -> Result<Option<(RosterMember<'_>, &[u8])>, RosterError> {
    let Some((&len, rest)) = bytes.split_first() else {
        return Ok(None);
    };
    let mut r = Reader(rest);
    let name = r.take(usize::from(len))?;
    let identity = r.array::<KEY_LEN>()?;
    let username = core::str::from_utf8(name).map_err(|_| RosterError::BadUsername)?;
    if !is_username(username) {
        return Err(RosterError::BadUsername);
    }
    Ok(Some((RosterMember { username, identity }, r.0)))
}

impl<'a> Roster<'a> {
    /// Parses a signed roster, checks its canonical form and its signature by its signer.
    /// Whether that signer may sign it is for [`check_first`](Self::check_first) and
    /// [`check_next`](Self::check_next).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RosterError> {
        let mut r = Reader(bytes);
        let room_id = r.array::<ROOM_ID_LEN>()?;
        let version = u64::from_be_bytes(r.array::<8>()?);
        let epoch = u32::from_be_bytes(r.array::<4>()?);
        let prev = r.array::<32>()?;
        let [n_admins] = r.array::<1>()?;
        let admins = r.take(usize::from(n_admins) * KEY_LEN)?;
        let member_count = usize::from(u16::from_be_bytes(r.array::<2>()?));
        if member_count > ROSTER_MAX_MEMBERS {
            return Err(RosterError::TooManyMembers);
        }
        let members_start = r.0;
        let mut last: Option<&str> = None;
        for _ in 0..member_count {
            let (member, rest) = next_member(r.0)?.ok_or(RosterError::Truncated)?;
            if last.is_some_and(|l| l.as_bytes() >= member.username.as_bytes()) {
                return Err(RosterError::NotCanonical);
            }
            last = Some(member.username);
            r.0 = rest;
        }
        let members = members_start
            .get(..members_start.len() - r.0.len())
            .ok_or(RosterError::Truncated)?;
        let signer = r.array::<KEY_LEN>()?;
        let signed_len = bytes.len() - r.0.len();
        let signature = r.array::<SIGNATURE_LEN>()?;
        if !r.0.is_empty() {
            return Err(RosterError::TrailingBytes);
        }
        let roster = Self {
            bytes,
            room_id,
            version,
            epoch,
            prev,
            admins,
            members,
            member_count,
            signer,
        };
        if n_admins == 0 {
            return Err(RosterError::NoAdmin);
        }
        let mut previous: Option<&[u8]> = None;
        for admin in admins.chunks_exact(KEY_LEN) {
            if previous.is_some_and(|p| p >= admin) {
                return Err(RosterError::NotCanonical);
            }
            previous = Some(admin);
            if !roster.members().any(|m| m.identity == admin) {
                return Err(RosterError::AdminNotMember);
            }
        }
        let encoding = bytes.get(..signed_len).ok_or(RosterError::Truncated)?;
        verify_signature(&signer, encoding, &signature)?;
        Ok(roster)
    }

    /// The room.
    pub fn room_id(&self) -> &[u8; ROOM_ID_LEN] {
        &self.room_id
    }

    /// The roster's version (0 for the first).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The room's epoch under this roster.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Who signed it.
    pub fn signer(&self) -> &[u8; KEY_LEN] {
        &self.signer
    }

    /// The signed bytes, signature included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// SHA-256 of the whole signed roster: what the next version names as `prev`.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.bytes).into()
    }

    /// The members, by ascending username.
    pub fn members(&self) -> Members<'a> {
        Members { rest: self.members }
    }

    /// How many members.
    pub fn member_count(&self) -> usize {
        self.member_count
    }

    /// The admins' keys, ascending.
    pub fn admins(&self) -> impl Iterator<Item = [u8; KEY_LEN]> + 'a {
        self.admins
            .chunks_exact(KEY_LEN)
            .filter_map(|c| c.try_into().ok())
    }

    /// Whether `identity` is an admin.
    pub fn is_admin(&self, identity: &[u8; KEY_LEN]) -> bool {
        self.admins().any(|a| a == *identity)
    }

    /// The member with this identity key, if any.
    pub fn member_by_identity(&self, identity: &[u8; KEY_LEN]) -> Option<RosterMember<'a>> {
        self.members().find(|m| m.identity == *identity)
    }

    /// Whether `username` is a member with exactly this identity key.
    pub fn contains(&self, username: &str, identity: &[u8; KEY_LEN]) -> bool {
        self.members()
            .any(|m| m.username == username && m.identity == *identity)
    }

    /// Checks a roster taken as a room's first: version 0, `prev` all zero, signed by one of its
    /// admins (the creator).
    pub fn check_first(&self) -> Result<(), RosterError> {
        if self.version != 0 || self.prev != [0; 32] {
            return Err(RosterError::NotFirst);
        }
        if !self.is_admin(&self.signer) {
            return Err(RosterError::SignerNotAdmin);
        }
        Ok(())
    }

    /// Checks that `next` may follow this roster, in this order: same room, version + 1,
    /// `prev` = [`hash`](Self::hash), a signer allowed to make the change, the epoch rule.
    pub fn check_next(&self, next: &Roster<'_>) -> Result<(), RosterError> {
        if next.room_id != self.room_id {
            return Err(RosterError::WrongRoom);
        }
        if self.version.checked_add(1) != Some(next.version) {
            return Err(RosterError::WrongVersion);
        }
        if next.prev != self.hash() {
            return Err(RosterError::WrongPrevious);
        }
        if !self.is_admin(&next.signer) {
            let leaving = self
                .member_by_identity(&next.signer)
                .ok_or(RosterError::NotAuthorized)?;
            let same_admins = next.admins == self.admins;
            let rest_unchanged = next.member_count + 1 == self.member_count
                && self.members().filter(|m| *m != leaving).eq(next.members());
            if !(same_admins && rest_unchanged) {
                return Err(RosterError::NotAuthorized);
            }
        }
        let departed = self
            .members()
            .any(|m| !next.contains(m.username, &m.identity));
        let epoch = if departed {
            self.epoch
                .checked_add(1)
                .ok_or(RosterError::EpochOverflow)?
        } else {
            self.epoch
        };
        if next.epoch != epoch {
            return Err(RosterError::WrongEpoch);
        }
        Ok(())
    }

    /// Checks a roster handed over in a `Content::Roster` (PROTOCOL.md §4.7 step 3) as the
    /// receiver's starting point in the room with id `room_id`, in this order: the room
    /// (`WrongRoom`), signed by `sender` (`NotFromSender`), `sender` an admin in it
    /// (`SignerNotAdmin`), listing `receiver` with `receiver_identity` (`NotListed`). The
    /// signature itself was checked by [`parse`](Self::parse). Whether the sender's identity
    /// may be trusted, and whether the receiver already holds a roster, are the client's.
    pub fn check_invitation(
        &self,
        room_id: &[u8; ROOM_ID_LEN],
        sender: &[u8; KEY_LEN],
        receiver: &str,
        receiver_identity: &[u8; KEY_LEN],
    ) -> Result<(), RosterError> {
        if self.room_id != *room_id {
            return Err(RosterError::WrongRoom);
        }
        if self.signer != *sender {
            return Err(RosterError::NotFromSender);
        }
        if !self.is_admin(sender) {
            return Err(RosterError::SignerNotAdmin);
        }
        if !self.contains(receiver, receiver_identity) {
            return Err(RosterError::NotListed);
        }
        Ok(())
    }

    /// The members of this roster that `next` no longer lists (left, removed, or with another
    /// identity key): the ones whose departure starts a new epoch.
    pub fn departed<'s>(
        &'s self,
        next: &'s Roster<'_>,
    ) -> impl Iterator<Item = RosterMember<'a>> + 's {
        self.members()
            .filter(move |m| !next.contains(m.username, &m.identity))
    }
}

fn verify_signature(
    signer: &[u8; KEY_LEN],
    encoding: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), RosterError> {
    ed25519_verify_parts(signer, &[ROSTER_LABEL, encoding], signature)
        .map_err(|_| RosterError::BadSignature)
}

/// Encodes `fields`, signs them with `signer` into `out` (at least the roster's length plus 18
/// bytes), and returns the roster's length. The result is parsed back before it is returned, so a roster that is not canonical (order,
/// usernames, admins) is refused here rather than by every reader.
pub fn write_roster(
    fields: &RosterFields<'_>,
    signer: &IdentityKeyPair,
    out: &mut [u8],
) -> Result<usize, RosterError> {
    if fields.members.len() > ROSTER_MAX_MEMBERS {
        return Err(RosterError::TooManyMembers);
    }
    let n_admins = u8::try_from(fields.admins.len()).map_err(|_| RosterError::NotCanonical)?;
    let n_members = u16::try_from(fields.members.len()).map_err(|_| RosterError::TooManyMembers)?;
    // The encoding is written after room for the label, so that label || encoding, the signed
    // message, is contiguous in `out`; then it is moved to the front and the signature follows.
    let label_len = ROSTER_LABEL.len();
    let mut at = label_len;
    let mut put = |bytes: &[u8]| -> Result<(), RosterError> {
        let end = at + bytes.len();
        out.get_mut(at..end)
            .ok_or(CallerError::BufferTooSmall)?
            .copy_from_slice(bytes);
        at = end;
        Ok(())
    };
    put(&fields.room_id)?;
    put(&fields.version.to_be_bytes())?;
    put(&fields.epoch.to_be_bytes())?;
    put(&fields.prev)?;
    put(&[n_admins])?;
    for admin in fields.admins {
        put(admin)?;
    }
    put(&n_members.to_be_bytes())?;
    for m in fields.members {
        let len = u8::try_from(m.username.len()).map_err(|_| RosterError::BadUsername)?;
        put(&[len])?;
        put(m.username.as_bytes())?;
        put(&m.identity)?;
    }
    put(&signer.public().signing)?;
    let signed_end = at;
    let total = signed_end - label_len + SIGNATURE_LEN;
    let message = out
        .get_mut(..signed_end)
        .ok_or(CallerError::BufferTooSmall)?;
    message
        .get_mut(..label_len)
        .ok_or(CallerError::BufferTooSmall)?
        .copy_from_slice(ROSTER_LABEL);
    let signature = signer.sign(message);
    out.copy_within(label_len..signed_end, 0);
    out.get_mut(signed_end - label_len..total)
        .ok_or(CallerError::BufferTooSmall)?
        .copy_from_slice(&signature);
    Roster::parse(out.get(..total).ok_or(CallerError::BufferTooSmall)?)?;
    Ok(total)
}

#[cfg(test)]
mod tests;

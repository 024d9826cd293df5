//! The room state one member keeps: its own sender chain and every other member's.

use core::fmt;

use ed25519_dalek::{Signer, SigningKey};
use rand_core::CryptoRng;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::distribution::SenderKeyDistribution;
use super::{
    DEFAULT_ROOM_MEMBERS, DistributionError, MembershipError, ROOM_HEADER_LEN, ROOM_ID_LEN,
    ROOM_OVERHEAD, ROOM_VERSION, RoomDecryptError, RoomEncryptError,
};
use crate::aead::AEAD_TAG_LEN;
use crate::caller::CallerError;
use crate::kdf::ROOM_INFO;
use crate::keys::ed25519_verify;
use crate::ratchet::DEFAULT_MAX_SKIP;
use crate::ratchet::chain_key::{ChainKey, store_skipped, walk};
use crate::ratchet::message_key::MessageKey;
use crate::ratchet::skipped::SkippedKeys;

/// Our own sender chain for the current epoch.
pub(super) struct OwnChain {
    pub(super) key: ChainKey,
    pub(super) iteration: u32,
    pub(super) signing: SigningKey,
}

/// Another member's sender chain, from their distribution message.
pub(super) struct MemberChain {
    pub(super) epoch: u32,
    pub(super) key: ChainKey,
    pub(super) iteration: u32,
    pub(super) verifying: [u8; 32],
}

/// A member slot: who, and their chain once it arrived.
///
/// The room keeps a fixed array of slots rather than a `heapless::Vec` of members: a slot is
/// freed by overwriting it in place (its chain key zeroized as `MemberChain` drops), whereas
/// `heapless::Vec::remove` shifts elements by copying and leaves the last slot's bytes behind
/// with no way to wipe them.
pub(super) struct MemberSlot {
    pub(super) sender: Option<[u8; 32]>,
    pub(super) chain: Option<MemberChain>,
}

impl MemberSlot {
    pub(super) const EMPTY: Self = Self {
        sender: None,
        chain: None,
    };
}

/// A decrypted room message: who sent it and how long the plaintext is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomPlaintext {
    /// The sender's identity signing key `IKs`.
    pub sender: [u8; 32],
    /// The sender's iteration (message number in this epoch).
    pub iteration: u32,
    /// Plaintext bytes written to the output slice.
    pub len: usize,
}

/// One member's view of a room: its own sender key and the other members' (fixed capacity).
///
/// `MEMBERS` is how many other members it tracks (default [`DEFAULT_ROOM_MEMBERS`]);
/// `MAX_SKIP` is the capacity of the skipped-key storage shared by all of them, and the most keys
/// one message may skip. Secrets are zeroized on drop; `Debug` prints `[redacted]`.
///
/// Call order: [`create`](Self::create) (or [`read_state`](Self::read_state)) →
/// [`add_member`](Self::add_member) for each other member → send
/// [`distribution`](Self::distribution) to each through the pairwise sessions and pass theirs to
/// [`handle_distribution`](Self::handle_distribution) → [`encrypt`](Self::encrypt) /
/// [`decrypt`](Self::decrypt). When someone leaves: [`remove_member`](Self::remove_member) (or
/// [`start_epoch`](Self::start_epoch) with the room's new epoch), then distribute again.
pub struct Room<
    const MEMBERS: usize = DEFAULT_ROOM_MEMBERS,
    const MAX_SKIP: usize = DEFAULT_MAX_SKIP,
> {
    pub(super) room_id: [u8; ROOM_ID_LEN],
    pub(super) own_sender: [u8; 32],
    pub(super) epoch: u32,
    pub(super) own: OwnChain,
    pub(super) members: [MemberSlot; MEMBERS],
    pub(super) skipped: SkippedKeys<MAX_SKIP>,
}

impl<const MEMBERS: usize, const MAX_SKIP: usize> ZeroizeOnDrop for Room<MEMBERS, MAX_SKIP> {}

impl<const MEMBERS: usize, const MAX_SKIP: usize> fmt::Debug for Room<MEMBERS, MAX_SKIP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Room([redacted])")
    }
}

fn fresh_keys<R: CryptoRng + ?Sized>(rng: &mut R) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let mut chain = Zeroizing::new([0u8; 32]);
    let mut signing = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(chain.as_mut());
    rng.fill_bytes(signing.as_mut());
    (chain, signing)
}

impl<const MEMBERS: usize, const MAX_SKIP: usize> Room<MEMBERS, MAX_SKIP> {
    /// A room with no other members yet, and a fresh sender key for `epoch`.
    ///
    /// `own_sender` is this device's room sender id ([`room_sender_id`](crate::room_sender_id):
    /// what other members know it by).
    pub fn create<R: CryptoRng + ?Sized>(
        rng: &mut R,
        room_id: [u8; ROOM_ID_LEN],
        own_sender: [u8; 32],
        epoch: u32,
    ) -> Self {
        let (chain, signing) = fresh_keys(rng);
        Self::with_keys(room_id, own_sender, epoch, &chain, &signing)
    }

    /// [`create`](Self::create) with a given chain key and signing secret, for test vectors only.
    #[cfg(any(test, feature = "vectors"))]
    pub fn create_with_fixed_keys_for_tests(
        room_id: [u8; ROOM_ID_LEN],
        own_sender: [u8; 32],
        epoch: u32,
        chain_key: &[u8; 32],
        signing_secret: &[u8; 32],
    ) -> Self {
        Self::with_keys(room_id, own_sender, epoch, chain_key, signing_secret)
    }

    fn with_keys(
        room_id: [u8; ROOM_ID_LEN],
        own_sender: [u8; 32],
        epoch: u32,
        chain_key: &[u8; 32],
        signing_secret: &[u8; 32],
    ) -> Self {
        Self {
            room_id,
            own_sender,
            epoch,
            own: OwnChain {
                key: ChainKey(*chain_key),
                iteration: 0,
                signing: SigningKey::from_bytes(signing_secret),
            },
            members: [const { MemberSlot::EMPTY }; MEMBERS],
            skipped: SkippedKeys::new(),
        }
    }

    /// The room's id.
    pub fn room_id(&self) -> &[u8; ROOM_ID_LEN] {
        &self.room_id
    }

    /// The current epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// How many other members the room tracks.
    pub fn member_count(&self) -> usize {
        self.members.iter().filter(|m| m.sender.is_some()).count()
    }

    /// Whether `sender` is a member (other than us).
    pub fn is_member(&self, sender: &[u8; 32]) -> bool {
        self.slot(sender).is_some()
    }

    /// How many skipped message keys are stored (never more than `MAX_SKIP`).
    pub fn skipped_key_count(&self) -> usize {
        self.skipped.len()
    }

    fn slot(&self, sender: &[u8; 32]) -> Option<&MemberSlot> {
        self.members
            .iter()
            .find(|m| m.sender.as_ref() == Some(sender))
    }

    fn slot_mut(&mut self, sender: &[u8; 32]) -> Option<&mut MemberSlot> {
        self.members
            .iter_mut()
            .find(|m| m.sender.as_ref() == Some(sender))
    }

    /// Track another member. Their messages decrypt once their distribution arrives.
    ///
    /// A new member cannot read earlier messages: distributions carry the current iteration.
    pub fn add_member(&mut self, sender: &[u8; 32]) -> Result<(), MembershipError> {
        if self.is_member(sender) || *sender == self.own_sender {
            return Err(MembershipError::AlreadyMember);
        }
        let slot = self
            .members
            .iter_mut()
            .find(|m| m.sender.is_none())
            .ok_or(MembershipError::RoomFull)?;
        *slot = MemberSlot {
            sender: Some(*sender),
            chain: None,
        };
        Ok(())
    }

    /// Remove a member and start the next epoch with a fresh sender key of our own.
    ///
    /// Then send [`distribution`](Self::distribution) to every remaining member.
    pub fn remove_member<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        sender: &[u8; 32],
    ) -> Result<(), MembershipError> {
        // The next epoch is checked first: a member who cannot be moved past (the room at
        // epoch 2³² − 1) must not be dropped from the slots while everyone keeps the keys they
        // already hold.
        let next = self
            .epoch
            .checked_add(1)
            .ok_or(MembershipError::StaleEpoch)?;
        let slot = self.slot_mut(sender).ok_or(MembershipError::NotMember)?;
        *slot = MemberSlot::EMPTY;
        self.skipped.remove_chain(sender);
        self.start_epoch(rng, next)
    }

    /// Remove every one of `senders` the room tracks (the devices of one member who left) and,
    /// if any was tracked, start the next epoch once. Returns how many were removed; nothing
    /// changes when none was, or when no next epoch exists (`StaleEpoch`).
    pub fn remove_members<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        senders: &[[u8; 32]],
    ) -> Result<usize, MembershipError> {
        if !senders.iter().any(|s| self.is_member(s)) {
            return Ok(0);
        }
        let next = self
            .epoch
            .checked_add(1)
            .ok_or(MembershipError::StaleEpoch)?;
        let mut removed = 0;
        for sender in senders {
            if let Some(slot) = self.slot_mut(sender) {
                *slot = MemberSlot::EMPTY;
                self.skipped.remove_chain(sender);
                removed += 1;
            }
        }
        self.start_epoch(rng, next)?;
        Ok(removed)
    }

    /// Our own sender id in this room (what the others know this device by).
    pub fn own_sender(&self) -> &[u8; 32] {
        &self.own_sender
    }

    /// [`remove_member`](Self::remove_member) with given keys for the next epoch, for test
    /// vectors only.
    #[cfg(any(test, feature = "vectors"))]
    pub fn remove_member_with_fixed_keys_for_tests(
        &mut self,
        sender: &[u8; 32],
        chain_key: &[u8; 32],
        signing_secret: &[u8; 32],
    ) -> Result<(), MembershipError> {
        let next = self
            .epoch
            .checked_add(1)
            .ok_or(MembershipError::StaleEpoch)?;
        let slot = self.slot_mut(sender).ok_or(MembershipError::NotMember)?;
        *slot = MemberSlot::EMPTY;
        self.skipped.remove_chain(sender);
        self.start_epoch_with(next, chain_key, signing_secret)
    }

    /// Move to `epoch` (later than the current one) with a fresh chain and signing key.
    ///
    /// Other members' keys for earlier epochs are forgotten; keys they already sent for this
    /// epoch or later are kept.
    pub fn start_epoch<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        epoch: u32,
    ) -> Result<(), MembershipError> {
        let (chain, signing) = fresh_keys(rng);
        self.start_epoch_with(epoch, &chain, &signing)
    }

    /// [`start_epoch`](Self::start_epoch) with given keys, for test vectors only.
    #[cfg(any(test, feature = "vectors"))]
    pub fn start_epoch_with_fixed_keys_for_tests(
        &mut self,
        epoch: u32,
        chain_key: &[u8; 32],
        signing_secret: &[u8; 32],
    ) -> Result<(), MembershipError> {
        self.start_epoch_with(epoch, chain_key, signing_secret)
    }

    fn start_epoch_with(
        &mut self,
        epoch: u32,
        chain_key: &[u8; 32],
        signing_secret: &[u8; 32],
    ) -> Result<(), MembershipError> {
        if epoch <= self.epoch {
            return Err(MembershipError::StaleEpoch);
        }
        self.epoch = epoch;
        self.own = OwnChain {
            key: ChainKey(*chain_key),
            iteration: 0,
            signing: SigningKey::from_bytes(signing_secret),
        };
        for slot in &mut self.members {
            if slot.chain.as_ref().is_some_and(|c| c.epoch < epoch) {
                slot.chain = None;
                if let Some(sender) = slot.sender {
                    self.skipped.remove_chain(&sender);
                }
            }
        }
        Ok(())
    }

    /// Our sender key at its current iteration, to send to every member (inside the pairwise
    /// sessions).
    pub fn distribution(&self) -> SenderKeyDistribution {
        SenderKeyDistribution {
            room_id: self.room_id,
            sender: self.own_sender,
            epoch: self.epoch,
            iteration: self.own.iteration,
            chain_key: self.own.key.0,
            signing_public: self.own.signing.verifying_key().to_bytes(),
        }
    }

    /// Take in a member's sender key that arrived through the pairwise session with `from`
    /// (that session's peer identity signing key).
    ///
    /// A key for a later epoch than ours is kept for when we get there. The same key again is
    /// accepted and changes nothing.
    pub fn handle_distribution(
        &mut self,
        dist: &SenderKeyDistribution,
        from: &[u8; 32],
    ) -> Result<(), DistributionError> {
        if dist.room_id != self.room_id {
            return Err(DistributionError::WrongRoom);
        }
        if dist.sender != *from {
            return Err(DistributionError::SenderMismatch);
        }
        if dist.epoch < self.epoch {
            return Err(DistributionError::WrongEpoch);
        }
        let slot = self
            .slot_mut(&dist.sender)
            .ok_or(DistributionError::NotMember)?;
        match &slot.chain {
            Some(c) if c.epoch > dist.epoch => return Err(DistributionError::WrongEpoch),
            Some(c) if c.epoch == dist.epoch => {
                return if c.verifying == dist.signing_public {
                    Ok(())
                } else {
                    Err(DistributionError::EpochConflict)
                };
            }
            _ => {}
        }
        slot.chain = Some(MemberChain {
            epoch: dist.epoch,
            key: ChainKey(dist.chain_key),
            iteration: dist.iteration,
            verifying: dist.signing_public,
        });
        self.skipped.remove_chain(&dist.sender);
        Ok(())
    }

    /// Encrypt and sign `plaintext` into `out`; return the length written
    /// (`plaintext.len() + ROOM_OVERHEAD`).
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, RoomEncryptError> {
        let total = plaintext
            .len()
            .checked_add(ROOM_OVERHEAD)
            .ok_or(RoomEncryptError::BufferTooSmall)?;
        let out = out
            .get_mut(..total)
            .ok_or(RoomEncryptError::BufferTooSmall)?;
        if self.own.iteration == u32::MAX {
            return Err(RoomEncryptError::ChainExhausted);
        }
        let header = room_header(
            &self.room_id,
            &self.own_sender,
            self.epoch,
            self.own.iteration,
        );
        let (signed, signature) = out.split_at_mut(total - 64);
        let (head, body) = signed.split_at_mut(ROOM_HEADER_LEN);
        head.copy_from_slice(&header);
        let (ciphertext, tag) = body.split_at_mut(plaintext.len());
        ciphertext.copy_from_slice(plaintext);
        let (mk, next) = self.own.key.step();
        tag.copy_from_slice(&mk.seal(ROOM_INFO, &header, ciphertext));
        signature.copy_from_slice(&self.own.signing.sign(signed).to_bytes());
        self.own.key = next;
        self.own.iteration += 1;
        Ok(total)
    }

    /// Verify and decrypt a room message into `out`.
    ///
    /// On any error the room is unchanged.
    pub fn decrypt(
        &mut self,
        message: &[u8],
        out: &mut [u8],
    ) -> Result<RoomPlaintext, RoomDecryptError> {
        let (signed, signature) = message
            .split_last_chunk::<64>()
            .ok_or(RoomDecryptError::Malformed)?;
        let (header, rest) = signed
            .split_first_chunk::<ROOM_HEADER_LEN>()
            .ok_or(RoomDecryptError::Malformed)?;
        let (ciphertext, tag) = rest
            .split_last_chunk::<AEAD_TAG_LEN>()
            .ok_or(RoomDecryptError::Malformed)?;
        let fields = RoomHeader::parse(header).ok_or(RoomDecryptError::Malformed)?;
        if fields.room_id != self.room_id {
            return Err(RoomDecryptError::WrongRoom);
        }
        let chain = self
            .slot(&fields.sender)
            .and_then(|s| s.chain.as_ref())
            .ok_or(RoomDecryptError::UnknownSender)?;
        if fields.epoch != chain.epoch || fields.epoch < self.epoch {
            return Err(RoomDecryptError::WrongEpoch);
        }
        ed25519_verify(&chain.verifying, signed, signature)
            .map_err(|_| RoomDecryptError::BadSignature)?;
        let out = out
            .get_mut(..ciphertext.len())
            .ok_or(RoomDecryptError::Caller(CallerError::BufferTooSmall))?;
        out.copy_from_slice(ciphertext);
        let i = fields.iteration;
        let result = RoomPlaintext {
            sender: fields.sender,
            iteration: i,
            len: out.len(),
        };

        if let Some(index) = self.skipped.find(&fields.sender, i) {
            let key = self
                .skipped
                .key(index)
                .ok_or(RoomDecryptError::Authentication)?;
            MessageKey(*key)
                .open(ROOM_INFO, header, out, tag)
                .map_err(|_| RoomDecryptError::Authentication)?;
            self.skipped.remove(index);
            return Ok(result);
        }
        if i < chain.iteration {
            return Err(RoomDecryptError::Replay);
        }
        if usize::try_from(i - chain.iteration).map_or(true, |skip| skip > MAX_SKIP) {
            return Err(RoomDecryptError::TooManySkipped);
        }
        let (mk, next) = walk(&chain.key, chain.iteration, i);
        mk.open(ROOM_INFO, header, out, tag)
            .map_err(|_| RoomDecryptError::Authentication)?;
        let (from, start) = (chain.iteration, chain.key.clone());
        store_skipped(&mut self.skipped, &fields.sender, &start, from, i);
        if let Some(chain) = self.slot_mut(&fields.sender).and_then(|s| s.chain.as_mut()) {
            chain.key = next;
            chain.iteration = i.saturating_add(1);
        }
        Ok(result)
    }
}

/// The parsed fixed header of a room message.
struct RoomHeader {
    room_id: [u8; ROOM_ID_LEN],
    sender: [u8; 32],
    epoch: u32,
    iteration: u32,
}

impl RoomHeader {
    fn parse(b: &[u8; ROOM_HEADER_LEN]) -> Option<Self> {
        let [version, rest @ ..] = b;
        if *version != ROOM_VERSION {
            return None;
        }
        let (room_id, rest) = rest.split_first_chunk::<ROOM_ID_LEN>()?;
        let (sender, rest) = rest.split_first_chunk::<32>()?;
        let (epoch, rest) = rest.split_first_chunk::<4>()?;
        let iteration = rest.first_chunk::<4>()?;
        Some(Self {
            room_id: *room_id,
            sender: *sender,
            epoch: u32::from_be_bytes(*epoch),
            iteration: u32::from_be_bytes(*iteration),
        })
    }
}

/// The 57-byte header: version || room id || sender || epoch || iteration.
fn room_header(
    room_id: &[u8; ROOM_ID_LEN],
    sender: &[u8; 32],
    epoch: u32,
    iteration: u32,
) -> [u8; ROOM_HEADER_LEN] {
    let mut out = [0u8; ROOM_HEADER_LEN];
    let mut rest: &mut [u8] = &mut out;
    for field in [
        &[ROOM_VERSION][..],
        room_id,
        sender,
        &epoch.to_be_bytes(),
        &iteration.to_be_bytes(),
    ] {
        let taken = core::mem::take(&mut rest);
        if let Some((head, tail)) = taken.split_at_mut_checked(field.len()) {
            head.copy_from_slice(field);
            rest = tail;
        }
    }
    out
}

//! A room's state as bytes, for a device to keep in flash or a file.
//!
//! # Layout (version 1; big-endian integers; absent values are zeros)
//!
//! | offset | len | field |
//! |---|---|---|
//! | 0 | 1 | version, `0x01` |
//! | 1 | 16 | room id |
//! | 17 | 32 | our sender id (`IKs`) |
//! | 49 | 4 | epoch |
//! | 53 | 32 | our chain key |
//! | 85 | 4 | our iteration |
//! | 89 | 32 | our epoch signing secret (Ed25519 seed) |
//! | 121 | 2 | member capacity `MEMBERS` of the writer |
//! | 123 | 2 | skipped-key capacity `MAX_SKIP` of the writer |
//! | 125 | 105 × `MEMBERS` | member slots: flags (bit 0 member, bit 1 has chain) ‖ sender (32) ‖ epoch (4) ‖ chain key (32) ‖ iteration (4) ‖ signing public key (32) |
//! | … | 2 | number of skipped keys stored |
//! | … | 68 × `MAX_SKIP` | skipped keys, oldest first: sender (32) ‖ iteration (4) ‖ message key (32) |
//!
//! The bytes hold every secret of the room: store them encrypted.

use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use super::ROOM_ID_LEN;
use super::group::{MemberChain, MemberSlot, OwnChain, Room};
use crate::caller::CallerError;
use crate::ratchet::StateError;
use crate::ratchet::chain_key::ChainKey;
use crate::ratchet::skipped::SkippedKeys;
use crate::ratchet::state::{Reader, STATE_VERSION, Writer};

const FIXED_LEN: usize = 125;
const SLOT_LEN: usize = 105;
const MEMBER: u8 = 1;
const HAS_CHAIN: u8 = 2;

impl<const MEMBERS: usize, const MAX_SKIP: usize> Room<MEMBERS, MAX_SKIP> {
    /// Size of this room type's serialized state: 127 + 105 × `MEMBERS` + 68 × `MAX_SKIP` bytes
    /// (7,839 for the defaults).
    pub const STATE_LEN: usize =
        FIXED_LEN + MEMBERS * SLOT_LEN + 2 + MAX_SKIP * SkippedKeys::<MAX_SKIP>::ENTRY_LEN;

    /// Write the whole state into `out` (version byte first); return [`Self::STATE_LEN`].
    ///
    /// The output contains every secret of the room; keep it encrypted at rest.
    pub fn write_state(&self, out: &mut [u8]) -> Result<usize, StateError> {
        let out = out
            .get_mut(..Self::STATE_LEN)
            .ok_or(StateError::Caller(CallerError::BufferTooSmall))?;
        let members = u16::try_from(MEMBERS).map_err(|_| StateError::Malformed)?;
        let skip = u16::try_from(MAX_SKIP).map_err(|_| StateError::Malformed)?;
        let mut w = Writer(out);
        w.put(&[STATE_VERSION])?;
        w.put(&self.room_id)?;
        w.put(&self.own_sender)?;
        w.put(&self.epoch.to_be_bytes())?;
        w.put(&self.own.key.0)?;
        w.put(&self.own.iteration.to_be_bytes())?;
        w.put(self.own.signing.as_bytes())?;
        w.put(&members.to_be_bytes())?;
        w.put(&skip.to_be_bytes())?;
        for slot in &self.members {
            let mut flags = 0;
            if slot.sender.is_some() {
                flags |= MEMBER;
            }
            if slot.chain.is_some() {
                flags |= HAS_CHAIN;
            }
            w.put(&[flags])?;
            w.put(&slot.sender.unwrap_or([0; 32]))?;
            let chain = slot.chain.as_ref();
            w.put(&chain.map_or(0, |c| c.epoch).to_be_bytes())?;
            w.put(chain.map_or(&[0; 32], |c| &c.key.0))?;
            w.put(&chain.map_or(0, |c| c.iteration).to_be_bytes())?;
            w.put(chain.map_or(&[0; 32], |c| &c.verifying))?;
        }
        self.skipped
            .write(w.0)
            .ok_or(StateError::Caller(CallerError::BufferTooSmall))?;
        Ok(Self::STATE_LEN)
    }

    /// Restore a room from [`write_state`](Self::write_state)'s bytes.
    ///
    /// State written with other capacities restores if its members and keys fit.
    pub fn read_state(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = Reader(bytes);
        let [version] = *r.take::<1>()?;
        if version != STATE_VERSION {
            return Err(StateError::UnknownVersion);
        }
        let room_id = *r.take::<ROOM_ID_LEN>()?;
        let own_sender = *r.take::<32>()?;
        let epoch = r.u32()?;
        let own_key = ChainKey(*r.take::<32>()?);
        let own_iteration = r.u32()?;
        let signing = Zeroizing::new(*r.take::<32>()?);
        let stored_members = usize::from(u16::from_be_bytes(*r.take::<2>()?));
        let stored_skip = usize::from(u16::from_be_bytes(*r.take::<2>()?));
        let mut members = [const { MemberSlot::EMPTY }; MEMBERS];
        let mut next = members.iter_mut();
        for _ in 0..stored_members {
            let [flags] = *r.take::<1>()?;
            let sender = *r.take::<32>()?;
            let chain_epoch = r.u32()?;
            let key = ChainKey(*r.take::<32>()?);
            let iteration = r.u32()?;
            let verifying = *r.take::<32>()?;
            if flags & !(MEMBER | HAS_CHAIN) != 0 || flags == HAS_CHAIN {
                return Err(StateError::Malformed);
            }
            if flags & MEMBER == 0 {
                continue;
            }
            let slot = next.next().ok_or(StateError::Malformed)?;
            *slot = MemberSlot {
                sender: Some(sender),
                chain: (flags & HAS_CHAIN != 0).then_some(MemberChain {
                    epoch: chain_epoch,
                    key,
                    iteration,
                    verifying,
                }),
            };
        }
        let skipped_len = 2 + stored_skip * SkippedKeys::<MAX_SKIP>::ENTRY_LEN;
        let skipped_bytes = r.0.get(..skipped_len).ok_or(StateError::Truncated)?;
        let skipped = SkippedKeys::read(skipped_bytes, stored_skip).ok_or(StateError::Malformed)?;
        Ok(Self {
            room_id,
            own_sender,
            epoch,
            own: OwnChain {
                key: own_key,
                iteration: own_iteration,
                signing: SigningKey::from_bytes(&signing),
            },
            members,
            skipped,
        })
    }
}

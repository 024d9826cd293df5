//! A session's state as bytes, for a device to keep in flash or a file.
//!
//! # Layout (version 2; big-endian integers; absent values are zeros)
//!
//! | offset | len | field |
//! |---|---|---|
//! | 0 | 1 | version, `0x02` |
//! | 1 | 1 | flags: bit 0 our ratchet key, bit 1 their ratchet key, bit 2 sending chain, bit 3 receiving chain, bit 4 pending prekey header, bit 5 pending KEM header (PQXDH); other bits zero |
//! | 2 | 2 | skipped-key capacity `MAX_SKIP` of the writer |
//! | 4 | 128 | X3DH associated data |
//! | 132 | 32 | root key |
//! | 164 | 32 | our ratchet secret key |
//! | 196 | 32 | their ratchet public key |
//! | 228 | 32 | sending chain key |
//! | 260 | 4 | sending chain: next message number |
//! | 264 | 32 | receiving chain key |
//! | 296 | 4 | receiving chain: next message number |
//! | 300 | 4 | `pn`: length of the previous sending chain |
//! | 304 | 106 | pending prekey header (the X3DH header layout) |
//! | 410 | 1,092 | pending KEM header `kem_id ‖ ct` (PQXDH; set only with bit 4) |
//! | 1502 | 2 | number of skipped keys stored |
//! | 1504 | 68 × `MAX_SKIP` | skipped keys, oldest first: ratchet key (32) ‖ n (4) ‖ message key (32) |
//!
//! Version 1 (written before PQXDH) is the same without the KEM header field and bit 5; it
//! is still read, so sessions saved by earlier releases continue.
//!
//! The bytes hold every secret of the session: store them encrypted.

use core::fmt;

use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::chain_key::ChainKey;
use super::root_key::RootKey;
use super::session::{Chain, RatchetKeyPair, Session};
use super::skipped::SkippedKeys;
use crate::caller::CallerError;
use crate::pqxdh::{KEM_HEADER_LEN, KemHeader};
use crate::x3dh::{PREKEY_HEADER_LEN, PrekeyHeader, X3DH_AD_LEN};

/// The version byte serialized state starts with.
pub(crate) const STATE_VERSION: u8 = 2;
/// The version written before PQXDH (no KEM header field), still read.
const STATE_VERSION_1: u8 = 1;
/// Bytes before the skipped keys.
const FIXED_LEN: usize = 412 + KEM_HEADER_LEN;

const OUR_RATCHET: u8 = 1 << 0;
const THEIR_RATCHET: u8 = 1 << 1;
const SENDING: u8 = 1 << 2;
const RECEIVING: u8 = 1 << 3;
const PREKEY_HEADER: u8 = 1 << 4;
const KEM_HEADER: u8 = 1 << 5;
const ALL_FLAGS: u8 =
    OUR_RATCHET | THEIR_RATCHET | SENDING | RECEIVING | PREKEY_HEADER | KEM_HEADER;

/// Why session state could not be written or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateError {
    /// The output buffer is shorter than [`Session::STATE_LEN`] (writing; the caller's fault).
    Caller(CallerError),
    /// The state bytes end early (reading).
    Truncated,
    /// The first byte is not a state version this code reads.
    UnknownVersion,
    /// The bytes are not a valid state (bad flags, too many skipped keys for this session
    /// type's capacity, a bad prekey header).
    Malformed,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Caller(_) => "buffer too small for session state",
            Self::Truncated => "session state is truncated",
            Self::UnknownVersion => "unknown session state version",
            Self::Malformed => "malformed session state",
        })
    }
}

impl core::error::Error for StateError {}

/// A cursor that writes fixed-size fields into a slice.
pub(crate) struct Writer<'a>(pub(crate) &'a mut [u8]);

impl Writer<'_> {
    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let taken = core::mem::take(&mut self.0);
        let (head, tail) = taken
            .split_at_mut_checked(bytes.len())
            .ok_or(StateError::Caller(CallerError::BufferTooSmall))?;
        head.copy_from_slice(bytes);
        self.0 = tail;
        Ok(())
    }
}

/// A cursor that reads fixed-size fields from a slice.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take<const L: usize>(&mut self) -> Result<&'a [u8; L], StateError> {
        let (head, tail) = self
            .0
            .split_first_chunk::<L>()
            .ok_or(StateError::Truncated)?;
        self.0 = tail;
        Ok(head)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, StateError> {
        Ok(u32::from_be_bytes(*self.take::<4>()?))
    }
}

impl<const MAX_SKIP: usize> Session<MAX_SKIP> {
    /// Size of this session type's serialized state: 1,504 + 68 × `MAX_SKIP` bytes
    /// (5,856 for the default capacity of 64).
    pub const STATE_LEN: usize = FIXED_LEN + MAX_SKIP * SkippedKeys::<MAX_SKIP>::ENTRY_LEN;

    /// Write the whole state into `out` (version byte first); return [`Self::STATE_LEN`].
    ///
    /// The output contains every secret of the session; keep it encrypted at rest.
    pub fn write_state(&self, out: &mut [u8]) -> Result<usize, StateError> {
        let out = out
            .get_mut(..Self::STATE_LEN)
            .ok_or(StateError::Caller(CallerError::BufferTooSmall))?;
        let zero = [0u8; 32];
        let mut flags = 0;
        let mut set = |present: bool, bit: u8| {
            if present {
                flags |= bit;
            }
        };
        set(self.our_ratchet.is_some(), OUR_RATCHET);
        set(self.their_ratchet.is_some(), THEIR_RATCHET);
        set(self.sending.is_some(), SENDING);
        set(self.receiving.is_some(), RECEIVING);
        set(self.prekey_header.is_some(), PREKEY_HEADER);
        set(
            self.prekey_header.is_some() && self.kem_header.is_some(),
            KEM_HEADER,
        );
        let capacity = u16::try_from(MAX_SKIP).map_err(|_| StateError::Malformed)?;

        let mut w = Writer(out);
        w.put(&[STATE_VERSION, flags])?;
        w.put(&capacity.to_be_bytes())?;
        w.put(&self.ad)?;
        w.put(&self.root.0)?;
        w.put(
            self.our_ratchet
                .as_ref()
                .map_or(&zero, |k| k.secret.as_bytes()),
        )?;
        w.put(self.their_ratchet.as_ref().unwrap_or(&zero))?;
        for chain in [&self.sending, &self.receiving] {
            w.put(chain.as_ref().map_or(&zero, |c| &c.key.0))?;
            w.put(&chain.as_ref().map_or(0, |c| c.n).to_be_bytes())?;
        }
        w.put(&self.previous_sending_len.to_be_bytes())?;
        w.put(
            &self
                .prekey_header
                .map_or([0; PREKEY_HEADER_LEN], |h| h.to_bytes()),
        )?;
        match (&self.prekey_header, &self.kem_header) {
            (Some(_), Some(kem)) => w.put(&kem.to_bytes())?,
            _ => w.put(&[0; KEM_HEADER_LEN])?,
        }
        self.skipped
            .write(w.0)
            .ok_or(StateError::Caller(CallerError::BufferTooSmall))?;
        Ok(Self::STATE_LEN)
    }

    /// Restore a session from [`write_state`](Self::write_state)'s bytes.
    ///
    /// State written by a session with a different `MAX_SKIP` restores if its stored keys fit.
    pub fn read_state(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = Reader(bytes);
        let [version, flags] = *r.take::<2>()?;
        let allowed = match version {
            STATE_VERSION => ALL_FLAGS,
            STATE_VERSION_1 => ALL_FLAGS & !KEM_HEADER,
            _ => return Err(StateError::UnknownVersion),
        };
        if flags & !allowed != 0 {
            return Err(StateError::Malformed);
        }
        let capacity = usize::from(u16::from_be_bytes(*r.take::<2>()?));
        let ad = *r.take::<X3DH_AD_LEN>()?;
        let root = RootKey(*r.take::<32>()?);
        let our_secret = Zeroizing::new(*r.take::<32>()?);
        let their = *r.take::<32>()?;
        let sending_key = ChainKey(*r.take::<32>()?);
        let sending_n = r.u32()?;
        let receiving_key = ChainKey(*r.take::<32>()?);
        let receiving_n = r.u32()?;
        let previous_sending_len = r.u32()?;
        let header = r.take::<PREKEY_HEADER_LEN>()?;
        let kem = if version == STATE_VERSION {
            Some(r.take::<KEM_HEADER_LEN>()?)
        } else {
            None
        };
        let rest = r.0;
        let skipped_len = capacity * SkippedKeys::<MAX_SKIP>::ENTRY_LEN + 2;
        let skipped_bytes = rest.get(..skipped_len).ok_or(StateError::Truncated)?;
        let skipped = SkippedKeys::read(skipped_bytes, capacity).ok_or(StateError::Malformed)?;

        let has = |bit: u8| flags & bit != 0;
        let prekey_header = if has(PREKEY_HEADER) {
            Some(PrekeyHeader::from_bytes(header).map_err(|_| StateError::Malformed)?)
        } else {
            None
        };
        let kem_header = match kem {
            Some(kem) if has(KEM_HEADER) => {
                if prekey_header.is_none() {
                    return Err(StateError::Malformed);
                }
                Some(KemHeader::from_bytes(kem).map_err(|_| StateError::Malformed)?)
            }
            _ => None,
        };
        Ok(Self {
            ad,
            root,
            our_ratchet: has(OUR_RATCHET)
                .then(|| RatchetKeyPair::new(StaticSecret::from(*our_secret))),
            their_ratchet: has(THEIR_RATCHET).then_some(their),
            sending: has(SENDING).then_some(Chain {
                key: sending_key,
                n: sending_n,
            }),
            receiving: has(RECEIVING).then_some(Chain {
                key: receiving_key,
                n: receiving_n,
            }),
            previous_sending_len,
            skipped,
            prekey_header,
            kem_header,
        })
    }
}

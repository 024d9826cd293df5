//! The sender-key distribution message: one member's chain and signing key for an epoch.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{DISTRIBUTION_LEN, DistributionError, ROOM_ID_LEN, ROOM_VERSION};

/// One member's sender key for a room and epoch, as handed to the other members.
///
/// It holds a chain key (a secret): zeroized on drop, `Debug` prints `[redacted]`, and its
/// bytes must travel only inside a pairwise [`Session`](crate::Session).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SenderKeyDistribution {
    pub(super) room_id: [u8; ROOM_ID_LEN],
    pub(super) sender: [u8; 32],
    pub(super) epoch: u32,
    pub(super) iteration: u32,
    pub(super) chain_key: [u8; 32],
    pub(super) signing_public: [u8; 32],
}

impl fmt::Debug for SenderKeyDistribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SenderKeyDistribution([redacted])")
    }
}

impl SenderKeyDistribution {
    /// Decode the 121-byte form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DistributionError> {
        let bytes: &[u8; DISTRIBUTION_LEN] =
            bytes.try_into().map_err(|_| DistributionError::Malformed)?;
        let [version, rest @ ..] = bytes;
        if *version != ROOM_VERSION {
            return Err(DistributionError::UnknownVersion);
        }
        let (room_id, rest) = rest
            .split_first_chunk::<ROOM_ID_LEN>()
            .ok_or(DistributionError::Malformed)?;
        let (sender, rest) = rest
            .split_first_chunk::<32>()
            .ok_or(DistributionError::Malformed)?;
        let (epoch, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(DistributionError::Malformed)?;
        let (iteration, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(DistributionError::Malformed)?;
        let (chain_key, rest) = rest
            .split_first_chunk::<32>()
            .ok_or(DistributionError::Malformed)?;
        let signing_public = rest
            .first_chunk::<32>()
            .ok_or(DistributionError::Malformed)?;
        Ok(Self {
            room_id: *room_id,
            sender: *sender,
            epoch: u32::from_be_bytes(*epoch),
            iteration: u32::from_be_bytes(*iteration),
            chain_key: *chain_key,
            signing_public: *signing_public,
        })
    }

    /// Encode as 121 bytes (zeroized on drop: they hold the chain key).
    pub fn to_bytes(&self) -> Zeroizing<[u8; DISTRIBUTION_LEN]> {
        let mut out = Zeroizing::new([0u8; DISTRIBUTION_LEN]);
        let mut rest: &mut [u8] = out.as_mut();
        for field in [
            &[ROOM_VERSION][..],
            &self.room_id,
            &self.sender,
            &self.epoch.to_be_bytes(),
            &self.iteration.to_be_bytes(),
            &self.chain_key,
            &self.signing_public,
        ] {
            let taken = core::mem::take(&mut rest);
            if let Some((head, tail)) = taken.split_at_mut_checked(field.len()) {
                head.copy_from_slice(field);
                rest = tail;
            }
        }
        out
    }

    /// The room this key is for.
    pub fn room_id(&self) -> &[u8; ROOM_ID_LEN] {
        &self.room_id
    }

    /// The member it belongs to (its identity signing key `IKs`).
    pub fn sender(&self) -> &[u8; 32] {
        &self.sender
    }

    /// The epoch it is for.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The iteration its chain key is at.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The Ed25519 public key that signs the sender's messages in this epoch.
    pub fn signing_public(&self) -> &[u8; 32] {
        &self.signing_public
    }

    /// The chain key, for test vectors only.
    #[cfg(any(test, feature = "vectors"))]
    pub fn chain_key_for_tests(&self) -> [u8; 32] {
        self.chain_key
    }
}

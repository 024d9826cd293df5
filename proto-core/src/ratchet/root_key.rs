//! The root key and the DH ratchet step `KDF_RK`.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::chain_key::ChainKey;
use crate::kdf::{RATCHET_INFO, hkdf_sha256, split_64};

/// The Double Ratchet root key `RK`: advanced once per DH ratchet step.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RootKey(pub(crate) [u8; 32]);

impl RootKey {
    /// `KDF_RK(rk, dh) = HKDF(salt = rk, ikm = dh, "Sealroom Ratchet v1", 64)`: new root key and
    /// chain key.
    pub(crate) fn advance(&self, dh_output: &[u8; 32]) -> (RootKey, ChainKey) {
        let mut okm = [0u8; 64];
        // 64 bytes is within HKDF's limit.
        let _ = hkdf_sha256(&self.0, dh_output, RATCHET_INFO, &mut okm);
        let (rk, ck) = split_64(&okm);
        okm.zeroize();
        (RootKey(rk), ChainKey(ck))
    }
}

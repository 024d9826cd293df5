//! Message keys: one per message, expanded to an AEAD key and nonce, then forgotten.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::aead::{AEAD_TAG_LEN, AuthError, open_in_place, seal_in_place};
use crate::kdf::message_key_material;

/// A message key `mk` from `KDF_CK`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKey(pub(crate) [u8; 32]);

impl MessageKey {
    /// `HKDF(salt = 32 zero bytes, ikm = mk, info, 44)` → (key, nonce).
    fn expand(&self, info: &[u8]) -> (Zeroizing<[u8; 32]>, [u8; 12]) {
        let (key, nonce) = message_key_material(&self.0, info);
        (Zeroizing::new(key), nonce)
    }

    /// Seal `buffer` in place under this key's AEAD key and nonce.
    pub(crate) fn seal(&self, info: &[u8], ad: &[u8], buffer: &mut [u8]) -> [u8; AEAD_TAG_LEN] {
        let (key, nonce) = self.expand(info);
        seal_in_place(&key, &nonce, ad, buffer)
    }

    /// Open `buffer` in place; untouched on failure.
    pub(crate) fn open(
        &self,
        info: &[u8],
        ad: &[u8],
        buffer: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), AuthError> {
        let (key, nonce) = self.expand(info);
        open_in_place(&key, &nonce, ad, buffer, tag)
    }
}

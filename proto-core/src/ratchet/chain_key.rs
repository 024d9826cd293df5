//! Chain keys and the symmetric ratchet step `KDF_CK`.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::message_key::MessageKey;
use super::skipped::SkippedKeys;
use crate::kdf::hmac_sha256;

/// A sending or receiving chain key `CK`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ChainKey(pub(crate) [u8; 32]);

impl ChainKey {
    /// `KDF_CK(ck)`: the message key `HMAC(ck, 0x01)` and the next chain key `HMAC(ck, 0x02)`.
    pub(crate) fn step(&self) -> (MessageKey, ChainKey) {
        (
            MessageKey(hmac_sha256(&self.0, &[0x01])),
            ChainKey(hmac_sha256(&self.0, &[0x02])),
        )
    }
}

/// From `key` (the chain key of message `from`), the message key of `to` and the chain key after it.
pub(crate) fn walk(key: &ChainKey, from: u32, to: u32) -> (MessageKey, ChainKey) {
    let mut ck = key.clone();
    for _ in from..to {
        ck = ck.step().1;
    }
    ck.step()
}

/// Store the message keys of `from..to` on the chain whose key at `from` is `key`.
pub(crate) fn store_skipped<const N: usize>(
    skipped: &mut SkippedKeys<N>,
    chain_id: &[u8; 32],
    key: &ChainKey,
    from: u32,
    to: u32,
) {
    let mut ck = key.clone();
    for i in from..to {
        let (mk, next) = ck.step();
        skipped.push(chain_id, i, &mk.0);
        ck = next;
    }
}

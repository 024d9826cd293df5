//! Key derivation: HKDF-SHA256 and HMAC-SHA256 wrappers, and every protocol label.
//!
//! This module owns the exact bytes of the labels in PROTOCOL.md §4 and the thin wrappers the rest of
//! the crate derives keys through. It implements no primitive itself (RustCrypto's `hkdf`, `hmac`
//! and `sha2` do) and keeps no key material beyond the caller's output buffers.

use core::fmt;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// HKDF `info` for the X3DH shared secret.
pub const X3DH_INFO: &[u8] = b"Sealroom X3DH v1";
/// HKDF `info` for the Double Ratchet root step (`KDF_RK`).
pub const RATCHET_INFO: &[u8] = b"Sealroom Ratchet v1";
/// HKDF `info` for a pairwise message's AEAD key and nonce.
pub const MESSAGE_INFO: &[u8] = b"Sealroom Message v1";
/// HKDF `info` for a room message's AEAD key and nonce.
pub const ROOM_INFO: &[u8] = b"Sealroom Room v1";
/// The prefix an identity key signs in front of a signed prekey's public key.
pub const SIGNED_PREKEY_LABEL: &[u8] = b"Sealroom SPK v1";
/// The prefix an identity key signs in front of a linked device's id and signed prekey
/// (`"Sealroom SPK v2" || device_id || SPK`, PROTOCOL.md §4.6).
pub const DEVICE_PREKEY_LABEL: &[u8] = b"Sealroom SPK v2";
/// HKDF `info` for the key and nonce of a device link message (PROTOCOL.md §4.6).
pub const LINK_INFO: &[u8] = b"Sealroom Link v1";

/// The all-zero HKDF salt PROTOCOL.md §4 uses wherever it says "salt = 32 zero bytes".
pub(crate) const ZERO_SALT: [u8; 32] = [0; 32];

/// HKDF was asked for more output than RFC 5869 allows (255 × 32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputTooLong;

impl fmt::Display for OutputTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HKDF output longer than 255 × 32 bytes")
    }
}

impl core::error::Error for OutputTooLong {}

/// HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info`, fill all of `okm`.
///
/// An empty `salt` is the RFC's "not provided" (32 zero bytes), as in every implementation.
pub fn hkdf_sha256(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    okm: &mut [u8],
) -> Result<(), OutputTooLong> {
    hkdf::Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, okm)
        .map_err(|_| OutputTooLong)
}

/// HMAC-SHA256 (RFC 2104) of `data` under `key` (any length).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of every length, so this never takes the error branch; fall back to a
    // hash of nothing rather than panic if a future version ever disagrees.
    let Ok(mut mac) = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `HKDF(salt = 32 zero bytes, ikm, info, L = 44)` split into an AEAD key and nonce.
///
/// Used for both pairwise (`MESSAGE_INFO`) and room (`ROOM_INFO`) message keys.
pub(crate) fn message_key_material(ikm: &[u8; 32], info: &[u8]) -> ([u8; 32], [u8; 12]) {
    let mut okm = [0u8; 44];
    // 44 bytes is far below the HKDF limit.
    let _ = hkdf_sha256(&ZERO_SALT, ikm, info, &mut okm);
    let (key, nonce) = split_44(&okm);
    zeroize::Zeroize::zeroize(&mut okm);
    (key, nonce)
}

fn split_44(okm: &[u8; 44]) -> ([u8; 32], [u8; 12]) {
    let mut key = [0u8; 32];
    let mut nonce = [0u8; 12];
    let (k, n) = okm.split_at(32);
    key.copy_from_slice(k);
    nonce.copy_from_slice(n);
    (key, nonce)
}

/// Split a 64-byte HKDF output into two 32-byte halves.
pub(crate) fn split_64(okm: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    let (x, y) = okm.split_at(32);
    a.copy_from_slice(x);
    b.copy_from_slice(y);
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_exactly_design_md() {
        assert_eq!(X3DH_INFO, b"Sealroom X3DH v1");
        assert_eq!(RATCHET_INFO, b"Sealroom Ratchet v1");
        assert_eq!(MESSAGE_INFO, b"Sealroom Message v1");
        assert_eq!(ROOM_INFO, b"Sealroom Room v1");
        assert_eq!(SIGNED_PREKEY_LABEL, b"Sealroom SPK v1");
        assert_eq!(DEVICE_PREKEY_LABEL, b"Sealroom SPK v2");
        assert_eq!(LINK_INFO, b"Sealroom Link v1");
    }

    #[test]
    fn zero_salt_equals_empty_salt() {
        let mut a = [0u8; 44];
        let mut b = [0u8; 44];
        hkdf_sha256(&ZERO_SALT, b"ikm", b"info", &mut a).unwrap();
        hkdf_sha256(&[], b"ikm", b"info", &mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn hkdf_rejects_overlong_output() {
        let mut okm = [0u8; 255 * 32 + 1];
        assert_eq!(hkdf_sha256(&[], b"", b"", &mut okm), Err(OutputTooLong));
    }

    #[test]
    fn message_key_material_is_hkdf_44_split() {
        let mut okm = [0u8; 44];
        hkdf_sha256(&ZERO_SALT, &[7; 32], MESSAGE_INFO, &mut okm).unwrap();
        let (k, n) = message_key_material(&[7; 32], MESSAGE_INFO);
        assert_eq!(&okm[..32], &k);
        assert_eq!(&okm[32..], &n);
    }
}

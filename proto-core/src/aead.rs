//! ChaCha20-Poly1305 (RFC 8439) sealing and opening on caller slices.
//!
//! This module owns the one AEAD the protocol uses and the shape of its output: ciphertext in
//! place, then a detached 16-byte tag. It never allocates, never implements the cipher itself
//! (RustCrypto's `chacha20poly1305` does), and reports every opening failure as the same
//! [`AuthError`] so that no caller can learn why.

use core::fmt;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};

/// Key length in bytes.
pub const AEAD_KEY_LEN: usize = 32;
/// Nonce length in bytes.
pub const AEAD_NONCE_LEN: usize = 12;
/// Authentication tag length in bytes.
pub const AEAD_TAG_LEN: usize = 16;

/// Authentication failed: the key, nonce, associated data, ciphertext or tag is not the one sealed.
///
/// Deliberately carries no detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthError;

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("authentication failed")
    }
}

impl core::error::Error for AuthError {}

/// Encrypt `buffer` in place under `key`/`nonce`, authenticating `ad` too; return the tag.
///
/// ChaCha20-Poly1305 rejects only plaintexts longer than 256 GiB, which no slice on any target
/// this crate runs on reaches; such a call returns an all-zero tag that no opener will accept
/// (and leaves `buffer` as it was), rather than panicking.
pub fn seal_in_place(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    buffer: &mut [u8],
) -> [u8; AEAD_TAG_LEN] {
    let cipher = ChaCha20Poly1305::new(<&Key>::from(key));
    match cipher.encrypt_inout_detached(<&Nonce>::from(nonce), ad, buffer.into()) {
        Ok(tag) => tag.into(),
        Err(_) => [0; AEAD_TAG_LEN],
    }
}

/// Verify `tag` over `ad` and the ciphertext in `buffer`, then decrypt `buffer` in place.
///
/// On failure `buffer` is left as it was (the tag is checked before any byte is decrypted).
pub fn open_in_place(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    buffer: &mut [u8],
    tag: &[u8; AEAD_TAG_LEN],
) -> Result<(), AuthError> {
    let cipher = ChaCha20Poly1305::new(<&Key>::from(key));
    cipher
        .decrypt_inout_detached(<&Nonce>::from(nonce), ad, buffer.into(), <&Tag>::from(tag))
        .map_err(|_| AuthError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_tamper_fails() {
        let key = [1u8; 32];
        let nonce = [2u8; 12];
        let mut buf = *b"attack at dawn";
        let tag = seal_in_place(&key, &nonce, b"ad", &mut buf);
        assert_ne!(&buf, b"attack at dawn");
        let sealed = buf;

        let mut bad = sealed;
        bad[0] ^= 1;
        assert_eq!(
            open_in_place(&key, &nonce, b"ad", &mut bad, &tag),
            Err(AuthError)
        );
        assert_eq!(bad[0], sealed[0] ^ 1, "buffer untouched on failure");
        let mut bad_tag = tag;
        bad_tag[15] ^= 0x80;
        assert!(open_in_place(&key, &nonce, b"ad", &mut buf.clone(), &bad_tag).is_err());
        assert!(open_in_place(&key, &nonce, b"aD", &mut buf.clone(), &tag).is_err());
        assert!(open_in_place(&key, &[3; 12], b"ad", &mut buf.clone(), &tag).is_err());

        open_in_place(&key, &nonce, b"ad", &mut buf, &tag).unwrap();
        assert_eq!(&buf, b"attack at dawn");
    }
}

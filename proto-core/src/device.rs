//! Linking a new device to an account (PROTOCOL.md §4.6): the link code the new device shows,
//! and the link message an existing device sends it.
//!
//! The new device makes a link key pair `L` and a 16-byte secret `S` ([`LinkKeyPair`]) and shows
//! the code `1 || L_pub || S` ([`LinkCode`], 49 bytes). The server knows the link only by
//! `link_id = SHA-256(L_pub)[0..16]`. The existing device reads the code, makes an ephemeral
//! X25519 key `E` and sends `E_pub || ChaCha20-Poly1305(key, nonce, ad = link_id, state)`, with
//! key ‖ nonce = HKDF-SHA256(salt = S, ikm = DH(E, L_pub), info = "Sealroom Link v1", 44 bytes)
//! ([`seal_link`]). Only a holder of `L` and `S` opens it ([`LinkKeyPair::open`]); the server,
//! which relays the message by `link_id`, sees neither.
//!
//! This module owns those bytes. What `state` holds (the identity, contacts, rooms) and who may
//! link are the client's business. Secrets zeroize on drop and print `[redacted]` under `Debug`.

use core::fmt;

use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::aead::{AEAD_TAG_LEN, open_in_place, seal_in_place};
use crate::caller::CallerError;
use crate::kdf::{LINK_INFO, hkdf_sha256};
use crate::keys::{KEY_LEN, dh};

/// The version byte a link code starts with.
pub const LINK_CODE_VERSION: u8 = 1;
/// Length of `S`, the link code's secret.
pub const LINK_SECRET_LEN: usize = 16;
/// Length of a link code: version || `L_pub` || `S`.
pub const LINK_CODE_LEN: usize = 1 + KEY_LEN + LINK_SECRET_LEN;
/// Length of a link id: the first 16 bytes of SHA-256(`L_pub`).
pub const LINK_ID_LEN: usize = 16;
/// What a link message adds to the state it carries: `E_pub` and the AEAD tag.
pub const LINK_OVERHEAD: usize = KEY_LEN + AEAD_TAG_LEN;

/// Why a link code or link message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkError {
    /// A link code is not 49 bytes long.
    CodeLength,
    /// A link code starts with a version this implementation does not know.
    UnknownCodeVersion(u8),
    /// A link message is shorter than `E_pub` and a tag.
    Truncated,
    /// The exchange gave the all-zero output: a small-order `E_pub` or `L_pub`.
    NonContributory,
    /// The message does not open under this code: another code, another link id, or altered.
    Authentication,
    /// The calling code's mistake (an output buffer too small).
    Caller(CallerError),
}

impl LinkError {
    /// The name used in vectors (`reject:<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            LinkError::CodeLength => "CodeLength",
            LinkError::UnknownCodeVersion(_) => "UnknownCodeVersion",
            LinkError::Truncated => "Truncated",
            LinkError::NonContributory => "NonContributory",
            LinkError::Authentication => "Authentication",
            LinkError::Caller(e) => e.name(),
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::CodeLength => write!(f, "a link code is {LINK_CODE_LEN} bytes"),
            LinkError::UnknownCodeVersion(v) => write!(f, "unknown link code version {v}"),
            LinkError::Truncated => f.write_str("link message too short"),
            LinkError::NonContributory => f.write_str("non-contributory link key exchange"),
            LinkError::Authentication => {
                f.write_str("the link message does not open under this link code")
            }
            LinkError::Caller(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for LinkError {}

impl From<CallerError> for LinkError {
    fn from(e: CallerError) -> Self {
        LinkError::Caller(e)
    }
}

/// What the new device shows (as a QR code or text): its link public key `L_pub` and the secret
/// `S`. Whoever reads it can send this device an account; keep it on screen only while linking.
///
/// `S` zeroizes on drop; `Debug` prints `[redacted]` for it.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkCode {
    public: [u8; KEY_LEN],
    secret: [u8; LINK_SECRET_LEN],
}

impl Drop for LinkCode {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl fmt::Debug for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkCode")
            .field("public", &self.public)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl LinkCode {
    /// Reads a code: exactly 49 bytes, version 1.
    pub fn decode(bytes: &[u8]) -> Result<Self, LinkError> {
        let code: &[u8; LINK_CODE_LEN] = bytes.try_into().map_err(|_| LinkError::CodeLength)?;
        let (&version, rest) = code.split_first().ok_or(LinkError::CodeLength)?;
        if version != LINK_CODE_VERSION {
            return Err(LinkError::UnknownCodeVersion(version));
        }
        let (public, secret) = rest.split_at(KEY_LEN);
        let mut code = Self {
            public: [0; KEY_LEN],
            secret: [0; LINK_SECRET_LEN],
        };
        code.public.copy_from_slice(public);
        code.secret.copy_from_slice(secret);
        Ok(code)
    }

    /// The code's bytes: version || `L_pub` || `S`. Zeroized on drop.
    pub fn encode(&self) -> Zeroizing<[u8; LINK_CODE_LEN]> {
        let mut out = Zeroizing::new([0u8; LINK_CODE_LEN]);
        let (version, rest) = out.split_at_mut(1);
        let (public, secret) = rest.split_at_mut(KEY_LEN);
        version.fill(LINK_CODE_VERSION);
        public.copy_from_slice(&self.public);
        secret.copy_from_slice(&self.secret);
        out
    }

    /// `L_pub`.
    pub fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// The name the server knows the link by: SHA-256(`L_pub`)[0..16].
    pub fn link_id(&self) -> [u8; LINK_ID_LEN] {
        link_id(&self.public)
    }
}

fn link_id(public: &[u8; KEY_LEN]) -> [u8; LINK_ID_LEN] {
    let digest: [u8; 32] = Sha256::digest(public).into();
    let (id, _) = digest
        .split_first_chunk::<LINK_ID_LEN>()
        .unwrap_or((&[0; LINK_ID_LEN], &[]));
    *id
}

/// HKDF(salt = S, ikm = shared, info = "Sealroom Link v1", 44) → (key, nonce).
fn link_key(shared: &[u8; 32], secret: &[u8; LINK_SECRET_LEN]) -> (Zeroizing<[u8; 32]>, [u8; 12]) {
    let mut okm = Zeroizing::new([0u8; 44]);
    // 44 bytes is far below HKDF's limit, so this cannot fail.
    let _ = hkdf_sha256(secret, shared, LINK_INFO, okm.as_mut());
    let (k, n) = okm.split_at(32);
    let mut key = Zeroizing::new([0u8; 32]);
    let mut nonce = [0u8; 12];
    key.copy_from_slice(k);
    nonce.copy_from_slice(n);
    (key, nonce)
}

/// The new device's side: the link key pair `L` and the secret `S`.
///
/// Zeroized on drop; `Debug` prints `[redacted]`.
pub struct LinkKeyPair {
    secret: StaticSecret,
    code: LinkCode,
}

impl fmt::Debug for LinkKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKeyPair([redacted])")
    }
}

impl LinkKeyPair {
    /// A fresh link key pair and secret from the caller's cryptographically secure RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let secret = StaticSecret::random_from_rng(&mut *rng);
        let mut s = Zeroizing::new([0u8; LINK_SECRET_LEN]);
        rng.fill_bytes(s.as_mut());
        Self::from_parts(secret, &s)
    }

    /// From known secrets (a device that keeps its pending link across a restart; vectors).
    pub fn from_secrets(link_secret: &[u8; KEY_LEN], secret: &[u8; LINK_SECRET_LEN]) -> Self {
        Self::from_parts(StaticSecret::from(*link_secret), secret)
    }

    fn from_parts(link_secret: StaticSecret, secret: &[u8; LINK_SECRET_LEN]) -> Self {
        let public = PublicKey::from(&link_secret).to_bytes();
        Self {
            secret: link_secret,
            code: LinkCode {
                public,
                secret: *secret,
            },
        }
    }

    /// The code to show.
    pub fn code(&self) -> &LinkCode {
        &self.code
    }

    /// Opens a link message into `out` (at least `message.len() - 48` bytes); returns the
    /// state's length. On any error `out` holds nothing of the state.
    pub fn open(&self, message: &[u8], out: &mut [u8]) -> Result<usize, LinkError> {
        let (ephemeral, sealed) = message
            .split_first_chunk::<KEY_LEN>()
            .ok_or(LinkError::Truncated)?;
        let (ciphertext, tag) = sealed
            .split_last_chunk::<AEAD_TAG_LEN>()
            .ok_or(LinkError::Truncated)?;
        let plain = out
            .get_mut(..ciphertext.len())
            .ok_or(CallerError::BufferTooSmall)?;
        let shared = dh(&self.secret, ephemeral).map_err(|_| LinkError::NonContributory)?;
        let (key, nonce) = link_key(&shared, &self.code.secret);
        plain.copy_from_slice(ciphertext);
        if open_in_place(&key, &nonce, &self.code.link_id(), plain, tag).is_err() {
            plain.zeroize();
            return Err(LinkError::Authentication);
        }
        Ok(ciphertext.len())
    }
}

/// The existing device's side: seals `state` for the device that shows `code`, into `out` (at
/// least `state.len() + 48` bytes); returns the message's length. The ephemeral key comes from
/// the caller's cryptographically secure RNG and is dropped (zeroized) after use.
pub fn seal_link<R: CryptoRng + ?Sized>(
    rng: &mut R,
    code: &LinkCode,
    state: &[u8],
    out: &mut [u8],
) -> Result<usize, LinkError> {
    let ephemeral = StaticSecret::random_from_rng(rng);
    seal_with(&ephemeral, code, state, out)
}

/// [`seal_link`] with a given ephemeral secret: for test vectors only. A sender must never reuse
/// an ephemeral secret.
pub fn seal_link_with_ephemeral(
    ephemeral_secret: &[u8; KEY_LEN],
    code: &LinkCode,
    state: &[u8],
    out: &mut [u8],
) -> Result<usize, LinkError> {
    seal_with(&StaticSecret::from(*ephemeral_secret), code, state, out)
}

fn seal_with(
    ephemeral: &StaticSecret,
    code: &LinkCode,
    state: &[u8],
    out: &mut [u8],
) -> Result<usize, LinkError> {
    let total = state.len() + LINK_OVERHEAD;
    let message = out.get_mut(..total).ok_or(CallerError::BufferTooSmall)?;
    let shared = dh(ephemeral, &code.public).map_err(|_| LinkError::NonContributory)?;
    let (key, nonce) = link_key(&shared, &code.secret);
    let (e_pub, rest) = message.split_at_mut(KEY_LEN);
    let (body, tag) = rest.split_at_mut(state.len());
    e_pub.copy_from_slice(&PublicKey::from(ephemeral).to_bytes());
    body.copy_from_slice(state);
    tag.copy_from_slice(&seal_in_place(&key, &nonce, &code.link_id(), body));
    Ok(total)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn pair() -> LinkKeyPair {
        LinkKeyPair::generate(&mut ChaCha20Rng::seed_from_u64(1))
    }

    #[test]
    fn a_sealed_state_opens_only_with_its_code() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let new_device = pair();
        let code = LinkCode::decode(new_device.code().encode().as_ref()).unwrap();
        assert_eq!(&code, new_device.code());
        let state = b"identity, contacts, rooms";
        let mut msg = [0u8; 25 + LINK_OVERHEAD];
        let n = seal_link(&mut rng, &code, state, &mut msg).unwrap();
        assert_eq!(n, msg.len());
        let mut out = [0u8; 25];
        assert_eq!(new_device.open(&msg, &mut out), Ok(25));
        assert_eq!(&out, state);

        // Every altered byte fails, and leaves nothing in `out`.
        for i in 0..msg.len() {
            let mut bad = msg;
            bad[i] ^= 0x40;
            let mut out = [0u8; 25];
            let err = new_device.open(&bad, &mut out).unwrap_err();
            assert!(
                matches!(err, LinkError::Authentication | LinkError::NonContributory),
                "byte {i}: {err:?}"
            );
            assert_eq!(out, [0u8; 25]);
        }
        // Another device's code (same L, another S) does not open it.
        let other = LinkKeyPair::from_secrets(&[7; 32], &[1; 16]);
        let mut out = [0u8; 25];
        assert_eq!(other.open(&msg, &mut out), Err(LinkError::Authentication));
    }

    #[test]
    fn codes_and_messages_of_the_wrong_shape_are_refused() {
        let code = pair().code().encode();
        assert_eq!(LinkCode::decode(&code[..48]), Err(LinkError::CodeLength));
        let mut v2 = *code;
        v2[0] = 2;
        assert_eq!(LinkCode::decode(&v2), Err(LinkError::UnknownCodeVersion(2)));
        let mut out = [0u8; 64];
        assert_eq!(
            pair().open(&[0u8; LINK_OVERHEAD - 1], &mut out),
            Err(LinkError::Truncated)
        );
        // A small-order E_pub (all zero) is refused before any decryption.
        assert_eq!(
            pair().open(&[0u8; LINK_OVERHEAD + 4], &mut out),
            Err(LinkError::NonContributory)
        );
        // Too small an output buffer is the caller's error.
        let mut msg = [0u8; 4 + LINK_OVERHEAD];
        let c = LinkCode::decode(code.as_ref()).unwrap();
        seal_link_with_ephemeral(&[9; 32], &c, b"abcd", &mut msg).unwrap();
        assert_eq!(
            pair().open(&msg, &mut [0u8; 3]),
            Err(LinkError::Caller(CallerError::BufferTooSmall))
        );
        assert_eq!(
            seal_link_with_ephemeral(&[9; 32], &c, b"abcd", &mut [0u8; 51]),
            Err(LinkError::Caller(CallerError::BufferTooSmall))
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let p = pair();
        assert!(format!("{p:?}").contains("[redacted]"));
        let shown = format!("{:?}", p.code());
        assert!(shown.contains("[redacted]"));
        assert!(!shown.contains(&format!("{:?}", p.code().secret)));
    }
}

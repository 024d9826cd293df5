//! Device keys: the identity key pair, signed prekeys, one-time prekeys, and their public forms.
//!
//! This module owns key generation (only from a caller's [`CryptoRng`]), the signed-prekey
//! signature (`Ed25519(IKs, "Sealroom SPK v1" || SPK)`), the secret-key byte forms a keystore
//! persists, and the thin X25519/Ed25519 wrappers everything else calls. Every secret zeroizes on
//! drop and prints `[redacted]` under `Debug`. It does not decide which prekeys to publish or
//! when to rotate them; that is the client's business.

use core::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::kdf::{DEVICE_PREKEY_LABEL, SIGNED_PREKEY_LABEL};

/// Length of an X25519 or Ed25519 public key, and of their secret keys.
pub const KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// A signature did not verify (or the public key was not a valid, strong Ed25519 key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureError;

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("signature verification failed")
    }
}

impl core::error::Error for SignatureError {}

/// An X25519 exchange produced the all-zero output (the peer sent a small-order point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NonContributory;

/// The raw X25519 function (RFC 7748 §5): clamp `scalar`, multiply the point `u`.
///
/// No contributory check: this is the primitive exported for test vectors. Protocol code uses
/// the checked exchange, which rejects an all-zero result.
pub fn x25519(scalar: [u8; 32], u: [u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(scalar, u)
}

/// The X25519 public key of a 32-byte secret (`x25519(secret, 9)`).
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    let secret = StaticSecret::from(*secret);
    PublicKey::from(&secret).to_bytes()
}

/// The Ed25519 public key of a 32-byte secret seed (RFC 8032).
pub fn ed25519_public(secret: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(secret).verifying_key().to_bytes()
}

/// An Ed25519 signature (RFC 8032, pure) over `message` by the 32-byte secret seed.
pub fn ed25519_sign(secret: &[u8; 32], message: &[u8]) -> [u8; 64] {
    SigningKey::from_bytes(secret).sign(message).to_bytes()
}

/// Verify an Ed25519 signature, strictly: a non-canonical `S`, a small-order or non-canonical
/// public key or `R` are all rejected (ed25519-dalek's `verify_strict`).
pub fn ed25519_verify(
    public: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(public).map_err(|_| SignatureError)?;
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| SignatureError)
}

/// [`ed25519_verify`] over a message given in parts and hashed as it comes, for messages too long
/// to copy onto the stack (rosters). The same strict checks, in the same order as
/// ed25519-dalek's `verify_strict`: a canonical `S`, a decompressible `R`, neither `A` nor `R`
/// of small order; then the stream verification.
pub(crate) fn ed25519_verify_parts(
    public: &[u8; 32],
    parts: &[&[u8]],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(public).map_err(|_| SignatureError)?;
    let signature = Signature::from_bytes(signature);
    let mut stream = key.verify_stream(&signature).map_err(|_| SignatureError)?;
    let r = curve25519_dalek::edwards::CompressedEdwardsY(*signature.r_bytes())
        .decompress()
        .ok_or(SignatureError)?;
    if r.is_small_order() || key.is_weak() {
        return Err(SignatureError);
    }
    for part in parts {
        stream.update(part);
    }
    stream.finalize_and_verify().map_err(|_| SignatureError)
}

/// X25519 between our secret and a peer's public key, rejecting an all-zero output.
pub(crate) fn dh(
    secret: &StaticSecret,
    public: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, NonContributory> {
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    if shared.was_contributory() {
        Ok(Zeroizing::new(shared.to_bytes()))
    } else {
        Err(NonContributory)
    }
}

/// The message a signed prekey's signature covers: `"Sealroom SPK v1" || SPK`.
fn signed_prekey_message(public: &[u8; 32]) -> [u8; 15 + 32] {
    let mut msg = [0u8; 15 + 32];
    let (label, key) = msg.split_at_mut(SIGNED_PREKEY_LABEL.len());
    label.copy_from_slice(SIGNED_PREKEY_LABEL);
    key.copy_from_slice(public);
    msg
}

/// The message a linked device's signed prekey signature covers:
/// `"Sealroom SPK v2" || device_id (u32 BE) || SPK` (PROTOCOL.md §4.6).
fn device_prekey_message(device_id: u32, public: &[u8; 32]) -> [u8; 15 + 4 + 32] {
    let mut msg = [0u8; 15 + 4 + 32];
    let (label, rest) = msg.split_at_mut(DEVICE_PREKEY_LABEL.len());
    label.copy_from_slice(DEVICE_PREKEY_LABEL);
    let (id, key) = rest.split_at_mut(4);
    id.copy_from_slice(&device_id.to_be_bytes());
    key.copy_from_slice(public);
    msg
}

/// A device's long-term identity: an Ed25519 signing key `IKs` and an X25519 key `IKd`.
///
/// Zeroized on drop. `Debug` prints `[redacted]`.
pub struct IdentityKeyPair {
    signing: SigningKey,
    dh: StaticSecret,
    dh_public: [u8; 32],
}

/// The public half of an [`IdentityKeyPair`]: what the key directory publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdentityPublicKey {
    /// `IKs`: the Ed25519 public key that signs prekeys.
    pub signing: [u8; 32],
    /// `IKd`: the X25519 public key used in X3DH.
    pub dh: [u8; 32],
}

impl IdentityKeyPair {
    /// Length of [`to_secret_bytes`](Self::to_secret_bytes): Ed25519 seed || X25519 secret.
    pub const SECRET_LEN: usize = 64;

    /// A fresh identity from the caller's cryptographically secure RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        let signing = SigningKey::from_bytes(&seed);
        let dh = StaticSecret::random_from_rng(rng);
        Self::from_parts(signing, dh)
    }

    fn from_parts(signing: SigningKey, dh: StaticSecret) -> Self {
        let dh_public = PublicKey::from(&dh).to_bytes();
        Self {
            signing,
            dh,
            dh_public,
        }
    }

    /// Rebuild an identity from its two 32-byte secrets (Ed25519 seed, X25519 secret).
    pub fn from_secrets(signing_secret: &[u8; 32], dh_secret: &[u8; 32]) -> Self {
        Self::from_parts(
            SigningKey::from_bytes(signing_secret),
            StaticSecret::from(*dh_secret),
        )
    }

    /// Rebuild an identity from [`to_secret_bytes`](Self::to_secret_bytes)' output.
    pub fn from_secret_bytes(bytes: &[u8; Self::SECRET_LEN]) -> Self {
        let mut sig = Zeroizing::new([0u8; 32]);
        let mut dh = Zeroizing::new([0u8; 32]);
        let (a, b) = bytes.split_at(32);
        sig.copy_from_slice(a);
        dh.copy_from_slice(b);
        Self::from_secrets(&sig, &dh)
    }

    /// The secret keys as bytes, for a keystore that encrypts them at rest. Zeroized on drop.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; Self::SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; Self::SECRET_LEN]);
        let (a, b) = out.split_at_mut(32);
        a.copy_from_slice(self.signing.as_bytes());
        b.copy_from_slice(self.dh.as_bytes());
        out
    }

    /// The public keys to publish.
    pub fn public(&self) -> IdentityPublicKey {
        IdentityPublicKey {
            signing: self.signing.verifying_key().to_bytes(),
            dh: self.dh_public,
        }
    }

    /// Sign `message` with `IKs`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    pub(crate) fn dh_secret(&self) -> &StaticSecret {
        &self.dh
    }
}

impl ZeroizeOnDrop for IdentityKeyPair {}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityKeyPair([redacted])")
    }
}

/// A signed prekey `SPK`: an X25519 key pair with its id and the identity's signature.
///
/// It is also the responder's first Double Ratchet key. Zeroized on drop; `Debug` prints
/// `[redacted]`.
pub struct SignedPrekeyPair {
    id: u32,
    secret: StaticSecret,
    public: [u8; 32],
    signature: [u8; 64],
}

/// The public form of a signed prekey, as the key directory hands it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignedPrekeyPublic {
    /// The owner's id for this prekey (named in the initiator's prekey header).
    pub id: u32,
    /// The X25519 public key.
    pub public: [u8; 32],
    /// `Ed25519(IKs, "Sealroom SPK v1" || public)`.
    pub signature: [u8; 64],
}

impl SignedPrekeyPublic {
    /// Check the signature against the owner's identity signing key `IKs`.
    pub fn verify(&self, identity_signing: &[u8; 32]) -> Result<(), SignatureError> {
        ed25519_verify(
            identity_signing,
            &signed_prekey_message(&self.public),
            &self.signature,
        )
    }
}

impl SignedPrekeyPublic {
    /// Check a linked device's signature (PROTOCOL.md §4.6): `IKs` signed this prekey for
    /// `device_id`. A signature made for another device, or a v1 signature (no device id),
    /// does not verify: the server cannot move a prekey from one device to another.
    pub fn verify_for_device(
        &self,
        identity_signing: &[u8; 32],
        device_id: u32,
    ) -> Result<(), SignatureError> {
        ed25519_verify(
            identity_signing,
            &device_prekey_message(device_id, &self.public),
            &self.signature,
        )
    }
}

impl From<&crate::message::SignedPrekey> for SignedPrekeyPublic {
    fn from(w: &crate::message::SignedPrekey) -> Self {
        Self {
            id: w.id,
            public: w.key.0,
            signature: w.signature.0,
        }
    }
}

impl crate::message::SignedPrekey {
    /// Checks the signature by the owner's identity signing key `IKs` (PROTOCOL.md §4.1): what
    /// the key directory checks before it stores a signed prekey, and a client before it uses one.
    pub fn verify(&self, identity_signing: &[u8; 32]) -> Result<(), SignatureError> {
        SignedPrekeyPublic::from(self).verify(identity_signing)
    }
}

/// Checks that `public` is a valid, strong Ed25519 public key (canonical, not of small order),
/// as an identity signing key must be.
pub fn ed25519_check_public(public: &[u8; 32]) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(public).map_err(|_| SignatureError)?;
    if key.is_weak() {
        return Err(SignatureError);
    }
    Ok(())
}

impl SignedPrekeyPair {
    /// Length of [`to_secret_bytes`](Self::to_secret_bytes): id (u32 BE) || secret || signature.
    pub const SECRET_LEN: usize = 4 + 32 + 64;

    /// A fresh signed prekey, signed by `identity`.
    pub fn generate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        id: u32,
        identity: &IdentityKeyPair,
    ) -> Self {
        Self::from_secret(id, StaticSecret::random_from_rng(rng), identity)
    }

    /// A signed prekey from a known secret (keystore import, test vectors), signed by `identity`.
    ///
    /// Ed25519 signing is deterministic, so the same inputs always give the same signature.
    pub fn from_secret_key(id: u32, secret: &[u8; 32], identity: &IdentityKeyPair) -> Self {
        Self::from_secret(id, StaticSecret::from(*secret), identity)
    }

    fn from_secret(id: u32, secret: StaticSecret, identity: &IdentityKeyPair) -> Self {
        let public = PublicKey::from(&secret).to_bytes();
        let signature = identity.sign(&signed_prekey_message(&public));
        Self {
            id,
            secret,
            public,
            signature,
        }
    }

    /// A fresh signed prekey for the linked device `device_id`, signed by the account's
    /// `identity` over `"Sealroom SPK v2" || device_id || SPK` (PROTOCOL.md §4.6).
    pub fn generate_for_device<R: CryptoRng + ?Sized>(
        rng: &mut R,
        id: u32,
        device_id: u32,
        identity: &IdentityKeyPair,
    ) -> Self {
        Self::from_secret_for_device(id, device_id, StaticSecret::random_from_rng(rng), identity)
    }

    /// [`generate_for_device`](Self::generate_for_device) from a known secret (test vectors).
    pub fn from_secret_key_for_device(
        id: u32,
        device_id: u32,
        secret: &[u8; 32],
        identity: &IdentityKeyPair,
    ) -> Self {
        Self::from_secret_for_device(id, device_id, StaticSecret::from(*secret), identity)
    }

    fn from_secret_for_device(
        id: u32,
        device_id: u32,
        secret: StaticSecret,
        identity: &IdentityKeyPair,
    ) -> Self {
        let public = PublicKey::from(&secret).to_bytes();
        let signature = identity.sign(&device_prekey_message(device_id, &public));
        Self {
            id,
            secret,
            public,
            signature,
        }
    }

    /// Rebuild from [`to_secret_bytes`](Self::to_secret_bytes)' output.
    pub fn from_secret_bytes(bytes: &[u8; Self::SECRET_LEN]) -> Self {
        let mut id = [0u8; 4];
        let mut secret = Zeroizing::new([0u8; 32]);
        let mut signature = [0u8; 64];
        let (a, rest) = bytes.split_at(4);
        let (b, c) = rest.split_at(32);
        id.copy_from_slice(a);
        secret.copy_from_slice(b);
        signature.copy_from_slice(c);
        let secret = StaticSecret::from(*secret);
        let public = PublicKey::from(&secret).to_bytes();
        Self {
            id: u32::from_be_bytes(id),
            secret,
            public,
            signature,
        }
    }

    /// id || secret || signature, for a keystore. Zeroized on drop.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; Self::SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; Self::SECRET_LEN]);
        let (a, rest) = out.split_at_mut(4);
        let (b, c) = rest.split_at_mut(32);
        a.copy_from_slice(&self.id.to_be_bytes());
        b.copy_from_slice(self.secret.as_bytes());
        c.copy_from_slice(&self.signature);
        out
    }

    /// The prekey's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The public form to publish.
    pub fn public(&self) -> SignedPrekeyPublic {
        SignedPrekeyPublic {
            id: self.id,
            public: self.public,
            signature: self.signature,
        }
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl ZeroizeOnDrop for SignedPrekeyPair {}

impl fmt::Debug for SignedPrekeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignedPrekeyPair([redacted])")
    }
}

/// A one-time prekey `OPK`: an X25519 key pair the server hands out at most once.
///
/// Zeroized on drop; `Debug` prints `[redacted]`.
pub struct OneTimePrekeyPair {
    id: u32,
    secret: StaticSecret,
    public: [u8; 32],
}

/// The public form of a one-time prekey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OneTimePrekeyPublic {
    /// The owner's id for this prekey (named in the initiator's prekey header).
    pub id: u32,
    /// The X25519 public key.
    pub public: [u8; 32],
}

impl OneTimePrekeyPair {
    /// Length of [`to_secret_bytes`](Self::to_secret_bytes): id (u32 BE) || secret.
    pub const SECRET_LEN: usize = 4 + 32;

    /// A fresh one-time prekey.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R, id: u32) -> Self {
        Self::from_static(id, StaticSecret::random_from_rng(rng))
    }

    /// A one-time prekey from a known secret (keystore import, test vectors).
    pub fn from_secret_key(id: u32, secret: &[u8; 32]) -> Self {
        Self::from_static(id, StaticSecret::from(*secret))
    }

    fn from_static(id: u32, secret: StaticSecret) -> Self {
        let public = PublicKey::from(&secret).to_bytes();
        Self { id, secret, public }
    }

    /// Rebuild from [`to_secret_bytes`](Self::to_secret_bytes)' output.
    pub fn from_secret_bytes(bytes: &[u8; Self::SECRET_LEN]) -> Self {
        let mut id = [0u8; 4];
        let mut secret = Zeroizing::new([0u8; 32]);
        let (a, b) = bytes.split_at(4);
        id.copy_from_slice(a);
        secret.copy_from_slice(b);
        Self::from_secret_key(u32::from_be_bytes(id), &secret)
    }

    /// id || secret, for a keystore. Zeroized on drop.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; Self::SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; Self::SECRET_LEN]);
        let (a, b) = out.split_at_mut(4);
        a.copy_from_slice(&self.id.to_be_bytes());
        b.copy_from_slice(self.secret.as_bytes());
        out
    }

    /// The prekey's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The public form to publish.
    pub fn public(&self) -> OneTimePrekeyPublic {
        OneTimePrekeyPublic {
            id: self.id,
            public: self.public,
        }
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl ZeroizeOnDrop for OneTimePrekeyPair {}

impl fmt::Debug for OneTimePrekeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimePrekeyPair([redacted])")
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use super::*;

    #[test]
    fn signed_prekey_verifies_and_rejects_other_identity() {
        let alice = IdentityKeyPair::from_secrets(&[1; 32], &[2; 32]);
        let mallory = IdentityKeyPair::from_secrets(&[3; 32], &[4; 32]);
        let spk = SignedPrekeyPair::from_secret_key(7, &[5; 32], &alice).public();
        spk.verify(&alice.public().signing).unwrap();
        assert_eq!(spk.verify(&mallory.public().signing), Err(SignatureError));
        let mut bad = spk;
        bad.public[0] ^= 1;
        assert_eq!(bad.verify(&alice.public().signing), Err(SignatureError));
    }

    #[test]
    fn streamed_verification_is_as_strict_as_verify_strict() {
        let seed = [0x42u8; 32];
        let public = ed25519_public(&seed);
        let (a, b) = (&b"Sealroom Roster v1"[..], &b"some roster bytes"[..]);
        let whole = [a, b].concat();
        let good = ed25519_sign(&seed, &whole);
        let same = |key: &[u8; 32], sig: &[u8; 64]| {
            let one = ed25519_verify(key, &whole, sig);
            let parts = ed25519_verify_parts(key, &[a, b], sig);
            assert_eq!(one, parts, "key {key:02x?} sig {sig:02x?}");
            parts
        };
        assert_eq!(same(&public, &good), Ok(()));
        // Split anywhere, the same message verifies.
        for cut in 0..=whole.len() {
            let (x, y) = whole.split_at(cut);
            assert_eq!(ed25519_verify_parts(&public, &[x, y], &good), Ok(()));
        }
        for i in 0..64 {
            let mut sig = good;
            sig[i] ^= 0x01;
            assert_eq!(
                same(&public, &sig),
                Err(SignatureError),
                "flip in signature byte {i}"
            );
        }
        for i in 0..32 {
            let mut key = public;
            key[i] ^= 0x01;
            assert_eq!(
                same(&key, &good),
                Err(SignatureError),
                "flip in key byte {i}"
            );
        }
        // The identity point as key and R with S = 0 satisfies the lenient equation for every
        // message; strict verification refuses the small-order points.
        let identity = {
            let mut p = [0u8; 32];
            p[0] = 1;
            p
        };
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&identity);
        assert_eq!(same(&identity, &forged), Err(SignatureError));
        // S = ℓ (not reduced) is refused.
        let ell: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut unreduced = good;
        unreduced[32..].copy_from_slice(&ell);
        assert_eq!(same(&public, &unreduced), Err(SignatureError));
    }

    #[test]
    fn a_device_prekey_is_bound_to_its_device() {
        let alice = IdentityKeyPair::from_secrets(&[1; 32], &[2; 32]);
        let signing = alice.public().signing;
        let spk = SignedPrekeyPair::from_secret_key_for_device(7, 3, &[5; 32], &alice).public();
        spk.verify_for_device(&signing, 3).unwrap();
        // The server cannot move it to another device, or pass it off as a v1 prekey.
        assert_eq!(spk.verify_for_device(&signing, 4), Err(SignatureError));
        assert_eq!(spk.verify(&signing), Err(SignatureError));
        // Nor pass a v1 prekey off as a device's.
        let v1 = SignedPrekeyPair::from_secret_key(7, &[5; 32], &alice).public();
        assert_eq!(v1.verify_for_device(&signing, 3), Err(SignatureError));
        // The keystore form keeps the device signature.
        let pair = SignedPrekeyPair::from_secret_key_for_device(7, 3, &[5; 32], &alice);
        let back = SignedPrekeyPair::from_secret_bytes(&pair.to_secret_bytes()).public();
        back.verify_for_device(&signing, 3).unwrap();
    }

    #[test]
    fn secret_bytes_round_trip() {
        let id = IdentityKeyPair::from_secrets(&[1; 32], &[2; 32]);
        let back = IdentityKeyPair::from_secret_bytes(&id.to_secret_bytes());
        assert_eq!(id.public(), back.public());
        let spk = SignedPrekeyPair::from_secret_key(9, &[5; 32], &id);
        assert_eq!(
            SignedPrekeyPair::from_secret_bytes(&spk.to_secret_bytes()).public(),
            spk.public()
        );
        let opk = OneTimePrekeyPair::from_secret_key(11, &[6; 32]);
        assert_eq!(
            OneTimePrekeyPair::from_secret_bytes(&opk.to_secret_bytes()).public(),
            opk.public()
        );
    }

    #[test]
    fn debug_is_redacted() {
        let id = IdentityKeyPair::from_secrets(&[0xab; 32], &[0xcd; 32]);
        let spk = SignedPrekeyPair::from_secret_key(1, &[0xef; 32], &id);
        let opk = OneTimePrekeyPair::from_secret_key(2, &[0x77; 32]);
        for s in [format!("{id:?}"), format!("{spk:?}"), format!("{opk:?}")] {
            assert!(s.contains("[redacted]"), "{s}");
            assert!(!s.contains("171") && !s.contains("ab"), "{s}");
        }
    }

    #[test]
    fn dh_rejects_small_order_point() {
        let secret = StaticSecret::from([9u8; 32]);
        assert_eq!(dh(&secret, &[0; 32]).err(), Some(NonContributory));
        assert!(dh(&secret, &x25519_public(&[3; 32])).is_ok());
    }
}

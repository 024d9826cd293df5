//! PQXDH: X3DH made hybrid post-quantum with an ML-KEM-768 KEM prekey (Signal's PQXDH,
//! revision 3; FIPS 203).
//!
//! This module owns the KEM prekeys (their signature
//! `Ed25519(IKs, "Sealroom KEM PK v1" || device_id (u32 BE) || kem_id (u32 BE) || ek)`), the
//! encapsulation and decapsulation, and the derivation
//!
//! `SK = HKDF-SHA256(salt = 32 zero bytes, ikm = 32×0xFF || DH1 || DH2 || DH3 [|| DH4] || ss,
//! info = "Sealroom PQXDH v1" || SHA-256(ek) || SHA-256(ct), L = 32)`,
//!
//! with DH1..DH4, the prekey header and `AD` exactly as in X3DH (x3dh.rs, PROTOCOL.md §4.2),
//! whose code computes them. Binding `ek` and `ct` into `info` is revision 3's answer to the
//! KEM re-encapsulation and key-confusion attacks in Bhargavan et al. (2024).
//!
//! There is no downgrade path: the initiator needs a KEM prekey whose signature verifies for
//! the device asked for, a valid FIPS 203 encapsulation key, and a signed prekey signed for the
//! same device ("Sealroom SPK v2"); anything else is an error, never classical X3DH. ML-KEM
//! rejects implicitly: a tampered ciphertext gives the responder another `SK`, so the first
//! message does not decrypt. The ML-KEM arithmetic is RustCrypto's `ml-kem`; nothing here is
//! hand-written lattice code.
//!
//! The KEM prekeys travel as [`KemPrekey`](crate::KemPrekey) in `UploadKemPrekeys` and
//! `KemBundle`; the [`KemHeader`] rides in the first messages' `PqPrekey` envelope
//! (PROTOCOL.md §4.8); [`Session::initiate_pqxdh`](crate::Session::initiate_pqxdh) and
//! [`Session::respond_pqxdh`](crate::Session::respond_pqxdh) start sessions with it.

use core::fmt;

use ml_kem::array::Array;
use ml_kem::{B32, Decapsulate, DecapsulationKey768, EncapsulationKey768, KeyExport, Seed};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::kdf::{ZERO_SALT, hkdf_sha256};
use crate::keys::{
    IdentityKeyPair, IdentityPublicKey, OneTimePrekeyPair, SignatureError, SignedPrekeyPair,
    ed25519_verify_parts,
};
use crate::x3dh::{
    DhInput, PrekeyHeader, RemoteBundle, X3DH_AD_LEN, X3dhError, associated_data, initiator_dh,
    responder_dh,
};

/// The prefix an identity key signs in front of a device id, a KEM prekey id and its `ek`.
pub const KEM_PREKEY_LABEL: &[u8] = b"Sealroom KEM PK v1";
/// HKDF `info` prefix for the PQXDH shared secret (followed by `SHA-256(ek) || SHA-256(ct)`).
pub const PQXDH_INFO: &[u8] = b"Sealroom PQXDH v1";
/// Length of an ML-KEM-768 encapsulation key `ek`.
pub const KEM_PUBLIC_KEY_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext `ct`.
pub const KEM_CIPHERTEXT_LEN: usize = 1088;
/// Length of an ML-KEM seed `d || z` (FIPS 203 `ML-KEM.KeyGen_internal`), the secret form of a
/// KEM prekey.
pub const KEM_SEED_LEN: usize = 64;
/// Length of an encoded [`KemHeader`]: `kem_id (u32 BE) || ct`.
pub const KEM_HEADER_LEN: usize = 4 + KEM_CIPHERTEXT_LEN;

/// Length of the message a KEM prekey signature covers.
const KEM_SIGNED_LEN: usize = 18 + 4 + 4 + KEM_PUBLIC_KEY_LEN;
/// Length of the HKDF info: label, `SHA-256(ek)`, `SHA-256(ct)`.
const INFO_LEN: usize = 17 + 32 + 32;

/// Why a PQXDH agreement was refused, or its input did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PqxdhError {
    /// The signed prekey's signature does not verify for the device under the bundle's identity.
    BadPrekeySignature,
    /// The KEM prekey's signature does not verify for the device and KEM prekey id under the
    /// bundle's identity.
    BadKemPrekeySignature,
    /// The KEM prekey is not a valid ML-KEM-768 encapsulation key (FIPS 203 §7.2 modulus check).
    InvalidKemKey,
    /// A KEM public key was not [`KEM_PUBLIC_KEY_LEN`] bytes long.
    KemKeyLength,
    /// A KEM ciphertext was not [`KEM_CIPHERTEXT_LEN`] bytes long (or a [`KemHeader`] not
    /// [`KEM_HEADER_LEN`]).
    CiphertextLength,
    /// A Diffie-Hellman output was all zeros: a peer key is a small-order point.
    NonContributory,
    /// The header names a signed prekey other than the one the responder passed in.
    WrongSignedPrekey,
    /// The header's one-time prekey (or its absence) does not match the one passed in.
    WrongOneTimePrekey,
    /// The KEM header names a KEM prekey other than the one the responder passed in.
    WrongKemPrekey,
    /// The bundle carries no KEM prekey: refused, never used as classical X3DH.
    MissingKemPrekey,
}

impl PqxdhError {
    /// The variant's name, as used in vectors (`reject:<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadPrekeySignature => "BadPrekeySignature",
            Self::BadKemPrekeySignature => "BadKemPrekeySignature",
            Self::InvalidKemKey => "InvalidKemKey",
            Self::KemKeyLength => "KemKeyLength",
            Self::CiphertextLength => "CiphertextLength",
            Self::NonContributory => "NonContributory",
            Self::WrongSignedPrekey => "WrongSignedPrekey",
            Self::WrongOneTimePrekey => "WrongOneTimePrekey",
            Self::WrongKemPrekey => "WrongKemPrekey",
            Self::MissingKemPrekey => "MissingKemPrekey",
        }
    }
}

impl fmt::Display for PqxdhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadPrekeySignature => "the signed prekey's signature does not verify",
            Self::BadKemPrekeySignature => "the KEM prekey's signature does not verify",
            Self::InvalidKemKey => "the KEM prekey is not a valid ML-KEM-768 key",
            Self::KemKeyLength => "a KEM public key has the wrong length",
            Self::CiphertextLength => "a KEM ciphertext has the wrong length",
            Self::NonContributory => "a key exchange gave an all-zero output (invalid peer key)",
            Self::WrongSignedPrekey => "the message names a different signed prekey",
            Self::WrongOneTimePrekey => "the message names a different one-time prekey",
            Self::WrongKemPrekey => "the message names a different KEM prekey",
            Self::MissingKemPrekey => {
                "the device has published no post-quantum (KEM) prekey; its app must be updated"
            }
        })
    }
}

impl core::error::Error for PqxdhError {}

impl From<X3dhError> for PqxdhError {
    fn from(e: X3dhError) -> Self {
        match e {
            X3dhError::BadPrekeySignature => Self::BadPrekeySignature,
            X3dhError::NonContributory => Self::NonContributory,
            X3dhError::WrongSignedPrekey => Self::WrongSignedPrekey,
            X3dhError::WrongOneTimePrekey => Self::WrongOneTimePrekey,
        }
    }
}

/// A KEM prekey: an ML-KEM-768 key pair with its id (last-resort or one-time; the caller keeps
/// track of which).
///
/// Made from a 64-byte seed `d || z` (FIPS 203 `ML-KEM.KeyGen_internal`), which is also its
/// secret form. The decapsulation key zeroizes on drop; `Debug` prints `[redacted]`.
pub struct KemPrekeyPair {
    id: u32,
    dk: DecapsulationKey768,
    /// `SHA-256(ek)`, the half of the HKDF info the responder knows in advance.
    ek_hash: [u8; 32],
}

impl KemPrekeyPair {
    /// Length of [`to_secret_bytes`](Self::to_secret_bytes): id (u32 BE) || seed `d || z`.
    pub const SECRET_LEN: usize = 4 + KEM_SEED_LEN;

    /// A fresh KEM prekey: 64 seed bytes `d || z` from the caller's cryptographically secure RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R, id: u32) -> Self {
        let mut seed = Zeroizing::new([0u8; KEM_SEED_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(id, &seed)
    }

    /// The KEM prekey of a known seed `d || z` (keystore import, test vectors).
    pub fn from_seed(id: u32, seed: &[u8; KEM_SEED_LEN]) -> Self {
        let mut s = Seed::from(*seed);
        let dk = DecapsulationKey768::from_seed(s);
        s.zeroize();
        let ek_hash = Sha256::digest(dk.encapsulation_key().to_bytes()).into();
        Self { id, dk, ek_hash }
    }

    /// Rebuild from [`to_secret_bytes`](Self::to_secret_bytes)' output.
    pub fn from_secret_bytes(bytes: &[u8; Self::SECRET_LEN]) -> Self {
        let (id, seed) = bytes.split_at(4);
        let mut id_be = [0u8; 4];
        id_be.copy_from_slice(id);
        let mut s = Zeroizing::new([0u8; KEM_SEED_LEN]);
        s.copy_from_slice(seed);
        Self::from_seed(u32::from_be_bytes(id_be), &s)
    }

    /// id || seed, for a keystore that encrypts it at rest. Zeroized on drop.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; Self::SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; Self::SECRET_LEN]);
        let (id, seed) = out.split_at_mut(4);
        id.copy_from_slice(&self.id.to_be_bytes());
        // Always `Some`: every key here is made from a seed (never from the expanded form).
        if let Some(mut s) = self.dk.to_seed() {
            seed.copy_from_slice(&s);
            s.zeroize();
        }
        out
    }

    /// The prekey's id (`kem_id`).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The encapsulation key `ek` (1,184 bytes).
    pub fn public_key(&self) -> [u8; KEM_PUBLIC_KEY_LEN] {
        self.dk.encapsulation_key().to_bytes().into()
    }

    /// The public form to publish for the linked device `device_id`, signed by the account's
    /// `identity`. Ed25519 is deterministic: the same inputs give the same signature.
    pub fn public_for_device(&self, device_id: u32, identity: &IdentityKeyPair) -> KemPrekeyPublic {
        KemPrekeyPublic::sign_for_device(identity, device_id, self.id, self.public_key())
    }

    /// `ML-KEM.Decaps`: the shared secret (a pseudo-random one for a ciphertext that was not
    /// made for this key: FIPS 203's implicit rejection).
    fn decapsulate(&self, ct: &KemCiphertext) -> Zeroizing<[u8; 32]> {
        let mut shared = self.dk.decapsulate(Array::cast_from_core(&ct.0));
        let out = Zeroizing::new(shared.into());
        shared.zeroize();
        out
    }
}

impl ZeroizeOnDrop for KemPrekeyPair {}

impl fmt::Debug for KemPrekeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KemPrekeyPair([redacted])")
    }
}

/// The public, signed form of a KEM prekey, as the key directory hands it out.
///
/// 1,252 bytes: `Clone` but not `Copy`, so it is not copied by accident; pass it by reference.
#[derive(Clone, PartialEq, Eq)]
pub struct KemPrekeyPublic {
    /// The owner's id for this KEM prekey (`kem_id`, named in the first message).
    pub id: u32,
    /// The ML-KEM-768 encapsulation key `ek`.
    pub public: [u8; KEM_PUBLIC_KEY_LEN],
    /// `Ed25519(IKs, "Sealroom KEM PK v1" || device_id || kem_id || ek)`.
    pub signature: [u8; 64],
}

impl fmt::Debug for KemPrekeyPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self.public.first_chunk::<8>().copied().unwrap_or_default();
        f.debug_struct("KemPrekeyPublic")
            .field("id", &self.id)
            .field("public", &format_args!("{head:02x?}…"))
            .finish_non_exhaustive()
    }
}

impl KemPrekeyPublic {
    /// Sign `ek` as the KEM prekey `id` of the linked device `device_id`.
    pub fn sign_for_device(
        identity: &IdentityKeyPair,
        device_id: u32,
        id: u32,
        public: [u8; KEM_PUBLIC_KEY_LEN],
    ) -> Self {
        let signature = identity.sign(&kem_prekey_message(device_id, id, &public));
        Self {
            id,
            public,
            signature,
        }
    }

    /// The public form from received parts: `public` must be exactly [`KEM_PUBLIC_KEY_LEN`]
    /// bytes ([`PqxdhError::KemKeyLength`] otherwise). The signature is checked when the
    /// agreement starts ([`PqxdhAgreement::initiate`]), or by
    /// [`verify_for_device`](Self::verify_for_device).
    pub fn from_parts(id: u32, public: &[u8], signature: &[u8; 64]) -> Result<Self, PqxdhError> {
        let public =
            <[u8; KEM_PUBLIC_KEY_LEN]>::try_from(public).map_err(|_| PqxdhError::KemKeyLength)?;
        Ok(Self {
            id,
            public,
            signature: *signature,
        })
    }

    /// Check the signature against the owner's identity signing key `IKs`, for `device_id`:
    /// strict Ed25519 (as for signed prekeys: canonical `S`, no small-order `A` or `R`), over the
    /// message streamed in parts so that no 1,210-byte copy goes on the stack. A signature made
    /// for another device or another KEM prekey id does not verify.
    pub fn verify_for_device(
        &self,
        identity_signing: &[u8; 32],
        device_id: u32,
    ) -> Result<(), SignatureError> {
        ed25519_verify_parts(
            identity_signing,
            &[
                KEM_PREKEY_LABEL,
                &device_id.to_be_bytes(),
                &self.id.to_be_bytes(),
                &self.public,
            ],
            &self.signature,
        )
    }
}

impl TryFrom<&crate::KemPrekey<'_>> for KemPrekeyPublic {
    type Error = PqxdhError;

    /// The public form of a KEM prekey as received (its signature is not checked here).
    fn try_from(wire: &crate::KemPrekey<'_>) -> Result<Self, PqxdhError> {
        Self::from_parts(wire.id, wire.key, &wire.signature.0)
    }
}

impl KemPrekeyPublic {
    /// The KEM prekey of a `KemBundle` as received: `None` is
    /// [`PqxdhError::MissingKemPrekey`] (no classical fallback), a key of the wrong length
    /// [`PqxdhError::KemKeyLength`]. The signature is checked when the agreement starts.
    pub fn from_bundle(kem_prekey: Option<&crate::KemPrekey<'_>>) -> Result<Self, PqxdhError> {
        Self::try_from(kem_prekey.ok_or(PqxdhError::MissingKemPrekey)?)
    }

    /// The wire form, borrowing this key.
    pub fn to_wire(&self) -> crate::KemPrekey<'_> {
        crate::KemPrekey {
            id: self.id,
            key: &self.public,
            signature: crate::Sig64(self.signature),
        }
    }
}

/// `"Sealroom KEM PK v1" || device_id (u32 BE) || kem_id (u32 BE) || ek`, what signing needs in
/// one piece (Ed25519 reads the message twice).
fn kem_prekey_message(
    device_id: u32,
    id: u32,
    public: &[u8; KEM_PUBLIC_KEY_LEN],
) -> [u8; KEM_SIGNED_LEN] {
    let mut msg = [0u8; KEM_SIGNED_LEN];
    let (label, rest) = msg.split_at_mut(KEM_PREKEY_LABEL.len());
    label.copy_from_slice(KEM_PREKEY_LABEL);
    let (device, rest) = rest.split_at_mut(4);
    device.copy_from_slice(&device_id.to_be_bytes());
    let (kem_id, key) = rest.split_at_mut(4);
    kem_id.copy_from_slice(&id.to_be_bytes());
    key.copy_from_slice(public);
    msg
}

/// An ML-KEM-768 ciphertext `ct` (1,088 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct KemCiphertext([u8; KEM_CIPHERTEXT_LEN]);

impl fmt::Debug for KemCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self.0.first_chunk::<8>().copied().unwrap_or_default();
        write!(f, "KemCiphertext({head:02x?}…)")
    }
}

impl KemCiphertext {
    /// A ciphertext from exactly [`KEM_CIPHERTEXT_LEN`] bytes
    /// ([`PqxdhError::CiphertextLength`] otherwise).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, PqxdhError> {
        <[u8; KEM_CIPHERTEXT_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| PqxdhError::CiphertextLength)
    }

    /// The ciphertext's bytes.
    pub fn as_bytes(&self) -> &[u8; KEM_CIPHERTEXT_LEN] {
        &self.0
    }
}

impl From<[u8; KEM_CIPHERTEXT_LEN]> for KemCiphertext {
    fn from(bytes: [u8; KEM_CIPHERTEXT_LEN]) -> Self {
        Self(bytes)
    }
}

/// What the initiator's first message carries besides the X3DH [`PrekeyHeader`]: the id of the
/// KEM prekey used and the ciphertext, encoded as `kem_id (u32 BE) || ct` (1,092 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KemHeader {
    /// Which of the responder's KEM prekeys was encapsulated to.
    pub kem_id: u32,
    /// The ciphertext.
    pub ciphertext: KemCiphertext,
}

impl KemHeader {
    /// Decode exactly [`KEM_HEADER_LEN`] bytes ([`PqxdhError::CiphertextLength`] otherwise).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PqxdhError> {
        let (kem_id, ct) = bytes
            .split_first_chunk::<4>()
            .ok_or(PqxdhError::CiphertextLength)?;
        Ok(Self {
            kem_id: u32::from_be_bytes(*kem_id),
            ciphertext: KemCiphertext::from_slice(ct)?,
        })
    }

    /// Encode into `kem_id || ct`.
    pub fn to_bytes(&self) -> [u8; KEM_HEADER_LEN] {
        let mut out = [0u8; KEM_HEADER_LEN];
        let (kem_id, ct) = out.split_at_mut(4);
        kem_id.copy_from_slice(&self.kem_id.to_be_bytes());
        ct.copy_from_slice(&self.ciphertext.0);
        out
    }
}

/// The result of PQXDH: the shared secret `SK` and the associated data `AD` (as in X3DH).
///
/// `SK` is zeroized on drop and never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PqxdhAgreement {
    sk: [u8; 32],
    ad: [u8; X3DH_AD_LEN],
}

impl fmt::Debug for PqxdhAgreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PqxdhAgreement([redacted])")
    }
}

impl PqxdhAgreement {
    /// Initiator side, with the linked device `device_id` of the responder: verify the bundle's
    /// signed prekey ("Sealroom SPK v2") and `kem_prekey` ("Sealroom KEM PK v1") for that device,
    /// make an ephemeral X25519 key and then the 32-byte ML-KEM message `m` from `rng`,
    /// encapsulate, agree.
    ///
    /// Returns the agreement, the X3DH header and the KEM header to send in front of the first
    /// message. Never falls back to X3DH.
    pub fn initiate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
        device_id: u32,
        kem_prekey: &KemPrekeyPublic,
    ) -> Result<(Self, PrekeyHeader, KemHeader), PqxdhError> {
        let ephemeral = StaticSecret::random_from_rng(rng);
        let mut m = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(m.as_mut());
        Self::initiate_with(identity, bundle, device_id, kem_prekey, &ephemeral, &m)
    }

    /// [`initiate`](Self::initiate) with a given ephemeral secret and ML-KEM message `m`, for
    /// test vectors only.
    #[cfg(any(test, feature = "vectors"))]
    pub fn initiate_with_fixed_randomness_for_tests(
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
        device_id: u32,
        kem_prekey: &KemPrekeyPublic,
        ephemeral_secret: &[u8; 32],
        kem_message: &[u8; 32],
    ) -> Result<(Self, PrekeyHeader, KemHeader), PqxdhError> {
        Self::initiate_with(
            identity,
            bundle,
            device_id,
            kem_prekey,
            &StaticSecret::from(*ephemeral_secret),
            kem_message,
        )
    }

    fn initiate_with(
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
        device_id: u32,
        kem_prekey: &KemPrekeyPublic,
        ephemeral: &StaticSecret,
        m: &[u8; 32],
    ) -> Result<(Self, PrekeyHeader, KemHeader), PqxdhError> {
        let signing = &bundle.identity.signing;
        bundle
            .signed_prekey
            .verify_for_device(signing, device_id)
            .map_err(|_| PqxdhError::BadPrekeySignature)?;
        kem_prekey
            .verify_for_device(signing, device_id)
            .map_err(|_| PqxdhError::BadKemPrekeySignature)?;
        let ek = EncapsulationKey768::new(Array::cast_from_core(&kem_prekey.public))
            .map_err(|_| PqxdhError::InvalidKemKey)?;
        let (dhs, header) = initiator_dh(identity, bundle, ephemeral)?;
        let mut m = B32::from(*m);
        let (ct, mut shared) = ek.encapsulate_deterministic(&m);
        m.zeroize();
        let ss = Zeroizing::new(shared.into());
        shared.zeroize();
        let kem = KemHeader {
            kem_id: kem_prekey.id,
            ciphertext: KemCiphertext(ct.into()),
        };
        let ek_hash: [u8; 32] = Sha256::digest(kem_prekey.public.as_slice()).into();
        let agreement = Self::derive(
            &dhs,
            &ss,
            &ek_hash,
            &kem.ciphertext,
            &header.identity,
            &bundle.identity,
        );
        Ok((agreement, header, kem))
    }

    /// Responder side: agree with the initiator named in `header`, using the prekeys it and
    /// `kem` name.
    ///
    /// The caller looks up the prekeys by the ids in the headers, and deletes a one-time
    /// prekey (X25519 or KEM) once the first message has decrypted. A tampered ciphertext is
    /// not detected here: it gives another `SK` (ML-KEM's implicit rejection), so the first
    /// message fails to decrypt.
    pub fn respond(
        identity: &IdentityKeyPair,
        signed_prekey: &SignedPrekeyPair,
        one_time_prekey: Option<&OneTimePrekeyPair>,
        kem_prekey: &KemPrekeyPair,
        header: &PrekeyHeader,
        kem: &KemHeader,
    ) -> Result<Self, PqxdhError> {
        if kem.kem_id != kem_prekey.id {
            return Err(PqxdhError::WrongKemPrekey);
        }
        let dhs = responder_dh(identity, signed_prekey, one_time_prekey, header)?;
        let ss = kem_prekey.decapsulate(&kem.ciphertext);
        Ok(Self::derive(
            &dhs,
            &ss,
            &kem_prekey.ek_hash,
            &kem.ciphertext,
            &header.identity,
            &identity.public(),
        ))
    }

    fn derive(
        dhs: &DhInput,
        ss: &[u8; 32],
        ek_hash: &[u8; 32],
        ct: &KemCiphertext,
        initiator: &IdentityPublicKey,
        responder: &IdentityPublicKey,
    ) -> Self {
        let classical = dhs.ikm();
        let mut ikm = Zeroizing::new([0u8; 32 * 6]);
        let len = classical.len() + 32;
        if let Some((head, tail)) = ikm
            .get_mut(..len)
            .and_then(|used| used.split_at_mut_checked(classical.len()))
        {
            head.copy_from_slice(classical);
            tail.copy_from_slice(ss);
        }
        let mut info = [0u8; INFO_LEN];
        let (label, rest) = info.split_at_mut(PQXDH_INFO.len());
        label.copy_from_slice(PQXDH_INFO);
        let (ek_part, ct_part) = rest.split_at_mut(32);
        ek_part.copy_from_slice(ek_hash);
        ct_part.copy_from_slice(&Sha256::digest(ct.0.as_slice()));
        let mut sk = [0u8; 32];
        // 32 bytes of output is always within HKDF's limit; `len` (160 or 192) fits `ikm`.
        let used = ikm.get(..len).unwrap_or_default();
        let _ = hkdf_sha256(&ZERO_SALT, used, &info, &mut sk);
        Self {
            sk,
            ad: associated_data(initiator, responder),
        }
    }

    /// The associated data `IKd_A || IKs_A || IKd_B || IKs_B`.
    pub fn associated_data(&self) -> &[u8; X3DH_AD_LEN] {
        &self.ad
    }

    pub(crate) fn into_parts(self) -> (Zeroizing<[u8; 32]>, [u8; X3DH_AD_LEN]) {
        (Zeroizing::new(self.sk), self.ad)
    }

    /// The shared secret `SK`, for test vectors only.
    #[cfg(any(test, feature = "vectors"))]
    pub fn shared_secret_for_tests(&self) -> [u8; 32] {
        self.sk
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use rand_core::SeedableRng;

    use super::*;
    use crate::kdf::X3DH_INFO;
    use crate::keys::{OneTimePrekeyPublic, x25519};
    use crate::x3dh::X3dhAgreement;

    const DEVICE: u32 = 2;

    struct Bob {
        id: IdentityKeyPair,
        spk: SignedPrekeyPair,
        opk: OneTimePrekeyPair,
        kem: KemPrekeyPair,
    }

    fn kem_seed() -> [u8; KEM_SEED_LEN] {
        core::array::from_fn(|i| i as u8)
    }

    fn bob() -> Bob {
        let id = IdentityKeyPair::from_secrets(&[11; 32], &[12; 32]);
        let spk = SignedPrekeyPair::from_secret_key_for_device(1, DEVICE, &[13; 32], &id);
        let opk = OneTimePrekeyPair::from_secret_key(2, &[14; 32]);
        let kem = KemPrekeyPair::from_seed(5, &kem_seed());
        Bob { id, spk, opk, kem }
    }

    fn alice() -> IdentityKeyPair {
        IdentityKeyPair::from_secrets(&[1; 32], &[2; 32])
    }

    fn bundle(b: &Bob, with_opk: bool) -> RemoteBundle {
        RemoteBundle {
            identity: b.id.public(),
            signed_prekey: b.spk.public(),
            one_time_prekey: with_opk.then(|| b.opk.public()),
        }
    }

    fn rng(seed: u64) -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(seed)
    }

    fn fixed(
        b: &Bob,
        with_opk: bool,
    ) -> Result<(PqxdhAgreement, PrekeyHeader, KemHeader), PqxdhError> {
        PqxdhAgreement::initiate_with_fixed_randomness_for_tests(
            &alice(),
            &bundle(b, with_opk),
            DEVICE,
            &b.kem.public_for_device(DEVICE, &b.id),
            &[3; 32],
            &[0x5a; 32],
        )
    }

    fn respond(
        b: &Bob,
        header: &PrekeyHeader,
        kem: &KemHeader,
    ) -> Result<PqxdhAgreement, PqxdhError> {
        let opk = header.one_time_prekey_id.map(|_| &b.opk);
        PqxdhAgreement::respond(&b.id, &b.spk, opk, &b.kem, header, kem)
    }

    #[test]
    fn labels_are_exactly_design_md() {
        assert_eq!(KEM_PREKEY_LABEL, b"Sealroom KEM PK v1");
        assert_eq!(PQXDH_INFO, b"Sealroom PQXDH v1");
        assert_eq!(KEM_SIGNED_LEN, KEM_PREKEY_LABEL.len() + 4 + 4 + 1184);
        assert_eq!(INFO_LEN, PQXDH_INFO.len() + 64);
    }

    #[test]
    fn both_sides_agree_with_and_without_opk() {
        let b = bob();
        let mut r = rng(1);
        for with_opk in [false, true] {
            let published = b.kem.public_for_device(DEVICE, &b.id);
            let (a, header, kem) = PqxdhAgreement::initiate(
                &mut r,
                &alice(),
                &bundle(&b, with_opk),
                DEVICE,
                &published,
            )
            .unwrap();
            assert_eq!(header.one_time_prekey_id.is_some(), with_opk);
            assert_eq!(kem.kem_id, 5);
            // Through the byte forms, as the first message will carry them.
            let (header, _) = PrekeyHeader::parse(&header.to_bytes()).unwrap();
            let kem = KemHeader::from_bytes(&kem.to_bytes()).unwrap();
            let resp = respond(&b, &header, &kem).unwrap();
            assert_eq!(a.sk, resp.sk);
            assert_eq!(a.ad, resp.ad);
            assert_eq!(&a.ad[..32], &alice().public().dh);
            assert_eq!(&a.ad[96..], &b.id.public().signing);
        }
    }

    /// The same X25519 inputs give X3DH's `SK` without the KEM and another with it; `AD` is
    /// X3DH's. And the PQXDH `SK` is the formula in the module documentation, recomputed here
    /// from the raw primitives.
    #[test]
    fn sk_is_the_documented_formula_and_not_x3dhs() {
        let b = bob();
        for with_opk in [false, true] {
            let (a, header, kem) = fixed(&b, with_opk).unwrap();
            let opk = with_opk.then_some(&b.opk);
            let classical = X3dhAgreement::respond(&b.id, &b.spk, opk, &header).unwrap();
            let (x3dh_sk, x3dh_ad) = classical.into_parts();
            assert_ne!(a.sk, *x3dh_sk);
            assert_eq!(a.ad, x3dh_ad);

            let eph = [3u8; 32];
            let mut ikm = std::vec![0xFFu8; 32];
            ikm.extend(x25519([2; 32], b.spk.public().public));
            ikm.extend(x25519(eph, b.id.public().dh));
            ikm.extend(x25519(eph, b.spk.public().public));
            if with_opk {
                ikm.extend(x25519(eph, b.opk.public().public));
            }
            let mut classical_sk = [0u8; 32];
            hkdf_sha256(&ZERO_SALT, &ikm, X3DH_INFO, &mut classical_sk).unwrap();
            assert_eq!(classical_sk, *x3dh_sk);

            let ek = b.kem.public_key();
            let ek_key = EncapsulationKey768::new(Array::cast_from_core(&ek)).unwrap();
            let (ct, ss) = ek_key.encapsulate_deterministic(&B32::from([0x5a; 32]));
            assert_eq!(ct.as_slice(), kem.ciphertext.as_bytes());
            ikm.extend(ss.as_slice());
            let mut info = PQXDH_INFO.to_vec();
            info.extend(Sha256::digest(ek));
            info.extend(Sha256::digest(ct.as_slice()));
            let mut sk = [0u8; 32];
            hkdf_sha256(&[0; 32], &ikm, &info, &mut sk).unwrap();
            assert_eq!(sk, a.sk);
        }
    }

    #[test]
    fn kem_prekey_signature_is_bound_to_identity_device_and_id() {
        let b = bob();
        let signing = b.id.public().signing;
        let good = b.kem.public_for_device(DEVICE, &b.id);
        good.verify_for_device(&signing, DEVICE).unwrap();
        let other_identity = IdentityKeyPair::from_secrets(&[21; 32], &[22; 32]);

        let mut other_id = good.clone();
        other_id.id = 6;
        let mut flipped_ek = good.clone();
        flipped_ek.public[700] ^= 0x01;
        let mut flipped_sig = good.clone();
        flipped_sig.signature[40] ^= 0x01;
        let cases = [
            ("another device", b.kem.public_for_device(DEVICE + 1, &b.id)),
            ("another kem id", other_id),
            (
                "another identity",
                b.kem.public_for_device(DEVICE, &other_identity),
            ),
            ("a bit of ek flipped", flipped_ek),
            ("a bit of the signature flipped", flipped_sig),
        ];
        for (what, kem) in cases {
            assert_eq!(
                kem.verify_for_device(&signing, DEVICE),
                Err(SignatureError),
                "{what}"
            );
            let refused =
                PqxdhAgreement::initiate(&mut rng(2), &alice(), &bundle(&b, true), DEVICE, &kem);
            assert_eq!(
                refused.err(),
                Some(PqxdhError::BadKemPrekeySignature),
                "{what}"
            );
        }
        // Asking for another device than the bundle's is refused at the signed prekey already.
        assert_eq!(
            PqxdhAgreement::initiate(&mut rng(2), &alice(), &bundle(&b, true), 3, &good).err(),
            Some(PqxdhError::BadPrekeySignature)
        );
    }

    /// No downgrade: a v1 (device-less) signed prekey, a bad signed-prekey signature and a
    /// KEM key that fails FIPS 203's modulus check are errors.
    #[test]
    fn refuses_bad_bundles() {
        let b = bob();
        let kem = b.kem.public_for_device(DEVICE, &b.id);
        let mut v1 = bundle(&b, false);
        v1.signed_prekey = SignedPrekeyPair::from_secret_key(1, &[13; 32], &b.id).public();
        let mut bad_sig = bundle(&b, false);
        bad_sig.signed_prekey.signature[0] ^= 1;
        for bad in [v1, bad_sig] {
            assert_eq!(
                PqxdhAgreement::initiate(&mut rng(3), &alice(), &bad, DEVICE, &kem).err(),
                Some(PqxdhError::BadPrekeySignature)
            );
        }
        // Coefficients of 4095 ≥ q: not an ML-KEM key, even when properly signed.
        let invalid = KemPrekeyPublic::sign_for_device(&b.id, DEVICE, 5, [0xFF; 1184]);
        invalid
            .verify_for_device(&b.id.public().signing, DEVICE)
            .unwrap();
        assert_eq!(
            PqxdhAgreement::initiate(&mut rng(3), &alice(), &bundle(&b, false), DEVICE, &invalid)
                .err(),
            Some(PqxdhError::InvalidKemKey)
        );
        // A small-order one-time prekey is still refused.
        let mut zero = bundle(&b, true);
        zero.one_time_prekey = Some(OneTimePrekeyPublic {
            id: 2,
            public: [0; 32],
        });
        assert_eq!(
            PqxdhAgreement::initiate(&mut rng(3), &alice(), &zero, DEVICE, &kem).err(),
            Some(PqxdhError::NonContributory)
        );
    }

    #[test]
    fn wrong_lengths_are_refused() {
        let b = bob();
        let good = b.kem.public_for_device(DEVICE, &b.id);
        let ek = good.public;
        assert_eq!(
            KemPrekeyPublic::from_parts(5, &ek, &good.signature).unwrap(),
            good
        );
        let mut long = ek.to_vec();
        long.push(0);
        for bad in [&ek[..1183], &long[..], &[][..]] {
            assert_eq!(
                KemPrekeyPublic::from_parts(5, bad, &good.signature).err(),
                Some(PqxdhError::KemKeyLength)
            );
        }
        let (_, _, kem) = fixed(&b, false).unwrap();
        let ct = kem.ciphertext.as_bytes();
        assert_eq!(KemCiphertext::from_slice(ct).unwrap(), kem.ciphertext);
        let mut long = ct.to_vec();
        long.push(0);
        for bad in [&ct[..1087], &long[..], &[][..]] {
            assert_eq!(
                KemCiphertext::from_slice(bad).err(),
                Some(PqxdhError::CiphertextLength)
            );
        }
        let bytes = kem.to_bytes();
        assert_eq!(&bytes[..4], &5u32.to_be_bytes());
        assert_eq!(KemHeader::from_bytes(&bytes).unwrap(), kem);
        let mut long = bytes.to_vec();
        long.push(0);
        for bad in [&bytes[..KEM_HEADER_LEN - 1], &long[..], &bytes[..3]] {
            assert_eq!(
                KemHeader::from_bytes(bad).err(),
                Some(PqxdhError::CiphertextLength)
            );
        }
    }

    /// ML-KEM's implicit rejection: a changed ciphertext decapsulates to another secret, so
    /// the responder's `SK` differs (the first message will not decrypt) and no error tells
    /// an attacker which.
    #[test]
    fn a_tampered_ciphertext_gives_another_sk() {
        let b = bob();
        let (a, header, kem) = fixed(&b, true).unwrap();
        for (byte, bit) in [(0, 0x01), (600, 0x80), (KEM_CIPHERTEXT_LEN - 1, 0x10)] {
            let mut bad = kem.clone();
            bad.ciphertext.0[byte] ^= bit;
            let resp = respond(&b, &header, &bad).unwrap();
            assert_ne!(resp.sk, a.sk, "byte {byte}");
            assert_eq!(resp.ad, a.ad);
        }
        // Another KEM prekey of the same id cannot decapsulate it either.
        let other = KemPrekeyPair::from_seed(5, &[9; 64]);
        let resp =
            PqxdhAgreement::respond(&b.id, &b.spk, Some(&b.opk), &other, &header, &kem).unwrap();
        assert_ne!(resp.sk, a.sk);
    }

    #[test]
    fn responder_checks_the_named_prekeys() {
        let b = bob();
        let (_, header, kem) = fixed(&b, true).unwrap();
        let mut other_kem = kem.clone();
        other_kem.kem_id = 6;
        assert_eq!(
            respond(&b, &header, &other_kem).err(),
            Some(PqxdhError::WrongKemPrekey)
        );
        assert_eq!(
            PqxdhAgreement::respond(&b.id, &b.spk, None, &b.kem, &header, &kem).err(),
            Some(PqxdhError::WrongOneTimePrekey)
        );
        let other_spk = SignedPrekeyPair::from_secret_key_for_device(9, DEVICE, &[13; 32], &b.id);
        assert_eq!(
            PqxdhAgreement::respond(&b.id, &other_spk, Some(&b.opk), &b.kem, &header, &kem).err(),
            Some(PqxdhError::WrongSignedPrekey)
        );
        let mut low = header;
        low.ephemeral = [0; 32];
        assert_eq!(
            respond(&b, &low, &kem).err(),
            Some(PqxdhError::NonContributory)
        );
    }

    fn hex32(b: &[u8]) -> std::string::String {
        hex::encode(Sha256::digest(b))
    }

    /// Pinned values, so that the derivation cannot drift silently. The fixed case (all
    /// inputs given, `m = 0x5a × 32`) was checked against an independent implementation
    /// (kyber-py's FIPS 203 `KeyGen_internal`/`Encaps_internal`, Python `cryptography`'s
    /// X25519 and Ed25519, `hmac`/`hashlib` HKDF); the seeded case pins the RNG's use (X25519
    /// ephemeral first, then `m`).
    #[test]
    fn pinned_vectors() {
        let b = bob();
        let published = b.kem.public_for_device(DEVICE, &b.id);
        let (a, _, kem) = fixed(&b, true).unwrap();
        let (a0, _, _) = fixed(&b, false).unwrap();
        let mut r = rng(42);
        let kp = KemPrekeyPair::generate(&mut r, 7);
        let bob_seeded = Bob { kem: kp, ..bob() };
        let published_seeded = bob_seeded.kem.public_for_device(DEVICE, &bob_seeded.id);
        let (s, h, k) = PqxdhAgreement::initiate(
            &mut r,
            &alice(),
            &bundle(&bob_seeded, true),
            DEVICE,
            &published_seeded,
        )
        .unwrap();
        assert_eq!(respond(&bob_seeded, &h, &k).unwrap().sk, s.sk);
        let got = [
            ("sha256(ek)", hex32(&published.public)),
            ("signature", hex::encode(published.signature)),
            ("sha256(ct)", hex32(kem.ciphertext.as_bytes())),
            ("sk with opk", hex::encode(a.sk)),
            ("sk without opk", hex::encode(a0.sk)),
            ("seeded sha256(ek)", hex32(&published_seeded.public)),
            ("seeded sha256(ct)", hex32(k.ciphertext.as_bytes())),
            ("seeded sk", hex::encode(s.sk)),
        ];
        let want = [
            "0b7934c83125c788995e2ba6bd761e33046b3e40571be53e023309a29f398cc9",
            "38f026490efe6f328325bd7176cf762e7311717a5fd08dcf05e7ea654f1109c8\
             cf8bf1f4b4a10d9fe8f2f974b9edf86299b4576d827604389cebe04b05a7af02",
            "fda1ac529e59760ece5aba81b8b16b8428f00911afa89be32ea079351f7190e5",
            "211ff11fa5df9fafbcdd86eca7715324b910c7961296bab161fa9683acf27504",
            "ba231b8a9db5074b781d624cc909b5bc682562eb56bc6d7e0abbf5c724cce255",
            "1c93297c0d407337f67c62f78ca9596cf38457df139cf6353a3de6005d710859",
            "738b944bba93b15b722c89f79afbdd5dd8ee479c8c848fb2cab4660433898669",
            "0b11a6969c841da37e25e756e5c1c0116a9246b57c1441042f7e705c54328a5f",
        ];
        for ((what, value), pinned) in got.iter().zip(want) {
            assert_eq!(value, pinned, "{what}");
        }
    }

    #[test]
    fn secret_bytes_round_trip_and_debug_is_redacted() {
        let b = bob();
        let back = KemPrekeyPair::from_secret_bytes(&b.kem.to_secret_bytes());
        assert_eq!(back.id(), 5);
        assert_eq!(back.public_key(), b.kem.public_key());
        assert_eq!(&b.kem.to_secret_bytes()[4..], &kem_seed());
        let s = format!("{:?}", b.kem);
        assert!(s.contains("[redacted]"), "{s}");
        let (a, _, _) = fixed(&b, false).unwrap();
        assert_eq!(format!("{a:?}"), "PqxdhAgreement([redacted])");
        let p = format!("{:?}", b.kem.public_for_device(DEVICE, &b.id));
        assert!(p.len() < 200, "{p}");
    }
}

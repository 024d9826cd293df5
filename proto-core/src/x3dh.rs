//! X3DH key agreement (Signal's spec over X25519) and the initiator's prekey header.
//!
//! This module owns the agreement exactly as PROTOCOL.md §4.2 writes it:
//! `DH1 = DH(IKd_A, SPK_B)`, `DH2 = DH(EK_A, IKd_B)`, `DH3 = DH(EK_A, SPK_B)`,
//! `DH4 = DH(EK_A, OPK_B)` when a one-time prekey is used,
//! `SK = HKDF(salt = 32 zero bytes, ikm = 32×0xFF || DH1 || DH2 || DH3 [|| DH4], "Sealroom X3DH v1", 32)`,
//! `AD = IKd_A || IKs_A || IKd_B || IKs_B`; and the fixed 106-byte [`PrekeyHeader`] that carries what
//! the responder needs. It verifies the signed prekey's signature and rejects any all-zero DH
//! output. It does not decide whether an identity is trusted (safety numbers do that, with the
//! user), nor fetch or delete prekeys.
//!
//! # Prekey header layout (106 bytes, big-endian integers)
//!
//! | offset | len | field |
//! |---|---|---|
//! | 0 | 1 | version, `0x01` |
//! | 1 | 32 | `IKs_A`, the initiator's Ed25519 identity key |
//! | 33 | 32 | `IKd_A`, the initiator's X25519 identity key |
//! | 65 | 32 | `EK_A`, the initiator's ephemeral X25519 key |
//! | 97 | 4 | id of the responder's signed prekey used |
//! | 101 | 1 | `0x00`: no one-time prekey; `0x01`: one was used |
//! | 102 | 4 | id of the one-time prekey used (zero when byte 101 is `0x00`) |

use core::fmt;

use rand_core::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::kdf::{X3DH_INFO, ZERO_SALT, hkdf_sha256};
use crate::keys::{
    IdentityKeyPair, IdentityPublicKey, OneTimePrekeyPair, OneTimePrekeyPublic, SignedPrekeyPair,
    SignedPrekeyPublic, dh,
};

/// Length of the associated data X3DH produces: `IKd_A || IKs_A || IKd_B || IKs_B`.
pub const X3DH_AD_LEN: usize = 128;
/// Length of an encoded [`PrekeyHeader`].
pub const PREKEY_HEADER_LEN: usize = 106;
/// The version byte a [`PrekeyHeader`] starts with.
pub const PREKEY_HEADER_VERSION: u8 = 1;

/// Why an X3DH agreement was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X3dhError {
    /// The signed prekey's signature does not verify under the bundle's identity key.
    BadPrekeySignature,
    /// A Diffie-Hellman output was all zeros: a peer key is a small-order point.
    NonContributory,
    /// The header names a signed prekey other than the one the responder passed in.
    WrongSignedPrekey,
    /// The header's one-time prekey (or its absence) does not match the one passed in.
    WrongOneTimePrekey,
}

impl fmt::Display for X3dhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadPrekeySignature => "the signed prekey's signature does not verify",
            Self::NonContributory => "a key exchange gave an all-zero output (invalid peer key)",
            Self::WrongSignedPrekey => "the message names a different signed prekey",
            Self::WrongOneTimePrekey => "the message names a different one-time prekey",
        })
    }
}

impl core::error::Error for X3dhError {}

/// Why a prekey header did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrekeyHeaderError {
    /// Fewer than [`PREKEY_HEADER_LEN`] bytes.
    Truncated,
    /// The version byte is not [`PREKEY_HEADER_VERSION`].
    UnknownVersion,
    /// The one-time-prekey flag is neither 0 nor 1, or the id is non-zero with the flag at 0.
    Malformed,
}

impl fmt::Display for PrekeyHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "prekey header truncated",
            Self::UnknownVersion => "unknown prekey header version",
            Self::Malformed => "malformed prekey header",
        })
    }
}

impl core::error::Error for PrekeyHeaderError {}

/// What an initiator fetched from the key directory for one device of the responder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteBundle {
    /// The responder's identity (`IKs_B`, `IKd_B`).
    pub identity: IdentityPublicKey,
    /// The responder's signed prekey `SPK_B` with its signature.
    pub signed_prekey: SignedPrekeyPublic,
    /// One of the responder's one-time prekeys, if the server had one left.
    pub one_time_prekey: Option<OneTimePrekeyPublic>,
}

impl From<&crate::message::PrekeyBundle<'_>> for RemoteBundle {
    /// The directory's wire bundle as X3DH input. The signed prekey's signature is checked
    /// when the agreement starts ([`X3dhAgreement::initiate`]), not here.
    fn from(b: &crate::message::PrekeyBundle<'_>) -> Self {
        Self {
            identity: IdentityPublicKey {
                signing: b.identity_sig.0,
                dh: b.identity_dh.0,
            },
            signed_prekey: SignedPrekeyPublic::from(&b.signed_prekey),
            one_time_prekey: b.one_time_prekey.map(|k| OneTimePrekeyPublic {
                id: k.id,
                public: k.key.0,
            }),
        }
    }
}

/// The initiator's prekey header: sent in front of its ratchet messages until the responder answers.
///
/// A typed value; [`parse`](Self::parse) and [`to_bytes`](Self::to_bytes) give the byte form in
/// the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrekeyHeader {
    /// The initiator's identity (`IKs_A`, `IKd_A`).
    pub identity: IdentityPublicKey,
    /// The initiator's ephemeral key `EK_A`.
    pub ephemeral: [u8; 32],
    /// Which of the responder's signed prekeys was used.
    pub signed_prekey_id: u32,
    /// Which of the responder's one-time prekeys was used, if any.
    pub one_time_prekey_id: Option<u32>,
}

impl PrekeyHeader {
    /// Parse the header at the front of `bytes`; return it and the bytes after it.
    pub fn parse(bytes: &[u8]) -> Result<(Self, &[u8]), PrekeyHeaderError> {
        let (head, rest) = bytes
            .split_first_chunk::<PREKEY_HEADER_LEN>()
            .ok_or(PrekeyHeaderError::Truncated)?;
        Ok((Self::from_bytes(head)?, rest))
    }

    /// Decode exactly [`PREKEY_HEADER_LEN`] bytes.
    pub fn from_bytes(b: &[u8; PREKEY_HEADER_LEN]) -> Result<Self, PrekeyHeaderError> {
        let (version, rest) = b
            .split_first_chunk::<1>()
            .ok_or(PrekeyHeaderError::Truncated)?;
        if version[0] != PREKEY_HEADER_VERSION {
            return Err(PrekeyHeaderError::UnknownVersion);
        }
        let (signing, rest) = take32(rest)?;
        let (dh_key, rest) = take32(rest)?;
        let (ephemeral, rest) = take32(rest)?;
        let (spk_id, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(PrekeyHeaderError::Truncated)?;
        let (flag, rest) = rest
            .split_first_chunk::<1>()
            .ok_or(PrekeyHeaderError::Truncated)?;
        let (opk_id, _) = rest
            .split_first_chunk::<4>()
            .ok_or(PrekeyHeaderError::Truncated)?;
        let opk_id = u32::from_be_bytes(*opk_id);
        let one_time_prekey_id = match (flag[0], opk_id) {
            (0, 0) => None,
            (1, id) => Some(id),
            _ => return Err(PrekeyHeaderError::Malformed),
        };
        Ok(Self {
            identity: IdentityPublicKey {
                signing,
                dh: dh_key,
            },
            ephemeral,
            signed_prekey_id: u32::from_be_bytes(*spk_id),
            one_time_prekey_id,
        })
    }

    /// Encode into the 106-byte form.
    pub fn to_bytes(&self) -> [u8; PREKEY_HEADER_LEN] {
        let mut out = [0u8; PREKEY_HEADER_LEN];
        let (version, rest) = out.split_at_mut(1);
        version.copy_from_slice(&[PREKEY_HEADER_VERSION]);
        let (signing, rest) = rest.split_at_mut(32);
        signing.copy_from_slice(&self.identity.signing);
        let (dh_key, rest) = rest.split_at_mut(32);
        dh_key.copy_from_slice(&self.identity.dh);
        let (ephemeral, rest) = rest.split_at_mut(32);
        ephemeral.copy_from_slice(&self.ephemeral);
        let (spk_id, rest) = rest.split_at_mut(4);
        spk_id.copy_from_slice(&self.signed_prekey_id.to_be_bytes());
        let (flag, opk_id) = rest.split_at_mut(1);
        if let Some(id) = self.one_time_prekey_id {
            flag.copy_from_slice(&[1]);
            opk_id.copy_from_slice(&id.to_be_bytes());
        }
        out
    }
}

fn take32(b: &[u8]) -> Result<([u8; 32], &[u8]), PrekeyHeaderError> {
    let (k, rest) = b
        .split_first_chunk::<32>()
        .ok_or(PrekeyHeaderError::Truncated)?;
    Ok((*k, rest))
}

/// The result of X3DH: the shared secret `SK` and the associated data `AD`.
///
/// Consumed by the Double Ratchet session constructors. `SK` is zeroized on drop and never
/// printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct X3dhAgreement {
    sk: [u8; 32],
    ad: [u8; X3DH_AD_LEN],
}

impl fmt::Debug for X3dhAgreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("X3dhAgreement([redacted])")
    }
}

impl X3dhAgreement {
    /// Initiator side: verify the bundle, make an ephemeral key from `rng`, agree.
    ///
    /// Returns the agreement and the header to send in front of the first message.
    pub fn initiate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
    ) -> Result<(Self, PrekeyHeader), X3dhError> {
        Self::initiate_with(identity, bundle, None, StaticSecret::random_from_rng(rng))
    }

    /// [`initiate`](Self::initiate) with one device of a linked account: the signed prekey
    /// must be signed for `device_id` ("Sealroom SPK v2", PROTOCOL.md §4.6), so a server
    /// cannot hand out one device's prekey as another's, or add a device the identity did not
    /// sign. A v1 signature is refused (`BadPrekeySignature`).
    pub fn initiate_for_device<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
        device_id: u32,
    ) -> Result<(Self, PrekeyHeader), X3dhError> {
        Self::initiate_with(
            identity,
            bundle,
            Some(device_id),
            StaticSecret::random_from_rng(rng),
        )
    }

    /// [`initiate`](Self::initiate) with a given ephemeral secret, for test vectors only.
    #[cfg(any(test, feature = "vectors"))]
    pub fn initiate_with_fixed_ephemeral_for_tests(
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
        ephemeral_secret: &[u8; 32],
    ) -> Result<(Self, PrekeyHeader), X3dhError> {
        Self::initiate_with(
            identity,
            bundle,
            None,
            StaticSecret::from(*ephemeral_secret),
        )
    }

    fn initiate_with(
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
        device_id: Option<u32>,
        ephemeral: StaticSecret,
    ) -> Result<(Self, PrekeyHeader), X3dhError> {
        match device_id {
            None => bundle.signed_prekey.verify(&bundle.identity.signing),
            Some(d) => bundle
                .signed_prekey
                .verify_for_device(&bundle.identity.signing, d),
        }
        .map_err(|_| X3dhError::BadPrekeySignature)?;
        let (dhs, header) = initiator_dh(identity, bundle, &ephemeral)?;
        let agreement = Self::derive(&dhs, &header.identity, &bundle.identity);
        Ok((agreement, header))
    }

    /// Responder side: agree with the initiator named in `header`, using the prekeys it names.
    ///
    /// The caller looks up `signed_prekey` and `one_time_prekey` by the ids in `header`, and
    /// deletes the one-time prekey once the first message has decrypted.
    pub fn respond(
        identity: &IdentityKeyPair,
        signed_prekey: &SignedPrekeyPair,
        one_time_prekey: Option<&OneTimePrekeyPair>,
        header: &PrekeyHeader,
    ) -> Result<Self, X3dhError> {
        let dhs = responder_dh(identity, signed_prekey, one_time_prekey, header)?;
        Ok(Self::derive(&dhs, &header.identity, &identity.public()))
    }

    fn derive(dhs: &DhInput, initiator: &IdentityPublicKey, responder: &IdentityPublicKey) -> Self {
        let mut sk = [0u8; 32];
        // 32 bytes of output is always within HKDF's limit.
        let _ = hkdf_sha256(&ZERO_SALT, dhs.ikm(), X3DH_INFO, &mut sk);
        Self {
            sk,
            ad: associated_data(initiator, responder),
        }
    }

    /// The associated data `IKd_A || IKs_A || IKd_B || IKs_B`.
    pub fn associated_data(&self) -> &[u8; X3DH_AD_LEN] {
        &self.ad
    }

    /// The shared secret `SK`, for test vectors only.
    #[cfg(any(test, feature = "vectors"))]
    pub fn shared_secret_for_tests(&self) -> [u8; 32] {
        self.sk
    }

    pub(crate) fn into_parts(self) -> (Zeroizing<[u8; 32]>, [u8; X3DH_AD_LEN]) {
        (Zeroizing::new(self.sk), self.ad)
    }
}

/// X3DH's key material: `32×0xFF || DH1 || DH2 || DH3 [|| DH4]` (PROTOCOL.md §4.2), zeroized
/// on drop. PQXDH (pqxdh.rs) derives from these bytes followed by its KEM shared secret.
pub(crate) struct DhInput {
    ikm: Zeroizing<[u8; 32 * 5]>,
    len: usize,
}

impl DhInput {
    fn new(dh1: &[u8; 32], dh2: &[u8; 32], dh3: &[u8; 32], dh4: Option<&[u8; 32]>) -> Self {
        let mut ikm = Zeroizing::new([0xFFu8; 32 * 5]);
        let mut len = 32;
        for part in [Some(dh1), Some(dh2), Some(dh3), dh4].into_iter().flatten() {
            if let Some(slot) = ikm.get_mut(len..len + 32) {
                slot.copy_from_slice(part);
            }
            len += 32;
        }
        Self { ikm, len }
    }

    /// The HKDF input key material, 128 bytes (no one-time prekey) or 160.
    pub(crate) fn ikm(&self) -> &[u8] {
        // `len` is 128 or 160, never past the buffer: `min` only keeps `split_at` panic-free.
        self.ikm.split_at(self.len.min(self.ikm.len())).0
    }
}

/// The initiator's DH1..DH4 with `ephemeral` and the header naming the prekeys used. The
/// caller has checked the signed prekey's signature.
pub(crate) fn initiator_dh(
    identity: &IdentityKeyPair,
    bundle: &RemoteBundle,
    ephemeral: &StaticSecret,
) -> Result<(DhInput, PrekeyHeader), X3dhError> {
    let spk = &bundle.signed_prekey.public;
    let dh1 = dh(identity.dh_secret(), spk).map_err(|_| X3dhError::NonContributory)?;
    let dh2 = dh(ephemeral, &bundle.identity.dh).map_err(|_| X3dhError::NonContributory)?;
    let dh3 = dh(ephemeral, spk).map_err(|_| X3dhError::NonContributory)?;
    let dh4 = match &bundle.one_time_prekey {
        Some(opk) => Some(dh(ephemeral, &opk.public).map_err(|_| X3dhError::NonContributory)?),
        None => None,
    };
    let header = PrekeyHeader {
        identity: identity.public(),
        ephemeral: PublicKey::from(ephemeral).to_bytes(),
        signed_prekey_id: bundle.signed_prekey.id,
        one_time_prekey_id: bundle.one_time_prekey.map(|k| k.id),
    };
    Ok((DhInput::new(&dh1, &dh2, &dh3, dh4.as_deref()), header))
}

/// The responder's DH1..DH4 for `header`, after checking that it names the prekeys passed in.
pub(crate) fn responder_dh(
    identity: &IdentityKeyPair,
    signed_prekey: &SignedPrekeyPair,
    one_time_prekey: Option<&OneTimePrekeyPair>,
    header: &PrekeyHeader,
) -> Result<DhInput, X3dhError> {
    if header.signed_prekey_id != signed_prekey.id() {
        return Err(X3dhError::WrongSignedPrekey);
    }
    match (header.one_time_prekey_id, one_time_prekey) {
        (None, None) => {}
        (Some(id), Some(opk)) if id == opk.id() => {}
        _ => return Err(X3dhError::WrongOneTimePrekey),
    }
    let spk = signed_prekey.secret();
    let dh1 = dh(spk, &header.identity.dh).map_err(|_| X3dhError::NonContributory)?;
    let dh2 =
        dh(identity.dh_secret(), &header.ephemeral).map_err(|_| X3dhError::NonContributory)?;
    let dh3 = dh(spk, &header.ephemeral).map_err(|_| X3dhError::NonContributory)?;
    let dh4 = match one_time_prekey {
        Some(opk) => {
            Some(dh(opk.secret(), &header.ephemeral).map_err(|_| X3dhError::NonContributory)?)
        }
        None => None,
    };
    Ok(DhInput::new(&dh1, &dh2, &dh3, dh4.as_deref()))
}

/// `AD = IKd_A || IKs_A || IKd_B || IKs_B`.
pub(crate) fn associated_data(
    initiator: &IdentityPublicKey,
    responder: &IdentityPublicKey,
) -> [u8; X3DH_AD_LEN] {
    let mut ad = [0u8; X3DH_AD_LEN];
    for (chunk, key) in ad.chunks_exact_mut(32).zip([
        &initiator.dh,
        &initiator.signing,
        &responder.dh,
        &responder.signing,
    ]) {
        chunk.copy_from_slice(key);
    }
    ad
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn bob() -> (IdentityKeyPair, SignedPrekeyPair, OneTimePrekeyPair) {
        let id = IdentityKeyPair::from_secrets(&[11; 32], &[12; 32]);
        let spk = SignedPrekeyPair::from_secret_key(1, &[13; 32], &id);
        let opk = OneTimePrekeyPair::from_secret_key(2, &[14; 32]);
        (id, spk, opk)
    }

    fn bundle(
        id: &IdentityKeyPair,
        spk: &SignedPrekeyPair,
        opk: Option<&OneTimePrekeyPair>,
    ) -> RemoteBundle {
        RemoteBundle {
            identity: id.public(),
            signed_prekey: spk.public(),
            one_time_prekey: opk.map(OneTimePrekeyPair::public),
        }
    }

    #[test]
    fn both_sides_agree_with_and_without_opk() {
        let alice = IdentityKeyPair::from_secrets(&[1; 32], &[2; 32]);
        let (b, spk, opk) = bob();
        for use_opk in [false, true] {
            let opk = use_opk.then_some(&opk);
            let (a, header) = X3dhAgreement::initiate_with_fixed_ephemeral_for_tests(
                &alice,
                &bundle(&b, &spk, opk),
                &[3; 32],
            )
            .unwrap();
            let bytes = header.to_bytes();
            let (parsed, rest) = PrekeyHeader::parse(&bytes).unwrap();
            assert!(rest.is_empty());
            assert_eq!(parsed, header);
            let r = X3dhAgreement::respond(&b, &spk, opk, &parsed).unwrap();
            assert_eq!(a.sk, r.sk);
            assert_eq!(a.ad, r.ad);
            assert_eq!(&a.ad[..32], &alice.public().dh);
            assert_eq!(&a.ad[96..], &b.public().signing);
        }
    }

    /// A linked device's bundle: its prekey must be signed for the device asked for; a v1
    /// prekey, or one signed for another device, is refused before any key agreement.
    #[test]
    fn a_device_bundle_must_be_signed_for_that_device() {
        let alice = IdentityKeyPair::from_secrets(&[1; 32], &[2; 32]);
        let (b, v1, opk) = bob();
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(7);
        let for_two = SignedPrekeyPair::from_secret_key_for_device(1, 2, &[13; 32], &b);
        let (a, header) = X3dhAgreement::initiate_for_device(
            &mut rng,
            &alice,
            &bundle(&b, &for_two, Some(&opk)),
            2,
        )
        .unwrap();
        let r = X3dhAgreement::respond(&b, &for_two, Some(&opk), &header).unwrap();
        assert_eq!(a.sk, r.sk);
        for (spk, device) in [(&for_two, 3), (&v1, 2)] {
            assert_eq!(
                X3dhAgreement::initiate_for_device(
                    &mut rng,
                    &alice,
                    &bundle(&b, spk, None),
                    device
                )
                .err(),
                Some(X3dhError::BadPrekeySignature)
            );
        }
        assert_eq!(
            X3dhAgreement::initiate(&mut rng, &alice, &bundle(&b, &for_two, None)).err(),
            Some(X3dhError::BadPrekeySignature),
            "a v2 prekey is not a v1 one"
        );
    }

    #[test]
    fn rejects_bad_signature_small_order_and_wrong_prekeys() {
        let alice = IdentityKeyPair::from_secrets(&[1; 32], &[2; 32]);
        let (b, spk, opk) = bob();
        let mut bad = bundle(&b, &spk, None);
        bad.signed_prekey.signature[3] ^= 1;
        assert_eq!(
            X3dhAgreement::initiate_with_fixed_ephemeral_for_tests(&alice, &bad, &[3; 32])
                .unwrap_err(),
            X3dhError::BadPrekeySignature
        );
        let mut zero = bundle(&b, &spk, Some(&opk));
        zero.one_time_prekey = Some(OneTimePrekeyPublic {
            id: 2,
            public: [0; 32],
        });
        assert_eq!(
            X3dhAgreement::initiate_with_fixed_ephemeral_for_tests(&alice, &zero, &[3; 32])
                .unwrap_err(),
            X3dhError::NonContributory
        );
        let (_, header) = X3dhAgreement::initiate_with_fixed_ephemeral_for_tests(
            &alice,
            &bundle(&b, &spk, Some(&opk)),
            &[3; 32],
        )
        .unwrap();
        assert_eq!(
            X3dhAgreement::respond(&b, &spk, None, &header).unwrap_err(),
            X3dhError::WrongOneTimePrekey
        );
        let other_spk = SignedPrekeyPair::from_secret_key(9, &[13; 32], &b);
        assert_eq!(
            X3dhAgreement::respond(&b, &other_spk, Some(&opk), &header).unwrap_err(),
            X3dhError::WrongSignedPrekey
        );
        let mut low = header;
        low.ephemeral = [0; 32];
        assert_eq!(
            X3dhAgreement::respond(&b, &spk, Some(&opk), &low).unwrap_err(),
            X3dhError::NonContributory
        );
    }

    #[test]
    fn header_parse_errors() {
        let h = PrekeyHeader {
            identity: IdentityPublicKey {
                signing: [1; 32],
                dh: [2; 32],
            },
            ephemeral: [3; 32],
            signed_prekey_id: 7,
            one_time_prekey_id: None,
        };
        let b = h.to_bytes();
        assert_eq!(
            PrekeyHeader::parse(&b[..105]).unwrap_err(),
            PrekeyHeaderError::Truncated
        );
        let mut v = b;
        v[0] = 2;
        assert_eq!(
            PrekeyHeader::parse(&v).unwrap_err(),
            PrekeyHeaderError::UnknownVersion
        );
        let mut f = b;
        f[101] = 2;
        assert_eq!(
            PrekeyHeader::parse(&f).unwrap_err(),
            PrekeyHeaderError::Malformed
        );
        let mut z = b;
        z[105] = 1;
        assert_eq!(
            PrekeyHeader::parse(&z).unwrap_err(),
            PrekeyHeaderError::Malformed
        );
    }
}

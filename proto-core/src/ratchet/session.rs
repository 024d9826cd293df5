//! The pairwise session: X3DH's output driven through the Double Ratchet, sans-IO.
//!
//! # States
//!
//! A session holds a root key, at most one sending chain and one receiving chain, the peer's
//! current ratchet public key, and — between sending on a new key and hearing back — our own
//! ratchet key pair. The DH ratchet is taken lazily on the sending side: receiving a new ratchet
//! key from the peer closes our sending chain (`pn` remembers its length) and forgets our
//! ratchet secret; the next [`Session::encrypt`] draws a fresh ratchet key from the caller's RNG
//! and opens a new sending chain. On the wire and in every derived key this is exactly Signal's
//! `DHRatchet` (which the vectors check); it only moves the key generation to the moment the
//! RNG is at hand and drops each secret as early as possible.
//!
//! # Call order
//!
//! - Initiator: [`Session::initiate`] → [`Session::encrypt`] any number of times, sending
//!   [`Session::pending_prekey_header`] in front of each message while it is `Some` (until the
//!   first reply decrypts) → [`Session::decrypt`] whatever arrives.
//! - Responder: [`Session::respond`] with the prekeys the header names → [`Session::decrypt`]
//!   the first message (if it fails, drop the session: nothing was agreed) → then `encrypt` and
//!   `decrypt` freely. `encrypt` before the first successful `decrypt` returns
//!   [`EncryptError::NotReady`].
//!
//! A failed `decrypt` leaves the session exactly as it was: every change is computed on the
//! side and committed only after the AEAD tag verified.

use core::fmt;

use rand_core::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::chain_key::{ChainKey, store_skipped, walk};
use super::message_key::MessageKey;
use super::root_key::RootKey;
use super::skipped::SkippedKeys;
use super::{
    DEFAULT_MAX_SKIP, DecryptError, EncryptError, RATCHET_HEADER_LEN, RATCHET_OVERHEAD,
    RatchetHeader,
};
use crate::aead::AEAD_TAG_LEN;
use crate::caller::CallerError;
use crate::kdf::MESSAGE_INFO;
use crate::keys::{IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair, dh};
use crate::pqxdh::{KemHeader, KemPrekeyPair, KemPrekeyPublic, PqxdhAgreement, PqxdhError};
use crate::x3dh::{PrekeyHeader, RemoteBundle, X3DH_AD_LEN, X3dhAgreement, X3dhError};

/// Our ratchet key pair `DHs`.
pub(super) struct RatchetKeyPair {
    pub(super) secret: StaticSecret,
    pub(super) public: [u8; 32],
}

impl RatchetKeyPair {
    pub(super) fn new(secret: StaticSecret) -> Self {
        let public = PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }
}

/// A chain key and the number of the next message on it.
pub(super) struct Chain {
    pub(super) key: ChainKey,
    pub(super) n: u32,
}

/// A Double Ratchet session with one peer device.
///
/// `MAX_SKIP` is both the capacity of the skipped-key storage and the most message keys a single
/// incoming message may make us skip (default [`DEFAULT_MAX_SKIP`]). The whole state lives
/// inline (no allocation); [`Session::STATE_LEN`] is its serialized size. Secrets are zeroized on
/// drop; `Debug` prints `[redacted]`. See the module documentation for the call order.
///
/// ```
/// use proto_core::{IdentityKeyPair, RATCHET_OVERHEAD, RemoteBundle, Session, SignedPrekeyPair};
/// # use rand_chacha::ChaCha20Rng;
/// # use rand_core::SeedableRng;
/// # let mut rng = ChaCha20Rng::from_seed([1; 32]); // a product passes its OS or hardware RNG
/// let alice = IdentityKeyPair::generate(&mut rng);
/// let bob = IdentityKeyPair::generate(&mut rng);
/// let spk = SignedPrekeyPair::generate(&mut rng, 1, &bob);
/// let bundle = RemoteBundle {
///     identity: bob.public(),
///     signed_prekey: spk.public(),
///     one_time_prekey: None,
/// };
///
/// // Alice: X3DH, then the first message; the prekey header travels in front of it.
/// // (Name the type, `Session` or `Session<N>`: Rust does not infer a default const parameter.)
/// let (mut a, header): (Session, _) = Session::initiate(&mut rng, &alice, &bundle)?;
/// let mut wire = [0u8; 5 + RATCHET_OVERHEAD];
/// let n = a.encrypt(&mut rng, b"hello", &mut wire)?;
///
/// // Bob: X3DH from the header, then the message.
/// let mut b: Session = Session::respond(&bob, &spk, None, &header)?;
/// let mut plaintext = [0u8; 5];
/// let len = b.decrypt(&wire[..n], &mut plaintext)?;
/// assert_eq!(&plaintext[..len], b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Session<const MAX_SKIP: usize = DEFAULT_MAX_SKIP> {
    pub(super) ad: [u8; X3DH_AD_LEN],
    pub(super) root: RootKey,
    pub(super) our_ratchet: Option<RatchetKeyPair>,
    pub(super) their_ratchet: Option<[u8; 32]>,
    pub(super) sending: Option<Chain>,
    pub(super) receiving: Option<Chain>,
    pub(super) previous_sending_len: u32,
    pub(super) skipped: SkippedKeys<MAX_SKIP>,
    pub(super) prekey_header: Option<PrekeyHeader>,
    /// With a PQXDH session, the KEM header sent beside `prekey_header` until the first reply.
    pub(super) kem_header: Option<KemHeader>,
}

impl<const MAX_SKIP: usize> ZeroizeOnDrop for Session<MAX_SKIP> {}

impl<const MAX_SKIP: usize> fmt::Debug for Session<MAX_SKIP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Session([redacted])")
    }
}

/// What a successful authentication lets `decrypt` commit.
enum Commit {
    Skipped(usize),
    SameChain {
        next: ChainKey,
        n: u32,
    },
    NewChain {
        root: RootKey,
        next: ChainKey,
        n: u32,
        ratchet_key: [u8; 32],
    },
}

impl<const MAX_SKIP: usize> Session<MAX_SKIP> {
    /// The skipped-key capacity of this session type.
    pub const MAX_SKIP: usize = MAX_SKIP;

    /// Start a session as the initiator: X3DH against `bundle` with a fresh ephemeral key.
    ///
    /// Returns the session and the prekey header to send in front of the first messages (also
    /// kept in [`pending_prekey_header`](Self::pending_prekey_header)).
    pub fn initiate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
    ) -> Result<(Self, PrekeyHeader), X3dhError> {
        let (agreement, header) = X3dhAgreement::initiate(rng, identity, bundle)?;
        Ok((Self::initiator(agreement, bundle, header), header))
    }

    /// [`initiate`](Self::initiate) with one device of a linked account, whose signed prekey
    /// must be signed for `device_id` (PROTOCOL.md §4.6; see
    /// [`X3dhAgreement::initiate_for_device`]).
    pub fn initiate_for_device<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
        device_id: u32,
    ) -> Result<(Self, PrekeyHeader), X3dhError> {
        let (agreement, header) =
            X3dhAgreement::initiate_for_device(rng, identity, bundle, device_id)?;
        Ok((Self::initiator(agreement, bundle, header), header))
    }

    /// [`initiate`](Self::initiate) with a given ephemeral secret, for test vectors only.
    #[cfg(any(test, feature = "vectors"))]
    pub fn initiate_with_fixed_ephemeral_for_tests(
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
        ephemeral_secret: &[u8; 32],
    ) -> Result<(Self, PrekeyHeader), X3dhError> {
        let (agreement, header) = X3dhAgreement::initiate_with_fixed_ephemeral_for_tests(
            identity,
            bundle,
            ephemeral_secret,
        )?;
        Ok((Self::initiator(agreement, bundle, header), header))
    }

    /// Start a session as the initiator with PQXDH (PROTOCOL.md §4.8): X3DH with the linked
    /// device `device_id` plus an encapsulation to its signed KEM prekey. Both signatures are
    /// checked for that device; there is no classical fallback.
    ///
    /// Returns the session and the two headers to send in front of the first messages (also
    /// kept in [`pending_prekey_header`](Self::pending_prekey_header) and
    /// [`pending_kem_header`](Self::pending_kem_header) until a reply decrypts).
    pub fn initiate_pqxdh<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
        device_id: u32,
        kem_prekey: &KemPrekeyPublic,
    ) -> Result<(Self, PrekeyHeader, KemHeader), PqxdhError> {
        let started = PqxdhAgreement::initiate(rng, identity, bundle, device_id, kem_prekey)?;
        Ok(Self::pqxdh_initiator(started, bundle))
    }

    /// [`initiate_pqxdh`](Self::initiate_pqxdh) with a given ephemeral secret and ML-KEM
    /// message, for test vectors only.
    #[cfg(any(test, feature = "vectors"))]
    pub fn initiate_pqxdh_with_fixed_randomness_for_tests(
        identity: &IdentityKeyPair,
        bundle: &RemoteBundle,
        device_id: u32,
        kem_prekey: &KemPrekeyPublic,
        ephemeral_secret: &[u8; 32],
        kem_message: &[u8; 32],
    ) -> Result<(Self, PrekeyHeader, KemHeader), PqxdhError> {
        let started = PqxdhAgreement::initiate_with_fixed_randomness_for_tests(
            identity,
            bundle,
            device_id,
            kem_prekey,
            ephemeral_secret,
            kem_message,
        )?;
        Ok(Self::pqxdh_initiator(started, bundle))
    }

    /// The initiator's session after PQXDH: both headers pending until the first reply.
    fn pqxdh_initiator(
        (agreement, header, kem): (PqxdhAgreement, PrekeyHeader, KemHeader),
        bundle: &RemoteBundle,
    ) -> (Self, PrekeyHeader, KemHeader) {
        let (sk, ad) = agreement.into_parts();
        let mut session = Self::from_initiator_parts(sk, ad, bundle, header);
        session.kem_header = Some(kem.clone());
        (session, header, kem)
    }

    /// Start a session as the responder to a PQXDH first message: `signed_prekey`,
    /// `one_time_prekey` and `kem_prekey` are the ones the headers name (their ids are
    /// checked). A tampered KEM ciphertext is not detected here: it gives another root key
    /// (ML-KEM's implicit rejection), so the first message does not decrypt.
    pub fn respond_pqxdh(
        identity: &IdentityKeyPair,
        signed_prekey: &SignedPrekeyPair,
        one_time_prekey: Option<&OneTimePrekeyPair>,
        kem_prekey: &KemPrekeyPair,
        header: &PrekeyHeader,
        kem: &KemHeader,
    ) -> Result<Self, PqxdhError> {
        let agreement = PqxdhAgreement::respond(
            identity,
            signed_prekey,
            one_time_prekey,
            kem_prekey,
            header,
            kem,
        )?;
        let (sk, ad) = agreement.into_parts();
        Ok(Self::from_responder_parts(sk, ad, signed_prekey))
    }

    fn initiator(agreement: X3dhAgreement, bundle: &RemoteBundle, header: PrekeyHeader) -> Self {
        let (sk, ad) = agreement.into_parts();
        Self::from_initiator_parts(sk, ad, bundle, header)
    }

    fn from_initiator_parts(
        sk: Zeroizing<[u8; 32]>,
        ad: [u8; X3DH_AD_LEN],
        bundle: &RemoteBundle,
        header: PrekeyHeader,
    ) -> Self {
        Self {
            ad,
            root: RootKey(*sk),
            our_ratchet: None,
            their_ratchet: Some(bundle.signed_prekey.public),
            sending: None,
            receiving: None,
            previous_sending_len: 0,
            skipped: SkippedKeys::new(),
            prekey_header: Some(header),
            kem_header: None,
        }
    }

    /// Start a session as the responder to a prekey header; then decrypt the first message.
    ///
    /// `signed_prekey` and `one_time_prekey` are the ones `header` names (its ids are checked).
    /// The signed prekey is this session's first ratchet key.
    pub fn respond(
        identity: &IdentityKeyPair,
        signed_prekey: &SignedPrekeyPair,
        one_time_prekey: Option<&OneTimePrekeyPair>,
        header: &PrekeyHeader,
    ) -> Result<Self, X3dhError> {
        let agreement = X3dhAgreement::respond(identity, signed_prekey, one_time_prekey, header)?;
        let (sk, ad) = agreement.into_parts();
        Ok(Self::from_responder_parts(sk, ad, signed_prekey))
    }

    fn from_responder_parts(
        sk: Zeroizing<[u8; 32]>,
        ad: [u8; X3DH_AD_LEN],
        signed_prekey: &SignedPrekeyPair,
    ) -> Self {
        Self {
            ad,
            root: RootKey(*sk),
            our_ratchet: Some(RatchetKeyPair::new(signed_prekey.secret().clone())),
            their_ratchet: None,
            sending: None,
            receiving: None,
            previous_sending_len: 0,
            skipped: SkippedKeys::new(),
            prekey_header: None,
            kem_header: None,
        }
    }

    /// The initiator's prekey header, to send in front of each message until a reply decrypts.
    pub fn pending_prekey_header(&self) -> Option<&PrekeyHeader> {
        self.prekey_header.as_ref()
    }

    /// The initiator's KEM header (a PQXDH session), to send beside the prekey header until a
    /// reply decrypts.
    pub fn pending_kem_header(&self) -> Option<&KemHeader> {
        self.kem_header.as_ref()
    }

    /// The X3DH associated data `IKd_A || IKs_A || IKd_B || IKs_B` this session binds.
    pub fn associated_data(&self) -> &[u8; X3DH_AD_LEN] {
        &self.ad
    }

    /// Whether [`encrypt`](Self::encrypt) can send now (false only for a responder before its
    /// first successful decrypt).
    pub fn can_send(&self) -> bool {
        self.sending.is_some() || self.their_ratchet.is_some()
    }

    /// How many skipped message keys are stored (never more than `MAX_SKIP`).
    pub fn skipped_key_count(&self) -> usize {
        self.skipped.len()
    }

    /// Encrypt `plaintext` into `out` as `header || ciphertext || tag`; return the length written.
    ///
    /// `out` needs `plaintext.len() + RATCHET_OVERHEAD` bytes. `rng` is used only when a new
    /// ratchet key is due (the first message after hearing a new key from the peer).
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EncryptError> {
        self.encrypt_with(|| StaticSecret::random_from_rng(rng), plaintext, out)
    }

    /// [`encrypt`](Self::encrypt) with a given secret for the next new ratchet key (ignored if
    /// none is due), for test vectors only.
    #[cfg(any(test, feature = "vectors"))]
    pub fn encrypt_with_fixed_ratchet_key_for_tests(
        &mut self,
        ratchet_secret: &[u8; 32],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EncryptError> {
        self.encrypt_with(|| StaticSecret::from(*ratchet_secret), plaintext, out)
    }

    fn encrypt_with(
        &mut self,
        new_ratchet_secret: impl FnOnce() -> StaticSecret,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EncryptError> {
        let total = plaintext
            .len()
            .checked_add(RATCHET_OVERHEAD)
            .ok_or(EncryptError::BufferTooSmall)?;
        let out = out.get_mut(..total).ok_or(EncryptError::BufferTooSmall)?;
        if self.sending.is_none() || self.our_ratchet.is_none() {
            let their = self.their_ratchet.ok_or(EncryptError::NotReady)?;
            let ours = RatchetKeyPair::new(new_ratchet_secret());
            // Their key already gave a contributory exchange (X3DH's DH1/DH3 or the receiving
            // step), and contributory-ness depends only on the point, so this cannot fail.
            let shared = dh(&ours.secret, &their).map_err(|_| EncryptError::NotReady)?;
            let (root, chain) = self.root.advance(&shared);
            self.root = root;
            self.our_ratchet = Some(ours);
            self.sending = Some(Chain { key: chain, n: 0 });
        }
        let (Some(ours), Some(chain)) = (&self.our_ratchet, &mut self.sending) else {
            return Err(EncryptError::NotReady);
        };
        if chain.n == u32::MAX {
            return Err(EncryptError::ChainExhausted);
        }
        let header = RatchetHeader {
            ratchet_key: ours.public,
            previous_chain_length: self.previous_sending_len,
            message_number: chain.n,
        }
        .to_bytes();
        let (mk, next) = chain.key.step();
        let (head, body) = out.split_at_mut(RATCHET_HEADER_LEN);
        head.copy_from_slice(&header);
        let (ciphertext, tag) = body.split_at_mut(plaintext.len());
        ciphertext.copy_from_slice(plaintext);
        let ad = aead_ad(&self.ad, &header);
        tag.copy_from_slice(&mk.seal(MESSAGE_INFO, &ad, ciphertext));
        chain.key = next;
        chain.n += 1;
        Ok(total)
    }

    /// Decrypt `message` (`header || ciphertext || tag`) into `out`; return the plaintext length.
    ///
    /// `out` needs `message.len() - RATCHET_OVERHEAD` bytes. On any error the session is unchanged.
    pub fn decrypt(&mut self, message: &[u8], out: &mut [u8]) -> Result<usize, DecryptError> {
        let (header, rest) = message
            .split_first_chunk::<RATCHET_HEADER_LEN>()
            .ok_or(DecryptError::Malformed)?;
        let (ciphertext, tag) = rest
            .split_last_chunk::<AEAD_TAG_LEN>()
            .ok_or(DecryptError::Malformed)?;
        let out = out
            .get_mut(..ciphertext.len())
            .ok_or(DecryptError::Caller(CallerError::BufferTooSmall))?;
        out.copy_from_slice(ciphertext);
        self.open(header, out, tag)?;
        Ok(out.len())
    }

    /// Decrypt `message` in place; return the plaintext, a sub-slice of `message`.
    ///
    /// On any error the session is unchanged, and so is `message`.
    pub fn decrypt_in_place<'m>(
        &mut self,
        message: &'m mut [u8],
    ) -> Result<&'m mut [u8], DecryptError> {
        let (header, rest) = message
            .split_first_chunk_mut::<RATCHET_HEADER_LEN>()
            .ok_or(DecryptError::Malformed)?;
        let (ciphertext, tag) = rest
            .split_last_chunk_mut::<AEAD_TAG_LEN>()
            .ok_or(DecryptError::Malformed)?;
        self.open(header, ciphertext, tag)?;
        Ok(ciphertext)
    }

    fn open(
        &mut self,
        header_bytes: &[u8; RATCHET_HEADER_LEN],
        buffer: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), DecryptError> {
        let header = RatchetHeader::from_bytes(header_bytes);
        let ad = aead_ad(&self.ad, header_bytes);
        let n = header.message_number;

        // 1. A key we kept for a message that had not arrived.
        if let Some(index) = self.skipped.find(&header.ratchet_key, n) {
            let key = self
                .skipped
                .key(index)
                .ok_or(DecryptError::Authentication)?;
            MessageKey(*key)
                .open(MESSAGE_INFO, &ad, buffer, tag)
                .map_err(|_| DecryptError::Authentication)?;
            self.commit(Commit::Skipped(index));
            return Ok(());
        }

        // 2. The current receiving chain.
        if self.their_ratchet == Some(header.ratchet_key) {
            let chain = self
                .receiving
                .as_ref()
                .ok_or(DecryptError::Authentication)?;
            if n < chain.n {
                return Err(DecryptError::Replay);
            }
            if exceeds_capacity::<MAX_SKIP>(u64::from(n - chain.n)) {
                return Err(DecryptError::TooManySkipped);
            }
            let (mk, next) = walk(&chain.key, chain.n, n);
            mk.open(MESSAGE_INFO, &ad, buffer, tag)
                .map_err(|_| DecryptError::Authentication)?;
            store_skipped(
                &mut self.skipped,
                &header.ratchet_key,
                &chain.key,
                chain.n,
                n,
            );
            self.commit(Commit::SameChain { next, n });
            return Ok(());
        }

        // 3. A new ratchet key from the peer: a DH ratchet step, staged.
        let old_skip = self
            .receiving
            .as_ref()
            .map_or(0, |c| header.previous_chain_length.saturating_sub(c.n));
        if exceeds_capacity::<MAX_SKIP>(u64::from(old_skip) + u64::from(n)) {
            return Err(DecryptError::TooManySkipped);
        }
        let ours = self
            .our_ratchet
            .as_ref()
            .ok_or(DecryptError::Authentication)?;
        let shared =
            dh(&ours.secret, &header.ratchet_key).map_err(|_| DecryptError::Authentication)?;
        let (root, chain) = self.root.advance(&shared);
        let (mk, next) = walk(&chain, 0, n);
        mk.open(MESSAGE_INFO, &ad, buffer, tag)
            .map_err(|_| DecryptError::Authentication)?;
        // Keys for the rest of the old chain, then the skipped start of the new one.
        if let (Some(old), Some(old_key)) = (&self.receiving, self.their_ratchet) {
            store_skipped(
                &mut self.skipped,
                &old_key,
                &old.key,
                old.n,
                header.previous_chain_length,
            );
        }
        store_skipped(&mut self.skipped, &header.ratchet_key, &chain, 0, n);
        self.commit(Commit::NewChain {
            root,
            next,
            n,
            ratchet_key: header.ratchet_key,
        });
        Ok(())
    }

    fn commit(&mut self, commit: Commit) {
        self.prekey_header = None;
        self.kem_header = None;
        match commit {
            Commit::Skipped(index) => self.skipped.remove(index),
            Commit::SameChain { next, n } => {
                if let Some(chain) = &mut self.receiving {
                    chain.key = next;
                    chain.n = n.saturating_add(1);
                }
            }
            Commit::NewChain {
                root,
                next,
                n,
                ratchet_key,
            } => {
                self.root = root;
                self.their_ratchet = Some(ratchet_key);
                self.receiving = Some(Chain {
                    key: next,
                    n: n.saturating_add(1),
                });
                if let Some(sending) = self.sending.take() {
                    self.previous_sending_len = sending.n;
                }
                self.our_ratchet = None;
            }
        }
    }
}

/// Whether skipping `count` keys would exceed a capacity of `N`.
fn exceeds_capacity<const N: usize>(count: u64) -> bool {
    usize::try_from(count).map_or(true, |count| count > N)
}

/// `AD || header`: the AEAD associated data of a ratchet message.
fn aead_ad(
    ad: &[u8; X3DH_AD_LEN],
    header: &[u8; RATCHET_HEADER_LEN],
) -> [u8; X3DH_AD_LEN + RATCHET_HEADER_LEN] {
    let mut out = [0u8; X3DH_AD_LEN + RATCHET_HEADER_LEN];
    let (a, h) = out.split_at_mut(X3DH_AD_LEN);
    a.copy_from_slice(ad);
    h.copy_from_slice(header);
    out
}

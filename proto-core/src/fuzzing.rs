//! Entry points for the fuzz targets in `fuzz/`. Not part of the API; each one asserts the
//! invariants its attack surface promises, and panics (for the fuzzer to see) only when one breaks.
#![allow(clippy::panic, reason = "a broken invariant must crash the fuzzer")]

use crate::frame::{FrameDecoder, decode_frame, encode_frame};
use crate::limits::MAX_FRAME_WIRE;

/// Frame decoding: one-shot and streaming agree, and whatever decodes re-encodes to a frame that
/// decodes to the same message.
pub fn frame(data: &[u8]) {
    let one_shot = decode_frame(data);
    if let Ok((msg, used)) = one_shot {
        assert!(used <= data.len());
        let mut out = [0u8; MAX_FRAME_WIRE];
        let n = match encode_frame(&msg, &mut out) {
            Ok(n) => n,
            Err(e) => panic!("a decoded message failed to re-encode: {e}"),
        };
        match decode_frame(out.get(..n).unwrap_or_default()) {
            Ok((again, m)) => {
                assert_eq!(m, n);
                assert_eq!(again, msg);
            }
            Err(e) => panic!("a re-encoded message failed to decode: {e}"),
        }
    }

    // Stream the same bytes in uneven chunks; the first frame must match the one-shot result.
    let mut buf = [0u8; MAX_FRAME_WIRE];
    let mut dec = FrameDecoder::new(&mut buf);
    let mut rest = data;
    let mut first = None;
    let mut step = 1usize;
    while first.is_none() {
        let take = step.min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        let fed = dec.feed(chunk);
        rest = tail;
        assert_eq!(fed, take);
        match dec.poll_frame() {
            Ok(Some(msg)) => first = Some(Ok(msg.name())),
            Ok(None) if rest.is_empty() => break,
            Ok(None) => {}
            Err(e) => first = Some(Err(e)),
        }
        step = step * 2 + 1;
    }
    match (one_shot, first) {
        (Ok((msg, _)), Some(Ok(name))) => assert_eq!(msg.name(), name),
        (Err(e), Some(Err(f))) => assert_eq!(e, f),
        (Err(crate::DecodeError::Truncated), None) => {}
        (a, b) => panic!("one-shot {a:?} and streaming {b:?} disagree"),
    }
}

// ---- crypto: the `interaction` target ----

/// A deterministic byte stream standing in for the RNG, for the fuzzer only.
///
/// Not random at all (HMAC-SHA256 of a counter under the fuzz input's first bytes): the fuzzer
/// needs reproducible runs. It exists only in this hidden module; nothing else may use it.
#[derive(Clone)]
struct FuzzRng {
    seed: [u8; 32],
    counter: u64,
}

impl rand_core::TryRng for FuzzRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(32) {
            self.counter += 1;
            let block = crate::kdf::hmac_sha256(&self.seed, &self.counter.to_be_bytes());
            chunk.copy_from_slice(block.get(..chunk.len()).unwrap_or_default());
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FuzzRng {}

impl FuzzRng {
    fn new(seed: &[u8]) -> Self {
        let mut key = [0u8; 32];
        for (k, s) in key.iter_mut().zip(seed) {
            *k = *s;
        }
        Self {
            seed: key,
            counter: 0,
        }
    }
}

/// Skipped-key capacity of the `interaction` sessions: small, so the fuzzer reaches it.
const INTERACTION_CAP: usize = 8;

/// Where every `interaction` run starts: Alice right after PQXDH (her prekey and KEM headers
/// pending), Bob right after answering them, as state bytes.
///
/// PQXDH and key generation are most of a run's cost, and the keys do not steer any branch, so
/// the target computes this once ([`interaction_start`]) and each run restores from it
/// ([`interaction_from`]).
pub struct InteractionStart {
    alice: [u8; crate::Session::<INTERACTION_CAP>::STATE_LEN],
    bob: [u8; crate::Session::<INTERACTION_CAP>::STATE_LEN],
}

/// Runs PQXDH between two fresh (deterministic) identities; see [`InteractionStart`].
pub fn interaction_start() -> InteractionStart {
    use crate::{IdentityKeyPair, KemPrekeyPair, RemoteBundle, Session, SignedPrekeyPair};

    let mut rng = FuzzRng::new(b"interaction start");
    let alice_id = IdentityKeyPair::generate(&mut rng);
    let bob_id = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate_for_device(&mut rng, 1, 1, &bob_id);
    let kem = KemPrekeyPair::generate(&mut rng, 2);
    let bundle = RemoteBundle {
        identity: bob_id.public(),
        signed_prekey: spk.public(),
        one_time_prekey: None,
    };
    let published = kem.public_for_device(1, &bob_id);
    let Ok((alice, header, kem_header)) =
        Session::<INTERACTION_CAP>::initiate_pqxdh(&mut rng, &alice_id, &bundle, 1, &published)
    else {
        panic!("PQXDH failed on honest keys");
    };
    let Ok(bob) =
        Session::<INTERACTION_CAP>::respond_pqxdh(&bob_id, &spk, None, &kem, &header, &kem_header)
    else {
        panic!("PQXDH respond failed on honest keys");
    };
    let mut start = InteractionStart {
        alice: [0; Session::<INTERACTION_CAP>::STATE_LEN],
        bob: [0; Session::<INTERACTION_CAP>::STATE_LEN],
    };
    if alice.write_state(&mut start.alice).is_err() || bob.write_state(&mut start.bob).is_err() {
        panic!("state did not fit its documented size");
    }
    start
}

/// [`interaction_from`] a fresh [`interaction_start`] (slow: runs X3DH each call).
pub fn interaction(data: &[u8]) {
    interaction_from(&interaction_start(), data);
}

/// Two Double Ratchet sessions over a hostile network driven by fuzz bytes: send, deliver,
/// drop, duplicate, reorder, corrupt, replay. Panics if an accepted plaintext differs from what
/// was sent, a message is accepted twice, a corrupted one is accepted, a rejection changes the
/// session, or skipped-key storage passes its capacity. Allocation-free.
pub fn interaction_from(start: &InteractionStart, data: &[u8]) {
    use crate::{RATCHET_OVERHEAD, Session};

    const CAP: usize = INTERACTION_CAP;
    const SLOTS: usize = 16;
    const MAX_PT: usize = 48;
    const MAX_MSG: usize = MAX_PT + 8 + RATCHET_OVERHEAD;
    const MAX_IDS: usize = 256;

    #[derive(Clone, Copy)]
    struct Packet {
        to_alice: bool,
        id: u8,
        len: usize,
        bytes: [u8; MAX_MSG],
    }

    fn plaintext(id: u8, len: u8, out: &mut [u8; MAX_PT + 8]) -> usize {
        let n = 8 + usize::from(len) % MAX_PT;
        for (i, b) in out.iter_mut().enumerate().take(n) {
            *b = id ^ (i as u8).wrapping_mul(31);
        }
        n
    }

    fn snapshot(s: &Session<CAP>, out: &mut [u8; Session::<CAP>::STATE_LEN]) {
        if s.write_state(out).is_err() {
            panic!("state did not fit its documented size");
        }
    }

    struct World {
        alice: Session<CAP>,
        bob: Option<Session<CAP>>,
        lens: [u8; MAX_IDS],
        accepted: [bool; MAX_IDS],
    }

    impl World {
        fn deliver(
            &mut self,
            p: &Packet,
            corrupted: bool,
            responder: &dyn Fn() -> Option<Session<CAP>>,
        ) -> bool {
            if !p.to_alice && self.bob.is_none() {
                self.bob = responder();
            }
            let session = if p.to_alice {
                &mut self.alice
            } else {
                match self.bob.as_mut() {
                    Some(b) => b,
                    None => return false,
                }
            };
            let mut before = [0u8; Session::<CAP>::STATE_LEN];
            snapshot(session, &mut before);
            let mut out = [0u8; MAX_MSG];
            let result = session.decrypt(p.bytes.get(..p.len).unwrap_or_default(), &mut out);
            assert!(
                session.skipped_key_count() <= CAP,
                "skipped storage over capacity"
            );
            match result {
                Ok(len) => {
                    assert!(!corrupted, "a corrupted message was accepted");
                    let mut expect = [0u8; MAX_PT + 8];
                    let id = usize::from(p.id);
                    let n = plaintext(p.id, self.lens.get(id).copied().unwrap_or(0), &mut expect);
                    assert_eq!(out.get(..len), expect.get(..n), "wrong plaintext");
                    match self.accepted.get_mut(id) {
                        Some(seen) => {
                            assert!(!*seen, "message accepted twice");
                            *seen = true;
                        }
                        None => panic!("unknown message id"),
                    }
                    true
                }
                Err(_) => {
                    let mut after = [0u8; Session::<CAP>::STATE_LEN];
                    snapshot(session, &mut after);
                    assert!(before == after, "a rejection changed the session");
                    false
                }
            }
        }
    }

    let Some((seed, mut ops)) = data.split_first_chunk::<8>() else {
        return;
    };
    let mut rng = FuzzRng::new(seed);
    let Ok(alice) = Session::<CAP>::read_state(&start.alice) else {
        panic!("the start state did not restore");
    };
    // Bob appears when the first message reaches him, as a responder would.
    let responder = || Session::<CAP>::read_state(&start.bob).ok();
    let mut world = World {
        alice,
        bob: None,
        lens: [0; MAX_IDS],
        accepted: [false; MAX_IDS],
    };
    let empty = Packet {
        to_alice: false,
        id: 0,
        len: 0,
        bytes: [0; MAX_MSG],
    };
    let mut network = [empty; SLOTS];
    let mut in_flight = 0usize;
    let mut delivered = [empty; 4];
    let mut delivered_count = 0usize;
    let mut next_id = 0usize;

    while let Some((&[op, a, b], rest)) = ops.split_first_chunk::<3>() {
        ops = rest;
        let pick = |n: usize| if n == 0 { 0 } else { usize::from(a) % n };
        match op % 8 {
            0 | 1 => {
                // Send.
                if in_flight == SLOTS || next_id == MAX_IDS {
                    continue;
                }
                let from_alice = op % 2 == 0;
                let session = if from_alice {
                    &mut world.alice
                } else {
                    match world.bob.as_mut() {
                        Some(s) if s.can_send() => s,
                        _ => continue,
                    }
                };
                let mut pt = [0u8; MAX_PT + 8];
                let id = next_id as u8;
                let n = plaintext(id, b, &mut pt);
                let mut p = Packet {
                    to_alice: !from_alice,
                    id,
                    len: 0,
                    bytes: [0; MAX_MSG],
                };
                match session.encrypt(&mut rng, pt.get(..n).unwrap_or_default(), &mut p.bytes) {
                    Ok(len) => p.len = len,
                    Err(e) => panic!("encrypt failed: {e}"),
                }
                if let Some(l) = world.lens.get_mut(next_id) {
                    *l = b;
                }
                if let Some(slot) = network.get_mut(in_flight) {
                    *slot = p;
                }
                in_flight += 1;
                next_id += 1;
            }
            2 | 3 => {
                // Deliver (and remember it for a later replay).
                if in_flight == 0 {
                    continue;
                }
                let i = pick(in_flight);
                let Some(p) = network.get(i).copied() else {
                    continue;
                };
                network.copy_within(i + 1..in_flight, i);
                in_flight -= 1;
                let fresh = !world
                    .accepted
                    .get(usize::from(p.id))
                    .copied()
                    .unwrap_or(true);
                let ok = world.deliver(&p, false, &responder);
                assert!(fresh || !ok, "duplicate accepted");
                if let Some(slot) = delivered.get_mut(delivered_count % 4) {
                    *slot = p;
                }
                delivered_count += 1;
            }
            4 => {
                // Drop.
                if in_flight > 0 {
                    let i = pick(in_flight);
                    network.copy_within(i + 1..in_flight, i);
                    in_flight -= 1;
                }
            }
            5 => {
                // Duplicate, or reorder when the network is full.
                if in_flight > 0 && in_flight < SLOTS {
                    if let Some(p) = network.get(pick(in_flight)).copied() {
                        if let Some(slot) = network.get_mut(in_flight) {
                            *slot = p;
                        }
                        in_flight += 1;
                    }
                } else if in_flight > 1 {
                    network.swap(pick(in_flight), usize::from(b) % in_flight);
                }
            }
            6 => {
                // Corrupt one bit of an in-flight message and deliver the copy.
                let Some(mut p) = network
                    .get(pick(in_flight))
                    .copied()
                    .filter(|_| in_flight > 0)
                else {
                    continue;
                };
                let at = usize::from(b) % p.len.max(1);
                if let Some(byte) = p.bytes.get_mut(at) {
                    *byte ^= 1 << (op >> 5);
                }
                assert!(
                    !world.deliver(&p, true, &responder),
                    "corrupted message accepted"
                );
            }
            _ => {
                // Replay something already delivered.
                let n = delivered_count.min(4);
                let replayable = |p: &Packet| {
                    n > 0
                        && world
                            .accepted
                            .get(usize::from(p.id))
                            .copied()
                            .unwrap_or(false)
                };
                if let Some(p) = delivered.get(pick(n)).copied().filter(replayable) {
                    assert!(!world.deliver(&p, false, &responder), "replay accepted");
                }
            }
        }
    }
}

// ---- decoders of bytes from outside (issue 12) ----

/// The envelope of a one-to-one body, and the prekey header inside it.
///
/// Whatever parses is re-emitted byte for byte (both layouts are fixed, so there is exactly one
/// encoding); a rejection names the reason the bytes give.
pub fn envelope(data: &[u8]) {
    use crate::{
        ENVELOPE_PREKEY, ENVELOPE_RATCHET, Envelope, EnvelopeError, PREKEY_HEADER_LEN,
        PrekeyHeader, PrekeyHeaderError,
    };

    // The header on its own.
    match PrekeyHeader::parse(data) {
        Ok((header, rest)) => {
            assert_eq!(
                data.get(..PREKEY_HEADER_LEN),
                Some(&header.to_bytes()[..]),
                "a prekey header did not re-encode to its bytes"
            );
            assert_eq!(rest.len() + PREKEY_HEADER_LEN, data.len());
        }
        Err(PrekeyHeaderError::Truncated) => assert!(data.len() < PREKEY_HEADER_LEN),
        Err(PrekeyHeaderError::UnknownVersion) => {
            assert_ne!(data.first(), Some(&crate::PREKEY_HEADER_VERSION));
        }
        Err(PrekeyHeaderError::Malformed) => {}
    }

    let rest = data.get(1..).unwrap_or_default();
    match Envelope::parse(data) {
        Ok(envelope) => {
            let kem = envelope.kem_header();
            let mut prefix = [0u8; 1 + PREKEY_HEADER_LEN + crate::KEM_HEADER_LEN];
            let n = match Envelope::emit_prefix(envelope.prekey_header(), kem.as_ref(), &mut prefix)
            {
                Ok(n) => n,
                Err(e) => panic!("a parsed envelope did not re-emit: {e}"),
            };
            let Some((head, message)) = data.split_at_checked(n) else {
                panic!("a parsed envelope is shorter than its own prefix");
            };
            assert_eq!(prefix.get(..n), Some(head), "envelope prefix differs");
            assert_eq!(envelope.message(), message, "envelope message differs");
            assert!(!message.is_empty(), "an envelope with no message parsed");
        }
        Err(EnvelopeError::Truncated) => match data.first() {
            None | Some(&ENVELOPE_RATCHET) => assert!(rest.is_empty()),
            Some(&ENVELOPE_PREKEY) => assert!(rest.len() <= PREKEY_HEADER_LEN),
            Some(&crate::ENVELOPE_PQ_PREKEY) => {
                assert!(rest.len() <= PREKEY_HEADER_LEN + crate::KEM_HEADER_LEN);
            }
            Some(_) => panic!("an unknown kind reported as truncated"),
        },
        Err(EnvelopeError::UnknownKind) => {
            assert!(!matches!(
                data.first(),
                None | Some(&ENVELOPE_PREKEY | &ENVELOPE_RATCHET | &crate::ENVELOPE_PQ_PREKEY)
            ));
        }
        Err(EnvelopeError::BadPrekeyHeader) => {
            assert!(matches!(
                data.first(),
                Some(&ENVELOPE_PREKEY | &crate::ENVELOPE_PQ_PREKEY)
            ));
            assert!(PrekeyHeader::parse(rest).is_err());
        }
        Err(EnvelopeError::Caller(_)) => panic!("parsing reported an encoding error"),
    }
}

/// The decrypted content of a message (postcard).
///
/// Whatever decodes re-encodes to at most as many bytes (postcard reads some non-minimal
/// varints; the encoder writes minimal ones) that decode to the same content and re-encode
/// identically.
pub fn content(data: &[u8]) {
    use crate::Content;
    use crate::limits::MAX_FRAME;

    let Ok(content) = Content::decode(data) else {
        return;
    };
    let mut buf = [0u8; MAX_FRAME];
    let Some(out) = buf.get_mut(..data.len()) else {
        return; // longer than any frame could carry
    };
    let n = match content.encode(out) {
        Ok(n) => n,
        Err(e) => panic!("a decoded content did not re-encode into as many bytes: {e}"),
    };
    let encoded = out.get(..n).unwrap_or_default();
    assert_eq!(Content::decode(encoded), Ok(content), "content round trip");
    let mut again = [0u8; MAX_FRAME];
    let m = match content.encode(&mut again) {
        Ok(m) => m,
        Err(e) => panic!("re-encoding failed: {e}"),
    };
    assert_eq!(
        again.get(..m),
        Some(encoded),
        "content encoding is not stable"
    );
}

/// The sender-key distribution message: a fixed 121-byte layout, so whatever decodes
/// re-encodes to exactly its bytes, and a rejection names the reason the bytes give.
pub fn distribution(data: &[u8]) {
    use crate::{DISTRIBUTION_LEN, DistributionError, ROOM_VERSION, SenderKeyDistribution};

    match SenderKeyDistribution::from_bytes(data) {
        Ok(d) => assert_eq!(&d.to_bytes()[..], data, "distribution round trip"),
        Err(DistributionError::Malformed) => assert_ne!(data.len(), DISTRIBUTION_LEN),
        Err(DistributionError::UnknownVersion) => {
            assert_eq!(data.len(), DISTRIBUTION_LEN);
            assert_ne!(data.first(), Some(&ROOM_VERSION));
        }
        Err(e) => panic!("decoding alone reported {e:?}"),
    }
}

/// Linked devices (PROTOCOL.md §4.6): the input as a link code, and as a link message for a
/// fixed new device. A code decodes only at 49 bytes with version 1, and re-encodes to its
/// bytes; a message that opens yields exactly its length minus 48, and a refusal leaves the
/// output buffer clean.
pub fn link(data: &[u8]) {
    use crate::{
        LINK_CODE_LEN, LINK_CODE_VERSION, LINK_OVERHEAD, LinkCode, LinkError, LinkKeyPair,
    };

    match LinkCode::decode(data) {
        Ok(code) => assert_eq!(&code.encode()[..], data, "link code round trip"),
        Err(LinkError::CodeLength) => assert_ne!(data.len(), LINK_CODE_LEN),
        Err(LinkError::UnknownCodeVersion(v)) => {
            assert_eq!(data.len(), LINK_CODE_LEN);
            assert_ne!(v, LINK_CODE_VERSION);
        }
        Err(e) => panic!("decoding a code reported {e:?}"),
    }
    let device = LinkKeyPair::from_secrets(&[0x4c; 32], &[0x53; 16]);
    let mut out = [0u8; 4096];
    let Some(out) = out.get_mut(..data.len().saturating_sub(LINK_OVERHEAD)) else {
        return;
    };
    match device.open(data, out) {
        Ok(n) => assert_eq!(n + LINK_OVERHEAD, data.len(), "opened length"),
        Err(LinkError::Truncated) => assert!(data.len() < LINK_OVERHEAD),
        Err(LinkError::NonContributory | LinkError::Authentication) => {
            assert!(
                out.iter().all(|&b| b == 0),
                "a refused link message left bytes behind"
            );
        }
        Err(e) => panic!("opening reported {e:?}"),
    }
}

/// Signed rosters (PROTOCOL.md §4.7): the input as one roster, and as a chain of two: a u16 BE
/// length, the previous roster, the next. A roster that parses reads back the
/// same, lists as many members as it says, and names only admins among them; checking a chain
/// never panics. (Forging a signature is out of the fuzzer's reach: the accepted paths are
/// reached from the seeds, which are the vectors' rosters.)
pub fn roster(data: &[u8]) {
    use crate::Roster;

    if let Ok(r) = Roster::parse(data) {
        assert_eq!(Roster::parse(r.as_bytes()), Ok(r), "roster re-parse");
        assert_eq!(r.members().count(), r.member_count(), "member count");
        for admin in r.admins() {
            assert!(
                r.member_by_identity(&admin).is_some(),
                "an admin outside the members"
            );
        }
        let _ = r.check_first();
        let _ = r.check_next(&r);
        // As an invitation from its signer to each of its members: accepted exactly when the
        // signer is an admin (the room id is the roster's own).
        for m in r.members() {
            let taken = r
                .check_invitation(r.room_id(), r.signer(), m.username, &m.identity)
                .is_ok();
            assert_eq!(taken, r.is_admin(r.signer()), "invitation check");
        }
    }
    let Some((cut, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let (a, b) = rest.split_at(rest.len().min(usize::from(u16::from_be_bytes(*cut))));
    if let (Ok(prev), Ok(next)) = (Roster::parse(a), Roster::parse(b)) {
        let ok = prev.check_next(&next).is_ok();
        let departed = prev.departed(&next).count();
        if ok {
            let epoch_step = u32::from(departed > 0);
            assert_eq!(
                Some(next.epoch()),
                prev.epoch().checked_add(epoch_step),
                "an accepted step broke the epoch rule"
            );
        }
    }
}

/// The session type the clients save (default capacity).
type SavedSession = crate::Session<{ crate::DEFAULT_MAX_SKIP }>;
/// The room type the clients save (default capacities).
type SavedRoom = crate::Room<{ crate::DEFAULT_ROOM_MEMBERS }, { crate::DEFAULT_MAX_SKIP }>;

/// Largest message the state targets try to decrypt.
const STATE_TARGET_MAX_MESSAGE: usize = 2048;

/// Saved session state (`Session::read_state`), then a ratchet message for the restored session.
///
/// The input is the state bytes (the first `STATE_LEN`) and then a message. Checks that what
/// restores re-serializes to bytes that restore and re-serialize identically (so a state
/// written by `write_state` round-trips exactly); that the original and its copy give the same
/// answer to the message and to an encrypt; that a rejected message leaves the session as it
/// was; and that skipped-key storage stays within capacity.
pub fn session_state(data: &[u8]) {
    const LEN: usize = SavedSession::STATE_LEN;
    let (state, message) = data.split_at(data.len().min(LEN));
    let Ok(mut first) = SavedSession::read_state(state) else {
        return;
    };
    let mut written = [0u8; LEN];
    if first.write_state(&mut written).is_err() {
        panic!("a restored session did not write its state");
    }
    let Ok(mut second) = SavedSession::read_state(&written) else {
        panic!("written state did not restore");
    };
    let mut rewritten = [0u8; LEN];
    if second.write_state(&mut rewritten).is_err() {
        panic!("a restored session did not write its state");
    }
    assert!(
        written == rewritten,
        "state does not re-serialize identically"
    );
    assert!(first.skipped_key_count() <= SavedSession::MAX_SKIP);

    if message.len() > STATE_TARGET_MAX_MESSAGE {
        return;
    }
    let mut out1 = [0u8; STATE_TARGET_MAX_MESSAGE];
    let mut out2 = [0u8; STATE_TARGET_MAX_MESSAGE];
    let r1 = first.decrypt(message, &mut out1);
    let r2 = second.decrypt(message, &mut out2);
    assert_eq!(r1, r2, "a restored copy answered differently");
    let mut after1 = [0u8; LEN];
    let mut after2 = [0u8; LEN];
    if first.write_state(&mut after1).is_err() || second.write_state(&mut after2).is_err() {
        panic!("state did not fit its documented size");
    }
    assert!(after1 == after2, "a restored copy moved differently");
    match r1 {
        Ok(n) => assert_eq!(out1.get(..n), out2.get(..n)),
        Err(_) => assert!(after1 == written, "a rejection changed the session"),
    }
    assert!(first.skipped_key_count() <= SavedSession::MAX_SKIP);

    let mut rng1 = FuzzRng::new(b"session state");
    let mut rng2 = rng1.clone();
    let mut sealed1 = [0u8; 8 + crate::RATCHET_OVERHEAD];
    let mut sealed2 = [0u8; 8 + crate::RATCHET_OVERHEAD];
    let e1 = first.encrypt(&mut rng1, b"fuzzing!", &mut sealed1);
    let e2 = second.encrypt(&mut rng2, b"fuzzing!", &mut sealed2);
    assert_eq!(e1, e2, "a restored copy encrypted differently");
    assert!(sealed1 == sealed2, "a restored copy encrypted differently");
}

/// Saved room state (`Room::read_state`), then a room message for the restored room.
///
/// The input is the state bytes (the first `STATE_LEN`) and then a message. The same checks as
/// [`session_state`]: identical re-serialization, the copy behaves as the original (decrypt and
/// encrypt), a rejection changes nothing, skipped keys within capacity.
pub fn room_state(data: &[u8]) {
    const LEN: usize = SavedRoom::STATE_LEN;
    let (state, message) = data.split_at(data.len().min(LEN));
    let Ok(mut first) = SavedRoom::read_state(state) else {
        return;
    };
    let mut written = [0u8; LEN];
    if first.write_state(&mut written).is_err() {
        panic!("a restored room did not write its state");
    }
    let Ok(mut second) = SavedRoom::read_state(&written) else {
        panic!("written state did not restore");
    };
    let mut rewritten = [0u8; LEN];
    if second.write_state(&mut rewritten).is_err() {
        panic!("a restored room did not write its state");
    }
    assert!(
        written == rewritten,
        "state does not re-serialize identically"
    );
    assert!(first.skipped_key_count() <= crate::DEFAULT_MAX_SKIP);
    assert!(first.member_count() <= crate::DEFAULT_ROOM_MEMBERS);

    if message.len() > STATE_TARGET_MAX_MESSAGE {
        return;
    }
    let mut out1 = [0u8; STATE_TARGET_MAX_MESSAGE];
    let mut out2 = [0u8; STATE_TARGET_MAX_MESSAGE];
    let r1 = first.decrypt(message, &mut out1);
    let r2 = second.decrypt(message, &mut out2);
    assert_eq!(r1, r2, "a restored copy answered differently");
    let mut after1 = [0u8; LEN];
    let mut after2 = [0u8; LEN];
    if first.write_state(&mut after1).is_err() || second.write_state(&mut after2).is_err() {
        panic!("state did not fit its documented size");
    }
    assert!(after1 == after2, "a restored copy moved differently");
    match r1 {
        Ok(p) => assert_eq!(out1.get(..p.len), out2.get(..p.len)),
        Err(_) => assert!(after1 == written, "a rejection changed the room"),
    }
    assert!(first.skipped_key_count() <= crate::DEFAULT_MAX_SKIP);

    let mut sealed1 = [0u8; 8 + crate::ROOM_OVERHEAD];
    let mut sealed2 = [0u8; 8 + crate::ROOM_OVERHEAD];
    let e1 = first.encrypt(b"fuzzing!", &mut sealed1);
    let e2 = second.encrypt(b"fuzzing!", &mut sealed2);
    assert_eq!(e1, e2, "a restored copy encrypted differently");
    assert!(sealed1 == sealed2, "a restored copy encrypted differently");
}

// ---- rooms over a hostile network (issue 12): the `room` target ----

/// Members each `room` run's rooms track: each other. Small, so capacity edges are reached.
const ROOM_TARGET_MEMBERS: usize = 2;
/// Skipped-key capacity of the `room` target's rooms.
const ROOM_TARGET_SKIP: usize = 8;
type FuzzRoom = crate::Room<ROOM_TARGET_MEMBERS, ROOM_TARGET_SKIP>;

/// One member of the `room` target: its room, and its current epoch signing key (the harness
/// holds it to play a member that re-signs altered messages).
struct RoomMember {
    room: FuzzRoom,
    signing: ed25519_dalek::SigningKey,
}

impl RoomMember {
    /// `Room::create` and `Room::start_epoch` draw the chain key, then the signing secret: read
    /// the same two draws from a copy of the generator.
    fn next_signing_key(rng: &FuzzRng) -> ed25519_dalek::SigningKey {
        use rand_core::Rng as _;
        let mut probe = rng.clone();
        let mut chain = [0u8; 32];
        let mut signing = [0u8; 32];
        probe.fill_bytes(&mut chain);
        probe.fill_bytes(&mut signing);
        ed25519_dalek::SigningKey::from_bytes(&signing)
    }

    fn check_signing(&self) {
        assert_eq!(
            self.room.distribution().signing_public(),
            self.signing.verifying_key().as_bytes(),
            "the harness no longer knows the members' signing keys"
        );
    }
}

/// Two members of a room over a hostile network driven by fuzz bytes: send, deliver, drop,
/// duplicate, reorder, corrupt, replay; a member re-signing altered messages (it holds its own
/// signing key); raw bytes as a room message; raw bytes as a sender-key distribution; a new
/// epoch for both. Panics if an accepted plaintext or sender differs from what was sent, a
/// message is accepted twice, an altered one is accepted, a rejected message or distribution
/// changes the room, or skipped-key storage passes its capacity. Allocation-free.
pub fn room(data: &[u8]) {
    use crate::{DISTRIBUTION_LEN, ROOM_OVERHEAD, SenderKeyDistribution};
    use ed25519_dalek::Signer as _;

    const MAX_PT: usize = 40;
    const MAX_MSG: usize = MAX_PT + ROOM_OVERHEAD;
    const MAX_IDS: usize = 256;
    const SLOTS: usize = 16;
    const ROOM_ID: [u8; crate::ROOM_ID_LEN] = [0x52; crate::ROOM_ID_LEN];
    /// The members' sender ids (their `IKs`); any 32 bytes do, rooms do not check them.
    const IDS: [[u8; 32]; 2] = [[0xA1; 32], [0xB0; 32]];
    /// Offsets in a room message (see the room module's layout).
    const EPOCH_AT: usize = 49;
    const ITERATION_AT: usize = 53;

    #[derive(Clone, Copy)]
    struct Packet {
        from: usize,
        id: u8,
        len: usize,
        bytes: [u8; MAX_MSG],
    }

    impl Packet {
        fn message(&self) -> &[u8] {
            self.bytes.get(..self.len).unwrap_or_default()
        }

        fn field(&self, at: usize) -> u32 {
            let mut b = [0u8; 4];
            for (i, v) in b.iter_mut().enumerate() {
                *v = self.bytes.get(at + i).copied().unwrap_or(0);
            }
            u32::from_be_bytes(b)
        }

        fn set_field(&mut self, at: usize, value: u32) {
            for (i, v) in value.to_be_bytes().into_iter().enumerate() {
                if let Some(b) = self.bytes.get_mut(at + i) {
                    *b = v;
                }
            }
        }

        fn resign(&mut self, key: &ed25519_dalek::SigningKey) {
            if let Some((signed, signature)) = self
                .bytes
                .get_mut(..self.len)
                .and_then(|m| m.split_last_chunk_mut::<64>())
            {
                *signature = key.sign(signed).to_bytes();
            }
        }
    }

    fn plaintext(id: u8, len: u8, out: &mut [u8; MAX_PT]) -> usize {
        let n = usize::from(len) % MAX_PT;
        for (i, b) in out.iter_mut().enumerate().take(n) {
            *b = id ^ (i as u8).wrapping_mul(29);
        }
        n
    }

    fn snapshot(room: &FuzzRoom) -> [u8; FuzzRoom::STATE_LEN] {
        let mut out = [0u8; FuzzRoom::STATE_LEN];
        if room.write_state(&mut out).is_err() {
            panic!("room state did not fit its documented size");
        }
        out
    }

    fn member(members: &mut [RoomMember; 2], i: usize) -> &mut RoomMember {
        let [a, b] = members;
        if i == 0 { a } else { b }
    }

    struct World {
        members: [RoomMember; 2],
        lens: [u8; MAX_IDS],
        accepted: [bool; MAX_IDS],
    }

    impl World {
        /// Delivers `p` to the member that did not send it; whether it was accepted.
        fn deliver(&mut self, p: &Packet, altered: bool) -> bool {
            let to = 1 - p.from;
            let room = &mut member(&mut self.members, to).room;
            let before = snapshot(room);
            let mut out = [0u8; MAX_MSG];
            let result = room.decrypt(p.message(), &mut out);
            assert!(
                room.skipped_key_count() <= ROOM_TARGET_SKIP,
                "skipped storage over capacity"
            );
            match result {
                Ok(got) => {
                    assert!(!altered, "an altered room message was accepted");
                    assert_eq!(got.sender, IDS.get(p.from).copied().unwrap_or_default());
                    assert_eq!(got.iteration, p.field(ITERATION_AT));
                    let mut expect = [0u8; MAX_PT];
                    let id = usize::from(p.id);
                    let n = plaintext(p.id, self.lens.get(id).copied().unwrap_or(0), &mut expect);
                    assert_eq!(out.get(..got.len), expect.get(..n), "wrong plaintext");
                    match self.accepted.get_mut(id) {
                        Some(seen) => {
                            assert!(!*seen, "room message accepted twice");
                            *seen = true;
                        }
                        None => panic!("unknown message id"),
                    }
                    true
                }
                Err(_) => {
                    assert!(snapshot(room) == before, "a rejection changed the room");
                    false
                }
            }
        }

        /// Hands `dist` to member `to` as if it came through their pairwise session with `from`.
        fn distribute(&mut self, to: usize, dist: &SenderKeyDistribution, from: &[u8; 32]) {
            let room = &mut member(&mut self.members, to).room;
            let before = snapshot(room);
            if room.handle_distribution(dist, from).is_err() {
                assert!(
                    snapshot(room) == before,
                    "a refused distribution changed the room"
                );
            }
        }
    }

    let Some((seed, mut ops)) = data.split_first_chunk::<8>() else {
        return;
    };
    let mut rng = FuzzRng::new(seed);
    let mut make = |me: usize| {
        let signing = RoomMember::next_signing_key(&rng);
        let mut room = FuzzRoom::create(
            &mut rng,
            ROOM_ID,
            IDS.get(me).copied().unwrap_or_default(),
            0,
        );
        if room
            .add_member(IDS.get(1 - me).unwrap_or(&[0; 32]))
            .is_err()
        {
            panic!("could not add the other member");
        }
        let m = RoomMember { room, signing };
        m.check_signing();
        m
    };
    let mut world = World {
        members: [make(0), make(1)],
        lens: [0; MAX_IDS],
        accepted: [false; MAX_IDS],
    };
    for from in 0..2 {
        let dist = member(&mut world.members, from).room.distribution();
        let room = &mut member(&mut world.members, 1 - from).room;
        if room.handle_distribution(&dist, dist.sender()).is_err() {
            panic!("an honest distribution was refused");
        }
    }

    let empty = Packet {
        from: 0,
        id: 0,
        len: 0,
        bytes: [0; MAX_MSG],
    };
    let mut network = [empty; SLOTS];
    let mut in_flight = 0usize;
    let mut delivered = [empty; 4];
    let mut delivered_count = 0usize;
    let mut next_id = 0usize;

    while let Some((&[op, a, b], rest)) = ops.split_first_chunk::<3>() {
        ops = rest;
        let pick = |n: usize| if n == 0 { 0 } else { usize::from(a) % n };
        match op % 12 {
            0 | 1 => {
                // Send.
                if in_flight == SLOTS || next_id == MAX_IDS {
                    continue;
                }
                let from = usize::from(op % 2);
                let mut pt = [0u8; MAX_PT];
                let id = next_id as u8;
                let n = plaintext(id, b, &mut pt);
                let mut p = Packet {
                    from,
                    id,
                    len: 0,
                    bytes: [0; MAX_MSG],
                };
                let room = &mut member(&mut world.members, from).room;
                match room.encrypt(pt.get(..n).unwrap_or_default(), &mut p.bytes) {
                    Ok(len) => p.len = len,
                    Err(e) => panic!("room encrypt failed: {e}"),
                }
                if let Some(l) = world.lens.get_mut(next_id) {
                    *l = b;
                }
                if let Some(slot) = network.get_mut(in_flight) {
                    *slot = p;
                }
                in_flight += 1;
                next_id += 1;
            }
            2 | 3 => {
                // Deliver (and remember it for a later replay).
                if in_flight == 0 {
                    continue;
                }
                let i = pick(in_flight);
                let Some(p) = network.get(i).copied() else {
                    continue;
                };
                network.copy_within(i + 1..in_flight, i);
                in_flight -= 1;
                let fresh = !world
                    .accepted
                    .get(usize::from(p.id))
                    .copied()
                    .unwrap_or(true);
                let ok = world.deliver(&p, false);
                assert!(fresh || !ok, "duplicate accepted");
                if let Some(slot) = delivered.get_mut(delivered_count % 4) {
                    *slot = p;
                }
                delivered_count += 1;
            }
            4 => {
                // Drop.
                if in_flight > 0 {
                    let i = pick(in_flight);
                    network.copy_within(i + 1..in_flight, i);
                    in_flight -= 1;
                }
            }
            5 => {
                // Duplicate, or reorder when the network is full.
                if in_flight > 0 && in_flight < SLOTS {
                    if let Some(p) = network.get(pick(in_flight)).copied() {
                        if let Some(slot) = network.get_mut(in_flight) {
                            *slot = p;
                        }
                        in_flight += 1;
                    }
                } else if in_flight > 1 {
                    network.swap(pick(in_flight), usize::from(b) % in_flight);
                }
            }
            6 => {
                // Corrupt one bit of an in-flight message (signature included) and deliver it.
                let Some(mut p) = network
                    .get(pick(in_flight))
                    .copied()
                    .filter(|_| in_flight > 0)
                else {
                    continue;
                };
                let at = usize::from(b) * 3 % p.len.max(1);
                if let Some(byte) = p.bytes.get_mut(at) {
                    *byte ^= 1 << (op >> 5);
                }
                assert!(!world.deliver(&p, true), "corrupted room message accepted");
            }
            7 => {
                // Replay something already delivered.
                let n = delivered_count.min(4);
                let replayable = |p: &Packet| {
                    n > 0
                        && world
                            .accepted
                            .get(usize::from(p.id))
                            .copied()
                            .unwrap_or(false)
                };
                if let Some(p) = delivered.get(pick(n)).copied().filter(replayable) {
                    assert!(!world.deliver(&p, false), "room replay accepted");
                }
            }
            8 => {
                // The sender alters its own in-flight message and signs it again: the
                // signature verifies, so this reaches the epoch, iteration and AEAD checks.
                let Some(original) = network
                    .get(pick(in_flight))
                    .copied()
                    .filter(|_| in_flight > 0)
                else {
                    continue;
                };
                let mut p = original;
                match (op >> 4) % 4 {
                    0 => {
                        let iteration = p.field(ITERATION_AT);
                        let new = if b >= 0xF0 {
                            u32::MAX - u32::from(b & 0x0F)
                        } else {
                            iteration.wrapping_add(u32::from(b)).wrapping_sub(8)
                        };
                        p.set_field(ITERATION_AT, new);
                    }
                    1 => {
                        let epoch = p.field(EPOCH_AT);
                        p.set_field(EPOCH_AT, epoch ^ u32::from(b));
                    }
                    2 => {
                        if let Some(byte) = p.bytes.get_mut(usize::from(b) % EPOCH_AT) {
                            *byte ^= 1;
                        }
                    }
                    _ => {
                        let body = p.len.saturating_sub(64 + ITERATION_AT + 4).max(1);
                        if let Some(byte) =
                            p.bytes.get_mut(ITERATION_AT + 4 + usize::from(b) % body)
                        {
                            *byte ^= 0x80;
                        }
                    }
                }
                p.resign(&member(&mut world.members, p.from).signing);
                let altered = p.message() != original.message();
                let fresh = !world
                    .accepted
                    .get(usize::from(p.id))
                    .copied()
                    .unwrap_or(true);
                let ok = world.deliver(&p, altered);
                assert!(fresh || !ok, "duplicate accepted");
            }
            9 => {
                // Raw bytes from the input as a room message to either member.
                let (raw, tail) = ops.split_at(ops.len().min(usize::from(a)));
                ops = tail;
                let mut p = Packet {
                    from: usize::from(b % 2),
                    id: 0,
                    len: raw.len().min(MAX_MSG),
                    bytes: [0; MAX_MSG],
                };
                for (dst, src) in p.bytes.iter_mut().zip(raw) {
                    *dst = *src;
                }
                assert!(
                    !world.deliver(&p, true),
                    "raw bytes accepted as a room message"
                );
            }
            10 => {
                // Raw bytes from the input as a distribution, from the session peer it names.
                let (raw, tail) = ops.split_at(ops.len().min(DISTRIBUTION_LEN));
                ops = tail;
                if let Ok(dist) = SenderKeyDistribution::from_bytes(raw) {
                    let from = *dist.sender();
                    world.distribute(usize::from(b % 2), &dist, &from);
                }
            }
            _ => {
                // Both members move to the next epoch, in either order, and exchange keys.
                let epochs = world.members.each_ref().map(|m| m.room.epoch());
                let Some(next) = epochs[0].max(epochs[1]).checked_add(1) else {
                    continue;
                };
                for k in 0..2 {
                    let me = (k + usize::from(b)) % 2;
                    let m = member(&mut world.members, me);
                    m.signing = RoomMember::next_signing_key(&rng);
                    if m.room.start_epoch(&mut rng, next).is_err() {
                        panic!("a later epoch was refused");
                    }
                    m.check_signing();
                    let dist = m.room.distribution();
                    let id = IDS.get(me).copied().unwrap_or_default();
                    world.distribute(1 - me, &dist, &id);
                }
            }
        }
    }
}

/// What the `pqxdh` target starts from: Bob's keys (device 1, a KEM prekey) and Alice's honest
/// first message to him (a `PqPrekey` envelope of [`PQXDH_PLAINTEXT`]). Key generation is most
/// of a run's cost and steers no branch, so the target makes it once ([`pqxdh_start`]) and each
/// run starts from it ([`pqxdh_from`]).
pub struct PqxdhWorld {
    alice: crate::IdentityKeyPair,
    bob: crate::IdentityKeyPair,
    spk: crate::SignedPrekeyPair,
    kem: crate::KemPrekeyPair,
    bundle: crate::RemoteBundle,
    first: [u8; PQXDH_FIRST_LEN],
}

const PQXDH_PLAINTEXT: &[u8] = b"fuzz";
const PQXDH_FIRST_LEN: usize = 1
    + crate::PREKEY_HEADER_LEN
    + crate::KEM_HEADER_LEN
    + PQXDH_PLAINTEXT.len()
    + crate::RATCHET_OVERHEAD;

/// Makes the [`PqxdhWorld`] every `pqxdh` run starts from (deterministic).
pub fn pqxdh_start() -> PqxdhWorld {
    use crate::{
        Envelope, IdentityKeyPair, KemPrekeyPair, RemoteBundle, Session, SignedPrekeyPair,
    };
    let mut rng = FuzzRng::new(b"pqxdh");
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate_for_device(&mut rng, 1, 1, &bob);
    let kem = KemPrekeyPair::generate(&mut rng, 2);
    let bundle = RemoteBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        one_time_prekey: None,
    };
    let published = kem.public_for_device(1, &bob);
    let Ok((mut session, _, _)) =
        Session::<8>::initiate_pqxdh(&mut rng, &alice, &bundle, 1, &published)
    else {
        panic!("PQXDH failed on honest keys");
    };
    let mut first = [0u8; PQXDH_FIRST_LEN];
    let prefix = match Envelope::emit_prefix(
        session.pending_prekey_header(),
        session.pending_kem_header(),
        &mut first,
    ) {
        Ok(n) => n,
        Err(e) => panic!("the first message's prefix did not fit: {e}"),
    };
    let sealed = first.get_mut(prefix..).unwrap_or_default();
    if session.encrypt(&mut rng, PQXDH_PLAINTEXT, sealed).is_err() {
        panic!("the first message did not fit");
    }
    PqxdhWorld {
        alice,
        bob,
        spk,
        kem,
        bundle,
        first,
    }
}

/// PQXDH's decoders. The first byte picks what the rest is:
/// - `0 (mod 3)`: a KEM prekey as a directory hands it out, `id (4) || signature (64) || ek`:
///   it parses only at exactly 1,184 key bytes; a signature that is not the owner's is refused
///   before the key is touched; the same bytes signed by the owner are refused only by ML-KEM's
///   key check, and otherwise give a 1,092-byte KEM header that round-trips.
/// - `1`: bytes XORed onto an honest first message; `2`: a whole first message. At the
///   responder, a body decrypts if and only if it is the honest message, to the honest
///   plaintext; the same message stripped to a classical `Prekey` envelope never decrypts (no
///   downgrade). Allocation-free.
pub fn pqxdh(data: &[u8]) {
    pqxdh_from(&pqxdh_start(), data);
}

/// [`pqxdh`] from a world made once.
pub fn pqxdh_from(world: &PqxdhWorld, data: &[u8]) {
    use crate::{KemHeader, KemPrekeyPublic, PqxdhAgreement, PqxdhError};

    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut rng = FuzzRng::new(b"pqxdh run");
    if mode % 3 == 0 {
        let Some((id, rest)) = rest.split_first_chunk::<4>() else {
            return;
        };
        let Some((signature, key)) = rest.split_first_chunk::<64>() else {
            return;
        };
        let id = u32::from_be_bytes(*id);
        let received = match KemPrekeyPublic::from_parts(id, key, signature) {
            Ok(k) => k,
            Err(PqxdhError::KemKeyLength) => {
                assert_ne!(key.len(), crate::KEM_PUBLIC_KEY_LEN);
                return;
            }
            Err(e) => panic!("from_parts refused with {e}"),
        };
        let signing = world.bob.public().signing;
        if received.verify_for_device(&signing, 1).is_err() {
            assert_eq!(
                PqxdhAgreement::initiate(&mut rng, &world.alice, &world.bundle, 1, &received).err(),
                Some(PqxdhError::BadKemPrekeySignature)
            );
        }
        let signed = KemPrekeyPublic::sign_for_device(&world.bob, 1, id, received.public);
        match PqxdhAgreement::initiate(&mut rng, &world.alice, &world.bundle, 1, &signed) {
            Ok((_, _, kem)) => {
                assert_eq!(kem.kem_id, id);
                assert_eq!(KemHeader::from_bytes(&kem.to_bytes()), Ok(kem));
            }
            Err(e) => assert_eq!(e, PqxdhError::InvalidKemKey),
        }
        return;
    }
    let mut body = [0u8; PQXDH_FIRST_LEN + 64];
    let len = if mode % 3 == 1 {
        for (b, x) in body.iter_mut().zip(&world.first) {
            *b = *x;
        }
        for (b, x) in body.iter_mut().zip(rest) {
            *b ^= *x;
        }
        PQXDH_FIRST_LEN.max(rest.len().min(body.len()))
    } else {
        for (b, x) in body.iter_mut().zip(rest) {
            *b = *x;
        }
        rest.len().min(body.len())
    };
    let body = body.get(..len).unwrap_or_default();
    let honest = body == world.first;
    let read = pqxdh_respond(world, body, false);
    if honest {
        assert_eq!(
            read,
            Some(PQXDH_PLAINTEXT.len()),
            "the honest first message did not decrypt"
        );
    } else {
        assert_eq!(read, None, "a changed first message decrypted");
    }
    // The same message with its KEM header stripped, as a classical X3DH first message.
    assert_eq!(
        pqxdh_respond(world, body, true),
        None,
        "a downgraded message decrypted"
    );
}

/// Bob answers `body` (as PQXDH, or with `classical` its KEM header stripped, as X3DH); the
/// plaintext length if the ratchet message decrypts to the honest plaintext.
fn pqxdh_respond(world: &PqxdhWorld, body: &[u8], classical: bool) -> Option<usize> {
    use crate::{Envelope, Session};

    let envelope = Envelope::parse(body).ok()?;
    let Envelope::PqPrekey {
        header, message, ..
    } = envelope
    else {
        return None;
    };
    let mut session = if classical {
        Session::<8>::respond(&world.bob, &world.spk, None, &header).ok()?
    } else {
        let kem = envelope.kem_header()?;
        Session::<8>::respond_pqxdh(&world.bob, &world.spk, None, &world.kem, &header, &kem).ok()?
    };
    let mut out = [0u8; 64];
    let n = session.decrypt(message, &mut out).ok()?;
    assert_eq!(
        out.get(..n),
        Some(PQXDH_PLAINTEXT),
        "decrypted to another plaintext"
    );
    Some(n)
}

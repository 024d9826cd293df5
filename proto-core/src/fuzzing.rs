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

/// Two Double Ratchet sessions over a hostile network driven by fuzz bytes: send, deliver,
/// drop, duplicate, reorder, corrupt, replay. Panics if an accepted plaintext differs from what
/// was sent, a message is accepted twice, a corrupted one is accepted, a rejection changes the
/// session, or skipped-key storage passes its capacity. Allocation-free.
pub fn interaction(data: &[u8]) {
    use crate::{IdentityKeyPair, RATCHET_OVERHEAD, RemoteBundle, Session, SignedPrekeyPair};

    const CAP: usize = 8;
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
    let mut key = [0u8; 32];
    key.get_mut(..8).unwrap_or_default().copy_from_slice(seed);
    let mut rng = FuzzRng {
        seed: key,
        counter: 0,
    };
    let alice_id = IdentityKeyPair::generate(&mut rng);
    let bob_id = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate(&mut rng, 1, &bob_id);
    let bundle = RemoteBundle {
        identity: bob_id.public(),
        signed_prekey: spk.public(),
        one_time_prekey: None,
    };
    let Ok((alice, header)) = Session::<CAP>::initiate(&mut rng, &alice_id, &bundle) else {
        panic!("X3DH failed on honest keys");
    };
    let responder = || Session::<CAP>::respond(&bob_id, &spk, None, &header).ok();
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

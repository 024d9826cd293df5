//! Two Double Ratchet sessions over a hostile network, in the spirit of libsignal's
//! `interaction` fuzzer: a proptest strategy chooses send / deliver / drop / duplicate /
//! reorder / corrupt / replay, and every step checks the invariants:
//!
//! - nothing panics;
//! - every accepted plaintext is exactly what was sent, and each message is accepted at most once;
//! - a corrupted or replayed message is rejected, and a rejection leaves the session unchanged;
//! - skipped-key storage never exceeds its fixed capacity;
//! - with enough capacity for the whole run, every message delivered intact for the first time
//!   is accepted (so nothing is lost to the ratchet itself).
//!
//! Half the runs start with PQXDH, half with X3DH.
//!
//! `PROPTEST_CASES` raises the case count (the default keeps `cargo test` to a few seconds).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns: a failed step must fail the test"
)]

use std::collections::HashSet;

use proptest::prelude::*;
use proto_core::{
    DecryptError, IdentityKeyPair, KemPrekeyPair, OneTimePrekeyPair, RATCHET_OVERHEAD,
    RemoteBundle, Session, SignedPrekeyPair,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[derive(Clone, Debug)]
enum Op {
    Send { from_alice: bool, len: u8 },
    Deliver(usize),
    Drop(usize),
    Duplicate(usize),
    Reorder(usize, usize),
    Corrupt { pick: usize, byte: usize, bit: u8 },
    Replay(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0u8..64).prop_map(|(from_alice, len)| Op::Send { from_alice, len }),
        4 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => any::<usize>().prop_map(Op::Duplicate),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Reorder(a, b)),
        2 => (any::<usize>(), any::<usize>(), 0u8..8).prop_map(|(pick, byte, bit)| Op::Corrupt { pick, byte, bit }),
        1 => any::<usize>().prop_map(Op::Replay),
    ]
}

struct Packet {
    to_alice: bool,
    id: u64,
    bytes: Vec<u8>,
}

fn plaintext(id: u64, len: u8) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend((0..len).map(|i| i ^ (id as u8)));
    p
}

fn state<const N: usize>(s: &Session<N>) -> Vec<u8> {
    let mut buf = vec![0u8; Session::<N>::STATE_LEN];
    s.write_state(&mut buf).unwrap();
    buf
}

/// Runs one scenario; `strict` asserts that fresh intact deliveries always succeed (valid when
/// the capacity exceeds the number of messages sent).
fn run<const N: usize>(seed: u64, ops: &[Op], strict: bool) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let alice_id = IdentityKeyPair::generate(&mut rng);
    let bob_id = IdentityKeyPair::generate(&mut rng);
    // Odd seeds start with PQXDH (how every new session starts), even ones with X3DH (sessions
    // from before it): the ratchet after either must hold the same invariants.
    let pq = seed % 2 == 1;
    let spk = if pq {
        SignedPrekeyPair::generate_for_device(&mut rng, 1, 2, &bob_id)
    } else {
        SignedPrekeyPair::generate(&mut rng, 1, &bob_id)
    };
    let opk = OneTimePrekeyPair::generate(&mut rng, 7);
    let kem = KemPrekeyPair::generate(&mut rng, 9);
    let bundle = RemoteBundle {
        identity: bob_id.public(),
        signed_prekey: spk.public(),
        one_time_prekey: Some(opk.public()),
    };
    let (mut alice, header, kem_header) = if pq {
        let published = kem.public_for_device(2, &bob_id);
        let (a, h, k) =
            Session::<N>::initiate_pqxdh(&mut rng, &alice_id, &bundle, 2, &published).unwrap();
        (a, h, Some(k))
    } else {
        let (a, h) = Session::<N>::initiate(&mut rng, &alice_id, &bundle).unwrap();
        (a, h, None)
    };
    assert_eq!(alice.pending_kem_header(), kem_header.as_ref());
    let mut bob: Option<Session<N>> = None;

    let mut next_id = 0u64;
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut network: Vec<Packet> = Vec::new();
    let mut delivered: Vec<Packet> = Vec::new();
    let mut accepted: HashSet<u64> = HashSet::new();

    let deliver = |p: &Packet,
                   alice: &mut Session<N>,
                   bob: &mut Option<Session<N>>,
                   accepted: &mut HashSet<u64>,
                   sent: &[Vec<u8>],
                   corrupted: bool| {
        if !p.to_alice && bob.is_none() {
            // The responder's first message: X3DH or PQXDH, then the ratchet message.
            let b = match &kem_header {
                Some(k) => Session::<N>::respond_pqxdh(&bob_id, &spk, Some(&opk), &kem, &header, k)
                    .unwrap(),
                None => Session::<N>::respond(&bob_id, &spk, Some(&opk), &header).unwrap(),
            };
            *bob = Some(b);
        }
        let Some(b) = bob.as_mut() else {
            return Err(DecryptError::Authentication);
        };
        let session = if p.to_alice { alice } else { b };
        let before = state(session);
        let mut out = vec![0u8; p.bytes.len()];
        let result = session.decrypt(&p.bytes, &mut out);
        assert!(
            session.skipped_key_count() <= N,
            "skipped storage over capacity"
        );
        match result {
            Ok(len) => {
                assert!(!corrupted, "a corrupted message was accepted");
                assert_eq!(&out[..len], &sent[p.id as usize][..], "wrong plaintext");
                assert!(accepted.insert(p.id), "message {} accepted twice", p.id);
            }
            Err(_) => assert_eq!(state(session), before, "a rejection changed the session"),
        }
        result.map(|_| ())
    };

    for op in ops {
        match *op {
            Op::Send { from_alice, len } => {
                let session = if from_alice {
                    &mut alice
                } else {
                    match bob.as_mut() {
                        Some(b) if b.can_send() => b,
                        _ => continue,
                    }
                };
                let pt = plaintext(next_id, len);
                let mut out = vec![0u8; pt.len() + RATCHET_OVERHEAD];
                let n = session.encrypt(&mut rng, &pt, &mut out).unwrap();
                assert_eq!(n, out.len());
                network.push(Packet {
                    to_alice: !from_alice,
                    id: next_id,
                    bytes: out,
                });
                sent.push(pt);
                next_id += 1;
            }
            Op::Deliver(i) if !network.is_empty() => {
                let p = network.remove(i % network.len());
                let fresh = !accepted.contains(&p.id);
                let r = deliver(&p, &mut alice, &mut bob, &mut accepted, &sent, false);
                if strict && fresh {
                    r.unwrap_or_else(|e| panic!("fresh message {} rejected: {e:?}", p.id));
                }
                if !fresh {
                    assert!(r.is_err(), "duplicate accepted");
                }
                delivered.push(p);
            }
            Op::Drop(i) if !network.is_empty() => {
                network.remove(i % network.len());
            }
            Op::Duplicate(i) if !network.is_empty() => {
                let p = &network[i % network.len()];
                let copy = Packet {
                    to_alice: p.to_alice,
                    id: p.id,
                    bytes: p.bytes.clone(),
                };
                network.push(copy);
            }
            Op::Reorder(a, b) if !network.is_empty() => {
                let len = network.len();
                network.swap(a % len, b % len);
            }
            Op::Corrupt { pick, byte, bit } if !network.is_empty() => {
                let p = &network[pick % network.len()];
                let mut bytes = p.bytes.clone();
                let at = byte % bytes.len();
                bytes[at] ^= 1 << bit;
                let bad = Packet {
                    to_alice: p.to_alice,
                    id: p.id,
                    bytes,
                };
                let r = deliver(&bad, &mut alice, &mut bob, &mut accepted, &sent, true);
                assert!(r.is_err(), "corrupted message accepted");
            }
            Op::Replay(i) if !delivered.is_empty() => {
                let p = &delivered[i % delivered.len()];
                if accepted.contains(&p.id) {
                    let r = deliver(p, &mut alice, &mut bob, &mut accepted, &sent, false);
                    assert!(r.is_err(), "replay accepted");
                }
            }
            _ => {}
        }
    }
    // Drain the network: with enough capacity every fresh message still decrypts.
    for p in core::mem::take(&mut network) {
        let fresh = !accepted.contains(&p.id);
        let r = deliver(&p, &mut alice, &mut bob, &mut accepted, &sent, false);
        if strict && fresh {
            r.unwrap_or_else(|e| panic!("fresh message {} rejected at drain: {e:?}", p.id));
        }
    }
}

/// 256 cases unless `PROPTEST_CASES` says otherwise.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Capacity larger than the run: every intact first delivery must be accepted.
    #[test]
    fn interaction_with_ample_capacity(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..60)) {
        run::<64>(seed, &ops, true);
    }

    /// A tiny capacity: messages may be refused (too many skipped, evicted keys), but never
    /// accepted twice or altered, and storage stays within 3 keys.
    #[test]
    fn interaction_with_tiny_capacity(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..60)) {
        run::<3>(seed, &ops, false);
    }

    /// The `pqxdh` fuzz target's invariants hold on the honest first message with up to a few
    /// bytes changed (mode 1; zero bytes leave it honest, so it must decrypt), on arbitrary
    /// bodies (mode 2) and on arbitrary KEM prekeys (mode 0, with real 1,184-byte keys too).
    #[test]
    fn pqxdh_fuzz_entry_point_holds(
        mode in 0u8..3,
        flips in prop::collection::vec((0usize..1400, any::<u8>()), 0..3),
        tail in prop::collection::vec(any::<u8>(), 0..1300),
    ) {
        let mut data = vec![mode];
        if mode == 1 {
            let mut xor = vec![0u8; 1400];
            for (at, x) in flips {
                xor[at] = x;
            }
            data.extend_from_slice(&xor);
        } else {
            data.extend_from_slice(&tail);
        }
        proto_core::fuzzing::pqxdh(&data);
    }

    /// The fuzz target's entry point on arbitrary bytes never panics.
    #[test]
    fn fuzz_entry_point_holds(data in prop::collection::vec(any::<u8>(), 0..256)) {
        proto_core::fuzzing::interaction(&data);
    }
}

/// Mode 0 of the `pqxdh` fuzz target with real keys: a valid ML-KEM key (unsigned, then signed
/// by the harness) and one failing the modulus check reach both of its branches.
#[test]
fn pqxdh_fuzz_entry_point_takes_real_kem_keys() {
    let key = KemPrekeyPair::from_seed(9, &[7; 64]).public_key();
    let mut bad = key;
    bad[0] = 0xff;
    bad[1] |= 0x0f;
    for ek in [key, bad] {
        let mut data = vec![0u8];
        data.extend_from_slice(&9u32.to_be_bytes());
        data.extend_from_slice(&[1u8; 64]);
        data.extend_from_slice(&ek);
        proto_core::fuzzing::pqxdh(&data);
        data.pop();
        proto_core::fuzzing::pqxdh(&data);
    }
}

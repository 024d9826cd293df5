//! Criterion benchmarks of the crypto core.
//!
//! `ratchet/<size>` is one Double Ratchet message sent and received (encrypt on one session,
//! decrypt on the other, same chain); `primitives/<size>` is the bare RustCrypto calls that
//! message needs on both sides, with nothing else: per side HMAC-SHA256 ×2 (`KDF_CK`), HKDF-SHA256
//! to 44 bytes (key and nonce), and ChaCha20-Poly1305 seal or open over `AD || header`. Their
//! ratio is the ratchet's overhead (goal ≤ 1.1×). Also an X3DH handshake (both sides), X3DH
//! beside PQXDH for a linked device with every prekey kind (`handshake/x3dh` and
//! `handshake/pqxdh`, both sides; budget: PQXDH ≤ 2× X3DH), and a room message (encrypt, sign,
//! verify, decrypt).
//!
//! Run: `cargo bench -p proto-core --bench crypto -- --measurement-time 2 --warm-up-time 1`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark set-up: a failure must stop the run"
)]

use core::hint::black_box;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::Mac;
use proto_core::{
    IdentityKeyPair, KemPrekeyPair, OneTimePrekeyPair, PqxdhAgreement, RATCHET_OVERHEAD,
    ROOM_OVERHEAD, RemoteBundle, Room, Session, SignedPrekeyPair, X3dhAgreement,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::Sha256;

const SIZES: [usize; 4] = [64, 256, 1024, 4096];

fn pair(rng: &mut ChaCha20Rng) -> (Session, Session) {
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let spk = SignedPrekeyPair::generate(rng, 1, &bob);
    let bundle = RemoteBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        one_time_prekey: None,
    };
    let (mut a, header) = Session::initiate(rng, &alice, &bundle).unwrap();
    let mut b = Session::respond(&bob, &spk, None, &header).unwrap();
    // First message done outside the measurement (it carries the DH ratchet step).
    let mut wire = [0u8; RATCHET_OVERHEAD];
    a.encrypt(rng, &[], &mut wire).unwrap();
    b.decrypt(&wire, &mut []).unwrap();
    (a, b)
}

/// One side's bare primitive work for one message.
fn primitive_side(
    ck: &[u8; 32],
    ad: &[u8],
    buf: &mut [u8],
    tag: &mut [u8; 16],
    open: bool,
) -> [u8; 32] {
    let step = |byte: u8| {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(ck).unwrap();
        mac.update(&[byte]);
        let out: [u8; 32] = mac.finalize().into_bytes().into();
        out
    };
    let mk = step(0x01);
    let next = step(0x02);
    let mut okm = [0u8; 44];
    hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), &mk)
        .expand(b"Sealroom Message v1", &mut okm)
        .unwrap();
    let key: [u8; 32] = okm[..32].try_into().unwrap();
    let nonce: [u8; 12] = okm[32..].try_into().unwrap();
    let cipher = ChaCha20Poly1305::new(&key.into());
    if open {
        cipher
            .decrypt_inout_detached(&nonce.into(), ad, buf.into(), &(*tag).into())
            .unwrap();
    } else {
        *tag = cipher
            .encrypt_inout_detached(&nonce.into(), ad, buf.into())
            .unwrap()
            .into();
    }
    next
}

fn ratchet(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    for size in SIZES {
        let mut group = c.benchmark_group("ratchet_vs_primitives");
        group.throughput(Throughput::Bytes(size as u64));
        let (mut a, mut b) = pair(&mut rng);
        let plaintext = vec![0x42u8; size];
        let mut wire = vec![0u8; size + RATCHET_OVERHEAD];
        let mut out = vec![0u8; size];
        group.bench_function(BenchmarkId::new("ratchet", size), |bench| {
            bench.iter(|| {
                a.encrypt(&mut rng, black_box(&plaintext), &mut wire)
                    .unwrap();
                b.decrypt(black_box(&wire), &mut out).unwrap();
            })
        });
        let ad = [0x11u8; 128 + 40];
        let mut ck = [0x22u8; 32];
        let mut buf = vec![0x42u8; size];
        let mut tag = [0u8; 16];
        group.bench_function(BenchmarkId::new("primitives", size), |bench| {
            bench.iter(|| {
                buf.copy_from_slice(black_box(&plaintext));
                let next = primitive_side(&ck, black_box(&ad), &mut buf, &mut tag, false);
                primitive_side(&ck, black_box(&ad), &mut buf, &mut tag, true);
                ck = next;
            })
        });
        group.finish();
    }
}

fn x3dh(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([8; 32]);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate(&mut rng, 1, &bob);
    let opk = OneTimePrekeyPair::generate(&mut rng, 2);
    let bundle = RemoteBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        one_time_prekey: Some(opk.public()),
    };
    c.bench_function("x3dh_handshake_both_sides", |bench| {
        bench.iter(|| {
            let (_, header) =
                X3dhAgreement::initiate(&mut rng, &alice, black_box(&bundle)).unwrap();
            X3dhAgreement::respond(&bob, &spk, Some(&opk), black_box(&header)).unwrap()
        })
    });
}

/// X3DH and PQXDH side by side, each both sides, for device 2 with a one-time prekey: the
/// same signed-prekey check ("Sealroom SPK v2") and four DH on each side; PQXDH adds the KEM
/// prekey's signature check, ML-KEM-768 encapsulation and decapsulation and two SHA-256. The
/// responder's KEM prekey is already loaded (`pqxdh`), or rebuilt from its 64-byte seed as
/// a keystore would (`pqxdh_from_seed`).
fn handshake(c: &mut Criterion) {
    const DEVICE: u32 = 2;
    let mut rng = ChaCha20Rng::from_seed([10; 32]);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate_for_device(&mut rng, 1, DEVICE, &bob);
    let opk = OneTimePrekeyPair::generate(&mut rng, 2);
    let kem = KemPrekeyPair::generate(&mut rng, 3);
    let kem_public = kem.public_for_device(DEVICE, &bob);
    let kem_secret = kem.to_secret_bytes();
    let bundle = RemoteBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        one_time_prekey: Some(opk.public()),
    };
    let mut group = c.benchmark_group("handshake");
    group.bench_function("x3dh", |bench| {
        bench.iter(|| {
            let (_, header) =
                X3dhAgreement::initiate_for_device(&mut rng, &alice, black_box(&bundle), DEVICE)
                    .unwrap();
            X3dhAgreement::respond(&bob, &spk, Some(&opk), black_box(&header)).unwrap()
        })
    });
    group.bench_function("pqxdh", |bench| {
        bench.iter(|| {
            let (_, header, kem_header) = PqxdhAgreement::initiate(
                &mut rng,
                &alice,
                black_box(&bundle),
                DEVICE,
                black_box(&kem_public),
            )
            .unwrap();
            PqxdhAgreement::respond(
                &bob,
                &spk,
                Some(&opk),
                &kem,
                black_box(&header),
                black_box(&kem_header),
            )
            .unwrap()
        })
    });
    group.bench_function("pqxdh_from_seed", |bench| {
        bench.iter(|| {
            let (_, header, kem_header) = PqxdhAgreement::initiate(
                &mut rng,
                &alice,
                black_box(&bundle),
                DEVICE,
                black_box(&kem_public),
            )
            .unwrap();
            let kem = KemPrekeyPair::from_secret_bytes(black_box(&kem_secret));
            PqxdhAgreement::respond(
                &bob,
                &spk,
                Some(&opk),
                &kem,
                black_box(&header),
                black_box(&kem_header),
            )
            .unwrap()
        })
    });
    group.finish();
}

fn room(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let (a_id, b_id) = ([1u8; 32], [2u8; 32]);
    let mut a = Room::<4, 64>::create(&mut rng, [3; 16], a_id, 0);
    let mut b = Room::<4, 64>::create(&mut rng, [3; 16], b_id, 0);
    a.add_member(&b_id).unwrap();
    b.add_member(&a_id).unwrap();
    b.handle_distribution(&a.distribution(), &a_id).unwrap();
    let plaintext = [0x42u8; 256];
    let mut wire = [0u8; 256 + ROOM_OVERHEAD];
    let mut out = [0u8; 256 + ROOM_OVERHEAD];
    c.bench_function("room_message_256", |bench| {
        bench.iter(|| {
            a.encrypt(black_box(&plaintext), &mut wire).unwrap();
            b.decrypt(black_box(&wire), &mut out).unwrap()
        })
    });
}

criterion_group!(benches, ratchet, x3dh, handshake, room);
criterion_main!(benches);

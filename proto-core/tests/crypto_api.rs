//! The crypto API end to end, through the public surface only: a first contact with and without
//! a one-time prekey, the prekey message on the wire, state kept across a restart, a room with
//! an epoch change, safety numbers, and redacted `Debug` for every secret.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns: a failed step must fail the test"
)]

use proto_core::{
    DecryptError, EncryptError, IdentityKeyPair, OneTimePrekeyPair, PREKEY_HEADER_LEN,
    PrekeyHeader, RATCHET_OVERHEAD, ROOM_OVERHEAD, RemoteBundle, Room, RoomDecryptError,
    SAFETY_NUMBER_LEN, SenderKeyDistribution, Session, SignedPrekeyPair, X3dhAgreement, X3dhError,
    safety_number,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn encrypt(s: &mut Session, rng: &mut ChaCha20Rng, pt: &[u8]) -> Vec<u8> {
    let mut out = vec![0; pt.len() + RATCHET_OVERHEAD];
    let n = s.encrypt(rng, pt, &mut out).unwrap();
    out.truncate(n);
    out
}

fn decrypt(s: &mut Session, msg: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let mut out = vec![0; msg.len()];
    let n = s.decrypt(msg, &mut out)?;
    out.truncate(n);
    Ok(out)
}

#[test]
fn first_contact_over_the_wire_with_and_without_one_time_prekey() {
    let mut rng = rng(1);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate(&mut rng, 5, &bob);
    let opk = OneTimePrekeyPair::generate(&mut rng, 6);
    for with_opk in [true, false] {
        let bundle = RemoteBundle {
            identity: bob.public(),
            signed_prekey: spk.public(),
            one_time_prekey: with_opk.then(|| opk.public()),
        };
        let (mut a, header) = Session::initiate(&mut rng, &alice, &bundle).unwrap();
        // Wire: prekey header || ratchet message.
        let mut wire = header.to_bytes().to_vec();
        wire.extend(encrypt(&mut a, &mut rng, b"first"));
        let (parsed, ratchet_message) = PrekeyHeader::parse(&wire).unwrap();
        assert_eq!(parsed.identity, alice.public());
        assert_eq!(parsed.one_time_prekey_id, with_opk.then_some(6));
        let mut b = Session::respond(&bob, &spk, with_opk.then_some(&opk), &parsed).unwrap();
        assert_eq!(
            b.encrypt(&mut rng, b"x", &mut [0; 64]),
            Err(EncryptError::NotReady)
        );
        assert_eq!(decrypt(&mut b, ratchet_message).unwrap(), b"first");
        assert_eq!(b.associated_data(), a.associated_data());
        let reply = encrypt(&mut b, &mut rng, b"hi alice");
        assert!(a.pending_prekey_header().is_some());
        assert_eq!(decrypt(&mut a, &reply).unwrap(), b"hi alice");
        assert!(a.pending_prekey_header().is_none());
        assert_eq!(wire.len(), PREKEY_HEADER_LEN + 5 + RATCHET_OVERHEAD);
    }
}

#[test]
fn forged_prekey_signature_is_refused() {
    let mut rng = rng(2);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let mallory = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate(&mut rng, 1, &mallory);
    let bundle = RemoteBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        one_time_prekey: None,
    };
    assert_eq!(
        Session::<64>::initiate(&mut rng, &alice, &bundle).unwrap_err(),
        X3dhError::BadPrekeySignature
    );
}

#[test]
fn state_survives_a_restart() {
    let mut rng = rng(3);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate(&mut rng, 1, &bob);
    let bundle = RemoteBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        one_time_prekey: None,
    };
    let (mut a, header) = Session::initiate(&mut rng, &alice, &bundle).unwrap();
    let m = encrypt(&mut a, &mut rng, b"before restart");
    let mut saved = vec![0u8; Session::<64>::STATE_LEN];
    assert_eq!(a.write_state(&mut saved).unwrap(), 5856);
    drop(a);
    let mut a = Session::<64>::read_state(&saved).unwrap();
    assert_eq!(a.pending_prekey_header(), Some(&header));
    let b = Session::<64>::respond(&bob, &spk, None, &header).unwrap();
    // The responder, too, survives a restart before its first message (its ratchet key is SPK).
    b.write_state(&mut saved).unwrap();
    drop(b);
    let mut b = Session::<64>::read_state(&saved).unwrap();
    assert_eq!(decrypt(&mut b, &m).unwrap(), b"before restart");
    let r = encrypt(&mut b, &mut rng, b"after");
    assert_eq!(decrypt(&mut a, &r).unwrap(), b"after");
}

#[test]
fn room_with_epoch_change() {
    let mut rng = rng(4);
    let ids: Vec<[u8; 32]> = (0..3)
        .map(|_| IdentityKeyPair::generate(&mut rng).public().signing)
        .collect();
    let room_id = [9u8; 16];
    let mut rooms: Vec<Room> = ids
        .iter()
        .map(|id| Room::create(&mut rng, room_id, *id, 0))
        .collect();
    for (i, room) in rooms.iter_mut().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            if i != j {
                room.add_member(id).unwrap();
            }
        }
    }
    let dists: Vec<Vec<u8>> = rooms
        .iter()
        .map(|r| r.distribution().to_bytes().to_vec())
        .collect();
    for (i, room) in rooms.iter_mut().enumerate() {
        for (j, d) in dists.iter().enumerate() {
            if i != j {
                let d = SenderKeyDistribution::from_bytes(d).unwrap();
                room.handle_distribution(&d, &ids[j]).unwrap();
            }
        }
    }
    let mut msg = vec![0; 5 + ROOM_OVERHEAD];
    rooms[0].encrypt(b"hello", &mut msg).unwrap();
    let mut out = [0u8; 64];
    let p = rooms[2].decrypt(&msg, &mut out).unwrap();
    assert_eq!((&out[..p.len], p.sender), (&b"hello"[..], ids[0]));
    // The third member leaves.
    let leaving = ids[2];
    rooms[0].remove_member(&mut rng, &leaving).unwrap();
    rooms[1].remove_member(&mut rng, &leaving).unwrap();
    let d0 = rooms[0].distribution();
    rooms[1].handle_distribution(&d0, &ids[0]).unwrap();
    rooms[0].encrypt(b"hello", &mut msg).unwrap();
    assert_eq!(rooms[1].decrypt(&msg, &mut out).unwrap().len, 5);
    assert_eq!(
        rooms[2].decrypt(&msg, &mut out).unwrap_err(),
        RoomDecryptError::WrongEpoch
    );
}

#[test]
fn safety_numbers_agree_and_change_with_keys() {
    let mut rng = rng(5);
    let a = IdentityKeyPair::generate(&mut rng).public();
    let b = IdentityKeyPair::generate(&mut rng).public();
    let mut x = [0u8; SAFETY_NUMBER_LEN];
    let mut y = [0u8; SAFETY_NUMBER_LEN];
    safety_number(&a, "alice", &b, "bob", &mut x);
    safety_number(&b, "bob", &a, "alice", &mut y);
    assert_eq!(x, y);
    let c = IdentityKeyPair::generate(&mut rng).public();
    safety_number(&a, "alice", &c, "bob", &mut y);
    assert_ne!(x, y);
}

#[test]
fn debug_never_prints_secrets() {
    let mut rng = rng(6);
    let id = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate(&mut rng, 1, &id);
    let opk = OneTimePrekeyPair::generate(&mut rng, 2);
    let bundle = RemoteBundle {
        identity: id.public(),
        signed_prekey: spk.public(),
        one_time_prekey: None,
    };
    let (session, _) = Session::<64>::initiate(&mut rng, &id, &bundle).unwrap();
    let (agreement, _) = X3dhAgreement::initiate(&mut rng, &id, &bundle).unwrap();
    let room = Room::<4, 4>::create(&mut rng, [1; 16], [2; 32], 0);
    let dist = room.distribution();
    for s in [
        format!("{id:?}"),
        format!("{spk:?}"),
        format!("{opk:?}"),
        format!("{session:?}"),
        format!("{agreement:?}"),
        format!("{room:?}"),
        format!("{dist:?}"),
    ] {
        assert!(s.ends_with("([redacted])"), "{s}");
    }
    let secret = hex::encode(&id.to_secret_bytes()[..32]);
    assert!(!format!("{id:?}").contains(&secret));
}

/// Issue 17's size budget: a PQXDH first message is the X3DH one plus the 1,092-byte KEM header
/// (`kem_id` and the 1,088-byte ciphertext), and later messages are the same size either way.
#[test]
fn pqxdh_grows_the_first_message_by_the_kem_header_only() {
    use proto_core::{
        ENVELOPE_PQ_PREKEY, ENVELOPE_PREKEY, Envelope, KEM_CIPHERTEXT_LEN, KEM_HEADER_LEN,
        KemPrekeyPair, PREKEY_HEADER_LEN,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate_for_device(&mut rng, 1, 1, &bob);
    let kem = KemPrekeyPair::generate(&mut rng, 2);
    let bundle = RemoteBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        one_time_prekey: None,
    };
    let body = |s: &mut Session, rng: &mut ChaCha20Rng, text: &[u8]| {
        let mut out = vec![0u8; 1 + PREKEY_HEADER_LEN + KEM_HEADER_LEN + text.len() + 64];
        let n = Envelope::emit_prefix(s.pending_prekey_header(), s.pending_kem_header(), &mut out)
            .unwrap();
        let used = s.encrypt(rng, text, &mut out[n..]).unwrap();
        out.truncate(n + used);
        out
    };
    let (mut classical, _) = Session::initiate_for_device(&mut rng, &alice, &bundle, 1).unwrap();
    let (mut pq, _, _) = Session::initiate_pqxdh(
        &mut rng,
        &alice,
        &bundle,
        1,
        &kem.public_for_device(1, &bob),
    )
    .unwrap();
    let text = b"hello";
    let c1 = body(&mut classical, &mut rng, text);
    assert_eq!(
        c1.len(),
        1 + PREKEY_HEADER_LEN + text.len() + RATCHET_OVERHEAD
    );
    let p1 = body(&mut pq, &mut rng, text);
    assert_eq!((c1[0], p1[0]), (ENVELOPE_PREKEY, ENVELOPE_PQ_PREKEY));
    assert_eq!(p1.len() - c1.len(), KEM_HEADER_LEN);
    assert_eq!(KEM_HEADER_LEN, 4 + KEM_CIPHERTEXT_LEN);
    // After the first reply, both send plain ratchet bodies of the same size.
    let mut b = Session::respond_pqxdh(
        &bob,
        &spk,
        None,
        &kem,
        Envelope::parse(&p1).unwrap().prekey_header().unwrap(),
        &Envelope::parse(&p1).unwrap().kem_header().unwrap(),
    )
    .unwrap();
    let mut out = vec![0u8; p1.len()];
    b.decrypt(Envelope::parse(&p1).unwrap().message(), &mut out)
        .unwrap();
    let reply = body(&mut b, &mut rng, b"hi");
    let mut out = vec![0u8; reply.len()];
    pq.decrypt(Envelope::parse(&reply).unwrap().message(), &mut out)
        .unwrap();
    let p2 = body(&mut pq, &mut rng, text);
    assert_eq!(p2[0], proto_core::ENVELOPE_RATCHET);
    assert_eq!(p2.len(), 1 + text.len() + RATCHET_OVERHEAD);
}

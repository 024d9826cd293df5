extern crate std;
use std::vec::Vec;
use std::{format, vec};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::keys::{IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair};
use crate::x3dh::RemoteBundle;

type Small = Session<4>;

fn pair<const N: usize>(rng: &mut ChaCha20Rng) -> (Session<N>, Session<N>, Vec<u8>) {
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let spk = SignedPrekeyPair::generate(rng, 1, &bob);
    let opk = OneTimePrekeyPair::generate(rng, 2);
    let bundle = RemoteBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        one_time_prekey: Some(opk.public()),
    };
    let (mut a, header) = Session::<N>::initiate(rng, &alice, &bundle).unwrap();
    let mut b = Session::<N>::respond(&bob, &spk, Some(&opk), &header).unwrap();
    assert!(!b.can_send());
    let first = seal(&mut a, rng, b"hello bob");
    assert_eq!(open(&mut b, &first).unwrap(), b"hello bob");
    assert!(a.pending_prekey_header().is_some());
    (a, b, first)
}

fn seal<const N: usize>(s: &mut Session<N>, rng: &mut ChaCha20Rng, pt: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; pt.len() + RATCHET_OVERHEAD];
    let len = s.encrypt(rng, pt, &mut out).unwrap();
    assert_eq!(len, out.len());
    out
}

fn open<const N: usize>(s: &mut Session<N>, msg: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let mut out = vec![0u8; msg.len().saturating_sub(RATCHET_OVERHEAD)];
    let len = s.decrypt(msg, &mut out)?;
    out.truncate(len);
    Ok(out)
}

fn state<const N: usize>(s: &Session<N>) -> Vec<u8> {
    let mut buf = vec![0u8; Session::<N>::STATE_LEN];
    s.write_state(&mut buf).unwrap();
    buf
}

#[test]
fn ping_pong_with_dh_steps_and_prekey_header_cleared() {
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let (mut a, mut b, _) = pair::<64>(&mut rng);
    for round in 0..5u8 {
        let m = seal(&mut b, &mut rng, &[round; 10]);
        assert_eq!(open(&mut a, &m).unwrap(), [round; 10]);
        assert!(a.pending_prekey_header().is_none());
        let m = seal(&mut a, &mut rng, &[round; 3]);
        assert_eq!(open(&mut b, &m).unwrap(), [round; 3]);
    }
}

#[test]
fn out_of_order_skipped_and_replay() {
    let mut rng = ChaCha20Rng::from_seed([2; 32]);
    let (mut a, mut b, first) = pair::<64>(&mut rng);
    let ms: Vec<_> = (0..5u8).map(|i| seal(&mut a, &mut rng, &[i])).collect();
    assert_eq!(open(&mut b, &ms[3]).unwrap(), [3]);
    assert_eq!(b.skipped_key_count(), 3);
    assert_eq!(open(&mut b, &ms[1]).unwrap(), [1]);
    assert_eq!(open(&mut b, &ms[1]), Err(DecryptError::Replay));
    assert_eq!(open(&mut b, &ms[3]), Err(DecryptError::Replay));
    assert_eq!(open(&mut b, &first), Err(DecryptError::Replay));
    // Bob answers; Alice steps; a late message from Alice's old chain still decrypts.
    let r = seal(&mut b, &mut rng, b"reply");
    assert_eq!(open(&mut a, &r).unwrap(), b"reply");
    let new = seal(&mut a, &mut rng, b"new chain");
    assert_eq!(open(&mut b, &new).unwrap(), b"new chain");
    assert_eq!(open(&mut b, &ms[4]).unwrap(), [4]);
    assert_eq!(open(&mut b, &ms[0]).unwrap(), [0]);
    assert_eq!(open(&mut b, &ms[2]).unwrap(), [2]);
    assert_eq!(b.skipped_key_count(), 0);
    assert_eq!(
        open(&mut b, &ms[2]).unwrap_err(),
        DecryptError::Authentication
    );
}

#[test]
fn pn_skips_rest_of_old_chain() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let (mut a, mut b, _) = pair::<64>(&mut rng);
    let r = seal(&mut b, &mut rng, b"r");
    let lost: Vec<_> = (0..3u8).map(|i| seal(&mut b, &mut rng, &[i])).collect();
    assert_eq!(open(&mut a, &r).unwrap(), b"r");
    let x = seal(&mut a, &mut rng, b"x");
    assert_eq!(open(&mut b, &x).unwrap(), b"x");
    let y = seal(&mut b, &mut rng, b"y"); // new chain, pn = 4
    assert_eq!(open(&mut a, &y).unwrap(), b"y");
    assert_eq!(a.skipped_key_count(), 3);
    for (i, m) in lost.iter().enumerate() {
        assert_eq!(open(&mut a, m).unwrap(), [i as u8]);
    }
}

#[test]
fn too_many_skipped_is_rejected_and_capacity_holds() {
    let mut rng = ChaCha20Rng::from_seed([4; 32]);
    let (mut a, mut b, _) = pair::<4>(&mut rng);
    let ms: Vec<_> = (0..12u8).map(|i| seal(&mut a, &mut rng, &[i])).collect();
    // b has received message 0 of the chain (the first); ms[0] is n = 1.
    assert_eq!(open(&mut b, &ms[5]), Err(DecryptError::TooManySkipped));
    assert_eq!(open(&mut b, &ms[4]).unwrap(), [4]);
    assert_eq!(b.skipped_key_count(), 4);
    assert_eq!(open(&mut b, &ms[9]).unwrap(), [9]);
    assert_eq!(
        b.skipped_key_count(),
        Small::MAX_SKIP,
        "oldest evicted, never more than capacity"
    );
    assert_eq!(
        open(&mut b, &ms[0]),
        Err(DecryptError::Replay),
        "evicted key is gone"
    );
    assert_eq!(open(&mut b, &ms[8]).unwrap(), [8]);
}

#[test]
fn every_tampered_byte_is_rejected_without_state_change() {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let (mut a, mut b, _) = pair::<64>(&mut rng);
    let r = seal(&mut b, &mut rng, b"reply");
    open(&mut a, &r).unwrap();
    let m = seal(&mut a, &mut rng, b"tamper with me");
    let before = state(&b);
    for i in 0..m.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = m.clone();
            bad[i] ^= bit;
            let err = open(&mut b, &bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    DecryptError::Authentication
                        | DecryptError::TooManySkipped
                        | DecryptError::Replay
                ),
                "byte {i}: {err:?}"
            );
            assert_eq!(state(&b), before, "state changed after tampered byte {i}");
            let mut in_place = bad.clone();
            assert!(b.decrypt_in_place(&mut in_place).is_err());
            assert_eq!(in_place, bad, "buffer changed on failure");
        }
    }
    assert_eq!(
        open(&mut b, &m[..RATCHET_OVERHEAD - 1]),
        Err(DecryptError::Malformed)
    );
    let mut in_place = m.clone();
    assert_eq!(
        b.decrypt_in_place(&mut in_place).unwrap(),
        b"tamper with me"
    );
}

#[test]
fn wrong_session_is_authentication_error() {
    let mut rng = ChaCha20Rng::from_seed([6; 32]);
    let (mut a, _, _) = pair::<64>(&mut rng);
    let (_, mut b2, _) = pair::<64>(&mut rng);
    let m = seal(&mut a, &mut rng, b"for the other bob");
    assert_eq!(open(&mut b2, &m), Err(DecryptError::Authentication));
}

#[test]
fn caller_errors() {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let (mut a, _, _) = pair::<64>(&mut rng);
    let mut small = [0u8; RATCHET_OVERHEAD + 2];
    assert_eq!(
        a.encrypt(&mut rng, b"abc", &mut small),
        Err(EncryptError::BufferTooSmall)
    );
    let m = seal(&mut a, &mut rng, b"abc");
    let mut b_fresh = pair::<64>(&mut rng).1;
    assert_eq!(
        b_fresh.decrypt(&m, &mut [0u8; 2]),
        Err(DecryptError::Caller(CallerError::BufferTooSmall))
    );
}

#[test]
fn state_round_trip_mid_conversation() {
    let mut rng = ChaCha20Rng::from_seed([8; 32]);
    let (mut a, mut b, _) = pair::<64>(&mut rng);
    let held: Vec<_> = (0..3u8).map(|i| seal(&mut a, &mut rng, &[i])).collect();
    open(&mut b, &held[2]).unwrap();
    let bytes = state(&b);
    assert_eq!(bytes.len(), 5856);
    assert_eq!(bytes[0], 2);
    let mut b = Session::<64>::read_state(&bytes).unwrap();
    assert_eq!(state(&b), bytes);
    assert_eq!(open(&mut b, &held[0]).unwrap(), [0]);
    let a_bytes = state(&a);
    let mut a = Session::<64>::read_state(&a_bytes).unwrap();
    let r = seal(&mut b, &mut rng, b"r");
    assert_eq!(open(&mut a, &r).unwrap(), b"r");
    // A smaller session type restores state whose keys fit.
    assert!(Session::<2>::read_state(&bytes).is_ok());
    assert_eq!(
        Session::<1>::read_state(&bytes).unwrap_err(),
        StateError::Malformed
    );
    let mut v = bytes.clone();
    v[0] = 3;
    assert_eq!(
        Session::<64>::read_state(&v).unwrap_err(),
        StateError::UnknownVersion
    );
    let mut f = bytes.clone();
    f[1] |= 0x80;
    assert_eq!(
        Session::<64>::read_state(&f).unwrap_err(),
        StateError::Malformed
    );
    assert_eq!(
        Session::<64>::read_state(&bytes[..100]).unwrap_err(),
        StateError::Truncated
    );
    assert_eq!(
        b.write_state(&mut [0u8; 10]),
        Err(StateError::Caller(CallerError::BufferTooSmall))
    );
}

#[test]
fn debug_is_redacted() {
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let (a, _, _) = pair::<64>(&mut rng);
    assert_eq!(format!("{a:?}"), "Session([redacted])");
}

/// A version-1 state (written before PQXDH: no KEM header field) of the same session.
fn as_version_1(v2: &[u8]) -> Vec<u8> {
    let mut v1 = v2[..410].to_vec();
    v1[0] = 1;
    v1.extend_from_slice(&v2[410 + crate::KEM_HEADER_LEN..]);
    v1
}

#[test]
fn version_1_state_is_still_read() {
    let mut rng = ChaCha20Rng::from_seed([10; 32]);
    let (mut a, mut b, _) = pair::<64>(&mut rng);
    let first = seal(&mut a, &mut rng, b"one");
    open(&mut b, &first).unwrap();
    // The initiator still holds its prekey header (no reply yet): flag bit 4 in version 1.
    let old = as_version_1(&state(&a));
    assert_eq!(old.len(), 4764);
    let mut a = Session::<64>::read_state(&old).unwrap();
    assert!(a.pending_prekey_header().is_some());
    assert!(a.pending_kem_header().is_none());
    let m = seal(&mut a, &mut rng, b"two");
    assert_eq!(open(&mut b, &m).unwrap(), b"two");
    // Bit 5 (a KEM header) does not exist in version 1.
    let mut bad = old.clone();
    bad[1] |= 1 << 5;
    assert_eq!(
        Session::<64>::read_state(&bad).unwrap_err(),
        StateError::Malformed
    );
}

#[test]
fn a_pqxdh_session_keeps_its_kem_header_until_the_first_reply() {
    use crate::{KemHeader, KemPrekeyPair};
    let mut rng = ChaCha20Rng::from_seed([11; 32]);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate_for_device(&mut rng, 1, 4, &bob);
    let kem = KemPrekeyPair::generate(&mut rng, 9);
    let bundle = RemoteBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        one_time_prekey: None,
    };
    let published = kem.public_for_device(4, &bob);
    let (a, header, kem_header) =
        Session::<64>::initiate_pqxdh(&mut rng, &alice, &bundle, 4, &published).unwrap();
    assert_eq!(kem_header.kem_id, 9);
    assert_eq!(a.pending_kem_header(), Some(&kem_header));
    // The pending headers survive the state bytes.
    let saved = state(&a);
    assert_eq!(saved[1] & (1 << 5), 1 << 5);
    let mut a = Session::<64>::read_state(&saved).unwrap();
    assert_eq!(a.pending_prekey_header(), Some(&header));
    assert_eq!(a.pending_kem_header(), Some(&kem_header));
    let first = seal(&mut a, &mut rng, b"hi");
    let mut b = Session::<64>::respond_pqxdh(&bob, &spk, None, &kem, &header, &kem_header).unwrap();
    assert_eq!(open(&mut b, &first).unwrap(), b"hi");
    // The responder with a classical X3DH (no KEM secret) gets another key: the message does
    // not decrypt.
    let mut classical = Session::<64>::respond(&bob, &spk, None, &header).unwrap();
    assert!(open(&mut classical, &first).is_err());
    let reply = seal(&mut b, &mut rng, b"back");
    assert_eq!(open(&mut a, &reply).unwrap(), b"back");
    assert!(a.pending_prekey_header().is_none());
    assert!(a.pending_kem_header().is_none());
    assert_eq!(state(&a)[1] & (1 << 5), 0);
    // A KEM header naming another KEM prekey is refused before any decryption.
    let other = KemHeader {
        kem_id: 10,
        ciphertext: kem_header.ciphertext.clone(),
    };
    assert!(Session::<64>::respond_pqxdh(&bob, &spk, None, &kem, &header, &other).is_err());
}

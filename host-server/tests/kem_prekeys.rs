//! KEM prekeys on the wire (PQXDH, PROTOCOL.md §3.4 messages 66–69, §4.8, §6 Keys):
//! `UploadKemPrekeys` stores a device's KEM prekeys only if every signature verifies for that
//! device under the account's identity, every id is new and the one-time ones fit the quota;
//! `FetchKemBundle` hands out the X3DH bundle with one KEM prekey (each one-time one once, then
//! the last-resort one); `KemPrekeysLow` tells the device when to upload more.
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use host_server::client::{Client, Frame};
use proto_core::{
    ErrorCode, IdentityKeyPair, KemPrekey, KemPrekeyPair, KemPrekeyPublic, Key32, List, Message,
    SignedPrekey,
};

type Rng = getrandom::rand_core::UnwrapErr<getrandom::SysRng>;

fn rng() -> Rng {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

/// A fresh KEM prekey `id`, signed by `identity` for `device`.
fn kem(id: u32, device: u32, identity: &IdentityKeyPair) -> KemPrekeyPublic {
    KemPrekeyPair::generate(&mut rng(), id).public_for_device(device, identity)
}

/// Sends `UploadKemPrekeys`; the reply.
async fn upload(
    c: &mut Client,
    last_resort: Option<&KemPrekeyPublic>,
    one_time: &[KemPrekeyPublic],
) -> Frame {
    let wire: Vec<KemPrekey<'_>> = one_time.iter().map(KemPrekeyPublic::to_wire).collect();
    c.send(&Message::UploadKemPrekeys {
        last_resort: last_resort.map(KemPrekeyPublic::to_wire),
        one_time: List::from_items(&wire),
    })
    .await
    .unwrap();
    recv_reply(c).await
}

/// What a `KemBundle` carried.
#[derive(Debug)]
struct Fetched {
    signed_prekey: SignedPrekey,
    one_time_prekey: Option<u32>,
    kem_prekey: Option<KemPrekeyPublic>,
}

/// `FetchKemBundle` for `who`'s `device`: the bundle, or the error code.
async fn fetch(c: &mut Client, who: &str, device: u32) -> Result<Fetched, ErrorCode> {
    c.send(&Message::FetchKemBundle {
        username: who,
        device,
    })
    .await
    .unwrap();
    let f = recv_reply(c).await;
    match f.msg() {
        Some(Message::KemBundle { bundle, kem_prekey }) => {
            assert_eq!(bundle.username, who.to_ascii_lowercase());
            Ok(Fetched {
                signed_prekey: bundle.signed_prekey,
                one_time_prekey: bundle.one_time_prekey.map(|p| p.id),
                kem_prekey: kem_prekey.map(|k| KemPrekeyPublic::try_from(&k).unwrap()),
            })
        }
        Some(Message::Error { code, .. }) => Err(code),
        other => panic!("expected KemBundle, got {other:?}"),
    }
}

/// KEM prekeys stored, one-time and last-resort, whoever holds them.
fn stored(ts: &TestServer) -> (i64, i64) {
    (
        ts.count(
            "SELECT COUNT(*) FROM device_kem_prekeys WHERE key <> $1",
            &[0],
        ),
        ts.count(
            "SELECT COUNT(*) FROM devices WHERE kem_key IS NOT NULL AND kem_key <> $1",
            &[0],
        ),
    )
}

/// Sends a `Ping` and returns the `KemPrekeysLow` counts pushed before its `Pong`.
async fn kem_lows_until_pong(c: &mut Client) -> Vec<u32> {
    c.send(&Message::Ping { nonce: 77 }).await.unwrap();
    let mut lows = Vec::new();
    loop {
        match recv(c).await.msg() {
            Some(Message::Pong { nonce: 77 }) => return lows,
            Some(Message::KemPrekeysLow { remaining }) => lows.push(remaining),
            Some(Message::PrekeysLow { .. }) => {}
            other => panic!("expected Pong, got {other:?}"),
        }
    }
}

#[test]
fn a_kem_prekey_signed_for_another_device_or_by_another_identity_or_altered_is_refused() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice) = register(&ts, "alice", 2).await;
        let (mut b, _bob) = register(&ts, "bob", 0).await;
        let identity = &alice.device.identity;
        let stranger = IdentityKeyPair::from_secrets(&random32(), &random32());
        let good = kem(1, 1, identity);
        let mut flipped_key = kem(2, 1, identity);
        flipped_key.public[700] ^= 1;
        let mut flipped_sig = kem(2, 1, identity);
        flipped_sig.signature[10] ^= 0x80;
        let mut other_id = kem(2, 1, identity);
        other_id.id = 3;
        let bad = [
            ("signed for device 2", kem(2, 2, identity)),
            ("signed by another identity", kem(2, 1, &stranger)),
            ("a byte of its key flipped", flipped_key),
            ("a byte of its signature flipped", flipped_sig),
            ("signed under another id", other_id),
        ];
        for (what, bad) in &bad {
            // Beside a good one-time prekey, as a one-time one and as the last-resort one.
            for f in [
                upload(&mut a, None, &[good.clone(), bad.clone()]).await,
                upload(&mut a, Some(bad), core::slice::from_ref(&good)).await,
            ] {
                expect_error(&f, ErrorCode::INVALID_INPUT);
                assert_eq!(
                    error_text(&f),
                    "a KEM prekey's signature does not verify",
                    "{what}"
                );
            }
            assert_eq!(stored(&ts), (0, 0), "{what}: nothing is stored");
        }
        let f = fetch(&mut b, "alice", 1).await.unwrap();
        assert_eq!(f.kem_prekey, None, "alice has published none");

        // Signed for this device by the account's identity: stored, and handed out intact.
        let last = kem(9, 1, identity);
        expect_ok(&upload(&mut a, Some(&last), core::slice::from_ref(&good)).await);
        assert_eq!(stored(&ts), (1, 1));
        let f = fetch(&mut b, "alice", 1).await.unwrap();
        let k = f.kem_prekey.unwrap();
        assert_eq!(k, good);
        k.verify_for_device(&identity.public().signing, 1).unwrap();
    });
}

#[test]
fn a_kem_bundle_hands_out_each_one_time_kem_prekey_once_then_the_last_resort_one() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice) = register(&ts, "alice", 2).await;
        let (mut b, _bob) = register(&ts, "bob", 0).await;
        let identity = &alice.device.identity;
        let one_time: Vec<_> = (1..=3).map(|id| kem(id, 1, identity)).collect();
        let last = kem(100, 1, identity);
        expect_ok(&upload(&mut a, Some(&last), &one_time).await);

        let mut got = Vec::new();
        for _ in 0..5 {
            let f = fetch(&mut b, "ALICE", 1).await.unwrap();
            // The X3DH part is FetchDeviceBundle's: the signed prekey, and a one-time prekey
            // while any is left.
            assert_eq!(f.signed_prekey, alice.device.signed_prekey());
            got.push((f.one_time_prekey, f.kem_prekey.unwrap()));
        }
        let opks: Vec<_> = got.iter().map(|(opk, _)| *opk).collect();
        assert_eq!(opks, [Some(100), Some(101), None, None, None]);
        let kems: Vec<_> = got.into_iter().map(|(_, k)| k).collect();
        assert_eq!(
            kems[..3],
            one_time[..],
            "each one-time KEM prekey once, lowest id first"
        );
        assert_eq!(
            kems[3..],
            [last.clone(), last],
            "then the last-resort one, again"
        );

        // Only that device's, only a confirmed account's.
        assert_eq!(
            fetch(&mut b, "alice", 2).await.unwrap_err(),
            ErrorCode::NOT_FOUND
        );
        assert_eq!(
            fetch(&mut b, "nobody", 1).await.unwrap_err(),
            ErrorCode::NOT_FOUND
        );
        assert_eq!(
            fetch(&mut b, "not a name!", 1).await.unwrap_err(),
            ErrorCode::NOT_FOUND
        );

        // A new last-resort one replaces the old.
        let newer = kem(101, 1, identity);
        expect_ok(&upload(&mut a, Some(&newer), &[]).await);
        assert_eq!(
            fetch(&mut b, "alice", 1).await.unwrap().kem_prekey,
            Some(newer)
        );
        assert_eq!(stored(&ts), (0, 1));
    });
}

#[test]
fn past_the_hand_out_pace_a_kem_bundle_carries_the_last_resort_kem_prekey() {
    let ts = TestServer::start_with(|c| {
        c.prekey_handout_rate = host_server::auth::ratelimit::Rate {
            burst: 1,
            per_hour: 1,
        }
    });
    run(async {
        let (mut a, alice) = register(&ts, "alice", 2).await;
        let (mut b, _bob) = register(&ts, "bob", 0).await;
        let identity = &alice.device.identity;
        let one_time: Vec<_> = (1..=2).map(|id| kem(id, 1, identity)).collect();
        let last = kem(100, 1, identity);
        expect_ok(&upload(&mut a, Some(&last), &one_time).await);
        let first = fetch(&mut b, "alice", 1).await.unwrap();
        assert_eq!(first.one_time_prekey, Some(100));
        assert_eq!(first.kem_prekey.as_ref(), Some(&one_time[0]));
        // The pace is spent: neither kind of one-time prekey goes.
        let second = fetch(&mut b, "alice", 1).await.unwrap();
        assert_eq!(second.one_time_prekey, None);
        assert_eq!(second.kem_prekey, Some(last));
        assert_eq!(stored(&ts), (1, 1));
    });
}

#[test]
fn kem_prekey_ids_must_be_new_and_one_time_ones_fit_the_quota() {
    let ts = TestServer::start_with(|c| c.max_prekeys = 4);
    run(async {
        let (mut a, alice) = register(&ts, "alice", 0).await;
        let (mut b, _bob) = register(&ts, "bob", 0).await;
        let identity = &alice.device.identity;
        let k = |id| kem(id, 1, identity);

        // Not before a login.
        let mut fresh = ts.connect().await;
        expect_error(
            &upload(&mut fresh, None, &[k(1)]).await,
            ErrorCode::BAD_STATE,
        );

        // An id twice in one upload, as two one-time ones or as one of each.
        expect_error(
            &upload(&mut a, None, &[k(1), k(1)]).await,
            ErrorCode::INVALID_INPUT,
        );
        expect_error(
            &upload(&mut a, Some(&k(2)), &[k(2)]).await,
            ErrorCode::INVALID_INPUT,
        );
        assert_eq!(stored(&ts), (0, 0));

        expect_ok(&upload(&mut a, Some(&k(50)), &[k(1), k(2), k(3)]).await);
        // An id the device holds, one-time or last-resort.
        for f in [
            upload(&mut a, None, &[k(3)]).await,
            upload(&mut a, None, &[k(50)]).await,
            upload(&mut a, Some(&k(2)), &[]).await,
            upload(&mut a, Some(&k(50)), &[]).await,
        ] {
            expect_error(&f, ErrorCode::INVALID_INPUT);
            assert!(
                error_text(&f).contains("already held"),
                "{}",
                error_text(&f)
            );
        }

        // At most 4 one-time KEM prekeys: 3 held, 2 more is too many, and nothing is stored.
        expect_error(
            &upload(&mut a, Some(&k(51)), &[k(4), k(5)]).await,
            ErrorCode::QUOTA_FULL,
        );
        assert_eq!(stored(&ts), (3, 1));
        expect_ok(&upload(&mut a, None, &[k(4)]).await);
        expect_error(&upload(&mut a, None, &[k(5)]).await, ErrorCode::QUOTA_FULL);
        // The last-resort one does not count, and a fetch makes room.
        expect_ok(&upload(&mut a, Some(&k(51)), &[]).await);
        let f = fetch(&mut b, "alice", 1).await.unwrap();
        assert_eq!(f.kem_prekey.map(|p| p.id), Some(1));
        expect_ok(&upload(&mut a, None, &[k(5)]).await);
        assert_eq!(stored(&ts), (4, 1));
    });
}

#[test]
fn kem_prekeys_low_is_sent_after_a_fetch_and_on_session_entry() {
    let ts = TestServer::start_with(|c| c.prekeys_low = 2);
    run(async {
        // Ten X25519 one-time prekeys: no `PrekeysLow` gets in the way.
        let (mut a, alice) = register(&ts, "alice", 10).await;
        let (mut b, _bob) = register(&ts, "bob", 0).await;
        // A device that has published none hears of it as its session starts.
        assert_eq!(kem_lows_until_pong(&mut a).await, [0]);
        let identity = &alice.device.identity;
        let one_time: Vec<_> = (1..=3).map(|id| kem(id, 1, identity)).collect();
        expect_ok(&upload(&mut a, Some(&kem(100, 1, identity)), &one_time).await);
        let mut again = resume(&ts, &alice).await;
        assert!(kem_lows_until_pong(&mut again).await.is_empty(), "3 left");

        // 2 left: not below the mark; 1 left, then none: every connection of the device hears.
        fetch(&mut b, "alice", 1).await.unwrap();
        assert!(kem_lows_until_pong(&mut a).await.is_empty());
        fetch(&mut b, "alice", 1).await.unwrap();
        assert_eq!(kem_lows_until_pong(&mut a).await, [1]);
        assert_eq!(kem_lows_until_pong(&mut again).await, [1]);
        fetch(&mut b, "alice", 1).await.unwrap();
        assert_eq!(kem_lows_until_pong(&mut a).await, [0]);
        // The last-resort one handed out: still none left.
        assert!(
            fetch(&mut b, "alice", 1)
                .await
                .unwrap()
                .kem_prekey
                .is_some()
        );
        assert_eq!(kem_lows_until_pong(&mut a).await, [0]);
        assert!(
            kem_lows_until_pong(&mut b).await.is_empty(),
            "only the owner hears"
        );

        // A session starting with fewer than the mark is told at once.
        let mut later = resume(&ts, &alice).await;
        assert_eq!(kem_lows_until_pong(&mut later).await, [0]);
    });
}

#[test]
fn starting_over_drops_the_kem_prekeys_signed_by_the_old_identity() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice) = register(&ts, "alice", 0).await;
        let (mut b, _bob) = register(&ts, "bob", 0).await;
        let identity = &alice.device.identity;
        expect_ok(&upload(&mut a, Some(&kem(100, 1, identity)), &[kem(1, 1, identity)]).await);
        assert_eq!(stored(&ts), (1, 1));

        let new = IdentityKeyPair::from_secrets(&random32(), &random32());
        let public = new.public();
        a.send(&Message::PublishIdentity {
            identity_sig: Key32(public.signing),
            identity_dh: Key32(public.dh),
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut a).await);
        assert_eq!(stored(&ts), (0, 0));

        // The new device (2) publishes its keys, signed by the new identity, and only those
        // verify now.
        let spk = proto_core::SignedPrekeyPair::from_secret_key_for_device(1, 2, &random32(), &new)
            .public();
        a.send(&Message::PublishSignedPrekey {
            prekey: SignedPrekey {
                id: spk.id,
                key: Key32(spk.public),
                signature: proto_core::Sig64(spk.signature),
            },
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut a).await);
        expect_error(
            &upload(&mut a, None, &[kem(1, 2, identity)]).await,
            ErrorCode::INVALID_INPUT,
        );
        let fresh = kem(1, 2, &new);
        expect_ok(&upload(&mut a, None, core::slice::from_ref(&fresh)).await);
        assert_eq!(
            fetch(&mut b, "alice", 2).await.unwrap().kem_prekey,
            Some(fresh)
        );
        assert_eq!(
            fetch(&mut b, "alice", 1).await.unwrap_err(),
            ErrorCode::NOT_FOUND
        );
    });
}

//! The key directory and rooms end to end.
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use common::*;
use host_server::client::Client;
use proto_core::{ErrorCode, Key32, List, Message, OneTimePrekey, RoomChange, Sig64, SignedPrekey};

async fn fetch_opk(c: &mut Client, who: &str) -> Option<u32> {
    c.send(&Message::FetchBundle { username: who })
        .await
        .unwrap();
    let f = recv_reply(c).await;
    match f.msg() {
        Some(Message::Bundle { bundle }) => {
            assert_eq!(bundle.username, who);
            // The bundle's signed prekey verifies under its identity key.
            let spk = proto_core::SignedPrekeyPublic {
                id: bundle.signed_prekey.id,
                public: bundle.signed_prekey.key.0,
                signature: bundle.signed_prekey.signature.0,
            };
            spk.verify(&bundle.identity_sig.0).unwrap();
            bundle.one_time_prekey.map(|k| k.id)
        }
        other => panic!("expected Bundle, got {other:?}"),
    }
}

#[test]
fn bundles_hand_out_each_one_time_prekey_once() {
    let ts = TestServer::start_with(|c| c.prekeys_low = 2);
    run(async {
        let (mut bob_conn, _bob) = register(&ts, "bob", 4).await;
        let (mut a, _alice) = register(&ts, "alice", 0).await;
        let mut seen = HashSet::new();
        for _ in 0..4 {
            let id = fetch_opk(&mut a, "bob").await.unwrap();
            assert!(seen.insert(id), "prekey {id} handed out twice");
        }
        assert_eq!(fetch_opk(&mut a, "bob").await, None);
        // Bob was told he is running low (below 2, then 0).
        let mut lows = Vec::new();
        while lows.last() != Some(&0) {
            if let Some(Message::PrekeysLow { remaining }) = recv(&mut bob_conn).await.msg() {
                lows.push(remaining);
            }
        }
        assert!(lows.iter().all(|r| *r < 2), "{lows:?}");
        a.send(&Message::FetchBundle { username: "nobody" })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut a).await, ErrorCode::NOT_FOUND);
    });
}

#[test]
fn concurrent_fetches_never_share_a_prekey() {
    let ts = TestServer::start();
    let ids: Vec<Option<u32>> = run(async {
        let (_b, _bob) = register(&ts, "bob", 5).await;
        let (_a, alice) = register(&ts, "alice", 0).await;
        let mut clients = Vec::new();
        for _ in 0..10 {
            clients.push(resume(&ts, &alice).await);
        }
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut c| smol::spawn(async move { fetch_opk(&mut c, "bob").await }))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        out
    });
    let got: Vec<u32> = ids.iter().flatten().copied().collect();
    let unique: HashSet<u32> = got.iter().copied().collect();
    assert_eq!(got.len(), 5, "{ids:?}");
    assert_eq!(unique.len(), 5, "{ids:?}");
}

#[test]
fn prekey_uploads_are_bounded_and_signatures_checked() {
    let ts = TestServer::start_with(|c| c.max_prekeys = 6);
    run(async {
        let (mut c, bob) = register(&ts, "bob", 2).await;
        let more: Vec<OneTimePrekey> = (0..4)
            .map(|i| OneTimePrekey {
                id: 500 + i,
                key: Key32(random32()),
            })
            .collect();
        c.send(&Message::UploadPrekeys {
            prekeys: List::from_items(&more),
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut c).await);
        let one = [OneTimePrekey {
            id: 900,
            key: Key32(random32()),
        }];
        c.send(&Message::UploadPrekeys {
            prekeys: List::from_items(&one),
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut c).await, ErrorCode::QUOTA_FULL);

        // A signed prekey signed by another identity is refused; one by ours is taken.
        let other = Device::new(0);
        c.send(&Message::PublishSignedPrekey {
            prekey: other.signed_prekey(),
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut c).await, ErrorCode::INVALID_INPUT);
        let fresh =
            proto_core::SignedPrekeyPair::from_secret_key(2, &random32(), &bob.device.identity);
        let p = fresh.public();
        c.send(&Message::PublishSignedPrekey {
            prekey: SignedPrekey {
                id: 2,
                key: Key32(p.public),
                signature: Sig64(p.signature),
            },
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut c).await);
        let (mut a, _alice) = register(&ts, "alice", 0).await;
        a.send(&Message::FetchBundle { username: "bob" })
            .await
            .unwrap();
        let f = recv_reply(&mut a).await;
        let Some(Message::Bundle { bundle }) = f.msg() else {
            panic!()
        };
        assert_eq!(bundle.signed_prekey.id, 2);

        // A new identity drops the old prekeys (they were signed by the old key).
        let new_id = proto_core::IdentityKeyPair::from_secrets(&random32(), &random32()).public();
        c.send(&Message::PublishIdentity {
            identity_sig: Key32(new_id.signing),
            identity_dh: Key32(new_id.dh),
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut c).await);
        a.send(&Message::FetchBundle { username: "bob" })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut a).await, ErrorCode::NOT_FOUND);
    });
}

async fn room_change(c: &mut Client) -> (String, String, RoomChange) {
    loop {
        let f = recv(c).await;
        if let Some(Message::RoomChanged {
            room,
            username,
            change,
        }) = f.msg()
        {
            return (room.to_owned(), username.to_owned(), change);
        }
    }
}

async fn next_deliver(c: &mut Client) -> (u64, String, Option<String>, Vec<u8>) {
    loop {
        let f = recv(c).await;
        if let Some(Message::Deliver {
            server_id,
            from,
            room,
            body,
            ..
        }) = f.msg()
        {
            return (
                server_id,
                from.to_owned(),
                room.map(str::to_owned),
                body.to_vec(),
            );
        }
    }
}

#[test]
fn rooms_fan_out_one_stored_copy_and_enforce_roles() {
    let ts = TestServer::start();
    run(async {
        let (mut a, _alice) = register(&ts, "alice", 0).await;
        let (mut b, _bob) = register(&ts, "bob", 0).await;
        let (mut c, carol) = register(&ts, "carol", 0).await;

        a.send(&Message::CreateRoom { room: "team" }).await.unwrap();
        expect_ok(&recv_reply(&mut a).await);
        b.send(&Message::CreateRoom { room: "team" }).await.unwrap();
        expect_error(&recv_reply(&mut b).await, ErrorCode::ROOM_TAKEN);
        b.send(&Message::CreateRoom { room: "Bad Name" })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut b).await, ErrorCode::INVALID_INPUT);

        // Only members invite.
        b.send(&Message::Invite {
            room: "team",
            username: "carol",
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut b).await, ErrorCode::FORBIDDEN);
        invite_accepted(&mut a, &mut b, "team", "bob").await;
        assert_eq!(
            room_change(&mut b).await,
            ("team".into(), "bob".into(), RoomChange::Joined)
        );
        invite_accepted(&mut b, &mut c, "team", "carol").await;
        assert_eq!(
            room_change(&mut c).await,
            ("team".into(), "carol".into(), RoomChange::Joined)
        );

        a.send(&Message::ListMembers { room: "team" })
            .await
            .unwrap();
        let f = recv_reply(&mut a).await;
        let Some(Message::Members { admin, members, .. }) = f.msg() else {
            panic!("{:?}", f.msg())
        };
        assert_eq!(admin, "alice");
        assert_eq!(
            members.iter().collect::<Vec<_>>(),
            ["alice", "bob", "carol"]
        );
        c.send(&Message::ListRooms).await.unwrap();
        let f = recv_reply(&mut c).await;
        let Some(Message::Rooms { rooms }) = f.msg() else {
            panic!()
        };
        assert_eq!(rooms.iter().collect::<Vec<_>>(), ["team"]);

        // Carol goes offline; Alice sends once; Bob gets it now, Carol on her return.
        drop(c);
        a.send(&Message::SendToRoom {
            room: "team",
            client_id: 5,
            body: b"room-ct",
        })
        .await
        .unwrap();
        let f = recv_reply(&mut a).await;
        let Some(Message::Accepted { server_id, .. }) = f.msg() else {
            panic!("{:?}", f.msg())
        };
        let (sid, from, room, body) = next_deliver(&mut b).await;
        assert_eq!(
            (sid, from.as_str(), room.as_deref(), body.as_slice()),
            (server_id, "alice", Some("team"), &b"room-ct"[..])
        );
        // Stored once, not once per member.
        let copies = ts.count("SELECT COUNT(*) FROM messages WHERE body = $1", b"room-ct");
        assert_eq!(copies, 1);
        b.send(&Message::Ack { server_id: sid }).await.unwrap();
        let mut c = resume(&ts, &carol).await;
        let (sid2, ..) = next_deliver(&mut c).await;
        assert_eq!(sid2, server_id);
        c.send(&Message::Ack { server_id: sid2 }).await.unwrap();

        // Only the admin removes; removal is announced; the removed cannot send.
        b.send(&Message::Remove {
            room: "team",
            username: "carol",
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut b).await, ErrorCode::FORBIDDEN);
        a.send(&Message::Remove {
            room: "team",
            username: "carol",
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut a).await);
        assert_eq!(
            room_change(&mut b).await,
            ("team".into(), "carol".into(), RoomChange::Removed)
        );
        assert_eq!(
            room_change(&mut c).await,
            ("team".into(), "carol".into(), RoomChange::Removed)
        );
        c.send(&Message::SendToRoom {
            room: "team",
            client_id: 6,
            body: b"x",
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut c).await, ErrorCode::FORBIDDEN);

        // The admin leaves: Bob is told and becomes admin.
        a.send(&Message::Leave { room: "team" }).await.unwrap();
        expect_ok(&recv_reply(&mut a).await);
        assert_eq!(
            room_change(&mut b).await,
            ("team".into(), "alice".into(), RoomChange::Left)
        );
        b.send(&Message::ListMembers { room: "team" })
            .await
            .unwrap();
        let f = recv_reply(&mut b).await;
        let Some(Message::Members { admin, members, .. }) = f.msg() else {
            panic!("{:?}", f.msg())
        };
        assert_eq!(
            (admin, members.iter().collect::<Vec<_>>()),
            ("bob", vec!["bob"])
        );
        a.send(&Message::ListMembers { room: "team" })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut a).await, ErrorCode::FORBIDDEN);
    });
}

#[test]
fn new_members_do_not_receive_earlier_room_messages() {
    let ts = TestServer::start();
    run(async {
        let (mut a, _alice) = register(&ts, "alice", 0).await;
        let (mut b, _bob) = register(&ts, "bob", 0).await;
        a.send(&Message::CreateRoom { room: "r1" }).await.unwrap();
        expect_ok(&recv_reply(&mut a).await);
        a.send(&Message::SendToRoom {
            room: "r1",
            client_id: 1,
            body: b"before",
        })
        .await
        .unwrap();
        assert!(matches!(
            recv_reply(&mut a).await.msg(),
            Some(Message::Accepted { .. })
        ));
        invite_accepted(&mut a, &mut b, "r1", "bob").await;
        a.send(&Message::SendToRoom {
            room: "r1",
            client_id: 2,
            body: b"after",
        })
        .await
        .unwrap();
        assert!(matches!(
            recv_reply(&mut a).await.msg(),
            Some(Message::Accepted { .. })
        ));
        let (_, _, _, body) = next_deliver(&mut b).await;
        assert_eq!(body, b"after");
    });
}

#[test]
fn offline_members_learn_membership_changes_on_return() {
    let ts = TestServer::start();
    run(async {
        let (mut a, _alice) = register(&ts, "alice", 0).await;
        let (mut b, bob) = register(&ts, "bob", 0).await;
        let (mut c, _carol) = register(&ts, "carol", 0).await;
        a.send(&Message::CreateRoom { room: "r" }).await.unwrap();
        expect_ok(&recv_reply(&mut a).await);
        invite_accepted(&mut a, &mut b, "r", "bob").await;
        drop(b);
        // Wait until the server has seen Bob go (a push to a connection still closing is lost
        // with it, as with any transport).
        let deadline = std::time::Instant::now() + WAIT;
        while ts.server().active_connections() > 2 {
            assert!(std::time::Instant::now() < deadline);
            smol::Timer::after(core::time::Duration::from_millis(10)).await;
        }
        invite_accepted(&mut a, &mut c, "r", "carol").await;
        a.send(&Message::Remove {
            room: "r",
            username: "carol",
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut a).await);
        // Bob was offline for both; he hears of them, in order, when he comes back. (His own
        // join may come too: Alice got her Ok before the server announced it, so Bob may have
        // left first.)
        let mut b = resume(&ts, &bob).await;
        let mut about_carol = Vec::new();
        while about_carol.len() < 2 {
            let change = room_change(&mut b).await;
            if change.1 == "carol" {
                about_carol.push(change);
            }
        }
        assert_eq!(
            about_carol,
            [
                ("r".into(), "carol".into(), RoomChange::Joined),
                ("r".into(), "carol".into(), RoomChange::Removed)
            ]
        );
    });
}

/// The next reply, skipping pushes and deliveries.
async fn reply_not_deliver(c: &mut Client) -> host_server::client::Frame {
    loop {
        let f = recv_reply(c).await;
        if !matches!(f.msg(), Some(Message::Deliver { .. })) {
            return f;
        }
    }
}

/// Starting over: a session that publishes a new identity revokes every other session of the
/// account at once (its old devices: their connections end, their tokens stop working) and
/// drops the direct messages queued for the old identity; publishing the same identity again
/// changes nothing.
#[test]
fn a_new_identity_revokes_the_old_devices_and_their_queue() {
    let ts = TestServer::start();
    run(async {
        let (_r, carol) = register(&ts, "carol", 2).await;
        let (_r, alice) = register(&ts, "alice", 2).await;
        let mut old = resume(&ts, &carol).await;
        ts.advance(30);
        let (mut new, f) = login(
            &ts,
            "carol",
            PASSWORD,
            Message::TotpCode {
                code: &host_server::auth::totp::code_at(&carol.totp_secret, ts.now()),
            },
        )
        .await;
        assert!(
            matches!(f.msg(), Some(Message::Session { .. })),
            "{:?}",
            f.msg()
        );
        // Alice writes to carol's old identity; it waits in the queue.
        let mut a = resume(&ts, &alice).await;
        a.send(&Message::SendToUser {
            to: "carol",
            client_id: 1,
            body: b"for the old identity",
        })
        .await
        .unwrap();
        assert!(matches!(
            recv_reply(&mut a).await.msg(),
            Some(Message::Accepted { .. })
        ));
        // The old device has it live; it does not acknowledge yet.
        assert!(matches!(
            recv_reply(&mut old).await.msg(),
            Some(Message::Deliver { .. })
        ));

        // Republishing the current identity: nothing happens.
        new.send(&Message::PublishIdentity {
            identity_sig: Key32(carol.device.identity.public().signing),
            identity_dh: Key32(carol.device.identity.public().dh),
        })
        .await
        .unwrap();
        assert!(matches!(
            reply_not_deliver(&mut new).await.msg(),
            Some(Message::Ok)
        ));
        old.send(&Message::Ping { nonce: 7 }).await.unwrap();
        assert!(matches!(
            recv_reply(&mut old).await.msg(),
            Some(Message::Pong { nonce: 7 })
        ));

        // A new identity: the old device is logged out at once and cannot come back.
        let fresh = proto_core::IdentityKeyPair::from_secrets(&[0x31; 32], &[0x32; 32]).public();
        new.send(&Message::PublishIdentity {
            identity_sig: Key32(fresh.signing),
            identity_dh: Key32(fresh.dh),
        })
        .await
        .unwrap();
        assert!(matches!(
            reply_not_deliver(&mut new).await.msg(),
            Some(Message::Ok)
        ));
        let mut ended = false;
        for _ in 0..8 {
            if old.recv_timeout(WAIT).await.is_err() {
                ended = true;
                break;
            }
        }
        assert!(ended, "the old device's connection ends");
        let mut again = ts.connect().await;
        again
            .send(&Message::Resume {
                username: "carol",
                token: Key32(carol.token),
            })
            .await
            .unwrap();
        assert_eq!(
            error_code(&recv_reply(&mut again).await),
            Some(ErrorCode::SESSION_EXPIRED)
        );
        // What was queued for the old identity is gone: the new session is handed nothing,
        // and nobody acknowledged it (alice gets no receipt).
        let mut resumed = ts.connect().await;
        let token = match f.msg() {
            Some(Message::Session { token, .. }) => token,
            other => panic!("{other:?}"),
        };
        resumed
            .send(&Message::Resume {
                username: "carol",
                token,
            })
            .await
            .unwrap();
        assert!(matches!(
            recv_reply(&mut resumed).await.msg(),
            Some(Message::Session { .. })
        ));
        resumed.send(&Message::Ping { nonce: 9 }).await.unwrap();
        loop {
            let f = recv(&mut resumed).await;
            match f.msg() {
                Some(Message::Deliver { .. }) => {
                    panic!("the old identity's message was handed out")
                }
                Some(Message::Pong { nonce: 9 }) => break,
                _ => {}
            }
        }
        a.send(&Message::Ping { nonce: 3 }).await.unwrap();
        loop {
            let f = recv(&mut a).await;
            match f.msg() {
                Some(Message::Delivered { .. }) => panic!("a receipt for a message nobody read"),
                Some(Message::Pong { nonce: 3 }) => break,
                _ => {}
            }
        }
    });
}

//! What one account can do to others: fill their queue, pull them into rooms, drain their
//! one-time prekeys, flood the server with requests. Each is bounded, and the victim keeps
//! working.
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use host_server::auth::ratelimit::Rate;
use proto_core::{ErrorCode, Message, RoomChange};

async fn send_to(
    c: &mut host_server::client::Client,
    to: &str,
    id: u64,
) -> host_server::client::Frame {
    c.send(&Message::SendToUser {
        to,
        client_id: id,
        body: b"ciphertext",
    })
    .await
    .unwrap();
    recv_reply(c).await
}

fn accepted(f: &host_server::client::Frame) -> bool {
    matches!(f.msg(), Some(Message::Accepted { .. }))
}

#[test]
fn one_sender_cannot_fill_a_recipients_queue_for_everyone_else() {
    let ts = TestServer::start_with(|c| {
        c.recipient_quota = 8;
        c.sender_quota = 3;
    });
    run(async {
        let (mut mallory, _) = register(&ts, "mallory", 0).await;
        let (mut carol, _) = register(&ts, "carol", 0).await;
        let (_victim, _) = register(&ts, "victim", 0).await;
        for i in 0..3 {
            assert!(accepted(&send_to(&mut mallory, "victim", i).await));
        }
        expect_error(
            &send_to(&mut mallory, "victim", 3).await,
            ErrorCode::QUOTA_FULL,
        );
        // Everyone else still reaches the victim.
        for i in 0..3 {
            assert!(accepted(&send_to(&mut carol, "victim", i).await));
        }
    });
}

#[test]
fn sends_room_creation_and_invitations_are_rate_limited() {
    let ts = TestServer::start_with(|c| {
        let two = Rate {
            burst: 2,
            per_hour: 1,
        };
        c.send_rate = two;
        c.room_create_rate = two;
        c.invite_rate = two;
    });
    run(async {
        let (mut a, _) = register(&ts, "alice", 0).await;
        let (_b, _) = register(&ts, "bob", 0).await;
        let (_c, _) = register(&ts, "carol", 0).await;
        let (_d, _) = register(&ts, "dave", 0).await;
        assert!(accepted(&send_to(&mut a, "bob", 1).await));
        assert!(accepted(&send_to(&mut a, "bob", 2).await));
        expect_error(&send_to(&mut a, "bob", 3).await, ErrorCode::RATE_LIMITED);
        for (i, room) in ["r1", "r2", "r3"].into_iter().enumerate() {
            a.send(&Message::CreateRoom { room }).await.unwrap();
            let f = recv_reply(&mut a).await;
            if i < 2 {
                expect_ok(&f);
            } else {
                expect_error(&f, ErrorCode::RATE_LIMITED);
            }
        }
        for (i, username) in ["bob", "carol", "dave"].into_iter().enumerate() {
            a.send(&Message::Invite {
                room: "r1",
                username,
            })
            .await
            .unwrap();
            let f = recv_reply(&mut a).await;
            if i < 2 {
                expect_ok(&f);
            } else {
                expect_error(&f, ErrorCode::RATE_LIMITED);
            }
        }
    });
}

#[test]
fn an_invitation_is_not_a_membership_until_accepted() {
    let ts = TestServer::start();
    run(async {
        let (mut a, _) = register(&ts, "alice", 0).await;
        let (mut b, _) = register(&ts, "bob", 0).await;
        a.send(&Message::CreateRoom { room: "team" }).await.unwrap();
        expect_ok(&recv_reply(&mut a).await);
        a.send(&Message::Invite {
            room: "team",
            username: "bob",
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut a).await);
        a.send(&Message::Invite {
            room: "team",
            username: "bob",
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut a).await, ErrorCode::INVALID_INPUT);

        // Bob hears of the invitation, and only he: alice sees no membership change.
        let f = loop {
            let f = recv(&mut b).await;
            if !matches!(
                f.msg(),
                Some(Message::PrekeysLow { .. } | Message::KemPrekeysLow { .. })
            ) {
                break f;
            }
        };
        assert!(
            matches!(
                f.msg(),
                Some(Message::RoomChanged {
                    room: "team",
                    username: "alice",
                    change: RoomChange::Invited
                })
            ),
            "{:?}",
            f.msg()
        );
        // Not a member yet: the room is not his, he cannot post, members are only alice.
        b.send(&Message::ListRooms).await.unwrap();
        let f = recv_reply(&mut b).await;
        assert!(matches!(f.msg(), Some(Message::Rooms { rooms }) if rooms.is_empty()));
        b.send(&Message::SendToRoom {
            room: "team",
            client_id: 1,
            body: b"x",
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut b).await, ErrorCode::FORBIDDEN);
        a.send(&Message::ListMembers { room: "team" })
            .await
            .unwrap();
        let f = recv_reply(&mut a).await;
        let Some(Message::Members { members, .. }) = f.msg() else {
            panic!("{:?}", f.msg())
        };
        assert_eq!(members.iter().collect::<Vec<_>>(), ["alice"]);

        // He can see what waits for him, and decline it.
        b.send(&Message::ListInvitations).await.unwrap();
        let f = recv_reply(&mut b).await;
        let Some(Message::Invitations { rooms, from }) = f.msg() else {
            panic!("{:?}", f.msg())
        };
        assert_eq!(rooms.iter().collect::<Vec<_>>(), ["team"]);
        assert_eq!(from.iter().collect::<Vec<_>>(), ["alice"]);
        b.send(&Message::DeclineInvite { room: "team" })
            .await
            .unwrap();
        expect_ok(&recv_reply(&mut b).await);
        b.send(&Message::AcceptInvite { room: "team" })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut b).await, ErrorCode::NOT_FOUND);
        b.send(&Message::ListInvitations).await.unwrap();
        let f = recv_reply(&mut b).await;
        assert!(matches!(f.msg(), Some(Message::Invitations { rooms, .. }) if rooms.is_empty()));

        // Invited again and accepted: a member, and every member hears it.
        invite_accepted(&mut a, &mut b, "team", "bob").await;
        for c in [&mut a, &mut b] {
            loop {
                let f = recv(c).await;
                if let Some(Message::RoomChanged {
                    room,
                    username,
                    change,
                    ..
                }) = f.msg()
                {
                    assert_eq!(
                        (room, username, change),
                        ("team", "bob", RoomChange::Joined)
                    );
                    break;
                }
            }
        }
        b.send(&Message::ListRooms).await.unwrap();
        let f = recv_reply(&mut b).await;
        assert!(
            matches!(f.msg(), Some(Message::Rooms { rooms }) if rooms.iter().eq(["team"])),
            "{:?}",
            f.msg()
        );
    });
}

#[test]
fn many_invitations_cannot_bury_a_user() {
    let ts = TestServer::start_with(|c| c.max_pending_invitations = 2);
    run(async {
        let (mut a, _) = register(&ts, "alice", 0).await;
        let (_b, _) = register(&ts, "bob", 0).await;
        for (i, room) in ["r1", "r2", "r3"].into_iter().enumerate() {
            a.send(&Message::CreateRoom { room }).await.unwrap();
            expect_ok(&recv_reply(&mut a).await);
            a.send(&Message::Invite {
                room,
                username: "bob",
            })
            .await
            .unwrap();
            let f = recv_reply(&mut a).await;
            if i < 2 {
                expect_ok(&f);
            } else {
                expect_error(&f, ErrorCode::QUOTA_FULL);
            }
        }
    });
}

#[test]
fn fetching_bundles_cannot_drain_one_time_prekeys() {
    let ts = TestServer::start_with(|c| {
        c.prekey_handout_rate = Rate {
            burst: 3,
            per_hour: 1,
        };
        c.bundle_fetch_rate = Rate {
            burst: 5,
            per_hour: 1,
        };
    });
    run(async {
        let (mut a, _) = register(&ts, "alice", 0).await;
        let (_b, _) = register(&ts, "bob", 10).await;
        let mut with_prekey = 0;
        for _ in 0..5 {
            a.send(&Message::FetchBundle { username: "bob" })
                .await
                .unwrap();
            let f = recv_reply(&mut a).await;
            let Some(Message::Bundle { bundle }) = f.msg() else {
                panic!("{:?}", f.msg())
            };
            with_prekey += usize::from(bundle.one_time_prekey.is_some());
        }
        // Three handed out; the other bundles still work (X3DH without a one-time prekey).
        assert_eq!(with_prekey, 3);
        a.send(&Message::FetchBundle { username: "bob" })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut a).await, ErrorCode::RATE_LIMITED);
        let left: i64 = match &ts.database {
            #[cfg(feature = "postgres")]
            Some(db) => db
                .client()
                .query_one("SELECT COUNT(*) FROM device_prekeys", &[])
                .unwrap()
                .get(0),
            // SQLite (without the `postgres` feature there is never a test database).
            _ => rusqlite::Connection::open(ts.db_path())
                .unwrap()
                .query_row("SELECT COUNT(*) FROM device_prekeys", [], |r| r.get(0))
                .unwrap(),
        };
        assert_eq!(left, 7);
    });
}

#[test]
fn device_lists_have_their_own_budget_and_leave_the_bundle_budget_alone() {
    let ts = TestServer::start_with(|c| {
        c.device_list_rate = Rate {
            burst: 4,
            per_hour: 1,
        };
        c.bundle_fetch_rate = Rate {
            burst: 2,
            per_hour: 1,
        };
    });
    run(async {
        let (mut a, _) = register(&ts, "alice", 0).await;
        let (_b, _) = register(&ts, "bob", 10).await;
        for _ in 0..4 {
            a.send(&Message::FetchDevices { username: "bob" })
                .await
                .unwrap();
            assert!(matches!(
                recv_reply(&mut a).await.msg(),
                Some(Message::Devices { .. })
            ));
        }
        a.send(&Message::FetchDevices { username: "bob" })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut a).await, ErrorCode::RATE_LIMITED);
        // The bundle budget is untouched: both bundles still come.
        for _ in 0..2 {
            a.send(&Message::FetchBundle { username: "bob" })
                .await
                .unwrap();
            assert!(matches!(
                recv_reply(&mut a).await.msg(),
                Some(Message::Bundle { .. })
            ));
        }
    });
}

/// Pings every 200 ms until the server sends an error and closes, or `WAIT` passes; returns
/// whether it closed the connection.
async fn pinged_until_closed(c: &mut host_server::client::Client) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    let mut nonce = 0;
    while std::time::Instant::now() < deadline {
        nonce += 1;
        if c.send(&Message::Ping { nonce }).await.is_err() {
            return true;
        }
        match c.recv_timeout(core::time::Duration::from_millis(200)).await {
            Ok(f)
                if matches!(
                    f.msg(),
                    Some(Message::Error {
                        code: ErrorCode::BAD_STATE,
                        ..
                    })
                ) =>
            {
                return c.recv_timeout(WAIT).await.is_err();
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_connection_that_never_logs_in_is_closed_however_busy_it_keeps() {
    let ts = TestServer::start_with(|c| c.auth_deadline = core::time::Duration::from_secs(1));
    run(async {
        // Logged in: pings keep it open past the deadline.
        let (mut a, _) = register(&ts, "alice", 0).await;
        // Never logged in: pings do not.
        let mut idle = ts.connect().await;
        assert!(pinged_until_closed(&mut idle).await);
        a.send(&Message::Ping { nonce: 9 }).await.unwrap();
        assert!(matches!(
            recv_reply(&mut a).await.msg(),
            Some(Message::Pong { nonce: 9 })
        ));
    });
}

#[test]
fn the_last_slots_go_to_connections_that_log_in_at_once() {
    let ts = TestServer::start_with(|c| {
        c.max_connections = 4;
        c.reserved_for_authenticated = 2;
        c.reserved_login_deadline = core::time::Duration::from_secs(1);
    });
    run(async {
        let (_a, alice) = register(&ts, "alice", 0).await;
        // Two connections that never log in fill the unauthenticated share (4 − 2)...
        let mut idle = Vec::new();
        for nonce in 0..2 {
            let mut c = ts.connect().await;
            c.send(&Message::Ping { nonce }).await.unwrap();
            assert!(matches!(
                recv(&mut c).await.msg(),
                Some(Message::Pong { .. })
            ));
            idle.push(c);
        }
        // ...but alice's second device still gets in, because it resumes at once.
        let mut r = resume(&ts, &alice).await;
        r.send(&Message::Ping { nonce: 7 }).await.unwrap();
        assert!(matches!(
            recv_reply(&mut r).await.msg(),
            Some(Message::Pong { nonce: 7 })
        ));
        drop(r);
        // A connection in a reserved slot that does not log in is closed quickly.
        let deadline = std::time::Instant::now() + WAIT;
        while ts.server().active_connections() > 3 {
            assert!(std::time::Instant::now() < deadline);
            smol::Timer::after(core::time::Duration::from_millis(20)).await;
        }
        let mut squatter = ts.connect().await;
        assert!(pinged_until_closed(&mut squatter).await);
    });
}

#[test]
fn one_address_cannot_queue_password_hashes_without_bound() {
    // Real PBKDF2 cost, so that hashes overlap.
    let ts = TestServer::start_with(|c| c.pbkdf2_rounds = 600_000);
    run(async {
        let mut conns = Vec::new();
        for _ in 0..6 {
            conns.push(ts.connect().await);
        }
        let names: Vec<String> = (0..6).map(|i| format!("nobody{i}")).collect();
        for (c, username) in conns.iter_mut().zip(&names) {
            c.send(&Message::Login {
                username,
                password: "a long and wrong password",
            })
            .await
            .unwrap();
        }
        let mut busy = 0;
        for c in &mut conns {
            match recv_reply(c).await.msg() {
                Some(Message::Error {
                    code: ErrorCode::BUSY,
                    ..
                }) => busy += 1,
                Some(Message::TotpRequired) => {}
                other => panic!("{other:?}"),
            }
        }
        // At most two hashes wait or run for one address; the others are refused at once.
        assert!(busy >= 3, "only {busy} of 6 were refused");
    });
}

/// Link messages park up to `MAX_BODY` on the server for 10 minutes each: an account may leave
/// only a few (`link_rate`), whatever link ids it makes up.
#[test]
fn link_messages_an_account_can_park_are_bounded() {
    let ts = TestServer::start_with(|c| {
        c.link_rate = Rate {
            burst: 3,
            per_hour: 1,
        };
    });
    run(async {
        let (mut a, _) = register(&ts, "alice", 0).await;
        let big = vec![0x5a; proto_core::limits::MAX_BODY];
        for id in 0..3u8 {
            a.send(&Message::SendLink {
                link_id: &[id; 16],
                message: &big,
            })
            .await
            .unwrap();
            expect_ok(&recv_reply(&mut a).await);
        }
        a.send(&Message::SendLink {
            link_id: &[9; 16],
            message: b"one more",
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut a).await, ErrorCode::RATE_LIMITED);
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM links WHERE message <> $1", b""),
            3
        );
    });
}

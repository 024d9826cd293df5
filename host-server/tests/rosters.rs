//! Signed rosters on the wire (PROTOCOL.md §3.4 messages 48-50, §4.7): the server keeps each
//! room's chain, appends only a roster that follows it, hands it back byte for byte, and
//! applies the departures a roster records to its own membership.
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use host_server::auth::ratelimit::Rate;
use host_server::client::{Client, Frame};
use proto_core::limits::MAX_BODY;
use proto_core::{ErrorCode, IdentityKeyPair, Message, RoomChange};

fn key(u: &User) -> &IdentityKeyPair {
    &u.device.identity
}

async fn publish(c: &mut Client, room: &str, roster: &[u8]) -> Frame {
    c.send(&Message::PublishRoster { room, roster })
        .await
        .unwrap();
    recv_reply(c).await
}

async fn fetch(c: &mut Client, room: &str, version: u64) -> Frame {
    c.send(&Message::FetchRoster { room, version })
        .await
        .unwrap();
    recv_reply(c).await
}

/// Fetches `version` and checks it is exactly `bytes`.
async fn expect_stored(c: &mut Client, room: &str, version: u64, bytes: &[u8]) {
    let f = fetch(c, room, version).await;
    match f.msg() {
        Some(Message::Roster { room: r, roster }) => {
            assert_eq!(r, room);
            assert_eq!(roster, bytes, "version {version} is not what was published");
        }
        other => panic!("expected Roster, got {other:?}"),
    }
}

#[track_caller]
fn expect_refused(f: &Frame, code: ErrorCode, naming: &str) {
    expect_error(f, code);
    let text = error_text(f);
    assert!(text.contains(naming), "{text:?} does not name {naming}");
}

/// The next `RoomChanged` (other frames skipped).
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

/// Waits for this `RoomChanged`, skipping any other frame (and other changes).
async fn wait_change(c: &mut Client, room: &str, username: &str, change: RoomChange) {
    let want = (room.to_owned(), username.to_owned(), change);
    while room_change(c).await != want {}
}

/// Asserts no `RoomChanged` is waiting on `c`: everything queued before a ping's pong is read.
async fn no_change_pending(c: &mut Client) {
    c.send(&Message::Ping { nonce: 77 }).await.unwrap();
    loop {
        let f = recv(c).await;
        match f.msg() {
            Some(Message::Pong { nonce: 77 }) => return,
            Some(Message::RoomChanged { .. }) => panic!("unexpected {:?}", f.msg()),
            _ => {}
        }
    }
}

async fn members(c: &mut Client, room: &str) -> Result<(String, Vec<String>), ErrorCode> {
    c.send(&Message::ListMembers { room }).await.unwrap();
    let f = recv_reply(c).await;
    match f.msg() {
        Some(Message::Members { admin, members, .. }) => Ok((
            admin.to_owned(),
            members.iter().map(str::to_owned).collect(),
        )),
        _ => Err(error_code(&f).unwrap()),
    }
}

async fn create(c: &mut Client, room: &str) {
    c.send(&Message::CreateRoom { room }).await.unwrap();
    expect_ok(&recv_reply(c).await);
}

/// `inviter` invites `invitee`'s user into `room`, who accepts; both (and whoever is in
/// `others`) hear the `Joined`.
async fn join(
    inviter: &mut Client,
    invitee: &mut Client,
    others: &mut [&mut Client],
    room: &str,
    username: &str,
) {
    invite_accepted(inviter, invitee, room, username).await;
    wait_change(inviter, room, username, RoomChange::Joined).await;
    wait_change(invitee, room, username, RoomChange::Joined).await;
    for c in others.iter_mut() {
        wait_change(c, room, username, RoomChange::Joined).await;
    }
}

/// Alice creates `room` and publishes version 0 (herself, admin); Bob accepts her invitation
/// and she publishes version 1 adding him, which he hears of. Returns the chain so far.
async fn room_of_two(ts: &TestServer, room: &str) -> (Client, User, Client, User, Vec<Vec<u8>>) {
    let (mut a, alice) = register(ts, "alice", 0).await;
    let (mut b, bob) = register(ts, "bob", 0).await;
    create(&mut a, room).await;
    let v0 = roster(
        room,
        0,
        0,
        None,
        &[key(&alice)],
        &[("alice", key(&alice))],
        key(&alice),
    );
    expect_ok(&publish(&mut a, room, &v0).await);
    join(&mut a, &mut b, &mut [], room, "bob").await;
    let v1 = roster(
        room,
        1,
        0,
        Some(&v0),
        &[key(&alice)],
        &[("alice", key(&alice)), ("bob", key(&bob))],
        key(&alice),
    );
    expect_ok(&publish(&mut a, room, &v1).await);
    wait_change(&mut b, room, "alice", RoomChange::Roster).await;
    (a, alice, b, bob, vec![v0, v1])
}

#[test]
fn a_valid_chain_is_stored_and_fetched_byte_for_byte() {
    let mut ts = TestServer::start();
    run(async {
        let (mut a, alice) = register(&ts, "alice", 0).await;
        let (mut b, bob) = register(&ts, "bob", 0).await;
        create(&mut a, "team").await;
        // A room without a roster yet.
        expect_error(&fetch(&mut a, "team", 0).await, ErrorCode::NOT_FOUND);

        let v0 = roster(
            "team",
            0,
            0,
            None,
            &[key(&alice)],
            &[("alice", key(&alice))],
            key(&alice),
        );
        expect_ok(&publish(&mut a, "team", &v0).await);
        expect_stored(&mut a, "team", 0, &v0).await;
        expect_error(&fetch(&mut a, "team", 1).await, ErrorCode::NOT_FOUND);

        join(&mut a, &mut b, &mut [], "team", "bob").await;
        let v1 = roster(
            "team",
            1,
            0,
            Some(&v0),
            &[key(&alice)],
            &[("alice", key(&alice)), ("bob", key(&bob))],
            key(&alice),
        );
        expect_ok(&publish(&mut a, "team", &v1).await);
        // Bob hears of it, naming the publisher; the publisher does not.
        assert_eq!(
            room_change(&mut b).await,
            ("team".into(), "alice".into(), RoomChange::Roster)
        );
        no_change_pending(&mut a).await;
        // Every member reads the chain back exactly as published; nothing past the latest.
        for c in [&mut a, &mut b] {
            expect_stored(c, "team", 0, &v0).await;
            expect_stored(c, "team", 1, &v1).await;
            expect_error(&fetch(c, "team", 2).await, ErrorCode::NOT_FOUND);
            expect_error(&fetch(c, "team", u64::MAX).await, ErrorCode::NOT_FOUND);
        }
        // Both members stay members on the server.
        assert_eq!(
            members(&mut b, "team").await,
            Ok(("alice".into(), vec!["alice".into(), "bob".into()]))
        );
        // The chain survives a restart (it is stored, not held in memory).
        drop((a, b));
        ts.restart();
        let mut b = resume(&ts, &bob).await;
        expect_stored(&mut b, "team", 1, &v1).await;
    });
}

#[test]
fn non_members_may_neither_publish_nor_fetch() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice, mut b, bob, chain) = room_of_two(&ts, "team").await;
        let (mut c, carol) = register(&ts, "carol", 0).await;
        // A roster Alice really signed, relayed by Carol, who is not a member.
        let v2 = roster(
            "team",
            2,
            0,
            Some(&chain[1]),
            &[key(&alice)],
            &[
                ("alice", key(&alice)),
                ("bob", key(&bob)),
                ("carol", key(&carol)),
            ],
            key(&alice),
        );
        expect_error(&publish(&mut c, "team", &v2).await, ErrorCode::FORBIDDEN);
        expect_error(&fetch(&mut c, "team", 0).await, ErrorCode::FORBIDDEN);
        expect_error(&fetch(&mut c, "team", 1).await, ErrorCode::FORBIDDEN);
        // Nor does an invitation make her a member.
        a.send(&Message::Invite {
            room: "team",
            username: "carol",
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut a).await);
        wait_change(&mut c, "team", "alice", RoomChange::Invited).await;
        expect_error(&publish(&mut c, "team", &v2).await, ErrorCode::FORBIDDEN);
        expect_error(&fetch(&mut c, "team", 0).await, ErrorCode::FORBIDDEN);
        // Unknown rooms.
        expect_error(&publish(&mut c, "nowhere", &v2).await, ErrorCode::NOT_FOUND);
        expect_error(&fetch(&mut c, "nowhere", 0).await, ErrorCode::NOT_FOUND);
        // Not logged in.
        let mut anon = ts.connect().await;
        expect_error(&publish(&mut anon, "team", &v2).await, ErrorCode::BAD_STATE);
        expect_error(&fetch(&mut anon, "team", 0).await, ErrorCode::BAD_STATE);
        // Nothing was stored; the same roster from a member is.
        expect_error(&fetch(&mut a, "team", 2).await, ErrorCode::NOT_FOUND);
        expect_ok(&publish(&mut b, "team", &v2).await);
        expect_stored(&mut a, "team", 2, &v2).await;
    });
}

#[test]
fn invalid_rosters_are_refused_and_nothing_is_stored() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice) = register(&ts, "alice", 0).await;
        let (mut b, bob) = register(&ts, "bob", 0).await;
        let (_c, carol) = register(&ts, "carol", 0).await;
        create(&mut a, "team").await;
        let only_alice: &[(&str, &IdentityKeyPair)] = &[("alice", key(&alice))];

        // First rosters: signed by someone who is not their admin; not version 0; with a
        // signature that does not verify; for another room; not a roster at all; too large.
        let by_bob = roster(
            "team",
            0,
            0,
            None,
            &[key(&alice)],
            &[("alice", key(&alice)), ("bob", key(&bob))],
            key(&bob),
        );
        expect_refused(
            &publish(&mut a, "team", &by_bob).await,
            ErrorCode::INVALID_INPUT,
            "SignerNotAdmin",
        );
        let at_one = roster("team", 1, 0, None, &[key(&alice)], only_alice, key(&alice));
        expect_refused(
            &publish(&mut a, "team", &at_one).await,
            ErrorCode::INVALID_INPUT,
            "NotFirst",
        );
        let mut forged = roster("team", 0, 0, None, &[key(&alice)], only_alice, key(&alice));
        *forged.last_mut().unwrap() ^= 1;
        expect_refused(
            &publish(&mut a, "team", &forged).await,
            ErrorCode::INVALID_INPUT,
            "BadSignature",
        );
        let elsewhere = roster("other", 0, 0, None, &[key(&alice)], only_alice, key(&alice));
        expect_refused(
            &publish(&mut a, "team", &elsewhere).await,
            ErrorCode::INVALID_INPUT,
            "WrongRoom",
        );
        expect_refused(
            &publish(&mut a, "team", b"not a roster").await,
            ErrorCode::INVALID_INPUT,
            "Truncated",
        );
        let huge = vec![0u8; MAX_BODY + 1];
        expect_error(&publish(&mut a, "team", &huge).await, ErrorCode::TOO_LARGE);
        expect_error(&fetch(&mut a, "team", 0).await, ErrorCode::NOT_FOUND);

        let v0 = roster("team", 0, 0, None, &[key(&alice)], only_alice, key(&alice));
        expect_ok(&publish(&mut a, "team", &v0).await);
        join(&mut a, &mut b, &mut [], "team", "bob").await;

        // Next versions: signed by a member who is not an admin (adding someone); skipping a
        // version; naming another previous roster; with the wrong epoch; for another room.
        let both: &[(&str, &IdentityKeyPair)] = &[("alice", key(&alice)), ("bob", key(&bob))];
        let three: &[(&str, &IdentityKeyPair)] = &[
            ("alice", key(&alice)),
            ("bob", key(&bob)),
            ("carol", key(&carol)),
        ];
        let v1 = roster("team", 1, 0, Some(&v0), &[key(&alice)], both, key(&alice));
        let by_member = roster("team", 2, 0, Some(&v1), &[key(&alice)], three, key(&bob));
        let refused_v1 = [
            (
                roster("team", 1, 0, Some(&v0), &[key(&bob)], both, key(&bob)),
                "NotAuthorized",
            ),
            (
                roster(
                    "team",
                    1,
                    0,
                    Some(&by_bob),
                    &[key(&alice)],
                    both,
                    key(&alice),
                ),
                "WrongPrevious",
            ),
            (
                roster("team", 1, 1, Some(&v0), &[key(&alice)], both, key(&alice)),
                "WrongEpoch",
            ),
            (
                roster("other", 1, 0, Some(&v0), &[key(&alice)], both, key(&alice)),
                "WrongRoom",
            ),
        ];
        for (bytes, why) in &refused_v1 {
            expect_refused(
                &publish(&mut b, "team", bytes).await,
                ErrorCode::INVALID_INPUT,
                why,
            );
        }
        let skipping = roster("team", 2, 0, Some(&v0), &[key(&alice)], both, key(&alice));
        expect_error(
            &publish(&mut a, "team", &skipping).await,
            ErrorCode::CONFLICT,
        );
        expect_error(&fetch(&mut a, "team", 1).await, ErrorCode::NOT_FOUND);
        expect_stored(&mut a, "team", 0, &v0).await;

        // The valid version 1 is taken; a member who is not an admin still cannot add anyone.
        expect_ok(&publish(&mut a, "team", &v1).await);
        expect_refused(
            &publish(&mut b, "team", &by_member).await,
            ErrorCode::INVALID_INPUT,
            "NotAuthorized",
        );
        expect_error(&fetch(&mut b, "team", 2).await, ErrorCode::NOT_FOUND);
        expect_stored(&mut b, "team", 1, &v1).await;
    });
}

#[test]
fn only_the_rooms_admin_starts_its_chain() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice) = register(&ts, "alice", 0).await;
        let (mut b, bob) = register(&ts, "bob", 0).await;
        let (mut c, carol) = register(&ts, "carol", 0).await;
        create(&mut a, "team").await;
        join(&mut a, &mut b, &mut [], "team", "bob").await;
        join(&mut a, &mut c, &mut [&mut b], "team", "carol").await;
        let everyone = [
            ("alice", key(&alice)),
            ("bob", key(&bob)),
            ("carol", key(&carol)),
        ];
        // Bob, a member but not the room's admin (its creator), starts a chain as its admin...
        let by_bob = roster("team", 0, 0, None, &[key(&bob)], &everyone, key(&bob));
        expect_refused(
            &publish(&mut b, "team", &by_bob).await,
            ErrorCode::INVALID_INPUT,
            "SignerNotAdmin",
        );
        expect_error(&fetch(&mut b, "team", 0).await, ErrorCode::NOT_FOUND);
        // ...so he cannot go on to remove the others.
        let v1 = roster(
            "team",
            1,
            1,
            Some(&by_bob),
            &[key(&bob)],
            &[("bob", key(&bob))],
            key(&bob),
        );
        expect_refused(
            &publish(&mut b, "team", &v1).await,
            ErrorCode::INVALID_INPUT,
            "NotFirst",
        );
        assert_eq!(
            members(&mut c, "team").await,
            Ok((
                "alice".into(),
                vec!["alice".into(), "bob".into(), "carol".into()]
            ))
        );
        // The admin's first roster is taken, whoever relays it.
        let v0 = roster("team", 0, 0, None, &[key(&alice)], &everyone, key(&alice));
        expect_ok(&publish(&mut b, "team", &v0).await);
        expect_stored(&mut c, "team", 0, &v0).await;
        // When the creator has left, the admin the room passed to starts it.
        a.send(&Message::Leave { room: "team" }).await.unwrap();
        expect_ok(&recv_reply(&mut a).await);
        create(&mut a, "club").await;
        join(&mut a, &mut b, &mut [], "club", "bob").await;
        a.send(&Message::Leave { room: "club" }).await.unwrap();
        expect_ok(&recv_reply(&mut a).await);
        let by_alice = roster(
            "club",
            0,
            0,
            None,
            &[key(&alice)],
            &[("alice", key(&alice))],
            key(&alice),
        );
        expect_refused(
            &publish(&mut b, "club", &by_alice).await,
            ErrorCode::INVALID_INPUT,
            "SignerNotAdmin",
        );
        let by_bob = roster(
            "club",
            0,
            0,
            None,
            &[key(&bob)],
            &[("bob", key(&bob))],
            key(&bob),
        );
        expect_ok(&publish(&mut b, "club", &by_bob).await);
    });
}

#[test]
fn a_stale_version_conflicts() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice, mut b, bob, chain) = room_of_two(&ts, "team").await;
        let (mut c, carol) = register(&ts, "carol", 0).await;
        let (_d, dave) = register(&ts, "dave", 0).await;
        // Version 2 makes Bob an admin too.
        let both = [("alice", key(&alice)), ("bob", key(&bob))];
        let admins = [key(&alice), key(&bob)];
        let v2 = roster("team", 2, 0, Some(&chain[1]), &admins, &both, key(&alice));
        expect_ok(&publish(&mut a, "team", &v2).await);
        wait_change(&mut b, "team", "alice", RoomChange::Roster).await;
        join(&mut b, &mut c, &mut [&mut a], "team", "carol").await;

        // Bob adds Carol (version 3); Alice, not having followed, adds Dave as version 3 too.
        let with_carol = roster(
            "team",
            3,
            0,
            Some(&v2),
            &admins,
            &[
                ("alice", key(&alice)),
                ("bob", key(&bob)),
                ("carol", key(&carol)),
            ],
            key(&bob),
        );
        expect_ok(&publish(&mut b, "team", &with_carol).await);
        let with_dave = roster(
            "team",
            3,
            0,
            Some(&v2),
            &admins,
            &[
                ("alice", key(&alice)),
                ("bob", key(&bob)),
                ("dave", key(&dave)),
            ],
            key(&alice),
        );
        expect_refused(
            &publish(&mut a, "team", &with_dave).await,
            ErrorCode::CONFLICT,
            "fetch the latest",
        );
        // Publishing an old version again conflicts as well.
        expect_error(&publish(&mut a, "team", &v2).await, ErrorCode::CONFLICT);
        expect_error(
            &publish(&mut a, "team", &chain[0]).await,
            ErrorCode::CONFLICT,
        );
        // Bob's version 3 is the one kept.
        expect_stored(&mut a, "team", 3, &with_carol).await;
        expect_error(&fetch(&mut a, "team", 4).await, ErrorCode::NOT_FOUND);
    });
}

#[test]
fn a_removal_roster_removes_the_member_on_the_server() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice, mut b, bob, chain) = room_of_two(&ts, "team").await;
        let (mut c, carol) = register(&ts, "carol", 0).await;
        join(&mut a, &mut c, &mut [&mut b], "team", "carol").await;
        let v2 = roster(
            "team",
            2,
            0,
            Some(&chain[1]),
            &[key(&alice)],
            &[
                ("alice", key(&alice)),
                ("bob", key(&bob)),
                ("carol", key(&carol)),
            ],
            key(&alice),
        );
        expect_ok(&publish(&mut a, "team", &v2).await);
        wait_change(&mut b, "team", "alice", RoomChange::Roster).await;
        wait_change(&mut c, "team", "alice", RoomChange::Roster).await;

        // Alice removes Carol: a new epoch.
        let v3 = roster(
            "team",
            3,
            1,
            Some(&v2),
            &[key(&alice)],
            &[("alice", key(&alice)), ("bob", key(&bob))],
            key(&alice),
        );
        expect_ok(&publish(&mut a, "team", &v3).await);
        // Carol is told she was removed, as by `Remove`; Bob hears that, then of the roster.
        assert_eq!(
            room_change(&mut c).await,
            ("team".into(), "carol".into(), RoomChange::Removed)
        );
        assert_eq!(
            room_change(&mut b).await,
            ("team".into(), "carol".into(), RoomChange::Removed)
        );
        assert_eq!(
            room_change(&mut b).await,
            ("team".into(), "alice".into(), RoomChange::Roster)
        );
        // Alice hears of the removal only.
        assert_eq!(
            room_change(&mut a).await,
            ("team".into(), "carol".into(), RoomChange::Removed)
        );
        no_change_pending(&mut a).await;
        no_change_pending(&mut c).await;
        // Carol is no member on the server any more.
        assert_eq!(members(&mut c, "team").await, Err(ErrorCode::FORBIDDEN));
        c.send(&Message::SendToRoom {
            room: "team",
            client_id: 1,
            body: b"still here?",
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut c).await, ErrorCode::FORBIDDEN);
        expect_error(&fetch(&mut c, "team", 3).await, ErrorCode::FORBIDDEN);
        assert_eq!(
            members(&mut b, "team").await,
            Ok(("alice".into(), vec!["alice".into(), "bob".into()]))
        );
        expect_stored(&mut b, "team", 3, &v3).await;
    });
}

#[test]
fn a_roster_removing_the_servers_admin_hands_the_room_over() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice, mut b, bob, chain) = room_of_two(&ts, "team").await;
        let (mut c, carol) = register(&ts, "carol", 0).await;
        join(&mut a, &mut c, &mut [&mut b], "team", "carol").await;
        // Alice makes Bob the roster's admin in her place; Bob then removes her. The server's
        // admin (Alice) goes, and the longest-standing member (Bob) takes over, as on `Leave`.
        let everyone = [
            ("alice", key(&alice)),
            ("bob", key(&bob)),
            ("carol", key(&carol)),
        ];
        let v2 = roster(
            "team",
            2,
            0,
            Some(&chain[1]),
            &[key(&alice), key(&bob)],
            &everyone,
            key(&alice),
        );
        expect_ok(&publish(&mut a, "team", &v2).await);
        let v3 = roster(
            "team",
            3,
            1,
            Some(&v2),
            &[key(&bob)],
            &[("bob", key(&bob)), ("carol", key(&carol))],
            key(&bob),
        );
        expect_ok(&publish(&mut b, "team", &v3).await);
        wait_change(&mut a, "team", "alice", RoomChange::Removed).await;
        wait_change(&mut c, "team", "alice", RoomChange::Removed).await;
        wait_change(&mut c, "team", "bob", RoomChange::Roster).await;
        assert_eq!(
            members(&mut c, "team").await,
            Ok(("bob".into(), vec!["bob".into(), "carol".into()]))
        );
        assert_eq!(members(&mut a, "team").await, Err(ErrorCode::FORBIDDEN));
    });
}

#[test]
fn a_leave_roster_signed_by_the_leaver_makes_them_leave() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice, mut b, bob, chain) = room_of_two(&ts, "team").await;
        let (mut c, carol) = register(&ts, "carol", 0).await;
        join(&mut a, &mut c, &mut [&mut b], "team", "carol").await;
        let v2 = roster(
            "team",
            2,
            0,
            Some(&chain[1]),
            &[key(&alice)],
            &[
                ("alice", key(&alice)),
                ("bob", key(&bob)),
                ("carol", key(&carol)),
            ],
            key(&alice),
        );
        expect_ok(&publish(&mut a, "team", &v2).await);
        wait_change(&mut b, "team", "alice", RoomChange::Roster).await;
        wait_change(&mut c, "team", "alice", RoomChange::Roster).await;

        // Bob, a member, leaves by signing the roster without himself.
        let v3 = roster(
            "team",
            3,
            1,
            Some(&v2),
            &[key(&alice)],
            &[("alice", key(&alice)), ("carol", key(&carol))],
            key(&bob),
        );
        expect_ok(&publish(&mut b, "team", &v3).await);
        for other in [&mut a, &mut c] {
            assert_eq!(
                room_change(other).await,
                ("team".into(), "bob".into(), RoomChange::Left)
            );
            assert_eq!(
                room_change(other).await,
                ("team".into(), "bob".into(), RoomChange::Roster)
            );
        }
        // As with `Leave`, the leaver is not told.
        no_change_pending(&mut b).await;
        assert_eq!(members(&mut b, "team").await, Err(ErrorCode::FORBIDDEN));
        expect_error(&fetch(&mut b, "team", 3).await, ErrorCode::FORBIDDEN);

        // Alice, the only admin, leaves: she signs as admin and Carol becomes the roster's
        // admin; the server hands its admin role to Carol as on `Leave`.
        let v4 = roster(
            "team",
            4,
            2,
            Some(&v3),
            &[key(&carol)],
            &[("carol", key(&carol))],
            key(&alice),
        );
        expect_ok(&publish(&mut a, "team", &v4).await);
        assert_eq!(
            room_change(&mut c).await,
            ("team".into(), "alice".into(), RoomChange::Left)
        );
        assert_eq!(
            room_change(&mut c).await,
            ("team".into(), "alice".into(), RoomChange::Roster)
        );
        assert_eq!(
            members(&mut c, "team").await,
            Ok(("carol".into(), vec!["carol".into()]))
        );
        assert_eq!(members(&mut a, "team").await, Err(ErrorCode::FORBIDDEN));
        expect_stored(&mut c, "team", 4, &v4).await;
    });
}

#[test]
fn an_offline_member_gets_the_roster_notice_at_next_login() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice, b, bob, chain) = room_of_two(&ts, "team").await;
        drop(b);
        // Wait until the server has seen Bob go (a push to a connection still closing is lost
        // with it).
        let deadline = std::time::Instant::now() + WAIT;
        while ts.server().active_connections() > 1 {
            assert!(std::time::Instant::now() < deadline);
            smol::Timer::after(core::time::Duration::from_millis(10)).await;
        }
        let v2 = roster(
            "team",
            2,
            0,
            Some(&chain[1]),
            &[key(&alice), key(&bob)],
            &[("alice", key(&alice)), ("bob", key(&bob))],
            key(&alice),
        );
        expect_ok(&publish(&mut a, "team", &v2).await);
        let mut b = resume(&ts, &bob).await;
        assert_eq!(
            room_change(&mut b).await,
            ("team".into(), "alice".into(), RoomChange::Roster)
        );
        expect_stored(&mut b, "team", 2, &v2).await;
    });
}

#[test]
fn rosters_count_against_the_invitation_rate() {
    let ts = TestServer::start_with(|c| {
        c.invite_rate = Rate {
            burst: 2,
            per_hour: 1,
        };
    });
    run(async {
        let (mut a, alice) = register(&ts, "alice", 0).await;
        let (mut b, _bob) = register(&ts, "bob", 0).await;
        create(&mut a, "team").await;
        let v0 = roster(
            "team",
            0,
            0,
            None,
            &[key(&alice)],
            &[("alice", key(&alice))],
            key(&alice),
        );
        expect_ok(&publish(&mut a, "team", &v0).await);
        join(&mut a, &mut b, &mut [], "team", "bob").await;
        // The roster and the invitation took the two tokens: the next publish waits.
        expect_error(&publish(&mut a, "team", &v0).await, ErrorCode::RATE_LIMITED);
        // An hour later a token is back and the roster is judged again (a stale version).
        ts.advance(3600);
        expect_error(&publish(&mut a, "team", &v0).await, ErrorCode::CONFLICT);
    });
}

//! Two `sealroom-server` nodes on one PostgreSQL database, as behind a load balancer: alice on
//! node A, bob on node B. Live messages cross between the nodes both ways and in a room; then
//! node A is killed with SIGKILL in the middle of a stream of alice's sends, alice resumes her
//! session on node B and finishes, and every message either node acknowledged (`Accepted`)
//! reaches bob exactly once. Also: failed logins counted on one node lock the account on the
//! other, and a signed roster published on one node reaches (and removes) members on the
//! other. Needs PostgreSQL (run under `ci/with-postgres`); skipped with a note otherwise.
// Only with PostgreSQL support (the `postgres` feature, on by default).
#![cfg(feature = "postgres")]
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use host_server::client::Client;
use proto_core::{ErrorCode, Key32, Message, RoomChange};

/// Direct messages alice sends in the stream that node A dies in.
const SENDS: u64 = 400;
/// Accepted sends before node A is killed.
const KILL_AFTER: usize = 120;
/// Sends in flight at once.
const WINDOW: usize = 32;

/// The next `Deliver`, skipping anything else; panics after `WAIT`.
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

/// Sends `body` to `to` and waits for its `Accepted`.
async fn send_accepted(c: &mut Client, to: &str, client_id: u64, body: &[u8]) -> u64 {
    c.send(&Message::SendToUser {
        to,
        client_id,
        body,
    })
    .await
    .unwrap();
    loop {
        let f = recv(c).await;
        match f.msg() {
            Some(Message::Accepted { server_id, .. }) => return server_id,
            Some(Message::Error { .. }) => panic!("{:?}", f.msg()),
            _ => {}
        }
    }
}

async fn resume_on(node: &Proc, username: &str, token: [u8; 32]) -> Client {
    let mut c = Client::connect(node.addr, &node.fingerprint).await.unwrap();
    c.send(&Message::Resume {
        username,
        token: Key32(token),
    })
    .await
    .unwrap();
    let f = recv(&mut c).await;
    assert!(
        matches!(f.msg(), Some(Message::Session { .. })),
        "{:?}",
        f.msg()
    );
    c
}

/// Bob on node B, on a thread of his own: acknowledges every direct message and records
/// `(server id, body)` until told to stop.
fn bob_receives(
    node_addr: core::net::SocketAddr,
    fingerprint: String,
    token: [u8; 32],
    stop: Arc<Mutex<bool>>,
) -> std::thread::JoinHandle<Vec<(u64, String)>> {
    std::thread::spawn(move || {
        run(async move {
            let mut b = Client::connect(node_addr, &fingerprint).await.unwrap();
            b.send(&Message::Resume {
                username: "bob",
                token: Key32(token),
            })
            .await
            .unwrap();
            let mut got = Vec::new();
            // Bounded: the test ends within minutes or fails.
            let deadline = Instant::now() + WAIT * 6;
            while Instant::now() < deadline && !*stop.lock().unwrap() {
                let Ok(f) = b.recv_timeout(core::time::Duration::from_millis(200)).await else {
                    continue;
                };
                if let Some(Message::Deliver {
                    server_id,
                    body,
                    room: None,
                    ..
                }) = f.msg()
                {
                    got.push((server_id, String::from_utf8_lossy(body).into_owned()));
                    b.send(&Message::Ack { server_id }).await.unwrap();
                }
            }
            got
        })
    })
}

#[test]
fn two_nodes_deliver_across_and_survive_a_sigkill() {
    let Some(_) = require_postgres("two_nodes_deliver_across_and_survive_a_sigkill") else {
        return;
    };
    let database = TestDatabase::create().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node_a = spawn_server(dir_a.path(), Some(&database));
    let node_b = spawn_server(dir_b.path(), Some(&database));

    // Live, both ways, across the nodes; then a room.
    let (alice_token, bob_token) = run(async {
        let (mut a, alice_token) = register_real(&node_a, "alice").await;
        let (mut b, bob_token) = register_real(&node_b, "bob").await;
        let id = send_accepted(&mut a, "bob", 1, b"hello from node A").await;
        let (sid, from, room, body) = next_deliver(&mut b).await;
        assert_eq!(
            (sid, from.as_str(), room, body.as_slice()),
            (id, "alice", None, &b"hello from node A"[..])
        );
        b.send(&Message::Ack { server_id: sid }).await.unwrap();
        let id = send_accepted(&mut b, "alice", 1, b"hello from node B").await;
        let (sid, from, _, body) = next_deliver(&mut a).await;
        assert_eq!(
            (sid, from.as_str(), body.as_slice()),
            (id, "bob", &b"hello from node B"[..])
        );
        a.send(&Message::Ack { server_id: sid }).await.unwrap();

        // The room: created on A, bob invited from A and accepting on B, alice told on A.
        a.send(&Message::CreateRoom { room: "team" }).await.unwrap();
        expect_ok(&recv_reply(&mut a).await);
        invite_accepted(&mut a, &mut b, "team", "bob").await;
        loop {
            let f = recv(&mut a).await;
            if let Some(Message::RoomChanged {
                room: "team",
                username: "bob",
                change: RoomChange::Joined,
            }) = f.msg()
            {
                break;
            }
        }
        a.send(&Message::SendToRoom {
            room: "team",
            client_id: 2,
            body: b"room from A",
        })
        .await
        .unwrap();
        let (sid, from, room, body) = next_deliver(&mut b).await;
        assert_eq!(
            (from.as_str(), room.as_deref(), body.as_slice()),
            ("alice", Some("team"), &b"room from A"[..])
        );
        b.send(&Message::Ack { server_id: sid }).await.unwrap();
        b.send(&Message::SendToRoom {
            room: "team",
            client_id: 3,
            body: b"room from B",
        })
        .await
        .unwrap();
        let (sid, from, room, body) = next_deliver(&mut a).await;
        assert_eq!(
            (from.as_str(), room.as_deref(), body.as_slice()),
            ("bob", Some("team"), &b"room from B"[..])
        );
        a.send(&Message::Ack { server_id: sid }).await.unwrap();
        (alice_token, bob_token)
    });

    // Bob listens on B while alice streams to him through A, which dies mid-stream.
    let stop = Arc::new(Mutex::new(false));
    let bob = bob_receives(
        node_b.addr,
        node_b.fingerprint.clone(),
        bob_token,
        stop.clone(),
    );
    let mut accepted: BTreeMap<u64, u64> = BTreeMap::new();
    let mut node_a = Some(node_a);
    run(async {
        let mut a = resume_on(node_a.as_ref().unwrap(), "alice", alice_token).await;
        let mut next = 0u64;
        let mut outstanding = 0usize;
        loop {
            while outstanding < WINDOW && next < SENDS {
                let body = format!("msg {next:05}");
                let msg = Message::SendToUser {
                    to: "bob",
                    client_id: next,
                    body: body.as_bytes(),
                };
                if a.send(&msg).await.is_err() {
                    break;
                }
                next += 1;
                outstanding += 1;
            }
            let Ok(f) = a.recv_timeout(WAIT).await else {
                break;
            };
            if let Some(Message::Accepted {
                client_id,
                server_id,
            }) = f.msg()
            {
                accepted.insert(client_id, server_id);
                outstanding -= 1;
            }
            if accepted.len() >= KILL_AFTER {
                let mut p = node_a.take().unwrap();
                p.child.kill().unwrap(); // SIGKILL
                p.child.wait().unwrap();
                break;
            }
        }
    });
    assert!(node_a.is_none(), "node A was never killed");
    let before_kill = accepted.len();

    // Alice resumes the same session on node B and sends what was never acknowledged (a
    // client resends those; some may have been committed already and arrive twice, under two
    // server ids, which clients drop by content; what must hold is for acknowledged ones).
    run(async {
        let mut a = resume_on(&node_b, "alice", alice_token).await;
        for client_id in 0..SENDS {
            if accepted.contains_key(&client_id) {
                continue;
            }
            let body = format!("msg {client_id:05}");
            let id = send_accepted(&mut a, "bob", client_id, body.as_bytes()).await;
            accepted.insert(client_id, id);
        }
        // And the room still works from B.
        a.send(&Message::SendToRoom {
            room: "team",
            client_id: 9,
            body: b"room after the kill",
        })
        .await
        .unwrap();
    });
    assert_eq!(accepted.len() as u64, SENDS);

    // Wait (bounded) until bob has every accepted id, then stop him.
    let wanted: BTreeSet<u64> = accepted.values().copied().collect();
    let deadline = Instant::now() + WAIT * 3;
    let count_all = || {
        let mut c = database.client();
        let rows = c
            .query(
                "SELECT COUNT(*) FROM messages m JOIN accounts a ON a.id = m.recipient_id \
                 WHERE a.username = 'bob'",
                &[],
            )
            .unwrap();
        rows[0].get::<_, i64>(0)
    };
    while count_all() > 0 && Instant::now() < deadline {
        std::thread::sleep(core::time::Duration::from_millis(100));
    }
    *stop.lock().unwrap() = true;
    let got = bob.join().unwrap();

    let ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a message was delivered twice");
    for (client_id, server_id) in &accepted {
        assert!(
            got.contains(&(*server_id, format!("msg {client_id:05}"))),
            "accepted message {client_id} (server id {server_id}) never reached bob"
        );
    }
    assert!(wanted.is_subset(&unique));
    eprintln!(
        "accepted on A before SIGKILL: {before_kill}; accepted in all: {}; delivered to bob: {}",
        accepted.len(),
        got.len()
    );
}

#[test]
fn failed_logins_on_one_node_count_on_the_other() {
    let Some(_) = require_postgres("failed_logins_on_one_node_count_on_the_other") else {
        return;
    };
    let database = TestDatabase::create().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Two in-process nodes on the same database and the same (manual) time, three failures
    // an hour per account name: the fourth attempt is refused until the hour has passed.
    let node = |dir: &std::path::Path| {
        let mut c = test_config(dir);
        c.database = Some(database.params.clone());
        c.account_policy = host_server::auth::ratelimit::Policy {
            max_per_hour: 3,
            free: 3,
            base_delay: 1,
            max_delay: 1,
        };
        let (clock, _) = host_server::clock::Clock::manual(T0);
        host_server::server::Server::start(c, clock).unwrap()
    };
    let (node_a, node_b) = (node(dir_a.path()), node(dir_b.path()));
    let attempt = |server: &host_server::server::Server| {
        let (addr, fingerprint) = (server.local_addr, server.identity.fingerprint.clone());
        run(async move {
            let mut c = Client::connect(addr, &fingerprint).await.unwrap();
            c.send(&Message::Login {
                username: "carol",
                password: "wrong password, wrong password",
            })
            .await
            .unwrap();
            let f = recv_reply(&mut c).await;
            if !matches!(f.msg(), Some(Message::TotpRequired)) {
                return error_code(&f);
            }
            c.send(&Message::TotpCode { code: "000000" }).await.unwrap();
            error_code(&recv_reply(&mut c).await)
        })
    };
    for server in [&node_a, &node_b, &node_a] {
        assert_eq!(attempt(server), Some(ErrorCode::AUTH_FAILED));
    }
    // Node B saw one failure; the account is locked there all the same.
    assert_eq!(attempt(&node_b), Some(ErrorCode::RATE_LIMITED));
    node_a.shutdown();
    node_b.shutdown();
}

#[test]
fn one_time_prekeys_are_handed_out_at_one_pace_across_nodes() {
    if require_postgres("one_time_prekeys_are_handed_out_at_one_pace_across_nodes").is_none() {
        return;
    }
    let rates = |c: &mut host_server::config::ServerConfig| {
        c.prekey_handout_rate = host_server::auth::ratelimit::Rate {
            burst: 3,
            per_hour: 1,
        };
    };
    let node_a = TestServer::start_with(rates);
    // Node B: the same database and the same (manual) time, a data folder of its own.
    let dir_b = tempfile::tempdir().unwrap();
    let mut config_b = node_a.config.clone();
    config_b.data_dir = dir_b.path().to_path_buf();
    config_b.web_root = dir_b.path().join("no-web-root");
    let node_b = host_server::server::Server::start(
        config_b,
        host_server::clock::Clock::Manual(node_a.clock.clone()),
    )
    .unwrap();
    run(async {
        let (mut on_a, alice) = register(&node_a, "alice", 0).await;
        let (_bob, _) = register(&node_a, "bob", 10).await;
        let mut on_b = Client::connect(node_b.local_addr, &node_b.identity.fingerprint)
            .await
            .unwrap();
        on_b.send(&Message::Resume {
            username: "alice",
            token: Key32(alice.token),
        })
        .await
        .unwrap();
        assert!(matches!(
            recv(&mut on_b).await.msg(),
            Some(Message::Session { .. })
        ));
        let mut with_prekey = 0;
        for i in 0..6 {
            let c = if i % 2 == 0 { &mut on_a } else { &mut on_b };
            c.send(&Message::FetchBundle { username: "bob" })
                .await
                .unwrap();
            let f = recv_reply(c).await;
            let Some(Message::Bundle { bundle }) = f.msg() else {
                panic!("{:?}", f.msg())
            };
            with_prekey += usize::from(bundle.one_time_prekey.is_some());
        }
        // Three in all, not three per node.
        assert_eq!(with_prekey, 3);
    });
    node_b.shutdown();
}

#[test]
fn a_password_change_on_one_node_ends_the_account_s_connections_on_the_other() {
    let Some(_) = require_postgres(
        "a_password_change_on_one_node_ends_the_account_s_connections_on_the_other",
    ) else {
        return;
    };
    let database = TestDatabase::create().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node_a = spawn_server(dir_a.path(), Some(&database));
    let node_b = spawn_server(dir_b.path(), Some(&database));
    run(async {
        let (mut a, token, secret) = register_real_with_secret(&node_a, "alice").await;
        // The same account, live on node B too (a second device, or whoever took the token).
        let mut b = resume_on(&node_b, "alice", token).await;
        let code = host_server::auth::totp::code_at(&secret, now() + 30);
        a.send(&Message::ChangePassword {
            current: PASSWORD,
            new: "a brand new passphrase for alice 9",
            code: &code,
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut a).await);
        // Node B hears the revocation and ends its connection: reads soon fail (EOF or reset),
        // rather than waiting for the next Resume.
        let deadline = Instant::now() + core::time::Duration::from_secs(15);
        loop {
            assert!(
                Instant::now() < deadline,
                "node B kept alice's connection open"
            );
            match b.recv_timeout(core::time::Duration::from_secs(1)).await {
                // Pushes (PrekeysLow, Ping) may come first; no reply is expected.
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
        // The connection that changed the password is the one kept, on node A (which hears
        // its own revocation on the channel too, and must not act on it).
        a.send(&Message::ListRooms).await.unwrap();
        assert!(
            matches!(recv_reply(&mut a).await.msg(), Some(Message::Rooms { .. })),
            "node A ended the connection that changed the password"
        );
    });
}

/// Revoking one device on node A ends that device's connection on node B, and only that one:
/// the account's other device, also live on node B, stays connected (a per-device notice on
/// the wake bus, not the account-wide revocation).
#[test]
fn revoking_a_device_on_one_node_ends_only_that_device_on_the_other() {
    let Some(_) =
        require_postgres("revoking_a_device_on_one_node_ends_only_that_device_on_the_other")
    else {
        return;
    };
    let database = TestDatabase::create().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node_a = spawn_server(dir_a.path(), Some(&database));
    let node_b = spawn_server(dir_b.path(), Some(&database));
    run(async {
        let (mut a, token, secret) = register_real_with_secret(&node_a, "alice").await;
        let mut b1 = resume_on(&node_b, "alice", token).await;
        // A second device, linked on node B.
        let mut phone = Client::connect(node_b.addr, &node_b.fingerprint)
            .await
            .unwrap();
        phone
            .send(&Message::LoginDevice {
                username: "alice",
                password: PASSWORD,
                device: None,
            })
            .await
            .unwrap();
        assert!(matches!(
            recv_reply(&mut phone).await.msg(),
            Some(Message::TotpRequired)
        ));
        let code = host_server::auth::totp::code_at(&secret, now() + 30);
        phone
            .send(&Message::TotpCode { code: &code })
            .await
            .unwrap();
        assert!(matches!(
            recv_reply(&mut phone).await.msg(),
            Some(Message::Session { .. })
        ));
        phone
            .send(&Message::AddDevice { name: "phone" })
            .await
            .unwrap();
        let device = match recv_reply(&mut phone).await.msg() {
            Some(Message::DeviceAdded { device }) => device,
            other => panic!("expected DeviceAdded, got {other:?}"),
        };

        a.send(&Message::RevokeDevice { device }).await.unwrap();
        expect_ok(&recv_reply(&mut a).await);
        let deadline = Instant::now() + core::time::Duration::from_secs(15);
        loop {
            assert!(
                Instant::now() < deadline,
                "node B kept the revoked device's connection open"
            );
            match phone.recv_timeout(core::time::Duration::from_secs(1)).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
        // Device 1's connection on node B is still there.
        b1.send(&Message::ListRooms).await.unwrap();
        assert!(
            matches!(recv_reply(&mut b1).await.msg(), Some(Message::Rooms { .. })),
            "node B ended the account's other device too"
        );
    });
}

/// The next `RoomChanged` on `c`, skipping anything else; panics after `WAIT`.
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

/// Waits for this `RoomChanged` on `c`, skipping anything else.
async fn wait_change(c: &mut Client, room: &str, username: &str, change: RoomChange) {
    let want = (room.to_owned(), username.to_owned(), change);
    while room_change(c).await != want {}
}

/// Rosters published through node A: members connected to node B hear of each new version
/// and read it there, and a member the roster removes is removed for node B too.
#[test]
fn a_roster_published_on_one_node_reaches_members_on_the_other() {
    let Some(_) = require_postgres("a_roster_published_on_one_node_reaches_members_on_the_other")
    else {
        return;
    };
    let database = TestDatabase::create().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node_a = spawn_server(dir_a.path(), Some(&database));
    let node_b = spawn_server(dir_b.path(), Some(&database));
    run(async {
        let (alice, bob, carol) = (Device::new(0), Device::new(0), Device::new(0));
        let (mut a, _, _) = register_real_with_device(&node_a, "alice", &alice).await;
        let (mut b, _, _) = register_real_with_device(&node_b, "bob", &bob).await;
        let (mut c, _, _) = register_real_with_device(&node_b, "carol", &carol).await;
        let (ka, kb, kc) = (&alice.identity, &bob.identity, &carol.identity);

        a.send(&Message::CreateRoom { room: "team" }).await.unwrap();
        expect_ok(&recv_reply(&mut a).await);
        let v0 = roster("team", 0, 0, None, &[ka], &[("alice", ka)], ka);
        a.send(&Message::PublishRoster {
            room: "team",
            roster: &v0,
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut a).await);
        invite_accepted(&mut a, &mut b, "team", "bob").await;
        invite_accepted(&mut a, &mut c, "team", "carol").await;

        let everyone = [("alice", ka), ("bob", kb), ("carol", kc)];
        let v1 = roster("team", 1, 0, Some(&v0), &[ka], &everyone, ka);
        a.send(&Message::PublishRoster {
            room: "team",
            roster: &v1,
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut a).await);
        wait_change(&mut b, "team", "alice", RoomChange::Roster).await;
        wait_change(&mut c, "team", "alice", RoomChange::Roster).await;
        b.send(&Message::FetchRoster {
            room: "team",
            version: 1,
        })
        .await
        .unwrap();
        let f = recv_reply(&mut b).await;
        let Some(Message::Roster { roster: got, .. }) = f.msg() else {
            panic!("{:?}", f.msg())
        };
        assert_eq!(got, v1.as_slice());

        // Alice removes Carol through node A; Carol, on node B, is told and is out.
        let v2 = roster(
            "team",
            2,
            1,
            Some(&v1),
            &[ka],
            &[("alice", ka), ("bob", kb)],
            ka,
        );
        a.send(&Message::PublishRoster {
            room: "team",
            roster: &v2,
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut a).await);
        assert_eq!(
            room_change(&mut c).await,
            ("team".into(), "carol".into(), RoomChange::Removed)
        );
        wait_change(&mut b, "team", "carol", RoomChange::Removed).await;
        assert_eq!(
            room_change(&mut b).await,
            ("team".into(), "alice".into(), RoomChange::Roster)
        );
        c.send(&Message::ListMembers { room: "team" })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut c).await, ErrorCode::FORBIDDEN);
    });
}

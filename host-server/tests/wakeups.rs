//! A lost wake-up delays a message; it never loses one. Under PostgreSQL, messages are
//! committed straight into the database with no NOTIFY at all (as by a node that died between
//! its commit and its announcement); the recipient's node still delivers them: after its
//! listening session is cut and comes back, and on its periodic resync. Needs PostgreSQL (run
//! under `ci/with-postgres`); skipped with a note otherwise.
// Only with PostgreSQL support (the `postgres` feature, on by default).
#![cfg(feature = "postgres")]
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use core::time::Duration;

use common::*;
use host_server::client::Client;
use host_server::store::{AccountStore as _, NewMessage, PgStore, QueueStore as _, Store as _};
use proto_core::Message;

/// Commits a message from alice to bob the way another node would, without announcing it.
fn commit_silently(params: &str, body: &[u8]) -> u64 {
    let mut store = PgStore::open(params).unwrap();
    let bob = store.account_by_username("bob").unwrap().unwrap().id;
    let alice = store.account_by_username("alice").unwrap().unwrap().id;
    store.begin_batch().unwrap();
    let id = store
        .insert_message(&NewMessage {
            recipient: Some(bob),
            room: None,
            sender_id: alice,
            sender: "alice".into(),
            sender_device: 1,
            sent_at: T0,
            expires_at: T0 + 3600,
            body: Vec::new(),
            copies: vec![(1, body.to_vec())],
        })
        .unwrap();
    store.commit_batch().unwrap();
    id
}

/// Lets bob's delivery task finish reading his (empty) queue and wait for a wake-up, so that
/// only the mechanism under test can deliver what comes next. (Cutting this short could only
/// make a test pass that should fail, never the reverse.)
async fn settle(b: &mut Client) {
    b.send(&Message::Ping { nonce: 1 }).await.unwrap();
    while !matches!(recv(b).await.msg(), Some(Message::Pong { nonce: 1 })) {}
    smol::Timer::after(Duration::from_millis(500)).await;
}

async fn delivered(c: &mut Client) -> (u64, Vec<u8>) {
    loop {
        let f = recv(c).await;
        if let Some(Message::Deliver {
            server_id, body, ..
        }) = f.msg()
        {
            return (server_id, body.to_vec());
        }
    }
}

#[test]
fn a_node_that_lost_its_listening_session_rereads_every_queue() {
    if require_postgres("a_node_that_lost_its_listening_session_rereads_every_queue").is_none() {
        return;
    }
    // No periodic resync during the test: only the reconnect can deliver.
    let ts = TestServer::start_with(|c| c.resync_interval = Duration::from_secs(24 * 3600));
    let params = ts.database.as_ref().unwrap().params.clone();
    run(async {
        let (_a, _) = register(&ts, "alice", 0).await;
        let (mut b, _) = register(&ts, "bob", 0).await;
        settle(&mut b).await;

        let id = commit_silently(&params, b"committed elsewhere, never announced");
        // Nothing announced it: cut the node's listening session, as a network drop would.
        let cut: i64 = ts
            .database
            .as_ref()
            .unwrap()
            .client()
            .query_one(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query LIKE 'LISTEN %'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(cut, 1, "the node's listening session was not found");
        let (sid, body) = delivered(&mut b).await;
        assert_eq!(
            (sid, body.as_slice()),
            (id, &b"committed elsewhere, never announced"[..])
        );
    });
}

#[test]
fn a_node_rereads_every_queue_periodically() {
    if require_postgres("a_node_rereads_every_queue_periodically").is_none() {
        return;
    }
    let ts = TestServer::start_with(|c| c.resync_interval = Duration::from_secs(1));
    let params = ts.database.as_ref().unwrap().params.clone();
    run(async {
        let (_a, _) = register(&ts, "alice", 0).await;
        let (mut b, _) = register(&ts, "bob", 0).await;
        settle(&mut b).await;
        let id = commit_silently(&params, b"never announced");
        let (sid, body) = delivered(&mut b).await;
        assert_eq!((sid, body.as_slice()), (id, &b"never announced"[..]));
    });
}

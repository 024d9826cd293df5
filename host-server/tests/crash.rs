//! The real binary, killed with SIGKILL in the middle of a stream of sends, restarted on the
//! same data folder: every message it acknowledged (`Accepted`) is delivered exactly once,
//! nothing is delivered twice, and order is kept. Then SIGTERM stops it cleanly.
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::Instant;

use common::*;
use host_server::client::Client;
use proto_core::{Key32, Message};

const SENDS: u64 = 600;
const KILL_AFTER: usize = 150;
const WINDOW: usize = 32;

#[test]
fn sigkill_during_sends_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create();
    let p1 = spawn_server(dir.path(), database.as_ref());
    let (bob_token, accepted) = run(async {
        let (a, _) = register_real(&p1, "alice").await;
        let (b, bob_token) = register_real(&p1, "bob").await;
        drop(b);
        let mut a = a;
        // Pipelined sends with a window of WINDOW outstanding: the kill lands while sends are
        // in flight, some committed and not yet acknowledged, some not yet read by the server.
        let mut accepted = BTreeMap::new();
        let mut killed = false;
        let mut child = p1;
        let mut next = 0u64;
        let mut outstanding = 0usize;
        loop {
            while outstanding < WINDOW && next < SENDS && !killed {
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
            if !killed && accepted.len() >= KILL_AFTER {
                child.child.kill().unwrap(); // SIGKILL
                child.child.wait().unwrap();
                killed = true;
            }
            if accepted.len() as u64 == SENDS {
                break;
            }
        }
        assert!(
            killed,
            "the server was never killed (only {} accepted)",
            accepted.len()
        );
        drop(child);
        (bob_token, accepted)
    });
    assert!(
        accepted.len() >= KILL_AFTER && (accepted.len() as u64) < SENDS,
        "{}",
        accepted.len()
    );

    // Restart on the same data and count what is queued for Bob.
    let p2 = spawn_server(dir.path(), database.as_ref());
    let count = "SELECT COUNT(*) FROM messages m JOIN accounts a ON a.id = m.recipient_id \
                 WHERE a.username = 'bob'";
    let queued: i64 = match &database {
        #[cfg(feature = "postgres")]
        Some(db) => db.client().query_one(count, &[]).unwrap().get(0),
        // SQLite (without the `postgres` feature there is never a test database).
        _ => rusqlite::Connection::open(dir.path().join("sealroom.db"))
            .unwrap()
            .query_row(count, [], |r| r.get(0))
            .unwrap(),
    };
    assert!(
        queued as usize >= accepted.len(),
        "{queued} queued < {} accepted",
        accepted.len()
    );
    eprintln!(
        "accepted before SIGKILL: {}, committed: {queued}, sent: {SENDS}",
        accepted.len()
    );

    let delivered = run(async {
        let mut b = Client::connect(p2.addr, &p2.fingerprint).await.unwrap();
        b.send(&Message::Resume {
            username: "bob",
            token: Key32(bob_token),
        })
        .await
        .unwrap();
        assert!(matches!(
            recv(&mut b).await.msg(),
            Some(Message::Session { .. })
        ));
        let mut got: Vec<(u64, u64)> = Vec::new();
        while (got.len() as i64) < queued {
            let f = recv(&mut b).await;
            if let Some(Message::Deliver {
                server_id, body, ..
            }) = f.msg()
            {
                let text = core::str::from_utf8(body).unwrap();
                let client_id: u64 = text.trim_start_matches("msg ").parse().unwrap();
                got.push((server_id, client_id));
                b.send(&Message::Ack { server_id }).await.unwrap();
            }
        }
        // The acknowledgements are handled in order before this ping is answered.
        b.send(&Message::Ping { nonce: 0 }).await.unwrap();
        while !matches!(recv(&mut b).await.msg(), Some(Message::Pong { nonce: 0 })) {}
        // Reconnected, nothing is left: every delivered message was acknowledged once.
        drop(b);
        let mut b = Client::connect(p2.addr, &p2.fingerprint).await.unwrap();
        b.send(&Message::Resume {
            username: "bob",
            token: Key32(bob_token),
        })
        .await
        .unwrap();
        assert!(matches!(
            recv(&mut b).await.msg(),
            Some(Message::Session { .. })
        ));
        b.send(&Message::Ping { nonce: 1 }).await.unwrap();
        loop {
            match recv(&mut b).await.msg() {
                Some(Message::Pong { nonce: 1 }) => break,
                Some(Message::PrekeysLow { .. } | Message::KemPrekeysLow { .. }) => {}
                other => panic!("nothing should be left, got {other:?}"),
            }
        }
        got
    });

    let ids: Vec<u64> = delivered.iter().map(|(s, _)| *s).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "delivered out of order"
    );
    let clients: HashSet<u64> = delivered.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        clients.len(),
        delivered.len(),
        "a message was delivered twice"
    );
    for (client_id, server_id) in &accepted {
        assert!(
            delivered.contains(&(*server_id, *client_id)),
            "accepted message {client_id} (server id {server_id}) was lost"
        );
    }

    // SIGTERM: a clean, prompt exit.
    let mut p2 = p2;
    let status = Command::new("kill")
        .args(["-TERM", &p2.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(code) = p2.child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(core::time::Duration::from_millis(20));
    }
}

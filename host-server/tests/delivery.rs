//! Store-and-forward end to end: online and offline delivery, acknowledgements and receipts,
//! redelivery in order, expiry, quota, restart between send and receive.
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use host_server::client::Client;
use proto_core::{ErrorCode, Message};

async fn send(c: &mut Client, to: &str, client_id: u64, body: &[u8]) -> u64 {
    c.send(&Message::SendToUser {
        to,
        client_id,
        body,
    })
    .await
    .unwrap();
    let f = recv_reply(c).await;
    match f.msg() {
        Some(Message::Accepted {
            client_id: id,
            server_id,
        }) => {
            assert_eq!(id, client_id);
            server_id
        }
        other => panic!("expected Accepted, got {other:?}"),
    }
}

/// The next Deliver (skipping other pushes); returns (server_id, from, room, body).
async fn next_delivery(c: &mut Client) -> (u64, String, Option<String>, Vec<u8>) {
    loop {
        let f = recv(c).await;
        match f.msg() {
            Some(Message::Deliver {
                server_id,
                from,
                room,
                body,
                ..
            }) => {
                return (
                    server_id,
                    from.to_owned(),
                    room.map(str::to_owned),
                    body.to_vec(),
                );
            }
            Some(
                Message::PrekeysLow { .. }
                | Message::KemPrekeysLow { .. }
                | Message::RoomChanged { .. }
                | Message::Ping { .. },
            ) => {}
            other => panic!("expected Deliver, got {other:?}"),
        }
    }
}

/// Asserts nothing else is queued: a ping is answered before any further delivery would be.
async fn expect_quiet(c: &mut Client) {
    c.send(&Message::Ping { nonce: 99 }).await.unwrap();
    loop {
        let f = recv(c).await;
        match f.msg() {
            Some(Message::Pong { nonce: 99 }) => return,
            Some(Message::PrekeysLow { .. } | Message::KemPrekeysLow { .. }) => {}
            other => panic!("expected nothing more, got {other:?}"),
        }
    }
}

#[test]
fn online_delivery_ack_and_receipt() {
    let ts = TestServer::start();
    run(async {
        let (mut a, _alice) = register(&ts, "alice", 20).await;
        let (mut b, _bob) = register(&ts, "bob", 20).await;
        let id = send(&mut a, "bob", 1, b"ciphertext-1").await;
        let (sid, from, room, body) = next_delivery(&mut b).await;
        assert_eq!(
            (sid, from.as_str(), room, body.as_slice()),
            (id, "alice", None, &b"ciphertext-1"[..])
        );
        b.send(&Message::Ack { server_id: id }).await.unwrap();
        // The sender hears "delivered".
        loop {
            let f = recv(&mut a).await;
            if let Some(Message::Delivered {
                server_id,
                to,
                device,
            }) = f.msg()
            {
                assert_eq!(
                    (server_id, to, device),
                    (id, "bob", 1),
                    "bob's device 1 has it"
                );
                break;
            }
        }
        // Acknowledging again is harmless.
        b.send(&Message::Ack { server_id: id }).await.unwrap();
        expect_quiet(&mut b).await;

        // Unknown recipient.
        a.send(&Message::SendToUser {
            to: "nobody",
            client_id: 2,
            body: b"x",
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut a).await, ErrorCode::NOT_FOUND);
    });
}

#[test]
fn offline_delivery_in_order_and_redelivery_until_acked() {
    let ts = TestServer::start();
    run(async {
        let (mut a, _alice) = register(&ts, "alice", 20).await;
        let (b, bob) = register(&ts, "bob", 20).await;
        drop(b);
        let mut ids = Vec::new();
        for i in 0..5u64 {
            ids.push(send(&mut a, "bob", i, format!("m{i}").as_bytes()).await);
        }
        // Bob comes back: all five, in order.
        let mut b = resume(&ts, &bob).await;
        for (i, id) in ids.iter().enumerate() {
            let (sid, _, _, body) = next_delivery(&mut b).await;
            assert_eq!(sid, *id);
            assert_eq!(body, format!("m{i}").as_bytes());
        }
        // Acknowledge only the first two, reconnect: the other three come again, in order.
        for id in &ids[..2] {
            b.send(&Message::Ack { server_id: *id }).await.unwrap();
        }
        expect_quiet(&mut b).await;
        drop(b);
        let mut b = resume(&ts, &bob).await;
        for id in &ids[2..] {
            let (sid, ..) = next_delivery(&mut b).await;
            assert_eq!(sid, *id);
            b.send(&Message::Ack { server_id: sid }).await.unwrap();
        }
        expect_quiet(&mut b).await;
        drop(b);
        let mut b = resume(&ts, &bob).await;
        expect_quiet(&mut b).await;
    });
}

#[test]
fn receipts_wait_for_an_offline_sender() {
    let ts = TestServer::start();
    run(async {
        let (mut a, alice) = register(&ts, "alice", 20).await;
        let (mut b, _bob) = register(&ts, "bob", 20).await;
        let id = send(&mut a, "bob", 1, b"hello").await;
        drop(a);
        // Receipts are pushed to a live sender and kept only for an offline one: wait until
        // the server has seen Alice go (one pushed into a closing connection is lost with it).
        let deadline = std::time::Instant::now() + WAIT;
        while ts.server().active_connections() > 1 {
            assert!(std::time::Instant::now() < deadline);
            smol::Timer::after(core::time::Duration::from_millis(10)).await;
        }
        let (sid, ..) = next_delivery(&mut b).await;
        b.send(&Message::Ack { server_id: sid }).await.unwrap();
        expect_quiet(&mut b).await;
        let mut a = resume(&ts, &alice).await;
        loop {
            let f = recv(&mut a).await;
            if let Some(Message::Delivered {
                server_id,
                to,
                device,
            }) = f.msg()
            {
                assert_eq!(
                    (server_id, to, device),
                    (id, "bob", 1),
                    "bob's device 1 has it"
                );
                break;
            }
        }
    });
}

#[test]
fn undelivered_messages_expire() {
    let ts = TestServer::start_with(|c| c.message_ttl = 3600);
    run(async {
        let (mut a, _alice) = register(&ts, "alice", 20).await;
        let (b, bob) = register(&ts, "bob", 20).await;
        drop(b);
        send(&mut a, "bob", 1, b"old").await;
        ts.advance(3601);
        let fresh = send(&mut a, "bob", 2, b"new").await;
        let mut b = resume(&ts, &bob).await;
        let (sid, _, _, body) = next_delivery(&mut b).await;
        assert_eq!((sid, body.as_slice()), (fresh, &b"new"[..]));
        expect_quiet(&mut b).await;
    });
}

#[test]
fn full_queue_refuses_with_quota_full() {
    let ts = TestServer::start_with(|c| c.recipient_quota = 3);
    run(async {
        let (mut a, _alice) = register(&ts, "alice", 20).await;
        let (b, _bob) = register(&ts, "bob", 20).await;
        drop(b);
        for i in 0..3 {
            send(&mut a, "bob", i, b"x").await;
        }
        a.send(&Message::SendToUser {
            to: "bob",
            client_id: 9,
            body: b"x",
        })
        .await
        .unwrap();
        let f = recv_reply(&mut a).await;
        expect_error(&f, ErrorCode::QUOTA_FULL);
        assert!(error_text(&f).contains("full"));
    });
}

#[test]
fn restart_between_send_and_receive() {
    let mut ts = TestServer::start();
    let bob = run(async {
        let (mut a, _alice) = register(&ts, "alice", 20).await;
        let (b, bob) = register(&ts, "bob", 20).await;
        drop(b);
        send(&mut a, "bob", 1, b"survives a restart").await;
        bob
    });
    ts.restart();
    run(async {
        let mut b = resume(&ts, &bob).await;
        let (_, from, _, body) = next_delivery(&mut b).await;
        assert_eq!(
            (from.as_str(), body.as_slice()),
            ("alice", &b"survives a restart"[..])
        );
    });
}

#[test]
fn bodies_up_to_the_limit_pass_and_larger_are_refused() {
    let ts = TestServer::start();
    run(async {
        let (mut a, _alice) = register(&ts, "alice", 20).await;
        let (mut b, _bob) = register(&ts, "bob", 20).await;
        let big = vec![0xA5u8; proto_core::limits::MAX_BODY];
        let id = send(&mut a, "bob", 1, &big).await;
        let (sid, _, _, body) = next_delivery(&mut b).await;
        assert_eq!((sid, body.len()), (id, big.len()));
    });
}

//! The frame handler's logic on the in-memory store: no sockets, no TLS, a manual clock.

use std::sync::Arc;

use proto_core::{
    DeviceKeys, ErrorCode, IdentityKeyPair, Key32, List, Message, Sig64, SignedPrekey,
    SignedPrekeyPair,
};

use super::{Connection, Flow};
use crate::Shared;
use crate::auth::totp;
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::outbox::{Outbox, OutboxRx, encode};
use crate::store::{Db, MemoryStore};

struct Peer {
    conn: Connection,
    rx: OutboxRx,
    /// The session token, once registered.
    token: [u8; 32],
}

impl Peer {
    fn new(shared: &Arc<Shared>) -> Self {
        let (out, rx) = Outbox::new(64);
        Self {
            conn: Connection::new(shared.clone(), [127, 0, 0, 1].into(), out),
            rx,
            token: [0; 32],
        }
    }

    async fn send(&mut self, m: &Message<'_>) -> Flow {
        self.conn.handle_frame(&encode(m).unwrap()).await
    }

    async fn next(&mut self) -> Vec<u8> {
        smol::future::or(async { self.rx.frames.recv().await.unwrap() }, async {
            smol::Timer::after(core::time::Duration::from_secs(20)).await;
            panic!("no frame in time")
        })
        .await
    }
}

fn decode(f: &[u8]) -> Message<'_> {
    proto_core::decode_frame(f).unwrap().0
}

fn harness() -> (Arc<Shared>, Arc<smol::Executor<'static>>) {
    let mut config = ServerConfig::new("/nonexistent".into());
    config.pbkdf2_rounds = 1_000;
    config.registration_policy = config.address_policy;
    let (clock, _) = Clock::manual(1_800_000_000);
    let ex = Arc::new(smol::Executor::new());
    let db = Db::spawn(MemoryStore::new()).unwrap();
    (Shared::new(config, db, clock, ex.clone()), ex)
}

async fn register(shared: &Arc<Shared>, name: &str) -> Peer {
    let mut p = Peer::new(shared);
    let id = IdentityKeyPair::from_secrets(&[name.len() as u8; 32], &[7; 32]);
    let spk = SignedPrekeyPair::from_secret_key(1, &[5; 32], &id).public();
    let pubk = id.public();
    let msg = Message::Register {
        name: "N",
        email: "n@example.org",
        username: name,
        password: "correct horse battery staple 42!",
        device: DeviceKeys {
            identity_sig: Key32(pubk.signing),
            identity_dh: Key32(pubk.dh),
            signed_prekey: SignedPrekey {
                id: 1,
                key: Key32(spk.public),
                signature: Sig64(spk.signature),
            },
            one_time_prekeys: List::empty(),
        },
    };
    assert_eq!(p.send(&msg).await, Flow::Continue);
    let f = p.next().await;
    let Message::TotpEnrollment { uri } = decode(&f) else {
        panic!("{:?}", decode(&f))
    };
    let code = totp::code_at(&totp::secret_from_uri(uri).unwrap(), shared.clock.now());
    p.send(&Message::ConfirmTotp { code: &code }).await;
    assert!(matches!(
        decode(&p.next().await),
        Message::EnrollmentComplete { .. }
    ));
    let f = p.next().await;
    let Message::Session { token, .. } = decode(&f) else {
        panic!("{:?}", decode(&f))
    };
    p.token = token.0;
    assert!(matches!(
        decode(&p.next().await),
        Message::PrekeysLow { remaining: 0 }
    ));
    assert!(matches!(
        decode(&p.next().await),
        Message::KemPrekeysLow { remaining: 0 }
    ));
    p
}

#[test]
fn delivery_follows_queue_order_and_stops_at_logout() {
    let (shared, ex) = harness();
    smol::block_on(ex.run(async {
        let mut a = register(&shared, "alice").await;
        let mut b = register(&shared, "bob").await;
        for i in 0..3u64 {
            a.send(&Message::SendToUser { to: "bob", client_id: i, body: &[i as u8] }).await;
            assert!(matches!(decode(&a.next().await), Message::Accepted { client_id, .. } if client_id == i));
        }
        let mut ids = Vec::new();
        for i in 0..3u8 {
            let f = b.next().await;
            let Message::Deliver { server_id, from, body, .. } = decode(&f) else { panic!() };
            assert_eq!((from, body), ("alice", &[i][..]));
            ids.push(server_id);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        b.send(&Message::Ack { server_id: ids[0] }).await;
        assert!(matches!(decode(&a.next().await), Message::Delivered { to: "bob", .. }));

        b.send(&Message::Logout).await;
        assert!(matches!(decode(&b.next().await), Message::Ok));
        a.send(&Message::SendToUser { to: "bob", client_id: 9, body: b"later" }).await;
        assert!(matches!(decode(&a.next().await), Message::Accepted { .. }));
        // Logged out: nothing is pushed, and requests need a login again.
        b.send(&Message::Ping { nonce: 1 }).await;
        assert!(matches!(decode(&b.next().await), Message::Pong { nonce: 1 }));
        b.send(&Message::Ack { server_id: ids[1] }).await;
        let f = b.next().await;
        assert!(matches!(decode(&f), Message::Error { code: ErrorCode::BAD_STATE, .. }));
        b.conn.close().await;
        a.conn.close().await;
    }));
    shared.db.shutdown();
}

#[test]
fn second_factor_without_login_and_oversized_frames() {
    let (shared, ex) = harness();
    smol::block_on(ex.run(async {
        let mut p = Peer::new(&shared);
        p.send(&Message::TotpCode { code: "123456" }).await;
        assert!(matches!(
            decode(&p.next().await),
            Message::Error {
                code: ErrorCode::BAD_STATE,
                ..
            }
        ));
        p.send(&Message::ConfirmTotp { code: "123456" }).await;
        assert!(matches!(
            decode(&p.next().await),
            Message::Error {
                code: ErrorCode::BAD_STATE,
                ..
            }
        ));
        let flow = p.conn.handle_frame(&[0xff, 0xff, 0xff, 0xff, 1]).await;
        assert_eq!(flow, Flow::Close);
        assert!(matches!(
            decode(&p.next().await),
            Message::Error {
                code: ErrorCode::TOO_LARGE,
                ..
            }
        ));
    }));
    shared.db.shutdown();
}

/// Resident set size of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

/// `n` times: `Resume` with the peer's own token, then a second-factor code nobody asked for;
/// while logged in, both must be refused with `BAD_STATE`.
async fn stray_codes(p: &mut Peer, n: usize) {
    for _ in 0..n {
        let token = Key32(p.token);
        let resume = Message::Resume {
            username: "alice",
            token,
        };
        for m in [resume, Message::TotpCode { code: "1" }] {
            p.send(&m).await;
            let f = p.next().await;
            assert!(
                matches!(
                    decode(&f),
                    Message::Error {
                        code: ErrorCode::BAD_STATE,
                        ..
                    }
                ),
                "{:?}",
                decode(&f)
            );
        }
    }
}

#[test]
fn stray_second_factor_codes_leave_a_session_and_the_hub_alone() {
    let (shared, ex) = harness();
    smol::block_on(ex.run(async {
        let mut a = register(&shared, "alice").await;
        assert_eq!(shared.hub.connection_count(), 1);
        stray_codes(&mut a, 2_000).await;
        let before = rss_kib();
        stray_codes(&mut a, 20_000).await;
        let after = rss_kib();
        // Still one live connection, still logged in, and memory did not grow with the codes
        // (each stray code used to leave a dead hub entry behind: ~1.2 kB apiece).
        assert_eq!(shared.hub.connection_count(), 1);
        a.send(&Message::ListRooms).await;
        assert!(matches!(decode(&a.next().await), Message::Rooms { .. }));
        assert!(
            after.saturating_sub(before) < 8 * 1024,
            "RSS grew from {before} KiB to {after} KiB over 20,000 Resume + stray code rounds"
        );
        a.conn.close().await;
        assert_eq!(shared.hub.connection_count(), 0);
    }));
    shared.db.shutdown();
}

/// Sends are pipelined (answered from the storage thread after their commit), yet replies keep
/// request order: a burst of sends, one refused by the store, then a `Ping`, is answered
/// `Accepted`, `Error`, `Accepted`…, then `Pong`.
#[test]
fn pipelined_sends_are_answered_in_request_order() {
    let (shared, ex) = harness();
    smol::block_on(ex.run(async {
        let mut a = register(&shared, "alice").await;
        let _b = register(&shared, "bob").await;
        for i in 0..8u64 {
            let to = if i == 3 { "nobody" } else { "bob" };
            let m = Message::SendToUser {
                to,
                client_id: i,
                body: &[1],
            };
            assert_eq!(a.send(&m).await, Flow::Continue);
        }
        a.send(&Message::Ping { nonce: 9 }).await;
        for i in 0..8u64 {
            match decode(&a.next().await) {
                Message::Accepted { client_id, .. } => assert_eq!(client_id, i),
                Message::Error { code, .. } => {
                    assert_eq!((i, code), (3, ErrorCode::NOT_FOUND));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            decode(&a.next().await),
            Message::Pong { nonce: 9 }
        ));
    }));
}

//! Device ids on the wire (PROTOCOL.md §3.4 messages 51–53, §6 Devices): `FetchDevices` names an
//! account's identity and its device, `SendToDevices` is stored only when it names exactly the
//! recipient's active devices, and starting over moves the account to a new device id, so a
//! sender still writing to the old identity is refused before anything is queued.
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use host_server::client::{Client, Frame};
use proto_core::{DeviceBody, ErrorCode, Key32, List, Message};

/// `FetchDevices` for `who`: its identity keys and device ids.
async fn devices(c: &mut Client, who: &str) -> Result<([u8; 32], [u8; 32], Vec<u32>), ErrorCode> {
    c.send(&Message::FetchDevices { username: who })
        .await
        .unwrap();
    let f = recv_reply(c).await;
    match f.msg() {
        Some(Message::Devices {
            username,
            identity_sig,
            identity_dh,
            devices,
        }) => {
            assert_eq!(username, who.to_ascii_lowercase());
            Ok((identity_sig.0, identity_dh.0, devices.iter().collect()))
        }
        Some(Message::Error { code, .. }) => Err(code),
        other => panic!("expected Devices, got {other:?}"),
    }
}

/// Sends `SendToDevices` to `to` with one body per listed device; the reply frame.
async fn send_to(c: &mut Client, to: &str, client_id: u64, devices: &[u32]) -> Frame {
    let bodies: Vec<DeviceBody<'_>> = devices
        .iter()
        .map(|&device| DeviceBody {
            device,
            body: b"ciphertext for one device",
        })
        .collect();
    c.send(&Message::SendToDevices {
        to,
        client_id,
        bodies: List::from_items(&bodies),
    })
    .await
    .unwrap();
    recv_reply(c).await
}

/// Logs `user` in with password and the next step's TOTP code (as a new device would).
async fn login_next_step(ts: &TestServer, user: &User) -> Client {
    ts.advance(30);
    let (c, f) = login(
        ts,
        &user.name,
        PASSWORD,
        Message::TotpCode {
            code: &host_server::auth::totp::code_at(&user.totp_secret, ts.now()),
        },
    )
    .await;
    assert!(
        matches!(f.msg(), Some(Message::Session { .. })),
        "{:?}",
        f.msg()
    );
    c
}

/// Publishes the identity made from `seed` on `c` (a new one starts the account over).
async fn publish_identity(c: &mut Client, seed: u8) -> proto_core::IdentityPublicKey {
    let id = proto_core::IdentityKeyPair::from_secrets(&[seed; 32], &[seed ^ 0xff; 32]).public();
    c.send(&Message::PublishIdentity {
        identity_sig: Key32(id.signing),
        identity_dh: Key32(id.dh),
    })
    .await
    .unwrap();
    expect_ok(&recv_reply(c).await);
    id
}

/// Direct messages queued with the test's body (every test writes only to carol).
fn queued(ts: &TestServer) -> i64 {
    ts.count(
        "SELECT COUNT(*) FROM messages WHERE body = $1",
        b"ciphertext for one device",
    )
}

#[test]
fn an_account_lists_its_identity_and_device_and_unknown_users_are_not_found() {
    let ts = TestServer::start();
    run(async {
        let (_r, carol) = register(&ts, "carol", 2).await;
        let (_r, alice) = register(&ts, "alice", 2).await;
        let mut a = resume(&ts, &alice).await;
        let (sig, dh, ids) = devices(&mut a, "Carol").await.unwrap();
        assert_eq!(sig, carol.device.identity.public().signing);
        assert_eq!(dh, carol.device.identity.public().dh);
        assert_eq!(ids, [1]);
        assert_eq!(devices(&mut a, "nobody").await, Err(ErrorCode::NOT_FOUND));
        assert_eq!(
            devices(&mut a, "not a name!").await,
            Err(ErrorCode::NOT_FOUND)
        );
        // Listing devices hands out no one-time prekey (two each were registered).
        assert_eq!(
            ts.count(
                "SELECT COUNT(*) FROM one_time_prekeys WHERE key <> $1",
                &[0; 32]
            ),
            4
        );
    });
}

#[test]
fn a_send_naming_exactly_the_active_device_is_delivered_and_any_other_set_is_refused() {
    let ts = TestServer::start();
    run(async {
        let (_r, carol) = register(&ts, "carol", 2).await;
        let (_r, alice) = register(&ts, "alice", 2).await;
        let mut a = resume(&ts, &alice).await;

        // Not the active set: nothing stored.
        for named in [&[][..], &[2], &[1, 2], &[0]] {
            expect_error(
                &send_to(&mut a, "carol", 1, named).await,
                ErrorCode::STALE_DEVICES,
            );
        }
        expect_error(
            &send_to(&mut a, "carol", 1, &[1, 1]).await,
            ErrorCode::INVALID_INPUT,
        );
        expect_error(
            &send_to(&mut a, "nobody", 1, &[1]).await,
            ErrorCode::NOT_FOUND,
        );
        assert_eq!(queued(&ts), 0);

        // Exactly the active device: accepted and handed to carol.
        let f = send_to(&mut a, "carol", 7, &[1]).await;
        assert!(
            matches!(f.msg(), Some(Message::Accepted { client_id: 7, .. })),
            "{:?}",
            f.msg()
        );
        let mut c = resume(&ts, &carol).await;
        loop {
            let f = recv(&mut c).await;
            match f.msg() {
                Some(Message::Deliver { from, body, .. }) => {
                    assert_eq!(from, "alice");
                    assert_eq!(body, b"ciphertext for one device");
                    break;
                }
                Some(Message::PrekeysLow { .. }) => {}
                other => panic!("expected Deliver, got {other:?}"),
            }
        }
    });
}

#[test]
fn an_oversized_body_for_any_device_is_refused() {
    let ts = TestServer::start();
    run(async {
        let (_r, _carol) = register(&ts, "carol", 2).await;
        let (_r, alice) = register(&ts, "alice", 2).await;
        let mut a = resume(&ts, &alice).await;
        let big = vec![0u8; proto_core::limits::MAX_BODY + 1];
        let bodies = [DeviceBody {
            device: 1,
            body: &big,
        }];
        a.send(&Message::SendToDevices {
            to: "carol",
            client_id: 1,
            bodies: List::from_items(&bodies),
        })
        .await
        .unwrap();
        let f = recv_reply(&mut a).await;
        assert!(
            matches!(
                error_code(&f),
                Some(ErrorCode::TOO_LARGE | ErrorCode::BAD_FRAME)
            ),
            "{:?}",
            f.msg()
        );
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM messages WHERE body <> $1", b""),
            0
        );
    });
}

#[test]
fn starting_over_moves_the_account_to_a_new_device_and_sends_to_the_old_one_are_refused() {
    let ts = TestServer::start();
    run(async {
        let (_r, carol) = register(&ts, "carol", 2).await;
        let (_r, alice) = register(&ts, "alice", 2).await;
        let mut a = resume(&ts, &alice).await;
        let (old_sig, _, ids) = devices(&mut a, "carol").await.unwrap();
        assert_eq!(ids, [1]);

        // Carol starts over from a new device: a new identity.
        let mut new = login_next_step(&ts, &carol).await;
        let fresh = publish_identity(&mut new, 0x41).await;

        // Alice still writes to device 1: refused, and nothing reaches carol's new device.
        expect_error(
            &send_to(&mut a, "carol", 2, &[1]).await,
            ErrorCode::STALE_DEVICES,
        );
        assert_eq!(queued(&ts), 0);
        // What she fetches then shows the new identity (her client stops there, PROTOCOL.md §6).
        let (sig, dh, ids) = devices(&mut a, "carol").await.unwrap();
        assert_ne!(sig, old_sig);
        assert_eq!((sig, dh), (fresh.signing, fresh.dh));
        assert_eq!(ids, [2]);

        // Publishing the same identity again changes nothing: still device 2.
        assert_eq!(publish_identity(&mut new, 0x41).await, fresh);
        assert_eq!(devices(&mut a, "carol").await.unwrap().2, [2]);

        // Starting over again never reuses an id.
        publish_identity(&mut new, 0x43).await;
        assert_eq!(devices(&mut a, "carol").await.unwrap().2, [3]);
        let f = send_to(&mut a, "carol", 3, &[3]).await;
        assert!(matches!(
            f.msg(),
            Some(Message::Accepted { client_id: 3, .. })
        ));
        assert_eq!(queued(&ts), 1);
    });
}

#[test]
fn device_ids_survive_a_restart() {
    let mut ts = TestServer::start();
    let carol = run(async {
        let (_r, carol) = register(&ts, "carol", 2).await;
        let mut c = resume(&ts, &carol).await;
        publish_identity(&mut c, 0x51).await;
        carol
    });
    ts.restart();
    run(async {
        let mut c = resume(&ts, &carol).await;
        assert_eq!(devices(&mut c, "carol").await.unwrap().2, [2]);
    });
}

/// `ListDevices` for the logged-in account: (current, [(id, name, added, last seen, revoked)]).
async fn own_devices(c: &mut Client) -> (u32, Vec<(u32, String, u64, u64, Option<u64>)>) {
    c.send(&Message::ListDevices).await.unwrap();
    let f = recv_reply(c).await;
    match f.msg() {
        Some(Message::DeviceList { current, devices }) => (
            current,
            devices
                .iter()
                .map(|d| {
                    (
                        d.device_id,
                        d.name.to_owned(),
                        d.added_at,
                        d.last_seen,
                        d.revoked_at,
                    )
                })
                .collect(),
        ),
        other => panic!("expected DeviceList, got {other:?}"),
    }
}

#[test]
fn devices_are_named_seen_and_revoked_when_the_account_starts_over() {
    let ts = TestServer::start();
    run(async {
        let registered = ts.now();
        let (_r, carol) = register(&ts, "carol", 2).await;
        let mut c = resume(&ts, &carol).await;
        assert_eq!(
            own_devices(&mut c).await,
            (1, vec![(1, String::new(), registered, registered, None)])
        );

        // Names: trimmed, 1 to 64 characters, no control characters.
        for bad in ["", "   ", "a\nb", "tab\there", &"x".repeat(65)] {
            c.send(&Message::NameDevice { name: bad }).await.unwrap();
            expect_error(&recv_reply(&mut c).await, ErrorCode::INVALID_INPUT);
        }
        c.send(&Message::NameDevice {
            name: "  carol's laptop  ",
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut c).await);

        // Seen again when a session starts.
        ts.advance(100);
        let mut c = resume(&ts, &carol).await;
        let (_, listed) = own_devices(&mut c).await;
        assert_eq!(
            listed,
            [(1, "carol's laptop".to_owned(), registered, ts.now(), None)]
        );

        // Starting over: the old device is kept in the list, revoked; the new one is current.
        let mut new = login_next_step(&ts, &carol).await;
        let at = ts.now();
        publish_identity(&mut new, 0x61).await;
        assert_eq!(
            own_devices(&mut new).await,
            (
                2,
                vec![
                    (2, String::new(), at, at, None),
                    (1, "carol's laptop".to_owned(), registered, at, Some(at)),
                ]
            )
        );
    });
}

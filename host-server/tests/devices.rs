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

/// Publishes the identity made from `seed` on `c` (a new one starts the account over), then, as
/// a client does, a signed prekey signed by it for the session's (new) device.
async fn publish_identity(c: &mut Client, seed: u8) -> proto_core::IdentityPublicKey {
    let pair = proto_core::IdentityKeyPair::from_secrets(&[seed; 32], &[seed ^ 0xff; 32]);
    let id = pair.public();
    c.send(&Message::PublishIdentity {
        identity_sig: Key32(id.signing),
        identity_dh: Key32(id.dh),
    })
    .await
    .unwrap();
    expect_ok(&recv_reply(c).await);
    let (device, _) = own_devices(c).await;
    expect_ok(&publish_prekey(c, 1, device, &pair).await);
    id
}

/// Publishes a fresh signed prekey with id `id`, signed by `identity` for `device`; the reply.
async fn publish_prekey(
    c: &mut Client,
    id: u32,
    device: u32,
    identity: &proto_core::IdentityKeyPair,
) -> Frame {
    let spk =
        proto_core::SignedPrekeyPair::from_secret_key_for_device(id, device, &random32(), identity)
            .public();
    c.send(&Message::PublishSignedPrekey {
        prekey: proto_core::SignedPrekey {
            id: spk.id,
            key: Key32(spk.public),
            signature: proto_core::Sig64(spk.signature),
        },
    })
    .await
    .unwrap();
    recv_reply(c).await
}

/// Direct messages queued with the test's body (every test writes only to carol).
fn queued(ts: &TestServer) -> i64 {
    ts.count(
        "SELECT COUNT(*) FROM message_copies WHERE body = $1",
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
                "SELECT COUNT(*) FROM device_prekeys WHERE key <> $1",
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
                Some(Message::PrekeysLow { .. } | Message::KemPrekeysLow { .. }) => {}
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
            ts.count(
                "SELECT COUNT(*) FROM messages WHERE body = $1 OR body <> $1",
                b""
            ) + ts.count("SELECT COUNT(*) FROM message_copies WHERE body <> $1", b""),
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

        // Names: trimmed, 1 to 64 characters, no control or bidi formatting characters.
        for bad in [
            "",
            "   ",
            "a\nb",
            "tab\there",
            &"x".repeat(65),
            "pho\u{202e}enoht",
            "\u{2067}laptop",
        ] {
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

/// Logs `user` in as `device` (`None`: a session linking a new device) with the next step's
/// code; returns the client and the final frame.
async fn login_as(ts: &TestServer, user: &User, device: Option<u32>) -> (Client, Frame) {
    ts.advance(30);
    let mut c = ts.connect().await;
    c.send(&Message::LoginDevice {
        username: &user.name,
        password: PASSWORD,
        device,
    })
    .await
    .unwrap();
    assert!(matches!(
        recv_reply(&mut c).await.msg(),
        Some(Message::TotpRequired)
    ));
    let code = host_server::auth::totp::code_at(&user.totp_secret, ts.now());
    c.send(&Message::TotpCode { code: &code }).await.unwrap();
    let f = recv_reply(&mut c).await;
    (c, f)
}

/// The next `Deliver` on `c` (skipping other pushes): server id, sending device, body.
async fn next_deliver(c: &mut Client) -> (u64, u32, Vec<u8>) {
    loop {
        let f = recv(c).await;
        if let Some(Message::Deliver {
            server_id,
            device,
            body,
            ..
        }) = f.msg()
        {
            return (server_id, device, body.to_vec());
        }
    }
}

/// The whole life of a linked device on the wire: a linking session reads nothing and sends
/// nothing; an existing device relays the link message (opaque to the server) to it by link
/// id; it adds itself and publishes a prekey signed for its id; senders must then write to
/// both devices, each gets its own copy and acknowledges it on its own; revoking it ends its
/// connection and session at once, and senders are refused until they drop it.
#[test]
fn a_linked_device_gets_the_link_message_its_own_copies_and_is_revoked_at_once() {
    let ts = TestServer::start();
    run(async {
        let (_r, carol) = register(&ts, "carol", 2).await;
        let (_r, alice) = register(&ts, "alice", 0).await;
        let mut one = resume(&ts, &carol).await;
        let mut a = resume(&ts, &alice).await;

        // The new device logs in as no device yet: it may fetch its link message and add
        // itself, nothing else.
        let (mut two, f) = login_as(&ts, &carol, None).await;
        assert!(
            matches!(f.msg(), Some(Message::Session { .. })),
            "{:?}",
            f.msg()
        );
        let link_id = [0x5a; 16];
        two.send(&Message::FetchLink { link_id: &link_id })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut two).await, ErrorCode::NOT_FOUND);
        for refused in [
            Message::FetchDevices { username: "alice" },
            Message::ListDevices,
            Message::SendToUser {
                to: "alice",
                client_id: 1,
                body: b"x",
            },
            Message::SendLink {
                link_id: &link_id,
                message: b"x",
            },
        ] {
            two.send(&refused).await.unwrap();
            expect_error(&recv_reply(&mut two).await, ErrorCode::BAD_STATE);
        }

        // The existing device relays the link message; only the linking session takes it,
        // once.
        one.send(&Message::SendLink {
            link_id: &link_id[..15],
            message: b"sealed state",
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut one).await, ErrorCode::INVALID_INPUT);
        one.send(&Message::SendLink {
            link_id: &link_id,
            message: b"sealed state",
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut one).await);
        one.send(&Message::FetchLink { link_id: &link_id })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut one).await, ErrorCode::BAD_STATE);
        a.send(&Message::FetchLink { link_id: &link_id })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut a).await, ErrorCode::BAD_STATE);
        two.send(&Message::FetchLink { link_id: &link_id })
            .await
            .unwrap();
        match recv_reply(&mut two).await.msg() {
            Some(Message::LinkMessage { message }) => assert_eq!(message, b"sealed state"),
            other => panic!("expected LinkMessage, got {other:?}"),
        }
        two.send(&Message::FetchLink { link_id: &link_id })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut two).await, ErrorCode::NOT_FOUND);

        // It adds itself as device 2 and publishes a prekey signed for device 2 (one signed
        // for another device is refused).
        two.send(&Message::AddDevice { name: "phone" })
            .await
            .unwrap();
        match recv_reply(&mut two).await.msg() {
            Some(Message::DeviceAdded { device }) => assert_eq!(device, 2),
            other => panic!("expected DeviceAdded, got {other:?}"),
        }
        // Until it publishes a signed prekey nobody can encrypt to it: it is not listed, and
        // sends to carol's one reachable device go on (a half-linked device breaks nothing).
        let (_, _, ids) = devices(&mut a, "carol").await.unwrap();
        assert_eq!(ids, [1]);
        expect_error(
            &send_to(&mut a, "carol", 9, &[1, 2]).await,
            ErrorCode::STALE_DEVICES,
        );
        let Some(Message::Accepted {
            server_id: early, ..
        }) = send_to(&mut a, "carol", 10, &[1]).await.msg()
        else {
            panic!("a send to the reachable device is stored");
        };
        assert_eq!(next_deliver(&mut one).await.0, early);
        one.send(&Message::Ack { server_id: early }).await.unwrap();
        let identity = &carol.device.identity;
        let wrong =
            proto_core::SignedPrekeyPair::from_secret_key_for_device(5, 3, &random32(), identity);
        let spk =
            proto_core::SignedPrekeyPair::from_secret_key_for_device(5, 2, &random32(), identity);
        for (pair, ok) in [(&wrong, false), (&spk, true)] {
            let p = pair.public();
            two.send(&Message::PublishSignedPrekey {
                prekey: proto_core::SignedPrekey {
                    id: p.id,
                    key: Key32(p.public),
                    signature: proto_core::Sig64(p.signature),
                },
            })
            .await
            .unwrap();
            let f = recv_reply(&mut two).await;
            if ok {
                expect_ok(&f);
            } else {
                expect_error(&f, ErrorCode::INVALID_INPUT);
            }
        }

        // Senders see both devices, fetch device 2's own bundle, and must write to both.
        let (_, _, ids) = devices(&mut a, "carol").await.unwrap();
        assert_eq!(ids, [1, 2]);
        a.send(&Message::FetchDeviceBundle {
            username: "carol",
            device: 2,
        })
        .await
        .unwrap();
        match recv_reply(&mut a).await.msg() {
            Some(Message::Bundle { bundle }) => {
                assert_eq!(bundle.signed_prekey.key.0, spk.public().public);
                assert_eq!(bundle.one_time_prekey, None, "device 2 uploaded none");
            }
            other => panic!("expected Bundle, got {other:?}"),
        }
        expect_error(
            &send_to(&mut a, "carol", 1, &[1]).await,
            ErrorCode::STALE_DEVICES,
        );
        a.send(&Message::SendToUser {
            to: "carol",
            client_id: 2,
            body: b"one body for whom?",
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut a).await, ErrorCode::STALE_DEVICES);
        let bodies = [
            DeviceBody {
                device: 2,
                body: b"for the phone",
            },
            DeviceBody {
                device: 1,
                body: b"for the laptop",
            },
        ];
        a.send(&Message::SendToDevices {
            to: "carol",
            client_id: 3,
            bodies: List::from_items(&bodies),
        })
        .await
        .unwrap();
        let Some(Message::Accepted { server_id, .. }) = recv_reply(&mut a).await.msg() else {
            panic!("expected Accepted");
        };
        assert_eq!(
            next_deliver(&mut one).await,
            (server_id, 1, b"for the laptop".to_vec())
        );
        assert_eq!(
            next_deliver(&mut two).await,
            (server_id, 1, b"for the phone".to_vec())
        );
        one.send(&Message::Ack { server_id }).await.unwrap();
        loop {
            if let Some(Message::Delivered {
                server_id: id,
                to,
                device,
            }) = recv(&mut a).await.msg()
            {
                assert_eq!((id, to, device), (server_id, "carol", 1));
                break;
            }
        }
        assert_eq!(
            ts.count(
                "SELECT COUNT(*) FROM message_copies WHERE body = $1",
                b"for the phone"
            ),
            1,
            "the phone's copy waits for the phone"
        );

        // Revoking the phone: its connection ends now, its session and copy are gone, a
        // login as it is refused, and senders are told to drop it.
        one.send(&Message::RevokeDevice { device: 1 })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut one).await, ErrorCode::INVALID_INPUT);
        one.send(&Message::RevokeDevice { device: 2 })
            .await
            .unwrap();
        expect_ok(&recv_reply(&mut one).await);
        one.send(&Message::RevokeDevice { device: 2 })
            .await
            .unwrap();
        expect_error(&recv_reply(&mut one).await, ErrorCode::NOT_FOUND);
        while let Ok(f) = two.recv_timeout(WAIT).await {
            assert!(
                !matches!(f.msg(), Some(Message::Deliver { .. })),
                "a revoked device is delivered nothing"
            );
        }
        assert_eq!(
            ts.count(
                "SELECT COUNT(*) FROM message_copies WHERE body = $1",
                b"for the phone"
            ),
            0
        );
        let (_c, f) = login_as(&ts, &carol, Some(2)).await;
        expect_error(&f, ErrorCode::NOT_FOUND);
        let (_, _, ids) = devices(&mut a, "carol").await.unwrap();
        assert_eq!(ids, [1]);
        expect_error(
            &send_to(&mut a, "carol", 4, &[1, 2]).await,
            ErrorCode::STALE_DEVICES,
        );
        let Some(Message::Accepted { .. }) = send_to(&mut a, "carol", 5, &[1]).await.msg() else {
            panic!("one device again");
        };
    });
}

/// A device that says which it is gets its own queue; `Login` without a device is the
/// primary's; a device the account never had is refused after the second factor.
#[test]
fn logging_in_as_a_device_reads_that_devices_queue() {
    let ts = TestServer::start();
    run(async {
        let (_r, carol) = register(&ts, "carol", 0).await;
        let (_r, alice) = register(&ts, "alice", 0).await;
        let mut a = resume(&ts, &alice).await;
        let Some(Message::Accepted { server_id, .. }) =
            send_to(&mut a, "carol", 1, &[1]).await.msg()
        else {
            panic!("expected Accepted");
        };
        let (mut c, f) = login_as(&ts, &carol, Some(1)).await;
        assert!(matches!(f.msg(), Some(Message::Session { .. })));
        assert_eq!(next_deliver(&mut c).await.0, server_id);
        let (_c, f) = login_as(&ts, &carol, Some(7)).await;
        expect_error(&f, ErrorCode::NOT_FOUND);
        let mut legacy = login_next_step(&ts, &carol).await;
        assert_eq!(next_deliver(&mut legacy).await.0, server_id);
    });
}

/// Adds a second device to `user` (a linking session, `AddDevice`, a prekey signed for it);
/// returns its connection and id.
async fn add_second_device(ts: &TestServer, user: &User) -> (Client, u32) {
    let (mut c, f) = login_as(ts, user, None).await;
    assert!(matches!(f.msg(), Some(Message::Session { .. })));
    c.send(&Message::AddDevice { name: "phone" }).await.unwrap();
    let device = match recv_reply(&mut c).await.msg() {
        Some(Message::DeviceAdded { device }) => device,
        other => panic!("expected DeviceAdded, got {other:?}"),
    };
    expect_ok(&publish_prekey(&mut c, 9, device, &user.device.identity).await);
    (c, device)
}

/// `SendSynced` with the given recipient and own devices; the reply frame.
async fn send_synced(c: &mut Client, to: &str, devices: &[u32], own: &[u32]) -> Frame {
    let body = |device| DeviceBody {
        device,
        body: if own.contains(&device) && !devices.contains(&device) {
            b"transcript".as_slice()
        } else {
            b"ciphertext for one device".as_slice()
        },
    };
    let bodies: Vec<DeviceBody<'_>> = devices.iter().map(|&d| body(d)).collect();
    let mine: Vec<DeviceBody<'_>> = own
        .iter()
        .map(|&device| DeviceBody {
            device,
            body: b"transcript",
        })
        .collect();
    c.send(&Message::SendSynced {
        to,
        client_id: 77,
        bodies: List::from_items(&bodies),
        own: List::from_items(&mine),
    })
    .await
    .unwrap();
    recv_reply(c).await
}

/// Sent-message sync (PROTOCOL.md §6 Devices): `SendSynced` stores the message for the
/// recipient's devices and its transcript for the sender's other devices in one transaction —
/// a wrong set on either side stores neither; the transcript reaches the other device (not the
/// sending one, never the recipient), names the sending device, and its acknowledgement tells
/// nobody; the recipient's acknowledgement tells the sender which device has it.
#[test]
fn a_synced_send_stores_the_message_and_its_transcript_together_or_neither() {
    let ts = TestServer::start();
    run(async {
        let (_r, carol) = register(&ts, "carol", 2).await;
        let (_r, bob) = register(&ts, "bob", 0).await;
        let mut one = resume(&ts, &carol).await;
        let mut b = resume(&ts, &bob).await;
        let (mut two, phone) = add_second_device(&ts, &carol).await;
        assert_eq!(phone, 2);
        let transcripts = |ts: &TestServer| {
            ts.count(
                "SELECT COUNT(*) FROM message_copies WHERE body = $1",
                b"transcript",
            )
        };

        // Wrong own set (missing the phone, naming oneself, naming a device carol lacks), or
        // a wrong recipient set: nothing at all is stored.
        for (to_bob, own, code) in [
            (&[1][..], &[][..], ErrorCode::STALE_DEVICES),
            (&[1], &[1, 2], ErrorCode::STALE_DEVICES),
            (&[1], &[2, 3], ErrorCode::STALE_DEVICES),
            (&[1, 2], &[2], ErrorCode::STALE_DEVICES),
            (&[1], &[2, 2], ErrorCode::INVALID_INPUT),
        ] {
            expect_error(&send_synced(&mut one, "bob", to_bob, own).await, code);
        }
        expect_error(
            &send_synced(&mut one, "carol", &[2], &[2]).await,
            ErrorCode::INVALID_INPUT,
        );
        assert_eq!((queued(&ts), transcripts(&ts)), (0, 0));

        // The right sets: the message for bob, the transcript for the phone, one request.
        let Some(Message::Accepted { server_id, .. }) =
            send_synced(&mut one, "bob", &[1], &[2]).await.msg()
        else {
            panic!("expected Accepted");
        };
        assert_eq!((queued(&ts), transcripts(&ts)), (1, 1));
        let (to_bob, from_device, body) = next_deliver(&mut b).await;
        assert_eq!(
            (to_bob, from_device, body.as_slice()),
            (server_id, 1, &b"ciphertext for one device"[..])
        );
        let (copy, from_device, body) = next_deliver(&mut two).await;
        assert_eq!((from_device, body.as_slice()), (1, &b"transcript"[..]));
        assert_ne!(copy, server_id);
        two.send(&Message::Ack { server_id: copy }).await.unwrap();
        b.send(&Message::Ack { server_id }).await.unwrap();
        // The sending device hears of bob's device only: the phone's ack of the transcript is
        // nobody's receipt.
        loop {
            match recv(&mut one).await.msg() {
                Some(Message::Deliver { .. }) => panic!("the sending device gets no transcript"),
                Some(Message::Delivered {
                    server_id: id,
                    to,
                    device,
                }) => {
                    assert_eq!((id, to, device), (server_id, "bob", 1));
                    break;
                }
                _ => {}
            }
        }
        while let Ok(f) = one.recv_timeout(WAIT).await {
            assert!(
                !matches!(
                    f.msg(),
                    Some(Message::Delivered { .. } | Message::Deliver { .. })
                ),
                "{:?}",
                f.msg()
            );
        }
        assert_eq!((queued(&ts), transcripts(&ts)), (0, 0));

        // To its own other devices, an account writes with `SendToDevices` (a session reset,
        // say): its other devices are the set, never the sending one.
        expect_error(
            &send_to(&mut two, "carol", 5, &[1, 2]).await,
            ErrorCode::STALE_DEVICES,
        );
        let Some(Message::Accepted { server_id, .. }) =
            send_to(&mut two, "carol", 6, &[1]).await.msg()
        else {
            panic!("expected Accepted");
        };
        assert_eq!(next_deliver(&mut one).await.0, server_id);

        // With the phone revoked, the laptop's transcript list is empty again.
        one.send(&Message::RevokeDevice { device: 2 })
            .await
            .unwrap();
        expect_ok(&recv_reply(&mut one).await);
        expect_error(
            &send_synced(&mut one, "bob", &[1], &[2]).await,
            ErrorCode::STALE_DEVICES,
        );
        assert!(matches!(
            send_synced(&mut one, "bob", &[1], &[]).await.msg(),
            Some(Message::Accepted { .. })
        ));
    });
}

/// Transcripts pile up for a device that is not read (an old laptop): they count against the
/// account's own queue bound, not the per-sender quota (which would stop every send after a
/// handful); a full queue refuses the send whole, saying what to do, and stores neither part.
#[test]
fn transcripts_count_against_the_accounts_queue_not_the_per_sender_quota() {
    let ts = TestServer::start_with(|c| {
        c.sender_quota = 2;
        c.recipient_quota = 5;
    });
    run(async {
        let (_r, carol) = register(&ts, "carol", 2).await;
        for name in ["bob", "dave", "erin"] {
            register(&ts, name, 0).await;
        }
        let mut one = resume(&ts, &carol).await;
        let (_two, phone) = add_second_device(&ts, &carol).await;
        for to in ["bob", "bob", "dave", "dave", "erin"] {
            let f = send_synced(&mut one, to, &[1], &[phone]).await;
            assert!(
                matches!(f.msg(), Some(Message::Accepted { .. })),
                "{to}: {:?}",
                f.msg()
            );
        }
        let f = send_synced(&mut one, "erin", &[1], &[phone]).await;
        expect_error(&f, ErrorCode::QUOTA_FULL);
        let Some(Message::Error { text, .. }) = f.msg() else {
            unreachable!()
        };
        assert!(text.contains("your other devices"), "{text}");
        assert_eq!(queued(&ts), 5, "the refused send stored nothing for erin");
        assert_eq!(
            ts.count(
                "SELECT COUNT(*) FROM message_copies WHERE body = $1",
                b"transcript"
            ),
            5
        );
    });
}

/// A room message reaches the sender's other devices (live, naming the sending device), never
/// the sending one; their acks are nobody's receipt, while the other member's is.
#[test]
fn a_room_message_reaches_the_senders_other_devices_and_not_the_sending_one() {
    let ts = TestServer::start();
    run(async {
        let (_r, carol) = register(&ts, "carol", 2).await;
        let (_r, bob) = register(&ts, "bob", 0).await;
        let mut laptop = resume(&ts, &carol).await;
        let mut b = resume(&ts, &bob).await;
        let (mut phone, phone_id) = add_second_device(&ts, &carol).await;
        laptop
            .send(&Message::CreateRoom { room: "team" })
            .await
            .unwrap();
        expect_ok(&recv_reply(&mut laptop).await);
        laptop
            .send(&Message::Invite {
                room: "team",
                username: "bob",
            })
            .await
            .unwrap();
        expect_ok(&recv_reply(&mut laptop).await);
        b.send(&Message::AcceptInvite { room: "team" })
            .await
            .unwrap();
        expect_ok(&recv_reply(&mut b).await);

        for round in 0..2 {
            let (sender, sender_device, other) = if round == 0 {
                (&mut laptop, 1, &mut phone)
            } else {
                (&mut phone, phone_id, &mut laptop)
            };
            sender
                .send(&Message::SendToRoom {
                    room: "team",
                    client_id: 7,
                    body: b"room ciphertext",
                })
                .await
                .unwrap();
            let server_id = loop {
                if let Some(Message::Accepted { server_id, .. }) = recv(sender).await.msg() {
                    break server_id;
                }
            };
            for device in [&mut *other, &mut b] {
                let (id, from_device, body) = next_deliver(device).await;
                assert_eq!(
                    (id, from_device, body.as_slice()),
                    (server_id, sender_device, &b"room ciphertext"[..])
                );
                device.send(&Message::Ack { server_id }).await.unwrap();
            }
            // The sending device: bob's receipt only, never its own message.
            loop {
                match recv(sender).await.msg() {
                    Some(Message::Deliver { .. }) => panic!("the sending device gets it back"),
                    Some(Message::Delivered { to, .. }) => {
                        assert_eq!(to, "bob");
                        break;
                    }
                    _ => {}
                }
            }
            // (The other device's ack went before bob's: a receipt for it would be here by now.)
            while let Ok(f) = sender
                .recv_timeout(core::time::Duration::from_secs(2))
                .await
            {
                assert!(
                    !matches!(
                        f.msg(),
                        Some(Message::Delivered { .. } | Message::Deliver { .. })
                    ),
                    "{:?}",
                    f.msg()
                );
            }
        }
    });
}

//! Accounts and MFA end to end: real TLS on 127.0.0.1, real SQLite in a temporary folder.
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use host_server::auth::ratelimit::Policy;
use host_server::auth::totp;
use proto_core::{ErrorCode, Key32, Message};

#[test]
fn register_enroll_login_resume_logout() {
    let ts = TestServer::start();
    run(async {
        let (mut c, alice) = register(&ts, "Alice", 5).await;
        assert_eq!(alice.name, "Alice");
        c.send(&Message::Ping { nonce: 7 }).await.unwrap();
        assert!(matches!(
            recv_reply(&mut c).await.msg(),
            Some(Message::Pong { nonce: 7 })
        ));

        // Log in on a new connection with the next step's code (the enrollment step is used).
        ts.advance(30);
        let code = totp::code_at(&alice.totp_secret, ts.now());
        // The username is case-folded.
        let (mut c2, f) = login(&ts, "ALICE", PASSWORD, Message::TotpCode { code: &code }).await;
        let Some(Message::Session { token, .. }) = f.msg() else {
            panic!("expected Session, got {:?}", f.msg())
        };
        assert_ne!(token.0, alice.token);

        // Resume with the enrollment token, then log out: the token is revoked.
        let mut c3 = resume(&ts, &alice).await;
        c3.send(&Message::Logout).await.unwrap();
        expect_ok(&recv_reply(&mut c3).await);
        c3.send(&Message::ListRooms).await.unwrap();
        expect_error(&recv_reply(&mut c3).await, ErrorCode::BAD_STATE);
        let mut c4 = ts.connect().await;
        c4.send(&Message::Resume {
            username: "alice",
            token: Key32(alice.token),
        })
        .await
        .unwrap();
        expect_error(&recv_reply(&mut c4).await, ErrorCode::SESSION_EXPIRED);

        // The other session still works.
        c2.send(&Message::ListRooms).await.unwrap();
        assert!(matches!(
            recv_reply(&mut c2).await.msg(),
            Some(Message::Rooms { .. })
        ));
        drop(c);
    });
}

#[test]
fn login_failures_say_nothing_about_which_factor() {
    let ts = TestServer::start();
    run(async {
        let (_c, alice) = register(&ts, "alice", 0).await;
        ts.advance(30);
        let good = totp::code_at(&alice.totp_secret, ts.now());
        let wrong_code = if good == "000000" { "111111" } else { "000000" };

        let cases: [(&str, &str, &str); 4] = [
            ("alice", "wrong password entirely 99", good.as_str()),
            ("alice", PASSWORD, wrong_code),
            ("nobody_here", PASSWORD, good.as_str()),
            ("not a valid name!", PASSWORD, good.as_str()),
        ];
        let mut texts = Vec::new();
        for (user, pw, code) in cases {
            let (_c, f) = login(&ts, user, pw, Message::TotpCode { code }).await;
            expect_error(&f, ErrorCode::AUTH_FAILED);
            texts.push(error_text(&f));
        }
        // One generic answer for every failure.
        assert!(texts.windows(2).all(|w| w[0] == w[1]), "{texts:?}");

        // The right password and code still work (failures were below the limit).
        let (_c, f) = login(&ts, "alice", PASSWORD, Message::TotpCode { code: &good }).await;
        assert!(
            matches!(f.msg(), Some(Message::Session { .. })),
            "{:?}",
            f.msg()
        );
    });
}

#[test]
fn replayed_totp_is_refused() {
    let ts = TestServer::start();
    run(async {
        let (_c, alice) = register(&ts, "alice", 0).await;
        // The enrollment code's step is already used: the same code cannot log in.
        let enrolled = totp::code_at(&alice.totp_secret, ts.now());
        let (_c, f) = login(
            &ts,
            "alice",
            PASSWORD,
            Message::TotpCode { code: &enrolled },
        )
        .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);

        ts.advance(30);
        let code = totp::code_at(&alice.totp_secret, ts.now());
        let (_c1, f) = login(&ts, "alice", PASSWORD, Message::TotpCode { code: &code }).await;
        assert!(matches!(f.msg(), Some(Message::Session { .. })));
        let (_c2, f) = login(&ts, "alice", PASSWORD, Message::TotpCode { code: &code }).await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        // An earlier step inside the window is refused too (steps only move forward).
        let earlier = totp::code_at(&alice.totp_secret, ts.now() - 30);
        let (_c3, f) = login(&ts, "alice", PASSWORD, Message::TotpCode { code: &earlier }).await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
    });
}

#[test]
fn recovery_code_works_once() {
    let ts = TestServer::start();
    run(async {
        let (_c, alice) = register(&ts, "alice", 0).await;
        let code = alice.recovery[3].to_uppercase();
        let (_c1, f) = login(
            &ts,
            "alice",
            PASSWORD,
            Message::RecoveryCode { code: &code },
        )
        .await;
        assert!(
            matches!(f.msg(), Some(Message::Session { .. })),
            "{:?}",
            f.msg()
        );
        let (_c2, f) = login(
            &ts,
            "alice",
            PASSWORD,
            Message::RecoveryCode { code: &code },
        )
        .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        // A recovery code with a wrong password is refused and not used up.
        let other = &alice.recovery[4];
        let (_c3, f) = login(
            &ts,
            "alice",
            "not the password at all",
            Message::RecoveryCode { code: other },
        )
        .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        let (_c4, f) = login(
            &ts,
            "alice",
            PASSWORD,
            Message::RecoveryCode { code: other },
        )
        .await;
        assert!(
            matches!(f.msg(), Some(Message::Session { .. })),
            "{:?}",
            f.msg()
        );
    });
}

#[test]
fn account_locks_after_too_many_failures() {
    let ts = TestServer::start_with(|c| {
        c.account_policy = Policy {
            max_per_hour: 3,
            free: 3,
            base_delay: 1,
            max_delay: 1,
        };
    });
    run(async {
        let (_c, alice) = register(&ts, "alice", 0).await;
        for _ in 0..3 {
            let (_c, f) = login(
                &ts,
                "alice",
                "a wrong password, friend",
                Message::TotpCode { code: "123456" },
            )
            .await;
            expect_error(&f, ErrorCode::AUTH_FAILED);
        }
        // Locked: even the right password and code are refused, before any hashing.
        ts.advance(30);
        let code = totp::code_at(&alice.totp_secret, ts.now());
        let (_c, f) = login(&ts, "alice", PASSWORD, Message::TotpCode { code: &code }).await;
        expect_error(&f, ErrorCode::RATE_LIMITED);
        // Unknown names are limited the same way (no hint about which names exist).
        for _ in 0..3 {
            let (_c, f) = login(
                &ts,
                "ghost",
                "whatever it may be",
                Message::TotpCode { code: "123456" },
            )
            .await;
            expect_error(&f, ErrorCode::AUTH_FAILED);
        }
        let (_c, f) = login(
            &ts,
            "ghost",
            "whatever it may be",
            Message::TotpCode { code: "123456" },
        )
        .await;
        expect_error(&f, ErrorCode::RATE_LIMITED);
        // An hour later the account works again.
        ts.advance(3600);
        let code = totp::code_at(&alice.totp_secret, ts.now());
        let (_c, f) = login(&ts, "alice", PASSWORD, Message::TotpCode { code: &code }).await;
        assert!(
            matches!(f.msg(), Some(Message::Session { .. })),
            "{:?}",
            f.msg()
        );
    });
}

#[test]
fn per_address_limit_applies_across_names() {
    let ts = TestServer::start_with(|c| {
        c.address_policy = Policy {
            max_per_hour: 4,
            free: 4,
            base_delay: 1,
            max_delay: 1,
        };
    });
    run(async {
        for i in 0..4 {
            let name = format!("guess{i}");
            let (_c, f) = login(
                &ts,
                &name,
                "some password here",
                Message::TotpCode { code: "123456" },
            )
            .await;
            expect_error(&f, ErrorCode::AUTH_FAILED);
        }
        let (_c, f) = login(
            &ts,
            "guess9",
            "some password here",
            Message::TotpCode { code: "123456" },
        )
        .await;
        expect_error(&f, ErrorCode::RATE_LIMITED);
    });
}

#[test]
fn registration_refusals_give_reasons() {
    let ts = TestServer::start();
    run(async {
        let device = Device::new(1);
        let opks = device.opk_list();
        let mut c = ts.connect().await;

        c.send(&register_msg(
            "alice",
            "password123",
            &device,
            &opks,
            "a@example.org",
        ))
        .await
        .unwrap();
        let f = recv(&mut c).await;
        expect_error(&f, ErrorCode::WEAK_PASSWORD);
        assert!(
            error_text(&f).contains("password is too easy to guess"),
            "{}",
            error_text(&f)
        );

        c.send(&register_msg(
            "alice",
            PASSWORD,
            &device,
            &opks,
            "not-an-email",
        ))
        .await
        .unwrap();
        let f = recv(&mut c).await;
        expect_error(&f, ErrorCode::INVALID_INPUT);
        assert!(error_text(&f).contains("email"));

        c.send(&register_msg(
            "a!",
            PASSWORD,
            &device,
            &opks,
            "a@example.org",
        ))
        .await
        .unwrap();
        let f = recv(&mut c).await;
        expect_error(&f, ErrorCode::INVALID_INPUT);
        assert!(error_text(&f).contains("username"));

        // A signed prekey whose signature is not by the identity key.
        let other = Device::new(0);
        let p = device.identity.public();
        let bad = Message::Register {
            name: "A",
            email: "a@example.org",
            username: "alice",
            password: PASSWORD,
            device: proto_core::DeviceKeys {
                identity_sig: Key32(p.signing),
                identity_dh: Key32(p.dh),
                signed_prekey: other.signed_prekey(),
                one_time_prekeys: proto_core::List::from_items(&opks),
            },
        };
        c.send(&bad).await.unwrap();
        let f = recv(&mut c).await;
        expect_error(&f, ErrorCode::INVALID_INPUT);
        assert!(error_text(&f).contains("signature"));

        let (_c, _alice) = register(&ts, "alice", 0).await;
        c.send(&register_msg(
            "ALICE",
            PASSWORD,
            &device,
            &opks,
            "a@example.org",
        ))
        .await
        .unwrap();
        expect_error(&recv(&mut c).await, ErrorCode::USERNAME_TAKEN);
    });
}

#[test]
fn unconfirmed_account_cannot_log_in() {
    let ts = TestServer::start();
    run(async {
        let (mut c, secret) = begin_registration(&ts, "bob").await;
        // A wrong code does not finish enrollment.
        c.send(&Message::ConfirmTotp { code: "000000" })
            .await
            .unwrap();
        let f = recv(&mut c).await;
        if totp::code_at(&secret, ts.now()) != "000000" {
            expect_error(&f, ErrorCode::AUTH_FAILED);
        }
        // Not confirmed: logging in fails like any other failure.
        ts.advance(30);
        let code = totp::code_at(&secret, ts.now());
        let (_c2, f) = login(&ts, "bob", PASSWORD, Message::TotpCode { code: &code }).await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
    });
}

#[test]
fn registrations_per_address_are_limited() {
    let ts = TestServer::start_with(|c| {
        c.registration_policy = Policy {
            max_per_hour: 2,
            free: 2,
            base_delay: 1,
            max_delay: 1,
        };
    });
    run(async {
        let (_a, _) = register(&ts, "first", 0).await;
        let (_b, _) = register(&ts, "second", 0).await;
        let mut c = ts.connect().await;
        send_registration(&mut c, "third").await;
        expect_error(&recv(&mut c).await, ErrorCode::RATE_LIMITED);
    });
}

#[test]
fn logins_abandoned_before_the_second_factor_still_count() {
    let ts = TestServer::start_with(|c| {
        c.account_policy = Policy {
            max_per_hour: 3,
            free: 3,
            base_delay: 1,
            max_delay: 1,
        };
    });
    run(async {
        let (_c, alice) = register(&ts, "alice", 0).await;
        for _ in 0..3 {
            let mut c = ts.connect().await;
            c.send(&Message::Login {
                username: "alice",
                password: "guess number something",
            })
            .await
            .unwrap();
            assert!(matches!(
                recv(&mut c).await.msg(),
                Some(Message::TotpRequired)
            ));
            // ...and never sends a code.
        }
        ts.advance(30);
        let code = totp::code_at(&alice.totp_secret, ts.now());
        let (_c, f) = login(&ts, "alice", PASSWORD, Message::TotpCode { code: &code }).await;
        expect_error(&f, ErrorCode::RATE_LIMITED);
    });
}

#[test]
fn a_registration_left_unconfirmed_expires() {
    let ts = TestServer::start_with(|c| c.sweep_interval = core::time::Duration::from_millis(50));
    run(async {
        let (mut c, secret) = begin_registration(&ts, "slowpoke").await;
        // Sixteen minutes later the sweeper has dropped it; a name squatter cannot hold it.
        ts.advance(16 * 60);
        let deadline = std::time::Instant::now() + WAIT;
        let (mut d, d_secret) = loop {
            let other = Device::new(0);
            let mut d = ts.connect().await;
            d.send(&register_msg(
                "slowpoke",
                PASSWORD,
                &other,
                &[],
                "t@example.org",
            ))
            .await
            .unwrap();
            let f = recv(&mut d).await;
            match f.msg() {
                Some(Message::TotpEnrollment { uri }) => {
                    let s = totp::secret_from_uri(uri).unwrap();
                    break (d, s);
                }
                Some(Message::Error { code, .. }) if code == ErrorCode::USERNAME_TAKEN => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the name was never freed"
                    );
                    smol::Timer::after(core::time::Duration::from_millis(20)).await;
                }
                other => panic!("{other:?}"),
            }
        };
        let code = totp::code_at(&secret, ts.now());
        c.send(&Message::ConfirmTotp { code: &code }).await.unwrap();
        let f = recv(&mut c).await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        assert!(error_text(&f).contains("expired"), "{}", error_text(&f));
        // The old connection's failure and close leave the new registration alone (SQLite may
        // have given it the same row id).
        drop(c);
        let code = totp::code_at(&d_secret, ts.now());
        d.send(&Message::ConfirmTotp { code: &code }).await.unwrap();
        assert!(matches!(
            recv(&mut d).await.msg(),
            Some(Message::EnrollmentComplete { .. })
        ));
    });
}

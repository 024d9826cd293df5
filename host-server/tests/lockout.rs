//! Nobody but the owner decides when an account is unusable: wrong passwords do not end a
//! valid session, and a registration abandoned at the code prompt frees its name at once.
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use host_server::auth::ratelimit::Policy;
use host_server::auth::totp;
use proto_core::{Key32, Message};

#[test]
fn wrong_passwords_never_lock_out_a_valid_session() {
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
        // A stranger (here from the same address, the worst case) locks the password path...
        for _ in 0..5 {
            let (_c, _f) = login(
                &ts,
                "alice",
                "a wrong password, friend",
                Message::TotpCode { code: "123456" },
            )
            .await;
        }
        // ...but alice's logged-in client resumes its session all the same.
        let mut c = ts.connect().await;
        c.send(&Message::Resume {
            username: "alice",
            token: Key32(alice.token),
        })
        .await
        .unwrap();
        let f = recv(&mut c).await;
        assert!(
            matches!(f.msg(), Some(Message::Session { .. })),
            "{:?}",
            f.msg()
        );
    });
}

#[test]
fn a_registration_abandoned_by_disconnecting_frees_the_username_at_once() {
    let ts = TestServer::start();
    run(async {
        // Register and hang up at the code prompt (Ctrl-C), as a squatter or a hurried user.
        let (c, _secret) = begin_registration(&ts, "carol").await;
        drop(c);
        // The name is free again right away, not after the 15-minute enrollment window.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (c, secret) = begin_registration_or_error(&ts, "carol").await;
            if secret.is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "carol is still taken after the first registration hung up"
            );
            let _ = c.close().await;
            smol::Timer::after(core::time::Duration::from_millis(50)).await;
        }
    });
}

/// Like [`begin_registration`], but `None` when the server refused.
async fn begin_registration_or_error(
    ts: &TestServer,
    username: &str,
) -> (host_server::client::Client, Option<Vec<u8>>) {
    let mut c = ts.connect().await;
    send_registration(&mut c, username).await;
    let f = recv(&mut c).await;
    let secret = match f.msg() {
        Some(Message::TotpEnrollment { uri }) => totp::secret_from_uri(uri),
        _ => None,
    };
    (c, secret)
}

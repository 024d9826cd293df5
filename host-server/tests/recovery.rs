//! Account recovery end to end, on both transports (native TLS frames and the browser's
//! WebSocket): change the password, enroll a new authenticator, replace and count recovery
//! codes, delete the account — each refused with a wrong password, a wrong code and a replayed
//! code. Real TLS on 127.0.0.1, real SQLite, a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use async_tungstenite::tungstenite::Message as WsMessage;
use common::*;
use futures_rustls::TlsConnector;
use host_server::auth::totp;
use host_server::client::{Client, Frame, client_config};
use host_server::outbox::encode;
use host_server::tls::ALPN_HTTP1;
use proto_core::{ErrorCode, Key32, Message};
use rustls::pki_types::ServerName;
use smol::Async;
use smol::stream::StreamExt;

type Tls = futures_rustls::client::TlsStream<Async<std::net::TcpStream>>;

/// One connection, over either transport.
enum Conn {
    Native(Box<Client>),
    Web(Box<async_tungstenite::WebSocketStream<Tls>>),
}

impl Conn {
    async fn open(ts: &TestServer, web: bool) -> Self {
        if !web {
            return Conn::Native(Box::new(ts.connect().await));
        }
        let config =
            client_config(&ts.fingerprint(), &[ALPN_HTTP1], &[&rustls::version::TLS13]).unwrap();
        let tcp = Async::<std::net::TcpStream>::connect(ts.addr())
            .await
            .unwrap();
        let tls = TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let port = ts.addr().port();
        let request = async_tungstenite::tungstenite::http::Request::builder()
            .uri(format!("wss://localhost:{port}/ws"))
            .header("Host", format!("localhost:{port}"))
            .header("Origin", format!("https://localhost:{port}"))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header(
                "Sec-WebSocket-Key",
                async_tungstenite::tungstenite::handshake::client::generate_key(),
            )
            .body(())
            .unwrap();
        let (ws, _) = async_tungstenite::client_async(request, tls).await.unwrap();
        Conn::Web(Box::new(ws))
    }

    async fn send(&mut self, m: &Message<'_>) {
        match self {
            Conn::Native(c) => c.send(m).await.unwrap(),
            Conn::Web(ws) => ws
                .send(WsMessage::Binary(encode(m).unwrap().into()))
                .await
                .unwrap(),
        }
    }

    /// The next frame that is not a push; `None` once the server closed the connection.
    async fn reply(&mut self) -> Option<Frame> {
        loop {
            let f = match self {
                Conn::Native(c) => c.recv_timeout(WAIT).await.ok()?,
                Conn::Web(ws) => {
                    let m = smol::future::or(async { ws.next().await }, async {
                        smol::Timer::after(WAIT).await;
                        None
                    })
                    .await?;
                    match m.ok()? {
                        WsMessage::Binary(b) => Frame(b.to_vec()),
                        WsMessage::Close(_) => return None,
                        _ => continue,
                    }
                }
            };
            match f.msg() {
                Some(
                    Message::PrekeysLow { .. }
                    | Message::KemPrekeysLow { .. }
                    | Message::Deliver { .. }
                    | Message::Delivered { .. }
                    | Message::RoomChanged { .. }
                    | Message::Ping { .. },
                ) => {}
                _ => return Some(f),
            }
        }
    }

    async fn ask(&mut self, m: &Message<'_>) -> Frame {
        self.send(m).await;
        self.reply().await.expect("a reply")
    }

    /// Resumes `user`'s session on this connection.
    async fn resume(ts: &TestServer, user: &User, web: bool) -> Self {
        let mut c = Self::open(ts, web).await;
        let f = c
            .ask(&Message::Resume {
                username: &user.name,
                token: Key32(user.token),
            })
            .await;
        assert!(
            matches!(f.msg(), Some(Message::Session { .. })),
            "{:?}",
            f.msg()
        );
        c
    }
}

/// The TOTP code `steps` steps from the server's now.
fn code(ts: &TestServer, secret: &[u8], steps: u64) -> String {
    totp::code_at(secret, ts.now() + 30 * steps)
}

const NEW_PASSWORD: &str = "a brand new passphrase for alice 9";

fn change_password_refusals_then_success(web: bool) {
    let ts = TestServer::start();
    run(async {
        let (_reg, alice) = register(&ts, "alice", 2).await;
        let mut c = Conn::resume(&ts, &alice, web).await;
        // A second session (another device, say), logged in on its own.
        ts.advance(30);
        let (mut other_conn, f) = login(
            &ts,
            "alice",
            PASSWORD,
            Message::TotpCode {
                code: &code(&ts, &alice.totp_secret, 0),
            },
        )
        .await;
        let Some(Message::Session {
            token: other_token, ..
        }) = f.msg()
        else {
            panic!("expected Session, got {:?}", f.msg())
        };
        ts.advance(30);
        let good = code(&ts, &alice.totp_secret, 0);

        // A weak new password, a wrong password, a wrong code: refused, nothing changed.
        let f = c
            .ask(&Message::ChangePassword {
                current: PASSWORD,
                new: "password1",
                code: &good,
            })
            .await;
        expect_error(&f, ErrorCode::WEAK_PASSWORD);
        let f = c
            .ask(&Message::ChangePassword {
                current: "not my password at all 77",
                new: NEW_PASSWORD,
                code: &good,
            })
            .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        ts.advance(30);
        let good = code(&ts, &alice.totp_secret, 0);
        let f = c
            .ask(&Message::ChangePassword {
                current: PASSWORD,
                new: NEW_PASSWORD,
                code: "000000",
            })
            .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        // The right password and code: changed.
        let f = c
            .ask(&Message::ChangePassword {
                current: PASSWORD,
                new: NEW_PASSWORD,
                code: &good,
            })
            .await;
        expect_ok(&f);
        // The same code again (a replay) is refused, even with the right password.
        let f = c
            .ask(&Message::ChangePassword {
                current: NEW_PASSWORD,
                new: PASSWORD,
                code: &good,
            })
            .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);

        // The other session's connection ended, its token was revoked; this one goes on.
        let mut ended = false;
        for _ in 0..8 {
            if other_conn.recv_timeout(WAIT).await.is_err() {
                ended = true;
                break;
            }
        }
        assert!(ended, "the other session's connection ends");
        let mut again = Conn::open(&ts, web).await;
        let f = again
            .ask(&Message::Resume {
                username: "alice",
                token: other_token,
            })
            .await;
        expect_error(&f, ErrorCode::SESSION_EXPIRED);
        let f = c.ask(&Message::ListRooms).await;
        assert!(
            matches!(f.msg(), Some(Message::Rooms { .. })),
            "{:?}",
            f.msg()
        );
        let _ = Conn::resume(&ts, &alice, !web).await;

        // Logins: the old password fails, the new one works (with a recovery code).
        let (_, f) = login(
            &ts,
            "alice",
            PASSWORD,
            Message::RecoveryCode {
                code: &alice.recovery[0],
            },
        )
        .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        let (_, f) = login(
            &ts,
            "alice",
            NEW_PASSWORD,
            Message::RecoveryCode {
                code: &alice.recovery[1],
            },
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
fn password_change_native() {
    change_password_refusals_then_success(false);
}

#[test]
fn password_change_websocket() {
    change_password_refusals_then_success(true);
}

fn new_authenticator_and_recovery_codes(web: bool) {
    let ts = TestServer::start();
    run(async {
        let (_reg, alice) = register(&ts, "alice", 2).await;
        let mut c = Conn::resume(&ts, &alice, web).await;

        // Recovery codes: counted, replaced (wrong password, a used code refused).
        let f = c.ask(&Message::CountRecoveryCodes).await;
        assert!(
            matches!(f.msg(), Some(Message::RecoveryCodesLeft { remaining: 10 })),
            "{:?}",
            f.msg()
        );
        let f = c
            .ask(&Message::RegenerateRecoveryCodes {
                password: "wrong password here 12",
                code: &alice.recovery[0],
            })
            .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        let f = c
            .ask(&Message::RegenerateRecoveryCodes {
                password: PASSWORD,
                code: &alice.recovery[1],
            })
            .await;
        let Some(Message::RecoveryCodes { codes }) = f.msg() else {
            panic!("expected RecoveryCodes, got {:?}", f.msg())
        };
        let fresh: Vec<String> = codes.iter().map(str::to_owned).collect();
        assert_eq!(fresh.len(), 10);
        // Every old code is gone, also the one the refused attempt (wrong password) left.
        let f = c
            .ask(&Message::RegenerateRecoveryCodes {
                password: PASSWORD,
                code: &alice.recovery[0],
            })
            .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        let f = c.ask(&Message::CountRecoveryCodes).await;
        assert!(
            matches!(f.msg(), Some(Message::RecoveryCodesLeft { remaining: 10 })),
            "{:?}",
            f.msg()
        );

        // A new authenticator, started with a recovery code (the old phone is lost).
        let f = c
            .ask(&Message::ReenrollTotp {
                password: PASSWORD,
                code: "not-a-code-at-all",
            })
            .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        let f = c
            .ask(&Message::ReenrollTotp {
                password: PASSWORD,
                code: &fresh[0],
            })
            .await;
        let Some(Message::TotpEnrollment { uri }) = f.msg() else {
            panic!("expected TotpEnrollment, got {:?}", f.msg())
        };
        let new_secret = totp::secret_from_uri(uri).unwrap();
        assert_ne!(new_secret, alice.totp_secret);
        // A code of the old secret does not confirm the new one.
        let f = c
            .ask(&Message::ConfirmNewTotp {
                code: &code(&ts, &alice.totp_secret, 0),
            })
            .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        ts.advance(30);
        let confirming = code(&ts, &new_secret, 0);
        expect_ok(&c.ask(&Message::ConfirmNewTotp { code: &confirming }).await);
        // Nothing left to confirm.
        let f = c.ask(&Message::ConfirmNewTotp { code: &confirming }).await;
        expect_error(&f, ErrorCode::BAD_STATE);

        // Logins: the old authenticator fails; the confirming code cannot be replayed; the
        // next code of the new one works.
        ts.advance(30);
        let (_, f) = login(
            &ts,
            "alice",
            PASSWORD,
            Message::TotpCode {
                code: &code(&ts, &alice.totp_secret, 0),
            },
        )
        .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        let (_, f) = login(
            &ts,
            "alice",
            PASSWORD,
            Message::TotpCode { code: &confirming },
        )
        .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        let (_, f) = login(
            &ts,
            "alice",
            PASSWORD,
            Message::TotpCode {
                code: &code(&ts, &new_secret, 0),
            },
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
fn new_authenticator_and_recovery_codes_native() {
    new_authenticator_and_recovery_codes(false);
}

#[test]
fn new_authenticator_and_recovery_codes_websocket() {
    new_authenticator_and_recovery_codes(true);
}

fn delete_the_account(web: bool) {
    let ts = TestServer::start();
    run(async {
        let (_a, alice) = register(&ts, "alice", 2).await;
        let (_b, bob) = register(&ts, "bob", 2).await;
        let mut bob_c = Conn::resume(&ts, &bob, false).await;
        let mut c = Conn::resume(&ts, &alice, web).await;
        let mut alice_elsewhere = Conn::resume(&ts, &alice, !web).await;
        // Alice administers a room Bob is in, and has mail waiting from Bob.
        expect_ok(&c.ask(&Message::CreateRoom { room: "team" }).await);
        invite_accepted_in(&mut c, &mut bob_c, "team", "bob").await;
        let f = bob_c
            .ask(&Message::SendToUser {
                to: "alice",
                client_id: 1,
                body: b"for alice",
            })
            .await;
        assert!(
            matches!(f.msg(), Some(Message::Accepted { .. })),
            "{:?}",
            f.msg()
        );

        ts.advance(30);
        let good = code(&ts, &alice.totp_secret, 0);
        let f = c
            .ask(&Message::DeleteAccount {
                password: "wrong password again 5",
                code: &good,
            })
            .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        ts.advance(30);
        let good = code(&ts, &alice.totp_secret, 0);
        let f = c
            .ask(&Message::DeleteAccount {
                password: PASSWORD,
                code: "123456",
            })
            .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        expect_ok(
            &c.ask(&Message::DeleteAccount {
                password: PASSWORD,
                code: &good,
            })
            .await,
        );
        // This connection and the other one of the account end.
        assert!(c.reply().await.is_none(), "the connection closes");
        assert!(
            alice_elsewhere.reply().await.is_none(),
            "every connection of the account ends"
        );

        // Bob hears she left; he is the room's admin now.
        let f = bob_c.ask(&Message::ListMembers { room: "team" }).await;
        let Some(Message::Members { admin, members, .. }) = f.msg() else {
            panic!("{:?}", f.msg())
        };
        assert_eq!(
            (admin, members.iter().collect::<Vec<_>>()),
            ("bob", vec!["bob"])
        );
        // She is unknown: no bundle, no login, no resume; the name is free.
        expect_error(
            &bob_c.ask(&Message::FetchBundle { username: "alice" }).await,
            ErrorCode::NOT_FOUND,
        );
        ts.advance(30);
        let (_, f) = login(
            &ts,
            "alice",
            PASSWORD,
            Message::TotpCode {
                code: &code(&ts, &alice.totp_secret, 0),
            },
        )
        .await;
        expect_error(&f, ErrorCode::AUTH_FAILED);
        let mut r = Conn::open(&ts, web).await;
        let f = r
            .ask(&Message::Resume {
                username: "alice",
                token: Key32(alice.token),
            })
            .await;
        expect_error(&f, ErrorCode::SESSION_EXPIRED);
        let (_again, _) = register(&ts, "alice", 1).await;
    });
}

/// `who` invited to `room` by `admin`'s connection, then accepting on theirs.
async fn invite_accepted_in(admin: &mut Conn, member: &mut Conn, room: &str, who: &str) {
    expect_ok(
        &admin
            .ask(&Message::Invite {
                room,
                username: who,
            })
            .await,
    );
    expect_ok(&member.ask(&Message::AcceptInvite { room }).await);
}

#[test]
fn delete_account_native() {
    delete_the_account(false);
}

#[test]
fn delete_account_websocket() {
    delete_the_account(true);
}

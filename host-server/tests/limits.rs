//! Transport and limits: malformed and oversized frames, TLS 1.2 refused, ALPN dispatch to
//! HTTPS and the WebSocket, idle pings, the connection cap, and a reader that stops reading.
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use core::time::Duration;
use std::time::Instant;

use async_tungstenite::tungstenite::Message as WsMessage;
use common::*;
use futures_rustls::TlsConnector;
use host_server::client::{Frame, client_config};
use host_server::outbox::encode;
use host_server::tls::{ALPN_HTTP1, ALPN_SEALROOM};
use proto_core::{ErrorCode, Message};
use rustls::pki_types::ServerName;
use smol::Async;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::stream::StreamExt;

#[test]
fn malformed_frames_are_refused_and_skipped_oversized_close() {
    let ts = TestServer::start();
    run(async {
        let mut bystander = ts.connect().await;
        let mut c = ts.connect().await;
        // A frame with a valid length but garbage inside: BAD_FRAME, and the connection lives.
        c.send_raw(&[0, 0, 0, 4, 1, 0xff, 0xff, 0xff])
            .await
            .unwrap();
        expect_error(&recv(&mut c).await, ErrorCode::BAD_FRAME);
        // An unknown version.
        c.send_raw(&[0, 0, 0, 2, 9, 0]).await.unwrap();
        expect_error(&recv(&mut c).await, ErrorCode::UNSUPPORTED_VERSION);
        // Trailing bytes inside the frame.
        let mut ping = encode(&Message::Ping { nonce: 1 }).unwrap();
        ping.push(0);
        let len = u32::try_from(ping.len() - 4).unwrap();
        ping[..4].copy_from_slice(&len.to_be_bytes());
        c.send_raw(&ping).await.unwrap();
        expect_error(&recv(&mut c).await, ErrorCode::BAD_FRAME);
        c.send(&Message::Ping { nonce: 2 }).await.unwrap();
        assert!(matches!(
            recv(&mut c).await.msg(),
            Some(Message::Pong { nonce: 2 })
        ));
        // A server-to-client message sent to the server.
        c.send(&Message::TotpRequired).await.unwrap();
        expect_error(&recv(&mut c).await, ErrorCode::BAD_STATE);
        // Requests needing a login.
        c.send(&Message::SendToUser {
            to: "x",
            client_id: 1,
            body: b"",
        })
        .await
        .unwrap();
        expect_error(&recv(&mut c).await, ErrorCode::BAD_STATE);

        // Announcing more than MAX_FRAME: TOO_LARGE, then the server closes.
        let too_big = u32::try_from(proto_core::limits::MAX_FRAME + 1).unwrap();
        c.send_raw(&too_big.to_be_bytes()).await.unwrap();
        expect_error(&recv(&mut c).await, ErrorCode::TOO_LARGE);
        assert!(
            c.recv_timeout(WAIT).await.is_err(),
            "connection should be closed"
        );

        // The other client carried on throughout.
        bystander.send(&Message::Ping { nonce: 3 }).await.unwrap();
        assert!(matches!(
            recv(&mut bystander).await.msg(),
            Some(Message::Pong { nonce: 3 })
        ));
    });
}

async fn tls_connect(
    ts: &TestServer,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::io::Result<futures_rustls::client::TlsStream<Async<std::net::TcpStream>>> {
    let config = client_config(&ts.fingerprint(), alpn, versions).unwrap();
    let tcp = Async::<std::net::TcpStream>::connect(ts.addr()).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

#[test]
fn tls_1_2_is_refused() {
    let ts = TestServer::start();
    run(async {
        let r = tls_connect(&ts, &[ALPN_SEALROOM], &[&rustls::version::TLS12]).await;
        assert!(r.is_err(), "a TLS 1.2-only client must not connect");
        let ok = tls_connect(&ts, &[ALPN_SEALROOM], &[&rustls::version::TLS13])
            .await
            .unwrap();
        assert_eq!(
            ok.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(ok.get_ref().1.alpn_protocol(), Some(ALPN_SEALROOM));
    });
}

#[test]
fn https_serves_the_page_with_strict_headers() {
    let ts = TestServer::start();
    run(async {
        let mut s = tls_connect(&ts, &[b"h2", ALPN_HTTP1], &[&rustls::version::TLS13])
            .await
            .unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(ALPN_HTTP1));
        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp).await;
        let text = String::from_utf8_lossy(&resp).to_lowercase();
        assert!(text.starts_with("http/1.1 200"), "{text}");
        for h in [
            "content-security-policy: default-src 'none'; script-src 'self'",
            "strict-transport-security: max-age=",
            "x-content-type-options: nosniff",
        ] {
            assert!(text.contains(h), "missing {h}");
        }
        assert!(text.contains("sealroom server"));

        let mut s = tls_connect(&ts, &[ALPN_HTTP1], &[&rustls::version::TLS13])
            .await
            .unwrap();
        s.write_all(
            b"GET /../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp).await;
        assert!(String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 404"));
    });
}

#[test]
fn websocket_carries_the_same_frames() {
    let ts = TestServer::start();
    run(async {
        // A browser-shaped session: register and enroll over the WebSocket, then message a
        // native client.
        let (mut native, _bob) = register(&ts, "bob", 0).await;
        let tls = tls_connect(&ts, &[ALPN_HTTP1], &[&rustls::version::TLS13])
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
        let (mut ws, _) = async_tungstenite::client_async(request, tls).await.unwrap();
        async fn ws_send(
            ws: &mut async_tungstenite::WebSocketStream<
                impl smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
            >,
            m: &Message<'_>,
        ) {
            ws.send(WsMessage::Binary(encode(m).unwrap().into()))
                .await
                .unwrap();
        }
        async fn ws_recv(
            ws: &mut async_tungstenite::WebSocketStream<
                impl smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
            >,
        ) -> Frame {
            loop {
                let m = smol::future::or(async { ws.next().await }, async {
                    smol::Timer::after(WAIT).await;
                    None
                })
                .await
                .expect("a WebSocket message in time")
                .unwrap();
                if let WsMessage::Binary(b) = m {
                    return Frame(b.to_vec());
                }
            }
        }
        ws_send(&mut ws, &Message::Ping { nonce: 5 }).await;
        assert!(matches!(
            ws_recv(&mut ws).await.msg(),
            Some(Message::Pong { nonce: 5 })
        ));
        // Text messages are not frames.
        ws.send(WsMessage::Text("hello".into())).await.unwrap();
        expect_error(&ws_recv(&mut ws).await, ErrorCode::BAD_FRAME);

        let device = Device::new(1);
        let opks = device.opk_list();
        ws_send(
            &mut ws,
            &register_msg("webby", PASSWORD, &device, &opks, "w@example.org"),
        )
        .await;
        let f = ws_recv(&mut ws).await;
        let Some(Message::TotpEnrollment { uri }) = f.msg() else {
            panic!("{:?}", f.msg())
        };
        let secret = host_server::auth::totp::secret_from_uri(uri).unwrap();
        let code = host_server::auth::totp::code_at(&secret, ts.now());
        ws_send(&mut ws, &Message::ConfirmTotp { code: &code }).await;
        assert!(matches!(
            ws_recv(&mut ws).await.msg(),
            Some(Message::EnrollmentComplete { .. })
        ));
        assert!(matches!(
            ws_recv(&mut ws).await.msg(),
            Some(Message::Session { .. })
        ));
        ws_send(
            &mut ws,
            &Message::SendToUser {
                to: "bob",
                client_id: 1,
                body: b"from the web",
            },
        )
        .await;
        loop {
            let f = ws_recv(&mut ws).await;
            if matches!(f.msg(), Some(Message::Accepted { client_id: 1, .. })) {
                break;
            }
        }
        loop {
            let f = recv(&mut native).await;
            if let Some(Message::Deliver { from, body, .. }) = f.msg() {
                assert_eq!((from, body), ("webby", &b"from the web"[..]));
                break;
            }
        }
        // A message larger than a frame may be is refused and the WebSocket closed.
        let huge = vec![0u8; proto_core::limits::MAX_FRAME_WIRE + 10];
        let _ = ws.send(WsMessage::Binary(huge.into())).await;
        let mut closed = false;
        for _ in 0..4 {
            match smol::future::or(async { ws.next().await }, async {
                smol::Timer::after(WAIT).await;
                None
            })
            .await
            {
                Some(Ok(WsMessage::Binary(b))) => {
                    expect_error(&Frame(b.to_vec()), ErrorCode::TOO_LARGE);
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                    closed = true;
                    break;
                }
                Some(Ok(_)) => {}
            }
        }
        assert!(closed);
    });
}

#[test]
fn cross_origin_websocket_is_refused() {
    let ts = TestServer::start();
    run(async {
        let mut s = tls_connect(&ts, &[ALPN_HTTP1], &[&rustls::version::TLS13])
            .await
            .unwrap();
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\nConnection: Upgrade\r\n\
Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 403"));
    });
}

#[test]
fn idle_connections_are_pinged_then_closed() {
    let ts = TestServer::start_with(|c| c.idle_timeout = Duration::from_millis(300));
    run(async {
        let mut c = ts.connect().await;
        let f = recv(&mut c).await;
        let Some(Message::Ping { nonce }) = f.msg() else {
            panic!("{:?}", f.msg())
        };
        // Answering keeps it open: the next ping comes, not a close.
        c.send(&Message::Pong { nonce }).await.unwrap();
        assert!(matches!(
            recv(&mut c).await.msg(),
            Some(Message::Ping { .. })
        ));
        // Silence after a ping: closed.
        assert!(c.recv_timeout(WAIT).await.is_err());
    });
}

#[test]
fn connections_over_the_cap_get_busy() {
    let ts = TestServer::start_with(|c| c.max_connections = 2);
    run(async {
        let mut a = ts.connect().await;
        let mut b = ts.connect().await;
        for c in [&mut a, &mut b] {
            c.send(&Message::Ping { nonce: 1 }).await.unwrap();
            assert!(matches!(recv(c).await.msg(), Some(Message::Pong { .. })));
        }
        let mut c = ts.connect().await;
        expect_error(&recv(&mut c).await, ErrorCode::BUSY);
        assert!(c.recv_timeout(WAIT).await.is_err());
        drop(a);
        // Once a slot frees, a new connection is served.
        let deadline = Instant::now() + WAIT;
        loop {
            let mut d = ts.connect().await;
            d.send(&Message::Ping { nonce: 2 }).await.unwrap();
            match recv(&mut d).await.msg() {
                Some(Message::Pong { .. }) => break,
                _ => assert!(Instant::now() < deadline, "slot never freed"),
            }
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn a_reader_that_stops_reading_is_disconnected() {
    let ts = TestServer::start_with(|c| {
        c.outbound_queue = 4;
        c.write_timeout = Duration::from_millis(500);
    });
    run(async {
        let (mut a, _alice) = register(&ts, "alice", 0).await;
        let (b, _bob) = register(&ts, "bob", 0).await;
        assert_eq!(ts.server().active_connections(), 2);
        // Bob never reads; Alice sends him far more than socket buffers hold.
        let body = vec![7u8; 60_000];
        for i in 0..200u64 {
            a.send(&Message::SendToUser {
                to: "bob",
                client_id: i,
                body: &body,
            })
            .await
            .unwrap();
            let f = recv_reply(&mut a).await;
            assert!(
                matches!(f.msg(), Some(Message::Accepted { .. })),
                "{:?}",
                f.msg()
            );
            if ts.server().active_connections() < 2 {
                break;
            }
        }
        let deadline = Instant::now() + WAIT;
        while ts.server().active_connections() >= 2 {
            assert!(
                Instant::now() < deadline,
                "the stuck reader was never disconnected"
            );
            smol::Timer::after(Duration::from_millis(20)).await;
        }
        // Alice is unaffected.
        a.send(&Message::Ping { nonce: 1 }).await.unwrap();
        assert!(matches!(
            recv_reply(&mut a).await.msg(),
            Some(Message::Pong { .. })
        ));
        drop(b);
    });
}

#[test]
fn certificate_is_kept_across_restarts_and_real_pem_files_load() {
    let mut ts = TestServer::start();
    let first = ts.fingerprint();
    ts.restart();
    assert_eq!(
        ts.fingerprint(),
        first,
        "the self-signed certificate must be reused"
    );

    // --cert/--key: a certificate made elsewhere, as PEM files.
    let made = rcgen::generate_simple_self_signed(vec!["chat.example.org".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("fullchain.pem"),
        dir.path().join("privkey.pem"),
    );
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let real = TestServer::start_with(|c| {
        c.cert = Some(cert.clone());
        c.key = Some(key.clone());
    });
    assert!(!real.server().identity.self_signed);
    assert_eq!(
        real.fingerprint(),
        host_server::tls::fingerprint(made.cert.der())
    );
    run(async {
        let mut c = real.connect().await;
        c.send(&Message::Ping { nonce: 4 }).await.unwrap();
        assert!(matches!(
            recv(&mut c).await.msg(),
            Some(Message::Pong { nonce: 4 })
        ));
    });

    // A key file that is not PEM is reported, not panicked on.
    std::fs::write(&key, b"not a key").unwrap();
    let bad_dir = tempfile::tempdir().unwrap();
    let mut config = test_config(bad_dir.path());
    config.cert = Some(cert);
    config.key = Some(key);
    let err =
        host_server::server::Server::start(config, host_server::clock::Clock::System).unwrap_err();
    assert!(err.to_string().contains("privkey.pem"), "{err}");
}

#[test]
fn a_silent_tcp_peer_is_dropped_at_the_handshake_timeout() {
    let ts = TestServer::start_with(|c| c.handshake_timeout = Duration::from_millis(200));
    run(async {
        let mut tcp = Async::<std::net::TcpStream>::connect(ts.addr())
            .await
            .unwrap();
        // Never send a ClientHello: the server gives up and closes.
        let mut buf = [0u8; 16];
        let n = smol::future::or(async { tcp.read(&mut buf).await.unwrap_or(0) }, async {
            smol::Timer::after(WAIT).await;
            usize::MAX
        })
        .await;
        assert_eq!(
            n, 0,
            "the server should close a connection that never handshakes"
        );
        let deadline = Instant::now() + WAIT;
        while ts.server().active_connections() > 0 {
            assert!(Instant::now() < deadline);
            smol::Timer::after(Duration::from_millis(10)).await;
        }
    });
}

#[test]
fn one_address_cannot_take_every_slot() {
    let ts = TestServer::start_with(|c| c.max_connections_per_address = 2);
    run(async {
        let mut a = ts.connect().await;
        let _b = ts.connect().await;
        let mut c = ts.connect().await;
        expect_error(&recv(&mut c).await, ErrorCode::BUSY);
        a.send(&Message::Ping { nonce: 1 }).await.unwrap();
        assert!(matches!(
            recv(&mut a).await.msg(),
            Some(Message::Pong { .. })
        ));
    });
}

//! sealroom-server's browser transport without a socket: the input is what the TLS layer hands
//! `host_server::http::serve_http` (HTTP/1.1 requests, and after a `/ws` upgrade, WebSocket
//! frames that go on to the connection handler), read in chunks of the size its first byte
//! gives (0: all at once), then end of stream. Each run gets a fresh in-memory server.
//!
//! Checks: no panic or hang; the reply starts as HTTP; the file beside the web root never
//! reaches the peer.
#![no_main]

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use host_server::clock::Clock;
use host_server::config::ServerConfig;
use host_server::server::Shutdown;
use host_server::store::{Db, MemoryStore};
use host_server::transport::Accepted;
use smol::io::{AsyncRead, AsyncWrite};

/// Bytes of a file outside the web root: they must never be served.
const CANARY: &[u8] = b"sealroom-fuzz-canary: outside the web root";
/// The most of the reply kept for the checks.
const MAX_REPLY: usize = 1 << 20;

/// A web root with a page and a script, and the canary file beside it.
static WEB_ROOT: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("sealroom-fuzz-http-{}", std::process::id()));
    let root = dir.join("www");
    std::fs::create_dir_all(root.join("js")).expect("web root");
    std::fs::write(root.join("index.html"), b"<!doctype html><title>t</title>").expect("page");
    std::fs::write(root.join("js/app.js"), b"export {};").expect("script");
    std::fs::write(dir.join("secret.txt"), CANARY).expect("canary");
    root
});

/// The peer's side of the stream: the fuzz input in, the server's reply kept.
struct Peer {
    input: Vec<u8>,
    read: usize,
    chunk: usize,
    reply: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Peer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let rest = &self.input[self.read..];
        let n = rest.len().min(buf.len()).min(self.chunk);
        buf[..n].copy_from_slice(&rest[..n]);
        self.read += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Peer {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut reply = self.reply.lock().expect("reply lock");
        let room = MAX_REPLY.saturating_sub(reply.len());
        reply.extend_from_slice(&buf[..buf.len().min(room)]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let mut config = ServerConfig::new(std::env::temp_dir().join("sealroom-fuzz-http-unused"));
    config.web_root = WEB_ROOT.clone();
    config.pbkdf2_rounds = 1; // every server start hashes a decoy password: keep it cheap
    config.idle_timeout = Duration::from_secs(3);
    config.write_timeout = Duration::from_secs(1);
    let db = Db::spawn(MemoryStore::new()).expect("store thread");
    let (clock, _) = Clock::manual(1_764_000_000);
    let executor = Arc::new(smol::Executor::new());
    let shared = host_server::Shared::new(config, db.clone(), clock, executor.clone());
    let reply = Arc::new(Mutex::new(Vec::new()));
    let peer = Peer {
        input: input.to_vec(),
        read: 0,
        chunk: if chunk == 0 { usize::MAX } else { usize::from(chunk) },
        reply: reply.clone(),
    };
    let addr = SocketAddr::from(([192, 0, 2, 1], 50_000));
    let accepted = Accepted {
        peer: addr,
        shutdown: Shutdown::new(),
        login_within: Duration::from_secs(3),
    };
    smol::block_on(executor.run(host_server::http::serve_http(shared, peer, accepted)));
    db.shutdown();

    let reply = reply.lock().expect("reply lock");
    assert!(
        !reply.windows(CANARY.len()).any(|w| w == CANARY),
        "a file outside the web root was served"
    );
    if !reply.is_empty() {
        // hyper answers an HTTP/1.0 request in HTTP/1.0.
        assert!(
            reply.starts_with(b"HTTP/1.1 ") || reply.starts_with(b"HTTP/1.0 "),
            "reply is not HTTP: {:?}",
            String::from_utf8_lossy(&reply[..reply.len().min(64)])
        );
    }
});

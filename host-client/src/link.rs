//! The connection to the server: TLS 1.3 with ALPN `sealroom/1`, the server's key either pinned
//! (trust on first use, see `known_servers` and `cert_pin`) or its certificate checked against
//! a CA file, and frames in and
//! out (docs/PROTOCOL.md §2), split and decoded by proto-core, once per frame.
//!
//! Replies come back in request order and go to the request's handler decoded; what the server
//! sends on its own (deliveries, receipts, room changes, prekey warnings: its pushes, §3.4) is
//! queued as an owned [`Push`] while a request waits for its reply. Pings are answered here.

use core::time::Duration;
use std::collections::VecDeque;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cert_pin::{Pin, PinVerifier, Presented};
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use proto_core::limits::MAX_FRAME_WIRE;
use proto_core::{Message, NextFrame, RoomChange, encode_frame, next_frame};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use smol::Async;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use crate::exit::{Exit, Failure};

/// ALPN id of the native frame transport.
pub(crate) const ALPN: &[u8] = b"sealroom/1";
/// How long a request waits for its reply.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting (TCP + TLS) may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How the server's certificate is trusted.
#[derive(Clone, Debug)]
pub(crate) enum Trust {
    /// Pinned (key pin, or an older certificate pin); `None` on first use (any certificate is
    /// accepted and recorded).
    Pin(Option<Pin>),
    /// Verified against the CA certificates in this PEM file (and the host name).
    Ca(PathBuf),
}

/// A live connection.
pub(crate) struct Link {
    stream: TlsStream<Async<TcpStream>>,
    /// Bytes read and not yet taken as frames.
    buf: Vec<u8>,
    /// Pushes that arrived while a request waited for its reply.
    pushes: VecDeque<Push>,
    /// The nonce of a ping taken off the buffer whose pong is not sent yet: kept here so that
    /// a read cancelled while answering still answers on the next one (the server ignores a
    /// second pong).
    pong_due: Option<u64>,
    /// The key and certificate digests of the server's certificate.
    pub(crate) presented: Presented,
}

impl core::fmt::Debug for Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Link")
            .field("presented", &self.presented)
            .finish_non_exhaustive()
    }
}

fn net(message: impl Into<String>) -> anyhow::Error {
    Failure::new(Exit::Network, message).into()
}

async fn timeout<T>(
    d: Duration,
    what: &str,
    fut: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let what = what.to_owned();
    smol::future::or(fut, async move {
        smol::Timer::after(d).await;
        Err(net(format!("{what}: no answer within {} s", d.as_secs())))
    })
    .await
}

fn split_host(server: &str) -> &str {
    // "[::1]:8443" → "::1"; "host:8443" → "host".
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Link {
    /// Connects to `server` (`host:port`) and completes the TLS handshake.
    pub(crate) async fn connect(server: &str, trust: &Trust) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut seen = Arc::new(Mutex::new(None));
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let mut config = match trust {
            Trust::Pin(expected) => {
                let verifier = PinVerifier::new(*expected, provider);
                seen = verifier.seen();
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth()
            }
            Trust::Ca(path) => {
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| anyhow::anyhow!("--ca {}: {e}", path.display()))?;
                for c in certs {
                    let c = c.map_err(|e| anyhow::anyhow!("--ca {}: {e}", path.display()))?;
                    roots.add(c)?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        config.alpn_protocols = vec![ALPN.to_vec()];
        let host = split_host(server).to_owned();
        let name = ServerName::try_from(host.clone())
            .map_err(|_| anyhow::anyhow!("`{server}` is not a valid host:port"))?;
        let addr = server
            .to_socket_addrs()
            .map_err(|e| net(format!("cannot resolve {server}: {e}")))?
            .next()
            .ok_or_else(|| net(format!("{server} resolves to no address")))?;
        let connecting = async {
            let tcp = Async::<TcpStream>::connect(addr)
                .await
                .map_err(|e| net(format!("cannot connect to {server}: {e}")))?;
            let _ = tcp.get_ref().set_nodelay(true);
            let stream = TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await;
            Ok(stream)
        };
        let stream = timeout(
            CONNECT_TIMEOUT,
            &format!("connecting to {server}"),
            connecting,
        )
        .await?;
        let seen = seen.lock().ok().and_then(|s| *s);
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                if let (Trust::Pin(Some(want)), Some(got)) = (trust, &seen)
                    && !got.matches(want)
                {
                    return Err(Changed {
                        server: server.to_owned(),
                        want: *want,
                        got: *got,
                    }
                    .into());
                }
                return Err(net(format!("TLS handshake with {server} failed: {e}")));
            }
        };
        let presented = match stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
        {
            Some(c) => Presented::of(c).map_err(|e| net(format!("{server}: {e}")))?,
            None => seen.ok_or_else(|| net(format!("{server} presented no certificate")))?,
        };
        if stream.get_ref().1.alpn_protocol() != Some(ALPN) {
            return Err(net(format!(
                "{server} does not speak the Sealroom protocol (ALPN)"
            )));
        }
        Ok(Self {
            stream,
            buf: Vec::new(),
            pushes: VecDeque::new(),
            pong_due: None,
            presented,
        })
    }

    /// Sends one message.
    pub(crate) async fn send(&mut self, msg: &Message<'_>) -> anyhow::Result<()> {
        let mut frame = vec![0u8; MAX_FRAME_WIRE];
        let n = encode_frame(msg, &mut frame).map_err(|e| anyhow::anyhow!("cannot encode: {e}"))?;
        frame.truncate(n);
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| net(format!("connection lost: {e}")))?;
        self.stream
            .flush()
            .await
            .map_err(|e| net(format!("connection lost: {e}")))?;
        Ok(())
    }

    /// Reads more bytes from the wire into the buffer.
    ///
    /// Cancel safe: a read that is dropped before it completes has taken no bytes.
    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(|e| net(format!("connection lost: {e}")))?;
        if n == 0 {
            return Err(net("the server closed the connection"));
        }
        let got = chunk.get(..n).ok_or_else(|| {
            net(format!(
                "the TLS stream reported {n} bytes read into 16 KiB"
            ))
        })?;
        self.buf.extend_from_slice(got);
        Ok(())
    }

    /// Takes the first whole frame off the buffer and decodes it, once (docs/PROTOCOL.md §2):
    /// a push becomes an owned [`Push`], a reply goes through `on_reply` (taken on first use;
    /// with none left it is [`Incoming::Unasked`]). `None` when no whole frame is buffered yet.
    ///
    /// Cancel safe: nothing awaits between the split and the return.
    fn take_frame<T>(
        &mut self,
        on_reply: &mut Option<impl FnOnce(Message<'_>) -> anyhow::Result<T>>,
    ) -> anyhow::Result<Option<Incoming<T>>> {
        let (incoming, wire_len) = match next_frame(&self.buf) {
            Err(_) => return Err(net("the server sent an oversized frame")),
            Ok(NextFrame::Incomplete) => return Ok(None),
            Ok(NextFrame::Whole { message, wire_len }) => {
                let incoming = match message {
                    Err(e) => Err(net(format!("the server sent a bad frame: {e}"))),
                    Ok(Message::Ping { nonce }) => Ok(Incoming::Ping(nonce)),
                    Ok(m) if m.is_push() => {
                        Ok(Push::from_message(&m).map_or(Incoming::Unasked, Incoming::Push))
                    }
                    Ok(m) => match on_reply.take() {
                        Some(f) => f(m).map(Incoming::Reply),
                        None => Ok(Incoming::Unasked),
                    },
                };
                (incoming, wire_len)
            }
        };
        // The frame is consumed whatever it held: a bad frame whose length was sound does not
        // desynchronise the stream.
        self.buf.drain(..wire_len);
        incoming.map(Some)
    }

    /// Answers the ping taken off the buffer last, if not done yet.
    async fn pong(&mut self) -> anyhow::Result<()> {
        if let Some(nonce) = self.pong_due {
            self.send(&Message::Pong { nonce }).await?;
            self.pong_due = None;
        }
        Ok(())
    }

    /// Sends `msg` and hands its reply, decoded once, to `on_reply`; pushes that arrive first
    /// are queued.
    pub(crate) async fn request<T>(
        &mut self,
        msg: &Message<'_>,
        on_reply: impl FnOnce(Message<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.send(msg).await?;
        self.reply(on_reply).await
    }

    /// Hands the next reply, decoded once, to `on_reply` (pushes before it are queued).
    pub(crate) async fn reply<T>(
        &mut self,
        on_reply: impl FnOnce(Message<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut on_reply = Some(on_reply);
        timeout(REPLY_TIMEOUT, "waiting for the server", async {
            loop {
                self.pong().await?;
                match self.take_frame(&mut on_reply)? {
                    None => self.fill().await?,
                    Some(Incoming::Reply(t)) => return Ok(t),
                    Some(Incoming::Push(p)) => self.pushes.push_back(p),
                    Some(Incoming::Ping(nonce)) => self.pong_due = Some(nonce),
                    Some(Incoming::Unasked) => {}
                }
            }
        })
        .await
    }

    /// Forgets the direct messages received so far and not yet handled, unacknowledged: a
    /// device that just replaced the account's identity cannot read them (they were sealed
    /// for the old one), and the server dropped them from the queue with that identity.
    /// Returns how many.
    pub(crate) fn forget_direct_deliveries(&mut self) -> usize {
        let before = self.pushes.len();
        self.pushes
            .retain(|p| !matches!(p, Push::Deliver { room: None, .. }));
        before - self.pushes.len()
    }

    /// The next push: a queued one, else the next from the wire (pings are answered, replies
    /// nobody waits for are dropped).
    ///
    /// Cancel safe (`chat` races it against the keyboard): a frame leaves the buffer only in
    /// the synchronous [`take_frame`](Self::take_frame), and a due pong is kept until sent.
    pub(crate) async fn next_push(&mut self) -> anyhow::Result<Push> {
        if let Some(p) = self.pushes.pop_front() {
            return Ok(p);
        }
        let mut no_reply: Option<fn(Message<'_>) -> anyhow::Result<()>> = None;
        loop {
            self.pong().await?;
            match self.take_frame(&mut no_reply)? {
                None => self.fill().await?,
                Some(Incoming::Push(p)) => return Ok(p),
                Some(Incoming::Ping(nonce)) => self.pong_due = Some(nonce),
                Some(Incoming::Reply(()) | Incoming::Unasked) => {}
            }
        }
    }

    /// A queued push, without reading.
    pub(crate) fn queued_push(&mut self) -> Option<Push> {
        self.pushes.pop_front()
    }

    /// Closes the TLS session politely.
    pub(crate) async fn close(mut self) {
        let _ = self.stream.close().await;
    }
}

/// The server's certificate does not match the pin `want`: what the handshake saw, for
/// [`changed`] to explain once the caller knows which file holds the pin.
#[derive(Debug, thiserror::Error)]
#[error("{server} presented the key {}, but it was pinned as {want}", got.key)]
pub(crate) struct Changed {
    /// `host:port`.
    pub(crate) server: String,
    /// The pin kept (or given with `--fingerprint`).
    pub(crate) want: Pin,
    /// What the server presented.
    pub(crate) got: Presented,
}

/// The refusal when the server's certificate does not match the pin `want` kept in `file`:
/// both fingerprints, the file, and the command that re-trusts the server.
pub(crate) fn changed(server: &str, want: &Pin, got: &Presented, file: &Path) -> anyhow::Error {
    Failure::new(
        Exit::CertificateChanged,
        format!(
            "@@@ THE SERVER'S CERTIFICATE HAS CHANGED @@@\n\
             {server} presented the key {}\n\
             (certificate SHA-256 {})\n\
             but it was pinned as {want} in {}.\n\
             Someone may be intercepting the connection, or the server got a new key. Nothing was \
             sent. Ask the server's operator for its key pin (the \"key (SPKI) SHA-256 pin\" line \
             it prints); only if it matches, trust it with\n  \
             sealroom servers trust {server} --fingerprint {}",
            got.key,
            got.certificate,
            file.display(),
            got.key
        ),
    )
    .into()
}

/// A frame taken off the wire, decoded.
enum Incoming<T> {
    /// The reply a request waited for, as its handler made it.
    Reply(T),
    /// Something the server sent unasked.
    Push(Push),
    /// A keep-alive to answer.
    Ping(u64),
    /// A reply no request waits for, or a push this client does not act on.
    Unasked,
}

/// What the server sends unasked ([`Message::is_push`]), owned, so that handling it can use the
/// link again. Pings are answered by the link and never surface.
#[derive(Clone, Debug)]
pub(crate) enum Push {
    /// A message for us (`Deliver`).
    Deliver {
        /// The server's id, acknowledged once the message is stored.
        server_id: u64,
        /// The sender.
        from: String,
        /// The room, for a room message.
        room: Option<String>,
        /// When the server accepted it.
        sent_at: u64,
        /// The ciphertext.
        body: Vec<u8>,
        /// The sending device (as the server says).
        device: u32,
    },
    /// One of our messages reached its recipient (`Delivered`).
    Delivered {
        /// The id the server gave it.
        server_id: u64,
        /// Which of the recipient's devices acknowledged it.
        device: u32,
    },
    /// Someone joined or left a room (`RoomChanged`).
    RoomChanged {
        /// The room.
        room: String,
        /// Whose membership changed.
        username: String,
        /// What happened.
        change: RoomChange,
    },
    /// Few one-time prekeys are left on the server (`PrekeysLow`).
    PrekeysLow {
        /// How many.
        remaining: u32,
    },
    /// Few one-time KEM prekeys are left on the server (`KemPrekeysLow`).
    KemPrekeysLow {
        /// How many.
        remaining: u32,
    },
}

impl Push {
    /// The owned push of a decoded message; `None` for a message that is no push.
    fn from_message(m: &Message<'_>) -> Option<Self> {
        Some(match *m {
            Message::Deliver {
                server_id,
                from,
                room,
                sent_at,
                body,
                device,
            } => Push::Deliver {
                server_id,
                from: from.to_owned(),
                room: room.map(str::to_owned),
                sent_at,
                body: body.to_vec(),
                device,
            },
            Message::Delivered {
                server_id, device, ..
            } => Push::Delivered { server_id, device },
            Message::RoomChanged {
                room,
                username,
                change,
            } => Push::RoomChanged {
                room: room.to_owned(),
                username: username.to_owned(),
                change,
            },
            Message::PrekeysLow { remaining } => Push::PrekeysLow { remaining },
            Message::KemPrekeysLow { remaining } => Push::KemPrekeysLow { remaining },
            _ => return None,
        })
    }
}

//! The connection to the server: TLS 1.3 with ALPN `sealroom/1`, the certificate either pinned
//! (trust on first use, see `known_servers`) or checked against a CA file, and frames in and
//! out (`u32` big-endian length, version, postcard message; see docs/PROTOCOL.md).
//!
//! Replies come back in request order; what the server sends on its own (deliveries, receipts,
//! room changes, prekey warnings) is queued as an event while a request waits for its reply.
//! Pings are answered here.

use core::time::Duration;
use std::collections::VecDeque;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cert_pin::PinVerifier;
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use proto_core::limits::{LENGTH_PREFIX_LEN, MAX_FRAME, MAX_FRAME_WIRE};
use proto_core::{Message, decode_frame, encode_frame};
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
    /// Pinned by fingerprint; `None` on first use (any certificate is accepted and recorded).
    Pin(Option<String>),
    /// Verified against the CA certificates in this PEM file (and the host name).
    Ca(PathBuf),
}

pub(crate) use cert_pin::fingerprint;

/// A live connection.
pub(crate) struct Link {
    stream: TlsStream<Async<TcpStream>>,
    buf: Vec<u8>,
    events: VecDeque<Vec<u8>>,
    /// The server certificate's fingerprint.
    pub(crate) fingerprint: String,
}

impl core::fmt::Debug for Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Link")
            .field("fingerprint", &self.fingerprint)
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
                let verifier = PinVerifier::new(expected.clone(), provider);
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
        let seen_fp = seen.lock().ok().and_then(|s| s.clone());
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                if let (Trust::Pin(Some(want)), Some(got)) = (trust, &seen_fp)
                    && !want.eq_ignore_ascii_case(got)
                {
                    return Err(Failure::new(
                        Exit::CertificateChanged,
                        format!(
                            "@@@ THE SERVER'S CERTIFICATE HAS CHANGED @@@\n\
                             {server} presented  {got}\n\
                             but it was pinned as {want}.\n\
                             Someone may be intercepting the connection, or the server got a new \
                             certificate. Ask the server's operator for the new fingerprint; if it \
                             matches, remove the line for {server} from the known-servers file and \
                             connect again. Nothing was sent."
                        ),
                    )
                    .into());
                }
                return Err(net(format!("TLS handshake with {server} failed: {e}")));
            }
        };
        let fingerprint = match stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
        {
            Some(c) => fingerprint(c),
            None => seen_fp.unwrap_or_default(),
        };
        if stream.get_ref().1.alpn_protocol() != Some(ALPN) {
            return Err(net(format!(
                "{server} does not speak the Sealroom protocol (ALPN)"
            )));
        }
        Ok(Self {
            stream,
            buf: Vec::new(),
            events: VecDeque::new(),
            fingerprint,
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

    /// Reads the next frame from the wire, answering pings.
    async fn read_frame(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            if let Some(prefix) = self.buf.first_chunk::<LENGTH_PREFIX_LEN>() {
                let len = u32::from_be_bytes(*prefix) as usize;
                if len > MAX_FRAME {
                    return Err(net("the server sent an oversized frame"));
                }
                let total = LENGTH_PREFIX_LEN + len;
                if self.buf.len() >= total {
                    let frame: Vec<u8> = self.buf.drain(..total).collect();
                    if let Ok((Message::Ping { nonce }, _)) = decode_frame(&frame) {
                        self.send(&Message::Pong { nonce }).await?;
                        continue;
                    }
                    return Ok(frame);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| net(format!("connection lost: {e}")))?;
            if n == 0 {
                return Err(net("the server closed the connection"));
            }
            self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
        }
    }

    /// Sends `msg` and returns the reply frame; events that arrive first are queued.
    pub(crate) async fn request(&mut self, msg: &Message<'_>) -> anyhow::Result<Vec<u8>> {
        self.send(msg).await?;
        self.reply().await
    }

    /// The next reply frame (events before it are queued).
    pub(crate) async fn reply(&mut self) -> anyhow::Result<Vec<u8>> {
        timeout(REPLY_TIMEOUT, "waiting for the server", async {
            loop {
                let frame = self.read_frame().await?;
                match decode_frame(&frame) {
                    Ok((m, _)) if is_event(&m) => self.events.push_back(frame),
                    Ok(_) => return Ok(frame),
                    Err(e) => return Err(net(format!("the server sent a bad frame: {e}"))),
                }
            }
        })
        .await
    }

    /// The next event: a queued one, else the next frame from the wire.
    pub(crate) async fn next_event(&mut self) -> anyhow::Result<Vec<u8>> {
        if let Some(f) = self.events.pop_front() {
            return Ok(f);
        }
        self.read_frame().await
    }

    /// A queued event, without reading.
    pub(crate) fn queued_event(&mut self) -> Option<Vec<u8>> {
        self.events.pop_front()
    }

    /// Closes the TLS session politely.
    pub(crate) async fn close(mut self) {
        let _ = self.stream.close().await;
    }
}

/// What the server sends unasked.
pub(crate) fn is_event(m: &Message<'_>) -> bool {
    matches!(
        m,
        Message::Deliver { .. }
            | Message::Delivered { .. }
            | Message::RoomChanged { .. }
            | Message::PrekeysLow { .. }
            | Message::Ping { .. }
    )
}

/// Decodes a frame this module returned (it was checked when read).
pub(crate) fn decode(frame: &[u8]) -> anyhow::Result<Message<'_>> {
    decode_frame(frame)
        .map(|(m, _)| m)
        .map_err(|e| net(format!("the server sent a bad frame: {e}")))
}

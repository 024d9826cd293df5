//! A minimal native client: TLS 1.3 with ALPN `sealroom/1`, the server pinned by its key pin
//! (`sha256/…`) or certificate fingerprint (`AA:BB:…`, see `cert_pin`), frames in and out.
//! Used by the tests and the load generator; the real client lives in host-client.

use core::time::Duration;
use std::io;
use std::sync::Arc;

use cert_pin::PinVerifier;
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use proto_core::{FrameHeader, Message, decode_frame};
use rustls::pki_types::ServerName;
use smol::Async;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use crate::tls::ALPN_SEALROOM;

/// A client TLS configuration pinning `fingerprint` (either form of `cert_pin::Pin`), offering
/// `alpn`, for these versions.
pub fn client_config(
    fingerprint: &str,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let pin: cert_pin::Pin = fingerprint
        .parse()
        .map_err(|e: cert_pin::PinError| rustls::Error::General(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinVerifier::new(Some(pin), provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A frame received, owned; [`Frame::msg`] decodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame(pub Vec<u8>);

impl Frame {
    /// The message (`None` if the server sent a bad frame, which it never should).
    pub fn msg(&self) -> Option<Message<'_>> {
        decode_frame(&self.0).ok().map(|(m, _)| m)
    }
}

/// One native connection.
pub struct Client {
    stream: TlsStream<Async<std::net::TcpStream>>,
    buf: Vec<u8>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn other(e: impl core::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Client {
    /// Connects with ALPN `sealroom/1`, pinning the server's certificate fingerprint.
    pub async fn connect(addr: core::net::SocketAddr, fingerprint: &str) -> io::Result<Self> {
        let config = client_config(fingerprint, &[ALPN_SEALROOM], &[&rustls::version::TLS13])
            .map_err(other)?;
        let tcp = Async::<std::net::TcpStream>::connect(addr).await?;
        tcp.get_ref().set_nodelay(true)?;
        let name = ServerName::try_from("localhost").map_err(other)?;
        let stream = TlsConnector::from(config).connect(name, tcp).await?;
        Ok(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &Message<'_>) -> io::Result<()> {
        let frame = crate::outbox::encode(msg).ok_or_else(|| other("message too large"))?;
        self.send_raw(&frame).await
    }

    /// Sends raw bytes (for malformed-frame tests).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Receives the next frame, waiting at most `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> io::Result<Frame> {
        let fut = self.recv();
        smol::future::or(fut, async {
            smol::Timer::after(timeout).await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "no frame in time"))
        })
        .await
    }

    /// Receives the next frame (split off by proto-core's [`FrameHeader`]; decoded when the
    /// caller asks, by [`Frame::msg`]).
    pub async fn recv(&mut self) -> io::Result<Frame> {
        loop {
            let header = FrameHeader::parse(&self.buf)
                .map_err(|e| other(format!("server sent a bad frame: {e}")))?;
            if let Some(h) = header.filter(|h| self.buf.len() >= h.wire_len()) {
                let rest = self.buf.split_off(h.wire_len());
                return Ok(Frame(core::mem::replace(&mut self.buf, rest)));
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).await?;
            let read = chunk
                .get(..n)
                .filter(|r| !r.is_empty())
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))?;
            self.buf.extend_from_slice(read);
        }
    }

    /// Closes the TLS session.
    pub async fn close(mut self) -> io::Result<()> {
        self.stream.close().await
    }
}

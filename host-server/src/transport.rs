//! The native transport: frames back to back on a byte stream (TLS with ALPN `sealroom/1`).
//!
//! The length prefix is checked against `MAX_FRAME` before any of the frame is buffered; a
//! larger one gets `TOO_LARGE` and the connection is closed (the stream cannot resync). A
//! silent peer is pinged after the idle timeout and dropped after twice that. Reads are
//! single `read` calls raced against timers and the kill switch, so cancelling one never loses
//! bytes.

use core::net::SocketAddr;
use core::time::Duration;
use std::sync::Arc;

use proto_core::limits::{LENGTH_PREFIX_LEN, MAX_FRAME};
use proto_core::{ErrorCode, Message};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Shared;
use crate::auth::address_key;
use crate::connection::{Connection, Flow};
use crate::outbox::{Outbox, OutboxRx};
use crate::server::Shutdown;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;

enum Event {
    Read(std::io::Result<usize>),
    Timeout,
    Stop,
}

/// Serves one native connection until it ends.
pub async fn serve_native<S>(shared: Arc<Shared>, stream: S, peer: SocketAddr, shutdown: Shutdown)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut reader, writer) = smol::io::split(stream);
    let (out, rx) = Outbox::new(shared.config.outbound_queue);
    let writer_task = shared.spawn(write_frames(writer, rx, shared.config.write_timeout));
    let mut conn = Connection::new(shared.clone(), address_key(peer.ip()), out.clone());
    let idle = shared.config.idle_timeout;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut pinged = false;
    let mut nonce = 0u64;

    'conn: loop {
        let event = smol::future::or(
            async { Event::Read(reader.read(&mut chunk).await) },
            smol::future::or(
                async {
                    smol::Timer::after(idle).await;
                    Event::Timeout
                },
                async {
                    smol::future::or(out.killed(), shutdown.wait()).await;
                    Event::Stop
                },
            ),
        )
        .await;
        match event {
            Event::Read(Ok(0)) | Event::Read(Err(_)) | Event::Stop => break,
            Event::Read(Ok(n)) => {
                pinged = false;
                buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
            }
            Event::Timeout if !pinged => {
                pinged = true;
                nonce = nonce.wrapping_add(1);
                out.push(&Message::Ping { nonce });
                continue;
            }
            Event::Timeout => {
                tracing::debug!(%peer, "idle timeout");
                break;
            }
        }
        // Hand over every whole frame now buffered.
        while let Some(prefix) = buf.first_chunk::<LENGTH_PREFIX_LEN>() {
            let len = u32::from_be_bytes(*prefix) as usize;
            if len > MAX_FRAME {
                out.push(&Message::Error {
                    code: ErrorCode::TOO_LARGE,
                    text: "frame exceeds the maximum size; closing",
                });
                break 'conn;
            }
            let total = LENGTH_PREFIX_LEN + len;
            if buf.len() < total {
                break;
            }
            let flow = conn.handle_frame(buf.get(..total).unwrap_or(&[])).await;
            buf.drain(..total);
            if flow == Flow::Close {
                break 'conn;
            }
        }
    }
    conn.close().await;
    drop(conn);
    // Let the writer flush what is queued (the last error, say), bounded by the write timeout.
    out.close();
    let _ = smol::future::or(writer_task, async {
        smol::Timer::after(shared.config.write_timeout).await;
    })
    .await;
}

async fn write_frames<W: AsyncWrite + Unpin>(mut w: W, rx: OutboxRx, timeout: Duration) {
    loop {
        let frame = smol::future::or(async { rx.frames.recv().await.ok() }, async {
            let _ = rx.killed.recv().await;
            None
        })
        .await;
        let Some(frame) = frame else { break };
        let wrote = smol::future::or(
            async {
                w.write_all(&frame).await?;
                // Flush only when nothing else is queued: one TLS record for a burst.
                if rx.frames.is_empty() {
                    w.flush().await?;
                }
                Ok::<bool, std::io::Error>(true)
            },
            async {
                smol::Timer::after(timeout).await;
                Ok(false)
            },
        )
        .await;
        match wrote {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("write timed out: the peer stopped reading; disconnecting");
                rx.killed.close();
                break;
            }
            Err(_) => {
                rx.killed.close();
                break;
            }
        }
    }
    let _ = w.flush().await;
    let _ = w.close().await;
}

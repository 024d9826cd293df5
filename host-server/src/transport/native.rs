//! The native transport: frames back to back on a byte stream (TLS with ALPN `sealroom/1`).
//!
//! Frames are split off the received bytes by proto-core ([`next_frame`]), which checks the
//! length prefix against `MAX_FRAME` before any of the frame is buffered; a larger one gets
//! `TOO_LARGE` and the connection is closed (the stream cannot resync). Reads are single
//! `read` calls, so losing the race against a timer never loses bytes.

use core::time::Duration;
use std::sync::Arc;

use proto_core::{ErrorCode, Message, NextFrame, next_frame};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf};

use super::{Peer, Step, drive, within};
use crate::Shared;
use crate::auth::address_key;
use crate::connection::{Connection, Flow};
use crate::outbox::{Outbox, OutboxRx};
use crate::transport::Accepted;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;

struct Stream<S> {
    reader: ReadHalf<S>,
    chunk: Vec<u8>,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Peer for Stream<S> {
    type Input = usize;

    async fn recv(&mut self) -> Option<usize> {
        match self.reader.read(&mut self.chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        }
    }

    async fn handle(&mut self, n: usize, conn: &mut Connection) -> Step {
        let Some(read) = self.chunk.get(..n) else {
            return Step::End;
        };
        self.buf.extend_from_slice(read);
        // Hand over every whole frame now buffered, each decoded once.
        loop {
            let (flow, used) = match next_frame(&self.buf) {
                Ok(NextFrame::Incomplete) => return Step::Active,
                Ok(NextFrame::Whole { message, wire_len }) => {
                    (conn.handle_message(message).await, wire_len)
                }
                Err(_) => {
                    conn.out.push(&Message::Error {
                        code: ErrorCode::TOO_LARGE,
                        text: "frame exceeds the maximum size; closing",
                    });
                    return Step::End;
                }
            };
            self.buf.drain(..used);
            if flow == Flow::Close {
                return Step::End;
            }
        }
    }
}

/// Serves one native connection until it ends.
pub async fn serve_native<S>(shared: Arc<Shared>, stream: S, accepted: Accepted)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (reader, writer) = smol::io::split(stream);
    let (out, rx) = Outbox::new(shared.config.outbound_queue);
    let writer_task = shared.spawn(write_frames(writer, rx, shared.config.write_timeout));
    let mut conn = Connection::new(shared.clone(), address_key(accepted.peer.ip()), out.clone());
    conn.set_login_within(accepted.login_within);
    let mut stream = Stream {
        reader,
        chunk: vec![0u8; READ_CHUNK],
        buf: Vec::new(),
    };
    drive(
        &mut stream,
        &mut conn,
        &accepted.shutdown,
        shared.config.idle_timeout,
    )
    .await;
    drop(conn);
    // Let the writer flush what is queued (the last error, say), bounded by the write timeout.
    out.close();
    let _ = within(shared.config.write_timeout, writer_task).await;
}

async fn write_frames<W: AsyncWrite + Unpin>(mut w: W, rx: OutboxRx, timeout: Duration) {
    loop {
        let frame = smol::future::or(async { rx.frames.recv().await.ok() }, async {
            let _ = rx.killed.recv().await;
            None
        })
        .await;
        let Some(frame) = frame else { break };
        let wrote = within(timeout, async {
            w.write_all(&frame).await?;
            // Flush only when nothing else is queued: one TLS record for a burst.
            if rx.frames.is_empty() {
                w.flush().await?;
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        match wrote {
            Some(Ok(())) => {}
            None => {
                tracing::info!("write timed out: the peer stopped reading; disconnecting");
                rx.killed.close();
                break;
            }
            Some(Err(_)) => {
                rx.killed.close();
                break;
            }
        }
    }
    let _ = w.flush().await;
    let _ = w.close().await;
}

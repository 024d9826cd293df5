//! The browser transport: one whole frame (prefix included) per binary WebSocket message, into
//! the same [`Connection`] handler as the native transport. The HTTP side that upgrades to it
//! is the `http` module.

use core::time::Duration;
use std::sync::Arc;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use hyper::body::Bytes;
use proto_core::{ErrorCode, Message};
use smol::io::{AsyncRead, AsyncWrite};
use smol::stream::StreamExt;

use super::{Peer, Step, drive, within};
use crate::Shared;
use crate::auth::address_key;
use crate::connection::{Connection, Flow};
use crate::outbox::{Outbox, OutboxRx, encode};
use crate::transport::Accepted;

enum Input {
    /// A frame of ours to send; `None` once the outbox is closed.
    Out(Option<Vec<u8>>),
    /// What the browser sent; `None` once the socket ended.
    In(Option<Result<WsMessage, WsError>>),
}

struct Socket<S> {
    ws: WebSocketStream<S>,
    rx: OutboxRx,
    write_timeout: Duration,
    /// The connection asked to close: stop reading, send what is queued, then end.
    closing: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer for Socket<S> {
    type Input = Input;

    async fn recv(&mut self) -> Option<Input> {
        // Replies first, so a burst of requests cannot starve them.
        let input = smol::future::or(
            async { Input::Out(self.rx.frames.recv().await.ok()) },
            async {
                if self.closing {
                    core::future::pending::<()>().await;
                }
                Input::In(self.ws.next().await)
            },
        )
        .await;
        Some(input)
    }

    async fn handle(&mut self, input: Input, conn: &mut Connection) -> Step {
        match input {
            Input::Out(Some(frame)) => {
                let sent = within(
                    self.write_timeout,
                    self.ws.send(WsMessage::Binary(frame.into())),
                )
                .await
                .is_some_and(|r| r.is_ok());
                if sent { Step::Quiet } else { Step::End }
            }
            Input::Out(None) | Input::In(None) | Input::In(Some(Ok(WsMessage::Close(_)))) => {
                Step::End
            }
            Input::In(Some(Ok(WsMessage::Binary(data)))) => {
                if conn.handle_frame(&data).await == Flow::Close {
                    self.closing = true;
                    conn.out.close();
                }
                Step::Active
            }
            Input::In(Some(Ok(WsMessage::Text(_)))) => {
                conn.out.push(&Message::Error {
                    code: ErrorCode::BAD_FRAME,
                    text: "send frames as binary WebSocket messages",
                });
                Step::Active
            }
            Input::In(Some(Ok(_))) => Step::Active,
            Input::In(Some(Err(e))) => {
                if matches!(e, WsError::Capacity(_))
                    && let Some(frame) = encode(&Message::Error {
                        code: ErrorCode::TOO_LARGE,
                        text: "frame exceeds the maximum size; closing",
                    })
                {
                    let _ = self.ws.send(WsMessage::Binary(Bytes::from(frame))).await;
                }
                Step::End
            }
        }
    }
}

/// Serves one upgraded WebSocket until it ends.
pub async fn serve_ws<S>(shared: Arc<Shared>, ws: WebSocketStream<S>, accepted: Accepted)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (out, rx) = Outbox::new(shared.config.outbound_queue);
    let mut conn = Connection::new(shared.clone(), address_key(accepted.peer.ip()), out);
    conn.set_login_within(accepted.login_within);
    let write_timeout = shared.config.write_timeout;
    let mut socket = Socket {
        ws,
        rx,
        write_timeout,
        closing: false,
    };
    drive(
        &mut socket,
        &mut conn,
        &accepted.shutdown,
        shared.config.idle_timeout,
    )
    .await;
    let _ = within(write_timeout, socket.ws.close(None)).await;
}

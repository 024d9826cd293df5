//! The two transports and the one loop they share.
//!
//! [`native`] carries frames back to back on the TLS stream (ALPN `sealroom/1`); [`ws`] carries
//! one frame per binary WebSocket message (the browser). Both run [`drive`]: wait for the peer,
//! the idle timer, the connection's kill switch or the server's shutdown; ping a silent peer
//! after the idle timeout and drop it after twice that; close a connection that has not
//! logged in by its deadline; and close the [`Connection`] however the loop ends. Waiting is cancel-safe: a transport's [`Peer::recv`] loses nothing when the
//! timer wins the race, and handling is never raced.

pub mod native;
pub mod ws;

use core::time::Duration;

use proto_core::{ErrorCode, Message};

use crate::connection::Connection;
use crate::shutdown::Shutdown;

/// A connection as the listener hands it to its transport.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Who connected.
    pub peer: core::net::SocketAddr,
    /// The server's stop signal.
    pub shutdown: Shutdown,
    /// Time it has to log in.
    pub login_within: Duration,
}

/// What handling one input did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The peer said something: it is alive (resets the keep-alive ping).
    Active,
    /// We wrote something; the peer's silence still counts.
    Quiet,
    /// The connection ends.
    End,
}

/// A transport's side of [`drive`].
pub(crate) trait Peer {
    /// One thing from the peer or for it.
    type Input;
    /// Waits for the next input; `None` when the peer is gone. Must be cancel-safe.
    async fn recv(&mut self) -> Option<Self::Input>;
    /// Handles one input (never raced against anything).
    async fn handle(&mut self, input: Self::Input, conn: &mut Connection) -> Step;
}

enum Event<T> {
    Input(Option<T>),
    Timeout,
    Stop,
    /// The connection did not log in in time.
    Deadline,
}

/// Runs a connection until the peer leaves, goes silent, is killed, or the server stops.
pub(crate) async fn drive<P: Peer>(
    peer: &mut P,
    conn: &mut Connection,
    shutdown: &Shutdown,
    idle: Duration,
) {
    let out = conn.out.clone();
    let mut pinged = false;
    let mut nonce = 0u64;
    loop {
        let deadline = conn.auth_deadline();
        let event = smol::future::or(
            async { Event::Input(peer.recv().await) },
            smol::future::or(
                async {
                    smol::Timer::after(idle).await;
                    Event::Timeout
                },
                async {
                    smol::future::or(
                        async {
                            smol::future::or(out.killed(), shutdown.wait()).await;
                            Event::Stop
                        },
                        async {
                            match deadline {
                                Some(at) => smol::Timer::at(at).await,
                                None => core::future::pending().await,
                            };
                            Event::Deadline
                        },
                    )
                    .await
                },
            ),
        )
        .await;
        match event {
            Event::Input(None) | Event::Stop => break,
            Event::Input(Some(input)) => match peer.handle(input, conn).await {
                Step::Active => pinged = false,
                Step::Quiet => {}
                Step::End => break,
            },
            Event::Timeout if !pinged => {
                pinged = true;
                nonce = nonce.wrapping_add(1);
                out.push(&Message::Ping { nonce });
            }
            Event::Timeout => {
                tracing::debug!("idle timeout");
                break;
            }
            Event::Deadline => {
                tracing::debug!("not logged in in time");
                out.push(&Message::Error {
                    code: ErrorCode::BAD_STATE,
                    text: "log in sooner: the connection was open too long without a login",
                });
                break;
            }
        }
    }
    conn.close().await;
}

/// Waits for `fut`, at most `timeout`; `None` if the time ran out.
pub(crate) async fn within<T>(timeout: Duration, fut: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(fut.await) }, async {
        smol::Timer::after(timeout).await;
        None
    })
    .await
}

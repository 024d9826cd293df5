//! A connection's bounded outbound queue of encoded frames, and its kill switch.
//!
//! Frames from anywhere in the server (replies, pushes to a live recipient) go through an
//! [`Outbox`]. The queue is bounded: a push that finds it full means the peer stopped reading,
//! and the connection is killed instead of letting memory grow.

use proto_core::limits::MAX_FRAME_WIRE;
use proto_core::{Message, encode_frame};
use smol::channel::{Receiver, Sender, TrySendError};

/// Sending side of a connection's queue (cheap to clone).
#[derive(Clone, Debug)]
pub struct Outbox {
    frames: Sender<Vec<u8>>,
    // Nothing is ever sent on the kill channel: closing it is the signal. The sender is held
    // only to keep the channel open while any outbox lives.
    _kill_keepalive: Sender<()>,
    kill: Receiver<()>,
}

/// Receiving side, owned by the connection's writer.
#[derive(Debug)]
pub struct OutboxRx {
    /// Encoded frames, in order.
    pub frames: Receiver<Vec<u8>>,
    /// Closed when the connection must end at once.
    pub killed: Receiver<()>,
}

/// Encodes one message as a frame (prefix included).
pub fn encode(msg: &Message<'_>) -> Option<Vec<u8>> {
    let len = proto_core::frame_len(msg).ok()?;
    let mut buf = vec![0u8; len.min(MAX_FRAME_WIRE)];
    let n = encode_frame(msg, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

impl Outbox {
    /// A queue of `capacity` frames.
    pub fn new(capacity: usize) -> (Self, OutboxRx) {
        let (tx, rx) = smol::channel::bounded(capacity.max(1));
        let (ktx, krx) = smol::channel::bounded(1);
        (
            Self {
                frames: tx,
                _kill_keepalive: ktx,
                kill: krx.clone(),
            },
            OutboxRx {
                frames: rx,
                killed: krx,
            },
        )
    }

    /// Queues a message without waiting; a full queue kills the connection. `false` if the
    /// frame was not queued.
    pub fn push(&self, msg: &Message<'_>) -> bool {
        match encode(msg) {
            Some(frame) => self.push_frame(frame),
            None => {
                tracing::error!(message = msg.name(), "a reply did not fit in a frame");
                false
            }
        }
    }

    /// As [`push`](Self::push), for an encoded frame.
    pub fn push_frame(&self, frame: Vec<u8>) -> bool {
        match self.frames.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::info!("outbound queue full: the peer stopped reading; disconnecting");
                self.kill();
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a frame if the queue is below the delivery limit (see
    /// [`send_frame`](Self::send_frame)), never killing the connection; `false` if it was not
    /// queued. For pushes that have somewhere else to go (a receipt that can be stored) or may
    /// be dropped (a room receipt, best-effort by protocol): they never take the headroom
    /// kept for replies.
    pub fn offer_frame(&self, frame: Vec<u8>) -> bool {
        self.frames.len() < self.delivery_limit() && self.frames.try_send(frame).is_ok()
    }

    /// Waits until the queue is below the delivery limit (or closed).
    pub async fn below_delivery_limit(&self) {
        let limit = self.delivery_limit();
        // async-channel offers no "below a threshold" wake-up; poll briefly while the
        // queue sits above the delivery limit (only ever the case for a slow reader).
        while self.frames.len() >= limit && !self.frames.is_closed() {
            smol::Timer::after(core::time::Duration::from_millis(2)).await;
        }
    }

    fn delivery_limit(&self) -> usize {
        let capacity = self.frames.capacity().unwrap_or(usize::MAX);
        capacity - capacity / 4
    }

    /// Queues a frame, waiting for room (used by delivery, whose messages stay in the store).
    ///
    /// Delivery never fills the last quarter of the queue: that headroom is kept for replies
    /// and live pushes ([`push`](Self::push)), so a busy peer working through a backlog is not
    /// mistaken for one that stopped reading. A peer that truly stops reading still fills the
    /// headroom with its own requests' replies and is disconnected.
    pub async fn send_frame(&self, frame: Vec<u8>) -> bool {
        let wait_for_room = async {
            self.below_delivery_limit().await;
            self.frames.send(frame).await.is_ok()
        };
        smol::future::or(wait_for_room, async {
            self.killed().await;
            false
        })
        .await
    }

    /// Ends the connection at once (queued frames are dropped).
    pub fn kill(&self) {
        self.kill.close();
        self.frames.close();
    }

    /// Stops taking frames; the writer sends what is queued, then ends.
    pub fn close(&self) {
        self.frames.close();
    }

    /// Resolves once the connection is killed.
    pub async fn killed(&self) {
        // Nothing is ever sent, so this returns only when the channel is closed.
        let _ = self.kill.recv().await;
    }

    /// Whether the connection was killed.
    pub fn is_killed(&self) -> bool {
        self.kill.is_closed()
    }
}

//! Store-and-forward, the sender's side: accept a message once it is durable, wake its
//! recipients; acknowledgements and "delivered" receipts.
//!
//! Delivery is pulled from the store, never copied around in memory: a send only *wakes* the
//! recipient's live connections, and each one's delivery task ([`crate::hub::run_delivery`])
//! reads the queue after the last id it sent.
//!
//! Sends and acknowledgements are *pipelined*: the handler queues its job to the storage thread
//! and returns at once, so the connection reads its next request while the commit is under way
//! and a client's whole window of sends lands in one commit. The reply (`Accepted`, or an
//! `Error`) is queued by the storage thread once the transaction holding the job is durable;
//! any other request first waits for those replies ([`InFlight::settle`]), so replies still
//! leave in request order. An acknowledgement does not wait for its own commit: its "delivered"
//! goes out as soon as the deletion has run, because losing it in a crash only brings a
//! redelivery that clients already drop.

use std::sync::Arc;

use proto_core::limits::MAX_BODY;
use proto_core::{DeviceBody, ErrorCode, Message};
use smol::lock::{RwLock, RwLockReadGuardArc, Semaphore, SemaphoreGuardArc};

use super::rooms::member_room;
use super::{Connection, Refusal, Reply, confirmed};
use crate::outbox::Outbox;
use crate::store::{AccountId, AckOutcome, NewMessage, Store};

/// A connection's pipelined requests: a bound on their number, and a fence that lets any
/// other request wait until all their replies are queued.
#[derive(Debug)]
pub(crate) struct InFlight {
    fence: Arc<RwLock<()>>,
    permits: Arc<Semaphore>,
}

/// One pipelined request's place: dropped once its reply is queued.
struct Ticket {
    _order: RwLockReadGuardArc<()>,
    _permit: SemaphoreGuardArc,
}

impl InFlight {
    /// At most `outbound_queue / 4` requests in flight: past it, the connection stops reading
    /// until commits answer some (back-pressure). Their replies then always fit in the quarter
    /// of the outbound queue kept for replies and pushes, so a client's own window never gets
    /// it disconnected as a peer that stopped reading.
    pub(crate) fn new(outbound_queue: usize) -> Self {
        Self {
            fence: Arc::new(RwLock::new(())),
            permits: Arc::new(Semaphore::new((outbound_queue / 4).max(1))),
        }
    }

    /// Waits until every earlier pipelined request's reply is queued.
    pub(crate) async fn settle(&self) {
        drop(self.fence.write().await);
    }

    /// A place for one more request, once fewer than the limit are in flight and, for a
    /// request answered on success (`replies_to`), its outbox is below the delivery limit:
    /// replies of requests admitted then always fit in the quarter kept for them, even when
    /// the peer reads slowly (the permit is returned when the reply is queued, not when it is
    /// written). An ack, answered only if the store fails, does not wait for the outbox.
    async fn enter(&self, replies_to: Option<&Outbox>) -> Ticket {
        let permit = self.permits.acquire_arc().await;
        if let Some(out) = replies_to {
            out.below_delivery_limit().await;
        }
        Ticket {
            _order: self.fence.read_arc().await,
            _permit: permit,
        }
    }
}

/// A direct message's ciphertexts as sent: one per named device (`SendToDevices`), or one
/// body for whichever single device the recipient has (`SendToUser`).
enum Copies {
    Named(Vec<(u32, Vec<u8>)>),
    Unnamed(Vec<u8>),
}

/// The queue limits a direct message is checked against.
#[derive(Clone, Copy)]
struct Quotas {
    /// Messages waiting for one account.
    recipient: u64,
    /// Messages from one sender waiting for one account.
    sender: u64,
}

/// A body list's copies, each device named once and no body over [`MAX_BODY`].
fn named_copies(bodies: &[DeviceBody<'_>]) -> Result<Vec<(u32, Vec<u8>)>, Refusal> {
    if bodies.iter().any(|b| b.body.len() > MAX_BODY) {
        return Err(Refusal::new(
            ErrorCode::TOO_LARGE,
            "message body is too large",
        ));
    }
    let mut named: Vec<u32> = bodies.iter().map(|b| b.device).collect();
    named.sort_unstable();
    if named.windows(2).any(|w| w[0] == w[1]) {
        return Err(Refusal::new(
            ErrorCode::INVALID_INPUT,
            "bodies: a device is named twice",
        ));
    }
    Ok(bodies.iter().map(|b| (b.device, b.body.to_vec())).collect())
}

/// Stores `message` for `recipient`, one copy per device: the devices must be exactly its
/// reachable ones (for the sender's own account, its other ones), or `STALE_DEVICES`. Runs
/// inside the caller's transaction.
fn store_direct(
    s: &mut dyn Store,
    recipient: AccountId,
    copies: Copies,
    message: &NewMessage,
    quotas: Quotas,
) -> Result<u64, Refusal> {
    let mut active = s.reachable_devices(recipient)?;
    if recipient == message.sender_id {
        active.retain(|d| *d != message.sender_device);
    }
    let copies = match copies {
        Copies::Named(mut copies) => {
            copies.sort_unstable_by_key(|(d, _)| *d);
            copies
                .iter()
                .map(|(d, _)| *d)
                .eq(active.iter().copied())
                .then_some(copies)
        }
        Copies::Unnamed(body) => match active[..] {
            [only] => Some(vec![(only, body)]),
            _ => None,
        },
    };
    let Some(copies) = copies else {
        return Err(Refusal::new(
            ErrorCode::STALE_DEVICES,
            "the recipient's devices have changed: fetch them, check the identity, and send \
             again",
        ));
    };
    if copies.is_empty() {
        if recipient == message.sender_id {
            // The sender has no other device: no transcript to keep.
            return Ok(0);
        }
        return Err(Refusal::new(
            ErrorCode::STALE_DEVICES,
            "the recipient has no device to write to",
        ));
    }
    if recipient == message.sender_id {
        // Transcripts and resets to one's own other devices: the per-sender quota would be
        // the whole queue; the account's queue bound still holds.
        if s.pending_direct_count(recipient)? >= quotas.recipient {
            return Err(Refusal::new(
                ErrorCode::QUOTA_FULL,
                "your other devices have too many messages waiting: open one of them, or \
                 revoke the ones you no longer use",
            ));
        }
        return Ok(s.insert_message(&NewMessage {
            recipient: Some(recipient),
            copies,
            body: Vec::new(),
            ..message.clone()
        })?);
    }
    if s.pending_direct_count_from(recipient, message.sender_id)? >= quotas.sender {
        return Err(Refusal::new(
            ErrorCode::QUOTA_FULL,
            "too many of your messages are waiting for this recipient; try again once they \
             have read some",
        ));
    }
    if s.pending_direct_count(recipient)? >= quotas.recipient {
        return Err(Refusal::new(
            ErrorCode::QUOTA_FULL,
            "the recipient's queue is full; try again later",
        ));
    }
    Ok(s.insert_message(&NewMessage {
        recipient: Some(recipient),
        copies,
        body: Vec::new(),
        ..message.clone()
    })?)
}

fn refuse(out: &Outbox, r: &Refusal) {
    out.push(&Message::Error {
        code: r.code,
        text: &r.text,
    });
}

impl Connection {
    /// The logged-in sender of `body` and its device, if the body is within [`MAX_BODY`] and
    /// the sender within its send rate.
    fn sender(&self, body: &[u8]) -> Result<(AccountId, String, u32), Refusal> {
        let (me, name) = self.logged_in()?;
        let device = self.device()?;
        if body.len() > MAX_BODY {
            return Err(Refusal::new(
                ErrorCode::TOO_LARGE,
                "message body is too large",
            ));
        }
        self.rate(&self.shared.limits.sends, &me, "messages sent")?;
        Ok((me, name, device))
    }

    /// `SendToDevices` (PROTOCOL.md §3.4 message 53): as `SendToUser`, but stored only if
    /// `bodies` names exactly the recipient's active devices, one copy each, acknowledged by
    /// each device on its own; a sender naming a revoked device (or the device of an identity
    /// the account replaced), or missing one, is refused with `STALE_DEVICES`, and nothing is
    /// stored. To one's own account, the devices are the sender's other ones.
    pub(super) async fn send_to_devices(
        &mut self,
        to: &str,
        client_id: u64,
        bodies: &[DeviceBody<'_>],
    ) -> Result<Reply, Refusal> {
        let copies = named_copies(bodies)?;
        self.send_direct(to, client_id, Copies::Named(copies), None)
            .await
    }

    /// `SendSynced` (PROTOCOL.md §3.4 message 65): `SendToDevices` to `to`, and its sent
    /// transcript to the sender's other devices (`own`, exactly those), stored in one
    /// transaction: both or neither.
    pub(super) async fn send_synced(
        &mut self,
        to: &str,
        client_id: u64,
        bodies: &[DeviceBody<'_>],
        own: &[DeviceBody<'_>],
    ) -> Result<Reply, Refusal> {
        let copies = named_copies(bodies)?;
        let own = named_copies(own)?;
        self.send_direct(to, client_id, Copies::Named(copies), Some(own))
            .await
    }

    /// `SendToUser`: queued to the store; once committed, `Accepted` and a wake for the
    /// recipient (see the module doc: the connection does not wait).
    pub(super) async fn send_to_user(
        &mut self,
        to: &str,
        client_id: u64,
        body: &[u8],
    ) -> Result<Reply, Refusal> {
        self.send_direct(to, client_id, Copies::Unnamed(body.to_vec()), None)
            .await
    }

    /// A direct message: one copy per device of the recipient, only if they are its active
    /// devices (an unnamed body: only if it has one); with `own`, also the sent transcript to
    /// the sender's other devices, in the same transaction.
    async fn send_direct(
        &mut self,
        to: &str,
        client_id: u64,
        copies: Copies,
        own: Option<Vec<(u32, Vec<u8>)>>,
    ) -> Result<Reply, Refusal> {
        let largest = match &copies {
            Copies::Named(c) => c.iter().map(|(_, b)| b.len()).max().unwrap_or(0),
            Copies::Unnamed(b) => b.len(),
        };
        let (me, my_name, my_device) = self.sender(&vec![0; largest.min(MAX_BODY + 1)])?;
        let to = crate::auth::normalize_username(to).map_err(|_| Refusal::no_such_user())?;
        if own.is_some() && to == my_name {
            return Err(Refusal::new(
                ErrorCode::INVALID_INPUT,
                "SendSynced is for writing to someone else; send to your own devices with \
                 SendToDevices",
            ));
        }
        let now = self.shared.clock.now();
        let message = NewMessage {
            recipient: None,
            room: None,
            sender_id: me,
            sender: my_name,
            sender_device: my_device,
            sent_at: now,
            expires_at: now.saturating_add(self.shared.config.message_ttl),
            body: Vec::new(),
            copies: Vec::new(),
        };
        let quotas = Quotas {
            recipient: self.shared.config.recipient_quota,
            sender: self.shared.config.sender_quota,
        };
        let ticket = self.in_flight.enter(Some(&self.out)).await;
        let (out, shared) = (self.out.clone(), self.shared.clone());
        self.shared.db.submit(
            move |s| {
                let recipient =
                    confirmed(s.account_by_username(&to)?).ok_or_else(Refusal::no_such_user)?;
                let id = store_direct(s, recipient.id, copies, &message, quotas)?;
                if let Some(own) = own {
                    store_direct(s, me, Copies::Named(own), &message, quotas)?;
                }
                Ok((recipient.id, id))
            },
            move |done: Result<_, Refusal>| {
                match done {
                    Ok((recipient, server_id)) => {
                        out.push(&Message::Accepted {
                            client_id,
                            server_id,
                        });
                        shared.hub.wake(recipient);
                        if recipient != me {
                            shared.hub.wake(me);
                        }
                    }
                    Err(r) => refuse(&out, &r),
                }
                drop(ticket);
            },
        )?;
        Ok(Reply::none())
    }

    /// `SendToRoom`: stored once; each device of each member but the sending one picks it up.
    pub(super) async fn send_to_room(
        &mut self,
        room: &str,
        client_id: u64,
        body: &[u8],
    ) -> Result<Reply, Refusal> {
        let (me, my_name, my_device) = self.sender(body)?;
        let room = room.to_owned();
        let now = self.shared.clock.now();
        let ttl = self.shared.config.message_ttl;
        let quota = self.shared.config.recipient_quota;
        let body = body.to_vec();
        let ticket = self.in_flight.enter(Some(&self.out)).await;
        let (out, shared) = (self.out.clone(), self.shared.clone());
        self.shared.db.submit(
            move |s| {
                let info = member_room(s, &room, me)?;
                if s.pending_room_count(info.id)? >= quota {
                    return Err(Refusal::new(
                        ErrorCode::QUOTA_FULL,
                        "the room's queue is full; try again later",
                    ));
                }
                let id = s.insert_message(&NewMessage {
                    recipient: None,
                    room: Some(info.id),
                    sender_id: me,
                    sender: my_name,
                    sender_device: my_device,
                    sent_at: now,
                    expires_at: now.saturating_add(ttl),
                    body,
                    copies: Vec::new(),
                })?;
                Ok((info.members, id))
            },
            move |done: Result<_, Refusal>| {
                match done {
                    Ok((members, server_id)) => {
                        out.push(&Message::Accepted {
                            client_id,
                            server_id,
                        });
                        // Every member, us too: our other devices get it (this one does not).
                        for m in members {
                            shared.hub.wake(m.id);
                        }
                    }
                    Err(r) => refuse(&out, &r),
                }
                drop(ticket);
            },
        )?;
        Ok(Reply::none())
    }

    /// `Ack`: delete (or move the room cursor), then tell the sender "delivered" without
    /// waiting for the commit (see the module doc).
    ///
    /// No reply on success; an unknown id is ignored, so acknowledging twice is harmless.
    pub(super) async fn ack(&mut self, server_id: u64) -> Result<Reply, Refusal> {
        let (me, my_name) = self.logged_in()?;
        let device = self.device()?;
        let expires = self
            .shared
            .clock
            .now()
            .saturating_add(self.shared.config.message_ttl);
        let ticket = self.in_flight.enter(None).await;
        let (out, shared) = (self.out.clone(), self.shared.clone());
        let hub_now = self.shared.clone();
        self.shared.db.submit(
            move |s| {
                let (sender_id, direct) = match s.ack(me, device, server_id)? {
                    // A sent transcript, or another message among the account's own
                    // devices: nobody to tell.
                    AckOutcome::Direct { sender_id } if sender_id == me => return Ok(None),
                    AckOutcome::Direct { sender_id } => (sender_id, true),
                    // Our own room message, read by another of our devices: not a receipt.
                    AckOutcome::Room { sender_id } if sender_id == me => return Ok(None),
                    AckOutcome::Room { sender_id } => (sender_id, false),
                    AckOutcome::Unknown => return Ok(None),
                };
                let delivered = Message::Delivered {
                    server_id,
                    to: &my_name,
                    device,
                };
                // Room receipts are best-effort (never stored); one that finds the sender's
                // queue full is dropped rather than the sender's connection.
                if hub_now.hub.offer(sender_id, &delivered) || !direct {
                    return Ok(None);
                }
                // The sender is offline, or its queue is full: keep the receipt; its delivery
                // task sends it (woken below, after the commit).
                s.add_receipt(sender_id, server_id, &my_name, device, expires)?;
                Ok(Some(sender_id))
            },
            move |done: Result<Option<AccountId>, Refusal>| {
                match done {
                    // A sender who logged in meanwhile reads the kept receipt on this wake.
                    Ok(Some(sender_id)) => shared.hub.wake(sender_id),
                    Ok(None) => {}
                    Err(r) => refuse(&out, &r),
                }
                drop(ticket);
            },
        )?;
        Ok(Reply::none())
    }
}

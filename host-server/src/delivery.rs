//! Store-and-forward: accepting messages once durable, pushing them to live connections,
//! acknowledgements, receipts, and redelivery in order.
//!
//! Delivery is pulled from the store, never copied around in memory: a send only *wakes* the
//! recipient's live connections, and each one's delivery task reads the queue after the last
//! id it sent. So a reconnect, a burst, or a push racing a backlog all give the same in-order
//! stream, and memory per connection stays bounded by one batch.

use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use proto_core::limits::MAX_BODY;
use proto_core::{ErrorCode, Message};
use smol::channel::{Receiver, Sender};

use crate::Shared;
use crate::connection::{Connection, Refusal};
use crate::outbox::{Outbox, encode};
use crate::rooms::member_room;
use crate::store::{AccountId, AckOutcome, NewMessage, StoreError};

/// Messages read from the store per delivery batch.
const BATCH: usize = 16;

#[derive(Debug, Clone)]
struct Peer {
    id: u64,
    out: Outbox,
    wake: Sender<()>,
}

/// Live connections by account: the only shared map of who is online.
#[derive(Debug, Default)]
pub struct Hub {
    peers: Mutex<HashMap<AccountId, Vec<Peer>>>,
    next_id: AtomicU64,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Vec<Peer>>> {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a logged-in connection; returns its id and the wake-up receiver its delivery
    /// task waits on.
    pub fn join(&self, account: AccountId, out: Outbox) -> (u64, Receiver<()>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (wake, woken) = smol::channel::bounded(1);
        // Start with a token so the first pass reads the backlog.
        let _ = wake.try_send(());
        self.lock()
            .entry(account)
            .or_default()
            .push(Peer { id, out, wake });
        tracing::debug!(account, id, "joined the hub");
        (id, woken)
    }

    /// Removes a connection.
    pub fn leave(&self, account: AccountId, id: u64) {
        tracing::debug!(account, id, "left the hub");
        let mut peers = self.lock();
        if let Some(list) = peers.get_mut(&account) {
            list.retain(|p| p.id != id);
            if list.is_empty() {
                peers.remove(&account);
            }
        }
    }

    /// Whether the account has a live connection.
    pub fn is_online(&self, account: AccountId) -> bool {
        self.lock().contains_key(&account)
    }

    /// Wakes the account's delivery tasks (coalesced: one pending wake is enough).
    pub fn wake(&self, account: AccountId) {
        if let Some(list) = self.lock().get(&account) {
            for p in list {
                let _ = p.wake.try_send(());
            }
        }
    }

    /// Pushes a message to every live connection of the account; `true` if any took it.
    pub fn push(&self, account: AccountId, msg: &Message<'_>) -> bool {
        let Some(frame) = encode(msg) else {
            return false;
        };
        let outs: Vec<Outbox> = match self.lock().get(&account) {
            Some(list) => list.iter().map(|p| p.out.clone()).collect(),
            None => return false,
        };
        let mut any = false;
        for out in outs {
            any |= out.push_frame(frame.clone());
        }
        any
    }

    /// Live connections in all.
    pub fn connection_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

/// Sends the account's queued messages to `out` in order, then waits to be woken; ends when
/// the connection does.
pub async fn run_delivery(
    shared: Arc<Shared>,
    account: AccountId,
    out: Outbox,
    woken: Receiver<()>,
) {
    let mut last = 0u64;
    loop {
        let now = shared.clock.now();
        let read = shared
            .db
            .call(move |s| {
                Ok((
                    s.take_receipts(account)?,
                    s.take_room_events(account)?,
                    s.pending_for(account, last, now, BATCH)?,
                ))
            })
            .await;
        let (receipts, events, batch) = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "delivery read failed");
                out.kill();
                return;
            }
        };
        // Receipts and membership changes kept while this user was away (or racing a login).
        for (server_id, to) in &receipts {
            let msg = Message::Delivered {
                server_id: *server_id,
                to,
            };
            if !send_msg(&out, &msg).await {
                return;
            }
        }
        for e in &events {
            if let Some(change) = crate::rooms::change_from_code(e.change) {
                let msg = Message::RoomChanged {
                    room: &e.room,
                    username: &e.username,
                    change,
                };
                if !send_msg(&out, &msg).await {
                    return;
                }
            }
        }
        if batch.is_empty() {
            let woke = smol::future::or(async { woken.recv().await.is_ok() }, async {
                out.killed().await;
                false
            })
            .await;
            if !woke {
                return;
            }
            continue;
        }
        for m in &batch {
            let msg = Message::Deliver {
                server_id: m.id,
                from: &m.sender,
                room: m.room.as_deref(),
                sent_at: m.sent_at,
                body: &m.body,
            };
            let Some(frame) = encode(&msg) else {
                tracing::error!(
                    id = m.id,
                    "a stored message does not fit in a frame; skipped"
                );
                last = m.id;
                continue;
            };
            if !out.send_frame(frame).await {
                return;
            }
            last = m.id;
        }
    }
}

async fn send_msg(out: &Outbox, msg: &Message<'_>) -> bool {
    match encode(msg) {
        Some(frame) => out.send_frame(frame).await,
        None => true,
    }
}

impl Connection {
    /// `SendToUser`: commit, then answer `Accepted`, then wake the recipient.
    pub(crate) async fn send_to_user(
        &mut self,
        to: &str,
        client_id: u64,
        body: &[u8],
    ) -> Result<Message<'static>, Refusal> {
        let (me, my_name) = self.logged_in()?;
        if body.len() > MAX_BODY {
            return Err(Refusal::new(
                ErrorCode::TOO_LARGE,
                "message body is too large",
            ));
        }
        let to = crate::auth::normalize_username(to)
            .map_err(|_| Refusal::new(ErrorCode::NOT_FOUND, "no such user"))?;
        let now = self.shared.clock.now();
        let message = NewMessage {
            recipient: None,
            room: None,
            sender_id: me,
            sender: my_name,
            sent_at: now,
            expires_at: now.saturating_add(self.shared.config.message_ttl),
            body: body.to_vec(),
        };
        let quota = self.shared.config.recipient_quota;
        let result = self
            .shared
            .db
            .call(move |s| {
                let Some(recipient) = s.account_by_username(&to)?.filter(|a| a.confirmed) else {
                    return Ok(Err(Refusal::new(ErrorCode::NOT_FOUND, "no such user")));
                };
                if s.pending_direct_count(recipient.id)? >= quota {
                    return Ok(Err(Refusal::new(
                        ErrorCode::QUOTA_FULL,
                        "the recipient's queue is full; try again later",
                    )));
                }
                let id = s.insert_message(&NewMessage {
                    recipient: Some(recipient.id),
                    ..message
                })?;
                Ok(Ok((recipient.id, id)))
            })
            .await
            .map_err(Refusal::store)??;
        let (recipient, server_id) = result;
        self.shared.hub.wake(recipient);
        Ok(Message::Accepted {
            client_id,
            server_id,
        })
    }

    /// `SendToRoom`: stored once; each other member's delivery task picks it up.
    pub(crate) async fn send_to_room(
        &mut self,
        room: &str,
        client_id: u64,
        body: &[u8],
    ) -> Result<Message<'static>, Refusal> {
        let (me, my_name) = self.logged_in()?;
        if body.len() > MAX_BODY {
            return Err(Refusal::new(
                ErrorCode::TOO_LARGE,
                "message body is too large",
            ));
        }
        let room = room.to_owned();
        let now = self.shared.clock.now();
        let ttl = self.shared.config.message_ttl;
        let quota = self.shared.config.recipient_quota;
        let body = body.to_vec();
        let (members, server_id) = self
            .shared
            .db
            .call(move |s| {
                let info = match member_room(s, &room, me)? {
                    Ok(info) => info,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                if s.pending_room_count(info.id)? >= quota {
                    return Ok(Err(Refusal::new(
                        ErrorCode::QUOTA_FULL,
                        "the room's queue is full; try again later",
                    )));
                }
                let id = s.insert_message(&NewMessage {
                    recipient: None,
                    room: Some(info.id),
                    sender_id: me,
                    sender: my_name,
                    sent_at: now,
                    expires_at: now.saturating_add(ttl),
                    body,
                })?;
                Ok(Ok((info.members, id)))
            })
            .await
            .map_err(Refusal::store)??;
        for (id, _) in members {
            if id != me {
                self.shared.hub.wake(id);
            }
        }
        Ok(Message::Accepted {
            client_id,
            server_id,
        })
    }

    /// `Ack`: delete (or move the room cursor), then tell the sender "delivered".
    ///
    /// No reply on success; an unknown id is ignored, so acknowledging twice is harmless.
    pub(crate) async fn ack(&mut self, server_id: u64) -> Result<(), Refusal> {
        let (me, my_name) = self.logged_in()?;
        let shared = self.shared.clone();
        let name = my_name.clone();
        let expires = self
            .shared
            .clock
            .now()
            .saturating_add(self.shared.config.message_ttl);
        let outcome = self
            .shared
            .db
            .call(move |s| {
                let outcome = s.ack(me, server_id)?;
                if let AckOutcome::Direct { sender_id } = outcome
                    && !shared.hub.is_online(sender_id)
                {
                    s.add_receipt(sender_id, server_id, &name, expires)?;
                }
                Ok::<_, StoreError>(outcome)
            })
            .await
            .map_err(Refusal::store)?;
        match outcome {
            AckOutcome::Direct { sender_id } | AckOutcome::Room { sender_id } => {
                // If the receipt was kept for an offline sender who has just logged in, the
                // wake makes their delivery task pick it up.
                self.shared.hub.wake(sender_id);
                self.shared.hub.push(
                    sender_id,
                    &Message::Delivered {
                        server_id,
                        to: &my_name,
                    },
                );
            }
            AckOutcome::Unknown => {}
        }
        Ok(())
    }
}

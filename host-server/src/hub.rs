//! Who is online, and delivery to them: each logged-in connection joins the [`Hub`] and runs
//! [`run_delivery`], which pushes its account's queued messages, receipts and membership
//! changes in order. (Accepting and acknowledging messages is in `connection::delivery`.)
//!
//! Delivery is pulled from the store, never copied around in memory: a send only *wakes* the
//! recipient's live connections, and each one's delivery task reads the queue after the last
//! id it sent. So a reconnect, a burst, or a push racing a backlog all give the same in-order
//! stream, and memory per connection stays bounded by one batch.

use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use proto_core::Message;
use smol::channel::{Receiver, Sender};

use crate::Shared;
use crate::outbox::{Outbox, encode};
use crate::store::{AccountId, StoreError};
use crate::wake::WakeBus;

/// Messages read from the store per delivery batch.
const BATCH: usize = 16;

#[derive(Debug, Clone)]
struct Peer {
    id: u64,
    /// `None`: a session linking a new device.
    device: Option<u32>,
    out: Outbox,
    wake: Sender<()>,
}

/// Live connections by account: the only shared map of who is online (on this node).
///
/// With several nodes, [`wake`](Hub::wake) also tells the others through the [`WakeBus`];
/// what the bus hears comes back through [`wake_local`](Hub::wake_local) and
/// [`wake_all_local`](Hub::wake_all_local). Pushes ([`push`](Hub::push),
/// [`offer`](Hub::offer)) reach this node's connections only; their callers keep in the store
/// what no local connection took, and wake the account.
#[derive(Debug, Default)]
pub struct Hub {
    peers: Mutex<HashMap<AccountId, Vec<Peer>>>,
    next_id: AtomicU64,
    bus: Option<Arc<dyn WakeBus>>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Vec<Peer>>> {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A hub that also wakes other nodes through `bus`.
    pub fn with_bus(bus: Arc<dyn WakeBus>) -> Self {
        Self {
            bus: Some(bus),
            ..Self::default()
        }
    }

    /// Registers a logged-in connection; returns its id and the wake-up receiver its delivery
    /// task waits on.
    pub fn join(
        &self,
        account: AccountId,
        device: Option<u32>,
        out: Outbox,
    ) -> (u64, Receiver<()>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (wake, woken) = smol::channel::bounded(1);
        // Start with a token so the first pass reads the backlog.
        let _ = wake.try_send(());
        self.lock().entry(account).or_default().push(Peer {
            id,
            device,
            out,
            wake,
        });
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

    /// Ends every live connection of the account at once (it was deleted).
    pub fn kick(&self, account: AccountId) {
        if let Some(list) = self.lock().remove(&account) {
            for p in list {
                p.out.kill();
            }
        }
    }

    /// Ends every live connection of the account but `keep` (its password changed: the other
    /// sessions were revoked).
    pub fn kick_others(&self, account: AccountId, keep: u64) {
        let mut peers = self.lock();
        if let Some(list) = peers.get_mut(&account) {
            for p in list.iter().filter(|p| p.id != keep) {
                p.out.kill();
            }
            list.retain(|p| p.id == keep);
        }
    }

    /// Ends the live connections of one device of the account (it was revoked).
    pub fn kick_device(&self, account: AccountId, device: u32) {
        let mut peers = self.lock();
        if let Some(list) = peers.get_mut(&account) {
            for p in list.iter().filter(|p| p.device == Some(device)) {
                p.out.kill();
            }
            list.retain(|p| p.device != Some(device));
            if list.is_empty() {
                peers.remove(&account);
            }
        }
    }

    /// Pushes a message to the live connections of one device; `true` if any took it.
    pub fn push_device(&self, account: AccountId, device: u32, msg: &Message<'_>) -> bool {
        let Some(frame) = encode(msg) else {
            return false;
        };
        let outs: Vec<Outbox> = match self.lock().get(&account) {
            Some(list) => list
                .iter()
                .filter(|p| p.device == Some(device))
                .map(|p| p.out.clone())
                .collect(),
            None => return false,
        };
        let mut any = false;
        for out in outs {
            any |= out.push_frame(frame.clone());
        }
        any
    }

    /// Whether the account has a live connection.
    pub fn is_online(&self, account: AccountId) -> bool {
        self.lock().contains_key(&account)
    }

    /// Wakes the account's delivery tasks, here and (through the bus) on every other node.
    /// Call it only after the commit that gave the account something new.
    pub fn wake(&self, account: AccountId) {
        self.wake_local(account);
        if let Some(bus) = &self.bus {
            bus.publish(account);
        }
    }

    /// Tells the other nodes that the account's sessions were revoked (after the commit), so
    /// they end its live connections there; this node's are the caller's to end.
    pub fn revoked_elsewhere(&self, account: AccountId) {
        if let Some(bus) = &self.bus {
            bus.publish_revoked(account);
        }
    }

    /// Tells the other nodes that one device of the account was revoked (after the commit), so
    /// they end that device's live connections there and keep the account's others.
    pub fn device_revoked_elsewhere(&self, account: AccountId, device: u32) {
        if let Some(bus) = &self.bus {
            bus.publish_device_revoked(account, device);
        }
    }

    /// Wakes the account's delivery tasks on this node (coalesced: one pending wake is enough).
    pub fn wake_local(&self, account: AccountId) {
        if let Some(list) = self.lock().get(&account) {
            for p in list {
                let _ = p.wake.try_send(());
            }
        }
    }

    /// Wakes every delivery task on this node: each reads its queue again (after wake-ups
    /// from other nodes may have been missed).
    pub fn wake_all_local(&self) {
        for list in self.lock().values() {
            for p in list {
                let _ = p.wake.try_send(());
            }
        }
    }

    /// Pushes a message to every live connection of the account's devices (not to a session
    /// linking a new one, which is not a device yet); `true` if any took it.
    pub fn push(&self, account: AccountId, msg: &Message<'_>) -> bool {
        let Some(frame) = encode(msg) else {
            return false;
        };
        let outs: Vec<Outbox> = match self.lock().get(&account) {
            Some(list) => list
                .iter()
                .filter(|p| p.device.is_some())
                .map(|p| p.out.clone())
                .collect(),
            None => return false,
        };
        let mut any = false;
        for out in outs {
            any |= out.push_frame(frame.clone());
        }
        any
    }

    /// As [`push`](Self::push), but a connection whose queue is full is left alone (and does
    /// not count as having taken it): for receipts, which a sender working through a burst
    /// of them must not be disconnected for.
    pub fn offer(&self, account: AccountId, msg: &Message<'_>) -> bool {
        let Some(frame) = encode(msg) else {
            return false;
        };
        match self.lock().get(&account) {
            Some(list) => list
                .iter()
                .filter(|p| p.device.is_some())
                .fold(false, |any, p| p.out.offer_frame(frame.clone()) | any),
            None => false,
        }
    }

    /// Live connections in all.
    pub fn connection_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

/// Sends one device's queued messages (and its account's kept receipts and membership
/// changes) to `out` in order, then waits to be woken; ends when the connection does.
pub async fn run_delivery(
    shared: Arc<Shared>,
    account: AccountId,
    device: u32,
    out: Outbox,
    woken: Receiver<()>,
) {
    let mut last = 0u64;
    loop {
        let now = shared.clock.now();
        // Committed messages only, read without waiting for the writer's commit in progress:
        // a message is delivered only once it is durable.
        let read = shared
            .db
            .read(move |s| {
                Ok((
                    s.has_kept(account)?,
                    s.pending_for(account, device, last, now, BATCH)?,
                ))
            })
            .await;
        let (kept, batch) = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "delivery read failed");
                out.kill();
                return;
            }
        };
        let (receipts, events) = if kept {
            let taken = shared
                .db
                .call(move |s| -> Result<_, StoreError> {
                    Ok((s.take_receipts(account)?, s.take_room_events(account)?))
                })
                .await;
            match taken {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "delivery read failed");
                    out.kill();
                    return;
                }
            }
        } else {
            (Vec::new(), Vec::new())
        };
        // Receipts and membership changes kept while this user was away (or racing a login).
        for r in &receipts {
            let msg = Message::Delivered {
                server_id: r.server_id,
                to: &r.recipient,
                device: r.device,
            };
            if !send_msg(&out, &msg).await {
                return;
            }
        }
        for e in &events {
            let msg = Message::RoomChanged {
                room: &e.room,
                username: &e.username,
                change: e.change,
            };
            if !send_msg(&out, &msg).await {
                return;
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
                device: m.sender_device,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what a node would announce to the others.
    #[derive(Debug, Default)]
    struct RecordingBus(Mutex<Vec<AccountId>>);

    impl WakeBus for RecordingBus {
        fn publish(&self, account: AccountId) {
            self.0.lock().unwrap().push(account);
        }

        /// Recorded negated, to tell revocations from wake-ups.
        fn publish_revoked(&self, account: AccountId) {
            self.0.lock().unwrap().push(-account);
        }

        /// Recorded as -(account * 1000 + device).
        fn publish_device_revoked(&self, account: AccountId, device: u32) {
            self.0
                .lock()
                .unwrap()
                .push(-(account * 1000 + i64::from(device)));
        }
    }

    #[test]
    fn a_revocation_is_announced_to_the_other_nodes_only() {
        let bus = Arc::new(RecordingBus::default());
        let hub = Hub::with_bus(bus.clone());
        let (out, _rx) = Outbox::new(8);
        let (_id, woken) = hub.join(7, Some(1), out);
        let _ = woken.try_recv();
        hub.revoked_elsewhere(7);
        hub.device_revoked_elsewhere(7, 2);
        assert_eq!(*bus.0.lock().unwrap(), [-7, -7002]);
        // Nothing local happened: this node's connections are the caller's to end.
        assert!(hub.is_online(7));
        assert!(woken.try_recv().is_err());
    }

    #[test]
    fn revoking_a_device_ends_its_connections_only() {
        let hub = Hub::default();
        let (phone, _p) = Outbox::new(8);
        let (laptop, _l) = Outbox::new(8);
        let (linking, _k) = Outbox::new(8);
        hub.join(7, Some(1), phone.clone());
        hub.join(7, Some(2), laptop.clone());
        hub.join(7, None, linking.clone());
        assert!(hub.push_device(7, 2, &Message::PrekeysLow { remaining: 1 }));
        assert!(!hub.push_device(7, 3, &Message::PrekeysLow { remaining: 1 }));
        hub.kick_device(7, 2);
        assert!(laptop.is_killed());
        assert!(!phone.is_killed() && !linking.is_killed());
        assert_eq!(hub.connection_count(), 2);
        assert!(!hub.push_device(7, 2, &Message::PrekeysLow { remaining: 1 }));
        // Account-wide pushes reach devices, not a session linking one.
        let (alone, _a) = Outbox::new(8);
        hub.join(8, None, alone);
        assert!(!hub.push(8, &Message::PrekeysLow { remaining: 1 }));
        assert!(!hub.offer(8, &Message::PrekeysLow { remaining: 1 }));
        assert!(hub.push(7, &Message::PrekeysLow { remaining: 1 }));
    }

    #[test]
    fn wakes_reach_local_tasks_and_other_nodes_and_bus_wakes_stay_local() {
        let bus = Arc::new(RecordingBus::default());
        let hub = Hub::with_bus(bus.clone());
        let (out, _rx) = Outbox::new(8);
        let (_, woken) = hub.join(7, Some(1), out);
        // The token every new connection starts with.
        assert!(woken.try_recv().is_ok());

        // A commit here: the local task is woken and every other node is told.
        hub.wake(7);
        hub.wake(9);
        assert!(woken.try_recv().is_ok());
        assert_eq!(*bus.0.lock().unwrap(), vec![7, 9]);

        // What the bus hears only wakes local tasks (announcing it again would loop).
        hub.wake_local(7);
        assert!(woken.try_recv().is_ok());
        hub.wake_all_local();
        assert!(woken.try_recv().is_ok());
        assert!(woken.try_recv().is_err());
        assert_eq!(bus.0.lock().unwrap().len(), 2);
    }
}

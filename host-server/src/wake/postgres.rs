//! [`WakeBus`] over PostgreSQL LISTEN/NOTIFY, on two sessions of its own: one thread
//! publishes (`pg_notify` on channel [`CHANNEL`]), one listens and hands each wake-up to the
//! node. Payloads: the account id in decimal for a wake-up; `-ID@NODE` (NODE: the publishing
//! node's random id in hex) for a revocation, so that the node that revoked, which hears its
//! own notifications too, does not end the one connection it kept; `-ID/DEVICE@NODE` (DEVICE in
//! decimal) for one revoked device.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator as _;

use super::{Wake, WakeBus};
use crate::store::{AccountId, StoreError, pg_connect};

/// The notification channel every node listens on.
const CHANNEL: &str = "sealroom_wake";
/// How often the threads look at the stop flag.
const TICK: Duration = Duration::from_millis(200);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Wake-ups through PostgreSQL. Dropping it (or [`PgWakeBus::shutdown`]) stops its threads.
pub struct PgWakeBus {
    publish: std::sync::Mutex<Option<Sender<String>>>,
    /// This node's id in revocation payloads (random at start).
    node: u64,
    stop: Arc<AtomicBool>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl core::fmt::Debug for PgWakeBus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PgWakeBus").finish_non_exhaustive()
    }
}

impl PgWakeBus {
    /// Connects both sessions to the database `params` names and starts listening; every
    /// wake-up heard goes to `on_wake`, as does [`Wake::Everyone`] after a reconnect and every
    /// `resync` (the net under wake-ups lost to a publisher that died before sending them).
    pub fn start(
        params: &str,
        resync: Duration,
        on_wake: impl Fn(Wake) + Send + 'static,
    ) -> Result<Self, StoreError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| StoreError::Open(format!("no randomness: {e}")))?;
        let node = u64::from_be_bytes(id);
        let publisher = pg_connect(params)?;
        let mut listener = pg_connect(params)?;
        listener.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let spawn_err = |e: std::io::Error| StoreError::Open(format!("cannot start a thread: {e}"));
        let p = params.to_owned();
        let s = stop.clone();
        let publish_thread = std::thread::Builder::new()
            .name("sealroom-wake-pub".into())
            .spawn(move || run_publisher(&p, publisher, &rx, &s))
            .map_err(spawn_err)?;
        let p = params.to_owned();
        let s = stop.clone();
        let listen_thread = std::thread::Builder::new()
            .name("sealroom-wake-sub".into())
            .spawn(move || run_listener(&p, listener, resync, &s, node, &on_wake))
            .map_err(spawn_err)?;
        Ok(Self {
            publish: std::sync::Mutex::new(Some(tx)),
            node,
            stop,
            threads: std::sync::Mutex::new(vec![publish_thread, listen_thread]),
        })
    }

    /// Sends what is queued, stops both threads and waits for them.
    pub fn shutdown(&self) {
        // Closing the queue lets the publisher send what is in it, then stop.
        drop(
            self.publish
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        self.stop.store(true, Ordering::SeqCst);
        let threads = core::mem::take(
            &mut *self
                .threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for PgWakeBus {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl PgWakeBus {
    fn send(&self, payload: String) {
        if let Some(tx) = self
            .publish
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            let _ = tx.send(payload);
        }
    }
}

impl WakeBus for PgWakeBus {
    fn publish(&self, account: AccountId) {
        self.send(account.to_string());
    }

    fn publish_revoked(&self, account: AccountId) {
        self.send(format!("-{account}@{:x}", self.node));
    }

    fn publish_device_revoked(&self, account: AccountId, device: u32) {
        self.send(format!("-{account}/{device}@{:x}", self.node));
    }
}

/// What a payload asks of the node `me`: `Ok(None)` for its own revocation (already done
/// here), `Err(())` for a payload that is not one of ours.
fn decode_payload(payload: &str, me: u64) -> Result<Option<Wake>, ()> {
    if let Some(rest) = payload.strip_prefix('-') {
        let (who, node) = rest.split_once('@').ok_or(())?;
        let (account, device) = match who.split_once('/') {
            Some((account, device)) => (account, Some(device)),
            None => (who, None),
        };
        let account = account.parse::<AccountId>().map_err(|_| ())?;
        let node = u64::from_str_radix(node, 16).map_err(|_| ())?;
        if account <= 0 {
            return Err(());
        }
        let wake = match device {
            // Digits only: `u32::from_str` would also take a leading `+`.
            Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {
                Wake::DeviceRevoked(account, d.parse::<u32>().map_err(|_| ())?)
            }
            Some(_) => return Err(()),
            None => Wake::Revoked(account),
        };
        return Ok((node != me).then_some(wake));
    }
    match payload.parse::<AccountId>() {
        Ok(account) if account > 0 => Ok(Some(Wake::Account(account))),
        _ => Err(()),
    }
}

/// Sleeps `d` in ticks; `false` if told to stop meanwhile.
fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
    }
    true
}

fn run_publisher(params: &str, client: Client, rx: &Receiver<String>, stop: &AtomicBool) {
    let mut client = Some(client);
    let mut backoff = TICK;
    loop {
        let first = match rx.recv_timeout(TICK) {
            Ok(a) => a,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Everything queued meanwhile goes in the same round trip, each account once.
        let mut batch: Vec<String> = core::iter::once(first).chain(rx.try_iter()).collect();
        batch.sort_unstable();
        batch.dedup();
        loop {
            if client.as_ref().is_none_or(Client::is_closed) {
                client = pg_connect(params)
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "wake-up publisher cannot reconnect"),
                    )
                    .ok();
            }
            let sent = match client.as_mut() {
                Some(c) => c
                    .execute(
                        "SELECT pg_notify($1, p) FROM unnest($2::TEXT[]) AS p",
                        &[&CHANNEL, &batch],
                    )
                    .map_err(|e| tracing::warn!(error = %e, "cannot publish wake-ups"))
                    .is_ok(),
                None => false,
            };
            if sent {
                backoff = TICK;
                break;
            }
            client = None;
            // Kept and retried: these wake-ups are late rather than lost (and receivers
            // resync anyway). Dropped only when the node stops.
            if !pause(backoff, stop) {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

fn run_listener(
    params: &str,
    client: Client,
    resync: Duration,
    stop: &AtomicBool,
    node: u64,
    on_wake: &dyn Fn(Wake),
) {
    let mut client = Some(client);
    let mut last_resync = Instant::now();
    let mut backoff = TICK;
    while !stop.load(Ordering::SeqCst) {
        let Some(c) = client.as_mut() else {
            let reconnected = pg_connect(params).and_then(|mut c| {
                c.batch_execute(&format!("LISTEN {CHANNEL}"))?;
                Ok(c)
            });
            match reconnected {
                Ok(c) => {
                    tracing::info!("wake-up listener reconnected; rereading every queue");
                    client = Some(c);
                    backoff = TICK;
                    // Whatever was notified while we were away is in the store.
                    on_wake(Wake::Everyone);
                    last_resync = Instant::now();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "wake-up listener cannot reconnect");
                    if !pause(backoff, stop) {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            continue;
        };
        let mut lost = false;
        {
            let mut notifications = c.notifications();
            let mut heard = notifications.timeout_iter(TICK);
            loop {
                match heard.next() {
                    Ok(Some(n)) => match decode_payload(n.payload(), node) {
                        Ok(Some(wake)) => on_wake(wake),
                        Ok(None) => {}
                        Err(()) => {
                            tracing::warn!(payload = n.payload(), "ignoring a malformed wake-up");
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "wake-up listener lost its connection");
                        lost = true;
                        break;
                    }
                }
            }
        }
        if lost {
            client = None;
        }
        if last_resync.elapsed() >= resync {
            on_wake(Wake::Everyone);
            last_resync = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_accounts_or_revocations_from_other_nodes() {
        let me = 0xabc;
        assert_eq!(decode_payload("42", me), Ok(Some(Wake::Account(42))));
        assert_eq!(decode_payload("-42@def", me), Ok(Some(Wake::Revoked(42))));
        // Our own revocation comes back to us too: already done here, nothing to do.
        assert_eq!(decode_payload("-42@abc", me), Ok(None));
        assert_eq!(
            decode_payload("-42/3@def", me),
            Ok(Some(Wake::DeviceRevoked(42, 3)))
        );
        assert_eq!(decode_payload("-42/3@abc", me), Ok(None));
        for bad in [
            "0",
            "",
            "x",
            "4 2",
            "-",
            "-42",
            "-42@",
            "-42@xyz",
            "-0@def",
            "--1@def",
            "-42/@def",
            "-42/+3@def",
            "-42/x@def",
            "-42/3/4@def",
            "-42/4294967296@def",
            "-/3@def",
            "99999999999999999999",
        ] {
            assert_eq!(decode_payload(bad, me), Err(()), "{bad:?}");
        }
    }
}

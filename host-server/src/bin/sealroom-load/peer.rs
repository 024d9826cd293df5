//! The four loads of the side-by-side benchmark (`bench/peer`), against a server running as a
//! separate process, so that client CPU is not counted as server cost.
//!
//! Accounts come from [`seed`]: run before the server starts, it writes confirmed accounts,
//! their sessions and a room straight into a fresh data folder, so the loads log in with
//! `Resume` and neither PBKDF2 nor the registration limits are part of what is measured. The
//! session tokens derive from a random seed printed by `seed` and passed back with `--seed`.
//! Each load prints one line of `key=value` fields, as `mqtt-load` does for Mosquitto.

use core::net::SocketAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use host_server::client::Client;
use host_server::store::{AccountStore as _, NewAccount, RoomStore as _, SqliteStore, Store as _};
use proto_core::{Key32, Message, Sig64, SignedPrekey};
use sha2::{Digest as _, Sha256};

/// The room every `room` load uses; its members are `bench_1` ..= `bench_<members>`.
pub(crate) const ROOM: &str = "bench";

/// How long any single wait may take before the run is declared stuck.
const STALL: Duration = Duration::from_secs(30);

/// How often a receiver looks whether the sender has stopped.
const POLL: Duration = Duration::from_millis(20);

/// The knobs shared by every load.
#[derive(Clone, Debug)]
pub(crate) struct Load {
    pub(crate) addr: SocketAddr,
    pub(crate) fingerprint: String,
    pub(crate) seed: [u8; 32],
    pub(crate) window: u64,
    pub(crate) body: usize,
    pub(crate) seconds: u64,
    pub(crate) rate: u64,
    pub(crate) members: u64,
    pub(crate) conns: u64,
    pub(crate) server_pid: Option<u32>,
}

fn sender_name(i: u64) -> String {
    format!("bench_{i}")
}

fn idle_name(i: u64) -> String {
    format!("idle_{i}")
}

/// The session token of `username` under `seed`.
fn token(seed: &[u8; 32], username: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(username.as_bytes());
    h.finalize().into()
}

/// Writes `bench_0` ..= `bench_<members>` (all in room [`ROOM`]) and `idle_0` .. `idle_<conns>`
/// with live sessions into `data_dir` (which the server must not be using yet); returns the seed.
pub(crate) fn seed(data_dir: &Path, members: u64, conns: u64) -> anyhow::Result<[u8; 32]> {
    std::fs::create_dir_all(data_dir)?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
    let mut store = SqliteStore::open(&data_dir.join("sealroom.db"))?;
    let now = super::unix_now();
    let expires = now + 24 * 3600;
    store.begin_batch()?;
    let mut create = |name: String| -> anyhow::Result<i64> {
        let id = store.create_account(&NewAccount {
            username: name.clone(),
            name: "Bench".into(),
            email: "bench@example.org".into(),
            // Nobody logs in with a password: the loads resume their sessions.
            password_phc: "!".into(),
            totp_secret: vec![0; 20],
            identity_sig: [1; 32],
            identity_dh: [2; 32],
            spk: SignedPrekey {
                id: 1,
                key: Key32([3; 32]),
                signature: Sig64([4; 64]),
            },
            prekeys: Vec::new(),
            created_at: now,
        })?;
        store.confirm_account(id)?;
        let t = token(&seed, &name);
        store.create_session(id, &host_server::auth::token_hash(&t), expires, Some(1))?;
        Ok(id)
    };
    let mut room_members = Vec::new();
    for i in 0..=members {
        room_members.push(create(sender_name(i))?);
    }
    for i in 0..conns {
        create(idle_name(i))?;
    }
    let mut ids = room_members.into_iter();
    let admin = ids.next().context("no sender")?;
    let room = store.create_room(ROOM, admin)?;
    for id in ids {
        store.add_member(room, id)?;
    }
    store.commit_batch()?;
    Ok(seed)
}

async fn resume(load: &Load, username: &str) -> anyhow::Result<Client> {
    let mut c = Client::connect(load.addr, &load.fingerprint).await?;
    c.send(&Message::Resume {
        username,
        token: Key32(token(&load.seed, username)),
    })
    .await?;
    loop {
        let f = c.recv_timeout(STALL).await?;
        match f.msg() {
            Some(Message::Session { .. }) => return Ok(c),
            Some(Message::Error { text, .. }) => bail!("resume {username}: {text}"),
            _ => {}
        }
    }
}

fn stamp(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What a receiver saw: messages, the time of the last one, latencies (if kept).
struct Seen {
    count: u64,
    last: Duration,
    latencies: Vec<Duration>,
}

/// Receives (and acknowledges) until `total`, set by the sender once it stops, have arrived.
async fn receiver(
    mut c: Client,
    epoch: Instant,
    total: Arc<AtomicU64>,
    keep_latency: bool,
) -> anyhow::Result<Seen> {
    let mut seen = Seen {
        count: 0,
        last: Duration::ZERO,
        latencies: Vec::new(),
    };
    let mut progress = Instant::now();
    while seen.count < total.load(Ordering::Acquire) {
        // Short waits, so the loop sees `total` once the sender stops.
        let f = match c.recv_timeout(POLL).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                if progress.elapsed() > STALL {
                    bail!(
                        "receiver stalled at {} of {}",
                        seen.count,
                        total.load(Ordering::Acquire)
                    );
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        progress = Instant::now();
        let Some(Message::Deliver {
            server_id, body, ..
        }) = f.msg()
        else {
            continue;
        };
        let sent = body
            .first_chunk::<8>()
            .map_or(0, |b| u64::from_be_bytes(*b));
        let now = stamp(epoch);
        seen.count += 1;
        seen.last = epoch.elapsed();
        if keep_latency {
            seen.latencies
                .push(Duration::from_nanos(now.saturating_sub(sent)));
        }
        c.send(&Message::Ack { server_id }).await?;
    }
    Ok(seen)
}

/// Sends with `window` unaccepted sends in flight for `seconds` (at `rate` per second if
/// given), to `to` or to the room.
async fn sender(
    mut c: Client,
    to: Option<&str>,
    load: &Load,
    epoch: Instant,
    rate: Option<u64>,
    total: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let until = Duration::from_secs(load.seconds);
    let mut body = vec![0x5Au8; load.body.max(8)];
    let (mut sent, mut accepted) = (0u64, 0u64);
    loop {
        let sending = epoch.elapsed() < until;
        if !sending && accepted == sent {
            break;
        }
        let due = match rate {
            Some(r) => epoch + Duration::from_nanos(sent.saturating_mul(1_000_000_000) / r.max(1)),
            None => epoch,
        };
        let room = sending && sent - accepted < load.window;
        if room && Instant::now() >= due {
            if let Some(slot) = body.get_mut(..8) {
                slot.copy_from_slice(&stamp(epoch).to_be_bytes());
            }
            let msg = match to {
                Some(to) => Message::SendToUser {
                    to,
                    client_id: sent,
                    body: &body,
                },
                None => Message::SendToRoom {
                    room: ROOM,
                    client_id: sent,
                    body: &body,
                },
            };
            c.send(&msg).await?;
            sent += 1;
            continue;
        }
        let got = smol::future::or(
            async {
                if room {
                    smol::Timer::at(due).await;
                } else {
                    smol::Timer::after(STALL).await;
                }
                None
            },
            async { Some(c.recv().await) },
        )
        .await;
        match got {
            Some(f) => match f?.msg() {
                Some(Message::Accepted { .. }) => accepted += 1,
                Some(Message::Error { text, .. }) => bail!("server refused: {text}"),
                _ => {}
            },
            None if room => {}
            None => bail!("sender stalled: {accepted} of {sent} accepted"),
        }
    }
    total.store(sent, Ordering::Release);
    Ok(())
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// One → one at full speed (`paced` false) or at `rate` per second with latencies.
pub(crate) async fn pair(load: &Load, paced: bool) -> anyhow::Result<()> {
    let rx = resume(load, &sender_name(1)).await?;
    let tx = resume(load, &sender_name(0)).await?;
    let total = Arc::new(AtomicU64::new(u64::MAX));
    let epoch = Instant::now();
    let to = sender_name(1);
    let rate = paced.then_some(load.rate);
    let (s, r) = smol::future::zip(
        sender(tx, Some(&to), load, epoch, rate, total.clone()),
        receiver(rx, epoch, total.clone(), paced),
    )
    .await;
    s?;
    let mut seen = r?;
    if paced {
        let l = &mut seen.latencies;
        println!(
            "paced sent={} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3}",
            seen.count,
            super::pct(l, 0.5),
            super::pct(l, 0.9),
            super::pct(l, 0.99),
            super::pct(l, 1.0)
        );
    } else {
        println!(
            "pair msgs={} msgs_per_s={:.0}",
            seen.count,
            seen.count as f64 / seen.last.as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}

/// One sender → the room's other `members`; deliveries per second.
pub(crate) async fn room(load: &Load) -> anyhow::Result<()> {
    let total = Arc::new(AtomicU64::new(u64::MAX));
    let mut members = Vec::new();
    for i in 1..=load.members {
        members.push(resume(load, &sender_name(i)).await?);
    }
    let tx = resume(load, &sender_name(0)).await?;
    let epoch = Instant::now();
    let tasks: Vec<_> = members
        .into_iter()
        .map(|c| smol::spawn(receiver(c, epoch, total.clone(), false)))
        .collect();
    sender(tx, None, load, epoch, None, total.clone()).await?;
    let (mut deliveries, mut last) = (0u64, Duration::ZERO);
    for t in tasks {
        let seen = t.await?;
        deliveries += seen.count;
        last = last.max(seen.last);
    }
    println!(
        "room members={} sent={} deliveries={deliveries} deliveries_per_s={:.0}",
        load.members,
        total.load(Ordering::Acquire),
        deliveries as f64 / last.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// `conns` idle logged-in connections; the server's RSS growth per connection.
pub(crate) async fn idle(load: &Load) -> anyhow::Result<()> {
    let pid = load.server_pid.context("--server-pid is needed for idle")?;
    let before = rss_kib(pid)?;
    let mut conns = Vec::new();
    let mut next = 0u64;
    while next < load.conns {
        let batch: Vec<_> = (next..load.conns.min(next + 50))
            .map(|i| {
                let load = load.clone();
                smol::spawn(async move { resume(&load, &idle_name(i)).await })
            })
            .collect();
        next += batch.len() as u64;
        for t in batch {
            conns.push(t.await?);
        }
    }
    smol::Timer::after(Duration::from_millis(500)).await;
    let after = rss_kib(pid)?;
    println!(
        "idle conns={} rss_before_kib={before} rss_after_kib={after} kib_per_conn={:.1}",
        conns.len(),
        after.saturating_sub(before) as f64 / conns.len().max(1) as f64
    );
    Ok(())
}

//! `mqtt-load`: the Mosquitto side of `bench/peer`, the same four loads `sealroom-load` runs
//! against sealroom-server, over MQTT 3.1.1 with QoS 1 and TLS 1.3, on loopback only.
//!
//! It speaks just the packets the loads need (CONNECT, SUBSCRIBE, PUBLISH, PUBACK) on the same
//! runtime and TLS stack as `sealroom-load` (smol, rustls with ring), so the two clients cost
//! about the same and the comparison is between the servers. Each run prints one line of
//! `key=value` fields that the harness reads. Every wait is bounded.

use core::net::SocketAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use smol::Async;
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// MQTT load client for the side-by-side benchmark (loopback only).
#[derive(Debug, Parser)]
#[command(name = "mqtt-load", about)]
struct Args {
    /// Which load to run.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// The broker's TLS listener (loopback only).
    #[arg(long)]
    addr: SocketAddr,
    /// PEM file of the CA that signed the broker's certificate.
    #[arg(long)]
    ca: std::path::PathBuf,
    /// PUBLISHes in flight (not yet PUBACKed) from the publisher.
    #[arg(long, default_value_t = 20)]
    window: u64,
    /// Payload bytes per message (the first 8 carry the send time).
    #[arg(long, default_value_t = 256)]
    body: usize,
    /// Seconds of sending for `pair`, `paced` and `room`.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Messages per second for `paced`.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Subscribers for `room`.
    #[arg(long, default_value_t = 50)]
    members: usize,
    /// Connections for `idle`.
    #[arg(long, default_value_t = 5000)]
    conns: usize,
    /// The broker's process id, to read its RSS for `idle`.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// The loads, named as in `sealroom-load`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// One publisher → one subscriber, as fast as the window allows.
    Pair,
    /// One → one at a fixed rate; end-to-end latency.
    Paced,
    /// One publisher → `members` subscribers of one topic.
    Room,
    /// `conns` idle connected clients; broker RSS per connection.
    Idle,
}

/// How long any single wait may take before the run is declared stuck.
const STALL: Duration = Duration::from_secs(30);

/// How often a receiver looks whether the sender has stopped.
const POLL: Duration = Duration::from_millis(20);

type Stream = TlsStream<Async<std::net::TcpStream>>;

/// One MQTT connection with its read buffer.
struct Mqtt {
    stream: Stream,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed (the previous packet).
    used: usize,
    out: Vec<u8>,
}

/// A PUBLISH received: its packet id (QoS 1) and payload.
struct Publish<'a> {
    id: Option<u16>,
    payload: &'a [u8],
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Splits one packet off the front of `buf`: (first byte, body, bytes used).
fn split_packet(buf: &[u8]) -> anyhow::Result<Option<(u8, &[u8], usize)>> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (mut len, mut shift, mut i) = (0usize, 0u32, 1usize);
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            bail!("bad remaining length from the broker");
        }
    }
    Ok(buf.get(i..i + len).map(|body| (first, body, i + len)))
}

impl Mqtt {
    async fn connect(
        addr: SocketAddr,
        tls: &Arc<rustls::ClientConfig>,
        client_id: &str,
    ) -> anyhow::Result<Self> {
        let tcp = Async::<std::net::TcpStream>::connect(addr).await?;
        tcp.get_ref().set_nodelay(true)?;
        let name = ServerName::try_from("localhost")?;
        let stream = TlsConnector::from(tls.clone()).connect(name, tcp).await?;
        let mut c = Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            used: 0,
            out: Vec::with_capacity(512),
        };
        // CONNECT: protocol "MQTT" level 4, clean session, keep-alive off.
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0];
        put_str(&mut body, client_id);
        c.out.clear();
        c.out.push(0x10);
        put_len(&mut c.out, body.len());
        c.out.extend_from_slice(&body);
        c.flush_out().await?;
        let (kind, body) = c.next_packet().await?;
        if kind != 0x20 || body.get(1) != Some(&0) {
            bail!("CONNECT refused ({kind:#x} {body:?})");
        }
        Ok(c)
    }

    async fn flush_out(&mut self) -> anyhow::Result<()> {
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        Ok(())
    }

    async fn subscribe(&mut self, topic: &str) -> anyhow::Result<()> {
        let mut body = vec![0, 1];
        put_str(&mut body, topic);
        body.push(1);
        self.out.clear();
        self.out.push(0x82);
        put_len(&mut self.out, body.len());
        self.out.extend_from_slice(&body);
        self.flush_out().await?;
        let (kind, body) = self.next_packet().await?;
        if kind != 0x90 || body.get(2) != Some(&1) {
            bail!("SUBSCRIBE refused ({kind:#x} {body:?})");
        }
        Ok(())
    }

    async fn publish(&mut self, topic: &str, id: u16, payload: &[u8]) -> anyhow::Result<()> {
        self.out.clear();
        self.out.push(0x32);
        put_len(&mut self.out, 2 + topic.len() + 2 + payload.len());
        put_str(&mut self.out, topic);
        self.out.extend_from_slice(&id.to_be_bytes());
        self.out.extend_from_slice(payload);
        self.flush_out().await
    }

    async fn puback(&mut self, id: u16) -> anyhow::Result<()> {
        self.out.clear();
        self.out.extend_from_slice(&[0x40, 2]);
        self.out.extend_from_slice(&id.to_be_bytes());
        self.flush_out().await
    }

    /// The next packet: its first byte and body. Cancel-safe: bytes read stay in `buf`.
    async fn next_packet(&mut self) -> anyhow::Result<(u8, &[u8])> {
        if self.used > 0 {
            self.buf.drain(..self.used);
            self.used = 0;
        }
        loop {
            if let Some((_, _, used)) = split_packet(&self.buf)? {
                self.used = used;
                break;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("the broker closed the connection");
            }
            self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
        }
        match split_packet(&self.buf)? {
            Some((first, body, _)) => Ok((first, body)),
            None => bail!("packet vanished"),
        }
    }

    /// The next PUBLISH, answering any others it skips; `None` for a non-PUBLISH packet.
    async fn next_publish(&mut self) -> anyhow::Result<Option<Publish<'_>>> {
        let (first, body) = self.next_packet().await?;
        if first >> 4 != 3 {
            return Ok(None);
        }
        let qos = (first >> 1) & 3;
        let topic_len = usize::from(u16::from_be_bytes([
            *body.first().unwrap_or(&0),
            *body.get(1).unwrap_or(&0),
        ]));
        let mut at = 2 + topic_len;
        let id = if qos > 0 {
            let id = body
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]));
            at += 2;
            id
        } else {
            None
        };
        let payload = body.get(at..).unwrap_or(&[]);
        Ok(Some(Publish { id, payload }))
    }
}

fn stamp(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// What a subscriber saw: messages, the time of the last one, latencies (if kept).
struct Seen {
    count: u64,
    last: Duration,
    latencies: Vec<Duration>,
}

/// Receives until `total` (set by the publisher once it stops) messages have arrived.
async fn subscriber(
    mut c: Mqtt,
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
        // Short waits, so the loop sees `total` once the publisher stops.
        let got = smol::future::or(async { Some(c.next_publish().await) }, async {
            smol::Timer::after(POLL).await;
            None
        })
        .await;
        let Some(got) = got else {
            if progress.elapsed() > STALL {
                bail!(
                    "subscriber stalled at {} of {}",
                    seen.count,
                    total.load(Ordering::Acquire)
                );
            }
            continue;
        };
        progress = Instant::now();
        let Some(p) = got? else { continue };
        let sent = p
            .payload
            .first_chunk::<8>()
            .map_or(0, |b| u64::from_be_bytes(*b));
        let id = p.id;
        let now = stamp(epoch);
        seen.count += 1;
        seen.last = epoch.elapsed();
        if keep_latency {
            seen.latencies
                .push(Duration::from_nanos(now.saturating_sub(sent)));
        }
        if let Some(id) = id {
            c.puback(id).await?;
        }
    }
    Ok(seen)
}

/// Publishes with `window` in flight for `seconds` (or at `rate` per second if given).
async fn publisher(
    mut c: Mqtt,
    topic: &str,
    args: &Args,
    epoch: Instant,
    rate: Option<u64>,
    total: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let until = Duration::from_secs(args.seconds);
    let mut payload = vec![0x5Au8; args.body.max(8)];
    let (mut sent, mut acked) = (0u64, 0u64);
    loop {
        let elapsed = epoch.elapsed();
        let sending = elapsed < until;
        if !sending && acked == sent {
            break;
        }
        let due = match rate {
            Some(r) => epoch + Duration::from_nanos(sent.saturating_mul(1_000_000_000) / r.max(1)),
            None => epoch,
        };
        if sending && sent - acked < args.window && Instant::now() >= due {
            if let Some(slot) = payload.get_mut(..8) {
                slot.copy_from_slice(&stamp(epoch).to_be_bytes());
            }
            let id = u16::try_from(sent % 65_535 + 1).unwrap_or(1);
            c.publish(topic, id, &payload).await?;
            sent += 1;
            continue;
        }
        let wait_send = sending && sent - acked < args.window;
        let got = smol::future::or(
            async {
                if wait_send {
                    smol::Timer::at(due).await;
                } else {
                    smol::Timer::after(STALL).await;
                }
                None
            },
            async { Some(c.next_packet().await.map(|(k, _)| k)) },
        )
        .await;
        match got {
            Some(Ok(0x40)) => acked += 1,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e),
            None if wait_send => {}
            None => bail!("publisher stalled: {acked} of {sent} acknowledged"),
        }
    }
    total.store(sent, Ordering::Release);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        bail!("mqtt-load only talks to loopback; {} is not", args.addr);
    }
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(&args.ca)
        .with_context(|| format!("read the CA from {}", args.ca.display()))?;
    roots.add(ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    smol::block_on(run(&args, &tls))
}

async fn run(args: &Args, tls: &Arc<rustls::ClientConfig>) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Pair | Scenario::Paced => {
            let topic = "bench/pair";
            let mut sub = Mqtt::connect(args.addr, tls, "bench-sub").await?;
            sub.subscribe(topic).await?;
            let publ = Mqtt::connect(args.addr, tls, "bench-pub").await?;
            let total = Arc::new(AtomicU64::new(u64::MAX));
            let epoch = Instant::now();
            let paced = matches!(args.scenario, Scenario::Paced);
            let rate = paced.then_some(args.rate);
            let (p, s) = smol::future::zip(
                publisher(publ, topic, args, epoch, rate, total.clone()),
                subscriber(sub, epoch, total.clone(), paced),
            )
            .await;
            p?;
            let mut seen = s?;
            if paced {
                let l = &mut seen.latencies;
                println!(
                    "paced sent={} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3}",
                    seen.count,
                    pct(l, 0.5),
                    pct(l, 0.9),
                    pct(l, 0.99),
                    pct(l, 1.0)
                );
            } else {
                println!(
                    "pair msgs={} msgs_per_s={:.0}",
                    seen.count,
                    seen.count as f64 / seen.last.as_secs_f64().max(1e-9)
                );
            }
        }
        Scenario::Room => {
            let topic = "bench/room";
            let total = Arc::new(AtomicU64::new(u64::MAX));
            let mut subs = Vec::new();
            for i in 0..args.members {
                let mut s = Mqtt::connect(args.addr, tls, &format!("bench-member-{i}")).await?;
                s.subscribe(topic).await?;
                subs.push(s);
            }
            let publ = Mqtt::connect(args.addr, tls, "bench-room-pub").await?;
            let epoch = Instant::now();
            let tasks: Vec<_> = subs
                .into_iter()
                .map(|s| smol::spawn(subscriber(s, epoch, total.clone(), false)))
                .collect();
            publisher(publ, topic, args, epoch, None, total.clone()).await?;
            let (mut deliveries, mut last) = (0u64, Duration::ZERO);
            for t in tasks {
                let seen = t.await?;
                deliveries += seen.count;
                last = last.max(seen.last);
            }
            println!(
                "room members={} sent={} deliveries={deliveries} deliveries_per_s={:.0}",
                args.members,
                total.load(Ordering::Acquire),
                deliveries as f64 / last.as_secs_f64().max(1e-9)
            );
        }
        Scenario::Idle => {
            let pid = args.server_pid.context("--server-pid is needed for idle")?;
            let before = rss_kib(pid)?;
            let mut conns = Vec::with_capacity(args.conns);
            let mut next = 0usize;
            while next < args.conns {
                let batch: Vec<_> = (next..args.conns.min(next + 50))
                    .map(|i| {
                        let tls = tls.clone();
                        let addr = args.addr;
                        smol::spawn(async move {
                            Mqtt::connect(addr, &tls, &format!("bench-idle-{i}")).await
                        })
                    })
                    .collect();
                next += batch.len();
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
        }
    }
    Ok(())
}

//! `sealroom-load`: a bounded load generator for `sealroom-server`, on 127.0.0.1 only.
//!
//! By default it starts a server in-process (real TLS, real SQLite with `synchronous=FULL`,
//! the production PBKDF2 cost) in a temporary folder; `--addr` and `--fingerprint` aim it at a
//! running server instead, which must be on a loopback address. It registers `--users` users,
//! each sending `--messages` messages of `--body` bytes to the next user with `--window`
//! sends in flight, acknowledging what it receives. It prints the login cost (one PBKDF2), the
//! throughput, and the latencies from send to `Accepted` (durable commit) and to `Deliver` at
//! the recipient. Everything is bounded: users ≤ 500, messages ≤ 100,000 each, and a deadline.
//! `--database` puts the in-process server on PostgreSQL, and `--nodes 2` starts two of them on
//! that database with users spread over both, so that every message crosses nodes.
//!
//! `--scenario` picks one of the side-by-side benchmark's loads instead (see `peer.rs` and
//! `bench/peer`): `seed` prepares a data folder, then `pair`, `paced`, `room` and `idle` load a
//! separate `sealroom-server` process on that folder.

mod peer;

use core::net::SocketAddr;
use core::time::Duration;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use host_server::auth::totp;
use host_server::client::Client;
use host_server::clock::Clock;
use host_server::config::ServerConfig;
use host_server::server::Server;
use proto_core::{
    DeviceKeys, IdentityKeyPair, Key32, List, Message, Sig64, SignedPrekey, SignedPrekeyPair,
};

/// Load generator for sealroom-server (loopback only).
#[derive(Debug, Parser)]
#[command(name = "sealroom-load", version, about)]
struct Args {
    /// Server to load (loopback only); without it a server is started in-process.
    #[arg(long, requires = "fingerprint")]
    addr: Option<SocketAddr>,
    /// The server certificate's SHA-256 fingerprint (as printed by sealroom-server).
    #[arg(long)]
    fingerprint: Option<String>,
    /// Concurrent users (one connection each).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=500))]
    users: u64,
    /// Messages each user sends.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    messages: u64,
    /// Sends in flight per user.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    window: u64,
    /// Body bytes per message.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..=60_000))]
    body: u64,
    /// Only time this many PBKDF2-HMAC-SHA256 verifications at the production cost, then exit.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    hash_only: Option<u64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    max_seconds: u64,
    /// A load of the side-by-side benchmark instead of the default mixed load.
    #[arg(long, value_enum, default_value_t = Scenario::Mixed)]
    scenario: Scenario,
    /// `seed`: the data folder to fill (before the server starts on it).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// The seed `--scenario seed` printed (hex), from which the session tokens derive.
    #[arg(long)]
    seed: Option<String>,
    /// Seconds of sending for `pair`, `paced` and `room`.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Messages per second for `paced`.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Room members besides the sender, for `seed` and `room`.
    #[arg(long, default_value_t = 50)]
    members: u64,
    /// Idle connections, for `seed` and `idle`.
    #[arg(long, default_value_t = 5000)]
    conns: u64,
    /// The server's process id, to read its RSS for `idle`.
    #[arg(long)]
    server_pid: Option<u32>,
    /// In-process servers store in this PostgreSQL database (`postgres://…` or `key=value`
    /// pairs) instead of SQLite.
    #[arg(long)]
    database: Option<String>,
    /// In-process server nodes sharing `--database`; user i connects to node i mod N and
    /// sends to user i+1, so with N > 1 every message crosses nodes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4))]
    nodes: u64,
}

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Registers `--users` users who each send `--messages` to the next (the default).
    Mixed,
    /// Writes the benchmark's accounts, sessions and room into `--data-dir`; prints the seed.
    Seed,
    /// One sender → one receiver, as fast as `--window` allows.
    Pair,
    /// One → one at `--rate` per second: end-to-end latency.
    Paced,
    /// One sender → a room of `--members`: deliveries per second.
    Room,
    /// `--conns` idle logged-in connections: server RSS per connection.
    Idle,
}

const PASSWORD: &str = "load generator passphrase: seven tall giraffes";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random32() -> anyhow::Result<[u8; 32]> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
    Ok(b)
}

async fn expect_frame(c: &mut Client) -> anyhow::Result<host_server::client::Frame> {
    Ok(c.recv_timeout(Duration::from_secs(60)).await?)
}

async fn register(addr: SocketAddr, fp: &str, name: &str) -> anyhow::Result<Client> {
    let id = IdentityKeyPair::from_secrets(&random32()?, &random32()?);
    let spk = SignedPrekeyPair::from_secret_key(1, &random32()?, &id).public();
    let p = id.public();
    let mut c = Client::connect(addr, fp).await?;
    c.send(&Message::Register {
        name: "Load",
        email: "load@example.org",
        username: name,
        password: PASSWORD,
        device: DeviceKeys {
            identity_sig: Key32(p.signing),
            identity_dh: Key32(p.dh),
            signed_prekey: SignedPrekey {
                id: 1,
                key: Key32(spk.public),
                signature: Sig64(spk.signature),
            },
            one_time_prekeys: List::empty(),
        },
    })
    .await?;
    let f = expect_frame(&mut c).await?;
    let Some(Message::TotpEnrollment { uri }) = f.msg() else {
        bail!("register {name}: {:?}", f.msg());
    };
    let secret = totp::secret_from_uri(uri).context("enrollment URI")?;
    let code = totp::code_at(&secret, unix_now());
    c.send(&Message::ConfirmTotp { code: &code }).await?;
    loop {
        let f = expect_frame(&mut c).await?;
        match f.msg() {
            Some(Message::Session { .. }) => return Ok(c),
            Some(Message::Error { text, .. }) => bail!("enroll {name}: {text}"),
            _ => {}
        }
    }
}

#[derive(Default)]
struct Stats {
    accept: Vec<Duration>,
    deliver: Vec<Duration>,
}

async fn run_user(
    mut c: Client,
    to: String,
    messages: u64,
    window: u64,
    body_len: usize,
    epoch: Instant,
) -> anyhow::Result<Stats> {
    let mut stats = Stats::default();
    let mut sent_at = std::collections::HashMap::new();
    let (mut next, mut accepted, mut received) = (0u64, 0u64, 0u64);
    let mut body = vec![0x5Au8; body_len];
    while accepted < messages || received < messages {
        while next < messages && next - accepted < window {
            let t = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if let Some(slot) = body.get_mut(..8) {
                slot.copy_from_slice(&t.to_be_bytes());
            }
            c.send(&Message::SendToUser {
                to: &to,
                client_id: next,
                body: &body,
            })
            .await?;
            sent_at.insert(next, Instant::now());
            next += 1;
        }
        let f = expect_frame(&mut c).await?;
        match f.msg() {
            Some(Message::Accepted { client_id, .. }) => {
                if let Some(t) = sent_at.remove(&client_id) {
                    stats.accept.push(t.elapsed());
                }
                accepted += 1;
            }
            Some(Message::Deliver {
                server_id, body, ..
            }) => {
                let stamp = body
                    .first_chunk::<8>()
                    .map_or(0, |b| u64::from_be_bytes(*b));
                let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                stats
                    .deliver
                    .push(Duration::from_nanos(now.saturating_sub(stamp)));
                received += 1;
                c.send(&Message::Ack { server_id }).await?;
            }
            Some(Message::Error { text, .. }) => bail!("server refused: {text}"),
            _ => {}
        }
    }
    Ok(stats)
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Warnings, plus the store's closing line: how many requests each commit carried.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,host_server::store=info")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(n) = args.hash_only {
        use host_server::auth::password::{DEFAULT_ROUNDS, hash_password, verify_password};
        let phc =
            hash_password(PASSWORD, DEFAULT_ROUNDS).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
        let mut times = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let ok = verify_password(PASSWORD, &phc).map_err(|e| anyhow::anyhow!("{e}"))?;
            times.push(t.elapsed());
            if !ok {
                bail!("verification failed");
            }
        }
        println!(
            "PBKDF2-HMAC-SHA256, {DEFAULT_ROUNDS} iterations, one verification: median {:.1} ms, min {:.1} ms ({n} runs, one core)",
            pct(&mut times, 0.5),
            pct(&mut times, 0.0)
        );
        return Ok(());
    }
    if args.scenario != Scenario::Mixed {
        return run_peer(&args);
    }
    if args.nodes > 1 && args.database.is_none() {
        bail!("--nodes above 1 needs --database: nodes share a PostgreSQL database");
    }
    let mut local: Vec<(Server, std::path::PathBuf)> = Vec::new();
    let nodes: Vec<(SocketAddr, String)> = match (args.addr, args.fingerprint.clone()) {
        (Some(a), Some(f)) => {
            if !a.ip().is_loopback() {
                bail!("sealroom-load only talks to 127.0.0.1 / ::1; {a} is not loopback");
            }
            vec![(a, f)]
        }
        _ => {
            let mut nodes = Vec::new();
            for _ in 0..args.nodes {
                let dir = tempfile_dir()?;
                let mut config = ServerConfig::new(dir.clone());
                config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
                config.database = args.database.clone();
                config.recipient_quota = args.messages.saturating_mul(2).max(10_000);
                // The load is one sender per recipient at full speed: lift the per-sender
                // quota and the send rate, which guard against abuse, not throughput.
                config.sender_quota = config.recipient_quota;
                config.send_rate = host_server::auth::ratelimit::Rate::UNLIMITED;
                config.max_connections_per_address = 10_000;
                // Every load user registers from 127.0.0.1.
                config.registration_policy = host_server::auth::ratelimit::Policy {
                    max_per_hour: 1_000,
                    free: 1_000,
                    base_delay: 0,
                    max_delay: 0,
                };
                let s =
                    Server::start(config, Clock::System).context("start an in-process server")?;
                let out = (s.local_addr, s.identity.fingerprint.clone());
                println!(
                    "in-process server on {} ({}, files in {})",
                    out.0,
                    if args.database.is_some() {
                        "PostgreSQL"
                    } else {
                        "SQLite"
                    },
                    dir.display()
                );
                local.push((s, dir));
                nodes.push(out);
            }
            nodes
        }
    };
    let deadline = Duration::from_secs(args.max_seconds);
    let result = smol::block_on(smol::future::or(
        run_load(&args, &nodes, args.users),
        async {
            smol::Timer::after(deadline).await;
            Err(anyhow::anyhow!(
                "gave up after {} s (the deadline)",
                deadline.as_secs()
            ))
        },
    ));
    for (server, dir) in local {
        server.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// The side-by-side benchmark's loads (`bench/peer`).
fn run_peer(args: &Args) -> anyhow::Result<()> {
    if args.scenario == Scenario::Seed {
        let dir = args
            .data_dir
            .as_deref()
            .context("--data-dir is needed for seed")?;
        let seed = peer::seed(dir, args.members, args.conns)?;
        println!("seed={}", hex::encode(seed));
        return Ok(());
    }
    let (Some(addr), Some(fingerprint)) = (args.addr, args.fingerprint.clone()) else {
        bail!("--addr and --fingerprint are needed: these loads run against a separate server");
    };
    if !addr.ip().is_loopback() {
        bail!("sealroom-load only talks to 127.0.0.1 / ::1; {addr} is not loopback");
    }
    let mut seed = [0u8; 32];
    hex::decode_to_slice(args.seed.as_deref().context("--seed is needed")?, &mut seed)
        .context("--seed must be 64 hex digits")?;
    let load = peer::Load {
        addr,
        fingerprint,
        seed,
        window: args.window,
        body: usize::try_from(args.body).unwrap_or(256),
        seconds: args.seconds,
        rate: args.rate,
        members: args.members,
        conns: args.conns,
        server_pid: args.server_pid,
    };
    let deadline = Duration::from_secs(args.max_seconds);
    smol::block_on(smol::future::or(
        async {
            match args.scenario {
                Scenario::Pair => peer::pair(&load, false).await,
                Scenario::Paced => peer::pair(&load, true).await,
                Scenario::Room => peer::room(&load).await,
                Scenario::Idle => peer::idle(&load).await,
                Scenario::Mixed | Scenario::Seed => Ok(()),
            }
        },
        async {
            smol::Timer::after(deadline).await;
            Err(anyhow::anyhow!(
                "gave up after {} s (the deadline)",
                deadline.as_secs()
            ))
        },
    ))
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("sealroom-load-{}", hex::encode(&random32()?[..6])));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn run_load(args: &Args, nodes: &[(SocketAddr, String)], users: u64) -> anyhow::Result<()> {
    let tag = hex::encode(&random32()?[..3]);
    let names: Vec<String> = (0..users).map(|i| format!("load_{tag}_{i}")).collect();
    let Some((addr, fp)) = nodes.first().map(|(a, f)| (*a, f.as_str())) else {
        bail!("no server to load");
    };

    let t = Instant::now();
    let mut clients = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let (node_addr, node_fp) = &nodes[i % nodes.len()];
        clients.push(register(*node_addr, node_fp, n).await?);
    }
    let register_each = t.elapsed() / u32::try_from(users).unwrap_or(1);

    // One PBKDF2 verification per login: time Login → TotpRequired, a few times.
    let mut login_times = Vec::new();
    for n in names.iter().take(3) {
        let mut c = Client::connect(addr, fp).await?;
        let t = Instant::now();
        c.send(&Message::Login {
            username: n,
            password: PASSWORD,
        })
        .await?;
        let f = expect_frame(&mut c).await?;
        login_times.push(t.elapsed());
        if !matches!(f.msg(), Some(Message::TotpRequired)) {
            bail!("login: {:?}", f.msg());
        }
    }

    let epoch = Instant::now();
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let to = names
            .get((i + 1) % names.len())
            .cloned()
            .unwrap_or_default();
        let (m, w, b) = (
            args.messages,
            args.window,
            usize::try_from(args.body).unwrap_or(256),
        );
        tasks.push(smol::spawn(run_user(c, to, m, w, b, epoch)));
    }
    let mut all = Stats::default();
    for t in tasks {
        let s = t.await?;
        all.accept.extend(s.accept);
        all.deliver.extend(s.deliver);
    }
    let elapsed = epoch.elapsed().as_secs_f64();
    let total = users * args.messages;
    println!(
        "sealroom-load: {users} users x {} messages of {} bytes, window {}, {} node(s), {}",
        args.messages,
        args.body,
        args.window,
        nodes.len(),
        if args.addr.is_some() {
            "external server"
        } else if args.database.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!(
        "registration (PBKDF2 hash + enrollment), per user: {:.1} ms",
        register_each.as_secs_f64() * 1000.0
    );
    let mut lt = login_times;
    println!(
        "login to TotpRequired (one PBKDF2 verification): median {:.1} ms",
        pct(&mut lt, 0.5)
    );
    println!(
        "{total} messages sent, committed, delivered and acknowledged in {elapsed:.2} s: {:.0} msgs/s",
        total as f64 / elapsed
    );
    println!(
        "send -> Accepted (durable commit): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&mut all.accept, 0.5),
        pct(&mut all.accept, 0.9),
        pct(&mut all.accept, 0.99),
        pct(&mut all.accept, 1.0)
    );
    println!(
        "send -> Deliver at recipient: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&mut all.deliver, 0.5),
        pct(&mut all.deliver, 0.9),
        pct(&mut all.deliver, 0.99),
        pct(&mut all.deliver, 1.0)
    );
    Ok(())
}

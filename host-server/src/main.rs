//! `sealroom-server`: relays and stores only ciphertext for Sealroom clients.
//!
//! This file only wires: flags → [`ServerConfig`], logging, signals, and the printout a person
//! needs (the URL to open, the certificate fingerprint and the key pin clients keep).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use host_server::clock::Clock;
use host_server::config::ServerConfig;
use host_server::server::Server;

/// Sealroom's server: accounts with TOTP MFA, a key directory and store-and-forward of ciphertext.
///
/// One TLS 1.3 port serves both transports, chosen by ALPN: `sealroom/1` (native clients:
/// frames back to back) and `http/1.1` (browsers: the web client, and its WebSocket at /ws).
#[derive(Debug, Parser)]
#[command(name = "sealroom-server", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SEALROOM_LISTEN", default_value = "127.0.0.1:8443")]
    listen: core::net::SocketAddr,
    /// Folder for the SQLite database and the self-signed certificate.
    #[arg(long, env = "SEALROOM_DATA_DIR", default_value = "./sealroom-data")]
    data_dir: PathBuf,
    /// A PostgreSQL database shared by several nodes (`postgres://user@host/db` or
    /// `host=… dbname=…`), instead of the SQLite file in --data-dir (see docs/DEPLOY.md).
    /// Needs a build with the `postgres` feature (the default).
    #[arg(long, env = "SEALROOM_DATABASE")]
    database: Option<String>,
    /// PEM certificate chain (with --key) instead of the self-signed certificate.
    #[arg(long, env = "SEALROOM_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key for --cert.
    #[arg(long, env = "SEALROOM_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// Extra host names or IP addresses for the self-signed certificate (repeatable).
    #[arg(long = "hostname", env = "SEALROOM_HOSTNAMES", value_delimiter = ',')]
    hostnames: Vec<String>,
    /// Folder with the web client's built files.
    #[arg(long, env = "SEALROOM_WEB_ROOT", default_value = "web-client/dist")]
    web_root: PathBuf,
    /// Most connections at once; more are refused with BUSY.
    #[arg(long, env = "SEALROOM_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Most connections at once from one source address.
    #[arg(
        long,
        env = "SEALROOM_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    max_connections_per_address: usize,
    /// Days an undelivered message is kept.
    #[arg(long, env = "SEALROOM_MESSAGE_TTL_DAYS", default_value_t = 30)]
    message_ttl_days: u64,
    /// Messages queued per recipient before senders are refused with QUOTA_FULL.
    #[arg(long, env = "SEALROOM_RECIPIENT_QUOTA", default_value_t = 10_000)]
    recipient_quota: u64,
    /// Messages one sender may have waiting for one recipient.
    #[arg(long, env = "SEALROOM_SENDER_QUOTA", default_value_t = 1_000)]
    sender_quota: u64,
    /// Messages one account may send per second (sustained; bursts of 1,000).
    #[arg(long, env = "SEALROOM_SEND_RATE", default_value_t = 500)]
    send_rate: u32,
    /// Seconds a connection may take to log in (or to confirm a registration).
    #[arg(long, env = "SEALROOM_AUTH_DEADLINE_SECS", default_value_t = 300)]
    auth_deadline_secs: u64,
    /// Connections kept for logged-in users (not offered to unauthenticated ones).
    #[arg(
        long,
        env = "SEALROOM_RESERVED_FOR_AUTHENTICATED",
        default_value_t = 1_000
    )]
    reserved_for_authenticated: usize,
    /// Most connections at once from one IPv6 /56.
    #[arg(
        long,
        env = "SEALROOM_MAX_CONNECTIONS_PER_PREFIX56",
        default_value_t = 1_024
    )]
    max_connections_per_prefix56: usize,
    /// Password hashes that may wait for unauthenticated requests before more are refused.
    #[arg(long, env = "SEALROOM_MAX_HASH_QUEUE", default_value_t = 64)]
    max_hash_queue: usize,
    /// PBKDF2 iterations for new password hashes. Lower it only for tests.
    #[arg(long, env = "SEALROOM_PBKDF2_ROUNDS", default_value_t = host_server::auth::password::DEFAULT_ROUNDS, hide = true)]
    pbkdf2_rounds: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log file or journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let mut config = ServerConfig::new(args.data_dir.clone());
    config.listen = args.listen;
    config.database = args.database;
    let using_postgres = config.database.is_some();
    config.cert = args.cert;
    config.key = args.key;
    config.hostnames = args.hostnames;
    config.web_root = args.web_root;
    config.max_connections = args.max_connections;
    config.max_connections_per_address = args.max_connections_per_address;
    config.message_ttl = args.message_ttl_days.saturating_mul(24 * 3600);
    config.recipient_quota = args.recipient_quota;
    config.sender_quota = args.sender_quota;
    config.send_rate = host_server::auth::ratelimit::Rate {
        burst: 1_000.max(args.send_rate),
        per_hour: args.send_rate.saturating_mul(3_600),
    };
    config.auth_deadline = core::time::Duration::from_secs(args.auth_deadline_secs.max(1));
    config.reserved_for_authenticated = args.reserved_for_authenticated;
    config.max_connections_per_prefix56 = args.max_connections_per_prefix56;
    config.max_hash_queue = args.max_hash_queue.max(1);
    config.pbkdf2_rounds = args.pbkdf2_rounds.max(1);
    if config.pbkdf2_rounds < host_server::auth::password::DEFAULT_ROUNDS {
        tracing::warn!(
            rounds = config.pbkdf2_rounds,
            "PBKDF2 rounds below the default: for tests only"
        );
    }

    // Signals first, so a SIGTERM during startup is not lost.
    let signals =
        async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
            .context("cannot install signal handlers")?;

    let server = Server::start(config, Clock::System).context("cannot start the server")?;
    let addr = server.local_addr;
    let host = if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    };
    // What clients pin: the key, which survives the yearly renewal of a self-signed certificate.
    let key_pin = match server.identity.chain.first() {
        Some(leaf) => cert_pin::Pin::of_key(leaf)
            .map_or_else(|e| format!("unavailable ({e})"), |p| p.to_string()),
        None => "unavailable (no certificate)".to_owned(),
    };
    // The lines a person (or a script) needs; a closed stdout must not stop the server.
    let banner = format!(
        "sealroom-server listening on {addr}\nopen https://{host}:{port}/\n\
         certificate SHA-256 fingerprint{kind}: {fp}\nkey (SPKI) SHA-256 pin: {key_pin}\n\
         certificate: {cert}\ndata: {data}\nstore: {store}\n",
        port = addr.port(),
        kind = if server.identity.self_signed {
            " (self-signed)"
        } else {
            ""
        },
        fp = server.identity.fingerprint,
        cert = server.identity.cert_path.display(),
        data = args.data_dir.display(),
        // Never the connection string itself: it may hold a password.
        store = if using_postgres {
            "PostgreSQL (--database), shared with any other node on it"
        } else {
            "SQLite, sealroom.db in the data folder"
        },
    );
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes());
        let _ = out.flush();
    }

    use smol::stream::StreamExt as _;
    let mut signals = signals;
    let signal = smol::block_on(signals.next());
    tracing::info!(?signal, "shutting down: finishing in-flight requests");
    server.shutdown();
    Ok(())
}

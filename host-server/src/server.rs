//! The listener: accepts TCP, bounds the number of connections, runs the TLS handshake under a
//! timeout, and hands each connection to its transport by ALPN: `sealroom/1` → native frames,
//! anything else (`http/1.1`, or no ALPN) → HTTPS with the WebSocket upgrade.
//!
//! [`Server::start`] runs everything on an executor with one thread per core;
//! [`Server::shutdown`] stops accepting, lets each connection finish the frame it is handling
//! (so in-flight commits complete and their replies are written), waits for them within the
//! drain timeout, commits what the store has queued, and stops.

use core::net::SocketAddr;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
#[cfg(feature = "postgres")]
use std::sync::{OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use futures_rustls::TlsAcceptor;
use proto_core::{ErrorCode, Message};
use smol::Async;
use smol::io::AsyncWriteExt;

#[cfg(feature = "postgres")]
use crate::Cluster;
use crate::Shared;
use crate::auth::address_key;
use crate::clock::Clock;
use crate::config::ServerConfig;
pub use crate::shutdown::Shutdown;
use crate::store::{Db, SqliteStore, StoreError};
#[cfg(feature = "postgres")]
use crate::store::{PgLedger, PgStore};
use crate::tls::{self, ALPN_SEALROOM, Identity, TlsError};
use crate::transport::Accepted;
#[cfg(feature = "postgres")]
use crate::wake::{PgWakeBus, Wake};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data folder could not be made.
    #[error("data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store failed to open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// The configuration names a PostgreSQL database, and this build was made without the
    /// `postgres` feature (its store, wake-up bus and login ledger).
    #[error("this build has no PostgreSQL support; rebuild with the `postgres` feature")]
    NoPostgres,
}

/// Open connections per source address.
type PerAddress = Arc<std::sync::Mutex<std::collections::HashMap<core::net::IpAddr, usize>>>;

/// Counts a connection, in all and per address, for as long as it lives.
struct ConnGuard {
    active: Arc<AtomicUsize>,
    per_address: PerAddress,
    addr: core::net::IpAddr,
    /// The IPv6 /56 it also counts against, if any.
    prefix: Option<core::net::IpAddr>,
}

/// The /56 an IPv6 address belongs to (a site's usual allocation), counted besides its /64 so
/// that one site cannot take the server with many /64s.
fn prefix56(addr: core::net::IpAddr) -> Option<core::net::IpAddr> {
    match addr {
        core::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => Some(core::net::IpAddr::V6(
            core::net::Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 72) - 1)),
        )),
        _ => None,
    }
}

impl ConnGuard {
    /// Counts a new connection; returns the guard and the totals including it.
    fn new(
        active: &Arc<AtomicUsize>,
        per_address: &PerAddress,
        addr: core::net::IpAddr,
    ) -> (Self, usize, usize, usize) {
        let n = active.fetch_add(1, Ordering::SeqCst) + 1;
        let prefix = prefix56(addr);
        let mut map = per_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = map.entry(addr).or_insert(0);
        *slot += 1;
        let from_addr = *slot;
        let from_prefix = match prefix {
            Some(p) => {
                let slot = map.entry(p).or_insert(0);
                *slot += 1;
                *slot
            }
            None => 0,
        };
        drop(map);
        let guard = Self {
            active: active.clone(),
            per_address: per_address.clone(),
            addr,
            prefix,
        };
        (guard, n, from_addr, from_prefix)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
        let mut map = self
            .per_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in [Some(self.addr), self.prefix].into_iter().flatten() {
            if let Some(slot) = map.get_mut(&key) {
                *slot = slot.saturating_sub(1);
                if *slot == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// The address actually bound (port 0 resolved).
    pub local_addr: SocketAddr,
    /// The certificate in use.
    pub identity: Identity,
    /// The state shared by connections.
    pub shared: Arc<Shared>,
    shutdown: Shutdown,
    stop_executor: Shutdown,
    active: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
    /// The wake-up bus, when this node shares a database with others.
    #[cfg(feature = "postgres")]
    bus: Option<Arc<PgWakeBus>>,
}

impl Server {
    /// Opens the store and certificate, binds, and starts serving.
    pub fn start(config: ServerConfig, clock: Clock) -> Result<Self, ServerError> {
        // Before anything is written: a build without PostgreSQL cannot serve a config that
        // names a database, and must not fall back to SQLite behind the operator's back.
        #[cfg(not(feature = "postgres"))]
        if config.database.is_some() {
            return Err(ServerError::NoPostgres);
        }
        make_private_dir(&config.data_dir)?;
        let identity = tls::load_or_create(
            &config.data_dir,
            config.cert.as_deref(),
            config.key.as_deref(),
            &config.hostnames,
        )?;
        let acceptor = TlsAcceptor::from(tls::server_config(&identity)?);
        // With PostgreSQL this node is one of several: the store opens (and migrates) first,
        // then the ledger and the wake-up bus, whose wakes reach this node's hub once it exists.
        #[cfg(feature = "postgres")]
        let target: Arc<OnceLock<Weak<Shared>>> = Arc::default();
        #[cfg(feature = "postgres")]
        let (db, cluster, bus) = match &config.database {
            Some(params) => {
                let (db, cluster, bus) =
                    open_shared_database(params, config.resync_interval, target.clone())?;
                (db, Some(cluster), Some(bus))
            }
            None => (open_sqlite(&config.data_dir)?, None, None),
        };
        // Without the `postgres` feature a `database` was refused above: SQLite, one node.
        #[cfg(not(feature = "postgres"))]
        let (db, cluster) = (open_sqlite(&config.data_dir)?, None);
        let listener = TcpListener::bind(config.listen).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let listener = Async::new(listener).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;

        let executor = Arc::new(smol::Executor::new());
        let stop_executor = Shutdown::new();
        let cpus = std::thread::available_parallelism().map_or(2, core::num::NonZero::get);
        let mut threads = Vec::with_capacity(cpus);
        for i in 0..cpus {
            let ex = executor.clone();
            let stop = stop_executor.clone();
            let t = std::thread::Builder::new()
                .name(format!("sealroom-{i}"))
                .spawn(move || smol::block_on(ex.run(stop.wait())))
                .map_err(ServerError::Thread)?;
            threads.push(t);
        }

        let shared = Shared::with_cluster(config, db, clock, executor, cluster);
        #[cfg(feature = "postgres")]
        let _ = target.set(Arc::downgrade(&shared));
        let shutdown = Shutdown::new();
        let active = Arc::new(AtomicUsize::new(0));
        shared
            .spawn(accept_loop(
                shared.clone(),
                listener,
                acceptor,
                shutdown.clone(),
                active.clone(),
            ))
            .detach();
        shared
            .spawn(sweep_loop(shared.clone(), shutdown.clone()))
            .detach();
        tracing::info!(addr = %local_addr, "listening");
        Ok(Self {
            local_addr,
            identity,
            shared,
            shutdown,
            stop_executor,
            active,
            threads,
            #[cfg(feature = "postgres")]
            bus,
        })
    }

    /// Connections open now.
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Stops accepting, drains connections (bounded by the drain timeout), commits what is
    /// queued, and stops every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.stop_executor.is_triggered() {
            return;
        }
        self.shutdown.trigger();
        let deadline = Instant::now() + self.shared.config.drain_timeout;
        while self.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = self.active.load(Ordering::SeqCst);
        if left > 0 {
            tracing::warn!(connections = left, "drain timeout: closing the rest");
        }
        self.shared.db.shutdown();
        #[cfg(feature = "postgres")]
        if let Some(bus) = &self.bus {
            // After the store: announces the wake-ups its last commits queued.
            bus.shutdown();
        }
        self.stop_executor.trigger();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        tracing::info!("stopped");
    }
}

/// The embedded store: `sealroom.db` in the data folder.
fn open_sqlite(data_dir: &Path) -> Result<Db, ServerError> {
    Ok(Db::spawn(SqliteStore::open(
        &data_dir.join("sealroom.db"),
    )?)?)
}

/// The PostgreSQL store this node shares with others (opened, and migrated, first), then the
/// login ledger and the wake-up bus, whose wakes reach the hub of the [`Shared`] that `target`
/// is set to once it exists.
#[cfg(feature = "postgres")]
fn open_shared_database(
    params: &str,
    resync_interval: Duration,
    target: Arc<OnceLock<Weak<Shared>>>,
) -> Result<(Db, Cluster, Arc<PgWakeBus>), ServerError> {
    let db = Db::spawn(PgStore::open(params)?)?;
    let ledger = Arc::new(PgLedger::open(params)?);
    let bus = Arc::new(PgWakeBus::start(params, resync_interval, move |wake| {
        if let Some(shared) = target.get().and_then(Weak::upgrade) {
            match wake {
                Wake::Account(account) => shared.hub.wake_local(account),
                Wake::Everyone => shared.hub.wake_all_local(),
                Wake::Revoked(account) => shared.hub.kick(account),
                Wake::DeviceRevoked(account, device) => {
                    shared.hub.kick_device(account, device);
                }
            }
        }
    })?);
    let cluster = Cluster {
        bus: bus.clone(),
        ledger,
    };
    Ok((db, cluster, bus))
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn make_private_dir(path: &Path) -> Result<(), ServerError> {
    let err = |source| ServerError::DataDir {
        path: path.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(path).map_err(err)
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: Async<TcpListener>,
    acceptor: TlsAcceptor,
    shutdown: Shutdown,
    active: Arc<AtomicUsize>,
) {
    let cap = shared.config.max_connections;
    let per_addr_cap = shared.config.max_connections_per_address;
    let per_prefix_cap = shared.config.max_connections_per_prefix56;
    // Connections not logged in may use all but the reserved slots (at most half the cap).
    let unauth_cap = cap - shared.config.reserved_for_authenticated.min(cap / 2);
    let per_address = PerAddress::default();
    loop {
        let accepted = smol::future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        let Some(result) = accepted else { break };
        let (tcp, peer) = match result {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                smol::Timer::after(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (guard, n, from_addr, from_prefix) =
            ConnGuard::new(&active, &per_address, address_key(peer.ip()));
        if n > cap.saturating_mul(2)
            || from_addr > per_addr_cap.saturating_mul(2)
            || from_prefix > per_prefix_cap.saturating_mul(2)
        {
            // Far over a cap: not even a handshake.
            drop(tcp);
            continue;
        }
        let _ = tcp.get_ref().set_nodelay(true);
        // Every new connection starts unauthenticated; logged-in ones are in the hub.
        let unauthenticated = n.saturating_sub(shared.hub.connection_count());
        let over_cap = n > cap || from_addr > per_addr_cap || from_prefix > per_prefix_cap;
        // Past the unauthenticated share: served, but it must log in at once.
        let login_within = if unauthenticated > unauth_cap {
            shared.config.reserved_login_deadline
        } else {
            shared.config.auth_deadline
        };
        let shared2 = shared.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        let span = tracing::info_span!("conn", %peer);
        shared
            .spawn(tracing::Instrument::instrument(
                async move {
                    let _guard = guard;
                    let accepted = Accepted {
                        peer,
                        shutdown,
                        login_within,
                    };
                    serve_connection(shared2, acceptor, tcp, accepted, over_cap).await;
                },
                span,
            ))
            .detach();
    }
    tracing::info!("stopped accepting");
}

async fn serve_connection(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    tcp: Async<std::net::TcpStream>,
    accepted: Accepted,
    over_cap: bool,
) {
    let peer = accepted.peer;
    let timeout = shared.config.handshake_timeout;
    let handshake = smol::future::or(async { Some(acceptor.accept(tcp).await) }, async {
        smol::Timer::after(timeout).await;
        None
    })
    .await;
    let mut tls = match handshake {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        None => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let native = tls.get_ref().1.alpn_protocol() == Some(ALPN_SEALROOM);
    if over_cap {
        tracing::warn!(%peer, "connection cap reached; refusing");
        if native {
            if let Some(frame) = crate::outbox::encode(&Message::Error {
                code: ErrorCode::BUSY,
                text: "the server is at capacity; try again later",
            }) {
                let _ = tls.write_all(&frame).await;
            }
        } else {
            let _ = tls
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
        let _ = tls.flush().await;
        let _ = tls.close().await;
        return;
    }
    if native {
        crate::transport::native::serve_native(shared, tls, accepted).await;
    } else {
        crate::http::serve_http(shared, tls, accepted).await;
    }
}

async fn sweep_loop(shared: Arc<Shared>, shutdown: Shutdown) {
    let every = shared.config.sweep_interval;
    loop {
        let stop = smol::future::or(
            async {
                smol::Timer::after(every).await;
                false
            },
            async {
                shutdown.wait().await;
                true
            },
        )
        .await;
        if stop {
            break;
        }
        let now = shared.clock.now();
        match shared
            .db
            .call(move |s| -> Result<usize, StoreError> {
                let n = s.sweep(now)?;
                s.delete_unconfirmed(now.saturating_sub(15 * 60), None)?;
                Ok(n)
            })
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(messages = n, "swept expired or fully delivered messages"),
            Err(e) => tracing::warn!(error = %e, "sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix56;

    #[test]
    fn ipv6_sites_are_grouped_by_their_slash_56() {
        let a = "2001:db8:1:2300::1".parse().unwrap();
        let b = "2001:db8:1:23ff:ffff::9".parse().unwrap();
        let c = "2001:db8:1:2400::1".parse().unwrap();
        assert_eq!(prefix56(a), prefix56(b));
        assert_ne!(prefix56(a), prefix56(c));
        assert_eq!(prefix56("192.0.2.1".parse().unwrap()), None);
        assert_eq!(prefix56("::ffff:192.0.2.1".parse().unwrap()), None);
    }

    /// Without the `postgres` feature a configured database is refused with the reason, before
    /// anything is written: no data folder, no certificate, no SQLite file in its place.
    #[cfg(not(feature = "postgres"))]
    #[test]
    fn a_database_is_refused_without_postgres_support() {
        use super::{Server, ServerError};
        use crate::clock::Clock;
        use crate::config::ServerConfig;

        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut config = ServerConfig::new(data.clone());
        config.listen = core::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.database = Some("host=/nonexistent dbname=sealroom".into());
        let err = Server::start(config, Clock::System).unwrap_err();
        assert!(matches!(err, ServerError::NoPostgres), "{err:?}");
        assert_eq!(
            err.to_string(),
            "this build has no PostgreSQL support; rebuild with the `postgres` feature"
        );
        assert!(!data.exists());
    }
}

//! `sealroom-server` as a library: the binary wires it up, tests and the load generator drive
//! it in-process.
//!
//! A tour: [`config`] holds every knob; [`tls`] makes or loads the certificate and accepts
//! TLS 1.3 only; [`server`] accepts connections and sends each to its transport by ALPN
//! (`sealroom/1` for native frames, `http/1.1` for the browser's HTTPS + WebSocket, see
//! [`http`]); [`connection`] is the one frame handler both transports share; [`hub`] knows
//! who is online and runs delivery to them; [`auth`] checks secrets; [`store`] keeps state
//! (SQLite embedded, or PostgreSQL shared by several nodes, which [`wake`] each other when a
//! commit on one concerns a connection on another; PostgreSQL only with the `postgres` cargo
//! feature, on by default).
//!
//! The server relays and stores ciphertext only: it never decrypts a body.

pub mod auth;
pub mod client;
pub mod clock;
pub mod config;
pub mod connection;
pub mod http;
pub mod hub;
pub mod outbox;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod tls;
pub mod transport;
pub mod wake;

use std::sync::Arc;

/// State every connection shares. One owner each: the store thread owns the data, the hub
/// owns the live-connection map, the limiters own their counters.
#[derive(Debug)]
pub struct Shared {
    /// Configuration.
    pub config: config::ServerConfig,
    /// The store, off the reactor.
    pub db: store::Db,
    /// Password hashing and rate limits.
    pub auth: auth::Auth,
    /// Live connections by account.
    pub hub: hub::Hub,
    /// Request rates per account.
    pub limits: Limits,
    /// Time.
    pub clock: clock::Clock,
    /// The executor every task of this server runs on (one thread per core).
    pub executor: Arc<smol::Executor<'static>>,
}

/// Per-account request rates (token buckets), in memory.
#[derive(Debug)]
pub struct Limits {
    /// Messages sent.
    pub sends: std::sync::Mutex<auth::ratelimit::Buckets<store::AccountId>>,
    /// Rooms created.
    pub rooms: std::sync::Mutex<auth::ratelimit::Buckets<store::AccountId>>,
    /// Invitations sent.
    pub invites: std::sync::Mutex<auth::ratelimit::Buckets<store::AccountId>>,
    /// Bundles fetched, per requester.
    pub bundles: std::sync::Mutex<auth::ratelimit::Buckets<store::AccountId>>,
    /// Device lists fetched, per requester.
    pub device_lists: std::sync::Mutex<auth::ratelimit::Buckets<store::AccountId>>,
    /// Link messages left (`SendLink`), per account.
    pub links: std::sync::Mutex<auth::ratelimit::Buckets<store::AccountId>>,
    /// One-time prekeys handed out, per owner (by username).
    pub prekeys: std::sync::Mutex<auth::ratelimit::Buckets<String>>,
}

impl Limits {
    fn new(c: &config::ServerConfig) -> Self {
        use auth::ratelimit::Buckets;
        use std::sync::Mutex;
        Self {
            sends: Mutex::new(Buckets::new(c.send_rate)),
            rooms: Mutex::new(Buckets::new(c.room_create_rate)),
            invites: Mutex::new(Buckets::new(c.invite_rate)),
            bundles: Mutex::new(Buckets::new(c.bundle_fetch_rate)),
            device_lists: Mutex::new(Buckets::new(c.device_list_rate)),
            links: Mutex::new(Buckets::new(c.link_rate)),
            prekeys: Mutex::new(Buckets::new(c.prekey_handout_rate)),
        }
    }

    /// Takes a token from `bucket` for `key`, or says when to retry.
    pub fn take<K: Eq + core::hash::Hash + Clone>(
        bucket: &std::sync::Mutex<auth::ratelimit::Buckets<K>>,
        key: &K,
        now: u64,
    ) -> Result<(), auth::ratelimit::RetryAfter> {
        bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(key, now)
    }
}

/// What nodes sharing one database share besides the store.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Wake-ups to and from the other nodes.
    pub bus: Arc<dyn wake::WakeBus>,
    /// Failed-login counts and known addresses.
    pub ledger: Arc<dyn auth::LoginLedger>,
}

impl Shared {
    /// Shared state over a running store, for a single node.
    pub fn new(
        config: config::ServerConfig,
        db: store::Db,
        clock: clock::Clock,
        executor: Arc<smol::Executor<'static>>,
    ) -> Arc<Self> {
        Self::with_cluster(config, db, clock, executor, None)
    }

    /// Shared state over a running store, for one of several nodes when `cluster` is given.
    pub fn with_cluster(
        config: config::ServerConfig,
        db: store::Db,
        clock: clock::Clock,
        executor: Arc<smol::Executor<'static>>,
        cluster: Option<Cluster>,
    ) -> Arc<Self> {
        let (rounds, account, address, registration) = (
            config.pbkdf2_rounds,
            config.account_policy,
            config.address_policy,
            config.registration_policy,
        );
        let (auth, hub) = match cluster {
            Some(c) => (
                auth::Auth::with_ledger(rounds, account, address, registration, c.ledger),
                hub::Hub::with_bus(c.bus),
            ),
            None => (
                auth::Auth::new(rounds, account, address, registration),
                hub::Hub::default(),
            ),
        };
        let auth = auth.with_hash_queue(config.max_hash_queue);
        let limits = Limits::new(&config);
        Arc::new(Self {
            config,
            db,
            auth,
            hub,
            limits,
            clock,
            executor,
        })
    }

    /// Spawns a task on the server's executor.
    pub fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> smol::Task<T> {
        self.executor.spawn(fut)
    }
}

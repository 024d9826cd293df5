//! Helpers for the end-to-end tests: a real server (TLS on 127.0.0.1, SQLite in a temporary
//! folder) and a test user driving it through `host_server::client`.
//!
//! One suite, two backends: with `SEALROOM_TEST_DATABASE` set (`ci/with-postgres` sets it to
//! a throwaway cluster), every test server gets a fresh PostgreSQL database of its own instead
//! of the SQLite file, and is dropped with it.
#![allow(dead_code, unreachable_pub, missing_docs)]
// shared by several test binaries
// Test helpers fail the test on any surprise, like the #[test] functions they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use core::net::SocketAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::path::Path;
use std::sync::Arc;

use host_server::auth::ratelimit::Policy;
use host_server::auth::totp;
use host_server::client::{Client, Frame};
use host_server::clock::Clock;
use host_server::config::ServerConfig;
use host_server::server::Server;
mod database;
mod process;

// Each test binary uses some of these; the others see them unused.
#[allow(unused_imports)]
pub use database::*;
#[allow(unused_imports)]
pub use process::*;

use proto_core::{
    DeviceKeys, ErrorCode, IdentityKeyPair, Key32, List, Message, OneTimePrekey, OneTimePrekeyPair,
    ROSTER_LABEL, ROSTER_MAX_LEN, Roster, RosterFields, RosterMember, Sig64, SignedPrekey,
    SignedPrekeyPair, room_id_for_name, write_roster,
};

/// Waits for a frame at most this long: generous, since CI machines are slow and shared.
pub const WAIT: Duration = Duration::from_secs(20);
/// A password zxcvbn rates strong.
pub const PASSWORD: &str = "correct horse battery staple 42!";
/// Start of the manual clock (any step-aligned time).
pub const T0: u64 = 1_800_000_000;

pub fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

pub fn test_config(dir: &Path) -> ServerConfig {
    let mut c = ServerConfig::new(dir.to_path_buf());
    c.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.pbkdf2_rounds = 1_000;
    c.drain_timeout = Duration::from_secs(5);
    c.web_root = dir.join("no-web-root");
    // Tests log in many times from 127.0.0.1; the per-address limit is tested on its own.
    c.address_policy = Policy {
        max_per_hour: 10_000,
        free: 10_000,
        base_delay: 0,
        max_delay: 0,
    };
    c.registration_policy = c.address_policy;
    // Connection-cap tests count every connection alike; the reserve is tested on its own.
    c.reserved_for_authenticated = 0;
    c
}

pub struct TestServer {
    pub server: Option<Server>,
    /// The PostgreSQL database in use, if the suite runs against PostgreSQL.
    pub database: Option<TestDatabase>,
    pub dir: tempfile::TempDir,
    pub clock: Arc<AtomicU64>,
    pub config: ServerConfig,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        let database = TestDatabase::create();
        config.database = database.as_ref().map(|d| d.params.clone());
        tweak(&mut config);
        let (clock, handle) = Clock::manual(T0);
        let server = Server::start(config.clone(), clock).unwrap();
        Self {
            server: Some(server),
            database,
            dir,
            clock: handle,
            config,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server().local_addr
    }

    pub fn fingerprint(&self) -> String {
        self.server().identity.fingerprint.clone()
    }

    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    pub fn advance(&self, secs: u64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    /// Stops the server (drain, commit) and starts it again on the same data folder.
    pub fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        let clock = Clock::Manual(self.clock.clone());
        self.server = Some(Server::start(self.config.clone(), clock).unwrap());
    }

    pub async fn connect(&self) -> Client {
        Client::connect(self.addr(), &self.fingerprint())
            .await
            .unwrap()
    }

    /// Runs a `SELECT COUNT(*) …` taking one byte-string parameter (`$1`) on whichever
    /// database the server uses.
    pub fn count(&self, sql: &str, param: &[u8]) -> i64 {
        match &self.database {
            #[cfg(feature = "postgres")]
            Some(db) => db.client().query_one(sql, &[&param]).unwrap().get(0),
            // SQLite (without the `postgres` feature there is never a test database).
            _ => rusqlite::Connection::open(self.db_path())
                .unwrap()
                .query_row(sql, [param], |r| r.get(0))
                .unwrap(),
        }
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("sealroom.db")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

/// A user's device: private keys known to the test (to search the database for them).
pub struct Device {
    pub identity: IdentityKeyPair,
    pub identity_secrets: ([u8; 32], [u8; 32]),
    pub spk: SignedPrekeyPair,
    pub spk_secret: [u8; 32],
    pub opks: Vec<(OneTimePrekeyPair, [u8; 32])>,
}

impl Device {
    pub fn new(opk_count: u32) -> Self {
        let (sig, dh) = (random32(), random32());
        let identity = IdentityKeyPair::from_secrets(&sig, &dh);
        let spk_secret = random32();
        let spk = SignedPrekeyPair::from_secret_key(1, &spk_secret, &identity);
        let opks = (0..opk_count)
            .map(|i| {
                let s = random32();
                (OneTimePrekeyPair::from_secret_key(100 + i, &s), s)
            })
            .collect();
        Self {
            identity,
            identity_secrets: (sig, dh),
            spk,
            spk_secret,
            opks,
        }
    }

    pub fn signed_prekey(&self) -> SignedPrekey {
        let p = self.spk.public();
        SignedPrekey {
            id: p.id,
            key: Key32(p.public),
            signature: Sig64(p.signature),
        }
    }

    pub fn opk_list(&self) -> Vec<OneTimePrekey> {
        self.opks
            .iter()
            .map(|(k, _)| {
                let p = k.public();
                OneTimePrekey {
                    id: p.id,
                    key: Key32(p.public),
                }
            })
            .collect()
    }

    pub fn private_byte_strings(&self) -> Vec<Vec<u8>> {
        let mut v = vec![
            self.identity_secrets.0.to_vec(),
            self.identity_secrets.1.to_vec(),
            self.spk_secret.to_vec(),
        ];
        v.extend(self.opks.iter().map(|(_, s)| s.to_vec()));
        v
    }
}

pub struct User {
    pub name: String,
    pub device: Device,
    pub totp_secret: Vec<u8>,
    pub token: [u8; 32],
    pub recovery: Vec<String>,
}

pub async fn recv(c: &mut Client) -> Frame {
    c.recv_timeout(WAIT).await.unwrap()
}

/// The next frame that is not a push of the given kinds (pushes can interleave with replies).
pub async fn recv_reply(c: &mut Client) -> Frame {
    loop {
        let f = recv(c).await;
        match f.msg().unwrap() {
            Message::PrekeysLow { .. }
            | Message::KemPrekeysLow { .. }
            | Message::Delivered { .. }
            | Message::RoomChanged { .. }
            | Message::Ping { .. } => {}
            _ => return f,
        }
    }
}

pub fn error_code(f: &Frame) -> Option<ErrorCode> {
    match f.msg() {
        Some(Message::Error { code, .. }) => Some(code),
        _ => None,
    }
}

pub fn error_text(f: &Frame) -> String {
    match f.msg() {
        Some(Message::Error { text, .. }) => text.to_string(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[track_caller]
pub fn expect_error(f: &Frame, code: ErrorCode) {
    assert_eq!(error_code(f), Some(code), "got {:?}", f.msg());
}

#[track_caller]
pub fn expect_ok(f: &Frame) {
    assert!(matches!(f.msg(), Some(Message::Ok)), "got {:?}", f.msg());
}

pub fn register_msg<'a>(
    name: &'a str,
    password: &'a str,
    device: &'a Device,
    opks: &'a [OneTimePrekey],
    email: &'a str,
) -> Message<'a> {
    let p = device.identity.public();
    Message::Register {
        name: "Test Person",
        email,
        username: name,
        password,
        device: DeviceKeys {
            identity_sig: Key32(p.signing),
            identity_dh: Key32(p.dh),
            signed_prekey: device.signed_prekey(),
            one_time_prekeys: List::from_items(opks),
        },
    }
}

/// Registers and enrolls `name` at the server's current time; returns the logged-in client.
pub async fn register(ts: &TestServer, name: &str, opk_count: u32) -> (Client, User) {
    let device = Device::new(opk_count);
    let opks = device.opk_list();
    let mut c = ts.connect().await;
    c.send(&register_msg(
        name,
        PASSWORD,
        &device,
        &opks,
        "person@example.org",
    ))
    .await
    .unwrap();
    let f = recv(&mut c).await;
    let Some(Message::TotpEnrollment { uri }) = f.msg() else {
        panic!("expected TotpEnrollment, got {:?}", f.msg());
    };
    let secret = totp::secret_from_uri(uri).unwrap();
    let code = totp::code_at(&secret, ts.now());
    c.send(&Message::ConfirmTotp { code: &code }).await.unwrap();
    let f = recv(&mut c).await;
    let Some(Message::EnrollmentComplete { recovery_codes }) = f.msg() else {
        panic!("expected EnrollmentComplete, got {:?}", f.msg());
    };
    let recovery: Vec<String> = recovery_codes.iter().map(str::to_owned).collect();
    assert_eq!(recovery.len(), 10);
    let f = recv(&mut c).await;
    let Some(Message::Session { token, expires_at }) = f.msg() else {
        panic!("expected Session, got {:?}", f.msg());
    };
    assert_eq!(expires_at, ts.now() + 30 * 24 * 3600);
    let user = User {
        name: name.to_owned(),
        device,
        totp_secret: secret,
        token: token.0,
        recovery,
    };
    (c, user)
}

/// A new connection resumed with the user's token.
pub async fn resume(ts: &TestServer, user: &User) -> Client {
    let mut c = ts.connect().await;
    c.send(&Message::Resume {
        username: &user.name,
        token: Key32(user.token),
    })
    .await
    .unwrap();
    let f = recv(&mut c).await;
    assert!(
        matches!(f.msg(), Some(Message::Session { .. })),
        "got {:?}",
        f.msg()
    );
    c
}

/// Logs in with password and a code; returns the client and the final frame.
pub async fn login(
    ts: &TestServer,
    name: &str,
    password: &str,
    second: Message<'_>,
) -> (Client, Frame) {
    let mut c = ts.connect().await;
    c.send(&Message::Login {
        username: name,
        password,
    })
    .await
    .unwrap();
    let f = recv_reply(&mut c).await;
    if !matches!(f.msg(), Some(Message::TotpRequired)) {
        return (c, f);
    }
    c.send(&second).await.unwrap();
    let f = recv_reply(&mut c).await;
    (c, f)
}

pub fn run<T>(fut: impl Future<Output = T>) -> T {
    smol::block_on(fut)
}

/// Reads a file's bytes, or nothing if it does not exist.
pub fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// `inviter` invites `username` to `room`; the invitee, on connection `invitee`, hears of it
/// (`RoomChanged { Invited }`) and accepts. Their `Joined` push is left for the caller.
pub async fn invite_accepted(
    inviter: &mut Client,
    invitee: &mut Client,
    room: &str,
    username: &str,
) {
    inviter
        .send(&Message::Invite { room, username })
        .await
        .unwrap();
    expect_ok(&recv_reply(inviter).await);
    loop {
        let f = recv(invitee).await;
        if let Some(Message::RoomChanged {
            room: r,
            change: proto_core::RoomChange::Invited,
            ..
        }) = f.msg()
            && r == room
        {
            break;
        }
    }
    invitee.send(&Message::AcceptInvite { room }).await.unwrap();
    expect_ok(&recv_reply(invitee).await);
}

/// Sends `Register` for `username` from a fresh device with no one-time prekeys.
pub async fn send_registration(c: &mut Client, username: &str) {
    let device = Device::new(0);
    let email = format!("{username}@example.org");
    c.send(&register_msg(username, PASSWORD, &device, &[], &email))
        .await
        .unwrap();
}

/// Registers `username` up to the TOTP enrollment; returns the connection and the secret.
pub async fn begin_registration(ts: &TestServer, username: &str) -> (Client, Vec<u8>) {
    let mut c = ts.connect().await;
    send_registration(&mut c, username).await;
    let f = recv(&mut c).await;
    let Some(Message::TotpEnrollment { uri }) = f.msg() else {
        panic!("expected TotpEnrollment, got {:?}", f.msg())
    };
    let secret = totp::secret_from_uri(uri).unwrap();
    (c, secret)
}

/// A roster of `room` (the room id a client derives from the name), admins and members sorted
/// as a client sorts them, signed by `signer`; `prev` is the roster it follows.
pub fn roster(
    room: &str,
    version: u64,
    epoch: u32,
    prev: Option<&[u8]>,
    admins: &[&IdentityKeyPair],
    members: &[(&str, &IdentityKeyPair)],
    signer: &IdentityKeyPair,
) -> Vec<u8> {
    let mut admins: Vec<[u8; 32]> = admins.iter().map(|a| a.public().signing).collect();
    admins.sort();
    let mut members: Vec<RosterMember<'_>> = members
        .iter()
        .map(|(username, k)| RosterMember {
            username,
            identity: k.public().signing,
        })
        .collect();
    members.sort_by(|a, b| a.username.cmp(b.username));
    let fields = RosterFields {
        room_id: room_id_for_name(room),
        version,
        epoch,
        prev: prev.map_or([0; 32], |p| Roster::parse(p).unwrap().hash()),
        admins: &admins,
        members: &members,
    };
    let mut out = vec![0u8; ROSTER_MAX_LEN + ROSTER_LABEL.len()];
    let n = write_roster(&fields, signer, &mut out).unwrap();
    out.truncate(n);
    out
}

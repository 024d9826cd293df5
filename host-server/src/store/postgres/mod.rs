//! The shared store: PostgreSQL, for several server nodes on one database.
//!
//! The same promise as SQLite: a batch of jobs is one transaction, each job a savepoint (a
//! failing job never undoes its neighbours), and a reply is released only after `COMMIT`
//! returns, with `synchronous_commit = on` forced for the session so that commit means the
//! WAL is flushed. Its own migrations, in `migrations/`, recorded in `sealroom_schema`.
//!
//! What differs from one SQLite writer: several nodes write at once. Message ids are taken
//! under a transaction-scoped advisory lock, so they become visible in increasing order (a
//! delivery task reading "after the last id it sent" never skips one committed late); the one
//! conditional writes that must not double (a TOTP step, a recovery code, a one-time prekey, a
//! username) are single statements whose conditions PostgreSQL re-checks under the row lock.

use std::collections::HashMap;

use postgres::{Client, NoTls, Statement};

pub use ledger::PgLedger;

use super::{Account, QueueStore, Store, StoreError};

mod accounts;
mod keys;
mod ledger;
mod queue;
mod rooms;

/// Migrations in order; `sealroom_schema.version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_login_ledger.sql"),
    include_str!("migrations/0003_handout_buckets.sql"),
    include_str!("migrations/0004_rosters.sql"),
    include_str!("migrations/0005_device_ids.sql"),
    include_str!("migrations/0006_devices.sql"),
    include_str!("migrations/0007_linked_devices.sql"),
    include_str!("migrations/0008_room_device_cursors.sql"),
    include_str!("migrations/0009_receipt_devices.sql"),
    include_str!("migrations/0010_kem_prekeys.sql"),
];

/// The advisory lock key serializing migrations across nodes starting together.
const MIGRATION_LOCK: i64 = 0x5345_414c_0001;
/// The advisory lock key held from a transaction's first message insert to its commit.
pub(super) const MESSAGE_ID_LOCK: i64 = 0x5345_414c_0002;

/// PostgreSQL-backed [`Store`].
pub struct PgStore {
    params: String,
    client: Client,
    statements: HashMap<&'static str, Statement>,
    /// A reader reconnects whenever it finds its session gone; the writer only between
    /// batches (a batch whose session was lost must fail, never continue on a new one).
    reader: bool,
    /// Whether this transaction holds [`MESSAGE_ID_LOCK`].
    id_lock_held: bool,
    /// Whether the last job succeeded and its savepoint is still to be released.
    release_pending: bool,
}

impl core::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// Opens a session on the database `params` names (a `postgres://` URL or `key=value` pairs),
/// with commits that wait for the WAL flush whatever the server's default.
pub fn connect(params: &str) -> Result<Client, StoreError> {
    let mut client = Client::connect(params, NoTls).map_err(|e| {
        StoreError::Open(format!("cannot connect to PostgreSQL: {}", with_causes(&e)))
    })?;
    client.batch_execute("SET synchronous_commit = on; SET client_min_messages = warning")?;
    Ok(client)
}

/// An error with the causes it wraps ("error connecting to server: Connection refused …").
pub(super) fn with_causes(e: &dyn core::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn key32(v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(v).map_err(|_| StoreError::Corrupt("key is not 32 bytes"))
}

pub(super) fn sig64(v: Vec<u8>) -> Result<[u8; 64], StoreError> {
    <[u8; 64]>::try_from(v).map_err(|_| StoreError::Corrupt("signature is not 64 bytes"))
}

impl PgStore {
    /// Connects to the database `params` names and brings its schema up to date.
    pub fn open(params: &str) -> Result<Self, StoreError> {
        let client = connect(params)?;
        let mut store = Self {
            params: params.to_owned(),
            client,
            statements: HashMap::new(),
            reader: false,
            id_lock_held: false,
            release_pending: false,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Runs every migration not yet applied, in one transaction, under an advisory lock so
    /// that nodes starting together apply each exactly once.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS sealroom_schema (version INTEGER NOT NULL)")?;
        let version: Option<i32> = tx
            .query_opt("SELECT version FROM sealroom_schema", &[])?
            .map(|r| r.try_get(0))
            .transpose()?;
        let done = usize::try_from(version.unwrap_or(0))
            .map_err(|_| StoreError::Corrupt("schema version"))?;
        if done > MIGRATIONS.len() {
            return Err(StoreError::Open(format!(
                "the database has schema version {done}, newer than this server ({}); \
                 run a newer sealroom-server",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
            tx.batch_execute(sql)?;
            tracing::info!(version = i + 1, "applied PostgreSQL schema migration");
        }
        let now = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
        tx.execute("DELETE FROM sealroom_schema", &[])?;
        tx.execute("INSERT INTO sealroom_schema (version) VALUES ($1)", &[&now])?;
        tx.commit()?;
        Ok(())
    }

    /// A new session after the old one was lost (the server restarted, the network dropped).
    fn reconnect(&mut self) -> Result<(), StoreError> {
        tracing::warn!("the PostgreSQL connection was lost; reconnecting");
        let mut client = connect(&self.params)?;
        if self.reader {
            client.batch_execute("SET default_transaction_read_only = on")?;
        }
        self.client = client;
        self.statements.clear();
        Ok(())
    }

    /// A prepared statement, parsed once per connection.
    pub(super) fn stmt(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if self.reader && self.client.is_closed() {
            self.reconnect()?;
        }
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    /// Runs `sql` and returns how many rows it changed.
    pub(super) fn exec(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let s = self.stmt(sql)?;
        Ok(self.client.execute(&s, params)?)
    }

    /// Runs `sql` and returns its rows.
    pub(super) fn rows(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let s = self.stmt(sql)?;
        Ok(self.client.query(&s, params)?)
    }

    /// Runs `sql` and returns its one row, if any.
    pub(super) fn row(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<postgres::Row>, StoreError> {
        let s = self.stmt(sql)?;
        Ok(self.client.query_opt(&s, params)?)
    }

    pub(super) fn account_from(row: &postgres::Row) -> Result<Account, StoreError> {
        Ok(Account {
            id: row.try_get(0)?,
            username: row.try_get(1)?,
            password_phc: row.try_get(2)?,
            totp_secret: row.try_get(3)?,
            confirmed: row.try_get(4)?,
            totp_last_step: row.try_get::<_, Option<i64>>(5)?.map(to_u64),
            identity_sig: key32(row.try_get(6)?)?,
            identity_dh: key32(row.try_get(7)?)?,
            created_at: to_u64(row.try_get(8)?),
            device_id: u32::try_from(row.try_get::<_, i64>(9)?)
                .map_err(|_| StoreError::Corrupt("device id"))?,
        })
    }
}

impl Store for PgStore {
    fn begin_batch(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            self.reconnect()?;
        }
        self.id_lock_held = false;
        self.release_pending = false;
        self.client.batch_execute("BEGIN")?;
        Ok(())
    }

    fn commit_batch(&mut self) -> Result<(), StoreError> {
        // `COMMIT` of a transaction in the aborted state answers "ROLLBACK" without an error;
        // the `SELECT` fails in that state, so the batch fails instead of passing for durable.
        self.client.batch_execute("SELECT 1; COMMIT")?;
        Ok(())
    }

    fn rollback_batch(&mut self) {
        self.release_pending = false;
        let _ = self.client.batch_execute("ROLLBACK");
    }

    fn begin_job(&mut self) -> Result<(), StoreError> {
        // The previous job's savepoint is released here, in the same round trip (every round
        // trip counts: the writer is one session, and a send is only a few statements).
        if core::mem::take(&mut self.release_pending) {
            self.client
                .batch_execute("RELEASE SAVEPOINT job; SAVEPOINT job")?;
        } else {
            self.client.batch_execute("SAVEPOINT job")?;
        }
        Ok(())
    }

    fn end_job(&mut self, ok: bool) -> Result<(), StoreError> {
        if ok {
            // Kept until the next job begins or the batch commits (COMMIT releases it).
            self.release_pending = true;
        } else {
            self.id_lock_held = false;
            self.client
                .batch_execute("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job")?;
        }
        Ok(())
    }

    /// A second session, reading committed data only (each statement sees what was committed
    /// when it began), so delivery never waits for the writer's commit.
    fn open_reader(&self) -> Result<Option<Box<dyn QueueStore + Send>>, StoreError> {
        let mut client = connect(&self.params)?;
        client.batch_execute("SET default_transaction_read_only = on")?;
        Ok(Some(Box::new(Self {
            params: self.params.clone(),
            client,
            statements: HashMap::new(),
            reader: true,
            id_lock_held: false,
            release_pending: false,
        })))
    }
}

/// Makes an empty database `name` on the cluster `admin` (`key=value` connection parameters
/// naming a role allowed to create databases) and returns the parameters that reach it: for
/// tests and the load generator, which want a fresh database per run.
pub fn create_database(admin: &str, name: &str) -> Result<String, StoreError> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::Open(format!(
            "database name {name:?}: use lowercase letters, digits and _"
        )));
    }
    if admin.contains("://") {
        return Err(StoreError::Open(
            "give the cluster as key=value parameters (host=… port=… user=…), not a URL".into(),
        ));
    }
    let mut client = Client::connect(admin, NoTls).map_err(|e| {
        StoreError::Open(format!("cannot connect to PostgreSQL: {}", with_causes(&e)))
    })?;
    client.batch_execute(&format!("CREATE DATABASE {name}"))?;
    Ok(format!("{admin} dbname={name}"))
}

/// Drops the database `name` made by [`create_database`], ending any session still on it.
pub fn drop_database(admin: &str, name: &str) -> Result<(), StoreError> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::Open(format!("database name {name:?}")));
    }
    let mut client = Client::connect(admin, NoTls).map_err(|e| {
        StoreError::Open(format!("cannot connect to PostgreSQL: {}", with_causes(&e)))
    })?;
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    Ok(())
}

//! The durable store: SQLite in WAL mode with `synchronous=FULL`, schema migrations, and
//! savepoints so one failing job never undoes the others in its batch.

use core::time::Duration;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::{Account, QueueStore, Store, StoreError};

mod accounts;
mod keys;
mod queue;
mod rooms;

/// Migrations in order; `PRAGMA user_version` records how many have run.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_room_events.sql"),
    include_str!("../migrations/0003_invitations_quotas.sql"),
    include_str!("../migrations/0004_rosters.sql"),
    include_str!("../migrations/0005_device_ids.sql"),
    include_str!("../migrations/0006_devices.sql"),
    include_str!("../migrations/0007_linked_devices.sql"),
    include_str!("../migrations/0008_room_device_cursors.sql"),
    include_str!("../migrations/0009_receipt_devices.sql"),
    include_str!("../migrations/0010_kem_prekeys.sql"),
];

/// Prepared statements kept per connection: more than the store has distinct statements
/// (≈ 60), so none is ever parsed twice (rusqlite's default keeps 16, and the hot path
/// alone uses more, so statements were evicted and re-parsed on every message).
const STATEMENT_CACHE: usize = 128;

/// Per connection: the statement cache, and the query planner stability guarantee. Without
/// QPSG, SQLite lets bound values steer the plan (here, the partial indexes on `messages`)
/// and then re-parses and re-plans the statement at every run whose values change: perf
/// showed `sqlite3Reprepare` under every delivery read. The plans do not depend on values.
fn tune(conn: &Connection) -> Result<(), StoreError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// How long a statement waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    pub(super) conn: Connection,
}

impl core::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
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

/// Creates `path` empty with mode 0600 if it does not exist, and tightens an existing file that
/// anyone else may read.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let fail = |e: std::io::Error| StoreError::Open(format!("{}: {e}", path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(fail)?;
        let mode = file.metadata().map_err(fail)?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(fail)?;
        }
    }
    #[cfg(not(unix))]
    let _ = fail;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// The file is created owner-only (0600) whatever the folder's mode or the umask, before
    /// SQLite opens it; SQLite gives its `-wal` and `-shm` files the database file's mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_private(path)?;
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        tune(&conn)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open(format!("journal_mode is {mode}, not WAL")));
        }
        // FULL: a commit survives power loss, which is what "accepted" promises the sender.
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;",
        )?;
        let mut store = Self { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let done = usize::try_from(version).map_err(|_| StoreError::Corrupt("user_version"))?;
        if done > MIGRATIONS.len() {
            return Err(StoreError::Open(format!(
                "the database has schema version {done}, newer than this server ({}); \
                 run a newer sealroom-server",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(
                None,
                "user_version",
                i64::try_from(i + 1).unwrap_or(i64::MAX),
            )?;
            tx.commit()?;
            tracing::info!(version = i + 1, "applied schema migration");
        }
        Ok(())
    }

    fn account_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRow> {
        Ok(AccountRow {
            id: row.get(0)?,
            username: row.get(1)?,
            password_phc: row.get(2)?,
            totp_secret: row.get(3)?,
            confirmed: row.get(4)?,
            totp_last_step: row.get(5)?,
            identity_sig: row.get(6)?,
            identity_dh: row.get(7)?,
            created_at: row.get(8)?,
            device_id: row.get(9)?,
        })
    }

    pub(super) fn account_where(
        &mut self,
        clause: &str,
        arg: &dyn rusqlite::ToSql,
    ) -> Result<Option<Account>, StoreError> {
        let sql = format!(
            "SELECT id, username, password_phc, totp_secret, confirmed, totp_last_step, \
             identity_sig, identity_dh, created_at, device_id \
             FROM accounts WHERE {clause}"
        );
        let row = self
            .conn
            .prepare_cached(&sql)?
            .query_row([arg], Self::account_row)
            .optional()?;
        row.map(AccountRow::into_account).transpose()
    }
}

struct AccountRow {
    id: i64,
    username: String,
    password_phc: String,
    totp_secret: Vec<u8>,
    confirmed: bool,
    totp_last_step: Option<i64>,
    identity_sig: Vec<u8>,
    identity_dh: Vec<u8>,
    created_at: i64,
    device_id: i64,
}

impl AccountRow {
    fn into_account(self) -> Result<Account, StoreError> {
        Ok(Account {
            id: self.id,
            username: self.username,
            password_phc: self.password_phc,
            totp_secret: self.totp_secret,
            confirmed: self.confirmed,
            totp_last_step: self.totp_last_step.map(to_u64),
            identity_sig: key32(self.identity_sig)?,
            identity_dh: key32(self.identity_dh)?,
            created_at: to_u64(self.created_at),
            device_id: u32::try_from(self.device_id)
                .map_err(|_| StoreError::Corrupt("device id"))?,
        })
    }
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

impl Store for SqliteStore {
    fn begin_batch(&mut self) -> Result<(), StoreError> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(())
    }

    fn commit_batch(&mut self) -> Result<(), StoreError> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }

    fn rollback_batch(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    fn begin_job(&mut self) -> Result<(), StoreError> {
        // Cached like every statement: a savepoint per request is the hottest SQL there is.
        self.conn.prepare_cached("SAVEPOINT job")?.execute([])?;
        Ok(())
    }

    fn end_job(&mut self, ok: bool) -> Result<(), StoreError> {
        if ok {
            self.conn.prepare_cached("RELEASE job")?.execute([])?;
        } else {
            self.conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
        }
        Ok(())
    }

    /// A second connection to the same file: in WAL mode it reads the last committed state
    /// while the writer's transaction is open, and `query_only` keeps it from writing.
    fn open_reader(&self) -> Result<Option<Box<dyn QueueStore + Send>>, StoreError> {
        let Some(path) = self.conn.path().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        tune(&conn)?;
        conn.execute_batch("PRAGMA query_only=ON;")?;
        Ok(Some(Box::new(Self { conn })))
    }
}

//! The durable store: SQLite in WAL mode with `synchronous=FULL`, schema migrations, and
//! savepoints so one failing job never undoes the others in its batch.

use core::time::Duration;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Account, AccountId, AckOutcome, NewAccount, NewMessage, RoomEvent, RoomId, RoomInfo, Store,
    StoreError, StoredBundle, StoredMessage, StoredSpk,
};

/// Migrations in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_room_events.sql"),
];

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

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn key32(v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(v).map_err(|_| StoreError::Corrupt("key is not 32 bytes"))
}

fn sig64(v: Vec<u8>) -> Result<[u8; 64], StoreError> {
    <[u8; 64]>::try_from(v).map_err(|_| StoreError::Corrupt("signature is not 64 bytes"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
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
            spk_id: row.get(8)?,
            spk_key: row.get(9)?,
            spk_sig: row.get(10)?,
            created_at: row.get(11)?,
        })
    }

    fn account_where(
        &mut self,
        clause: &str,
        arg: &dyn rusqlite::ToSql,
    ) -> Result<Option<Account>, StoreError> {
        let sql = format!(
            "SELECT id, username, password_phc, totp_secret, confirmed, totp_last_step, \
             identity_sig, identity_dh, spk_id, spk_key, spk_sig, created_at \
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
    spk_id: Option<i64>,
    spk_key: Option<Vec<u8>>,
    spk_sig: Option<Vec<u8>>,
    created_at: i64,
}

impl AccountRow {
    fn into_account(self) -> Result<Account, StoreError> {
        let spk = match (self.spk_id, self.spk_key, self.spk_sig) {
            (Some(id), Some(key), Some(sig)) => Some(StoredSpk {
                id: u32::try_from(id).map_err(|_| StoreError::Corrupt("spk id"))?,
                key: key32(key)?,
                signature: sig64(sig)?,
            }),
            _ => None,
        };
        Ok(Account {
            id: self.id,
            username: self.username,
            password_phc: self.password_phc,
            totp_secret: self.totp_secret,
            confirmed: self.confirmed,
            totp_last_step: self.totp_last_step.map(to_u64),
            identity_sig: key32(self.identity_sig)?,
            identity_dh: key32(self.identity_dh)?,
            spk,
            created_at: to_u64(self.created_at),
        })
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

impl Store for SqliteStore {
    fn begin_batch(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    fn commit_batch(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    fn rollback_batch(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    fn begin_job(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("SAVEPOINT job")?;
        Ok(())
    }

    fn end_job(&mut self, ok: bool) -> Result<(), StoreError> {
        if ok {
            self.conn.execute_batch("RELEASE job")?;
        } else {
            self.conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
        }
        Ok(())
    }

    fn create_account(&mut self, a: &NewAccount) -> Result<AccountId, StoreError> {
        let inserted = self.conn.prepare_cached(
            "INSERT INTO accounts (username, name, email, password_phc, totp_secret, identity_sig, \
             identity_dh, spk_id, spk_key, spk_sig, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            a.username,
            a.name,
            a.email,
            a.password_phc,
            a.totp_secret,
            &a.identity_sig[..],
            &a.identity_dh[..],
            a.spk.id,
            &a.spk.key[..],
            &a.spk.signature[..],
            to_i64(a.created_at),
        ]);
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::UsernameTaken),
            Err(e) => return Err(e.into()),
        }
        let id = self.conn.last_insert_rowid();
        self.add_prekeys(id, &a.prekeys)?;
        Ok(id)
    }

    fn account_by_username(&mut self, username: &str) -> Result<Option<Account>, StoreError> {
        self.account_where("username = ?1", &username)
    }

    fn account_by_id(&mut self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.account_where("id = ?1", &id)
    }

    fn confirm_account(&mut self, id: AccountId) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE accounts SET confirmed = 1 WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    fn delete_unconfirmed(
        &mut self,
        before: u64,
        only: Option<AccountId>,
    ) -> Result<usize, StoreError> {
        let n = match only {
            Some(id) => self
                .conn
                .prepare_cached("DELETE FROM accounts WHERE confirmed = 0 AND id = ?1")?
                .execute([id])?,
            None => self
                .conn
                .prepare_cached("DELETE FROM accounts WHERE confirmed = 0 AND created_at < ?1")?
                .execute([to_i64(before)])?,
        };
        Ok(n)
    }

    fn accept_totp_step(&mut self, id: AccountId, step: u64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE accounts SET totp_last_step = ?2 \
                 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
            )?
            .execute(params![id, to_i64(step)])?;
        Ok(n == 1)
    }

    fn set_recovery_codes(&mut self, id: AccountId, hashes: &[[u8; 32]]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM recovery_codes WHERE account_id = ?1")?
            .execute([id])?;
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO recovery_codes (account_id, code_hash) VALUES (?1, ?2)",
        )?;
        for h in hashes {
            stmt.execute(params![id, &h[..]])?;
        }
        Ok(())
    }

    fn consume_recovery_code(
        &mut self,
        id: AccountId,
        hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM recovery_codes WHERE account_id = ?1 AND code_hash = ?2")?
            .execute(params![id, &hash[..]])?;
        Ok(n == 1)
    }

    fn create_session(
        &mut self,
        id: AccountId,
        token_hash: &[u8; 32],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (token_hash, account_id, expires_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&token_hash[..], id, to_i64(expires_at)])?;
        Ok(())
    }

    fn session(
        &mut self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> Result<Option<(AccountId, u64)>, StoreError> {
        let row = self
            .conn
            .prepare_cached("SELECT account_id, expires_at FROM sessions WHERE token_hash = ?1 AND expires_at > ?2")?
            .query_row(params![&token_hash[..], to_i64(now)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?;
        Ok(row.map(|(id, exp)| (id, to_u64(exp))))
    }

    fn revoke_session(&mut self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
            .execute([&token_hash[..]])?;
        Ok(())
    }

    fn set_identity(
        &mut self,
        id: AccountId,
        identity_sig: &[u8; 32],
        identity_dh: &[u8; 32],
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE accounts SET identity_sig = ?2, identity_dh = ?3, spk_id = NULL, \
                 spk_key = NULL, spk_sig = NULL WHERE id = ?1",
            )?
            .execute(params![id, &identity_sig[..], &identity_dh[..]])?;
        self.conn
            .prepare_cached("DELETE FROM one_time_prekeys WHERE account_id = ?1")?
            .execute([id])?;
        Ok(())
    }

    fn set_signed_prekey(&mut self, id: AccountId, spk: &StoredSpk) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE accounts SET spk_id = ?2, spk_key = ?3, spk_sig = ?4 WHERE id = ?1",
            )?
            .execute(params![id, spk.id, &spk.key[..], &spk.signature[..]])?;
        Ok(())
    }

    fn count_prekeys(&mut self, id: AccountId) -> Result<u32, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM one_time_prekeys WHERE account_id = ?1")?
            .query_row([id], |r| r.get(0))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn add_prekeys(
        &mut self,
        id: AccountId,
        prekeys: &[(u32, [u8; 32])],
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO one_time_prekeys (account_id, prekey_id, key) VALUES (?1, ?2, ?3)",
        )?;
        for (pid, key) in prekeys {
            stmt.execute(params![id, pid, &key[..]])?;
        }
        Ok(())
    }

    fn take_bundle(&mut self, username: &str) -> Result<Option<StoredBundle>, StoreError> {
        let Some(account) = self.account_by_username(username)? else {
            return Ok(None);
        };
        let Some(spk) = account.spk.filter(|_| account.confirmed) else {
            return Ok(None);
        };
        // Runs inside the job's savepoint: select-then-delete is atomic, so no two fetches
        // can ever receive the same one-time prekey.
        let prekey = self
            .conn
            .prepare_cached(
                "DELETE FROM one_time_prekeys WHERE account_id = ?1 AND prekey_id = \
                 (SELECT MIN(prekey_id) FROM one_time_prekeys WHERE account_id = ?1) \
                 RETURNING prekey_id, key",
            )?
            .query_row([account.id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .optional()?;
        let prekey = match prekey {
            Some((pid, key)) => Some((
                u32::try_from(pid).map_err(|_| StoreError::Corrupt("prekey id"))?,
                key32(key)?,
            )),
            None => None,
        };
        let remaining = self.count_prekeys(account.id)?;
        Ok(Some(StoredBundle {
            owner: account.id,
            username: account.username,
            identity_sig: account.identity_sig,
            identity_dh: account.identity_dh,
            spk,
            prekey,
            remaining,
        }))
    }

    fn pending_direct_count(&mut self, recipient: AccountId) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM messages WHERE recipient_id = ?1")?
            .query_row([recipient], |r| r.get(0))?;
        Ok(to_u64(n))
    }

    fn pending_room_count(&mut self, room: RoomId) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM messages WHERE room_id = ?1")?
            .query_row([room], |r| r.get(0))?;
        Ok(to_u64(n))
    }

    fn insert_message(&mut self, m: &NewMessage) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO messages (recipient_id, room_id, sender_id, sender, sent_at, expires_at, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                m.recipient,
                m.room,
                m.sender_id,
                m.sender,
                to_i64(m.sent_at),
                to_i64(m.expires_at),
                m.body
            ])?;
        Ok(to_u64(self.conn.last_insert_rowid()))
    }

    fn pending_for(
        &mut self,
        account: AccountId,
        after: u64,
        now: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.id, m.sender, NULL, m.sent_at, m.body FROM messages m \
               WHERE m.recipient_id = ?1 AND m.id > ?2 AND m.expires_at > ?3 \
             UNION ALL \
             SELECT m.id, m.sender, r.name, m.sent_at, m.body FROM room_members rm \
               JOIN rooms r ON r.id = rm.room_id \
               JOIN messages m ON m.room_id = rm.room_id AND m.id > rm.cursor \
               WHERE rm.account_id = ?1 AND m.id > ?2 AND m.expires_at > ?3 AND m.sender_id <> ?1 \
             ORDER BY 1 LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                account,
                to_i64(after),
                to_i64(now),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok(StoredMessage {
                    id: to_u64(r.get(0)?),
                    sender: r.get(1)?,
                    room: r.get(2)?,
                    sent_at: to_u64(r.get(3)?),
                    body: r.get(4)?,
                })
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    fn ack(&mut self, account: AccountId, server_id: u64) -> Result<AckOutcome, StoreError> {
        let id = to_i64(server_id);
        let direct = self
            .conn
            .prepare_cached(
                "DELETE FROM messages WHERE id = ?1 AND recipient_id = ?2 RETURNING sender_id",
            )?
            .query_row(params![id, account], |r| r.get::<_, i64>(0))
            .optional()?;
        if let Some(sender_id) = direct {
            return Ok(AckOutcome::Direct { sender_id });
        }
        let room = self
            .conn
            .prepare_cached(
                "SELECT m.room_id, m.sender_id FROM messages m JOIN room_members rm \
                 ON rm.room_id = m.room_id AND rm.account_id = ?2 \
                 WHERE m.id = ?1 AND m.id > rm.cursor",
            )?
            .query_row(params![id, account], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?;
        let Some((room_id, sender_id)) = room else {
            return Ok(AckOutcome::Unknown);
        };
        self.conn
            .prepare_cached(
                "UPDATE room_members SET cursor = ?3 WHERE room_id = ?1 AND account_id = ?2",
            )?
            .execute(params![room_id, account, id])?;
        Ok(AckOutcome::Room { sender_id })
    }

    fn add_receipt(
        &mut self,
        sender: AccountId,
        server_id: u64,
        recipient: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT INTO receipts (sender_id, server_id, recipient, expires_at) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![sender, to_i64(server_id), recipient, to_i64(expires_at)])?;
        Ok(())
    }

    fn take_receipts(&mut self, sender: AccountId) -> Result<Vec<(u64, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "DELETE FROM receipts WHERE sender_id = ?1 RETURNING id, server_id, recipient",
        )?;
        let rows = stmt.query_map([sender], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                to_u64(r.get(1)?),
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        out.sort_by_key(|(id, _, _)| *id);
        Ok(out.into_iter().map(|(_, s, r)| (s, r)).collect())
    }

    fn add_room_event(
        &mut self,
        account: AccountId,
        event: &RoomEvent,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO room_events (account_id, room, username, change, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                account,
                event.room,
                event.username,
                event.change,
                to_i64(expires_at)
            ])?;
        Ok(())
    }

    fn take_room_events(&mut self, account: AccountId) -> Result<Vec<RoomEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "DELETE FROM room_events WHERE account_id = ?1 RETURNING id, room, username, change",
        )?;
        let rows = stmt.query_map([account], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                RoomEvent {
                    room: r.get(1)?,
                    username: r.get(2)?,
                    change: r.get(3)?,
                },
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }

    fn sweep(&mut self, now: u64) -> Result<usize, StoreError> {
        let now = to_i64(now);
        let mut n = self
            .conn
            .prepare_cached("DELETE FROM messages WHERE expires_at <= ?1")?
            .execute([now])?;
        // Room messages every member has moved past are no longer needed by anyone.
        n += self
            .conn
            .prepare_cached(
                "DELETE FROM messages WHERE room_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM room_members rm WHERE rm.room_id = messages.room_id \
              AND rm.cursor < messages.id AND rm.account_id <> messages.sender_id)",
            )?
            .execute([])?;
        self.conn
            .prepare_cached("DELETE FROM receipts WHERE expires_at <= ?1")?
            .execute([now])?;
        self.conn
            .prepare_cached("DELETE FROM room_events WHERE expires_at <= ?1")?
            .execute([now])?;
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
            .execute([now])?;
        Ok(n)
    }

    fn create_room(&mut self, name: &str, admin: AccountId) -> Result<RoomId, StoreError> {
        let inserted = self
            .conn
            .prepare_cached("INSERT INTO rooms (name, admin_id) VALUES (?1, ?2)")?
            .execute(params![name, admin]);
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::RoomTaken),
            Err(e) => return Err(e.into()),
        }
        let id = self.conn.last_insert_rowid();
        self.add_member(id, admin)?;
        Ok(id)
    }

    fn room(&mut self, name: &str) -> Result<Option<RoomInfo>, StoreError> {
        let row = self
            .conn
            .prepare_cached("SELECT id, admin_id FROM rooms WHERE name = ?1")?
            .query_row([name], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .optional()?;
        let Some((id, admin)) = row else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.id, a.username FROM room_members rm JOIN accounts a ON a.id = rm.account_id \
             WHERE rm.room_id = ?1 ORDER BY rm.rowid",
        )?;
        let rows = stmt.query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut members = Vec::new();
        for row in rows {
            members.push(row?);
        }
        Ok(Some(RoomInfo {
            id,
            name: name.to_owned(),
            admin,
            members,
        }))
    }

    fn add_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO room_members (room_id, account_id, cursor) \
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(id), 0) FROM messages))",
            )?
            .execute(params![room, account])?;
        Ok(())
    }

    fn remove_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM room_members WHERE room_id = ?1 AND account_id = ?2")?
            .execute(params![room, account])?;
        Ok(())
    }

    fn set_admin(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE rooms SET admin_id = ?2 WHERE id = ?1")?
            .execute(params![room, account])?;
        Ok(())
    }

    fn delete_room(&mut self, room: RoomId) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM messages WHERE room_id = ?1")?
            .execute([room])?;
        self.conn
            .prepare_cached("DELETE FROM rooms WHERE id = ?1")?
            .execute([room])?;
        Ok(())
    }

    fn rooms_of(&mut self, account: AccountId) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.name FROM room_members rm JOIN rooms r ON r.id = rm.room_id \
             WHERE rm.account_id = ?1 ORDER BY r.name",
        )?;
        let rows = stmt.query_map([account], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }
}

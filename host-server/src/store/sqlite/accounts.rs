//! Accounts, their second factor and their sessions, in SQLite.

use rusqlite::{OptionalExtension, params};

use crate::store::KeyStore;

use super::{SqliteStore, is_unique_violation, to_i64, to_u64};
use crate::store::{Account, AccountId, AccountStore, NewAccount, SessionInfo, StoreError};

impl AccountStore for SqliteStore {
    fn create_account(&mut self, a: &NewAccount) -> Result<AccountId, StoreError> {
        let inserted = self.conn.prepare_cached(
            "INSERT INTO accounts (username, name, email, password_phc, totp_secret, identity_sig, \
             identity_dh, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            a.username,
            a.name,
            a.email,
            a.password_phc,
            a.totp_secret,
            &a.identity_sig[..],
            &a.identity_dh[..],
            to_i64(a.created_at),
        ]);
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::UsernameTaken),
            Err(e) => return Err(e.into()),
        }
        let id = self.conn.last_insert_rowid();
        self.conn
            .prepare_cached(
                "INSERT INTO devices (account_id, device_id, added_at, last_seen, spk_id, spk_key, \
                 spk_sig) VALUES (?1, 1, ?2, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                id,
                to_i64(a.created_at),
                a.spk.id,
                &a.spk.key.0[..],
                &a.spk.signature.0[..]
            ])?;
        self.add_prekeys(id, 1, &a.prekeys)?;
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
        device: Option<u32>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (token_hash, account_id, expires_at, device_id) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![&token_hash[..], id, to_i64(expires_at), device])?;
        Ok(())
    }

    fn set_session_device(&mut self, token_hash: &[u8; 32], device: u32) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE sessions SET device_id = ?2 WHERE token_hash = ?1")?
            .execute(params![&token_hash[..], device])?;
        Ok(())
    }

    fn session(
        &mut self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT account_id, expires_at, device_id FROM sessions \
                 WHERE token_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![&token_hash[..], to_i64(now)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .optional()?;
        let Some((account, exp, device)) = row else {
            return Ok(None);
        };
        let device = match device {
            Some(d) => Some(u32::try_from(d).map_err(|_| StoreError::Corrupt("device id"))?),
            None => None,
        };
        Ok(Some(SessionInfo {
            account,
            expires_at: to_u64(exp),
            device,
        }))
    }

    fn revoke_session(&mut self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
            .execute([&token_hash[..]])?;
        Ok(())
    }

    fn set_password(&mut self, id: AccountId, password_phc: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE accounts SET password_phc = ?2 WHERE id = ?1")?
            .execute(params![id, password_phc])?;
        Ok(())
    }

    fn revoke_sessions(
        &mut self,
        id: AccountId,
        keep: Option<&[u8; 32]>,
    ) -> Result<usize, StoreError> {
        // An all-zero hash is never a token's (SHA-256 preimage), so it keeps nothing.
        let keep = keep.copied().unwrap_or([0u8; 32]);
        let n = self
            .conn
            .prepare_cached("DELETE FROM sessions WHERE account_id = ?1 AND token_hash <> ?2")?
            .execute(params![id, &keep[..]])?;
        Ok(n)
    }

    fn set_totp_secret(
        &mut self,
        id: AccountId,
        secret: &[u8],
        step: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE accounts SET totp_secret = ?2, totp_last_step = ?3 WHERE id = ?1",
            )?
            .execute(params![id, secret, to_i64(step)])?;
        Ok(())
    }

    fn count_recovery_codes(&mut self, id: AccountId) -> Result<u32, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM recovery_codes WHERE account_id = ?1")?
            .query_row([id], |r| r.get(0))?;
        u32::try_from(n).map_err(|_| StoreError::Corrupt("recovery code count"))
    }

    fn delete_account(&mut self, id: AccountId) -> Result<(), StoreError> {
        // Everything keyed by the account goes with it (ON DELETE CASCADE): sessions,
        // recovery codes, one-time prekeys, queued messages to it, receipts, room events,
        // memberships and invitations, given or received.
        self.conn
            .prepare_cached("DELETE FROM accounts WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }
}

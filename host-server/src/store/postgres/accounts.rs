//! Accounts, their second factor and their sessions, in PostgreSQL.

use super::{PgStore, to_i64, to_u64};
use crate::store::{
    Account, AccountId, AccountStore, KeyStore, NewAccount, SessionInfo, StoreError,
};

const BY_USERNAME: &str = "SELECT id, username, password_phc, totp_secret, confirmed, \
     totp_last_step, identity_sig, identity_dh, created_at, device_id \
     FROM accounts WHERE username = $1";
const BY_ID: &str = "SELECT id, username, password_phc, totp_secret, confirmed, \
     totp_last_step, identity_sig, identity_dh, created_at, device_id \
     FROM accounts WHERE id = $1";

impl AccountStore for PgStore {
    fn create_account(&mut self, a: &NewAccount) -> Result<AccountId, StoreError> {
        // ON CONFLICT rather than catching the unique violation: an error would abort the
        // job's savepoint, and a name being taken is an answer, not a failure.
        let row = self.row(
            "INSERT INTO accounts (username, name, email, password_phc, totp_secret, \
             identity_sig, identity_dh, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (username) DO NOTHING RETURNING id",
            &[
                &a.username,
                &a.name,
                &a.email,
                &a.password_phc,
                &a.totp_secret,
                &&a.identity_sig[..],
                &&a.identity_dh[..],
                &to_i64(a.created_at),
            ],
        )?;
        let Some(row) = row else {
            return Err(StoreError::UsernameTaken);
        };
        let id: i64 = row.try_get(0)?;
        self.exec(
            "INSERT INTO devices (account_id, device_id, added_at, last_seen, spk_id, spk_key, \
             spk_sig) VALUES ($1, 1, $2, $2, $3, $4, $5)",
            &[
                &id,
                &to_i64(a.created_at),
                &i64::from(a.spk.id),
                &&a.spk.key.0[..],
                &&a.spk.signature.0[..],
            ],
        )?;
        self.add_prekeys(id, 1, &a.prekeys)?;
        Ok(id)
    }

    fn account_by_username(&mut self, username: &str) -> Result<Option<Account>, StoreError> {
        self.row(BY_USERNAME, &[&username])?
            .as_ref()
            .map(Self::account_from)
            .transpose()
    }

    fn account_by_id(&mut self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.row(BY_ID, &[&id])?
            .as_ref()
            .map(Self::account_from)
            .transpose()
    }

    fn confirm_account(&mut self, id: AccountId) -> Result<(), StoreError> {
        self.exec("UPDATE accounts SET confirmed = TRUE WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn delete_unconfirmed(
        &mut self,
        before: u64,
        only: Option<AccountId>,
    ) -> Result<usize, StoreError> {
        let n = match only {
            Some(id) => self.exec(
                "DELETE FROM accounts WHERE NOT confirmed AND id = $1",
                &[&id],
            )?,
            None => self.exec(
                "DELETE FROM accounts WHERE NOT confirmed AND created_at < $1",
                &[&to_i64(before)],
            )?,
        };
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn accept_totp_step(&mut self, id: AccountId, step: u64) -> Result<bool, StoreError> {
        // One statement: a second node accepting the same step waits for the row lock, then
        // PostgreSQL re-checks the condition on the committed row and changes nothing.
        let n = self.exec(
            "UPDATE accounts SET totp_last_step = $2 \
             WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            &[&id, &to_i64(step)],
        )?;
        Ok(n == 1)
    }

    fn set_recovery_codes(&mut self, id: AccountId, hashes: &[[u8; 32]]) -> Result<(), StoreError> {
        self.exec("DELETE FROM recovery_codes WHERE account_id = $1", &[&id])?;
        for h in hashes {
            self.exec(
                "INSERT INTO recovery_codes (account_id, code_hash) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &[&id, &&h[..]],
            )?;
        }
        Ok(())
    }

    fn consume_recovery_code(
        &mut self,
        id: AccountId,
        hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        let n = self.exec(
            "DELETE FROM recovery_codes WHERE account_id = $1 AND code_hash = $2",
            &[&id, &&hash[..]],
        )?;
        Ok(n == 1)
    }

    fn create_session(
        &mut self,
        id: AccountId,
        token_hash: &[u8; 32],
        expires_at: u64,
        device: Option<u32>,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO sessions (token_hash, account_id, expires_at, device_id) \
             VALUES ($1, $2, $3, $4)",
            &[
                &&token_hash[..],
                &id,
                &to_i64(expires_at),
                &device.map(i64::from),
            ],
        )?;
        Ok(())
    }

    fn set_session_device(&mut self, token_hash: &[u8; 32], device: u32) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET device_id = $2 WHERE token_hash = $1",
            &[&&token_hash[..], &i64::from(device)],
        )?;
        Ok(())
    }

    fn session(
        &mut self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let row = self.row(
            "SELECT account_id, expires_at, device_id FROM sessions \
             WHERE token_hash = $1 AND expires_at > $2",
            &[&&token_hash[..], &to_i64(now)],
        )?;
        row.map(|r| {
            let device = match r.try_get::<_, Option<i64>>(2)? {
                Some(d) => Some(u32::try_from(d).map_err(|_| StoreError::Corrupt("device id"))?),
                None => None,
            };
            Ok(SessionInfo {
                account: r.try_get(0)?,
                expires_at: to_u64(r.try_get(1)?),
                device,
            })
        })
        .transpose()
    }

    fn revoke_session(&mut self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[&&token_hash[..]],
        )?;
        Ok(())
    }

    fn set_password(&mut self, id: AccountId, password_phc: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE accounts SET password_phc = $2 WHERE id = $1",
            &[&id, &password_phc],
        )?;
        Ok(())
    }

    fn revoke_sessions(
        &mut self,
        id: AccountId,
        keep: Option<&[u8; 32]>,
    ) -> Result<usize, StoreError> {
        // An all-zero hash is never a token's (SHA-256 preimage), so it keeps nothing.
        let keep = keep.copied().unwrap_or([0u8; 32]);
        let n = self.exec(
            "DELETE FROM sessions WHERE account_id = $1 AND token_hash <> $2",
            &[&id, &&keep[..]],
        )?;
        usize::try_from(n).map_err(|_| StoreError::Corrupt("revoked session count"))
    }

    fn set_totp_secret(
        &mut self,
        id: AccountId,
        secret: &[u8],
        step: u64,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE accounts SET totp_secret = $2, totp_last_step = $3 WHERE id = $1",
            &[&id, &secret, &to_i64(step)],
        )?;
        Ok(())
    }

    fn count_recovery_codes(&mut self, id: AccountId) -> Result<u32, StoreError> {
        let row = self.row(
            "SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1",
            &[&id],
        )?;
        let n: i64 = match row {
            Some(r) => r.try_get(0)?,
            None => 0,
        };
        u32::try_from(n).map_err(|_| StoreError::Corrupt("recovery code count"))
    }

    fn delete_account(&mut self, id: AccountId) -> Result<(), StoreError> {
        // Everything keyed by the account goes with it (ON DELETE CASCADE, as in SQLite):
        // sessions, recovery codes, devices and their prekeys, queued messages to it (and their
        // copies), link messages, receipts, room events, memberships and invitations, given or
        // received.
        self.exec("DELETE FROM accounts WHERE id = $1", &[&id])?;
        Ok(())
    }
}

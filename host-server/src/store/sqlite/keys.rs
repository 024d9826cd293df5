//! The key directory in SQLite.

use proto_core::{Key32, OneTimePrekey, SignedPrekey};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, key32};
use crate::store::{AccountId, AccountStore, KeyStore, StoreError, StoredBundle};

impl KeyStore for SqliteStore {
    fn set_identity(
        &mut self,
        id: AccountId,
        identity_sig: &[u8; 32],
        identity_dh: &[u8; 32],
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE accounts SET identity_sig = ?2, identity_dh = ?3, spk_id = NULL, \
                 spk_key = NULL, spk_sig = NULL, device_id = device_id + 1 WHERE id = ?1",
            )?
            .execute(params![id, &identity_sig[..], &identity_dh[..]])?;
        self.conn
            .prepare_cached("DELETE FROM one_time_prekeys WHERE account_id = ?1")?
            .execute([id])?;
        // Encrypted to the old identity: nobody can read them any more.
        self.conn
            .prepare_cached("DELETE FROM messages WHERE recipient_id = ?1")?
            .execute([id])?;
        Ok(())
    }

    fn set_signed_prekey(&mut self, id: AccountId, spk: &SignedPrekey) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE accounts SET spk_id = ?2, spk_key = ?3, spk_sig = ?4 WHERE id = ?1",
            )?
            .execute(params![id, spk.id, &spk.key.0[..], &spk.signature.0[..]])?;
        Ok(())
    }

    fn count_prekeys(&mut self, id: AccountId) -> Result<u32, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM one_time_prekeys WHERE account_id = ?1")?
            .query_row([id], |r| r.get(0))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn add_prekeys(&mut self, id: AccountId, prekeys: &[OneTimePrekey]) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO one_time_prekeys (account_id, prekey_id, key) VALUES (?1, ?2, ?3)",
        )?;
        for p in prekeys {
            stmt.execute(params![id, p.id, &p.key.0[..]])?;
        }
        Ok(())
    }

    fn take_bundle(
        &mut self,
        username: &str,
        one_time: bool,
    ) -> Result<Option<StoredBundle>, StoreError> {
        let Some(account) = self.account_by_username(username)? else {
            return Ok(None);
        };
        let Some(spk) = account.spk.filter(|_| account.confirmed) else {
            return Ok(None);
        };
        // Runs inside the job's savepoint: select-then-delete is atomic, so no two fetches
        // can ever receive the same one-time prekey.
        let prekey = if !one_time {
            None
        } else {
            self.conn
                .prepare_cached(
                    "DELETE FROM one_time_prekeys WHERE account_id = ?1 AND prekey_id = \
                 (SELECT MIN(prekey_id) FROM one_time_prekeys WHERE account_id = ?1) \
                 RETURNING prekey_id, key",
                )?
                .query_row([account.id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .optional()?
        };
        let prekey = match prekey {
            Some((pid, key)) => Some(OneTimePrekey {
                id: u32::try_from(pid).map_err(|_| StoreError::Corrupt("prekey id"))?,
                key: Key32(key32(key)?),
            }),
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
}

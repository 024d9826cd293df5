//! The key directory in SQLite.

use proto_core::{Key32, OneTimePrekey, SignedPrekey};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, key32, to_i64, to_u64};
use crate::store::{AccountId, AccountStore, DeviceRecord, KeyStore, StoreError, StoredBundle};

impl KeyStore for SqliteStore {
    fn set_identity(
        &mut self,
        id: AccountId,
        identity_sig: &[u8; 32],
        identity_dh: &[u8; 32],
        now: u64,
    ) -> Result<(), StoreError> {
        let now = to_i64(now);
        self.conn
            .prepare_cached(
                "UPDATE devices SET revoked_at = ?2 WHERE account_id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![id, now])?;
        self.conn
            .prepare_cached(
                "UPDATE accounts SET identity_sig = ?2, identity_dh = ?3, spk_id = NULL, \
                 spk_key = NULL, spk_sig = NULL, device_id = device_id + 1 WHERE id = ?1",
            )?
            .execute(params![id, &identity_sig[..], &identity_dh[..]])?;
        self.conn
            .prepare_cached(
                "INSERT INTO devices (account_id, device_id, added_at, last_seen) \
                 SELECT id, device_id, ?2, ?2 FROM accounts WHERE id = ?1",
            )?
            .execute(params![id, now])?;
        self.conn
            .prepare_cached("DELETE FROM one_time_prekeys WHERE account_id = ?1")?
            .execute([id])?;
        // Encrypted to the old identity: nobody can read them any more.
        self.conn
            .prepare_cached("DELETE FROM messages WHERE recipient_id = ?1")?
            .execute([id])?;
        Ok(())
    }

    fn devices(&mut self, id: AccountId, limit: usize) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT device_id, name, added_at, last_seen, revoked_at FROM devices \
             WHERE account_id = ?1 ORDER BY device_id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![id, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (device_id, name, added_at, last_seen, revoked_at) = row?;
            out.push(DeviceRecord {
                device_id: u32::try_from(device_id)
                    .map_err(|_| StoreError::Corrupt("device id"))?,
                name,
                added_at: to_u64(added_at),
                last_seen: to_u64(last_seen),
                revoked_at: revoked_at.map(to_u64),
            });
        }
        Ok(out)
    }

    fn name_device(&mut self, id: AccountId, device: u32, name: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE devices SET name = ?3 WHERE account_id = ?1 AND device_id = ?2",
            )?
            .execute(params![id, device, name])?;
        Ok(())
    }

    fn touch_device(&mut self, id: AccountId, device: u32, now: u64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE devices SET last_seen = ?3 WHERE account_id = ?1 AND device_id = ?2",
            )?
            .execute(params![id, device, to_i64(now)])?;
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

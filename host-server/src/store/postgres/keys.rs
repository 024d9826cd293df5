//! The key directory in PostgreSQL.

use proto_core::{Key32, OneTimePrekey, SignedPrekey};

use super::{PgStore, key32, to_i64, to_u64};
use crate::store::{AccountId, AccountStore, DeviceRecord, KeyStore, StoreError, StoredBundle};

impl KeyStore for PgStore {
    fn set_identity(
        &mut self,
        id: AccountId,
        identity_sig: &[u8; 32],
        identity_dh: &[u8; 32],
        now: u64,
    ) -> Result<(), StoreError> {
        let now = to_i64(now);
        self.exec(
            "UPDATE devices SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL",
            &[&id, &now],
        )?;
        self.exec(
            "UPDATE accounts SET identity_sig = $2, identity_dh = $3, spk_id = NULL, \
             spk_key = NULL, spk_sig = NULL, device_id = device_id + 1 WHERE id = $1",
            &[&id, &&identity_sig[..], &&identity_dh[..]],
        )?;
        self.exec(
            "INSERT INTO devices (account_id, device_id, added_at, last_seen) \
             SELECT id, device_id, $2, $2 FROM accounts WHERE id = $1",
            &[&id, &now],
        )?;
        self.exec("DELETE FROM one_time_prekeys WHERE account_id = $1", &[&id])?;
        // Encrypted to the old identity: nobody can read them any more.
        self.exec("DELETE FROM messages WHERE recipient_id = $1", &[&id])?;
        Ok(())
    }

    fn devices(&mut self, id: AccountId, limit: usize) -> Result<Vec<DeviceRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.rows(
            "SELECT device_id, name, added_at, last_seen, revoked_at FROM devices \
             WHERE account_id = $1 ORDER BY device_id DESC LIMIT $2",
            &[&id, &limit],
        )?;
        rows.iter()
            .map(|r| {
                Ok(DeviceRecord {
                    device_id: u32::try_from(r.try_get::<_, i64>(0)?)
                        .map_err(|_| StoreError::Corrupt("device id"))?,
                    name: r.try_get(1)?,
                    added_at: to_u64(r.try_get(2)?),
                    last_seen: to_u64(r.try_get(3)?),
                    revoked_at: r.try_get::<_, Option<i64>>(4)?.map(to_u64),
                })
            })
            .collect()
    }

    fn name_device(&mut self, id: AccountId, device: u32, name: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE devices SET name = $3 WHERE account_id = $1 AND device_id = $2",
            &[&id, &i64::from(device), &name],
        )?;
        Ok(())
    }

    fn touch_device(&mut self, id: AccountId, device: u32, now: u64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE devices SET last_seen = $3 WHERE account_id = $1 AND device_id = $2",
            &[&id, &i64::from(device), &to_i64(now)],
        )?;
        Ok(())
    }

    fn set_signed_prekey(&mut self, id: AccountId, spk: &SignedPrekey) -> Result<(), StoreError> {
        self.exec(
            "UPDATE accounts SET spk_id = $2, spk_key = $3, spk_sig = $4 WHERE id = $1",
            &[
                &id,
                &i64::from(spk.id),
                &&spk.key.0[..],
                &&spk.signature.0[..],
            ],
        )?;
        Ok(())
    }

    fn count_prekeys(&mut self, id: AccountId) -> Result<u32, StoreError> {
        let n: i64 = self
            .row(
                "SELECT COUNT(*) FROM one_time_prekeys WHERE account_id = $1",
                &[&id],
            )?
            .ok_or(StoreError::Corrupt("COUNT returned no row"))?
            .try_get(0)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn add_prekeys(&mut self, id: AccountId, prekeys: &[OneTimePrekey]) -> Result<(), StoreError> {
        for p in prekeys {
            self.exec(
                "INSERT INTO one_time_prekeys (account_id, prekey_id, key) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id, prekey_id) DO UPDATE SET key = EXCLUDED.key",
                &[&id, &i64::from(p.id), &&p.key.0[..]],
            )?;
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
        // One statement, and SKIP LOCKED: two nodes fetching at once never receive the same
        // one-time prekey, and neither waits for the other's commit to get a different one.
        let prekey = if !one_time {
            None
        } else {
            self.row(
                "DELETE FROM one_time_prekeys WHERE account_id = $1 AND prekey_id = \
                 (SELECT prekey_id FROM one_time_prekeys WHERE account_id = $1 \
                  ORDER BY prekey_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING prekey_id, key",
                &[&account.id],
            )?
        };
        let prekey = match prekey {
            Some(row) => Some(OneTimePrekey {
                id: u32::try_from(row.try_get::<_, i64>(0)?)
                    .map_err(|_| StoreError::Corrupt("prekey id"))?,
                key: Key32(key32(row.try_get(1)?)?),
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

//! The key directory in PostgreSQL.

use proto_core::{KemPrekeyPublic, Key32, OneTimePrekey, Sig64, SignedPrekey};

use super::{PgStore, key32, sig64, to_i64, to_u64};
use crate::store::{
    AccountId, AccountStore, DeviceRecord, KeyStore, StoreError, StoredBundle, kem_prekey,
};

impl PgStore {
    /// The next device id of an account: past every id it has had. Locks the account's row
    /// until the commit, so two nodes adding a device to one account never take the same id.
    fn next_device_id(&mut self, id: AccountId) -> Result<u32, StoreError> {
        let current: i64 = self
            .row(
                "SELECT device_id FROM accounts WHERE id = $1 FOR UPDATE",
                &[&id],
            )?
            .ok_or(StoreError::Corrupt("no such account"))?
            .try_get(0)?;
        // A statement of its own, after the lock: it sees a device another node just added.
        let highest: i64 = self
            .row(
                "SELECT COALESCE(MAX(device_id), 0) FROM devices WHERE account_id = $1",
                &[&id],
            )?
            .ok_or(StoreError::Corrupt("MAX returned no row"))?
            .try_get(0)?;
        u32::try_from(current.max(highest) + 1).map_err(|_| StoreError::Corrupt("device id"))
    }

    /// Starts a new device's cursor, in every room the account is in, past every message
    /// stored: it is not delivered what was sent before it was added.
    fn start_room_cursors(&mut self, id: AccountId, device: u32) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO room_cursors (room_id, account_id, device_id, cursor) \
             SELECT rm.room_id, rm.account_id, $2, \
             GREATEST(rm.cursor, (SELECT COALESCE(MAX(id), 0) FROM messages)) \
             FROM room_members rm WHERE rm.account_id = $1 \
             ON CONFLICT (room_id, account_id, device_id) DO UPDATE SET cursor = EXCLUDED.cursor",
            &[&id, &i64::from(device)],
        )?;
        Ok(())
    }
}

impl KeyStore for PgStore {
    fn set_identity(
        &mut self,
        id: AccountId,
        identity_sig: &[u8; 32],
        identity_dh: &[u8; 32],
        now: u64,
    ) -> Result<u32, StoreError> {
        let now = to_i64(now);
        let device = self.next_device_id(id)?;
        self.exec(
            "UPDATE devices SET revoked_at = $2, spk_id = NULL, spk_key = NULL, spk_sig = NULL, \
             kem_id = NULL, kem_key = NULL, kem_sig = NULL \
             WHERE account_id = $1 AND revoked_at IS NULL",
            &[&id, &now],
        )?;
        self.exec(
            "UPDATE accounts SET identity_sig = $2, identity_dh = $3, device_id = $4 WHERE id = $1",
            &[
                &id,
                &&identity_sig[..],
                &&identity_dh[..],
                &i64::from(device),
            ],
        )?;
        self.exec(
            "INSERT INTO devices (account_id, device_id, added_at, last_seen) \
             VALUES ($1, $2, $3, $3)",
            &[&id, &i64::from(device), &now],
        )?;
        self.exec("DELETE FROM device_prekeys WHERE account_id = $1", &[&id])?;
        // Signed by the old identity.
        self.exec(
            "DELETE FROM device_kem_prekeys WHERE account_id = $1",
            &[&id],
        )?;
        // Encrypted to the old identity: nobody can read them any more.
        self.exec("DELETE FROM messages WHERE recipient_id = $1", &[&id])?;
        self.exec("DELETE FROM links WHERE account_id = $1", &[&id])?;
        // The revoked devices' room cursors go; the new device starts past every message.
        self.exec("DELETE FROM room_cursors WHERE account_id = $1", &[&id])?;
        self.start_room_cursors(id, device)?;
        Ok(device)
    }

    fn active_devices(&mut self, id: AccountId) -> Result<Vec<u32>, StoreError> {
        let rows = self.rows(
            "SELECT device_id FROM devices WHERE account_id = $1 AND revoked_at IS NULL \
             ORDER BY device_id",
            &[&id],
        )?;
        rows.iter()
            .map(|r| {
                u32::try_from(r.try_get::<_, i64>(0)?).map_err(|_| StoreError::Corrupt("device id"))
            })
            .collect()
    }

    fn reachable_devices(&mut self, id: AccountId) -> Result<Vec<u32>, StoreError> {
        let rows = self.rows(
            "SELECT device_id FROM devices WHERE account_id = $1 AND revoked_at IS NULL \
             AND spk_id IS NOT NULL ORDER BY device_id",
            &[&id],
        )?;
        rows.iter()
            .map(|r| {
                u32::try_from(r.try_get::<_, i64>(0)?).map_err(|_| StoreError::Corrupt("device id"))
            })
            .collect()
    }

    fn add_device(&mut self, id: AccountId, name: &str, now: u64) -> Result<u32, StoreError> {
        let device = self.next_device_id(id)?;
        self.exec(
            "INSERT INTO devices (account_id, device_id, name, added_at, last_seen) \
             VALUES ($1, $2, $3, $4, $4)",
            &[&id, &i64::from(device), &name, &to_i64(now)],
        )?;
        self.start_room_cursors(id, device)?;
        Ok(device)
    }

    fn revoke_device(&mut self, id: AccountId, device: u32, now: u64) -> Result<bool, StoreError> {
        let device = i64::from(device);
        let n = self.exec(
            "UPDATE devices SET revoked_at = $3, spk_id = NULL, spk_key = NULL, spk_sig = NULL, \
             kem_id = NULL, kem_key = NULL, kem_sig = NULL \
             WHERE account_id = $1 AND device_id = $2 AND revoked_at IS NULL",
            &[&id, &device, &to_i64(now)],
        )?;
        if n == 0 {
            return Ok(false);
        }
        self.exec(
            "DELETE FROM device_prekeys WHERE account_id = $1 AND device_id = $2",
            &[&id, &device],
        )?;
        self.exec(
            "DELETE FROM device_kem_prekeys WHERE account_id = $1 AND device_id = $2",
            &[&id, &device],
        )?;
        self.exec(
            "DELETE FROM sessions WHERE account_id = $1 AND device_id = $2",
            &[&id, &device],
        )?;
        self.exec(
            "DELETE FROM message_copies WHERE account_id = $1 AND device_id = $2",
            &[&id, &device],
        )?;
        self.exec(
            "DELETE FROM room_cursors WHERE account_id = $1 AND device_id = $2",
            &[&id, &device],
        )?;
        // A message no device holds a copy of any more is nobody's.
        self.exec(
            "DELETE FROM messages WHERE recipient_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM message_copies c WHERE c.message_id = messages.id)",
            &[&id],
        )?;
        self.exec(
            "UPDATE accounts SET device_id = COALESCE((SELECT MIN(device_id) FROM devices \
             WHERE account_id = $1 AND revoked_at IS NULL), device_id) \
             WHERE id = $1 AND device_id = $2",
            &[&id, &device],
        )?;
        Ok(true)
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

    fn set_signed_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        spk: &SignedPrekey,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE devices SET spk_id = $3, spk_key = $4, spk_sig = $5 \
             WHERE account_id = $1 AND device_id = $2 AND revoked_at IS NULL",
            &[
                &id,
                &i64::from(device),
                &i64::from(spk.id),
                &&spk.key.0[..],
                &&spk.signature.0[..],
            ],
        )?;
        Ok(())
    }

    fn count_prekeys(&mut self, id: AccountId, device: u32) -> Result<u32, StoreError> {
        let n: i64 = self
            .row(
                "SELECT COUNT(*) FROM device_prekeys WHERE account_id = $1 AND device_id = $2",
                &[&id, &i64::from(device)],
            )?
            .ok_or(StoreError::Corrupt("COUNT returned no row"))?
            .try_get(0)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn add_prekeys(
        &mut self,
        id: AccountId,
        device: u32,
        prekeys: &[OneTimePrekey],
    ) -> Result<(), StoreError> {
        for p in prekeys {
            self.exec(
                "INSERT INTO device_prekeys (account_id, device_id, prekey_id, key) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (account_id, device_id, prekey_id) DO UPDATE SET key = EXCLUDED.key",
                &[&id, &i64::from(device), &i64::from(p.id), &&p.key.0[..]],
            )?;
        }
        Ok(())
    }

    fn take_bundle(
        &mut self,
        username: &str,
        device: Option<u32>,
        one_time: bool,
    ) -> Result<Option<StoredBundle>, StoreError> {
        let Some(account) = self.account_by_username(username)?.filter(|a| a.confirmed) else {
            return Ok(None);
        };
        let device = device.unwrap_or(account.device_id);
        let Some(row) = self.row(
            "SELECT spk_id, spk_key, spk_sig FROM devices WHERE account_id = $1 \
             AND device_id = $2 AND revoked_at IS NULL AND spk_id IS NOT NULL",
            &[&account.id, &i64::from(device)],
        )?
        else {
            return Ok(None);
        };
        let spk = SignedPrekey {
            id: u32::try_from(row.try_get::<_, i64>(0)?)
                .map_err(|_| StoreError::Corrupt("spk id"))?,
            key: Key32(key32(row.try_get(1)?)?),
            signature: Sig64(sig64(row.try_get(2)?)?),
        };
        // One statement, and SKIP LOCKED: two nodes fetching at once never receive the same
        // one-time prekey, and neither waits for the other's commit to get a different one.
        let prekey = if !one_time {
            None
        } else {
            self.row(
                "DELETE FROM device_prekeys WHERE account_id = $1 AND device_id = $2 \
                 AND prekey_id = (SELECT prekey_id FROM device_prekeys \
                  WHERE account_id = $1 AND device_id = $2 \
                  ORDER BY prekey_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING prekey_id, key",
                &[&account.id, &i64::from(device)],
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
        let remaining = self.count_prekeys(account.id, device)?;
        Ok(Some(StoredBundle {
            owner: account.id,
            username: account.username,
            identity_sig: account.identity_sig,
            identity_dh: account.identity_dh,
            device,
            spk,
            prekey,
            remaining,
        }))
    }

    fn count_kem_prekeys(&mut self, id: AccountId, device: u32) -> Result<u32, StoreError> {
        let n: i64 = self
            .row(
                "SELECT COUNT(*) FROM device_kem_prekeys WHERE account_id = $1 AND device_id = $2",
                &[&id, &i64::from(device)],
            )?
            .ok_or(StoreError::Corrupt("COUNT returned no row"))?
            .try_get(0)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn kem_prekey_ids(&mut self, id: AccountId, device: u32) -> Result<Vec<u32>, StoreError> {
        let rows = self.rows(
            "SELECT prekey_id FROM device_kem_prekeys WHERE account_id = $1 AND device_id = $2 \
             UNION ALL SELECT kem_id FROM devices WHERE account_id = $1 AND device_id = $2 \
             AND kem_id IS NOT NULL",
            &[&id, &i64::from(device)],
        )?;
        rows.iter()
            .map(|r| {
                u32::try_from(r.try_get::<_, i64>(0)?)
                    .map_err(|_| StoreError::Corrupt("KEM prekey id"))
            })
            .collect()
    }

    fn add_kem_prekeys(
        &mut self,
        id: AccountId,
        device: u32,
        prekeys: &[KemPrekeyPublic],
    ) -> Result<(), StoreError> {
        // Only for an active device: an upload racing the device's revocation stores nothing.
        for p in prekeys {
            self.exec(
                "INSERT INTO device_kem_prekeys (account_id, device_id, prekey_id, key, signature) \
                 SELECT $1, $2, $3, $4, $5 FROM devices \
                 WHERE account_id = $1 AND device_id = $2 AND revoked_at IS NULL \
                 ON CONFLICT (account_id, device_id, prekey_id) \
                 DO UPDATE SET key = EXCLUDED.key, signature = EXCLUDED.signature",
                &[
                    &id,
                    &i64::from(device),
                    &i64::from(p.id),
                    &&p.public[..],
                    &&p.signature[..],
                ],
            )?;
        }
        Ok(())
    }

    fn set_last_resort_kem_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        prekey: &KemPrekeyPublic,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE devices SET kem_id = $3, kem_key = $4, kem_sig = $5 \
             WHERE account_id = $1 AND device_id = $2 AND revoked_at IS NULL",
            &[
                &id,
                &i64::from(device),
                &i64::from(prekey.id),
                &&prekey.public[..],
                &&prekey.signature[..],
            ],
        )?;
        Ok(())
    }

    fn take_kem_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        one_time: bool,
    ) -> Result<Option<KemPrekeyPublic>, StoreError> {
        let device = i64::from(device);
        // As for one-time prekeys: one statement, SKIP LOCKED, so two nodes never hand out the
        // same one-time KEM prekey and neither waits for the other.
        let one = if one_time {
            self.row(
                "DELETE FROM device_kem_prekeys WHERE account_id = $1 AND device_id = $2 \
                 AND prekey_id = (SELECT prekey_id FROM device_kem_prekeys \
                  WHERE account_id = $1 AND device_id = $2 \
                  ORDER BY prekey_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING prekey_id, key, signature",
                &[&id, &device],
            )?
        } else {
            None
        };
        let row = match one {
            Some(row) => Some(row),
            None => self.row(
                "SELECT kem_id, kem_key, kem_sig FROM devices WHERE account_id = $1 \
                 AND device_id = $2 AND revoked_at IS NULL AND kem_id IS NOT NULL",
                &[&id, &device],
            )?,
        };
        row.map(|r| {
            kem_prekey(
                r.try_get(0)?,
                r.try_get::<_, &[u8]>(1)?,
                r.try_get::<_, &[u8]>(2)?,
            )
        })
        .transpose()
    }
}

//! The key directory in SQLite.

use proto_core::{KemPrekeyPublic, Key32, OneTimePrekey, Sig64, SignedPrekey};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, key32, sig64, to_i64, to_u64};
use crate::store::{
    AccountId, AccountStore, DeviceRecord, KeyStore, StoreError, StoredBundle, kem_prekey,
};

impl SqliteStore {
    /// The next device id of an account: past every id it has had.
    fn next_device_id(&mut self, id: AccountId) -> Result<u32, StoreError> {
        let next: i64 = self
            .conn
            .prepare_cached(
                "SELECT MAX(COALESCE((SELECT MAX(device_id) FROM devices WHERE account_id = ?1), 0), \
                 device_id) + 1 FROM accounts WHERE id = ?1",
            )?
            .query_row([id], |r| r.get(0))?;
        u32::try_from(next).map_err(|_| StoreError::Corrupt("device id"))
    }

    /// Starts a new device's cursor, in every room the account is in, past every message
    /// stored: it is not delivered what was sent before it was added.
    fn start_room_cursors(&mut self, id: AccountId, device: u32) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO room_cursors (room_id, account_id, device_id, cursor) \
                 SELECT rm.room_id, rm.account_id, ?2, \
                 MAX(rm.cursor, (SELECT COALESCE(MAX(id), 0) FROM messages)) \
                 FROM room_members rm WHERE rm.account_id = ?1 \
                 ON CONFLICT (room_id, account_id, device_id) DO UPDATE SET cursor = excluded.cursor",
            )?
            .execute(params![id, device])?;
        Ok(())
    }
}

impl KeyStore for SqliteStore {
    fn set_identity(
        &mut self,
        id: AccountId,
        identity_sig: &[u8; 32],
        identity_dh: &[u8; 32],
        now: u64,
    ) -> Result<u32, StoreError> {
        let now = to_i64(now);
        let device = self.next_device_id(id)?;
        self.conn
            .prepare_cached(
                "UPDATE devices SET revoked_at = ?2, spk_id = NULL, spk_key = NULL, spk_sig = NULL, \
                 kem_id = NULL, kem_key = NULL, kem_sig = NULL \
                 WHERE account_id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![id, now])?;
        self.conn
            .prepare_cached(
                "UPDATE accounts SET identity_sig = ?2, identity_dh = ?3, device_id = ?4 WHERE id = ?1",
            )?
            .execute(params![id, &identity_sig[..], &identity_dh[..], device])?;
        self.conn
            .prepare_cached(
                "INSERT INTO devices (account_id, device_id, added_at, last_seen) VALUES (?1, ?2, ?3, ?3)",
            )?
            .execute(params![id, device, now])?;
        self.conn
            .prepare_cached("DELETE FROM device_prekeys WHERE account_id = ?1")?
            .execute([id])?;
        // Signed by the old identity.
        self.conn
            .prepare_cached("DELETE FROM device_kem_prekeys WHERE account_id = ?1")?
            .execute([id])?;
        // Encrypted to the old identity: nobody can read them any more.
        self.conn
            .prepare_cached("DELETE FROM messages WHERE recipient_id = ?1")?
            .execute([id])?;
        self.conn
            .prepare_cached("DELETE FROM links WHERE account_id = ?1")?
            .execute([id])?;
        // The revoked devices' room cursors go; the new device starts past every message.
        self.conn
            .prepare_cached("DELETE FROM room_cursors WHERE account_id = ?1")?
            .execute([id])?;
        self.start_room_cursors(id, device)?;
        Ok(device)
    }

    fn active_devices(&mut self, id: AccountId) -> Result<Vec<u32>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT device_id FROM devices WHERE account_id = ?1 AND revoked_at IS NULL \
             ORDER BY device_id",
        )?;
        let rows = stmt.query_map([id], |r| r.get::<_, i64>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(u32::try_from(row?).map_err(|_| StoreError::Corrupt("device id"))?);
        }
        Ok(out)
    }

    fn reachable_devices(&mut self, id: AccountId) -> Result<Vec<u32>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT device_id FROM devices WHERE account_id = ?1 AND revoked_at IS NULL \
             AND spk_id IS NOT NULL ORDER BY device_id",
        )?;
        let rows = stmt.query_map([id], |r| r.get::<_, i64>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(u32::try_from(row?).map_err(|_| StoreError::Corrupt("device id"))?);
        }
        Ok(out)
    }

    fn add_device(&mut self, id: AccountId, name: &str, now: u64) -> Result<u32, StoreError> {
        let device = self.next_device_id(id)?;
        self.conn
            .prepare_cached(
                "INSERT INTO devices (account_id, device_id, name, added_at, last_seen) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![id, device, name, to_i64(now)])?;
        self.start_room_cursors(id, device)?;
        Ok(device)
    }

    fn revoke_device(&mut self, id: AccountId, device: u32, now: u64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE devices SET revoked_at = ?3, spk_id = NULL, spk_key = NULL, spk_sig = NULL, \
                 kem_id = NULL, kem_key = NULL, kem_sig = NULL \
                 WHERE account_id = ?1 AND device_id = ?2 AND revoked_at IS NULL",
            )?
            .execute(params![id, device, to_i64(now)])?;
        if n == 0 {
            return Ok(false);
        }
        self.conn
            .prepare_cached("DELETE FROM device_prekeys WHERE account_id = ?1 AND device_id = ?2")?
            .execute(params![id, device])?;
        self.conn
            .prepare_cached(
                "DELETE FROM device_kem_prekeys WHERE account_id = ?1 AND device_id = ?2",
            )?
            .execute(params![id, device])?;
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE account_id = ?1 AND device_id = ?2")?
            .execute(params![id, device])?;
        self.conn
            .prepare_cached("DELETE FROM message_copies WHERE account_id = ?1 AND device_id = ?2")?
            .execute(params![id, device])?;
        self.conn
            .prepare_cached("DELETE FROM room_cursors WHERE account_id = ?1 AND device_id = ?2")?
            .execute(params![id, device])?;
        // A message no device holds a copy of any more is nobody's.
        self.conn
            .prepare_cached(
                "DELETE FROM messages WHERE recipient_id = ?1 AND NOT EXISTS \
                 (SELECT 1 FROM message_copies c WHERE c.message_id = messages.id)",
            )?
            .execute([id])?;
        self.conn
            .prepare_cached(
                "UPDATE accounts SET device_id = COALESCE((SELECT MIN(device_id) FROM devices \
                 WHERE account_id = ?1 AND revoked_at IS NULL), device_id) \
                 WHERE id = ?1 AND device_id = ?2",
            )?
            .execute(params![id, device])?;
        Ok(true)
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

    fn set_signed_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        spk: &SignedPrekey,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE devices SET spk_id = ?3, spk_key = ?4, spk_sig = ?5 \
                 WHERE account_id = ?1 AND device_id = ?2 AND revoked_at IS NULL",
            )?
            .execute(params![
                id,
                device,
                spk.id,
                &spk.key.0[..],
                &spk.signature.0[..]
            ])?;
        Ok(())
    }

    fn count_prekeys(&mut self, id: AccountId, device: u32) -> Result<u32, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM device_prekeys WHERE account_id = ?1 AND device_id = ?2",
            )?
            .query_row(params![id, device], |r| r.get(0))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn add_prekeys(
        &mut self,
        id: AccountId,
        device: u32,
        prekeys: &[OneTimePrekey],
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO device_prekeys (account_id, device_id, prekey_id, key) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for p in prekeys {
            stmt.execute(params![id, device, p.id, &p.key.0[..]])?;
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
        let spk = self
            .conn
            .prepare_cached(
                "SELECT spk_id, spk_key, spk_sig FROM devices WHERE account_id = ?1 \
                 AND device_id = ?2 AND revoked_at IS NULL AND spk_id IS NOT NULL",
            )?
            .query_row(params![account.id, device], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .optional()?;
        let Some((spk_id, spk_key, spk_sig)) = spk else {
            return Ok(None);
        };
        let spk = SignedPrekey {
            id: u32::try_from(spk_id).map_err(|_| StoreError::Corrupt("spk id"))?,
            key: Key32(key32(spk_key)?),
            signature: Sig64(sig64(spk_sig)?),
        };
        // Runs inside the job's savepoint: select-then-delete is atomic, so no two fetches
        // can ever receive the same one-time prekey.
        let prekey = if !one_time {
            None
        } else {
            self.conn
                .prepare_cached(
                    "DELETE FROM device_prekeys WHERE account_id = ?1 AND device_id = ?2 AND \
                     prekey_id = (SELECT MIN(prekey_id) FROM device_prekeys \
                     WHERE account_id = ?1 AND device_id = ?2) RETURNING prekey_id, key",
                )?
                .query_row(params![account.id, device], |r| {
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
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM device_kem_prekeys WHERE account_id = ?1 AND device_id = ?2",
            )?
            .query_row(params![id, device], |r| r.get(0))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn kem_prekey_ids(&mut self, id: AccountId, device: u32) -> Result<Vec<u32>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT prekey_id FROM device_kem_prekeys WHERE account_id = ?1 AND device_id = ?2 \
             UNION ALL SELECT kem_id FROM devices WHERE account_id = ?1 AND device_id = ?2 \
             AND kem_id IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![id, device], |r| r.get::<_, i64>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(u32::try_from(row?).map_err(|_| StoreError::Corrupt("KEM prekey id"))?);
        }
        Ok(out)
    }

    fn add_kem_prekeys(
        &mut self,
        id: AccountId,
        device: u32,
        prekeys: &[KemPrekeyPublic],
    ) -> Result<(), StoreError> {
        // Only for an active device: an upload racing the device's revocation stores nothing.
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO device_kem_prekeys \
             (account_id, device_id, prekey_id, key, signature) \
             SELECT ?1, ?2, ?3, ?4, ?5 FROM devices \
             WHERE account_id = ?1 AND device_id = ?2 AND revoked_at IS NULL",
        )?;
        for p in prekeys {
            stmt.execute(params![id, device, p.id, &p.public[..], &p.signature[..]])?;
        }
        Ok(())
    }

    fn set_last_resort_kem_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        prekey: &KemPrekeyPublic,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE devices SET kem_id = ?3, kem_key = ?4, kem_sig = ?5 \
                 WHERE account_id = ?1 AND device_id = ?2 AND revoked_at IS NULL",
            )?
            .execute(params![
                id,
                device,
                prekey.id,
                &prekey.public[..],
                &prekey.signature[..]
            ])?;
        Ok(())
    }

    fn take_kem_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        one_time: bool,
    ) -> Result<Option<KemPrekeyPublic>, StoreError> {
        // Inside the job's savepoint, as for one-time prekeys: no two fetches get the same one.
        let one = if one_time {
            self.conn
                .prepare_cached(
                    "DELETE FROM device_kem_prekeys WHERE account_id = ?1 AND device_id = ?2 AND \
                     prekey_id = (SELECT MIN(prekey_id) FROM device_kem_prekeys \
                     WHERE account_id = ?1 AND device_id = ?2) RETURNING prekey_id, key, signature",
                )?
                .query_row(params![id, device], kem_row)
                .optional()?
        } else {
            None
        };
        let row = match one {
            Some(row) => Some(row),
            None => self
                .conn
                .prepare_cached(
                    "SELECT kem_id, kem_key, kem_sig FROM devices WHERE account_id = ?1 \
                     AND device_id = ?2 AND revoked_at IS NULL AND kem_id IS NOT NULL",
                )?
                .query_row(params![id, device], kem_row)
                .optional()?,
        };
        row.map(|(kem_id, key, sig)| kem_prekey(kem_id, &key, &sig))
            .transpose()
    }
}

/// A KEM prekey's id, key and signature, as selected.
fn kem_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Vec<u8>, Vec<u8>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

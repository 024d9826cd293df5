//! The key directory in memory.

use proto_core::{OneTimePrekey, SignedPrekey};

use super::MemoryStore;
use crate::store::{AccountId, DeviceRecord, KeyStore, StoreError, StoredBundle};

impl KeyStore for MemoryStore {
    fn set_identity(
        &mut self,
        id: AccountId,
        identity_sig: &[u8; 32],
        identity_dh: &[u8; 32],
        now: u64,
    ) -> Result<(), StoreError> {
        if let Some(a) = self.accounts.get_mut(&id) {
            a.identity_sig = *identity_sig;
            a.identity_dh = *identity_dh;
            a.spk = None;
            a.device_id = a.device_id.saturating_add(1);
            let devices = self.devices.entry(id).or_default();
            for d in devices.iter_mut().filter(|d| d.revoked_at.is_none()) {
                d.revoked_at = Some(now);
            }
            devices.push(DeviceRecord {
                device_id: a.device_id,
                name: String::new(),
                added_at: now,
                last_seen: now,
                revoked_at: None,
            });
        }
        self.prekeys.remove(&id);
        self.messages.retain(|_, m| m.recipient != Some(id));
        Ok(())
    }

    fn devices(&mut self, id: AccountId, limit: usize) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut out = self.devices.get(&id).cloned().unwrap_or_default();
        out.sort_by_key(|d| core::cmp::Reverse(d.device_id));
        out.truncate(limit);
        Ok(out)
    }

    fn name_device(&mut self, id: AccountId, device: u32, name: &str) -> Result<(), StoreError> {
        if let Some(d) = self.device_mut(id, device) {
            d.name = name.to_owned();
        }
        Ok(())
    }

    fn touch_device(&mut self, id: AccountId, device: u32, now: u64) -> Result<(), StoreError> {
        if let Some(d) = self.device_mut(id, device) {
            d.last_seen = now;
        }
        Ok(())
    }

    fn set_signed_prekey(&mut self, id: AccountId, spk: &SignedPrekey) -> Result<(), StoreError> {
        if let Some(a) = self.accounts.get_mut(&id) {
            a.spk = Some(*spk);
        }
        Ok(())
    }

    fn count_prekeys(&mut self, id: AccountId) -> Result<u32, StoreError> {
        Ok(self
            .prekeys
            .get(&id)
            .map_or(0, |p| u32::try_from(p.len()).unwrap_or(u32::MAX)))
    }

    fn add_prekeys(&mut self, id: AccountId, prekeys: &[OneTimePrekey]) -> Result<(), StoreError> {
        let held = self.prekeys.entry(id).or_default();
        for p in prekeys {
            held.insert(p.id, *p);
        }
        Ok(())
    }

    fn take_bundle(
        &mut self,
        username: &str,
        one_time: bool,
    ) -> Result<Option<StoredBundle>, StoreError> {
        let Some(a) = self
            .accounts
            .values()
            .find(|a| a.username == username && a.confirmed)
            .cloned()
        else {
            return Ok(None);
        };
        let Some(spk) = a.spk else {
            return Ok(None);
        };
        let held = self.prekeys.entry(a.id).or_default();
        let prekey = if one_time {
            held.pop_first().map(|(_, p)| p)
        } else {
            None
        };
        let remaining = u32::try_from(held.len()).unwrap_or(u32::MAX);
        Ok(Some(StoredBundle {
            owner: a.id,
            username: a.username,
            identity_sig: a.identity_sig,
            identity_dh: a.identity_dh,
            spk,
            prekey,
            remaining,
        }))
    }
}

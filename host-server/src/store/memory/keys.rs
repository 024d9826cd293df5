//! The key directory in memory.

use proto_core::{KemPrekeyPublic, OneTimePrekey, SignedPrekey};

use super::MemoryStore;
use crate::store::{AccountId, DeviceRecord, KeyStore, StoreError, StoredBundle};

impl KeyStore for MemoryStore {
    fn set_identity(
        &mut self,
        id: AccountId,
        identity_sig: &[u8; 32],
        identity_dh: &[u8; 32],
        now: u64,
    ) -> Result<u32, StoreError> {
        let device = self.next_device_id(id)?;
        if let Some(a) = self.accounts.get_mut(&id) {
            a.identity_sig = *identity_sig;
            a.identity_dh = *identity_dh;
            a.device_id = device;
        }
        let devices = self.devices.entry(id).or_default();
        for d in devices.iter_mut().filter(|d| d.revoked_at.is_none()) {
            d.revoked_at = Some(now);
        }
        devices.push(DeviceRecord {
            device_id: device,
            name: String::new(),
            added_at: now,
            last_seen: now,
            revoked_at: None,
        });
        self.spks.retain(|(account, _), _| *account != id);
        self.prekeys.retain(|(account, _), _| *account != id);
        // Signed by the old identity.
        self.kem_prekeys.retain(|(account, _), _| *account != id);
        self.kem_last_resort
            .retain(|(account, _), _| *account != id);
        // Encrypted to the old identity: nobody can read them any more.
        self.messages.retain(|_, m| m.recipient != Some(id));
        self.links.retain(|(account, _), _| *account != id);
        // The revoked devices' room cursors go; the new device starts past every message.
        for room in self.rooms.values_mut() {
            room.device_cursors.retain(|(account, _), _| *account != id);
        }
        self.start_room_cursors(id, device);
        Ok(device)
    }

    fn active_devices(&mut self, id: AccountId) -> Result<Vec<u32>, StoreError> {
        let mut out: Vec<u32> = self
            .devices
            .get(&id)
            .map(|ds| {
                ds.iter()
                    .filter(|d| d.revoked_at.is_none())
                    .map(|d| d.device_id)
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        Ok(out)
    }

    fn reachable_devices(&mut self, id: AccountId) -> Result<Vec<u32>, StoreError> {
        let active = self.active_devices(id)?;
        Ok(active
            .into_iter()
            .filter(|d| self.spks.contains_key(&(id, *d)))
            .collect())
    }

    fn add_device(&mut self, id: AccountId, name: &str, now: u64) -> Result<u32, StoreError> {
        let device = self.next_device_id(id)?;
        self.devices.entry(id).or_default().push(DeviceRecord {
            device_id: device,
            name: name.to_owned(),
            added_at: now,
            last_seen: now,
            revoked_at: None,
        });
        self.start_room_cursors(id, device);
        Ok(device)
    }

    fn revoke_device(&mut self, id: AccountId, device: u32, now: u64) -> Result<bool, StoreError> {
        let Some(d) = self
            .device_mut(id, device)
            .filter(|d| d.revoked_at.is_none())
        else {
            return Ok(false);
        };
        d.revoked_at = Some(now);
        self.spks.remove(&(id, device));
        self.prekeys.remove(&(id, device));
        self.kem_prekeys.remove(&(id, device));
        self.kem_last_resort.remove(&(id, device));
        self.sessions
            .retain(|_, (account, _, d)| *account != id || *d != Some(device));
        for room in self.rooms.values_mut() {
            room.device_cursors.remove(&(id, device));
        }
        // A message no device holds a copy of any more is nobody's.
        self.messages.retain(|_, m| {
            if m.recipient != Some(id) {
                return true;
            }
            m.copies.remove(&device);
            !m.copies.is_empty()
        });
        let lowest = self.active_devices(id)?.first().copied();
        if let Some(a) = self.accounts.get_mut(&id)
            && a.device_id == device
            && let Some(lowest) = lowest
        {
            a.device_id = lowest;
        }
        Ok(true)
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

    fn set_signed_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        spk: &SignedPrekey,
    ) -> Result<(), StoreError> {
        if self.is_active(id, device) {
            self.spks.insert((id, device), *spk);
        }
        Ok(())
    }

    fn count_prekeys(&mut self, id: AccountId, device: u32) -> Result<u32, StoreError> {
        Ok(self
            .prekeys
            .get(&(id, device))
            .map_or(0, |p| u32::try_from(p.len()).unwrap_or(u32::MAX)))
    }

    fn add_prekeys(
        &mut self,
        id: AccountId,
        device: u32,
        prekeys: &[OneTimePrekey],
    ) -> Result<(), StoreError> {
        if prekeys.is_empty() {
            return Ok(());
        }
        let held = self.prekeys.entry((id, device)).or_default();
        for p in prekeys {
            held.insert(p.id, *p);
        }
        Ok(())
    }

    fn take_bundle(
        &mut self,
        username: &str,
        device: Option<u32>,
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
        let device = device.unwrap_or(a.device_id);
        let active = self.is_active(a.id, device);
        let Some(spk) = self.spks.get(&(a.id, device)).copied().filter(|_| active) else {
            return Ok(None);
        };
        let prekey = if one_time {
            self.prekeys
                .get_mut(&(a.id, device))
                .and_then(|held| held.pop_first().map(|(_, p)| p))
        } else {
            None
        };
        let remaining = self.count_prekeys(a.id, device)?;
        Ok(Some(StoredBundle {
            owner: a.id,
            username: a.username,
            identity_sig: a.identity_sig,
            identity_dh: a.identity_dh,
            device,
            spk,
            prekey,
            remaining,
        }))
    }

    fn count_kem_prekeys(&mut self, id: AccountId, device: u32) -> Result<u32, StoreError> {
        Ok(self
            .kem_prekeys
            .get(&(id, device))
            .map_or(0, |p| u32::try_from(p.len()).unwrap_or(u32::MAX)))
    }

    fn kem_prekey_ids(&mut self, id: AccountId, device: u32) -> Result<Vec<u32>, StoreError> {
        let one_time = self
            .kem_prekeys
            .get(&(id, device))
            .into_iter()
            .flat_map(|p| p.keys());
        let last_resort = self.kem_last_resort.get(&(id, device)).map(|p| &p.id);
        Ok(one_time.chain(last_resort).copied().collect())
    }

    fn add_kem_prekeys(
        &mut self,
        id: AccountId,
        device: u32,
        prekeys: &[KemPrekeyPublic],
    ) -> Result<(), StoreError> {
        if prekeys.is_empty() || !self.is_active(id, device) {
            return Ok(());
        }
        let held = self.kem_prekeys.entry((id, device)).or_default();
        for p in prekeys {
            held.insert(p.id, p.clone());
        }
        Ok(())
    }

    fn set_last_resort_kem_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        prekey: &KemPrekeyPublic,
    ) -> Result<(), StoreError> {
        if self.is_active(id, device) {
            self.kem_last_resort.insert((id, device), prekey.clone());
        }
        Ok(())
    }

    fn take_kem_prekey(
        &mut self,
        id: AccountId,
        device: u32,
        one_time: bool,
    ) -> Result<Option<KemPrekeyPublic>, StoreError> {
        let taken = if one_time {
            self.kem_prekeys
                .get_mut(&(id, device))
                .and_then(|held| held.pop_first().map(|(_, p)| p))
        } else {
            None
        };
        Ok(taken.or_else(|| self.kem_last_resort.get(&(id, device)).cloned()))
    }
}

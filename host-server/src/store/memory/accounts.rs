//! Accounts, their second factor and their sessions, in memory.

use super::MemoryStore;
use crate::store::{
    Account, AccountId, AccountStore, KeyStore, NewAccount, SessionInfo, StoreError,
};

impl AccountStore for MemoryStore {
    fn create_account(&mut self, a: &NewAccount) -> Result<AccountId, StoreError> {
        if self.accounts.values().any(|x| x.username == a.username) {
            return Err(StoreError::UsernameTaken);
        }
        self.next_account += 1;
        let id = self.next_account;
        self.accounts.insert(
            id,
            Account {
                id,
                username: a.username.clone(),
                password_phc: a.password_phc.clone(),
                totp_secret: a.totp_secret.clone(),
                confirmed: false,
                totp_last_step: None,
                identity_sig: a.identity_sig,
                identity_dh: a.identity_dh,
                created_at: a.created_at,
                device_id: 1,
            },
        );
        self.devices.insert(
            id,
            vec![crate::store::DeviceRecord {
                device_id: 1,
                name: String::new(),
                added_at: a.created_at,
                last_seen: a.created_at,
                revoked_at: None,
            }],
        );
        self.spks.insert((id, 1), a.spk);
        self.add_prekeys(id, 1, &a.prekeys)?;
        Ok(id)
    }

    fn account_by_username(&mut self, username: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .accounts
            .values()
            .find(|a| a.username == username)
            .cloned())
    }

    fn account_by_id(&mut self, id: AccountId) -> Result<Option<Account>, StoreError> {
        Ok(self.accounts.get(&id).cloned())
    }

    fn confirm_account(&mut self, id: AccountId) -> Result<(), StoreError> {
        if let Some(a) = self.accounts.get_mut(&id) {
            a.confirmed = true;
        }
        Ok(())
    }

    fn delete_unconfirmed(
        &mut self,
        before: u64,
        only: Option<AccountId>,
    ) -> Result<usize, StoreError> {
        let doomed: Vec<AccountId> = self
            .accounts
            .values()
            .filter(|a| !a.confirmed && only.map_or(a.created_at < before, |id| id == a.id))
            .map(|a| a.id)
            .collect();
        for id in &doomed {
            self.accounts.remove(id);
            self.drop_account_data(*id);
        }
        Ok(doomed.len())
    }

    fn accept_totp_step(&mut self, id: AccountId, step: u64) -> Result<bool, StoreError> {
        let Some(a) = self.accounts.get_mut(&id) else {
            return Ok(false);
        };
        if a.totp_last_step.is_some_and(|last| last >= step) {
            return Ok(false);
        }
        a.totp_last_step = Some(step);
        Ok(true)
    }

    fn set_recovery_codes(&mut self, id: AccountId, hashes: &[[u8; 32]]) -> Result<(), StoreError> {
        self.recovery.insert(id, hashes.to_vec());
        Ok(())
    }

    fn consume_recovery_code(
        &mut self,
        id: AccountId,
        hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        let Some(codes) = self.recovery.get_mut(&id) else {
            return Ok(false);
        };
        let before = codes.len();
        codes.retain(|c| c != hash);
        Ok(codes.len() != before)
    }

    fn create_session(
        &mut self,
        id: AccountId,
        token_hash: &[u8; 32],
        expires_at: u64,
        device: Option<u32>,
    ) -> Result<(), StoreError> {
        self.sessions.insert(*token_hash, (id, expires_at, device));
        Ok(())
    }

    fn set_session_device(&mut self, token_hash: &[u8; 32], device: u32) -> Result<(), StoreError> {
        if let Some((_, _, d)) = self.sessions.get_mut(token_hash) {
            *d = Some(device);
        }
        Ok(())
    }

    fn session(
        &mut self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> Result<Option<SessionInfo>, StoreError> {
        Ok(self
            .sessions
            .get(token_hash)
            .filter(|(_, exp, _)| *exp > now)
            .map(|&(account, expires_at, device)| SessionInfo {
                account,
                expires_at,
                device,
            }))
    }

    fn revoke_session(&mut self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.sessions.remove(token_hash);
        Ok(())
    }

    fn set_password(&mut self, id: AccountId, password_phc: &str) -> Result<(), StoreError> {
        if let Some(a) = self.accounts.get_mut(&id) {
            password_phc.clone_into(&mut a.password_phc);
        }
        Ok(())
    }

    fn revoke_sessions(
        &mut self,
        id: AccountId,
        keep: Option<&[u8; 32]>,
    ) -> Result<usize, StoreError> {
        let before = self.sessions.len();
        self.sessions
            .retain(|hash, (account, _, _)| *account != id || Some(hash) == keep);
        Ok(before - self.sessions.len())
    }

    fn set_totp_secret(
        &mut self,
        id: AccountId,
        secret: &[u8],
        step: u64,
    ) -> Result<(), StoreError> {
        if let Some(a) = self.accounts.get_mut(&id) {
            a.totp_secret = secret.to_vec();
            a.totp_last_step = Some(step);
        }
        Ok(())
    }

    fn count_recovery_codes(&mut self, id: AccountId) -> Result<u32, StoreError> {
        let n = self.recovery.get(&id).map_or(0, Vec::len);
        u32::try_from(n).map_err(|_| StoreError::Corrupt("recovery code count"))
    }

    fn delete_account(&mut self, id: AccountId) -> Result<(), StoreError> {
        self.accounts.remove(&id);
        self.drop_account_data(id);
        self.receipts.retain(|(sender, _, _)| *sender != id);
        self.room_events.retain(|(account, _, _)| *account != id);
        for room in self.rooms.values_mut() {
            room.members.retain(|(m, _)| *m != id);
            room.device_cursors.retain(|(m, _), _| *m != id);
            room.invited
                .retain(|(invitee, inviter, _)| *invitee != id && *inviter != id);
        }
        Ok(())
    }
}

//! The key directory: identity keys, signed prekeys (signature checked with proto-core's
//! verifier, PROTOCOL.md §4.1), one-time prekeys (bounded, each handed out once), KEM prekeys
//! (PQXDH, §4.8: signatures checked with proto-core's verifier, one-time ones bounded and each
//! handed out once, a last-resort one), and bundles.

use proto_core::primitives::ed25519_check_public;
use proto_core::{
    DeviceInfo, ErrorCode, KemPrekey, KemPrekeyPublic, Key32, List, Message, OneTimePrekey,
    PrekeyBundle, SignedPrekey, SignedPrekeyPublic,
};

use super::{Connection, Refusal, Reply};
use crate::store::StoredBundle;

fn bad_identity() -> Refusal {
    Refusal::new(
        ErrorCode::INVALID_INPUT,
        "the identity key is not a valid Ed25519 key",
    )
}

/// Checks that `identity_sig` is a valid Ed25519 key and that it signed `spk`, for `device`
/// ("Sealroom SPK v2", PROTOCOL.md §4.6) or, from clients that predate devices, without a
/// device id (v1, §4.1). Clients make their own check; this one keeps garbage out.
pub(super) fn check_signed_prekey(
    identity_sig: &[u8; 32],
    spk: &SignedPrekey,
    device: u32,
) -> Result<(), Refusal> {
    ed25519_check_public(identity_sig).map_err(|_| bad_identity())?;
    let public = SignedPrekeyPublic::from(spk);
    public
        .verify_for_device(identity_sig, device)
        .or_else(|_| public.verify(identity_sig))
        .map_err(|_| {
            Refusal::new(
                ErrorCode::INVALID_INPUT,
                "the signed prekey's signature does not verify",
            )
        })
}

impl Connection {
    pub(super) async fn publish_identity(
        &mut self,
        identity_sig: [u8; 32],
        identity_dh: [u8; 32],
    ) -> Result<Reply, Refusal> {
        let (me, name) = self.logged_in()?;
        self.device()?;
        ed25519_check_public(&identity_sig).map_err(|_| bad_identity())?;
        let keep = self.token_hash()?;
        let now = self.shared.clock.now();
        // Starting over: a new identity revokes every device of the account and every other
        // session, in the same transaction, and drops what was queued for the old identity;
        // this session becomes the account's one new device. Publishing the identity the
        // account already has changes nothing.
        let revoked = self
            .db(move |s| {
                let account = s.account_by_id(me)?.ok_or_else(account_gone)?;
                if account.identity_sig == identity_sig && account.identity_dh == identity_dh {
                    return Ok(None);
                }
                let device = s.set_identity(me, &identity_sig, &identity_dh, now)?;
                s.set_session_device(&keep, device)?;
                Ok(Some((device, s.revoke_sessions(me, Some(&keep))?)))
            })
            .await?;
        if let Some((device, revoked)) = revoked {
            self.become_device(device).await;
            // Their live connections end now (here and on every other node), so an old device
            // never reads, or acknowledges, what is sent to the new identity.
            if let Some(keep) = self.hub_id() {
                self.shared.hub.kick_others(me, keep);
            }
            self.shared.hub.revoked_elsewhere(me);
            tracing::info!(user = %name, revoked, "new identity: the account's other sessions revoked");
        }
        Ok(Reply::msg(&Message::Ok))
    }

    pub(super) async fn publish_signed_prekey(
        &mut self,
        prekey: SignedPrekey,
    ) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let device = self.device()?;
        self.db(move |s| {
            let account = s.account_by_id(me)?.ok_or_else(account_gone)?;
            check_signed_prekey(&account.identity_sig, &prekey, device)?;
            Ok(s.set_signed_prekey(me, device, &prekey)?)
        })
        .await?;
        Ok(Reply::msg(&Message::Ok))
    }

    pub(super) async fn upload_prekeys(
        &mut self,
        prekeys: Vec<OneTimePrekey>,
    ) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let device = self.device()?;
        let max = self.shared.config.max_prekeys;
        self.db(move |s| {
            let held = s.count_prekeys(me, device)?;
            let adding = u32::try_from(prekeys.len()).unwrap_or(u32::MAX);
            if held.saturating_add(adding) > max {
                return Err(Refusal::new(
                    ErrorCode::QUOTA_FULL,
                    format!("at most {max} one-time prekeys are held; {held} are stored"),
                ));
            }
            Ok(s.add_prekeys(me, device, &prekeys)?)
        })
        .await?;
        Ok(Reply::msg(&Message::Ok))
    }

    /// `UploadKemPrekeys`: KEM prekeys for the session's device (PQXDH, PROTOCOL.md §4.8).
    /// Every signature must verify for this device under the account's identity, no id may
    /// repeat or already be held for the device (its last-resort one included), and the
    /// one-time ones must fit the quota; otherwise nothing is stored.
    pub(super) async fn upload_kem_prekeys(
        &mut self,
        last_resort: Option<KemPrekey<'_>>,
        one_time: &[KemPrekey<'_>],
    ) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let device = self.device()?;
        let max = self.shared.config.max_prekeys;
        let last_resort = last_resort.as_ref().map(owned_kem_prekey).transpose()?;
        let one_time = one_time
            .iter()
            .map(owned_kem_prekey)
            .collect::<Result<Vec<_>, _>>()?;
        let mut ids: Vec<u32> = one_time.iter().chain(&last_resort).map(|p| p.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Refusal::new(
                ErrorCode::INVALID_INPUT,
                format!("KEM prekey id {} appears twice in the upload", w[0]),
            ));
        }
        // Up to 33 signatures: checked here rather than on the storage thread, which then
        // makes sure the identity they were checked against is still the account's.
        let identity = self
            .db(move |s| Ok(s.account_by_id(me)?.ok_or_else(account_gone)?.identity_sig))
            .await?;
        let verified = one_time
            .iter()
            .chain(&last_resort)
            .all(|p| p.verify_for_device(&identity, device).is_ok());
        if !verified {
            return Err(bad_kem_signature());
        }
        self.db(move |s| {
            if s.account_by_id(me)?.ok_or_else(account_gone)?.identity_sig != identity {
                // The account started over meanwhile: these were signed by the old identity.
                return Err(bad_kem_signature());
            }
            let held_ids = s.kem_prekey_ids(me, device)?;
            if let Some(id) = ids.iter().find(|id| held_ids.contains(id)) {
                return Err(Refusal::new(
                    ErrorCode::INVALID_INPUT,
                    format!("KEM prekey id {id} is already held for this device"),
                ));
            }
            let held = s.count_kem_prekeys(me, device)?;
            let adding = u32::try_from(one_time.len()).unwrap_or(u32::MAX);
            if held.saturating_add(adding) > max {
                return Err(Refusal::new(
                    ErrorCode::QUOTA_FULL,
                    format!("at most {max} one-time KEM prekeys are held; {held} are stored"),
                ));
            }
            if let Some(p) = &last_resort {
                s.set_last_resort_kem_prekey(me, device, p)?;
            }
            Ok(s.add_kem_prekeys(me, device, &one_time)?)
        })
        .await?;
        Ok(Reply::msg(&Message::Ok))
    }

    /// `FetchDevices`: the account's identity and active device ids. Hands out no prekeys;
    /// limited per requester.
    pub(super) async fn fetch_devices(&mut self, username: &str) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let name =
            crate::auth::normalize_username(username).map_err(|_| Refusal::no_such_user())?;
        self.rate(
            &self.shared.limits.device_lists,
            &me,
            "device lists fetched",
        )?;
        let (account, devices) = self
            .db(move |s| {
                let account = s
                    .account_by_username(&name)?
                    .filter(|a| a.confirmed)
                    .ok_or_else(Refusal::no_such_user)?;
                let mut devices = s.reachable_devices(account.id)?;
                devices.truncate(proto_core::limits::MAX_DEVICES);
                Ok((account, devices))
            })
            .await?;
        Ok(Reply::msg(&Message::Devices {
            username: &account.username,
            identity_sig: Key32(account.identity_sig),
            identity_dh: Key32(account.identity_dh),
            devices: List::from_items(&devices),
        }))
    }

    /// `NameDevice`: the name this session's device gives itself (shown by `ListDevices`).
    pub(super) async fn name_device(&mut self, name: &str) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let name = super::devices::device_name(name)?;
        let device = self.device()?;
        self.db(move |s| Ok(s.name_device(me, device, &name)?))
            .await?;
        Ok(Reply::msg(&Message::Ok))
    }

    /// `ListDevices`: this account's devices, the most recent first.
    pub(super) async fn list_devices(&mut self) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let current = self.device()?;
        let records = self
            .db(move |s| Ok(s.devices(me, proto_core::limits::MAX_DEVICES_LISTED)?))
            .await?;
        let devices: Vec<DeviceInfo<'_>> = records
            .iter()
            .map(|d| DeviceInfo {
                device_id: d.device_id,
                name: &d.name,
                added_at: d.added_at,
                last_seen: d.last_seen,
                revoked_at: d.revoked_at,
            })
            .collect();
        Ok(Reply::msg(&Message::DeviceList {
            current,
            devices: List::from_items(&devices),
        }))
    }

    /// `FetchBundle` (the primary device's) and `FetchDeviceBundle`: limited per requester, and
    /// a target's one-time prekeys are handed out at a bounded pace (past it, bundles come
    /// without one), so nobody can drain them.
    pub(super) async fn fetch_bundle(
        &mut self,
        username: &str,
        device: Option<u32>,
    ) -> Result<Reply, Refusal> {
        let (name, one_time) = self.pace_bundle(username).await?;
        let bundle = self
            .db(move |s| Ok(s.take_bundle(&name, device, one_time)?))
            .await?
            .ok_or_else(no_bundle)?;
        let reply = Reply::msg(&Message::Bundle {
            bundle: prekey_bundle(&bundle),
        });
        self.warn_low(&bundle, None);
        Ok(reply)
    }

    /// `FetchKemBundle`: the device's bundle exactly as `FetchDeviceBundle` takes it (same
    /// limits, same pace) and, in the same transaction, one of its KEM prekeys: a one-time one
    /// when the pace allows one-time prekeys, else its last-resort one (PROTOCOL.md §4.8).
    pub(super) async fn fetch_kem_bundle(
        &mut self,
        username: &str,
        device: u32,
    ) -> Result<Reply, Refusal> {
        let (name, one_time) = self.pace_bundle(username).await?;
        let taken = self
            .db(move |s| Ok(s.take_kem_bundle(&name, device, one_time)?))
            .await?
            .ok_or_else(no_bundle)?;
        let reply = Reply::msg(&Message::KemBundle {
            bundle: prekey_bundle(&taken.bundle),
            kem_prekey: taken.kem_prekey.as_ref().map(KemPrekeyPublic::to_wire),
        });
        self.warn_low(&taken.bundle, Some(taken.kem_remaining));
        Ok(reply)
    }

    /// What every bundle fetch goes through first: a login, the requester's rate limit, and
    /// the target's hand-out pace. The target's folded username, and whether this fetch may
    /// hand out one-time prekeys.
    async fn pace_bundle(&self, username: &str) -> Result<(String, bool), Refusal> {
        let (me, _) = self.logged_in()?;
        let name =
            crate::auth::normalize_username(username).map_err(|_| Refusal::no_such_user())?;
        let limits = &self.shared.limits;
        self.rate(&limits.bundles, &me, "key bundles fetched")?;
        // With several nodes the pace is kept in the database, so that fetching through every
        // node cannot drain one-time prekeys faster than one node allows.
        let now = self.shared.clock.now();
        let one_time = match self
            .shared
            .auth
            .take_shared_handout(&name, self.shared.config.prekey_handout_rate, now)
            .await
        {
            Some(taken) => taken,
            None => self.rate(&limits.prekeys, &name, "").is_ok(),
        };
        Ok((name, one_time))
    }

    /// Tells the bundle's device when its one-time prekeys (`PrekeysLow`) or, after a
    /// `FetchKemBundle`, its one-time KEM prekeys (`KemPrekeysLow`) run low.
    fn warn_low(&self, bundle: &StoredBundle, kem_remaining: Option<u32>) {
        let low = self.shared.config.prekeys_low;
        let hub = &self.shared.hub;
        if bundle.remaining < low {
            hub.push_device(
                bundle.owner,
                bundle.device,
                &Message::PrekeysLow {
                    remaining: bundle.remaining,
                },
            );
        }
        if let Some(remaining) = kem_remaining.filter(|r| *r < low) {
            hub.push_device(
                bundle.owner,
                bundle.device,
                &Message::KemPrekeysLow { remaining },
            );
        }
    }
}

fn account_gone() -> Refusal {
    Refusal::new(ErrorCode::NOT_FOUND, "the account no longer exists")
}

fn bad_kem_signature() -> Refusal {
    Refusal::new(
        ErrorCode::INVALID_INPUT,
        "a KEM prekey's signature does not verify",
    )
}

/// A received KEM prekey, owned (its signature not yet checked). The frame decoder already
/// refused any key that is not 1,184 bytes; this keeps the check local all the same.
fn owned_kem_prekey(wire: &KemPrekey<'_>) -> Result<KemPrekeyPublic, Refusal> {
    KemPrekeyPublic::try_from(wire).map_err(|_| {
        Refusal::new(
            ErrorCode::INVALID_INPUT,
            "a KEM prekey's key is not 1,184 bytes",
        )
    })
}

fn no_bundle() -> Refusal {
    Refusal::new(ErrorCode::NOT_FOUND, "no such user, or no keys published")
}

/// The wire form of a bundle taken from the directory.
fn prekey_bundle(bundle: &StoredBundle) -> PrekeyBundle<'_> {
    PrekeyBundle {
        username: &bundle.username,
        identity_sig: Key32(bundle.identity_sig),
        identity_dh: Key32(bundle.identity_dh),
        signed_prekey: bundle.spk,
        one_time_prekey: bundle.prekey,
    }
}

//! The key directory: identity keys, signed prekeys (signature checked with proto-core's
//! verifier, PROTOCOL.md §4.1), one-time prekeys (bounded, each handed out once), and bundles.

use proto_core::primitives::ed25519_check_public;
use proto_core::{
    DeviceInfo, ErrorCode, Key32, List, Message, OneTimePrekey, PrekeyBundle, SignedPrekey,
    SignedPrekeyPublic,
};

use super::{Connection, Refusal, Reply};

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
                let account = s.account_by_id(me)?.ok_or_else(|| {
                    Refusal::new(ErrorCode::NOT_FOUND, "the account no longer exists")
                })?;
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
            let account = s.account_by_id(me)?.ok_or_else(|| {
                Refusal::new(ErrorCode::NOT_FOUND, "the account no longer exists")
            })?;
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
        let bundle = self
            .db(move |s| Ok(s.take_bundle(&name, device, one_time)?))
            .await?
            .ok_or_else(|| {
                Refusal::new(ErrorCode::NOT_FOUND, "no such user, or no keys published")
            })?;
        let reply = Reply::msg(&Message::Bundle {
            bundle: PrekeyBundle {
                username: &bundle.username,
                identity_sig: Key32(bundle.identity_sig),
                identity_dh: Key32(bundle.identity_dh),
                signed_prekey: bundle.spk,
                one_time_prekey: bundle.prekey,
            },
        });
        if bundle.remaining < self.shared.config.prekeys_low {
            self.shared.hub.push_device(
                bundle.owner,
                bundle.device,
                &Message::PrekeysLow {
                    remaining: bundle.remaining,
                },
            );
        }
        Ok(reply)
    }
}

//! The key directory: identity keys, signed prekeys (signature checked), one-time prekeys
//! (bounded, each handed out once), and bundles.

use ed25519_dalek::{Signature, VerifyingKey};
use proto_core::{ErrorCode, Key32, Message, OneTimePrekey, PrekeyBundle, Sig64, SignedPrekey};

use crate::connection::{Connection, Refusal};
use crate::store::StoredSpk;

/// The prefix the identity key signs before the signed prekey (DESIGN.md).
pub const SPK_LABEL: &[u8] = b"Sealroom SPK v1";

/// Checks a signed prekey's Ed25519 signature by `identity_sig` over `"Sealroom SPK v1" || key`.
pub fn verify_spk(identity_sig: &[u8; 32], spk: &StoredSpk) -> Result<(), Refusal> {
    let bad = || {
        Refusal::new(
            ErrorCode::INVALID_INPUT,
            "the signed prekey's signature does not verify",
        )
    };
    let key = VerifyingKey::from_bytes(identity_sig).map_err(|_| {
        Refusal::new(
            ErrorCode::INVALID_INPUT,
            "the identity key is not a valid Ed25519 key",
        )
    })?;
    let mut msg = [0u8; SPK_LABEL.len() + 32];
    let (label, rest) = msg.split_at_mut(SPK_LABEL.len());
    label.copy_from_slice(SPK_LABEL);
    rest.copy_from_slice(&spk.key);
    key.verify_strict(&msg, &Signature::from_bytes(&spk.signature))
        .map_err(|_| bad())
}

impl Connection {
    pub(crate) async fn publish_identity(
        &mut self,
        identity_sig: [u8; 32],
        identity_dh: [u8; 32],
    ) -> Result<Message<'static>, Refusal> {
        let (me, _) = self.logged_in()?;
        VerifyingKey::from_bytes(&identity_sig).map_err(|_| {
            Refusal::new(
                ErrorCode::INVALID_INPUT,
                "the identity key is not a valid Ed25519 key",
            )
        })?;
        self.shared
            .db
            .call(move |s| s.set_identity(me, &identity_sig, &identity_dh))
            .await
            .map_err(Refusal::store)?;
        Ok(Message::Ok)
    }

    pub(crate) async fn publish_signed_prekey(
        &mut self,
        prekey: SignedPrekey,
    ) -> Result<Message<'static>, Refusal> {
        let (me, _) = self.logged_in()?;
        let spk = StoredSpk {
            id: prekey.id,
            key: prekey.key.0,
            signature: prekey.signature.0,
        };
        let ok = self
            .shared
            .db
            .call(move |s| {
                let Some(account) = s.account_by_id(me)? else {
                    return Ok(Err(Refusal::not_found_account()));
                };
                if let Err(r) = verify_spk(&account.identity_sig, &spk) {
                    return Ok(Err(r));
                }
                s.set_signed_prekey(me, &spk)?;
                Ok(Ok(()))
            })
            .await
            .map_err(Refusal::store)?;
        ok.map(|()| Message::Ok)
    }

    pub(crate) async fn upload_prekeys(
        &mut self,
        prekeys: Vec<(u32, [u8; 32])>,
    ) -> Result<Message<'static>, Refusal> {
        let (me, _) = self.logged_in()?;
        let max = self.shared.config.max_prekeys;
        let ok = self
            .shared
            .db
            .call(move |s| {
                let held = s.count_prekeys(me)?;
                let adding = u32::try_from(prekeys.len()).unwrap_or(u32::MAX);
                if held.saturating_add(adding) > max {
                    return Ok(Err(Refusal::new(
                        ErrorCode::QUOTA_FULL,
                        format!("at most {max} one-time prekeys are held; {held} are stored"),
                    )));
                }
                s.add_prekeys(me, &prekeys)?;
                Ok(Ok(()))
            })
            .await
            .map_err(Refusal::store)?;
        ok.map(|()| Message::Ok)
    }

    pub(crate) async fn fetch_bundle(&mut self, username: &str) -> Result<(), Refusal> {
        self.logged_in()?;
        let name = crate::auth::normalize_username(username)
            .map_err(|_| Refusal::new(ErrorCode::NOT_FOUND, "no such user"))?;
        let bundle = self
            .shared
            .db
            .call(move |s| s.take_bundle(&name))
            .await
            .map_err(Refusal::store)?
            .ok_or_else(|| {
                Refusal::new(ErrorCode::NOT_FOUND, "no such user, or no keys published")
            })?;
        self.out.push(&Message::Bundle {
            bundle: PrekeyBundle {
                username: &bundle.username,
                identity_sig: Key32(bundle.identity_sig),
                identity_dh: Key32(bundle.identity_dh),
                signed_prekey: SignedPrekey {
                    id: bundle.spk.id,
                    key: Key32(bundle.spk.key),
                    signature: Sig64(bundle.spk.signature),
                },
                one_time_prekey: bundle.prekey.map(|(id, key)| OneTimePrekey {
                    id,
                    key: Key32(key),
                }),
            },
        });
        if bundle.remaining < self.shared.config.prekeys_low {
            self.shared.hub.push(
                bundle.owner,
                &Message::PrekeysLow {
                    remaining: bundle.remaining,
                },
            );
        }
        Ok(())
    }
}

impl Refusal {
    fn not_found_account() -> Self {
        Refusal::new(ErrorCode::NOT_FOUND, "the account no longer exists")
    }
}

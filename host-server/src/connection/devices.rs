//! Linked devices (PROTOCOL.md §4.6, §6 **Devices**): the link relay between a device of the
//! account and a session linking a new one, adding that device, and revoking one.
//!
//! The server relays the link message by `link_id` without being able to open it, and only
//! within one account: the sender and the new device both logged in with the account's
//! password and second factor. It cannot make a device its contacts accept: a device's
//! signed prekey must be signed by the account identity, which only the account's devices hold.

use proto_core::{ErrorCode, Message};

use super::{Connection, Refusal, Reply, State, session::LoggedIn};

/// How long a link message waits for the new device, seconds.
const LINK_TTL: u64 = 600;

fn link_id(bytes: &[u8]) -> Result<[u8; 16], Refusal> {
    bytes
        .try_into()
        .map_err(|_| Refusal::new(ErrorCode::INVALID_INPUT, "link_id: 16 bytes"))
}

/// A device name as `NameDevice` and `AddDevice` accept it: trimmed, 1 to 64 characters, no
/// control characters and no bidi formatting characters (the name is shown to the account's
/// other devices: it must not reorder the text around it).
pub(super) fn device_name(name: &str) -> Result<String, Refusal> {
    let name = name.trim();
    let bidi = |c: char| matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if name.is_empty()
        || name.chars().count() > proto_core::limits::MAX_DEVICE_NAME
        || name.chars().any(|c| c.is_control() || bidi(c))
    {
        return Err(Refusal::new(
            ErrorCode::INVALID_INPUT,
            format!(
                "name: 1 to {} characters, no control characters or bidi formatting characters",
                proto_core::limits::MAX_DEVICE_NAME
            ),
        ));
    }
    Ok(name.to_owned())
}

impl Connection {
    /// `SendLink`: a device of the account leaves a link message for the device being linked.
    pub(super) async fn send_link(
        &mut self,
        link: &[u8],
        message: &[u8],
    ) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        self.device()?;
        let link = link_id(link)?;
        if message.len() > proto_core::limits::MAX_BODY {
            return Err(Refusal::new(
                ErrorCode::TOO_LARGE,
                "the link message is too large",
            ));
        }
        self.rate(&self.shared.limits.links, &me, "link messages sent")?;
        let expires_at = self.shared.clock.now().saturating_add(LINK_TTL);
        let message = message.to_vec();
        self.db(move |s| Ok(s.put_link(me, &link, &message, expires_at)?))
            .await?;
        Ok(Reply::msg(&Message::Ok))
    }

    /// `FetchLink`: the session linking a new device takes its link message, once.
    pub(super) async fn fetch_link(&mut self, link: &[u8]) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        self.linking()?;
        let link = link_id(link)?;
        self.rate(&self.shared.limits.device_lists, &me, "link requests")?;
        let now = self.shared.clock.now();
        let message = self
            .db(move |s| Ok(s.take_link(me, &link, now)?))
            .await?
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::NOT_FOUND,
                    "no link message yet: add this device from one already in the account",
                )
            })?;
        Ok(Reply::msg(&Message::LinkMessage { message: &message }))
    }

    /// `AddDevice`: the session linking a new device becomes the account's next device.
    pub(super) async fn add_device(&mut self, name: &str) -> Result<Reply, Refusal> {
        let (me, user) = self.logged_in()?;
        self.linking()?;
        let name = device_name(name)?;
        let token = self.token_hash()?;
        let now = self.shared.clock.now();
        let device = self
            .db(move |s| {
                if s.active_devices(me)?.len() >= proto_core::limits::MAX_DEVICES {
                    return Err(Refusal::new(
                        ErrorCode::QUOTA_FULL,
                        format!(
                            "an account has at most {} devices: revoke one first",
                            proto_core::limits::MAX_DEVICES
                        ),
                    ));
                }
                let device = s.add_device(me, &name, now)?;
                s.set_session_device(&token, device)?;
                Ok(device)
            })
            .await?;
        tracing::info!(user = %user, device, "device added");
        self.become_device(device).await;
        Ok(Reply::msg(&Message::DeviceAdded { device }))
    }

    /// `RevokeDevice`: another device of the account is revoked; its live connections end now.
    pub(super) async fn revoke_device(&mut self, device: u32) -> Result<Reply, Refusal> {
        let (me, user) = self.logged_in()?;
        if self.device()? == device {
            return Err(Refusal::new(
                ErrorCode::INVALID_INPUT,
                "this is the device you are using: log out instead",
            ));
        }
        let now = self.shared.clock.now();
        let revoked = self
            .db(move |s| Ok(s.revoke_device(me, device, now)?))
            .await?;
        if !revoked {
            return Err(Refusal::new(
                ErrorCode::NOT_FOUND,
                format!("the account has no active device {device}"),
            ));
        }
        self.shared.hub.kick_device(me, device);
        self.shared.hub.device_revoked_elsewhere(me, device);
        tracing::info!(user = %user, device, "device revoked");
        Ok(Reply::msg(&Message::Ok))
    }

    /// `BAD_STATE` unless this session is linking a new device.
    fn linking(&self) -> Result<(), Refusal> {
        match &self.state {
            State::LoggedIn(LoggedIn { device: None, .. }) => Ok(()),
            State::LoggedIn(_) => Err(Refusal::new(
                ErrorCode::BAD_STATE,
                "this session is already a device of the account",
            )),
            _ => Err(Refusal::not_logged_in()),
        }
    }
}

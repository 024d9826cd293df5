//! A logged-in session: its start once the `Session` frame is queued (joining the hub and
//! starting delivery), and its end.

use proto_core::{ErrorCode, Key32, Message};

use super::{After, Connection, Refusal, Reply, State};
use crate::auth;
use crate::store::{AccountId, StoreError};

/// Logged in: the account, its session, the device it is and that device's delivery task.
#[derive(Debug)]
pub(super) struct LoggedIn {
    pub(super) account: AccountId,
    pub(super) username: String,
    pub(super) token_hash: [u8; 32],
    /// The device this session is; `None` while it links a new device (nothing is delivered
    /// to it; it may only fetch its link message and add itself).
    pub(super) device: Option<u32>,
    /// A new authenticator's secret waiting for its first code (`ReenrollTotp`).
    pub(super) new_totp: Option<super::recovery::NewTotp>,
    hub_id: u64,
    _delivery: Option<smol::Task<()>>,
}

/// A session to start once the reply carrying its `Session` frame is queued.
#[derive(Debug)]
pub(super) struct NewSession {
    account: AccountId,
    username: String,
    token_hash: [u8; 32],
    device: Option<u32>,
}

impl Connection {
    /// `reply` followed by the `Session` frame, with the session to start once they are queued.
    pub(super) fn session_reply(
        reply: Reply,
        account: AccountId,
        username: String,
        token: [u8; 32],
        expires_at: u64,
        device: Option<u32>,
    ) -> Reply {
        let mut reply = reply.then(&Message::Session {
            token: Key32(token),
            expires_at,
        });
        reply.after = Some(After::Session(NewSession {
            account,
            username,
            token_hash: auth::token_hash(&token),
            device,
        }));
        reply
    }

    /// Joins the hub, starts delivery (a device's session), and warns when the device's
    /// one-time prekeys or one-time KEM prekeys run low. Runs after the `Session` frame is
    /// queued, so nothing delivered can overtake it.
    pub(super) async fn start_session(&mut self, new: NewSession) {
        let NewSession {
            account,
            username,
            token_hash,
            device,
        } = new;
        let (hub_id, woken) = self.shared.hub.join(account, device, self.out.clone());
        let delivery = device.map(|device| {
            self.shared.spawn(crate::hub::run_delivery(
                self.shared.clone(),
                account,
                device,
                self.out.clone(),
                woken,
            ))
        });
        self.state = State::LoggedIn(LoggedIn {
            account,
            username,
            token_hash,
            device,
            new_totp: None,
            hub_id,
            _delivery: delivery,
        });
        let Some(device) = device else {
            return;
        };
        let low = self.shared.config.prekeys_low;
        let now = self.shared.clock.now();
        // Stored receipts and membership changes come through the delivery task. The device is
        // seen now (`ListDevices`).
        let counted = self
            .shared
            .db
            .call(move |s| -> Result<(u32, u32), StoreError> {
                s.touch_device(account, device, now)?;
                Ok((
                    s.count_prekeys(account, device)?,
                    s.count_kem_prekeys(account, device)?,
                ))
            })
            .await;
        match counted {
            Ok((prekeys, kem_prekeys)) => {
                if prekeys < low {
                    self.out.push(&Message::PrekeysLow { remaining: prekeys });
                }
                if kem_prekeys < low {
                    self.out.push(&Message::KemPrekeysLow {
                        remaining: kem_prekeys,
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not count prekeys"),
        }
    }

    /// The session is now `device`'s (a linked device just added, or the new device of a
    /// start-over): delivery restarts for that device's queue.
    pub(super) async fn become_device(&mut self, device: u32) {
        let State::LoggedIn(LoggedIn {
            account,
            ref username,
            token_hash,
            ..
        }) = self.state
        else {
            return;
        };
        let username = username.clone();
        self.leave_session();
        self.start_session(NewSession {
            account,
            username,
            token_hash,
            device: Some(device),
        })
        .await;
    }

    /// The device this session is, or `BAD_STATE` for a session linking a new device.
    pub(super) fn device(&self) -> Result<u32, Refusal> {
        match &self.state {
            State::LoggedIn(LoggedIn {
                device: Some(d), ..
            }) => Ok(*d),
            State::LoggedIn(_) => Err(Refusal::new(
                ErrorCode::BAD_STATE,
                "this session is linking a new device: only FetchLink, AddDevice and Logout",
            )),
            _ => Err(Refusal::not_logged_in()),
        }
    }

    /// This connection's id in the hub, once logged in.
    pub(super) fn hub_id(&self) -> Option<u64> {
        match &self.state {
            State::LoggedIn(s) => Some(s.hub_id),
            _ => None,
        }
    }

    pub(super) fn leave_session(&mut self) {
        if !matches!(self.state, State::LoggedIn(_)) {
            return;
        }
        if let State::LoggedIn(LoggedIn {
            account, hub_id, ..
        }) = core::mem::replace(&mut self.state, State::Fresh)
        {
            self.shared.hub.leave(account, hub_id);
            // Dropping the state drops the delivery task, which cancels it.
        }
    }
}

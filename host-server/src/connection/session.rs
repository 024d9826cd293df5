//! A logged-in session: its start once the `Session` frame is queued (joining the hub and
//! starting delivery), and its end.

use proto_core::{Key32, Message};

use super::{After, Connection, Reply, State};
use crate::auth;
use crate::store::{AccountId, StoreError};

/// Logged in: the account, its session and its delivery task.
#[derive(Debug)]
pub(super) struct LoggedIn {
    pub(super) account: AccountId,
    pub(super) username: String,
    pub(super) token_hash: [u8; 32],
    /// A new authenticator's secret waiting for its first code (`ReenrollTotp`).
    pub(super) new_totp: Option<super::recovery::NewTotp>,
    hub_id: u64,
    _delivery: smol::Task<()>,
}

/// A session to start once the reply carrying its `Session` frame is queued.
#[derive(Debug)]
pub(super) struct NewSession {
    account: AccountId,
    username: String,
    token_hash: [u8; 32],
}

impl Connection {
    /// `reply` followed by the `Session` frame, with the session to start once they are queued.
    pub(super) fn session_reply(
        reply: Reply,
        account: AccountId,
        username: String,
        token: [u8; 32],
        expires_at: u64,
    ) -> Reply {
        let mut reply = reply.then(&Message::Session {
            token: Key32(token),
            expires_at,
        });
        reply.after = Some(After::Session(NewSession {
            account,
            username,
            token_hash: auth::token_hash(&token),
        }));
        reply
    }

    /// Joins the hub, starts delivery, and warns when one-time prekeys run low. Runs after the
    /// `Session` frame is queued, so nothing delivered can overtake it.
    pub(super) async fn start_session(&mut self, new: NewSession) {
        let NewSession {
            account,
            username,
            token_hash,
        } = new;
        let (hub_id, woken) = self.shared.hub.join(account, self.out.clone());
        let delivery = self.shared.spawn(crate::hub::run_delivery(
            self.shared.clone(),
            account,
            self.out.clone(),
            woken,
        ));
        self.state = State::LoggedIn(LoggedIn {
            account,
            username,
            token_hash,
            new_totp: None,
            hub_id,
            _delivery: delivery,
        });
        let low = self.shared.config.prekeys_low;
        let now = self.shared.clock.now();
        // Stored receipts and membership changes come through the delivery task. The device is
        // seen now (`ListDevices`).
        let counted = self
            .shared
            .db
            .call(move |s| -> Result<u32, StoreError> {
                if let Some(a) = s.account_by_id(account)? {
                    s.touch_device(account, a.device_id, now)?;
                }
                s.count_prekeys(account)
            })
            .await;
        match counted {
            Ok(remaining) if remaining < low => {
                self.out.push(&Message::PrekeysLow { remaining });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not count prekeys"),
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

//! The one frame handler: a connection's state machine, shared by the native TLS transport and
//! the browser's WebSocket.
//!
//! A transport hands each decoded frame to [`Connection::handle_message`] (or a whole frame's
//! bytes to [`Connection::handle_frame`]) and writes whatever appears in the connection's
//! [`Outbox`]. States: fresh → (register → enrolling → logged in) or (login → second factor →
//! logged in) or (resume → logged in); logout returns to fresh.
//!
//! One convention for what goes out: a handler returns its [`Reply`] (or a [`Refusal`], sent as
//! an `Error` frame with a stable code), and [`Connection::handle_message`] queues it; frames
//! nobody asked for (deliveries, receipts, membership changes, a low-prekey warning) are pushes
//! and go through the [`Hub`](crate::hub::Hub) or the outbox directly. A malformed frame is
//! refused and skipped; an oversized one ends the connection.
//!
//! The handlers live by concern: [`account`] (registration, login, sessions), [`keys`] (the key
//! directory), [`delivery`] (sending and acknowledging), [`rooms`], [`session`] (a
//! logged-in session's start and end), and [`recovery`] (password change, a new
//! authenticator, recovery codes, deleting the account).

mod account;
mod delivery;
mod devices;
mod keys;
mod recovery;
mod rooms;
mod session;

use core::net::IpAddr;
use std::sync::Arc;

use proto_core::{DecodeError, ErrorCode, Message, decode_frame};

use crate::Shared;
use crate::outbox::{Outbox, encode};
use crate::store::{Account, AccountId, Store, StoreError};

/// Whether the transport should keep reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next frame.
    Continue,
    /// Flush what is queued and close.
    Close,
}

/// A refusal: the `Error` frame to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable code.
    pub code: ErrorCode,
    /// Text for people.
    pub text: String,
}

impl Refusal {
    /// A refusal with this code and text.
    pub fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    fn rng(e: getrandom::Error) -> Self {
        tracing::error!(error = %e, "OS random generator failed");
        Self::new(ErrorCode::INTERNAL, "the server failed; try again")
    }

    fn not_logged_in() -> Self {
        Self::new(ErrorCode::BAD_STATE, "log in first")
    }

    fn no_such_user() -> Self {
        Self::new(ErrorCode::NOT_FOUND, "no such user")
    }
}

impl From<StoreError> for Refusal {
    /// A storage failure: logged here, reported as `INTERNAL` without detail.
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        Self::new(ErrorCode::INTERNAL, "the server failed; try again")
    }
}

/// What a request is answered with: frames queued in order once its handler returns, then
/// what must follow them.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Reply {
    frames: Vec<Vec<u8>>,
    after: Option<After>,
}

/// Work that must wait until the reply is queued.
#[derive(Debug)]
enum After {
    /// Start the session a login opened (so nothing delivered overtakes the `Session` frame).
    Session(session::NewSession),
    /// Tell a room's members about a membership change (after the requester's `Ok`).
    Announce(rooms::Announcement),
    /// Tell rooms' members about several changes, in this order.
    AnnounceAll(Vec<rooms::Announcement>),
    /// The account was deleted: tell its rooms, then end its connections.
    Deleted(AccountId, Vec<rooms::Announcement>),
}

impl Reply {
    /// No answer (an acknowledgement, a pong).
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// One message.
    pub(crate) fn msg(msg: &Message<'_>) -> Self {
        Self::none().then(msg)
    }

    /// This reply followed by `msg`.
    pub(crate) fn then(mut self, msg: &Message<'_>) -> Self {
        match encode(msg) {
            Some(frame) => self.frames.push(frame),
            None => tracing::error!(message = msg.name(), "a reply did not fit in a frame"),
        }
        self
    }
}

#[derive(Debug)]
enum State {
    Fresh,
    Enrolling(account::Enrolling),
    SecondFactor(account::SecondFactor),
    LoggedIn(session::LoggedIn),
}

/// One peer's protocol state.
#[derive(Debug)]
pub struct Connection {
    pub(crate) shared: Arc<Shared>,
    pub(crate) out: Outbox,
    peer: IpAddr,
    state: State,
    /// When the transport accepted the connection (for the login deadline).
    connected_at: std::time::Instant,
    /// Time allowed from connecting to logging in.
    login_within: core::time::Duration,
    /// Sends and acknowledgements whose replies come after their commit.
    in_flight: delivery::InFlight,
}

impl Connection {
    /// A fresh connection from `peer` writing to `out`.
    pub fn new(shared: Arc<Shared>, peer: IpAddr, out: Outbox) -> Self {
        let shared_login_within = shared.config.auth_deadline;
        let in_flight = delivery::InFlight::new(shared.config.outbound_queue);
        Self {
            shared,
            out,
            peer,
            state: State::Fresh,
            connected_at: std::time::Instant::now(),
            login_within: shared_login_within,
            in_flight,
        }
    }

    /// Sets the time this connection has to log in (shorter for a reserved slot).
    pub fn set_login_within(&mut self, within: core::time::Duration) {
        self.login_within = within;
    }

    /// When the connection is closed if it has not logged in by then (`None` once logged in):
    /// [`auth_deadline`](crate::config::ServerConfig::auth_deadline) (or a reserved slot's
    /// shorter one) from connecting, or, while
    /// a registration waits for its first TOTP code, the enrollment window from registering.
    pub fn auth_deadline(&self) -> Option<std::time::Instant> {
        match &self.state {
            State::LoggedIn(_) => None,
            State::Enrolling(e) => Some(e.deadline()),
            State::Fresh | State::SecondFactor(_) => Some(self.connected_at + self.login_within),
        }
    }

    /// The logged-in account and username, or `BAD_STATE`.
    pub(crate) fn logged_in(&self) -> Result<(AccountId, String), Refusal> {
        match &self.state {
            State::LoggedIn(s) => Ok((s.account, s.username.clone())),
            _ => Err(Refusal::not_logged_in()),
        }
    }

    /// Runs `f` atomically on the store (see [`Db::call`](crate::store::Db::call)); a
    /// refusal from `f` undoes its writes.
    pub(crate) async fn db<R, F>(&self, f: F) -> Result<R, Refusal>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<R, Refusal> + Send + 'static,
    {
        self.shared.db.call(f).await
    }

    /// Takes a token from one of the per-account rate limits, or refuses `what` for now.
    pub(crate) fn rate<K: Eq + core::hash::Hash + Clone>(
        &self,
        bucket: &std::sync::Mutex<crate::auth::ratelimit::Buckets<K>>,
        key: &K,
        what: &str,
    ) -> Result<(), Refusal> {
        crate::Limits::take(bucket, key, self.shared.clock.now()).map_err(|wait| {
            Refusal::new(
                ErrorCode::RATE_LIMITED,
                format!(
                    "too many {what}; try again in {}",
                    crate::auth::seconds(wait.0)
                ),
            )
        })
    }

    fn refuse(&self, r: &Refusal) {
        self.out.push(&Message::Error {
            code: r.code,
            text: &r.text,
        });
    }

    /// Handles one whole frame (length prefix included), as a WebSocket message carries it.
    pub async fn handle_frame(&mut self, bytes: &[u8]) -> Flow {
        let decoded = match decode_frame(bytes) {
            Ok((msg, used)) if used == bytes.len() => Ok(msg),
            Ok(_) => {
                self.refuse(&Refusal::new(ErrorCode::BAD_FRAME, "bytes after the frame"));
                return Flow::Continue;
            }
            Err(e) => Err(e),
        };
        self.handle_message(decoded).await
    }

    /// Handles one frame as the transport decoded it: answers it, or refuses it (a frame over
    /// the size limit ends the connection).
    pub async fn handle_message(&mut self, decoded: Result<Message<'_>, DecodeError>) -> Flow {
        // Sends and acknowledgements are pipelined (see `delivery`); anything else is answered
        // only after their replies, so replies leave in request order.
        let pipelined = matches!(
            decoded,
            Ok(Message::SendToUser { .. }
                | Message::SendToDevices { .. }
                | Message::SendSynced { .. }
                | Message::SendToRoom { .. }
                | Message::Ack { .. })
        );
        if !pipelined {
            self.in_flight.settle().await;
        }
        let msg = match decoded {
            Ok(msg) => msg,
            Err(DecodeError::Oversized) => {
                self.refuse(&Refusal::new(
                    ErrorCode::TOO_LARGE,
                    "frame exceeds the maximum size",
                ));
                return Flow::Close;
            }
            Err(DecodeError::UnknownVersion) => {
                self.refuse(&Refusal::new(
                    ErrorCode::UNSUPPORTED_VERSION,
                    "unsupported protocol version",
                ));
                return Flow::Continue;
            }
            Err(e) => {
                self.refuse(&Refusal::new(
                    ErrorCode::BAD_FRAME,
                    format!("malformed frame: {e}"),
                ));
                return Flow::Continue;
            }
        };
        tracing::trace!(message = msg.name(), "frame");
        match self.dispatch(msg).await {
            Ok(reply) => {
                for frame in reply.frames {
                    self.out.push_frame(frame);
                }
                match reply.after {
                    Some(After::Session(session)) => self.start_session(session).await,
                    Some(After::Announce(a)) => self.announce(a).await,
                    Some(After::AnnounceAll(all)) => {
                        for a in all {
                            self.announce(a).await;
                        }
                    }
                    Some(After::Deleted(me, rooms)) => {
                        self.finish_deletion(me, rooms).await;
                        return Flow::Close;
                    }
                    None => {}
                }
            }
            Err(r) => {
                if pipelined {
                    self.in_flight.settle().await;
                }
                self.refuse(&r);
            }
        }
        if self.out.is_killed() {
            Flow::Close
        } else {
            Flow::Continue
        }
    }

    async fn dispatch(&mut self, msg: Message<'_>) -> Result<Reply, Refusal> {
        if let State::LoggedIn(session::LoggedIn { device: None, .. }) = self.state {
            // A session linking a new device is not a device yet: it reads nothing of the
            // account's and sends nothing as it.
            if !matches!(
                msg,
                Message::FetchLink { .. }
                    | Message::AddDevice { .. }
                    | Message::Logout
                    | Message::Ping { .. }
                    | Message::Pong { .. }
            ) {
                return Err(Refusal::new(
                    ErrorCode::BAD_STATE,
                    format!(
                        "{} needs a device: this session is linking one (FetchLink, then AddDevice)",
                        msg.name()
                    ),
                ));
            }
        }
        match msg {
            Message::Register {
                name,
                email,
                username,
                password,
                device,
            } => {
                self.register(account::Registration {
                    name,
                    email,
                    username,
                    password,
                    device,
                })
                .await
            }
            Message::ConfirmTotp { code } => self.confirm_totp(code).await,
            Message::Login { username, password } => self.login(username, password, None).await,
            Message::LoginDevice {
                username,
                password,
                device,
            } => self.login(username, password, Some(device)).await,
            Message::TotpCode { code } => self.second_factor(code, false).await,
            Message::RecoveryCode { code } => self.second_factor(code, true).await,
            Message::Resume { username, token } => self.resume(username, token).await,
            Message::Logout => self.logout().await,

            Message::PublishIdentity {
                identity_sig,
                identity_dh,
            } => self.publish_identity(identity_sig.0, identity_dh.0).await,
            Message::PublishSignedPrekey { prekey } => self.publish_signed_prekey(prekey).await,
            Message::UploadPrekeys { prekeys } => {
                self.upload_prekeys(prekeys.iter().collect()).await
            }
            Message::FetchBundle { username } => self.fetch_bundle(username, None).await,
            Message::FetchDevices { username } => self.fetch_devices(username).await,
            Message::NameDevice { name } => self.name_device(name).await,
            Message::ListDevices => self.list_devices().await,
            Message::FetchDeviceBundle { username, device } => {
                self.fetch_bundle(username, Some(device)).await
            }
            Message::UploadKemPrekeys {
                last_resort,
                one_time,
            } => {
                let one_time: Vec<_> = one_time.iter().collect();
                self.upload_kem_prekeys(last_resort, &one_time).await
            }
            Message::FetchKemBundle { username, device } => {
                self.fetch_kem_bundle(username, device).await
            }
            Message::RevokeDevice { device } => self.revoke_device(device).await,
            Message::SendLink { link_id, message } => self.send_link(link_id, message).await,
            Message::FetchLink { link_id } => self.fetch_link(link_id).await,
            Message::AddDevice { name } => self.add_device(name).await,

            Message::SendToUser {
                to,
                client_id,
                body,
            } => self.send_to_user(to, client_id, body).await,
            Message::SendToDevices {
                to,
                client_id,
                bodies,
            } => {
                let bodies: Vec<_> = bodies.iter().collect();
                self.send_to_devices(to, client_id, &bodies).await
            }
            Message::SendSynced {
                to,
                client_id,
                bodies,
                own,
            } => {
                let bodies: Vec<_> = bodies.iter().collect();
                let own: Vec<_> = own.iter().collect();
                self.send_synced(to, client_id, &bodies, &own).await
            }
            Message::SendToRoom {
                room,
                client_id,
                body,
            } => self.send_to_room(room, client_id, body).await,
            Message::Ack { server_id } => self.ack(server_id).await,

            Message::CreateRoom { room } => self.create_room(room).await,
            Message::Invite { room, username } => self.invite(room, username).await,
            Message::Leave { room } => self.leave(room).await,
            Message::Remove { room, username } => self.remove(room, username).await,
            Message::ListRooms => self.list_rooms().await,
            Message::ListMembers { room } => self.list_members(room).await,
            Message::AcceptInvite { room } => self.accept_invite(room).await,
            Message::DeclineInvite { room } => self.decline_invite(room).await,
            Message::ListInvitations => self.list_invitations().await,
            Message::PublishRoster { room, roster } => self.publish_roster(room, roster).await,
            Message::FetchRoster { room, version } => self.fetch_roster(room, version).await,

            Message::ChangePassword { current, new, code } => {
                self.change_password(current, new, code).await
            }
            Message::ReenrollTotp { password, code } => self.reenroll_totp(password, code).await,
            Message::ConfirmNewTotp { code } => self.confirm_new_totp(code).await,
            Message::RegenerateRecoveryCodes { password, code } => {
                self.regenerate_recovery_codes(password, code).await
            }
            Message::CountRecoveryCodes => self.count_recovery_codes().await,
            Message::DeleteAccount { password, code } => self.delete_account(password, code).await,

            Message::Ping { nonce } => Ok(Reply::msg(&Message::Pong { nonce })),
            // The answer to our keep-alive ping: receiving it already reset the idle timer.
            Message::Pong { .. } => Ok(Reply::none()),

            other => Err(Refusal::new(
                ErrorCode::BAD_STATE,
                format!("{} is sent by the server, not to it", other.name()),
            )),
        }
    }

    /// Called by the transport when the connection ends, however it ends.
    pub async fn close(&mut self) {
        self.leave_session();
        self.drop_enrollment().await;
    }
}

/// An account that exists and finished enrollment.
fn confirmed(account: Option<Account>) -> Option<Account> {
    account.filter(|a| a.confirmed)
}

#[cfg(test)]
mod tests;

//! The one frame handler: a connection's state machine, shared by the native TLS transport and
//! the browser's WebSocket.
//!
//! A transport hands each whole frame (length prefix included) to
//! [`Connection::handle_frame`] and writes whatever appears in the connection's [`Outbox`].
//! States: fresh → (register → enrolling → logged in) or (login → second factor → logged in)
//! or (resume → logged in); logout returns to fresh. Every refusal is an `Error` frame with a
//! stable code; a malformed frame is refused and skipped; an oversized one ends the
//! connection.

use core::net::IpAddr;
use std::sync::Arc;

use proto_core::limits::MAX_RECOVERY_CODES;
use proto_core::{DecodeError, ErrorCode, Key32, List, Message, decode_frame};

use crate::Shared;
use crate::auth::{self, InputError, RECOVERY_CODES, SESSION_LIFETIME, totp};
use crate::outbox::Outbox;
use crate::store::{Account, AccountId, NewAccount, StoreError, StoredSpk};

/// Unconfirmed registrations older than this are dropped, freeing the username.
const ENROLLMENT_WINDOW: u64 = 15 * 60;
/// Wrong codes allowed while enrolling before the registration is dropped.
const ENROLLMENT_ATTEMPTS: u8 = 5;

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

    /// A storage failure: logged here, reported as `INTERNAL` without detail.
    pub fn store(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        Self::new(ErrorCode::INTERNAL, "the server failed; try again")
    }

    fn rng(e: getrandom::Error) -> Self {
        tracing::error!(error = %e, "OS random generator failed");
        Self::new(ErrorCode::INTERNAL, "the server failed; try again")
    }

    fn not_logged_in() -> Self {
        Self::new(ErrorCode::BAD_STATE, "log in first")
    }
}

#[derive(Debug)]
enum State {
    Fresh,
    Enrolling {
        account: AccountId,
        username: String,
        secret: Vec<u8>,
        attempts: u8,
    },
    SecondFactor {
        limiter_key: String,
        account: Option<Box<Account>>,
        password_ok: bool,
    },
    LoggedIn {
        account: AccountId,
        username: String,
        token_hash: [u8; 32],
        hub_id: u64,
        _delivery: smol::Task<()>,
    },
}

/// One peer's protocol state.
#[derive(Debug)]
pub struct Connection {
    pub(crate) shared: Arc<Shared>,
    pub(crate) out: Outbox,
    peer: IpAddr,
    state: State,
}

impl Connection {
    /// A fresh connection from `peer` writing to `out`.
    pub fn new(shared: Arc<Shared>, peer: IpAddr, out: Outbox) -> Self {
        Self {
            shared,
            out,
            peer,
            state: State::Fresh,
        }
    }

    /// The logged-in account and username, or `BAD_STATE`.
    pub(crate) fn logged_in(&self) -> Result<(AccountId, String), Refusal> {
        match &self.state {
            State::LoggedIn {
                account, username, ..
            } => Ok((*account, username.clone())),
            _ => Err(Refusal::not_logged_in()),
        }
    }

    fn refuse(&self, r: &Refusal) {
        self.out.push(&Message::Error {
            code: r.code,
            text: &r.text,
        });
    }

    /// Handles one whole frame (length prefix included).
    pub async fn handle_frame(&mut self, bytes: &[u8]) -> Flow {
        let msg = match decode_frame(bytes) {
            Ok((msg, used)) if used == bytes.len() => msg,
            Ok(_) => {
                self.refuse(&Refusal::new(ErrorCode::BAD_FRAME, "bytes after the frame"));
                return Flow::Continue;
            }
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
            Ok(()) => {}
            Err(r) => self.refuse(&r),
        }
        if self.out.is_killed() {
            Flow::Close
        } else {
            Flow::Continue
        }
    }

    async fn dispatch(&mut self, msg: Message<'_>) -> Result<(), Refusal> {
        let reply = match msg {
            Message::Register {
                name,
                email,
                username,
                password,
                device,
            } => {
                let prekeys: Vec<(u32, [u8; 32])> = device
                    .one_time_prekeys
                    .iter()
                    .map(|p| (p.id, p.key.0))
                    .collect();
                let spk = StoredSpk {
                    id: device.signed_prekey.id,
                    key: device.signed_prekey.key.0,
                    signature: device.signed_prekey.signature.0,
                };
                return self
                    .register(
                        name,
                        email,
                        username,
                        password,
                        device.identity_sig.0,
                        device.identity_dh.0,
                        spk,
                        prekeys,
                    )
                    .await;
            }
            Message::ConfirmTotp { code } => return self.confirm_totp(code).await,
            Message::Login { username, password } => return self.login(username, password).await,
            Message::TotpCode { code } => return self.second_factor(code, false).await,
            Message::RecoveryCode { code } => return self.second_factor(code, true).await,
            Message::Resume { username, token } => return self.resume(username, token).await,
            Message::Logout => return self.logout().await,

            Message::PublishIdentity {
                identity_sig,
                identity_dh,
            } => self.publish_identity(identity_sig.0, identity_dh.0).await?,
            Message::PublishSignedPrekey { prekey } => self.publish_signed_prekey(prekey).await?,
            Message::UploadPrekeys { prekeys } => {
                let list: Vec<(u32, [u8; 32])> = prekeys.iter().map(|p| (p.id, p.key.0)).collect();
                self.upload_prekeys(list).await?
            }
            Message::FetchBundle { username } => return self.fetch_bundle(username).await,

            Message::SendToUser {
                to,
                client_id,
                body,
            } => self.send_to_user(to, client_id, body).await?,
            Message::SendToRoom {
                room,
                client_id,
                body,
            } => self.send_to_room(room, client_id, body).await?,
            Message::Ack { server_id } => return self.ack(server_id).await,

            Message::CreateRoom { room } => self.create_room(room).await?,
            Message::Invite { room, username } => return self.invite(room, username).await,
            Message::Leave { room } => return self.leave(room).await,
            Message::Remove { room, username } => return self.remove(room, username).await,
            Message::ListRooms => return self.list_rooms().await,
            Message::ListMembers { room } => return self.list_members(room).await,

            Message::Ping { nonce } => Message::Pong { nonce },
            // The answer to our keep-alive ping: receiving it already reset the idle timer.
            Message::Pong { .. } => return Ok(()),

            other => {
                return Err(Refusal::new(
                    ErrorCode::BAD_STATE,
                    format!("{} is sent by the server, not to it", other.name()),
                ));
            }
        };
        self.out.push(&reply);
        Ok(())
    }

    // ---- registration ----

    #[allow(clippy::too_many_arguments)] // the fields of one Register message
    async fn register(
        &mut self,
        name: &str,
        email: &str,
        username: &str,
        password: &str,
        identity_sig: [u8; 32],
        identity_dh: [u8; 32],
        spk: StoredSpk,
        prekeys: Vec<(u32, [u8; 32])>,
    ) -> Result<(), Refusal> {
        if !matches!(self.state, State::Fresh) {
            return Err(Refusal::new(
                ErrorCode::BAD_STATE,
                "already logged in or registering",
            ));
        }
        let input = |e: InputError| match e {
            InputError::Invalid(t) => Refusal::new(ErrorCode::INVALID_INPUT, t),
            InputError::WeakPassword(t) => Refusal::new(ErrorCode::WEAK_PASSWORD, t),
        };
        // The rate limit first: a refused registration costs no password estimate or hash.
        let now = self.shared.clock.now();
        if let Err(limited) = self.shared.auth.check_registration(self.peer, now) {
            return Err(Refusal::new(
                ErrorCode::RATE_LIMITED,
                format!(
                    "too many registrations from this address; try again in {} seconds",
                    limited.0.0
                ),
            ));
        }
        auth::validate_name(name).map_err(input)?;
        auth::validate_email(email).map_err(input)?;
        let username = auth::normalize_username(username).map_err(input)?;
        let email_local = email.split('@').next().unwrap_or("");
        auth::check_password_strength(password, &[&username, name, email_local, "sealroom"])
            .map_err(input)?;
        crate::keys::verify_spk(&identity_sig, &spk)?;
        let limit = self.shared.config.max_prekeys as usize;
        if prekeys.len() > limit {
            return Err(Refusal::new(
                ErrorCode::TOO_LARGE,
                "too many one-time prekeys",
            ));
        }
        // Cheap check first, so a taken name costs no hashing.
        let probe = username.clone();
        let taken = self
            .shared
            .db
            .call(move |s| {
                Ok(s.account_by_username(&probe)?.is_some_and(|a| {
                    a.confirmed || a.created_at >= now.saturating_sub(ENROLLMENT_WINDOW)
                }))
            })
            .await
            .map_err(Refusal::store)?;
        if taken {
            return Err(Refusal::new(
                ErrorCode::USERNAME_TAKEN,
                "that username is taken; choose another",
            ));
        }
        let phc = self
            .shared
            .auth
            .hash(password.to_owned())
            .await
            .map_err(Refusal::rng)?;
        let secret = totp::new_secret().map_err(Refusal::rng)?;
        let account = NewAccount {
            username: username.clone(),
            name: name.trim().to_owned(),
            email: email.to_owned(),
            password_phc: phc,
            totp_secret: secret.clone(),
            identity_sig,
            identity_dh,
            spk,
            prekeys,
            created_at: now,
        };
        let created = self
            .shared
            .db
            .call(move |s| {
                s.delete_unconfirmed(now.saturating_sub(ENROLLMENT_WINDOW), None)?;
                match s.create_account(&account) {
                    Ok(id) => Ok(Some(id)),
                    Err(StoreError::UsernameTaken) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await
            .map_err(Refusal::store)?;
        let Some(account) = created else {
            return Err(Refusal::new(
                ErrorCode::USERNAME_TAKEN,
                "that username is taken; choose another",
            ));
        };
        tracing::info!(user = %username, "registered; waiting for the TOTP confirmation");
        let uri = totp::otpauth_uri(&username, &secret);
        self.state = State::Enrolling {
            account,
            username,
            secret,
            attempts: 0,
        };
        self.out.push(&Message::TotpEnrollment { uri: &uri });
        Ok(())
    }

    async fn confirm_totp(&mut self, code: &str) -> Result<(), Refusal> {
        let State::Enrolling {
            account,
            secret,
            attempts,
            ..
        } = &mut self.state
        else {
            return Err(Refusal::new(
                ErrorCode::BAD_STATE,
                "nothing to confirm: register first",
            ));
        };
        let account = *account;
        let enrolled_secret = secret.clone();
        let now = self.shared.clock.now();
        let Some(step) = totp::matching_step(secret, code, now) else {
            *attempts += 1;
            if *attempts >= ENROLLMENT_ATTEMPTS {
                self.drop_enrollment().await;
                return Err(Refusal::new(
                    ErrorCode::AUTH_FAILED,
                    "too many wrong codes; the registration was cancelled, register again",
                ));
            }
            return Err(Refusal::new(
                ErrorCode::AUTH_FAILED,
                "the code does not match; check the authenticator's clock and enter the current code",
            ));
        };
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES.min(MAX_RECOVERY_CODES) {
            codes.push(auth::new_recovery_code().map_err(Refusal::rng)?);
        }
        let hashes: Vec<[u8; 32]> = codes
            .iter()
            .map(|c| auth::recovery_hash(account, c))
            .collect();
        let token = auth::new_token().map_err(Refusal::rng)?;
        let token_hash = auth::token_hash(&token);
        let expires_at = now.saturating_add(SESSION_LIFETIME);
        let confirmed = self
            .shared
            .db
            .call(move |s| {
                // Unconfirmed registrations are swept after 15 minutes, and SQLite may give a
                // later registration the same row id: the secret says it is still ours.
                if !s
                    .account_by_id(account)?
                    .is_some_and(|a| !a.confirmed && a.totp_secret == enrolled_secret)
                {
                    return Ok(false);
                }
                s.accept_totp_step(account, step)?;
                s.confirm_account(account)?;
                s.set_recovery_codes(account, &hashes)?;
                s.create_session(account, &token_hash, expires_at)?;
                Ok(true)
            })
            .await
            .map_err(Refusal::store)?;
        if !confirmed {
            self.state = State::Fresh;
            return Err(Refusal::new(
                ErrorCode::AUTH_FAILED,
                "the registration expired before it was confirmed; register again",
            ));
        }
        let State::Enrolling { username, .. } = core::mem::replace(&mut self.state, State::Fresh)
        else {
            return Err(Refusal::not_logged_in());
        };
        let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
        self.out.push(&Message::EnrollmentComplete {
            recovery_codes: List::from_items(&refs),
        });
        self.enter_session(account, username, token, token_hash, expires_at)
            .await;
        Ok(())
    }

    async fn drop_enrollment(&mut self) {
        if let State::Enrolling {
            account, secret, ..
        } = core::mem::replace(&mut self.state, State::Fresh)
        {
            let result = self
                .shared
                .db
                .call(move |s| {
                    // Only our own registration: its row id may have been reused (see above).
                    let ours = s
                        .account_by_id(account)?
                        .is_some_and(|a| !a.confirmed && a.totp_secret == secret);
                    if ours {
                        s.delete_unconfirmed(0, Some(account))?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not drop an unfinished registration");
            }
        }
    }

    // ---- login ----

    async fn login(&mut self, username: &str, password: &str) -> Result<(), Refusal> {
        match self.state {
            State::Fresh | State::SecondFactor { .. } => {}
            State::Enrolling { .. } => {
                return Err(Refusal::new(
                    ErrorCode::BAD_STATE,
                    "finish the registration with ConfirmTotp first",
                ));
            }
            State::LoggedIn { .. } => {
                return Err(Refusal::new(ErrorCode::BAD_STATE, "already logged in"));
            }
        }
        self.state = State::Fresh;
        let (limiter_key, now) = self.check_login_limits(username)?;
        // Counted as a failure up front, before hashing, and taken back only when the second
        // factor succeeds: a client that sends Login and never the code still pays.
        self.shared
            .auth
            .record_failure(&limiter_key, self.peer, now);
        let account = match auth::normalize_username(username) {
            Ok(name) => self
                .shared
                .db
                .call(move |s| s.account_by_username(&name))
                .await
                .map_err(Refusal::store)?
                .filter(|a| a.confirmed)
                .map(Box::new),
            Err(_) => None,
        };
        // One PBKDF2 run whether or not the account exists.
        let password_ok = self
            .shared
            .auth
            .verify(
                password.to_owned(),
                account.as_ref().map(|a| a.password_phc.clone()),
            )
            .await;
        self.state = State::SecondFactor {
            limiter_key,
            account,
            password_ok,
        };
        self.out.push(&Message::TotpRequired);
        Ok(())
    }

    async fn second_factor(&mut self, code: &str, recovery: bool) -> Result<(), Refusal> {
        let State::SecondFactor {
            limiter_key,
            account,
            password_ok,
        } = core::mem::replace(&mut self.state, State::Fresh)
        else {
            return Err(Refusal::new(ErrorCode::BAD_STATE, "send Login first"));
        };
        let now = self.shared.clock.now();
        // Exactly one store round trip on every path, whatever was wrong, so the time to the
        // answer does not tell a right password from a wrong one. Account id 0 never exists.
        let real = account.as_ref().filter(|_| password_ok);
        let id = real.map_or(0, |a| a.id);
        let ok = if recovery {
            let hash = auth::recovery_hash(id, code);
            self.shared
                .db
                .call(move |s| s.consume_recovery_code(id, &hash))
                .await
                .map_err(Refusal::store)?
        } else {
            let step = real.and_then(|a| totp::matching_step(&a.totp_secret, code, now));
            // The replay guard: a step already accepted is refused.
            let (id, step) = step.map_or((0, 0), |st| (id, st));
            self.shared
                .db
                .call(move |s| s.accept_totp_step(id, step))
                .await
                .map_err(Refusal::store)?
        } && real.is_some();
        let Some(account) = account.filter(|_| ok) else {
            // The failure was counted when Login arrived.
            tracing::info!(peer = %self.peer, "login failed");
            return Err(Refusal::new(
                ErrorCode::AUTH_FAILED,
                "login failed: the username, password or code is wrong (each code works once; wait for the next one)",
            ));
        };
        self.shared.auth.record_success(&limiter_key, self.peer);
        tracing::info!(user = %account.username, recovery, "logged in");
        let token = auth::new_token().map_err(Refusal::rng)?;
        let token_hash = auth::token_hash(&token);
        let expires_at = now.saturating_add(SESSION_LIFETIME);
        let id = account.id;
        self.shared
            .db
            .call(move |s| s.create_session(id, &token_hash, expires_at))
            .await
            .map_err(Refusal::store)?;
        self.enter_session(id, account.username, token, token_hash, expires_at)
            .await;
        Ok(())
    }

    /// The login rate limits for `username` (folded, whether or not it is valid or exists) and
    /// this source address, checked before any hashing; returns the limiter key and the time.
    fn check_login_limits(&self, username: &str) -> Result<(String, u64), Refusal> {
        let limiter_key: String = username
            .trim()
            .to_ascii_lowercase()
            .chars()
            .take(64)
            .collect();
        let now = self.shared.clock.now();
        if let Err(limited) = self.shared.auth.check_limits(&limiter_key, self.peer, now) {
            return Err(Refusal::new(
                ErrorCode::RATE_LIMITED,
                format!(
                    "too many failed attempts; try again in {} seconds",
                    limited.0.0
                ),
            ));
        }
        Ok((limiter_key, now))
    }

    async fn resume(&mut self, username: &str, token: Key32) -> Result<(), Refusal> {
        if !matches!(self.state, State::Fresh) {
            return Err(Refusal::new(ErrorCode::BAD_STATE, "already logged in"));
        }
        let (limiter_key, now) = self.check_login_limits(username)?;
        let token_hash = auth::token_hash(&token.0);
        let wanted = auth::normalize_username(username).ok();
        let found = self
            .shared
            .db
            .call(move |s| {
                let Some((id, expires)) = s.session(&token_hash, now)? else {
                    return Ok(None);
                };
                let account = s.account_by_id(id)?;
                Ok(account
                    .filter(|a| Some(&a.username) == wanted.as_ref())
                    .map(|a| (id, a.username, expires)))
            })
            .await
            .map_err(Refusal::store)?;
        let Some((id, name, expires_at)) = found else {
            self.shared
                .auth
                .record_failure(&limiter_key, self.peer, now);
            return Err(Refusal::new(
                ErrorCode::SESSION_EXPIRED,
                "the session is unknown, revoked or expired; log in again",
            ));
        };
        self.enter_session(id, name, token.0, token_hash, expires_at)
            .await;
        Ok(())
    }

    async fn logout(&mut self) -> Result<(), Refusal> {
        let State::LoggedIn { token_hash, .. } = &self.state else {
            return Err(Refusal::not_logged_in());
        };
        let hash = *token_hash;
        self.shared
            .db
            .call(move |s| s.revoke_session(&hash))
            .await
            .map_err(Refusal::store)?;
        self.leave_session();
        self.out.push(&Message::Ok);
        Ok(())
    }

    /// Sends `Session`, joins the hub, starts delivery, flushes stored receipts and a
    /// low-prekey warning.
    async fn enter_session(
        &mut self,
        account: AccountId,
        username: String,
        token: [u8; 32],
        token_hash: [u8; 32],
        expires_at: u64,
    ) {
        self.out.push(&Message::Session {
            token: Key32(token),
            expires_at,
        });
        let (hub_id, woken) = self.shared.hub.join(account, self.out.clone());
        let delivery = self.shared.spawn(crate::delivery::run_delivery(
            self.shared.clone(),
            account,
            self.out.clone(),
            woken,
        ));
        self.state = State::LoggedIn {
            account,
            username,
            token_hash,
            hub_id,
            _delivery: delivery,
        };
        let low = self.shared.config.prekeys_low;
        // Stored receipts and membership changes come through the delivery task.
        match self.shared.db.call(move |s| s.count_prekeys(account)).await {
            Ok(remaining) if remaining < low => {
                self.out.push(&Message::PrekeysLow { remaining });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not count prekeys"),
        }
    }

    fn leave_session(&mut self) {
        if let State::LoggedIn {
            account, hub_id, ..
        } = core::mem::replace(&mut self.state, State::Fresh)
        {
            self.shared.hub.leave(account, hub_id);
            // Dropping the state drops the delivery task, which cancels it.
        }
    }

    /// Called by the transport when the connection ends, however it ends.
    pub async fn close(&mut self) {
        self.leave_session();
        self.drop_enrollment().await;
    }
}

#[cfg(test)]
mod tests;

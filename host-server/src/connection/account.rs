//! Accounts: registration with TOTP enrollment, login (password, then TOTP or a recovery
//! code), resuming a session by token, logout, and the start and end of a session.

use proto_core::limits::MAX_RECOVERY_CODES;
use proto_core::{DeviceKeys, ErrorCode, Key32, List, Message};

use super::{Connection, Refusal, Reply, State, confirmed};
use crate::auth::{self, Gate, InputError, RECOVERY_CODES, SESSION_LIFETIME, totp};
use crate::store::{Account, AccountId, NewAccount, StoreError};

/// Unconfirmed registrations older than this are dropped, freeing the username.
const ENROLLMENT_WINDOW: u64 = 15 * 60;
/// Wrong codes allowed while enrolling before the registration is dropped.
const ENROLLMENT_ATTEMPTS: u8 = 5;

/// The fields of a `Register` message.
pub(crate) struct Registration<'a> {
    pub(crate) name: &'a str,
    pub(crate) email: &'a str,
    pub(crate) username: &'a str,
    pub(crate) password: &'a str,
    pub(crate) device: DeviceKeys<'a>,
}

/// Registered, waiting for the first TOTP code.
#[derive(Debug)]
pub(super) struct Enrolling {
    account: AccountId,
    username: String,
    secret: Vec<u8>,
    attempts: u8,
    since: std::time::Instant,
}

impl Enrolling {
    /// The connection must confirm the registration by then (the enrollment window).
    pub(super) fn deadline(&self) -> std::time::Instant {
        self.since + core::time::Duration::from_secs(ENROLLMENT_WINDOW)
    }
}

/// Password checked (or not: the answer comes only after the second factor).
#[derive(Debug)]
pub(super) struct SecondFactor {
    limiter_key: String,
    gate: Gate,
    account: Option<Box<Account>>,
    password_ok: bool,
    /// The device logging in: `None` for `Login` (the account's primary device),
    /// `Some(None)` for a device being linked, `Some(Some(id))` for that device.
    device: Option<Option<u32>>,
}

pub(super) fn input(e: InputError) -> Refusal {
    match e {
        InputError::Invalid(t) => Refusal::new(ErrorCode::INVALID_INPUT, t),
        InputError::WeakPassword(t) => Refusal::new(ErrorCode::WEAK_PASSWORD, t),
    }
}

pub(super) fn busy(_: auth::Busy) -> Refusal {
    Refusal::new(
        ErrorCode::BUSY,
        "the server is busy checking passwords; try again in a few seconds",
    )
}

fn username_taken() -> Refusal {
    Refusal::new(
        ErrorCode::USERNAME_TAKEN,
        "that username is taken; choose another",
    )
}

impl Connection {
    // ---- registration ----

    pub(super) async fn register(&mut self, reg: Registration<'_>) -> Result<Reply, Refusal> {
        if !matches!(self.state, State::Fresh) {
            return Err(Refusal::new(
                ErrorCode::BAD_STATE,
                "already logged in or registering",
            ));
        }
        // The rate limit first: a refused registration costs no password estimate or hash.
        let now = self.shared.clock.now();
        if let Err(limited) = self.shared.auth.check_registration(self.peer, now).await {
            return Err(Refusal::new(
                ErrorCode::RATE_LIMITED,
                format!(
                    "too many registrations from this address; try again in {}",
                    auth::seconds(limited.0.0)
                ),
            ));
        }
        let Registration {
            name,
            email,
            username,
            password,
            device,
        } = reg;
        auth::validate_name(name).map_err(input)?;
        auth::validate_email(email).map_err(input)?;
        let username = auth::normalize_username(username).map_err(input)?;
        let email_local = email.split('@').next().unwrap_or("");
        auth::check_password_strength(password, &[&username, name, email_local, "sealroom"])
            .map_err(input)?;
        let identity_sig = device.identity_sig.0;
        super::keys::check_signed_prekey(&identity_sig, &device.signed_prekey, 1)?;
        if device.one_time_prekeys.len() > self.shared.config.max_prekeys as usize {
            return Err(Refusal::new(
                ErrorCode::TOO_LARGE,
                "too many one-time prekeys",
            ));
        }
        // Cheap check first, so a taken name costs no hashing.
        let probe = username.clone();
        let taken = self
            .db(move |s| {
                Ok(s.account_by_username(&probe)?.is_some_and(|a| {
                    a.confirmed || a.created_at >= now.saturating_sub(ENROLLMENT_WINDOW)
                }))
            })
            .await?;
        if taken {
            return Err(username_taken());
        }
        let phc = self
            .shared
            .auth
            .hash(self.peer, password.to_owned())
            .await
            .map_err(busy)?
            .map_err(Refusal::rng)?;
        let secret = totp::new_secret().map_err(Refusal::rng)?;
        let account = NewAccount {
            username: username.clone(),
            name: name.trim().to_owned(),
            email: email.to_owned(),
            password_phc: phc,
            totp_secret: secret.clone(),
            identity_sig,
            identity_dh: device.identity_dh.0,
            spk: device.signed_prekey,
            prekeys: device.one_time_prekeys.iter().collect(),
            created_at: now,
        };
        let account = self
            .db(move |s| {
                s.delete_unconfirmed(now.saturating_sub(ENROLLMENT_WINDOW), None)?;
                match s.create_account(&account) {
                    Err(StoreError::UsernameTaken) => Err(username_taken()),
                    other => Ok(other?),
                }
            })
            .await?;
        tracing::info!(user = %username, "registered; waiting for the TOTP confirmation");
        let uri = totp::otpauth_uri(&username, &secret);
        self.state = State::Enrolling(Enrolling {
            account,
            username,
            secret,
            attempts: 0,
            since: std::time::Instant::now(),
        });
        Ok(Reply::msg(&Message::TotpEnrollment { uri: &uri }))
    }

    pub(super) async fn confirm_totp(&mut self, code: &str) -> Result<Reply, Refusal> {
        let State::Enrolling(enrolling) = &mut self.state else {
            return Err(Refusal::new(
                ErrorCode::BAD_STATE,
                "nothing to confirm: register first",
            ));
        };
        let account = enrolling.account;
        let enrolled_secret = enrolling.secret.clone();
        let now = self.shared.clock.now();
        let Some(step) = totp::matching_step(&enrolling.secret, code, now) else {
            enrolling.attempts += 1;
            if enrolling.attempts >= ENROLLMENT_ATTEMPTS {
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
            .db(move |s| {
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
                s.create_session(account, &token_hash, expires_at, Some(1))?;
                Ok(true)
            })
            .await?;
        let State::Enrolling(enrolling) = core::mem::replace(&mut self.state, State::Fresh) else {
            return Err(Refusal::not_logged_in());
        };
        if !confirmed {
            return Err(Refusal::new(
                ErrorCode::AUTH_FAILED,
                "the registration expired before it was confirmed; register again",
            ));
        }
        self.shared
            .auth
            .record_known(&enrolling.username, self.peer)
            .await;
        let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
        let reply = Reply::msg(&Message::EnrollmentComplete {
            recovery_codes: List::from_items(&refs),
        });
        Ok(Self::session_reply(
            reply,
            account,
            enrolling.username,
            token,
            expires_at,
            Some(1),
        ))
    }

    pub(super) async fn drop_enrollment(&mut self) {
        if !matches!(self.state, State::Enrolling(_)) {
            return;
        }
        let State::Enrolling(Enrolling {
            account, secret, ..
        }) = core::mem::replace(&mut self.state, State::Fresh)
        else {
            return;
        };
        let result = self
            .shared
            .db
            .call(move |s| -> Result<(), StoreError> {
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

    // ---- login ----

    /// `Login` (`device` `None`: the account's primary device) or `LoginDevice` (`Some`).
    pub(super) async fn login(
        &mut self,
        username: &str,
        password: &str,
        device: Option<Option<u32>>,
    ) -> Result<Reply, Refusal> {
        match self.state {
            State::Fresh | State::SecondFactor(_) => {}
            State::Enrolling(_) => {
                return Err(Refusal::new(
                    ErrorCode::BAD_STATE,
                    "finish the registration with ConfirmTotp first",
                ));
            }
            State::LoggedIn(_) => {
                return Err(Refusal::new(ErrorCode::BAD_STATE, "already logged in"));
            }
        }
        self.state = State::Fresh;
        let (limiter_key, now, gate) = self.check_login_limits(username).await?;
        // Counted as a failure up front, before hashing, and taken back only when the second
        // factor succeeds: a client that sends Login and never the code still pays.
        self.shared
            .auth
            .record_failure(&limiter_key, self.peer, now)
            .await;
        let account = match auth::normalize_username(username) {
            Ok(name) => self
                .db(move |s| Ok(confirmed(s.account_by_username(&name)?)))
                .await?
                .map(Box::new),
            Err(_) => None,
        };
        // One PBKDF2 run whether or not the account exists.
        let password_ok = self
            .shared
            .auth
            .verify(
                self.peer,
                password.to_owned(),
                account.as_ref().map(|a| a.password_phc.clone()),
            )
            .await
            .map_err(busy)?;
        self.state = State::SecondFactor(SecondFactor {
            limiter_key,
            gate,
            account,
            password_ok,
            device,
        });
        Ok(Reply::msg(&Message::TotpRequired))
    }

    pub(super) async fn second_factor(
        &mut self,
        code: &str,
        recovery: bool,
    ) -> Result<Reply, Refusal> {
        // Take the state only when it is the one expected: a stray code must not end a
        // session or an enrollment.
        if !matches!(self.state, State::SecondFactor(_)) {
            return Err(Refusal::new(ErrorCode::BAD_STATE, "send Login first"));
        }
        let State::SecondFactor(SecondFactor {
            limiter_key,
            gate,
            account,
            password_ok,
            device,
        }) = core::mem::replace(&mut self.state, State::Fresh)
        else {
            return Err(Refusal::new(ErrorCode::BAD_STATE, "send Login first"));
        };
        if gate == Gate::RecoveryOnly && !recovery {
            // Decided before anything about the password or code is looked at.
            return Err(Refusal::new(
                ErrorCode::RATE_LIMITED,
                "too many failed logins to this account from new devices: log in from a device \
                 you used before, or with a recovery code",
            ));
        }
        let now = self.shared.clock.now();
        // Exactly one store round trip on every path, whatever was wrong, so the time to the
        // answer does not tell a right password from a wrong one. Account id 0 never exists.
        let real = account.as_ref().filter(|_| password_ok);
        let id = real.map_or(0, |a| a.id);
        let ok = if recovery {
            let hash = auth::recovery_hash(id, code);
            self.db(move |s| Ok(s.consume_recovery_code(id, &hash)?))
                .await?
        } else {
            let step = real.and_then(|a| totp::matching_step(&a.totp_secret, code, now));
            // The replay guard: a step already accepted is refused.
            let (id, step) = step.map_or((0, 0), |st| (id, st));
            self.db(move |s| Ok(s.accept_totp_step(id, step)?)).await?
        } && real.is_some();
        let Some(account) = account.filter(|_| ok) else {
            // The failure was counted when Login arrived.
            tracing::info!(peer = %self.peer, "login failed");
            return Err(Refusal::new(
                ErrorCode::AUTH_FAILED,
                "login failed: the username, password or code is wrong (each code works once; wait for the next one)",
            ));
        };
        self.shared
            .auth
            .record_success(&limiter_key, self.peer)
            .await;
        tracing::info!(user = %account.username, recovery, "logged in");
        let token = auth::new_token().map_err(Refusal::rng)?;
        let token_hash = auth::token_hash(&token);
        let expires_at = now.saturating_add(SESSION_LIFETIME);
        let id = account.id;
        let primary = account.device_id;
        let device = self
            .db(move |s| {
                let device = match device {
                    None => Some(primary),
                    Some(None) => None,
                    Some(Some(d)) => {
                        if !s.active_devices(id)?.contains(&d) {
                            return Err(Refusal::new(
                                ErrorCode::NOT_FOUND,
                                format!(
                                    "device {d} is not one of the account's devices (it was \
                                     revoked, or the account started over): link this device \
                                     again"
                                ),
                            ));
                        }
                        Some(d)
                    }
                };
                s.create_session(id, &token_hash, expires_at, device)?;
                Ok(device)
            })
            .await?;
        Ok(Self::session_reply(
            Reply::none(),
            id,
            account.username,
            token,
            expires_at,
            device,
        ))
    }

    /// The login rate limits for `username` (folded, whether or not it is valid or exists) and
    /// this source address, checked before any hashing; returns the limiter key, the time and
    /// what the attempt may use.
    pub(super) async fn check_login_limits(
        &self,
        username: &str,
    ) -> Result<(String, u64, Gate), Refusal> {
        let limiter_key: String = username
            .trim()
            .to_ascii_lowercase()
            .chars()
            .take(64)
            .collect();
        let now = self.shared.clock.now();
        match self
            .shared
            .auth
            .check_login(&limiter_key, self.peer, now)
            .await
        {
            Ok(gate) => Ok((limiter_key, now, gate)),
            Err(limited) => Err(Refusal::new(
                ErrorCode::RATE_LIMITED,
                format!(
                    "too many failed attempts; try again in {}",
                    auth::seconds(limited.0.0)
                ),
            )),
        }
    }

    /// `Resume`: a valid session token is checked first and never refused by the failed-login
    /// limits (a stranger's wrong passwords must not log its owner out); only an unknown,
    /// revoked or expired token counts as a failure.
    pub(super) async fn resume(&mut self, username: &str, token: Key32) -> Result<Reply, Refusal> {
        if !matches!(self.state, State::Fresh) {
            return Err(Refusal::new(ErrorCode::BAD_STATE, "already logged in"));
        }
        let now = self.shared.clock.now();
        let token_hash = auth::token_hash(&token.0);
        let wanted = auth::normalize_username(username).ok();
        let found = self
            .db(move |s| {
                let Some(session) = s.session(&token_hash, now)? else {
                    return Ok(None);
                };
                let account = s.account_by_id(session.account)?;
                Ok(account
                    .filter(|a| Some(&a.username) == wanted.as_ref())
                    .map(|a| (a.username, session)))
            })
            .await?;
        let Some((name, session)) = found else {
            let (limiter_key, now, _) = self.check_login_limits(username).await?;
            self.shared
                .auth
                .record_failure(&limiter_key, self.peer, now)
                .await;
            return Err(Refusal::new(
                ErrorCode::SESSION_EXPIRED,
                "the session is unknown, revoked or expired; log in again",
            ));
        };
        self.shared.auth.record_known(&name, self.peer).await;
        Ok(Self::session_reply(
            Reply::none(),
            session.account,
            name,
            token.0,
            session.expires_at,
            session.device,
        ))
    }

    pub(super) async fn logout(&mut self) -> Result<Reply, Refusal> {
        let State::LoggedIn(session) = &self.state else {
            return Err(Refusal::not_logged_in());
        };
        let hash = session.token_hash;
        self.db(move |s| Ok(s.revoke_session(&hash)?)).await?;
        self.leave_session();
        Ok(Reply::msg(&Message::Ok))
    }
}

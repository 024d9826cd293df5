//! Account recovery, for a logged-in account: change the password, enroll a new authenticator,
//! replace the recovery codes, count them, delete the account.
//!
//! Every change needs the password *and* a second factor, whatever the session: a stolen
//! session token alone changes nothing. The second factor is a TOTP code (six digits; a step
//! already accepted is refused, as at login) or a recovery code (used up). Failures count
//! against the same per-account and per-address limits as logins, and the refusal never says
//! which factor was wrong.

use proto_core::limits::MAX_RECOVERY_CODES;
use proto_core::{ErrorCode, List, Message, RoomChange};

use super::rooms::Announcement;
use super::{After, Connection, Refusal, Reply, State};
use crate::auth::{self, RECOVERY_CODES, totp};
use crate::store::AccountId;

/// Wrong codes allowed for a new authenticator before its enrollment is dropped.
const NEW_TOTP_ATTEMPTS: u8 = 5;

/// A new TOTP secret waiting for its first code.
#[derive(Debug)]
pub(super) struct NewTotp {
    secret: Vec<u8>,
    attempts: u8,
}

fn factors_wrong() -> Refusal {
    Refusal::new(
        ErrorCode::AUTH_FAILED,
        "the password or code is wrong (each code works once; wait for the next one)",
    )
}

/// Six ASCII digits are a TOTP code; anything else is taken for a recovery code.
fn is_totp_code(code: &str) -> bool {
    let c = code.trim();
    c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())
}

impl Connection {
    /// The logged-in account, once its password and a second factor check out.
    async fn check_factors(
        &mut self,
        password: &str,
        code: &str,
    ) -> Result<(AccountId, String), Refusal> {
        let (me, name) = self.logged_in()?;
        let (limiter_key, now, _) = self.check_login_limits(&name).await?;
        // Counted up front, taken back only on success (as for logins).
        self.shared
            .auth
            .record_failure(&limiter_key, self.peer, now)
            .await;
        let account = self
            .db(move |s| Ok(s.account_by_id(me)?))
            .await?
            .ok_or_else(Refusal::not_logged_in)?;
        let password_ok = self
            .shared
            .auth
            .verify(self.peer, password.to_owned(), Some(account.password_phc))
            .await
            .map_err(super::account::busy)?;
        // One store round trip whatever was wrong; account id 0 never exists.
        let id = if password_ok { me } else { 0 };
        let second_ok = if is_totp_code(code) {
            let step = totp::matching_step(&account.totp_secret, code, now);
            let (id, step) = step.map_or((0, 0), |st| (id, st));
            self.db(move |s| Ok(s.accept_totp_step(id, step)?)).await?
        } else {
            let hash = auth::recovery_hash(id, code);
            self.db(move |s| Ok(s.consume_recovery_code(id, &hash)?))
                .await?
        };
        if !(password_ok && second_ok) {
            tracing::info!(user = %name, "account change refused: wrong password or code");
            return Err(factors_wrong());
        }
        self.shared
            .auth
            .record_success(&limiter_key, self.peer)
            .await;
        Ok((me, name))
    }

    pub(super) fn token_hash(&self) -> Result<[u8; 32], Refusal> {
        match &self.state {
            State::LoggedIn(s) => Ok(s.token_hash),
            _ => Err(Refusal::not_logged_in()),
        }
    }

    /// `ChangePassword`: the new password (strength checked first), every other session
    /// revoked and its connections ended.
    pub(super) async fn change_password(
        &mut self,
        current: &str,
        new: &str,
        code: &str,
    ) -> Result<Reply, Refusal> {
        let (_, name) = self.logged_in()?;
        auth::check_password_strength(new, &[&name]).map_err(super::account::input)?;
        let (me, name) = self.check_factors(current, code).await?;
        let phc = self
            .shared
            .auth
            .hash(self.peer, new.to_owned())
            .await
            .map_err(super::account::busy)?
            .map_err(Refusal::rng)?;
        let keep = self.token_hash()?;
        let revoked = self
            .db(move |s| {
                s.set_password(me, &phc)?;
                Ok(s.revoke_sessions(me, Some(&keep))?)
            })
            .await?;
        // Their tokens are revoked; their live connections end now, not at the next Resume.
        if let Some(keep) = self.hub_id() {
            self.shared.hub.kick_others(me, keep);
        }
        // ... on every node: this connection is the only one left, and it is here.
        self.shared.hub.revoked_elsewhere(me);
        tracing::info!(user = %name, revoked, "password changed");
        Ok(Reply::msg(&Message::Ok))
    }

    /// `ReenrollTotp`: a new secret, in force once `ConfirmNewTotp` proves the new
    /// authenticator has it.
    pub(super) async fn reenroll_totp(
        &mut self,
        password: &str,
        code: &str,
    ) -> Result<Reply, Refusal> {
        let (_, name) = self.check_factors(password, code).await?;
        let secret = totp::new_secret().map_err(Refusal::rng)?;
        let uri = totp::otpauth_uri(&name, &secret);
        if let State::LoggedIn(s) = &mut self.state {
            s.new_totp = Some(NewTotp {
                secret,
                attempts: 0,
            });
        }
        Ok(Reply::msg(&Message::TotpEnrollment { uri: &uri }))
    }

    /// `ConfirmNewTotp`: the new secret replaces the old one.
    pub(super) async fn confirm_new_totp(&mut self, code: &str) -> Result<Reply, Refusal> {
        let (me, name) = self.logged_in()?;
        let now = self.shared.clock.now();
        let State::LoggedIn(s) = &mut self.state else {
            return Err(Refusal::not_logged_in());
        };
        let Some(pending) = &mut s.new_totp else {
            return Err(Refusal::new(
                ErrorCode::BAD_STATE,
                "nothing to confirm: send ReenrollTotp first",
            ));
        };
        let Some(step) = totp::matching_step(&pending.secret, code, now) else {
            pending.attempts += 1;
            if pending.attempts >= NEW_TOTP_ATTEMPTS {
                s.new_totp = None;
                return Err(Refusal::new(
                    ErrorCode::AUTH_FAILED,
                    "too many wrong codes; the old authenticator stays in force, start again",
                ));
            }
            return Err(Refusal::new(
                ErrorCode::AUTH_FAILED,
                "the code does not match the new secret; check the authenticator's clock",
            ));
        };
        let secret = pending.secret.clone();
        s.new_totp = None;
        self.db(move |s| Ok(s.set_totp_secret(me, &secret, step)?))
            .await?;
        tracing::info!(user = %name, "authenticator replaced");
        Ok(Reply::msg(&Message::Ok))
    }

    /// `RegenerateRecoveryCodes`: new codes replace every old one.
    pub(super) async fn regenerate_recovery_codes(
        &mut self,
        password: &str,
        code: &str,
    ) -> Result<Reply, Refusal> {
        let (me, name) = self.check_factors(password, code).await?;
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES.min(MAX_RECOVERY_CODES) {
            codes.push(auth::new_recovery_code().map_err(Refusal::rng)?);
        }
        let hashes: Vec<[u8; 32]> = codes.iter().map(|c| auth::recovery_hash(me, c)).collect();
        self.db(move |s| Ok(s.set_recovery_codes(me, &hashes)?))
            .await?;
        tracing::info!(user = %name, "recovery codes replaced");
        let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
        Ok(Reply::msg(&Message::RecoveryCodes {
            codes: List::from_items(&refs),
        }))
    }

    /// `CountRecoveryCodes`.
    pub(super) async fn count_recovery_codes(&mut self) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let remaining = self.db(move |s| Ok(s.count_recovery_codes(me)?)).await?;
        Ok(Reply::msg(&Message::RecoveryCodesLeft { remaining }))
    }

    /// `DeleteAccount`: the account leaves its rooms (an admin hands over to the
    /// longest-standing member; an emptied room is deleted) and everything of it is deleted in
    /// one transaction. `Ok`, then the rooms hear it left and every connection of the account
    /// ends.
    pub(super) async fn delete_account(
        &mut self,
        password: &str,
        code: &str,
    ) -> Result<Reply, Refusal> {
        let (me, name) = self.check_factors(password, code).await?;
        let rooms = self
            .db(move |s| {
                let mut left = Vec::new();
                for room in s.rooms_of(me)? {
                    let Some(info) = s.room(&room)? else {
                        continue;
                    };
                    s.remove_member(info.id, me)?;
                    let rest: Vec<AccountId> = info
                        .members
                        .iter()
                        .map(|m| m.id)
                        .filter(|id| *id != me)
                        .collect();
                    match rest.first() {
                        None => s.delete_room(info.id)?,
                        Some(next) if info.admin == me => s.set_admin(info.id, *next)?,
                        Some(_) => {}
                    }
                    left.push((room, rest));
                }
                // An admin is always a member (admins hand over when they leave), so no room
                // names the account any more.
                s.delete_account(me)?;
                Ok(left)
            })
            .await?;
        tracing::info!(user = %name, rooms = rooms.len(), "account deleted");
        let announcements = rooms
            .into_iter()
            .map(|(room, to)| Announcement::new(to, room, name.clone(), RoomChange::Left))
            .collect();
        let mut reply = Reply::msg(&Message::Ok);
        reply.after = Some(After::Deleted(me, announcements));
        Ok(reply)
    }

    /// After `DeleteAccount`'s `Ok`: tells the rooms, then ends this connection (once the
    /// reply is written) and every other connection of the account.
    pub(super) async fn finish_deletion(&mut self, me: AccountId, rooms: Vec<Announcement>) {
        for a in rooms {
            self.announce(a).await;
        }
        self.leave_session();
        self.shared.hub.kick(me);
        self.shared.hub.revoked_elsewhere(me);
        self.out.close();
    }
}

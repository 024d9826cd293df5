//! `sealroom account password|totp|recovery-codes|delete`: the account's recovery, on the
//! server. Each asks for the password and a second factor (a TOTP code, or a recovery code
//! when the authenticator is lost): a session alone changes nothing.

use proto_core::{ErrorCode, Message};

use crate::cli::{AccountCommand, Factor, Global};
use crate::client::{Client, expect_ok, refusal};
use crate::exit::{Exit, fail};
use crate::terminal::outln;
use crate::terminal::{self, ENV_PASSWORD, Style, paint};

/// Environment variable holding the new account password (`account password`).
pub(super) const ENV_NEW_PASSWORD: &str = "SEALROOM_NEW_PASSWORD";

/// The second factor: `--code`, `--recovery-code`, else asked.
fn factor(f: &Factor) -> anyhow::Result<String> {
    match (&f.code, &f.recovery_code) {
        (Some(c), _) | (None, Some(c)) => Ok(c.trim().to_owned()),
        (None, None) => Ok(terminal::ask(
            "Code from the authenticator (or a recovery code)",
        )?),
    }
}

pub(super) async fn run(g: &Global, cmd: AccountCommand) -> anyhow::Result<()> {
    let mut client = Client::open(g).await?;
    let _ = client.drain_queued().await?;
    match cmd {
        AccountCommand::Password(f) => {
            let current = terminal::secret(ENV_PASSWORD, "Current account password")?;
            let new = terminal::new_secret(ENV_NEW_PASSWORD, "New account password")?;
            let code = factor(&f)?;
            let change = Message::ChangePassword {
                current: &current,
                new: &new,
                code: &code,
            };
            client.link.request(&change, expect_ok).await?;
            report(
                g,
                serde_json::json!({ "event": "password_changed" }),
                "Password changed. Every other session of the account was logged out.",
            );
        }
        AccountCommand::Totp(t) => {
            let f = t.factor;
            let password = terminal::secret(ENV_PASSWORD, "Account password")?;
            let code = factor(&f)?;
            let start = Message::ReenrollTotp {
                password: &password,
                code: &code,
            };
            let uri = client
                .link
                .request(&start, |reply| match reply {
                    Message::TotpEnrollment { uri } => Ok(uri.to_owned()),
                    Message::Error { code, text } => Err(refusal(code, text)),
                    other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
                })
                .await?;
            super::show_totp_enrollment(
                g.json,
                &uri,
                "Scan this QR code with the new authenticator:",
            );
            if !g.json {
                outln!("The old authenticator works until the new one is confirmed.");
            }
            let new_code = match t.new_code {
                Some(c) => c,
                None => terminal::ask("Code from the NEW authenticator")?,
            };
            let confirm = Message::ConfirmNewTotp {
                code: new_code.trim(),
            };
            client.link.request(&confirm, expect_ok).await?;
            report(
                g,
                serde_json::json!({ "event": "totp_replaced" }),
                "The new authenticator is in force; the old one no longer works.",
            );
        }
        AccountCommand::RecoveryCodes(f) => {
            let password = terminal::secret(ENV_PASSWORD, "Account password")?;
            let code = factor(&f)?;
            let regen = Message::RegenerateRecoveryCodes {
                password: &password,
                code: &code,
            };
            let codes: Vec<String> = client
                .link
                .request(&regen, |reply| match reply {
                    Message::RecoveryCodes { codes } => {
                        Ok(codes.iter().map(str::to_owned).collect())
                    }
                    Message::Error { code, text } => Err(refusal(code, text)),
                    other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
                })
                .await?;
            if g.json {
                outln!(
                    "{}",
                    serde_json::json!({ "event": "recovery_codes", "recovery_codes": codes })
                );
            } else {
                outln!("New recovery codes; the old ones no longer work.");
                outln!(
                    "{}",
                    paint(Style::Bold, "They are shown only now: write them down.")
                );
                super::show_recovery_codes(&codes);
            }
        }
        AccountCommand::Delete { factor: f, yes } => {
            let username = client.profile.username.clone();
            if !yes {
                if !terminal::stdin_is_tty() {
                    return fail(
                        Exit::Usage,
                        "deleting the account cannot be undone: pass --yes to confirm",
                    );
                }
                let typed = terminal::ask(&format!(
                    "This deletes {username} on {} for good (messages, keys, rooms). Type the \
                     username to confirm",
                    client.profile.server
                ))?;
                if typed.trim() != username {
                    return fail(Exit::Failure, "not confirmed; nothing was deleted");
                }
            }
            let password = terminal::secret(ENV_PASSWORD, "Account password")?;
            let code = factor(&f)?;
            let delete = Message::DeleteAccount {
                password: &password,
                code: &code,
            };
            client.link.request(&delete, expect_ok).await?;
            let keystore = client.home.keystore();
            // The keys belong to an account that no longer exists: the keystore goes too.
            std::fs::remove_file(&keystore).map_err(|e| {
                anyhow::anyhow!(
                    "the account was deleted, but {} could not be removed: {e}",
                    keystore.display()
                )
            })?;
            report(
                g,
                serde_json::json!({ "event": "account_deleted", "username": username }),
                &format!(
                    "Deleted {username}: the server forgot the account; the keystore {} is gone.",
                    keystore.display()
                ),
            );
            return Ok(());
        }
    }
    client.close().await;
    Ok(())
}

/// Prints a result: JSON, or a line for a person.
fn report(g: &Global, json: serde_json::Value, text: &str) {
    if g.json {
        outln!("{json}");
    } else {
        outln!("{} {text}", paint(Style::Green, "✓"));
    }
}

/// How many recovery codes are left (after a recovery-code login); `None` if the server
/// cannot say.
pub(super) async fn recovery_codes_left(client: &mut Client) -> anyhow::Result<Option<u32>> {
    client
        .link
        .request(&Message::CountRecoveryCodes, |reply| match reply {
            Message::RecoveryCodesLeft { remaining } => Ok(Some(remaining)),
            Message::Error {
                code: ErrorCode::BAD_STATE | ErrorCode::BAD_FRAME,
                ..
            } => Ok(None),
            Message::Error { code, text } => Err(refusal(code, text)),
            other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
        })
        .await
}

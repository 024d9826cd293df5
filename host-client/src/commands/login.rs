//! `sealroom login` (password + TOTP or a recovery code; `--new-device` makes new keys) and
//! `sealroom logout`.

use proto_core::{Key32, List, Message};

use crate::cli::{Global, Login};
use crate::client::{Client, Home, connect, expect_ok, refusal, unlock};
use crate::exit::{Exit, fail};
use crate::keystore::Keystore;
use crate::profile::{Profile, now};
use crate::terminal::outln;
use crate::terminal::{self, ENV_PASSWORD, Progress, Style, paint};

pub(super) async fn run(g: &Global, args: Login) -> anyhow::Result<()> {
    let home = Home::resolve(g.home.as_deref())?;
    let new_device = args.new_device;
    let (lock, keystore, profile) = if new_device {
        let lock = home.lock_empty("a keystore; --new-device needs an empty --home")?;
        let Some(username) = args.username.as_deref() else {
            return fail(Exit::Failure, "--new-device needs --username NAME");
        };
        let username = crate::cli::user_name(username)?;
        // Starting over is asked, never assumed, when a person is at the terminal (a script
        // passing --new-device has said so).
        if terminal::stdin_is_tty() {
            terminal::warn(&format!(
                "This makes a NEW identity for {username} on this device: the server logs out \
                 every other device of the account at once (messages waiting for them are \
                 lost), and your contacts see your safety number change and cannot write to you \
                 until they compare it again. To keep your identity, use a device that holds it."
            ));
            let answer = terminal::ask("Start over with a new identity? [y/N]")?;
            if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                return fail(Exit::Failure, "not started over; nothing changed");
            }
        }
        let pass = terminal::new_passphrase("New keystore passphrase", &[&username])?;
        let _p = Progress::start("making keys and deriving the keystore key");
        let profile = Profile::generate(&args.server, &username, now());
        let ks = Keystore::create(&home.keystore(), &pass, args.kdf_rounds.max(1_000));
        (lock, ks, profile)
    } else {
        unlock(&home)?
    };
    let password = terminal::secret(ENV_PASSWORD, "Account password")?;
    let mut link = connect(&home, g, &profile.server).await?;
    // A device that knows its id says it (its own queue); a keystore from before devices, or
    // one starting over, logs in as the account's primary device.
    let login = match profile.device_id.filter(|_| !new_device) {
        Some(device) => Message::LoginDevice {
            username: &profile.username,
            password: &password,
            device: Some(device),
        },
        None => Message::Login {
            username: &profile.username,
            password: &password,
        },
    };
    {
        let _p = Progress::start("checking the password");
        link.request(&login, |reply| match reply {
            Message::TotpRequired => Ok(()),
            Message::Error { code, text } => Err(refusal(code, text)),
            other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
        })
        .await?;
    }
    let mut typed = String::new();
    let second = second_factor(
        args.recovery_code.as_deref(),
        args.code.as_deref(),
        &mut typed,
    )?;
    let mut profile = profile;
    link.request(&second, |reply| start_session(&mut profile, reply))
        .await?;
    let mut client = Client::from_parts(profile, keystore, link, home, lock);
    client.save()?;
    if new_device {
        publish_new_device(&mut client).await?;
        super::devices::name_new_device(&mut client, args.device_name.as_deref()).await;
    } else {
        client.ensure_device().await?;
    }
    // Deliveries and receipts that came with the login are kept for `inbox`.
    let _ = client.drain_queued().await?;
    // A recovery code was used up: say how many are left, every time.
    let codes_left = if args.recovery_code.is_some() {
        super::account::recovery_codes_left(&mut client).await?
    } else {
        None
    };
    if g.json {
        outln!(
            "{}",
            serde_json::json!({
                "event": "logged_in",
                "username": client.profile.username,
                "server": client.profile.server,
                "new_device": new_device,
                "token_expires": client.profile.token_expires,
                "recovery_codes_left": codes_left,
            })
        );
    } else {
        outln!(
            "{} Logged in as {}{}",
            paint(Style::Green, "✓"),
            client.profile.username,
            if new_device {
                " on a new device with a new identity: contacts will see a key change, and the \
                 account's other devices were logged out"
            } else {
                ""
            }
        );
        if let Some(n) = codes_left {
            let text = format!(
                "{n} recovery code{} left.{}",
                if n == 1 { "" } else { "s" },
                if n <= 3 {
                    " Make new ones with `sealroom account recovery-codes`; if the authenticator \
                     is lost, enroll a new one with `sealroom account totp`."
                } else {
                    ""
                }
            );
            if n <= 3 {
                terminal::warn(&text);
            } else {
                terminal::note(&text);
            }
        }
    }
    client.close().await;
    Ok(())
}

/// The login's second factor: the recovery code given, else the TOTP code given, else one asked
/// for (kept in `typed`).
pub(super) fn second_factor<'a>(
    recovery_code: Option<&'a str>,
    code: Option<&'a str>,
    typed: &'a mut String,
) -> anyhow::Result<Message<'a>> {
    Ok(match (recovery_code, code) {
        (Some(r), _) => Message::RecoveryCode { code: r.trim() },
        (None, Some(c)) => Message::TotpCode { code: c.trim() },
        (None, None) => {
            *typed = terminal::ask("Code from the authenticator")?;
            Message::TotpCode { code: typed.trim() }
        }
    })
}

/// Keeps the session token of a `Session` reply (the end of a login or a registration).
pub(super) fn start_session(profile: &mut Profile, reply: Message<'_>) -> anyhow::Result<()> {
    match reply {
        Message::Session { token, expires_at } => {
            profile.token = Some(hex::encode(token.0));
            profile.token_expires = expires_at;
            Ok(())
        }
        Message::Error { code, text } => Err(refusal(code, text)),
        other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
    }
}

/// Publishes this device's identity, signed prekey and one-time prekeys.
async fn publish_new_device(client: &mut Client) -> anyhow::Result<()> {
    let id = client.profile.identity_public()?;
    let identity = Message::PublishIdentity {
        identity_sig: Key32(id.signing),
        identity_dh: Key32(id.dh),
    };
    client.link.request(&identity, expect_ok).await?;
    // What the login handed out before that was sealed for the old identity: unreadable here,
    // and gone from the server's queue now. Not shown as "could not decrypt", not answered.
    client.link.forget_direct_deliveries();
    // This session is the account's one new device now: learn its id, sign the prekey for it.
    client.ensure_device().await?;
    let opks = client.profile.published_one_time_prekeys();
    let upload = Message::UploadPrekeys {
        prekeys: List::from_items(&opks),
    };
    client.link.request(&upload, expect_ok).await
}

pub(super) async fn logout(g: &Global) -> anyhow::Result<()> {
    let mut client = match Client::open(g).await {
        Ok(c) => c,
        Err(e) if crate::exit::code_of(&e) == Exit::Auth as i32 => {
            if g.json {
                outln!(
                    "{}",
                    serde_json::json!({ "event": "logged_out", "already": true })
                );
            } else {
                outln!("Already logged out.");
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let _ = client.drain_queued().await?;
    client.link.request(&Message::Logout, expect_ok).await?;
    client.profile.token = None;
    client.profile.token_expires = 0;
    client.save()?;
    if g.json {
        outln!(
            "{}",
            serde_json::json!({
                "event": "logged_out",
                "already": false,
                "keystore": client.home.keystore(),
            })
        );
    } else {
        outln!(
            "Logged out. Your keys stay in {}.",
            client.home.keystore().display()
        );
    }
    client.close().await;
    Ok(())
}

//! `sealroom link`: set this folder up as another device of an existing account. It logs in
//! (password + second factor) as a device being linked, shows a link code, and waits for a
//! device already in the account to send it the account (`sealroom devices add CODE`); then it
//! adds itself and publishes its own prekeys, signed by the account identity for its device id.

use core::time::Duration;
use std::time::Instant;

use proto_core::{ErrorCode, LinkKeyPair, List, Message};

use crate::cli::{Global, Link};
use crate::client::{Client, connect, expect_ok, refusal};
use crate::exit::{Exit, fail};
use crate::keystore::Keystore;
use crate::link_state::{LinkState, code_text};
use crate::profile::{Profile, now};
use crate::terminal::{self, ENV_PASSWORD, Progress, Style, outln, paint};

/// How long the new device waits for the link message (the server keeps one 10 minutes).
const LINK_WAIT: Duration = Duration::from_secs(600);
/// How often it asks.
const POLL: Duration = Duration::from_secs(1);

pub(super) async fn run(g: &Global, args: Link) -> anyhow::Result<()> {
    let home = crate::client::Home::resolve(g.home.as_deref())?;
    let lock = home.lock_empty("a keystore; linking needs an empty --home")?;
    let username = crate::cli::user_name(&args.username)?;
    let pass = terminal::new_passphrase("New keystore passphrase", &[&username])?;
    let password = terminal::secret(ENV_PASSWORD, "Account password")?;
    let mut link = connect(&home, g, &args.server).await?;
    {
        let _p = Progress::start("checking the password");
        let login = Message::LoginDevice {
            username: &username,
            password: &password,
            device: None,
        };
        link.request(&login, |reply| match reply {
            Message::TotpRequired => Ok(()),
            Message::Error { code, text } => Err(refusal(code, text)),
            other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
        })
        .await?;
    }
    let mut typed = String::new();
    let second = super::login::second_factor(
        args.recovery_code.as_deref(),
        args.code.as_deref(),
        &mut typed,
    )?;
    let (token, token_expires) = link
        .request(&second, |reply| match reply {
            Message::Session { token, expires_at } => Ok((token.0, expires_at)),
            Message::Error { code, text } => Err(refusal(code, text)),
            other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
        })
        .await?;

    let pair = LinkKeyPair::generate(&mut crate::rng::os());
    let text = code_text(pair.code());
    if g.json {
        outln!(
            "{}",
            serde_json::json!({"event": "link_code", "code": text, "username": username})
        );
    } else {
        outln!("Link this device to {username}: on a device already in the account, run");
        outln!();
        outln!("  sealroom devices add {text}");
        outln!();
        outln!("or, in the browser, Settings → Link a device, and scan or paste:");
        outln!("{}", terminal::qr(&text));
        outln!("Waiting up to 10 minutes… (Ctrl-C to give up)");
    }
    let link_id = pair.code().link_id();
    let deadline = Instant::now() + LINK_WAIT;
    let message = loop {
        let fetched = link
            .request(
                &Message::FetchLink { link_id: &link_id },
                |reply| match reply {
                    Message::LinkMessage { message } => Ok(Some(message.to_vec())),
                    Message::Error {
                        code: ErrorCode::NOT_FOUND,
                        ..
                    } => Ok(None),
                    Message::Error { code, text } => Err(refusal(code, text)),
                    other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
                },
            )
            .await?;
        if let Some(m) = fetched {
            break m;
        }
        if Instant::now() >= deadline {
            return fail(
                Exit::Failure,
                "no device of the account sent this one the account within 10 minutes; run \
                 `sealroom link` again for a new code",
            );
        }
        smol::Timer::after(POLL).await;
    };
    let state = LinkState::open(&pair, &message)?;
    if state.username != username {
        return fail(
            Exit::Failure,
            format!(
                "the link message is for the account {}, not {username}; nothing was set up",
                crate::inert::line(&state.username)
            ),
        );
    }
    let mut profile = Profile::linked(&args.server, &state, now())?;
    profile.token = Some(hex::encode(token));
    profile.token_expires = token_expires;
    let name = match args.device_name.as_deref() {
        Some(n) => n.to_owned(),
        None => super::devices::default_name(),
    };
    let device = link
        .request(&Message::AddDevice { name: &name }, |reply| match reply {
            Message::DeviceAdded { device } => Ok(device),
            Message::Error { code, text } => Err(refusal(code, text)),
            other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
        })
        .await?;
    profile.become_device(device, now())?;
    // The prekey made before the identity arrived was signed by a throwaway key: never used.
    profile.previous_signed_prekey = None;
    let keystore = {
        let _p = Progress::start("deriving the keystore key");
        Keystore::create(&home.keystore(), &pass, args.kdf_rounds.max(1_000))
    };
    let mut client = Client::from_parts(profile, keystore, link, home, lock);
    // Saved before publishing, so the secret of a published key is never lost.
    client.save()?;
    let signed = Message::PublishSignedPrekey {
        prekey: client.profile.published_signed_prekey()?,
    };
    // The server checks the prekey against the account identity: a link message carrying
    // another identity stops here. Until it is published nobody can write to this device, so
    // a failure leaves nothing half set up but an unreachable device id.
    let opks = client.profile.published_one_time_prekeys();
    let upload = Message::UploadPrekeys {
        prekeys: List::from_items(&opks),
    };
    let published = match client.link.request(&signed, expect_ok).await {
        Ok(()) => match client.link.request(&upload, expect_ok).await {
            Ok(()) => client.ensure_kem_prekeys(device).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if let Err(e) = published {
        let _ = std::fs::remove_file(client.home.keystore());
        return fail(
            Exit::Failure,
            format!(
                "could not publish this device's keys ({e:#}); nothing was set up. Run \
                 `sealroom link` again (device {device} stays unused: `sealroom devices revoke \
                 {device}` on another device removes it)"
            ),
        );
    }
    // The account's rooms: each roster is this device's starting point; its sender key goes
    // out to the members (and our other devices), who send theirs back.
    let mut notices = Vec::new();
    for (room, roster) in state.rooms() {
        notices.extend(client.adopt_own_roster(&room, &roster)?);
    }
    client.save()?;
    notices.extend(client.drain_queued().await?);
    client.after_event(&mut notices).await?;
    if !g.json {
        for n in &notices {
            if let crate::client::Notice::Warning(w) = n {
                terminal::warn(w);
            }
        }
    }
    if g.json {
        outln!(
            "{}",
            serde_json::json!({
                "event": "linked",
                "username": client.profile.username,
                "device": device,
                "contacts": client.profile.contacts.len(),
            })
        );
    } else {
        outln!(
            "{} This device is now device {device} of {} ({} contact{} with their trust). \
             Messages to {} reach it from now on.",
            paint(Style::Green, "✓"),
            client.profile.username,
            client.profile.contacts.len(),
            if client.profile.contacts.len() == 1 {
                ""
            } else {
                "s"
            },
            client.profile.username,
        );
    }
    client.close().await;
    Ok(())
}

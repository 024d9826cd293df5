//! `sealroom login` (password + TOTP or a recovery code; `--new-device` makes new keys) and
//! `sealroom logout`.

use proto_core::{Key32, List, Message, Sig64, SignedPrekey};

use crate::cli::{Global, Login};
use crate::client::{Client, Home, connect, expect_ok, refusal, unlock};
use crate::exit::{Exit, fail};
use crate::keystore::Keystore;
use crate::link;
use crate::profile::{Profile, now};
use crate::terminal::{self, ENV_PASSWORD, Progress, Style, paint};

pub(super) async fn run(g: &Global, args: Login) -> anyhow::Result<()> {
    let home = Home::resolve(g.home.as_deref())?;
    let new_device = args.new_device;
    let (lock, keystore, profile) = if new_device {
        if Keystore::exists(&home.keystore()) {
            return fail(
                Exit::Keystore,
                format!(
                    "{} already holds a keystore; --new-device needs an empty --home",
                    home.dir.display()
                ),
            );
        }
        let lock = home.lock()?;
        let username = crate::cli::user_name(args.username.as_deref().unwrap_or_default());
        let pass = terminal::new_secret(terminal::ENV_PASSPHRASE, "New keystore passphrase")?;
        let _p = Progress::start("making keys and deriving the keystore key");
        let profile = Profile::generate(&args.server, &username, now());
        let ks = Keystore::create(&home.keystore(), &pass, args.kdf_rounds.max(1_000));
        (lock, ks, profile)
    } else {
        unlock(&home)?
    };
    let password = terminal::secret(ENV_PASSWORD, "Account password")?;
    let mut link = connect(&home, g, &profile.server).await?;
    let reply = {
        let _p = Progress::start("checking the password");
        link.request(&Message::Login {
            username: &profile.username,
            password: &password,
        })
        .await?
    };
    match link::decode(&reply)? {
        Message::TotpRequired => {}
        Message::Error { code, text } => return Err(refusal(code, text)),
        other => return fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
    }
    let reply = match (&args.recovery_code, &args.code) {
        (Some(r), _) => {
            link.request(&Message::RecoveryCode { code: r.trim() })
                .await?
        }
        (None, Some(c)) => link.request(&Message::TotpCode { code: c.trim() }).await?,
        (None, None) => {
            let c = terminal::ask("Code from the authenticator")?;
            link.request(&Message::TotpCode { code: c.trim() }).await?
        }
    };
    let mut profile = profile;
    match link::decode(&reply)? {
        Message::Session { token, expires_at } => {
            profile.token = Some(hex::encode(token.0));
            profile.token_expires = expires_at;
        }
        Message::Error { code, text } => return Err(refusal(code, text)),
        other => return fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
    }
    let mut client = Client::from_parts(profile, keystore, link, home, lock);
    client.save()?;
    if new_device {
        publish_new_device(&mut client).await?;
    }
    // Deliveries and receipts that came with the login are kept for `inbox`.
    let _ = client.drain_queued().await?;
    println!(
        "{} Logged in as {}{}",
        paint(Style::Green, "✓"),
        client.profile.username,
        if new_device {
            " on a new device (contacts will see a key change)"
        } else {
            ""
        }
    );
    client.close().await;
    Ok(())
}

/// Publishes this device's identity, signed prekey and one-time prekeys.
async fn publish_new_device(client: &mut Client) -> anyhow::Result<()> {
    let id = client.profile.identity_public()?;
    let reply = client
        .link
        .request(&Message::PublishIdentity {
            identity_sig: Key32(id.signing),
            identity_dh: Key32(id.dh),
        })
        .await?;
    expect_ok(&reply)?;
    let spk = client.profile.signed_prekey()?.public();
    let reply = client
        .link
        .request(&Message::PublishSignedPrekey {
            prekey: SignedPrekey {
                id: spk.id,
                key: Key32(spk.public),
                signature: Sig64(spk.signature),
            },
        })
        .await?;
    expect_ok(&reply)?;
    let opks: Vec<proto_core::OneTimePrekey> = client
        .profile
        .one_time_prekeys
        .keys()
        .filter_map(|id| client.profile.one_time_prekey(*id))
        .map(|k| {
            let p = k.public();
            proto_core::OneTimePrekey {
                id: p.id,
                key: Key32(p.public),
            }
        })
        .collect();
    let reply = client
        .link
        .request(&Message::UploadPrekeys {
            prekeys: List::from_items(&opks),
        })
        .await?;
    expect_ok(&reply)
}

pub(super) async fn logout(g: &Global) -> anyhow::Result<()> {
    let mut client = match Client::open(g).await {
        Ok(c) => c,
        Err(e) if crate::exit::code_of(&e) == Exit::Auth as i32 => {
            println!("Already logged out.");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let _ = client.drain_queued().await?;
    let reply = client.link.request(&Message::Logout).await?;
    expect_ok(&reply)?;
    client.profile.token = None;
    client.profile.token_expires = 0;
    client.save()?;
    println!(
        "Logged out. Your keys stay in {}.",
        client.home.keystore().display()
    );
    client.close().await;
    Ok(())
}

//! `sealroom register`: keys made here, the account created on the server, TOTP enrolled.

use proto_core::{DeviceKeys, ErrorCode, Key32, List, Message, Sig64, SignedPrekey};

use crate::cli::{Global, Register};
use crate::client::{Client, Home, connect, refusal};
use crate::exit::{Exit, fail};
use crate::keystore::Keystore;
use crate::link;
use crate::profile::{Profile, now};
use crate::terminal::{self, ENV_PASSWORD, Progress, Style, paint};

/// Tries allowed for the TOTP code (the server cancels after five wrong ones).
const CODE_TRIES: usize = 5;

pub(super) async fn run(g: &Global, args: Register) -> anyhow::Result<()> {
    let home = Home::resolve(g.home.as_deref())?;
    if Keystore::exists(&home.keystore()) {
        return fail(
            Exit::Keystore,
            format!(
                "{} already holds an account; use another --home for a second account",
                home.dir.display()
            ),
        );
    }
    let lock = home.lock()?;
    let tty = terminal::stdin_is_tty();
    if tty && !g.json {
        eprintln!("Creating a Sealroom account on {}.", args.server);
    }
    let name = match args.name {
        Some(n) => n,
        None => terminal::ask("Your name")?,
    };
    let email = match args.email {
        Some(e) => e,
        None => terminal::ask("Email")?,
    };
    let username = match args.username {
        Some(u) => crate::cli::user_name(&u),
        None => crate::cli::user_name(&terminal::ask("Username (a-z, 0-9, _)")?),
    };
    let password = terminal::new_secret(ENV_PASSWORD, "Account password")?;
    let passphrase = terminal::new_secret(
        terminal::ENV_PASSPHRASE,
        "Keystore passphrase (protects your keys on this device)",
    )?;

    let (profile, keystore) = {
        let _p = Progress::start("making keys and deriving the keystore key");
        let profile = Profile::generate(&args.server, &username, now());
        let ks = Keystore::create(&home.keystore(), &passphrase, args.kdf_rounds.max(1_000));
        (profile, ks)
    };
    let identity = profile.identity()?.public();
    let spk = profile.signed_prekey()?.public();
    let opks: Vec<proto_core::OneTimePrekey> = profile
        .one_time_prekeys
        .keys()
        .filter_map(|id| profile.one_time_prekey(*id))
        .map(|k| {
            let p = k.public();
            proto_core::OneTimePrekey {
                id: p.id,
                key: Key32(p.public),
            }
        })
        .collect();

    let mut link = connect(&home, g, &args.server).await?;
    let (mut username, mut password) = (username, password);
    let uri = loop {
        let register = Message::Register {
            name: &name,
            email: &email,
            username: &username,
            password: &password,
            device: DeviceKeys {
                identity_sig: Key32(identity.signing),
                identity_dh: Key32(identity.dh),
                signed_prekey: SignedPrekey {
                    id: spk.id,
                    key: Key32(spk.public),
                    signature: Sig64(spk.signature),
                },
                one_time_prekeys: List::from_items(&opks),
            },
        };
        let reply = {
            let _p = Progress::start("creating the account");
            link.request(&register).await?
        };
        match link::decode(&reply)? {
            Message::TotpEnrollment { uri } => break uri.to_owned(),
            // On a terminal, a taken name or a weak password is asked again.
            Message::Error {
                code: ErrorCode::USERNAME_TAKEN,
                text,
            } if tty => {
                terminal::warn(text);
                username = crate::cli::user_name(&terminal::ask("Another username")?);
            }
            Message::Error {
                code: ErrorCode::WEAK_PASSWORD,
                text,
            } if tty && std::env::var(ENV_PASSWORD).is_err() => {
                terminal::warn(text);
                password = terminal::new_secret(ENV_PASSWORD, "A stronger account password")?;
            }
            Message::Error { code, text } => return Err(refusal(code, text)),
            other => return fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
        }
    };
    let mut profile = profile;
    profile.username.clone_from(&username);
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap_or("")
        .to_owned();
    if g.json {
        println!(
            "{}",
            serde_json::json!({"event": "totp_enrollment", "otpauth_uri": uri, "secret": secret})
        );
    } else {
        println!("\nTwo-factor login: scan this QR code with an authenticator app");
        println!("{}", terminal::qr(&uri));
        println!(
            "or enter the secret by hand: {}",
            paint(Style::Bold, &secret)
        );
        println!("(URI: {uri})\n");
    }
    let mut given = args.code;
    let mut codes = None;
    for attempt in 0..CODE_TRIES {
        let code = match given.take() {
            Some(c) => c,
            None => terminal::ask("Code from the authenticator")?,
        };
        let reply = link
            .request(&Message::ConfirmTotp { code: code.trim() })
            .await?;
        match link::decode(&reply)? {
            Message::EnrollmentComplete { recovery_codes } => {
                codes = Some(recovery_codes.iter().map(str::to_owned).collect::<Vec<_>>());
                break;
            }
            Message::Error { code, text } => {
                if !tty || attempt + 1 == CODE_TRIES {
                    return Err(refusal(code, text));
                }
                terminal::warn(text);
            }
            other => return fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
        }
    }
    let Some(codes) = codes else {
        return fail(Exit::Auth, "enrollment was not finished");
    };
    let reply = link.reply().await?;
    match link::decode(&reply)? {
        Message::Session { token, expires_at } => {
            profile.token = Some(hex::encode(token.0));
            profile.token_expires = expires_at;
        }
        Message::Error { code, text } => return Err(refusal(code, text)),
        other => return fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
    }
    let client = Client::from_parts(profile, keystore, link, home, lock);
    client.save()?;
    let fp = safety_fingerprint(&client)?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({
                "event": "registered",
                "username": client.profile.username,
                "server": client.profile.server,
                "recovery_codes": codes,
                "identity_fingerprint": fp,
                "keystore": client.home.keystore(),
            })
        );
    } else {
        println!(
            "{} Welcome, {}.",
            paint(Style::Green, "✓"),
            client.profile.username
        );
        println!("\nRecovery codes (each works once if you lose the authenticator).");
        println!(
            "{}",
            paint(Style::Bold, "They are shown only now: write them down.")
        );
        for c in &codes {
            println!("  {c}");
        }
        println!(
            "\nYour keys are in {} (encrypted).",
            client.home.keystore().display()
        );
        println!(
            "Next: `sealroom chat @someone`, or `sealroom verify @someone` to compare safety numbers."
        );
    }
    client.close().await;
    Ok(())
}

/// Our own 30-digit half of every safety number, for display.
pub(super) fn safety_fingerprint(client: &Client) -> anyhow::Result<String> {
    let id = client.profile.identity_public()?;
    let digits = proto_core::party_fingerprint(&id, &client.profile.username);
    Ok(String::from_utf8_lossy(&digits).into_owned())
}

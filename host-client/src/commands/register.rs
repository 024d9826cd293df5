//! `sealroom register`: keys made here, the account created on the server, TOTP enrolled.

use proto_core::{DeviceKeys, ErrorCode, Key32, List, Message};

use crate::cli::{Global, Register, user_name};
use crate::client::{Client, Home, connect, refusal};
use crate::exit::{Exit, fail};
use crate::keystore::Keystore;
use crate::profile::{Profile, now};
use crate::terminal::outln;
use crate::terminal::{self, ENV_PASSWORD, Progress, Style, paint};

/// Tries allowed for the TOTP code (the server cancels after five wrong ones).
const CODE_TRIES: usize = 5;

pub(super) async fn run(g: &Global, args: Register) -> anyhow::Result<()> {
    let home = Home::resolve(g.home.as_deref())?;
    let lock = home.lock_empty("an account; use another --home for a second account")?;
    let tty = terminal::stdin_is_tty();
    if tty && !g.json {
        terminal::note(&format!("Creating a Sealroom account on {}.", args.server));
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
        Some(u) => user_name(&u)?,
        None => user_name(&terminal::ask("Username (a-z, 0-9, _)")?)?,
    };
    let password = terminal::new_secret(ENV_PASSWORD, "Account password")?;
    let passphrase = terminal::new_passphrase(
        "Keystore passphrase (protects your keys on this device)",
        &[&username, &name, &email],
    )?;

    let (profile, keystore) = {
        let _p = Progress::start("making keys and deriving the keystore key");
        let mut profile = Profile::generate(&args.server, &username, now());
        // An account's first device is device 1: its signed prekey is signed for it (v2).
        profile.become_device(1, now())?;
        let ks = Keystore::create(&home.keystore(), &passphrase, args.kdf_rounds.max(1_000));
        (profile, ks)
    };
    let identity = profile.identity()?.public();
    let signed_prekey = profile.published_signed_prekey()?;
    let opks = profile.published_one_time_prekeys();

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
                signed_prekey,
                one_time_prekeys: List::from_items(&opks),
            },
        };
        let outcome = {
            let _p = Progress::start("creating the account");
            link.request(&register, |reply| match reply {
                Message::TotpEnrollment { uri } => Ok(Enrollment::Uri(uri.to_owned())),
                // On a terminal, a taken name or a weak password is asked again.
                Message::Error {
                    code: ErrorCode::USERNAME_TAKEN,
                    text,
                } if tty => Ok(Enrollment::UsernameTaken(text.to_owned())),
                Message::Error {
                    code: ErrorCode::WEAK_PASSWORD,
                    text,
                } if tty && std::env::var(ENV_PASSWORD).is_err() => {
                    Ok(Enrollment::WeakPassword(text.to_owned()))
                }
                Message::Error { code, text } => Err(refusal(code, text)),
                other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
            })
            .await?
        };
        match outcome {
            Enrollment::Uri(uri) => break uri,
            Enrollment::UsernameTaken(text) => {
                terminal::warn(&text);
                username = user_name(&terminal::ask("Another username")?)?;
            }
            Enrollment::WeakPassword(text) => {
                terminal::warn(&text);
                password = terminal::new_secret(ENV_PASSWORD, "A stronger account password")?;
            }
        }
    };
    let mut profile = profile;
    profile.username.clone_from(&username);
    super::show_totp_enrollment(
        g.json,
        &uri,
        "\nTwo-factor login: scan this QR code with an authenticator app",
    );
    if !g.json {
        outln!("(URI: {})\n", crate::inert::line(&uri));
    }
    let mut given = args.code;
    let mut codes: Option<Vec<String>> = None;
    for attempt in 0..CODE_TRIES {
        let code = match given.take() {
            Some(c) => c,
            None => terminal::ask("Code from the authenticator")?,
        };
        let last_try = !tty || attempt + 1 == CODE_TRIES;
        let confirm = Message::ConfirmTotp { code: code.trim() };
        codes = link
            .request(&confirm, |reply| match reply {
                Message::EnrollmentComplete { recovery_codes } => {
                    Ok(Some(recovery_codes.iter().map(str::to_owned).collect()))
                }
                Message::Error { code, text } if last_try => Err(refusal(code, text)),
                // A wrong code: said, and asked again.
                Message::Error { text, .. } => {
                    terminal::warn(text);
                    Ok(None)
                }
                other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
            })
            .await?;
        if codes.is_some() {
            break;
        }
    }
    let Some(codes) = codes else {
        return fail(Exit::Auth, "enrollment was not finished");
    };
    link.reply(|reply| super::login::start_session(&mut profile, reply))
        .await?;
    let mut client = Client::from_parts(profile, keystore, link, home, lock);
    client.save()?;
    // The KEM prekeys (PQXDH) need the device id, known now: without them nobody could start
    // a session with this account.
    client.ensure_device().await?;
    super::devices::name_new_device(&mut client, args.device_name.as_deref()).await;
    let fp = safety_fingerprint(&client)?;
    if g.json {
        outln!(
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
        outln!(
            "{} Welcome, {}.",
            paint(Style::Green, "✓"),
            client.profile.username
        );
        outln!("\nRecovery codes (each works once if you lose the authenticator).");
        outln!(
            "{}",
            paint(Style::Bold, "They are shown only now: write them down.")
        );
        super::show_recovery_codes(&codes);
        outln!(
            "\nYour keys are in {} (encrypted).",
            client.home.keystore().display()
        );
        outln!(
            "Next: `sealroom chat @someone`, or `sealroom verify @someone` to compare safety numbers."
        );
    }
    client.close().await;
    Ok(())
}

/// The server's answer to `Register`: enrolled, or (on a terminal) a name or password to ask
/// again with the server's reason.
enum Enrollment {
    /// The `otpauth://` URI to enroll TOTP with.
    Uri(String),
    /// The username is taken.
    UsernameTaken(String),
    /// The password is too weak.
    WeakPassword(String),
}

/// Our own 30-digit half of every safety number, for display.
pub(super) fn safety_fingerprint(client: &Client) -> anyhow::Result<String> {
    let id = client.profile.identity_public()?;
    let digits = proto_core::party_fingerprint(&id, &client.profile.username);
    Ok(String::from_utf8_lossy(&digits).into_owned())
}

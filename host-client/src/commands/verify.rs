//! `sealroom verify @user [--confirm [NUMBER]]`: the 60-digit safety number and its QR code,
//! and marking a contact verified.
//!
//! `--confirm` confirms the number the person compared, never merely "whatever the key is now":
//! with `NUMBER` it must equal the current safety number; without it, a terminal shows the
//! number, lets go of the keystore while the person compares, and checks again before marking
//! (a message from a new key may have arrived meanwhile, in a `chat` in another terminal). A
//! difference refuses with exit code 7 and changes nothing. Once verified, the room keys and
//! room messages held while the contact's key was unverified are processed (see `held`).

use proto_core::{SAFETY_NUMBER_LEN, safety_number};

use crate::cli::{Global, user_name};
use crate::client::{Client, Home, Notice, unlock};
use crate::exit::{Exit, fail};
use crate::profile::Profile;
use crate::terminal::outln;
use crate::terminal::{self, Style, paint};

/// What `--confirm` asks for.
enum Confirm {
    /// Only show the number.
    No,
    /// Show the number and ask whether it matches (a terminal).
    Ask,
    /// Confirm this number (60 digits).
    Number(String),
}

/// The 60 digits of a number typed or pasted with spaces (or tabs) between the groups.
fn parse_number(text: &str) -> anyhow::Result<String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return fail(
            Exit::Usage,
            "the safety number to confirm is 60 digits (spaces allowed) and has other characters",
        );
    }
    if digits.len() != SAFETY_NUMBER_LEN {
        return fail(
            Exit::Usage,
            format!(
                "the safety number to confirm is {SAFETY_NUMBER_LEN} digits (spaces allowed); \
                 this one has {}",
                digits.len()
            ),
        );
    }
    Ok(digits)
}

pub(super) async fn run(
    g: &Global,
    user: &str,
    confirm: Option<Vec<String>>,
) -> anyhow::Result<()> {
    if let Some(room) = user.strip_prefix('#') {
        return fail(
            Exit::Usage,
            format!(
                "rooms have no safety number of their own: verify each member with `sealroom \
                 verify @user` (list them with `sealroom rooms members {room}`)"
            ),
        );
    }
    let user = user_name(user)?;
    let confirm = match confirm.as_deref() {
        None => Confirm::No,
        Some([]) if terminal::stdin_is_tty() => Confirm::Ask,
        Some([]) => {
            return fail(
                Exit::Usage,
                format!(
                    "--confirm needs the safety number you compared when there is no terminal \
                     to ask on: `sealroom verify @{user} --confirm NUMBER` (60 digits, spaces \
                     allowed; `sealroom verify @{user}` shows it)"
                ),
            );
        }
        Some(parts) => Confirm::Number(parse_number(&parts.join(" "))?),
    };
    let home = Home::resolve(g.home.as_deref())?;
    let (lock, keystore, profile) = unlock(&home)?;
    if user == profile.username {
        return fail(Exit::Failure, "that is you; verify a contact");
    }
    let (mut lock, keystore, mut profile) = if profile.contacts.contains_key(&user) {
        // Known contact: no network needed.
        (lock, keystore, profile)
    } else {
        // Unknown contact: learn their key from the server (checked by comparing the numbers).
        let mut client = Client::resume(g, home.clone(), lock, keystore, profile).await?;
        match client.fetch_bundle(&user).await {
            Ok(_) => {}
            Err(e) if crate::exit::code_of(&e) == Exit::IdentityChanged as i32 => {}
            Err(e) => return Err(e),
        }
        client.into_offline().await?
    };
    let current = number(&profile, &user)?;
    let compared = match confirm {
        Confirm::No => {
            show(&profile, &user, &current, g.json, "If they match, run")?;
            return Ok(());
        }
        Confirm::Number(n) => n,
        Confirm::Ask => {
            show(
                &profile,
                &user,
                &current,
                g.json,
                "If they match, answer y below, or run",
            )?;
            // The person compares with the keystore let go: a `chat` in another terminal goes
            // on meanwhile. What it saved is read back before anything is marked.
            drop(lock);
            let answer =
                terminal::ask(&format!("Do these 60 digits match what {user} sees? [y/N]"))?;
            if !matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes") {
                return fail(Exit::Failure, "not confirmed; nothing changed");
            }
            lock = home.lock()?;
            profile = keystore.reload()?;
            if let Err(e) = profile.check() {
                return fail(
                    Exit::Keystore,
                    format!("{}: {e:#}", home.keystore().display()),
                );
            }
            current
        }
    };
    // What was compared must still be the number now: a key that changed since it was shown
    // was never compared by anyone.
    if number(&profile, &user)? != compared {
        return fail(
            Exit::IdentityChanged,
            format!(
                "that is not the current safety number with {user}: {user}'s identity key \
                 changed since the number was shown (or it was mistyped). Nothing was marked. \
                 Compare again: `sealroom verify @{user}`."
            ),
        );
    }
    if let Some(c) = profile.contacts.get_mut(&user) {
        c.verified = true;
        c.key_changed = false;
    }
    keystore.save(&profile)?;
    let held = profile.held.iter().filter(|h| h.from == user).count();
    if !g.json {
        outln!("{} {user} is now verified.", paint(Style::Green, "✓"));
    }
    let released = if held == 0 {
        Vec::new()
    } else {
        release(g, &user, home, lock, keystore, profile).await
    };
    let messages = released
        .iter()
        .filter(|n| matches!(n, Notice::Message(_)))
        .count();
    if g.json {
        outln!(
            "{}",
            serde_json::json!({"user": user, "safety_number": compared, "verified": true,
                               "key_changed": false, "held": held, "released_messages": messages})
        );
        return Ok(());
    }
    for n in &released {
        if let Notice::Warning(w) | Notice::Room(w) = n {
            terminal::warn(w);
        }
    }
    if messages > 0 {
        outln!(
            "{messages} room message(s) from {user}, held while the key was unverified, are now \
             in your inbox (`sealroom inbox`)."
        );
    }
    Ok(())
}

/// Processes what was held from `user` (it needs the server: our room key may go to them).
/// Offline, it stays held for the next `sealroom inbox`, and that is said.
async fn release(
    g: &Global,
    user: &str,
    home: Home,
    lock: std::fs::File,
    keystore: crate::keystore::Keystore,
    profile: Profile,
) -> Vec<Notice> {
    let outcome = async {
        let mut client = Client::resume(g, home, lock, keystore, profile).await?;
        let notices = client.release_held(user).await;
        client.close().await;
        notices
    }
    .await;
    outcome.unwrap_or_else(|e| {
        vec![Notice::Warning(format!(
            "room keys and messages from {user} held while the key was unverified wait for the \
             next `sealroom inbox`: {e:#}"
        ))]
    })
}

/// The 60-digit safety number with `user`.
fn number(profile: &Profile, user: &str) -> anyhow::Result<String> {
    let me = profile.identity_public()?;
    let Some(contact) = profile.contacts.get(user) else {
        return fail(Exit::Refused, format!("no keys known for {user}"));
    };
    let Some(them) = contact.identity() else {
        return fail(
            Exit::Failure,
            format!("the stored key of {user} is damaged"),
        );
    };
    let mut digits = [0u8; SAFETY_NUMBER_LEN];
    safety_number(&me, &profile.username, &them, user, &mut digits);
    Ok(String::from_utf8_lossy(&digits).into_owned())
}

/// Prints the number (and QR), and what to do next (`then` starts that sentence).
fn show(profile: &Profile, user: &str, digits: &str, json: bool, then: &str) -> anyhow::Result<()> {
    let Some(contact) = profile.contacts.get(user) else {
        return fail(Exit::Refused, format!("no keys known for {user}"));
    };
    if json {
        outln!(
            "{}",
            serde_json::json!({"user": user, "safety_number": digits, "verified": contact.verified,
                               "key_changed": contact.key_changed})
        );
        return Ok(());
    }
    if contact.key_changed {
        terminal::warn(&format!(
            "!!! {user}'s identity key CHANGED since you last accepted it. Sending is blocked until \
             you compare these numbers and confirm them."
        ));
    }
    outln!("Safety number with {}:\n", paint(Style::Bold, user));
    for row in groups(digits).chunks(4) {
        outln!("    {}", row.join(" "));
    }
    outln!("\n{}", terminal::qr(digits));
    outln!(
        "Compare these 60 digits with {user} (in person, or over a call you trust), or scan the code."
    );
    if contact.verified {
        outln!("{} {user} is verified.", paint(Style::Green, "✓"));
    } else {
        outln!(
            "{then} `sealroom verify @{user} --confirm '{}'`.",
            groups(digits).join(" ")
        );
    }
    Ok(())
}

/// The number in twelve groups of five.
fn groups(digits: &str) -> Vec<&str> {
    (0..12)
        .filter_map(|i| digits.get(i * 5..i * 5 + 5))
        .collect()
}

/// The safety number with `user` as lines (for `/verify` in a chat).
pub(super) fn describe(profile: &Profile, user: &str) -> anyhow::Result<Vec<String>> {
    if profile
        .contacts
        .get(user)
        .is_none_or(|c| c.identity().is_none())
    {
        return Ok(vec![format!(
            "no key known for {user} yet: send a message first"
        )]);
    }
    let digits = number(profile, user)?;
    let mut lines = vec![format!("Safety number with {user}:")];
    for row in groups(&digits).chunks(4) {
        lines.push(format!("    {}", row.join(" ")));
    }
    lines.extend(terminal::qr(&digits).lines().map(str::to_owned));
    lines.push(format!(
        "If it matches what {user} sees, run `sealroom verify @{user} --confirm '{}'` (that \
         number, not whatever the key is by then).",
        groups(&digits).join(" ")
    ));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_number_is_sixty_digits_with_spaces_allowed() {
        let n = "04514 27944 75395 80952 05578 69466 42446 96548 72505 75270 82744 74761";
        assert_eq!(parse_number(n).unwrap(), n.replace(' ', ""));
        assert_eq!(parse_number(&n.replace(' ', "")).unwrap().len(), 60);
        for bad in ["", "12345", &format!("{n}1"), &n.replace('0', "o")] {
            let e = parse_number(bad).unwrap_err();
            assert_eq!(crate::exit::code_of(&e), Exit::Usage as i32, "{bad}");
        }
    }
}

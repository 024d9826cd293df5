//! `sealroom verify @user [--confirm]`: the 60-digit safety number and its QR code.

use proto_core::{SAFETY_NUMBER_LEN, safety_number};

use crate::cli::{Global, user_name};
use crate::client::{Client, Home, unlock};
use crate::exit::{Exit, fail};
use crate::terminal::outln;
use crate::terminal::{self, Style, paint};

pub(super) async fn run(g: &Global, user: &str, confirm: bool) -> anyhow::Result<()> {
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
    let home = Home::resolve(g.home.as_deref())?;
    let (lock, keystore, profile) = unlock(&home)?;
    if user == profile.username {
        return fail(Exit::Failure, "that is you; verify a contact");
    }
    if profile.contacts.contains_key(&user) {
        // Known contact: no network needed.
        let mut profile = profile;
        show(&mut profile, &user, confirm, g.json)?;
        if confirm {
            keystore.save(&profile)?;
        }
        drop(lock);
        return Ok(());
    }
    // Unknown contact: learn their key from the server (checked by comparing the numbers).
    let mut client = Client::resume(g, home, lock, keystore, profile).await?;
    match client.fetch_bundle(&user).await {
        Ok(_) => {}
        Err(e) if crate::exit::code_of(&e) == Exit::IdentityChanged as i32 => {}
        Err(e) => return Err(e),
    }
    show(&mut client.profile, &user, confirm, g.json)?;
    client.save()?;
    client.close().await;
    Ok(())
}

/// Prints the number (and QR) and applies `--confirm`.
fn show(
    profile: &mut crate::profile::Profile,
    user: &str,
    confirm: bool,
    json: bool,
) -> anyhow::Result<()> {
    let me = profile.identity_public()?;
    let Some(contact) = profile.contacts.get_mut(user) else {
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
    let digits = String::from_utf8_lossy(&digits).into_owned();
    let groups: Vec<&str> = (0..12)
        .filter_map(|i| digits.get(i * 5..i * 5 + 5))
        .collect();
    if confirm {
        contact.verified = true;
        contact.key_changed = false;
    }
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
             you compare these numbers and run `sealroom verify @{user} --confirm`."
        ));
    }
    outln!("Safety number with {}:\n", paint(Style::Bold, user));
    for row in groups.chunks(4) {
        outln!("    {}", row.join(" "));
    }
    outln!("\n{}", terminal::qr(&digits));
    outln!(
        "Compare these 60 digits with {user} (in person, or over a call you trust), or scan the code."
    );
    if confirm {
        outln!("{} {user} is now verified.", paint(Style::Green, "✓"));
    } else if contact.verified {
        outln!("{} {user} is verified.", paint(Style::Green, "✓"));
    } else {
        outln!("If they match, run `sealroom verify @{user} --confirm`.");
    }
    Ok(())
}

/// The safety number with `user` as lines (for `/verify` in a chat).
pub(super) fn describe(
    profile: &crate::profile::Profile,
    user: &str,
) -> anyhow::Result<Vec<String>> {
    let me = profile.identity_public()?;
    let Some(them) = profile
        .contacts
        .get(user)
        .and_then(crate::profile::Contact::identity)
    else {
        return Ok(vec![format!(
            "no key known for {user} yet: send a message first"
        )]);
    };
    let mut digits = [0u8; SAFETY_NUMBER_LEN];
    safety_number(&me, &profile.username, &them, user, &mut digits);
    let digits = String::from_utf8_lossy(&digits).into_owned();
    let groups: Vec<&str> = (0..12)
        .filter_map(|i| digits.get(i * 5..i * 5 + 5))
        .collect();
    let mut lines = vec![format!("Safety number with {user}:")];
    for row in groups.chunks(4) {
        lines.push(format!("    {}", row.join(" ")));
    }
    lines.extend(terminal::qr(&digits).lines().map(str::to_owned));
    lines.push(format!(
        "If it matches what {user} sees, run `sealroom verify @{user} --confirm`."
    ));
    Ok(lines)
}

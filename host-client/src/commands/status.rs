//! `sealroom status`: the account, server, pinned certificate, contacts and rooms.

use crate::cli::Global;
use crate::client::{Client, Home, unlock};
use crate::exit::{Exit, code_of};
use crate::known_servers::KnownServers;
use crate::terminal::outln;
use crate::terminal::{Style, paint};

pub(super) async fn run(g: &Global, offline: bool) -> anyhow::Result<()> {
    let home = Home::resolve(g.home.as_deref())?;
    let (lock, keystore, profile) = unlock(&home)?;
    let pin = match KnownServers::load(&home.known_servers())?.get(&profile.server) {
        Ok(p) => p.map(|p| p.to_string()),
        Err(e) => Some(format!("{e:#}")),
    };
    let (profile, session) = if offline || profile.token.is_none() {
        let s = if profile.token.is_none() {
            "logged out"
        } else {
            "not checked (--offline)"
        };
        (profile, s.to_owned())
    } else {
        let snapshot = profile.clone();
        match Client::resume(g, home.clone(), lock, keystore, profile).await {
            Ok(mut c) => {
                let _ = c.drain_queued().await;
                c.save()?;
                let p = c.profile.clone();
                c.close().await;
                (p, "active".to_owned())
            }
            // A changed certificate is an alarm, never a mere "unavailable": exit code 6.
            Err(e) if code_of(&e) == Exit::CertificateChanged as i32 => return Err(e),
            // Revoked: another device of the account started over (a new identity) or changed
            // the password, or the session ran out.
            Err(e) if code_of(&e) == Exit::Auth as i32 => (
                snapshot,
                "logged out by the server (the session expired or was revoked: another device \
                 started over with a new identity, or the password changed); run `sealroom login`"
                    .to_owned(),
            ),
            Err(e) => (snapshot, format!("unavailable: {e}")),
        }
    };
    let id = profile.identity_public()?;
    let half = String::from_utf8_lossy(&proto_core::party_fingerprint(&id, &profile.username))
        .into_owned();
    if g.json {
        let session_devices = |c: &crate::profile::Contact| -> Vec<u32> {
            c.devices
                .iter()
                .filter(|(_, d)| d.session.is_some())
                .map(|(id, _)| *id)
                .collect()
        };
        let contacts: Vec<_> = profile
            .contacts
            .iter()
            .filter(|(n, _)| **n != profile.username)
            .map(|(n, c)| {
                let devices = session_devices(c);
                serde_json::json!({"user": n, "verified": c.verified, "key_changed": c.key_changed,
                                   "session": c.session.is_some() || !devices.is_empty(),
                                   "session_devices": devices})
            })
            .collect();
        // Sessions with this account's other devices (sent transcripts go through them).
        let own_devices = profile
            .contacts
            .get(&profile.username)
            .map(session_devices)
            .unwrap_or_default();
        let rooms: Vec<_> = profile
            .rooms
            .iter()
            .map(|(n, r)| serde_json::json!({"room": n, "members": r.members, "admin": r.admin}))
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "username": profile.username,
                "server": profile.server,
                "certificate_pin": pin,
                "session": session,
                "token_expires": profile.token_expires,
                "identity_fingerprint": half,
                "device": profile.device_id,
                "one_time_prekeys_held": profile.one_time_prekeys.len(),
                "kem_prekeys_held": profile.kem_one_time.len(),
                "kem_prekeys_published": profile.kem_device.is_some(),
                "signed_prekey_age_days": crate::profile::now().saturating_sub(profile.signed_prekey_at) / 86_400,
                "unread": profile.unread_count(),
                "contacts": contacts,
                "own_session_devices": own_devices,
                "rooms": rooms,
                "home": home.dir,
            })
        );
        return Ok(());
    }
    outln!(
        "{} on {}",
        paint(Style::Bold, &profile.username),
        profile.server
    );
    outln!("  session:      {session}");
    if let Some(device) = profile.device_id {
        outln!("  this device:  {device} (`sealroom devices` lists them all)");
    }
    outln!(
        "  server key:   {}",
        pin.as_deref().unwrap_or("not pinned yet")
    );
    outln!("  your half of safety numbers: {half}");
    outln!("  keystore:     {}", home.keystore().display());
    outln!("  unread:       {}", profile.unread_count());
    outln!("  contacts:");
    // Our own account is listed among contacts only to hold sessions with our other devices.
    let contacts: Vec<_> = profile
        .contacts
        .iter()
        .filter(|(n, _)| **n != profile.username)
        .collect();
    if contacts.is_empty() {
        outln!("    (none)");
    }
    for (n, c) in contacts {
        let flag = if c.key_changed {
            paint(Style::Red, "KEY CHANGED — sending blocked")
        } else if c.verified {
            paint(Style::Green, "verified")
        } else {
            "not verified".to_owned()
        };
        outln!("    {n}: {flag}");
    }
    outln!("  rooms:");
    if profile.rooms.is_empty() {
        outln!("    (none)");
    }
    for (n, r) in &profile.rooms {
        outln!("    #{n}: {}", r.members.join(", "));
    }
    Ok(())
}

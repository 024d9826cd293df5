//! `sealroom devices`: this account's devices (PROTOCOL.md §3.4 messages 54–56); `devices
//! rename NAME`; `devices add CODE` (hand the account to a device being linked, §4.6);
//! `devices revoke ID`; and naming a new device at `register` / `login --new-device` / `link`
//! (`--device-name`, by default the host name).

use proto_core::limits::MAX_DEVICE_NAME;
use proto_core::{List, Message};

use crate::cli::Global;
use crate::client::{Client, expect_ok, refusal};
use crate::exit::{Exit, fail};
use crate::inert;
use crate::terminal::outln;
use crate::terminal::{Style, paint};

/// One device as listed.
struct Device {
    id: u32,
    name: String,
    added_at: u64,
    last_seen: u64,
    revoked_at: Option<u64>,
}

pub(super) async fn run(g: &Global) -> anyhow::Result<()> {
    let mut client = Client::open(g).await?;
    let _ = client.drain_queued().await?;
    let (current, devices) = client
        .link
        .request(&Message::ListDevices, |reply| match reply {
            Message::DeviceList { current, devices } => Ok((current, listed(&devices))),
            Message::Error { code, text } => Err(refusal(code, text)),
            other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
        })
        .await?;
    if g.json {
        let list: Vec<_> = devices
            .iter()
            .map(|d| {
                serde_json::json!({
                    "id": d.id,
                    "name": d.name,
                    "added_at": d.added_at,
                    "last_seen": d.last_seen,
                    "revoked_at": d.revoked_at,
                    "this_device": d.id == current,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({ "current": current, "devices": list })
        );
    } else {
        outln!(
            "{}",
            paint(
                Style::Bold,
                &format!(
                    "{:<4} {:<24} {:<17} {:<17} {}",
                    "ID", "NAME", "ADDED", "LAST SEEN", "STATUS"
                )
            )
        );
        for d in &devices {
            let status = match d.revoked_at {
                Some(at) => paint(Style::Dim, &format!("revoked {}", date(at))),
                None if d.id == current => paint(Style::Green, "this device"),
                None => "active".to_owned(),
            };
            let name = if d.name.is_empty() {
                "(unnamed)".to_owned()
            } else {
                inert::line(&d.name)
            };
            outln!(
                "{:<4} {:<24} {:<17} {:<17} {status}",
                d.id,
                name,
                date(d.added_at),
                date(d.last_seen),
            );
        }
    }
    client.close().await;
    Ok(())
}

fn listed(devices: &List<'_, proto_core::DeviceInfo<'_>>) -> Vec<Device> {
    devices
        .iter()
        .map(|d| Device {
            id: d.device_id,
            name: d.name.to_owned(),
            added_at: d.added_at,
            last_seen: d.last_seen,
            revoked_at: d.revoked_at,
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM` (UTC) for Unix seconds.
fn date(at: u64) -> String {
    match i64::try_from(at)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
    {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        None => at.to_string(),
    }
}

/// Names a device that was just set up (registered, or started over): `name`, or else the host
/// name. The account and keys are in place by then, so a refusal is a warning, not a failure.
pub(super) async fn name_new_device(client: &mut Client, name: Option<&str>) {
    if let Err(e) = name_this_device(client, name).await {
        crate::terminal::warn(&format!(
            "this device could not name itself ({e:#}); name it with `sealroom devices rename \
             NAME`"
        ));
    }
}

/// `sealroom devices rename NAME`.
pub(super) async fn rename(g: &Global, name: &str) -> anyhow::Result<()> {
    let mut client = Client::open(g).await?;
    let _ = client.drain_queued().await?;
    name_this_device(&mut client, Some(name)).await?;
    if g.json {
        outln!(
            "{}",
            serde_json::json!({ "event": "device_renamed", "name": name.trim() })
        );
    } else {
        outln!(
            "{} This device is now called {}.",
            paint(Style::Green, "✓"),
            inert::line(name.trim())
        );
    }
    client.close().await;
    Ok(())
}

/// Names this device on the server: `name`, or else the host name. A name the server refuses
/// (empty, too long, control characters) fails with the reason (exit 2).
async fn name_this_device(client: &mut Client, name: Option<&str>) -> anyhow::Result<()> {
    let name = match name {
        Some(n) => n.to_owned(),
        None => default_name(),
    };
    client
        .link
        .request(&Message::NameDevice { name: &name }, expect_ok)
        .await
}

/// `sealroom devices add CODE`: seals this account's identity and contacts to the code a new
/// device shows (`sealroom link`, or the browser) and leaves it on the server for that device.
pub(super) async fn add(g: &Global, code: &str) -> anyhow::Result<()> {
    let code = crate::link_state::parse_code(code)?;
    if crate::terminal::stdin_is_tty() {
        crate::terminal::warn(
            "The device showing this code gets this account's identity and contacts: it can \
             read and send as you. Only add a device you set up yourself, just now.",
        );
        let answer = crate::terminal::ask("Add that device to your account? [y/N]")?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return fail(Exit::Failure, "not added; nothing was sent");
        }
    }
    let mut client = Client::open(g).await?;
    let _ = client.drain_queued().await?;
    let state = crate::link_state::LinkState::of(&client.profile);
    let contacts = state.contacts.len();
    let message = state.seal(&code)?;
    drop(state);
    let link_id = code.link_id();
    client
        .link
        .request(
            &Message::SendLink {
                link_id: &link_id,
                message: &message,
            },
            expect_ok,
        )
        .await?;
    if g.json {
        outln!(
            "{}",
            serde_json::json!({ "event": "link_sent", "contacts": contacts })
        );
    } else {
        outln!(
            "{} Sent this account's identity and {contacts} contact{} to the new device, sealed \
             to its code (the server cannot read it). It finishes on its own within 10 \
             minutes; `sealroom devices` lists it then.",
            paint(Style::Green, "✓"),
            if contacts == 1 { "" } else { "s" }
        );
    }
    client.close().await;
    Ok(())
}

/// `sealroom devices revoke ID`: logs that device out at once; its keys and waiting messages
/// are deleted, and contacts stop encrypting to it.
pub(super) async fn revoke(g: &Global, id: u32) -> anyhow::Result<()> {
    let mut client = Client::open(g).await?;
    let _ = client.drain_queued().await?;
    client
        .link
        .request(&Message::RevokeDevice { device: id }, expect_ok)
        .await?;
    if g.json {
        outln!(
            "{}",
            serde_json::json!({ "event": "device_revoked", "device": id })
        );
    } else {
        outln!(
            "{} Device {id} is revoked: it was logged out, its keys and waiting messages are \
             deleted, and your contacts stop writing to it.",
            paint(Style::Green, "✓")
        );
    }
    client.close().await;
    Ok(())
}

/// The host name, made fit for a device name (control characters dropped, at most
/// [`MAX_DEVICE_NAME`] characters); "terminal" if there is none.
pub(super) fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = host
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_DEVICE_NAME)
        .collect();
    if name.is_empty() {
        "terminal".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::date;

    #[test]
    fn dates_are_utc_minutes() {
        assert_eq!(date(0), "1970-01-01 00:00");
        assert_eq!(date(1_796_211_175), "2026-12-02 11:32");
        assert_eq!(date(1_764_000_000), "2025-11-24 16:00");
    }
}

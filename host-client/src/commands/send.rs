//! `sealroom send @user|#room TEXT`: one message, then exit.

use core::time::Duration;
use std::time::Instant;

use crate::cli::{Global, Target};
use crate::client::{Client, Notice};
use crate::exit::{Exit, fail};
use crate::terminal;
use crate::terminal::outln;

pub(super) async fn run(g: &Global, target: &str, text: &str, wait: u64) -> anyhow::Result<()> {
    let target = Target::parse(target)?;
    let mut client = Client::open(g).await?;
    let text = if text == "-" {
        terminal::read_rest()?
            .trim_end_matches(['\n', '\r'])
            .to_owned()
    } else {
        text.to_owned()
    };
    if text.trim().is_empty() {
        return fail(Exit::Failure, "nothing to send: the text is empty");
    }
    let mut notices = client.drain_queued().await?;
    let entry = match &target {
        Target::User(u) => client.send_text_to(u, &text).await?,
        Target::Room(r) => {
            let (e, n) = client.send_text_to_room(r, &text).await?;
            notices.extend(n);
            e
        }
    };
    if !g.json {
        outln!("{}", crate::client::render_entry(&entry));
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    // Waits for every device it went to (a receipt per device: "delivered to 1 of 2 devices").
    let mut receipt: Option<crate::profile::Entry> = None;
    while !receipt.as_ref().is_some_and(|e| e.delivered_everywhere()) && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        for n in client
            .pump(left.min(Duration::from_millis(500)), left)
            .await?
        {
            if let Notice::Delivered(e) = &n
                && e.server_id == entry.server_id
            {
                if !g.json {
                    outln!("{}", n.render());
                }
                receipt = Some(e.clone());
            } else {
                notices.push(n);
            }
        }
    }
    let delivered = receipt.is_some();
    notices.extend(client.drain_queued().await?);
    for n in notices {
        if let Notice::Warning(w) = n {
            terminal::warn(&w);
        }
    }
    if g.json {
        let mut v = crate::client::entry_json(receipt.as_ref().unwrap_or(&entry));
        v["state"] = if delivered {
            "delivered".into()
        } else {
            "sent".into()
        };
        outln!("{v}");
    }
    let unread = client.profile.unread_count();
    if unread > 0 && !g.json {
        terminal::note(&format!("({unread} unread: `sealroom inbox`)"));
    }
    client.close().await;
    Ok(())
}

//! `sealroom inbox`: fetch what is waiting, store it, acknowledge it, print it.

use core::time::Duration;

use crate::cli::Global;
use crate::client::{Client, Notice, entry_json, render_entry};
use crate::terminal;
use crate::terminal::outln;

pub(super) async fn run(g: &Global, all: bool, wait: u64) -> anyhow::Result<()> {
    let mut client = Client::open(g).await?;
    let mut notices = client.release_verified().await?;
    notices.extend(
        client
            .pump(
                Duration::from_millis(1_500),
                Duration::from_secs(wait.max(1)),
            )
            .await?,
    );
    let shown: Vec<_> = client
        .profile
        .history
        .iter()
        .filter(|e| all || e.unread)
        .cloned()
        .collect();
    for e in client.profile.history.iter_mut() {
        e.unread = false;
    }
    client.save()?;
    let receipts: Vec<_> = notices
        .iter()
        .filter_map(|n| {
            if let Notice::Delivered(e) = n {
                Some(e.clone())
            } else {
                None
            }
        })
        .collect();
    let warnings: Vec<String> = notices
        .iter()
        .filter_map(|n| match n {
            Notice::Warning(w) | Notice::Room(w) => Some(w.clone()),
            Notice::Invited(i) => Some(format!("{} invited you to #{}", i.from, i.room)),
            _ => None,
        })
        .collect();
    let invitations: Vec<_> = notices
        .iter()
        .filter_map(|n| match n {
            Notice::Invited(i) => Some(serde_json::json!({ "room": i.room, "from": i.from })),
            _ => None,
        })
        .collect();
    if g.json {
        outln!(
            "{}",
            serde_json::json!({
                "messages": shown.iter().map(entry_json).collect::<Vec<_>>(),
                "delivered": receipts.iter().map(entry_json).collect::<Vec<_>>(),
                "notices": warnings,
                "invitations": invitations,
            })
        );
    } else {
        for n in &notices {
            match n {
                Notice::Warning(w) | Notice::Room(w) => terminal::warn(w),
                Notice::Invited(_) => outln!("{}", n.render()),
                _ => {}
            }
        }
        for e in &receipts {
            outln!("{}", Notice::Delivered(e.clone()).render());
        }
        if shown.is_empty() {
            outln!("No new messages.");
        }
        for e in &shown {
            outln!("{}", render_entry(e));
        }
    }
    client.close().await;
    Ok(())
}

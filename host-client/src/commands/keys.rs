//! `sealroom keys`: a new signed prekey (and last-resort KEM prekey), and one-time prekeys
//! (X25519 and KEM) topped up.
//!
//! The signed prekey is also replaced by itself on any connection once it is a week old.

use crate::cli::Global;
use crate::client::Client;
use crate::terminal::outln;
use crate::terminal::{Style, paint};

pub(super) async fn run(g: &Global) -> anyhow::Result<()> {
    let mut client = Client::open(g).await?;
    let _ = client.drain_queued().await?;
    let id = client.publish_new_signed_prekey().await?;
    // The server tells how many one-time prekeys it holds only when they run low, so a full
    // batch is offered (a server already at its maximum refuses it, which is fine).
    let added = client.refill_prekeys(0).await?;
    let kem_added = client.refill_kem_prekeys(0).await?;
    if g.json {
        outln!(
            "{}",
            serde_json::json!({
                "signed_prekey_id": id,
                "one_time_prekeys_uploaded": added,
                "kem_prekeys_uploaded": kem_added,
            })
        );
    } else {
        outln!(
            "{} New signed prekey #{id} and last-resort KEM prekey published; {added} one-time \
             prekeys and {kem_added} one-time KEM prekeys uploaded.",
            paint(Style::Green, "✓"),
        );
    }
    client.close().await;
    Ok(())
}

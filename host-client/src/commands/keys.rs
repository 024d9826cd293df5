//! `sealroom keys`: a new signed prekey, and one-time prekeys topped up.

use proto_core::{Key32, Message, Sig64, SignedPrekey};

use crate::cli::Global;
use crate::client::{Client, expect_ok};
use crate::profile::now;
use crate::terminal::{Style, paint};

pub(super) async fn run(g: &Global) -> anyhow::Result<()> {
    let mut client = Client::open(g).await?;
    let _ = client.drain_queued().await?;
    let spk = client.profile.rotate_signed_prekey(now())?.public();
    // Saved before publishing, so the secret of a published key is never lost.
    client.save()?;
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
    // The server tells how many one-time prekeys it holds only when they run low, so a full
    // batch is uploaded (the server caps what it keeps).
    let added = client.refill_prekeys(0).await?;
    println!(
        "{} New signed prekey #{} published; {added} one-time prekeys uploaded.",
        paint(Style::Green, "✓"),
        spk.id
    );
    client.close().await;
    Ok(())
}

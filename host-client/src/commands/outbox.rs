//! The chat's outbox: lines typed while the connection is down wait in the keystore
//! ([`crate::profile::Profile::outbox`]) and are sent, in the order typed, once it is back — or
//! by the next `chat`, if this one ends first. Nothing typed is dropped silently: a line the
//! server refuses when it is finally sent (no such user any more, a changed key) is shown with
//! the reason.

use crate::cli::Target;
use crate::client::{Client, render_entry};
use crate::exit::{Exit, code_of, fail};
use crate::profile::{OUTBOX_LIMIT, Queued, now};

/// Puts `text` for `conversation` in the outbox (saved at once); returns how many lines wait.
pub(super) fn queue(client: &mut Client, conversation: &str, text: &str) -> anyhow::Result<usize> {
    if client.profile.outbox.len() >= OUTBOX_LIMIT {
        return fail(
            Exit::Failure,
            format!("the outbox is full ({OUTBOX_LIMIT} lines wait); not kept: {text}"),
        );
    }
    client.profile.outbox.push_back(Queued {
        conversation: conversation.to_owned(),
        text: text.to_owned(),
        at: now(),
    });
    client.save()?;
    Ok(client.profile.outbox.len())
}

/// Sends what waits in the outbox, oldest first, each removed (and saved) once the server
/// accepted it. Stops at a network failure, keeping the rest (returned as the error); a line
/// refused for any other reason is reported through `show` and dropped.
pub(super) async fn flush(
    client: &mut Client,
    mut show: impl FnMut(String),
) -> anyhow::Result<usize> {
    let mut sent = 0usize;
    // Bounded by the outbox's length: each turn removes one line.
    while let Some(next) = client.profile.outbox.front().cloned() {
        let result = match Target::parse(&next.conversation) {
            Ok(Target::User(u)) => client
                .send_text_to(&u, &next.text)
                .await
                .map(|e| (e, vec![])),
            Ok(Target::Room(r)) => client.send_text_to_room(&r, &next.text).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((entry, notices)) => {
                for n in notices {
                    show(n.render());
                }
                show(render_entry(&entry));
                sent += 1;
            }
            Err(e) if code_of(&e) == Exit::Network as i32 => return Err(e),
            Err(e) => show(format!("not sent (from the outbox): {}: {e:#}", next.text)),
        }
        client.profile.outbox.pop_front();
        client.save()?;
    }
    Ok(sent)
}

/// What the chat prints about the outbox after a line was queued.
pub(super) fn queued_line(text: &str, waiting: usize) -> String {
    let lines = if waiting == 1 { "line" } else { "lines" };
    format!(
        "offline: queued \"{text}\" ({waiting} {lines} waiting); it goes when the connection is \
         back. Enter retries now, /quit keeps it for the next chat."
    )
}

#[cfg(test)]
mod tests {
    use super::queued_line;

    #[test]
    fn queued_lines_are_counted_in_words() {
        assert!(queued_line("hi", 1).contains("(1 line waiting)"));
        assert!(queued_line("hi", 2).contains("(2 lines waiting)"));
    }
}

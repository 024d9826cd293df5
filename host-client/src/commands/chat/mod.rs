//! `sealroom chat @user|#room`: a live conversation. Incoming messages are printed above the
//! line being typed (rustyline's external printer on a terminal; plain lines otherwise).
//!
//! Lines go through a channel from an input thread ([`input`]), so the network side never
//! waits on the keyboard; [`slash`] runs each line (a `/command` or a text). While the
//! connection is down, texts wait in the outbox (`super::outbox`) and Enter retries at once.

mod input;
mod slash;

use core::time::Duration;

use crate::cli::{Global, Target};
use crate::client::{Client, Notice, render_entry};
use crate::exit::{Exit, code_of, fail};
use crate::terminal::outln;
use crate::terminal::{Style, paint};

use super::outbox;
use input::{Out, start_input};
use slash::{Flow, HELP, command_or_send, is_command, text_of};

pub(super) async fn run(g: &Global, target: &str) -> anyhow::Result<()> {
    let target = Target::parse(target)?;
    let mut client = Client::open(g).await?;
    let conversation = match &target {
        Target::User(u) => format!("@{u}"),
        Target::Room(r) => format!("#{r}"),
    };
    let mut early = client.drain_queued().await?;
    match &target {
        Target::User(u) => {
            if *u == client.profile.username {
                return fail(Exit::Usage, "that is you: chat with someone else");
            }
            if !client.profile.contacts.contains_key(u) {
                // A first chat: learn their key now, so a name that does not exist fails at
                // once rather than at the first line sent.
                client.fetch_bundle(u).await.map_err(|e| {
                    if code_of(&e) == Exit::Refused as i32 {
                        crate::exit::Failure::new(
                            Exit::Refused,
                            format!("cannot chat with @{u}: {e:#}"),
                        )
                        .into()
                    } else {
                        e
                    }
                })?;
                client.save()?;
            }
            if client
                .profile
                .contacts
                .get(u)
                .is_some_and(|c| c.key_changed)
            {
                early.push(Notice::Warning(format!(
                    "!!! {u}'s identity key CHANGED. You can read, but sending is blocked until you \
                     compare safety numbers (/verify) and confirm the number you compared with \
                     `sealroom verify @{u} --confirm NUMBER`."
                )));
            }
        }
        Target::Room(r) => match client.sync_room(r, false).await {
            Ok(n) => early.extend(n),
            Err(e) => {
                // Invited but not a member yet: say how to join rather than only "forbidden".
                let invited = client.list_invitations().await.unwrap_or_default();
                if let Some(i) = invited.iter().find(|i| i.room == *r) {
                    return fail(
                        Exit::Refused,
                        format!(
                            "you are invited to #{r} by {} but not a member yet: accept first \
                             with `sealroom rooms accept '#{r}'`",
                            i.from
                        ),
                    );
                }
                return Err(e);
            }
        },
    }
    let status = match &target {
        Target::User(u) => match client.profile.contacts.get(u) {
            Some(c) if c.verified => paint(Style::Green, "verified"),
            Some(c) if c.key_changed => paint(Style::Red, "KEY CHANGED"),
            _ => paint(
                Style::Yellow,
                "not verified: compare safety numbers with /verify",
            ),
        },
        Target::Room(r) => {
            let members = client
                .profile
                .rooms
                .get(r)
                .map(|e| e.members.join(", "))
                .unwrap_or_default();
            format!("members: {members}")
        }
    };
    outln!(
        "{} {} ({status})",
        paint(Style::Bold, "Chat with"),
        paint(Style::Bold, &conversation)
    );
    outln!("{}", paint(Style::Dim, HELP));
    // The recent history of this conversation, then what arrived while away.
    let recent: Vec<_> = client
        .profile
        .history
        .iter()
        .filter(|e| e.conversation == conversation)
        .rev()
        .take(20)
        .cloned()
        .collect();
    for e in recent.iter().rev() {
        outln!("{}", render_entry(e));
    }
    let (lines, mut out) = start_input(format!("{}> ", client.profile.username))?;
    for n in early {
        show(&mut out, &conversation, &n);
    }
    mark_read(&mut client, &conversation);
    // Lines an earlier chat queued while offline go first.
    let mut connected = send_outbox(&mut client, &mut out).await?;
    loop {
        if !connected {
            if !reconnect(&mut client, g, &lines, &mut out, &conversation).await? {
                break;
            }
            for n in client.drain_queued().await? {
                show(&mut out, &conversation, &n);
            }
            connected = send_outbox(&mut client, &mut out).await?;
            continue;
        }
        // Idle: other `sealroom` processes (a `send` in another terminal) may use the
        // keystore until something happens here.
        client.release()?;
        let next = smol::future::or(
            async { Either::Line(lines.recv().await.ok().flatten()) },
            async { Either::Push(client.link.next_push().await) },
        )
        .await;
        client.hold().await?;
        match next {
            Either::Push(Err(e)) if code_of(&e) == Exit::Network as i32 => {
                out.line(&paint(
                    Style::Yellow,
                    &format!("connection lost ({e}); reconnecting…"),
                ));
                connected = false;
            }
            Either::Push(push) => {
                for n in client.handle_push(push?).await? {
                    show(&mut out, &conversation, &n);
                }
                mark_read(&mut client, &conversation);
            }
            Either::Line(None) => break,
            Either::Line(Some(line)) => {
                let line = line.trim().to_owned();
                if line.is_empty() {
                    continue;
                }
                if line == "/quit" || line == "/exit" {
                    break;
                }
                match command_or_send(&mut client, &target, &line, &mut out).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::End) => break,
                    Err(e) => {
                        if code_of(&e) == Exit::Network as i32 {
                            out.line(&paint(
                                Style::Yellow,
                                &format!("connection lost ({e}); reconnecting…"),
                            ));
                            if !is_command(&line) {
                                // Kept, and sent again once the connection is back.
                                let waiting =
                                    outbox::queue(&mut client, &conversation, text_of(&line))?;
                                out.line(&paint(
                                    Style::Yellow,
                                    &outbox::queued_line(text_of(&line), waiting),
                                ));
                            }
                            connected = false;
                            continue;
                        }
                        // A refused send or command is shown; the chat goes on.
                        let what = if is_command(&line) {
                            "failed"
                        } else {
                            "not sent"
                        };
                        out.line(&paint(Style::Red, &format!("{what}: {e}")));
                    }
                }
                let queued = client.drain_queued().await?;
                for n in queued {
                    show(&mut out, &conversation, &n);
                }
            }
        }
    }
    mark_read(&mut client, &conversation);
    client.save()?;
    client.close().await;
    Ok(())
}

/// Sends the outbox; `Ok(false)` when the connection dropped meanwhile (the rest waits).
async fn send_outbox(client: &mut Client, out: &mut Out) -> anyhow::Result<bool> {
    if client.profile.outbox.is_empty() {
        return Ok(true);
    }
    let waiting = client.profile.outbox.len();
    out.line(&paint(
        Style::Dim,
        &format!("sending {waiting} queued from the outbox…"),
    ));
    match outbox::flush(client, |l| out.line(&l)).await {
        Ok(_) => Ok(true),
        Err(e) if code_of(&e) == Exit::Network as i32 => {
            out.line(&paint(
                Style::Yellow,
                &format!("connection lost ({e}); reconnecting…"),
            ));
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Reconnects with growing pauses (1 s, doubling to 15 s) until it works; a line typed
/// meanwhile is queued in the outbox and, like a bare Enter, retries at once. `/quit` (or the
/// end of input) ends the chat (`Ok(false)`), the outbox kept for the next one. A changed
/// certificate or an expired session ends it with that error.
async fn reconnect(
    client: &mut Client,
    g: &Global,
    lines: &smol::channel::Receiver<Option<String>>,
    out: &mut Out,
    conversation: &str,
) -> anyhow::Result<bool> {
    let mut pause = Duration::from_secs(1);
    // Each turn is one attempt, then a pause that the person can cut short; it ends when the
    // connection is back or the person leaves.
    loop {
        client.hold().await?;
        match client.reconnect(g).await {
            Ok(()) => {
                out.line(&paint(Style::Green, "reconnected"));
                return Ok(true);
            }
            Err(e) if code_of(&e) == Exit::Network as i32 => {}
            Err(e) => return Err(e),
        }
        out.line(&paint(
            Style::Dim,
            &format!(
                "offline; retrying in {} s (Enter retries now)",
                pause.as_secs()
            ),
        ));
        client.release()?;
        let deadline = std::time::Instant::now() + pause;
        let mut now_please = false;
        while !now_please
            && let Some(left) = deadline.checked_duration_since(std::time::Instant::now())
        {
            let line = smol::future::or(async { Some(lines.recv().await.ok().flatten()) }, async {
                smol::Timer::after(left).await;
                None
            })
            .await;
            match line {
                None => break,
                Some(None) => {
                    client.hold().await?;
                    return Ok(false);
                }
                Some(Some(l)) => {
                    client.hold().await?;
                    let l = l.trim();
                    if l == "/quit" || l == "/exit" {
                        return Ok(false);
                    }
                    if is_command(l) {
                        out.line(&paint(
                            Style::Yellow,
                            &format!("offline: {l} needs the connection; try it once reconnected"),
                        ));
                    } else if !l.is_empty() {
                        let waiting = outbox::queue(client, conversation, text_of(l))?;
                        out.line(&paint(
                            Style::Yellow,
                            &outbox::queued_line(text_of(l), waiting),
                        ));
                    }
                    out.line(&paint(Style::Dim, "retrying now…"));
                    now_please = true;
                }
            }
        }
        if !now_please {
            pause = (pause * 2).min(Duration::from_secs(15));
        }
    }
}

enum Either {
    Line(Option<String>),
    Push(anyhow::Result<crate::link::Push>),
}

fn show(out: &mut Out, conversation: &str, n: &Notice) {
    match n {
        Notice::Invited(i) => out.line(&paint(
            Style::Yellow,
            &format!(
                "* {} invited you to #{room}: /accept #{room} to join, /decline #{room} to refuse",
                i.from,
                room = i.room
            ),
        )),
        Notice::Message(e) if e.conversation != conversation => {
            out.line(&paint(
                Style::Dim,
                &format!("(new message in {} from {})", e.conversation, e.from),
            ));
        }
        _ => out.line(&n.render()),
    }
}

fn mark_read(client: &mut Client, conversation: &str) {
    for e in client
        .profile
        .history
        .iter_mut()
        .filter(|e| e.conversation == conversation)
    {
        e.unread = false;
    }
}

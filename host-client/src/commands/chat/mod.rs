//! `sealroom chat @user|#room`: a live conversation. Incoming messages are printed above the
//! line being typed (rustyline's external printer on a terminal; plain lines otherwise).
//!
//! Lines go through a channel from an input thread, so the network side never waits on the
//! keyboard. `/quit`, `/verify`, `/members`, `/invite @user`, `/accept #room`, `/decline #room`,
//! `/invitations`, `/help`.

use crate::cli::{Global, Target, room_arg, user_name};
use crate::client::{Client, Notice, render_entry};
use core::time::Duration;

use crate::exit::{Exit, code_of, fail};
use crate::terminal::outln;
use crate::terminal::{self, Style, paint};

/// Where chat output goes: above the prompt on a terminal, plain stdout otherwise.
enum Out {
    Editor(Box<dyn rustyline::ExternalPrinter + Send>),
    Plain,
}

impl Out {
    fn line(&mut self, text: &str) {
        match self {
            Out::Editor(p) => {
                if p.print(format!("{text}\n")).is_err() {
                    outln!("{text}");
                }
            }
            Out::Plain => outln!("{text}"),
        }
    }
}

/// Starts the input thread; returns the line receiver and the output.
fn start_input(prompt: String) -> anyhow::Result<(smol::channel::Receiver<Option<String>>, Out)> {
    let (tx, rx) = smol::channel::unbounded();
    if terminal::stdin_is_tty() {
        let mut editor = rustyline::DefaultEditor::new()?;
        let printer = editor.create_external_printer()?;
        std::thread::spawn(move || {
            loop {
                match editor.readline(&prompt) {
                    Ok(line) => {
                        let _ = editor.add_history_entry(line.as_str());
                        if tx.send_blocking(Some(line)).is_err() {
                            return;
                        }
                    }
                    Err(rustyline::error::ReadlineError::Interrupted) => {
                        let _ = tx.send_blocking(Some("/quit".into()));
                        return;
                    }
                    Err(_) => {
                        let _ = tx.send_blocking(None);
                        return;
                    }
                }
            }
        });
        Ok((rx, Out::Editor(Box::new(printer))))
    } else {
        std::thread::spawn(move || {
            loop {
                match terminal::read_line() {
                    Ok(Some(line)) => {
                        if tx.send_blocking(Some(line.to_string())).is_err() {
                            return;
                        }
                    }
                    _ => {
                        let _ = tx.send_blocking(None);
                        return;
                    }
                }
            }
        });
        Ok((rx, Out::Plain))
    }
}

const HELP: &str = "/quit leave · /verify safety number · /members room members · /invite @user \
                    invite to the room · /accept #room, /decline #room answer an invitation · \
                    /invitations · /help";

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
            if client
                .profile
                .contacts
                .get(u)
                .is_some_and(|c| c.key_changed)
            {
                early.push(Notice::Warning(format!(
                    "!!! {u}'s identity key CHANGED. You can read, but sending is blocked until you \
                     compare safety numbers (/verify) and run `sealroom verify @{u} --confirm`."
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
    let mut connected = true;
    loop {
        if !connected {
            if !reconnect(&mut client, g, &lines, &mut out).await? {
                break;
            }
            connected = true;
            for n in client.drain_queued().await? {
                show(&mut out, &conversation, &n);
            }
            continue;
        }
        let next = smol::future::or(
            async { Either::Line(lines.recv().await.ok().flatten()) },
            async { Either::Push(client.link.next_push().await) },
        )
        .await;
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
                if let Err(e) = command_or_send(&mut client, &target, &line, &mut out).await {
                    if code_of(&e) == Exit::Network as i32 {
                        out.line(&paint(
                            Style::Yellow,
                            &format!("not sent: connection lost ({e}); reconnecting…"),
                        ));
                        connected = false;
                        continue;
                    }
                    // A refused send or command is shown; the chat goes on.
                    let what = if line.starts_with('/') && !line.starts_with("//") {
                        "failed"
                    } else {
                        "not sent"
                    };
                    out.line(&paint(Style::Red, &format!("{what}: {e}")));
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

/// Reconnects with growing pauses until it works; `/quit` meanwhile ends the chat
/// (`Ok(false)`). A changed certificate or an expired session ends it with that error.
async fn reconnect(
    client: &mut Client,
    g: &Global,
    lines: &smol::channel::Receiver<Option<String>>,
    out: &mut Out,
) -> anyhow::Result<bool> {
    let mut pause = Duration::from_secs(1);
    loop {
        match client.reconnect(g).await {
            Ok(()) => {
                out.line(&paint(Style::Green, "reconnected"));
                return Ok(true);
            }
            Err(e) if code_of(&e) == Exit::Network as i32 => {}
            Err(e) => return Err(e),
        }
        let deadline = std::time::Instant::now() + pause;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let line = smol::future::or(async { Some(lines.recv().await.ok().flatten()) }, async {
                smol::Timer::after(left).await;
                None
            })
            .await;
            match line {
                None => break,
                Some(None) => return Ok(false),
                Some(Some(l)) if l.trim() == "/quit" || l.trim() == "/exit" => return Ok(false),
                Some(Some(l)) => out.line(&paint(Style::Red, &format!("offline, not sent: {l}"))),
            }
        }
        pause = (pause * 2).min(Duration::from_secs(15));
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

async fn command_or_send(
    client: &mut Client,
    target: &Target,
    line: &str,
    out: &mut Out,
) -> anyhow::Result<()> {
    let (cmd, arg) = line
        .split_once(' ')
        .map_or((line, ""), |(c, a)| (c, a.trim()));
    match (cmd, target) {
        ("/help", _) => out.line(HELP),
        ("/verify", Target::User(u)) => {
            for l in super::verify::describe(&client.profile, u)? {
                out.line(&l);
            }
        }
        ("/verify", Target::Room(_)) => {
            out.line("use /verify in a one-to-one chat, or `sealroom verify @user`")
        }
        ("/members", Target::Room(r)) => {
            let (admin, members) = client.list_members(r).await?;
            let list: Vec<String> = members
                .iter()
                .map(|m| {
                    if *m == admin {
                        format!("{m} (admin)")
                    } else {
                        m.clone()
                    }
                })
                .collect();
            out.line(&format!("members of #{r}: {}", list.join(", ")));
        }
        ("/members", Target::User(u)) => out.line(&format!("a one-to-one chat: you and {u}")),
        ("/invite", Target::Room(r)) if !arg.is_empty() => {
            let user = user_name(arg)?;
            client.invite(r, &user).await?;
            out.line(&format!(
                "invited {user} to #{r}; they join when they accept"
            ));
        }
        ("/invite", _) => out.line("usage in a room chat: /invite @user"),
        ("/accept", _) if !arg.is_empty() => {
            let room = room_arg(arg)?;
            for n in client.accept_invite(room).await? {
                out.line(&n.render());
            }
            out.line(&format!(
                "joined #{room}; talk there with `sealroom chat '#{room}'`"
            ));
        }
        ("/decline", _) if !arg.is_empty() => {
            let room = room_arg(arg)?;
            client.decline_invite(room).await?;
            out.line(&format!("declined the invitation to #{room}"));
        }
        ("/accept" | "/decline", _) => out.line(&format!("usage: {cmd} #room")),
        ("/invitations", _) => {
            let waiting = client.list_invitations().await?;
            if waiting.is_empty() {
                out.line("no invitations waiting");
            }
            for i in waiting {
                out.line(&format!(
                    "#{} (invited by {}): /accept #{} or /decline #{}",
                    i.room, i.from, i.room, i.room
                ));
            }
        }
        (c, _) if c.starts_with('/') && !c.starts_with("//") => {
            out.line(&format!("unknown command {c}; {HELP}"));
        }
        _ => {
            // `//text` sends a text that starts with a slash.
            let text = line
                .strip_prefix('/')
                .filter(|t| t.starts_with('/'))
                .unwrap_or(line);
            let entry = match target {
                Target::User(u) => client.send_text_to(u, text).await?,
                Target::Room(r) => {
                    let (e, notices) = client.send_text_to_room(r, text).await?;
                    for n in notices {
                        out.line(&n.render());
                    }
                    e
                }
            };
            out.line(&render_entry(&entry));
        }
    }
    Ok(())
}

//! What a line typed in the chat does: a `/command`, or a text sent to the conversation.
//!
//! `/quit`, `/verify`, `/members`, `/invite @user`, `/remove @user`, `/leave`, `/accept #room`,
//! `/decline #room`, `/invitations`, `/help`; `//text` sends a text starting with a slash.

use crate::cli::{Target, room_arg, user_name};
use crate::client::{Client, Notice, render_entry};

use super::input::Out;

/// The commands, in one line.
pub(super) const HELP: &str = "/quit · /verify safety number · /members · /invite @user · \
                               /remove @user (admin) · /leave the room · /accept #room, \
                               /decline #room answer an invitation · /invitations · /help";

/// Whether the chat goes on after a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    /// Keep chatting.
    Continue,
    /// The chat is over (we left the room).
    End,
}

/// Whether a chat line is a command (`/…`; `//…` is a text starting with a slash).
pub(super) fn is_command(line: &str) -> bool {
    line.starts_with('/') && !line.starts_with("//")
}

/// The text a line sends: `//text` sends `/text`.
pub(super) fn text_of(line: &str) -> &str {
    line.strip_prefix('/')
        .filter(|t| t.starts_with('/'))
        .unwrap_or(line)
}

/// `alice (admin), bob`: the members of a room as last listed.
/// `members of #r: …` from the room's signed member list.
async fn members_line(client: &mut Client, r: &str) -> anyhow::Result<String> {
    let (signed, notices) = client.signed_members(r).await?;
    let mut line: Vec<String> = notices.iter().map(Notice::render).collect();
    line.push(match signed {
        Some(v) => {
            let mut line = format!("members of #{r}: {}", roster(&v.admins, &v.members));
            if !v.invited.is_empty() {
                line.push_str(&format!("; invited: {}", v.invited.join(", ")));
            }
            line
        }
        None => format!("#{r}: no signed member list yet (an admin sends it when they add you)"),
    });
    Ok(line.join("\n"))
}

fn roster(admins: &[String], members: &[String]) -> String {
    let list: Vec<String> = members
        .iter()
        .map(|m| {
            if admins.contains(m) {
                format!("{m} (admin)")
            } else {
                m.clone()
            }
        })
        .collect();
    list.join(", ")
}

/// Runs one typed line (not `/quit`).
pub(super) async fn command_or_send(
    client: &mut Client,
    target: &Target,
    line: &str,
    out: &mut Out,
) -> anyhow::Result<Flow> {
    let (cmd, arg) = line
        .split_once(' ')
        .map_or((line, ""), |(c, a)| (c, a.trim()));
    match (cmd, target) {
        ("/help", _) => out.line(HELP),
        ("/verify", Target::User(u)) => {
            for l in crate::commands::verify::describe(&client.profile, u)? {
                out.line(&l);
            }
        }
        ("/verify", Target::Room(_)) => out.line(
            "rooms have no safety number of their own: verify each member with \
             `sealroom verify @user` (/members lists them)",
        ),
        ("/members", Target::Room(r)) => {
            out.line(&members_line(client, r).await?);
        }
        ("/members", Target::User(u)) => out.line(&format!("a one-to-one chat: you and {u}")),
        ("/invite", Target::Room(r)) if !arg.is_empty() => {
            let user = user_name(arg)?;
            for n in client.invite(r, &user).await? {
                out.line(&n.render());
            }
            out.line(&format!(
                "invited {user} to #{r}; they get the room key when they accept"
            ));
        }
        ("/remove", Target::Room(r)) if !arg.is_empty() => {
            let user = user_name(arg)?;
            for n in client.remove(r, &user).await? {
                out.line(&n.render());
            }
            out.line(&format!(
                "removed {user} from #{r}; the room key was replaced"
            ));
            out.line(&members_line(client, r).await?);
        }
        ("/invite" | "/remove", Target::Room(_)) => out.line(&format!("usage: {cmd} @user")),
        ("/invite" | "/remove" | "/leave", Target::User(_)) => {
            out.line(&format!(
                "{cmd} works in a room chat (`sealroom chat '#room'`)"
            ));
        }
        ("/leave", Target::Room(r)) => {
            client.leave(r).await?;
            out.line(&format!(
                "left #{r}; the others switch to a new room key. The chat ends."
            ));
            return Ok(Flow::End);
        }
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
        (c, _) if is_command(c) => {
            out.line(&format!("unknown command {c}; {HELP}"));
        }
        _ => {
            let entry = match target {
                Target::User(u) => client.send_text_to(u, text_of(line)).await?,
                Target::Room(r) => {
                    let (e, notices) = client.send_text_to_room(r, text_of(line)).await?;
                    for n in notices {
                        out.line(&n.render());
                    }
                    e
                }
            };
            out.line(&render_entry(&entry));
        }
    }
    Ok(Flow::Continue)
}

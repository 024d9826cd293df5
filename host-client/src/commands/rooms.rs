//! `sealroom rooms create|invite|invitations|accept|decline|leave|remove|list|members`.

use core::time::Duration;

use crate::cli::{Global, RoomsCommand, room_arg, user_name};
use crate::client::{Client, Notice};
use crate::inert;
use crate::terminal::outln;
use crate::terminal::{self, Style, paint};

/// Prints room notices for a person; with `--json` they are kept for the one JSON line.
fn show(notices: &[Notice], json: bool, kept: &mut Vec<String>) {
    if json {
        kept.extend(notices.iter().filter_map(|n| match n {
            Notice::Warning(w) | Notice::Room(w) => Some(w.clone()),
            Notice::Invited(i) => Some(format!("{} invited you to #{}", i.from, i.room)),
            _ => None,
        }));
        return;
    }
    for n in notices {
        match n {
            Notice::Warning(w) => terminal::warn(w),
            Notice::Room(_) | Notice::Invited(_) => outln!("{}", n.render()),
            _ => {}
        }
    }
}

pub(super) async fn run(g: &Global, cmd: RoomsCommand) -> anyhow::Result<()> {
    let mut client = Client::open(g).await?;
    let json = g.json;
    let mut kept = Vec::new();
    let early = client.drain_queued().await?;
    show(&early, json, &mut kept);
    // With --json, the one line printed at the end.
    let mut out = serde_json::Value::Null;
    match cmd {
        RoomsCommand::Create { room } => {
            let room = room_arg(&room)?;
            let n = client.create_room(room).await?;
            show(&n, json, &mut kept);
            out = serde_json::json!({ "event": "created", "room": room });
            human(json, || {
                outln!(
                    "{} Created #{room}. Invite people with `sealroom rooms invite {room} @user`.",
                    paint(Style::Green, "✓")
                )
            });
        }
        RoomsCommand::Invite { room, user } => {
            let (room, user) = (room_arg(&room)?, user_name(&user)?);
            let n = client.invite(room, &user).await?;
            show(&n, json, &mut kept);
            out = serde_json::json!({ "event": "invited", "room": room, "user": user });
            human(json, || {
                outln!(
                    "{} Invited {user} to #{room}. They join, and get the room key, when they accept \
                 (`sealroom rooms accept '#{room}'`).",
                    paint(Style::Green, "✓")
                )
            });
        }
        RoomsCommand::Invitations => {
            let waiting = client.list_invitations().await?;
            if g.json {
                let list: Vec<_> = waiting
                    .iter()
                    .map(|i| serde_json::json!({ "room": i.room, "from": i.from }))
                    .collect();
                out = serde_json::json!({ "invitations": list });
            } else if waiting.is_empty() {
                outln!("No invitations waiting.");
            } else {
                for i in waiting {
                    outln!(
                        "#{} (invited by {})",
                        inert::line(&i.room),
                        inert::line(&i.from)
                    );
                }
                outln!(
                    "{}",
                    paint(
                        Style::Dim,
                        "`sealroom rooms accept ROOM` joins, `sealroom rooms decline ROOM` refuses."
                    )
                );
            }
        }
        RoomsCommand::Accept { room } => {
            let room = room_arg(&room)?;
            let n = client.accept_invite(room).await?;
            show(&n, json, &mut kept);
            let members = client
                .profile
                .rooms
                .get(room)
                .map(|e| e.members.clone())
                .unwrap_or_default();
            out = serde_json::json!({ "event": "joined", "room": room, "members": members });
            human(json, || {
                outln!(
                    "{} Joined #{room} (members: {}). Talk there with `sealroom chat '#{room}'`.",
                    paint(Style::Green, "✓"),
                    members.join(", ")
                );
            });
        }
        RoomsCommand::Decline { room } => {
            let room = room_arg(&room)?;
            client.decline_invite(room).await?;
            out = serde_json::json!({ "event": "declined", "room": room });
            human(json, || outln!("Declined the invitation to #{room}."));
        }
        RoomsCommand::Leave { room } => {
            let room = room_arg(&room)?;
            client.leave(room).await?;
            out = serde_json::json!({ "event": "left", "room": room });
            human(json, || {
                outln!("Left #{room}. The others switch to a new room key.");
            });
        }
        RoomsCommand::Remove { room, user } => {
            let (room, user) = (room_arg(&room)?, user_name(&user)?);
            let n = client.remove(room, &user).await?;
            show(&n, json, &mut kept);
            out = serde_json::json!({ "event": "removed", "room": room, "user": user });
            human(json, || {
                outln!("Removed {user} from #{room}; the room key was replaced.");
            });
        }
        RoomsCommand::List => {
            let rooms = client.list_rooms().await?;
            if g.json {
                out = serde_json::json!({ "rooms": rooms });
            } else if rooms.is_empty() {
                outln!("You are in no rooms. Create one with `sealroom rooms create NAME`.");
            } else {
                for r in rooms {
                    outln!("#{}", inert::line(&r));
                }
            }
        }
        RoomsCommand::Members { room } => {
            let room = room_arg(&room)?;
            // Members come from the room's signed member list, never from the server's word.
            let (signed, n) = client.signed_members(room).await?;
            show(&n, json, &mut kept);
            let Some(view) = signed else {
                return crate::exit::fail(
                    crate::exit::Exit::Failure,
                    format!(
                        "#{room}: you hold no signed member list yet (an admin sends it when \
                         they add you)"
                    ),
                );
            };
            if g.json {
                out = serde_json::json!({
                    "room": room, "admins": view.admins, "members": view.members,
                    "invited": view.invited,
                });
            } else {
                let invited = view.invited.iter().map(|u| (u, true));
                for (m, pending) in view.members.iter().map(|u| (u, false)).chain(invited) {
                    let tag = match (view.admins.contains(m), pending) {
                        (true, _) => " (admin)",
                        (false, true) => " (invited)",
                        (false, false) => "",
                    };
                    let flag = match client.profile.contacts.get(m.as_str()) {
                        Some(c) if c.key_changed => paint(Style::Red, " KEY CHANGED"),
                        Some(c) if c.verified => paint(Style::Green, " verified"),
                        _ => String::new(),
                    };
                    outln!("{}{tag}{flag}", inert::line(m));
                }
            }
        }
    }
    // Give key exchanges triggered above a moment to finish.
    let late = client
        .pump(Duration::from_millis(300), Duration::from_secs(2))
        .await?;
    show(&late, json, &mut kept);
    if json {
        if let serde_json::Value::Object(map) = &mut out {
            map.insert("notices".into(), kept.into());
        }
        outln!("{out}");
    }
    client.close().await;
    Ok(())
}

/// Runs `print` unless the output is JSON.
fn human(json: bool, print: impl FnOnce()) {
    if !json {
        print();
    }
}

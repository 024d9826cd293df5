//! `sealroom rooms create|invite|invitations|accept|decline|leave|remove|list|members`.

use core::time::Duration;

use crate::cli::{Global, RoomsCommand, room_arg, user_name};
use crate::client::{Client, Notice};
use crate::terminal::outln;
use crate::terminal::{self, Style, paint};

fn show(notices: &[Notice]) {
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
    let early = client.drain_queued().await?;
    show(&early);
    match cmd {
        RoomsCommand::Create { room } => {
            let room = room_arg(&room)?;
            client.create_room(room).await?;
            outln!(
                "{} Created #{room}. Invite people with `sealroom rooms invite {room} @user`.",
                paint(Style::Green, "✓")
            );
        }
        RoomsCommand::Invite { room, user } => {
            let (room, user) = (room_arg(&room)?, user_name(&user)?);
            client.invite(room, &user).await?;
            outln!(
                "{} Invited {user} to #{room}. They join, and get the room key, when they accept \
                 (`sealroom rooms accept '#{room}'`).",
                paint(Style::Green, "✓")
            );
        }
        RoomsCommand::Invitations => {
            let waiting = client.list_invitations().await?;
            if g.json {
                let list: Vec<_> = waiting
                    .iter()
                    .map(|i| serde_json::json!({ "room": i.room, "from": i.from }))
                    .collect();
                outln!("{}", serde_json::json!({ "invitations": list }));
            } else if waiting.is_empty() {
                outln!("No invitations waiting.");
            } else {
                for i in waiting {
                    outln!("#{} (invited by {})", i.room, i.from);
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
            show(&n);
            let members = client
                .profile
                .rooms
                .get(room)
                .map(|e| e.members.join(", "))
                .unwrap_or_default();
            outln!(
                "{} Joined #{room} (members: {members}). Talk there with `sealroom chat '#{room}'`.",
                paint(Style::Green, "✓")
            );
        }
        RoomsCommand::Decline { room } => {
            let room = room_arg(&room)?;
            client.decline_invite(room).await?;
            outln!("Declined the invitation to #{room}.");
        }
        RoomsCommand::Leave { room } => {
            let room = room_arg(&room)?;
            client.leave(room).await?;
            outln!("Left #{room}. The others switch to a new room key.");
        }
        RoomsCommand::Remove { room, user } => {
            let (room, user) = (room_arg(&room)?, user_name(&user)?);
            let n = client.remove(room, &user).await?;
            show(&n);
            outln!("Removed {user} from #{room}; the room key was replaced.");
        }
        RoomsCommand::List => {
            let rooms = client.list_rooms().await?;
            if g.json {
                outln!("{}", serde_json::json!({ "rooms": rooms }));
            } else if rooms.is_empty() {
                outln!("You are in no rooms. Create one with `sealroom rooms create NAME`.");
            } else {
                for r in rooms {
                    outln!("#{r}");
                }
            }
        }
        RoomsCommand::Members { room } => {
            let room = room_arg(&room)?;
            let (admin, members) = client.list_members(room).await?;
            if g.json {
                outln!(
                    "{}",
                    serde_json::json!({ "room": room, "admin": admin, "members": members })
                );
            } else {
                for m in members {
                    let tag = if m == admin { " (admin)" } else { "" };
                    let flag = match client.profile.contacts.get(&m) {
                        Some(c) if c.key_changed => paint(Style::Red, " KEY CHANGED"),
                        Some(c) if c.verified => paint(Style::Green, " verified"),
                        _ => String::new(),
                    };
                    outln!("{m}{tag}{flag}");
                }
            }
        }
    }
    // Give key exchanges triggered above a moment to finish.
    let late = client
        .pump(Duration::from_millis(300), Duration::from_secs(2))
        .await?;
    show(&late);
    client.close().await;
    Ok(())
}

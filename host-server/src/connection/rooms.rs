//! Rooms: create, invite (members only; the invitee accepts or declines), leave, remove
//! (admin only), list, members.
//!
//! Membership changes are announced to the members with `RoomChanged` after the request's own
//! reply, so their clients start a new sender-key epoch. Messages are stored once per room
//! (see `delivery`).

use proto_core::limits::{MAX_ROOM_MEMBERS, MAX_ROOMS_LISTED};
use proto_core::names::check_room_name;
use proto_core::{ErrorCode, List, Message, RoomChange};

use super::{Connection, Refusal, Reply, confirmed};
use crate::store::{AccountId, RoomEvent, RoomInfo, Store, StoreError};

fn no_room() -> Refusal {
    Refusal::new(ErrorCode::NOT_FOUND, "no such room")
}

fn not_member() -> Refusal {
    Refusal::new(ErrorCode::FORBIDDEN, "you are not a member of this room")
}

fn no_invitation() -> Refusal {
    Refusal::new(ErrorCode::NOT_FOUND, "no invitation to that room")
}

fn no_member() -> Refusal {
    Refusal::new(ErrorCode::NOT_FOUND, "no such member")
}

/// The room `name`, if `me` is one of its members: the check every room request starts with
/// (inside a store call).
pub(super) fn member_room(
    s: &mut dyn Store,
    name: &str,
    me: AccountId,
) -> Result<RoomInfo, Refusal> {
    match s.room(name)? {
        None => Err(no_room()),
        Some(info) if !info.has_member(me) => Err(not_member()),
        Some(info) => Ok(info),
    }
}

/// A membership change to tell the room's members about, once the reply is queued.
#[derive(Debug)]
pub(super) struct Announcement {
    to: Vec<AccountId>,
    room: String,
    username: String,
    change: RoomChange,
}

impl Announcement {
    /// `username`'s `change` in `room`, for the members `to`.
    pub(super) fn new(
        to: Vec<AccountId>,
        room: String,
        username: String,
        change: RoomChange,
    ) -> Self {
        Self {
            to,
            room,
            username,
            change,
        }
    }
}

impl Reply {
    /// `Ok`, then `change` announced to the members `to`.
    fn ok_then_announce(
        to: Vec<AccountId>,
        room: &str,
        username: String,
        change: RoomChange,
    ) -> Self {
        let mut reply = Reply::msg(&Message::Ok);
        reply.after = Some(super::After::Announce(Announcement {
            to,
            room: room.to_owned(),
            username,
            change,
        }));
        reply
    }
}

impl Connection {
    /// Tells members about a change: pushed to those connected, kept for the others.
    pub(super) async fn announce(&self, a: Announcement) {
        let Announcement {
            to,
            room,
            username,
            change,
        } = a;
        let msg = Message::RoomChanged {
            room: &room,
            username: &username,
            change,
        };
        let offline: Vec<AccountId> = to
            .into_iter()
            .filter(|id| !self.shared.hub.push(*id, &msg))
            .collect();
        if offline.is_empty() {
            return;
        }
        tracing::debug!(
            ?offline,
            room,
            username,
            ?change,
            "keeping a room change for offline members"
        );
        let event = RoomEvent {
            room,
            username,
            change,
        };
        let expires = self
            .shared
            .clock
            .now()
            .saturating_add(self.shared.config.message_ttl);
        let ids = offline.clone();
        let kept = self
            .shared
            .db
            .call(move |s| -> Result<(), StoreError> {
                for id in ids {
                    s.add_room_event(id, &event, expires)?;
                }
                Ok(())
            })
            .await;
        match kept {
            // A member who logged in meanwhile picks the change up through this wake.
            Ok(()) => offline.iter().for_each(|id| self.shared.hub.wake(*id)),
            Err(e) => {
                tracing::warn!(error = %e, "could not keep a room change for offline members")
            }
        }
    }

    pub(super) async fn create_room(&mut self, room: &str) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        self.rate(&self.shared.limits.rooms, &me, "rooms created")?;
        check_room_name(room).map_err(|e| Refusal::new(ErrorCode::INVALID_INPUT, e.to_string()))?;
        let name = room.to_owned();
        self.db(move |s| match s.create_room(&name, me) {
            Ok(_) => Ok(()),
            Err(StoreError::RoomTaken) => Err(Refusal::new(
                ErrorCode::ROOM_TAKEN,
                "that room name is taken",
            )),
            Err(e) => Err(e.into()),
        })
        .await?;
        Ok(Reply::msg(&Message::Ok))
    }

    /// `Invite`: an invitation the invitee accepts or declines, not a membership. Only the
    /// invitee hears of it (`RoomChanged { Invited }`, kept if offline); the room's members
    /// hear `Joined` once it is accepted.
    pub(super) async fn invite(&mut self, room: &str, username: &str) -> Result<Reply, Refusal> {
        let (me, my_name) = self.logged_in()?;
        self.rate(&self.shared.limits.invites, &me, "invitations")?;
        let name = room.to_owned();
        let who = crate::auth::normalize_username(username).map_err(|_| Refusal::no_such_user())?;
        let now = self.shared.clock.now();
        let max_pending = self.shared.config.max_pending_invitations;
        let invitee = self
            .db(move |s| {
                let info = member_room(s, &name, me)?;
                let target =
                    confirmed(s.account_by_username(&who)?).ok_or_else(Refusal::no_such_user)?;
                if info.has_member(target.id) {
                    return Err(Refusal::new(ErrorCode::INVALID_INPUT, "already a member"));
                }
                if info.members.len() >= MAX_ROOM_MEMBERS {
                    return Err(Refusal::new(ErrorCode::QUOTA_FULL, "the room is full"));
                }
                if s.invitations_of(target.id)?.len() as u64 >= max_pending {
                    return Err(Refusal::new(
                        ErrorCode::QUOTA_FULL,
                        "they have too many invitations waiting; try again later",
                    ));
                }
                if !s.add_invitation(info.id, target.id, me, now)? {
                    return Err(Refusal::new(ErrorCode::INVALID_INPUT, "already invited"));
                }
                Ok(target.id)
            })
            .await?;
        let mut reply = Reply::msg(&Message::Ok);
        reply.after = Some(super::After::Announce(Announcement {
            to: vec![invitee],
            room: room.to_owned(),
            username: my_name,
            change: RoomChange::Invited,
        }));
        Ok(reply)
    }

    /// `AcceptInvite`: the invitee becomes a member; every member (the invitee included) hears
    /// `Joined`.
    pub(super) async fn accept_invite(&mut self, room: &str) -> Result<Reply, Refusal> {
        let (me, my_name) = self.logged_in()?;
        let name = room.to_owned();
        let members = self
            .db(move |s| {
                let info = s.room(&name)?.ok_or_else(no_invitation)?;
                if !s.remove_invitation(info.id, me)? {
                    return Err(no_invitation());
                }
                if info.members.len() >= MAX_ROOM_MEMBERS {
                    return Err(Refusal::new(ErrorCode::QUOTA_FULL, "the room is full"));
                }
                s.add_member(info.id, me)?;
                let mut ids: Vec<AccountId> = info.members.iter().map(|m| m.id).collect();
                ids.push(me);
                Ok(ids)
            })
            .await?;
        Ok(Reply::ok_then_announce(
            members,
            room,
            my_name,
            RoomChange::Joined,
        ))
    }

    /// `DeclineInvite`: the invitation goes; nobody else is told.
    pub(super) async fn decline_invite(&mut self, room: &str) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let name = room.to_owned();
        self.db(move |s| {
            let info = s.room(&name)?.ok_or_else(no_invitation)?;
            if s.remove_invitation(info.id, me)? {
                Ok(())
            } else {
                Err(no_invitation())
            }
        })
        .await?;
        Ok(Reply::msg(&Message::Ok))
    }

    /// `ListInvitations`: the invitations waiting for this user.
    pub(super) async fn list_invitations(&mut self) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let mut invitations = self.db(move |s| Ok(s.invitations_of(me)?)).await?;
        invitations.truncate(MAX_ROOMS_LISTED);
        let rooms: Vec<&str> = invitations.iter().map(|i| i.room.as_str()).collect();
        let from: Vec<&str> = invitations.iter().map(|i| i.from.as_str()).collect();
        Ok(Reply::msg(&Message::Invitations {
            rooms: List::from_items(&rooms),
            from: List::from_items(&from),
        }))
    }

    pub(super) async fn leave(&mut self, room: &str) -> Result<Reply, Refusal> {
        let (me, my_name) = self.logged_in()?;
        let name = room.to_owned();
        let remaining = self
            .db(move |s| {
                let info = member_room(s, &name, me)?;
                s.remove_member(info.id, me)?;
                let rest: Vec<AccountId> = info
                    .members
                    .iter()
                    .map(|m| m.id)
                    .filter(|id| *id != me)
                    .collect();
                match rest.first() {
                    None => s.delete_room(info.id)?,
                    // The admin left: the longest-standing member takes over.
                    Some(next) if info.admin == me => s.set_admin(info.id, *next)?,
                    Some(_) => {}
                }
                Ok(rest)
            })
            .await?;
        Ok(Reply::ok_then_announce(
            remaining,
            room,
            my_name,
            RoomChange::Left,
        ))
    }

    pub(super) async fn remove(&mut self, room: &str, username: &str) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let name = room.to_owned();
        let who = crate::auth::normalize_username(username).map_err(|_| no_member())?;
        let who2 = who.clone();
        let notify = self
            .db(move |s| {
                let info = member_room(s, &name, me)?;
                if info.admin != me {
                    return Err(Refusal::new(
                        ErrorCode::FORBIDDEN,
                        "only the room's admin can remove members",
                    ));
                }
                let target = info
                    .members
                    .iter()
                    .find(|m| m.username == who2)
                    .map(|m| m.id)
                    .ok_or_else(no_member)?;
                if target == me {
                    return Err(Refusal::new(
                        ErrorCode::INVALID_INPUT,
                        "use Leave to leave a room",
                    ));
                }
                s.remove_member(info.id, target)?;
                Ok(info.members.iter().map(|m| m.id).collect::<Vec<_>>())
            })
            .await?;
        Ok(Reply::ok_then_announce(
            notify,
            room,
            who,
            RoomChange::Removed,
        ))
    }

    pub(super) async fn list_rooms(&mut self) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let mut names = self.db(move |s| Ok(s.rooms_of(me)?)).await?;
        names.truncate(MAX_ROOMS_LISTED);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(Reply::msg(&Message::Rooms {
            rooms: List::from_items(&refs),
        }))
    }

    pub(super) async fn list_members(&mut self, room: &str) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let name = room.to_owned();
        let info = self.db(move |s| member_room(s, &name, me)).await?;
        let refs: Vec<&str> = info.members.iter().map(|m| m.username.as_str()).collect();
        Ok(Reply::msg(&Message::Members {
            room,
            admin: info.admin_name(),
            members: List::from_items(&refs),
        }))
    }
}

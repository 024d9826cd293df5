//! Rooms: create, invite (members only), leave, remove (admin only), list, members.
//!
//! Membership changes are announced to the members with `RoomChanged`, so their clients start
//! a new sender-key epoch. Messages are stored once per room (see `delivery`).

use proto_core::limits::{MAX_ROOM_MEMBERS, MAX_ROOMS_LISTED};
use proto_core::{ErrorCode, List, Message, RoomChange};

use crate::connection::{Connection, Refusal};
use crate::store::{AccountId, RoomEvent, RoomInfo, Store, StoreError};

/// Checks a room name: `[a-z0-9_-]{1,32}`.
pub fn validate_room_name(name: &str) -> Result<(), Refusal> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Refusal::new(
            ErrorCode::INVALID_INPUT,
            "room name must be 1 to 32 characters: a-z, digits, _ and -",
        ))
    }
}

fn no_room() -> Refusal {
    Refusal::new(ErrorCode::NOT_FOUND, "no such room")
}

fn not_member() -> Refusal {
    Refusal::new(ErrorCode::FORBIDDEN, "you are not a member of this room")
}

/// The room `name`, if `me` is one of its members: the check every room request starts with.
/// Inside a store call; the outer `Result` is the store's, the inner one the refusal.
pub(crate) fn member_room(
    s: &mut dyn Store,
    name: &str,
    me: AccountId,
) -> Result<Result<RoomInfo, Refusal>, StoreError> {
    Ok(match s.room(name)? {
        None => Err(no_room()),
        Some(info) if !info.has_member(me) => Err(not_member()),
        Some(info) => Ok(info),
    })
}

impl Connection {
    /// Tells members about a change: pushed to those connected, kept for the others.
    async fn announce(&self, to: &[AccountId], room: &str, username: &str, change: RoomChange) {
        let msg = Message::RoomChanged {
            room,
            username,
            change,
        };
        let offline: Vec<AccountId> = to
            .iter()
            .copied()
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
            room: room.to_owned(),
            username: username.to_owned(),
            change: change_code(change),
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
            .call(move |s| {
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

    pub(crate) async fn create_room(&mut self, room: &str) -> Result<Message<'static>, Refusal> {
        let (me, _) = self.logged_in()?;
        validate_room_name(room)?;
        let name = room.to_owned();
        let created = self
            .shared
            .db
            .call(move |s| match s.create_room(&name, me) {
                Ok(_) => Ok(true),
                Err(StoreError::RoomTaken) => Ok(false),
                Err(e) => Err(e),
            })
            .await
            .map_err(Refusal::store)?;
        if created {
            Ok(Message::Ok)
        } else {
            Err(Refusal::new(
                ErrorCode::ROOM_TAKEN,
                "that room name is taken",
            ))
        }
    }

    pub(crate) async fn invite(&mut self, room: &str, username: &str) -> Result<(), Refusal> {
        let (me, _) = self.logged_in()?;
        let name = room.to_owned();
        let who = crate::auth::normalize_username(username)
            .map_err(|_| Refusal::new(ErrorCode::NOT_FOUND, "no such user"))?;
        let who2 = who.clone();
        let members = self
            .shared
            .db
            .call(move |s| {
                let info = match member_room(s, &name, me)? {
                    Ok(info) => info,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let Some(target) = s.account_by_username(&who2)?.filter(|a| a.confirmed) else {
                    return Ok(Err(Refusal::new(ErrorCode::NOT_FOUND, "no such user")));
                };
                if info.has_member(target.id) {
                    return Ok(Err(Refusal::new(
                        ErrorCode::INVALID_INPUT,
                        "already a member",
                    )));
                }
                if info.members.len() >= MAX_ROOM_MEMBERS {
                    return Ok(Err(Refusal::new(ErrorCode::QUOTA_FULL, "the room is full")));
                }
                s.add_member(info.id, target.id)?;
                let mut ids: Vec<AccountId> = info.members.iter().map(|(id, _)| *id).collect();
                ids.push(target.id);
                Ok(Ok(ids))
            })
            .await
            .map_err(Refusal::store)??;
        self.out.push(&Message::Ok);
        self.announce(&members, room, &who, RoomChange::Joined)
            .await;
        Ok(())
    }

    pub(crate) async fn leave(&mut self, room: &str) -> Result<(), Refusal> {
        let (me, my_name) = self.logged_in()?;
        let name = room.to_owned();
        let remaining = self
            .shared
            .db
            .call(move |s| {
                let info = match member_room(s, &name, me)? {
                    Ok(info) => info,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                s.remove_member(info.id, me)?;
                let rest: Vec<AccountId> = info
                    .members
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|id| *id != me)
                    .collect();
                match rest.first() {
                    None => s.delete_room(info.id)?,
                    // The admin left: the longest-standing member takes over.
                    Some(next) if info.admin == me => s.set_admin(info.id, *next)?,
                    Some(_) => {}
                }
                Ok(Ok(rest))
            })
            .await
            .map_err(Refusal::store)??;
        self.out.push(&Message::Ok);
        self.announce(&remaining, room, &my_name, RoomChange::Left)
            .await;
        Ok(())
    }

    pub(crate) async fn remove(&mut self, room: &str, username: &str) -> Result<(), Refusal> {
        let (me, _) = self.logged_in()?;
        let name = room.to_owned();
        let who = crate::auth::normalize_username(username)
            .map_err(|_| Refusal::new(ErrorCode::NOT_FOUND, "no such member"))?;
        let who2 = who.clone();
        let notify = self
            .shared
            .db
            .call(move |s| {
                let info = match member_room(s, &name, me)? {
                    Ok(info) => info,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                if info.admin != me {
                    return Ok(Err(Refusal::new(
                        ErrorCode::FORBIDDEN,
                        "only the room's admin can remove members",
                    )));
                }
                let Some((target, _)) = info.members.iter().find(|(_, n)| *n == who2).cloned()
                else {
                    return Ok(Err(Refusal::new(ErrorCode::NOT_FOUND, "no such member")));
                };
                if target == me {
                    return Ok(Err(Refusal::new(
                        ErrorCode::INVALID_INPUT,
                        "use Leave to leave a room",
                    )));
                }
                s.remove_member(info.id, target)?;
                let ids: Vec<AccountId> = info.members.iter().map(|(id, _)| *id).collect();
                Ok(Ok(ids))
            })
            .await
            .map_err(Refusal::store)??;
        self.out.push(&Message::Ok);
        self.announce(&notify, room, &who, RoomChange::Removed)
            .await;
        Ok(())
    }

    pub(crate) async fn list_rooms(&mut self) -> Result<(), Refusal> {
        let (me, _) = self.logged_in()?;
        let mut names = self
            .shared
            .db
            .call(move |s| s.rooms_of(me))
            .await
            .map_err(Refusal::store)?;
        names.truncate(MAX_ROOMS_LISTED);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.out.push(&Message::Rooms {
            rooms: List::from_items(&refs),
        });
        Ok(())
    }

    pub(crate) async fn list_members(&mut self, room: &str) -> Result<(), Refusal> {
        let (me, _) = self.logged_in()?;
        let name = room.to_owned();
        let info = self
            .shared
            .db
            .call(move |s| member_room(s, &name, me))
            .await
            .map_err(Refusal::store)??;
        let refs: Vec<&str> = info.members.iter().map(|(_, n)| n.as_str()).collect();
        self.out.push(&Message::Members {
            room,
            admin: info.admin_name(),
            members: List::from_items(&refs),
        });
        Ok(())
    }
}

/// The stored form of a [`RoomChange`].
pub fn change_code(change: RoomChange) -> u8 {
    match change {
        RoomChange::Joined => 0,
        RoomChange::Left => 1,
        RoomChange::Removed => 2,
    }
}

/// A [`RoomChange`] from its stored form.
pub fn change_from_code(code: u8) -> Option<RoomChange> {
    match code {
        0 => Some(RoomChange::Joined),
        1 => Some(RoomChange::Left),
        2 => Some(RoomChange::Removed),
        _ => None,
    }
}

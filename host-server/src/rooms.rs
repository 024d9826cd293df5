//! Rooms: create, invite (members only), leave, remove (admin only), list, members.
//!
//! Membership changes are announced to the members with `RoomChanged`, so their clients start
//! a new sender-key epoch. Messages are stored once per room (see `delivery`).

use proto_core::limits::{MAX_ROOM_MEMBERS, MAX_ROOMS_LISTED};
use proto_core::{ErrorCode, List, Message, RoomChange};

use crate::connection::{Connection, Refusal};
use crate::store::AccountId;

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

impl Connection {
    fn announce(&self, to: &[AccountId], room: &str, username: &str, change: RoomChange) {
        let msg = Message::RoomChanged {
            room,
            username,
            change,
        };
        for id in to {
            self.shared.hub.push(*id, &msg);
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
                Err(crate::store::StoreError::RoomTaken) => Ok(false),
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
                let Some(info) = s.room(&name)? else {
                    return Ok(Err(no_room()));
                };
                if !info.has_member(me) {
                    return Ok(Err(not_member()));
                }
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
        self.announce(&members, room, &who, RoomChange::Joined);
        Ok(())
    }

    pub(crate) async fn leave(&mut self, room: &str) -> Result<(), Refusal> {
        let (me, my_name) = self.logged_in()?;
        let name = room.to_owned();
        let remaining = self
            .shared
            .db
            .call(move |s| {
                let Some(info) = s.room(&name)? else {
                    return Ok(Err(no_room()));
                };
                if !info.has_member(me) {
                    return Ok(Err(not_member()));
                }
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
        self.announce(&remaining, room, &my_name, RoomChange::Left);
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
                let Some(info) = s.room(&name)? else {
                    return Ok(Err(no_room()));
                };
                if !info.has_member(me) {
                    return Ok(Err(not_member()));
                }
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
        self.announce(&notify, room, &who, RoomChange::Removed);
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
            .call(move |s| s.room(&name))
            .await
            .map_err(Refusal::store)?
            .ok_or_else(no_room)?;
        if !info.has_member(me) {
            return Err(not_member());
        }
        let refs: Vec<&str> = info.members.iter().map(|(_, n)| n.as_str()).collect();
        self.out.push(&Message::Members {
            room,
            admin: info.admin_name(),
            members: List::from_items(&refs),
        });
        Ok(())
    }
}

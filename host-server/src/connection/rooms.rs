//! Rooms: create, invite (members only; the invitee accepts or declines), leave, remove
//! (admin only), list, members, and the chain of signed rosters (publish, fetch).
//!
//! Membership changes are announced to the members with `RoomChanged` after the request's own
//! reply, so their clients start a new sender-key epoch. Messages are stored once per room
//! (see `delivery`).

use proto_core::limits::{MAX_BODY, MAX_ROOM_MEMBERS, MAX_ROOMS_LISTED};
use proto_core::names::check_room_name;
use proto_core::{ErrorCode, List, Message, RoomChange, Roster, RosterError, room_id_for_name};

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

/// A roster that is not the next version of the stored chain.
fn roster_conflict() -> Refusal {
    Refusal::new(
        ErrorCode::CONFLICT,
        "that is not the next roster version; fetch the latest and try again",
    )
}

/// A roster that does not parse, or may not follow the stored chain: the text names why.
fn roster_refused(e: RosterError) -> Refusal {
    Refusal::new(ErrorCode::INVALID_INPUT, e.to_string())
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

/// `Leave` in the store: `who` leaves the room `info` (read in this job); the admin leaving
/// hands over to the longest-standing member, the last member leaving deletes the room.
/// Returns the members remaining, who hear `Left`.
fn leave_room(
    s: &mut dyn Store,
    info: &RoomInfo,
    who: AccountId,
) -> Result<Vec<AccountId>, StoreError> {
    s.remove_member(info.id, who)?;
    let rest: Vec<AccountId> = info
        .members
        .iter()
        .map(|m| m.id)
        .filter(|id| *id != who)
        .collect();
    match rest.first() {
        None => s.delete_room(info.id)?,
        // The admin left: the longest-standing member takes over.
        Some(next) if info.admin == who => s.set_admin(info.id, *next)?,
        Some(_) => {}
    }
    Ok(rest)
}

/// `Remove` in the store: `who` is removed from the room `info` (read in this job). Returns
/// whom to tell (`Removed`): the members as they were, the removed one included.
///
/// `Remove` never removes the admin or the last member; a roster can (it is signed by a roster
/// admin, who need not be the server's), and then the room is handed over or deleted as when
/// they leave.
fn remove_from_room(
    s: &mut dyn Store,
    info: &RoomInfo,
    who: AccountId,
) -> Result<Vec<AccountId>, StoreError> {
    leave_room(s, info, who)?;
    Ok(info.members.iter().map(|m| m.id).collect())
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
                Ok(leave_room(s, &info, me)?)
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
                Ok(remove_from_room(s, &info, target)?)
            })
            .await?;
        Ok(Reply::ok_then_announce(
            notify,
            room,
            who,
            RoomChange::Removed,
        ))
    }

    /// `PublishRoster`: stores the next version of the room's signed roster (PROTOCOL.md §4.7)
    /// once it passes the checks a client makes: it parses and verifies, names this room, and is
    /// a valid first roster signed by the room's admin (none stored) or follows the stored
    /// latest. In the same transaction,
    /// each server-side member the previous roster listed and this one does not (by username)
    /// leaves as with `Leave` (the signer) or `Remove` (anyone else). After the `Ok`, those
    /// changes are announced as theirs are, then the remaining members but the publisher hear
    /// `RoomChanged { Roster }`.
    pub(super) async fn publish_roster(
        &mut self,
        room: &str,
        roster: &[u8],
    ) -> Result<Reply, Refusal> {
        let (me, my_name) = self.logged_in()?;
        // A roster comes with each invitation, removal and departure: the same budget.
        self.rate(&self.shared.limits.invites, &me, "invitations and rosters")?;
        let name = room.to_owned();
        let bytes = roster.to_vec();
        let announcements = self
            .db(move |s| {
                let mut info = member_room(s, &name, me)?;
                if bytes.len() > MAX_BODY {
                    return Err(Refusal::new(
                        ErrorCode::TOO_LARGE,
                        "the roster is larger than MAX_BODY",
                    ));
                }
                let new = Roster::parse(&bytes).map_err(roster_refused)?;
                if *new.room_id() != room_id_for_name(&name) {
                    return Err(roster_refused(RosterError::WrongRoom));
                }
                // (username, whether it signed the new roster) of each member it drops.
                let mut dropped: Vec<(String, bool)> = Vec::new();
                match s.latest_roster(info.id)? {
                    None => {
                        new.check_first().map_err(roster_refused)?;
                        // The first roster is the creator's (§4.7): here, the room's admin,
                        // who is its creator until they leave. Else any member could start a
                        // chain naming themselves admin and, with the next version, remove
                        // everyone else, which `Remove` allows the admin alone.
                        let admin = s.account_by_id(info.admin)?.map(|a| a.identity_sig);
                        if admin.as_ref() != Some(new.signer()) {
                            return Err(roster_refused(RosterError::SignerNotAdmin));
                        }
                    }
                    Some(stored) => {
                        let latest = Roster::parse(&stored)
                            .map_err(|_| StoreError::Corrupt("a stored roster does not parse"))?;
                        if latest.version().checked_add(1) != Some(new.version()) {
                            return Err(roster_conflict());
                        }
                        latest.check_next(&new).map_err(roster_refused)?;
                        let signer = latest.member_by_identity(new.signer()).map(|m| m.username);
                        dropped = latest
                            .members()
                            .filter(|m| !new.members().any(|n| n.username == m.username))
                            .map(|m| (m.username.to_owned(), Some(m.username) == signer))
                            .collect();
                    }
                }
                if !s.append_roster(info.id, new.version(), &bytes)? {
                    // Another version was stored since (another node, same moment).
                    return Err(roster_conflict());
                }
                let mut told = Vec::new();
                for (username, signed) in dropped {
                    let Some(who) = info
                        .members
                        .iter()
                        .find(|m| m.username == username)
                        .map(|m| m.id)
                    else {
                        continue;
                    };
                    let (to, change) = if signed {
                        (leave_room(s, &info, who)?, RoomChange::Left)
                    } else {
                        (remove_from_room(s, &info, who)?, RoomChange::Removed)
                    };
                    told.push(Announcement::new(to, name.clone(), username, change));
                    match s.room(&name)? {
                        Some(now) => info = now,
                        // Its last member left: the room, and the roster with it, is gone.
                        None => return Ok(told),
                    }
                }
                let others: Vec<AccountId> = info
                    .members
                    .iter()
                    .map(|m| m.id)
                    .filter(|id| *id != me)
                    .collect();
                told.push(Announcement::new(others, name, my_name, RoomChange::Roster));
                Ok(told)
            })
            .await?;
        let mut reply = Reply::msg(&Message::Ok);
        reply.after = Some(super::After::AnnounceAll(announcements));
        Ok(reply)
    }

    /// `FetchRoster`: the stored roster at `version`, byte for byte (members only).
    pub(super) async fn fetch_roster(
        &mut self,
        room: &str,
        version: u64,
    ) -> Result<Reply, Refusal> {
        let (me, _) = self.logged_in()?;
        let name = room.to_owned();
        let roster = self
            .db(move |s| {
                let info = member_room(s, &name, me)?;
                s.roster(info.id, version)?
                    .ok_or_else(|| Refusal::new(ErrorCode::NOT_FOUND, "no such roster version"))
            })
            .await?;
        Ok(Reply::msg(&Message::Roster {
            room,
            roster: &roster,
        }))
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

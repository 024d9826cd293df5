//! A room's membership from its chain of signed rosters (PROTOCOL.md §4.7), never from the
//! server's `Members` list.
//!
//! We hold, per room, the latest roster we accepted. We follow the chain the server stores
//! (each version must follow the one we hold), take a first roster only from the admin who
//! added us (`Content::Roster`, inside our pairwise session), and, as an admin, sign the changes
//! we make: version 0 when we create a room, the users we invited once the server lists them,
//! removals, members whose verified identity key changed, and our own leaving. The sender-key
//! state tracks exactly the identity keys the held roster lists, so a departure (whatever the
//! departed member's key state) starts a new epoch. Every change is written to the room's
//! timeline.

use proto_core::{
    ErrorCode, Message, ROSTER_LABEL, ROSTER_MAX_LEN, Roster, RosterFields, RosterMember,
    write_roster,
};

use crate::client::{Client, Notice, refusal};
use crate::exit::{Exit, fail};
use crate::profile::{Entry, RoomSender, key32, now};

/// The most roster versions one sync follows (a bound on a server that streams versions).
const MAX_FOLLOW: usize = 1024;

/// A member as we keep one while building a roster: username and `IKs`.
type Member = (String, [u8; 32]);

/// What the server said to a roster we published.
enum Published {
    /// Stored: it is the room's latest.
    Stored,
    /// Someone published that version first.
    Conflict,
}

/// The members of a roster, owned.
fn members_of(r: &Roster<'_>) -> Vec<Member> {
    r.members()
        .map(|m| (m.username.to_owned(), m.identity))
        .collect()
}

/// The roster in `hex`, if it holds one that parses (it was checked when we took it).
fn parse_hex(hex_bytes: &str) -> Option<Vec<u8>> {
    if hex_bytes.is_empty() {
        return None;
    }
    hex::decode(hex_bytes).ok()
}

/// A room's signed member list, for people.
#[derive(Debug, Default)]
pub(crate) struct SignedMembers {
    /// Admins (all of them members or invitees).
    pub(crate) admins: Vec<String>,
    /// Listed and members on the server.
    pub(crate) members: Vec<String>,
    /// Listed, not (yet) members on the server: invited, not accepted.
    pub(crate) invited: Vec<String>,
}

/// Whether the roster in `hex_bytes` lists `user` with `identity`.
pub(crate) fn roster_hex_lists(hex_bytes: &str, user: &str, identity: &[u8; 32]) -> bool {
    parse_hex(hex_bytes)
        .is_some_and(|b| Roster::parse(&b).is_ok_and(|r| r.contains(user, identity)))
}

impl Client {
    /// The bytes of the roster we hold for `name`, if any.
    pub(crate) fn held_roster(&self, name: &str) -> Option<Vec<u8>> {
        parse_hex(&self.profile.rooms.get(name)?.roster)
    }

    /// The members of the roster we hold for `name` (`None` while we hold none).
    pub(crate) fn roster_members(&self, name: &str) -> Option<Vec<Member>> {
        let bytes = self.held_roster(name)?;
        Roster::parse(&bytes).ok().map(|r| members_of(&r))
    }

    /// The room as its signed member list says (after following the chain), or `None` while
    /// we hold none. Listed users the server does not (yet) count as members are invitees.
    pub(crate) async fn signed_members(
        &mut self,
        name: &str,
    ) -> anyhow::Result<(Option<SignedMembers>, Vec<Notice>)> {
        let (_, on_server) = self.list_members(name).await?;
        let notices = self.follow_roster(name).await?;
        let Some(bytes) = self.held_roster(name) else {
            return Ok((None, notices));
        };
        let r = Roster::parse(&bytes)
            .map_err(|e| anyhow::anyhow!("the keystore's member list of #{name}: {e}"))?;
        let mut view = SignedMembers::default();
        for m in r.members() {
            let u = m.username.to_owned();
            if r.is_admin(&m.identity) {
                view.admins.push(u.clone());
            }
            if on_server.contains(&u) {
                view.members.push(u);
            } else {
                view.invited.push(u);
            }
        }
        Ok((Some(view), notices))
    }

    /// Whether the held roster of `name` lists `user` with exactly `identity`.
    pub(crate) fn roster_lists(&self, name: &str, user: &str, identity: &[u8; 32]) -> bool {
        self.roster_members(name)
            .is_some_and(|m| m.iter().any(|(u, k)| u == user && k == identity))
    }

    /// Whether we are an admin of the roster we hold for `name`.
    pub(crate) fn is_roster_admin(&self, name: &str) -> anyhow::Result<bool> {
        let own = self.profile.identity_public()?.signing;
        Ok(self
            .held_roster(name)
            .is_some_and(|b| Roster::parse(&b).is_ok_and(|r| r.is_admin(&own))))
    }

    /// The stored roster of `name` at `version`; `None` past the latest (or when we are not a
    /// member on the server).
    pub(crate) async fn fetch_roster(
        &mut self,
        name: &str,
        version: u64,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        self.link
            .request(
                &Message::FetchRoster {
                    room: name,
                    version,
                },
                |reply| match reply {
                    Message::Roster { roster, .. } => Ok(Some(roster.to_vec())),
                    // Past the latest; or not (yet, or any more) a member on the server.
                    Message::Error {
                        code: ErrorCode::NOT_FOUND | ErrorCode::FORBIDDEN,
                        ..
                    } => Ok(None),
                    Message::Error { code, text } => Err(refusal(code, text)),
                    other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
                },
            )
            .await
    }

    async fn publish_roster(&mut self, name: &str, roster: &[u8]) -> anyhow::Result<Published> {
        self.link
            .request(
                &Message::PublishRoster { room: name, roster },
                |reply| match reply {
                    Message::Ok => Ok(Published::Stored),
                    Message::Error {
                        code: ErrorCode::CONFLICT,
                        ..
                    } => Ok(Published::Conflict),
                    Message::Error { code, text } => Err(refusal(code, text)),
                    other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
                },
            )
            .await
    }

    /// Follows the room's chain from the roster we hold: every later version the server has,
    /// each checked against the one before. A version that does not follow is refused (with a
    /// warning) and the chain is not followed past it.
    pub(crate) async fn follow_roster(&mut self, name: &str) -> anyhow::Result<Vec<Notice>> {
        let mut notices = Vec::new();
        for _ in 0..MAX_FOLLOW {
            let Some(held_bytes) = self.held_roster(name) else {
                break;
            };
            let held = Roster::parse(&held_bytes)
                .map_err(|e| anyhow::anyhow!("the keystore's member list of #{name}: {e}"))?;
            let Some(version) = held.version().checked_add(1) else {
                break;
            };
            let Some(next_bytes) = self.fetch_roster(name, version).await? else {
                break;
            };
            let next =
                match Roster::parse(&next_bytes).and_then(|n| held.check_next(&n).map(|()| n)) {
                    Ok(n) => n,
                    Err(e) => {
                        notices.push(Notice::Warning(format!(
                            "#{name}: the server offered version {version} of the room's member \
                         list, which is not validly signed by a member or admin ({}); ignored: \
                         the room's membership stays as it was",
                            e.name()
                        )));
                        break;
                    }
                };
            notices.extend(self.adopt_roster(name, Some(&held), &next)?);
            if !self.profile.rooms.contains_key(name) {
                break;
            }
        }
        Ok(notices)
    }

    /// Makes `new` the roster we hold for `name` (already checked: first, or following `old`):
    /// the sender-key state follows its members (a departure starts a new epoch) and each change
    /// is written to the room's timeline. When `new` no longer lists us, the room is forgotten.
    fn adopt_roster(
        &mut self,
        name: &str,
        old: Option<&Roster<'_>>,
        new: &Roster<'_>,
    ) -> anyhow::Result<Vec<Notice>> {
        let own = self.profile.identity_public()?.signing;
        let me = self.profile.username.clone();
        let (mut room, mut entry) = self.load_or_create_room(name)?;
        let name_of = |k: &[u8; 32]| -> String {
            new.member_by_identity(k)
                .or_else(|| old.and_then(|o| o.member_by_identity(k)))
                .map_or_else(|| "an unknown key".to_owned(), |m| m.username.to_owned())
        };
        let signer = name_of(new.signer());
        let mut events = Vec::new();
        match old {
            None => {
                // An invitee's starting point says nothing yet: joining is its own notice.
                if signer == me {
                    events.push(format!("{me} created #{name}"));
                }
            }
            Some(old) => {
                // Every device the room tracks of everyone who departed, then ONE new epoch
                // for the step — also when none of theirs was tracked (they may hold our key
                // without having sent theirs).
                let mut departed_ids: Vec<[u8; 32]> = Vec::new();
                let mut any_departed = false;
                for d in old.departed(new) {
                    any_departed = true;
                    let (gone, kept): (Vec<RoomSender>, Vec<RoomSender>) =
                        core::mem::take(&mut entry.senders)
                            .into_iter()
                            .partition(|s| s.member == d.username);
                    entry.senders = kept;
                    departed_ids.extend(gone.iter().filter_map(|s| key32(&s.id)));
                    entry.key_sent.remove(d.username);
                    let still = new.members().any(|m| m.username == d.username);
                    events.push(if still {
                        format!("{signer} signed {}'s new identity key", d.username)
                    } else if d.identity == *new.signer() {
                        format!("{} left", d.username)
                    } else {
                        format!("{signer} removed {}", d.username)
                    });
                }
                if any_departed {
                    let removed = room
                        .remove_members(&mut crate::rng::os(), &departed_ids)
                        .map_err(|e| anyhow::anyhow!("#{name}: {e}"))?;
                    if removed == 0 {
                        let next = room.epoch().checked_add(1).ok_or_else(|| {
                            anyhow::anyhow!("#{name}: the room is at its last epoch")
                        })?;
                        room.start_epoch(&mut crate::rng::os(), next)
                            .map_err(|e| anyhow::anyhow!("#{name}: {e}"))?;
                    }
                }
                for m in new.members() {
                    if !old.members().any(|o| o.username == m.username) {
                        events.push(format!("{signer} added {}", m.username));
                    }
                }
                for a in new.admins() {
                    if !old.is_admin(&a) {
                        events.push(format!("{signer} made {} an admin", name_of(&a)));
                    }
                }
            }
        }
        let still_member = new.contains(&me, &own);
        entry.members = new.members().map(|m| m.username.to_owned()).collect();
        entry.admin = new.admins().next().map(|a| name_of(&a)).unwrap_or_default();
        entry.roster = hex::encode(new.as_bytes());
        // Room keys kept aside from senders this roster now names with their known key.
        entry.early_keys.clear();
        for early in core::mem::take(&mut entry.early_device_keys) {
            let known = self
                .profile
                .contacts
                .get(&early.from)
                .filter(|c| !c.key_changed)
                .and_then(|c| key32(&c.identity_sig));
            match known {
                Some(k) if new.contains(&early.from, &k) => {
                    let bytes = hex::decode(&early.distribution).unwrap_or_default();
                    if let Ok(dist) = proto_core::SenderKeyDistribution::from_bytes(&bytes)
                        && crate::rooms::take_room_key(
                            &mut room,
                            &mut entry,
                            &early.from,
                            early.device,
                            &k,
                            &dist,
                        )
                        .is_ok()
                        && !self.rooms_to_sync.iter().any(|r| r == name)
                    {
                        self.rooms_to_sync.push(name.to_owned());
                    }
                }
                _ => entry.early_device_keys.push(early),
            }
        }
        let mut notices = Vec::new();
        let at = now();
        for text in events {
            let e = Entry {
                conversation: format!("#{name}"),
                from: signer.clone(),
                text,
                at,
                id: 0,
                server_id: None,
                outgoing: false,
                state: "event".into(),
                unread: true,
                ..Entry::default()
            };
            self.profile.push_history(e.clone());
            notices.push(Notice::Message(e));
        }
        if still_member {
            self.store_room(name, &room, entry)?;
        } else {
            self.profile.rooms.remove(name);
        }
        self.save()?;
        Ok(notices)
    }

    /// Signs the roster that follows `held` with these members and admins, publishes it and,
    /// once stored, holds it. `None` when another version was stored first (`CONFLICT`).
    async fn sign_next(
        &mut self,
        name: &str,
        held_bytes: &[u8],
        mut members: Vec<Member>,
        mut admins: Vec<[u8; 32]>,
    ) -> anyhow::Result<Option<(Vec<u8>, Vec<Notice>)>> {
        let held = Roster::parse(held_bytes)
            .map_err(|e| anyhow::anyhow!("the keystore's member list of #{name}: {e}"))?;
        members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        members.dedup_by(|a, b| a.0 == b.0);
        admins.sort_unstable();
        admins.dedup();
        let departed = held.members().any(|m| {
            !members
                .iter()
                .any(|(u, k)| u == m.username && *k == m.identity)
        });
        let epoch = if departed {
            held.epoch().checked_add(1).ok_or_else(|| {
                anyhow::anyhow!("#{name} has used up its key epochs: make a new room")
            })?
        } else {
            held.epoch()
        };
        let list: Vec<RosterMember<'_>> = members
            .iter()
            .map(|(username, identity)| RosterMember {
                username,
                identity: *identity,
            })
            .collect();
        let fields = RosterFields {
            room_id: *held.room_id(),
            version: held
                .version()
                .checked_add(1)
                .ok_or_else(|| anyhow::anyhow!("#{name}: no version follows {}", held.version()))?,
            epoch,
            prev: held.hash(),
            admins: &admins,
            members: &list,
        };
        let identity = self.profile.identity()?;
        let mut out = vec![0u8; ROSTER_MAX_LEN + ROSTER_LABEL.len()];
        let n = write_roster(&fields, &identity, &mut out)
            .map_err(|e| anyhow::anyhow!("#{name}: cannot sign the member list: {e}"))?;
        out.truncate(n);
        let next = Roster::parse(&out).map_err(|e| anyhow::anyhow!("#{name}: {e}"))?;
        held.check_next(&next)
            .map_err(|e| anyhow::anyhow!("#{name}: cannot sign this change: {e}"))?;
        match self.publish_roster(name, &out).await? {
            Published::Conflict => Ok(None),
            Published::Stored => {
                let notices = self.adopt_roster(name, Some(&held), &next)?;
                Ok(Some((out.clone(), notices)))
            }
        }
    }

    /// Signs and publishes a room's first roster: us, alone, as its admin (PROTOCOL.md §4.7
    /// step 1).
    pub(crate) async fn publish_first_roster(&mut self, name: &str) -> anyhow::Result<Vec<Notice>> {
        let own = self.profile.identity_public()?.signing;
        let me = self.profile.username.clone();
        let members = [RosterMember {
            username: &me,
            identity: own,
        }];
        let fields = RosterFields {
            room_id: crate::rooms::room_id(name),
            version: 0,
            epoch: 0,
            prev: [0; 32],
            admins: &[own],
            members: &members,
        };
        let identity = self.profile.identity()?;
        let mut out = vec![0u8; ROSTER_MAX_LEN + ROSTER_LABEL.len()];
        let n = write_roster(&fields, &identity, &mut out)
            .map_err(|e| anyhow::anyhow!("#{name}: cannot sign the member list: {e}"))?;
        out.truncate(n);
        match self.publish_roster(name, &out).await? {
            Published::Stored => {
                let first = Roster::parse(&out).map_err(|e| anyhow::anyhow!("#{name}: {e}"))?;
                self.adopt_roster(name, None, &first)
            }
            Published::Conflict => Ok(Vec::new()),
        }
    }

    /// `Content::Roster` from `from`: our starting point in `name`'s chain, taken only under
    /// PROTOCOL.md §4.7 step 3; then the chain is followed from it.
    pub(crate) async fn receive_roster_invite(
        &mut self,
        from: &str,
        name: &str,
        bytes: &[u8],
    ) -> anyhow::Result<Vec<Notice>> {
        let own = self.profile.identity_public()?.signing;
        let me = self.profile.username.clone();
        let refuse = |why: &str| {
            Ok(vec![Notice::Warning(format!(
                "#{name}: ignored a member list from {from}: {why}"
            ))])
        };
        let Some(sender) = self
            .profile
            .contacts
            .get(from)
            .filter(|c| !c.key_changed)
            .and_then(|c| key32(&c.identity_sig))
        else {
            return refuse("their identity key changed and is not verified");
        };
        let roster = match Roster::parse(bytes).and_then(|r| {
            r.check_invitation(&crate::rooms::room_id(name), &sender, &me, &own)
                .map(|()| r)
        }) {
            Ok(r) => r,
            Err(e) => return refuse(e.name()),
        };
        if self.roster_lists(name, &me, &own) {
            // We are in the chain already: the server's copy says the rest.
            return self.follow_roster(name).await;
        }
        if let Some(e) = self.profile.rooms.get_mut(name) {
            // A membership we no longer hold (removed, left) starts over with fresh keys.
            if !e.roster.is_empty() {
                self.profile.rooms.remove(name);
            }
        }
        let mut notices = self.adopt_roster(name, None, &roster)?;
        // Sent with the invitation: the rest waits until we accept. Sent after we joined (an
        // admin who signs members in when they join): follow the chain and hand out our key.
        if self.list_members(name).await.is_ok() {
            notices.extend(self.follow_roster(name).await?);
            if !self.rooms_to_sync.iter().any(|r| r == name) {
                self.rooms_to_sync.push(name.to_owned());
            }
        }
        Ok(notices)
    }

    /// A roster another of our own devices holds (sent by it, or in the link state): our
    /// starting point in the room if we hold none yet (it comes from our own identity, so it is
    /// trusted as a first roster from an admin would be), checked to be this room's and to list
    /// us with our identity. One we hold already says nothing new: the chain is followed at the
    /// next sync. The room is queued for a key sync.
    pub(crate) fn adopt_own_roster(
        &mut self,
        name: &str,
        bytes: &[u8],
    ) -> anyhow::Result<Vec<Notice>> {
        let own = self.profile.identity_public()?.signing;
        let me = self.profile.username.clone();
        let roster = match Roster::parse(bytes) {
            Ok(r) if r.room_id() == &crate::rooms::room_id(name) && r.contains(&me, &own) => r,
            Ok(_) => {
                return Ok(vec![Notice::Warning(format!(
                    "#{name}: ignored a member list from another of your devices: not one of \
                     #{name} that lists you"
                ))]);
            }
            Err(e) => {
                return Ok(vec![Notice::Warning(format!(
                    "#{name}: ignored a member list from another of your devices: {}",
                    e.name()
                ))]);
            }
        };
        let mut notices = Vec::new();
        if self.held_roster(name).is_none() {
            notices = self.adopt_roster(name, None, &roster)?;
        }
        if !self.rooms_to_sync.iter().any(|r| r == name) {
            self.rooms_to_sync.push(name.to_owned());
        }
        Ok(notices)
    }

    /// As an admin, signs a listed member's new identity key once it is verified (PROTOCOL.md
    /// §4.7 step 6); until then they get no sender key. Does nothing when we hold no roster or
    /// are not an admin of it.
    pub(crate) async fn admin_reconcile(&mut self, name: &str) -> anyhow::Result<Vec<Notice>> {
        let mut notices = Vec::new();
        for _attempt in 0..2 {
            if !self.is_roster_admin(name)? {
                return Ok(notices);
            }
            let Some(held_bytes) = self.held_roster(name) else {
                return Ok(notices);
            };
            let held = Roster::parse(&held_bytes)
                .map_err(|e| anyhow::anyhow!("the keystore's member list of #{name}: {e}"))?;
            let me = self.profile.username.clone();
            let mut members = members_of(&held);
            let mut admins: Vec<[u8; 32]> = held.admins().collect();
            let mut changed = false;
            for (u, k) in members.iter_mut() {
                if *u == me {
                    continue;
                }
                // Only a key the user compared and marked verified is signed in its place.
                if let Some(c) = self.profile.contacts.get(u.as_str())
                    && c.verified
                    && !c.key_changed
                    && let Some(current) = key32(&c.identity_sig)
                    && current != *k
                {
                    if admins.contains(k) {
                        admins.retain(|a| a != k);
                        admins.push(current);
                    }
                    *k = current;
                    changed = true;
                }
            }
            if !changed {
                return Ok(notices);
            }
            match self.sign_next(name, &held_bytes, members, admins).await? {
                Some((_, more)) => {
                    notices.extend(more);
                    return Ok(notices);
                }
                None => notices.extend(self.follow_roster(name).await?),
            }
        }
        Ok(notices)
    }

    /// Signs `user` into the member list (admins only; PROTOCOL.md §4.7 step 2) and sends them
    /// the new roster inside our pairwise session, so that they hold it when they accept.
    /// Someone already listed is sent the roster again (an invitation declined, then renewed).
    pub(crate) async fn sign_addition(
        &mut self,
        name: &str,
        user: &str,
    ) -> anyhow::Result<Vec<Notice>> {
        let mut notices = self.follow_roster(name).await?;
        let key = self.member_key(user).await?;
        for _attempt in 0..2 {
            if !self.is_roster_admin(name)? {
                let admins = self.profile.rooms.get(name).map(|e| e.admin.clone());
                return fail(
                    Exit::Refused,
                    match admins {
                        Some(a) if !a.is_empty() => {
                            format!("only an admin of #{name} can add members (ask {a})")
                        }
                        _ => format!("only an admin of #{name} can add members"),
                    },
                );
            }
            let Some(held_bytes) = self.held_roster(name) else {
                return fail(
                    Exit::Refused,
                    format!("#{name} has no signed member list yet"),
                );
            };
            let roster = if self.roster_lists(name, user, &key) {
                held_bytes
            } else {
                let held = Roster::parse(&held_bytes)
                    .map_err(|e| anyhow::anyhow!("the keystore's member list of #{name}: {e}"))?;
                let mut members = members_of(&held);
                // Listed with another key: replaced (a departure and a return).
                members.retain(|(u, _)| u != user);
                members.push((user.to_owned(), key));
                let admins: Vec<[u8; 32]> = held
                    .admins()
                    .filter(|a| members.iter().any(|(_, k)| k == a))
                    .collect();
                match self.sign_next(name, &held_bytes, members, admins).await? {
                    Some((roster, more)) => {
                        notices.extend(more);
                        roster
                    }
                    None => {
                        notices.extend(self.follow_roster(name).await?);
                        continue;
                    }
                }
            };
            let content = proto_core::Content::Roster {
                room: name,
                roster: &roster,
            };
            self.send_content_to(user, &content).await?;
            return Ok(notices);
        }
        fail(
            Exit::Failure,
            format!("#{name}: the member list kept changing; try again"),
        )
    }

    /// Signs the roster without `user` (admins only): they get no key for anything after.
    pub(crate) async fn sign_removal(
        &mut self,
        name: &str,
        user: &str,
    ) -> anyhow::Result<Vec<Notice>> {
        let mut notices = self.follow_roster(name).await?;
        for _attempt in 0..2 {
            if !self.is_roster_admin(name)? {
                return fail(
                    Exit::Refused,
                    format!("only an admin of #{name} can remove members"),
                );
            }
            let Some(held_bytes) = self.held_roster(name) else {
                return fail(
                    Exit::Refused,
                    format!("#{name} has no signed member list yet"),
                );
            };
            let held = Roster::parse(&held_bytes)
                .map_err(|e| anyhow::anyhow!("the keystore's member list of #{name}: {e}"))?;
            let mut members = members_of(&held);
            if !members.iter().any(|(u, _)| u == user) {
                return fail(Exit::Refused, format!("{user} is not a member of #{name}"));
            }
            members.retain(|(u, _)| u != user);
            let admins: Vec<[u8; 32]> = held
                .admins()
                .filter(|a| members.iter().any(|(_, k)| k == a))
                .collect();
            if admins.is_empty() {
                return fail(Exit::Refused, format!("#{name} would have no admin left"));
            }
            match self.sign_next(name, &held_bytes, members, admins).await? {
                Some((_, more)) => {
                    notices.extend(more);
                    return Ok(notices);
                }
                None => notices.extend(self.follow_roster(name).await?),
            }
        }
        fail(
            Exit::Failure,
            format!("#{name}: the member list kept changing; try again"),
        )
    }

    /// Signs our own leaving. `false` when there is nothing to sign (no roster, or we are its
    /// last member: `Leave` alone ends it). An admin leaving signs as admin; the only admin
    /// hands over to `successor` (the member the server makes its admin).
    pub(crate) async fn sign_leaving(
        &mut self,
        name: &str,
        server_members: &[String],
    ) -> anyhow::Result<bool> {
        self.follow_roster(name).await?;
        let own = self.profile.identity_public()?.signing;
        let me = self.profile.username.clone();
        for _attempt in 0..2 {
            let Some(held_bytes) = self.held_roster(name) else {
                return Ok(false);
            };
            let held = Roster::parse(&held_bytes)
                .map_err(|e| anyhow::anyhow!("the keystore's member list of #{name}: {e}"))?;
            if !held.contains(&me, &own) || held.member_count() < 2 {
                return Ok(false);
            }
            let mut members = members_of(&held);
            members.retain(|(u, _)| *u != me);
            let mut admins: Vec<[u8; 32]> = held.admins().filter(|a| *a != own).collect();
            if admins.is_empty() {
                let successor = server_members
                    .iter()
                    .find_map(|s| members.iter().find(|(u, _)| u == s))
                    .or_else(|| members.first())
                    .map(|(_, k)| *k);
                admins.extend(successor);
            }
            if self
                .sign_next(name, &held_bytes, members, admins)
                .await?
                .is_some()
            {
                return Ok(true);
            }
            self.follow_roster(name).await?;
        }
        fail(
            Exit::Failure,
            format!("#{name}: the member list kept changing; try again"),
        )
    }
}

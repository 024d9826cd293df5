//! Rooms on the client: sender keys per room and epoch, handed to each member inside the
//! pairwise sessions (`Content::RoomKey`), and new epochs when someone leaves.
//!
//! Membership comes from the room's signed roster chain (`membership`), followed before every
//! room send and on every `RoomChanged`: a member who is gone from it is removed from the room
//! state, which starts a new epoch with a fresh sender key, sent only to those who remain. So a
//! member who left (or was removed) never gets a key for anything sent after, and a member the
//! server adds on its own never gets one at all. Members converge on the highest epoch: a key
//! for a later epoch than ours moves us there (and we send our new key around).
//!
//! A room key or room message from a contact whose identity key changed and is not verified is
//! held (see `held`), not used, until the new key is confirmed.
//!
//! The room id in the crypto is `proto_core::room_id_for_name` (the first 16 bytes of
//! SHA-256("Sealroom Room ID v1" || name)), shared with the web client.

use proto_core::limits::MAX_BODY;
use proto_core::{
    Content, ErrorCode, Message, ROOM_OVERHEAD, Room, RoomChange, SenderKeyDistribution,
};
use zeroize::Zeroizing;

use crate::client::{Client, Notice, expect_ok, refusal};
use crate::direct::accepted_id;
use crate::exit::{Exit, fail};
use crate::profile::{
    EarlyKey, Entry, Held, HeldKind, Profile, RoomEntry, RoomSender, key32, now, room_from_hex,
    room_to_hex,
};

/// The 16-byte room id the sender-key layer binds, from the room's name (PROTOCOL.md §4.4;
/// the web client derives the same).
pub(crate) fn room_id(name: &str) -> [u8; 16] {
    proto_core::room_id_for_name(name)
}

/// This device's room sender id (PROTOCOL.md §4.4).
fn own_sender(profile: &Profile) -> anyhow::Result<[u8; 32]> {
    let device = profile.device_id.ok_or_else(|| {
        anyhow::anyhow!("this device does not know its id yet (connect once to learn it)")
    })?;
    Ok(proto_core::room_sender_id(
        &profile.identity_public()?.signing,
        device,
    ))
}

impl Profile {
    /// Room state kept from before room sender ids (our own sender is the account's `IKs`)
    /// starts again: this device's sender id, the next epoch, no member chains (they come
    /// again with every member's key for that epoch), our key owed to everyone (PROTOCOL.md
    /// §4.4). Returns the rooms started again.
    pub(crate) fn upgrade_room_senders(&mut self) -> anyhow::Result<Vec<String>> {
        let identity = self.identity_public()?.signing;
        let own = own_sender(self)?;
        let mut upgraded = Vec::new();
        for (name, entry) in &mut self.rooms {
            let Some(room) = room_from_hex(&entry.state) else {
                continue;
            };
            if *room.own_sender() != identity {
                continue;
            }
            let epoch = room.epoch().checked_add(1).unwrap_or(room.epoch());
            let fresh = Room::create(&mut crate::rng::os(), room_id(name), own, epoch);
            entry.state = room_to_hex(&fresh)?;
            entry.key_sent.clear();
            entry.senders.clear();
            entry.early_keys.clear();
            upgraded.push(name.clone());
        }
        Ok(upgraded)
    }
}

/// `#name` or `name` → `name`.
pub(crate) fn room_name(s: &str) -> &str {
    s.strip_prefix('#').unwrap_or(s)
}

/// An invitation waiting for this user (`RoomChanged { Invited }`, `Invitations`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invitation {
    /// The room.
    pub(crate) room: String,
    /// Who invited us.
    pub(crate) from: String,
}

/// The reply to `AcceptInvite` / `DeclineInvite`: `NOT_FOUND` means no invitation waits.
fn invitation_reply(room: &str, reply: Message<'_>) -> anyhow::Result<()> {
    match reply {
        Message::Error {
            code: ErrorCode::NOT_FOUND,
            ..
        } => fail(
            Exit::Refused,
            format!(
                "no invitation to #{room} is waiting for you (`sealroom rooms invitations` lists them)"
            ),
        ),
        other => expect_ok(other),
    }
}

impl Client {
    /// Members and admin of `room` as the server says.
    pub(crate) async fn list_members(
        &mut self,
        room: &str,
    ) -> anyhow::Result<(String, Vec<String>)> {
        self.link
            .request(&Message::ListMembers { room }, |reply| match reply {
                Message::Members { admin, members, .. } => Ok((
                    admin.to_owned(),
                    members.iter().map(str::to_owned).collect(),
                )),
                Message::Error { code, text } => Err(refusal(code, text)),
                other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
            })
            .await
    }

    pub(crate) fn load_room(&self, name: &str) -> anyhow::Result<Option<(Room, RoomEntry)>> {
        let Some(entry) = self.profile.rooms.get(name) else {
            return Ok(None);
        };
        let room = room_from_hex(&entry.state)
            .ok_or_else(|| anyhow::anyhow!("the keystore's state for #{name} is damaged"))?;
        Ok(Some((room, entry.clone())))
    }

    /// The room's saved state, or a new one at epoch 0 (not saved yet).
    pub(crate) fn load_or_create_room(&self, name: &str) -> anyhow::Result<(Room, RoomEntry)> {
        if let Some(v) = self.load_room(name)? {
            return Ok(v);
        }
        let own = own_sender(&self.profile)?;
        let room = Room::create(&mut crate::rng::os(), room_id(name), own, 0);
        Ok((room, RoomEntry::default()))
    }

    pub(crate) fn store_room(
        &mut self,
        name: &str,
        room: &Room,
        mut entry: RoomEntry,
    ) -> anyhow::Result<()> {
        entry.state = room_to_hex(room)?;
        self.profile.rooms.insert(name.to_owned(), entry);
        Ok(())
    }

    /// The identity signing key of `user`, fetching their bundle if unknown.
    pub(crate) async fn member_key(&mut self, user: &str) -> anyhow::Result<[u8; 32]> {
        if let Some(k) = self
            .profile
            .contacts
            .get(user)
            .and_then(|c| key32(&c.identity_sig))
        {
            return Ok(k);
        }
        Ok(self.fetch_bundle(user).await?.identity.signing)
    }

    /// Brings `name` up to date: follows its signed roster chain, signs (as an admin) what we
    /// may vouch for, then sends our sender key to every member the held roster lists whose
    /// current identity key is the one listed and who lacks our key for this epoch. The
    /// server's member list decides nothing here (PROTOCOL.md §4.7). With `strict`, a member
    /// whose identity key changed stops the operation (exit 7); otherwise they are skipped.
    pub(crate) async fn sync_room(
        &mut self,
        name: &str,
        strict: bool,
    ) -> anyhow::Result<Vec<Notice>> {
        let (server_admin, server_members) = match self.list_members(name).await {
            Ok(v) => v,
            Err(e) => {
                // Not a member any more (or the room is gone): forget it.
                if self.profile.rooms.remove(name).is_some() {
                    self.save()?;
                }
                return Err(e);
            }
        };
        let mut notices = self.follow_roster(name).await?;
        let me = self.profile.username.clone();
        if self.held_roster(name).is_none() {
            // A room made before signed rosters: its admin signs the first one (alone), and
            // adds the members it already had as invited ones, each signed in as usual.
            if server_admin == me && self.fetch_roster(name, 0).await?.is_none() {
                let known: Vec<String> = self
                    .profile
                    .rooms
                    .get(name)
                    .map(|e| e.members.clone())
                    .unwrap_or_default();
                notices.extend(self.publish_first_roster(name).await?);
                for m in known.into_iter().filter(|m| *m != me) {
                    if server_members.contains(&m)
                        && let Err(e) = self.sign_addition(name, &m).await
                    {
                        notices.push(Notice::Warning(format!("#{name}: {m} not added: {e}")));
                    }
                }
            } else {
                notices.push(Notice::Room(format!(
                    "#{name}: waiting for an admin to send you the room's signed member list; \
                     nothing is sent to the room until then"
                )));
                return Ok(notices);
            }
        }
        notices.extend(self.admin_reconcile(name).await?);
        let Some(members) = self.roster_members(name) else {
            return Ok(notices);
        };
        notices.extend(self.drop_revoked_senders(name).await?);
        let Some((room, _)) = self.load_room(name)? else {
            return Ok(notices);
        };
        self.save()?;
        // Our sender key to each listed member who lacks it for this epoch.
        let epoch = room.epoch();
        let dist = room.distribution().to_bytes();
        // Listed and on the server: an invitee the roster already names gets nothing before they
        // accept, and the server's list can only narrow who gets keys, never widen it.
        for (m, listed) in members
            .iter()
            .filter(|(m, _)| *m != me && server_members.contains(m))
        {
            let sent = self
                .profile
                .rooms
                .get(name)
                .is_some_and(|e| e.key_sent.get(m) == Some(&epoch));
            if sent {
                continue;
            }
            if self.profile.contacts.get(m).is_some_and(|c| c.key_changed) {
                if strict {
                    self.check_not_blocked(m)?;
                }
                notices.push(Notice::Warning(format!(
                    "#{name}: not sending the room key to {m}: their identity key changed (verify first)"
                )));
                continue;
            }
            let current = match self.member_key(m).await {
                Ok(k) => k,
                Err(e) => {
                    notices.push(Notice::Warning(format!(
                        "#{name}: not sending the room key to {m}: {e}"
                    )));
                    continue;
                }
            };
            if current != *listed {
                notices.push(Notice::Warning(format!(
                    "#{name}: not sending the room key to {m}: their identity key is not the one \
                     the room's signed member list names (an admin must sign their new key)"
                )));
                continue;
            }
            let first_key = self
                .profile
                .rooms
                .get(name)
                .is_none_or(|e| !e.key_sent.contains_key(m));
            if first_key
                && self.is_roster_admin(name)?
                && let Some(roster) = self.held_roster(name)
            {
                // Their starting point, in case they were added by a client that signs members
                // in only when they join, or lost the roster sent with the invitation.
                self.send_content_to(
                    m,
                    &Content::Roster {
                        room: name,
                        roster: &roster,
                    },
                )
                .await?;
            }
            self.send_content_to(
                m,
                &Content::RoomKey {
                    room: name,
                    distribution: dist.as_ref(),
                },
            )
            .await?;
            if let Some(e) = self.profile.rooms.get_mut(name) {
                e.key_sent.insert(m.clone(), epoch);
            }
            self.save()?;
        }
        // And to our own other devices (none: nothing is sent). The first time, the roster
        // goes first: a device linked before the room existed learns the room from it.
        let sent = self
            .profile
            .rooms
            .get(name)
            .and_then(|e| e.key_sent.get(&me).copied());
        if sent != Some(epoch) && !self.own_other_devices().await?.is_empty() {
            if sent.is_none()
                && let Some(roster) = self.held_roster(name)
            {
                self.send_content_to(
                    &me,
                    &Content::Roster {
                        room: name,
                        roster: &roster,
                    },
                )
                .await?;
            }
            self.send_content_to(
                &me,
                &Content::RoomKey {
                    room: name,
                    distribution: dist.as_ref(),
                },
            )
            .await?;
            if let Some(e) = self.profile.rooms.get_mut(name) {
                e.key_sent.insert(me.clone(), epoch);
            }
            self.save()?;
        }
        Ok(notices)
    }

    /// Devices the room tracks (ours included) that their account no longer lists — revoked —
    /// leave the room's state, and the room moves to a new epoch before anything else is sent
    /// (PROTOCOL.md §4.4): a revoked device, even with a server's help, reads nothing sent
    /// after, and what it sends is no longer taken. A member whose list cannot be fetched now
    /// is left as it is.
    async fn drop_revoked_senders(&mut self, name: &str) -> anyhow::Result<Vec<Notice>> {
        let Some((mut room, mut entry)) = self.load_room(name)? else {
            return Ok(Vec::new());
        };
        let mut members: Vec<String> = entry.senders.iter().map(|s| s.member.clone()).collect();
        members.sort();
        members.dedup();
        let mut gone: Vec<RoomSender> = Vec::new();
        for m in members {
            // Fetched now, not from this connection's cache: in a long `chat` a list from
            // before a device was linked would make that device look revoked.
            let listed = match self.check_devices(&m).await {
                Ok(d) => d,
                Err(_) => continue,
            };
            gone.extend(
                entry
                    .senders
                    .iter()
                    .filter(|s| s.member == m && !listed.contains(&s.device))
                    .cloned(),
            );
        }
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<[u8; 32]> = gone.iter().filter_map(|s| key32(&s.id)).collect();
        room.remove_members(&mut crate::rng::os(), &ids)
            .map_err(|e| anyhow::anyhow!("#{name}: {e}"))?;
        entry.senders.retain(|s| !gone.contains(s));
        self.store_room(name, &room, entry)?;
        self.save()?;
        Ok(gone
            .iter()
            .map(|s| {
                Notice::Warning(format!(
                    "#{name}: {}'s device {} was revoked: it is out of the room, which moves to \
                     a new key",
                    s.member, s.device
                ))
            })
            .collect())
    }

    /// A member's sender key arrived, inside our pairwise session with `from`'s `device` (we
    /// ourselves for another of our devices).
    pub(crate) async fn receive_room_key(
        &mut self,
        from: &str,
        device: u32,
        name: &str,
        distribution: &[u8],
    ) -> anyhow::Result<Vec<Notice>> {
        let held = Held {
            kind: HeldKind::Key,
            from: from.to_owned(),
            room: name.to_owned(),
            bytes: hex::encode(distribution),
            at: 0,
            server_id: 0,
            device,
        };
        if let Some(n) = self.hold_if_key_changed(held) {
            return Ok(n);
        }
        let mut notices = Vec::new();
        let Ok(dist) = SenderKeyDistribution::from_bytes(distribution) else {
            notices.push(Notice::Warning(format!(
                "#{name}: {from} sent a malformed room key"
            )));
            return Ok(notices);
        };
        let Some(identity) = self.account_identity(from)? else {
            return Ok(notices);
        };
        if !self.roster_lists(name, from, &identity) {
            // Perhaps the chain moved on since we last looked.
            if self.held_roster(name).is_some() {
                notices.extend(self.follow_roster(name).await?);
            }
        }
        let Some((mut room, mut entry)) = self.load_room(name)? else {
            notices.push(Notice::Warning(format!(
                "#{name}: ignored a room key from {from}: you hold no signed member list of #{name}"
            )));
            return Ok(notices);
        };
        if !self.roster_lists(name, from, &identity) {
            // Kept aside, unused, in case a roster naming them arrives next.
            let early = &mut entry.early_device_keys;
            early.retain(|k| !(k.from == from && k.device == device));
            early.push(EarlyKey {
                from: from.to_owned(),
                device,
                distribution: hex::encode(distribution),
            });
            if early.len() > crate::profile::EARLY_KEYS_LIMIT {
                early.remove(0);
            }
            self.store_room(name, &room, entry)?;
            notices.push(Notice::Warning(format!(
                "#{name}: a room key from {from}, whom the room's signed member list does not \
                 name with this key, is not used (kept aside until a member list names them)"
            )));
            return Ok(notices);
        }
        if let Err(why) = take_room_key(&mut room, &mut entry, from, device, &identity, &dist) {
            notices.push(Notice::Warning(format!(
                "#{name}: room key from {from} not used: {why}"
            )));
        }
        let needs_ours = entry.key_sent.get(from) != Some(&room.epoch());
        self.store_room(name, &room, entry)?;
        if needs_ours && !self.rooms_to_sync.iter().any(|r| r == name) {
            self.rooms_to_sync.push(name.to_owned());
        }
        Ok(notices)
    }

    /// The identity signing key we hold for `user`'s account (ours for our own); `None` for an
    /// unknown contact.
    pub(crate) fn account_identity(&self, user: &str) -> anyhow::Result<Option<[u8; 32]>> {
        if user == self.profile.username {
            return Ok(Some(self.profile.identity_public()?.signing));
        }
        Ok(self
            .profile
            .contacts
            .get(user)
            .and_then(|c| key32(&c.identity_sig)))
    }

    /// A room message arrived, from `from`'s `device` as the server says (ours: sent from
    /// another of our devices).
    pub(crate) async fn receive_room(
        &mut self,
        name: &str,
        from: &str,
        device: u32,
        body: &[u8],
        sent_at: u64,
        server_id: u64,
    ) -> anyhow::Result<Vec<Notice>> {
        let held = Held {
            kind: HeldKind::Message,
            from: from.to_owned(),
            room: name.to_owned(),
            bytes: hex::encode(body),
            at: sent_at,
            server_id,
            device,
        };
        if let Some(n) = self.hold_if_key_changed(held) {
            return Ok(n);
        }
        let mut notices = Vec::new();
        let unreadable = |why: String| Entry {
            conversation: format!("#{name}"),
            from: from.to_owned(),
            text: format!("[could not decrypt this message: {why}]"),
            at: sent_at,
            id: 0,
            server_id: Some(server_id),
            outgoing: false,
            state: "undecryptable".into(),
            unread: true,
            ..Entry::default()
        };
        let Some((mut room, entry)) = self.load_room(name)? else {
            let e = unreadable("no key for this room yet".into());
            self.profile.push_history(e.clone());
            notices.push(Notice::Message(e));
            return Ok(notices);
        };
        let mut plain = Zeroizing::new(vec![0u8; body.len()]);
        let result = room.decrypt(body, &mut plain);
        let got = match result {
            Ok(p) => p,
            Err(proto_core::RoomDecryptError::Replay) => return Ok(notices),
            Err(err) => {
                let entry = unreadable(format!("{err} (ask {from} to send again)"));
                self.profile.push_history(entry.clone());
                notices.push(Notice::Message(entry));
                // Make sure the sender has our key and we are in step with the membership,
                // and (once per run) ask the sender for theirs: a SessionReset makes them
                // send their room keys again.
                if !self.rooms_to_sync.iter().any(|r| r == name) {
                    self.rooms_to_sync.push(name.to_owned());
                }
                if !matches!(err, proto_core::RoomDecryptError::Replay)
                    && !self.room_resets_asked.iter().any(|u| u == from)
                    && !self
                        .profile
                        .contacts
                        .get(from)
                        .is_some_and(|c| c.key_changed)
                {
                    self.room_resets_asked.push(from.to_owned());
                    if !self.resets.iter().any(|u| u == from) {
                        self.resets.push(from.to_owned());
                    }
                }
                return Ok(notices);
            }
        };
        // The device the server names must be the one whose key this is (PROTOCOL.md §4.4).
        let sender_ok = self
            .account_identity(from)?
            .is_some_and(|k| proto_core::room_sender_id(&k, device) == got.sender);
        self.store_room(name, &room, entry)?;
        if !sender_ok {
            let e =
                unreadable("the sender key does not belong to the sender the server named".into());
            self.profile.push_history(e.clone());
            notices.push(Notice::Message(e));
            return Ok(notices);
        }
        let plain = plain.get(..got.len).ok_or_else(|| {
            anyhow::anyhow!(
                "#{name}: the room reported {} plaintext bytes of a {}-byte message",
                got.len,
                body.len()
            )
        })?;
        match Content::decode(plain) {
            Ok(Content::Text {
                id,
                sent_at: written,
                text,
            }) if from == self.profile.username => {
                // Ours, sent from another of our devices.
                let conversation = format!("#{name}");
                if let Some(entry) = self.profile.receive_room_transcript(
                    conversation,
                    text,
                    (written, id, server_id),
                ) {
                    notices.push(Notice::Message(entry));
                }
            }
            Ok(Content::Text {
                id,
                sent_at: written,
                text,
            }) => {
                let conversation = format!("#{name}");
                let ids = (written, id, server_id);
                if let Some(entry) = self.profile.receive_text(conversation, from, text, ids) {
                    notices.push(Notice::Message(entry));
                }
            }
            Ok(_) | Err(_) => {
                let e = unreadable("unexpected content in a room message".into());
                self.profile.push_history(e.clone());
                notices.push(Notice::Message(e));
            }
        }
        Ok(notices)
    }

    /// Sends a text to a room (membership reconciled and keys distributed first).
    pub(crate) async fn send_text_to_room(
        &mut self,
        name: &str,
        text: &str,
    ) -> anyhow::Result<(Entry, Vec<Notice>)> {
        let notices = self.sync_room(name, true).await?;
        if self.held_roster(name).is_none() {
            return fail(
                Exit::Failure,
                format!(
                    "#{name}: nothing sent: you are not in the room's signed member list yet \
                     (the admin who invited you sends it; ask them to open Sealroom)"
                ),
            );
        }
        let Some((mut room, entry)) = self.load_room(name)? else {
            return fail(Exit::Failure, format!("#{name}: no room state"));
        };
        let id = crate::rng::u64();
        let at = now();
        let mut plain = Zeroizing::new(vec![0u8; MAX_BODY]);
        let n = Content::Text {
            id,
            sent_at: at,
            text,
        }
        .encode(&mut plain)
        .map_err(|_| anyhow::anyhow!("the message is too long"))?;
        let plain = plain.get(..n).ok_or_else(|| {
            anyhow::anyhow!("cannot encrypt: the encoded content claims {n} bytes of {MAX_BODY}")
        })?;
        let mut body = vec![0u8; n + ROOM_OVERHEAD];
        let used = room
            .encrypt(plain, &mut body)
            .map_err(|e| anyhow::anyhow!("cannot encrypt: {e}"))?;
        body.truncate(used);
        if body.len() > MAX_BODY {
            return fail(Exit::Failure, "the message is too long");
        }
        // Saved before sending: a sender-key message key is never used twice.
        self.store_room(name, &room, entry)?;
        self.save()?;
        let client_id = crate::rng::u64();
        let send = Message::SendToRoom {
            room: name,
            client_id,
            body: &body,
        };
        let server_id = self.link.request(&send, accepted_id).await?;
        let e = Entry {
            conversation: format!("#{name}"),
            from: self.profile.username.clone(),
            text: text.to_owned(),
            at,
            id,
            server_id: Some(server_id),
            outgoing: true,
            state: "sent".into(),
            unread: false,
            ..Entry::default()
        };
        self.profile.push_history(e.clone());
        self.save()?;
        Ok((e, notices))
    }

    /// The server announced a membership change.
    pub(crate) async fn room_changed(
        &mut self,
        name: &str,
        user: &str,
        change: RoomChange,
    ) -> anyhow::Result<Vec<Notice>> {
        let what = match change {
            RoomChange::Joined => "joined",
            RoomChange::Left => "left",
            RoomChange::Removed => "was removed from",
            RoomChange::Roster => "signed a new roster of",
            // Not a membership yet: nothing to sync until we accept.
            RoomChange::Invited => {
                return Ok(vec![Notice::Invited(Invitation {
                    room: name.to_owned(),
                    from: user.to_owned(),
                })]);
            }
        };
        let mut notices = Vec::new();
        if change != RoomChange::Roster {
            // The server's word: the signed member list, not this, decides who gets keys.
            notices.push(Notice::Room(format!(
                "the server says {user} {what} #{name}"
            )));
        }
        if user == self.profile.username && change != RoomChange::Joined {
            self.profile.rooms.remove(name);
            self.save()?;
            return Ok(notices);
        }
        match self.sync_room(name, false).await {
            Ok(more) => notices.extend(more),
            Err(e) => notices.push(Notice::Warning(format!("#{name}: {e}"))),
        }
        Ok(notices)
    }

    /// Creates a room on the server, then signs and publishes its first roster (us, admin).
    pub(crate) async fn create_room(&mut self, name: &str) -> anyhow::Result<Vec<Notice>> {
        self.link
            .request(&Message::CreateRoom { room: name }, expect_ok)
            .await?;
        self.profile.rooms.remove(name);
        let notices = self.publish_first_roster(name).await?;
        self.save()?;
        Ok(notices)
    }

    /// Invites `user` (admins of the signed member list only): signs them into the member list
    /// and sends it to them, then asks the server to invite them. They are not a member until
    /// they accept; our sender key goes to them when the server lists them (`RoomChanged {
    /// Joined }`, or the next `sync_room`).
    pub(crate) async fn invite(&mut self, name: &str, user: &str) -> anyhow::Result<Vec<Notice>> {
        self.check_not_blocked(user)?;
        let notices = self.sign_addition(name, user).await?;
        self.save()?;
        let invite = Message::Invite {
            room: name,
            username: user,
        };
        self.link.request(&invite, expect_ok).await?;
        Ok(notices)
    }

    /// The invitations waiting for this user.
    pub(crate) async fn list_invitations(&mut self) -> anyhow::Result<Vec<Invitation>> {
        self.link
            .request(&Message::ListInvitations, |reply| match reply {
                Message::Invitations { rooms, from } => Ok(rooms
                    .iter()
                    .zip(from.iter())
                    .map(|(room, from)| Invitation {
                        room: room.to_owned(),
                        from: from.to_owned(),
                    })
                    .collect()),
                Message::Error { code, text } => Err(refusal(code, text)),
                other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
            })
            .await
    }

    /// Accepts the invitation to `name`: we become a member, then sync the room as any member
    /// does (member list, our new sender key to each of them; theirs come when they hear we
    /// joined).
    pub(crate) async fn accept_invite(&mut self, name: &str) -> anyhow::Result<Vec<Notice>> {
        self.link
            .request(&Message::AcceptInvite { room: name }, |reply| {
                invitation_reply(name, reply)
            })
            .await?;
        // State left from an earlier membership (a removal we never heard of) is not reused:
        // a new member starts with a fresh sender key. The roster the inviter sent with the
        // invitation is kept (it names us, with our key).
        let own = self.profile.identity_public()?.signing;
        let me = self.profile.username.clone();
        let invited_state = self.profile.rooms.get(name).is_some_and(|e| {
            e.key_sent.is_empty() && crate::membership::roster_hex_lists(&e.roster, &me, &own)
        });
        if !invited_state {
            self.profile.rooms.remove(name);
        }
        self.sync_room(name, false).await
    }

    /// Declines the invitation to `name` (nobody is told).
    pub(crate) async fn decline_invite(&mut self, name: &str) -> anyhow::Result<()> {
        self.link
            .request(&Message::DeclineInvite { room: name }, |reply| {
                invitation_reply(name, reply)
            })
            .await
    }

    /// Leaves a room: signs our leaving into the member list (so every member starts a new
    /// epoch), then tells the server; the last member just leaves (the room ends).
    pub(crate) async fn leave(&mut self, name: &str) -> anyhow::Result<()> {
        let server_members = match self.list_members(name).await {
            Ok((_, m)) => m,
            Err(_) => Vec::new(),
        };
        if !server_members.is_empty() {
            self.sign_leaving(name, &server_members).await?;
        }
        // Refused as "no such room" or "not a member": we are out of it all the same (the
        // server applies a signed leaving itself).
        let mut gone = false;
        let left = self
            .link
            .request(&Message::Leave { room: name }, |reply| {
                gone = matches!(
                    reply,
                    Message::Error {
                        code: ErrorCode::NOT_FOUND | ErrorCode::FORBIDDEN,
                        ..
                    }
                );
                expect_ok(reply)
            })
            .await;
        if left.is_ok() || gone {
            self.profile.rooms.remove(name);
            self.save()?;
            return Ok(());
        }
        left
    }

    /// Removes `user` (admins only): signs the member list without them (a new epoch); the
    /// server then drops them too.
    pub(crate) async fn remove(&mut self, name: &str, user: &str) -> anyhow::Result<Vec<Notice>> {
        let listed = self
            .roster_members(name)
            .is_some_and(|m| m.iter().any(|(u, _)| u == user));
        let mut notices = if listed {
            self.sign_removal(name, user).await?
        } else {
            Vec::new()
        };
        let remove = Message::Remove {
            room: name,
            username: user,
        };
        self.link
            .request(&remove, |reply| match reply {
                // The server applied the signed removal already.
                Message::Error {
                    code: ErrorCode::NOT_FOUND | ErrorCode::FORBIDDEN | ErrorCode::INVALID_INPUT,
                    ..
                } if listed => Ok(()),
                other => expect_ok(other),
            })
            .await?;
        notices.extend(self.sync_room(name, false).await?);
        Ok(notices)
    }

    /// The rooms this account is in.
    pub(crate) async fn list_rooms(&mut self) -> anyhow::Result<Vec<String>> {
        self.link
            .request(&Message::ListRooms, |reply| match reply {
                Message::Rooms { rooms } => Ok(rooms.iter().map(str::to_owned).collect()),
                Message::Error { code, text } => Err(refusal(code, text)),
                other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
            })
            .await
    }
}

/// Takes a distribution that came through the session with (`from`, `device`), whose account
/// identity is `identity` and whom the roster lists (PROTOCOL.md §4.4): its sender must be that
/// device's room sender id; a device the room does not track yet is added (and recorded as
/// `from`'s), and is owed our key (`key_sent` forgets `from`); a later epoch moves us there.
/// Errors say why the key was not used.
pub(crate) fn take_room_key(
    room: &mut Room,
    entry: &mut RoomEntry,
    from: &str,
    device: u32,
    identity: &[u8; 32],
    dist: &SenderKeyDistribution,
) -> Result<(), String> {
    let sender = proto_core::room_sender_id(identity, device);
    if *dist.sender() != sender {
        return Err(proto_core::DistributionError::SenderMismatch.to_string());
    }
    if !room.is_member(&sender) {
        room.add_member(&sender).map_err(|e| e.to_string())?;
        let id = hex::encode(sender);
        entry.senders.retain(|s| s.id != id);
        entry.senders.push(RoomSender {
            member: from.to_owned(),
            device,
            id,
        });
        // A device new to us lacks our key too: it goes again to all of `from`'s devices.
        entry.key_sent.remove(from);
    }
    let result = match room.handle_distribution(dist, &sender) {
        // An older epoch than ours (a new device starts at 0): it gets our newer key and
        // catches up, so there is nothing to tell.
        Ok(()) | Err(proto_core::DistributionError::WrongEpoch) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    if dist.epoch() > room.epoch()
        && room
            .start_epoch(&mut crate::rng::os(), dist.epoch())
            .is_ok()
    {
        entry.key_sent.clear();
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn dist_of(room: &Room) -> SenderKeyDistribution {
        SenderKeyDistribution::from_bytes(&*room.distribution().to_bytes()).unwrap()
    }

    /// Room state from before room sender ids starts again once under this device's id, and
    /// an old keystore's room entry and held item still read.
    #[test]
    fn legacy_room_state_starts_again_under_the_device_sender_id() {
        let mut profile = Profile::generate("127.0.0.1:1", "carol", 100);
        let identity = profile.identity_public().unwrap().signing;
        let legacy: Room = Room::create(&mut crate::rng::os(), room_id("team"), identity, 3);
        let old_json = serde_json::json!({
            "state": room_to_hex(&legacy).unwrap(), "members": ["alice", "carol"],
            "admin": "alice", "key_sent": { "alice": 3 }, "roster": "",
            "early_keys": [["bob", "00"]],
        });
        let entry: RoomEntry = serde_json::from_value(old_json).unwrap();
        assert_eq!(entry.early_keys.len(), 1, "an old keystore's entry reads");
        assert!(entry.senders.is_empty() && entry.early_device_keys.is_empty());
        profile.rooms.insert("team".into(), entry);
        assert!(
            profile.upgrade_room_senders().is_err(),
            "no device id yet: nothing to start again under"
        );
        profile.device_id = Some(2);
        assert_eq!(profile.upgrade_room_senders().unwrap(), ["team"]);
        let e = profile.rooms.get("team").unwrap().clone();
        let room = room_from_hex(&e.state).unwrap();
        assert_eq!(*room.own_sender(), proto_core::room_sender_id(&identity, 2));
        assert_eq!(room.epoch(), 4, "the next epoch");
        assert!(e.key_sent.is_empty(), "our new key is owed to everyone");
        assert!(e.early_keys.is_empty());
        assert!(profile.upgrade_room_senders().unwrap().is_empty(), "once");
        let saved = serde_json::to_value(&e).unwrap();
        assert!(saved.get("early_keys").is_none(), "not written back");

        let held: Held = serde_json::from_value(serde_json::json!({
            "kind": "key", "from": "alice", "room": "team", "bytes": "00", "at": 0, "server_id": 0,
        }))
        .unwrap();
        assert_eq!(held.device, 0, "no device has id 0: refused when processed");
    }

    /// A room key is taken only with the sender id of the device whose session brought it; a
    /// device new to the room is recorded as the member's and owed our key.
    #[test]
    fn a_room_key_must_carry_the_sender_id_of_the_device_it_came_from() {
        let mut rng = crate::rng::os();
        let id = room_id("team");
        let carol = [7u8; 32];
        let (phone, laptop) = (
            proto_core::room_sender_id(&carol, 2),
            proto_core::room_sender_id(&carol, 1),
        );
        let from_phone: Room = Room::create(&mut rng, id, phone, 0);
        let mut ours: Room = Room::create(&mut rng, id, [1; 32], 0);
        let mut entry = RoomEntry::default();
        entry.key_sent.insert("carol".into(), 0);
        let dist = dist_of(&from_phone);
        // As if from the laptop, or from another account with the same device id: refused.
        let err = take_room_key(&mut ours, &mut entry, "carol", 1, &carol, &dist).unwrap_err();
        assert!(err.contains("sender"), "{err}");
        let err = take_room_key(&mut ours, &mut entry, "carol", 2, &[8; 32], &dist).unwrap_err();
        assert!(err.contains("sender"), "{err}");
        assert!(!ours.is_member(&phone) && !ours.is_member(&laptop));
        assert_eq!(entry.key_sent.get("carol"), Some(&0), "nothing changed");
        // From the phone's own session: taken, recorded, and our key is owed to carol again.
        take_room_key(&mut ours, &mut entry, "carol", 2, &carol, &dist).unwrap();
        assert!(ours.is_member(&phone));
        assert_eq!(
            entry.senders,
            [RoomSender {
                member: "carol".into(),
                device: 2,
                id: hex::encode(phone)
            }]
        );
        assert!(!entry.key_sent.contains_key("carol"));
        // A later epoch moves us there; a known device's key again changes no record.
        let later: Room = Room::create(&mut rng, id, phone, 5);
        take_room_key(&mut ours, &mut entry, "carol", 2, &carol, &dist_of(&later)).unwrap();
        assert_eq!(ours.epoch(), 5);
        assert_eq!(entry.senders.len(), 1);
    }

    /// The guarantee `sync_room` relies on: after a member is removed, the remaining members'
    /// new-epoch messages cannot be read with the removed member's state.
    #[test]
    fn removed_member_cannot_read_the_next_epoch() {
        let mut rng = crate::rng::os();
        let id = room_id("team");
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let mut ra: Room = Room::create(&mut rng, id, a, 0);
        let mut rb: Room = Room::create(&mut rng, id, b, 0);
        let mut rc: Room = Room::create(&mut rng, id, c, 0);
        for (r, others) in [(&mut ra, [b, c]), (&mut rb, [a, c]), (&mut rc, [a, b])] {
            for o in others {
                r.add_member(&o).unwrap();
            }
        }
        let da = ra.distribution();
        rb.handle_distribution(&da, &a).unwrap();
        rc.handle_distribution(&da, &a).unwrap();
        let mut msg = vec![0u8; 5 + ROOM_OVERHEAD];
        let n = ra.encrypt(b"hello", &mut msg).unwrap();
        let mut out = [0u8; 64];
        assert!(rc.decrypt(msg.get(..n).unwrap(), &mut out).is_ok());
        // c leaves: a and b move to epoch 1 and exchange keys; c gets nothing.
        ra.remove_member(&mut rng, &c).unwrap();
        rb.remove_member(&mut rng, &c).unwrap();
        rb.handle_distribution(&ra.distribution(), &a).unwrap();
        let n = ra.encrypt(b"after", &mut msg).unwrap();
        assert!(rb.decrypt(msg.get(..n).unwrap(), &mut out).is_ok());
        assert!(rc.decrypt(msg.get(..n).unwrap(), &mut out).is_err());
    }

    #[test]
    fn room_ids_differ_by_name() {
        assert_ne!(room_id("a"), room_id("b"));
        assert_eq!(room_name("#team"), "team");
    }
}

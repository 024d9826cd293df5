//! Room keys and room messages held while their sender's identity key changed and is not yet
//! verified.
//!
//! A server that substitutes a contact's identity key could otherwise hand us a sender key in
//! their name, then forge room messages from them: one-to-one chat warns of the change, and
//! rooms must not quietly accept it. So a room key or room message from a contact marked
//! `key_changed` is kept aside in the profile (at most [`HELD_LIMIT`], the oldest dropped
//! first), with one notice per sender and room, and processed once the person confirms the new
//! safety number (`verify @user --confirm NUMBER`): the held room keys first, then the held
//! messages, each in arrival order. This module decides nothing about rooms; `rooms` does.

use crate::client::{Client, Notice};
use crate::profile::{HELD_LIMIT, Held, HeldKind};

impl Client {
    /// Holds `item` if its sender's identity key changed and is not verified; returns the
    /// notices to show if it was held, `None` if it is to be processed now.
    pub(crate) fn hold_if_key_changed(&mut self, item: Held) -> Option<Vec<Notice>> {
        if !self
            .profile
            .contacts
            .get(&item.from)
            .is_some_and(|c| c.key_changed)
        {
            return None;
        }
        let mut notices = Vec::new();
        if !self
            .profile
            .held
            .iter()
            .any(|h| h.from == item.from && h.room == item.room)
        {
            let what = match item.kind {
                HeldKind::Key => "a room key",
                HeldKind::Message => "messages",
            };
            notices.push(Notice::Warning(format!(
                "#{room}: {what} from {from} held until you compare {from}'s new safety number \
                 (`sealroom verify @{from}`)",
                room = item.room,
                from = item.from,
            )));
        }
        self.profile.held.push_back(item);
        while self.profile.held.len() > HELD_LIMIT {
            self.profile.held.pop_front();
        }
        Some(notices)
    }

    /// Releases what is held from every sender verified since (a `verify --confirm` that
    /// could not reach the server leaves it for `inbox`).
    pub(crate) async fn release_verified(&mut self) -> anyhow::Result<Vec<Notice>> {
        let mut senders: Vec<String> = Vec::new();
        for h in &self.profile.held {
            let verified = self
                .profile
                .contacts
                .get(&h.from)
                .is_some_and(|c| !c.key_changed);
            if verified && !senders.contains(&h.from) {
                senders.push(h.from.clone());
            }
        }
        let mut notices = Vec::new();
        for user in senders {
            notices.extend(self.release_held(&user).await?);
        }
        Ok(notices)
    }

    /// After `user`'s key was verified: their held room keys, then their held messages, in
    /// arrival order; then the work they asked for (our key to them, resets). Nothing is
    /// released while their key is still unverified.
    pub(crate) async fn release_held(&mut self, user: &str) -> anyhow::Result<Vec<Notice>> {
        let mut notices = Vec::new();
        if self
            .profile
            .contacts
            .get(user)
            .is_none_or(|c| c.key_changed)
        {
            return Ok(notices);
        }
        let before = self.profile.clone();
        let (mine, rest): (Vec<Held>, Vec<Held>) =
            self.profile.held.drain(..).partition(|h| h.from == user);
        self.profile.held = rest.into();
        let (keys, messages): (Vec<Held>, Vec<Held>) =
            mine.into_iter().partition(|h| h.kind == HeldKind::Key);
        for h in keys.iter().chain(messages.iter()) {
            let Ok(bytes) = hex::decode(&h.bytes) else {
                notices.push(Notice::Warning(format!(
                    "#{}: a held item from {user} was damaged in the keystore; dropped",
                    h.room
                )));
                continue;
            };
            let result = match h.kind {
                HeldKind::Key => {
                    self.receive_room_key(&h.from, h.device, &h.room, &bytes)
                        .await
                }
                HeldKind::Message => {
                    self.receive_room(&h.room, &h.from, h.device, &bytes, h.at, h.server_id)
                        .await
                }
            };
            match result {
                Ok(n) => notices.extend(n),
                Err(e) => {
                    // Undo everything (the items stay held) rather than keep half of it.
                    self.profile = before;
                    self.resets.clear();
                    self.rooms_to_sync.clear();
                    return Err(e);
                }
            }
        }
        self.save()?;
        self.after_event(&mut notices).await?;
        Ok(notices)
    }
}

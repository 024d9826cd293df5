//! One-to-one messaging: X3DH against a fetched bundle, the Double Ratchet, the body envelope,
//! identity-key tracking, and healing a broken session.
//!
//! Trust: a contact's identity key is remembered the first time it is seen. A different key
//! later (in a bundle, or in a prekey message once that message decrypted) is recorded, the
//! contact is marked changed, and sending to them is refused until `verify --confirm`.
//! Messages from them are still shown; their room keys and room messages are held (`held`).
//!
//! Replays: each contact keeps the base keys of the first messages taken in; a prekey message
//! with one of them is a copy the server replayed, and changes nothing (no session is
//! re-installed, no reset forced). A prekey message that fails while a session with its sender
//! works does not break that session either.
//!
//! Healing: a message that does not decrypt is kept in the history as "could not decrypt" with
//! the reason; our sessions with the sender are dropped and a `SessionReset` goes out in a new
//! X3DH session, so both sides start fresh without anyone doing anything (except for a failed
//! prekey message while a session works, above).

use proto_core::limits::MAX_BODY;
use proto_core::{
    Content, DecryptError, DeviceBody, Envelope, ErrorCode, IdentityPublicKey, List, Message,
    PREKEY_HEADER_LEN, RATCHET_OVERHEAD, RemoteBundle, Session,
};
use zeroize::Zeroizing;

use crate::client::{Client, Notice, refusal};
use crate::exit::{Exit, Failure, fail};
use crate::profile::{Contact, Entry, now, session_from_hex, session_to_hex};

/// Why a message could not be read, for the history.
fn reason(e: DecryptError) -> &'static str {
    match e {
        DecryptError::Authentication => "it failed authentication (wrong session, or altered)",
        DecryptError::Malformed => "it is malformed",
        DecryptError::TooManySkipped => "too many messages were lost before it",
        DecryptError::Replay => "it was already received",
        DecryptError::Caller(_) => "it is too large",
    }
}

/// The server's id from an `Accepted` reply to a send.
pub(crate) fn accepted_id(reply: Message<'_>) -> anyhow::Result<u64> {
    match reply {
        Message::Accepted { server_id, .. } => Ok(server_id),
        Message::Error { code, text } => Err(refusal(code, text)),
        other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
    }
}

/// What a send to a user's device came back with.
enum Sent {
    /// Stored by the server, with this id.
    Accepted(u64),
    /// `STALE_DEVICES`: the device we encrypted for is no longer the user's.
    Stale,
}

impl Client {
    /// Asks the server for `user`'s identity and devices (PROTOCOL.md §3.4 message 51) and
    /// records the identity as a bundle's would be: a key different from the one we hold marks
    /// the contact changed and fails with exit 7, before anything is encrypted to it. Returns
    /// the device to encrypt for (an account has one until linking is on the wire).
    pub(crate) async fn check_devices(&mut self, user: &str) -> anyhow::Result<u32> {
        let (identity, devices) = self
            .link
            .request(
                &Message::FetchDevices { username: user },
                |reply| match reply {
                    Message::Devices {
                        identity_sig,
                        identity_dh,
                        devices,
                        ..
                    } => Ok((
                        IdentityPublicKey {
                            signing: identity_sig.0,
                            dh: identity_dh.0,
                        },
                        devices.iter().collect::<Vec<u32>>(),
                    )),
                    Message::Error { code, text } => Err(refusal(code, text)),
                    other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
                },
            )
            .await?;
        self.observe_identity(user, &identity)?;
        let [device] = devices[..] else {
            return fail(
                Exit::Refused,
                format!(
                    "the server lists {} devices for {user}; this version of sealroom writes to \
                     accounts with exactly one",
                    devices.len()
                ),
            );
        };
        self.devices_checked.insert(user.to_owned(), device);
        Ok(device)
    }

    /// Fetches `user`'s prekey bundle; records or checks their identity key.
    pub(crate) async fn fetch_bundle(&mut self, user: &str) -> anyhow::Result<RemoteBundle> {
        let bundle = self
            .link
            .request(
                &Message::FetchBundle { username: user },
                |reply| match reply {
                    Message::Bundle { bundle } => Ok(RemoteBundle::from(&bundle)),
                    Message::Error { code, text } => Err(refusal(code, text)),
                    other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
                },
            )
            .await?;
        self.observe_identity(user, &bundle.identity)?;
        Ok(bundle)
    }

    /// Records `identity` for `user`: new contacts are trusted on first use; a different key
    /// marks the contact changed (and is saved) and returns the identity-changed failure.
    fn observe_identity(&mut self, user: &str, identity: &IdentityPublicKey) -> anyhow::Result<()> {
        match self.profile.contacts.get_mut(user) {
            None => {
                self.profile
                    .contacts
                    .insert(user.to_owned(), Contact::new(identity));
                Ok(())
            }
            Some(c) if c.matches(identity) => Ok(()),
            Some(c) => {
                c.replace_identity(identity);
                self.profile.forget_keys_sent_to(user);
                self.save()?;
                self.check_not_blocked(user)
            }
        }
    }

    /// Our session with `user`, starting one (X3DH) if there is none that can send.
    async fn sending_session(&mut self, user: &str) -> anyhow::Result<Session> {
        if user == self.profile.username {
            return fail(Exit::Failure, "that is you: send to someone else");
        }
        self.check_not_blocked(user)?;
        // Once per connection, before the first encryption to them: is the identity we hold
        // still theirs (they may have started over)? Later changes come back as STALE_DEVICES.
        if !self.devices_checked.contains_key(user) {
            self.check_devices(user).await?;
        }
        if let Some(s) = self
            .profile
            .contacts
            .get(user)
            .and_then(|c| c.session.as_deref())
            .and_then(session_from_hex)
            .filter(Session::can_send)
        {
            return Ok(s);
        }
        let bundle = self.fetch_bundle(user).await?;
        let identity = self.profile.identity()?;
        let (session, _) =
            Session::initiate(&mut crate::rng::os(), &identity, &bundle).map_err(|e| {
                Failure::new(
                    Exit::Refused,
                    format!(
                        "cannot start a session with {user}: {e}; their published keys are invalid"
                    ),
                )
            })?;
        Ok(session)
    }

    /// Encrypts `content` for `user`'s device, saves the advanced session, sends it; returns
    /// the server's id. The session is saved *before* sending, so a crash never reuses a key.
    ///
    /// If the server answers that the device is not theirs any more (`STALE_DEVICES`), their
    /// devices are fetched again: a changed identity fails with exit 7 (nothing was stored);
    /// the same identity on another device gets a new session and one more try.
    pub(crate) async fn send_content_to(
        &mut self,
        user: &str,
        content: &Content<'_>,
    ) -> anyhow::Result<u64> {
        for _ in 0..2 {
            match self.send_content_once(user, content).await? {
                Sent::Accepted(id) => return Ok(id),
                Sent::Stale => {
                    let before = self.devices_checked.remove(user);
                    let now = self.check_devices(user).await?;
                    if before == Some(now) {
                        break;
                    }
                    // Same identity, another device: the session was with the old one.
                    if let Some(c) = self.profile.contacts.get_mut(user) {
                        c.previous_session = c.session.take();
                    }
                }
            }
        }
        fail(
            Exit::Refused,
            format!(
                "the server refuses the device it lists for {user} (STALE_DEVICES); nothing was \
                 sent. Try again later"
            ),
        )
    }

    async fn send_content_once(
        &mut self,
        user: &str,
        content: &Content<'_>,
    ) -> anyhow::Result<Sent> {
        let mut session = self.sending_session(user).await?;
        let Some(&device) = self.devices_checked.get(user) else {
            return fail(
                Exit::Failure,
                format!("internal error: {user}'s device was not checked"),
            );
        };
        let mut plain = Zeroizing::new(vec![0u8; MAX_BODY]);
        let n = content
            .encode(&mut plain)
            .map_err(|_| anyhow::anyhow!("the message is too long"))?;
        let plain = plain.get(..n).ok_or_else(|| {
            anyhow::anyhow!("cannot encrypt: the encoded content claims {n} bytes of {MAX_BODY}")
        })?;
        let mut body = vec![0u8; 1 + PREKEY_HEADER_LEN + n + RATCHET_OVERHEAD];
        let header = session.pending_prekey_header().copied();
        let prefix = Envelope::emit_prefix(header.as_ref(), &mut body)
            .map_err(|e| anyhow::anyhow!("cannot build the message: {e}"))?;
        let room = body.len();
        let sealed = body.get_mut(prefix..).ok_or_else(|| {
            anyhow::anyhow!(
                "cannot encrypt: the envelope prefix ({prefix} bytes) fills the {room}-byte body"
            )
        })?;
        let used = session
            .encrypt(&mut crate::rng::os(), plain, sealed)
            .map_err(|e| anyhow::anyhow!("cannot encrypt: {e}"))?;
        body.truncate(prefix + used);
        if body.len() > MAX_BODY {
            return fail(Exit::Failure, "the message is too long");
        }
        let state = session_to_hex(&session)?;
        if let Some(c) = self.profile.contacts.get_mut(user) {
            c.session = Some(state);
        }
        self.save()?;
        let client_id = crate::rng::u64();
        let bodies = [DeviceBody {
            device,
            body: &body,
        }];
        let send = Message::SendToDevices {
            to: user,
            client_id,
            bodies: List::from_items(&bodies),
        };
        self.link
            .request(&send, |reply| match reply {
                Message::Error {
                    code: ErrorCode::STALE_DEVICES,
                    ..
                } => Ok(Sent::Stale),
                other => accepted_id(other).map(Sent::Accepted),
            })
            .await
    }

    /// Sends a text to `user`; records it in the history as "sent".
    pub(crate) async fn send_text_to(&mut self, user: &str, text: &str) -> anyhow::Result<Entry> {
        let id = crate::rng::u64();
        let at = now();
        let server_id = self
            .send_content_to(
                user,
                &Content::Text {
                    id,
                    sent_at: at,
                    text,
                },
            )
            .await?;
        let entry = Entry {
            conversation: format!("@{user}"),
            from: self.profile.username.clone(),
            text: text.to_owned(),
            at,
            id,
            server_id: Some(server_id),
            outgoing: true,
            state: "sent".into(),
            unread: false,
        };
        self.profile.push_history(entry.clone());
        self.save()?;
        Ok(entry)
    }

    /// Decrypts a one-to-one body from `from`; updates sessions and history.
    pub(crate) async fn receive_direct(
        &mut self,
        from: &str,
        body: &[u8],
        sent_at: u64,
        server_id: u64,
    ) -> anyhow::Result<Vec<Notice>> {
        let mut notices = Vec::new();
        let envelope = match Envelope::parse(body) {
            Ok(e) => e,
            Err(e) => {
                notices.push(self.undecryptable(from, sent_at, server_id, &e.to_string()));
                return Ok(notices);
            }
        };
        let message = envelope.message();
        let mut plain = Zeroizing::new(vec![0u8; message.len()]);
        let mut outcome: Result<(usize, Session, bool), DecryptError> =
            Err(DecryptError::Authentication);
        let had_session = self
            .profile
            .contacts
            .get(from)
            .and_then(|c| c.session.as_deref())
            .and_then(session_from_hex)
            .is_some();
        // The sessions we hold, current first.
        let held: Vec<(Session, bool)> = self
            .profile
            .contacts
            .get(from)
            .map(|c| {
                [
                    (c.session.as_deref(), true),
                    (c.previous_session.as_deref(), false),
                ]
                .into_iter()
                .filter_map(|(s, cur)| s.and_then(session_from_hex).map(|s| (s, cur)))
                .collect()
            })
            .unwrap_or_default();
        for (mut s, current) in held {
            match s.decrypt(message, &mut plain) {
                Ok(n) => {
                    outcome = Ok((n, s, current));
                    break;
                }
                Err(DecryptError::Replay) => {
                    // A copy of a message already stored: nothing to show.
                    return Ok(notices);
                }
                Err(e) => outcome = Err(e),
            }
        }
        let mut fresh_session = false;
        if outcome.is_err()
            && let Envelope::Prekey { header, .. } = envelope
        {
            // A first message whose base key we already took in is a copy (the server
            // replaying it): it must neither re-install the session it started nor, its
            // one-time prekey gone, force a reset. Dropped, and acknowledged like a duplicate.
            if self
                .profile
                .contacts
                .get(from)
                .is_some_and(|c| c.took_base_key(&header.ephemeral))
            {
                return Ok(notices);
            }
            // A new session from `from`: X3DH as responder.
            let identity = self.profile.identity()?;
            let Some(spk) = self.profile.signed_prekey_by_id(header.signed_prekey_id) else {
                let text = "it names a signed prekey this device no longer has";
                notices.push(self.heal(from, sent_at, server_id, text));
                return Ok(notices);
            };
            let opk = match header.one_time_prekey_id {
                Some(id) => match self.profile.one_time_prekey(id) {
                    Some(k) => Some(k),
                    None => {
                        let text = "it uses a one-time prekey already used";
                        notices.push(self.heal(from, sent_at, server_id, text));
                        return Ok(notices);
                    }
                },
                None => None,
            };
            match Session::respond(&identity, &spk, opk.as_ref(), &header) {
                Ok(mut s) => match s.decrypt(message, &mut plain) {
                    Ok(n) => {
                        outcome = Ok((n, s, false));
                        fresh_session = true;
                        if let Some(id) = header.one_time_prekey_id {
                            self.profile.one_time_prekeys.remove(&id);
                        }
                        // Only now, the message authenticated, is its identity key recorded
                        // (a changed key is flagged here, never on the word of bytes that did
                        // not decrypt), and its base key remembered.
                        notices.extend(self.accept_identity(from, &header.identity));
                        if let Some(c) = self.profile.contacts.get_mut(from) {
                            c.note_base_key(&header.ephemeral);
                        }
                    }
                    Err(e) => outcome = Err(e),
                },
                Err(_) => outcome = Err(DecryptError::Authentication),
            }
            if let Err(e) = outcome
                && had_session
            {
                // A first message that fails while a session with `from` works is not theirs
                // to break it with (the server can forge one): shown as unreadable, the
                // session kept.
                notices.push(self.undecryptable(from, sent_at, server_id, reason(e)));
                return Ok(notices);
            }
        }
        let (n, session, was_current) = match outcome {
            Ok(v) => v,
            Err(e) => {
                notices.push(self.heal(from, sent_at, server_id, reason(e)));
                return Ok(notices);
            }
        };
        // Commit the session that worked as the current one.
        let state = session_to_hex(&session)?;
        if let Some(c) = self.profile.contacts.get_mut(from) {
            if !was_current {
                c.previous_session = c.session.take();
            }
            c.session = Some(state);
        }
        let plain = plain.get(..n).ok_or_else(|| {
            anyhow::anyhow!(
                "the session reported {n} plaintext bytes of a {}-byte message",
                message.len()
            )
        })?;
        match Content::decode(plain) {
            Ok(Content::Text {
                id,
                sent_at: written,
                text,
            }) => {
                let conversation = format!("@{from}");
                let ids = (written, id, server_id);
                if let Some(entry) = self.profile.receive_text(conversation, from, text, ids) {
                    notices.push(Notice::Message(entry));
                }
            }
            Ok(Content::RoomKey { room, distribution }) => {
                let (room, distribution) = (room.to_owned(), distribution.to_vec());
                notices.extend(self.receive_room_key(from, &room, &distribution).await?);
            }
            Ok(Content::Roster { room, roster }) => {
                let (room, roster) = (room.to_owned(), roster.to_vec());
                notices.extend(self.receive_roster_invite(from, &room, &roster).await?);
            }
            Ok(Content::SessionReset) => {
                if !fresh_session && let Some(c) = self.profile.contacts.get_mut(from) {
                    c.session = None;
                }
                // They may have failed on a room message: hand them our room keys again.
                let shared: Vec<String> = self
                    .profile
                    .rooms
                    .iter()
                    .filter(|(_, e)| e.members.iter().any(|m| m == from))
                    .map(|(n, _)| n.clone())
                    .collect();
                for room in shared {
                    if let Some(e) = self.profile.rooms.get_mut(&room) {
                        e.key_sent.remove(from);
                    }
                    if !self.rooms_to_sync.contains(&room) {
                        self.rooms_to_sync.push(room);
                    }
                }
                notices.push(Notice::Warning(format!(
                    "{from} could not decrypt a message from you; the session was reset. \
                     Resend your last message if {from} did not get it."
                )));
            }
            Err(e) => {
                notices.push(self.undecryptable(
                    from,
                    sent_at,
                    server_id,
                    &format!("unknown content: {e}"),
                ));
            }
        }
        Ok(notices)
    }

    /// Records the identity key of `from` once a first message from them decrypted: a new
    /// contact is trusted on first use; a different key marks them changed (sessions dropped),
    /// with a warning.
    fn accept_identity(&mut self, from: &str, identity: &IdentityPublicKey) -> Option<Notice> {
        match self.profile.contacts.get_mut(from) {
            None => {
                self.profile
                    .contacts
                    .insert(from.to_owned(), Contact::new(identity));
                None
            }
            Some(c) if c.matches(identity) => None,
            Some(c) => {
                c.replace_identity(identity);
                self.profile.forget_keys_sent_to(from);
                Some(Notice::Warning(format!(
                    "!!! {from}'s identity key has CHANGED (a new device, or someone intercepting). \
                     Sending to {from} is blocked until you compare safety numbers: \
                     `sealroom verify @{from}`, then confirm the number you compared with \
                     `sealroom verify @{from} --confirm NUMBER`."
                )))
            }
        }
    }

    /// Records a message that could not be read.
    fn undecryptable(&mut self, from: &str, at: u64, server_id: u64, why: &str) -> Notice {
        let entry = Entry {
            conversation: format!("@{from}"),
            from: from.to_owned(),
            text: format!("[could not decrypt this message: {why}]"),
            at,
            id: 0,
            server_id: Some(server_id),
            outgoing: false,
            state: "undecryptable".into(),
            unread: true,
        };
        self.profile.push_history(entry.clone());
        Notice::Message(entry)
    }

    /// Records an unreadable message and starts healing: our sessions with `from` are dropped
    /// and a `SessionReset` will go out in a new session.
    fn heal(&mut self, from: &str, at: u64, server_id: u64, why: &str) -> Notice {
        let notice = self.undecryptable(
            from,
            at,
            server_id,
            &format!("{why}; the session is being reset"),
        );
        let blocked = match self.profile.contacts.get_mut(from) {
            Some(c) => {
                c.session = None;
                c.previous_session = None;
                c.key_changed
            }
            None => false,
        };
        if !blocked && !self.resets.iter().any(|u| u == from) {
            self.resets.push(from.to_owned());
        }
        notice
    }
}

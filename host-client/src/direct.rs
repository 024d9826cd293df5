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
    Content, DecryptError, DeviceBody, Envelope, ErrorCode, IdentityPublicKey, KEM_HEADER_LEN,
    KemPrekeyPublic, List, Message, PREKEY_HEADER_LEN, PqxdhError, RATCHET_OVERHEAD, RemoteBundle,
    Session,
};
use zeroize::Zeroizing;

use crate::client::{Client, Notice, refusal};
use crate::exit::{Exit, Failure, fail};
use crate::profile::{Contact, Entry, now, session_from_hex, session_to_hex};

/// Which of the sessions held with a contact's device decrypted a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// The device's current session.
    Current,
    /// The one before it.
    Previous,
    /// A session from before device ids.
    Legacy,
    /// The one before that.
    LegacyPrevious,
    /// A new one, started by this (prekey) message.
    Fresh,
}

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

/// `plain` encrypted in `session` as a direct message body (an envelope, PROTOCOL.md §5.1).
fn seal(session: &mut Session, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body =
        vec![0u8; 1 + PREKEY_HEADER_LEN + KEM_HEADER_LEN + plain.len() + RATCHET_OVERHEAD];
    let header = session.pending_prekey_header().copied();
    let kem = session.pending_kem_header().cloned();
    let prefix = Envelope::emit_prefix(header.as_ref(), kem.as_ref(), &mut body)
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
    Ok(body)
}

/// The wire form of ciphertexts per device.
fn device_bodies(sealed: &[(u32, Vec<u8>)]) -> Vec<DeviceBody<'_>> {
    sealed
        .iter()
        .map(|(device, body)| DeviceBody {
            device: *device,
            body,
        })
        .collect()
}

/// What a send to a user's devices came back with.
enum Sent {
    /// Stored by the server, with this id (0: nothing needed sending).
    Accepted(u64),
    /// `STALE_DEVICES`: the devices we encrypted for are no longer exactly the user's.
    Stale,
}

impl Client {
    /// Asks the server for `user`'s identity and devices (PROTOCOL.md §3.4 message 51) and
    /// records the identity as a bundle's would be: a key different from the one we hold marks
    /// the contact changed and fails with exit 7, before anything is encrypted to it. Returns
    /// the devices to encrypt for (each one's prekey is checked against that identity when a
    /// session with it starts: a device the identity did not sign gets nothing).
    pub(crate) async fn check_devices(&mut self, user: &str) -> anyhow::Result<Vec<u32>> {
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
        if devices.is_empty() && user != self.profile.username {
            return fail(
                Exit::Refused,
                format!("{user} has no device to write to (every one was revoked)"),
            );
        }
        // Sessions with devices the account no longer has are of no use.
        if let Some(c) = self.profile.contacts.get_mut(user) {
            c.devices.retain(|d, _| devices.contains(d));
        }
        self.devices_checked
            .insert(user.to_owned(), devices.clone());
        Ok(devices)
    }

    /// Fetches the post-quantum bundle of one of `user`'s devices (`FetchKemBundle`); checks
    /// their identity key. The KEM prekey is `Err` when the bundle has none usable (the caller
    /// refuses: there is no classical fallback).
    async fn fetch_kem_bundle(
        &mut self,
        user: &str,
        device: u32,
    ) -> anyhow::Result<(RemoteBundle, Result<KemPrekeyPublic, PqxdhError>)> {
        let fetch = Message::FetchKemBundle {
            username: user,
            device,
        };
        let (bundle, kem) = self
            .link
            .request(&fetch, |reply| match reply {
                Message::KemBundle { bundle, kem_prekey } => Ok((
                    RemoteBundle::from(&bundle),
                    KemPrekeyPublic::from_bundle(kem_prekey.as_ref()),
                )),
                Message::Error { code, text } => Err(refusal(code, text)),
                other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
            })
            .await?;
        self.observe_identity(user, &bundle.identity)?;
        Ok((bundle, kem))
    }

    /// Fetches `user`'s prekey bundle; records or checks their identity key.
    pub(crate) async fn fetch_bundle(&mut self, user: &str) -> anyhow::Result<RemoteBundle> {
        self.request_bundle(user, &Message::FetchBundle { username: user })
            .await
    }

    /// Sends a bundle request for `user`; checks the identity in the `Bundle` that answers.
    async fn request_bundle(
        &mut self,
        user: &str,
        fetch: &Message<'_>,
    ) -> anyhow::Result<RemoteBundle> {
        let bundle = self
            .link
            .request(fetch, |reply| match reply {
                Message::Bundle { bundle } => Ok(RemoteBundle::from(&bundle)),
                Message::Error { code, text } => Err(refusal(code, text)),
                other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
            })
            .await?;
        self.observe_identity(user, &bundle.identity)?;
        Ok(bundle)
    }

    /// Records `identity` for `user`: new contacts are trusted on first use; a different key
    /// marks the contact changed (and is saved) and returns the identity-changed failure.
    fn observe_identity(&mut self, user: &str, identity: &IdentityPublicKey) -> anyhow::Result<()> {
        if user == self.profile.username {
            // Our own account: its identity is the one this device holds, never learned.
            if *identity != self.profile.identity_public()? {
                return fail(
                    Exit::Refused,
                    "the server lists another identity for your own account: it was started \
                     over on another device, and this device is no longer part of it",
                );
            }
            self.profile
                .contacts
                .entry(user.to_owned())
                .or_insert_with(|| Contact {
                    verified: true,
                    ..Contact::new(identity)
                });
            return Ok(());
        }
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

    /// The devices to encrypt for: `user` must not be us or blocked, and their identity is
    /// checked once per connection, before the first encryption to them (they may have
    /// started over); later changes come back as `STALE_DEVICES`.
    async fn devices_to_send(&mut self, user: &str) -> anyhow::Result<Vec<u32>> {
        if user == self.profile.username {
            return self.own_other_devices().await;
        }
        self.check_not_blocked(user)?;
        match self.devices_checked.get(user) {
            Some(d) => Ok(d.clone()),
            None => self.check_devices(user).await,
        }
    }

    /// Our account's other devices (for sent transcripts, and resets between our devices), as
    /// the server lists them under this device's own identity (checked once per connection).
    pub(crate) async fn own_other_devices(&mut self) -> anyhow::Result<Vec<u32>> {
        let me = self.profile.username.clone();
        let all = match self.devices_checked.get(&me) {
            Some(d) => d.clone(),
            None => self.check_devices(&me).await?,
        };
        let this = self.profile.device_id;
        Ok(all.into_iter().filter(|d| Some(*d) != this).collect())
    }

    /// Our session with one of `user`'s devices, starting one (PQXDH) if there is none that can
    /// send. The device's signed prekey and KEM prekey must be signed for it by `user`'s
    /// identity. A session from before device ids is used only when it is their one device
    /// (`only`). Returns the session and whether it is one from before device ids.
    async fn sending_session(
        &mut self,
        user: &str,
        device: u32,
        only: bool,
    ) -> anyhow::Result<(Session, bool)> {
        let contact = self.profile.contacts.get(user);
        let own = contact
            .and_then(|c| c.devices.get(&device))
            .and_then(|d| d.session.as_deref())
            .and_then(session_from_hex)
            .filter(Session::can_send);
        if let Some(s) = own {
            return Ok((s, false));
        }
        let legacy = contact
            .filter(|_| only)
            .and_then(|c| c.session.as_deref())
            .and_then(session_from_hex)
            .filter(Session::can_send);
        if let Some(s) = legacy {
            return Ok((s, true));
        }
        // A new session is always PQXDH (PROTOCOL.md §4.8): a device without a valid KEM prekey,
        // or with keys not signed for it, is refused, never reached by classical X3DH.
        let (bundle, kem) = self.fetch_kem_bundle(user, device).await?;
        let identity = self.profile.identity()?;
        let started = kem.and_then(|kem| {
            Session::initiate_pqxdh(&mut crate::rng::os(), &identity, &bundle, device, &kem)
        });
        let (session, _, _) = started.map_err(|e| {
            let why = match e {
                PqxdhError::MissingKemPrekey | PqxdhError::KemKeyLength => {
                    "it has published no post-quantum prekey (its app must be updated); \
                     Sealroom never falls back to a classical key exchange"
                        .to_owned()
                }
                PqxdhError::BadPrekeySignature | PqxdhError::BadKemPrekeySignature => {
                    format!("its published keys are not signed by {user}'s identity for it")
                }
                _ => "its published keys are not valid".to_owned(),
            };
            Failure::new(
                Exit::Refused,
                format!("cannot start a session with {user}'s device {device}: {e}; {why}"),
            )
        })?;
        Ok((session, false))
    }

    /// Encrypts `content` for each of `user`'s devices, saves the advanced sessions, sends them
    /// in one request; returns the server's id. The sessions are saved *before* sending, so a
    /// crash never reuses a key.
    ///
    /// If the server answers that the devices are not theirs any more (`STALE_DEVICES`), they
    /// are fetched again: a changed identity fails with exit 7 (nothing was stored); the same
    /// identity with other devices gets sessions with those and one more try.
    pub(crate) async fn send_content_to(
        &mut self,
        user: &str,
        content: &Content<'_>,
    ) -> anyhow::Result<u64> {
        self.send_content_synced(user, content, None).await
    }

    /// As [`send_content_to`](Self::send_content_to); with a `transcript`, that goes to our
    /// other devices in the same request (`SendSynced`: both stored or neither), and a
    /// `STALE_DEVICES` re-checks their list too.
    async fn send_content_synced(
        &mut self,
        user: &str,
        content: &Content<'_>,
        transcript: Option<&Content<'_>>,
    ) -> anyhow::Result<u64> {
        let me = self.profile.username.clone();
        for _ in 0..2 {
            match self.send_content_once(user, content, transcript).await? {
                Sent::Accepted(id) => return Ok(id),
                Sent::Stale => {
                    let mut changed = false;
                    let mut recheck = vec![user.to_owned()];
                    if transcript.is_some() {
                        recheck.push(me.clone());
                    }
                    for who in recheck {
                        let before = self.devices_checked.remove(&who);
                        let now = self.check_devices(&who).await?;
                        changed |= before.as_ref() != Some(&now);
                    }
                    if !changed {
                        break;
                    }
                }
            }
        }
        fail(
            Exit::Refused,
            format!(
                "the server refuses the devices it lists for {user} (STALE_DEVICES); nothing \
                 was sent. Try again later"
            ),
        )
    }

    async fn send_content_once(
        &mut self,
        user: &str,
        content: &Content<'_>,
        transcript: Option<&Content<'_>>,
    ) -> anyhow::Result<Sent> {
        let devices = self.devices_to_send(user).await?;
        if devices.is_empty() {
            // Only our own account can have no (other) device: nobody to tell.
            return Ok(Sent::Accepted(0));
        }
        let sealed = self.seal_for_devices(user, &devices, content).await?;
        let own = match transcript {
            Some(t) => {
                let me = self.profile.username.clone();
                let others = self.own_other_devices().await?;
                Some(self.seal_for_devices(&me, &others, t).await?)
            }
            None => None,
        };
        self.save()?;
        let client_id = crate::rng::u64();
        let bodies = device_bodies(&sealed);
        let own_bodies = own.as_deref().map(device_bodies);
        let send = match &own_bodies {
            Some(own) => Message::SendSynced {
                to: user,
                client_id,
                bodies: List::from_items(&bodies),
                own: List::from_items(own),
            },
            None => Message::SendToDevices {
                to: user,
                client_id,
                bodies: List::from_items(&bodies),
            },
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

    /// `content` encrypted for each of `user`'s `devices` (sessions advanced in the profile,
    /// not yet saved).
    async fn seal_for_devices(
        &mut self,
        user: &str,
        devices: &[u32],
        content: &Content<'_>,
    ) -> anyhow::Result<Vec<(u32, Vec<u8>)>> {
        let mut plain = Zeroizing::new(vec![0u8; MAX_BODY]);
        let n = content
            .encode(&mut plain)
            .map_err(|_| anyhow::anyhow!("the message is too long"))?;
        let plain = plain.get(..n).ok_or_else(|| {
            anyhow::anyhow!("cannot encrypt: the encoded content claims {n} bytes of {MAX_BODY}")
        })?;
        // A v1 prekey only for a contact's one device; our own devices all sign v2.
        let only = devices.len() == 1 && user != self.profile.username;
        let mut sealed = Vec::with_capacity(devices.len());
        for &device in devices {
            let (mut session, legacy) = self.sending_session(user, device, only).await?;
            sealed.push((device, seal(&mut session, plain)?));
            let state = session_to_hex(&session)?;
            if let Some(c) = self.profile.contacts.get_mut(user) {
                let d = c.devices.entry(device).or_default();
                if legacy {
                    // A session from before device ids, now known to be this device's.
                    d.previous_session = c.previous_session.take();
                    c.session = None;
                }
                d.session = Some(state);
            }
        }
        Ok(sealed)
    }

    /// Sends a text to `user`, and its transcript to our other devices; records it in the
    /// history as "sent".
    pub(crate) async fn send_text_to(&mut self, user: &str, text: &str) -> anyhow::Result<Entry> {
        if user == self.profile.username {
            return fail(Exit::Failure, "that is you: send to someone else");
        }
        let id = crate::rng::u64();
        let at = now();
        let server_id = self
            .send_content_synced(
                user,
                &Content::Text {
                    id,
                    sent_at: at,
                    text,
                },
                Some(&Content::Sent {
                    to: user,
                    id,
                    sent_at: at,
                    text,
                }),
            )
            .await?;
        let devices = self
            .devices_checked
            .get(user)
            .and_then(|d| u32::try_from(d.len()).ok());
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
            devices,
            delivered_to: Vec::new(),
        };
        self.profile.push_history(entry.clone());
        self.save()?;
        Ok(entry)
    }

    /// Decrypts a one-to-one body from `from`'s device `device` (as the server says: a wrong
    /// one only makes it undecryptable); updates sessions and history.
    pub(crate) async fn receive_direct(
        &mut self,
        from: &str,
        device: u32,
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
        let mut outcome: Result<(usize, Session, Slot), DecryptError> =
            Err(DecryptError::Authentication);
        // The sessions we hold with that device, current first, then any from before device
        // ids.
        let held: Vec<(Session, Slot)> = self
            .profile
            .contacts
            .get(from)
            .map(|c| {
                let d = c.devices.get(&device);
                [
                    (d.and_then(|d| d.session.as_deref()), Slot::Current),
                    (
                        d.and_then(|d| d.previous_session.as_deref()),
                        Slot::Previous,
                    ),
                    (c.session.as_deref(), Slot::Legacy),
                    (c.previous_session.as_deref(), Slot::LegacyPrevious),
                ]
                .into_iter()
                .filter_map(|(s, slot)| s.and_then(session_from_hex).map(|s| (s, slot)))
                .collect()
            })
            .unwrap_or_default();
        let had_session = held
            .iter()
            .any(|(_, slot)| matches!(slot, Slot::Current | Slot::Legacy));
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
        if outcome.is_err()
            && let Some(&header) = envelope.prekey_header()
        {
            // PQXDH (0x03) or, from a session begun before PQXDH, X3DH (0x01).
            let kem = envelope.kem_header();
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
            // A first message said to be from another of our devices must come from our own
            // identity (the server may label anyone's message as ours).
            if from == self.profile.username && header.identity != self.profile.identity_public()? {
                let text = "it says it is from another of your devices, but not from your identity";
                notices.push(self.undecryptable(from, sent_at, server_id, text));
                return Ok(notices);
            }
            // A new session from `from`: X3DH as responder.
            let identity = self.profile.identity()?;
            let Some(spk) = self.profile.signed_prekey_by_id(header.signed_prekey_id) else {
                let text = "it names a signed prekey this device no longer has";
                notices.push(self.heal(from, device, sent_at, server_id, text));
                return Ok(notices);
            };
            // A first message naming keys this device does not hold cannot start a session. If
            // a session with `from` works, it is not broken for it (the server can forge such
            // a message): shown as unreadable only. Otherwise the session is reset.
            let opk = match header.one_time_prekey_id {
                Some(id) => match self.profile.one_time_prekey(id) {
                    Some(k) => Some(k),
                    None => {
                        let text = "it uses a one-time prekey already used";
                        notices.push(if had_session {
                            self.undecryptable(from, sent_at, server_id, text)
                        } else {
                            self.heal(from, device, sent_at, server_id, text)
                        });
                        return Ok(notices);
                    }
                },
                None => None,
            };
            let responded = match &kem {
                Some(kem) => {
                    let Some(kem_prekey) = self.profile.kem_prekey(kem.kem_id) else {
                        let text = "it names a post-quantum prekey this device does not have";
                        notices.push(if had_session {
                            self.undecryptable(from, sent_at, server_id, text)
                        } else {
                            self.heal(from, device, sent_at, server_id, text)
                        });
                        return Ok(notices);
                    };
                    Session::respond_pqxdh(&identity, &spk, opk.as_ref(), &kem_prekey, &header, kem)
                        .map_err(|_| ())
                }
                None => Session::respond(&identity, &spk, opk.as_ref(), &header).map_err(|_| ()),
            };
            match responded {
                Ok(mut s) => match s.decrypt(message, &mut plain) {
                    Ok(n) => {
                        outcome = Ok((n, s, Slot::Fresh));
                        if let Some(id) = header.one_time_prekey_id {
                            self.profile.one_time_prekeys.remove(&id);
                        }
                        // A one-time KEM prekey is used once; the last-resort one stays.
                        if let Some(kem) = &kem {
                            self.profile.kem_one_time.remove(&kem.kem_id);
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
        let (n, session, slot) = match outcome {
            Ok(v) => v,
            Err(e) => {
                notices.push(self.heal(from, device, sent_at, server_id, reason(e)));
                return Ok(notices);
            }
        };
        // Commit the session that worked as the device's current one.
        let state = session_to_hex(&session)?;
        if let Some(c) = self.profile.contacts.get_mut(from) {
            match slot {
                Slot::Legacy => c.session = None,
                Slot::LegacyPrevious => c.previous_session = None,
                Slot::Current | Slot::Previous | Slot::Fresh => {}
            }
            let d = c.devices.entry(device).or_default();
            if slot != Slot::Current {
                d.previous_session = d.session.take();
            }
            d.session = Some(state);
        }
        let plain = plain.get(..n).ok_or_else(|| {
            anyhow::anyhow!(
                "the session reported {n} plaintext bytes of a {}-byte message",
                message.len()
            )
        })?;
        let mine = from == self.profile.username;
        match Content::decode(plain) {
            Ok(Content::Sent {
                to,
                id,
                sent_at: written,
                text,
            }) if mine => {
                if let Some(entry) = self.profile.receive_transcript(to, text, (written, id)) {
                    notices.push(Notice::Message(entry));
                }
            }
            Ok(Content::Sent { .. }) => {
                let why = "a sent transcript may only come from your own devices";
                notices.push(self.undecryptable(from, sent_at, server_id, why));
            }
            Ok(Content::SessionReset) if mine => {
                notices.push(Notice::Warning(format!(
                    "your device {device} could not decrypt a message from this one; the \
                     session between them was reset"
                )));
            }
            Ok(Content::Text { .. }) if mine => {
                // Our devices send each other transcripts, resets, room keys and rosters.
                let why = "your own devices do not send each other this";
                notices.push(self.undecryptable(from, sent_at, server_id, why));
            }
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
                notices.extend(
                    self.receive_room_key(from, device, &room, &distribution)
                        .await?,
                );
            }
            Ok(Content::Roster { room, roster }) if mine => {
                notices.extend(self.adopt_own_roster(room, roster)?);
            }
            Ok(Content::Roster { room, roster }) => {
                let (room, roster) = (room.to_owned(), roster.to_vec());
                notices.extend(self.receive_roster_invite(from, &room, &roster).await?);
            }
            Ok(Content::SessionReset) => {
                // A reset comes in a new session, which replaced the broken one above. One
                // that comes in a working session is for another of our devices (it reaches
                // each of them): this device's session stays.
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
            ..Entry::default()
        };
        self.profile.push_history(entry.clone());
        Notice::Message(entry)
    }

    /// Records an unreadable message and starts healing: our sessions with `from`'s device are
    /// dropped and a `SessionReset` will go out in a new session with it.
    fn heal(&mut self, from: &str, device: u32, at: u64, server_id: u64, why: &str) -> Notice {
        let notice = self.undecryptable(
            from,
            at,
            server_id,
            &format!("{why}; the session is being reset"),
        );
        let blocked = match self.profile.contacts.get_mut(from) {
            Some(c) => {
                c.devices.remove(&device);
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

//! A logged-in client: the opened keystore, its profile, and a live link to the server.
//!
//! Every command that talks to the server goes through here: [`Client::open`] unlocks the
//! keystore (holding a lock file so two `sealroom` processes never write it at once), connects
//! with the pinned certificate and resumes the session.
//!
//! One account, several terminals: a long-running `chat` holds the lock only while it handles
//! an event or a typed line ([`Client::hold`] reads back what others saved; [`Client::release`]
//! saves and lets go), so `send`, `inbox`, `rooms …` from another terminal wait a moment at most.
//! Each process has its own connection; the server pushes to all of them, and a delivery
//! already stored by one is only acknowledged again by the other (its server id is in the
//! shared state), so a message is decrypted once and no ratchet state is ever forked. Incoming events are handled by
//! [`Client::handle_event`]: a delivered message is decrypted, stored in the keystore, and only
//! then acknowledged. One-to-one sessions live in `direct`, rooms in `rooms`.

use core::time::Duration;
use std::fs::File;
use std::time::Instant;

use cert_pin::Pin;
use proto_core::{ErrorCode, KemPrekeyPublic, Key32, Message};

use crate::cli::Global;
use crate::exit::{Exit, Failure, fail};
use crate::inert;
use crate::keystore::Keystore;
use crate::known_servers::KnownServers;
use crate::link::{Link, Push, Trust};
use crate::profile::{Entry, Profile};
use crate::terminal::{self, Progress};

/// A signed prekey older than this is replaced on the next connection (a week, as Signal does).
const SIGNED_PREKEY_LIFETIME: u64 = 7 * 24 * 3600;

pub(crate) use crate::home::Home;

/// How `server` is to be trusted on this connection.
#[derive(Debug)]
pub(crate) struct ServerTrust {
    /// What the handshake applies.
    pub(crate) trust: Trust,
    /// The pin kept in known_servers (`None`: first use, or `--ca`).
    pub(crate) kept: Option<Pin>,
    /// A `--fingerprint` of the other kind than the kept pin, checked once the certificate is
    /// known (a key pin and a certificate pin cannot be compared without it).
    pub(crate) also: Option<Pin>,
}

/// How `server` is trusted: `--ca`, else the kept pin, else `--fingerprint`, else first use.
pub(crate) fn trust_for(home: &Home, global: &Global, server: &str) -> anyhow::Result<ServerTrust> {
    if let Some(ca) = &global.ca {
        return Ok(ServerTrust {
            trust: Trust::Ca(ca.clone()),
            kept: None,
            also: None,
        });
    }
    let given = match &global.fingerprint {
        Some(g) => Some(
            g.parse::<Pin>()
                .map_err(|e| Failure::new(Exit::Usage, format!("--fingerprint {g}: {e}")))?,
        ),
        None => None,
    };
    let known = KnownServers::load(&home.known_servers())?;
    let kept = known.get(server)?;
    let also = match (kept, given) {
        (Some(pin), Some(given)) if pin.is_key() == given.is_key() && pin != given => {
            return fail(
                Exit::CertificateChanged,
                format!(
                    "--fingerprint {given} differs from the pin kept for {server} ({pin}) in {}",
                    known.path().display()
                ),
            );
        }
        (Some(pin), Some(given)) if pin != given => Some(given),
        _ => None,
    };
    Ok(ServerTrust {
        trust: Trust::Pin(kept.or(given)),
        kept,
        also,
    })
}

/// Connects to `server`, pinning its key on first use, and upgrading a kept certificate pin
/// (older versions pinned the certificate) to the key pin once the certificate matched it.
pub(crate) async fn connect(home: &Home, global: &Global, server: &str) -> anyhow::Result<Link> {
    let t = trust_for(home, global, server)?;
    let file = home.known_servers();
    let link = {
        let _p = Progress::start(&format!("connecting to {server}"));
        Link::connect(server, &t.trust).await.map_err(|e| {
            match e.downcast::<crate::link::Changed>() {
                Ok(c) => crate::link::changed(&c.server, &c.want, &c.got, &file),
                Err(e) => e,
            }
        })?
    };
    if let Some(given) = t.also
        && !link.presented.matches(&given)
    {
        return Err(crate::link::changed(server, &given, &link.presented, &file));
    }
    let key = link.presented.key;
    match (&t.trust, t.kept) {
        (Trust::Ca(_), _) | (_, Some(Pin::Key(_))) => {}
        (_, None) => {
            let mut known = KnownServers::load(&home.known_servers())?;
            known.pin(server, &key)?;
            let checked = if global.fingerprint.is_some() {
                "It matches --fingerprint."
            } else {
                "Compare it with the key pin the server printed at start."
            };
            terminal::note(&format!(
                "First connection to {server}: pinned its key\n  {key}\n  \
                 (certificate SHA-256 {})\n{checked} It is kept in {}.",
                link.presented.certificate,
                known.path().display()
            ));
        }
        (_, Some(Pin::Certificate(_))) => {
            let mut known = KnownServers::load(&home.known_servers())?;
            known.pin(server, &key)?;
            terminal::note(&format!(
                "{server}: the certificate pin kept in {} now pins the certificate's key,\n  \
                 {key}\nwhich stays the same when the server renews its certificate.",
                known.path().display()
            ));
        }
    }
    Ok(link)
}

/// The text of an `Error` reply, as a failure with the right exit code.
pub(crate) fn refusal(code: ErrorCode, text: &str) -> anyhow::Error {
    let exit = match code {
        ErrorCode::AUTH_FAILED | ErrorCode::SESSION_EXPIRED | ErrorCode::CODE_REUSED => Exit::Auth,
        ErrorCode::RATE_LIMITED => Exit::Auth,
        ErrorCode::BUSY | ErrorCode::INTERNAL => Exit::Network,
        // Bad input, refused with the reason: the same code as a bad command line.
        ErrorCode::WEAK_PASSWORD | ErrorCode::INVALID_INPUT => Exit::Usage,
        _ => Exit::Refused,
    };
    Failure::new(exit, format!("the server refused: {text}")).into()
}

/// Fails unless `reply` is `Ok`.
pub(crate) fn expect_ok(reply: Message<'_>) -> anyhow::Result<()> {
    match reply {
        Message::Ok => Ok(()),
        Message::Error { code, text } => Err(refusal(code, text)),
        other => fail(
            Exit::Failure,
            format!("unexpected reply from the server: {}", other.name()),
        ),
    }
}

/// Something to show the person, produced while handling events.
#[derive(Clone, Debug)]
pub(crate) enum Notice {
    /// A message arrived (or could not be read).
    Message(Entry),
    /// One of our messages was delivered.
    Delivered(Entry),
    /// Room membership changed.
    Room(String),
    /// Someone invited us to a room.
    Invited(crate::rooms::Invitation),
    /// A warning (key change, reset).
    Warning(String),
}

/// An unlocked keystore with a live, logged-in link.
pub(crate) struct Client {
    /// The account's state.
    pub(crate) profile: Profile,
    keystore: Keystore,
    /// The connection.
    pub(crate) link: Link,
    /// The home folder.
    pub(crate) home: Home,
    /// The folder's lock, while this process may read and write the keystore; `None` while a
    /// `chat` waits idle (see [`Client::release`]).
    lock: Option<File>,
    /// Contacts to send a `SessionReset` to once the current event is handled.
    pub(crate) resets: Vec<String>,
    /// Rooms whose sender key should be redistributed once the current event is handled.
    pub(crate) rooms_to_sync: Vec<String>,
    /// Members already asked (this run) to resend their room keys.
    pub(crate) room_resets_asked: Vec<String>,
    /// Contacts whose identity and device this connection has checked with `FetchDevices`
    /// (before the first encryption to them), and the device id then listed.
    pub(crate) devices_checked: std::collections::HashMap<String, Vec<u32>>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("user", &self.profile.username)
            .finish_non_exhaustive()
    }
}

/// Opens the keystore under the home folder (passphrase from the environment, a prompt or
/// stdin), holding the lock.
pub(crate) fn unlock(home: &Home) -> anyhow::Result<(File, Keystore, Profile)> {
    let path = home.keystore();
    if !Keystore::exists(&path) {
        return fail(
            Exit::Keystore,
            format!(
                "no keystore in {}; run `sealroom register` first, or `sealroom login --new-device \
                 --username NAME` for an existing account (or pass --home DIR)",
                home.dir.display()
            ),
        );
    }
    // The passphrase is asked and the key derived before the lock is taken, so a prompt in
    // this terminal never stalls a `chat` running in another.
    let pass = terminal::passphrase()?;
    let ks = {
        let _p = Progress::start("unlocking the keystore");
        Keystore::open::<Profile>(&path, &pass)?.0
    };
    let lock = home.lock()?;
    // What was read before the lock may be stale by now: read it again under the lock.
    let profile: Profile = ks.reload()?;
    if let Err(e) = profile.check() {
        return fail(Exit::Keystore, format!("{}: {e:#}", path.display()));
    }
    Ok((lock, ks, profile))
}

impl Client {
    /// Unlocks the keystore, connects and resumes the session.
    pub(crate) async fn open(global: &Global) -> anyhow::Result<Self> {
        let home = Home::resolve(global.home.as_deref())?;
        let (lock, keystore, profile) = unlock(&home)?;
        Self::resume(global, home, lock, keystore, profile).await
    }

    /// Connects and resumes the session with an already unlocked keystore.
    pub(crate) async fn resume(
        global: &Global,
        home: Home,
        lock: File,
        keystore: Keystore,
        profile: Profile,
    ) -> anyhow::Result<Self> {
        if profile.token().is_none() {
            return fail(Exit::Auth, "not logged in; run `sealroom login`");
        }
        let link = connect(&home, global, &profile.server).await?;
        let mut client = Self::from_parts(profile, keystore, link, home, lock);
        client.resume_session().await?;
        Ok(client)
    }

    /// Sends `Resume` with the saved token on the current link.
    async fn resume_session(&mut self) -> anyhow::Result<()> {
        let Some(token) = self.profile.token() else {
            return fail(Exit::Auth, "not logged in; run `sealroom login`");
        };
        let username = self.profile.username.clone();
        let resume = Message::Resume {
            username: &username,
            token: Key32(token),
        };
        let expires_at = self
            .link
            .request(&resume, |reply| match reply {
                Message::Session { expires_at, .. } => Ok(expires_at),
                Message::Error {
                    code: ErrorCode::SESSION_EXPIRED,
                    ..
                } => fail(
                    Exit::Auth,
                    "the session expired or was revoked; run `sealroom login`",
                ),
                Message::Error { code, text } => Err(refusal(code, text)),
                other => fail(
                    Exit::Failure,
                    format!("unexpected reply to Resume: {}", other.name()),
                ),
            })
            .await?;
        self.profile.token_expires = expires_at;
        self.ensure_device().await?;
        if crate::profile::now().saturating_sub(self.profile.signed_prekey_at)
            > SIGNED_PREKEY_LIFETIME
        {
            self.publish_new_signed_prekey().await?;
        }
        Ok(())
    }

    /// Learns this device's id from the server if the keystore does not hold it (written
    /// before devices, or starting over), and makes sure the published signed prekey is signed
    /// for it ("Sealroom SPK v2": contacts refuse a v1 one once the account has two devices).
    pub(crate) async fn ensure_device(&mut self) -> anyhow::Result<()> {
        let device = match self.profile.device_id {
            Some(d) => d,
            None => {
                self.link
                    .request(&Message::ListDevices, |reply| match reply {
                        Message::DeviceList { current, .. } => Ok(current),
                        Message::Error { code, text } => Err(refusal(code, text)),
                        other => fail(Exit::Failure, format!("unexpected reply: {}", other.name())),
                    })
                    .await?
            }
        };
        let known = self.profile.device_id == Some(device);
        let spk = self.profile.become_device(device, crate::profile::now())?;
        // Rooms kept from before room sender ids start again under this device's (PROTOCOL.md
        // §4.4); their keys go out at the next sync.
        let upgraded = self.profile.upgrade_room_senders()?;
        for name in &upgraded {
            if !self.rooms_to_sync.contains(name) {
                self.rooms_to_sync.push(name.clone());
            }
        }
        if let Some(spk) = spk {
            // Saved before publishing, so the secret of a published key is never lost.
            self.save()?;
            let publish = Message::PublishSignedPrekey { prekey: spk };
            self.link.request(&publish, expect_ok).await?;
        } else if !known || !upgraded.is_empty() {
            self.save()?;
        }
        self.ensure_kem_prekeys(device).await
    }

    /// Publishes this device's KEM prekeys (PQXDH, PROTOCOL.md §4.8) unless they already are,
    /// for this device: a new last-resort one and a batch of one-time ones. Without them no
    /// contact can start a session with this device (there is no classical fallback).
    pub(crate) async fn ensure_kem_prekeys(&mut self, device: u32) -> anyhow::Result<()> {
        if self.profile.kem_device == Some(device) && self.profile.kem_last_resort.is_some() {
            return Ok(());
        }
        let last = self.profile.make_kem_last_resort(device)?;
        // One-time keys signed for another device id (starting over gives a new one) are
        // useless: they go, and a full batch is made for this one. Held ones not yet known to
        // be published (an upload whose end this keystore never saw) are kept: the server may
        // hand them out.
        if self.profile.kem_device.is_some_and(|d| d != device) {
            self.profile.kem_one_time.clear();
        }
        let fresh = self
            .profile
            .add_kem_one_time(device, crate::profile::KEM_PREKEY_BATCH)?;
        // Saved before publishing, so the secret of a published key is never lost.
        self.save()?;
        let wire: Vec<_> = fresh.iter().map(KemPrekeyPublic::to_wire).collect();
        let upload = Message::UploadKemPrekeys {
            last_resort: Some(last.to_wire()),
            one_time: proto_core::List::from_items(&wire),
        };
        let quota_full = self.upload_kem(&upload).await?;
        if quota_full {
            // The server still holds one-time KEM prekeys from an upload whose end this keystore
            // never saw: publish the last-resort one alone, keep the secrets made.
            let only_last = Message::UploadKemPrekeys {
                last_resort: Some(last.to_wire()),
                one_time: proto_core::List::empty(),
            };
            self.link.request(&only_last, expect_ok).await?;
        }
        self.profile.kem_device = Some(device);
        self.save()
    }

    /// Sends an `UploadKemPrekeys`; `true` when the server holds as many as it keeps.
    async fn upload_kem(&mut self, upload: &Message<'_>) -> anyhow::Result<bool> {
        self.link
            .request(upload, |reply| match reply {
                Message::Error {
                    code: ErrorCode::QUOTA_FULL,
                    ..
                } => Ok(true),
                other => expect_ok(other).map(|()| false),
            })
            .await
    }

    /// Uploads fresh one-time KEM prekeys up to [`KEM_PREKEY_BATCH`](crate::profile::KEM_PREKEY_BATCH)
    /// (saved first); returns how many.
    pub(crate) async fn refill_kem_prekeys(&mut self, remaining: u32) -> anyhow::Result<u32> {
        let Some(device) = self.profile.device_id else {
            return Ok(0);
        };
        if self.profile.kem_device != Some(device) {
            self.ensure_kem_prekeys(device).await?;
            return Ok(crate::profile::KEM_PREKEY_BATCH);
        }
        let want = crate::profile::KEM_PREKEY_BATCH
            .saturating_sub(remaining.min(crate::profile::KEM_PREKEY_BATCH));
        if want == 0 {
            return Ok(0);
        }
        let fresh = self.profile.add_kem_one_time(device, want)?;
        self.save()?;
        let wire: Vec<_> = fresh.iter().map(KemPrekeyPublic::to_wire).collect();
        let upload = Message::UploadKemPrekeys {
            last_resort: None,
            one_time: proto_core::List::from_items(&wire),
        };
        if self.upload_kem(&upload).await? {
            for k in &fresh {
                self.profile.kem_one_time.remove(&k.id);
            }
            self.save()?;
            return Ok(0);
        }
        Ok(want)
    }

    /// Connects again (same pin or CA) and resumes the session, after the link was lost.
    pub(crate) async fn reconnect(&mut self, global: &Global) -> anyhow::Result<()> {
        self.link = connect(&self.home, global, &self.profile.server).await?;
        self.resume_session().await
    }

    /// A client over parts already made (register and login).
    pub(crate) fn from_parts(
        profile: Profile,
        keystore: Keystore,
        link: Link,
        home: Home,
        lock: File,
    ) -> Self {
        Self {
            profile,
            keystore,
            link,
            home,
            lock: Some(lock),
            resets: Vec::new(),
            rooms_to_sync: Vec::new(),
            room_resets_asked: Vec::new(),
            devices_checked: std::collections::HashMap::new(),
        }
    }

    /// Writes the profile to the keystore (atomically). Only with the lock held: a write
    /// without it could undo what another process saved.
    pub(crate) fn save(&self) -> anyhow::Result<()> {
        if self.lock.is_none() {
            return fail(
                Exit::Failure,
                "internal error: the keystore was to be written without its lock; nothing was \
                 written",
            );
        }
        self.keystore.save(&self.profile)?;
        Ok(())
    }

    /// Saves, then lets go of the lock so that other `sealroom` processes (a `send` in another
    /// terminal) may use the keystore while this one waits for input or the network.
    pub(crate) fn release(&mut self) -> anyhow::Result<()> {
        if self.lock.is_some() {
            self.save()?;
            self.lock = None;
        }
        Ok(())
    }

    /// Takes the lock again and reads back what other processes saved meanwhile (sessions,
    /// history, seen ids), so that no state is ever forked; nothing happens if it is held.
    pub(crate) async fn hold(&mut self) -> anyhow::Result<()> {
        if self.lock.is_some() {
            return Ok(());
        }
        let lock = self.home.lock_async().await?;
        let profile: Profile = self.keystore.reload()?;
        if let Err(e) = profile.check() {
            return fail(
                Exit::Keystore,
                format!("{}: {e:#}", self.home.keystore().display()),
            );
        }
        if profile.username != self.profile.username || profile.server != self.profile.server {
            return fail(
                Exit::Keystore,
                format!(
                    "{} now holds another account; this chat stops",
                    self.home.keystore().display()
                ),
            );
        }
        self.profile = profile;
        self.lock = Some(lock);
        Ok(())
    }

    /// Handles one push from the server; returns what to show.
    pub(crate) async fn handle_push(&mut self, push: Push) -> anyhow::Result<Vec<Notice>> {
        let mut notices = Vec::new();
        match push {
            Push::Deliver {
                server_id,
                from,
                room,
                sent_at,
                body,
                device,
            } => {
                if self.profile.seen_server_ids.contains(&server_id) {
                    // Stored before; the acknowledgement was lost. Acknowledge again.
                } else {
                    // If handling fails half way (the link drops while a room key is being
                    // processed), forget every change: the message is not acknowledged, so
                    // it comes again and is decrypted again from the saved state.
                    let before = self.profile.clone();
                    let result = match &room {
                        None => {
                            self.receive_direct(&from, device, &body, sent_at, server_id)
                                .await
                        }
                        Some(r) => {
                            self.receive_room(r, &from, device, &body, sent_at, server_id)
                                .await
                        }
                    };
                    let shown = match result {
                        Ok(s) => s,
                        Err(e) => {
                            self.profile = before;
                            self.resets.clear();
                            self.rooms_to_sync.clear();
                            return Err(e);
                        }
                    };
                    self.profile.note_server_id(server_id);
                    self.save()?;
                    notices.extend(shown);
                }
                // Acknowledged only now: the message is decrypted and saved.
                self.link.send(&Message::Ack { server_id }).await?;
                self.after_event(&mut notices).await?;
            }
            Push::Delivered { server_id, device } => {
                if let Some(e) = self.profile.mark_delivered(server_id, device) {
                    self.save()?;
                    notices.push(Notice::Delivered(e));
                }
            }
            Push::RoomChanged {
                room,
                username,
                change,
            } => {
                notices.extend(self.room_changed(&room, &username, change).await?);
                self.after_event(&mut notices).await?;
            }
            Push::PrekeysLow { remaining } => {
                self.refill_prekeys(remaining).await?;
            }
            Push::KemPrekeysLow { remaining } => {
                // Refused keys (a server that no longer takes this device's identity) are said,
                // not fatal: what else arrived is still handled.
                if let Err(e) = self.refill_kem_prekeys(remaining).await {
                    notices.push(Notice::Warning(format!(
                        "could not publish post-quantum prekeys: {e:#}"
                    )));
                }
            }
        }
        Ok(notices)
    }

    /// Work an event asked for: session resets, room key redistribution.
    pub(crate) async fn after_event(&mut self, notices: &mut Vec<Notice>) -> anyhow::Result<()> {
        for user in core::mem::take(&mut self.resets) {
            if let Err(e) = self
                .send_content_to(&user, &proto_core::Content::SessionReset)
                .await
            {
                notices.push(Notice::Warning(format!(
                    "could not reset the session with {user}: {e}"
                )));
            }
        }
        for room in core::mem::take(&mut self.rooms_to_sync) {
            if let Err(e) = self.sync_room(&room, false).await {
                notices.push(Notice::Warning(format!("room #{room}: {e}")));
            }
        }
        Ok(())
    }

    /// Handles queued pushes (already read), without waiting.
    pub(crate) async fn drain_queued(&mut self) -> anyhow::Result<Vec<Notice>> {
        let mut out = Vec::new();
        while let Some(p) = self.link.queued_push() {
            out.extend(self.handle_push(p).await?);
        }
        Ok(out)
    }

    /// Handles pushes until none arrives for `quiet`, or `max` has passed.
    pub(crate) async fn pump(
        &mut self,
        quiet: Duration,
        max: Duration,
    ) -> anyhow::Result<Vec<Notice>> {
        let mut out = self.drain_queued().await?;
        let deadline = Instant::now() + max;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(out);
            }
            let wait = quiet.min(left);
            let next = smol::future::or(async { Some(self.link.next_push().await) }, async {
                smol::Timer::after(wait).await;
                None
            })
            .await;
            match next {
                None => return Ok(out),
                Some(push) => out.extend(self.handle_push(push?).await?),
            }
        }
    }

    /// Uploads a fresh batch of one-time prekeys (saved first, so no secret is ever lost).
    pub(crate) async fn refill_prekeys(&mut self, remaining: u32) -> anyhow::Result<u32> {
        let want = crate::profile::PREKEY_BATCH
            .saturating_sub(remaining.min(crate::profile::PREKEY_BATCH));
        if want == 0 {
            return Ok(0);
        }
        let fresh = self.profile.add_one_time_prekeys(want);
        self.save()?;
        let upload = Message::UploadPrekeys {
            prekeys: proto_core::List::from_items(&fresh),
        };
        let quota_full = self
            .link
            .request(&upload, |reply| match reply {
                Message::Error {
                    code: ErrorCode::QUOTA_FULL,
                    ..
                } => Ok(true),
                other => expect_ok(other).map(|()| false),
            })
            .await?;
        if quota_full {
            // The server already holds as many as it keeps: forget the unpublished ones.
            for k in &fresh {
                self.profile.one_time_prekeys.remove(&k.id);
            }
            self.save()?;
            return Ok(0);
        }
        Ok(want)
    }

    /// Makes, saves, then publishes a new signed prekey (the previous one is kept for
    /// messages still in flight); returns its id.
    pub(crate) async fn publish_new_signed_prekey(&mut self) -> anyhow::Result<u32> {
        let spk = self
            .profile
            .rotate_signed_prekey(crate::profile::now())?
            .public();
        // Saved before publishing, so the secret of a published key is never lost.
        self.save()?;
        let publish = Message::PublishSignedPrekey {
            prekey: crate::profile::wire_signed_prekey(&spk),
        };
        self.link.request(&publish, expect_ok).await?;
        // The last-resort KEM prekey is replaced with it, so that one KEM key does not serve
        // sessions for longer than a signed prekey does.
        if let Some(device) = self.profile.device_id
            && self.profile.kem_device == Some(device)
        {
            let last = self.profile.make_kem_last_resort(device)?;
            self.save()?;
            let upload = Message::UploadKemPrekeys {
                last_resort: Some(last.to_wire()),
                one_time: proto_core::List::empty(),
            };
            self.link.request(&upload, expect_ok).await?;
        }
        Ok(spk.id)
    }

    /// Ends the connection.
    pub(crate) async fn close(self) {
        self.link.close().await;
    }

    /// Saves, ends the connection, and hands back what [`unlock`] gave (the lock held).
    pub(crate) async fn into_offline(self) -> anyhow::Result<(File, Keystore, Profile)> {
        let lock = match self.lock {
            Some(lock) => lock,
            None => {
                return fail(
                    Exit::Failure,
                    "internal error: the keystore lock was not held",
                );
            }
        };
        self.keystore.save(&self.profile)?;
        self.link.close().await;
        Ok((lock, self.keystore, self.profile))
    }

    /// Fails with exit code 7 if `user`'s identity key changed and was not re-verified.
    pub(crate) fn check_not_blocked(&self, user: &str) -> anyhow::Result<()> {
        if self
            .profile
            .contacts
            .get(user)
            .is_some_and(|c| c.key_changed)
        {
            return Err(Failure::new(
                Exit::IdentityChanged,
                format!(
                    "!!! {user}'s identity key has CHANGED. Sending to {user} is blocked.\n\
                     This happens when {user} set up a new device — or when someone is \
                     intercepting. Compare safety numbers with `sealroom verify @{user}` (in \
                     person or over another channel), then run `sealroom verify @{user} \
                     --confirm NUMBER` with the number you compared to unblock."
                ),
            )
            .into());
        }
        Ok(())
    }
}

impl Notice {
    /// One line for a person (coloured when stdout is a terminal).
    pub(crate) fn render(&self) -> String {
        use crate::terminal::{Style, paint};
        match self {
            Notice::Message(e) => render_entry(e),
            Notice::Delivered(e) => paint(
                Style::Dim,
                &format!(
                    "✓✓ delivered to {}{}: {}",
                    inert::line(&e.conversation),
                    match e.devices {
                        Some(n) if n > 1 =>
                            format!(" ({} of {n} devices)", e.delivered_to.len().min(n as usize)),
                        _ => String::new(),
                    },
                    inert::line(&short(&e.text))
                ),
            ),
            Notice::Room(t) => paint(Style::Dim, &format!("* {}", inert::block(t, "  "))),
            Notice::Invited(i) => paint(
                Style::Yellow,
                &format!(
                    "* {} invited you to #{room}: `sealroom rooms accept '#{room}'` to join, \
                     `sealroom rooms decline '#{room}'` to refuse",
                    inert::line(&i.from),
                    room = inert::line(&i.room)
                ),
            ),
            Notice::Warning(t) => paint(Style::Red, &inert::block(t, "  ")),
        }
    }
}

fn short(text: &str) -> String {
    let mut s: String = text.chars().take(40).collect();
    if text.chars().count() > 40 {
        s.push('…');
    }
    s
}

/// `HH:MM` (UTC) of a Unix time.
pub(crate) fn clock(at: u64) -> String {
    format!("{:02}:{:02}", (at / 3600) % 24, (at / 60) % 60)
}

/// What the continuation lines of a multi-line message start with (past the `HH:MM ` column).
const MESSAGE_INDENT: &str = "      ";

/// A history entry: one line, or a header line and indented continuation lines.
pub(crate) fn render_entry(e: &Entry) -> String {
    use crate::terminal::{Style, paint};
    let when = paint(Style::Dim, &clock(e.at));
    let place = if e.conversation.starts_with('#') {
        format!("{} ", inert::line(&e.conversation))
    } else {
        String::new()
    };
    if e.state == "event" {
        // A change of the room's signed member list: the text names who did what.
        return format!(
            "{when} {place}{}",
            paint(Style::Dim, &format!("* {}", inert::line(&e.text)))
        );
    }
    let who = if e.outgoing {
        paint(Style::Bold, &inert::line(&e.from))
    } else {
        paint(Style::Cyan, &inert::line(&e.from))
    };
    // Others' text is shown, never interpreted: controls and bidi characters made visible, and
    // every line after the first indented, so none can pass for another message's header.
    let body = inert::block(&e.text, MESSAGE_INDENT);
    let text = if e.state == "undecryptable" {
        paint(Style::Red, &body)
    } else {
        body
    };
    let state = match (e.outgoing, e.state.as_str()) {
        (true, "delivered") => paint(Style::Green, &format!(" ✓✓ {}", e.delivered_text())),
        (true, "sent") => paint(Style::Dim, " ✓ sent to server"),
        (true, "synced") => paint(Style::Dim, " (sent from another of your devices)"),
        _ => String::new(),
    };
    format!("{when} {place}{who}: {text}{state}")
}

/// An entry as JSON. Ids are 64-bit and random, beyond the 2^53 a JavaScript number (or jq)
/// holds exactly: they are decimal strings.
pub(crate) fn entry_json(e: &Entry) -> serde_json::Value {
    serde_json::json!({
        "conversation": e.conversation,
        "from": e.from,
        "text": e.text,
        "at": e.at,
        "id": e.id.to_string(),
        "server_id": e.server_id.map(|id| id.to_string()),
        "outgoing": e.outgoing,
        "state": e.state,
        "devices": e.devices,
        "delivered_devices": e.delivered_to.len(),
    })
}

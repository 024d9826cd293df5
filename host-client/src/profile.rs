//! The account's state as kept (encrypted) in the keystore: keys, sessions, rooms, contacts,
//! recent history and the ids already seen.
//!
//! Secret bytes are stored as hex strings inside the JSON the keystore encrypts. This module
//! owns the shape of that state and small, pure operations on it; it does no I/O and no
//! networking (see `client`).

use std::collections::{BTreeMap, VecDeque};

use proto_core::{
    IdentityKeyPair, IdentityPublicKey, KemPrekeyPair, KemPrekeyPublic, OneTimePrekeyPair,
    SignedPrekeyPair, SignedPrekeyPublic,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// How many history entries are kept (oldest dropped first).
pub(crate) const HISTORY_LIMIT: usize = 1_000;
/// How many seen ids are remembered for de-duplication.
pub(crate) const SEEN_LIMIT: usize = 4_096;
/// One-time prekeys published at registration and topped up to by `keys`.
pub(crate) const PREKEY_BATCH: u32 = 100;

/// One-time KEM prekeys (PQXDH) published with the last-resort one and topped up to on
/// `KemPrekeysLow`. Each is 1,184 bytes on the server; at most
/// [`MAX_KEM_PREKEYS_PER_UPLOAD`](proto_core::limits::MAX_KEM_PREKEYS_PER_UPLOAD) go per upload.
pub(crate) const KEM_PREKEY_BATCH: u32 = 20;

/// The layout version of [`Profile`] this build writes and reads.
pub(crate) const PROFILE_VERSION: u32 = 1;

/// The whole keystore content.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Profile {
    /// Layout version of this struct.
    pub(crate) version: u32,
    /// `host:port` of the server.
    pub(crate) server: String,
    /// Our username on that server.
    pub(crate) username: String,
    /// Identity secret bytes (hex of [`IdentityKeyPair::to_secret_bytes`]).
    pub(crate) identity: String,
    /// Current signed prekey secret (hex), and when it was made (Unix seconds).
    pub(crate) signed_prekey: String,
    /// When the current signed prekey was made.
    pub(crate) signed_prekey_at: u64,
    /// The previous signed prekey, kept for prekey messages still in flight.
    pub(crate) previous_signed_prekey: Option<String>,
    /// One-time prekey secrets by id (hex).
    pub(crate) one_time_prekeys: BTreeMap<u32, String>,
    /// The next prekey id to use (signed and one-time share the counter).
    pub(crate) next_prekey_id: u32,
    /// Session token (hex) from the last login, and its expiry.
    pub(crate) token: Option<String>,
    /// When the token expires (Unix seconds).
    pub(crate) token_expires: u64,
    /// Contacts by username.
    pub(crate) contacts: BTreeMap<String, Contact>,
    /// Rooms by name.
    pub(crate) rooms: BTreeMap<String, RoomEntry>,
    /// Recent messages, oldest first.
    pub(crate) history: VecDeque<Entry>,
    /// Server ids already stored (a redelivery is acknowledged and dropped).
    pub(crate) seen_server_ids: VecDeque<u64>,
    /// `sender:message id` of texts already stored.
    pub(crate) seen_messages: VecDeque<String>,
    /// Lines typed in `chat` while offline, oldest first: sent, in order, on reconnect
    /// (absent in keystores written before the outbox existed).
    #[serde(default)]
    pub(crate) outbox: VecDeque<Queued>,
    /// Room keys and room messages from contacts whose identity key changed, oldest first:
    /// kept aside until the new key is verified (absent in keystores written before).
    #[serde(default)]
    pub(crate) held: VecDeque<Held>,
    /// This device's id in the account (PROTOCOL.md §6 **Devices**); absent in keystores
    /// written before devices (learned from the server at the next connection).
    #[serde(default)]
    pub(crate) device_id: Option<u32>,
    /// The device the current signed prekey is signed for ("Sealroom SPK v2"); `None` for a
    /// v1 signature (keystores written before devices), replaced once the id is known.
    #[serde(default)]
    pub(crate) signed_prekey_device: Option<u32>,
    /// The last-resort KEM prekey (PQXDH, PROTOCOL.md §4.8): hex of id || seed; absent in
    /// keystores written before PQXDH (made at the next connection).
    #[serde(default)]
    pub(crate) kem_last_resort: Option<String>,
    /// The last-resort KEM prekey before the current one, kept for first messages in flight
    /// (as the previous signed prekey).
    #[serde(default)]
    pub(crate) kem_previous_last_resort: Option<String>,
    /// One-time KEM prekey secrets by id (hex of id || seed).
    #[serde(default)]
    pub(crate) kem_one_time: BTreeMap<u32, String>,
    /// The device the published KEM prekeys are signed for; `None` until they are uploaded
    /// (then they are made and uploaded at the next connection).
    #[serde(default)]
    pub(crate) kem_device: Option<u32>,
}

/// How many room keys and room messages are held for unverified contacts (the oldest go first).
pub(crate) const HELD_LIMIT: usize = 500;

/// What a [`Held`] item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HeldKind {
    /// A `Content::RoomKey`'s sender-key distribution.
    Key,
    /// A room message body.
    Message,
}

/// A room key or room message held until its sender's new identity key is verified.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Held {
    /// A room key or a room message.
    pub(crate) kind: HeldKind,
    /// Who sent it (as the server says; checked when it is processed).
    pub(crate) from: String,
    /// The room's name.
    pub(crate) room: String,
    /// The distribution or the message body (hex).
    pub(crate) bytes: String,
    /// When it was sent (server's clock; messages only).
    pub(crate) at: u64,
    /// The server's id (messages only).
    pub(crate) server_id: u64,
    /// The sending device (absent in keystores written before room sender ids: 0, which no
    /// device has, so such an item is refused when processed).
    #[serde(default)]
    pub(crate) device: u32,
}

/// How many lines the outbox holds; a line typed when it is full is refused, not dropped
/// silently.
pub(crate) const OUTBOX_LIMIT: usize = 200;

/// A line waiting in the outbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Queued {
    /// `@user` or `#room`.
    pub(crate) conversation: String,
    /// The text.
    pub(crate) text: String,
    /// When it was typed (Unix seconds).
    pub(crate) at: u64,
}

/// What we know about another user.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Contact {
    /// Their identity signing key `IKs` (hex), as first seen or last confirmed.
    pub(crate) identity_sig: String,
    /// Their identity DH key `IKd` (hex).
    pub(crate) identity_dh: String,
    /// The user compared safety numbers and confirmed them.
    pub(crate) verified: bool,
    /// Their identity key changed since it was last accepted: sending is blocked until
    /// `verify --confirm`.
    pub(crate) key_changed: bool,
    /// A session from before device ids (hex of `Session::write_state`), with whichever one
    /// device they had: tried for any of their devices, and moved to the one it works with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session: Option<String>,
    /// The session before that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) previous_session: Option<String>,
    /// Sessions with each of their devices, by device id (absent in keystores written before).
    #[serde(default)]
    pub(crate) devices: BTreeMap<u32, DeviceSessions>,
    /// Base keys (the prekey header's ephemeral key, hex) of the first messages taken in, the
    /// last [`BASE_KEYS_LIMIT`]: a prekey message with one of them is a copy, and changes
    /// nothing (absent in keystores written before).
    #[serde(default)]
    pub(crate) base_keys: VecDeque<String>,
}

/// Our sessions with one device of a contact.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct DeviceSessions {
    /// The current pairwise session state (hex of `Session::write_state`).
    pub(crate) session: Option<String>,
    /// The session before the current one, tried when the current one cannot decrypt.
    pub(crate) previous_session: Option<String>,
}

/// How many first-message base keys each contact keeps, to know replays.
pub(crate) const BASE_KEYS_LIMIT: usize = 64;

/// One room as this member sees it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct RoomEntry {
    /// `Room::write_state` (hex).
    pub(crate) state: String,
    /// Members as last seen on the server (including us).
    pub(crate) members: Vec<String>,
    /// The room's admin as last seen.
    pub(crate) admin: String,
    /// Who already has our sender key, and for which epoch.
    pub(crate) key_sent: BTreeMap<String, u32>,
    /// The held signed roster, hex (empty while we hold none): the room's membership
    /// (PROTOCOL.md §4.7). Keystores written before rosters have none.
    #[serde(default)]
    pub(crate) roster: String,
    /// Room keys from before room sender ids (`(from, distribution hex)`): read from old
    /// keystores and dropped (their sender ids are no device's).
    #[serde(default, skip_serializing)]
    pub(crate) early_keys: Vec<(String, String)>,
    /// Room keys from senders the held roster does not (yet) list, at most
    /// [`EARLY_KEYS_LIMIT`]: used if a later roster lists the sender with their key (a
    /// member's key can arrive before the admin's roster does).
    #[serde(default)]
    pub(crate) early_device_keys: Vec<EarlyKey>,
    /// The devices this room tracks as senders, and whose they are (PROTOCOL.md §4.4): a
    /// member's are all removed when they leave.
    #[serde(default)]
    pub(crate) senders: Vec<RoomSender>,
}

/// A room key kept aside until a roster names its sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EarlyKey {
    /// Who sent it.
    pub(crate) from: String,
    /// Their device that sent it.
    pub(crate) device: u32,
    /// The distribution (hex).
    pub(crate) distribution: String,
}

/// A device a room tracks as a sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RoomSender {
    /// The member (may be us: our other devices).
    pub(crate) member: String,
    /// Their device.
    pub(crate) device: u32,
    /// Its room sender id (hex), `room_sender_id(IKs, device)` with the identity it had.
    pub(crate) id: String,
}

/// How many early room keys a room keeps.
pub(crate) const EARLY_KEYS_LIMIT: usize = 32;

/// A message in the history.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// `@user` or `#room`.
    pub(crate) conversation: String,
    /// Who wrote it.
    pub(crate) from: String,
    /// The text, or why it could not be read.
    pub(crate) text: String,
    /// When it was written (sender's clock) or received.
    pub(crate) at: u64,
    /// The message's id (random, from the sender).
    pub(crate) id: u64,
    /// The server's id (for receipts), once known.
    pub(crate) server_id: Option<u64>,
    /// Our own message.
    pub(crate) outgoing: bool,
    /// `sent`, `delivered`, `synced` (ours, sent from another of our devices), `received`,
    /// `undecryptable` or `notice`.
    pub(crate) state: String,
    /// Not yet shown by `inbox` or `chat`.
    pub(crate) unread: bool,
    /// Our direct message: how many of the recipient's devices it was encrypted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) devices: Option<u32>,
    /// Our direct message: the recipient's devices that acknowledged it (from `Delivered`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) delivered_to: Vec<u32>,
}

impl Entry {
    /// "delivered", with the count when the recipient has several devices: "delivered to 1 of
    /// 2 devices".
    pub(crate) fn delivered_text(&self) -> String {
        match self.devices {
            Some(n) if n > 1 => format!(
                "delivered to {} of {n} devices",
                self.delivered_to.len().min(n as usize)
            ),
            _ => "delivered".to_owned(),
        }
    }

    /// Whether every device it was sent to has it.
    pub(crate) fn delivered_everywhere(&self) -> bool {
        self.state == "delivered"
            && self
                .devices
                .is_none_or(|n| self.delivered_to.len() >= n as usize)
    }
}

/// Hex of secret bytes, the buffer zeroized after use.
fn hex_secret(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Decodes hex into a fixed array, zeroizing the intermediate buffer.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<Zeroizing<[u8; N]>> {
    let v = Zeroizing::new(hex::decode(s).ok()?);
    let mut out = Zeroizing::new([0u8; N]);
    if v.len() != N {
        return None;
    }
    out.copy_from_slice(&v);
    Some(out)
}

/// A public key from hex.
pub(crate) fn key32(s: &str) -> Option<[u8; 32]> {
    unhex::<32>(s).map(|k| *k)
}

impl Profile {
    /// A new profile with fresh keys from the OS RNG: identity, a signed prekey and a batch of
    /// one-time prekeys.
    pub(crate) fn generate(server: &str, username: &str, now: u64) -> Self {
        let mut rng = crate::rng::os();
        let identity = IdentityKeyPair::generate(&mut rng);
        let spk = SignedPrekeyPair::generate(&mut rng, 1, &identity);
        let mut profile = Self {
            version: PROFILE_VERSION,
            server: server.to_owned(),
            username: username.to_owned(),
            identity: hex_secret(identity.to_secret_bytes().as_ref()),
            signed_prekey: hex_secret(spk.to_secret_bytes().as_ref()),
            signed_prekey_at: now,
            previous_signed_prekey: None,
            one_time_prekeys: BTreeMap::new(),
            next_prekey_id: 2,
            token: None,
            token_expires: 0,
            contacts: BTreeMap::new(),
            rooms: BTreeMap::new(),
            history: VecDeque::new(),
            seen_server_ids: VecDeque::new(),
            seen_messages: VecDeque::new(),
            outbox: VecDeque::new(),
            held: VecDeque::new(),
            device_id: None,
            signed_prekey_device: None,
            kem_last_resort: None,
            kem_previous_last_resort: None,
            kem_one_time: BTreeMap::new(),
            kem_device: None,
        };
        profile.add_one_time_prekeys(PREKEY_BATCH);
        profile
    }

    /// A new device's profile from the link state another device of the account sent: its
    /// identity and contacts, and fresh prekeys of its own (the signed one is replaced by one
    /// signed for the device id once the server has given it, [`become_device`](Self::become_device)).
    pub(crate) fn linked(
        server: &str,
        state: &crate::link_state::LinkState,
        now: u64,
    ) -> anyhow::Result<Self> {
        let mut profile = Self::generate(server, &state.username, now);
        unhex::<{ IdentityKeyPair::SECRET_LEN }>(&state.identity)
            .ok_or_else(|| anyhow::anyhow!("the link message's identity key is damaged"))?;
        profile.identity = state.identity.clone();
        profile.contacts = state.contacts();
        Ok(profile)
    }

    /// This profile is device `device` of its account: its signed prekey is replaced by one
    /// signed for that device ("Sealroom SPK v2", PROTOCOL.md §4.6) unless it already is;
    /// returns the new one's public half to publish, if one was made.
    pub(crate) fn become_device(
        &mut self,
        device: u32,
        now: u64,
    ) -> anyhow::Result<Option<proto_core::SignedPrekey>> {
        self.device_id = Some(device);
        if self.signed_prekey_device == Some(device) {
            return Ok(None);
        }
        let spk = self.rotate_signed_prekey(now)?;
        Ok(Some(wire_signed_prekey(&spk.public())))
    }

    /// Refuses a profile this version cannot use: a newer layout, or damaged own keys (said
    /// when the keystore is opened rather than at the first use of a key).
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.version != PROFILE_VERSION {
            anyhow::bail!(
                "the keystore holds profile version {}; this sealroom reads version {PROFILE_VERSION} \
                 (was it written by a newer sealroom?)",
                self.version
            );
        }
        self.identity()?;
        self.signed_prekey()?;
        Ok(())
    }

    /// Our identity key pair.
    pub(crate) fn identity(&self) -> anyhow::Result<IdentityKeyPair> {
        let bytes = unhex::<{ IdentityKeyPair::SECRET_LEN }>(&self.identity)
            .ok_or_else(|| anyhow::anyhow!("the keystore's identity key is damaged"))?;
        Ok(IdentityKeyPair::from_secret_bytes(&bytes))
    }

    /// Our identity's public keys.
    pub(crate) fn identity_public(&self) -> anyhow::Result<IdentityPublicKey> {
        Ok(self.identity()?.public())
    }

    /// The current signed prekey.
    pub(crate) fn signed_prekey(&self) -> anyhow::Result<SignedPrekeyPair> {
        decode_spk(&self.signed_prekey)
            .ok_or_else(|| anyhow::anyhow!("the keystore's signed prekey is damaged"))
    }

    /// The signed prekey with this id: the current one or the previous one.
    pub(crate) fn signed_prekey_by_id(&self, id: u32) -> Option<SignedPrekeyPair> {
        [
            Some(&self.signed_prekey),
            self.previous_signed_prekey.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|s| decode_spk(s))
        .find(|k| k.id() == id)
    }

    /// The one-time prekey with this id, if still held.
    pub(crate) fn one_time_prekey(&self, id: u32) -> Option<OneTimePrekeyPair> {
        let s = self.one_time_prekeys.get(&id)?;
        let bytes = unhex::<{ OneTimePrekeyPair::SECRET_LEN }>(s)?;
        Some(OneTimePrekeyPair::from_secret_bytes(&bytes))
    }

    /// The current signed prekey's public half, as published.
    pub(crate) fn published_signed_prekey(&self) -> anyhow::Result<proto_core::SignedPrekey> {
        Ok(wire_signed_prekey(&self.signed_prekey()?.public()))
    }

    /// The public halves of every one-time prekey held, as published.
    pub(crate) fn published_one_time_prekeys(&self) -> Vec<proto_core::OneTimePrekey> {
        self.one_time_prekeys
            .keys()
            .filter_map(|id| self.one_time_prekey(*id))
            .map(|k| wire_one_time_prekey(&k))
            .collect()
    }

    /// Makes `count` new one-time prekeys; returns their public halves.
    pub(crate) fn add_one_time_prekeys(&mut self, count: u32) -> Vec<proto_core::OneTimePrekey> {
        let mut rng = crate::rng::os();
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let id = self.next_prekey_id;
            self.next_prekey_id = self.next_prekey_id.wrapping_add(1).max(1);
            let k = OneTimePrekeyPair::generate(&mut rng, id);
            self.one_time_prekeys
                .insert(id, hex_secret(k.to_secret_bytes().as_ref()));
            out.push(wire_one_time_prekey(&k));
        }
        out
    }

    /// The KEM prekey with this id: the last-resort one (current or previous) or a one-time
    /// one still held.
    pub(crate) fn kem_prekey(&self, id: u32) -> Option<KemPrekeyPair> {
        self.kem_last_resort
            .iter()
            .chain(&self.kem_previous_last_resort)
            .chain(self.kem_one_time.get(&id))
            .filter_map(|s| unhex::<{ KemPrekeyPair::SECRET_LEN }>(s))
            .map(|b| KemPrekeyPair::from_secret_bytes(&b))
            .find(|k| k.id() == id)
    }

    /// Makes a new last-resort KEM prekey, signed for `device`; the one held becomes the
    /// previous one (the server replaces its copy when the new one is uploaded).
    pub(crate) fn make_kem_last_resort(&mut self, device: u32) -> anyhow::Result<KemPrekeyPublic> {
        let identity = self.identity()?;
        let k = KemPrekeyPair::generate(&mut crate::rng::os(), self.take_prekey_id());
        self.kem_previous_last_resort = self
            .kem_last_resort
            .replace(hex_secret(k.to_secret_bytes().as_ref()));
        Ok(k.public_for_device(device, &identity))
    }

    /// Makes `count` one-time KEM prekeys signed for `device`; returns their public halves.
    pub(crate) fn add_kem_one_time(
        &mut self,
        device: u32,
        count: u32,
    ) -> anyhow::Result<Vec<KemPrekeyPublic>> {
        let identity = self.identity()?;
        let mut rng = crate::rng::os();
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let k = KemPrekeyPair::generate(&mut rng, self.take_prekey_id());
            self.kem_one_time
                .insert(k.id(), hex_secret(k.to_secret_bytes().as_ref()));
            out.push(k.public_for_device(device, &identity));
        }
        Ok(out)
    }

    /// The next prekey id (signed, one-time and KEM prekeys share the counter; never 0).
    fn take_prekey_id(&mut self) -> u32 {
        let id = self.next_prekey_id;
        self.next_prekey_id = self.next_prekey_id.wrapping_add(1).max(1);
        id
    }

    /// Replaces the signed prekey with a fresh one (the old one is kept as previous).
    pub(crate) fn rotate_signed_prekey(&mut self, now: u64) -> anyhow::Result<SignedPrekeyPair> {
        let identity = self.identity()?;
        let id = self.next_prekey_id;
        self.next_prekey_id = self.next_prekey_id.wrapping_add(1).max(1);
        let spk = match self.device_id {
            Some(device) => {
                SignedPrekeyPair::generate_for_device(&mut crate::rng::os(), id, device, &identity)
            }
            None => SignedPrekeyPair::generate(&mut crate::rng::os(), id, &identity),
        };
        self.signed_prekey_device = self.device_id;
        let old = core::mem::replace(
            &mut self.signed_prekey,
            hex_secret(spk.to_secret_bytes().as_ref()),
        );
        self.previous_signed_prekey = Some(old);
        self.signed_prekey_at = now;
        Ok(spk)
    }

    /// Forgets that `user` has our room keys: after their identity key changed, the key they
    /// hold now is not the one we gave ours to, so each room hands it again (to the new key,
    /// once it is verified).
    pub(crate) fn forget_keys_sent_to(&mut self, user: &str) {
        for room in self.rooms.values_mut() {
            room.key_sent.remove(user);
        }
    }

    /// The session token, if logged in.
    pub(crate) fn token(&self) -> Option<[u8; 32]> {
        self.token.as_deref().and_then(key32)
    }

    /// Remembers a server id; `false` if it was already seen.
    pub(crate) fn note_server_id(&mut self, id: u64) -> bool {
        if self.seen_server_ids.contains(&id) {
            return false;
        }
        self.seen_server_ids.push_back(id);
        while self.seen_server_ids.len() > SEEN_LIMIT {
            self.seen_server_ids.pop_front();
        }
        true
    }

    /// Remembers a sender's message id; `false` if it was already seen.
    pub(crate) fn note_message(&mut self, from: &str, id: u64) -> bool {
        let key = format!("{from}:{id}");
        if self.seen_messages.contains(&key) {
            return false;
        }
        self.seen_messages.push_back(key);
        while self.seen_messages.len() > SEEN_LIMIT {
            self.seen_messages.pop_front();
        }
        true
    }

    /// Records a received text in `conversation` (`@user` or `#room`) unless this sender's
    /// message id was seen before; returns the new history entry, or `None` for a duplicate.
    pub(crate) fn receive_text(
        &mut self,
        conversation: String,
        from: &str,
        text: &str,
        (at, id, server_id): (u64, u64, u64),
    ) -> Option<Entry> {
        if !self.note_message(from, id) {
            return None;
        }
        let entry = Entry {
            conversation,
            from: from.to_owned(),
            text: text.to_owned(),
            at,
            id,
            server_id: Some(server_id),
            outgoing: false,
            state: "received".into(),
            unread: true,
            ..Entry::default()
        };
        self.push_history(entry.clone());
        Some(entry)
    }

    /// Records a text this account sent to `to` from another of its devices (a transcript),
    /// unless seen before or `to` is not a username; returns the new history entry.
    pub(crate) fn receive_transcript(
        &mut self,
        to: &str,
        text: &str,
        (at, id): (u64, u64),
    ) -> Option<Entry> {
        if crate::cli::user_name(to).ok().as_deref() != Some(to) {
            return None;
        }
        let me = self.username.clone();
        if to == me || !self.note_message(&format!("{me}>{to}"), id) {
            return None;
        }
        Some(self.push_synced(format!("@{to}"), text, (at, id, None)))
    }

    /// Records a room text this account sent from another of its devices (the server delivers
    /// room messages to the sender's other devices), unless seen before; returns the new
    /// history entry.
    pub(crate) fn receive_room_transcript(
        &mut self,
        conversation: String,
        text: &str,
        (at, id, server_id): (u64, u64, u64),
    ) -> Option<Entry> {
        let me = self.username.clone();
        if !self.note_message(&me, id) {
            return None;
        }
        Some(self.push_synced(conversation, text, (at, id, Some(server_id))))
    }

    /// Records our own text sent from another of our devices (state `synced`); returns it.
    fn push_synced(
        &mut self,
        conversation: String,
        text: &str,
        (at, id, server_id): (u64, u64, Option<u64>),
    ) -> Entry {
        let entry = Entry {
            conversation,
            from: self.username.clone(),
            text: text.to_owned(),
            at,
            id,
            server_id,
            outgoing: true,
            state: "synced".into(),
            unread: true,
            ..Entry::default()
        };
        self.push_history(entry.clone());
        entry
    }

    /// Appends to the history (bounded).
    pub(crate) fn push_history(&mut self, entry: Entry) {
        self.history.push_back(entry);
        while self.history.len() > HISTORY_LIMIT {
            self.history.pop_front();
        }
    }

    /// Marks our message with this server id delivered; returns it.
    pub(crate) fn mark_delivered(&mut self, server_id: u64, device: u32) -> Option<Entry> {
        let e = self
            .history
            .iter_mut()
            .rev()
            .find(|e| e.outgoing && e.server_id == Some(server_id))?;
        if e.state == "delivered" && e.delivered_to.contains(&device) {
            // The same receipt again (kept and pushed): nothing new.
            return None;
        }
        e.state = "delivered".into();
        if !e.delivered_to.contains(&device) {
            e.delivered_to.push(device);
        }
        Some(e.clone())
    }

    /// How many entries are unread.
    pub(crate) fn unread_count(&self) -> usize {
        self.history.iter().filter(|e| e.unread).count()
    }
}

/// A signed prekey's public half in its wire form.
pub(crate) fn wire_signed_prekey(spk: &SignedPrekeyPublic) -> proto_core::SignedPrekey {
    proto_core::SignedPrekey {
        id: spk.id,
        key: proto_core::Key32(spk.public),
        signature: proto_core::Sig64(spk.signature),
    }
}

/// A one-time prekey's public half in its wire form.
fn wire_one_time_prekey(k: &OneTimePrekeyPair) -> proto_core::OneTimePrekey {
    let p = k.public();
    proto_core::OneTimePrekey {
        id: p.id,
        key: proto_core::Key32(p.public),
    }
}

fn decode_spk(s: &str) -> Option<SignedPrekeyPair> {
    let bytes = unhex::<{ SignedPrekeyPair::SECRET_LEN }>(s)?;
    Some(SignedPrekeyPair::from_secret_bytes(&bytes))
}

impl Contact {
    /// A contact first seen with this identity (trusted on first use, not verified).
    pub(crate) fn new(identity: &IdentityPublicKey) -> Self {
        Self {
            identity_sig: hex::encode(identity.signing),
            identity_dh: hex::encode(identity.dh),
            ..Self::default()
        }
    }

    /// The identity key we hold for them.
    pub(crate) fn identity(&self) -> Option<IdentityPublicKey> {
        Some(IdentityPublicKey {
            signing: key32(&self.identity_sig)?,
            dh: key32(&self.identity_dh)?,
        })
    }

    /// Whether `identity` is the key we hold.
    pub(crate) fn matches(&self, identity: &IdentityPublicKey) -> bool {
        self.identity().as_ref() == Some(identity)
    }

    /// Whether a first message with this base key (ephemeral key) was already taken in.
    pub(crate) fn took_base_key(&self, ephemeral: &[u8; 32]) -> bool {
        let key = hex::encode(ephemeral);
        self.base_keys.iter().any(|k| *k == key)
    }

    /// Remembers the base key of a first message that decrypted (bounded, oldest dropped).
    pub(crate) fn note_base_key(&mut self, ephemeral: &[u8; 32]) {
        self.base_keys.push_back(hex::encode(ephemeral));
        while self.base_keys.len() > BASE_KEYS_LIMIT {
            self.base_keys.pop_front();
        }
    }

    /// Records a new identity key: unverified, sending blocked, sessions dropped.
    pub(crate) fn replace_identity(&mut self, identity: &IdentityPublicKey) {
        self.identity_sig = hex::encode(identity.signing);
        self.identity_dh = hex::encode(identity.dh);
        self.verified = false;
        self.key_changed = true;
        self.session = None;
        self.previous_session = None;
        self.devices.clear();
    }
}

/// The first `n` bytes of a state buffer as hex; an error if the writer claimed more than it has.
fn state_hex(buf: &[u8], n: usize, what: &str) -> anyhow::Result<String> {
    match buf.get(..n) {
        Some(state) => Ok(hex::encode(state)),
        None => anyhow::bail!(
            "cannot save a {what}: its state claims {n} bytes of a {}-byte buffer",
            buf.len()
        ),
    }
}

/// `Session::write_state` as hex.
pub(crate) fn session_to_hex(s: &proto_core::Session) -> anyhow::Result<String> {
    let mut buf = Zeroizing::new(vec![0u8; proto_core::Session::<64>::STATE_LEN]);
    let n = s
        .write_state(&mut buf)
        .map_err(|e| anyhow::anyhow!("cannot save a session: {e}"))?;
    state_hex(&buf, n, "session")
}

/// A session from hex.
pub(crate) fn session_from_hex(s: &str) -> Option<proto_core::Session> {
    let bytes = Zeroizing::new(hex::decode(s).ok()?);
    proto_core::Session::read_state(&bytes).ok()
}

/// `Room::write_state` as hex.
pub(crate) fn room_to_hex(r: &proto_core::Room) -> anyhow::Result<String> {
    let mut buf = Zeroizing::new(vec![0u8; proto_core::Room::<32, 64>::STATE_LEN]);
    let n = r
        .write_state(&mut buf)
        .map_err(|e| anyhow::anyhow!("cannot save a room: {e}"))?;
    state_hex(&buf, n, "room")
}

/// A room from hex.
pub(crate) fn room_from_hex(s: &str) -> Option<proto_core::Room> {
    let bytes = Zeroizing::new(hex::decode(s).ok()?);
    proto_core::Room::read_state(&bytes).ok()
}

/// Unix time now.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn fresh_profile_has_keys_that_round_trip() {
        let p = Profile::generate("localhost:8443", "alice", 1);
        assert_eq!(p.one_time_prekeys.len(), PREKEY_BATCH as usize);
        let spk = p.signed_prekey().unwrap();
        spk.public()
            .verify(&p.identity_public().unwrap().signing)
            .unwrap();
        assert!(p.signed_prekey_by_id(spk.id()).is_some());
        let id = *p.one_time_prekeys.keys().next().unwrap();
        assert_eq!(p.one_time_prekey(id).unwrap().id(), id);
        // Two profiles never share keys (OS RNG).
        let q = Profile::generate("localhost:8443", "alice", 1);
        assert_ne!(p.identity, q.identity);
    }

    #[test]
    fn a_changed_identity_is_owed_our_room_keys_again() {
        let mut p = Profile::generate("s", "u", 0);
        for name in ["a", "b"] {
            let mut entry = RoomEntry::default();
            entry.key_sent.insert("bob".into(), 3);
            entry.key_sent.insert("carol".into(), 3);
            p.rooms.insert(name.into(), entry);
        }
        p.forget_keys_sent_to("bob");
        for entry in p.rooms.values() {
            assert!(!entry.key_sent.contains_key("bob"));
            assert_eq!(entry.key_sent.get("carol"), Some(&3));
        }
    }

    #[test]
    fn a_newer_layout_or_a_damaged_key_is_refused_when_opened() {
        let good = Profile::generate("s", "u", 0);
        good.check().unwrap();
        let mut newer = good.clone();
        newer.version = PROFILE_VERSION + 1;
        let err = newer.check().unwrap_err().to_string();
        assert!(err.contains("newer sealroom"), "{err}");
        let mut damaged = good.clone();
        damaged.identity.truncate(10);
        assert!(damaged.check().is_err());
        let mut damaged = good;
        damaged.signed_prekey = "zz".into();
        assert!(damaged.check().is_err());
    }

    #[test]
    fn duplicates_are_recognised_and_memory_is_bounded() {
        let mut p = Profile::generate("s", "u", 0);
        assert!(p.note_message("bob", 7));
        assert!(!p.note_message("bob", 7));
        assert!(p.note_message("carol", 7));
        assert!(p.note_server_id(1));
        assert!(!p.note_server_id(1));
        for i in 0..(SEEN_LIMIT as u64 + 10) {
            p.note_server_id(100 + i);
        }
        assert_eq!(p.seen_server_ids.len(), SEEN_LIMIT);
    }

    #[test]
    fn base_keys_are_remembered_and_bounded() {
        let mut c = Contact::default();
        assert!(!c.took_base_key(&[1; 32]));
        c.note_base_key(&[1; 32]);
        assert!(c.took_base_key(&[1; 32]));
        for i in 0..BASE_KEYS_LIMIT {
            c.note_base_key(&[u8::try_from(i % 200).unwrap() + 2; 32]);
        }
        assert_eq!(c.base_keys.len(), BASE_KEYS_LIMIT);
        assert!(!c.took_base_key(&[1; 32]), "the oldest went first");
    }

    #[test]
    fn a_keystore_written_before_devices_opens_and_signs_its_prekey_for_its_device() {
        let mut p = Profile::generate("s", "u", 0);
        p.contacts.insert(
            "bob".into(),
            Contact {
                session: Some("00".into()),
                ..Contact::default()
            },
        );
        let mut v = serde_json::to_value(&p).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("device_id").unwrap();
        o.remove("signed_prekey_device").unwrap();
        v["contacts"]["bob"]
            .as_object_mut()
            .unwrap()
            .remove("devices")
            .unwrap();
        let mut q: Profile = serde_json::from_value(v).unwrap();
        assert_eq!((q.device_id, q.signed_prekey_device), (None, None));
        assert_eq!(
            q.contacts["bob"].session.as_deref(),
            Some("00"),
            "kept as legacy"
        );
        let old = q.signed_prekey().unwrap().id();
        let identity = q.identity_public().unwrap();
        let spk = q
            .become_device(3, 9)
            .unwrap()
            .expect("a v2 prekey to publish");
        let public = SignedPrekeyPublic::from(&spk);
        assert!(public.verify_for_device(&identity.signing, 3).is_ok());
        assert!(
            public.verify(&identity.signing).is_err(),
            "not a v1 signature"
        );
        assert!(
            q.signed_prekey_by_id(old).is_some(),
            "the v1 one kept for messages in flight"
        );
        assert!(q.become_device(3, 10).unwrap().is_none(), "once");
        // Saved and read back, it stays device 3's.
        let r: Profile = serde_json::from_value(serde_json::to_value(&q).unwrap()).unwrap();
        assert_eq!((r.device_id, r.signed_prekey_device), (Some(3), Some(3)));
    }

    #[test]
    fn a_keystore_written_before_base_keys_and_held_items_opens() {
        let mut p = Profile::generate("s", "u", 0);
        p.contacts.insert("bob".into(), Contact::default());
        let mut v = serde_json::to_value(&p).unwrap();
        v.as_object_mut().unwrap().remove("held").unwrap();
        v["contacts"]["bob"]
            .as_object_mut()
            .unwrap()
            .remove("base_keys")
            .unwrap();
        let q: Profile = serde_json::from_value(v).unwrap();
        assert!(q.held.is_empty());
        assert!(q.contacts["bob"].base_keys.is_empty());
    }

    #[test]
    fn kem_prekeys_are_made_signed_for_the_device_and_found_by_id() {
        let mut p = Profile::generate("s", "alice", 0);
        // A keystore written before PQXDH has none of the KEM fields.
        let mut v = serde_json::to_value(&p).unwrap();
        let o = v.as_object_mut().unwrap();
        for field in [
            "kem_last_resort",
            "kem_previous_last_resort",
            "kem_one_time",
            "kem_device",
        ] {
            o.remove(field).unwrap();
        }
        let old: Profile = serde_json::from_value(v).unwrap();
        assert!(old.kem_last_resort.is_none() && old.kem_one_time.is_empty());
        assert_eq!(old.kem_device, None);

        let signing = p.identity_public().unwrap().signing;
        let last = p.make_kem_last_resort(4).unwrap();
        let one_time = p.add_kem_one_time(4, 3).unwrap();
        last.verify_for_device(&signing, 4).unwrap();
        assert!(last.verify_for_device(&signing, 5).is_err());
        let mut ids: Vec<u32> = one_time.iter().map(|k| k.id).collect();
        ids.push(last.id);
        // Ids come from the one prekey counter: no KEM prekey shares an id with another
        // prekey, and none is 0.
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 4);
        assert!(!ids.contains(&0));
        assert!(ids.iter().all(|id| !p.one_time_prekeys.contains_key(id)));
        for k in one_time.iter().chain([&last]) {
            k.verify_for_device(&signing, 4).unwrap();
            let held = p.kem_prekey(k.id).unwrap();
            assert_eq!(held.public_key(), k.public);
        }
        assert!(p.kem_prekey(0).is_none());
        // A new last-resort key replaces the old one (the server replaces its copy too); the
        // old one is kept for first messages in flight, the one before it goes.
        let again = p.make_kem_last_resort(4).unwrap();
        assert!(p.kem_prekey(last.id).is_some());
        assert!(p.kem_prekey(again.id).is_some());
        let third = p.make_kem_last_resort(4).unwrap();
        assert!(p.kem_prekey(last.id).is_none());
        assert!(p.kem_prekey(third.id).is_some());
        // The secrets survive the keystore's JSON.
        let q: Profile = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(
            q.kem_prekey(one_time[0].id).unwrap().public_key(),
            one_time[0].public
        );
    }

    #[test]
    fn rotating_the_signed_prekey_keeps_the_previous_one() {
        let mut p = Profile::generate("s", "u", 0);
        let old = p.signed_prekey().unwrap().id();
        let new = p.rotate_signed_prekey(5).unwrap().id();
        assert_ne!(old, new);
        assert!(p.signed_prekey_by_id(old).is_some());
        assert!(p.signed_prekey_by_id(new).is_some());
    }
}

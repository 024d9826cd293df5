//! What a device of the account hands a device being linked (PROTOCOL.md §4.6 "Link state"):
//! the account identity and the contacts with their identity keys and trust, sealed in the
//! link message to the new device's link code. Never sessions or sender keys: the new device
//! starts its own.

use std::collections::BTreeMap;

use data_encoding::BASE32_NOPAD;
use proto_core::{LINK_CODE_LEN, LINK_OVERHEAD, LinkCode, LinkKeyPair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::exit::{Exit, fail};
use crate::profile::{Contact, Profile};

/// The layout version of [`LinkState`].
pub(crate) const LINK_STATE_VERSION: u32 = 1;

/// The link state: UTF-8 JSON, sealed in the link message.
#[derive(Serialize, Deserialize)]
pub(crate) struct LinkState {
    /// [`LINK_STATE_VERSION`].
    pub(crate) version: u32,
    /// The account's username.
    pub(crate) username: String,
    /// The identity secret bytes (hex of `IdentityKeyPair::to_secret_bytes`: `IKs` seed then
    /// `IKd`).
    pub(crate) identity: String,
    /// Contacts by username.
    pub(crate) contacts: BTreeMap<String, LinkedContact>,
    /// The rooms the account is in: each one's signed roster as the sending device holds it
    /// (hex). Absent in states from older clients.
    /// Read leniently: anything but an object of strings is dropped, entry by entry.
    #[serde(default, deserialize_with = "lenient_rooms")]
    pub(crate) rooms: BTreeMap<String, String>,
}

/// `rooms` as sent: entries whose value is not a string are dropped, and a `rooms` that is
/// not an object reads as none (PROTOCOL.md §4.6: what is not a room's roster is dropped).
fn lenient_rooms<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(value
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

impl Drop for LinkState {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.identity);
    }
}

/// One contact as handed over.
#[derive(Serialize, Deserialize)]
pub(crate) struct LinkedContact {
    /// Their `IKs` (hex).
    pub(crate) identity_sig: String,
    /// Their `IKd` (hex).
    pub(crate) identity_dh: String,
    /// Safety number compared and confirmed.
    pub(crate) verified: bool,
    /// Their key changed since last accepted: sending blocked until verified.
    pub(crate) key_changed: bool,
}

impl LinkState {
    /// The state of this device's profile.
    pub(crate) fn of(profile: &Profile) -> Self {
        Self {
            version: LINK_STATE_VERSION,
            username: profile.username.clone(),
            identity: profile.identity.clone(),
            contacts: profile
                .contacts
                .iter()
                // Our own account is there only to hold sessions with our other devices.
                .filter(|(name, _)| **name != profile.username)
                .map(|(name, c)| {
                    (
                        name.clone(),
                        LinkedContact {
                            identity_sig: c.identity_sig.clone(),
                            identity_dh: c.identity_dh.clone(),
                            verified: c.verified,
                            key_changed: c.key_changed,
                        },
                    )
                })
                .collect(),
            rooms: profile
                .rooms
                .iter()
                .filter(|(_, r)| !r.roster.is_empty())
                .map(|(name, r)| (name.clone(), r.roster.clone()))
                .collect(),
        }
    }

    /// Seals the state to `code`: the link message.
    pub(crate) fn seal(&self, code: &LinkCode) -> anyhow::Result<Vec<u8>> {
        let json = Zeroizing::new(serde_json::to_vec(self)?);
        let mut out = vec![0u8; json.len() + LINK_OVERHEAD];
        let n = proto_core::seal_link(&mut crate::rng::os(), code, &json, &mut out)
            .map_err(|e| anyhow::anyhow!("cannot seal the link message: {e}"))?;
        out.truncate(n);
        if out.len() > proto_core::limits::MAX_BODY {
            return fail(
                Exit::Failure,
                "this account's contacts do not fit in one link message",
            );
        }
        Ok(out)
    }

    /// Opens a link message with the new device's link key pair.
    pub(crate) fn open(pair: &LinkKeyPair, message: &[u8]) -> anyhow::Result<Self> {
        let mut plain = Zeroizing::new(vec![0u8; message.len()]);
        let n = pair.open(message, &mut plain).map_err(|e| {
            anyhow::anyhow!("the link message does not open under this device's code: {e}")
        })?;
        let json = plain
            .get(..n)
            .ok_or_else(|| anyhow::anyhow!("the link message is shorter than it says"))?;
        let state: Self = serde_json::from_slice(json)
            .map_err(|e| anyhow::anyhow!("the link message holds no account state: {e}"))?;
        if state.version != LINK_STATE_VERSION {
            anyhow::bail!(
                "the link message holds link state version {}; this sealroom reads version \
                 {LINK_STATE_VERSION}",
                state.version
            );
        }
        Ok(state)
    }

    /// The rooms with their rosters (bytes): an entry whose name is not a room name, or whose
    /// roster does not parse as one of that room, is dropped (the state came over the
    /// network; whether it lists us is checked when it is adopted).
    pub(crate) fn rooms(&self) -> Vec<(String, Vec<u8>)> {
        self.rooms
            .iter()
            .filter(|(name, _)| proto_core::names::check_room_name(name).is_ok())
            .filter_map(|(name, roster)| {
                let bytes = hex::decode(roster).ok()?;
                let parsed = proto_core::Roster::parse(&bytes).ok()?;
                (parsed.room_id() == &crate::rooms::room_id(name)).then(|| (name.clone(), bytes))
            })
            .collect()
    }

    /// The contacts as this device keeps them (no sessions yet); a name that is not a folded
    /// username is dropped (the state came over the network).
    pub(crate) fn contacts(&self) -> BTreeMap<String, Contact> {
        self.contacts
            .iter()
            .filter(|(name, _)| {
                crate::cli::user_name(name).is_ok_and(|n| &n == *name) && **name != self.username
            })
            .map(|(name, c)| {
                (
                    name.clone(),
                    Contact {
                        identity_sig: c.identity_sig.clone(),
                        identity_dh: c.identity_dh.clone(),
                        verified: c.verified,
                        key_changed: c.key_changed,
                        ..Contact::default()
                    },
                )
            })
            .collect()
    }
}

/// A link code as people copy it: base32 (RFC 4648, no padding) of its 49 bytes, in groups of
/// four separated by `-`.
pub(crate) fn code_text(code: &LinkCode) -> String {
    let text = BASE32_NOPAD.encode(code.encode().as_ref());
    text.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// Reads a link code as typed or pasted: base32, any case, spaces and `-` ignored.
pub(crate) fn parse_code(text: &str) -> anyhow::Result<LinkCode> {
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = Zeroizing::new(BASE32_NOPAD.decode(compact.as_bytes()).map_err(|_| {
        crate::exit::Failure::new(
            Exit::Usage,
            "that is not a link code (base32, as the new device shows it)",
        )
    })?);
    if bytes.len() != LINK_CODE_LEN {
        return fail(
            Exit::Usage,
            format!(
                "a link code is {LINK_CODE_LEN} bytes; this one is {}",
                bytes.len()
            ),
        );
    }
    LinkCode::decode(&bytes)
        .map_err(|e| crate::exit::Failure::new(Exit::Usage, format!("not a link code: {e}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_reads_back_however_it_is_typed_and_garbage_is_refused() {
        let pair = LinkKeyPair::generate(&mut crate::rng::os());
        let text = code_text(pair.code());
        assert!(text.len() > 79 && text.contains('-'), "{text}");
        let back = parse_code(&text.to_ascii_lowercase().replace('-', " ")).unwrap();
        assert_eq!(&back, pair.code());
        assert!(parse_code("not a code").is_err());
        assert!(parse_code(&text[..20]).is_err());
    }

    #[test]
    fn the_state_opens_only_with_the_code_it_was_sealed_to() {
        let profile = Profile::generate("localhost:1", "carol", 1);
        let pair = LinkKeyPair::generate(&mut crate::rng::os());
        let sealed = LinkState::of(&profile).seal(pair.code()).unwrap();
        let opened = LinkState::open(&pair, &sealed).unwrap();
        assert_eq!(opened.identity, profile.identity);
        assert_eq!(opened.username, "carol");
        let mut hostile = LinkState::open(&pair, &sealed).unwrap();
        let sample = LinkedContact {
            identity_sig: String::new(),
            identity_dh: String::new(),
            verified: true,
            key_changed: false,
        };
        hostile.contacts.insert("\u{202e}evil\n".into(), sample);
        assert!(hostile.contacts().is_empty(), "not a username: dropped");
        let other = LinkKeyPair::generate(&mut crate::rng::os());
        assert!(LinkState::open(&other, &sealed).is_err());
    }

    /// A first roster of `room` signed by `profile`'s identity, listing it alone.
    fn roster_of(profile: &Profile, room: &str) -> Vec<u8> {
        let identity = profile.identity().unwrap();
        let own = identity.public().signing;
        let members = [proto_core::RosterMember {
            username: &profile.username,
            identity: own,
        }];
        let fields = proto_core::RosterFields {
            room_id: crate::rooms::room_id(room),
            version: 0,
            epoch: 0,
            prev: [0; 32],
            admins: &[own],
            members: &members,
        };
        let mut out = vec![0u8; proto_core::limits::MAX_BODY];
        let n = proto_core::write_roster(&fields, &identity, &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// The account's rooms travel with their rosters; what is not a room's roster is dropped,
    /// and a state from an older client (no `rooms`) still opens.
    #[test]
    fn rooms_travel_with_their_rosters_and_anything_else_is_dropped() {
        let mut profile = Profile::generate("localhost:1", "carol", 1);
        let team = roster_of(&profile, "team");
        profile.rooms.insert(
            "team".into(),
            crate::profile::RoomEntry {
                roster: hex::encode(&team),
                ..Default::default()
            },
        );
        profile
            .rooms
            .insert("unsigned".into(), crate::profile::RoomEntry::default());
        let pair = LinkKeyPair::generate(&mut crate::rng::os());
        let sealed = LinkState::of(&profile).seal(pair.code()).unwrap();
        let mut opened = LinkState::open(&pair, &sealed).unwrap();
        assert_eq!(opened.rooms(), [("team".to_owned(), team.clone())]);
        // Another room's roster under this name, garbage, a name that is no room name.
        opened.rooms.insert("club".into(), hex::encode(&team));
        opened.rooms.insert("junk".into(), "00ff".into());
        opened.rooms.insert("Bad Name!".into(), hex::encode(&team));
        assert_eq!(opened.rooms(), [("team".to_owned(), team)]);

        let old = serde_json::json!({
            "version": 1, "username": "carol", "identity": profile.identity, "contacts": {},
        });
        let state: LinkState = serde_json::from_value(old).unwrap();
        assert!(state.rooms().is_empty());
        // A malformed `rooms` loses its bad entries, not the link.
        for rooms in [
            serde_json::json!([1, 2]),
            serde_json::json!({ "team": 7 }),
            serde_json::json!("x"),
        ] {
            let v = serde_json::json!({
                "version": 1, "username": "carol", "identity": profile.identity,
                "contacts": {}, "rooms": rooms,
            });
            let state: LinkState = serde_json::from_value(v).unwrap();
            assert!(state.rooms().is_empty());
        }
    }
}

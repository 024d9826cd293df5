//! Entry points for the fuzz targets in `fuzz/` (not an API): the files `sealroom` reads back.
//!
//! The keystore is read in two steps, and [`keystore`] fuzzes both on the same bytes: the file
//! (header, then authenticated decryption; PBKDF2 is skipped, a fixed key stands in for the
//! derived one) and the decrypted contents (the JSON [`Profile`], then every key and saved
//! state in it, as the commands decode them). A damaged or hostile keystore must give an error,
//! never a panic, an endless loop or a wrong key.
#![allow(
    clippy::panic,
    clippy::expect_used,
    reason = "a broken invariant must crash the fuzzer"
)]

use crate::keystore::{File, KeystoreError, decode_state};
use crate::profile::{Profile, room_from_hex, session_from_hex};

/// The key the fuzzer's keystore files are "derived" to (any fixed value does).
const KEY: [u8; 32] = [0x5e; 32];

/// `data` as a keystore file, then as a keystore's decrypted contents.
///
/// # Panics
/// When a check fails: that is the finding.
pub fn keystore(data: &[u8]) {
    if let Some(file) = File::parse(data) {
        match file.decrypt::<Profile>(&KEY) {
            Ok(profile) => use_profile(&profile),
            Err(KeystoreError::WrongPassphrase | KeystoreError::Damaged(_)) => {}
            Err(e) => panic!("decrypting in memory gave {e}"),
        }
    }
    if let Ok(profile) = decode_state::<Profile>(data) {
        use_profile(&profile);
    }
}

/// `data` as a link code typed into `sealroom devices add`, and as the link state a new device
/// reads from an opened link message (PROTOCOL.md §4.6): an error, never a panic; a code that
/// reads back prints as text that reads back to it; a state that parses makes a profile with
/// at most the state's contacts (names that are not usernames are dropped).
///
/// # Panics
/// When a check fails: that is the finding.
pub fn link_state(data: &[u8]) {
    if let Ok(code) = crate::link_state::parse_code(&String::from_utf8_lossy(data)) {
        let again = crate::link_state::parse_code(&crate::link_state::code_text(&code))
            .expect("a code printed reads back");
        assert_eq!(again, code, "a code printed reads back differently");
    }
    if let Ok(state) = serde_json::from_slice::<crate::link_state::LinkState>(data)
        && let Ok(profile) = Profile::linked("localhost:1", &state, 1)
    {
        assert!(profile.contacts.len() <= state.contacts.len());
        use_profile(&profile);
    }
}

/// Everything the client decodes from a profile once it is open.
fn use_profile(profile: &Profile) {
    let _ = profile.check();
    if let Ok(identity) = profile.identity() {
        assert_eq!(
            profile.identity_public().ok(),
            Some(identity.public()),
            "the identity key decodes differently twice"
        );
    }
    if let Ok(spk) = profile.signed_prekey() {
        assert!(
            profile.signed_prekey_by_id(spk.id()).is_some(),
            "the current signed prekey is not found by its own id"
        );
        let _ = profile.published_signed_prekey();
    }
    let published = profile.published_one_time_prekeys();
    assert!(published.len() <= profile.one_time_prekeys.len());
    let _ = profile.token();
    let _ = profile.unread_count();
    for contact in profile.contacts.values() {
        let _ = contact.identity();
        let per_device = contact
            .devices
            .values()
            .flat_map(|d| [&d.session, &d.previous_session]);
        for state in [&contact.session, &contact.previous_session]
            .into_iter()
            .chain(per_device)
            .flatten()
        {
            if let Some(session) = session_from_hex(state) {
                let again = crate::profile::session_to_hex(&session)
                    .expect("a session read back can be saved");
                assert!(
                    session_from_hex(&again).is_some(),
                    "a saved session does not read back"
                );
            }
        }
    }
    for room in profile.rooms.values() {
        if let Some(r) = room_from_hex(&room.state) {
            let again = crate::profile::room_to_hex(&r).expect("a room read back can be saved");
            assert!(
                room_from_hex(&again).is_some(),
                "a saved room does not read back"
            );
        }
    }
    // What the client writes back, it reads back as the same profile.
    let written = serde_json::to_vec(profile).expect("a profile serializes");
    let back: Profile = decode_state(&written).expect("a written profile reads back");
    assert_eq!(
        serde_json::to_vec(&back).expect("a profile serializes"),
        written,
        "a profile changes on a save and reopen"
    );
}

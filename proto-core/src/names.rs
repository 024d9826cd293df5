//! The grammar of names every end agrees on (PROTOCOL.md §3.5): usernames and room names.
//!
//! The server refuses a name outside this grammar and the clients check it before they send,
//! so both use these functions (the web client runs the same rules on `names.json` vectors).

use core::fmt;

/// The longest username, in bytes (ASCII after folding).
pub const USERNAME_MAX_LEN: usize = 32;
/// The shortest username, in bytes.
pub const USERNAME_MIN_LEN: usize = 3;
/// The longest room name, in bytes.
pub const ROOM_NAME_MAX_LEN: usize = 32;

/// A name outside the grammar; `Display` says what the grammar is, for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// Not `[a-z0-9_]{3,32}` after trimming and ASCII case folding.
    Username,
    /// Not `[a-z0-9_-]{1,32}`.
    RoomName,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Username => "username must be 3 to 32 characters: letters a-z, digits and _",
            NameError::RoomName => "room name must be 1 to 32 characters: a-z, digits, _ and -",
        })
    }
}

impl core::error::Error for NameError {}

/// Trims and ASCII-case-folds `raw` into `out`, then checks it is `[a-z0-9_]{3,32}`; returns the
/// folded username, a slice of `out`.
pub fn fold_username<'o>(
    raw: &str,
    out: &'o mut [u8; USERNAME_MAX_LEN],
) -> Result<&'o str, NameError> {
    let trimmed = raw.trim().as_bytes();
    if !(USERNAME_MIN_LEN..=USERNAME_MAX_LEN).contains(&trimmed.len()) {
        return Err(NameError::Username);
    }
    let dst = out.get_mut(..trimmed.len()).ok_or(NameError::Username)?;
    for (d, &b) in dst.iter_mut().zip(trimmed) {
        let b = b.to_ascii_lowercase();
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(NameError::Username);
        }
        *d = b;
    }
    core::str::from_utf8(dst).map_err(|_| NameError::Username)
}

/// Whether `name` is already a folded, valid username (what a frame must carry).
pub fn is_username(name: &str) -> bool {
    let mut buf = [0u8; USERNAME_MAX_LEN];
    fold_username(name, &mut buf).is_ok_and(|folded| folded == name)
}

/// Checks a room name: `[a-z0-9_-]{1,32}`, no folding.
pub fn check_room_name(name: &str) -> Result<(), NameError> {
    let ok = (1..=ROOM_NAME_MAX_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(NameError::RoomName) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_and_follow_the_grammar() {
        let mut buf = [0u8; USERNAME_MAX_LEN];
        assert_eq!(fold_username("  Alice_1 ", &mut buf), Ok("alice_1"));
        for bad in ["ab", "", "a b c", "ålice", "bob!", &"x".repeat(33)] {
            assert_eq!(
                fold_username(bad, &mut buf),
                Err(NameError::Username),
                "{bad:?}"
            );
        }
        assert!(is_username("bob"));
        assert!(!is_username("Bob"));
        assert!(!is_username(" bob"));
    }

    #[test]
    fn room_names_follow_the_grammar() {
        assert_eq!(check_room_name("team-room_2"), Ok(()));
        for bad in ["", "Team", "a b", "café", &"r".repeat(33)] {
            assert_eq!(check_room_name(bad), Err(NameError::RoomName), "{bad:?}");
        }
    }
}

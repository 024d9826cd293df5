//! The keystore: everything secret a device holds (identity and prekey private keys, ratchet
//! sessions, room sender keys, contacts, recent history), encrypted at rest under a passphrase.
//!
//! File layout (all integers big-endian):
//!
//! ```text
//! "SRKS" | version u8 = 1 | rounds u32 | salt [16] | nonce [12] | ChaCha20-Poly1305(JSON state)
//! ```
//!
//! The key is PBKDF2-HMAC-SHA256(passphrase, salt, rounds) (600,000 by default); the header bytes
//! are the AEAD's associated data, so a changed round count or salt fails authentication. Writes
//! go to a temporary file in the same folder, are synced, then renamed over the old file: a crash
//! leaves either the old keystore or the new one, never half of one. The file is mode 0600.
//!
//! It does not decide what the state means; that belongs to the commands.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proto_core::primitives::{open_in_place, seal_in_place};
use rand_core::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"SRKS";
const VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 4 + 1 + 4 + SALT_LEN + NONCE_LEN;

/// PBKDF2 rounds for a new keystore (the password hashes' figure in docs/SECURITY.md; about a
/// quarter second here).
pub(crate) const DEFAULT_ROUNDS: u32 = 600_000;
/// The fewest rounds a keystore file may claim; guards against a tampered header cheapening
/// the key derivation.
const MIN_ROUNDS: u32 = 1_000;
/// The most rounds a keystore file may claim; guards against a tampered header making every
/// open take hours.
const MAX_ROUNDS: u32 = 10_000_000;

/// Why a keystore could not be opened or saved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeystoreError {
    /// No keystore at that path.
    #[error("no keystore at {0}; run `sealroom register` first (or pass --home)")]
    Missing(PathBuf),
    /// The passphrase is wrong, or the file was altered. Nothing was changed.
    #[error("wrong passphrase, or the keystore file was altered; nothing was changed")]
    WrongPassphrase,
    /// The file is not a keystore this version understands.
    #[error("{0} is not a Sealroom keystore (or was written by a newer version)")]
    NotAKeystore(PathBuf),
    /// The decrypted state does not parse.
    #[error("the keystore decrypted but its contents are damaged: {0}")]
    Damaged(String),
    /// Reading or writing failed.
    #[error("keystore I/O on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A keystore file and the key that opens it.
pub(crate) struct Keystore {
    path: PathBuf,
    rounds: u32,
    salt: [u8; SALT_LEN],
    key: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Keystore")
            .field("path", &self.path)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// The strength rule for a new keystore passphrase: the server's for account passwords (the
/// `passphrase` crate, shared). The error says why, in words a person understands.
pub(crate) fn check_passphrase(passphrase: &str, hints: &[&str]) -> Result<(), String> {
    passphrase::check(passphrase, hints)
}

fn derive(passphrase: &str, salt: &[u8; SALT_LEN], rounds: u32) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(passphrase.as_bytes(), salt, rounds, key.as_mut());
    key
}

/// A keystore file's parts, as read back from disk (nothing decrypted yet).
#[derive(Debug)]
pub(crate) struct File<'a> {
    /// The header bytes: the AEAD's associated data.
    header: &'a [u8],
    /// PBKDF2 rounds, within [`MIN_ROUNDS`]..=[`MAX_ROUNDS`].
    rounds: u32,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: &'a [u8],
    tag: [u8; TAG_LEN],
}

impl<'a> File<'a> {
    /// Splits a keystore file; `None` when it is not one this version reads (wrong magic or
    /// version, a round count out of bounds, too short to hold a tag).
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<Self> {
        let (header, body) = bytes.split_at_checked(HEADER_LEN)?;
        let (magic, rest) = header.split_first_chunk::<4>()?;
        let (&version, rest) = rest.split_first()?;
        if magic != MAGIC || version != VERSION {
            return None;
        }
        let (rounds, rest) = rest.split_first_chunk::<4>()?;
        let rounds = u32::from_be_bytes(*rounds);
        let (salt, rest) = rest.split_first_chunk::<SALT_LEN>()?;
        let nonce: [u8; NONCE_LEN] = rest.try_into().ok()?;
        if !(MIN_ROUNDS..=MAX_ROUNDS).contains(&rounds) {
            return None;
        }
        let (ciphertext, tag) = body.split_last_chunk::<TAG_LEN>()?;
        Some(Self {
            header,
            rounds,
            salt: *salt,
            nonce,
            ciphertext,
            tag: *tag,
        })
    }

    /// Decrypts with `key` and parses the state. A wrong key (or an altered file) is
    /// [`KeystoreError::WrongPassphrase`]; contents that do not parse are
    /// [`KeystoreError::Damaged`].
    pub(crate) fn decrypt<T: DeserializeOwned>(&self, key: &[u8; 32]) -> Result<T, KeystoreError> {
        let mut plain = Zeroizing::new(self.ciphertext.to_vec());
        open_in_place(
            key,
            &self.nonce,
            self.header,
            plain.as_mut_slice(),
            &self.tag,
        )
        .map_err(|_| KeystoreError::WrongPassphrase)?;
        decode_state(&plain)
    }
}

/// Parses decrypted keystore contents.
pub(crate) fn decode_state<T: DeserializeOwned>(plain: &[u8]) -> Result<T, KeystoreError> {
    serde_json::from_slice(plain).map_err(|e| KeystoreError::Damaged(e.to_string()))
}

impl Keystore {
    /// A new keystore at `path` under `passphrase` (slow: derives the key). Nothing is written
    /// until [`save`](Self::save).
    pub(crate) fn create(path: &Path, passphrase: &str, rounds: u32) -> Self {
        let mut salt = [0u8; SALT_LEN];
        crate::rng::os().fill_bytes(&mut salt);
        let key = derive(passphrase, &salt, rounds);
        Self {
            path: path.to_owned(),
            rounds,
            salt,
            key,
        }
    }

    /// Whether a keystore exists at `path`.
    pub(crate) fn exists(path: &Path) -> bool {
        path.exists()
    }

    /// Opens and decrypts the keystore at `path` (slow: derives the key).
    pub(crate) fn open<T: DeserializeOwned>(
        path: &Path,
        passphrase: &str,
    ) -> Result<(Self, T), KeystoreError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeystoreError::Missing(path.to_owned()));
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        let file =
            File::parse(&bytes).ok_or_else(|| KeystoreError::NotAKeystore(path.to_owned()))?;
        let (rounds, salt) = (file.rounds, file.salt);
        let key = derive(passphrase, &salt, rounds);
        let state = file.decrypt(&key)?;
        Ok((
            Self {
                path: path.to_owned(),
                rounds,
                salt,
                key,
            },
            state,
        ))
    }

    /// Reads the file again with the key already derived (fast): what another `sealroom`
    /// process saved since. A file whose salt or round count changed is not ours to read.
    pub(crate) fn reload<T: DeserializeOwned>(&self) -> Result<T, KeystoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeystoreError::Missing(self.path.clone()));
            }
            Err(e) => return Err(io_err(&self.path)(e)),
        };
        let file =
            File::parse(&bytes).ok_or_else(|| KeystoreError::NotAKeystore(self.path.clone()))?;
        if file.rounds != self.rounds || file.salt != self.salt {
            return Err(KeystoreError::WrongPassphrase);
        }
        file.decrypt(&self.key)
    }

    /// Encrypts `state` and replaces the file atomically (temp file, fsync, rename, fsync dir).
    pub(crate) fn save<T: Serialize>(&self, state: &T) -> Result<(), KeystoreError> {
        let mut plain = Zeroizing::new(
            serde_json::to_vec(state).map_err(|e| KeystoreError::Damaged(e.to_string()))?,
        );
        let mut nonce = [0u8; NONCE_LEN];
        crate::rng::os().fill_bytes(&mut nonce);
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.push(VERSION);
        header.extend_from_slice(&self.rounds.to_be_bytes());
        header.extend_from_slice(&self.salt);
        header.extend_from_slice(&nonce);
        let tag = seal_in_place(&self.key, &nonce, &header, plain.as_mut_slice());
        let mut out = header;
        out.extend_from_slice(&plain);
        out.extend_from_slice(&tag);
        write_atomic(&self.path, &out)
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, mode 0600: a
/// temporary file in the same folder (tempfile), synced, persisted over `path`, folder synced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    // Private before the first byte is written, whatever the library's default mode.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io_err(tmp.path()))?;
    tmp.write_all(bytes).map_err(io_err(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct State {
        secret: String,
        n: u32,
    }

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn round_trip_and_wrong_passphrase_changes_nothing() {
        let dir = tmp();
        let path = dir.path().join("ks");
        let ks = Keystore::create(&path, "right horse", MIN_ROUNDS);
        let state = State {
            secret: "identity-secret-bytes".into(),
            n: 7,
        };
        ks.save(&state).unwrap();
        let on_disk = fs::read(&path).unwrap();
        assert!(
            !on_disk.windows(21).any(|w| w == b"identity-secret-bytes"),
            "plaintext on disk"
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let (_, back): (_, State) = Keystore::open(&path, "right horse").unwrap();
        assert_eq!(back, state);
        let err = Keystore::open::<State>(&path, "wrong horse").unwrap_err();
        assert!(matches!(err, KeystoreError::WrongPassphrase), "{err}");
        assert_eq!(
            fs::read(&path).unwrap(),
            on_disk,
            "a failed open must not touch the file"
        );
    }

    #[test]
    fn reload_reads_what_another_handle_saved() {
        let dir = tmp();
        let path = dir.path().join("ks");
        let one = Keystore::create(&path, "right horse", MIN_ROUNDS);
        one.save(&State {
            secret: "a".into(),
            n: 1,
        })
        .unwrap();
        let (two, _): (_, State) = Keystore::open(&path, "right horse").unwrap();
        two.save(&State {
            secret: "b".into(),
            n: 2,
        })
        .unwrap();
        let back: State = one.reload().unwrap();
        assert_eq!(
            back,
            State {
                secret: "b".into(),
                n: 2
            }
        );
        // A keystore made anew (another salt) is refused, never misread.
        Keystore::create(&path, "right horse", MIN_ROUNDS)
            .save(&State {
                secret: "c".into(),
                n: 3,
            })
            .unwrap();
        assert!(one.reload::<State>().is_err());
    }

    #[test]
    fn tampering_is_detected() {
        let dir = tmp();
        let path = dir.path().join("ks");
        Keystore::create(&path, "pw", MIN_ROUNDS)
            .save(&State {
                secret: "s".into(),
                n: 1,
            })
            .unwrap();
        let good = fs::read(&path).unwrap();
        for i in [5, 9, HEADER_LEN, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 1;
            fs::write(&path, &bad).unwrap();
            assert!(
                Keystore::open::<State>(&path, "pw").is_err(),
                "flip at {i} accepted"
            );
        }
        fs::write(&path, b"SRKS").unwrap();
        assert!(matches!(
            Keystore::open::<State>(&path, "pw"),
            Err(KeystoreError::NotAKeystore(_))
        ));
        fs::remove_file(&path).unwrap();
        assert!(matches!(
            Keystore::open::<State>(&path, "pw"),
            Err(KeystoreError::Missing(_))
        ));
    }

    #[test]
    fn key_is_redacted_in_debug() {
        let dir = tmp();
        let ks = Keystore::create(&dir.path().join("ks"), "pw", MIN_ROUNDS);
        let shown = format!("{ks:?}");
        assert!(shown.contains("[redacted]"));
        assert!(!shown.contains(&format!("{:?}", ks.key.as_ref())));
    }
}

//! An account's folder: where its files live (`--home`, `$SEALROOM_HOME`, the XDG data
//! folder) and its lock, which one `sealroom` process holds while it reads and writes the
//! keystore. Commands wait for the lock (bounded) instead of failing, so several terminals can
//! use one account; a running `chat` takes it only while it handles something
//! (`Client::hold` / `Client::release`).

use core::time::Duration;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::exit::{Exit, fail};
use crate::keystore::Keystore;
use crate::terminal;

/// Where an account's files live.
#[derive(Clone, Debug)]
pub(crate) struct Home {
    /// The folder.
    pub(crate) dir: PathBuf,
}

impl Home {
    /// `--home`, else `$SEALROOM_HOME`, else `sealroom` in the user's data folder: on Linux
    /// `$XDG_DATA_HOME/sealroom`, else `~/.local/share/sealroom` (the `directories` crate).
    pub(crate) fn resolve(flag: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(d) = flag {
            return Ok(Self { dir: d.to_owned() });
        }
        if let Some(d) = std::env::var_os("SEALROOM_HOME").filter(|v| !v.is_empty()) {
            return Ok(Self {
                dir: PathBuf::from(d),
            });
        }
        match directories::BaseDirs::new() {
            Some(base) => Ok(Self {
                dir: base.data_dir().join("sealroom"),
            }),
            None => fail(
                Exit::Failure,
                "cannot find a data folder: set HOME or pass --home DIR",
            ),
        }
    }

    /// The keystore file.
    pub(crate) fn keystore(&self) -> PathBuf {
        self.dir.join("keystore")
    }

    /// The known-servers file.
    pub(crate) fn known_servers(&self) -> PathBuf {
        self.dir.join("known_servers")
    }

    /// Takes the lock of a folder that must not hold a keystore yet (a new account or device);
    /// `taken` ends the refusal: "DIR already holds {taken}".
    pub(crate) fn lock_empty(&self, taken: &str) -> anyhow::Result<File> {
        if Keystore::exists(&self.keystore()) {
            return fail(
                Exit::Keystore,
                format!("{} already holds {taken}", self.dir.display()),
            );
        }
        self.lock()
    }

    /// Takes the folder's lock, waiting (at most [`LOCK_WAIT`]) while another `sealroom`
    /// process holds it. A running `chat` holds it only while it handles an event, so a
    /// command from another terminal waits a moment at most.
    pub(crate) fn lock(&self) -> anyhow::Result<File> {
        let started = Instant::now();
        let deadline = started + LOCK_WAIT;
        let mut told = false;
        // Bounded by the deadline.
        loop {
            if let Some(f) = self.try_lock()? {
                return Ok(f);
            }
            if Instant::now() >= deadline {
                return fail(
                    Exit::Failure,
                    format!(
                        "another sealroom kept {} busy for {} s; try again when it is done",
                        self.dir.display(),
                        LOCK_WAIT.as_secs()
                    ),
                );
            }
            // A chat holds the lock for a moment at a time: say so only when it lasts.
            if !told && started.elapsed() >= LOCK_NOTE_AFTER {
                terminal::note(&format!(
                    "waiting for another sealroom using {}…",
                    self.dir.display()
                ));
                told = true;
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    /// Takes the folder's lock if it is free now.
    pub(crate) fn try_lock(&self) -> anyhow::Result<Option<File>> {
        std::fs::create_dir_all(&self.dir)?;
        let _ = std::fs::set_permissions(
            &self.dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        );
        let path = self.dir.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(anyhow::anyhow!("cannot lock {}: {e}", path.display()))
            }
        }
    }

    /// Takes the lock without blocking the executor (for a running `chat`).
    pub(crate) async fn lock_async(&self) -> anyhow::Result<File> {
        let deadline = Instant::now() + LOCK_WAIT;
        // Bounded by the deadline.
        loop {
            if let Some(f) = self.try_lock()? {
                return Ok(f);
            }
            if Instant::now() >= deadline {
                return fail(
                    Exit::Failure,
                    format!(
                        "another sealroom kept {} busy for {} s",
                        self.dir.display(),
                        LOCK_WAIT.as_secs()
                    ),
                );
            }
            smol::Timer::after(LOCK_POLL).await;
        }
    }
}

/// The longest a command waits for another `sealroom` process to let go of the keystore.
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// How long a wait for the lock goes unmentioned.
const LOCK_NOTE_AFTER: Duration = Duration::from_secs(1);
/// How often the lock is tried while waiting.
const LOCK_POLL: Duration = Duration::from_millis(50);

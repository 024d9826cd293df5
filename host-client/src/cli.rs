//! The command line: one clap derive. Each subcommand's `--help` ends with examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use proto_core::names;

const SCRIPTING: &str = "\
Scripting: no command needs a terminal. The keystore passphrase comes from $SEALROOM_PASSPHRASE,
the account password from $SEALROOM_PASSWORD; otherwise each is read from a hidden prompt on a
terminal, or as the next line of stdin. TOTP codes come from --code, else a prompt or stdin.

Exit codes: 0 ok · 1 other failure · 2 bad command line · 3 keystore (missing, wrong passphrase)
· 4 not logged in / login failed · 5 network or TLS · 6 server certificate changed
· 7 contact's identity key changed (sending blocked) · 8 server refused (no such user/room, …)

Files: the keystore (encrypted, mode 0600) and known_servers live in --home DIR, else
$SEALROOM_HOME, else $XDG_DATA_HOME/sealroom, else ~/.local/share/sealroom.
Colour is off when NO_COLOR is set or output is not a terminal.";

/// Sealroom: end-to-end encrypted chat. Keys are made and kept on this device.
#[derive(Debug, Parser)]
#[command(name = "sealroom", version, about, after_help = SCRIPTING)]
pub(crate) struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub(crate) global: Global,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub(crate) struct Global {
    /// Folder holding the keystore and known servers (one account per folder).
    #[arg(long, global = true, env = "SEALROOM_HOME")]
    pub(crate) home: Option<PathBuf>,
    /// Trust the server's certificate through this CA (PEM) instead of pinning it on first use.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// On first contact, accept only a server with this key pin (`sha256/…`) or certificate
    /// fingerprint (`AA:BB:…`), as the server prints them, instead of trusting whatever answers.
    #[arg(long, global = true, value_name = "PIN")]
    pub(crate) fingerprint: Option<String>,
    /// Machine-readable output (register, inbox, status, send, verify, rooms
    /// list/members/invitations).
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create an account; keys are generated on this device.
    #[command(after_help = "\
Examples:
  sealroom register --server chat.example.org:8443
  SEALROOM_PASSWORD=… SEALROOM_PASSPHRASE=… sealroom --home /tmp/a register \\
      --server localhost:8443 --name Alice --email a@example.org --username alice --json
With --json, a line {\"event\":\"totp_enrollment\",\"otpauth_uri\":…} comes first; the code is then
read from --code or stdin; the last line holds the recovery codes.")]
    Register(Register),
    /// Log in again (password + TOTP); keeps the keys. Also sets up a new device.
    #[command(after_help = "\
Examples:
  sealroom login
  sealroom login --code 123456
  sealroom login --recovery-code abcd-efgh-ijkl
  sealroom --home ~/newlaptop login --new-device --server chat.example.org:8443 --username alice
A new device makes new identity keys: your contacts will be warned that your key changed.")]
    Login(Login),
    /// Log out: the server forgets this session. Keys stay in the keystore.
    #[command(after_help = "Example:\n  sealroom logout")]
    Logout,
    /// Chat live with a user (@name) or a room (#room).
    #[command(after_help = "\
Examples:
  sealroom chat @bob
  sealroom chat '#team'       # quote it: # starts a comment in the shell
In the chat: type and press Enter to send. /quit leaves, /verify shows the safety number,
/members lists the room, /invite @user invites someone to the room, /accept #room and
/decline #room answer an invitation, /invitations lists them, /help lists these.")]
    Chat {
        /// `@user` or `#room`.
        target: String,
    },
    /// Send one message and exit.
    #[command(after_help = "\
Examples:
  sealroom send @bob 'see you at 6'
  echo 'build is green' | sealroom send '#team' -
  sealroom send @bob hi --wait 10     # also wait up to 10 s for \"delivered\"")]
    Send {
        /// `@user` or `#room`.
        target: String,
        /// The text; `-` reads it from stdin (after any secrets read from stdin).
        text: String,
        /// Seconds to wait for the "delivered" receipt.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Fetch and print waiting messages (and delivery receipts).
    #[command(after_help = "\
Examples:
  sealroom inbox
  sealroom inbox --json
  sealroom inbox --all              # the whole recent history, not only unread")]
    Inbox {
        /// Show the whole recent history, not only what is new.
        #[arg(long)]
        all: bool,
        /// Most seconds to wait for messages to arrive.
        #[arg(long, default_value_t = 5)]
        wait: u64,
    },
    /// Create, join and manage rooms.
    #[command(subcommand)]
    Rooms(RoomsCommand),
    /// Show the safety number with a contact; --confirm marks them verified.
    #[command(after_help = "\
Examples:
  sealroom verify @bob              # compare the 60 digits (or scan the QR code) with Bob
  sealroom verify @bob --confirm    # they match: mark Bob verified (and unblock after a key change)")]
    Verify {
        /// `@user`.
        user: String,
        /// The numbers match: mark the contact verified.
        #[arg(long)]
        confirm: bool,
    },
    /// Refresh the signed prekey and refill one-time prekeys.
    #[command(after_help = "Example:\n  sealroom keys")]
    Keys,
    /// Show the account, server, contacts and rooms.
    #[command(after_help = "Examples:\n  sealroom status\n  sealroom status --json")]
    Status {
        /// Do not contact the server.
        #[arg(long)]
        offline: bool,
    },
}

/// `register` options; anything missing is asked for.
#[derive(Debug, Args)]
pub(crate) struct Register {
    /// Server `host:port`.
    #[arg(long, env = "SEALROOM_SERVER", default_value = "localhost:8443")]
    pub(crate) server: String,
    /// Your name, shown to contacts.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Email address.
    #[arg(long)]
    pub(crate) email: Option<String>,
    /// Username: 3 to 32 of a-z, 0-9 and _.
    #[arg(long)]
    pub(crate) username: Option<String>,
    /// The TOTP code (else asked after the QR code is shown).
    #[arg(long)]
    pub(crate) code: Option<String>,
    /// PBKDF2 rounds for the keystore (tests only).
    #[arg(long, env = "SEALROOM_KDF_ROUNDS", default_value_t = crate::keystore::DEFAULT_ROUNDS, hide = true)]
    pub(crate) kdf_rounds: u32,
}

/// `login` options.
#[derive(Debug, Args)]
pub(crate) struct Login {
    /// The TOTP code (else asked).
    #[arg(long)]
    pub(crate) code: Option<String>,
    /// Use a one-time recovery code instead of TOTP.
    #[arg(long, conflicts_with = "code")]
    pub(crate) recovery_code: Option<String>,
    /// Set up this folder as a new device for an existing account (new identity keys).
    #[arg(long, requires = "username")]
    pub(crate) new_device: bool,
    /// Server `host:port` (with --new-device).
    #[arg(long, env = "SEALROOM_SERVER", default_value = "localhost:8443")]
    pub(crate) server: String,
    /// Username (with --new-device).
    #[arg(long)]
    pub(crate) username: Option<String>,
    /// PBKDF2 rounds for a new keystore (tests only).
    #[arg(long, env = "SEALROOM_KDF_ROUNDS", default_value_t = crate::keystore::DEFAULT_ROUNDS, hide = true)]
    pub(crate) kdf_rounds: u32,
}

/// `rooms` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RoomsCommand {
    /// Create a room (you are its admin).
    #[command(after_help = "Example:\n  sealroom rooms create team")]
    Create {
        /// Room name: 1 to 32 of a-z, 0-9, _ and -.
        room: String,
    },
    /// Invite a user to a room; they join (and get the room key) when they accept.
    #[command(after_help = "Example:\n  sealroom rooms invite team @bob")]
    Invite {
        /// The room.
        room: String,
        /// `@user`.
        user: String,
    },
    /// List the invitations waiting for you: the room and who invited you.
    #[command(
        after_help = "Examples:\n  sealroom rooms invitations\n  sealroom rooms invitations --json"
    )]
    Invitations,
    /// Accept an invitation: you become a member and read what is sent from then on.
    #[command(
        after_help = "Examples:\n  sealroom rooms accept team\n  sealroom rooms accept '#team'"
    )]
    Accept {
        /// The room (`room` or `#room`).
        room: String,
    },
    /// Decline an invitation (nobody is told).
    #[command(after_help = "Example:\n  sealroom rooms decline team")]
    Decline {
        /// The room (`room` or `#room`).
        room: String,
    },
    /// Leave a room; the others switch to a new key.
    #[command(after_help = "Example:\n  sealroom rooms leave team")]
    Leave {
        /// The room.
        room: String,
    },
    /// Remove a member (admin only); the others switch to a new key.
    #[command(after_help = "Example:\n  sealroom rooms remove team @mallory")]
    Remove {
        /// The room.
        room: String,
        /// `@user`.
        user: String,
    },
    /// List your rooms.
    #[command(after_help = "Example:\n  sealroom rooms list")]
    List,
    /// List a room's members.
    #[command(after_help = "Example:\n  sealroom rooms members team")]
    Members {
        /// The room.
        room: String,
    },
}

/// A chat or send target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A user.
    User(String),
    /// A room.
    Room(String),
}

impl Target {
    /// Parses `@user` or `#room` (a bare name is a user), each checked against its grammar
    /// (the username folded to lower case).
    pub(crate) fn parse(s: &str) -> anyhow::Result<Self> {
        if s.starts_with('#') {
            return Ok(Self::Room(room_arg(s)?.to_owned()));
        }
        user_name(s)
            .map(Self::User)
            .map_err(|e| anyhow::anyhow!("{e} (give `@user` or `#room`)"))
    }
}

/// `@user` or `user` → the username, trimmed and folded to lower case; fails with the grammar
/// (docs/PROTOCOL.md §3.5) when it is not one.
pub(crate) fn user_name(s: &str) -> anyhow::Result<String> {
    let raw = s.strip_prefix('@').unwrap_or(s);
    let mut folded = [0u8; names::USERNAME_MAX_LEN];
    match names::fold_username(raw, &mut folded) {
        Ok(name) => Ok(name.to_owned()),
        Err(e) => anyhow::bail!("`{s}`: {e}"),
    }
}

/// `#room` or `room` → `room`; fails with the grammar (docs/PROTOCOL.md §3.5) when it is not
/// a room name.
pub(crate) fn room_arg(s: &str) -> anyhow::Result<&str> {
    let name = crate::rooms::room_name(s);
    match names::check_room_name(name) {
        Ok(()) => Ok(name),
        Err(e) => anyhow::bail!("`{s}`: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(Target::parse("@Bob").unwrap(), Target::User("bob".into()));
        assert_eq!(Target::parse("bob").unwrap(), Target::User("bob".into()));
        assert_eq!(Target::parse("#team").unwrap(), Target::Room("team".into()));
        assert!(Target::parse("#").is_err());
        assert!(Target::parse("@").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}

//! The command line: one clap derive. Each subcommand's `--help` ends with examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use proto_core::names;

use crate::exit::{Exit, fail};

const SCRIPTING: &str = "\
Scripting: no command needs a terminal. The keystore passphrase comes from $SEALROOM_PASSPHRASE,
the account password from $SEALROOM_PASSWORD; otherwise each is read from a hidden prompt on a
terminal, or as the next line of stdin. TOTP codes come from --code, else a prompt or stdin.

With --json every command prints one JSON line (ids as strings); a failure is
{\"error\": …, \"exit_code\": …}.

Exit codes: 0 ok · 1 other failure · 2 bad input (command line, malformed name, weak password
or passphrase) · 3 keystore (missing, wrong or no passphrase) · 4 not logged in / login failed
· 5 network or TLS · 6 server certificate changed (`sealroom servers trust`) · 7 contact's
identity key changed (sending blocked; also `verify --confirm NUMBER` with a number that is no
longer the current one) · 8 server refused (no such user/room, not allowed, …)

Several terminals may use one account at once: `chat` holds the keystore only while it handles
something, so `send`, `inbox`, `rooms …` from another terminal work while it is open.

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
    /// Machine-readable output: one JSON line per result (every command), errors included
    /// (`{"error": …, "exit_code": …}`); ids are strings.
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
    /// Set up this folder as another device of an existing account (same identity): shows a
    /// link code to add from a device already in the account.
    #[command(after_help = "\
Examples:
  sealroom --home ~/laptop link --server chat.example.org:8443 --username alice
  sealroom --home ~/laptop link --username alice --device-name 'work laptop' --code 123456
Logs in with the password and a code, shows a link code (text and QR), and waits up to 10
minutes while you run `sealroom devices add CODE` on a device already in the account (or, in
the browser, Settings → Link a device). Contacts keep your safety number; messages to you
reach every device from then on.")]
    Link(Link),
    /// Log out: the server forgets this session. Keys stay in the keystore.
    #[command(after_help = "Example:\n  sealroom logout")]
    Logout,
    /// Chat live with a user (@name) or a room (#room).
    #[command(after_help = "\
Examples:
  sealroom chat @bob
  sealroom chat '#team'       # quote it: # starts a comment in the shell
In the chat: type and press Enter to send. /quit leaves, /verify shows the safety number,
/members lists the room, /invite @user invites someone to the room, /remove @user removes a
member (admin), /leave leaves the room, /accept #room and /decline #room answer an
invitation, /invitations lists them, /help lists these. While offline, lines wait in an
outbox (kept in the keystore) and go once reconnected; Enter retries at once.")]
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
    /// Show the safety number with a contact; --confirm NUMBER marks them verified.
    #[command(after_help = "\
Examples:
  sealroom verify @bob              # compare the 60 digits (or scan the QR code) with Bob
  sealroom verify @bob --confirm '04514 27944 75395 80952 05578 69466 42446 96548 72505 75270 82744 74761'
                                    # they match: mark Bob verified (and unblock after a key change)
  sealroom verify @bob --confirm    # on a terminal: show the number, then ask whether it matches
The number confirmed must be the current one: if Bob's key changed since you compared (a message
from a new key arrived meanwhile), nothing is marked and the exit code is 7; compare again.
Room keys and room messages held while Bob's key was unverified are processed once confirmed.")]
    Verify {
        /// `@user`.
        user: String,
        /// The numbers match: mark the contact verified. NUMBER is the safety number you
        /// compared (60 digits, spaces allowed); without it, a terminal shows the number and
        /// asks, and a script gets an error (pass the number).
        #[arg(long, num_args = 0.., value_name = "NUMBER")]
        confirm: Option<Vec<String>>,
    },
    /// Refresh the signed prekey and refill one-time prekeys.
    #[command(after_help = "Example:\n  sealroom keys")]
    Keys,
    /// Change the password, enroll a new authenticator, new recovery codes, delete the account.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Pinned servers; re-trust one whose key changed (`servers trust HOST --fingerprint PIN`).
    #[command(subcommand)]
    Servers(ServersCommand),
    /// This account's devices: list (name, added, last seen, revoked), add one being linked,
    /// revoke one, rename this one.
    #[command(after_help = "\
Examples:
  sealroom devices
  sealroom devices --json
  sealroom devices add 'AEFH-2KQ4-…'    # the code `sealroom link` (or the browser) shows
  sealroom devices revoke 3
  sealroom devices rename 'work laptop'
A device names itself at register, link or login --new-device (--device-name, default: the host
name). Revoking logs that device out at once and deletes its keys and waiting messages.
Starting over (login --new-device) revokes every earlier device; they stay listed.")]
    Devices {
        /// `rename NAME`; without it, the list.
        #[command(subcommand)]
        command: Option<DevicesCommand>,
    },
    /// Show the account, server, contacts and rooms.
    #[command(after_help = "Examples:\n  sealroom status\n  sealroom status --json")]
    Status {
        /// Do not contact the server.
        #[arg(long)]
        offline: bool,
    },
}

/// The second factor an account change needs: a TOTP code or a recovery code (else asked).
#[derive(Debug, Args, Clone)]
pub(crate) struct Factor {
    /// A TOTP code from the authenticator.
    #[arg(long)]
    pub(crate) code: Option<String>,
    /// A one-time recovery code instead (the authenticator is lost).
    #[arg(long, conflicts_with = "code")]
    pub(crate) recovery_code: Option<String>,
}

/// `devices` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DevicesCommand {
    /// Rename this device (1 to 64 characters).
    Rename {
        /// The new name.
        name: String,
    },
    /// Give a device being linked (`sealroom link`, or a browser) this account: its identity
    /// and contacts, sealed to the code it shows.
    Add {
        /// The link code the new device shows (spaces and dashes ignored).
        code: String,
    },
    /// Revoke one of the account's other devices (its id from `sealroom devices`).
    Revoke {
        /// The device id.
        id: u32,
    },
}

/// `account` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Change the account password (current password + a code); other sessions are logged out.
    #[command(after_help = "\
Examples:
  sealroom account password
  SEALROOM_PASSWORD=old SEALROOM_NEW_PASSWORD=new sealroom account password --code 123456")]
    Password(Factor),
    /// Enroll a new authenticator (password + a code from the old one, or a recovery code).
    #[command(after_help = "\
Examples:
  sealroom account totp
  sealroom account totp --recovery-code abcd-efgh-ijkl-mnop   # the old phone is lost
The new secret is shown as a QR code; it replaces the old one once a code from it is entered.")]
    Totp(TotpArgs),
    /// Replace the recovery codes with new ones (password + a code); the old ones stop working.
    #[command(after_help = "Example:\n  sealroom account recovery-codes --code 123456")]
    RecoveryCodes(Factor),
    /// Delete the account on the server (queues, keys, room memberships) and this keystore.
    #[command(after_help = "\
Example:
  sealroom account delete --code 123456 --yes
Without --yes, a terminal asks you to type the username. This cannot be undone.")]
    Delete {
        /// The second factor.
        #[command(flatten)]
        factor: Factor,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `account totp` options.
#[derive(Debug, Args, Clone)]
pub(crate) struct TotpArgs {
    /// The second factor for the change.
    #[command(flatten)]
    pub(crate) factor: Factor,
    /// A code from the NEW authenticator (else asked after the QR code).
    #[arg(long)]
    pub(crate) new_code: Option<String>,
}

/// `servers` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ServersCommand {
    /// List the servers whose key is pinned (known_servers).
    #[command(after_help = "Examples:\n  sealroom servers list\n  sealroom servers list --json")]
    List,
    /// Re-trust a server whose key changed legitimately: it must present the pin you give.
    #[command(after_help = "\
Example:
  sealroom servers trust chat.example.org:8443 --fingerprint sha256/…
Ask the server's operator for the new pin (the \"key (SPKI) SHA-256 pin\" line sealroom-server
prints) over a channel you trust. The old and the new pin are shown; nothing changes unless the
server presents exactly the one given.")]
    Trust {
        /// Server `host:port`, as in `sealroom status`.
        server: String,
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
    /// This device's name in `sealroom devices` (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub(crate) device_name: Option<String>,
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
    /// This device's name in `sealroom devices` (with --new-device; default: the host name).
    #[arg(long, value_name = "NAME", requires = "new_device")]
    pub(crate) device_name: Option<String>,
    /// PBKDF2 rounds for a new keystore (tests only).
    #[arg(long, env = "SEALROOM_KDF_ROUNDS", default_value_t = crate::keystore::DEFAULT_ROUNDS, hide = true)]
    pub(crate) kdf_rounds: u32,
}

/// `link` options.
#[derive(Debug, Args)]
pub(crate) struct Link {
    /// Server `host:port`.
    #[arg(long, env = "SEALROOM_SERVER", default_value = "localhost:8443")]
    pub(crate) server: String,
    /// The account's username.
    #[arg(long)]
    pub(crate) username: String,
    /// The TOTP code (else asked).
    #[arg(long)]
    pub(crate) code: Option<String>,
    /// Use a one-time recovery code instead of TOTP.
    #[arg(long, conflicts_with = "code")]
    pub(crate) recovery_code: Option<String>,
    /// This device's name in `sealroom devices` (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub(crate) device_name: Option<String>,
    /// PBKDF2 rounds for the new keystore (tests only).
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
        user_name(s).map(Self::User).map_err(|e| {
            crate::exit::Failure::new(Exit::Usage, format!("{e} (give `@user` or `#room`)")).into()
        })
    }
}

/// `@user` or `user` → the username, trimmed and folded to lower case; fails with the grammar
/// (docs/PROTOCOL.md §3.5) when it is not one.
pub(crate) fn user_name(s: &str) -> anyhow::Result<String> {
    let raw = s.strip_prefix('@').unwrap_or(s);
    let mut folded = [0u8; names::USERNAME_MAX_LEN];
    match names::fold_username(raw, &mut folded) {
        Ok(name) => Ok(name.to_owned()),
        Err(e) => fail(Exit::Usage, format!("`{s}`: {e}")),
    }
}

/// `#room` or `room` → `room`; fails with the grammar (docs/PROTOCOL.md §3.5) when it is not
/// a room name.
pub(crate) fn room_arg(s: &str) -> anyhow::Result<&str> {
    let name = crate::rooms::room_name(s);
    match names::check_room_name(name) {
        Ok(()) => Ok(name),
        Err(e) => fail(Exit::Usage, format!("`{s}`: {e}")),
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

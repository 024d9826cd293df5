//! `sealroom`: the command-line client. Keys are generated and kept on the device.
//!
//! Only the command surface exists so far; each subcommand arrives with the CLI issue.

use clap::{Parser, Subcommand};

/// Sealroom's command-line client: end-to-end encrypted chat, keys kept on this device.
#[derive(Debug, Parser)]
#[command(name = "sealroom", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an account on a server; keys are made on this device.
    Register,
    /// Log in with password and TOTP.
    Login,
    /// Chat with a user (`@name`) or a room (`#room`).
    Chat {
        /// `@user` or `#room`.
        target: String,
    },
    /// Compare safety numbers with a contact.
    Verify {
        /// `@user`.
        user: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::bail!(
        "`{:?}` is not available yet: the client arrives with the CLI issue",
        cli.command
    )
}

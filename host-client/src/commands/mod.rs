//! One file per subcommand; `run` dispatches.

mod account;
mod chat;
mod inbox;
mod keys;
mod login;
mod outbox;
mod register;
mod rooms;
mod send;
mod servers;
mod status;
mod verify;

use crate::cli::{Cli, Command, ServersCommand};

/// Runs the command.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Register(args) => register::run(g, args).await,
        Command::Login(args) => login::run(g, args).await,
        Command::Logout => login::logout(g).await,
        Command::Chat { target } => chat::run(g, &target).await,
        Command::Send { target, text, wait } => send::run(g, &target, &text, wait).await,
        Command::Inbox { all, wait } => inbox::run(g, all, wait).await,
        Command::Rooms(cmd) => rooms::run(g, cmd).await,
        Command::Verify { user, confirm } => verify::run(g, &user, confirm).await,
        Command::Keys => keys::run(g).await,
        Command::Status { offline } => status::run(g, offline).await,
        Command::Account(cmd) => account::run(g, cmd).await,
        Command::Servers(ServersCommand::List) => servers::list(g),
        Command::Servers(ServersCommand::Trust { server }) => servers::trust(g, &server).await,
    }
}

//! One file per subcommand; `run` dispatches.

mod account;
mod chat;
mod devices;
mod inbox;
mod keys;
mod link;
mod login;
mod outbox;
mod register;
mod rooms;
mod send;
mod servers;
mod status;
mod verify;

use crate::cli::{Cli, Command, DevicesCommand, ServersCommand};

/// Runs the command.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Register(args) => register::run(g, args).await,
        Command::Login(args) => login::run(g, args).await,
        Command::Link(args) => link::run(g, args).await,
        Command::Logout => login::logout(g).await,
        Command::Chat { target } => chat::run(g, &target).await,
        Command::Send { target, text, wait } => send::run(g, &target, &text, wait).await,
        Command::Inbox { all, wait } => inbox::run(g, all, wait).await,
        Command::Rooms(cmd) => rooms::run(g, cmd).await,
        Command::Verify { user, confirm } => verify::run(g, &user, confirm).await,
        Command::Keys => keys::run(g).await,
        Command::Devices { command: None } => devices::run(g).await,
        Command::Devices {
            command: Some(DevicesCommand::Rename { name }),
        } => devices::rename(g, &name).await,
        Command::Devices {
            command: Some(DevicesCommand::Add { code }),
        } => devices::add(g, &code).await,
        Command::Devices {
            command: Some(DevicesCommand::Revoke { id }),
        } => devices::revoke(g, id).await,
        Command::Status { offline } => status::run(g, offline).await,
        Command::Account(cmd) => account::run(g, cmd).await,
        Command::Servers(ServersCommand::List) => servers::list(g),
        Command::Servers(ServersCommand::Trust { server }) => servers::trust(g, &server).await,
    }
}

/// Shows the authenticator enrollment the server sent (registration, a new authenticator):
/// JSON, or `heading`, a QR code of the `otpauth://` URI and its secret. The server's text is
/// shown inert (it cannot drive the terminal).
fn show_totp_enrollment(json: bool, uri: &str, heading: &str) {
    use crate::terminal::{Style, outln, paint};
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap_or("");
    if json {
        outln!(
            "{}",
            serde_json::json!({"event": "totp_enrollment", "otpauth_uri": uri, "secret": secret})
        );
    } else {
        outln!("{heading}");
        outln!("{}", crate::terminal::qr(uri));
        outln!(
            "or enter the secret by hand: {}",
            paint(Style::Bold, &crate::inert::line(secret))
        );
    }
}

/// Prints recovery codes from the server, one per line, inert.
fn show_recovery_codes(codes: &[String]) {
    for c in codes {
        crate::terminal::outln!("  {}", crate::inert::line(c));
    }
}

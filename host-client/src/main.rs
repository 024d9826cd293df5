//! `sealroom`: the command-line client. Keys are generated and kept on the device.
//!
//! A tour: [`cli`] is the command line; `commands/` has one file per subcommand; [`client`]
//! unlocks the keystore, connects ([`link`], pinned via [`known_servers`]) and handles what the
//! server sends; [`direct`] and [`rooms`] hold the one-to-one and room crypto flows over
//! proto-core; [`profile`] is what the [`keystore`] keeps; [`terminal`] talks to the person;
//! [`exit`] lists the exit codes.

mod cli;
mod client;
mod commands;
mod direct;
mod exit;
mod keystore;
mod known_servers;
mod link;
mod profile;
mod rng;
mod rooms;
mod terminal;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let result = smol::block_on(commands::run(cli));
    if let Err(e) = result {
        let code = exit::code_of(&e);
        let text = format!("sealroom: {e:#}");
        terminal::warn(&text);
        std::process::exit(code);
    }
}

//! `sealroom`: the command-line client (this library is the whole program; `main.rs` calls
//! [`main`]). Keys are generated and kept on the device.
//!
//! A tour: [`cli`] is the command line; `commands/` has one file per subcommand; [`client`]
//! unlocks the keystore (in the account's [`home`] folder, under its lock), connects
//! ([`link`], pinned via [`known_servers`]) and handles what the server sends; [`direct`] and [`rooms`] hold the one-to-one and room crypto flows over
//! proto-core, and [`held`] keeps room traffic from a contact whose key changed until it is
//! verified; [`profile`] is what the [`keystore`] keeps; [`terminal`] talks to the person;
//! [`exit`] lists the exit codes.
//!
//! [`fuzzing`] exposes the decoders of files the client reads back (the keystore) to the
//! fuzz targets in `fuzz/`; nothing else is public.

mod cli;
mod client;
mod commands;
mod direct;
mod exit;
mod held;
mod home;
mod inert;
mod keystore;
mod known_servers;
mod link;
mod link_state;
mod membership;
mod profile;
mod rng;
mod rooms;
mod terminal;

#[doc(hidden)]
pub mod fuzzing;

use clap::Parser;

/// Runs `sealroom` with the process's arguments and exits with the code of [`exit`].
///
/// With `--json`, a failure is one JSON line on stdout too (`{"error": …, "exit_code": …}`),
/// including a bad command line, so a script reads one stream; the text still goes to stderr.
pub fn main() {
    let json = std::env::args_os().skip(1).any(|a| a == "--json");
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if json && e.use_stderr() {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("bad command line");
                terminal::json_error(first.trim_start_matches("error: "), e.exit_code());
            }
            e.exit()
        }
    };
    let result = smol::block_on(commands::run(cli));
    if let Err(e) = result {
        let code = exit::code_of(&e);
        if json {
            terminal::json_error(&format!("{e:#}"), code);
        }
        let text = format!("sealroom: {e:#}");
        terminal::warn(&text);
        std::process::exit(code);
    }
}

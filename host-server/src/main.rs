//! `sealroom-server`: relays and stores only ciphertext for Sealroom clients.
//!
//! This binary parses its configuration and reports it; accounts, TLS, storage and delivery
//! arrive with their own issue (see the README's status section).

use clap::Parser;

/// Sealroom's server: accounts with TOTP MFA, a key directory and store-and-forward of ciphertext.
#[derive(Debug, Parser)]
#[command(name = "sealroom-server", version, about)]
struct Args {
    /// Address to listen on (TLS 1.3 for native clients, HTTPS + WebSocket for browsers).
    #[arg(long, env = "SEALROOM_LISTEN", default_value = "127.0.0.1:8443")]
    listen: std::net::SocketAddr,
    /// Folder for the SQLite database and the self-signed certificate.
    #[arg(long, env = "SEALROOM_DATA_DIR", default_value = "./sealroom-data")]
    data_dir: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::bail!(
        "sealroom-server is not serving yet: listening on {} with data in {} arrives with the \
         server issue; only the protocol core is built so far",
        args.listen,
        args.data_dir.display()
    )
}

//! The real `sealroom-server` binary as a child process, for tests that kill it.

use core::net::SocketAddr;
use std::io::BufRead as _;
use std::path::Path;

use host_server::auth::totp;
use host_server::client::Client;
use proto_core::Message;

use super::{Device, PASSWORD, TestDatabase, recv, register_msg};

/// A `sealroom-server` process (killed and reaped when dropped).
pub struct Proc {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub fingerprint: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real binary on `dir` (and `database`, if given) with cheap password hashing,
/// and reads its address and certificate fingerprint from its banner.
pub fn spawn_server(dir: &Path, database: Option<&TestDatabase>) -> Proc {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sealroom-server"));
    if let Some(db) = database {
        command.env("SEALROOM_DATABASE", &db.params);
    }
    let mut child = command
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("SEALROOM_PBKDF2_ROUNDS", "1000")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut addr, mut fingerprint) = (None, None);
    while addr.is_none() || fingerprint.is_none() {
        let line = lines
            .next()
            .expect("server exited before printing its address")
            .unwrap();
        if let Some(a) = line.strip_prefix("sealroom-server listening on ") {
            addr = Some(a.trim().parse().unwrap());
        }
        if line.starts_with("certificate SHA-256 fingerprint") {
            fingerprint = Some(line.rsplit(": ").next().unwrap().trim().to_owned());
        }
    }
    // Keep draining stdout so the server never writes into a closed pipe.
    std::thread::spawn(move || for _ in lines {});
    Proc {
        child,
        addr: addr.unwrap(),
        fingerprint: fingerprint.unwrap(),
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Registers on a real-clock server; returns the client and the session token.
pub async fn register_real(p: &Proc, name: &str) -> (Client, [u8; 32]) {
    let (c, token, _) = register_real_with_secret(p, name).await;
    (c, token)
}

/// [`register_real`], also returning the TOTP secret.
pub async fn register_real_with_secret(p: &Proc, name: &str) -> (Client, [u8; 32], Vec<u8>) {
    register_real_with_device(p, name, &Device::new(0)).await
}

/// [`register_real_with_secret`] with the given device (whose identity key signs rosters).
pub async fn register_real_with_device(
    p: &Proc,
    name: &str,
    device: &Device,
) -> (Client, [u8; 32], Vec<u8>) {
    let mut c = Client::connect(p.addr, &p.fingerprint).await.unwrap();
    c.send(&register_msg(name, PASSWORD, device, &[], "x@example.org"))
        .await
        .unwrap();
    let f = recv(&mut c).await;
    let Some(Message::TotpEnrollment { uri }) = f.msg() else {
        panic!("{:?}", f.msg())
    };
    let secret = totp::secret_from_uri(uri).unwrap();
    let code = totp::code_at(&secret, now());
    c.send(&Message::ConfirmTotp { code: &code }).await.unwrap();
    assert!(matches!(
        recv(&mut c).await.msg(),
        Some(Message::EnrollmentComplete { .. })
    ));
    let f = recv(&mut c).await;
    let Some(Message::Session { token, .. }) = f.msg() else {
        panic!("{:?}", f.msg())
    };
    let token = token.0;
    (c, token, secret)
}

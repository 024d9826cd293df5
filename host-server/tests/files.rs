//! What the server leaves on disk and in its logs: owner-only database and key files whatever
//! the folder's mode, a self-signed certificate that lasts a year and is renewed with the same
//! key, and logs without terminal colour codes when they do not go to a terminal.
//!
//! These are about the files a node keeps in its data folder (the SQLite database among them),
//! so they run SQLite servers whatever the suite's backend: under PostgreSQL the database's
//! files belong to PostgreSQL, and the certificate and key checks are the same either way.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use core::time::Duration;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use host_server::clock::Clock;
use host_server::config::ServerConfig;
use host_server::server::Server;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn start(data: &Path) -> Server {
    let mut c = ServerConfig::new(data.to_path_buf());
    c.listen = ([127, 0, 0, 1], 0).into();
    c.pbkdf2_rounds = 1_000;
    c.web_root = data.join("no-web-root");
    Server::start(c, Clock::System).unwrap()
}

#[test]
fn database_wal_and_key_are_owner_only_even_in_an_open_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&data)
        .unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = start(&data);
    for name in [
        "sealroom.db",
        "sealroom.db-wal",
        "sealroom.db-shm",
        "key.pem",
    ] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    server.shutdown();
}

#[test]
fn the_self_signed_certificate_lasts_a_year_and_renews_with_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let expires_file = data.join("cert.expires");
    let server = start(&data);
    let expires: i64 = std::fs::read_to_string(&expires_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let left = expires - now();
    assert!(
        (364 * 86_400..=366 * 86_400).contains(&left),
        "{left} s left"
    );
    let first_fp = server.identity.fingerprint.clone();
    server.shutdown();
    let key = std::fs::read(data.join("key.pem")).unwrap();
    let cert = std::fs::read(data.join("cert.pem")).unwrap();

    // Restarted well before expiry: nothing changes.
    let server = start(&data);
    assert_eq!(server.identity.fingerprint, first_fp);
    server.shutdown();
    assert_eq!(std::fs::read(data.join("cert.pem")).unwrap(), cert);

    // A certificate from an older server (no recorded expiry) is kept for a transition, so
    // clients that pinned it can connect and move to the key pin; then renewed as usual.
    std::fs::remove_file(&expires_file).unwrap();
    let server = start(&data);
    assert_eq!(server.identity.fingerprint, first_fp);
    server.shutdown();
    let transition: i64 = std::fs::read_to_string(&expires_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((59 * 86_400..=61 * 86_400).contains(&(transition - now())));

    // Ten days before expiry: a new certificate for the same key, valid a year again.
    std::fs::write(&expires_file, (now() + 10 * 86_400).to_string()).unwrap();
    let server = start(&data);
    assert_ne!(server.identity.fingerprint, first_fp);
    server.shutdown();
    assert_eq!(std::fs::read(data.join("key.pem")).unwrap(), key);
    assert_ne!(std::fs::read(data.join("cert.pem")).unwrap(), cert);
    let renewed: i64 = std::fs::read_to_string(&expires_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(renewed - now() > 364 * 86_400);
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealroom-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("SEALROOM_PBKDF2_ROUNDS", "1000")
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline && !seen.iter().any(|l: &String| l.contains("certificate")) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l.contains("certificate")),
        "no log line about the certificate: {seen:?}"
    );
    for line in &seen {
        assert!(
            !line.contains('\u{1b}'),
            "colour code in a log line: {line:?}"
        );
    }
}

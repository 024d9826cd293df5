//! Helpers for the end-to-end tests: a real `sealroom-server` in-process on 127.0.0.1 (TLS,
//! SQLite in a temporary folder), and users driving the real `sealroom` binary as child
//! processes, each with its own home folder. Every wait is bounded; every child is killed by
//! its pid if it outlives its deadline.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    reason = "shared by several test binaries"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test on any surprise"
)]

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use host_server::auth::ratelimit::Policy;
use host_server::clock::Clock;
use host_server::config::ServerConfig;
use host_server::server::Server;

/// A password the server's strength check accepts.
pub const PASSWORD: &str = "correct horse battery staple 42!";
/// The longest any one CLI run may take.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sealroom")
}

/// A real server on 127.0.0.1 with its data in a temporary folder.
pub struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub config: ServerConfig,
    /// A socket bound (never listening) to the server's port with `SO_REUSEADDR` for the
    /// server's whole life. The server's own listener (also `SO_REUSEADDR`) binds beside it,
    /// and Linux never hands an explicitly bound port to an outgoing connection: without it,
    /// a test running alongside could take the port while the server is stopped for a
    /// restart, and its closed connection would hold the port in TIME_WAIT for a minute.
    _port: socket2::Socket,
}

/// Reserves a port on 127.0.0.1 (see `TestServer::_port`).
fn reserve_port() -> (socket2::Socket, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

impl TestServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(dir.path().to_path_buf());
        let (port, addr) = reserve_port();
        config.listen = addr;
        config.pbkdf2_rounds = 1_000;
        config.drain_timeout = Duration::from_secs(3);
        config.web_root = dir.path().join("no-web-root");
        config.address_policy = Policy {
            max_per_hour: 10_000,
            free: 10_000,
            base_delay: 0,
            max_delay: 0,
        };
        let server = Server::start(config.clone(), Clock::System).unwrap();
        Self {
            server: Some(server),
            dir,
            config,
            _port: port,
        }
    }

    pub fn addr(&self) -> String {
        self.config.listen.to_string()
    }

    pub fn fingerprint(&self) -> String {
        self.server.as_ref().unwrap().identity.fingerprint.clone()
    }

    /// Stops the server and starts it again on the same port, data and certificate.
    pub fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        self.start_again();
    }

    /// Stops the server (its data and certificate stay for [`TestServer::start_again`]).
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }

    /// Starts a stopped server again on the same port, data and certificate.
    pub fn start_again(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Server::start(self.config.clone(), Clock::System) {
                Ok(s) => {
                    self.server = Some(s);
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restart: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot restart the server: {e}"),
            }
        }
    }

    /// The key pin (`sha256/…`) of the server's certificate, as `sealroom-server` prints it.
    pub fn key_pin(&self) -> String {
        let leaf = self.server.as_ref().unwrap().identity.chain[0].clone();
        cert_pin::Pin::of_key(&leaf).unwrap().to_string()
    }

    /// Stops the server and starts it again with its self-signed certificate renewed (same
    /// key): its recorded expiry is moved to ten days from now, which the server renews.
    pub fn restart_with_renewed_certificate(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        let soon = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 10 * 86_400;
        std::fs::write(self.dir.path().join("cert.expires"), soon.to_string()).unwrap();
        self.start_again();
    }

    /// Stops the server and starts it again on the same port and data, but with a new
    /// certificate (as if someone else answered on that address).
    pub fn restart_with_new_certificate(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        std::fs::remove_file(self.dir.path().join("cert.pem")).unwrap();
        std::fs::remove_file(self.dir.path().join("key.pem")).unwrap();
        self.start_again();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

/// RFC 4648 base32 (no padding) decoding, for the TOTP secret.
fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .unwrap() as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The TOTP secret inside an `otpauth://` URI.
pub fn totp_secret(uri: &str) -> Vec<u8> {
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap();
    base32_decode(secret)
}

/// The TOTP code for `secret`, `steps_ahead` 30-second steps from now.
pub fn totp(secret: &[u8], steps_ahead: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp_lite::totp_custom::<totp_lite::Sha1>(30, 6, secret, now + 30 * steps_ahead)
}

/// Waits for `child` at most `timeout`, killing it by pid if it overstays; returns its output.
pub fn wait_bounded(mut child: Child, timeout: Duration) -> Output {
    let pid = child.id();
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().unwrap() {
            Some(_) => return child.wait_with_output().unwrap(),
            None if Instant::now() >= deadline => {
                // SIGKILL to this child's pid (never by name).
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "sealroom (pid {pid}) did not finish in {timeout:?}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "sealroom failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| {
                panic!(
                    "no JSON in stdout: {}\nstderr: {}",
                    self.stdout, self.stderr
                )
            });
        serde_json::from_str(line).unwrap()
    }
}

/// One person with their own home folder (keystore, known servers).
pub struct User {
    pub name: String,
    pub home: tempfile::TempDir,
    pub passphrase: String,
    pub totp_secret: Vec<u8>,
    pub server: String,
}

impl User {
    pub fn new(name: &str, server: &TestServer) -> Self {
        Self {
            name: name.to_owned(),
            home: tempfile::tempdir().unwrap(),
            // Strong enough for the keystore's passphrase rule (zxcvbn score 3 or more).
            passphrase: format!("{name} keeps amber tulips by the wharf 58"),
            totp_secret: Vec::new(),
            server: server.addr(),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The command with this user's home and secrets in the environment.
    pub fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--home")
            .arg(self.home())
            .env("SEALROOM_PASSPHRASE", &self.passphrase)
            .env("SEALROOM_PASSWORD", PASSWORD)
            .env("SEALROOM_KDF_ROUNDS", "1000")
            .env("NO_COLOR", "1")
            .env_remove("SEALROOM_HOME")
            .env_remove("SEALROOM_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `sealroom ARGS` to completion (bounded).
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, |_| {})
    }

    /// Runs with `input` on stdin.
    pub fn run_input(&self, args: &[&str], input: &str) -> Run {
        let mut c = self.command();
        c.args(args).stdin(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = wait_bounded(child, RUN_TIMEOUT);
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs with a tweak to the command.
    pub fn run_with(&self, args: &[&str], tweak: impl FnOnce(&mut Command)) -> Run {
        let mut c = self.command();
        c.args(args);
        tweak(&mut c);
        let child = c.spawn().unwrap();
        let out = wait_bounded(child, RUN_TIMEOUT);
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Registers through `register --json`, answering the TOTP prompt on stdin with a code
    /// computed from the printed otpauth URI.
    pub fn register(&mut self) -> serde_json::Value {
        self.register_with(&[])
    }

    /// [`User::register`] with extra global options (`--fingerprint …`).
    pub fn register_with(&mut self, global: &[&str]) -> serde_json::Value {
        let mut c = self.command();
        c.args(global)
            .args([
                "--json",
                "register",
                "--server",
                &self.server,
                "--name",
                "Test Person",
            ])
            .args([
                "--email",
                &format!("{}@example.org", self.name),
                "--username",
                &self.name,
            ])
            .stdin(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if tx.send(core::mem::take(&mut line)).is_err() {
                    return;
                }
            }
        });
        let first = match rx.recv_timeout(RUN_TIMEOUT) {
            Ok(l) => l,
            Err(_) => {
                let out = wait_bounded(child, Duration::from_secs(1));
                panic!(
                    "register printed nothing: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        let enrollment: serde_json::Value = serde_json::from_str(&first).unwrap();
        assert_eq!(enrollment["event"], "totp_enrollment");
        let uri = enrollment["otpauth_uri"].as_str().unwrap().to_owned();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        self.totp_secret = totp_secret(&uri);
        let code = totp(&self.totp_secret, 0);
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{code}\n").as_bytes())
            .unwrap();
        let out = wait_bounded(child, RUN_TIMEOUT);
        // The reader thread may still hold the last lines when the child has exited: take
        // them until it reaches end of file (the channel closes), bounded.
        let mut rest: Vec<String> = Vec::new();
        while let Ok(l) = rx.recv_timeout(Duration::from_secs(5)) {
            rest.push(l);
        }
        assert!(
            out.status.success(),
            "register failed: {}\n{}",
            rest.join(""),
            String::from_utf8_lossy(&out.stderr)
        );
        let last = rest.iter().rev().find(|l| l.starts_with('{')).unwrap();
        let done: serde_json::Value = serde_json::from_str(last).unwrap();
        assert_eq!(done["event"], "registered");
        done
    }

    /// Texts of the messages `inbox --json` returns.
    pub fn inbox(&self) -> serde_json::Value {
        self.run(&["--json", "inbox", "--wait", "3"]).ok().json()
    }

    /// The messages `inbox` brings, as `from: text` (room timeline events left out: tests that
    /// check them read `inbox()` directly).
    pub fn inbox_texts(&self) -> Vec<String> {
        self.inbox()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["state"] != "event")
            .map(|m| {
                format!(
                    "{}: {}",
                    m["from"].as_str().unwrap(),
                    m["text"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// Fetches the inbox until exactly `expected` arrived (a few tries, for slow machines).
    pub fn expect_inbox(&self, expected: &[&str]) {
        let mut got: Vec<String> = Vec::new();
        for _ in 0..4 {
            got.extend(self.inbox_texts());
            if got.len() >= expected.len() {
                break;
            }
        }
        assert_eq!(got, expected, "{}'s inbox", self.name);
    }

    /// Links a second device of this account in a fresh home, named `name`: runs `sealroom
    /// link` there (its TOTP code `step` steps ahead), `devices add CODE` here, and waits for
    /// the new device to finish. Returns it.
    pub fn link_device(&self, server: &TestServer, name: &str, step: u64) -> User {
        let mut device = User::new(&self.name, server);
        device.passphrase = format!("{} keeps a second amber tulip 77", self.name);
        device.totp_secret = self.totp_secret.clone();
        let mut c = device.command();
        c.args([
            "--json",
            "link",
            "--server",
            &server.addr(),
            "--username",
            &self.name,
            "--device-name",
            name,
            "--code",
            &totp(&self.totp_secret, step),
        ]);
        let mut live = Live::spawn(c);
        let line = live.expect("link_code", RUN_TIMEOUT);
        let shown: serde_json::Value = serde_json::from_str(&line).unwrap();
        let code = shown["code"].as_str().unwrap().to_owned();
        let sent = self.run(&["--json", "devices", "add", &code]).ok().json();
        assert_eq!(sent["event"], "link_sent");
        let done = live.expect("\"linked\"", RUN_TIMEOUT);
        let done: serde_json::Value = serde_json::from_str(&done).unwrap();
        assert_eq!(done["username"], self.name.as_str());
        assert_eq!(live.finish(RUN_TIMEOUT), 0);
        device
    }

    pub fn keystore(&self) -> PathBuf {
        self.home().join("keystore")
    }
}

/// A long-running child whose stdout lines are collected by a thread, so a test can wait for a
/// line with a deadline. Killed by pid when dropped.
pub struct Live {
    pub child: Option<Child>,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Live {
    pub fn spawn(mut c: Command) -> Self {
        c.stdin(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        std::thread::spawn(move || {
            let mut s = String::new();
            let mut r = BufReader::new(stderr);
            while r.read_line(&mut s).unwrap_or(0) > 0 {
                if tx2.send(format!("[stderr] {}", s.trim_end())).is_err() {
                    return;
                }
                s.clear();
            }
            let mut rest = String::new();
            let _ = r.read_to_string(&mut rest);
        });
        Self {
            child: Some(child),
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a line containing `needle`.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn send_line(&mut self, line: &str) {
        let child = self.child.as_mut().unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin and waits (bounded) for the exit code.
    pub fn finish(mut self, timeout: Duration) -> i32 {
        let mut child = self.child.take().unwrap();
        drop(child.stdin.take());
        let out = wait_bounded(child, timeout);
        out.status.code().unwrap_or(-1)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

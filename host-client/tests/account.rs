//! The account's recovery from the command line (`account password|totp|recovery-codes|
//! delete`, the recovery codes left at a recovery-code login) and re-trusting a server whose
//! key changed (`servers trust`), against the real binary and a real server on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::{PASSWORD, RUN_TIMEOUT, TestServer, User, totp, totp_secret, wait_bounded};

const NEW_PASSWORD: &str = "a brand new passphrase for alice 9";

fn codes(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

/// `account totp --json`, answering the new authenticator's code on stdin from the printed
/// URI; returns the new secret and the final JSON line.
fn enroll_new_authenticator(u: &User, args: &[&str]) -> (Vec<u8>, serde_json::Value) {
    let mut c = u.command();
    c.args(["--json", "account", "totp"])
        .args(args)
        .env("SEALROOM_PASSWORD", NEW_PASSWORD)
        .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let enrollment: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(enrollment["event"], "totp_enrollment", "{first}");
    let secret = totp_secret(enrollment["otpauth_uri"].as_str().unwrap());
    let code = totp(&secret, 0);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{code}\n").as_bytes())
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let done = wait_bounded(child, RUN_TIMEOUT);
    assert!(
        done.status.success(),
        "{rest}\n{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let last = rest.lines().rev().find(|l| l.starts_with('{')).unwrap();
    (secret, serde_json::from_str(last).unwrap())
}

#[test]
fn account_recovery_from_the_command_line() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    let reg = alice.register();
    bob.register();
    let first = codes(&reg["recovery_codes"]);

    // Every recovery-code login says how many are left.
    alice.run(&["logout"]).ok();
    let v = alice
        .run(&["--json", "login", "--recovery-code", &first[0]])
        .ok()
        .json();
    assert_eq!(v["recovery_codes_left"], 9);
    alice.run(&["logout"]).ok();
    let r = alice.run(&["login", "--recovery-code", &first[1]]).ok();
    assert!(r.stderr.contains("8 recovery codes left"), "{}", r.stderr);

    // Password: a wrong current password (4), a weak new one (2), then the change; the code
    // that made it cannot be used again (4).
    let change = |current: &str, new: &str, factor: &[&str]| {
        alice.run_with(&[&["account", "password"][..], factor].concat(), |c| {
            c.env("SEALROOM_PASSWORD", current)
                .env("SEALROOM_NEW_PASSWORD", new);
        })
    };
    let r = change(
        "not the password 123",
        NEW_PASSWORD,
        &["--recovery-code", &first[2]],
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    let r = change(PASSWORD, "password1", &["--recovery-code", &first[2]]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let code = totp(&alice.totp_secret, 1);
    let r = change(PASSWORD, NEW_PASSWORD, &["--code", &code]).ok();
    assert!(r.stdout.contains("Password changed"), "{}", r.stdout);
    let r = change(NEW_PASSWORD, PASSWORD, &["--code", &code]);
    assert_eq!(r.code, 4, "a replayed code: {}", r.stderr);
    // The old password no longer logs in; the new one does.
    alice.run(&["logout"]).ok();
    let r = alice.run(&["login", "--recovery-code", &first[2]]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let with_new = |args: &[&str]| {
        alice.run_with(args, |c| {
            c.env("SEALROOM_PASSWORD", NEW_PASSWORD);
        })
    };
    with_new(&["login", "--recovery-code", &first[3]]).ok();

    // New recovery codes: the old ones stop working.
    let v = with_new(&[
        "--json",
        "account",
        "recovery-codes",
        "--recovery-code",
        &first[4],
    ])
    .ok()
    .json();
    let second = codes(&v["recovery_codes"]);
    assert_eq!(second.len(), 10);
    let r = with_new(&["account", "recovery-codes", "--recovery-code", &first[5]]);
    assert_eq!(r.code, 4, "{}", r.stderr);

    // A new authenticator (the old phone is lost: a recovery code starts it).
    let (new_secret, v) = enroll_new_authenticator(&alice, &["--recovery-code", &second[0]]);
    assert_eq!(v["event"], "totp_replaced");
    with_new(&["logout"]).ok();
    let r = with_new(&["login", "--code", &totp(&alice.totp_secret, 1)]);
    assert_eq!(r.code, 4, "the old authenticator: {}", r.stderr);
    with_new(&["login", "--code", &totp(&new_secret, 1)]).ok();

    // Deleting: confirmation needed without a terminal (2), a wrong password (4), then gone.
    let r = with_new(&["account", "delete", "--recovery-code", &second[1]]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = alice.run_with(
        &["account", "delete", "--yes", "--recovery-code", &second[1]],
        |c| {
            c.env("SEALROOM_PASSWORD", "not the password 123");
        },
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    let v = with_new(&[
        "--json",
        "account",
        "delete",
        "--yes",
        "--recovery-code",
        &second[2],
    ])
    .ok()
    .json();
    assert_eq!(v["event"], "account_deleted");
    assert!(!alice.keystore().exists());
    let r = bob.run(&["send", "@alice", "are you there?"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
}

#[test]
fn a_changed_server_key_is_trusted_again_only_with_its_pin() {
    let mut server = TestServer::start();
    let mut alice = User::new("alice", &server);
    alice.register();
    let old = server.key_pin();
    let addr = server.addr();
    server.restart_with_new_certificate();
    let new = server.key_pin();
    assert_ne!(old, new);

    // Refused, naming the file and the way out.
    let r = alice.run(&["inbox"]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    let file = alice.home().join("known_servers").display().to_string();
    assert!(r.stderr.contains(&file), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("sealroom servers trust {addr}")),
        "{}",
        r.stderr
    );

    // Without a pin, or with one the server does not present: nothing changes.
    let r = alice.run(&["servers", "trust", &addr]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let wrong = format!("sha256/{}=", "A".repeat(43));
    let r = alice.run(&["servers", "trust", &addr, "--fingerprint", &wrong]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr.contains("not the fingerprint you gave"),
        "{}",
        r.stderr
    );
    assert_eq!(alice.run(&["inbox"]).code, 6);

    // With the operator's pin: both shown, then trusted.
    let r = alice
        .run(&["servers", "trust", &addr, "--fingerprint", &new])
        .ok();
    assert!(
        r.stdout.contains(&format!("old pin: {old}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("new pin: {new}")),
        "{}",
        r.stdout
    );
    alice.run(&["inbox"]).ok();
    let v = alice.run(&["--json", "servers", "list"]).ok().json();
    assert_eq!(v["servers"][0]["pin"], new.as_str());
}

#[test]
fn the_help_lists_the_new_commands_and_exit_codes() {
    let server = TestServer::start();
    let alice = User::new("alice", &server);
    let help = alice.run(&["--help"]).ok().stdout;
    for needle in [
        "account",
        "servers",
        "2 bad input",
        "6 server certificate changed",
        "Several terminals",
    ] {
        assert!(
            help.contains(needle),
            "{needle:?} missing from --help:\n{help}"
        );
    }
    let account = alice.run(&["account", "--help"]).ok().stdout;
    for sub in ["password", "totp", "recovery-codes", "delete"] {
        assert!(account.contains(sub), "{sub:?} missing:\n{account}");
    }
}

/// Starting over (`login --new-device`, every device lost): the old device is logged out at
/// once — its `status` says so, and it receives nothing sent afterwards — and nothing queued
/// for the old identity is shown as delivered.
#[test]
fn starting_over_logs_the_old_device_out() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    carol.register();
    alice.run(&["send", "@carol", "before"]).ok();
    carol.expect_inbox(&["alice: before"]);
    alice
        .run(&["send", "@carol", "queued for the old key"])
        .ok();

    let carol2 = User {
        home: tempfile::tempdir().unwrap(),
        ..User::new("carol", &server)
    };
    // Registering named carol's device after the host; the list shows it as this device.
    let listed = carol.run(&["--json", "devices"]).ok().json();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(listed["current"], 1, "{listed}");
    assert_eq!(listed["devices"][0]["name"], host.trim(), "{listed}");
    assert_eq!(listed["devices"][0]["this_device"], true, "{listed}");
    assert_eq!(listed["devices"][0]["revoked_at"], serde_json::Value::Null);

    let said = carol2
        .run(&[
            "login",
            "--new-device",
            "--server",
            &server.addr(),
            "--username",
            "carol",
            "--code",
            &totp(&carol.totp_secret, 1),
            "--device-name",
            "carol's new laptop",
        ])
        .ok();
    assert!(
        said.stdout.contains("other devices were logged out"),
        "{}",
        said.stdout
    );

    let status = carol.run(&["--json", "status"]).ok().json();
    assert!(
        status["session"]
            .as_str()
            .unwrap()
            .starts_with("logged out by the server"),
        "{status}"
    );
    // Alice's very first send after the start-over: exit 7, before anything is encrypted
    // (her client fetches carol's devices and sees the new identity); nothing is stored.
    let r = alice.run(&["send", "@carol", "after"]);
    assert_eq!(r.code, 7, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("CHANGED"), "{}", r.stderr);
    let fresh = carol2.run(&["--json", "inbox"]).ok().json();
    assert_eq!(fresh["messages"], serde_json::json!([]), "{fresh}");
    let r = carol.run(&["--json", "inbox"]);
    assert_eq!(r.code, 4, "the old device cannot log in: {}", r.stderr);
    assert!(
        !r.stdout.contains("after") && !r.stdout.contains("queued"),
        "{}",
        r.stdout
    );
    // The new device is listed as current; the old one stays listed, revoked.
    let listed = carol2.run(&["--json", "devices"]).ok().json();
    assert_eq!(listed["current"], 2, "{listed}");
    let devices = listed["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{listed}");
    assert_eq!(
        (
            &devices[0]["id"],
            &devices[0]["name"],
            &devices[0]["this_device"]
        ),
        (&2.into(), &"carol's new laptop".into(), &true.into())
    );
    assert_eq!(
        (&devices[1]["id"], &devices[1]["name"]),
        (&1.into(), &host.trim().into())
    );
    assert!(devices[1]["revoked_at"].is_u64(), "{listed}");
    let table = carol2.run(&["devices"]).ok().stdout;
    assert!(
        table.contains("carol's new laptop") && table.contains("this device"),
        "{table}"
    );
    assert!(table.contains("revoked"), "{table}");
    // Renamed; a name the server refuses is a usage error with the reason, and changes nothing.
    carol2.run(&["devices", "rename", "  kitchen tablet "]).ok();
    let r = carol2.run(&["devices", "rename", "a\tb"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("control characters"), "{}", r.stderr);
    let listed = carol2.run(&["--json", "devices"]).ok().json();
    assert_eq!(listed["devices"][0]["name"], "kitchen tablet", "{listed}");
    // The message queued for the old identity was dropped, never acknowledged: no receipt.
    let v = alice.run(&["--json", "inbox", "--wait", "2"]).ok().json();
    let delivered = v["delivered"].to_string();
    assert!(
        !delivered.contains("queued for the old key") && !delivered.contains("after"),
        "nothing was delivered to carol's old key: {v}"
    );
}

/// On a terminal, `login --new-device` asks before it makes a new identity; "no" changes
/// nothing: the account's device stays logged in and can still be written to.
#[test]
fn starting_over_on_a_terminal_is_asked_first() {
    use expectrl::Expect as _;

    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    let fresh = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(common::bin());
    cmd.arg("--home")
        .arg(fresh.path())
        .args(["login", "--new-device", "--server", &server.addr()])
        .args([
            "--username",
            "alice",
            "--code",
            &totp(&alice.totp_secret, 1),
        ])
        .env("SEALROOM_PASSPHRASE", &alice.passphrase)
        .env("SEALROOM_PASSWORD", PASSWORD)
        .env("SEALROOM_KDF_ROUNDS", "1000")
        .env("NO_COLOR", "1")
        .env("TERM", "xterm");
    let mut p = expectrl::Session::spawn(cmd).unwrap();
    p.set_expect_timeout(Some(RUN_TIMEOUT));
    p.expect("logs out every other device").unwrap();
    p.expect("Start over with a new identity? [y/N]").unwrap();
    p.send_line("n").unwrap();
    p.expect("nothing changed").unwrap();

    let status = alice.run(&["--json", "status"]).ok().json();
    assert!(
        !status["session"]
            .as_str()
            .unwrap_or_default()
            .starts_with("logged out"),
        "{status}"
    );
    bob.run(&["send", "@alice", "still you"]).ok();
    alice.expect_inbox(&["bob: still you"]);
}

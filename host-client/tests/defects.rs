//! End-to-end tests for the five defects of issue 16, each against the real `sealroom` binary
//! and a real server on 127.0.0.1: the chat's outbox, the keystore passphrase rule, `--json`
//! everywhere (ids as strings, errors as JSON), the exit codes, and early, clear refusals.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use core::time::Duration;

use common::{Live, TestServer, User};

const WAIT: Duration = Duration::from_secs(30);

/// Defect 1: lines typed while `chat` is offline wait in a persisted outbox and go, in order,
/// when the connection is back; Enter retries at once.
#[test]
fn chat_keeps_lines_typed_offline_and_sends_them_later() {
    let mut server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();

    // Offline, a line is queued (never "not sent"); the chat ends with it still waiting.
    let mut c = alice.command();
    c.args(["chat", "@bob"]);
    let mut chat = Live::spawn(c);
    chat.expect("Chat with @bob", WAIT);
    server.stop();
    chat.expect("connection lost", WAIT);
    chat.send_line("typed while offline");
    chat.expect("queued \"typed while offline\" (1 line waiting)", WAIT);
    chat.expect("retrying now", WAIT);
    chat.send_line("/quit");
    assert_eq!(chat.finish(WAIT), 0);
    let status = alice.run(&["--json", "status", "--offline"]).ok();
    assert!(
        !status.stdout.contains("typed while offline"),
        "{}",
        status.stdout
    );

    // The outbox is in the keystore: the next chat sends it first.
    server.start_again();
    let mut c = alice.command();
    c.args(["chat", "@bob"]);
    let mut chat = Live::spawn(c);
    chat.expect("sending 1 queued from the outbox", WAIT);
    chat.expect("alice: typed while offline", WAIT);
    bob.expect_inbox(&["alice: typed while offline"]);

    // In the same chat: offline again, a line is queued; once the server is back, Enter
    // reconnects at once and the line goes.
    server.stop();
    chat.expect("connection lost", WAIT);
    chat.send_line("second while offline");
    chat.expect("queued \"second while offline\"", WAIT);
    server.start_again();
    chat.send_line("");
    chat.expect("reconnected", WAIT);
    chat.expect("alice: second while offline", WAIT);
    assert_eq!(chat.finish(WAIT), 0);
    bob.expect_inbox(&["alice: second while offline"]);
}

/// Defect 2: a new keystore's passphrase must be strong (the server's rule for passwords);
/// an empty or guessable one is refused with the reason, exit code 2, and no keystore made.
#[test]
fn weak_keystore_passphrases_are_refused() {
    let server = TestServer::start();
    let alice = User::new("alice", &server);
    for weak in ["", "password1", "alice"] {
        let r = alice.run_with(
            &[
                "register",
                "--server",
                &server.addr(),
                "--name",
                "Alice",
                "--email",
                "alice@example.org",
                "--username",
                "alice",
            ],
            |c| {
                c.env("SEALROOM_PASSPHRASE", weak);
            },
        );
        assert_eq!(r.code, 2, "{weak:?}: {}", r.stderr);
        assert!(r.stderr.contains("keystore passphrase"), "{}", r.stderr);
        assert!(!alice.keystore().exists());
    }
    // A new device's keystore follows the same rule.
    let r = alice.run_with(
        &[
            "login",
            "--new-device",
            "--server",
            &server.addr(),
            "--username",
            "alice",
        ],
        |c| {
            c.env("SEALROOM_PASSPHRASE", "");
        },
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!alice.keystore().exists());
}

/// Defect 3: ids in JSON are strings (they pass 2^53); every command honours `--json`, and
/// so do its errors (also a bad command line).
#[test]
fn json_everywhere_with_string_ids_and_json_errors() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();

    let sent = alice.run(&["--json", "send", "@bob", "hi"]).ok().json();
    assert!(sent["id"].is_string(), "{sent}");
    assert!(sent["server_id"].is_string(), "{sent}");
    let got = bob.inbox();
    let m = &got["messages"][0];
    assert!(m["id"].is_string() && m["server_id"].is_string(), "{got}");
    assert_eq!(m["id"], sent["id"]);

    let v = alice
        .run(&["--json", "rooms", "create", "team"])
        .ok()
        .json();
    assert_eq!(v["event"], "created");
    let v = alice
        .run(&["--json", "rooms", "invite", "team", "@bob"])
        .ok()
        .json();
    assert_eq!(
        (v["event"].as_str(), v["user"].as_str()),
        (Some("invited"), Some("bob"))
    );
    let v = alice.run(&["--json", "rooms", "list"]).ok().json();
    assert_eq!(v["rooms"], serde_json::json!(["team"]));
    let v = alice
        .run(&["--json", "rooms", "members", "team"])
        .ok()
        .json();
    assert_eq!(v["members"], serde_json::json!(["alice"]));
    let v = alice.run(&["--json", "keys"]).ok().json();
    assert!(v["signed_prekey_id"].is_u64(), "{v}");
    for r in [
        alice.run(&["--json", "logout"]).ok(),
        alice.run(&["--json", "logout"]).ok(),
    ] {
        assert_eq!(r.stdout.lines().count(), 1, "one JSON line: {}", r.stdout);
        assert_eq!(r.json()["event"], "logged_out");
    }
    let code = common::totp(&alice.totp_secret, 1);
    let v = alice.run(&["--json", "login", "--code", &code]).ok().json();
    assert_eq!(
        (v["event"].as_str(), v["username"].as_str()),
        (Some("logged_in"), Some("alice"))
    );

    // Errors: one JSON line on stdout with the reason and the exit code.
    let r = alice.run(&["--json", "send", "@nosuchuser", "hi"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    let e = r.json();
    assert_eq!(e["exit_code"], 8);
    assert!(e["error"].as_str().unwrap().contains("no such user"), "{e}");
    let r = alice.run(&["--json", "rooms", "frobnicate"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.json()["exit_code"], 2);
}

/// Defect 4: documented exit codes — 6 from `status` after a certificate change, 3 for a
/// missing passphrase, 2 for bad input refused with the reason.
#[test]
fn exit_codes_for_changed_certificates_missing_passphrases_and_bad_input() {
    let mut server = TestServer::start();
    let mut alice = User::new("alice", &server);
    alice.register();

    // No passphrase at all (stdin closed): a keystore failure.
    let r = alice.run_with(&["status", "--offline"], |c| {
        c.env_remove("SEALROOM_PASSPHRASE");
    });
    assert_eq!(r.code, 3, "{}", r.stderr);

    // Bad input, refused by the client or the server: 2, with the reason.
    let r = alice.run(&["rooms", "create", "Not A Room!"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("Not A Room!"), "{}", r.stderr);
    let bob = User::new("bob", &server);
    let register = |username: &str, password: &str| {
        bob.run_with(
            &[
                "register",
                "--server",
                &server.addr(),
                "--name",
                "Bob",
                "--email",
                "bob@example.org",
                "--username",
                username,
            ],
            |c| {
                c.env("SEALROOM_PASSWORD", password);
            },
        )
    };
    let r = register("Bad Name!", common::PASSWORD);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = register("bob", "password123");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("too easy to guess"), "{}", r.stderr);
    assert!(!r.stderr.contains(".."), "{}", r.stderr);

    // The server's certificate changed: `status` is an alarm (6), naming the pin file and the
    // command that re-trusts the server.
    server.restart_with_new_certificate();
    let r = alice.run(&["status"]);
    assert_eq!(r.code, 6, "{}\n{}", r.stdout, r.stderr);
    let file = alice.home().join("known_servers");
    assert!(
        r.stderr.contains(&file.display().to_string()),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("sealroom servers trust"), "{}", r.stderr);
}

/// Defect 5: `chat @nosuchuser` fails at once; `verify '#room'` says rooms have no safety
/// number.
#[test]
fn early_clear_refusals() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    alice.register();
    let r = alice.run(&["chat", "@nosuchuser"]);
    assert_eq!(r.code, 8, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("cannot chat with @nosuchuser"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("Chat with"), "{}", r.stdout);

    alice.run(&["rooms", "create", "team"]).ok();
    let r = alice.run(&["verify", "#team"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("rooms have no safety number"),
        "{}",
        r.stderr
    );
}

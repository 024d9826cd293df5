//! End to end: the real `sealroom` binary against a real server on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests fail on any surprise"
)]

mod common;

use core::time::Duration;

use common::{Live, PASSWORD, TestServer, User, totp};

const WAIT: Duration = Duration::from_secs(30);

/// The safety number `u` sees with `other`; with `confirm`, confirmed (the number passed, as
/// a script must).
fn safety_number(u: &User, other: &str, confirm: bool) -> String {
    let v = u.run(&["--json", "verify", other]).ok().json();
    let number = v["safety_number"].as_str().unwrap().to_owned();
    if confirm {
        let v = u
            .run(&["--json", "verify", other, "--confirm", &number])
            .ok()
            .json();
        assert_eq!(v["verified"], true, "{v}");
    }
    number
}

#[test]
fn two_users_verify_and_exchange_messages_online_and_offline() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    let reg = alice.register();
    assert_eq!(reg["recovery_codes"].as_array().unwrap().len(), 10);
    bob.register();

    // The server's key was pinned on first use.
    let pins = std::fs::read_to_string(alice.home().join("known_servers")).unwrap();
    assert!(pins.contains(&server.key_pin()), "{pins}");

    // Both see the same 60-digit safety number, and confirm it.
    let a = safety_number(&alice, "@bob", true);
    let b = safety_number(&bob, "@alice", true);
    assert_eq!(a.len(), 60);
    assert!(a.bytes().all(|c| c.is_ascii_digit()));
    assert_eq!(a, b);

    // Bob offline: Alice's messages wait on the server.
    let sent = alice
        .run(&["send", "@bob", "hello while you were away"])
        .ok();
    assert!(sent.stdout.contains("sent to server"), "{}", sent.stdout);
    alice
        .run_input(&["send", "@bob", "-"], "and this came from stdin\n")
        .ok();
    bob.expect_inbox(&[
        "alice: hello while you were away",
        "alice: and this came from stdin",
    ]);
    // Neither keystore holds a plaintext (both are encrypted at rest).
    for u in [&alice, &bob] {
        let bytes = std::fs::read(u.keystore()).unwrap();
        assert!(
            !bytes.windows(9).any(|w| w == b"while you"),
            "plaintext in a keystore"
        );
    }
    // Acknowledged: a second inbox is empty (no duplicates).
    assert!(bob.inbox_texts().is_empty());

    // Alice offline: Bob replies; she reads it later, and sees her messages delivered.
    bob.run(&["send", "@alice", "back now"]).ok();
    let inbox = alice.inbox();
    let texts: Vec<&str> = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["back now"]);
    let delivered = inbox["delivered"].as_array().unwrap();
    assert!(
        delivered
            .iter()
            .any(|d| d["text"] == "hello while you were away"),
        "{inbox}"
    );

    // Both online: Bob in a live chat (no terminal: lines on stdin), Alice sending.
    let mut c = bob.command();
    c.args(["chat", "@alice"]);
    let mut chat = Live::spawn(c);
    chat.expect("Chat with @alice", WAIT);
    let sent = alice
        .run(&["send", "@bob", "are you there?", "--wait", "20"])
        .ok();
    assert!(
        sent.stdout.contains("delivered"),
        "no delivered receipt: {}",
        sent.stdout
    );
    chat.expect("alice: are you there?", WAIT);
    chat.send_line("yes, live");
    chat.expect("bob: yes, live", WAIT);
    assert_eq!(chat.finish(WAIT), 0);
    alice.expect_inbox(&["bob: yes, live"]);

    // Status works and says both are verified.
    let status = alice.run(&["--json", "status"]).ok().json();
    assert_eq!(status["session"], "active");
    assert_eq!(status["contacts"][0]["user"], "bob");
    assert_eq!(status["contacts"][0]["verified"], true);

    // Log out, then log in again with password + TOTP (a later step: codes work once).
    alice.run(&["logout"]).ok();
    let r = alice.run(&["send", "@bob", "x"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let code = totp(&alice.totp_secret, 1);
    alice.run(&["login", "--code", &code]).ok();
    alice.run(&["send", "@bob", "after login"]).ok();
    // A wrong code is refused (exit 4); a recovery code works once.
    alice.run(&["logout"]).ok();
    let r = alice.run(&["login", "--code", "000000"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let recovery = reg["recovery_codes"][0].as_str().unwrap();
    alice.run(&["login", "--recovery-code", recovery]).ok();
    alice.run(&["logout"]).ok();
    let r = alice.run(&["login", "--recovery-code", recovery]);
    assert_eq!(r.code, 4, "a recovery code works once: {}", r.stderr);
    bob.expect_inbox(&["alice: after login"]);
    let _ = PASSWORD;
}

#[test]
fn room_member_who_left_cannot_read_later_messages() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    bob.register();
    carol.register();
    // A fresh signed prekey: the sessions the room sets up below start on it.
    let keys = alice.run(&["keys"]).ok();
    assert!(keys.stdout.contains("New signed prekey"), "{}", keys.stdout);

    alice.run(&["rooms", "create", "team"]).ok();
    alice.run(&["rooms", "invite", "team", "@bob"]).ok();
    alice.run(&["rooms", "invite", "team", "@carol"]).ok();
    bob.run(&["rooms", "accept", "team"]).ok();
    carol.run(&["rooms", "accept", "#team"]).ok();
    alice.run(&["send", "#team", "welcome"]).ok();
    bob.expect_inbox(&["alice: welcome"]);
    carol.expect_inbox(&["alice: welcome"]);
    bob.run(&["send", "#team", "hi from bob"]).ok();
    carol.expect_inbox(&["bob: hi from bob"]);
    alice.expect_inbox(&["bob: hi from bob"]);

    let members = alice
        .run(&["--json", "rooms", "members", "team"])
        .ok()
        .json();
    assert_eq!(members["members"].as_array().unwrap().len(), 3);

    // Carol leaves while Bob is in the room's live chat: he sees it and moves to a new
    // sender-key epoch; Alice (offline) notices when she next sends.
    let mut c = bob.command();
    c.args(["chat", "#team"]);
    let mut chat = Live::spawn(c);
    chat.expect("Chat with #team", WAIT);
    carol.run(&["rooms", "leave", "team"]).ok();
    chat.expect("carol left #team", WAIT);
    alice
        .run(&["send", "#team", "secret after carol left"])
        .ok();
    chat.expect("alice: secret after carol left", WAIT);
    chat.send_line("bob too");
    chat.expect("bob: bob too", WAIT);
    assert_eq!(chat.finish(WAIT), 0);
    alice.expect_inbox(&["bob: bob too"]);
    let carol_sees = carol
        .run(&["--json", "inbox", "--all", "--wait", "3"])
        .ok()
        .json();
    let all = carol_sees.to_string();
    assert!(!all.contains("secret after carol left"), "{all}");
    assert!(!all.contains("bob too"), "{all}");
    // Her keystore holds no key for the room any more.
    let status = carol.run(&["--json", "status"]).ok().json();
    assert!(status["rooms"].as_array().unwrap().is_empty(), "{status}");
    // And she cannot send there.
    let r = carol.run(&["send", "#team", "let me in"]);
    assert_eq!(r.code, 8, "{}", r.stderr);

    // Invited back, she reads what comes next, never what was said while she was away.
    alice.run(&["rooms", "invite", "team", "@carol"]).ok();
    carol.run(&["rooms", "accept", "team"]).ok();
    alice.run(&["send", "#team", "welcome back"]).ok();
    carol.expect_inbox(&["alice: welcome back"]);
    bob.expect_inbox(&["alice: welcome back"]);
    // Removed by the admin: the same guarantee.
    alice.run(&["rooms", "remove", "team", "@carol"]).ok();
    alice.run(&["send", "#team", "after removing carol"]).ok();
    bob.expect_inbox(&["alice: after removing carol"]);
    let all = carol
        .run(&["--json", "inbox", "--all", "--wait", "3"])
        .ok()
        .json()
        .to_string();
    assert!(!all.contains("after removing carol"), "{all}");
    assert!(!all.contains("secret after carol left"), "{all}");
    let r = bob.run(&["rooms", "remove", "team", "@alice"]);
    assert_eq!(r.code, 8, "only the admin removes: {}", r.stderr);

    // Invited again, Carol writes at once, before any key reached her: her first message may
    // not be readable (shown with the reason, and the room heals), the next one is.
    alice.run(&["rooms", "invite", "team", "@carol"]).ok();
    carol.run(&["rooms", "accept", "team"]).ok();
    carol.run(&["send", "#team", "too early?"]).ok();
    let first = bob.inbox();
    let m = first["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["state"] != "event")
        .unwrap_or_else(|| panic!("{first}"));
    assert!(
        m["text"] == "too early?"
            || (m["state"] == "undecryptable" && m["text"].as_str().unwrap().contains("carol")),
        "{first}"
    );
    carol.inbox();
    carol.run(&["send", "#team", "now?"]).ok();
    bob.expect_inbox(&["carol: now?"]);
}

/// `rooms invitations --json` of `u`, as (room, from) pairs.
fn invitations(u: &User) -> Vec<(String, String)> {
    let v = u.run(&["--json", "rooms", "invitations"]).ok().json();
    v["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["room"].as_str().unwrap().to_owned(),
                i["from"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn invitee_is_not_a_member_until_they_accept() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    alice.run(&["rooms", "create", "team"]).ok();
    let invited = alice.run(&["rooms", "invite", "team", "@bob"]).ok();
    assert!(
        invited.stdout.contains("Invited bob") && invited.stdout.contains("accept"),
        "{}",
        invited.stdout
    );

    // Invited only: Bob is not among the members, gets nothing said in the room, cannot send.
    let members = alice
        .run(&["--json", "rooms", "members", "team"])
        .ok()
        .json();
    assert_eq!(members["members"], serde_json::json!(["alice"]));
    alice
        .run(&["send", "#team", "said before bob accepted"])
        .ok();
    let inbox = bob.inbox();
    assert!(inbox["messages"].as_array().unwrap().is_empty(), "{inbox}");
    assert!(
        inbox["notices"]
            .to_string()
            .contains("alice invited you to #team"),
        "the invitation is shown: {inbox}"
    );
    assert_eq!(
        inbox["invitations"],
        serde_json::json!([{ "room": "team", "from": "alice" }])
    );
    assert_eq!(invitations(&bob), vec![("team".into(), "alice".into())]);
    let r = bob.run(&["send", "#team", "let me in"]);
    assert_eq!(r.code, 8, "{}\n{}", r.stdout, r.stderr);
    let listed = bob.run(&["--json", "rooms", "list"]).ok().json();
    assert_eq!(listed["rooms"], serde_json::json!([]));

    // Accepted: a member, reading what is said from now on (never what came before), and
    // writing to the room both ways.
    let joined = bob.run(&["rooms", "accept", "#team"]).ok();
    assert!(joined.stdout.contains("Joined #team"), "{}", joined.stdout);
    assert!(invitations(&bob).is_empty());
    alice.run(&["send", "#team", "welcome, bob"]).ok();
    bob.expect_inbox(&["alice: welcome, bob"]);
    bob.run(&["send", "#team", "thanks"]).ok();
    alice.expect_inbox(&["bob: thanks"]);
    let all = bob
        .run(&["--json", "inbox", "--all", "--wait", "2"])
        .ok()
        .json()
        .to_string();
    assert!(!all.contains("said before bob accepted"), "{all}");
    // Accepting twice: no invitation is waiting any more.
    let r = bob.run(&["rooms", "accept", "team"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(r.stderr.contains("no invitation to #team"), "{}", r.stderr);
}

#[test]
fn declined_invitation_is_gone_and_a_new_member_can_write_first() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    alice.run(&["rooms", "create", "club"]).ok();
    alice.run(&["rooms", "invite", "club", "@bob"]).ok();
    assert_eq!(invitations(&bob), vec![("club".into(), "alice".into())]);
    bob.run(&["rooms", "decline", "#club"]).ok();
    assert!(invitations(&bob).is_empty());
    let r = bob.run(&["rooms", "accept", "club"]);
    assert_eq!(
        r.code, 8,
        "a declined invitation cannot be accepted: {}",
        r.stderr
    );
    let r = bob.run(&["rooms", "decline", "club"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    let members = alice
        .run(&["--json", "rooms", "members", "club"])
        .ok()
        .json();
    assert_eq!(members["members"], serde_json::json!(["alice"]));
    // Names are checked like everywhere else.
    let r = bob.run(&["rooms", "accept", "#Not A Room"]);
    assert_eq!(r.code, 2, "bad input: {}", r.stderr);

    // Invited again, Bob accepts and writes at once, before Alice has run anything: she
    // reads it, and he reads her answer.
    alice.run(&["rooms", "invite", "club", "@bob"]).ok();
    bob.run(&["rooms", "accept", "club"]).ok();
    bob.run(&["send", "#club", "first word from bob"]).ok();
    alice.expect_inbox(&["bob: first word from bob"]);
    alice.run(&["send", "#club", "heard you"]).ok();
    bob.expect_inbox(&["alice: heard you"]);
}

#[test]
fn invitation_is_shown_and_accepted_inside_a_chat() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    alice.run(&["rooms", "create", "team"]).ok();
    // Chatting with a room one is only invited to says how to join.
    alice.run(&["rooms", "invite", "team", "@bob"]).ok();
    let r = bob.run(&["chat", "#team"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(r.stderr.contains("rooms accept"), "{}", r.stderr);
    bob.run(&["rooms", "decline", "team"]).ok();

    let mut c = bob.command();
    c.args(["chat", "@alice"]);
    let mut chat = Live::spawn(c);
    chat.expect("Chat with @alice", WAIT);
    alice.run(&["rooms", "invite", "team", "@bob"]).ok();
    chat.expect("alice invited you to #team: /accept #team", WAIT);
    chat.send_line("/invitations");
    chat.expect("#team (invited by alice)", WAIT);
    chat.send_line("/accept #team");
    chat.expect("joined #team", WAIT);
    alice.run(&["send", "#team", "hello in the room"]).ok();
    chat.expect("new message in #team from alice", WAIT);
    chat.send_line("/accept #team");
    chat.expect("failed: no invitation to #team", WAIT);
    assert_eq!(chat.finish(WAIT), 0);
    bob.expect_inbox(&["alice: hello in the room"]);
}

/// Runs `sealroom ARGS` with stdout a pipe whose reading end is closed before the program
/// writes anything (what `| head -1` does to the lines after the first); returns the exit
/// code and stderr.
fn run_with_closed_stdout(u: &User, args: &[&str]) -> (i32, String) {
    let mut c = u.command();
    c.args(args);
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let out = common::wait_bounded(child, common::RUN_TIMEOUT);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_ends_commands_quietly() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    for text in ["one", "two", "three"] {
        bob.run(&["send", "@alice", text]).ok();
    }
    for args in [
        &["--json", "inbox", "--wait", "3"][..],
        &["inbox", "--all", "--wait", "1"],
        &["--json", "status", "--offline"],
        &["status"],
        &["rooms", "list"],
        &["rooms", "invitations"],
    ] {
        let (code, stderr) = run_with_closed_stdout(&alice, args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(code, 101, "{args:?} panicked: {stderr}");
        assert_eq!(code, 0, "{args:?} should end quietly: {stderr}");
        assert!(stderr.trim().is_empty(), "{args:?}: {stderr}");
    }
    // The messages fetched by the inbox whose output nobody read were kept.
    let all = alice
        .run(&["--json", "inbox", "--all", "--wait", "1"])
        .ok()
        .json();
    let texts: Vec<&str> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
}

#[test]
fn wrong_passphrase_is_refused_and_changes_nothing() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    alice.register();
    let before = std::fs::read(alice.keystore()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(alice.keystore())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let r = alice.run_with(&["status", "--offline"], |c| {
        c.env("SEALROOM_PASSPHRASE", "not the passphrase");
    });
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("wrong passphrase"), "{}", r.stderr);
    assert_eq!(std::fs::read(alice.keystore()).unwrap(), before);
    // The passphrase may also come on stdin.
    let r = alice.run_with(&["status", "--offline"], |c| {
        c.env_remove("SEALROOM_PASSPHRASE");
    });
    assert_eq!(r.code, 3, "no passphrase at all: {}", r.stderr);
    let r = alice.run_input(
        &["--json", "status", "--offline"],
        &format!("{}\n", alice.passphrase),
    );
    assert_eq!(r.ok().json()["username"], "alice");
    // No keystore at all.
    let nobody = User::new("nobody", &server);
    let r = nobody.run(&["inbox"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("register"), "{}", r.stderr);
}

#[test]
fn changed_server_certificate_is_refused() {
    let mut server = TestServer::start();
    let mut alice = User::new("alice", &server);
    alice.register();
    alice.run(&["status"]).ok();
    let (old, old_key) = (server.fingerprint(), server.key_pin());
    server.restart_with_new_certificate();
    assert_ne!(old, server.fingerprint());
    assert_ne!(old_key, server.key_pin());
    let r = alice.run(&["inbox"]);
    assert_eq!(r.code, 6, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("CERTIFICATE HAS CHANGED"), "{}", r.stderr);
    assert!(r.stderr.contains(&server.fingerprint()), "{}", r.stderr);
    assert!(r.stderr.contains(&server.key_pin()), "{}", r.stderr);
    // The pin is unchanged.
    let pins = std::fs::read_to_string(alice.home().join("known_servers")).unwrap();
    assert!(
        pins.contains(&old_key) && !pins.contains(&server.key_pin()),
        "{pins}"
    );
    // A first contact given the wrong --fingerprint refuses to go on (and pins nothing).
    let carol = User::new("carol", &server);
    let r = carol.run(&[
        "--fingerprint",
        &old,
        "register",
        "--server",
        &server.addr(),
        "--name",
        "Carol",
        "--email",
        "carol@example.org",
        "--username",
        "carol",
    ]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(!carol.home().join("known_servers").exists());
    // With --ca the operator's certificate is checked instead of the pin.
    let cert = server.dir.path().join("cert.pem");
    alice.run(&["--ca", cert.to_str().unwrap(), "status"]).ok();
}

#[test]
fn the_key_pin_survives_a_renewed_certificate_but_not_a_new_key() {
    let mut server = TestServer::start();
    let mut alice = User::new("alice", &server);
    alice.register();
    let key = server.key_pin();
    let pins = alice.home().join("known_servers");
    let pinned = std::fs::read_to_string(&pins).unwrap();
    assert!(pinned.contains(&key), "{pinned}");

    // Renewed with the same key: a new certificate, the same pin; the CLI goes on.
    let first = server.fingerprint();
    server.restart_with_renewed_certificate();
    assert_ne!(server.fingerprint(), first, "the certificate was renewed");
    assert_eq!(server.key_pin(), key, "with the same key");
    let status = alice.run(&["--json", "status"]).ok().json();
    assert_eq!(status["session"], "active", "{status}");
    assert_eq!(status["certificate_pin"], key.as_str());
    assert_eq!(std::fs::read_to_string(&pins).unwrap(), pinned);
    // A first contact given the certificate's fingerprint goes ahead, and keeps the key pin.
    let mut bob = User::new("bob", &server);
    bob.register_with(&["--fingerprint", &server.fingerprint()]);
    let kept = std::fs::read_to_string(bob.home().join("known_servers")).unwrap();
    assert!(kept.contains(&key), "{kept}");

    // A new key: refused with the changed-certificate exit code, the pin kept.
    server.restart_with_new_certificate();
    assert_ne!(server.key_pin(), key);
    let r = alice.run(&["inbox"]);
    assert_eq!(r.code, 6, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("CERTIFICATE HAS CHANGED"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&pins).unwrap(), pinned);
    // So is a first contact given the old key pin.
    let mut carol = User::new("carol", &server);
    let r = carol.run(&[
        "--fingerprint",
        &key,
        "register",
        "--server",
        &server.addr(),
        "--name",
        "Carol",
        "--email",
        "carol@example.org",
        "--username",
        "carol",
    ]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(!carol.home().join("known_servers").exists());
    // And the right one is accepted, and kept.
    carol.register_with(&["--fingerprint", &server.key_pin()]);
    let kept = std::fs::read_to_string(carol.home().join("known_servers")).unwrap();
    assert!(kept.contains(&server.key_pin()), "{kept}");
}

#[test]
fn an_older_certificate_pin_still_connects_and_becomes_a_key_pin() {
    let mut server = TestServer::start();
    let mut alice = User::new("alice", &server);
    alice.register();
    // What older versions kept: the certificate's fingerprint.
    let pins = alice.home().join("known_servers");
    std::fs::write(
        &pins,
        format!("{} {}\n", server.addr(), server.fingerprint()),
    )
    .unwrap();
    let r = alice.run(&["--json", "status"]).ok();
    assert_eq!(r.json()["session"], "active", "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("now pins the certificate's key"),
        "{}",
        r.stderr
    );
    let upgraded = std::fs::read_to_string(&pins).unwrap();
    assert!(
        upgraded.contains(&server.key_pin()) && !upgraded.contains(&server.fingerprint()),
        "{upgraded}"
    );
    // From then on a renewal does not trip it.
    server.restart_with_renewed_certificate();
    alice.run(&["inbox"]).ok();
    // A `--fingerprint` of either kind that matches is fine beside the kept pin; one that does
    // not is refused.
    alice
        .run(&["--fingerprint", &server.fingerprint(), "inbox"])
        .ok();
    alice
        .run(&["--fingerprint", &server.key_pin(), "inbox"])
        .ok();
    let r = alice.run(&["--fingerprint", &"AB:".repeat(32)[..95], "inbox"]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    let r = alice.run(&["--fingerprint", "sha256/nonsense", "inbox"]);
    assert_eq!(r.code, 2, "bad input: {}", r.stderr);
}

#[test]
fn identity_key_change_is_warned_and_blocks_sending() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    alice.run(&["send", "@bob", "first"]).ok();
    bob.expect_inbox(&["alice: first"]);
    bob.run(&["send", "@alice", "reply"]).ok();
    alice.expect_inbox(&["bob: reply"]);

    // Bob sets up a new device: new identity keys.
    let bob2 = User {
        home: tempfile::tempdir().unwrap(),
        ..User::new("bob", &server)
    };
    let code = totp(&bob.totp_secret, 1);
    bob2.run(&[
        "login",
        "--new-device",
        "--server",
        &server.addr(),
        "--username",
        "bob",
        "--code",
        &code,
    ])
    .ok();

    // Alice's very first send after it notices, before anything is encrypted: the server
    // lists Bob's new identity (and device), and sending is blocked with exit 7.
    let r = alice.run(&["send", "@bob", "are you still you?"]);
    assert_eq!(r.code, 7, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("CHANGED"), "{}", r.stderr);
    let inbox = bob2.inbox();
    assert_eq!(inbox["messages"], serde_json::json!([]), "{inbox}");
    let r = alice.run(&["send", "@bob", "again?"]);
    assert_eq!(r.code, 7, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("CHANGED"), "{}", r.stderr);
    let status = alice.run(&["--json", "status", "--offline"]).ok().json();
    assert_eq!(status["contacts"][0]["key_changed"], true);
    let shown = alice.run(&["verify", "@bob"]).ok();
    assert!(shown.stderr.contains("CHANGED"), "{}", shown.stderr);

    // Bob's new device can still write to Alice; she reads it.
    bob2.run(&["send", "@alice", "new laptop"]).ok();
    alice.expect_inbox(&["bob: new laptop"]);

    // After comparing safety numbers, Alice confirms; sending works again.
    let a = safety_number(&alice, "@bob", false);
    let b = safety_number(&bob2, "@alice", false);
    assert_eq!(a, b);
    safety_number(&alice, "@bob", true);
    alice.run(&["send", "@bob", "verified, hi"]).ok();
    bob2.expect_inbox(&["alice: verified, hi"]);
}

#[test]
fn interactive_chat_through_a_pseudo_terminal() {
    use expectrl::Expect as _;

    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    bob.run(&["send", "@alice", "before you opened the chat"])
        .ok();

    let mut cmd = std::process::Command::new(common::bin());
    cmd.arg("--home")
        .arg(alice.home())
        .args(["chat", "@bob"])
        .env("SEALROOM_PASSPHRASE", &alice.passphrase)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm");
    let mut chat = expectrl::Session::spawn(cmd).unwrap();
    chat.set_expect_timeout(Some(WAIT));
    chat.expect("Chat with @bob").unwrap();
    chat.expect("before you opened the chat").unwrap();

    chat.send_line("hello over a pty").unwrap();
    chat.expect("sent to server").unwrap();
    bob.expect_inbox(&["alice: hello over a pty"]);

    // A message arrives while a line is half typed: it is shown, and the line survives.
    chat.send("half-typ").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    bob.run(&["send", "@alice", "incoming while typing"]).ok();
    chat.expect("bob: incoming while typing").unwrap();
    chat.send_line("ed line").unwrap();
    chat.expect("alice: half-typed line").unwrap();
    bob.expect_inbox(&["alice: half-typed line"]);

    chat.send_line("/verify").unwrap();
    chat.expect("Safety number with bob").unwrap();
    chat.send_line("/members").unwrap();
    chat.expect("you and bob").unwrap();
    chat.send_line("/quit").unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while chat.get_process().is_alive().unwrap_or(false) {
        if std::time::Instant::now() > deadline {
            let _ = chat.get_process_mut().exit(true);
            panic!("chat did not quit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn chat_reconnects_after_the_server_restarts() {
    let mut server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    let mut c = alice.command();
    c.args(["chat", "@bob"]);
    let mut chat = Live::spawn(c);
    chat.expect("Chat with @bob", WAIT);
    server.restart();
    chat.expect("connection lost", WAIT);
    chat.expect("reconnected", WAIT);
    bob.run(&["send", "@alice", "still there after the restart?"])
        .ok();
    chat.expect("bob: still there after the restart?", WAIT);
    chat.send_line("yes");
    chat.expect("alice: yes", WAIT);
    assert_eq!(chat.finish(WAIT), 0);
    bob.expect_inbox(&["alice: yes"]);
}

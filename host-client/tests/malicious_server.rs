//! Issue 11, the CLI half: what a malicious server can no longer do to `sealroom`, each played
//! against the real binary and a real server on 127.0.0.1 whose store the test writes to
//! directly (as a server that replays or forges a message would):
//! - replay a first (prekey) message to roll a session back or force a reset;
//! - flag a contact as changed with a first message that does not decrypt, or break a working
//!   session with one;
//! - hand over room keys and room messages under a contact's substituted identity key;
//! - have `verify --confirm` trust a key nobody compared.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests fail on any surprise"
)]

mod common;

use core::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Live, TestServer, User, totp};
use host_server::store::{NewMessage, Store, StoreError, StoredMessage};
use proto_core::{Envelope, IdentityPublicKey, PrekeyHeader};

const WAIT: Duration = Duration::from_secs(30);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs `f` on the server's store (as the server itself would).
fn store<R: Send + 'static>(
    server: &TestServer,
    f: impl FnOnce(&mut dyn Store) -> Result<R, StoreError> + Send + 'static,
) -> R {
    let db = server.server.as_ref().unwrap().shared.db.clone();
    smol::block_on(db.call(f)).unwrap()
}

fn account_id(s: &mut dyn Store, name: &str) -> Result<i64, StoreError> {
    Ok(s.account_by_username(name)?.unwrap().id)
}

/// The direct messages queued for `user`, oldest first.
fn queued_for(server: &TestServer, user: &str) -> Vec<StoredMessage> {
    let user = user.to_owned();
    store(server, move |s| {
        let a = s.account_by_username(&user)?.unwrap();
        s.pending_for(a.id, a.device_id, 0, now(), 100)
    })
}

/// Queues `body` for `to` as if `from` had sent it.
fn inject(server: &TestServer, from: &str, to: &str, body: Vec<u8>) {
    let (from, to) = (from.to_owned(), to.to_owned());
    store(server, move |s| {
        let recipient = s.account_by_username(&to)?.unwrap();
        let sender = s.account_by_username(&from)?.unwrap();
        let message = NewMessage {
            recipient: Some(recipient.id),
            room: None,
            sender_id: sender.id,
            sender: from,
            sender_device: sender.device_id,
            sent_at: now(),
            expires_at: now() + 3_600,
            body: Vec::new(),
            copies: vec![(recipient.device_id, body)],
        };
        s.insert_message(&message)
    });
}

/// `inbox --json` until it stops bringing anything (a few tries): the messages and notices.
fn inbox(u: &User) -> (Vec<serde_json::Value>, Vec<String>) {
    let v = u.inbox();
    let messages = v["messages"].as_array().unwrap().clone();
    let notices = v["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    (messages, notices)
}

fn text_of(m: &serde_json::Value) -> String {
    format!(
        "{} {}: {}",
        m["conversation"].as_str().unwrap(),
        m["from"].as_str().unwrap(),
        m["text"].as_str().unwrap()
    )
}

fn status_contact(u: &User, name: &str) -> serde_json::Value {
    let status = u.run(&["--json", "status", "--offline"]).ok().json();
    status["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["user"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no contact {name} in {status}"))
}

/// Alice's first message to Bob, taken from the server's queue before Bob reads it; then both
/// write back and forth, so the session moves on.
fn talk_and_keep_the_first_message(server: &TestServer, alice: &User, bob: &User) -> Vec<u8> {
    alice.run(&["send", "@bob", "first"]).ok();
    let queued = queued_for(server, "bob");
    assert_eq!(queued.len(), 1, "{queued:?}");
    let first = queued[0].body.clone();
    // A new session is PQXDH: the first body carries the KEM header (kind 0x03).
    assert!(matches!(
        Envelope::parse(&first),
        Ok(Envelope::PqPrekey { .. })
    ));
    bob.expect_inbox(&["alice: first"]);
    bob.run(&["send", "@alice", "reply"]).ok();
    alice.expect_inbox(&["bob: reply"]);
    alice.run(&["send", "@bob", "second"]).ok();
    bob.expect_inbox(&["alice: second"]);
    first
}

/// A replayed first message is a copy: nothing is shown, no session is re-installed, no reset
/// is forced (before: its one-time prekey gone, Bob dropped his sessions and asked Alice for a
/// reset, so her next message could not be read).
#[test]
fn a_replayed_first_message_changes_nothing() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    let first = talk_and_keep_the_first_message(&server, &alice, &bob);

    inject(&server, "alice", "bob", first);
    let (messages, notices) = inbox(&bob);
    assert!(messages.is_empty(), "a replay showed: {messages:?}");
    assert!(notices.is_empty(), "a replay warned: {notices:?}");
    assert!(
        queued_for(&server, "bob").is_empty(),
        "the copy is acknowledged"
    );

    // Nothing was reset: Alice hears of no reset, and her next message reads on the session
    // as it was.
    let (_, notices) = inbox(&alice);
    assert!(
        !notices.iter().any(|n| n.contains("reset")),
        "Bob asked for a reset: {notices:?}"
    );
    alice.run(&["send", "@bob", "third"]).ok();
    bob.expect_inbox(&["alice: third"]);
    bob.run(&["send", "@alice", "fourth"]).ok();
    alice.expect_inbox(&["bob: fourth"]);
}

/// The same without a one-time prekey (the server withheld them): the replay would decrypt
/// again, and before, it re-installed the session it once started over the current one, so
/// Bob's next message went out on that old session and Alice could not read it.
#[test]
fn a_replayed_first_message_without_a_one_time_prekey_reinstalls_nothing() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    // The server hands out every one-time prekey of Bob's, so Alice's bundle comes without.
    let taken = store(&server, |s| {
        let mut taken = 0;
        while s
            .take_bundle("bob", None, true)?
            .is_some_and(|b| b.prekey.is_some())
        {
            taken += 1;
            assert!(
                taken < 10_000,
                "the server keeps handing out one-time prekeys"
            );
        }
        Ok(taken)
    });
    assert!(taken > 0);
    let first = talk_and_keep_the_first_message(&server, &alice, &bob);
    let Ok(Envelope::PqPrekey { header, .. }) = Envelope::parse(&first) else {
        panic!("not a prekey message");
    };
    assert_eq!(header.one_time_prekey_id, None);

    inject(&server, "alice", "bob", first);
    let (messages, notices) = inbox(&bob);
    assert!(messages.is_empty(), "a replay showed: {messages:?}");
    assert!(notices.is_empty(), "a replay warned: {notices:?}");

    // Bob's session is the one that moved on: Alice reads his next message.
    bob.run(&["send", "@alice", "after the replay"]).ok();
    let (messages, notices) = inbox(&alice);
    let texts: Vec<String> = messages.iter().map(text_of).collect();
    assert_eq!(texts, ["@bob bob: after the replay"], "{notices:?}");
    alice.run(&["send", "@bob", "fine"]).ok();
    bob.expect_inbox(&["alice: fine"]);
}

/// A first message that does not decrypt, carrying another identity key, neither marks Alice
/// as changed (before: sending to her was blocked, exit 7) nor breaks the session Bob has with
/// her: it shows as undecryptable, and that is all.
#[test]
fn a_forged_first_message_records_no_identity_and_breaks_no_session() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    let first = talk_and_keep_the_first_message(&server, &alice, &bob);

    // The server forges a first message "from alice" with a key of its own.
    let Ok(
        envelope @ Envelope::PqPrekey {
            header, message, ..
        },
    ) = Envelope::parse(&first)
    else {
        panic!("not a prekey message");
    };
    let forged_header = PrekeyHeader {
        identity: IdentityPublicKey {
            signing: [7; 32],
            dh: [9; 32],
        },
        ephemeral: [11; 32],
        one_time_prekey_id: None,
        ..header
    };
    let mut forged = vec![0u8; 1 + proto_core::PREKEY_HEADER_LEN + proto_core::KEM_HEADER_LEN];
    let kem = envelope.kem_header();
    let n = Envelope::emit_prefix(Some(&forged_header), kem.as_ref(), &mut forged).unwrap();
    forged.truncate(n);
    forged.extend_from_slice(message);
    inject(&server, "alice", "bob", forged);

    let (messages, notices) = inbox(&bob);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["state"], "undecryptable", "{messages:?}");
    assert!(
        !messages[0]["text"]
            .as_str()
            .unwrap()
            .contains("being reset"),
        "{messages:?}"
    );
    assert!(
        !notices.iter().any(|n| n.contains("CHANGED")),
        "forged bytes flagged a key change: {notices:?}"
    );
    assert_eq!(status_contact(&bob, "alice")["key_changed"], false);

    // The session still works both ways, and nobody was asked to reset.
    bob.run(&["send", "@alice", "still here"]).ok();
    let (messages, notices) = inbox(&alice);
    let texts: Vec<String> = messages.iter().map(text_of).collect();
    assert_eq!(texts, ["@bob bob: still here"], "{notices:?}");
    assert!(!notices.iter().any(|n| n.contains("reset")), "{notices:?}");
    alice.run(&["send", "@bob", "good"]).ok();
    bob.expect_inbox(&["alice: good"]);
}

/// `bob` sets up a new device (new identity keys): `bob2`.
fn new_device(server: &TestServer, bob: &User) -> User {
    let bob2 = User {
        home: tempfile::tempdir().unwrap(),
        ..User::new(&bob.name, server)
    };
    let code = totp(&bob.totp_secret, 1);
    bob2.run(&[
        "login",
        "--new-device",
        "--server",
        &server.addr(),
        "--username",
        &bob.name,
        "--code",
        &code,
    ])
    .ok();
    bob2
}

fn number(u: &User, other: &str) -> String {
    let v = u.run(&["--json", "verify", other]).ok().json();
    v["safety_number"].as_str().unwrap().to_owned()
}

/// A member whose identity key changed is out of the room until an admin who compared the
/// new safety number signs the new key into the roster; and a member who has not compared it
/// holds that member's room key and room messages (before: used and shown at once, so a
/// server substituting Bob's key could write in #team as Bob), flagged once per room, and
/// processes them, keys first, once the new number is confirmed.
#[test]
fn room_traffic_from_a_changed_key_is_held_until_verified() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    bob.register();
    carol.register();
    team(&server, &alice, &[&bob, &carol]);

    // Bob's new key is not the one the roster names: he cannot write in #team.
    let bob2 = new_device(&server, &bob);
    let r = bob2.run(&["send", "#team", "too early"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("signed member list"), "{}", r.stderr);
    bob2.run(&["send", "@alice", "new laptop"]).ok();
    bob2.run(&["send", "@carol", "new laptop"]).ok();
    alice.inbox();
    carol.inbox();

    // Alice (the admin) compares the new number and confirms it: her next send signs Bob's new
    // key into the roster (a new epoch) and hands it, with her key, to the new device.
    let n = number(&alice, "@bob");
    assert_eq!(n, number(&bob2, "@alice"));
    alice.run(&["verify", "@bob", "--confirm", &n]).ok();
    alice.run(&["send", "#team", "welcome back"]).ok();
    bob2.expect_inbox(&["alice: welcome back"]);

    bob2.run(&["send", "#team", "from the new laptop"]).ok();
    bob2.run(&["send", "#team", "and again"]).ok();
    alice.expect_inbox(&["bob: from the new laptop", "bob: and again"]);

    // Carol has not compared Bob's new number: held, one notice for #team.
    let (messages, notices) = inbox(&carol);
    let texts: Vec<String> = messages.iter().map(text_of).collect();
    assert!(
        texts.contains(&"#team alice: alice signed bob's new identity key".to_owned()),
        "the change is in Carol's timeline: {texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("new laptop")),
        "shown before verification: {texts:?}"
    );
    let held: Vec<&String> = notices
        .iter()
        .filter(|n| n.contains("held until you compare bob's new safety number"))
        .collect();
    assert_eq!(held.len(), 1, "one notice for #team: {notices:?}");
    assert!(
        held[0].starts_with("#team: a room key from bob"),
        "{held:?}"
    );

    // Confirming the number Carol compared releases them, in order.
    let n = number(&carol, "@bob");
    assert_eq!(n, number(&bob2, "@carol"));
    let v = carol
        .run(&["--json", "verify", "@bob", "--confirm", &n])
        .ok()
        .json();
    assert_eq!(v["released_messages"], 2, "{v}");
    let (messages, _) = inbox(&carol);
    let texts: Vec<String> = messages.iter().map(text_of).collect();
    assert_eq!(
        texts,
        ["#team bob: from the new laptop", "#team bob: and again"]
    );
}

/// `verify --confirm` confirms the number that was compared: one shown before Bob's key
/// changed is refused (exit 7, nothing marked); a script must pass the number (exit 2).
#[test]
fn verify_confirm_refuses_a_number_that_is_no_longer_current() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    alice.run(&["send", "@bob", "hi"]).ok();
    bob.expect_inbox(&["alice: hi"]);
    let before = number(&alice, "@bob");

    let r = alice.run(&["verify", "@bob", "--confirm"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("--confirm needs the safety number"),
        "{}",
        r.stderr
    );
    let r = alice.run(&["verify", "@bob", "--confirm", "12345 67890"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("60 digits"), "{}", r.stderr);

    // Bob's key changes (new device) while Alice is comparing the old number.
    let bob2 = new_device(&server, &bob);
    bob2.run(&["send", "@alice", "new laptop"]).ok();
    alice.expect_inbox(&["bob: new laptop"]);
    let r = alice.run(&["verify", "@bob", "--confirm", &before]);
    assert_eq!(r.code, 7, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("not the current safety number"),
        "{}",
        r.stderr
    );
    let c = status_contact(&alice, "bob");
    assert_eq!(
        (&c["verified"], &c["key_changed"]),
        (&false.into(), &true.into())
    );
    assert_eq!(alice.run(&["send", "@bob", "blocked"]).code, 7);

    // The current number, as twelve groups typed with spaces, verifies.
    let now = number(&alice, "@bob");
    let groups: Vec<&str> = (0..12).map(|i| &now[i * 5..i * 5 + 5]).collect();
    let mut args = vec!["verify", "@bob", "--confirm"];
    args.extend(groups);
    let r = alice.run(&args).ok();
    assert!(r.stdout.contains("bob is now verified"), "{}", r.stdout);
    let c = status_contact(&alice, "bob");
    assert_eq!(
        (&c["verified"], &c["key_changed"]),
        (&true.into(), &false.into())
    );
    alice.run(&["send", "@bob", "verified"]).ok();
    bob2.expect_inbox(&["alice: verified"]);
}

/// On a terminal, `--confirm` alone shows the number and asks; if the key changes while the
/// person compares (a message from the new key stored by another process meanwhile), the
/// answer "y" is refused rather than trusting a number nobody saw.
#[test]
fn verify_confirm_on_a_terminal_checks_the_number_shown() {
    use expectrl::Expect as _;

    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    alice.run(&["send", "@bob", "hi"]).ok();

    let spawn = || {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.arg("--home")
            .arg(alice.home())
            .args(["verify", "@bob", "--confirm"])
            .env("SEALROOM_PASSPHRASE", &alice.passphrase)
            .env("SEALROOM_KDF_ROUNDS", "1000")
            .env("NO_COLOR", "1")
            .env("TERM", "xterm");
        let mut p = expectrl::Session::spawn(cmd).unwrap();
        p.set_expect_timeout(Some(WAIT));
        p
    };

    // The number shown, then the key changes before the answer.
    let mut p = spawn();
    p.expect("Safety number with bob").unwrap();
    p.expect("[y/N]").unwrap();
    let bob2 = new_device(&server, &bob);
    bob2.run(&["send", "@alice", "new laptop"]).ok();
    alice.expect_inbox(&["bob: new laptop"]);
    p.send_line("y").unwrap();
    p.expect("not the current safety number").unwrap();
    let c = status_contact(&alice, "bob");
    assert_eq!(c["key_changed"], true, "{c}");

    // Shown and unchanged: "y" verifies.
    let mut p = spawn();
    p.expect("[y/N]").unwrap();
    p.send_line("y").unwrap();
    p.expect("bob is now verified").unwrap();
    let c = status_contact(&alice, "bob");
    assert_eq!(
        (&c["verified"], &c["key_changed"]),
        (&true.into(), &false.into())
    );
}

/// The server makes `user` a member of `room` on its own: a membership row, no signed roster.
fn server_adds_member(server: &TestServer, room: &str, user: &str) {
    let (room, user) = (room.to_owned(), user.to_owned());
    store(server, move |s| {
        let info = s.room(&room)?.unwrap();
        let id = account_id(s, &user)?;
        s.add_member(info.id, id)
    });
}

/// Queues a room message in `room` as if `from` had sent it: every server-side member gets it.
fn inject_room(server: &TestServer, from: &str, room: &str, body: Vec<u8>) {
    inject_room_from(server, from, 1, room, body);
}

fn inject_room_from(server: &TestServer, from: &str, device: u32, room: &str, body: Vec<u8>) {
    let (from, room) = (from.to_owned(), room.to_owned());
    store(server, move |s| {
        let info = s.room(&room)?.unwrap();
        let message = NewMessage {
            recipient: None,
            room: Some(info.id),
            sender_id: account_id(s, &from)?,
            sender: from,
            sender_device: device,
            sent_at: now(),
            expires_at: now() + 3_600,
            body,
            copies: Vec::new(),
        };
        s.insert_message(&message)
    });
}

fn members_of(u: &User, room: &str) -> Vec<String> {
    let v = u.run(&["--json", "rooms", "members", room]).ok().json();
    v["members"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

/// Alice makes #team with Bob (and `more`), each signed into the roster and holding the keys.
fn team(server: &TestServer, alice: &User, others: &[&User]) {
    alice.run(&["rooms", "create", "team"]).ok();
    for u in others {
        alice
            .run(&["rooms", "invite", "team", &format!("@{}", u.name)])
            .ok();
        u.run(&["rooms", "accept", "team"]).ok();
    }
    // Alice hears they joined, signs them in, sends each the roster and her key.
    alice.inbox();
    alice.run(&["send", "#team", "hello team"]).ok();
    for u in others {
        u.expect_inbox(&["alice: hello team"]);
    }
    let _ = server;
}

/// Nothing one-to-one (no room key, no roster) was queued for `outsider`, the signed roster of
/// each member still names only `members`, and `outsider` reads nothing containing `secret`.
fn outsider_got_nothing(
    server: &TestServer,
    insiders: &[&User],
    members: &[&str],
    outsider: &User,
    secret: &str,
) {
    let direct: Vec<StoredMessage> = queued_for(server, &outsider.name)
        .into_iter()
        .filter(|m| m.room.is_none())
        .collect();
    assert!(direct.is_empty(), "sent to {}: {direct:?}", outsider.name);
    for u in insiders {
        assert_eq!(members_of(u, "team"), members, "{}'s roster", u.name);
    }
    let (messages, _) = inbox(outsider);
    let texts: Vec<String> = messages.iter().map(text_of).collect();
    assert!(
        !texts.iter().any(|t| t.contains(secret)),
        "{} read: {texts:?}",
        outsider.name
    );
}

/// A member the server adds on its own (no signed roster names her) gets no sender key from
/// anyone, is listed nowhere, and reads nothing (before: the clients took the server's member
/// list as truth and handed her their keys).
#[test]
fn a_member_the_server_adds_without_a_signed_roster_gets_no_room_key() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    let mut mallory = User::new("mallory", &server);
    alice.register();
    bob.register();
    mallory.register();
    team(&server, &alice, &[&bob]);
    bob.run(&["send", "#team", "hi alice"]).ok();
    alice.expect_inbox(&["bob: hi alice"]);

    server_adds_member(&server, "team", "mallory");
    alice.run(&["send", "#team", "secret plans"]).ok();
    bob.run(&["send", "#team", "more secrets"]).ok();
    bob.expect_inbox(&["alice: secret plans"]);
    alice.expect_inbox(&["bob: more secrets"]);

    outsider_got_nothing(
        &server,
        &[&alice, &bob],
        &["alice", "bob"],
        &mallory,
        "secret",
    );
}

/// A member removed while their identity key is changed and unverified still counts as
/// departed: the others move to a new epoch, and what they send next cannot be read with the
/// removed member's old state, even when the server delivers it anyway (before: a member
/// whose key changed was skipped, the epoch stayed, and their old device kept reading).
#[test]
fn a_removed_member_whose_key_changed_reads_nothing_after() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    bob.register();
    carol.register();
    team(&server, &alice, &[&bob, &carol]);

    // Carol's key changes (a new device, or the server substituting one); Alice has not
    // verified it, and removes Carol.
    let carol2 = new_device(&server, &carol);
    carol2.run(&["send", "@alice", "new laptop"]).ok();
    alice.inbox();
    alice.run(&["rooms", "remove", "team", "@carol"]).ok();
    assert_eq!(members_of(&alice, "team"), ["alice", "bob"]);
    alice.run(&["send", "#team", "after carol"]).ok();
    let body = queued_for(&server, "bob")
        .into_iter()
        .rfind(|m| m.room.as_deref() == Some("team") && m.sender == "alice")
        .expect("alice's room message for bob")
        .body;
    bob.expect_inbox(&["alice: after carol"]);
    assert_eq!(members_of(&bob, "team"), ["alice", "bob"]);

    // A hostile server hands the message to Carol's old device anyway (it lets that device
    // log in again with its old keys, undoing its revocation, and makes Carol a member again).
    // (Its TOTP code: the next step after the one the new device used, so wait for the clock.)
    rusqlite::Connection::open(server.dir.path().join("sealroom.db"))
        .unwrap()
        .execute(
            "UPDATE devices SET revoked_at = NULL WHERE device_id = 1 AND account_id = \
             (SELECT id FROM accounts WHERE username = 'carol')",
            [],
        )
        .unwrap();
    let into_step = now() % 30;
    std::thread::sleep(Duration::from_secs(31 - into_step));
    carol
        .run(&["login", "--code", &totp(&carol.totp_secret, 1)])
        .ok();
    server_adds_member(&server, "team", "carol");
    inject_room(&server, "alice", "team", body);
    for device in [&carol, &carol2] {
        let (messages, _) = inbox(device);
        let texts: Vec<String> = messages.iter().map(text_of).collect();
        assert!(
            !texts.iter().any(|t| t.contains("after carol")),
            "read after removal: {texts:?}"
        );
    }
}

/// The server stores a next roster version of its own making (signed by a key that is no
/// admin of the one before, adding Mallory) and makes Mallory a member: the clients refuse that
/// version, say so, keep the membership they had, and give Mallory nothing.
#[test]
fn a_roster_version_the_server_forges_is_refused() {
    use proto_core::{IdentityKeyPair, Roster, RosterFields, RosterMember, write_roster};

    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    let mut mallory = User::new("mallory", &server);
    alice.register();
    bob.register();
    mallory.register();
    team(&server, &alice, &[&bob]);

    let latest = store(&server, |s| {
        let room = s.room("team")?.unwrap();
        s.latest_roster(room.id)
    })
    .unwrap();
    let held = Roster::parse(&latest).unwrap();
    let forger = IdentityKeyPair::from_secrets(&[0x66; 32], &[0x67; 32]);
    let forged_key = forger.public().signing;
    let mut members: Vec<(String, [u8; 32])> = held
        .members()
        .map(|m| (m.username.to_owned(), m.identity))
        .collect();
    members.push(("mallory".to_owned(), forged_key));
    members.sort();
    let list: Vec<RosterMember<'_>> = members
        .iter()
        .map(|(username, identity)| RosterMember {
            username,
            identity: *identity,
        })
        .collect();
    let fields = RosterFields {
        room_id: *held.room_id(),
        version: held.version() + 1,
        epoch: held.epoch(),
        prev: held.hash(),
        admins: &[forged_key],
        members: &list,
    };
    let mut out = vec![0u8; proto_core::ROSTER_MAX_LEN + 32];
    let n = write_roster(&fields, &forger, &mut out).unwrap();
    out.truncate(n);
    let version = held.version() + 1;
    assert!(store(&server, move |s| {
        let room = s.room("team")?.unwrap();
        s.append_roster(room.id, version, &out)
    }));
    server_adds_member(&server, "team", "mallory");

    let sent = alice.run(&["send", "#team", "after the forgery"]).ok();
    assert!(
        sent.stderr.contains("not validly signed") || sent.stdout.contains("not validly signed"),
        "the refusal is shown: {} {}",
        sent.stdout,
        sent.stderr
    );
    bob.expect_inbox(&["alice: after the forgery"]);
    outsider_got_nothing(
        &server,
        &[&alice, &bob],
        &["alice", "bob"],
        &mallory,
        "after the forgery",
    );
}

/// Carol links a second device while alice's chat with her is open: alice's next line is
/// refused with STALE_DEVICES, her client asks for carol's devices again, starts a session with
/// the new one (its prekey signed by carol's identity for it) and sends once more. Both of
/// carol's devices read the line once; the safety number did not change.
#[test]
fn a_device_linked_during_a_chat_gets_a_new_session_and_one_send() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    carol.register();
    let mut c = alice.command();
    c.args(["chat", "@carol"]);
    let mut chat = Live::spawn(c);
    chat.expect("Chat with @carol", WAIT);
    chat.send_line("first");
    chat.expect("alice: first", WAIT);
    carol.expect_inbox(&["alice: first"]);

    let phone = carol.link_device(&server, "phone", 1);
    chat.send_line("second");
    chat.expect("alice: second", WAIT);
    assert_eq!(chat.finish(WAIT), 0);
    carol.expect_inbox(&["alice: second"]);
    phone.expect_inbox(&["alice: second"]);
    let c = status_contact(&alice, "carol");
    assert_eq!(c["key_changed"], false, "the identity did not change: {c}");
}

/// The server adds a device to carol's account on its own: first one whose prekey another
/// identity signed, then one carrying carol's real prekey of device 1 (signed for device 1, not
/// for it). Alice's client refuses to start a session with either: the send fails (exit 8)
/// and nothing is stored for carol at all (the forged device got no ciphertext, and the server
/// cannot take carol's copy alone: a send must name every device). Once the server stops,
/// alice writes to carol again, with the same safety number.
#[test]
fn a_device_the_server_adds_without_the_identity_signing_it_gets_nothing() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    carol.register();
    alice.run(&["send", "@carol", "first"]).ok();
    carol.expect_inbox(&["alice: first"]);

    let wire = |p: proto_core::SignedPrekeyPublic| proto_core::SignedPrekey {
        id: p.id,
        key: proto_core::Key32(p.public),
        signature: proto_core::Sig64(p.signature),
    };
    let forged = store(&server, move |s| {
        let id = account_id(s, "carol")?;
        let device = s.add_device(id, "not carol's", now())?;
        let mallory = proto_core::IdentityKeyPair::from_secrets(&[7; 32], &[8; 32]);
        let spk = proto_core::SignedPrekeyPair::from_secret_key_for_device(
            900, device, &[9; 32], &mallory,
        );
        s.set_signed_prekey(id, device, &wire(spk.public()))?;
        let kem = proto_core::KemPrekeyPair::from_seed(901, &[10; 64]);
        s.set_last_resort_kem_prekey(id, device, &kem.public_for_device(device, &mallory))?;
        Ok(device)
    });
    let r = alice.run(&["send", "@carol", "second"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(
        r.stderr.contains("not signed by carol's identity"),
        "{}",
        r.stderr
    );
    assert!(queued_for(&server, "carol").is_empty());

    // Carol's own prekey, moved to a device the server made.
    store(&server, move |s| {
        let id = account_id(s, "carol")?;
        s.revoke_device(id, forged, now())?;
        let real = s.take_bundle("carol", Some(1), false)?.unwrap().spk;
        let device = s.add_device(id, "copy", now())?;
        s.set_signed_prekey(id, device, &real)
    });
    let r = alice.run(&["send", "@carol", "third"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(queued_for(&server, "carol").is_empty());

    store(&server, move |s| {
        let id = account_id(s, "carol")?;
        let copy = s.active_devices(id)?.into_iter().max().unwrap();
        s.revoke_device(id, copy, now())?;
        Ok(())
    });
    alice.run(&["send", "@carol", "fourth"]).ok();
    carol.expect_inbox(&["alice: fourth"]);
    let c = status_contact(&alice, "carol");
    assert_eq!(c["key_changed"], false, "{c}");
}

/// The server labels alice's first message to carol as coming from carol herself (another of
/// her devices, as a sent transcript would): carol's client takes a session with her own
/// devices only from her own identity, so the copy is shown as unreadable, nothing is filed as
/// "sent from another device", and no session with her own account is made from it.
#[test]
fn a_message_the_server_labels_as_from_ones_own_device_is_not_taken_as_ones_own() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    carol.register();
    let _phone = carol.link_device(&server, "phone", 1);
    alice.run(&["send", "@carol", "hello"]).ok();
    let queued = queued_for(&server, "carol");
    assert_eq!(queued.len(), 1, "{queued:?}");
    inject(&server, "carol", "carol", queued[0].body.clone());
    let (messages, _) = inbox(&carol);
    let texts: Vec<(String, String)> = messages
        .iter()
        .map(|m| (text_of(m), m["state"].as_str().unwrap().to_owned()))
        .collect();
    assert!(
        texts.contains(&("@alice alice: hello".to_owned(), "received".to_owned())),
        "{texts:?}"
    );
    let forged: Vec<_> = texts
        .iter()
        .filter(|(t, _)| t.starts_with("@carol"))
        .collect();
    assert_eq!(forged.len(), 1, "{texts:?}");
    assert_eq!(forged[0].1, "undecryptable", "{texts:?}");
    assert!(forged[0].0.contains("not from your identity"), "{texts:?}");
    assert!(
        texts.iter().all(|(_, state)| state != "synced"),
        "{texts:?}"
    );
    let status = carol.run(&["--json", "status", "--offline"]).ok().json();
    assert_eq!(
        status["own_session_devices"],
        serde_json::json!([]),
        "{status}"
    );
}

/// Room sender ids are per device (PROTOCOL.md §4.4): the server relabels a room message from
/// carol's phone as from her laptop (`Deliver.device`), and as from bob (another account). Alice
/// reads neither as carol's: each shows as not readable, "the sender key does not belong to the
/// sender the server named"; the real one still reads.
#[test]
fn a_room_message_the_server_moves_to_another_device_or_account_is_not_read() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    bob.register();
    carol.register();
    team(&server, &alice, &[&bob, &carol]);
    let phone = carol.link_device(&server, "phone", 1);
    // The phone's key reaches alice; hers reaches the phone.
    alice.inbox();
    phone.inbox();

    let relabel = |sql: &str| {
        rusqlite::Connection::open(server.dir.path().join("sealroom.db"))
            .unwrap()
            .execute(sql, [])
            .unwrap()
    };
    // The phone sends `text`; the server rewrites the stored message with `sql`; alice must
    // show it as not readable.
    let relabelled_is_refused = |text: &str, sql: &str| {
        phone.run(&["send", "#team", text]).ok();
        assert_eq!(relabel(sql), 1);
        let (messages, _) = inbox(&alice);
        let texts: Vec<String> = messages.iter().map(text_of).collect();
        assert!(
            texts.iter().any(|t| {
                t.contains("the sender key does not belong to the sender the server named")
            }),
            "{texts:?}"
        );
        assert!(!texts.iter().any(|t| t.contains(text)), "{texts:?}");
    };
    relabelled_is_refused(
        "moved to the laptop",
        "UPDATE messages SET sender_device = 1 WHERE room_id IS NOT NULL AND sender_device = 2",
    );
    relabelled_is_refused(
        "moved to bob",
        "UPDATE messages SET sender_id = (SELECT id FROM accounts WHERE username = 'bob'), \
         sender = 'bob', sender_device = 1 WHERE room_id IS NOT NULL AND sender_device = 2",
    );

    phone.run(&["send", "#team", "as it was sent"]).ok();
    alice.expect_inbox(&["carol: as it was sent"]);
}

/// A revoked device is out of its rooms: carol's phone sends to #team, the server holds the
/// message back, carol revokes the phone; alice's next room send sees the phone gone (its
/// account no longer lists it), drops its sender key and moves to a new key. The server then
/// hands alice the phone's held-back message: not read as carol's.
#[test]
fn a_revoked_devices_room_messages_are_refused_once_alice_sees_it_revoked() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    carol.register();
    team(&server, &alice, &[&carol]);
    let phone = carol.link_device(&server, "phone", 1);
    alice.inbox();
    phone.inbox();
    phone.run(&["send", "#team", "stolen phone"]).ok();
    let held_back = queued_for(&server, "alice")
        .into_iter()
        .rfind(|m| m.room.as_deref() == Some("team") && m.sender == "carol")
        .expect("the phone's room message for alice")
        .body;
    rusqlite::Connection::open(server.dir.path().join("sealroom.db"))
        .unwrap()
        .execute(
            "DELETE FROM messages WHERE room_id IS NOT NULL AND sender_device = 2",
            [],
        )
        .unwrap();

    carol.run(&["devices", "revoke", "2"]).ok();
    let sent = alice.run(&["send", "#team", "after the revocation"]).ok();
    assert!(
        sent.stdout.contains("device 2 was revoked")
            || sent.stderr.contains("device 2 was revoked"),
        "{}{}",
        sent.stdout,
        sent.stderr
    );
    carol.expect_inbox(&["alice: after the revocation"]);

    inject_room_from(&server, "carol", 2, "team", held_back);
    let (messages, _) = inbox(&alice);
    let texts: Vec<String> = messages.iter().map(text_of).collect();
    assert!(
        !texts.iter().any(|t| t.contains("stolen phone")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("could not decrypt")),
        "{texts:?}"
    );
}

/// Bob's KEM prekeys as the server stores them: dropped altogether, so his bundle carries none.
fn drop_kem_prekeys(server: &TestServer, user: &str, device: u32) {
    let db = rusqlite::Connection::open(server.dir.path().join("sealroom.db")).unwrap();
    let account = format!("(SELECT id FROM accounts WHERE username = '{user}')");
    db.execute(
        &format!(
            "UPDATE devices SET kem_id = NULL, kem_key = NULL, kem_sig = NULL \
             WHERE device_id = {device} AND account_id = {account}"
        ),
        [],
    )
    .unwrap();
    db.execute(
        &format!(
            "DELETE FROM device_kem_prekeys WHERE device_id = {device} AND account_id = {account}"
        ),
        [],
    )
    .unwrap();
}

/// Every new conversation starts with PQXDH: the first body carries the KEM header (1,092
/// bytes after the prekey header), the server handed out one of Bob's one-time KEM prekeys, and
/// Bob, having read the message, no longer holds that one (one use only).
#[test]
fn a_new_conversation_starts_with_pqxdh_and_spends_a_one_time_kem_prekey() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    let held = |u: &User| {
        u.run(&["--json", "status", "--offline"]).ok().json()["kem_prekeys_held"]
            .as_u64()
            .unwrap()
    };
    let before = held(&bob);
    assert!(before > 0, "bob published no one-time KEM prekeys");
    alice.run(&["send", "@bob", "hello"]).ok();
    let queued = queued_for(&server, "bob");
    assert_eq!(queued.len(), 1);
    let body = &queued[0].body;
    assert_eq!(body[0], proto_core::ENVELOPE_PQ_PREKEY);
    let Ok(envelope) = Envelope::parse(body) else {
        panic!("not an envelope");
    };
    let kem = envelope.kem_header().expect("a KEM header");
    assert_eq!(kem.to_bytes().len(), proto_core::KEM_HEADER_LEN);
    bob.expect_inbox(&["alice: hello"]);
    assert_eq!(
        held(&bob),
        before - 1,
        "the used one-time KEM prekey is still held"
    );
    // Once Bob has replied, Alice sends plain ratchet bodies.
    bob.run(&["send", "@alice", "hi"]).ok();
    alice.expect_inbox(&["bob: hi"]);
    alice.run(&["send", "@bob", "again"]).ok();
    let queued = queued_for(&server, "bob");
    assert_eq!(queued[0].body[0], proto_core::ENVELOPE_RATCHET);
    bob.expect_inbox(&["alice: again"]);
}

/// The server drops Bob's KEM prekeys (his bundle comes without one): Alice's client refuses to
/// start a session, says why, and stores nothing: there is no classical fallback. Then the
/// server hands out the KEM prekey of Bob's other device as if it were this device's (signed
/// by Bob's identity, but for device 2): refused the same way. Once Bob publishes them again
/// (his next connection), Alice writes to him.
#[test]
fn a_bundle_without_a_valid_kem_prekey_is_refused_never_used_classically() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    let phone = bob.link_device(&server, "phone", 1);

    drop_kem_prekeys(&server, "bob", 1);
    let r = alice.run(&["send", "@bob", "hello"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(r.stderr.contains("no post-quantum prekey"), "{}", r.stderr);
    assert!(
        queued_for(&server, "bob").is_empty(),
        "something was stored"
    );

    // Device 2's last-resort KEM prekey, handed out as device 1's.
    let db = rusqlite::Connection::open(server.dir.path().join("sealroom.db")).unwrap();
    db.execute(
        "UPDATE devices SET (kem_id, kem_key, kem_sig) = \
         (SELECT kem_id, kem_key, kem_sig FROM devices d2 WHERE d2.device_id = 2 \
          AND d2.account_id = devices.account_id) \
         WHERE device_id = 1 AND account_id = (SELECT id FROM accounts WHERE username = 'bob')",
        [],
    )
    .unwrap();
    let r = alice.run(&["send", "@bob", "hello"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(
        r.stderr.contains("not signed by bob's identity"),
        "{}",
        r.stderr
    );
    assert!(
        queued_for(&server, "bob").is_empty(),
        "something was stored"
    );

    // Bob's keystore still says its KEM prekeys are published; starting over is not needed:
    // `sealroom keys` publishes a new last-resort one and tops up the one-time ones.
    bob.run(&["keys"]).ok();
    alice.run(&["send", "@bob", "hello"]).ok();
    bob.expect_inbox(&["alice: hello"]);
    phone.expect_inbox(&["alice: hello"]);
}

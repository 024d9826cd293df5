//! Linked devices end to end with the real server and the `sealroom` binary (PROTOCOL.md §4.6,
//! §6 Devices): `sealroom link` on a new device, `sealroom devices add CODE` on one already in
//! the account; messages reach both devices, contacts keep the safety number, the new device
//! writes as the account, and `devices revoke` stops its delivery at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

fn contact<'a>(status: &'a serde_json::Value, user: &str) -> &'a serde_json::Value {
    status["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["user"] == user)
        .unwrap()
}

#[test]
fn a_linked_device_gets_every_message_writes_as_the_account_and_is_revoked_at_once() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    carol.register();
    alice.run(&["send", "@carol", "before the phone"]).ok();
    carol.expect_inbox(&["alice: before the phone"]);

    let phone = carol.link_device(&server, "phone", 1);
    let listed = carol.run(&["--json", "devices"]).ok().json();
    assert_eq!(listed["current"], 1);
    let names: Vec<(u64, String)> = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_u64().unwrap(),
                d["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(names[0], (2, "phone".to_owned()), "{listed}");
    let phone_status = phone.run(&["--json", "status", "--offline"]).ok().json();
    assert_eq!(phone_status["device"], 2);
    assert_eq!(
        phone_status["identity_fingerprint"],
        carol.run(&["--json", "status", "--offline"]).ok().json()["identity_fingerprint"],
        "one identity"
    );
    assert_eq!(
        contact(&phone_status, "alice")["verified"],
        false,
        "contacts came with the link"
    );

    // Every message to carol reaches both devices; nothing from before the phone existed.
    // alice's receipts count carol's devices: 1 of 2, then 2 of 2.
    alice.run(&["send", "@carol", "hello both"]).ok();
    carol.expect_inbox(&["alice: hello both"]);
    let receipts = |alice: &User| -> Vec<(String, u64, u64)> {
        alice.run(&["--json", "inbox"]).ok().json()["delivered"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["text"].as_str().unwrap().to_owned(),
                    e["delivered_devices"].as_u64().unwrap(),
                    e["devices"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(receipts(&alice), [("hello both".to_owned(), 1, 2)]);
    phone.expect_inbox(&["alice: hello both"]);
    assert_eq!(receipts(&alice), [("hello both".to_owned(), 2, 2)]);
    let shown = alice.run(&["inbox", "--all"]).ok().stdout;
    assert!(shown.contains("delivered to 2 of 2 devices"), "{shown}");
    let status = alice.run(&["--json", "status", "--offline"]).ok().json();
    let c = contact(&status, "carol");
    assert_eq!(
        c["key_changed"], false,
        "a new device is not a new identity: {c}"
    );
    assert_eq!(c["session_devices"], serde_json::json!([1, 2]), "{c}");

    // The phone writes as carol; alice sees carol, with the same safety number. What one of
    // carol's devices sends shows on the other, in the conversation with alice, as sent from
    // another device (sent-message sync).
    phone.run(&["send", "@alice", "from the phone"]).ok();
    alice.expect_inbox(&["carol: from the phone"]);
    let synced = |device: &User| -> Vec<(String, String, String)> {
        device.run(&["--json", "inbox"]).ok().json()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["conversation"].as_str().unwrap().to_owned(),
                    m["text"].as_str().unwrap().to_owned(),
                    m["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let transcript = |text: &str| ("@alice".to_owned(), text.to_owned(), "synced".to_owned());
    assert_eq!(synced(&carol), [transcript("from the phone")]);
    carol.run(&["send", "@alice", "from the laptop"]).ok();
    assert_eq!(synced(&phone), [transcript("from the laptop")]);
    alice.expect_inbox(&["carol: from the laptop"]);
    let shown = phone.run(&["inbox", "--all"]).ok().stdout;
    assert!(
        shown.contains("from the laptop") && shown.contains("sent from another of your devices"),
        "{shown}"
    );
    alice.run(&["send", "@carol", "reply"]).ok();
    carol.expect_inbox(&["alice: reply"]);
    phone.expect_inbox(&["alice: reply"]);
    let own = carol.run(&["--json", "status", "--offline"]).ok().json();
    assert_eq!(own["own_session_devices"], serde_json::json!([2]), "{own}");
    assert!(
        own["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["user"] != "carol"),
        "our own account is not listed as a contact: {own}"
    );

    // Revoking the phone: it is logged out at once and gets nothing more; alice's client
    // drops it (the server refuses the old device set) and carol still gets the message.
    carol.run(&["devices", "revoke", "2"]).ok();
    let r = phone.run(&["inbox"]);
    assert_eq!(r.code, 4, "the phone's session is gone: {}", r.stderr);
    alice.run(&["send", "@carol", "after the revocation"]).ok();
    carol.expect_inbox(&["alice: after the revocation"]);
    // (Logging in again as device 2 is refused: host-server tests/devices.rs.)
    let r = phone.run(&["send", "@alice", "still here?"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let status = alice.run(&["--json", "status", "--offline"]).ok().json();
    assert_eq!(
        contact(&status, "carol")["session_devices"],
        serde_json::json!([1])
    );
}

/// A code that is not one is refused before anything is sent; revoking this device (that is
/// logging out) or one the account does not have is refused by the server.
#[test]
fn devices_add_refuses_what_is_not_a_link_code() {
    let server = TestServer::start();
    let mut carol = User::new("carol", &server);
    carol.register();
    let r = carol.run(&["devices", "add", "not-a-code"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("link code"), "{}", r.stderr);
    let r = carol.run(&["devices", "add", "!!!!"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = carol.run(&["devices", "revoke", "1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("log out instead"), "{}", r.stderr);
    let r = carol.run(&["devices", "revoke", "9"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
}

/// `inbox` entries of one conversation as `(from, text, state)` (room events left out).
fn room_entries(device: &User, conversation: &str) -> Vec<(String, String, String)> {
    device.inbox()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["conversation"] == conversation && m["state"] != "event")
        .map(|m| {
            (
                m["from"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
                m["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn entry(from: &str, text: &str, state: &str) -> (String, String, String) {
    (from.to_owned(), text.to_owned(), state.to_owned())
}

/// Rooms on linked devices (PROTOCOL.md §4.4, §4.6): each device is a sender of its own. A
/// phone linked after carol joined #team learns the room from the link state and, once its key
/// and alice's have crossed, reads and writes there; what one of carol's devices sends to a
/// room shows on the other as sent from another device. A room carol makes after linking
/// reaches the phone through the roster her laptop sends it.
#[test]
fn every_device_of_a_member_reads_and_writes_in_its_rooms() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    carol.register();
    alice.run(&["rooms", "create", "team"]).ok();
    alice.run(&["rooms", "invite", "team", "@carol"]).ok();
    carol.run(&["rooms", "accept", "team"]).ok();
    alice.inbox();
    alice.run(&["send", "#team", "before the phone"]).ok();
    carol.expect_inbox(&["alice: before the phone"]);

    // Linking sends the phone's key to alice and to the laptop; each sends its own back.
    let phone = carol.link_device(&server, "phone", 1);
    let rooms = phone.run(&["--json", "rooms", "list"]).ok().json();
    assert!(rooms.to_string().contains("team"), "{rooms}");
    alice.inbox();
    carol.inbox();
    assert!(
        room_entries(&phone, "#team").is_empty(),
        "nothing from before the phone was linked"
    );

    alice.run(&["send", "#team", "hello both"]).ok();
    assert_eq!(
        room_entries(&carol, "#team"),
        [entry("alice", "hello both", "received")]
    );
    assert_eq!(
        room_entries(&phone, "#team"),
        [entry("alice", "hello both", "received")]
    );

    phone.run(&["send", "#team", "from the phone"]).ok();
    alice.expect_inbox(&["carol: from the phone"]);
    assert_eq!(
        room_entries(&carol, "#team"),
        [entry("carol", "from the phone", "synced")],
        "the laptop shows it as carol's own"
    );
    carol.run(&["send", "#team", "from the laptop"]).ok();
    alice.expect_inbox(&["carol: from the laptop"]);
    assert_eq!(
        room_entries(&phone, "#team"),
        [entry("carol", "from the laptop", "synced")]
    );
    let shown = phone.run(&["inbox", "--all"]).ok().stdout;
    assert!(
        shown.contains("#team carol: from the laptop (sent from another of your devices)"),
        "{shown}"
    );

    // A room made after the link: the laptop hands the phone its roster with its key.
    carol.run(&["rooms", "create", "club"]).ok();
    carol.run(&["rooms", "invite", "club", "@alice"]).ok();
    alice.run(&["rooms", "accept", "club"]).ok();
    carol.inbox();
    for _ in 0..2 {
        phone.inbox();
        alice.inbox();
    }
    alice.run(&["send", "#club", "hello club"]).ok();
    assert_eq!(
        room_entries(&carol, "#club"),
        [entry("alice", "hello club", "received")]
    );
    assert_eq!(
        room_entries(&phone, "#club"),
        [entry("alice", "hello club", "received")]
    );
    phone.run(&["send", "#club", "phone in the club"]).ok();
    alice.expect_inbox(&["carol: phone in the club"]);
}

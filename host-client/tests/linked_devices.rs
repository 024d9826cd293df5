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
    alice.run(&["send", "@carol", "hello both"]).ok();
    carol.expect_inbox(&["alice: hello both"]);
    phone.expect_inbox(&["alice: hello both"]);
    let status = alice.run(&["--json", "status", "--offline"]).ok().json();
    let c = contact(&status, "carol");
    assert_eq!(
        c["key_changed"], false,
        "a new device is not a new identity: {c}"
    );
    assert_eq!(c["session_devices"], serde_json::json!([1, 2]), "{c}");

    // The phone writes as carol; alice sees carol, with the same safety number.
    phone.run(&["send", "@alice", "from the phone"]).ok();
    alice.expect_inbox(&["carol: from the phone"]);
    alice.run(&["send", "@carol", "reply"]).ok();
    carol.expect_inbox(&["alice: reply"]);
    phone.expect_inbox(&["alice: reply"]);

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

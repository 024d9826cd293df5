//! One account from several terminals while `chat` is open, and the room commands typed in a
//! chat (`/invite`, `/remove`, `/leave`), against the real binary and a real server.
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

fn chat(u: &User, target: &str) -> Live {
    let mut c = u.command();
    c.args(["chat", target]);
    let mut live = Live::spawn(c);
    live.expect(&format!("Chat with {target}"), WAIT);
    live
}

/// While `chat` runs, `send`, `inbox`, `verify` and `rooms` work from another terminal, and the
/// two processes never fork the ratchet state: Bob reads, in order, what both sent.
#[test]
fn commands_work_while_a_chat_is_open() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    bob.run(&["send", "@alice", "hello alice"]).ok();

    let mut live = chat(&alice, "@bob");
    live.expect("bob: hello alice", WAIT);

    // Another terminal, same account, while the chat is open.
    alice.run(&["send", "@bob", "from a script"]).ok();
    live.send_line("from the chat");
    live.expect("alice: from the chat", WAIT);
    alice.run(&["send", "@bob", "from the script again"]).ok();
    let v = alice
        .run(&["--json", "rooms", "create", "team"])
        .ok()
        .json();
    assert_eq!(v["event"], "created");
    let v = alice.run(&["--json", "verify", "@bob"]).ok().json();
    assert_eq!(v["user"], "bob");
    alice.run(&["--json", "inbox", "--wait", "1"]).ok();
    bob.expect_inbox(&[
        "alice: from a script",
        "alice: from the chat",
        "alice: from the script again",
    ]);

    // The chat still receives, and still sends on the state the scripts advanced.
    bob.run(&["send", "@alice", "still listening?"]).ok();
    live.expect("bob: still listening?", WAIT);
    live.send_line("yes");
    live.expect("alice: yes", WAIT);
    assert_eq!(live.finish(WAIT), 0);
    bob.expect_inbox(&["alice: yes"]);
}

/// `/invite`, `/remove` and `/leave` in a room chat: each change in the room's timeline, and
/// the members (from the signed roster) named.
#[test]
fn room_commands_in_a_chat_name_the_members() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    let mut carol = User::new("carol", &server);
    alice.register();
    bob.register();
    carol.register();
    alice.run(&["rooms", "create", "team"]).ok();
    alice.run(&["rooms", "invite", "team", "@bob"]).ok();
    bob.run(&["rooms", "accept", "team"]).ok();

    let mut admin = chat(&alice, "#team");
    admin.send_line("/invite @carol");
    admin.expect("#team * alice added carol", WAIT);
    admin.expect(
        "invited carol to #team; they get the room key when they accept",
        WAIT,
    );
    carol.run(&["rooms", "accept", "team"]).ok();
    admin.send_line("/members");
    admin.expect("members of #team: alice (admin), bob, carol", WAIT);
    admin.send_line("/remove @carol");
    admin.expect("#team * alice removed carol", WAIT);
    admin.expect("removed carol from #team; the room key was replaced", WAIT);
    admin.expect("members of #team: alice (admin), bob", WAIT);
    admin.send_line("/remove");
    admin.expect("usage: /remove @user", WAIT);

    let mut member = chat(&bob, "#team");
    member.send_line("/leave");
    member.expect("left #team", WAIT);
    assert_eq!(member.finish(WAIT), 0, "the chat ends after /leave");
    admin.send_line("/members");
    admin.expect("members of #team: alice (admin)", WAIT);
    assert_eq!(admin.finish(WAIT), 0);
    let listed = bob.run(&["--json", "rooms", "list"]).ok().json();
    assert_eq!(listed["rooms"], serde_json::json!([]));
}

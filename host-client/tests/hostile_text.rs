//! Text from others cannot drive the terminal (issue 11, "hostile text"): escape sequences,
//! window titles, bells, carriage returns, bidi overrides and lines that pose as another
//! message are shown inert by `inbox` and by `chat` in a pseudo-terminal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests fail on any surprise"
)]

mod common;

use core::time::Duration;

use common::{TestServer, User};

const WAIT: Duration = Duration::from_secs(30);

/// What a peer (or the server, via names and errors) might send to take over a terminal.
const HOSTILE: [&str; 4] = [
    "clear\u{1b}[2J\u{1b}[H title\u{1b}]0;pwned\u{7} bell",
    "first line\r\n23:59 carol: this line is not from carol\nand\rover",
    "invoice\u{202e}gnp.exe \u{2066}isolate",
    "c1 \u{9b}31m red",
];

/// Bytes that must never reach the terminal from a message.
fn assert_inert(out: &str) {
    for bad in [
        "\u{1b}[2J",
        "\u{1b}[H",
        "\u{1b}]0;",
        "\u{7}",
        "\u{9b}",
        "\u{202e}",
        "\u{2066}",
        "\r23:59",
        "\n23:59 carol",
    ] {
        assert!(!out.contains(bad), "{bad:?} reached the terminal:\n{out}");
    }
    for shown in [
        "clear␛[2J␛[H title␛]0;pwned␇ bell",
        "invoice<U+202E>gnp.exe <U+2066>isolate",
        "c1 \\u{9b}31m red",
        "      23:59 carol: this line is not from carol",
        "      and␍over",
    ] {
        assert!(out.contains(shown), "{shown:?} not shown:\n{out}");
    }
}

#[test]
fn inbox_shows_hostile_text_inert() {
    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    for text in HOSTILE {
        bob.run(&["send", "@alice", text]).ok();
    }
    let run = alice.run_with(&["inbox"], |c| {
        c.env("NO_COLOR", "1");
    });
    let out = run.ok().stdout;
    assert_inert(&out);
}

#[test]
fn chat_in_a_pseudo_terminal_shows_hostile_text_inert() {
    use expectrl::Expect as _;

    let server = TestServer::start();
    let mut alice = User::new("alice", &server);
    let mut bob = User::new("bob", &server);
    alice.register();
    bob.register();
    bob.run(&["send", "@alice", "hello"]).ok();

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
    chat.expect("hello").unwrap();
    for text in HOSTILE {
        bob.run(&["send", "@alice", text]).ok();
    }
    bob.run(&["send", "@alice", "END-OF-HOSTILE"]).ok();
    let seen = chat.expect("END-OF-HOSTILE").unwrap();
    let out = String::from_utf8_lossy(seen.before()).into_owned();
    assert_inert(&out);
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

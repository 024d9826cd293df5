//! `names.json`: the grammar of usernames and room names (PROTOCOL.md §3.5), and which messages
//! the server pushes unasked (PROTOCOL.md §3.4), as every end must apply them.
//!
//! Username cases give the raw input and either `accept:<folded>` or `reject:Username`; room
//! cases give the name and `accept` or `reject:RoomName`. `pushes` lists the message names
//! `Message::is_push` is true for, from one example of every message.

use proto_core::names::{NameError, check_room_name, fold_username};
use serde_json::{Value, json};

fn name_error(e: NameError) -> &'static str {
    match e {
        NameError::Username => "Username",
        NameError::RoomName => "RoomName",
    }
}

const USERNAMES: &[(&str, &str)] = &[
    ("alice", "the smallest valid form"),
    ("  Alice_1 ", "trimmed and folded to lower case"),
    ("BOB", "upper case folds"),
    ("abc", "three characters, the minimum"),
    (
        "abcdefghijklmnopqrstuvwxyz012345",
        "32 characters, the maximum",
    ),
    ("ab", "two characters, too short"),
    ("", "empty"),
    ("   ", "only spaces"),
    (
        "abcdefghijklmnopqrstuvwxyz0123456",
        "33 characters, too long",
    ),
    ("al ice", "a space inside"),
    ("al-ice", "a hyphen"),
    ("@alice", "a leading @ (clients strip it before checking)"),
    ("ålice", "a letter outside a-z"),
    (
        "\u{212A}elvin",
        "the Kelvin sign, which Unicode folds to k but ASCII folding does not",
    ),
    ("bob\u{0}", "a NUL byte"),
];

const ROOMS: &[(&str, &str)] = &[
    ("team", "plain"),
    ("team-room_2", "hyphen, underscore and digit"),
    ("a", "one character, the minimum"),
    (
        "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr",
        "32 characters, the maximum",
    ),
    ("", "empty"),
    (
        "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr",
        "33 characters, too long",
    ),
    ("Team", "upper case is not folded for rooms"),
    ("team room", "a space"),
    ("#team", "a leading # (clients strip it before checking)"),
    ("café", "a letter outside a-z"),
];

fn username_case(input: &str, description: &str) -> Value {
    let mut buf = [0u8; proto_core::names::USERNAME_MAX_LEN];
    let expect = match fold_username(input, &mut buf) {
        Ok(folded) => format!("accept:{folded}"),
        Err(e) => format!("reject:{}", name_error(e)),
    };
    json!({ "kind": "username", "description": description, "input": input, "expect": expect })
}

fn room_case(input: &str, description: &str) -> Value {
    let expect = match check_room_name(input) {
        Ok(()) => "accept".to_owned(),
        Err(e) => format!("reject:{}", name_error(e)),
    };
    json!({ "kind": "room", "description": description, "input": input, "expect": expect })
}

fn pushes() -> Vec<&'static str> {
    crate::frames::samples()
        .iter()
        .filter(|(_, m)| m.is_push())
        .map(|(_, m)| m.name())
        .collect()
}

/// `names.json`.
pub fn generate() -> Vec<(&'static str, Value)> {
    let mut cases: Vec<Value> = USERNAMES.iter().map(|(i, d)| username_case(i, d)).collect();
    cases.extend(ROOMS.iter().map(|(i, d)| room_case(i, d)));
    vec![(
        "names.json",
        json!({
            "description": "Usernames: trim, ASCII case folding, then [a-z0-9_]{3,32}. Room names: [a-z0-9_-]{1,32}, no folding (PROTOCOL.md §3.5). `pushes`: the messages the server sends unasked (PROTOCOL.md §3.4).",
            "pushes": pushes(),
            "cases": cases,
        }),
    )]
}

/// Checks `names.json` against proto-core.
pub fn check(file: &str, v: &Value) -> Option<Result<usize, String>> {
    (file == "names.json").then(|| check_names(v))
}

fn check_names(v: &Value) -> Result<usize, String> {
    let want: Vec<&str> = v
        .get("pushes")
        .and_then(Value::as_array)
        .ok_or("missing `pushes`")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if want != pushes() {
        return Err(format!("pushes: file {want:?}, core {:?}", pushes()));
    }
    let cases = crate::cases(v)?;
    for case in cases {
        let input = case
            .get("input")
            .and_then(Value::as_str)
            .ok_or("missing `input`")?;
        let description = case
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        let got = match case.get("kind").and_then(Value::as_str) {
            Some("username") => username_case(input, description),
            Some("room") => room_case(input, description),
            other => return Err(format!("unknown kind {other:?}")),
        };
        if got.get("expect") != case.get("expect") {
            return Err(format!(
                "{input:?}: file says {:?}, core says {:?}",
                case.get("expect"),
                got.get("expect")
            ));
        }
    }
    Ok(cases.len() + 1)
}

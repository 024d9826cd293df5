//! Body vectors (`content.json`): the decrypted [`Content`] encodings and the one-to-one
//! envelope's kinds, accepted and rejected.

use proto_core::{
    Content, DecodeError, ENVELOPE_PREKEY, ENVELOPE_RATCHET, Envelope, EnvelopeError,
    PREKEY_HEADER_LEN,
};
use serde_json::{Value, json};

use crate::seeded::Filler;
use crate::{cases, hex_field};

fn h(b: &[u8]) -> Value {
    Value::String(hex::encode(b))
}

fn content_fields(c: &Content<'_>) -> Value {
    match c {
        Content::Text { id, sent_at, text } => {
            json!({ "type": "Text", "id": id, "sent_at": sent_at, "text": text })
        }
        Content::RoomKey { room, distribution } => {
            json!({ "type": "RoomKey", "room": room, "distribution": h(distribution) })
        }
        Content::SessionReset => json!({ "type": "SessionReset" }),
        Content::Roster { room, roster } => {
            json!({ "type": "Roster", "room": room, "roster": h(roster) })
        }
        Content::Sent {
            to,
            id,
            sent_at,
            text,
        } => {
            json!({ "type": "Sent", "to": to, "id": id, "sent_at": sent_at, "text": text })
        }
    }
}

fn encode(c: &Content<'_>) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    let n = c.encode(&mut out).unwrap_or(0);
    out.truncate(n);
    out
}

/// A syntactically valid prekey header: version 1, keys, SPK id 7, OPK id 300.
fn header_bytes(f: &mut Filler) -> Vec<u8> {
    let mut hdr = vec![1u8];
    hdr.extend_from_slice(&f.bytes::<96>());
    hdr.extend_from_slice(&7u32.to_be_bytes());
    hdr.push(1);
    hdr.extend_from_slice(&300u32.to_be_bytes());
    debug_assert_eq!(hdr.len(), PREKEY_HEADER_LEN);
    hdr
}

/// The body vector file.
pub fn generate() -> Vec<(&'static str, Value)> {
    let mut f = Filler::new(0xc0_7e47);
    let dist = f.leaked(121);
    let contents = [
        (
            "a text message",
            Content::Text {
                id: 0x1122_3344_5566_7788,
                sent_at: 1_764_000_000,
                text: "hello, Bob 👋",
            },
        ),
        (
            "markup is just text",
            Content::Text {
                id: 1,
                sent_at: 2,
                text: "<img src=x onerror=alert(1)>",
            },
        ),
        (
            "a room sender key",
            Content::RoomKey {
                room: "family",
                distribution: dist,
            },
        ),
        ("please start a new session", Content::SessionReset),
        (
            "a room's signed roster, from the admin who added the receiver",
            Content::Roster {
                room: "family",
                roster: &[0x5a; 40],
            },
        ),
        (
            "a text sent from another of the account's devices (a sent transcript)",
            Content::Sent {
                to: "bob",
                id: 0x1122_3344_5566_7788,
                sent_at: 1_764_000_000,
                text: "hello, Bob 👋",
            },
        ),
    ];
    let mut out: Vec<Value> = contents
        .iter()
        .map(|(d, c)| {
            json!({
                "description": d, "kind": "content", "fields": content_fields(c),
                "bytes": h(&encode(c)), "expect": "accept",
            })
        })
        .collect();
    let mut reject = |d: &str, bytes: Vec<u8>, e: DecodeError| {
        out.push(json!({ "description": d, "kind": "content", "bytes": h(&bytes), "expect": format!("reject:{}", e.name()) }));
    };
    reject("content tag 5 is unknown", vec![5], DecodeError::UnknownTag);
    reject(
        "a sent transcript cut short (no text)",
        vec![4, 3, b'b', b'o', b'b', 1, 2],
        DecodeError::Truncated,
    );
    reject(
        "a roster content cut short (no room)",
        vec![3],
        DecodeError::Truncated,
    );
    reject(
        "text cut short",
        encode(&contents[0].1)[..12].to_vec(),
        DecodeError::Truncated,
    );
    let mut trailing = encode(&Content::SessionReset);
    trailing.push(0);
    reject(
        "a byte after the content",
        trailing,
        DecodeError::TrailingBytes,
    );
    reject(
        "text not UTF-8",
        vec![0, 1, 2, 1, 0xff],
        DecodeError::InvalidUtf8,
    );

    let header = header_bytes(&mut f);
    let message = f.leaked(60).to_vec();
    let mut prekey = vec![ENVELOPE_PREKEY];
    prekey.extend_from_slice(&header);
    prekey.extend_from_slice(&message);
    let mut ratchet = vec![ENVELOPE_RATCHET];
    ratchet.extend_from_slice(&message);
    let mut kem_header = 0x0000_012cu32.to_be_bytes().to_vec();
    kem_header.extend_from_slice(f.leaked(proto_core::KEM_CIPHERTEXT_LEN));
    let mut pq = vec![proto_core::ENVELOPE_PQ_PREKEY];
    pq.extend_from_slice(&header);
    pq.extend_from_slice(&kem_header);
    pq.extend_from_slice(&message);
    out.push(json!({ "description": "prekey envelope", "kind": "envelope", "bytes": h(&prekey),
        "envelope": "Prekey", "prekey_header": h(&header), "message": h(&message), "expect": "accept" }));
    out.push(
        json!({ "description": "ratchet envelope", "kind": "envelope", "bytes": h(&ratchet),
        "envelope": "Ratchet", "message": h(&message), "expect": "accept" }),
    );
    out.push(
        json!({ "description": "post-quantum prekey envelope (PQXDH)", "kind": "envelope",
        "bytes": h(&pq), "envelope": "PqPrekey", "prekey_header": h(&header),
        "kem_header": h(&kem_header), "message": h(&message), "expect": "accept" }),
    );
    let mut env_reject = |d: &str, bytes: Vec<u8>, e: EnvelopeError| {
        out.push(json!({ "description": d, "kind": "envelope", "bytes": h(&bytes), "expect": format!("reject:{}", e.name()) }));
    };
    env_reject("empty body", vec![], EnvelopeError::Truncated);
    env_reject(
        "ratchet kind with no message",
        vec![ENVELOPE_RATCHET],
        EnvelopeError::Truncated,
    );
    env_reject(
        "prekey header cut short",
        prekey[..50].to_vec(),
        EnvelopeError::Truncated,
    );
    env_reject(
        "unknown kind 0x04",
        vec![4, 1, 2],
        EnvelopeError::UnknownKind,
    );
    let pq_prefix = 1 + PREKEY_HEADER_LEN + proto_core::KEM_HEADER_LEN;
    env_reject(
        "post-quantum envelope with no ratchet message",
        pq[..pq_prefix].to_vec(),
        EnvelopeError::Truncated,
    );
    env_reject(
        "post-quantum envelope whose KEM ciphertext is one byte short",
        pq[..pq_prefix - 1].to_vec(),
        EnvelopeError::Truncated,
    );
    let mut pq_bad_version = pq.clone();
    pq_bad_version[1] = 2;
    env_reject(
        "post-quantum envelope with prekey header version 2",
        pq_bad_version,
        EnvelopeError::BadPrekeyHeader,
    );
    let mut bad_version = prekey.clone();
    bad_version[1] = 2;
    env_reject(
        "prekey header version 2",
        bad_version,
        EnvelopeError::BadPrekeyHeader,
    );
    for name in ["family", "ops-oncall", "a"] {
        out.push(json!({
            "description": format!("room id of `{name}`"), "kind": "room_id", "room": name,
            "room_id": h(&proto_core::room_id_for_name(name)), "expect": "accept",
        }));
    }
    // Room sender ids: an identity, then another identity, each for devices 1, 2 and the
    // largest id (the u32 is hashed big-endian).
    for (who, identity) in [("alice", [0x11u8; 32]), ("bob", [0xb0; 32])] {
        for device in [1u32, 2, u32::MAX] {
            out.push(json!({
                "description": format!("room sender id of {who}'s device {device}"),
                "kind": "room_sender_id", "identity_sig": h(&identity), "device": device,
                "sender_id": h(&proto_core::room_sender_id(&identity, device)), "expect": "accept",
            }));
        }
    }
    vec![(
        "content.json",
        json!({
            "description": "Message bodies: a one-to-one body is kind 0x01 (prekey: 106-byte X3DH header, then the ratchet message), 0x02 (ratchet message) or 0x03 (post-quantum prekey: X3DH header, kem_id u32 BE and 1,088-byte ML-KEM ciphertext, then the ratchet message); the decrypted plaintext is a postcard Content.",
            "cases": out,
        }),
    )]
}

fn check_case(case: &Value) -> Result<(), String> {
    let bytes = if case["kind"] == "room_id" || case["kind"] == "room_sender_id" {
        Vec::new()
    } else {
        hex_field(case, "bytes")?
    };
    let expect = case
        .get("expect")
        .and_then(Value::as_str)
        .ok_or("missing expect")?;
    match case.get("kind").and_then(Value::as_str) {
        Some("content") => match (Content::decode(&bytes), expect) {
            (Ok(c), "accept") => {
                if Some(&content_fields(&c)) != case.get("fields") {
                    return Err("decoded fields differ".into());
                }
                if encode(&c) != bytes {
                    return Err("re-encoding differs".into());
                }
                Ok(())
            }
            (Err(e), want) if want == format!("reject:{}", e.name()) => Ok(()),
            (got, want) => Err(format!("got {got:?}, want {want}")),
        },
        Some("envelope") => match (Envelope::parse(&bytes), expect) {
            (Ok(env), "accept") => {
                if hex::encode(env.message()) != case["message"].as_str().unwrap_or("") {
                    return Err("message part differs".into());
                }
                match env {
                    Envelope::Prekey { header, .. } if case["envelope"] == "Prekey" => {
                        if hex::encode(header.to_bytes())
                            != case["prekey_header"].as_str().unwrap_or("")
                        {
                            return Err("prekey header differs".into());
                        }
                        Ok(())
                    }
                    Envelope::PqPrekey { header, .. } if case["envelope"] == "PqPrekey" => {
                        let kem = env.kem_header().map(|k| hex::encode(k.to_bytes()));
                        if hex::encode(header.to_bytes())
                            != case["prekey_header"].as_str().unwrap_or("")
                            || kem.as_deref() != case["kem_header"].as_str()
                        {
                            return Err("prekey or KEM header differs".into());
                        }
                        Ok(())
                    }
                    Envelope::Ratchet { .. } if case["envelope"] == "Ratchet" => Ok(()),
                    other => Err(format!("parsed as {other:?}")),
                }
            }
            (Err(e), want) if want == format!("reject:{}", e.name()) => Ok(()),
            (got, want) => Err(format!("got {got:?}, want {want}")),
        },
        Some("room_id") => {
            let name = case["room"].as_str().ok_or("missing room")?;
            if hex::encode(proto_core::room_id_for_name(name))
                == case["room_id"].as_str().unwrap_or("")
            {
                Ok(())
            } else {
                Err("room id differs".into())
            }
        }
        Some("room_sender_id") => {
            let identity: [u8; 32] = hex_field(case, "identity_sig")?
                .try_into()
                .map_err(|_| "identity_sig is not 32 bytes")?;
            let device = case["device"]
                .as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .ok_or("missing device")?;
            if hex::encode(proto_core::room_sender_id(&identity, device))
                == case["sender_id"].as_str().unwrap_or("")
            {
                Ok(())
            } else {
                Err("room sender id differs".into())
            }
        }
        other => Err(format!("unknown case kind {other:?}")),
    }
}

/// Checks `content.json`; `None` for any other file.
pub fn check(file: &str, v: &Value) -> Option<Result<usize, String>> {
    if file != "content.json" {
        return None;
    }
    Some((|| {
        let cases = cases(v)?;
        for (i, case) in cases.iter().enumerate() {
            check_case(case).map_err(|e| format!("content.json case {i}: {e}"))?;
        }
        Ok(cases.len())
    })())
}

//! Crypto vectors: X3DH, the Double Ratchet, rooms, safety numbers, and rejections.
//!
//! Every case is produced by one function per topic from its *inputs* (fixed secrets,
//! plaintexts, the order of events). The generator derives the inputs from labels; the checker
//! reads them back from the file, runs the same function, and compares every recorded field.
//! Each function computes every intermediate value twice: once from the bare primitives
//! (`proto_core::primitives`: X25519, HKDF, HMAC, ChaCha20-Poly1305, Ed25519), following
//! PROTOCOL.md §4 step by step, and once through proto-core's protocol API (sessions, rooms, with
//! the `vectors` test hooks for fixed keys). The two must agree byte for byte, and with the file.
//!
//! Files: `x3dh.json`, `ratchet.json`, `room.json`, `fingerprint.json`, `crypto-reject.json`,
//! `devices.json`, `roster.json`, `roster-invite.json`, `pqxdh.json`.

use proto_core::primitives::{hkdf_sha256, hmac_sha256};
use serde_json::{Value, json};

use crate::{cases, hex_field};

mod devices;
mod fingerprint;
mod pqxdh;
mod ratchet;
mod reject;
mod room;
mod roster;
mod x3dh;

use devices::{check_devices, gen_devices};
use fingerprint::{check_fingerprint, gen_fingerprint};
use pqxdh::{check_pqxdh, gen_pqxdh};
use ratchet::{check_ratchet, gen_ratchet};
use reject::{check_reject, gen_reject};
use room::{check_room, gen_room};
use roster::{check_roster, check_roster_invite, gen_roster, gen_roster_invite};
use x3dh::{check_x3dh, gen_x3dh};

/// A generator of one vector file.
type Generator = fn() -> Result<Value, String>;

/// Chain key and signing secret of a member in an epoch.
type EpochKeys = Box<dyn Fn(u32, usize) -> Option<([u8; 32], [u8; 32])>>;

/// The crypto vector files.
pub fn generate() -> Vec<(&'static str, Value)> {
    let files: [(&'static str, Generator); 9] = [
        ("x3dh.json", gen_x3dh),
        ("ratchet.json", gen_ratchet),
        ("room.json", gen_room),
        ("fingerprint.json", gen_fingerprint),
        ("crypto-reject.json", gen_reject),
        ("devices.json", gen_devices),
        ("roster.json", gen_roster),
        ("roster-invite.json", gen_roster_invite),
        ("pqxdh.json", gen_pqxdh),
    ];
    files
        .into_iter()
        .map(|(name, f)| match f() {
            Ok(v) => (name, v),
            // A generator that cannot reproduce its own vectors is a bug in proto-core or here;
            // write the reason into the file so the check (and review) fails loudly.
            Err(e) => (
                name,
                json!({ "description": format!("GENERATION FAILED: {e}"), "cases": [] }),
            ),
        })
        .collect()
}

/// Checks a crypto vector file; `None` if the file is not a crypto one.
pub fn check(file: &str, v: &Value) -> Option<Result<usize, String>> {
    let checker: fn(&Value) -> Result<(), String> = match file {
        "x3dh.json" => check_x3dh,
        "ratchet.json" => check_ratchet,
        "room.json" => check_room,
        "fingerprint.json" => check_fingerprint,
        "crypto-reject.json" => check_reject,
        "devices.json" => check_devices,
        "roster.json" => check_roster,
        "roster-invite.json" => check_roster_invite,
        "pqxdh.json" => check_pqxdh,
        _ => return None,
    };
    Some((|| {
        let list = cases(v)?;
        if list.is_empty() {
            return Err(format!("{file}: no cases"));
        }
        for (i, case) in list.iter().enumerate() {
            let what = case
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("?");
            checker(case).map_err(|e| format!("{file} case {i} ({what}): {e}"))?;
        }
        Ok(list.len())
    })())
}

type R<T> = Result<T, String>;

/// A fixed secret for the vectors, from a label (HMAC-SHA256 under a constant key).
fn secret(label: &str) -> [u8; 32] {
    hmac_sha256(b"Sealroom conformance vectors v1", label.as_bytes())
}

fn hx(b: &[u8]) -> Value {
    Value::String(hex::encode(b))
}

fn arr<const N: usize>(case: &Value, field: &str) -> R<[u8; N]> {
    let v = hex_field(case, field)?;
    v.as_slice()
        .try_into()
        .map_err(|_| format!("field `{field}` is not {N} bytes"))
}

fn field<'a>(case: &'a Value, name: &str) -> R<&'a Value> {
    case.get(name)
        .ok_or_else(|| format!("missing field `{name}`"))
}

fn text<'a>(case: &'a Value, name: &str) -> R<&'a str> {
    field(case, name)?
        .as_str()
        .ok_or_else(|| format!("field `{name}` is not a string"))
}

fn number(case: &Value, name: &str) -> R<u64> {
    field(case, name)?
        .as_u64()
        .ok_or_else(|| format!("field `{name}` is not a number"))
}

fn list<'a>(case: &'a Value, name: &str) -> R<&'a Vec<Value>> {
    field(case, name)?
        .as_array()
        .ok_or_else(|| format!("field `{name}` is not a list"))
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> R<()> {
    if ok { Ok(()) } else { Err(what()) }
}

/// The first place two JSON values differ, as a path.
fn diff(path: &str, want: &Value, got: &Value) -> R<()> {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys()) {
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                diff(&format!("{path}.{key}"), x, y)?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y)?;
            }
            Ok(())
        }
        _ if want == got => Ok(()),
        _ => Err(format!("{path}: file has {want}, recomputed {got}")),
    }
}

/// `HKDF(salt = 32 zero bytes, ikm, info, 44)` → (key, nonce).
fn key_nonce(mk: &[u8; 32], info: &[u8]) -> ([u8; 32], [u8; 12]) {
    let mut okm = [0u8; 44];
    let _ = hkdf_sha256(&[0; 32], mk, info, &mut okm);
    let mut key = [0u8; 32];
    let mut nonce = [0u8; 12];
    key.copy_from_slice(&okm[..32]);
    nonce.copy_from_slice(&okm[32..]);
    (key, nonce)
}

fn expect_accept(case: &Value) -> R<()> {
    let e = text(case, "expect")?;
    ensure(e == "accept", || {
        format!("expect is {e:?}, this checker only knows \"accept\" here")
    })
}

//! `fingerprint.json`: safety numbers of pairs of identities.

use proto_core::primitives::{ed25519_public, x25519_public};
use proto_core::{IdentityPublicKey, SAFETY_NUMBER_LEN, party_fingerprint, safety_number};
use serde_json::{Value, json};

use super::*;

pub(super) fn fingerprint_case(
    description: &str,
    parties: [(&str, [u8; 32], [u8; 32]); 2],
) -> Value {
    let side = |(name, sig, dh): (&str, [u8; 32], [u8; 32])| {
        let id = IdentityPublicKey { signing: sig, dh };
        let digits = party_fingerprint(&id, name);
        (
            id,
            json!({
                "username": name,
                "identity_sig_public": hx(&sig),
                "identity_dh_public": hx(&dh),
                "digits": String::from_utf8_lossy(&digits),
            }),
        )
    };
    let (a, a_json) = side(parties[0]);
    let (b, b_json) = side(parties[1]);
    let mut number = [0u8; SAFETY_NUMBER_LEN];
    safety_number(&a, parties[0].0, &b, parties[1].0, &mut number);
    json!({
        "description": description,
        "expect": "accept",
        "local": a_json,
        "remote": b_json,
        "safety_number": String::from_utf8_lossy(&number),
    })
}

pub(super) fn gen_fingerprint() -> R<Value> {
    let party = |label: &str, name: &'static str| {
        (
            name,
            ed25519_public(&secret(&format!("{label}/sig"))),
            x25519_public(&secret(&format!("{label}/dh"))),
        )
    };
    let cases = vec![
        fingerprint_case(
            "alice and bob",
            [party("fp/alice", "alice"), party("fp/bob", "bob")],
        ),
        fingerprint_case(
            "the same pair seen from bob's side: the same 60 digits",
            [party("fp/bob", "bob"), party("fp/alice", "alice")],
        ),
        fingerprint_case(
            "bob's identity key changed: a different safety number",
            [party("fp/alice", "alice"), party("fp/bob-new", "bob")],
        ),
        fingerprint_case(
            "non-ASCII username (UTF-8 bytes)",
            [party("fp/carol", "carolé"), party("fp/dave", "dave")],
        ),
    ];
    Ok(json!({
        "description": "Safety numbers (PROTOCOL.md §4.5): per party h = SHA-512(00 00 || IKs || IKd || username), then 5,199 times h = SHA-512(h || IKs || IKd); first 30 bytes as six 5-byte big-endian numbers mod 100000, five digits each; both parties' 30 digits sorted and joined.",
        "cases": cases,
    }))
}

pub(super) fn check_fingerprint(case: &Value) -> R<()> {
    expect_accept(case)?;
    let read = |side: &str| -> R<(String, [u8; 32], [u8; 32])> {
        let s = field(case, side)?;
        Ok((
            text(s, "username")?.to_owned(),
            arr(s, "identity_sig_public")?,
            arr(s, "identity_dh_public")?,
        ))
    };
    let (a, b) = (read("local")?, read("remote")?);
    let again = fingerprint_case(
        text(case, "description")?,
        [(&a.0, a.1, a.2), (&b.0, b.1, b.2)],
    );
    diff("", case, &again)
}

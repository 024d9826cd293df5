//! `devices.json`: linked devices (PROTOCOL.md §4.6) — a device's signed prekey bound to its
//! device id, the link code, and the link message; accepted and refused.
//!
//! Accepted cases are computed twice, from the bare primitives (the §4.6 steps) and through
//! proto-core's API, and must agree. Refused cases name the error by the name proto-core and
//! the web client give it.

use proto_core::primitives::{
    DEVICE_PREKEY_LABEL, LINK_INFO, ed25519_public, ed25519_sign, ed25519_verify, seal_in_place,
    x25519, x25519_public,
};
use proto_core::{
    IdentityKeyPair, LINK_OVERHEAD, LinkCode, LinkKeyPair, SignedPrekeyPair, SignedPrekeyPublic,
    seal_link_with_ephemeral,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;

/// The account identity of the vectors, from labels.
fn identity(label: &str) -> ([u8; 32], [u8; 32]) {
    (
        secret(&format!("{label}/identity/sig")),
        secret(&format!("{label}/identity/dh")),
    )
}

/// A device's signed prekey for `device_id`: signed message, public key and signature.
fn device_prekey_case(
    description: &str,
    sig_seed: &[u8; 32],
    dh_secret: &[u8; 32],
    device_id: u32,
    spk_id: u32,
    spk_secret: &[u8; 32],
) -> R<Value> {
    let spk_public = x25519_public(spk_secret);
    let mut signed = DEVICE_PREKEY_LABEL.to_vec();
    signed.extend_from_slice(&device_id.to_be_bytes());
    signed.extend_from_slice(&spk_public);
    let signature = ed25519_sign(sig_seed, &signed);
    let api = SignedPrekeyPair::from_secret_key_for_device(
        spk_id,
        device_id,
        spk_secret,
        &IdentityKeyPair::from_secrets(sig_seed, dh_secret),
    )
    .public();
    ensure(
        api.public == spk_public && api.signature == signature,
        || "the API's device prekey differs from the primitives'".to_owned(),
    )?;
    let signing = ed25519_public(sig_seed);
    api.verify_for_device(&signing, device_id)
        .map_err(|e| format!("the API refuses its own device prekey: {e}"))?;
    Ok(json!({
        "description": description,
        "kind": "device_prekey",
        "expect": "accept",
        "identity_sig_private": hx(sig_seed),
        "identity_dh_private": hx(dh_secret),
        "identity_sig_public": hx(&signing),
        "device_id": device_id,
        "signed_prekey_id": spk_id,
        "signed_prekey_private": hx(spk_secret),
        "signed_prekey_public": hx(&spk_public),
        "signed_message": hx(&signed),
        "signature": hx(&signature),
    }))
}

/// A prekey that must not verify for `device_id` under `identity_sig_public`.
fn device_prekey_reject(
    description: &str,
    signing: &[u8; 32],
    device_id: u32,
    public: &[u8; 32],
    signature: &[u8; 64],
) -> Value {
    json!({
        "description": description,
        "kind": "device_prekey",
        "expect": "reject:SignatureError",
        "identity_sig_public": hx(signing),
        "device_id": device_id,
        "signed_prekey_public": hx(public),
        "signature": hx(signature),
    })
}

/// A link code from the new device's secrets.
fn link_code_case(description: &str, link_secret: &[u8; 32], s: &[u8; 16]) -> R<Value> {
    let public = x25519_public(link_secret);
    let mut code = vec![1u8];
    code.extend_from_slice(&public);
    code.extend_from_slice(s);
    let link_id = &Sha256::digest(public)[..16];
    let api = LinkKeyPair::from_secrets(link_secret, s);
    ensure(
        api.code().encode().as_ref() == code.as_slice() && api.code().link_id() == link_id,
        || "the API's link code differs from the primitives'".to_owned(),
    )?;
    Ok(json!({
        "description": description,
        "kind": "link_code",
        "expect": "accept",
        "link_private": hx(link_secret),
        "link_secret": hx(s),
        "link_public": hx(&public),
        "code": hx(&code),
        "link_id": hx(link_id),
    }))
}

/// A link message: the existing device seals `state` for the code of (`link_secret`, `s`).
fn link_message_case(
    description: &str,
    link_secret: &[u8; 32],
    s: &[u8; 16],
    ephemeral: &[u8; 32],
    state: &[u8],
) -> R<Value> {
    let link_public = x25519_public(link_secret);
    let link_id = Sha256::digest(link_public)[..16].to_vec();
    let shared = x25519(*ephemeral, link_public);
    let mut okm = [0u8; 44];
    hkdf_sha256(s, &shared, LINK_INFO, &mut okm).map_err(|e| e.to_string())?;
    let key: [u8; 32] = okm[..32].try_into().map_err(|_| "key")?;
    let nonce: [u8; 12] = okm[32..].try_into().map_err(|_| "nonce")?;
    let mut body = state.to_vec();
    let tag = seal_in_place(&key, &nonce, &link_id, &mut body);
    let mut message = x25519_public(ephemeral).to_vec();
    message.extend_from_slice(&body);
    message.extend_from_slice(&tag);

    let new_device = LinkKeyPair::from_secrets(link_secret, s);
    let mut api = vec![0u8; state.len() + LINK_OVERHEAD];
    seal_link_with_ephemeral(ephemeral, new_device.code(), state, &mut api)
        .map_err(|e| e.to_string())?;
    ensure(api == message, || {
        "the API's link message differs from the primitives'".to_owned()
    })?;
    let mut opened = vec![0u8; state.len()];
    let n = new_device
        .open(&message, &mut opened)
        .map_err(|e| format!("the new device cannot open it: {e}"))?;
    ensure(&opened[..n] == state, || {
        "opened a different state".to_owned()
    })?;
    Ok(json!({
        "description": description,
        "kind": "link_message",
        "expect": "accept",
        "link_private": hx(link_secret),
        "link_secret": hx(s),
        "ephemeral_private": hx(ephemeral),
        "state": hx(state),
        "link_id": hx(&link_id),
        "shared": hx(&shared),
        "key": hx(&key),
        "nonce": hx(&nonce),
        "message": hx(&message),
    }))
}

/// Bytes the new device of (`link_secret`, `s`) must refuse with `expect`.
fn link_message_reject(
    description: &str,
    link_secret: &[u8; 32],
    s: &[u8; 16],
    message: &[u8],
    expect: &str,
) -> Value {
    json!({
        "description": description,
        "kind": "link_message",
        "expect": expect,
        "link_private": hx(link_secret),
        "link_secret": hx(s),
        "message": hx(message),
    })
}

fn link_code_reject(description: &str, code: &[u8], expect: &str) -> Value {
    json!({
        "description": description,
        "kind": "link_code",
        "expect": expect,
        "code": hx(code),
    })
}

fn s16(label: &str) -> [u8; 16] {
    let mut s = [0u8; 16];
    s.copy_from_slice(&secret(label)[..16]);
    s
}

pub(super) fn gen_devices() -> R<Value> {
    let (sig, dh) = identity("dev/alice");
    let (other_sig, _) = identity("dev/mallory");
    let spk = secret("dev/alice/device3/spk");
    let mut cases = vec![
        device_prekey_case("device 3's signed prekey", &sig, &dh, 3, 17, &spk)?,
        device_prekey_case(
            "the first device (id 1) of an account",
            &sig,
            &dh,
            1,
            2,
            &secret("dev/alice/device1/spk"),
        )?,
    ];
    let signing = ed25519_public(&sig);
    let spk_public = x25519_public(&spk);
    let for_device = |device_id: u32, seed: &[u8; 32]| {
        let mut m = DEVICE_PREKEY_LABEL.to_vec();
        m.extend_from_slice(&device_id.to_be_bytes());
        m.extend_from_slice(&spk_public);
        ed25519_sign(seed, &m)
    };
    let mut v1 = b"Sealroom SPK v1".to_vec();
    v1.extend_from_slice(&spk_public);
    cases.extend([
        device_prekey_reject(
            "device 3's prekey presented as device 4's (the server moved it)",
            &signing,
            4,
            &spk_public,
            &for_device(3, &sig),
        ),
        device_prekey_reject(
            "a v1 signature (no device id) presented as device 3's",
            &signing,
            3,
            &spk_public,
            &ed25519_sign(&sig, &v1),
        ),
        device_prekey_reject(
            "signed by another identity (a device the server added)",
            &signing,
            3,
            &spk_public,
            &for_device(3, &other_sig),
        ),
    ]);

    let (l1, s1) = (secret("dev/link/L"), s16("dev/link/S"));
    cases.push(link_code_case("a new device's link code", &l1, &s1)?);
    let code = LinkKeyPair::from_secrets(&l1, &s1).code().encode();
    let mut v2 = code.to_vec();
    v2[0] = 2;
    cases.extend([
        link_code_reject("48 bytes", &code[..48], "reject:CodeLength"),
        link_code_reject(
            "50 bytes",
            &[code.as_ref(), &[0]].concat(),
            "reject:CodeLength",
        ),
        link_code_reject("version 2", &v2, "reject:UnknownCodeVersion"),
    ]);

    let eph = secret("dev/link/E");
    let state = br#"{"identity":"...","contacts":{},"rooms":{}}"#;
    let accepted = link_message_case("an account sent to the new device", &l1, &s1, &eph, state)?;
    cases.push(link_message_case(
        "an empty state",
        &l1,
        &s1,
        &secret("dev/link/E2"),
        b"",
    )?);
    let message = hex_field(&accepted, "message")?;
    cases.push(accepted);
    let last = message.len() - 1;
    cases.extend([
        link_message_reject(
            "the tag altered",
            &l1,
            &s1,
            &reject::flip(message.clone(), last),
            "reject:Authentication",
        ),
        link_message_reject(
            "the sealed state altered",
            &l1,
            &s1,
            &reject::flip(message.clone(), 40),
            "reject:Authentication",
        ),
        link_message_reject(
            "opened with another code's secret S (the same link key)",
            &l1,
            &s16("dev/link/S-other"),
            &message,
            "reject:Authentication",
        ),
        link_message_reject(
            "opened by another new device (another link key)",
            &secret("dev/link/L-other"),
            &s1,
            &message,
            "reject:Authentication",
        ),
        link_message_reject(
            "47 bytes: shorter than E_pub and a tag",
            &l1,
            &s1,
            &message[..LINK_OVERHEAD - 1],
            "reject:Truncated",
        ),
        link_message_reject(
            "a small-order ephemeral key (all zero)",
            &l1,
            &s1,
            &[&[0u8; 32][..], &message[32..]].concat(),
            "reject:NonContributory",
        ),
    ]);
    Ok(json!({
        "description": "Linked devices (PROTOCOL.md §4.6). device_prekey: Ed25519(IKs, \"Sealroom SPK v2\" || device_id u32 BE || SPK), verified strictly; link_code: 01 || L_pub || S (49 bytes), link_id = SHA-256(L_pub)[0..16]; link_message: E_pub || ChaCha20-Poly1305(key, nonce, ad = link_id, state) with key || nonce = HKDF-SHA256(salt = S, ikm = X25519(E, L_pub), info = \"Sealroom Link v1\", 44).",
        "cases": cases,
    }))
}

fn refused(expect: &str, got: Result<(), String>) -> R<()> {
    match got {
        Err(name) if expect == format!("reject:{name}") => Ok(()),
        Err(name) => Err(format!("expected {expect}, refused with {name}")),
        Ok(()) => Err(format!("expected {expect}, accepted")),
    }
}

pub(super) fn check_devices(case: &Value) -> R<()> {
    let expect = text(case, "expect")?;
    let accept = expect == "accept";
    match text(case, "kind")? {
        "device_prekey" if accept => {
            let again = device_prekey_case(
                text(case, "description")?,
                &arr(case, "identity_sig_private")?,
                &arr(case, "identity_dh_private")?,
                u32::try_from(number(case, "device_id")?).map_err(|e| e.to_string())?,
                u32::try_from(number(case, "signed_prekey_id")?).map_err(|e| e.to_string())?,
                &arr(case, "signed_prekey_private")?,
            )?;
            diff("", case, &again)
        }
        "device_prekey" => {
            let spk = SignedPrekeyPublic {
                id: 0,
                public: arr(case, "signed_prekey_public")?,
                signature: arr(case, "signature")?,
            };
            let signing = arr(case, "identity_sig_public")?;
            let device_id = u32::try_from(number(case, "device_id")?).map_err(|e| e.to_string())?;
            let api = spk.verify_for_device(&signing, device_id);
            // The bare primitive agrees with the API.
            let mut m = DEVICE_PREKEY_LABEL.to_vec();
            m.extend_from_slice(&device_id.to_be_bytes());
            m.extend_from_slice(&spk.public);
            ensure(
                api.is_ok() == ed25519_verify(&signing, &m, &spk.signature).is_ok(),
                || "the API and the primitive disagree".to_owned(),
            )?;
            refused(expect, api.map_err(|_| "SignatureError".to_owned()))
        }
        "link_code" if accept => {
            let again = link_code_case(
                text(case, "description")?,
                &arr(case, "link_private")?,
                &arr(case, "link_secret")?,
            )?;
            let decoded = LinkCode::decode(&hex_field(case, "code")?)
                .map_err(|e| format!("the code does not decode: {e}"))?;
            ensure(
                decoded.link_id().as_slice() == hex_field(case, "link_id")?,
                || "the decoded code has another link id".to_owned(),
            )?;
            diff("", case, &again)
        }
        "link_code" => refused(
            expect,
            LinkCode::decode(&hex_field(case, "code")?)
                .map(|_| ())
                .map_err(|e| e.name().to_owned()),
        ),
        "link_message" if accept => {
            let again = link_message_case(
                text(case, "description")?,
                &arr(case, "link_private")?,
                &arr(case, "link_secret")?,
                &arr(case, "ephemeral_private")?,
                &hex_field(case, "state")?,
            )?;
            diff("", case, &again)
        }
        "link_message" => {
            let device =
                LinkKeyPair::from_secrets(&arr(case, "link_private")?, &arr(case, "link_secret")?);
            let message = hex_field(case, "message")?;
            let mut out = vec![0u8; message.len()];
            refused(
                expect,
                device
                    .open(&message, &mut out)
                    .map(|_| ())
                    .map_err(|e| e.name().to_owned()),
            )
        }
        other => Err(format!("unknown kind {other:?}")),
    }
}

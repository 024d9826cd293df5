//! `crypto-reject.json`: one case per way a message or bundle must be refused.

use proto_core::primitives::{ed25519_public, x25519_public};
use proto_core::{
    IdentityKeyPair, IdentityPublicKey, OneTimePrekeyPair, OneTimePrekeyPublic, PrekeyHeader,
    RATCHET_OVERHEAD, ROOM_OVERHEAD, RemoteBundle, Room, SenderKeyDistribution, Session,
    SignedPrekeyPair, X3dhAgreement,
};
use serde_json::{Value, json};

use super::x3dh::{X3dhInputs, x3dh_case};
use super::*;

/// Messages of a short conversation from `label` (Alice → Bob), encrypted through the API.
pub(super) fn alice_messages(
    label: &str,
    count: usize,
) -> R<(X3dhInputs, [u8; 106], Vec<Vec<u8>>)> {
    let x = X3dhInputs::from_labels(label, true);
    let (mut alice, header) =
        Session::<64>::initiate_with_fixed_ephemeral_for_tests(&x.alice(), &x.bundle(), &x.a_eph)
            .map_err(|e| format!("{e:?}"))?;
    let ratchet = secret(&format!("{label}/alice/ratchet"));
    let mut out = Vec::new();
    for i in 0..count {
        let pt = format!("message {i}");
        let mut buf = vec![0u8; pt.len() + RATCHET_OVERHEAD];
        alice
            .encrypt_with_fixed_ratchet_key_for_tests(&ratchet, pt.as_bytes(), &mut buf)
            .map_err(|e| format!("{e:?}"))?;
        out.push(buf);
    }
    Ok((x, header.to_bytes(), out))
}

pub(super) fn flip(mut bytes: Vec<u8>, at: usize) -> Vec<u8> {
    if let Some(b) = bytes.get_mut(at) {
        *b ^= 0x01;
    }
    bytes
}

pub(super) fn ratchet_reject(
    description: &str,
    x: &X3dhInputs,
    header: &[u8],
    prior: &[&Vec<u8>],
    message: &[u8],
    expect: &str,
) -> Value {
    let (_, responder) = x.json();
    json!({
        "description": description,
        "kind": "ratchet",
        "expect": expect,
        "responder": responder,
        "prekey_header": hx(header),
        "prior": prior.iter().map(|m| hx(m)).collect::<Vec<_>>(),
        "message": hx(message),
    })
}

/// Room rejection: a receiver at `receiver_epoch` that has `distribution`, decrypts `prior`,
/// then `message`.
pub(super) fn room_reject(
    description: &str,
    receiver_epoch: u32,
    distribution: &[u8],
    prior: &[&Vec<u8>],
    message: &[u8],
    expect: &str,
) -> Value {
    json!({
        "description": description,
        "kind": "room",
        "expect": expect,
        "receiver_epoch": receiver_epoch,
        "distribution": hx(distribution),
        "prior": prior.iter().map(|m| hx(m)).collect::<Vec<_>>(),
        "message": hx(message),
    })
}

pub(super) fn gen_reject() -> R<Value> {
    let mut cases = Vec::new();
    // Pairwise ratchet.
    let (x, header, ms) = alice_messages("reject/ratchet", 3)?;
    let m1 = &ms[1];
    cases.push(ratchet_reject(
        "tampered header: a bit of the ratchet public key",
        &x,
        &header,
        &[&ms[0]],
        &flip(m1.clone(), 5),
        "reject:Authentication",
    ));
    cases.push(ratchet_reject(
        "tampered header: a bit of pn",
        &x,
        &header,
        &[&ms[0]],
        &flip(m1.clone(), 35),
        "reject:Authentication",
    ));
    cases.push(ratchet_reject(
        "tampered ciphertext",
        &x,
        &header,
        &[&ms[0]],
        &flip(m1.clone(), 41),
        "reject:Authentication",
    ));
    cases.push(ratchet_reject(
        "tampered tag",
        &x,
        &header,
        &[&ms[0]],
        &flip(m1.clone(), m1.len() - 1),
        "reject:Authentication",
    ));
    let mut other_ad = header;
    other_ad[1] ^= 0x01; // IKs_A enters only the associated data, not any DH.
    cases.push(ratchet_reject(
        "tampered associated data: the prekey header names another IKs_A, so AD differs while SK does not",
        &x, &other_ad, &[], &ms[0], "reject:Authentication",
    ));
    cases.push(ratchet_reject(
        "replay: the same message twice",
        &x,
        &header,
        &[&ms[0], m1],
        m1,
        "reject:Replay",
    ));
    cases.push(ratchet_reject(
        "replay of the first (prekey) message",
        &x,
        &header,
        &[&ms[0]],
        &ms[0],
        "reject:Replay",
    ));
    let (x2, header2, many) = alice_messages("reject/skip", 67)?;
    cases.push(ratchet_reject(
        "beyond skip capacity: after message 0, message 66 would skip 65 keys (capacity 64)",
        &x2,
        &header2,
        &[&many[0]],
        &many[66],
        "reject:TooManySkipped",
    ));
    cases.push(ratchet_reject(
        "at skip capacity: after message 0, message 65 skips exactly 64 keys and is accepted",
        &x2,
        &header2,
        &[&many[0]],
        &many[65],
        "accept",
    ));
    // X3DH.
    let mut bad_sig = x3dh_case(
        "bad signed prekey signature",
        &X3dhInputs::from_labels("reject/x3dh", true),
    )?;
    if let Some(sig) = bad_sig.get_mut("signed_prekey_signature") {
        let mut bytes = hex::decode(sig.as_str().unwrap_or_default()).map_err(|e| e.to_string())?;
        bytes[10] ^= 0x01;
        *sig = hx(&bytes);
    }
    cases.push(json!({
        "description": "bad signed prekey signature (one bit flipped): the initiator refuses the bundle",
        "kind": "x3dh",
        "expect": "reject:BadPrekeySignature",
        "initiator": bad_sig["initiator"],
        "responder": bad_sig["responder"],
        "signed_prekey_signature": bad_sig["signed_prekey_signature"],
        "one_time_prekey_public": null,
    }));
    let good = x3dh_case("x", &X3dhInputs::from_labels("reject/x3dh", true))?;
    cases.push(json!({
        "description": "one-time prekey is a small-order point: the DH output is all zeros",
        "kind": "x3dh",
        "expect": "reject:NonContributory",
        "initiator": good["initiator"],
        "responder": good["responder"],
        "signed_prekey_signature": good["signed_prekey_signature"],
        "one_time_prekey_public": hx(&[0u8; 32]),
    }));
    // Rooms.
    let room_id: [u8; 16] = secret("reject/room/id")[..16].try_into().unwrap_or([0; 16]);
    let sender = ed25519_public(&secret("reject/room/sender"));
    let (ck0, sig0) = (
        secret("reject/room/epoch0/chain"),
        secret("reject/room/epoch0/signing"),
    );
    let mut room = Room::<4, 64>::create_with_fixed_keys_for_tests(room_id, sender, 0, &ck0, &sig0);
    let dist0 = room.distribution().to_bytes().to_vec();
    let seal = |room: &mut Room<4, 64>, pt: &[u8]| -> R<Vec<u8>> {
        let mut out = vec![0u8; pt.len() + ROOM_OVERHEAD];
        room.encrypt(pt, &mut out).map_err(|e| format!("{e:?}"))?;
        Ok(out)
    };
    let r0 = seal(&mut room, b"epoch 0 message")?;
    let r1 = seal(&mut room, b"another")?;
    cases.push(room_reject(
        "bad room signature (last byte flipped)",
        0,
        &dist0,
        &[],
        &flip(r0.clone(), r0.len() - 1),
        "reject:BadSignature",
    ));
    cases.push(room_reject(
        "tampered room ciphertext: the signature no longer verifies",
        0,
        &dist0,
        &[],
        &flip(r0.clone(), 60),
        "reject:BadSignature",
    ));
    cases.push(room_reject(
        "room replay",
        0,
        &dist0,
        &[&r0],
        &r0,
        "reject:Replay",
    ));
    cases.push(room_reject(
        "room messages out of order are accepted",
        0,
        &dist0,
        &[&r1],
        &r0,
        "accept",
    ));
    let (ck1, sig1) = (
        secret("reject/room/epoch1/chain"),
        secret("reject/room/epoch1/signing"),
    );
    room.start_epoch_with_fixed_keys_for_tests(1, &ck1, &sig1)
        .map_err(|e| format!("{e:?}"))?;
    let r2 = seal(&mut room, b"epoch 1 message")?;
    cases.push(room_reject(
        "wrong epoch: an epoch-1 message to a member that holds only the sender's epoch-0 key (e.g. a removed member)",
        0, &dist0, &[], &r2, "reject:WrongEpoch",
    ));
    let dist1 = room.distribution().to_bytes().to_vec();
    cases.push(room_reject(
        "wrong epoch: an epoch-0 message to a member already in epoch 1",
        1,
        &dist1,
        &[],
        &r0,
        "reject:WrongEpoch",
    ));
    // Every case must check here before it is written.
    for case in &cases {
        check_reject(case)?;
    }
    Ok(json!({
        "description": "Rejections: each case sets up a receiver from the given keys, processes `prior` (all accepted) and then `message`, which must give `expect`. kind \"ratchet\": Bob's session from the responder keys and prekey header; kind \"x3dh\": the initiator with the given bundle; kind \"room\": a room at receiver_epoch holding the sender's distribution.",
        "cases": cases,
    }))
}

pub(super) fn outcome<E: core::fmt::Debug>(r: Result<(), E>) -> String {
    match r {
        Ok(()) => "accept".to_owned(),
        Err(e) => format!("reject:{e:?}"),
    }
}

pub(super) fn check_reject(case: &Value) -> R<()> {
    let expect = text(case, "expect")?;
    let got = match text(case, "kind")? {
        "ratchet" => {
            let r = field(case, "responder")?;
            let bob = IdentityKeyPair::from_secrets(
                &arr(r, "identity_sig_private")?,
                &arr(r, "identity_dh_private")?,
            );
            let spk_id =
                u32::try_from(number(r, "signed_prekey_id")?).map_err(|e| e.to_string())?;
            let spk =
                SignedPrekeyPair::from_secret_key(spk_id, &arr(r, "signed_prekey_private")?, &bob);
            let opk = match r.get("one_time_prekey_private") {
                Some(Value::String(_)) => Some(OneTimePrekeyPair::from_secret_key(
                    u32::try_from(number(r, "one_time_prekey_id")?).map_err(|e| e.to_string())?,
                    &arr(r, "one_time_prekey_private")?,
                )),
                _ => None,
            };
            let header = hex_field(case, "prekey_header")?;
            let (header, _) = PrekeyHeader::parse(&header).map_err(|e| format!("{e:?}"))?;
            let mut session = Session::<64>::respond(&bob, &spk, opk.as_ref(), &header)
                .map_err(|e| format!("{e:?}"))?;
            for (i, p) in list(case, "prior")?.iter().enumerate() {
                let p = hex::decode(p.as_str().unwrap_or_default()).map_err(|e| e.to_string())?;
                let mut out = vec![0u8; p.len()];
                session
                    .decrypt(&p, &mut out)
                    .map_err(|e| format!("prior message {i}: {e:?}"))?;
            }
            let m = hex_field(case, "message")?;
            outcome(session.decrypt(&m, &mut vec![0u8; m.len()]).map(|_| ()))
        }
        "x3dh" => {
            let i = field(case, "initiator")?;
            let r = field(case, "responder")?;
            let alice = IdentityKeyPair::from_secrets(
                &arr(i, "identity_sig_private")?,
                &arr(i, "identity_dh_private")?,
            );
            let identity = IdentityPublicKey {
                signing: ed25519_public(&arr(r, "identity_sig_private")?),
                dh: x25519_public(&arr(r, "identity_dh_private")?),
            };
            let signed_prekey = proto_core::SignedPrekeyPublic {
                id: u32::try_from(number(r, "signed_prekey_id")?).map_err(|e| e.to_string())?,
                public: x25519_public(&arr(r, "signed_prekey_private")?),
                signature: arr(case, "signed_prekey_signature")?,
            };
            let one_time_prekey = match case.get("one_time_prekey_public") {
                Some(Value::String(_)) => Some(OneTimePrekeyPublic {
                    id: 1,
                    public: arr(case, "one_time_prekey_public")?,
                }),
                _ => None,
            };
            let bundle = RemoteBundle {
                identity,
                signed_prekey,
                one_time_prekey,
            };
            outcome(
                X3dhAgreement::initiate_with_fixed_ephemeral_for_tests(
                    &alice,
                    &bundle,
                    &arr(i, "ephemeral_private")?,
                )
                .map(|_| ()),
            )
        }
        "room" => {
            let dist_bytes = hex_field(case, "distribution")?;
            let dist =
                SenderKeyDistribution::from_bytes(&dist_bytes).map_err(|e| format!("{e:?}"))?;
            let epoch =
                u32::try_from(number(case, "receiver_epoch")?).map_err(|e| e.to_string())?;
            let me = [0xEEu8; 32];
            let mut room = Room::<4, 64>::create_with_fixed_keys_for_tests(
                *dist.room_id(),
                me,
                epoch,
                &[1; 32],
                &[2; 32],
            );
            room.add_member(dist.sender())
                .map_err(|e| format!("{e:?}"))?;
            room.handle_distribution(&dist, dist.sender())
                .map_err(|e| format!("{e:?}"))?;
            for (i, p) in list(case, "prior")?.iter().enumerate() {
                let p = hex::decode(p.as_str().unwrap_or_default()).map_err(|e| e.to_string())?;
                room.decrypt(&p, &mut vec![0u8; p.len()])
                    .map_err(|e| format!("prior message {i}: {e:?}"))?;
            }
            let m = hex_field(case, "message")?;
            outcome(room.decrypt(&m, &mut vec![0u8; m.len()]).map(|_| ()))
        }
        other => return Err(format!("unknown kind {other}")),
    };
    ensure(got == expect, || format!("expected {expect}, got {got}"))
}

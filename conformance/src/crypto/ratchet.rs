//! `ratchet.json`: Double Ratchet conversations replayed from their events, every key recorded.

use proto_core::primitives::{
    MESSAGE_INFO, RATCHET_INFO, hkdf_sha256, hmac_sha256, seal_in_place, x25519, x25519_public,
};
use proto_core::{RATCHET_OVERHEAD, Session};
use serde_json::{Map, Value, json};

use super::x3dh::{X3dhInputs, x3dh_by_hand};
use super::*;

#[derive(Clone, Copy)]
pub(super) enum Event {
    Send(usize),
    Deliver(usize),
}

pub(super) struct Conversation {
    description: String,
    x3dh: X3dhInputs,
    /// Per message: (sent by Alice, plaintext).
    messages: Vec<(bool, Vec<u8>)>,
    events: Vec<Event>,
    /// The ratchet secret a message's sending step uses (asked only when a step is due).
    ratchet_private: Box<dyn Fn(usize) -> Option<[u8; 32]>>,
}

/// One side of the hand-computed model.
#[derive(Default)]
pub(super) struct Side {
    ratchet: Option<[u8; 32]>,
    latest_remote: Option<[u8; 32]>,
    seen: Vec<[u8; 32]>,
    new_key_due: bool,
    sending: Option<([u8; 32], u32)>,
    pn: u32,
}

pub(super) fn conversation(c: &Conversation) -> R<Value> {
    let (_, _, sk, ad) = x3dh_by_hand(&c.x3dh);
    let mut root = sk;
    let mut alice_model = Side {
        latest_remote: Some(x25519_public(&c.x3dh.b_spk)),
        new_key_due: true,
        ..Side::default()
    };
    let mut bob_model = Side::default();

    let bundle = c.x3dh.bundle();
    let (mut alice, header) = Session::<64>::initiate_with_fixed_ephemeral_for_tests(
        &c.x3dh.alice(),
        &bundle,
        &c.x3dh.a_eph,
    )
    .map_err(|e| format!("initiate: {e:?}"))?;
    let mut bob: Option<Session<64>> = None;
    let opk = c.x3dh.opk();

    let mut out_messages: Vec<Value> = vec![Value::Null; c.messages.len()];
    let mut wire: Vec<Option<Vec<u8>>> = vec![None; c.messages.len()];
    let mut events = Vec::new();
    for event in &c.events {
        match *event {
            Event::Send(m) => {
                let (from_alice, pt) = c.messages.get(m).ok_or("event names no message")?;
                let side = if *from_alice {
                    &mut alice_model
                } else {
                    &mut bob_model
                };
                let mut record = Map::new();
                let mut fixed = [0u8; 32];
                if side.sending.is_none() || side.new_key_due {
                    let remote = side
                        .latest_remote
                        .ok_or(format!("message {m}: sender cannot send yet"))?;
                    let private =
                        (c.ratchet_private)(m).ok_or(format!("message {m}: no dh_step.private"))?;
                    let mut okm = [0u8; 64];
                    let _ = hkdf_sha256(&root, &x25519(private, remote), RATCHET_INFO, &mut okm);
                    record.insert(
                        "dh_step".into(),
                        json!({
                            "root_key_in": hx(&root),
                            "private": hx(&private),
                            "remote_public": hx(&remote),
                            "root_key_out": hx(&okm[..32]),
                            "chain_key_out": hx(&okm[32..]),
                        }),
                    );
                    if let Some((_, n)) = side.sending {
                        side.pn = n;
                    }
                    root.copy_from_slice(&okm[..32]);
                    let mut ck = [0u8; 32];
                    ck.copy_from_slice(&okm[32..]);
                    side.sending = Some((ck, 0));
                    side.ratchet = Some(private);
                    side.new_key_due = false;
                    fixed = private;
                }
                let (Some((ck, n)), Some(ratchet)) = (side.sending, side.ratchet) else {
                    return Err("model has no sending chain".into());
                };
                let mut header_bytes = x25519_public(&ratchet).to_vec();
                header_bytes.extend_from_slice(&side.pn.to_be_bytes());
                header_bytes.extend_from_slice(&n.to_be_bytes());
                let mk = hmac_sha256(&ck, &[0x01]);
                let next = hmac_sha256(&ck, &[0x02]);
                let (key, nonce) = key_nonce(&mk, MESSAGE_INFO);
                let mut aead_ad = ad.clone();
                aead_ad.extend_from_slice(&header_bytes);
                let mut body = pt.clone();
                let tag = seal_in_place(&key, &nonce, &aead_ad, &mut body);
                body.extend_from_slice(&tag);
                let mut message = header_bytes.clone();
                message.extend_from_slice(&body);
                side.sending = Some((next, n + 1));

                // The session must produce exactly these bytes.
                let session = if *from_alice {
                    &mut alice
                } else {
                    bob.as_mut()
                        .ok_or(format!("message {m}: Bob sends before his session exists"))?
                };
                let mut out = vec![0u8; pt.len() + RATCHET_OVERHEAD];
                let len = session
                    .encrypt_with_fixed_ratchet_key_for_tests(&fixed, pt, &mut out)
                    .map_err(|e| format!("message {m}: encrypt: {e:?}"))?;
                out.truncate(len);
                ensure(out == message, || {
                    format!("message {m}: session bytes differ from the hand computation")
                })?;

                record.insert("index".into(), json!(m));
                record.insert(
                    "sender".into(),
                    json!(if *from_alice { "alice" } else { "bob" }),
                );
                record.insert("plaintext".into(), hx(pt));
                record.insert("ad".into(), hx(&ad));
                record.insert("header".into(), hx(&header_bytes));
                record.insert("chain_key".into(), hx(&ck));
                record.insert("message_key".into(), hx(&mk));
                record.insert("next_chain_key".into(), hx(&next));
                record.insert("aead_key".into(), hx(&key));
                record.insert("nonce".into(), hx(&nonce));
                record.insert("ciphertext".into(), hx(&body));
                record.insert("message".into(), hx(&message));
                if let Some(slot) = out_messages.get_mut(m) {
                    *slot = Value::Object(record);
                }
                if let Some(slot) = wire.get_mut(m) {
                    *slot = Some(message);
                }
                events.push(json!({ "op": "send", "message": m }));
            }
            Event::Deliver(m) => {
                let (from_alice, pt) = c.messages.get(m).ok_or("event names no message")?;
                let message = wire
                    .get(m)
                    .cloned()
                    .flatten()
                    .ok_or(format!("message {m} delivered before sent"))?;
                let ratchet_key: [u8; 32] =
                    message[..32].try_into().map_err(|_| "short message")?;
                let (side, session) = if *from_alice {
                    if bob.is_none() {
                        bob = Some(
                            Session::respond(&c.x3dh.bob(), &c.x3dh.spk(), opk.as_ref(), &header)
                                .map_err(|e| format!("respond: {e:?}"))?,
                        );
                    }
                    (&mut bob_model, bob.as_mut().ok_or("no Bob")?)
                } else {
                    (&mut alice_model, &mut alice)
                };
                let mut out = vec![0u8; message.len()];
                let len = session
                    .decrypt(&message, &mut out)
                    .map_err(|e| format!("message {m}: decrypt: {e:?}"))?;
                ensure(out[..len] == pt[..], || {
                    format!("message {m}: wrong plaintext")
                })?;
                if !side.seen.contains(&ratchet_key) {
                    side.seen.push(ratchet_key);
                    side.latest_remote = Some(ratchet_key);
                    side.new_key_due = true;
                }
                events.push(json!({ "op": "deliver", "message": m }));
            }
        }
    }
    let (initiator, responder) = c.x3dh.json();
    Ok(json!({
        "description": c.description,
        "expect": "accept",
        "initiator": initiator,
        "responder": responder,
        "sk": hx(&sk),
        "ad": hx(&ad),
        "prekey_header": hx(&header.to_bytes()),
        "events": events,
        "messages": out_messages,
    }))
}

/// A script: `A`/`B` sends the next message (its plaintext given), `>n` delivers message n.
pub(super) fn script(
    label: &str,
    description: &str,
    with_opk: bool,
    steps: &[&str],
) -> Conversation {
    let mut messages = Vec::new();
    let mut events = Vec::new();
    for step in steps {
        if let Some(n) = step.strip_prefix('>') {
            events.push(Event::Deliver(n.parse().unwrap_or(usize::MAX)));
        } else {
            let (who, pt) = step.split_at(1);
            events.push(Event::Send(messages.len()));
            messages.push((who == "A", pt.trim().as_bytes().to_vec()));
        }
    }
    let owned = label.to_owned();
    Conversation {
        description: description.to_owned(),
        x3dh: X3dhInputs::from_labels(label, with_opk),
        messages,
        events,
        ratchet_private: Box::new(move |m| Some(secret(&format!("{owned}/ratchet/{m}")))),
    }
}

pub(super) fn conversations() -> Vec<Conversation> {
    vec![
        script(
            "ratchet/1",
            "15 messages both ways: eight DH ratchet steps, out-of-order delivery, keys skipped within a chain and across a DH step (pn), one message never delivered",
            true,
            &[
                "A Hello Bob, this is Alice.",
                "A Are you there?",
                "A Third message.",
                ">0",
                ">2",
                "B Hi Alice!",
                "B Got your messages.",
                ">4",
                "A Great, new chain on my side.",
                ">1",
                "A Second on the new chain.",
                ">6",
                "B Bob's second chain.",
                "B More from Bob.",
                ">3",
                ">8",
                ">5",
                "A Alice's third chain.",
                ">7",
                ">9",
                "B Bob again.",
                ">10",
                "A One.",
                "A Two (never delivered).",
                "A Three.",
                ">13",
                ">11",
                "B Bye!",
                ">14",
            ],
        ),
        script(
            "ratchet/2",
            "12 messages without a one-time prekey: messages cross in flight (Alice sends on her old chain after Bob replied), chains delivered in reverse order",
            false,
            &[
                "A m0", "A m1", "A m2", ">2", "B r0", "B r1", "A m3", ">1", ">0", ">5", ">4",
                "B r2", ">6", ">3", "A m4", "A m5", ">8", ">7", "B r3", "B r4", "B r5", ">11",
                ">10", ">9",
            ],
        ),
    ]
}

pub(super) fn gen_ratchet() -> R<Value> {
    let cases = conversations()
        .iter()
        .map(conversation)
        .collect::<R<Vec<_>>>()?;
    Ok(json!({
        "description": "Double Ratchet conversations (PROTOCOL.md §4.3): KDF_RK = HKDF(rk, dh, \"Sealroom Ratchet v1\", 64); KDF_CK: mk = HMAC(ck, 01), next = HMAC(ck, 02); key || nonce = HKDF(32 zero bytes, mk, \"Sealroom Message v1\", 44); header = ratchet key || pn || n; AEAD associated data = ad || header; each `ciphertext` field is the ChaCha20-Poly1305 output with its 16-byte tag appended, and message = header || ciphertext. Events run in order; a delivery goes to the other party. A receiver's DH step mirrors the sender's dh_step with private and remote keys swapped.",
        "cases": cases,
    }))
}

pub(super) fn check_ratchet(case: &Value) -> R<()> {
    expect_accept(case)?;
    let mut messages = Vec::new();
    let mut privates = Vec::new();
    for (i, m) in list(case, "messages")?.iter().enumerate() {
        ensure(number(m, "index")? == i as u64, || {
            format!("message {i} out of order")
        })?;
        messages.push((text(m, "sender")? == "alice", hex_field(m, "plaintext")?));
        privates.push(match m.get("dh_step") {
            Some(step) => Some(arr::<32>(step, "private")?),
            None => None,
        });
    }
    let mut events = Vec::new();
    for e in list(case, "events")? {
        let m = usize::try_from(number(e, "message")?).map_err(|e| e.to_string())?;
        events.push(match text(e, "op")? {
            "send" => Event::Send(m),
            "deliver" => Event::Deliver(m),
            other => return Err(format!("unknown op {other}")),
        });
    }
    let c = Conversation {
        description: text(case, "description")?.to_owned(),
        x3dh: X3dhInputs::read(case)?,
        messages,
        events,
        ratchet_private: Box::new(move |m| privates.get(m).copied().flatten()),
    };
    diff("", case, &conversation(&c)?)
}

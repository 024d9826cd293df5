//! `room.json`: three members, a removal and a new epoch, every room message recorded.

use proto_core::primitives::{ROOM_INFO, ed25519_public, ed25519_sign, hmac_sha256, seal_in_place};
use proto_core::{ROOM_OVERHEAD, Room, SenderKeyDistribution};
use serde_json::{Value, json};

use super::*;

#[derive(Clone, Copy)]
pub(super) enum RoomEvent {
    Send { member: usize, message: usize },
    Deliver { message: usize, to: usize },
    Remove { member: usize },
}

pub(super) struct RoomScript {
    description: String,
    room_id: [u8; 16],
    names: Vec<String>,
    identity: Vec<[u8; 32]>,
    /// (epoch, member) → (chain key, signing secret).
    keys: EpochKeys,
    plaintexts: Vec<Vec<u8>>,
    events: Vec<RoomEvent>,
}

pub(super) fn room_header(
    room: &[u8; 16],
    sender: &[u8; 32],
    epoch: u32,
    iteration: u32,
) -> Vec<u8> {
    let mut h = vec![1u8];
    h.extend_from_slice(room);
    h.extend_from_slice(sender);
    h.extend_from_slice(&epoch.to_be_bytes());
    h.extend_from_slice(&iteration.to_be_bytes());
    h
}

pub(super) fn room_case(s: &RoomScript) -> R<Value> {
    let n = s.names.len();
    let sender_ids: Vec<[u8; 32]> = s.identity.iter().map(ed25519_public).collect();
    let mut epoch = 0u32;
    let mut present: Vec<bool> = vec![true; n];
    // Model: per member (chain key, iteration, signing secret).
    let mut model: Vec<([u8; 32], u32, [u8; 32])> = Vec::new();
    let mut rooms: Vec<Room<8, 64>> = Vec::new();
    for m in 0..n {
        let (ck, sig) = (s.keys)(0, m).ok_or("no keys for epoch 0")?;
        model.push((ck, 0, sig));
        let mut room =
            Room::create_with_fixed_keys_for_tests(s.room_id, sender_ids[m], 0, &ck, &sig);
        for (other, id) in sender_ids.iter().enumerate() {
            if other != m {
                room.add_member(id).map_err(|e| format!("{e:?}"))?;
            }
        }
        rooms.push(room);
    }
    let mut epochs_json = Vec::new();
    let distribute = |rooms: &mut Vec<Room<8, 64>>,
                      model: &[([u8; 32], u32, [u8; 32])],
                      present: &[bool],
                      epoch: u32|
     -> R<Value> {
        let mut members = Vec::new();
        for m in 0..n {
            if !present[m] {
                continue;
            }
            let (ck, iteration, sig) = model[m];
            let dist = rooms[m].distribution();
            let bytes = dist.to_bytes();
            let mut by_hand = vec![1u8];
            by_hand.extend_from_slice(&s.room_id);
            by_hand.extend_from_slice(&sender_ids[m]);
            by_hand.extend_from_slice(&epoch.to_be_bytes());
            by_hand.extend_from_slice(&iteration.to_be_bytes());
            by_hand.extend_from_slice(&ck);
            by_hand.extend_from_slice(&ed25519_public(&sig));
            ensure(bytes[..] == by_hand[..], || {
                format!("{}: distribution bytes differ", s.names[m])
            })?;
            for other in 0..n {
                if other != m && present[other] {
                    let parsed = SenderKeyDistribution::from_bytes(&bytes[..])
                        .map_err(|e| format!("{e:?}"))?;
                    rooms[other]
                        .handle_distribution(&parsed, &sender_ids[m])
                        .map_err(|e| format!("{e:?}"))?;
                }
            }
            members.push(json!({
                "member": s.names[m],
                "chain_key": hx(&ck),
                "signing_private": hx(&sig),
                "signing_public": hx(&ed25519_public(&sig)),
                "distribution": hx(&bytes[..]),
            }));
        }
        Ok(json!({ "epoch": epoch, "members": members }))
    };
    epochs_json.push(distribute(&mut rooms, &model, &present, epoch)?);

    let mut messages: Vec<Value> = vec![Value::Null; s.plaintexts.len()];
    let mut wire: Vec<Option<(usize, Vec<u8>)>> = vec![None; s.plaintexts.len()];
    let mut events = Vec::new();
    for event in &s.events {
        match *event {
            RoomEvent::Send { member, message } => {
                let pt = s.plaintexts.get(message).ok_or("no plaintext")?;
                let (ck, iteration, sig) = model[member];
                let header = room_header(&s.room_id, &sender_ids[member], epoch, iteration);
                let mk = hmac_sha256(&ck, &[0x01]);
                let next = hmac_sha256(&ck, &[0x02]);
                let (key, nonce) = key_nonce(&mk, ROOM_INFO);
                let mut body = pt.clone();
                let tag = seal_in_place(&key, &nonce, &header, &mut body);
                body.extend_from_slice(&tag);
                let mut signed = header.clone();
                signed.extend_from_slice(&body);
                let signature = ed25519_sign(&sig, &signed);
                let mut bytes = signed.clone();
                bytes.extend_from_slice(&signature);
                model[member] = (next, iteration + 1, sig);
                let mut out = vec![0u8; pt.len() + ROOM_OVERHEAD];
                let len = rooms[member]
                    .encrypt(pt, &mut out)
                    .map_err(|e| format!("{e:?}"))?;
                out.truncate(len);
                ensure(out == bytes, || {
                    format!("room message {message}: bytes differ from the hand computation")
                })?;
                messages[message] = json!({
                    "index": message,
                    "sender": s.names[member],
                    "sender_id": hx(&sender_ids[member]),
                    "epoch": epoch,
                    "iteration": iteration,
                    "plaintext": hx(pt),
                    "chain_key": hx(&ck),
                    "message_key": hx(&mk),
                    "next_chain_key": hx(&next),
                    "aead_key": hx(&key),
                    "nonce": hx(&nonce),
                    "ciphertext": hx(&body),
                    "signature": hx(&signature),
                    "message": hx(&bytes),
                });
                wire[message] = Some((member, bytes));
                events.push(json!({ "op": "send", "member": s.names[member], "message": message }));
            }
            RoomEvent::Deliver { message, to } => {
                let (from, bytes) = wire
                    .get(message)
                    .cloned()
                    .flatten()
                    .ok_or("delivered before sent")?;
                let mut out = vec![0u8; bytes.len()];
                let p = rooms[to]
                    .decrypt(&bytes, &mut out)
                    .map_err(|e| format!("room message {message} to {}: {e:?}", s.names[to]))?;
                ensure(
                    out[..p.len] == s.plaintexts[message][..] && p.sender == sender_ids[from],
                    || format!("room message {message}: wrong plaintext or sender"),
                )?;
                events.push(json!({ "op": "deliver", "message": message, "to": s.names[to] }));
            }
            RoomEvent::Remove { member } => {
                present[member] = false;
                epoch += 1;
                for m in 0..n {
                    if present[m] {
                        let (ck, sig) = (s.keys)(epoch, m).ok_or("no keys for new epoch")?;
                        model[m] = (ck, 0, sig);
                        rooms[m]
                            .remove_member_with_fixed_keys_for_tests(&sender_ids[member], &ck, &sig)
                            .map_err(|e| format!("{e:?}"))?;
                    }
                }
                epochs_json.push(distribute(&mut rooms, &model, &present, epoch)?);
                events.push(json!({ "op": "remove", "member": s.names[member] }));
            }
        }
    }
    let members: Vec<Value> = (0..n)
        .map(|m| json!({ "name": s.names[m], "identity_sig_private": hx(&s.identity[m]), "sender_id": hx(&sender_ids[m]) }))
        .collect();
    Ok(json!({
        "description": s.description,
        "expect": "accept",
        "room_id": hx(&s.room_id),
        "members": members,
        "epochs": epochs_json,
        "events": events,
        "messages": messages,
    }))
}

pub(super) fn room_script() -> RoomScript {
    let names = ["alice", "bob", "carol"];
    let (a, b, c) = (0, 1, 2);
    let send = |member, message| RoomEvent::Send { member, message };
    let deliver = |message, to| RoomEvent::Deliver { message, to };
    RoomScript {
        description: "three members; carol is removed and alice and bob move to epoch 1 with fresh chain and signing keys; out-of-order delivery within a chain".into(),
        room_id: secret("room/1/id")[..16].try_into().unwrap_or([0; 16]),
        names: names.iter().map(|s| (*s).to_owned()).collect(),
        identity: names.iter().map(|n| secret(&format!("room/1/{n}/identity_sig"))).collect(),
        keys: Box::new(move |epoch, m| {
            let name = names.get(m)?;
            Some((
                secret(&format!("room/1/{name}/epoch{epoch}/chain")),
                secret(&format!("room/1/{name}/epoch{epoch}/signing")),
            ))
        }),
        plaintexts: [
            "hello room", "alice again", "bob here", "carol here", "after carol left", "bob in epoch 1",
            "alice once more",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        events: vec![
            send(a, 0), send(a, 1), deliver(1, b), deliver(0, b), deliver(0, c), deliver(1, c),
            send(b, 2), deliver(2, a), deliver(2, c),
            send(c, 3), deliver(3, b), deliver(3, a),
            RoomEvent::Remove { member: c },
            send(a, 4), deliver(4, b),
            send(b, 5), send(a, 6), deliver(6, b), deliver(5, a),
        ],
    }
}

pub(super) fn gen_room() -> R<Value> {
    Ok(json!({
        "description": "Room sender keys (PROTOCOL.md §4.4): distribution = 01 || room id (16) || sender IKs (32) || epoch || iteration || chain key || signing public key; message key from KDF_CK; key || nonce = HKDF(32 zero bytes, mk, \"Sealroom Room v1\", 44); message = header (01 || room id || sender || epoch || iteration) || ciphertext || Ed25519 signature over all before it, where each `ciphertext` field is the ChaCha20-Poly1305 output with its 16-byte tag appended; the header is the AEAD associated data.",
        "cases": [room_case(&room_script())?],
    }))
}

pub(super) fn check_room(case: &Value) -> R<()> {
    expect_accept(case)?;
    let members = list(case, "members")?;
    let names: Vec<String> = members
        .iter()
        .map(|m| text(m, "name").map(str::to_owned))
        .collect::<R<_>>()?;
    let identity: Vec<[u8; 32]> = members
        .iter()
        .map(|m| arr(m, "identity_sig_private"))
        .collect::<R<_>>()?;
    let index = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .ok_or(format!("unknown member {name}"))
    };
    let mut keys = Vec::new();
    for e in list(case, "epochs")? {
        let epoch = u32::try_from(number(e, "epoch")?).map_err(|e| e.to_string())?;
        for m in list(e, "members")? {
            keys.push((
                epoch,
                index(text(m, "member")?)?,
                arr::<32>(m, "chain_key")?,
                arr::<32>(m, "signing_private")?,
            ));
        }
    }
    let msgs = list(case, "messages")?;
    let plaintexts = msgs
        .iter()
        .map(|m| hex_field(m, "plaintext"))
        .collect::<R<Vec<_>>>()?;
    let mut events = Vec::new();
    for e in list(case, "events")? {
        let message =
            || number(e, "message").and_then(|n| usize::try_from(n).map_err(|e| e.to_string()));
        events.push(match text(e, "op")? {
            "send" => RoomEvent::Send {
                member: index(text(e, "member")?)?,
                message: message()?,
            },
            "deliver" => RoomEvent::Deliver {
                message: message()?,
                to: index(text(e, "to")?)?,
            },
            "remove" => RoomEvent::Remove {
                member: index(text(e, "member")?)?,
            },
            other => return Err(format!("unknown op {other}")),
        });
    }
    let script = RoomScript {
        description: text(case, "description")?.to_owned(),
        room_id: arr(case, "room_id")?,
        names,
        identity,
        keys: Box::new(move |epoch, m| {
            keys.iter()
                .find(|k| k.0 == epoch && k.1 == m)
                .map(|k| (k.2, k.3))
        }),
        plaintexts,
        events,
    };
    diff("", case, &room_case(&script)?)
}

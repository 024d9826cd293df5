//! Crypto vectors: X3DH, the Double Ratchet, rooms, safety numbers, and rejections.
//!
//! Every case is produced by one function per topic from its *inputs* (fixed secrets,
//! plaintexts, the order of events). The generator derives the inputs from labels; the checker
//! reads them back from the file, runs the same function, and compares every recorded field.
//! Each function computes every intermediate value twice: once from the bare primitives
//! (`proto_core::primitives`: X25519, HKDF, HMAC, ChaCha20-Poly1305, Ed25519), following
//! DESIGN.md step by step, and once through proto-core's protocol API (sessions, rooms, with
//! the `vectors` test hooks for fixed keys). The two must agree byte for byte, and with the file.
//!
//! Files: `x3dh.json`, `ratchet.json`, `room.json`, `fingerprint.json`, `crypto-reject.json`.

use proto_core::primitives::{
    MESSAGE_INFO, RATCHET_INFO, ROOM_INFO, SIGNED_PREKEY_LABEL, X3DH_INFO, ed25519_public,
    ed25519_sign, hkdf_sha256, hmac_sha256, seal_in_place, x25519, x25519_public,
};
use proto_core::{
    IdentityKeyPair, IdentityPublicKey, OneTimePrekeyPair, OneTimePrekeyPublic, PrekeyHeader,
    RATCHET_OVERHEAD, ROOM_OVERHEAD, RemoteBundle, Room, SAFETY_NUMBER_LEN, SenderKeyDistribution,
    Session, SignedPrekeyPair, X3dhAgreement, party_fingerprint, safety_number,
};
use serde_json::{Map, Value, json};

use crate::{cases, hex_field};

/// A generator of one vector file.
type Generator = fn() -> Result<Value, String>;

/// Chain key and signing secret of a member in an epoch.
type EpochKeys = Box<dyn Fn(u32, usize) -> Option<([u8; 32], [u8; 32])>>;

/// The crypto vector files.
pub fn generate() -> Vec<(&'static str, Value)> {
    let files: [(&'static str, Generator); 5] = [
        ("x3dh.json", gen_x3dh),
        ("ratchet.json", gen_ratchet),
        ("room.json", gen_room),
        ("fingerprint.json", gen_fingerprint),
        ("crypto-reject.json", gen_reject),
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

// ---------------------------------------------------------------------------------------------
// Helpers

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

// ---------------------------------------------------------------------------------------------
// X3DH

/// The secrets of one X3DH run.
#[derive(Clone)]
struct X3dhInputs {
    a_sig: [u8; 32],
    a_dh: [u8; 32],
    a_eph: [u8; 32],
    b_sig: [u8; 32],
    b_dh: [u8; 32],
    b_spk: [u8; 32],
    b_opk: Option<[u8; 32]>,
    spk_id: u32,
    opk_id: u32,
}

impl X3dhInputs {
    fn from_labels(prefix: &str, with_opk: bool) -> Self {
        let s = |name: &str| secret(&format!("{prefix}/{name}"));
        Self {
            a_sig: s("alice/identity_sig"),
            a_dh: s("alice/identity_dh"),
            a_eph: s("alice/ephemeral"),
            b_sig: s("bob/identity_sig"),
            b_dh: s("bob/identity_dh"),
            b_spk: s("bob/signed_prekey"),
            b_opk: with_opk.then(|| s("bob/one_time_prekey")),
            spk_id: 1,
            opk_id: 100,
        }
    }

    fn read(case: &Value) -> R<Self> {
        let i = field(case, "initiator")?;
        let r = field(case, "responder")?;
        let b_opk = match field(r, "one_time_prekey_private")? {
            Value::Null => None,
            _ => Some(arr(r, "one_time_prekey_private")?),
        };
        Ok(Self {
            a_sig: arr(i, "identity_sig_private")?,
            a_dh: arr(i, "identity_dh_private")?,
            a_eph: arr(i, "ephemeral_private")?,
            b_sig: arr(r, "identity_sig_private")?,
            b_dh: arr(r, "identity_dh_private")?,
            b_spk: arr(r, "signed_prekey_private")?,
            b_opk,
            spk_id: u32::try_from(number(r, "signed_prekey_id")?).map_err(|e| e.to_string())?,
            opk_id: match r.get("one_time_prekey_id") {
                Some(Value::Number(n)) => {
                    n.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
                }
                _ => 0,
            },
        })
    }

    fn alice(&self) -> IdentityKeyPair {
        IdentityKeyPair::from_secrets(&self.a_sig, &self.a_dh)
    }

    fn bob(&self) -> IdentityKeyPair {
        IdentityKeyPair::from_secrets(&self.b_sig, &self.b_dh)
    }

    fn spk(&self) -> SignedPrekeyPair {
        SignedPrekeyPair::from_secret_key(self.spk_id, &self.b_spk, &self.bob())
    }

    fn opk(&self) -> Option<OneTimePrekeyPair> {
        self.b_opk
            .map(|k| OneTimePrekeyPair::from_secret_key(self.opk_id, &k))
    }

    fn bundle(&self) -> RemoteBundle {
        RemoteBundle {
            identity: self.bob().public(),
            signed_prekey: self.spk().public(),
            one_time_prekey: self.opk().map(|k| k.public()),
        }
    }

    /// The input fields, as the vectors name them.
    fn json(&self) -> (Value, Value) {
        let initiator = json!({
            "identity_sig_private": hx(&self.a_sig),
            "identity_dh_private": hx(&self.a_dh),
            "ephemeral_private": hx(&self.a_eph),
            "identity_sig_public": hx(&ed25519_public(&self.a_sig)),
            "identity_dh_public": hx(&x25519_public(&self.a_dh)),
            "ephemeral_public": hx(&x25519_public(&self.a_eph)),
        });
        let responder = json!({
            "identity_sig_private": hx(&self.b_sig),
            "identity_dh_private": hx(&self.b_dh),
            "signed_prekey_private": hx(&self.b_spk),
            "signed_prekey_id": self.spk_id,
            "one_time_prekey_private": self.b_opk.map(|k| hx(&k)),
            "one_time_prekey_id": self.b_opk.map(|_| self.opk_id),
            "identity_sig_public": hx(&ed25519_public(&self.b_sig)),
            "identity_dh_public": hx(&x25519_public(&self.b_dh)),
            "signed_prekey_public": hx(&x25519_public(&self.b_spk)),
            "one_time_prekey_public": self.b_opk.map(|k| hx(&x25519_public(&k))),
        });
        (initiator, responder)
    }
}

/// X3DH from the primitives: (signature, DH outputs, SK, AD).
fn x3dh_by_hand(i: &X3dhInputs) -> ([u8; 64], Vec<[u8; 32]>, [u8; 32], Vec<u8>) {
    let spk_pub = x25519_public(&i.b_spk);
    let mut signed = SIGNED_PREKEY_LABEL.to_vec();
    signed.extend_from_slice(&spk_pub);
    let signature = ed25519_sign(&i.b_sig, &signed);
    let mut dh = vec![
        x25519(i.a_dh, spk_pub),
        x25519(i.a_eph, x25519_public(&i.b_dh)),
        x25519(i.a_eph, spk_pub),
    ];
    if let Some(opk) = i.b_opk {
        dh.push(x25519(i.a_eph, x25519_public(&opk)));
    }
    let mut ikm = vec![0xFF; 32];
    dh.iter().for_each(|d| ikm.extend_from_slice(d));
    let mut sk = [0u8; 32];
    let _ = hkdf_sha256(&[0; 32], &ikm, X3DH_INFO, &mut sk);
    let mut ad = Vec::new();
    for k in [
        x25519_public(&i.a_dh),
        ed25519_public(&i.a_sig),
        x25519_public(&i.b_dh),
        ed25519_public(&i.b_sig),
    ] {
        ad.extend_from_slice(&k);
    }
    (signature, dh, sk, ad)
}

fn x3dh_case(description: &str, i: &X3dhInputs) -> R<Value> {
    let (signature, dh, sk, ad) = x3dh_by_hand(i);
    // The protocol API must agree with the hand computation.
    let bundle = i.bundle();
    ensure(bundle.signed_prekey.signature == signature, || {
        "SignedPrekeyPair signature differs".into()
    })?;
    let (agreement, header) =
        X3dhAgreement::initiate_with_fixed_ephemeral_for_tests(&i.alice(), &bundle, &i.a_eph)
            .map_err(|e| format!("initiate: {e:?}"))?;
    ensure(agreement.shared_secret_for_tests() == sk, || {
        "initiator SK differs from HKDF by hand".into()
    })?;
    ensure(agreement.associated_data()[..] == ad[..], || {
        "initiator AD differs".into()
    })?;
    let header_bytes = header.to_bytes();
    let (parsed, _) = PrekeyHeader::parse(&header_bytes).map_err(|e| format!("{e:?}"))?;
    let opk = i.opk();
    let responder = X3dhAgreement::respond(&i.bob(), &i.spk(), opk.as_ref(), &parsed)
        .map_err(|e| format!("respond: {e:?}"))?;
    ensure(responder.shared_secret_for_tests() == sk, || {
        "responder SK differs".into()
    })?;
    ensure(responder.associated_data()[..] == ad[..], || {
        "responder AD differs".into()
    })?;
    let (initiator, responder) = i.json();
    Ok(json!({
        "description": description,
        "expect": "accept",
        "initiator": initiator,
        "responder": responder,
        "signed_prekey_signature": hx(&signature),
        "dh": dh.iter().map(|d| hx(d)).collect::<Vec<_>>(),
        "sk": hx(&sk),
        "ad": hx(&ad),
        "prekey_header": hx(&header_bytes),
    }))
}

const X3DH_CASES: [(&str, &str, bool); 3] = [
    (
        "x3dh/1",
        "X3DH with a one-time prekey (four DH outputs)",
        true,
    ),
    (
        "x3dh/2",
        "X3DH without a one-time prekey (three DH outputs)",
        false,
    ),
    ("x3dh/3", "X3DH with a one-time prekey, other keys", true),
];

fn gen_x3dh() -> R<Value> {
    let cases = X3DH_CASES
        .iter()
        .map(|(label, d, opk)| x3dh_case(d, &X3dhInputs::from_labels(label, *opk)))
        .collect::<R<Vec<_>>>()?;
    Ok(json!({
        "description": "X3DH (DESIGN.md): DH1..DH4, SK = HKDF(32 zero bytes, 32×0xFF || DH…, \"Sealroom X3DH v1\", 32), AD = IKd_A || IKs_A || IKd_B || IKs_B, and the 106-byte prekey header",
        "cases": cases,
    }))
}

fn check_x3dh(case: &Value) -> R<()> {
    expect_accept(case)?;
    let inputs = X3dhInputs::read(case)?;
    let again = x3dh_case(text(case, "description")?, &inputs)?;
    diff("", case, &again)
}

// ---------------------------------------------------------------------------------------------
// Double Ratchet conversations

#[derive(Clone, Copy)]
enum Event {
    Send(usize),
    Deliver(usize),
}

struct Conversation {
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
struct Side {
    ratchet: Option<[u8; 32]>,
    latest_remote: Option<[u8; 32]>,
    seen: Vec<[u8; 32]>,
    new_key_due: bool,
    sending: Option<([u8; 32], u32)>,
    pn: u32,
}

fn conversation(c: &Conversation) -> R<Value> {
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
fn script(label: &str, description: &str, with_opk: bool, steps: &[&str]) -> Conversation {
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

fn conversations() -> Vec<Conversation> {
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

fn gen_ratchet() -> R<Value> {
    let cases = conversations()
        .iter()
        .map(conversation)
        .collect::<R<Vec<_>>>()?;
    Ok(json!({
        "description": "Double Ratchet conversations (DESIGN.md): KDF_RK = HKDF(rk, dh, \"Sealroom Ratchet v1\", 64); KDF_CK: mk = HMAC(ck, 01), next = HMAC(ck, 02); key || nonce = HKDF(32 zero bytes, mk, \"Sealroom Message v1\", 44); header = ratchet key || pn || n; AEAD associated data = ad || header; message = header || ciphertext || tag. Events run in order; a delivery goes to the other party. A receiver's DH step mirrors the sender's dh_step with private and remote keys swapped.",
        "cases": cases,
    }))
}

fn check_ratchet(case: &Value) -> R<()> {
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

// ---------------------------------------------------------------------------------------------
// Rooms

#[derive(Clone, Copy)]
enum RoomEvent {
    Send { member: usize, message: usize },
    Deliver { message: usize, to: usize },
    Remove { member: usize },
}

struct RoomScript {
    description: String,
    room_id: [u8; 16],
    names: Vec<String>,
    identity: Vec<[u8; 32]>,
    /// (epoch, member) → (chain key, signing secret).
    keys: EpochKeys,
    plaintexts: Vec<Vec<u8>>,
    events: Vec<RoomEvent>,
}

fn room_header(room: &[u8; 16], sender: &[u8; 32], epoch: u32, iteration: u32) -> Vec<u8> {
    let mut h = vec![1u8];
    h.extend_from_slice(room);
    h.extend_from_slice(sender);
    h.extend_from_slice(&epoch.to_be_bytes());
    h.extend_from_slice(&iteration.to_be_bytes());
    h
}

fn room_case(s: &RoomScript) -> R<Value> {
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

fn room_script() -> RoomScript {
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

fn gen_room() -> R<Value> {
    Ok(json!({
        "description": "Room sender keys (DESIGN.md): distribution = 01 || room id (16) || sender IKs (32) || epoch || iteration || chain key || signing public key; message key from KDF_CK; key || nonce = HKDF(32 zero bytes, mk, \"Sealroom Room v1\", 44); message = header (01 || room id || sender || epoch || iteration) || ciphertext || tag || Ed25519 signature over all before it; the header is the AEAD associated data.",
        "cases": [room_case(&room_script())?],
    }))
}

fn check_room(case: &Value) -> R<()> {
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

// ---------------------------------------------------------------------------------------------
// Safety numbers

fn fingerprint_case(description: &str, parties: [(&str, [u8; 32], [u8; 32]); 2]) -> Value {
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

fn gen_fingerprint() -> R<Value> {
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
        "description": "Safety numbers (DESIGN.md): per party h = SHA-512(00 00 || IKs || IKd || username), then 5,199 times h = SHA-512(h || IKs || IKd); first 30 bytes as six 5-byte big-endian numbers mod 100000, five digits each; both parties' 30 digits sorted and joined.",
        "cases": cases,
    }))
}

fn check_fingerprint(case: &Value) -> R<()> {
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

// ---------------------------------------------------------------------------------------------
// Rejections

/// Messages of a short conversation from `label` (Alice → Bob), encrypted through the API.
fn alice_messages(label: &str, count: usize) -> R<(X3dhInputs, [u8; 106], Vec<Vec<u8>>)> {
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

fn flip(mut bytes: Vec<u8>, at: usize) -> Vec<u8> {
    if let Some(b) = bytes.get_mut(at) {
        *b ^= 0x01;
    }
    bytes
}

fn ratchet_reject(
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
fn room_reject(
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

fn gen_reject() -> R<Value> {
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

fn outcome<E: core::fmt::Debug>(r: Result<(), E>) -> String {
    match r {
        Ok(()) => "accept".to_owned(),
        Err(e) => format!("reject:{e:?}"),
    }
}

fn check_reject(case: &Value) -> R<()> {
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

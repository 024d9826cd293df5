//! `pqxdh.json`: PQXDH (PROTOCOL.md §4.8) — X3DH with a linked device plus an ML-KEM-768 KEM
//! prekey — accepted and refused.
//!
//! Accepted cases are computed twice: from the bare primitives (Ed25519, X25519, HKDF, SHA-256
//! from proto-core's `primitives`, ML-KEM-768 from RustCrypto's `ml-kem` called directly,
//! not through proto-core's wrapper) and through proto-core's `Session` API, which must agree
//! byte for byte, down to the whole first message (a `PqPrekey` envelope). Refused cases name
//! the error as proto-core's `PqxdhError::name` and the web client give it.

use ml_kem::array::Array;
use ml_kem::{DecapsulationKey768, EncapsulationKey768, KeyExport, Seed};
use proto_core::primitives::{
    DEVICE_PREKEY_LABEL, X3DH_INFO, ed25519_public, ed25519_sign, hkdf_sha256, x25519,
    x25519_public,
};
use proto_core::{
    Envelope, IdentityKeyPair, KEM_PREKEY_LABEL, KEM_PUBLIC_KEY_LEN, KemHeader, KemPrekey,
    KemPrekeyPair, KemPrekeyPublic, OneTimePrekeyPair, PQXDH_INFO, RATCHET_OVERHEAD, RemoteBundle,
    Session, Sig64, SignedPrekeyPair,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;

/// The secrets of one PQXDH run.
struct Inputs {
    a_sig: [u8; 32],
    a_dh: [u8; 32],
    a_eph: [u8; 32],
    /// The ML-KEM message `m` (FIPS 203 `Encaps_internal`).
    kem_message: [u8; 32],
    b_sig: [u8; 32],
    b_dh: [u8; 32],
    b_spk: [u8; 32],
    b_opk: Option<[u8; 32]>,
    /// `d || z`.
    kem_seed: [u8; 64],
    device: u32,
    spk_id: u32,
    opk_id: u32,
    kem_id: u32,
    ratchet: [u8; 32],
    plaintext: Vec<u8>,
}

impl Inputs {
    fn from_labels(prefix: &str, with_opk: bool, device: u32) -> Self {
        let s = |name: &str| secret(&format!("{prefix}/{name}"));
        let mut kem_seed = [0u8; 64];
        kem_seed[..32].copy_from_slice(&s("bob/kem/d"));
        kem_seed[32..].copy_from_slice(&s("bob/kem/z"));
        Self {
            a_sig: s("alice/identity_sig"),
            a_dh: s("alice/identity_dh"),
            a_eph: s("alice/ephemeral"),
            kem_message: s("alice/kem_message"),
            b_sig: s("bob/identity_sig"),
            b_dh: s("bob/identity_dh"),
            b_spk: s("bob/signed_prekey"),
            b_opk: with_opk.then(|| s("bob/one_time_prekey")),
            kem_seed,
            device,
            spk_id: 3,
            opk_id: 101,
            kem_id: 0x0001_0002,
            ratchet: s("alice/ratchet"),
            plaintext: b"hello, post-quantum bob".to_vec(),
        }
    }

    fn read(case: &Value) -> R<Self> {
        let i = field(case, "initiator")?;
        Ok(Self {
            a_sig: arr(i, "identity_sig_private")?,
            a_dh: arr(i, "identity_dh_private")?,
            a_eph: arr(i, "ephemeral_private")?,
            kem_message: arr(i, "kem_message")?,
            ratchet: arr(i, "ratchet_private")?,
            plaintext: hex_field(case, "plaintext")?,
            ..Self::read_responder(field(case, "responder")?)?
        })
    }

    /// The responder's half from a case's `responder` (the initiator's half is left from
    /// unused labels: a `first_message` case has only a responder).
    fn read_responder(r: &Value) -> R<Self> {
        let num =
            |name: &str| -> R<u32> { u32::try_from(number(r, name)?).map_err(|e| e.to_string()) };
        let b_opk = match field(r, "one_time_prekey_private")? {
            Value::Null => None,
            _ => Some(arr(r, "one_time_prekey_private")?),
        };
        Ok(Self {
            b_sig: arr(r, "identity_sig_private")?,
            b_dh: arr(r, "identity_dh_private")?,
            b_spk: arr(r, "signed_prekey_private")?,
            b_opk,
            kem_seed: arr(r, "kem_seed")?,
            device: num("device_id")?,
            spk_id: num("signed_prekey_id")?,
            opk_id: if b_opk.is_some() {
                num("one_time_prekey_id")?
            } else {
                0
            },
            kem_id: num("kem_prekey_id")?,
            ..Self::from_labels("unused", false, 0)
        })
    }

    fn alice(&self) -> IdentityKeyPair {
        IdentityKeyPair::from_secrets(&self.a_sig, &self.a_dh)
    }

    fn bob(&self) -> IdentityKeyPair {
        IdentityKeyPair::from_secrets(&self.b_sig, &self.b_dh)
    }

    fn spk(&self) -> SignedPrekeyPair {
        SignedPrekeyPair::from_secret_key_for_device(
            self.spk_id,
            self.device,
            &self.b_spk,
            &self.bob(),
        )
    }

    fn opk(&self) -> Option<OneTimePrekeyPair> {
        self.b_opk
            .map(|k| OneTimePrekeyPair::from_secret_key(self.opk_id, &k))
    }

    fn kem(&self) -> KemPrekeyPair {
        KemPrekeyPair::from_seed(self.kem_id, &self.kem_seed)
    }

    fn bundle(&self) -> RemoteBundle {
        RemoteBundle {
            identity: self.bob().public(),
            signed_prekey: self.spk().public(),
            one_time_prekey: self.opk().map(|k| k.public()),
        }
    }
}

/// What the primitives give for a run.
struct ByHand {
    spk_signature: [u8; 64],
    kem_public: Vec<u8>,
    kem_signature: [u8; 64],
    kem_ciphertext: Vec<u8>,
    kem_shared: [u8; 32],
    dh: Vec<[u8; 32]>,
    sk: [u8; 32],
    ad: Vec<u8>,
}

fn by_hand(i: &Inputs) -> R<ByHand> {
    let spk_pub = x25519_public(&i.b_spk);
    let mut signed = DEVICE_PREKEY_LABEL.to_vec();
    signed.extend_from_slice(&i.device.to_be_bytes());
    signed.extend_from_slice(&spk_pub);
    let spk_signature = ed25519_sign(&i.b_sig, &signed);

    let dk = DecapsulationKey768::from_seed(Seed::from(i.kem_seed));
    let ek_bytes = dk.encapsulation_key().to_bytes();
    let kem_public = ek_bytes.to_vec();
    let mut signed = KEM_PREKEY_LABEL.to_vec();
    signed.extend_from_slice(&i.device.to_be_bytes());
    signed.extend_from_slice(&i.kem_id.to_be_bytes());
    signed.extend_from_slice(&kem_public);
    let kem_signature = ed25519_sign(&i.b_sig, &signed);
    let ek = EncapsulationKey768::new(&ek_bytes).map_err(|_| "ML-KEM refuses its own key")?;
    let (ct, ss) = ek.encapsulate_deterministic(&Array::from(i.kem_message));
    let kem_ciphertext = ct.to_vec();
    let kem_shared: [u8; 32] = ss.into();

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
    ikm.extend_from_slice(&kem_shared);
    let mut info = PQXDH_INFO.to_vec();
    info.extend_from_slice(&Sha256::digest(&kem_public));
    info.extend_from_slice(&Sha256::digest(&kem_ciphertext));
    let mut sk = [0u8; 32];
    let _ = hkdf_sha256(&[0; 32], &ikm, &info, &mut sk);
    let mut ad = Vec::new();
    for k in [
        x25519_public(&i.a_dh),
        ed25519_public(&i.a_sig),
        x25519_public(&i.b_dh),
        ed25519_public(&i.b_sig),
    ] {
        ad.extend_from_slice(&k);
    }
    // PQXDH's SK is not X3DH's: the KEM secret and the transcript hashes are in it.
    let mut classical = [0u8; 32];
    let _ = hkdf_sha256(&[0; 32], &ikm[..ikm.len() - 32], X3DH_INFO, &mut classical);
    ensure(classical != sk, || "PQXDH SK equals X3DH's".into())?;
    Ok(ByHand {
        spk_signature,
        kem_public,
        kem_signature,
        kem_ciphertext,
        kem_shared,
        dh,
        sk,
        ad,
    })
}

/// The first message through the API: the session's `PqPrekey` envelope of `plaintext`.
fn first_message(i: &Inputs, kem_public: &KemPrekeyPublic) -> R<Vec<u8>> {
    let (mut session, _, _) = Session::<64>::initiate_pqxdh_with_fixed_randomness_for_tests(
        &i.alice(),
        &i.bundle(),
        i.device,
        kem_public,
        &i.a_eph,
        &i.kem_message,
    )
    .map_err(|e| format!("initiate: {e}"))?;
    let mut body = vec![
        0u8;
        1 + proto_core::PREKEY_HEADER_LEN
            + proto_core::KEM_HEADER_LEN
            + i.plaintext.len()
            + RATCHET_OVERHEAD
    ];
    let n = Envelope::emit_prefix(
        session.pending_prekey_header(),
        session.pending_kem_header(),
        &mut body,
    )
    .map_err(|e| format!("envelope: {e}"))?;
    let used = session
        .encrypt_with_fixed_ratchet_key_for_tests(&i.ratchet, &i.plaintext, &mut body[n..])
        .map_err(|e| format!("encrypt: {e}"))?;
    body.truncate(n + used);
    Ok(body)
}

/// The responder's side through the API: parse the envelope, agree, decrypt.
fn respond(i: &Inputs, body: &[u8]) -> R<Vec<u8>> {
    let env = Envelope::parse(body).map_err(|e| format!("envelope: {e}"))?;
    let (Envelope::PqPrekey { header, .. }, Some(kem)) = (env, env.kem_header()) else {
        return Err("the first message is not a PqPrekey envelope".into());
    };
    let opk = i.opk();
    let mut session =
        Session::<64>::respond_pqxdh(&i.bob(), &i.spk(), opk.as_ref(), &i.kem(), &header, &kem)
            .map_err(|e| format!("respond: {e}"))?;
    let message = env.message();
    let mut out = vec![0u8; message.len().saturating_sub(RATCHET_OVERHEAD)];
    let n = session
        .decrypt(message, &mut out)
        .map_err(|e| format!("decrypt: {e}"))?;
    out.truncate(n);
    Ok(out)
}

fn accept_case(description: &str, i: &Inputs) -> R<Value> {
    let h = by_hand(i)?;
    let bob = i.bob();
    let published = i.kem().public_for_device(i.device, &bob);
    ensure(
        published.public[..] == h.kem_public[..] && published.signature == h.kem_signature,
        || "the API's KEM prekey differs from the primitives'".into(),
    )?;
    ensure(i.spk().public().signature == h.spk_signature, || {
        "the API's device prekey signature differs".into()
    })?;
    let (agreement, header, kem) =
        proto_core::PqxdhAgreement::initiate_with_fixed_randomness_for_tests(
            &i.alice(),
            &i.bundle(),
            i.device,
            &published,
            &i.a_eph,
            &i.kem_message,
        )
        .map_err(|e| format!("initiate: {e}"))?;
    ensure(agreement.shared_secret_for_tests() == h.sk, || {
        "initiator SK differs from the primitives'".into()
    })?;
    ensure(agreement.associated_data()[..] == h.ad[..], || {
        "initiator AD differs".into()
    })?;
    ensure(
        kem.ciphertext.as_bytes()[..] == h.kem_ciphertext[..],
        || "ciphertext differs from ml-kem's".into(),
    )?;
    let body = first_message(i, &published)?;
    let plain = respond(i, &body)?;
    ensure(plain == i.plaintext, || {
        "the responder read another plaintext".into()
    })?;
    let header_bytes = header.to_bytes();
    let mut responder = responder_json(i);
    for (name, value) in [
        ("identity_sig_public", hx(&ed25519_public(&i.b_sig))),
        ("identity_dh_public", hx(&x25519_public(&i.b_dh))),
        ("signed_prekey_public", hx(&x25519_public(&i.b_spk))),
        ("signed_prekey_signature", hx(&h.spk_signature)),
        (
            "one_time_prekey_public",
            i.b_opk.map_or(Value::Null, |k| hx(&x25519_public(&k))),
        ),
        ("kem_public", hx(&h.kem_public)),
        ("kem_signature", hx(&h.kem_signature)),
    ] {
        responder[name] = value;
    }
    Ok(json!({
        "description": description,
        "kind": "agreement",
        "expect": "accept",
        "initiator": {
            "identity_sig_private": hx(&i.a_sig),
            "identity_dh_private": hx(&i.a_dh),
            "ephemeral_private": hx(&i.a_eph),
            "kem_message": hx(&i.kem_message),
            "ratchet_private": hx(&i.ratchet),
            "identity_sig_public": hx(&ed25519_public(&i.a_sig)),
            "identity_dh_public": hx(&x25519_public(&i.a_dh)),
        },
        "responder": responder,
        "kem_ciphertext": hx(&h.kem_ciphertext),
        "kem_shared_secret": hx(&h.kem_shared),
        "dh": h.dh.iter().map(|d| hx(d)).collect::<Vec<_>>(),
        "sk": hx(&h.sk),
        "ad": hx(&h.ad),
        "prekey_header": hx(&header_bytes),
        "kem_header": hx(&kem.to_bytes()),
        "plaintext": hx(&i.plaintext),
        "first_message": hx(&body),
    }))
}

/// The responder's secrets (what a `first_message` case is answered with).
fn responder_json(i: &Inputs) -> Value {
    json!({
        "identity_sig_private": hx(&i.b_sig),
        "identity_dh_private": hx(&i.b_dh),
        "device_id": i.device,
        "signed_prekey_private": hx(&i.b_spk),
        "signed_prekey_id": i.spk_id,
        "one_time_prekey_private": i.b_opk.map(|k| hx(&k)),
        "one_time_prekey_id": i.b_opk.map(|_| i.opk_id),
        "kem_seed": hx(&i.kem_seed),
        "kem_prekey_id": i.kem_id,
    })
}

/// The refused cases, from the inputs of the first accepted one.
fn reject_cases(i: &Inputs) -> R<Vec<Value>> {
    let bob = i.bob();
    let good = i.kem().public_for_device(i.device, &bob);
    let mut out = Vec::new();
    let initiate = |description: &str, kem: Option<KemPrekey<'_>>, bundle: RemoteBundle| {
        let got = KemPrekeyPublic::from_bundle(kem.as_ref()).and_then(|k| {
            Session::<64>::initiate_pqxdh_with_fixed_randomness_for_tests(
                &i.alice(),
                &bundle,
                i.device,
                &k,
                &i.a_eph,
                &i.kem_message,
            )
            .map(|_| ())
        });
        let kem_json =
            kem.map(|k| json!({ "id": k.id, "key": hx(k.key), "signature": hx(&k.signature.0) }));
        (description.to_owned(), kem_json, bundle, got)
    };
    let mut flipped = good.to_wire();
    let mut sig = flipped.signature;
    sig.0[5] ^= 1;
    flipped.signature = sig;
    let other_device = i.kem().public_for_device(i.device + 1, &bob);
    let mut bad_ek = good.public;
    // The first 12-bit coefficient becomes 4,095 ≥ q = 3,329 (FIPS 203 §7.2 modulus check).
    bad_ek[0] = 0xff;
    bad_ek[1] |= 0x0f;
    let bad_ek = KemPrekeyPublic::sign_for_device(&bob, i.device, i.kem_id, bad_ek);
    let short = &good.public[..KEM_PUBLIC_KEY_LEN - 1];
    let v1_spk = SignedPrekeyPair::from_secret_key(i.spk_id, &i.b_spk, &bob);
    let v1_bundle = RemoteBundle {
        signed_prekey: v1_spk.public(),
        ..i.bundle()
    };
    let runs = [
        initiate(
            "KEM prekey with a flipped signature bit",
            Some(flipped),
            i.bundle(),
        ),
        initiate(
            "KEM prekey signed for another device",
            Some(other_device.to_wire()),
            i.bundle(),
        ),
        initiate(
            "KEM prekey that fails ML-KEM's modulus check (validly signed)",
            Some(bad_ek.to_wire()),
            i.bundle(),
        ),
        initiate(
            "KEM prekey one byte short",
            Some(KemPrekey {
                id: i.kem_id,
                key: short,
                signature: Sig64(good.signature),
            }),
            i.bundle(),
        ),
        initiate("bundle without a KEM prekey", None, i.bundle()),
        initiate(
            "signed prekey signed without a device id (SPK v1)",
            Some(good.to_wire()),
            v1_bundle,
        ),
    ];
    for (description, kem_json, bundle, got) in runs {
        let Err(e) = got else {
            return Err(format!("{description}: accepted"));
        };
        out.push(json!({
            "description": description,
            "kind": "initiate",
            "expect": format!("reject:{}", e.name()),
            "initiator": {
                "identity_sig_private": hx(&i.a_sig),
                "identity_dh_private": hx(&i.a_dh),
                "ephemeral_private": hx(&i.a_eph),
                "kem_message": hx(&i.kem_message),
            },
            "bundle": {
                "identity_sig": hx(&bundle.identity.signing),
                "identity_dh": hx(&bundle.identity.dh),
                "device_id": i.device,
                "signed_prekey_id": bundle.signed_prekey.id,
                "signed_prekey": hx(&bundle.signed_prekey.public),
                "signed_prekey_signature": hx(&bundle.signed_prekey.signature),
                "one_time_prekey": bundle.one_time_prekey.map(|k| json!({ "id": k.id, "key": hx(&k.public) })),
                "kem_prekey": kem_json,
            },
        }));
    }
    // A KEM header of the wrong length, and a tampered ciphertext (ML-KEM's implicit
    // rejection: another SK, so the first message does not decrypt).
    let body = first_message(i, &good)?;
    let kem_start = 1 + 106;
    let header_bytes = &body[kem_start..kem_start + 1092];
    let err = KemHeader::from_bytes(&header_bytes[..1091])
        .err()
        .ok_or("a 1,091-byte KEM header parsed")?;
    out.push(json!({
        "description": "KEM header one byte short (1,091 bytes)",
        "kind": "kem_header",
        "bytes": hx(&header_bytes[..1091]),
        "expect": format!("reject:{}", err.name()),
    }));
    let mut tampered = body.clone();
    tampered[kem_start + 4 + 100] ^= 0x01;
    ensure(respond(i, &tampered).is_err(), || {
        "a tampered ciphertext still decrypted".into()
    })?;
    out.push(json!({
        "description": "first message whose KEM ciphertext has one flipped bit: the responder derives another SK and the message does not decrypt",
        "kind": "first_message",
        "expect": "reject:Decrypt",
        "responder": responder_json(i),
        "first_message": hx(&tampered),
    }));
    let mut wrong_id = body;
    wrong_id[kem_start + 3] ^= 0x01;
    let err = Envelope::parse(&wrong_id)
        .ok()
        .and_then(|env| {
            let Envelope::PqPrekey { header, .. } = env else {
                return None;
            };
            let kem = env.kem_header()?;
            Session::<64>::respond_pqxdh(&bob, &i.spk(), i.opk().as_ref(), &i.kem(), &header, &kem)
                .err()
        })
        .ok_or("a first message naming another KEM prekey was not refused")?;
    out.push(json!({
        "description": "first message naming another KEM prekey id than the responder holds",
        "kind": "first_message",
        "expect": format!("reject:{}", err.name()),
        "responder": responder_json(i),
        "first_message": hx(&wrong_id),
    }));
    Ok(out)
}

pub(super) fn gen_pqxdh() -> R<Value> {
    let runs = [
        (
            "pqxdh/1",
            "PQXDH with a one-time prekey (four DH outputs and the KEM secret), device 2",
            true,
            2,
        ),
        (
            "pqxdh/2",
            "PQXDH without a one-time prekey (three DH outputs and the KEM secret), device 1",
            false,
            1,
        ),
    ];
    let mut cases = Vec::new();
    for (label, description, opk, device) in runs {
        cases.push(accept_case(
            description,
            &Inputs::from_labels(label, opk, device),
        )?);
    }
    cases.extend(reject_cases(&Inputs::from_labels("pqxdh/1", true, 2))?);
    Ok(json!({
        "description": "PQXDH (PROTOCOL.md §4.8): KEM prekey signature Ed25519(IKs, \"Sealroom KEM PK v1\" || device_id BE || kem_id BE || ek), (ct, ss) = ML-KEM-768.Encaps(ek; m), SK = HKDF(32 zero bytes, 32×0xFF || DH1..DH3[4] || ss, \"Sealroom PQXDH v1\" || SHA-256(ek) || SHA-256(ct), 32), AD as X3DH; the first message is a PqPrekey envelope (kind 0x03). Refused: bad or misdirected KEM signatures, a key failing the modulus check or of the wrong length, a missing KEM prekey, an SPK v1, a short KEM header, a tampered ciphertext, another KEM prekey id. Kinds: `agreement` (accept: every intermediate value and the whole first message), `initiate` (the initiator refuses the bundle with the named PqxdhError), `kem_header` (decoding refuses the bytes), `first_message` (the given responder refuses it with the named PqxdhError, or — `reject:Decrypt`, a convention of this file, not an error name — agrees on another key so that the ratchet message does not decrypt)",
        "cases": cases,
    }))
}

pub(super) fn check_pqxdh(case: &Value) -> R<()> {
    match text(case, "kind")? {
        "agreement" => {
            expect_accept(case)?;
            let inputs = Inputs::read(case)?;
            let again = accept_case(text(case, "description")?, &inputs)?;
            diff("", case, &again)
        }
        "initiate" => {
            let i = field(case, "initiator")?;
            let b = field(case, "bundle")?;
            let alice = IdentityKeyPair::from_secrets(
                &arr(i, "identity_sig_private")?,
                &arr(i, "identity_dh_private")?,
            );
            let opk = match field(b, "one_time_prekey")? {
                Value::Null => None,
                v => Some(proto_core::OneTimePrekeyPublic {
                    id: u32::try_from(number(v, "id")?).map_err(|e| e.to_string())?,
                    public: arr(v, "key")?,
                }),
            };
            let bundle = RemoteBundle {
                identity: proto_core::IdentityPublicKey {
                    signing: arr(b, "identity_sig")?,
                    dh: arr(b, "identity_dh")?,
                },
                signed_prekey: proto_core::SignedPrekeyPublic {
                    id: u32::try_from(number(b, "signed_prekey_id")?).map_err(|e| e.to_string())?,
                    public: arr(b, "signed_prekey")?,
                    signature: arr(b, "signed_prekey_signature")?,
                },
                one_time_prekey: opk,
            };
            let device = u32::try_from(number(b, "device_id")?).map_err(|e| e.to_string())?;
            let kem_key;
            let kem = match field(b, "kem_prekey")? {
                Value::Null => None,
                v => {
                    kem_key = hex_field(v, "key")?;
                    Some(KemPrekey {
                        id: u32::try_from(number(v, "id")?).map_err(|e| e.to_string())?,
                        key: &kem_key,
                        signature: Sig64(arr(v, "signature")?),
                    })
                }
            };
            let (ephemeral, kem_message) = (arr(i, "ephemeral_private")?, arr(i, "kem_message")?);
            let got = KemPrekeyPublic::from_bundle(kem.as_ref()).and_then(|k| {
                Session::<64>::initiate_pqxdh_with_fixed_randomness_for_tests(
                    &alice,
                    &bundle,
                    device,
                    &k,
                    &ephemeral,
                    &kem_message,
                )
                .map(|_| ())
            });
            match got {
                Err(e) if text(case, "expect")? == format!("reject:{}", e.name()) => Ok(()),
                other => Err(format!("got {other:?}, want {}", text(case, "expect")?)),
            }
        }
        "kem_header" => match KemHeader::from_bytes(&hex_field(case, "bytes")?) {
            Err(e) if text(case, "expect")? == format!("reject:{}", e.name()) => Ok(()),
            other => Err(format!("got {other:?}")),
        },
        "first_message" => {
            // Answered by the responder the case names.
            let i = Inputs::read_responder(field(case, "responder")?)?;
            let body = hex_field(case, "first_message")?;
            let env = Envelope::parse(&body).map_err(|e| format!("envelope: {e}"))?;
            let (Envelope::PqPrekey { header, .. }, Some(kem)) = (env, env.kem_header()) else {
                return Err("not a PqPrekey envelope".into());
            };
            let want = text(case, "expect")?;
            match Session::<64>::respond_pqxdh(
                &i.bob(),
                &i.spk(),
                i.opk().as_ref(),
                &i.kem(),
                &header,
                &kem,
            ) {
                Err(e) if want == format!("reject:{}", e.name()) => Ok(()),
                Err(e) => Err(format!("refused with {}, want {want}", e.name())),
                Ok(mut s) => {
                    let message = env.message();
                    let mut out = vec![0u8; message.len().saturating_sub(RATCHET_OVERHEAD)];
                    match s.decrypt(message, &mut out) {
                        Err(_) if want == "reject:Decrypt" => Ok(()),
                        other => Err(format!("decrypt gave {other:?}, want {want}")),
                    }
                }
            }
        }
        other => Err(format!("unknown kind {other}")),
    }
}

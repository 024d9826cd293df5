//! `x3dh.json`: X3DH from the primitives and through the API, with and without a one-time prekey.

use proto_core::primitives::{
    SIGNED_PREKEY_LABEL, X3DH_INFO, ed25519_public, ed25519_sign, hkdf_sha256, x25519,
    x25519_public,
};
use proto_core::{
    IdentityKeyPair, OneTimePrekeyPair, PrekeyHeader, RemoteBundle, SignedPrekeyPair, X3dhAgreement,
};
use serde_json::{Value, json};

use super::*;

/// The secrets of one X3DH run.
#[derive(Clone)]
pub(super) struct X3dhInputs {
    pub(super) a_sig: [u8; 32],
    pub(super) a_dh: [u8; 32],
    pub(super) a_eph: [u8; 32],
    pub(super) b_sig: [u8; 32],
    pub(super) b_dh: [u8; 32],
    pub(super) b_spk: [u8; 32],
    pub(super) b_opk: Option<[u8; 32]>,
    pub(super) spk_id: u32,
    pub(super) opk_id: u32,
}

impl X3dhInputs {
    pub(super) fn from_labels(prefix: &str, with_opk: bool) -> Self {
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

    pub(super) fn read(case: &Value) -> R<Self> {
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

    pub(super) fn alice(&self) -> IdentityKeyPair {
        IdentityKeyPair::from_secrets(&self.a_sig, &self.a_dh)
    }

    pub(super) fn bob(&self) -> IdentityKeyPair {
        IdentityKeyPair::from_secrets(&self.b_sig, &self.b_dh)
    }

    pub(super) fn spk(&self) -> SignedPrekeyPair {
        SignedPrekeyPair::from_secret_key(self.spk_id, &self.b_spk, &self.bob())
    }

    pub(super) fn opk(&self) -> Option<OneTimePrekeyPair> {
        self.b_opk
            .map(|k| OneTimePrekeyPair::from_secret_key(self.opk_id, &k))
    }

    pub(super) fn bundle(&self) -> RemoteBundle {
        RemoteBundle {
            identity: self.bob().public(),
            signed_prekey: self.spk().public(),
            one_time_prekey: self.opk().map(|k| k.public()),
        }
    }

    /// The input fields, as the vectors name them.
    pub(super) fn json(&self) -> (Value, Value) {
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
pub(super) fn x3dh_by_hand(i: &X3dhInputs) -> ([u8; 64], Vec<[u8; 32]>, [u8; 32], Vec<u8>) {
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

pub(super) fn x3dh_case(description: &str, i: &X3dhInputs) -> R<Value> {
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

pub(super) const X3DH_CASES: [(&str, &str, bool); 3] = [
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

pub(super) fn gen_x3dh() -> R<Value> {
    let cases = X3DH_CASES
        .iter()
        .map(|(label, d, opk)| x3dh_case(d, &X3dhInputs::from_labels(label, *opk)))
        .collect::<R<Vec<_>>>()?;
    Ok(json!({
        "description": "X3DH (PROTOCOL.md §4.2): DH1..DH4, SK = HKDF(32 zero bytes, 32×0xFF || DH…, \"Sealroom X3DH v1\", 32), AD = IKd_A || IKs_A || IKd_B || IKs_B, and the 106-byte prekey header",
        "cases": cases,
    }))
}

pub(super) fn check_x3dh(case: &Value) -> R<()> {
    expect_accept(case)?;
    let inputs = X3dhInputs::read(case)?;
    let again = x3dh_case(text(case, "description")?, &inputs)?;
    diff("", case, &again)
}

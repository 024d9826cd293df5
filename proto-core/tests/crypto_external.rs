//! External vectors through proto-core's own primitive wrappers: the RFC vectors in
//! `tests/data/rfc.json` (published RFC vectors, each re-verified) and Wycheproof's x25519, ChaCha20-Poly1305, HKDF-SHA256,
//! HMAC-SHA256 and Ed25519 files. These pin the wiring (byte order, nonce layout, key order,
//! strictness), not the primitives themselves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns: a failed step must fail the test"
)]

use proto_core::primitives::{
    AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, ed25519_public, ed25519_sign, ed25519_verify,
    hkdf_sha256, hmac_sha256, open_in_place, seal_in_place, x25519, x25519_public,
};
use proto_core::{
    IdentityKeyPair, OneTimePrekeyPublic, RemoteBundle, SignedPrekeyPair, X3dhAgreement, X3dhError,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::Value;

fn rfc() -> Value {
    serde_json::from_str(include_str!("data/rfc.json")).unwrap()
}

fn hx(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("missing {field}")),
    )
    .unwrap()
}

fn arr<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

fn cases<'a>(rfc: &'a Value, name: &str) -> &'a [Value] {
    let list = rfc[name]
        .as_array()
        .unwrap_or_else(|| panic!("rfc.json has no {name}"));
    assert!(!list.is_empty(), "{name} is empty");
    list
}

#[test]
fn rfc_8439_chacha20poly1305() {
    for case in cases(&rfc(), "chacha20poly1305") {
        let key = arr::<32>(&hx(case, "key")).unwrap();
        let nonce = arr::<12>(&hx(case, "nonce")).unwrap();
        let aad = hx(case, "aad");
        let mut buf = hx(case, "plaintext");
        let tag = seal_in_place(&key, &nonce, &aad, &mut buf);
        assert_eq!(buf, hx(case, "ciphertext"));
        assert_eq!(tag.to_vec(), hx(case, "tag"));
        open_in_place(&key, &nonce, &aad, &mut buf, &tag).unwrap();
        assert_eq!(buf, hx(case, "plaintext"));
    }
}

#[test]
fn rfc_7748_x25519() {
    let rfc = rfc();
    for case in cases(&rfc, "x25519") {
        let out = x25519(
            arr(&hx(case, "scalar")).unwrap(),
            arr(&hx(case, "u")).unwrap(),
        );
        assert_eq!(out.to_vec(), hx(case, "output"));
    }
    for case in cases(&rfc, "x25519_dh") {
        let a: [u8; 32] = arr(&hx(case, "alice_private")).unwrap();
        let b: [u8; 32] = arr(&hx(case, "bob_private")).unwrap();
        assert_eq!(x25519_public(&a).to_vec(), hx(case, "alice_public"));
        assert_eq!(x25519_public(&b).to_vec(), hx(case, "bob_public"));
        assert_eq!(x25519(a, x25519_public(&b)).to_vec(), hx(case, "shared"));
        assert_eq!(x25519(b, x25519_public(&a)).to_vec(), hx(case, "shared"));
    }
}

#[test]
fn rfc_5869_hkdf_and_rfc_4231_hmac() {
    let rfc = rfc();
    for case in cases(&rfc, "hkdf_sha256") {
        let len = usize::try_from(case["length"].as_u64().unwrap()).unwrap();
        let mut okm = vec![0u8; len];
        hkdf_sha256(
            &hx(case, "salt"),
            &hx(case, "ikm"),
            &hx(case, "info"),
            &mut okm,
        )
        .unwrap();
        assert_eq!(okm, hx(case, "okm"));
        if case.get("prk").is_some() {
            // PRK = HMAC(salt, IKM): the extract step, through the HMAC wrapper.
            assert_eq!(
                hmac_sha256(&hx(case, "salt"), &hx(case, "ikm")).to_vec(),
                hx(case, "prk")
            );
        }
    }
    for case in cases(&rfc, "hmac_sha256") {
        assert_eq!(
            hmac_sha256(&hx(case, "key"), &hx(case, "data")).to_vec(),
            hx(case, "mac")
        );
    }
}

#[test]
fn rfc_8032_ed25519() {
    for case in cases(&rfc(), "ed25519") {
        let secret: [u8; 32] = arr(&hx(case, "secret")).unwrap();
        let public: [u8; 32] = arr(&hx(case, "public")).unwrap();
        let sig: [u8; 64] = arr(&hx(case, "signature")).unwrap();
        let msg = hx(case, "message");
        assert_eq!(ed25519_public(&secret), public);
        assert_eq!(ed25519_sign(&secret, &msg), sig);
        ed25519_verify(&public, &msg, &sig).unwrap();
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(ed25519_verify(&public, &msg, &bad).is_err());
    }
}

#[test]
fn wycheproof_x25519() {
    use wycheproof::xdh::{TestName, TestSet};
    let set = TestSet::load(TestName::X25519).unwrap();
    let mut rng = ChaCha20Rng::from_seed([42; 32]);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate(&mut rng, 1, &bob);
    let (mut checked, mut zero) = (0, 0);
    for group in &set.test_groups {
        for t in &group.tests {
            let (Some(private), Some(public)) =
                (arr::<32>(&t.private_key), arr::<32>(&t.public_key))
            else {
                assert!(
                    t.result.must_fail(),
                    "tc {}: odd-length key must be invalid",
                    t.tc_id
                );
                continue;
            };
            let shared = x25519(private, public);
            if t.result.must_fail() {
                assert_ne!(shared.to_vec(), *t.shared_secret, "tc {}", t.tc_id);
            } else {
                assert_eq!(
                    shared.to_vec(),
                    *t.shared_secret,
                    "tc {} {}",
                    t.tc_id,
                    t.comment
                );
            }
            if shared == [0; 32] {
                // The protocol layer must refuse a key that gives an all-zero exchange.
                let bundle = RemoteBundle {
                    identity: bob.public(),
                    signed_prekey: spk.public(),
                    one_time_prekey: Some(OneTimePrekeyPublic { id: 9, public }),
                };
                let err = X3dhAgreement::initiate(&mut rng, &alice, &bundle).unwrap_err();
                assert_eq!(err, X3dhError::NonContributory, "tc {}", t.tc_id);
                zero += 1;
            }
            checked += 1;
        }
    }
    assert!(
        checked > 500 && zero > 10,
        "checked {checked}, all-zero {zero}"
    );
}

#[test]
fn wycheproof_chacha20poly1305() {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::ChaCha20Poly1305).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        for t in &group.tests {
            let (Some(key), Some(nonce), Some(tag)) = (
                arr::<AEAD_KEY_LEN>(&t.key),
                arr::<AEAD_NONCE_LEN>(&t.nonce),
                arr::<AEAD_TAG_LEN>(&t.tag),
            ) else {
                // The wrappers' types cannot even express another key, nonce or tag size.
                assert!(t.result.must_fail(), "tc {}", t.tc_id);
                continue;
            };
            let mut opened = t.ct.to_vec();
            let result = open_in_place(&key, &nonce, &t.aad, &mut opened, &tag);
            if t.result.must_fail() {
                assert!(result.is_err(), "tc {} {}", t.tc_id, t.comment);
                assert_eq!(opened, *t.ct, "tc {}: buffer untouched", t.tc_id);
            } else {
                result.unwrap_or_else(|_| panic!("tc {} {}", t.tc_id, t.comment));
                assert_eq!(opened, *t.pt, "tc {}", t.tc_id);
                let mut sealed = t.pt.to_vec();
                assert_eq!(
                    seal_in_place(&key, &nonce, &t.aad, &mut sealed,),
                    tag,
                    "tc {}",
                    t.tc_id
                );
                assert_eq!(sealed, *t.ct, "tc {}", t.tc_id);
            }
            checked += 1;
        }
    }
    assert!(checked > 250, "checked {checked}");
}

#[test]
fn wycheproof_hkdf_sha256() {
    use wycheproof::hkdf::{TestName, TestSet};
    let set = TestSet::load(TestName::HkdfSha256).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        for t in &group.tests {
            let mut okm = vec![0u8; t.size];
            let result = hkdf_sha256(&t.salt, &t.ikm, &t.info, &mut okm);
            if t.result.must_fail() {
                assert!(result.is_err(), "tc {} {}", t.tc_id, t.comment);
            } else {
                result.unwrap();
                assert_eq!(okm, *t.okm, "tc {} {}", t.tc_id, t.comment);
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "checked {checked}");
}

#[test]
fn wycheproof_hmac_sha256() {
    use wycheproof::mac::{TestName, TestSet};
    let set = TestSet::load(TestName::HmacSha256).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        for t in &group.tests {
            let mac = hmac_sha256(&t.key, &t.msg);
            let matches = mac.get(..t.tag.len()) == Some(&t.tag[..]) && group.tag_size % 8 == 0;
            assert_eq!(
                matches,
                !t.result.must_fail(),
                "tc {} {}",
                t.tc_id,
                t.comment
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "checked {checked}");
}

#[test]
fn wycheproof_ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        let public: [u8; 32] = arr(&group.key.pk).unwrap();
        for t in &group.tests {
            let ok =
                arr::<64>(&t.sig).is_some_and(|sig| ed25519_verify(&public, &t.msg, &sig).is_ok());
            assert_eq!(ok, !t.result.must_fail(), "tc {} {}", t.tc_id, t.comment);
            checked += 1;
        }
    }
    assert!(checked > 100, "checked {checked}");
}

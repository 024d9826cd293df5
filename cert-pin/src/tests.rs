use super::*;

/// A self-signed certificate for `key` (each call a new certificate: new serial, new time).
fn cert_for(key: &rcgen::KeyPair) -> Vec<u8> {
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.self_signed(key).unwrap().der().to_vec()
}

fn verify(v: &PinVerifier, der: &[u8]) -> bool {
    let name = ServerName::try_from("localhost").unwrap();
    v.verify_server_cert(
        &CertificateDer::from(der.to_vec()),
        &[],
        &name,
        &[],
        UnixTime::now(),
    )
    .is_ok()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[test]
fn the_key_pin_is_the_sha256_of_the_subject_public_key_info() {
    let key = rcgen::KeyPair::generate().unwrap();
    let der = cert_for(&key);
    // rcgen's own SubjectPublicKeyInfo encoding of the key, hashed independently.
    let want: [u8; 32] =
        sha2::Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key)).into();
    assert_eq!(Pin::of_key(&der).unwrap(), Pin::Key(want));
    assert_eq!(
        Pin::of_key(b"not a certificate"),
        Err(PinError::BadCertificate)
    );
}

#[test]
fn pins_print_and_parse_back() {
    let key = rcgen::KeyPair::generate().unwrap();
    let der = cert_for(&key);
    let p = Presented::of(&der).unwrap();
    let key_text = p.key.to_string();
    assert!(
        key_text.starts_with("sha256/") && key_text.len() == 7 + 44,
        "{key_text}"
    );
    assert_eq!(key_text.parse::<Pin>().unwrap(), p.key);
    let fp = fingerprint(&der);
    assert_eq!(fp, p.certificate.to_string());
    assert_eq!(fp.len(), 32 * 3 - 1);
    assert!(
        fp.chars()
            .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
    assert_eq!(fp.parse::<Pin>().unwrap(), p.certificate);
    assert_eq!(
        fp.to_ascii_lowercase().parse::<Pin>().unwrap(),
        p.certificate,
        "hex in either case"
    );
    assert_eq!(
        fp.replace(':', "").parse::<Pin>().unwrap(),
        p.certificate,
        "colons optional"
    );
    for bad in ["", "AA:BB", "sha256/", "sha256/AAAA", "zz", &fp[3..]] {
        assert_eq!(bad.parse::<Pin>(), Err(PinError::NotAPin), "{bad:?}");
    }
}

#[test]
fn a_key_pin_survives_a_new_certificate_for_the_same_key_only() {
    let key = rcgen::KeyPair::generate().unwrap();
    let first = cert_for(&key);
    let renewed = cert_for(&key);
    assert_ne!(first, renewed);
    let other = cert_for(&rcgen::KeyPair::generate().unwrap());
    let pin = Pin::of_key(&first).unwrap();

    let pinned = PinVerifier::new(Some(pin), provider());
    assert!(verify(&pinned, &first));
    assert!(verify(&pinned, &renewed), "same key, new certificate");
    assert!(!verify(&pinned, &other), "a different key is refused");
    let seen = pinned.seen().lock().unwrap().unwrap();
    assert_eq!(
        seen,
        Presented::of(&other).unwrap(),
        "what was refused is recorded"
    );

    // An older certificate pin matches its own certificate only.
    let old = PinVerifier::new(Some(Pin::of_certificate(&first)), provider());
    assert!(verify(&old, &first));
    assert!(!verify(&old, &renewed));

    // First use: anything readable, recorded.
    let first_use = PinVerifier::new(None, provider());
    assert!(verify(&first_use, &renewed));
    assert_eq!(
        first_use.seen().lock().unwrap().unwrap().key,
        pin,
        "the key pin to keep"
    );
    assert!(!verify(&first_use, b"not a certificate"));
}

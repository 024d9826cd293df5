//! Pinning the server's certificate by its SHA-256 fingerprint, for native clients (the
//! `sealroom` CLI, the server's own test client and load generator).
//!
//! A fingerprint is the SHA-256 of the DER end-entity certificate, written `AA:BB:…` — the form
//! `sealroom-server` prints at start. [`PinVerifier`] accepts exactly the pinned certificate, or,
//! when nothing is pinned yet (trust on first use), any certificate, recording the one it saw so
//! the caller can pin it. Either way the handshake signature is checked with the provider's
//! algorithms (TLS 1.3 only: TLS 1.2 signatures are refused). It does not store pins or decide
//! when to trust a new one; that is the client's business.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::Digest;

/// SHA-256 of a DER certificate as upper-case hex pairs joined by `:`.
pub fn fingerprint(der: &[u8]) -> String {
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Accepts the pinned certificate (or, with no pin, any) and records the fingerprint it saw.
#[derive(Debug)]
pub struct PinVerifier {
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    /// A verifier for `expected` (compared case-insensitively), or for any certificate when
    /// `None`; signatures are checked with `provider`'s algorithms.
    pub fn new(expected: Option<String>, provider: Arc<CryptoProvider>) -> Self {
        Self {
            expected,
            seen: Arc::new(Mutex::new(None)),
            provider,
        }
    }

    /// Where the fingerprint of the certificate presented is recorded, set during the handshake.
    pub fn seen(&self) -> Arc<Mutex<Option<String>>> {
        Arc::clone(&self.seen)
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fp.clone());
        }
        match &self.expected {
            Some(want) if !want.eq_ignore_ascii_case(&fp) => Err(rustls::Error::General(
                "server certificate does not match the pinned fingerprint".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn pins_exactly_and_records_what_it_saw() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = b"not really DER, but hashed all the same";
        let fp = fingerprint(cert);
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(
            fp.chars()
                .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );

        let first_use = PinVerifier::new(None, provider.clone());
        assert!(verify(&first_use, cert));
        assert_eq!(
            first_use.seen().lock().unwrap().as_deref(),
            Some(fp.as_str())
        );

        let pinned = PinVerifier::new(Some(fp.to_ascii_lowercase()), provider.clone());
        assert!(verify(&pinned, cert), "comparison ignores case");
        assert!(
            !verify(&pinned, b"another certificate"),
            "a different certificate is refused"
        );
        assert_eq!(
            pinned.seen().lock().unwrap().as_deref(),
            Some(fingerprint(b"another certificate").as_str())
        );
    }
}

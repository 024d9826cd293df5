//! Pinning the server by the SHA-256 of its key, for native clients (the `sealroom` CLI, the
//! server's own test client and load generator).
//!
//! A [`Pin`] is one of two digests of the server's end-entity certificate:
//!
//! - [`Pin::Key`]: SHA-256 of its SubjectPublicKeyInfo (DER), written `sha256/<base64>` — the
//!   `pin-sha256` of RFC 7469, which `openssl x509 -pubkey -noout | openssl pkey -pubin
//!   -outform der | openssl dgst -sha256 -binary | base64` reproduces. It survives a renewal
//!   of the certificate with the same key, which `sealroom-server` does for its self-signed
//!   certificate every year. This is what clients pin.
//! - [`Pin::Certificate`]: SHA-256 of the whole DER certificate, written `AA:BB:…` — what
//!   older clients pinned and what `sealroom-server` still prints; it is accepted (it matches
//!   the one certificate it was taken from) so that a client can upgrade its pin to the key.
//!
//! The key is read with rustls's own certificate parser (`rustls::server::ParsedCertificate`,
//! i.e. webpki), the parse that checks the handshake signature, so the key pinned is the key
//! that signed the handshake.
//!
//! [`PinVerifier`] accepts a certificate matching the pin, or, when nothing is pinned yet
//! (trust on first use), any certificate whose key can be read, recording what it saw
//! ([`Presented`]) so the caller can pin it. Either way the handshake signature is checked with
//! the provider's algorithms (TLS 1.3 only: TLS 1.2 signatures are refused). It does not store
//! pins or decide when to trust a new one; that is the client's business.

use core::fmt;
use core::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::Digest;

/// The prefix of a key pin's text form.
const KEY_PREFIX: &str = "sha256/";

/// SHA-256 of a DER certificate as upper-case hex pairs joined by `:` (a
/// [`Pin::Certificate`]'s text form, what `sealroom-server` prints as its fingerprint).
pub fn fingerprint(der: &[u8]) -> String {
    Pin::of_certificate(der).to_string()
}

/// What a client expects of the server's end-entity certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    /// SHA-256 of the certificate's SubjectPublicKeyInfo: the key, whatever certificate carries
    /// it. Text form `sha256/<base64>`.
    Key([u8; 32]),
    /// SHA-256 of the whole certificate (older pins). Text form `AA:BB:…`.
    Certificate([u8; 32]),
}

/// Why a pin could not be made or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinError {
    /// The text is neither `sha256/<base64 of 32 bytes>` nor 32 hex pairs (`AA:BB:…`).
    NotAPin,
    /// The certificate cannot be parsed, so its key is unknown.
    BadCertificate,
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinError::NotAPin => {
                "not a pin: give the key pin `sha256/…` or the certificate fingerprint `AA:BB:…` \
                 (64 hex digits) the server printed"
            }
            PinError::BadCertificate => "the server's certificate cannot be parsed",
        })
    }
}

impl core::error::Error for PinError {}

impl Pin {
    /// The key pin of a DER certificate: SHA-256 of its SubjectPublicKeyInfo.
    pub fn of_key(der: &[u8]) -> Result<Self, PinError> {
        let cert = CertificateDer::from(der);
        let parsed = ParsedCertificate::try_from(&cert).map_err(|_| PinError::BadCertificate)?;
        let spki = parsed.subject_public_key_info();
        Ok(Pin::Key(sha2::Sha256::digest(spki.as_ref()).into()))
    }

    /// The certificate pin of a DER certificate: SHA-256 of all of it.
    pub fn of_certificate(der: &[u8]) -> Self {
        Pin::Certificate(sha2::Sha256::digest(der).into())
    }

    /// Whether this is a key pin (rather than an older certificate pin).
    pub fn is_key(&self) -> bool {
        matches!(self, Pin::Key(_))
    }
}

impl FromStr for Pin {
    type Err = PinError;

    /// `sha256/<base64>` is a key pin; 32 hex pairs, with or without `:`, in either case, a
    /// certificate pin. Surrounding spaces are ignored.
    fn from_str(s: &str) -> Result<Self, PinError> {
        let s = s.trim();
        if let Some(b64) = s.strip_prefix(KEY_PREFIX) {
            let bytes = data_encoding::BASE64
                .decode(b64.as_bytes())
                .map_err(|_| PinError::NotAPin)?;
            return bytes
                .try_into()
                .map(Pin::Key)
                .map_err(|_| PinError::NotAPin);
        }
        let hex: String = s.chars().filter(|c| *c != ':').collect();
        let bytes = data_encoding::HEXUPPER_PERMISSIVE
            .decode(hex.to_ascii_uppercase().as_bytes())
            .map_err(|_| PinError::NotAPin)?;
        bytes
            .try_into()
            .map(Pin::Certificate)
            .map_err(|_| PinError::NotAPin)
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pin::Key(d) => write!(f, "{KEY_PREFIX}{}", data_encoding::BASE64.encode(d)),
            Pin::Certificate(d) => {
                for (i, b) in d.iter().enumerate() {
                    if i > 0 {
                        f.write_str(":")?;
                    }
                    write!(f, "{b:02X}")?;
                }
                Ok(())
            }
        }
    }
}

/// Both digests of the certificate a server presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presented {
    /// Its key pin ([`Pin::Key`]).
    pub key: Pin,
    /// Its certificate pin ([`Pin::Certificate`]).
    pub certificate: Pin,
}

impl Presented {
    /// The digests of a DER certificate; fails when its key cannot be read.
    pub fn of(der: &[u8]) -> Result<Self, PinError> {
        Ok(Self {
            key: Pin::of_key(der)?,
            certificate: Pin::of_certificate(der),
        })
    }

    /// Whether `pin` (of either kind) matches this certificate.
    pub fn matches(&self, pin: &Pin) -> bool {
        *pin == self.key || *pin == self.certificate
    }
}

/// Accepts a certificate matching the pin (or, with no pin, any whose key can be read) and
/// records what it saw.
#[derive(Debug)]
pub struct PinVerifier {
    expected: Option<Pin>,
    seen: Arc<Mutex<Option<Presented>>>,
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    /// A verifier for `expected`, or for any certificate when `None`; signatures are checked
    /// with `provider`'s algorithms.
    pub fn new(expected: Option<Pin>, provider: Arc<CryptoProvider>) -> Self {
        Self {
            expected,
            seen: Arc::new(Mutex::new(None)),
            provider,
        }
    }

    /// Where the digests of the certificate presented are recorded during the handshake (also
    /// when it does not match, so the caller can say what it got).
    pub fn seen(&self) -> Arc<Mutex<Option<Presented>>> {
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
        let presented = Presented::of(end_entity)
            .map_err(|e| rustls::Error::General(format!("{e}: its key cannot be pinned")))?;
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(presented);
        }
        match &self.expected {
            Some(want) if !presented.matches(want) => Err(rustls::Error::General(
                "the server's key does not match the pinned one".into(),
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
mod tests;

//! TLS: TLS 1.3 only (rustls with the `ring` provider), ALPN `sealroom/1` for native frames and
//! `http/1.1` for browsers, and the certificate: loaded from PEM files, or made once (rcgen,
//! self-signed for localhost and the names given) and kept in the data folder.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN id of the native frame transport.
pub const ALPN_SEALROOM: &[u8] = b"sealroom/1";
/// ALPN id of HTTPS (static files and the WebSocket upgrade).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Certificate generation failed.
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate in use.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// SHA-256 of the leaf, as colon-separated hex (what a client pins).
    pub fingerprint: String,
    /// Whether it was generated here.
    pub self_signed: bool,
    /// Where it is kept.
    pub cert_path: PathBuf,
    key: Arc<PrivateKeyDer<'static>>,
}

/// SHA-256 fingerprint of a DER certificate, `AA:BB:…` (what clients pin).
pub use cert_pin::fingerprint;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn load_pem(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_bytes = fs::read(cert).map_err(io_err(cert))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert.to_owned(),
            what: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_owned(),
            what: "no CERTIFICATE block found".into(),
        });
    }
    let key_bytes = fs::read(key).map_err(io_err(key))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::Pem {
        path: key.to_owned(),
        what: format!("no usable private key: {e}"),
    })?;
    Ok((chain, key_der))
}

/// Loads `--cert`/`--key`, or the certificate kept in `data_dir`, making it on first start.
pub fn load_or_create(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
    hostnames: &[String],
) -> Result<Identity, TlsError> {
    let (cert_path, key_path, self_signed) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned(), false),
        _ => (data_dir.join("cert.pem"), data_dir.join("key.pem"), true),
    };
    if self_signed {
        make_or_renew(&cert_path, &key_path, hostnames)?;
    }
    let (chain, key_der) = load_pem(&cert_path, &key_path)?;
    let leaf = chain.first().map(|c| fingerprint(c)).unwrap_or_default();
    Ok(Identity {
        chain,
        fingerprint: leaf,
        self_signed,
        cert_path,
        key: Arc::new(key_der),
    })
}

/// How long a self-signed certificate is valid.
pub const SELF_SIGNED_DAYS: i64 = 365;
/// A self-signed certificate is renewed (same key) when it has less than this left.
pub const RENEW_WITHIN_DAYS: i64 = 30;
/// Days a certificate made by an older server (no recorded expiry) is kept before renewal, so
/// clients that pinned the certificate itself can connect once and move to the key pin.
pub const LEGACY_TRANSITION_DAYS: i64 = 30;

/// Where the expiry of the self-signed certificate is kept (Unix seconds), beside it.
fn expiry_path(cert_path: &Path) -> PathBuf {
    cert_path.with_extension("expires")
}

/// Makes the self-signed certificate (and its key) on first start; later, renews the
/// certificate with the same key when it is within [`RENEW_WITHIN_DAYS`] of expiring. A
/// certificate from an older server (no recorded expiry; valid until 4096) is kept for
/// [`LEGACY_TRANSITION_DAYS`] more, then renewed. Clients pin the key (SPKI), so a renewal
/// does not trip their pin.
fn make_or_renew(cert_path: &Path, key_path: &Path, hostnames: &[String]) -> Result<(), TlsError> {
    let now = time::OffsetDateTime::now_utc();
    let have_pair = cert_path.exists() && key_path.exists();
    if have_pair {
        let expires = fs::read_to_string(expiry_path(cert_path))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok());
        match expires {
            Some(e) if e - now > time::Duration::days(RENEW_WITHIN_DAYS) => return Ok(()),
            Some(_) => {}
            None => {
                // Made by a server that kept no expiry (its certificate runs to 4096). Clients
                // that pinned that certificate switch to pinning its key the next time they
                // connect; keep it for a transition so they can, then renew as usual.
                let until = now + time::Duration::days(RENEW_WITHIN_DAYS + LEGACY_TRANSITION_DAYS);
                write_atomic(
                    &expiry_path(cert_path),
                    until.unix_timestamp().to_string().as_bytes(),
                    0o644,
                )?;
                tracing::info!(
                    days = LEGACY_TRANSITION_DAYS,
                    "certificate from an older server: kept for a transition, then renewed with \
                     its key"
                );
                return Ok(());
            }
        }
    }
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for h in hostnames {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let key = if have_pair {
        let pem = fs::read_to_string(key_path).map_err(io_err(key_path))?;
        rcgen::KeyPair::from_pem(&pem)?
    } else {
        let key = rcgen::KeyPair::generate()?;
        write_atomic(key_path, key.serialize_pem().as_bytes(), 0o600)?;
        key
    };
    let mut params = rcgen::CertificateParams::new(names)?;
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let cert = params.self_signed(&key)?;
    // Key first, certificate last: the certificate's presence marks a complete pair.
    write_atomic(cert_path, cert.pem().as_bytes(), 0o644)?;
    write_atomic(
        &expiry_path(cert_path),
        params.not_after.unix_timestamp().to_string().as_bytes(),
        0o644,
    )?;
    if have_pair {
        tracing::info!(path = %cert_path.display(), "renewed the self-signed certificate (same key)");
    } else {
        tracing::info!(path = %cert_path.display(), "made a self-signed certificate");
    }
    Ok(())
}

/// Writes `bytes` to `path` so that a crash leaves no half-written file: a temporary file in the
/// same folder (created with `mode`, before anything is written), synced, renamed over `path`,
/// then the folder synced.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut tmp = builder.tempfile_in(dir).map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// A rustls server configuration: TLS 1.3 only, `ring`, both ALPN ids.
pub fn server_config(identity: &Identity) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![ALPN_SEALROOM.to_vec(), ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

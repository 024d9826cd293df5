//! Password hashing: PBKDF2-HMAC-SHA256 with a 16-byte random salt, kept as a PHC string
//! (`$pbkdf2-sha256$i=600000,l=32$<salt>$<hash>`, unpadded standard base64 as the PHC format
//! specifies).
//!
//! These functions are CPU-bound on purpose; callers run them on a blocking pool.

use sha2::Sha256;

/// PBKDF2 iterations for new passwords (OWASP's figure for PBKDF2-HMAC-SHA256).
pub const DEFAULT_ROUNDS: u32 = 600_000;
/// Salt length in bytes.
pub const SALT_LEN: usize = 16;
/// Derived key length in bytes.
pub const HASH_LEN: usize = 32;

/// Why a stored PHC string could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhcError {
    /// Not a `$pbkdf2-sha256$…` string this server wrote.
    #[error("stored password hash is malformed")]
    Malformed,
}

/// Hashes `password` with a fresh random salt; returns the PHC string.
pub fn hash_password(password: &str, rounds: u32) -> Result<String, getrandom::Error> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt)?;
    Ok(hash_with_salt(password, &salt, rounds))
}

fn hash_with_salt(password: &str, salt: &[u8], rounds: u32) -> String {
    let mut out = [0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, rounds, &mut out);
    format!(
        "$pbkdf2-sha256$i={rounds},l={HASH_LEN}${}${}",
        b64_encode(salt),
        b64_encode(&out)
    )
}

/// Checks `password` against a PHC string, in constant time over the derived key.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PhcError> {
    let mut parts = phc.split('$');
    let (Some(""), Some("pbkdf2-sha256"), Some(params), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(PhcError::Malformed);
    };
    let mut rounds = None;
    for kv in params.split(',') {
        match kv.split_once('=') {
            Some(("i", v)) => rounds = v.parse::<u32>().ok(),
            Some(("l", _)) => {}
            _ => return Err(PhcError::Malformed),
        }
    }
    let rounds = rounds.filter(|r| *r > 0).ok_or(PhcError::Malformed)?;
    let salt = b64_decode(salt).ok_or(PhcError::Malformed)?;
    let expected = b64_decode(hash).ok_or(PhcError::Malformed)?;
    if expected.is_empty() || expected.len() > 64 {
        return Err(PhcError::Malformed);
    }
    let mut out = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, rounds, &mut out);
    Ok(constant_time_eq(&out, &expected))
}

/// A hash of a random password with `rounds`, for unknown users: verifying against it costs
/// exactly what verifying a real account costs, and never succeeds in practice.
pub fn decoy_hash(rounds: u32) -> String {
    let mut salt = [0u8; SALT_LEN];
    let mut pw = [0u8; 32];
    // Should the OS RNG fail, a fixed decoy still costs the same time; it never matches a
    // password that is checked, because verification of unknown users is always discarded.
    let _ = getrandom::fill(&mut salt);
    let _ = getrandom::fill(&mut pw);
    hash_with_salt(&hex::encode(pw), &salt, rounds)
}

/// Constant-time equality of two byte strings of public length.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    core::hint::black_box(diff) == 0
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(B64[idx as usize]));
        }
    }
    out
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = B64.iter().position(|&x| x == c)?;
        acc = (acc << 6) | u32::try_from(v).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn rfc7914_pbkdf2_vectors() {
        // A copy of ../shared/vectors/rfc.json, kept in the crate so CI needs nothing outside.
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../testdata/rfc.json")).unwrap();
        let cases = v["pbkdf2_sha256"].as_array().unwrap();
        assert!(!cases.is_empty());
        for c in cases {
            let want = unhex(c["dk"].as_str().unwrap());
            let iters = u32::try_from(c["iterations"].as_u64().unwrap()).unwrap();
            let mut out = vec![0u8; want.len()];
            pbkdf2::pbkdf2_hmac::<Sha256>(
                c["password"].as_str().unwrap().as_bytes(),
                c["salt"].as_str().unwrap().as_bytes(),
                iters,
                &mut out,
            );
            assert_eq!(out, want, "{}", c["source"]);
        }
    }

    #[test]
    fn default_rounds_is_600k() {
        assert_eq!(DEFAULT_ROUNDS, 600_000);
        assert_eq!(
            crate::config::ServerConfig::new("/nonexistent".into()).pbkdf2_rounds,
            600_000
        );
    }

    #[test]
    fn phc_roundtrip_and_shape() {
        let phc = hash_password("correct horse battery staple", 1000).unwrap();
        assert!(phc.starts_with("$pbkdf2-sha256$i=1000,l=32$"));
        let salt = phc.split('$').nth(3).unwrap();
        assert_eq!(b64_decode(salt).unwrap().len(), SALT_LEN);
        assert!(verify_password("correct horse battery staple", &phc).unwrap());
        assert!(!verify_password("correct horse battery stapl", &phc).unwrap());
        assert!(verify_password("x", "$argon2id$v=19$m=1$aaaa$bbbb").is_err());
        assert!(verify_password("x", "garbage").is_err());
    }

    #[test]
    fn b64_roundtrip() {
        for n in 0..40 {
            let v: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(b64_decode(&b64_encode(&v)).unwrap(), v);
        }
        assert_eq!(b64_encode(b"\xff\xef"), "/+8");
    }
}

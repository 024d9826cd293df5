//! Password hashing: PBKDF2-HMAC-SHA256 with a 16-byte random salt, kept as a PHC string
//! (`$pbkdf2-sha256$i=600000,l=32$<salt>$<hash>`, unpadded standard base64 as the PHC format
//! specifies).
//!
//! These functions are CPU-bound on purpose; callers run them on a blocking pool.

use pbkdf2::password_hash::{self, PasswordHasher as _, PasswordVerifier as _};
use pbkdf2::phc::PasswordHash;
use pbkdf2::{Algorithm, Params, Pbkdf2};

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

/// The hasher for `rounds` (at least [`Params::MIN_ROUNDS`]) and a 32-byte key.
fn hasher(rounds: u32) -> Pbkdf2 {
    let params = Params::new_with_output_len(rounds.max(Params::MIN_ROUNDS), HASH_LEN)
        .unwrap_or(Params::RECOMMENDED);
    Pbkdf2::new(Algorithm::Pbkdf2Sha256, params)
}

/// Hashes `password` with a fresh random salt; returns the PHC string.
pub fn hash_password(password: &str, rounds: u32) -> Result<String, getrandom::Error> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt)?;
    Ok(hash_with_salt(password, &salt, rounds))
}

fn hash_with_salt(password: &str, salt: &[u8], rounds: u32) -> String {
    match hasher(rounds).hash_password_with_salt(password.as_bytes(), salt) {
        Ok(phc) => phc.to_string(),
        // Only a salt or output length outside PHC's bounds fails, and ours are fixed.
        Err(e) => {
            tracing::error!(error = %e, "PBKDF2 hashing failed");
            String::new()
        }
    }
}

/// Checks `password` against a PHC string (the derived keys compared in constant time).
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PhcError> {
    let hash: PasswordHash = phc.parse().map_err(|_| PhcError::Malformed)?;
    if hash.algorithm.as_str() != Algorithm::Pbkdf2Sha256.to_str() {
        return Err(PhcError::Malformed);
    }
    match hasher(Params::MIN_ROUNDS).verify_password(password.as_bytes(), &hash) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::PasswordInvalid) => Ok(false),
        Err(_) => Err(PhcError::Malformed),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn rfc7914_pbkdf2_vectors() {
        use sha2::Sha256;
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../../proto-core/tests/data/rfc.json")).unwrap();
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
    }

    #[test]
    fn phc_roundtrip_and_shape() {
        let phc = hash_password("correct horse battery staple", 1000).unwrap();
        assert!(phc.starts_with("$pbkdf2-sha256$i=1000,l=32$"));
        let parsed: PasswordHash = phc.parse().unwrap();
        assert_eq!(parsed.salt.unwrap().as_ref().len(), SALT_LEN);
        assert!(verify_password("correct horse battery staple", &phc).unwrap());
        assert!(!verify_password("correct horse battery stapl", &phc).unwrap());
        assert!(verify_password("x", "$argon2id$v=19$m=1$aaaa$bbbb").is_err());
        assert!(verify_password("x", "garbage").is_err());
    }
}

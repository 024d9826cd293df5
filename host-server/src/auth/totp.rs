//! TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, a 160-bit secret, ±1 step accepted.
//!
//! This module only computes and matches codes; the replay guard (a step once accepted is
//! never accepted again) lives in the store, per account, and is applied by the caller.

use subtle::ConstantTimeEq as _;
use totp_lite::{Sha1, totp_custom};

/// Seconds per step.
pub const STEP: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Secret length in bytes (160 bits).
pub const SECRET_LEN: usize = 20;

/// A fresh random TOTP secret.
pub fn new_secret() -> Result<Vec<u8>, getrandom::Error> {
    let mut s = vec![0u8; SECRET_LEN];
    getrandom::fill(&mut s)?;
    Ok(s)
}

/// The code for `secret` at Unix time `time`.
pub fn code_at(secret: &[u8], time: u64) -> String {
    totp_custom::<Sha1>(STEP, DIGITS, secret, time)
}

/// The step matched by `code` at `now` (now−1, now, now+1 steps), if any.
///
/// All three candidates are computed and compared in constant time, whatever matches.
pub fn matching_step(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = now / STEP;
    let mut found = None;
    for step in [current.saturating_sub(1), current, current + 1] {
        let candidate = code_at(secret, step * STEP);
        if bool::from(candidate.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(username: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/Sealroom:{username}?secret={}&issuer=Sealroom&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        base32(secret)
    )
}

/// RFC 4648 base32 without padding (what authenticator apps expect in `secret=`).
pub fn base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes)
}

/// Decodes [`base32`], case-insensitively and with or without padding (for clients and tests
/// reading an enrollment URI).
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let upper = s.trim_end_matches('=').to_ascii_uppercase();
    data_encoding::BASE32_NOPAD.decode(upper.as_bytes()).ok()
}

/// The secret inside an `otpauth://` URI made by [`otpauth_uri`].
pub fn secret_from_uri(uri: &str) -> Option<Vec<u8>> {
    let query = uri.split_once('?')?.1;
    let value = query.split('&').find_map(|kv| kv.strip_prefix("secret="))?;
    base32_decode(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vectors() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../../proto-core/tests/data/rfc.json")).unwrap();
        let cases = v["totp_sha1"].as_array().unwrap();
        assert!(cases.len() >= 6);
        for c in cases {
            let secret = c["secret_ascii"].as_str().unwrap().as_bytes();
            let time = c["time"].as_u64().unwrap();
            let digits = u32::try_from(c["digits"].as_u64().unwrap()).unwrap();
            let step = c["step"].as_u64().unwrap();
            assert_eq!(
                totp_custom::<Sha1>(step, digits, secret, time),
                c["code"].as_str().unwrap(),
                "T={time}"
            );
        }
    }

    #[test]
    fn window_is_plus_minus_one_step() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_111;
        let step = now / STEP;
        for (delta, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let t = ((step as i64 + delta) as u64) * STEP;
            let code = code_at(secret, t);
            assert_eq!(
                matching_step(secret, &code, now).is_some(),
                ok,
                "delta {delta}"
            );
        }
        assert_eq!(matching_step(secret, "12345", now), None);
        assert_eq!(matching_step(secret, "abcdef", now), None);
    }

    #[test]
    fn uri_roundtrip() {
        let secret = new_secret().unwrap();
        assert_eq!(secret.len(), 20);
        let uri = otpauth_uri("alice", &secret);
        assert!(uri.starts_with("otpauth://totp/Sealroom:alice?secret="));
        assert_eq!(secret_from_uri(&uri).unwrap(), secret);
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }
}

//! Safety numbers: Signal's numeric fingerprint over both parties' identity keys.
//!
//! This module owns the computation in PROTOCOL.md §4.5: per party
//! `h = SHA-512(0x0000 || IKs || IKd || username)`, then 5,199 times `h = SHA-512(h || IKs || IKd)`;
//! the first 30 bytes as six 5-byte big-endian numbers, each mod 100000, give 30 digits; the two
//! parties' digit strings, sorted and joined, give 60 ASCII digits. Both parties therefore compute
//! the same number. It does not display, compare or store them (clients do), and it is not secret.

use sha2::{Digest, Sha512};

use crate::keys::IdentityPublicKey;

/// Length of a safety number: 60 ASCII digits.
pub const SAFETY_NUMBER_LEN: usize = 60;
/// Length of one party's half: 30 ASCII digits.
pub const FINGERPRINT_DIGITS: usize = 30;
/// SHA-512 iterations after the first hash.
const ITERATIONS: usize = 5199;

/// One party's 30 digits: `SHA-512` chain over its identity keys and username, as ASCII.
pub fn party_fingerprint(identity: &IdentityPublicKey, username: &str) -> [u8; FINGERPRINT_DIGITS] {
    let mut h = Sha512::new()
        .chain_update([0u8, 0u8])
        .chain_update(identity.signing)
        .chain_update(identity.dh)
        .chain_update(username.as_bytes())
        .finalize();
    for _ in 0..ITERATIONS {
        h = Sha512::new()
            .chain_update(h)
            .chain_update(identity.signing)
            .chain_update(identity.dh)
            .finalize();
    }
    let mut out = [b'0'; FINGERPRINT_DIGITS];
    for (chunk, digits) in h.chunks_exact(5).zip(out.chunks_exact_mut(5)) {
        let mut value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) % 100_000;
        for digit in digits.iter_mut().rev() {
            // `value % 10` is below 10, so the cast cannot truncate.
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    out
}

/// The 60-digit safety number of two parties, written as ASCII into `out`.
///
/// Symmetric: swapping the parties gives the same digits.
pub fn safety_number(
    local: &IdentityPublicKey,
    local_username: &str,
    remote: &IdentityPublicKey,
    remote_username: &str,
    out: &mut [u8; SAFETY_NUMBER_LEN],
) {
    let a = party_fingerprint(local, local_username);
    let b = party_fingerprint(remote, remote_username);
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let (x, y) = out.split_at_mut(FINGERPRINT_DIGITS);
    x.copy_from_slice(&first);
    y.copy_from_slice(&second);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_digits_and_key_sensitive() {
        let alice = IdentityPublicKey {
            signing: [1; 32],
            dh: [2; 32],
        };
        let bob = IdentityPublicKey {
            signing: [3; 32],
            dh: [4; 32],
        };
        let mut ab = [0u8; 60];
        let mut ba = [0u8; 60];
        safety_number(&alice, "alice", &bob, "bob", &mut ab);
        safety_number(&bob, "bob", &alice, "alice", &mut ba);
        assert_eq!(ab, ba);
        assert!(ab.iter().all(u8::is_ascii_digit));
        let mut changed = [0u8; 60];
        let mallory = IdentityPublicKey {
            signing: [3; 32],
            dh: [5; 32],
        };
        safety_number(&alice, "alice", &mallory, "bob", &mut changed);
        assert_ne!(ab, changed);
    }

    #[test]
    fn digits_follow_the_hash_chain() {
        let id = IdentityPublicKey {
            signing: [9; 32],
            dh: [8; 32],
        };
        let mut h = Sha512::digest([&[0u8, 0][..], &id.signing, &id.dh, b"carol"].concat());
        for _ in 0..5199 {
            h = Sha512::digest([&h[..], &id.signing, &id.dh].concat());
        }
        assert_eq!(
            party_fingerprint(&id, "carol").to_vec(),
            extern_format(&h[..30])
        );
    }

    extern crate std;
    fn extern_format(bytes: &[u8]) -> std::vec::Vec<u8> {
        let mut s = std::string::String::new();
        for c in bytes.chunks(5) {
            let mut v = 0u64;
            for b in c {
                v = v * 256 + u64::from(*b);
            }
            s.push_str(&std::format!("{:05}", v % 100_000));
        }
        s.into_bytes()
    }
}

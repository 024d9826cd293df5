// @ts-check
/**
 * Safety numbers (proto-core `fingerprint.rs`): per party `h = SHA-512(00 00 || IKs || IKd ||
 * username)`, then 5,199 times `h = SHA-512(h || IKs || IKd)`; the first 30 bytes as six
 * 5-byte big-endian numbers mod 100000 give 30 digits; both parties' digits sorted and joined
 * give 60. Not secret; display and comparison are the UI's.
 */
import { sha512 } from '@noble/hashes/sha2.js';
import { concat } from './bytes.js';

export const FINGERPRINT_DIGITS = 30;
export const SAFETY_NUMBER_LEN = 60;
const ITERATIONS = 5199;

/** @param {{signing: Uint8Array, dh: Uint8Array}} identity @param {string} username */
export function partyFingerprint(identity, username) {
  const keys = concat(identity.signing, identity.dh);
  let h = sha512(concat(Uint8Array.of(0, 0), keys, new TextEncoder().encode(username)));
  for (let i = 0; i < ITERATIONS; i++) h = sha512(concat(h, keys));
  let out = '';
  for (let c = 0; c < 6; c++) {
    let v = 0n;
    for (let j = 0; j < 5; j++) v = (v << 8n) | BigInt(h[c * 5 + j]);
    out += (v % 100000n).toString().padStart(5, '0');
  }
  return out;
}

/**
 * The 60-digit safety number; symmetric in the two parties.
 * @param {{signing: Uint8Array, dh: Uint8Array}} local @param {string} localUsername
 * @param {{signing: Uint8Array, dh: Uint8Array}} remote @param {string} remoteUsername
 */
export function safetyNumber(local, localUsername, remote, remoteUsername) {
  const a = partyFingerprint(local, localUsername);
  const b = partyFingerprint(remote, remoteUsername);
  return a <= b ? a + b : b + a;
}

// @ts-check
/**
 * Key derivation (proto-core `kdf.rs`): HKDF-SHA256 and HMAC-SHA256 from @noble/hashes, and
 * every protocol label. Implements no primitive itself.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';

const ascii = (/** @type {string} */ s) => new TextEncoder().encode(s);

export const X3DH_INFO = ascii('Sealroom X3DH v1');
export const RATCHET_INFO = ascii('Sealroom Ratchet v1');
export const MESSAGE_INFO = ascii('Sealroom Message v1');
export const ROOM_INFO = ascii('Sealroom Room v1');
export const SIGNED_PREKEY_LABEL = ascii('Sealroom SPK v1');
export const DEVICE_PREKEY_LABEL = ascii('Sealroom SPK v2');
export const LINK_INFO = ascii('Sealroom Link v1');
export const KEM_PREKEY_LABEL = ascii('Sealroom KEM PK v1');
export const PQXDH_INFO = ascii('Sealroom PQXDH v1');
export const ZERO_SALT = new Uint8Array(32);

/**
 * HKDF-SHA256 (RFC 5869).
 * @param {Uint8Array} salt @param {Uint8Array} ikm @param {Uint8Array} info @param {number} len
 */
export function hkdfSha256(salt, ikm, info, len) {
  return hkdf(sha256, ikm, salt, info, len);
}

/** HMAC-SHA256. @param {Uint8Array} key @param {Uint8Array} data */
export function hmacSha256(key, data) {
  return hmac(sha256, key, data);
}

/**
 * `HKDF(32 zero bytes, mk, info, 44)` split into an AEAD key (32) and nonce (12).
 * @param {Uint8Array} mk @param {Uint8Array} info
 */
export function messageKeyMaterial(mk, info) {
  const okm = hkdfSha256(ZERO_SALT, mk, info, 44);
  return { key: okm.slice(0, 32), nonce: okm.slice(32, 44) };
}

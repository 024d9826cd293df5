// @ts-check
/**
 * ChaCha20-Poly1305 (RFC 8439) from @noble/ciphers (proto-core `aead.rs`): output is
 * ciphertext then a 16-byte tag; every opening failure is the same `AuthError`.
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';

export const AEAD_TAG_LEN = 16;

export class AuthError extends Error {
  constructor() {
    super('authentication failed');
    this.name = 'AuthError';
  }
}

/**
 * Returns ciphertext || tag.
 * @param {Uint8Array} key @param {Uint8Array} nonce @param {Uint8Array} ad @param {Uint8Array} plaintext
 */
export function seal(key, nonce, ad, plaintext) {
  return chacha20poly1305(key, nonce, ad).encrypt(plaintext);
}

/**
 * Opens ciphertext || tag, or throws `AuthError`.
 * @param {Uint8Array} key @param {Uint8Array} nonce @param {Uint8Array} ad @param {Uint8Array} sealed
 */
export function open(key, nonce, ad, sealed) {
  try {
    return chacha20poly1305(key, nonce, ad).decrypt(sealed);
  } catch {
    throw new AuthError();
  }
}

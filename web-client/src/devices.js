// @ts-check
/**
 * Linked devices (proto-core `device.rs` and `keys.rs`, PROTOCOL.md §4.6): a device's signed
 * prekey bound to its device id, the link code a new device shows, and the link message an
 * existing device sends it. Every refusal proto-core makes, this makes, by the same name
 * (conformance/vectors/devices.json).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { seal, open, AuthError, AEAD_TAG_LEN } from './aead.js';
import { concat, randomBytes, u32be, wipe } from './bytes.js';
import { DEVICE_PREKEY_LABEL, LINK_INFO, hkdfSha256 } from './kdf.js';
import { dh, ed25519Verify, x25519Public } from './keys.js';

export const LINK_CODE_VERSION = 1;
export const LINK_SECRET_LEN = 16;
export const LINK_CODE_LEN = 1 + 32 + LINK_SECRET_LEN;
export const LINK_ID_LEN = 16;
export const LINK_OVERHEAD = 32 + AEAD_TAG_LEN;

/** A link code or link message was refused; `kind` is proto-core's `LinkError` variant name. */
export class LinkError extends Error {
  /** @param {'CodeLength'|'UnknownCodeVersion'|'Truncated'|'NonContributory'|'Authentication'} kind @param {string} message */
  constructor(kind, message) {
    super(message);
    this.name = 'LinkError';
    this.kind = kind;
  }
}

/** `"Sealroom SPK v2" || device_id (u32 BE) || SPK`. @param {number} deviceId @param {Uint8Array} spkPublic */
export function devicePrekeyMessage(deviceId, spkPublic) {
  return concat(DEVICE_PREKEY_LABEL, u32be(deviceId), spkPublic);
}

/**
 * A device's signed prekey, signed by the account identity for `deviceId`.
 * @param {import('./keys.js').IdentityKeyPair} identity @param {number} deviceId @param {Uint8Array} spkPublic
 */
export function signDevicePrekey(identity, deviceId, spkPublic) {
  return identity.sign(devicePrekeyMessage(deviceId, spkPublic));
}

/**
 * Whether the account's `IKs` signed this prekey for `deviceId` (strict Ed25519). A prekey
 * signed for another device, or a v1 signature, does not verify.
 * @param {{public: Uint8Array, signature: Uint8Array}} spk @param {Uint8Array} identitySigning @param {number} deviceId
 */
export function verifyDevicePrekey(spk, identitySigning, deviceId) {
  return ed25519Verify(identitySigning, devicePrekeyMessage(deviceId, spk.public), spk.signature);
}

/** SHA-256(L_pub)[0..16]. @param {Uint8Array} linkPublic */
export function linkId(linkPublic) {
  return sha256(linkPublic).slice(0, LINK_ID_LEN);
}

/** What the new device shows: `L_pub` and the secret `S`. */
export class LinkCode {
  /** @param {Uint8Array} publicKey @param {Uint8Array} secret */
  constructor(publicKey, secret) {
    this.publicKey = publicKey;
    this.secret = secret;
  }

  /** @param {Uint8Array} bytes */
  static decode(bytes) {
    if (bytes.length !== LINK_CODE_LEN) throw new LinkError('CodeLength', `a link code is ${LINK_CODE_LEN} bytes`);
    if (bytes[0] !== LINK_CODE_VERSION) throw new LinkError('UnknownCodeVersion', `unknown link code version ${bytes[0]}`);
    return new LinkCode(bytes.slice(1, 33), bytes.slice(33));
  }

  encode() {
    return concat(Uint8Array.of(LINK_CODE_VERSION), this.publicKey, this.secret);
  }

  linkId() {
    return linkId(this.publicKey);
  }
}

/** HKDF(salt = S, ikm = shared, info = "Sealroom Link v1", 44) → key, nonce. @param {Uint8Array} shared @param {Uint8Array} s */
function linkKey(shared, s) {
  const okm = hkdfSha256(s, shared, LINK_INFO, 44);
  return { key: okm.slice(0, 32), nonce: okm.slice(32) };
}

/** @param {Uint8Array} secret @param {Uint8Array} pub */
function exchange(secret, pub) {
  try {
    return dh(secret, pub);
  } catch {
    throw new LinkError('NonContributory', 'non-contributory link key exchange');
  }
}

/** The new device's side: the link key pair `L` and the secret `S`. */
export class LinkKeyPair {
  /** @param {Uint8Array} linkSecret @param {Uint8Array} secret */
  constructor(linkSecret, secret) {
    this.linkSecret = linkSecret;
    this.code = new LinkCode(x25519Public(linkSecret), secret);
  }

  static generate() {
    return new LinkKeyPair(randomBytes(32), randomBytes(LINK_SECRET_LEN));
  }

  /**
   * Opens a link message; returns the state, or throws `LinkError`.
   * @param {Uint8Array} message
   */
  open(message) {
    if (message.length < LINK_OVERHEAD) throw new LinkError('Truncated', 'link message too short');
    const shared = exchange(this.linkSecret, message.subarray(0, 32));
    const { key, nonce } = linkKey(shared, this.code.secret);
    try {
      return open(key, nonce, this.code.linkId(), message.subarray(32));
    } catch (e) {
      if (e instanceof AuthError) throw new LinkError('Authentication', 'the link message does not open under this link code');
      throw e;
    } finally {
      wipe(shared);
      wipe(key);
    }
  }
}

/**
 * The existing device's side: `E_pub || AEAD(state)` for the device showing `code`. The
 * ephemeral secret is fresh from the OS RNG; `ephemeralSecret` is for test vectors only.
 * @param {LinkCode} code @param {Uint8Array} state @param {Uint8Array} [ephemeralSecret]
 */
export function sealLink(code, state, ephemeralSecret = randomBytes(32)) {
  const shared = exchange(ephemeralSecret, code.publicKey);
  const { key, nonce } = linkKey(shared, code.secret);
  try {
    return concat(x25519Public(ephemeralSecret), seal(key, nonce, code.linkId(), state));
  } finally {
    wipe(shared);
    wipe(key);
  }
}

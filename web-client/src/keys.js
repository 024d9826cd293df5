// @ts-check
/**
 * Device keys (proto-core `keys.rs`): the identity key pair (Ed25519 `IKs`, X25519 `IKd`),
 * signed prekeys (signature `Ed25519(IKs, "Sealroom SPK v1" || SPK)`), one-time prekeys, and
 * the checked X25519 exchange and strict Ed25519 verification everything else uses. Keys come
 * only from `crypto.getRandomValues` (the OS RNG). Primitives are @noble/curves'.
 */
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { concat, randomBytes } from './bytes.js';
import { SIGNED_PREKEY_LABEL } from './kdf.js';

/** An X25519 exchange gave the all-zero output (the peer sent a small-order point). */
export class NonContributory extends Error {
  constructor() {
    super('non-contributory key exchange');
    this.name = 'NonContributory';
  }
}

/** X25519 public key of a secret. @param {Uint8Array} secret */
export function x25519Public(secret) {
  return x25519.getPublicKey(secret);
}

/**
 * X25519 rejecting an all-zero output (noble throws on it; so do we, as `NonContributory`).
 * @param {Uint8Array} secret @param {Uint8Array} pub
 */
export function dh(secret, pub) {
  let out;
  try {
    out = x25519.getSharedSecret(secret, pub);
  } catch {
    throw new NonContributory();
  }
  if (out.every((b) => b === 0)) throw new NonContributory();
  return out;
}

/** @param {Uint8Array} seed */
export function ed25519Public(seed) {
  return ed25519.getPublicKey(seed);
}

/** @param {Uint8Array} seed @param {Uint8Array} message */
export function ed25519Sign(seed, message) {
  return ed25519.sign(message, seed);
}

/**
 * Strict verification, as ed25519-dalek's `verify_strict`: canonical encodings only (no ZIP-215
 * leniency) and no small-order public key or `R`.
 * @param {Uint8Array} pub @param {Uint8Array} message @param {Uint8Array} signature
 */
export function ed25519Verify(pub, message, signature) {
  try {
    if (signature.length !== 64 || pub.length !== 32) return false;
    const A = ed25519.Point.fromBytes(pub, false);
    const R = ed25519.Point.fromBytes(signature.subarray(0, 32), false);
    if (A.isSmallOrder() || R.isSmallOrder()) return false;
    return ed25519.verify(signature, message, pub, { zip215: false });
  } catch {
    return false;
  }
}

/** @param {Uint8Array} spkPublic */
export function signedPrekeyMessage(spkPublic) {
  return concat(SIGNED_PREKEY_LABEL, spkPublic);
}

/** A device's identity: Ed25519 seed `IKs` and X25519 secret `IKd`. */
export class IdentityKeyPair {
  /** @param {Uint8Array} signingSecret @param {Uint8Array} dhSecret */
  constructor(signingSecret, dhSecret) {
    this.signingSecret = signingSecret;
    this.dhSecret = dhSecret;
    this.publicKey = { signing: ed25519Public(signingSecret), dh: x25519Public(dhSecret) };
  }

  static generate() {
    return new IdentityKeyPair(randomBytes(32), randomBytes(32));
  }

  /** @param {Uint8Array} message */
  sign(message) {
    return ed25519Sign(this.signingSecret, message);
  }

  /** @returns {{signing: Uint8Array, dh: Uint8Array}} */
  public() {
    return this.publicKey;
  }
}

/** A signed prekey: X25519 pair, id, and the identity's signature over it. */
export class SignedPrekeyPair {
  /** @param {number} id @param {Uint8Array} secret @param {Uint8Array} signature */
  constructor(id, secret, signature) {
    this.id = id;
    this.secret = secret;
    this.publicKey = x25519Public(secret);
    this.signature = signature;
  }

  /** @param {number} id @param {Uint8Array} secret @param {IdentityKeyPair} identity */
  static fromSecretKey(id, secret, identity) {
    const pub = x25519Public(secret);
    return new SignedPrekeyPair(id, secret, identity.sign(signedPrekeyMessage(pub)));
  }

  /** @param {number} id @param {IdentityKeyPair} identity */
  static generate(id, identity) {
    return SignedPrekeyPair.fromSecretKey(id, randomBytes(32), identity);
  }

  public() {
    return { id: this.id, public: this.publicKey, signature: this.signature };
  }
}

/**
 * Checks a published signed prekey against its owner's `IKs`.
 * @param {{public: Uint8Array, signature: Uint8Array}} spk @param {Uint8Array} identitySigning
 */
export function verifySignedPrekey(spk, identitySigning) {
  return ed25519Verify(identitySigning, signedPrekeyMessage(spk.public), spk.signature);
}

/** A one-time prekey. */
export class OneTimePrekeyPair {
  /** @param {number} id @param {Uint8Array} secret */
  constructor(id, secret) {
    this.id = id;
    this.secret = secret;
    this.publicKey = x25519Public(secret);
  }

  /** @param {number} id */
  static generate(id) {
    return new OneTimePrekeyPair(id, randomBytes(32));
  }

  public() {
    return { id: this.id, public: this.publicKey };
  }
}

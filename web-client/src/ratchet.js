// @ts-check
/**
 * The Double Ratchet (proto-core `ratchet/`): root chain `KDF_RK = HKDF(rk, dh, "Sealroom
 * Ratchet v1", 64)`, chains `KDF_CK` (mk = HMAC(ck, 01), next = HMAC(ck, 02)), message keys
 * `HKDF(32 zero bytes, mk, "Sealroom Message v1", 44)` → key || nonce, the 40-byte header
 * `ratchet key || pn (u32 BE) || n (u32 BE)`, AEAD associated data `AD || header`, and at most
 * `DEFAULT_MAX_SKIP` skipped keys (oldest dropped when full). As in proto-core, the DH ratchet
 * is taken lazily on the sending side, and a failed `decrypt` leaves the session unchanged.
 *
 * Call order: initiator `Session.initiate` → `encrypt` (send `pendingPrekeyHeader` in front
 * while it is set) → `decrypt`; responder `Session.respond` → `decrypt` the first message →
 * then both freely. State round-trips through `toState`/`fromState` (JSON-safe, every secret
 * in it: store it encrypted).
 */
import { concat, equal, fromHex, randomBytes, readU32be, toHex, u32be } from './bytes.js';
import { AEAD_TAG_LEN, open, seal } from './aead.js';
import { MESSAGE_INFO, RATCHET_INFO, hkdfSha256, hmacSha256, messageKeyMaterial } from './kdf.js';
import { NonContributory, dh, x25519Public } from './keys.js';
import { X3dhAgreement, prekeyHeaderFromBytes, prekeyHeaderToBytes } from './x3dh.js';

export const RATCHET_HEADER_LEN = 40;
export const RATCHET_OVERHEAD = RATCHET_HEADER_LEN + AEAD_TAG_LEN;
export const DEFAULT_MAX_SKIP = 64;

/** Why `decrypt` refused: `Malformed`, `Authentication`, `Replay`, `TooManySkipped`. */
export class DecryptError extends Error {
  /** @param {string} kind */
  constructor(kind) {
    super(`cannot decrypt: ${kind}`);
    this.name = 'DecryptError';
    this.kind = kind;
  }
}

/** Why `encrypt` refused: `NotReady`, `ChainExhausted`. */
export class EncryptError extends Error {
  /** @param {string} kind */
  constructor(kind) {
    super(`cannot encrypt: ${kind}`);
    this.name = 'EncryptError';
    this.kind = kind;
  }
}

/** `KDF_CK`: the message key and the next chain key. @param {Uint8Array} ck */
export function chainStep(ck) {
  return { mk: hmacSha256(ck, Uint8Array.of(1)), next: hmacSha256(ck, Uint8Array.of(2)) };
}

/** From the chain key of message `from`, the message key of `to` and the chain key after it. @param {Uint8Array} ck @param {number} from @param {number} to */
export function walk(ck, from, to) {
  let k = ck;
  for (let i = from; i < to; i++) k = chainStep(k).next;
  return chainStep(k);
}

/** `KDF_RK`. @param {Uint8Array} rk @param {Uint8Array} dhOut */
export function rootAdvance(rk, dhOut) {
  const okm = hkdfSha256(rk, dhOut, RATCHET_INFO, 64);
  return { root: okm.slice(0, 32), chain: okm.slice(32, 64) };
}

/** Fixed-capacity skipped keys keyed by (chain id, n), oldest first (proto-core `skipped.rs`). */
export class SkippedKeys {
  /** @param {number} capacity */
  constructor(capacity) {
    this.capacity = capacity;
    /** @type {{chain: Uint8Array, n: number, key: Uint8Array}[]} */
    this.entries = [];
  }

  /** @param {Uint8Array} chain @param {number} n */
  find(chain, n) {
    return this.entries.findIndex((e) => e.n === n && equal(e.chain, chain));
  }

  /** @param {Uint8Array} chain @param {number} n @param {Uint8Array} key */
  push(chain, n, key) {
    if (this.capacity === 0) return;
    if (this.entries.length === this.capacity) this.entries.shift();
    this.entries.push({ chain, n, key });
  }

  /** @param {number} i */
  remove(i) {
    this.entries.splice(i, 1);
  }

  /** @param {Uint8Array} chain */
  removeChain(chain) {
    this.entries = this.entries.filter((e) => !equal(e.chain, chain));
  }

  /** Store the keys of `from..to` on the chain whose key at `from` is `ck`. @param {Uint8Array} chainId @param {Uint8Array} ck @param {number} from @param {number} to */
  storeRange(chainId, ck, from, to) {
    let k = ck;
    for (let i = from; i < to; i++) {
      const { mk, next } = chainStep(k);
      this.push(chainId, i, mk);
      k = next;
    }
  }

  toState() {
    return this.entries.map((e) => /** @type {[string, number, string]} */ ([toHex(e.chain), e.n, toHex(e.key)]));
  }

  /** @param {number} capacity @param {[string, number, string][]} s */
  static fromState(capacity, s) {
    const k = new SkippedKeys(capacity);
    for (const [c, n, key] of s) k.push(fromHex(c), n, fromHex(key));
    return k;
  }
}

/**
 * @typedef {{key: Uint8Array, n: number}} Chain
 * @typedef {{secret: Uint8Array, public: Uint8Array}} RatchetKeyPair
 */

/** A Double Ratchet session with one peer device. */
export class Session {
  /** @param {Uint8Array} ad @param {Uint8Array} root */
  constructor(ad, root) {
    this.ad = ad;
    this.root = root;
    /** @type {RatchetKeyPair | null} */
    this.ourRatchet = null;
    /** @type {Uint8Array | null} */
    this.theirRatchet = null;
    /** @type {Chain | null} */
    this.sending = null;
    /** @type {Chain | null} */
    this.receiving = null;
    this.previousSendingLen = 0;
    this.skipped = new SkippedKeys(DEFAULT_MAX_SKIP);
    /** @type {import('./x3dh.js').PrekeyHeader | null} */
    this.prekeyHeader = null;
  }

  /**
   * Initiator: X3DH against `bundle`; returns the session (its `pendingPrekeyHeader` is set).
   * @param {import('./keys.js').IdentityKeyPair} identity @param {import('./x3dh.js').RemoteBundle} bundle
   * @param {Uint8Array} [ephemeralSecret] test vectors only
   */
  static initiate(identity, bundle, ephemeralSecret) {
    const { agreement, header } = X3dhAgreement.initiate(identity, bundle, ephemeralSecret);
    const s = new Session(agreement.ad, agreement.sk);
    s.theirRatchet = bundle.signed_prekey.public;
    s.prekeyHeader = header;
    return s;
  }

  /**
   * Responder: agree with `header`; the signed prekey is our first ratchet key.
   * @param {import('./keys.js').IdentityKeyPair} identity @param {import('./keys.js').SignedPrekeyPair} spk
   * @param {import('./keys.js').OneTimePrekeyPair | null} opk @param {import('./x3dh.js').PrekeyHeader} header
   */
  static respond(identity, spk, opk, header) {
    const agreement = X3dhAgreement.respond(identity, spk, opk, header);
    const s = new Session(agreement.ad, agreement.sk);
    s.ourRatchet = { secret: spk.secret.slice(), public: spk.publicKey };
    return s;
  }

  get pendingPrekeyHeader() {
    return this.prekeyHeader;
  }

  canSend() {
    return this.sending !== null || this.theirRatchet !== null;
  }

  /**
   * Encrypts into `header || ciphertext || tag`.
   * @param {Uint8Array} plaintext @param {Uint8Array} [ratchetSecret] test vectors only: the next new ratchet key
   */
  encrypt(plaintext, ratchetSecret) {
    if (this.sending === null || this.ourRatchet === null) {
      if (this.theirRatchet === null) throw new EncryptError('NotReady');
      const secret = ratchetSecret ?? randomBytes(32);
      const ours = { secret, public: x25519Public(secret) };
      let shared;
      try {
        shared = dh(ours.secret, this.theirRatchet);
      } catch {
        throw new EncryptError('NotReady');
      }
      const { root, chain } = rootAdvance(this.root, shared);
      this.root = root;
      this.ourRatchet = ours;
      this.sending = { key: chain, n: 0 };
    }
    const chain = this.sending;
    if (chain.n === 0xffffffff) throw new EncryptError('ChainExhausted');
    const header = concat(this.ourRatchet.public, u32be(this.previousSendingLen), u32be(chain.n));
    const { mk, next } = chainStep(chain.key);
    const { key, nonce } = messageKeyMaterial(mk, MESSAGE_INFO);
    const sealed = seal(key, nonce, concat(this.ad, header), plaintext);
    chain.key = next;
    chain.n += 1;
    return concat(header, sealed);
  }

  /**
   * Decrypts `header || ciphertext || tag`; on any error the session is unchanged.
   * @param {Uint8Array} message
   */
  decrypt(message) {
    if (message.length < RATCHET_OVERHEAD) throw new DecryptError('Malformed');
    const header = message.subarray(0, RATCHET_HEADER_LEN);
    const sealed = message.subarray(RATCHET_HEADER_LEN);
    const ratchetKey = header.slice(0, 32);
    const pn = readU32be(header, 32);
    const n = readU32be(header, 36);
    const ad = concat(this.ad, header);
    /** @param {Uint8Array} mk */
    const openWith = (mk) => {
      const { key, nonce } = messageKeyMaterial(mk, MESSAGE_INFO);
      try {
        return open(key, nonce, ad, sealed);
      } catch {
        throw new DecryptError('Authentication');
      }
    };
    // 1. A key we kept for a message that had not arrived.
    const idx = this.skipped.find(ratchetKey, n);
    if (idx >= 0) {
      const plain = openWith(this.skipped.entries[idx].key);
      this.prekeyHeader = null;
      this.skipped.remove(idx);
      return plain;
    }
    // 2. The current receiving chain.
    if (this.theirRatchet !== null && equal(this.theirRatchet, ratchetKey)) {
      const chain = this.receiving;
      if (chain === null) throw new DecryptError('Authentication');
      if (n < chain.n) throw new DecryptError('Replay');
      if (n - chain.n > this.skipped.capacity) throw new DecryptError('TooManySkipped');
      const { mk, next } = walk(chain.key, chain.n, n);
      const plain = openWith(mk);
      this.skipped.storeRange(ratchetKey, chain.key, chain.n, n);
      this.prekeyHeader = null;
      chain.key = next;
      chain.n = Math.min(n + 1, 0xffffffff);
      return plain;
    }
    // 3. A new ratchet key from the peer: a DH ratchet step, staged.
    const oldSkip = this.receiving ? Math.max(0, pn - this.receiving.n) : 0;
    if (oldSkip + n > this.skipped.capacity) throw new DecryptError('TooManySkipped');
    if (this.ourRatchet === null) throw new DecryptError('Authentication');
    let shared;
    try {
      shared = dh(this.ourRatchet.secret, ratchetKey);
    } catch (e) {
      if (e instanceof NonContributory) throw new DecryptError('Authentication');
      throw e;
    }
    const { root, chain } = rootAdvance(this.root, shared);
    const { mk, next } = walk(chain, 0, n);
    const plain = openWith(mk);
    if (this.receiving && this.theirRatchet) {
      this.skipped.storeRange(this.theirRatchet, this.receiving.key, this.receiving.n, pn);
    }
    this.skipped.storeRange(ratchetKey, chain, 0, n);
    this.prekeyHeader = null;
    this.root = root;
    this.theirRatchet = ratchetKey;
    this.receiving = { key: next, n: Math.min(n + 1, 0xffffffff) };
    if (this.sending) {
      this.previousSendingLen = this.sending.n;
      this.sending = null;
    }
    this.ourRatchet = null;
    return plain;
  }

  /** Every secret of the session as a JSON-safe object: store it encrypted. */
  toState() {
    /** @param {Chain | null} c */
    const chain = (c) => (c ? { key: toHex(c.key), n: c.n } : null);
    return {
      v: 1,
      ad: toHex(this.ad),
      root: toHex(this.root),
      our: this.ourRatchet ? toHex(this.ourRatchet.secret) : null,
      their: this.theirRatchet ? toHex(this.theirRatchet) : null,
      sending: chain(this.sending),
      receiving: chain(this.receiving),
      pn: this.previousSendingLen,
      skipped: this.skipped.toState(),
      prekey: this.prekeyHeader ? toHex(prekeyHeaderToBytes(this.prekeyHeader)) : null,
    };
  }

  /** @param {ReturnType<Session['toState']>} s */
  static fromState(s) {
    if (s.v !== 1) throw new Error('unknown session state version');
    const x = new Session(fromHex(s.ad), fromHex(s.root));
    if (s.our) {
      const secret = fromHex(s.our);
      x.ourRatchet = { secret, public: x25519Public(secret) };
    }
    x.theirRatchet = s.their ? fromHex(s.their) : null;
    x.sending = s.sending ? { key: fromHex(s.sending.key), n: s.sending.n } : null;
    x.receiving = s.receiving ? { key: fromHex(s.receiving.key), n: s.receiving.n } : null;
    x.previousSendingLen = s.pn;
    x.skipped = SkippedKeys.fromState(DEFAULT_MAX_SKIP, s.skipped);
    x.prekeyHeader = s.prekey ? prekeyHeaderFromBytes(fromHex(s.prekey)) : null;
    return x;
  }
}

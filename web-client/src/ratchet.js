// @ts-check
/**
 * The Double Ratchet (proto-core `ratchet/`): root chain `KDF_RK = HKDF(rk, dh, "Sealroom
 * Ratchet v1", 64)`, chains `KDF_CK` (mk = HMAC(ck, 01), next = HMAC(ck, 02)), message keys
 * `HKDF(32 zero bytes, mk, "Sealroom Message v1", 44)` → key || nonce, the 40-byte header
 * `ratchet key || pn (u32 BE) || n (u32 BE)`, AEAD associated data `AD || header`, and at most
 * `DEFAULT_MAX_SKIP` skipped keys (oldest dropped when full). As in proto-core, the DH ratchet
 * is taken lazily on the sending side, and a failed `decrypt` leaves the session unchanged.
 *
 * Call order: initiator `Session.initiatePqxdh` (new sessions; `Session.initiate` is X3DH,
 * kept for vectors and sessions from before PQXDH) → `encrypt` (send `pendingPrekeyHeader` and
 * `pendingKemHeader` in front while they are set) → `decrypt`; responder `Session.respondPqxdh`
 * (or `Session.respond` for an X3DH first message) → `decrypt` the first message → then both
 * freely. State bytes are proto-core's (`writeState`/`readState`, version 2 with the pending
 * KEM header; version 1 from before PQXDH still read; it holds every secret: store it
 * encrypted).
 */
import { concat, equal, fromHex, randomBytes, readU32be, toHex, u32be } from './bytes.js';
import { AEAD_TAG_LEN, open, seal } from './aead.js';
import { MESSAGE_INFO, RATCHET_INFO, hkdfSha256, hmacSha256, messageKeyMaterial } from './kdf.js';
import { NonContributory, dh, x25519Public } from './keys.js';
import { X3dhAgreement, prekeyHeaderFromBytes, prekeyHeaderToBytes } from './x3dh.js';
import { KEM_HEADER_LEN, PqxdhAgreement, PqxdhError, kemHeaderFromBytes, kemHeaderToBytes } from './pqxdh.js';

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

  /** Bytes of one entry: chain id (32) || n (u32 BE) || key (32). */
  static get ENTRY_LEN() {
    return 68;
  }

  /** `count (u16 BE)` then `capacity` entries, unused ones zero (proto-core `SkippedKeys::write`). */
  write() {
    const out = new Uint8Array(2 + this.capacity * SkippedKeys.ENTRY_LEN);
    new DataView(out.buffer).setUint16(0, this.entries.length, false);
    this.entries.forEach((e, i) => {
      const o = 2 + i * SkippedKeys.ENTRY_LEN;
      out.set(e.chain, o);
      out.set(u32be(e.n), o + 32);
      out.set(e.key, o + 36);
    });
    return out;
  }

  /**
   * Reads what `write` wrote with `storedCapacity` slots; null if malformed.
   * @param {Uint8Array} bytes @param {number} storedCapacity @param {number} capacity
   */
  static read(bytes, storedCapacity, capacity) {
    if (bytes.length < 2 + storedCapacity * SkippedKeys.ENTRY_LEN) return null;
    const len = new DataView(bytes.buffer, bytes.byteOffset, 2).getUint16(0, false);
    if (len > capacity || len > storedCapacity) return null;
    const k = new SkippedKeys(capacity);
    for (let i = 0; i < len; i++) {
      const o = 2 + i * SkippedKeys.ENTRY_LEN;
      k.push(bytes.slice(o, o + 32), readU32be(bytes, o + 32), bytes.slice(o + 36, o + 68));
    }
    return k;
  }
}

/** Why state bytes could not be read: `Truncated`, `UnknownVersion`, `Malformed` (proto-core's `StateError`). */
export class StateError extends Error {
  /** @param {string} kind */
  constructor(kind) {
    super(`session state: ${kind}`);
    this.name = 'StateError';
    this.kind = kind;
  }
}

/** A cursor over state bytes. */
export class StateReader {
  /** @param {Uint8Array} b */
  constructor(b) {
    this.b = b;
    this.o = 0;
  }

  /** @param {number} n */
  take(n) {
    if (this.o + n > this.b.length) throw new StateError('Truncated');
    const out = this.b.slice(this.o, this.o + n);
    this.o += n;
    return out;
  }

  u8() {
    return this.take(1)[0];
  }

  u16() {
    const b = this.take(2);
    return (b[0] << 8) | b[1];
  }

  u32() {
    return readU32be(this.take(4), 0);
  }

  rest() {
    return this.b.subarray(this.o);
  }
}

/** The state version written (2: with the pending KEM header); 1, from before PQXDH, is still read. */
const STATE_VERSION = 2;
const STATE_VERSION_1 = 1;
const OUR_RATCHET = 1;
const THEIR_RATCHET = 2;
const SENDING = 4;
const RECEIVING = 8;
const PREKEY_HEADER = 16;
const KEM_HEADER = 32;

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
    /** @type {import('./pqxdh.js').KemHeader | null} PQXDH: sent beside the prekey header until the first reply */
    this.kemHeader = null;
  }

  /**
   * Initiator: X3DH against `bundle`; returns the session (its `pendingPrekeyHeader` is set).
   * @param {import('./keys.js').IdentityKeyPair} identity @param {import('./x3dh.js').RemoteBundle} bundle
   * @param {Uint8Array} [ephemeralSecret] test vectors only
   */
  static initiate(identity, bundle, ephemeralSecret) {
    return Session.initiator(X3dhAgreement.initiate(identity, bundle, ephemeralSecret), bundle);
  }

  /**
   * Initiator towards one device of an account (proto-core `Session::initiate_for_device`):
   * the bundle's signed prekey must be signed for `deviceId` ("Sealroom SPK v2"); a v1 one, or
   * one signed for another device, throws `X3dhError('BadPrekeySignature')`.
   * @param {import('./keys.js').IdentityKeyPair} identity @param {import('./x3dh.js').RemoteBundle} bundle
   * @param {number} deviceId
   * @param {Uint8Array} [ephemeralSecret] test vectors only
   */
  static initiateForDevice(identity, bundle, deviceId, ephemeralSecret) {
    return Session.initiator(X3dhAgreement.initiateForDevice(identity, bundle, deviceId, ephemeralSecret), bundle);
  }

  /**
   * Initiator of a new session (proto-core `Session::initiate_pqxdh`): PQXDH with `bundle`'s
   * device `deviceId` and its KEM prekey (`PqxdhError` names every refusal; never X3DH).
   * `pendingPrekeyHeader` and `pendingKemHeader` are set until a reply decrypts.
   * @param {import('./keys.js').IdentityKeyPair} identity @param {import('./x3dh.js').RemoteBundle} bundle
   * @param {number} deviceId @param {import('./pqxdh.js').KemPrekeyPublic} kemPrekey
   * @param {Uint8Array} [ephemeralSecret] test vectors only
   * @param {Uint8Array} [kemMessage] test vectors only
   */
  static initiatePqxdh(identity, bundle, deviceId, kemPrekey, ephemeralSecret, kemMessage) {
    const { agreement, header, kem } = PqxdhAgreement.initiate(identity, bundle, deviceId, kemPrekey, ephemeralSecret, kemMessage);
    const s = Session.initiator({ agreement, header }, bundle);
    s.kemHeader = kem;
    return s;
  }

  /**
   * Responder to a PQXDH first message (proto-core `Session::respond_pqxdh`): the prekeys and
   * the KEM prekey are the ones the headers name; the signed prekey is our first ratchet key.
   * @param {import('./keys.js').IdentityKeyPair} identity @param {import('./keys.js').SignedPrekeyPair} spk
   * @param {import('./keys.js').OneTimePrekeyPair | null} opk @param {import('./pqxdh.js').KemPrekeyPair} kemPrekey
   * @param {import('./x3dh.js').PrekeyHeader} header @param {import('./pqxdh.js').KemHeader} kem
   */
  static respondPqxdh(identity, spk, opk, kemPrekey, header, kem) {
    const agreement = PqxdhAgreement.respond(identity, spk, opk, kemPrekey, header, kem);
    const s = new Session(agreement.ad, agreement.sk);
    s.ourRatchet = { secret: spk.secret.slice(), public: spk.publicKey };
    return s;
  }

  /**
   * The initiator's session from an agreement with `bundle`.
   * @param {{agreement: {sk: Uint8Array, ad: Uint8Array}, header: import('./x3dh.js').PrekeyHeader}} agreed
   * @param {import('./x3dh.js').RemoteBundle} bundle
   */
  static initiator({ agreement, header }, bundle) {
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

  /** The KEM header to send beside the prekey header (PQXDH), until the first reply. */
  get pendingKemHeader() {
    return this.prekeyHeader ? this.kemHeader : null;
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
      this.kemHeader = null;
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
      this.kemHeader = null;
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
    this.kemHeader = null;
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

  /** Size of the serialized state (version 2): 1,504 + 68 × MAX_SKIP (5,856). */
  static get STATE_LEN() {
    return 412 + KEM_HEADER_LEN + SkippedKeys.ENTRY_LEN * DEFAULT_MAX_SKIP;
  }

  /**
   * The whole state in proto-core's layout (PROTOCOL.md §4.3, `Session::write_state`); it holds
   * every secret of the session: store it encrypted.
   */
  writeState() {
    const zero = new Uint8Array(32);
    let flags = 0;
    if (this.ourRatchet) flags |= OUR_RATCHET;
    if (this.theirRatchet) flags |= THEIR_RATCHET;
    if (this.sending) flags |= SENDING;
    if (this.receiving) flags |= RECEIVING;
    if (this.prekeyHeader) flags |= PREKEY_HEADER;
    if (this.prekeyHeader && this.kemHeader) flags |= KEM_HEADER;
    const cap = new Uint8Array(2);
    new DataView(cap.buffer).setUint16(0, this.skipped.capacity, false);
    return concat(
      Uint8Array.of(STATE_VERSION, flags), cap, this.ad, this.root,
      this.ourRatchet ? this.ourRatchet.secret : zero,
      this.theirRatchet ?? zero,
      this.sending ? this.sending.key : zero, u32be(this.sending ? this.sending.n : 0),
      this.receiving ? this.receiving.key : zero, u32be(this.receiving ? this.receiving.n : 0),
      u32be(this.previousSendingLen),
      this.prekeyHeader ? prekeyHeaderToBytes(this.prekeyHeader) : new Uint8Array(106),
      this.prekeyHeader && this.kemHeader ? kemHeaderToBytes(this.kemHeader) : new Uint8Array(KEM_HEADER_LEN),
      this.skipped.write(),
    );
  }

  /**
   * Restores from `writeState` bytes (or proto-core's); version 1 (written before PQXDH: no
   * KEM header field, no bit 5) is read too.
   * @param {Uint8Array} bytes
   */
  static readState(bytes) {
    const r = new StateReader(bytes);
    const version = r.u8();
    const flags = r.u8();
    if (version !== STATE_VERSION && version !== STATE_VERSION_1) throw new StateError('UnknownVersion');
    const allowed = version === STATE_VERSION ? 0x3f : 0x1f;
    if (flags & ~allowed) throw new StateError('Malformed');
    const capacity = r.u16();
    const s = new Session(r.take(128), r.take(32));
    const our = r.take(32);
    const their = r.take(32);
    const sendingKey = r.take(32);
    const sendingN = r.u32();
    const receivingKey = r.take(32);
    const receivingN = r.u32();
    s.previousSendingLen = r.u32();
    const header = r.take(106);
    const kem = version === STATE_VERSION ? r.take(KEM_HEADER_LEN) : null;
    const skipped = SkippedKeys.read(r.rest(), capacity, DEFAULT_MAX_SKIP);
    if (!skipped) throw new StateError('Malformed');
    s.skipped = skipped;
    if (flags & OUR_RATCHET) s.ourRatchet = { secret: our, public: x25519Public(our) };
    if (flags & THEIR_RATCHET) s.theirRatchet = their;
    if (flags & SENDING) s.sending = { key: sendingKey, n: sendingN };
    if (flags & RECEIVING) s.receiving = { key: receivingKey, n: receivingN };
    if (flags & PREKEY_HEADER) {
      try {
        s.prekeyHeader = prekeyHeaderFromBytes(header);
      } catch {
        throw new StateError('Malformed');
      }
    }
    if (kem && flags & KEM_HEADER) {
      if (!s.prekeyHeader) throw new StateError('Malformed');
      try {
        s.kemHeader = kemHeaderFromBytes(kem);
      } catch (e) {
        if (e instanceof PqxdhError) throw new StateError('Malformed');
        throw e;
      }
    }
    return s;
  }

  /** `writeState` as hex, for the keystore's JSON. */
  toState() {
    return toHex(this.writeState());
  }

  /** @param {string} hex */
  static fromState(hex) {
    return Session.readState(fromHex(hex));
  }
}

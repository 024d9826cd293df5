// @ts-check
/**
 * PQXDH (proto-core `pqxdh.rs`, PROTOCOL.md §4.8): X3DH with a linked device made hybrid
 * post-quantum with one ML-KEM-768 (FIPS 203) encapsulation, as Signal's PQXDH revision 3.
 *
 * - KEM prekeys: an ML-KEM-768 key pair made from a 64-byte seed `d || z`
 *   (`ML-KEM.KeyGen_internal(d, z)`, which is also its secret form), an id, the 1,184-byte
 *   encapsulation key `ek` and
 *   `Ed25519(IKs, "Sealroom KEM PK v1" || device_id (u32 BE) || kem_id (u32 BE) || ek)`.
 * - `SK = HKDF(32 zero bytes, 32×0xFF || DH1 || DH2 || DH3 [|| DH4] || ss,
 *   "Sealroom PQXDH v1" || SHA-256(ek) || SHA-256(ct), 32)`; `AD` and the prekey header as X3DH.
 * - The KEM header the first messages carry: `kem_id (u32 BE) || ct` (1,092 bytes).
 *
 * There is no downgrade: a bundle without a KEM prekey, a KEM prekey not signed for the device
 * asked for, a key that fails FIPS 203's modulus check, or a signed prekey not signed for the
 * device ("Sealroom SPK v2") is an error, never classical X3DH. Errors are `PqxdhError`s named
 * as proto-core's `PqxdhError::name` (`reject:<name>` in pqxdh.json). The ML-KEM arithmetic is
 * @noble/post-quantum's; nothing here is lattice code.
 */
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, randomBytes, readU32be, u32be, wipe } from './bytes.js';
import { KEM_PREKEY_LABEL, PQXDH_INFO, ZERO_SALT, hkdfSha256 } from './kdf.js';
import { ed25519Verify } from './keys.js';
import { verifyDevicePrekey } from './devices.js';
import { X3dhError, associatedData, initiatorDh, responderDh } from './x3dh.js';

/** Length of an ML-KEM-768 encapsulation key `ek`. */
export const KEM_PUBLIC_KEY_LEN = 1184;
/** Length of an ML-KEM-768 ciphertext `ct`. */
export const KEM_CIPHERTEXT_LEN = 1088;
/** Length of a KEM prekey's seed `d || z`, its secret form. */
export const KEM_SEED_LEN = 64;
/** Length of a KEM header `kem_id (u32 BE) || ct`. */
export const KEM_HEADER_LEN = 4 + KEM_CIPHERTEXT_LEN;
/** ML-KEM's q: every 12-bit coefficient of `ek` must be below it (FIPS 203 §7.2). */
const Q = 3329;

/**
 * Why a PQXDH agreement was refused: `MissingKemPrekey`, `KemKeyLength`, `BadPrekeySignature`,
 * `BadKemPrekeySignature`, `InvalidKemKey`, `NonContributory` (initiator); `WrongSignedPrekey`,
 * `WrongOneTimePrekey`, `WrongKemPrekey`, `CiphertextLength` (responder).
 */
export class PqxdhError extends Error {
  /** @param {string} kind */
  constructor(kind) {
    super(`PQXDH refused: ${kind}`);
    this.name = 'PqxdhError';
    this.kind = kind;
  }
}

/**
 * @typedef {{id: number, public: Uint8Array, signature: Uint8Array}} KemPrekeyPublic
 * @typedef {{kem_id: number, ciphertext: Uint8Array}} KemHeader
 */

/**
 * `"Sealroom KEM PK v1" || device_id (u32 BE) || kem_id (u32 BE) || ek` (1,210 bytes).
 * @param {number} deviceId @param {number} kemId @param {Uint8Array} ek
 */
export function kemPrekeyMessage(deviceId, kemId, ek) {
  return concat(KEM_PREKEY_LABEL, u32be(deviceId), u32be(kemId), ek);
}

/**
 * Whether the account's `IKs` signed this KEM prekey for `deviceId` and its id (strict
 * Ed25519, as for signed prekeys). One signed for another device, another id or by another
 * identity does not verify.
 * @param {KemPrekeyPublic} kem @param {Uint8Array} identitySigning @param {number} deviceId
 */
export function verifyKemPrekey(kem, identitySigning, deviceId) {
  return ed25519Verify(identitySigning, kemPrekeyMessage(deviceId, kem.id, kem.public), kem.signature);
}

/**
 * FIPS 203 §7.2's modulus check: `ek` is 1,184 bytes and its first 1,152 bytes decode to 768
 * 12-bit coefficients (two per three bytes, little-endian) that are all below q = 3,329.
 * @param {Uint8Array} ek
 */
export function kemKeyIsValid(ek) {
  if (ek.length !== KEM_PUBLIC_KEY_LEN) return false;
  for (let i = 0; i < 384 * 3; i += 3) {
    const d1 = ek[i] | ((ek[i + 1] & 0x0f) << 8);
    const d2 = (ek[i + 1] >> 4) | (ek[i + 2] << 4);
    if (d1 >= Q || d2 >= Q) return false;
  }
  return true;
}

/** A KEM prekey pair: its id and seed `d || z`; the keys are made from the seed. */
export class KemPrekeyPair {
  /** @param {number} id @param {Uint8Array} seed 64 bytes `d || z` */
  constructor(id, seed) {
    if (seed.length !== KEM_SEED_LEN) throw new RangeError('a KEM prekey seed is 64 bytes');
    this.id = id;
    this.seed = seed;
    const { publicKey, secretKey } = ml_kem768.keygen(seed);
    this.publicKey = publicKey;
    this.secretKey = secretKey;
  }

  /** A fresh KEM prekey: 64 seed bytes from the OS RNG. @param {number} id */
  static generate(id) {
    return new KemPrekeyPair(id, randomBytes(KEM_SEED_LEN));
  }

  /**
   * The public form to publish for the linked device `deviceId`, signed by the account's
   * `identity` (Ed25519 is deterministic: the same inputs give the same signature).
   * @param {number} deviceId @param {import('./keys.js').IdentityKeyPair} identity
   * @returns {KemPrekeyPublic}
   */
  publicForDevice(deviceId, identity) {
    return { id: this.id, public: this.publicKey, signature: identity.sign(kemPrekeyMessage(deviceId, this.id, this.publicKey)) };
  }

  /**
   * `ML-KEM.Decaps`: the shared secret (another, pseudo-random one for a ciphertext not made
   * for this key: FIPS 203's implicit rejection).
   * @param {Uint8Array} ct
   */
  decapsulate(ct) {
    return ml_kem768.decapsulate(ct, this.secretKey);
  }

  /** Overwrites the secret parts. */
  wipe() {
    wipe(this.seed);
    wipe(this.secretKey);
  }
}

/**
 * The KEM prekey of a `KemBundle` as received: `null` is `MissingKemPrekey` (no classical
 * fallback), a key of the wrong length `KemKeyLength`. Its signature is checked when the
 * agreement starts.
 * @param {{id: number, key: Uint8Array, signature: Uint8Array} | null | undefined} wire
 * @returns {KemPrekeyPublic}
 */
export function kemPrekeyFromBundle(wire) {
  if (!wire) throw new PqxdhError('MissingKemPrekey');
  if (wire.key.length !== KEM_PUBLIC_KEY_LEN) throw new PqxdhError('KemKeyLength');
  return { id: wire.id, public: wire.key, signature: wire.signature };
}

/** `kem_id (u32 BE) || ct`. @param {KemHeader} h */
export function kemHeaderToBytes(h) {
  return concat(u32be(h.kem_id), h.ciphertext);
}

/**
 * Decodes exactly 1,092 bytes (`CiphertextLength` otherwise).
 * @param {Uint8Array} b
 * @returns {KemHeader}
 */
export function kemHeaderFromBytes(b) {
  if (b.length !== KEM_HEADER_LEN) throw new PqxdhError('CiphertextLength');
  return { kem_id: readU32be(b, 0), ciphertext: b.slice(4) };
}

/** X3DH's errors under their PQXDH names (the same names). @param {() => any} f */
function mapped(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof X3dhError) throw new PqxdhError(e.kind);
    throw e;
  }
}

/**
 * @param {Uint8Array[]} dhs @param {Uint8Array} ss @param {Uint8Array} ekHash @param {Uint8Array} ct
 * @param {import('./x3dh.js').IdentityPublicKey} initiator @param {import('./x3dh.js').IdentityPublicKey} responder
 */
function derive(dhs, ss, ekHash, ct, initiator, responder) {
  const ikm = concat(new Uint8Array(32).fill(0xff), ...dhs, ss);
  const info = concat(PQXDH_INFO, ekHash, sha256(ct));
  const sk = hkdfSha256(ZERO_SALT, ikm, info, 32);
  ikm.fill(0);
  return { sk, ad: associatedData(initiator, responder) };
}

/** The agreement: `sk` and `ad`. */
export const PqxdhAgreement = {
  /**
   * Initiator, towards the responder's linked device `deviceId`: checks, in proto-core's
   * order, `ek`'s length (`KemKeyLength`), the signed prekey's v2 signature
   * (`BadPrekeySignature`), the KEM prekey's signature for that device and id
   * (`BadKemPrekeySignature`) and `ek`'s modulus (`InvalidKemKey`); then X3DH's DH1..DH4 (`NonContributory`), encapsulates with 32
   * fresh random bytes `m`, and derives. The ephemeral secret and `m` are given only by test
   * vectors.
   * @param {import('./keys.js').IdentityKeyPair} identity @param {import('./x3dh.js').RemoteBundle} bundle
   * @param {number} deviceId @param {KemPrekeyPublic} kemPrekey
   * @param {Uint8Array} [ephemeralSecret] test vectors only
   * @param {Uint8Array} [kemMessage] test vectors only
   * @returns {{agreement: {sk: Uint8Array, ad: Uint8Array}, header: import('./x3dh.js').PrekeyHeader, kem: KemHeader}}
   */
  initiate(identity, bundle, deviceId, kemPrekey, ephemeralSecret, kemMessage) {
    if (kemPrekey.public.length !== KEM_PUBLIC_KEY_LEN) throw new PqxdhError('KemKeyLength');
    const signing = bundle.identity.signing;
    if (!verifyDevicePrekey(bundle.signed_prekey, signing, deviceId)) throw new PqxdhError('BadPrekeySignature');
    if (!verifyKemPrekey(kemPrekey, signing, deviceId)) throw new PqxdhError('BadKemPrekeySignature');
    if (!kemKeyIsValid(kemPrekey.public)) throw new PqxdhError('InvalidKemKey');
    const ek = ephemeralSecret ?? randomBytes(32);
    const { dhs, header } = mapped(() => initiatorDh(identity, bundle, ek));
    const m = kemMessage ?? randomBytes(32);
    let encapsulated;
    try {
      encapsulated = ml_kem768.encapsulate(kemPrekey.public, m);
    } catch {
      // noble checks the modulus too; never reached after the check above.
      throw new PqxdhError('InvalidKemKey');
    } finally {
      if (!kemMessage) wipe(m);
      if (!ephemeralSecret) wipe(ek);
    }
    const { cipherText, sharedSecret } = encapsulated;
    const agreement = derive(dhs, sharedSecret, sha256(kemPrekey.public), cipherText, header.identity, bundle.identity);
    for (const d of dhs) d.fill(0);
    wipe(sharedSecret);
    return { agreement, header, kem: { kem_id: kemPrekey.id, ciphertext: cipherText } };
  },

  /**
   * Responder: agree with the initiator named in `header`, with the prekeys the headers name
   * (`WrongKemPrekey` first, then X3DH's `WrongSignedPrekey`, `WrongOneTimePrekey`,
   * `NonContributory`; a ciphertext not 1,088 bytes is `CiphertextLength`). A tampered
   * ciphertext is not detected here: it gives another `SK`, so the first message does not
   * decrypt. The caller deletes a one-time prekey (X25519 or KEM) once that message decrypted.
   * @param {import('./keys.js').IdentityKeyPair} identity
   * @param {import('./keys.js').SignedPrekeyPair} signedPrekey
   * @param {import('./keys.js').OneTimePrekeyPair | null} oneTimePrekey
   * @param {KemPrekeyPair} kemPrekey
   * @param {import('./x3dh.js').PrekeyHeader} header @param {KemHeader} kem
   */
  respond(identity, signedPrekey, oneTimePrekey, kemPrekey, header, kem) {
    if (kem.kem_id !== kemPrekey.id) throw new PqxdhError('WrongKemPrekey');
    if (kem.ciphertext.length !== KEM_CIPHERTEXT_LEN) throw new PqxdhError('CiphertextLength');
    const dhs = mapped(() => responderDh(identity, signedPrekey, oneTimePrekey, header));
    const ss = kemPrekey.decapsulate(kem.ciphertext);
    const agreement = derive(dhs, ss, sha256(kemPrekey.publicKey), kem.ciphertext, header.identity, identity.public());
    for (const d of dhs) d.fill(0);
    wipe(ss);
    return agreement;
  },
};

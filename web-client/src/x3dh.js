// @ts-check
/**
 * X3DH (proto-core `x3dh.rs`): `DH1 = DH(IKd_A, SPK_B)`, `DH2 = DH(EK_A, IKd_B)`,
 * `DH3 = DH(EK_A, SPK_B)`, `DH4 = DH(EK_A, OPK_B)` with a one-time prekey;
 * `SK = HKDF(32 zero bytes, 32×0xFF || DH1 || DH2 || DH3 [|| DH4], "Sealroom X3DH v1", 32)`,
 * `AD = IKd_A || IKs_A || IKd_B || IKs_B`; and the 106-byte `PrekeyHeader`:
 * `01 || IKs_A || IKd_A || EK_A || spk id (u32 BE) || opk flag || opk id (u32 BE)`.
 * It does not decide whom to trust (safety numbers and the user do).
 */
import { concat, randomBytes, readU32be, u32be } from './bytes.js';
import { X3DH_INFO, ZERO_SALT, hkdfSha256 } from './kdf.js';
import { NonContributory, dh, verifySignedPrekey, x25519Public } from './keys.js';
import { verifyDevicePrekey } from './devices.js';

export const X3DH_AD_LEN = 128;
export const PREKEY_HEADER_LEN = 106;
export const PREKEY_HEADER_VERSION = 1;

/** Why an agreement was refused: `BadPrekeySignature`, `NonContributory`, `WrongSignedPrekey`, `WrongOneTimePrekey`. */
export class X3dhError extends Error {
  /** @param {string} kind */
  constructor(kind) {
    super(`X3DH refused: ${kind}`);
    this.name = 'X3dhError';
    this.kind = kind;
  }
}

/** Why a prekey header did not parse: `Truncated`, `UnknownVersion`, `Malformed`. */
export class PrekeyHeaderError extends Error {
  /** @param {string} kind */
  constructor(kind) {
    super(`bad prekey header: ${kind}`);
    this.name = 'PrekeyHeaderError';
    this.kind = kind;
  }
}

/**
 * @typedef {{signing: Uint8Array, dh: Uint8Array}} IdentityPublicKey
 * @typedef {{identity: IdentityPublicKey, ephemeral: Uint8Array, signed_prekey_id: number,
 *   one_time_prekey_id: number | null}} PrekeyHeader
 * @typedef {{identity: IdentityPublicKey, signed_prekey: {id: number, public: Uint8Array,
 *   signature: Uint8Array}, one_time_prekey: {id: number, public: Uint8Array} | null}} RemoteBundle
 */

/** @param {PrekeyHeader} h */
export function prekeyHeaderToBytes(h) {
  const opk = h.one_time_prekey_id;
  return concat(
    Uint8Array.of(PREKEY_HEADER_VERSION), h.identity.signing, h.identity.dh, h.ephemeral,
    u32be(h.signed_prekey_id), Uint8Array.of(opk === null ? 0 : 1), u32be(opk === null ? 0 : opk),
  );
}

/**
 * Decodes exactly 106 bytes (more is the caller's business).
 * @param {Uint8Array} b
 * @returns {PrekeyHeader}
 */
export function prekeyHeaderFromBytes(b) {
  if (b.length < PREKEY_HEADER_LEN) throw new PrekeyHeaderError('Truncated');
  if (b[0] !== PREKEY_HEADER_VERSION) throw new PrekeyHeaderError('UnknownVersion');
  const flag = b[101];
  const opkId = readU32be(b, 102);
  let one_time_prekey_id;
  if (flag === 0 && opkId === 0) one_time_prekey_id = null;
  else if (flag === 1) one_time_prekey_id = opkId;
  else throw new PrekeyHeaderError('Malformed');
  return {
    identity: { signing: b.slice(1, 33), dh: b.slice(33, 65) },
    ephemeral: b.slice(65, 97),
    signed_prekey_id: readU32be(b, 97),
    one_time_prekey_id,
  };
}

/** `AD = IKd_A || IKs_A || IKd_B || IKs_B`. @param {IdentityPublicKey} initiator @param {IdentityPublicKey} responder */
export function associatedData(initiator, responder) {
  return concat(initiator.dh, initiator.signing, responder.dh, responder.signing);
}

/**
 * @param {Uint8Array[]} dhs @param {IdentityPublicKey} initiator @param {IdentityPublicKey} responder
 */
function derive(dhs, initiator, responder) {
  const ikm = concat(new Uint8Array(32).fill(0xff), ...dhs);
  const sk = hkdfSha256(ZERO_SALT, ikm, X3DH_INFO, 32);
  ikm.fill(0);
  return { sk, ad: associatedData(initiator, responder) };
}

/** @param {() => Uint8Array} f */
function checked(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof NonContributory) throw new X3dhError('NonContributory');
    throw e;
  }
}

/**
 * The initiator's DH outputs `DH1..DH3 [DH4]` with the ephemeral secret `ek`, and the prekey
 * header naming the prekeys used (proto-core `initiator_dh`; PQXDH shares it). The caller has
 * checked the signed prekey's signature. Throws `X3dhError('NonContributory')`.
 * @param {import('./keys.js').IdentityKeyPair} identity @param {RemoteBundle} bundle @param {Uint8Array} ek
 * @returns {{dhs: Uint8Array[], header: PrekeyHeader}}
 */
export function initiatorDh(identity, bundle, ek) {
  const spk = bundle.signed_prekey.public;
  const dhs = [
    checked(() => dh(identity.dhSecret, spk)),
    checked(() => dh(ek, bundle.identity.dh)),
    checked(() => dh(ek, spk)),
  ];
  const opk = bundle.one_time_prekey;
  if (opk) dhs.push(checked(() => dh(ek, opk.public)));
  const header = {
    identity: identity.public(),
    ephemeral: x25519Public(ek),
    signed_prekey_id: bundle.signed_prekey.id,
    one_time_prekey_id: opk ? opk.id : null,
  };
  return { dhs, header };
}

/**
 * The responder's DH outputs for `header`, with the prekeys it names (proto-core
 * `responder_dh`): `WrongSignedPrekey`, `WrongOneTimePrekey`, `NonContributory`.
 * @param {import('./keys.js').IdentityKeyPair} identity
 * @param {import('./keys.js').SignedPrekeyPair} signedPrekey
 * @param {import('./keys.js').OneTimePrekeyPair | null} oneTimePrekey
 * @param {PrekeyHeader} header
 */
export function responderDh(identity, signedPrekey, oneTimePrekey, header) {
  if (header.signed_prekey_id !== signedPrekey.id) throw new X3dhError('WrongSignedPrekey');
  const want = header.one_time_prekey_id;
  if ((want === null) !== (oneTimePrekey === null) || (oneTimePrekey && oneTimePrekey.id !== want)) {
    throw new X3dhError('WrongOneTimePrekey');
  }
  const dhs = [
    checked(() => dh(signedPrekey.secret, header.identity.dh)),
    checked(() => dh(identity.dhSecret, header.ephemeral)),
    checked(() => dh(signedPrekey.secret, header.ephemeral)),
  ];
  if (oneTimePrekey) dhs.push(checked(() => dh(oneTimePrekey.secret, header.ephemeral)));
  return dhs;
}

/**
 * The initiator's side: the signed prekey checked as v1 (`deviceId` null, §4.1) or as signed
 * for `deviceId` (v2, §4.6), then the agreement with a fresh (or, for vectors, given) ephemeral.
 * @param {import('./keys.js').IdentityKeyPair} identity @param {RemoteBundle} bundle
 * @param {number | null} deviceId @param {Uint8Array} [ephemeralSecret]
 * @returns {{agreement: {sk: Uint8Array, ad: Uint8Array}, header: PrekeyHeader}}
 */
function initiateWith(identity, bundle, deviceId, ephemeralSecret) {
  const valid = deviceId === null
    ? verifySignedPrekey(bundle.signed_prekey, bundle.identity.signing)
    : verifyDevicePrekey(bundle.signed_prekey, bundle.identity.signing, deviceId);
  if (!valid) throw new X3dhError('BadPrekeySignature');
  const ek = ephemeralSecret ?? randomBytes(32);
  const { dhs, header } = initiatorDh(identity, bundle, ek);
  const agreement = derive(dhs, header.identity, bundle.identity);
  for (const d of dhs) d.fill(0);
  return { agreement, header };
}

/** The agreement: `sk` and `ad`. */
export const X3dhAgreement = {
  /**
   * Initiator: verify the bundle, agree with a fresh (or, for vectors, given) ephemeral key.
   * @param {import('./keys.js').IdentityKeyPair} identity @param {RemoteBundle} bundle
   * @param {Uint8Array} [ephemeralSecret] for test vectors only
   * @returns {{agreement: {sk: Uint8Array, ad: Uint8Array}, header: PrekeyHeader}}
   */
  initiate(identity, bundle, ephemeralSecret) {
    return initiateWith(identity, bundle, null, ephemeralSecret);
  },

  /**
   * Initiator towards one device of an account (proto-core `initiate_for_device`): the
   * bundle's signed prekey must be signed by the identity for `deviceId` ("Sealroom SPK v2",
   * PROTOCOL.md §4.6); a v1 signature, or one for another device, is `BadPrekeySignature`.
   * @param {import('./keys.js').IdentityKeyPair} identity @param {RemoteBundle} bundle
   * @param {number} deviceId
   * @param {Uint8Array} [ephemeralSecret] for test vectors only
   * @returns {{agreement: {sk: Uint8Array, ad: Uint8Array}, header: PrekeyHeader}}
   */
  initiateForDevice(identity, bundle, deviceId, ephemeralSecret) {
    return initiateWith(identity, bundle, deviceId, ephemeralSecret);
  },

  /**
   * Responder: agree with the initiator named in `header`, with the prekeys it names.
   * @param {import('./keys.js').IdentityKeyPair} identity
   * @param {import('./keys.js').SignedPrekeyPair} signedPrekey
   * @param {import('./keys.js').OneTimePrekeyPair | null} oneTimePrekey
   * @param {PrekeyHeader} header
   */
  respond(identity, signedPrekey, oneTimePrekey, header) {
    const dhs = responderDh(identity, signedPrekey, oneTimePrekey, header);
    const agreement = derive(dhs, header.identity, identity.public());
    for (const d of dhs) d.fill(0);
    return agreement;
  },
};

// @ts-check
/**
 * What travels inside a message body (proto-core `envelope.rs`): the one-to-one envelope
 * (`0x01` prekey: 106-byte X3DH header then the ratchet message; `0x02` ratchet message;
 * `0x03` post-quantum prekey: the X3DH header, the 1,092-byte KEM header `kem_id || ct`, then
 * the ratchet message, PQXDH §4.8) and
 * the decrypted postcard `Content` (0 Text {id u64, sent_at u64, text}, 1 RoomKey {room,
 * distribution}, 2 SessionReset, 3 Roster {room, roster}, 4 Sent {to, id, sent_at, text}). Content decoding raises frames' `DecodeError` names.
 */
import { concat } from './bytes.js';
import { DecodeError, Reader, Writer } from './postcard.js';
import { PREKEY_HEADER_LEN, prekeyHeaderFromBytes, prekeyHeaderToBytes } from './x3dh.js';
import { KEM_HEADER_LEN, kemHeaderFromBytes, kemHeaderToBytes } from './pqxdh.js';

export const ENVELOPE_PREKEY = 0x01;
export const ENVELOPE_RATCHET = 0x02;
/** A new session's first messages (PQXDH): how every session this client starts begins. */
export const ENVELOPE_PQ_PREKEY = 0x03;

/** Why a body is not an envelope: `Truncated`, `UnknownKind`, `BadPrekeyHeader`. */
export class EnvelopeError extends Error {
  /** @param {string} kind */
  constructor(kind) {
    super(`bad message body: ${kind}`);
    this.name = 'EnvelopeError';
    this.kind = kind;
  }
}

/**
 * @typedef {{kind: 'Prekey', header: import('./x3dh.js').PrekeyHeader, message: Uint8Array}
 *   | {kind: 'PqPrekey', header: import('./x3dh.js').PrekeyHeader, kem: import('./pqxdh.js').KemHeader, message: Uint8Array}
 *   | {kind: 'Ratchet', message: Uint8Array}} Envelope
 */

/**
 * @param {Uint8Array} body
 * @returns {Envelope}
 */
export function parseEnvelope(body) {
  if (body.length === 0) throw new EnvelopeError('Truncated');
  const kind = body[0];
  if (kind === ENVELOPE_PREKEY || kind === ENVELOPE_PQ_PREKEY) {
    if (body.length < 1 + PREKEY_HEADER_LEN) throw new EnvelopeError('Truncated');
    let header;
    try {
      header = prekeyHeaderFromBytes(body.subarray(1, 1 + PREKEY_HEADER_LEN));
    } catch {
      throw new EnvelopeError('BadPrekeyHeader');
    }
    let rest = body.subarray(1 + PREKEY_HEADER_LEN);
    /** @type {import('./pqxdh.js').KemHeader | null} */
    let kem = null;
    if (kind === ENVELOPE_PQ_PREKEY) {
      if (rest.length < KEM_HEADER_LEN) throw new EnvelopeError('Truncated');
      kem = kemHeaderFromBytes(rest.subarray(0, KEM_HEADER_LEN));
      rest = rest.subarray(KEM_HEADER_LEN);
    }
    if (rest.length === 0) throw new EnvelopeError('Truncated');
    return kem ? { kind: 'PqPrekey', header, kem, message: rest } : { kind: 'Prekey', header, message: rest };
  }
  if (kind === ENVELOPE_RATCHET) {
    if (body.length === 1) throw new EnvelopeError('Truncated');
    return { kind: 'Ratchet', message: body.subarray(1) };
  }
  throw new EnvelopeError('UnknownKind');
}

/**
 * The body of `message`: with a prekey header and a KEM header a `0x03` (PQXDH) envelope, with
 * a prekey header alone `0x01`, with neither `0x02` (a KEM header without a prekey header is
 * ignored: it never occurs, the session keeps both until the first reply).
 * @param {import('./x3dh.js').PrekeyHeader | null} header @param {Uint8Array} message
 * @param {import('./pqxdh.js').KemHeader | null} [kem]
 */
export function emitEnvelope(header, message, kem = null) {
  if (!header) return concat(Uint8Array.of(ENVELOPE_RATCHET), message);
  if (kem) return concat(Uint8Array.of(ENVELOPE_PQ_PREKEY), prekeyHeaderToBytes(header), kemHeaderToBytes(kem), message);
  return concat(Uint8Array.of(ENVELOPE_PREKEY), prekeyHeaderToBytes(header), message);
}

/**
 * @typedef {{type: 'Text', id: bigint, sent_at: bigint, text: string}
 *   | {type: 'RoomKey', room: string, distribution: Uint8Array}
 *   | {type: 'SessionReset'}
 *   | {type: 'Roster', room: string, roster: Uint8Array}
 *   | {type: 'Sent', to: string, id: bigint, sent_at: bigint, text: string}} Content
 */

/** @param {Uint8Array} bytes @returns {Content} */
export function decodeContent(bytes) {
  const r = new Reader(bytes);
  const tag = r.u32();
  /** @type {Content} */
  let c;
  if (tag === 0) c = { type: 'Text', id: r.u64(), sent_at: r.u64(), text: r.str() };
  else if (tag === 1) c = { type: 'RoomKey', room: r.str(), distribution: r.bytes() };
  else if (tag === 2) c = { type: 'SessionReset' };
  else if (tag === 3) c = { type: 'Roster', room: r.str(), roster: r.bytes() };
  else if (tag === 4) c = { type: 'Sent', to: r.str(), id: r.u64(), sent_at: r.u64(), text: r.str() };
  else throw new DecodeError('UnknownTag');
  if (r.remaining !== 0) throw new DecodeError('TrailingBytes');
  return c;
}

/** @param {Content} c */
export function encodeContent(c) {
  const w = new Writer();
  if (c.type === 'Text') {
    w.varint(0);
    w.varint(c.id);
    w.varint(c.sent_at);
    w.str(c.text);
  } else if (c.type === 'RoomKey') {
    w.varint(1);
    w.str(c.room);
    w.bytes(c.distribution);
  } else if (c.type === 'Roster') {
    w.varint(3);
    w.str(c.room);
    w.bytes(c.roster);
  } else if (c.type === 'Sent') {
    w.varint(4);
    w.str(c.to);
    w.varint(c.id);
    w.varint(c.sent_at);
    w.str(c.text);
  } else {
    w.varint(2);
  }
  return w.finish();
}

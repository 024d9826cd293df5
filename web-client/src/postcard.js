// @ts-check
/**
 * Postcard 1.x primitives as docs/PROTOCOL.md §3.1 uses them: LEB128 varints with per-type
 * byte limits, length-prefixed strings and byte strings, options. A `Reader` raises a
 * `DecodeError` whose `kind` is one of proto-core's `DecodeError` variant names; a `Writer`
 * grows a byte array. It knows nothing of messages (message.js) or framing (frames.js).
 */

/** The decode error names shared with proto-core (`reject:<kind>` in the vectors). */
export const DECODE_ERRORS = /** @type {const} */ ([
  'Truncated', 'Oversized', 'BufferTooSmall', 'UnknownVersion', 'UnknownTag', 'TrailingBytes',
  'InvalidUtf8', 'TooManyItems', 'Malformed',
]);

/** Bytes that are not a valid frame or content; `kind` names the variant. */
export class DecodeError extends Error {
  /** @param {typeof DECODE_ERRORS[number]} kind */
  constructor(kind) {
    super(`decode error: ${kind}`);
    this.name = 'DecodeError';
    this.kind = kind;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8enc = new TextEncoder();

/** Most bytes of a varint of each width. */
const VARINT_MAX = { u16: 3, u32: 5, u64: 10 };

export class Reader {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    this.b = bytes;
    this.pos = 0;
  }

  get remaining() {
    return this.b.length - this.pos;
  }

  u8() {
    if (this.pos >= this.b.length) throw new DecodeError('Truncated');
    return this.b[this.pos++];
  }

  /**
   * A varint of `width`, as a BigInt; longer than allowed or overflowing is `Malformed`.
   * @param {'u16'|'u32'|'u64'} width
   */
  varintBig(width) {
    const max = VARINT_MAX[width];
    const bits = width === 'u16' ? 16 : width === 'u32' ? 32 : 64;
    let out = 0n;
    for (let i = 0; i < max; i++) {
      const v = this.u8();
      out |= BigInt(v & 0x7f) << BigInt(7 * i);
      if ((v & 0x80) === 0) {
        if (i === max - 1 && v > (1 << (bits - 7 * (max - 1))) - 1) throw new DecodeError('Malformed');
        return out;
      }
    }
    throw new DecodeError('Malformed');
  }

  u16() {
    return Number(this.varintBig('u16'));
  }

  u32() {
    return Number(this.varintBig('u32'));
  }

  /** u64 as a BigInt (Unix times and ids can exceed 2^53). */
  u64() {
    return this.varintBig('u64');
  }

  /** A length (postcard's usize: a u64 varint). */
  len() {
    const n = this.varintBig('u64');
    if (n > BigInt(this.remaining)) throw new DecodeError('Truncated');
    return Number(n);
  }

  /** @param {number} n */
  take(n) {
    if (n > this.remaining) throw new DecodeError('Truncated');
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  bytes() {
    return this.take(this.len()).slice();
  }

  str() {
    const raw = this.take(this.len());
    try {
      return utf8.decode(raw);
    } catch {
      throw new DecodeError('InvalidUtf8');
    }
  }

  /** An option tag: 0 → false, 1 → true. */
  optionTag() {
    const t = this.u8();
    if (t === 0) return false;
    if (t === 1) return true;
    throw new DecodeError('Malformed');
  }
}

export class Writer {
  constructor() {
    /** @type {number[]} */
    this.out = [];
  }

  /** @param {number} v */
  u8(v) {
    this.out.push(v & 0xff);
  }

  /** Minimal LEB128. @param {number | bigint} v */
  varint(v) {
    let x = BigInt(v);
    if (x < 0n) throw new RangeError('negative varint');
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x > 0n) byte |= 0x80;
      this.out.push(byte);
    } while (x > 0n);
  }

  /** @param {Uint8Array} b */
  raw(b) {
    for (const x of b) this.out.push(x);
  }

  /** @param {Uint8Array} b */
  bytes(b) {
    this.varint(b.length);
    this.raw(b);
  }

  /** @param {string} s */
  str(s) {
    this.bytes(utf8enc.encode(s));
  }

  finish() {
    return Uint8Array.from(this.out);
  }
}

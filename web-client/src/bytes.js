// @ts-check
/** Byte strings: hex, concatenation, comparison. Owns no protocol meaning. */

/** @param {Uint8Array} b */
export function toHex(b) {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/** @param {string} h */
export function fromHex(h) {
  if (h.length % 2 !== 0 || /[^0-9a-fA-F]/.test(h)) throw new TypeError('not hex');
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** @param {...Uint8Array} parts */
export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Equality (not constant time: for public values only). @param {Uint8Array} a @param {Uint8Array} b */
export function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** @param {number} n */
export function u32be(n) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0, false);
  return out;
}

/** @param {Uint8Array} b @param {number} off */
export function readU32be(b, off) {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, false);
}

/** Overwrite a secret buffer. @param {Uint8Array | undefined | null} b */
export function wipe(b) {
  if (b) b.fill(0);
}

/** @param {number} n */
export function randomBytes(n) {
  const out = new Uint8Array(n);
  crypto.getRandomValues(out);
  return out;
}

/** A random u64 (message and client ids), as a BigInt. */
export function randomU64() {
  let v = 0n;
  for (const x of randomBytes(8)) v = (v << 8n) | BigInt(x);
  return v;
}

// @ts-check
/**
 * Frames (proto-core `frame.rs`): `u32 BE length || version 0x01 || postcard(Message)`, the
 * length counting the version byte and the message and never above `MAX_FRAME`. In the browser
 * every binary WebSocket message is one whole frame; `FrameDecoder` also takes a byte stream.
 * Errors are `DecodeError`s with proto-core's names; what a message means is the caller's.
 */
import { DecodeError } from './postcard.js';
import { decodeMessage, encodeMessage } from './message.js';

export { DecodeError } from './postcard.js';
export { TAG_COUNT, KEM_PUBLIC_KEY_LEN, MAX_KEM_PREKEYS_PER_UPLOAD } from './message.js';

export const PROTOCOL_VERSION = 1;
export const LENGTH_PREFIX_LEN = 4;
export const MAX_FRAME = 64 * 1024;
export const MAX_FRAME_WIRE = LENGTH_PREFIX_LEN + MAX_FRAME;
export const MAX_BODY = MAX_FRAME - 1024;

/**
 * Encodes `msg` as one whole frame, prefix included.
 * @param {Record<string, any> & { type: string }} msg
 */
export function encodeFrame(msg) {
  const body = encodeMessage(msg);
  const len = 1 + body.length;
  if (len > MAX_FRAME) throw new RangeError('TooLarge: message exceeds the maximum frame size');
  const out = new Uint8Array(LENGTH_PREFIX_LEN + len);
  new DataView(out.buffer).setUint32(0, len, false);
  out[4] = PROTOCOL_VERSION;
  out.set(body, 5);
  return out;
}

/**
 * The length a frame's prefix announces, or null with fewer than 4 bytes.
 * @param {Uint8Array} bytes
 */
export function parseHeader(bytes) {
  if (bytes.length < LENGTH_PREFIX_LEN) return null;
  const len = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false);
  if (len > MAX_FRAME) throw new DecodeError('Oversized');
  return len;
}

/** @param {Uint8Array} payload version || message */
function decodePayload(payload) {
  if (payload.length === 0) throw new DecodeError('Truncated');
  if (payload[0] !== PROTOCOL_VERSION) throw new DecodeError('UnknownVersion');
  return decodeMessage(payload.subarray(1));
}

/**
 * Decodes the frame at the start of `input`: the message and the bytes it used.
 * @param {Uint8Array} input
 */
export function decodeFrame(input) {
  const len = parseHeader(input);
  if (len === null) throw new DecodeError('Truncated');
  const wire = LENGTH_PREFIX_LEN + len;
  if (input.length < wire) throw new DecodeError('Truncated');
  return { message: decodePayload(input.subarray(LENGTH_PREFIX_LEN, wire)), used: wire };
}

/**
 * Decodes one WebSocket message: exactly one frame, nothing after it.
 * @param {Uint8Array} data
 */
export function decodeWholeFrame(data) {
  const { message, used } = decodeFrame(data);
  if (used !== data.length) throw new DecodeError('TrailingBytes');
  return message;
}

/**
 * A streaming decoder with a fixed buffer (proto-core `FrameDecoder`): `feed` bytes, then
 * `pollFrame` until it returns null. A bad prefix (`Oversized`, `BufferTooSmall`) is sticky.
 */
export class FrameDecoder {
  /** @param {number} [capacity] */
  constructor(capacity = MAX_FRAME_WIRE) {
    this.buf = new Uint8Array(capacity);
    this.filled = 0;
    /** @type {DecodeError | null} */
    this.failed = null;
  }

  /** Takes what fits; returns how many bytes were taken. @param {Uint8Array} input */
  feed(input) {
    const n = Math.min(this.buf.length - this.filled, input.length);
    this.buf.set(input.subarray(0, n), this.filled);
    this.filled += n;
    return n;
  }

  /** The next whole message, or null. */
  pollFrame() {
    if (this.failed) throw this.failed;
    const filled = this.buf.subarray(0, this.filled);
    let len;
    try {
      len = parseHeader(filled);
    } catch (e) {
      this.failed = /** @type {DecodeError} */ (e);
      throw e;
    }
    if (len === null) return null;
    const wire = LENGTH_PREFIX_LEN + len;
    if (wire > this.buf.length) {
      this.failed = new DecodeError('BufferTooSmall');
      throw this.failed;
    }
    if (this.filled < wire) return null;
    const payload = this.buf.slice(LENGTH_PREFIX_LEN, wire);
    this.buf.copyWithin(0, wire, this.filled);
    this.filled -= wire;
    return decodePayload(payload);
  }
}

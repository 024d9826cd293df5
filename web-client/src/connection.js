// @ts-check
/**
 * The link to the server: one WebSocket to `/ws` on the page's own origin, one whole frame per
 * binary message. Requests get their replies in order (the server answers a connection's frames
 * one at a time); pushes (`Deliver`, `Delivered`, `RoomChanged`, `PrekeysLow`, `KemPrekeysLow`, the server's
 * `Ping`, and the `Session` that follows `EnrollmentComplete`) go to `onPush`. It knows frames,
 * not accounts or crypto.
 */
import { decodeWholeFrame, encodeFrame } from './frames.js';

/** What the server sends unasked (proto-core's `Message::is_push`; `pushes` in names.json). */
export const PUSHES = new Set(['Deliver', 'Delivered', 'RoomChanged', 'PrekeysLow', 'Ping', 'KemPrekeysLow']);

/** The server refused a request: `code` from docs/PROTOCOL.md §3.2, `text` for people. */
export class ServerError extends Error {
  /** @param {number} code @param {string} text */
  constructor(code, text) {
    super(text);
    this.name = 'ServerError';
    this.code = code;
  }
}

export class Connection {
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {{resolve: (m: any) => void, reject: (e: Error) => void, want: number, got: any[]}[]} */
    this.pending = [];
    /** @type {(m: any) => void} */
    this.onPush = () => {};
    /** @type {(open: boolean) => void} */
    this.onStatus = () => {};
  }

  /** @returns {Promise<void>} */
  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      ws.onopen = () => {
        this.onStatus(true);
        resolve();
      };
      ws.onerror = () => reject(new Error('cannot reach the server'));
      ws.onclose = () => {
        if (this.ws === ws) this.ws = null;
        const pending = this.pending;
        this.pending = [];
        for (const p of pending) p.reject(new Error('the connection to the server closed'));
        this.onStatus(false);
      };
      ws.onmessage = (ev) => {
        if (!(ev.data instanceof ArrayBuffer)) return;
        let msg;
        try {
          msg = decodeWholeFrame(new Uint8Array(ev.data));
        } catch (e) {
          console.warn('dropped a bad frame from the server', e);
          return;
        }
        if (msg.type === 'Ping') this.send({ type: 'Pong', nonce: msg.nonce });
        if (PUSHES.has(msg.type)) {
          this.onPush(msg);
          return;
        }
        const p = this.pending[0];
        if (!p) {
          this.onPush(msg);
          return;
        }
        p.got.push(msg);
        if (msg.type === 'Error' || p.got.length === p.want) {
          this.pending.shift();
          p.resolve(p.got);
        }
      };
    });
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** @param {Record<string, any> & {type: string}} msg */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new Error('not connected to the server');
    this.ws.send(encodeFrame(msg));
  }

  /**
   * Sends `msg` and resolves with its reply, or with all `replies` replies as an array
   * (`ConfirmTotp` gets `EnrollmentComplete` then `Session`); an `Error` rejects with
   * `ServerError`.
   * @param {Record<string, any> & {type: string}} msg @param {number} [replies]
   * @returns {Promise<any>}
   */
  request(msg, replies = 1) {
    return new Promise((resolve, reject) => {
      try {
        this.send(msg);
      } catch (e) {
        reject(e);
        return;
      }
      this.pending.push({
        resolve: (/** @type {any[]} */ got) => {
          const last = got[got.length - 1];
          if (last.type === 'Error') reject(new ServerError(last.code, last.text));
          else resolve(replies === 1 ? last : got);
        },
        reject,
        want: replies,
        got: [],
      });
    });
  }

  close() {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
  }
}

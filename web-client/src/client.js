// @ts-check
/**
 * The account on this device: registration and login against the server, device keys,
 * contacts with trust on first use, what the server pushes, and the history, all kept in the
 * encrypted keystore. One-to-one messaging lives in direct.js and rooms in rooms.js; together
 * they behave as the command-line client does (host-client `client.rs`, `direct.rs`,
 * `rooms.rs`) so the two interoperate. It draws nothing (ui/ does) and never logs a secret.
 *
 * Every change of state runs through one queue (`serial`), so a message arriving while the
 * user sends never sees a half-updated session; each is saved before it is acknowledged or
 * sent, so a reload never reuses a key.
 */
import { fromHex, randomU64, toHex } from './bytes.js';
import { Connection, ServerError } from './connection.js';
import * as direct from './direct.js';
import { IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair } from './keys.js';
import { ErrorCode } from './message.js';
import { Room, roomIdForName } from './room.js';
import * as rooms from './rooms.js';
import { safetyNumber } from './fingerprint.js';
import { Keystore } from './keystore.js';

export { ServerError } from './connection.js';
export { KeyChangedError } from './direct.js';

const INITIAL_PREKEYS = 50;
const HISTORY_LIMIT = 5000;

const now = () => Math.floor(Date.now() / 1000);

/** @type {Map<string, () => void>} */
const tabLocks = new Map();

/**
 * Holds a per-account Web Lock for as long as this page is logged in, so a second tab cannot run
 * the same ratchet sessions from the same keystore (which would reuse message keys).
 * @param {string} username
 */
async function holdTabLock(username) {
  if (tabLocks.has(username) || typeof navigator === 'undefined' || !navigator.locks) return;
  const granted = await new Promise((resolve) => {
    navigator.locks.request(`sealroom:${username}`, { ifAvailable: true }, (lock) => {
      if (!lock) {
        resolve(false);
        return null;
      }
      resolve(true);
      return new Promise((release) => tabLocks.set(username, () => release(undefined)));
    });
  });
  if (!granted) throw new Error(`Sealroom is already open for ${username} in another tab or window. Use that one, or close it first.`);
}

/** @param {string} username */
function releaseTabLock(username) {
  tabLocks.get(username)?.();
  tabLocks.delete(username);
}

/** The WebSocket URL of the page's own server. */
export function defaultServerUrl() {
  return `wss://${location.host}/ws`;
}

/**
 * @typedef {{conv: string, from: string, text: string, at: number, id: string, server_id: string | null,
 *   outgoing: boolean, state: string, unread: boolean}} Entry
 * @typedef {{identity_sig: string, identity_dh: string, verified: boolean, key_changed: boolean,
 *   session: any, previous_session: any}} Contact
 */

/** A fresh profile with new device keys. @param {string} username @param {string} name */
function newProfile(username, name) {
  const identity = IdentityKeyPair.generate();
  const spk = SignedPrekeyPair.generate(1, identity);
  /** @type {Record<string, string>} */
  const opks = {};
  for (let id = 1; id <= INITIAL_PREKEYS; id++) opks[id] = toHex(OneTimePrekeyPair.generate(id).secret);
  return {
    v: 1,
    username,
    name,
    identity: { sig: toHex(identity.signingSecret), dh: toHex(identity.dhSecret) },
    spks: [{ id: spk.id, secret: toHex(spk.secret), signature: toHex(spk.signature) }],
    opks,
    next_opk_id: INITIAL_PREKEYS + 1,
    /** @type {Record<string, Contact>} */
    contacts: {},
    /** @type {Record<string, {state: any, members: string[], admin: string, key_sent: Record<string, number>}>} */
    rooms: {},
    /** @type {Entry[]} */
    history: [],
    /** @type {string[]} */
    seen: [],
    /** @type {string[]} */
    processed: [],
    /** @type {string | null} */
    token: null,
    token_expires: 0,
  };
}

/** @typedef {ReturnType<typeof newProfile>} Profile */

/** A fresh profile with new keys, for tests that drive a `Client` without a browser. @param {string} username */
export function newProfileForTests(username) {
  return newProfile(username, username);
}

export class Client extends EventTarget {
  /** @param {Connection} conn @param {Profile} profile @param {Keystore | null} keystore */
  constructor(conn, profile, keystore) {
    super();
    this.conn = conn;
    this.profile = profile;
    this.keystore = keystore;
    /** @type {Promise<any>} */
    this.queue = Promise.resolve();
    this.online = conn.isOpen;
    this.loggedIn = false;
    /** @type {string[]} rooms whose keys need sending */
    this.roomsToSync = [];
    /** @type {string[]} peers owed a SessionReset */
    this.resets = [];
    /** @type {string[]} notices for the user (newest last) */
    this.notices = [];
    conn.onPush = (m) => this.handlePush(m);
    conn.onStatus = (open) => {
      this.online = open;
      if (!open) this.loggedIn = false;
      this.changed();
      if (!open && this.profile.token && !this.closing) setTimeout(() => this.reconnect(), 2000);
    };
    this.closing = false;
    /** @type {string | undefined} held only until the keystore is made, then dropped */
    this.password = undefined;
    this.newDevice = false;
  }

  changed() {
    this.dispatchEvent(new Event('change'));
  }

  /** @param {string} text */
  notice(text) {
    this.notices.push(text);
    if (this.notices.length > 20) this.notices.shift();
  }

  /** Runs `f` after everything queued before it. @template T @param {() => Promise<T>} f @returns {Promise<T>} */
  serial(f) {
    const run = this.queue.then(f);
    this.queue = run.catch(() => {});
    return run;
  }

  async save() {
    if (this.keystore) await this.keystore.save(this.profile);
  }

  identity() {
    return new IdentityKeyPair(fromHex(this.profile.identity.sig), fromHex(this.profile.identity.dh));
  }

  // ---- accounts ----

  /**
   * Starts a registration: device keys are made here and only the public halves are sent.
   * @param {string} url
   * @param {{name: string, email: string, username: string, password: string}} form
   * @returns {Promise<{client: Client, uri: string}>}
   */
  static async register(url, form) {
    const username = form.username.trim().toLowerCase();
    await holdTabLock(username);
    const profile = newProfile(username, form.name);
    const conn = new Connection(url);
    await conn.open();
    const client = new Client(conn, profile, null);
    client.password = form.password;
    const id = client.identity();
    const spk = profile.spks[0];
    try {
      const reply = await conn.request({
        type: 'Register',
        name: form.name,
        email: form.email,
        username,
        password: form.password,
        device: {
          identity_sig: id.public().signing,
          identity_dh: id.public().dh,
          signed_prekey: { id: spk.id, key: SignedPrekeyPair.fromSecretKey(spk.id, fromHex(spk.secret), id).publicKey, signature: fromHex(spk.signature) },
          one_time_prekeys: Object.entries(profile.opks).map(([k, s]) => ({ id: Number(k), key: new OneTimePrekeyPair(Number(k), fromHex(s)).publicKey })),
        },
      });
      if (reply.type !== 'TotpEnrollment') throw new Error(`unexpected reply ${reply.type}`);
      return { client, uri: reply.uri };
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  /**
   * Finishes enrollment with a code from the authenticator; returns the recovery codes (shown
   * once). The connection is then logged in and the keystore written.
   * @param {string} code
   */
  async confirmTotp(code) {
    const [done, session] = await this.conn.request({ type: 'ConfirmTotp', code: code.trim() }, 2);
    this.acceptSession(session);
    this.keystore = await Keystore.create(this.profile.username, /** @type {string} */ (this.password));
    this.password = undefined;
    await this.save();
    await this.afterLogin();
    return /** @type {string[]} */ (done.recovery_codes);
  }

  /** @param {any} session */
  acceptSession(session) {
    this.profile.token = toHex(session.token);
    this.profile.token_expires = Number(session.expires_at);
    this.loggedIn = true;
  }

  /**
   * Logs in: opens this browser's keystore with the password, then resumes the stored session
   * or asks the server (password, then a TOTP code: `needsCode`).
   * @param {string} url @param {string} username @param {string} password
   * @returns {Promise<{client: Client, needsCode: boolean}>}
   */
  static async login(url, username, password) {
    username = username.trim().toLowerCase();
    await holdTabLock(username);
    let keystore = null;
    let profile = null;
    if (await Keystore.exists(username)) {
      ({ keystore, profile } = await Keystore.open(username, password));
    }
    const conn = new Connection(url);
    await conn.open();
    const client = new Client(conn, profile ?? newProfile(username, username), keystore);
    client.password = password;
    client.newDevice = profile === null;
    if (profile && profile.token && profile.token_expires > now() + 60) {
      try {
        const s = await conn.request({ type: 'Resume', username, token: fromHex(profile.token) });
        client.acceptSession(s);
        client.password = undefined;
        await client.save();
        await client.afterLogin();
        return { client, needsCode: false };
      } catch (e) {
        if (!(e instanceof ServerError) || e.code !== ErrorCode.SESSION_EXPIRED) {
          conn.close();
          throw e;
        }
      }
    }
    try {
      const r = await conn.request({ type: 'Login', username, password });
      if (r.type !== 'TotpRequired') throw new Error(`unexpected reply ${r.type}`);
    } catch (e) {
      conn.close();
      throw e;
    }
    return { client, needsCode: true };
  }

  /** The second factor: a TOTP code, or a recovery code. @param {string} code */
  async submitCode(code) {
    code = code.trim();
    const isRecovery = /[a-z-]/i.test(code) && code.length > 8;
    let s;
    try {
      s = await this.conn.request(isRecovery ? { type: 'RecoveryCode', code } : { type: 'TotpCode', code });
    } catch (e) {
      // A refused second factor sends the server back to the start: ask again with the password
      // so the next code can be tried without retyping it.
      if (e instanceof ServerError && e.code === ErrorCode.AUTH_FAILED && this.password) {
        await this.conn.request({ type: 'Login', username: this.profile.username, password: this.password }).catch(() => {});
      }
      throw e;
    }
    this.acceptSession(s);
    if (this.newDevice) {
      // No keys for this account in this browser: a new device with new keys. Contacts will be
      // warned that our identity key changed.
      await this.publishNewDevice();
      this.keystore = await Keystore.create(this.profile.username, /** @type {string} */ (this.password));
      this.newDevice = false;
      this.notice('This browser is a new device for your account: new keys were made and published. Your contacts will see that your safety number changed.');
    }
    this.password = undefined;
    await this.save();
    await this.afterLogin();
  }

  async publishNewDevice() {
    const id = this.identity();
    await this.conn.request({ type: 'PublishIdentity', identity_sig: id.public().signing, identity_dh: id.public().dh });
    const spk = this.profile.spks[0];
    await this.conn.request({ type: 'PublishSignedPrekey', prekey: { id: spk.id, key: SignedPrekeyPair.fromSecretKey(spk.id, fromHex(spk.secret), id).publicKey, signature: fromHex(spk.signature) } });
    await this.conn.request({ type: 'UploadPrekeys', prekeys: Object.entries(this.profile.opks).map(([k, s]) => ({ id: Number(k), key: new OneTimePrekeyPair(Number(k), fromHex(s)).publicKey })) });
  }

  /** After any login: learn our rooms from the server. */
  async afterLogin() {
    this.changed();
    await this.serial(async () => {
      try {
        const r = await this.conn.request({ type: 'ListRooms' });
        const names = /** @type {string[]} */ (r.rooms);
        for (const name of Object.keys(this.profile.rooms)) if (!names.includes(name)) delete this.profile.rooms[name];
        for (const name of names) if (!this.profile.rooms[name]) this.roomsToSync.push(name);
        await this.save();
      } catch (e) {
        this.notice(`could not list rooms: ${/** @type {Error} */ (e).message}`);
      }
      await this.runFollowUps();
    });
    this.changed();
  }

  async reconnect() {
    if (this.closing || this.conn.isOpen || !this.profile.token) return;
    try {
      await this.conn.open();
      const s = await this.conn.request({ type: 'Resume', username: this.profile.username, token: fromHex(this.profile.token) });
      this.acceptSession(s);
      await this.afterLogin();
    } catch (e) {
      if (e instanceof ServerError && e.code === ErrorCode.SESSION_EXPIRED) {
        this.profile.token = null;
        await this.save();
        this.dispatchEvent(new Event('expired'));
      }
    }
  }

  async logout() {
    this.closing = true;
    try {
      await this.conn.request({ type: 'Logout' });
    } catch {
      // Logging out locally still forgets the token.
    }
    this.profile.token = null;
    await this.save();
    this.conn.close();
    releaseTabLock(this.profile.username);
  }

  // ---- contacts and trust ----

  /**
   * Records `identity` for `user`: trusted on first use; a different key marks the contact
   * changed (sending blocked until verified).
   * @param {string} user @param {{signing: Uint8Array, dh: Uint8Array}} identity
   * @returns {boolean} whether the key is the one we knew (or new)
   */
  observeIdentity(user, identity) {
    const c = this.profile.contacts[user];
    const sig = toHex(identity.signing);
    const dh = toHex(identity.dh);
    if (!c) {
      this.profile.contacts[user] = { identity_sig: sig, identity_dh: dh, verified: false, key_changed: false, session: null, previous_session: null };
      return true;
    }
    if (c.identity_sig === sig && c.identity_dh === dh) return true;
    c.identity_sig = sig;
    c.identity_dh = dh;
    c.verified = false;
    c.key_changed = true;
    c.session = null;
    c.previous_session = null;
    this.notice(`${user}'s safety number changed (a new device, or someone intercepting). Sending to ${user} waits until you verify.`);
    return false;
  }

  /** @param {string} user */
  contactIdentity(user) {
    const c = this.profile.contacts[user];
    return c ? { signing: fromHex(c.identity_sig), dh: fromHex(c.identity_dh) } : null;
  }

  /** The 60-digit safety number with `user`, or null before their key is known. @param {string} user */
  safetyNumber(user) {
    const theirs = this.contactIdentity(user);
    if (!theirs) return null;
    return safetyNumber(this.identity().public(), this.profile.username, theirs, user);
  }

  /** The numbers matched: trust the current key and unblock sending. @param {string} user */
  async markVerified(user) {
    await this.serial(async () => {
      const c = this.profile.contacts[user];
      if (!c) return;
      c.verified = true;
      c.key_changed = false;
      await this.save();
    });
    this.changed();
  }


  // ---- one-to-one ----

  /** Opens a conversation with `user` (checks the account exists and learns their key). @param {string} user */
  async startConversation(user) {
    user = user.replace(/^@/, '').trim().toLowerCase();
    if (user === this.profile.username) throw new Error('that is you');
    await this.serial(async () => {
      if (!this.profile.contacts[user]) await direct.fetchBundleForSession(this, user);
    });
    this.changed();
    return `@${user}`;
  }




  /**
   * Sends a text to `@user` or `#room`.
   * @param {string} conv @param {string} text
   */
  async sendText(conv, text) {
    if (!text.trim()) return;
    await this.serial(async () => {
      const id = randomU64();
      const at = now();
      const content = /** @type {const} */ ({ type: 'Text', id, sent_at: BigInt(at), text });
      const serverId = conv.startsWith('#') ? await rooms.sendToRoom(this, conv.slice(1), content) : await direct.sendContentTo(this, conv.slice(1), content);
      this.pushHistory({ conv, from: this.profile.username, text, at, id: String(id), server_id: serverId, outgoing: true, state: 'sent', unread: false });
      await this.save();
    });
    this.changed();
  }

  /** @param {Entry} e */
  pushHistory(e) {
    this.profile.history.push(e);
    if (this.profile.history.length > HISTORY_LIMIT) this.profile.history.shift();
  }

  /** Whether a text id from `from` is new (and remember it). @param {string} from @param {bigint} id */
  noteMessage(from, id) {
    const key = `${from}:${id}`;
    if (this.profile.seen.includes(key)) return false;
    this.profile.seen.push(key);
    if (this.profile.seen.length > 5000) this.profile.seen.shift();
    return true;
  }




  // ---- rooms ----









  /** @param {string} name */
  async createRoom(name) {
    name = name.replace(/^#/, '').trim().toLowerCase();
    await this.serial(async () => {
      await this.conn.request({ type: 'CreateRoom', room: name });
      const room = Room.create(roomIdForName(name), this.identity().public().signing, 0);
      rooms.storeRoom(this, name, room, { state: null, members: [this.profile.username], admin: this.profile.username, key_sent: {} });
      await this.save();
    });
    this.changed();
    return `#${name}`;
  }

  /** @param {string} name @param {string} user */
  async invite(name, user) {
    user = user.replace(/^@/, '').trim().toLowerCase();
    await this.serial(async () => {
      await this.conn.request({ type: 'Invite', room: name, username: user });
    });
    this.changed();
  }

  /** @param {string} name */
  async leave(name) {
    await this.serial(async () => {
      await this.conn.request({ type: 'Leave', room: name });
      delete this.profile.rooms[name];
      await this.save();
    });
    this.changed();
  }

  /** @param {string} name @param {string} user */
  async remove(name, user) {
    await this.serial(async () => {
      await this.conn.request({ type: 'Remove', room: name, username: user });
    });
    this.changed();
  }

  // ---- what the server pushes ----

  /** @param {any} m */
  handlePush(m) {
    if (m.type === 'Deliver') {
      this.serial(() => this.receive(m)).catch((e) => console.warn('message handling failed', e)).finally(() => this.changed());
    } else if (m.type === 'Delivered') {
      this.serial(async () => {
        const sid = String(m.server_id);
        for (const e of this.profile.history) if (e.outgoing && e.server_id === sid) e.state = 'delivered';
        await this.save();
      }).finally(() => this.changed());
    } else if (m.type === 'RoomChanged') {
      this.serial(async () => {
        const what = { Joined: 'joined', Left: 'left', Removed: 'was removed from' }[/** @type {'Joined'} */ (m.change)];
        this.notice(`${m.username} ${what} #${m.room}`);
        if (m.username === this.profile.username && m.change !== 'Joined') {
          delete this.profile.rooms[m.room];
          await this.save();
          return;
        }
        try {
          await rooms.syncRoom(this, m.room);
        } catch (e) {
          this.notice(`#${m.room}: ${/** @type {Error} */ (e).message}`);
        }
      }).finally(() => this.changed());
    } else if (m.type === 'PrekeysLow') {
      this.serial(() => this.refillPrekeys()).catch(() => {});
    }
  }

  async refillPrekeys() {
    /** @type {{id: number, key: Uint8Array}[]} */
    const batch = [];
    for (let i = 0; i < INITIAL_PREKEYS; i++) {
      const id = this.profile.next_opk_id++;
      const k = OneTimePrekeyPair.generate(id);
      this.profile.opks[id] = toHex(k.secret);
      batch.push({ id, key: k.publicKey });
    }
    await this.save();
    await this.conn.request({ type: 'UploadPrekeys', prekeys: batch });
  }

  /** One delivered message: decrypt, record, save, then acknowledge. @param {any} m */
  async receive(m) {
    const sid = String(m.server_id);
    if (!this.profile.processed.includes(sid)) {
      const at = Number(m.sent_at);
      if (m.room === null) await direct.receiveDirect(this, m.from, m.body, at, sid);
      else rooms.receiveRoom(this, m.room, m.from, m.body, at, sid);
      this.profile.processed.push(sid);
      if (this.profile.processed.length > 5000) this.profile.processed.shift();
      await this.save();
    }
    this.conn.send({ type: 'Ack', server_id: m.server_id });
    await this.runFollowUps();
  }

  /** Room keys owed and session resets owed, after the message that caused them. */
  async runFollowUps() {
    while (this.roomsToSync.length) {
      const name = /** @type {string} */ (this.roomsToSync.shift());
      try {
        await rooms.syncRoom(this, name);
      } catch (e) {
        this.notice(`#${name}: ${/** @type {Error} */ (e).message}`);
      }
    }
    while (this.resets.length) {
      const user = /** @type {string} */ (this.resets.shift());
      try {
        await direct.sendContentTo(this, user, { type: 'SessionReset' });
      } catch (e) {
        this.notice(`could not reset the session with ${user}: ${/** @type {Error} */ (e).message}`);
      }
    }
    await this.save();
  }

  // ---- views for the UI ----

  /** Conversations, most recent first, with unread counts. */
  conversations() {
    /** @type {Map<string, {conv: string, last: number, unread: number}>} */
    const map = new Map();
    for (const c of Object.keys(this.profile.contacts)) map.set(`@${c}`, { conv: `@${c}`, last: 0, unread: 0 });
    for (const r of Object.keys(this.profile.rooms)) map.set(`#${r}`, { conv: `#${r}`, last: 0, unread: 0 });
    for (const e of this.profile.history) {
      const x = map.get(e.conv) ?? { conv: e.conv, last: 0, unread: 0 };
      x.last = Math.max(x.last, e.at);
      if (e.unread) x.unread++;
      map.set(e.conv, x);
    }
    return [...map.values()].sort((a, b) => b.last - a.last || a.conv.localeCompare(b.conv));
  }

  /** @param {string} conv */
  messages(conv) {
    return this.profile.history.filter((e) => e.conv === conv);
  }

  /** @param {string} conv */
  async markRead(conv) {
    let any = false;
    for (const e of this.profile.history) if (e.conv === conv && e.unread) {
      e.unread = false;
      any = true;
    }
    if (any) await this.serial(() => this.save());
  }
}

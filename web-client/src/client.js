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
 * sent, so a reload never reuses a key. A save writes the profile and only the history entries
 * that changed (keystore.js keeps one encrypted record per entry).
 *
 * Texts go through an outbox: each is recorded as `waiting` first, sent when the connection is
 * up (at once, or after a reconnect or the next login), and only then marked `sent`. A text that
 * cannot be sent at all (too long, a room we left, a safety number to verify) is refused before
 * it is recorded, so the interface can hand it back to the user.
 */
import { fromHex, randomU64, toHex, wipe } from './bytes.js';
import { Connection, ServerError } from './connection.js';
import * as direct from './direct.js';
import { IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair } from './keys.js';
import { KemPrekeyPair } from './pqxdh.js';
import { ErrorCode, MAX_KEM_PREKEYS_PER_UPLOAD } from './message.js';
import { MAX_BODY } from './frames.js';
import { Room, roomIdForName } from './room.js';
import * as rooms from './rooms.js';
import { History } from './history.js';
import * as outbox from './outbox.js';
import { safetyNumber } from './fingerprint.js';
import { Keystore } from './keystore.js';
import { checkRoomName, foldUsername, roomNameFrom, usernameFrom } from './names.js';
import { recoveryCodesLeft } from './account.js';
import { LinkError, LinkKeyPair, sealLink, signDevicePrekey } from './devices.js';
import { LinkStateError, linkCodeText, linkStateBytes, parseLinkCode, parseLinkState } from './link.js';

export { ServerError } from './connection.js';
export { KeyChangedError } from './direct.js';
export { roomNameFrom, usernameFrom } from './names.js';

const INITIAL_PREKEYS = 50;
/**
 * One-time KEM prekeys (PQXDH) published with the last-resort one and topped up to on
 * `KemPrekeysLow` (the CLI's figure; each is 1,184 bytes on the server, at most
 * `MAX_KEM_PREKEYS_PER_UPLOAD` go in one upload).
 */
export const KEM_PREKEY_BATCH = 20;
/** A signed prekey is replaced after a week (the CLI's figure). */
export const SIGNED_PREKEY_LIFETIME = 7 * 24 * 3600;
/** Room for the envelope around a text (prekey header, ratchet header, tag, room signature). */
const ENVELOPE_ROOM = 512;
/** The longest text, in UTF-8 bytes, that fits in one message body. */
export const MAX_TEXT_BYTES = MAX_BODY - ENVELOPE_ROOM;

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

/**
 * What this browser calls itself in the account's device list: "<browser> on <system>" from the
 * user agent (the `NameDevice` rule: at most 64 characters, no control characters).
 * @param {string} [ua]
 */
export function browserDeviceName(ua = typeof navigator === 'undefined' ? '' : navigator.userAgent) {
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chromium\//.test(ua) ? 'Chromium'
    : /Chrome\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'A browser';
  const system = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS X/.test(ua) ? 'macOS'
    : /Windows/.test(ua) ? 'Windows' : /Linux/.test(ua) ? 'Linux' : '';
  return system ? `${browser} on ${system}` : browser;
}

/** The WebSocket URL of the page's own server. */
export function defaultServerUrl() {
  return `wss://${location.host}/ws`;
}

/**
 * One line of a conversation. `kind` is absent for a text and `event` for a membership change;
 * `state` is `waiting` | `sent` | `delivered` | `failed` for ours, `synced` for ours sent from
 * another of our devices, `received` | `undecryptable` for theirs, `event` for events; `seq`
 * orders entries and names their record in the keystore. Our direct texts record how many of
 * the recipient's devices they were encrypted for (`devices`) and which acknowledged them
 * (`delivered_to`, from `Delivered`); both are absent in entries written before.
 * @typedef {{conv: string, from: string, text: string, at: number, id: string, server_id: string | null,
 *   outgoing: boolean, state: string, unread: boolean, seq?: number, kind?: string, error?: string,
 *   devices?: number, delivered_to?: number[]}} Entry
 * A contact: `devices` holds our sessions with each of their devices, by device id (absent in
 * keystores written before devices); `session` / `previous_session` are sessions from before
 * device ids, with whichever one device they had (tried for any of their devices, moved to the
 * one they work with).
 * @typedef {{identity_sig: string, identity_dh: string, verified: boolean, key_changed: boolean,
 *   session: any, previous_session: any, devices?: Record<string, import('./direct.js').DeviceSessions>,
 *   base_keys?: string[]}} Contact
 * A room key or room message held until its sender's changed key is verified; `device` is the
 * sending device (absent in keystores written before room sender ids: 0, which no device has,
 * so such an item is refused when it is released).
 * @typedef {{kind: 'key' | 'message', from: string, device?: number, room: string, bytes: string, at?: number, sid?: string}} Held
 */

/** The most room keys and messages held for unverified contacts (the oldest go first). */
export const MAX_HELD = 500;

/**
 * A new signed prekey with id `id`, signed by `identity` for `device` ("Sealroom SPK v2",
 * PROTOCOL.md §4.6), or v1 while this browser's device id is not known: the keystore record
 * and what `PublishSignedPrekey` sends.
 * @param {IdentityKeyPair} identity @param {number} id @param {number | null} device
 */
function makeSignedPrekey(identity, id, device) {
  const spk = SignedPrekeyPair.generate(id, identity);
  const signature = device === null ? spk.signature : signDevicePrekey(identity, device, spk.publicKey);
  return {
    record: { id, secret: toHex(spk.secret), signature: toHex(signature) },
    wire: { id, key: spk.publicKey, signature },
  };
}

/**
 * A fresh profile with new device keys; `device` is its device id when known (registering:
 * an account's first device is device 1), and its signed prekey is then signed for it. A
 * linked device passes the account's `identity` (from the link message) instead of a new one.
 * @param {string} username @param {string} name @param {number | null} [device]
 * @param {IdentityKeyPair} [identity]
 */
function newProfile(username, name, device = null, identity = IdentityKeyPair.generate()) {
  const spk = makeSignedPrekey(identity, 1, device).record;
  /** @type {Record<string, string>} */
  const opks = {};
  for (let id = 1; id <= INITIAL_PREKEYS; id++) opks[id] = toHex(OneTimePrekeyPair.generate(id).secret);
  return {
    v: 1,
    username,
    name,
    identity: { sig: toHex(identity.signingSecret), dh: toHex(identity.dhSecret) },
    spks: [spk],
    /** this browser's device id in the account (PROTOCOL.md §6 **Devices**); null until learned (absent in keystores written before devices) */
    device_id: /** @type {number | null} */ (device),
    /** the device the current signed prekey (`spks[0]`) is signed for (v2); null for a v1 signature */
    spk_device: /** @type {number | null} */ (device),
    /** when the current signed prekey (`spks[0]`) was made, Unix seconds */
    spk_at: Math.floor(Date.now() / 1000),
    opks,
    next_opk_id: INITIAL_PREKEYS + 1,
    /**
     * KEM prekeys (PQXDH, PROTOCOL.md §4.8), made and uploaded once the device id is known
     * (`ensureKemPrekeys`): the last-resort ones, the newest first (the one before stays for
     * first messages still in flight), as id and seed `d || z` (hex) …
     * @type {{id: number, seed: string}[]}
     */
    kem_last_resort: [],
    /** @type {Record<string, string>} … and the one-time ones: id → seed (hex), deleted once used */
    kem_one_time: {},
    next_kem_id: 1,
    /** the device the published KEM prekeys are signed for; null until they are uploaded (absent in keystores written before PQXDH) */
    kem_device: /** @type {number | null} */ (null),
    /** @type {Record<string, Contact>} */
    contacts: {},
    /** @type {Record<string, import('./rooms.js').RoomEntry>} */
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
    next_seq: 0,
    /** @type {Record<string, number>} conversations opened by hand (shown before their first message), and when */
    chats: {},
    /** @type {Record<string, string>} rooms we are no longer in, and why (`left` | `removed`) */
    gone_rooms: {},
    /** @type {Record<string, {from: string, roster: string}>} rosters sent with an invitation (hex), used when we accept (PROTOCOL.md §4.7 step 2) */
    invite_rosters: {},
    /** @type {Held[]} room keys and room messages from contacts whose key changed, until verified */
    held: [],
  };
}

/** @typedef {ReturnType<typeof newProfile>} Profile */

/**
 * A KEM prekey's public form as `UploadKemPrekeys` carries it.
 * @param {import('./pqxdh.js').KemPrekeyPublic} k
 */
function kemWire(k) {
  return { id: k.id, key: k.public, signature: k.signature };
}

/**
 * A fresh profile with new keys, for tests that drive a `Client` without a browser; with
 * `device`, it is that device of its account (its signed prekey signed for it).
 * @param {string} username @param {number | null} [device]
 */
export function newProfileForTests(username, device = null) {
  return newProfile(username, username, device);
}

/**
 * The message that logs in: a browser that knows its device id logs in as that device (its own
 * queue; `NOT_FOUND` once revoked); one from before devices, or starting over, as the
 * account's primary device.
 * @param {string} username @param {string} password @param {number | null | undefined} device
 */
function loginMessage(username, password, device) {
  return typeof device === 'number' ? { type: 'LoginDevice', username, password, device } : { type: 'Login', username, password };
}

/** Whether a typed second factor is a recovery code (letters or `-`, longer than a TOTP code). @param {string} code */
function isRecoveryCode(code) {
  return /[a-z-]/i.test(code) && code.length > 8;
}

/** `TotpCode` or `RecoveryCode` for what was typed (trimmed). @param {string} code */
function secondFactorMessage(code) {
  return isRecoveryCode(code) ? { type: 'RecoveryCode', code } : { type: 'TotpCode', code };
}

/**
 * The server no longer counts this browser's device as one of the account's (revoked, or the
 * account started over elsewhere). The keys kept here still open: the browser can be linked
 * again from a device of the account (`DeviceLinking`, with `previous`).
 */
export class DeviceRevokedError extends Error {
  /** @param {string} user */
  constructor(user) {
    super(`This browser is no longer one of ${user}’s devices: it was revoked, or the account started over elsewhere. Link it again from a device that is (the messages kept here stay).`);
    this.name = 'DeviceRevokedError';
    this.username = user;
  }
}

/** The safety number a person compared is not the current one: their key changed meanwhile. */
export class SafetyNumberChangedError extends Error {
  /** @param {string} user */
  constructor(user) {
    super(`${user}'s key changed while you were comparing: compare the new safety number.`);
    this.name = 'SafetyNumberChangedError';
  }
}

/** The user chose not to start over in a browser holding no keys for the account. */
export class StartOverDeclinedError extends Error {
  /** @param {string} user */
  constructor(user) {
    super(`Nothing changed: this browser did not make a new identity for ${user}. To keep your identity, link this browser from a device that holds it (Use an existing account); or log in here again and choose to start over.`);
    this.name = 'StartOverDeclinedError';
  }
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
    /**
     * Invitations waiting for our answer: room → who invited us. The server holds them
     * (`ListInvitations` after every login); a live `RoomChanged { Invited }` adds one.
     * @type {Map<string, string>}
     */
    this.invitations = new Map();
    /**
     * Contacts whose identity and devices this connection checked (`FetchDevices`) before the
     * first encryption to them: user → their device ids. Forgotten when the connection drops.
     * @type {Map<string, number[]>}
     */
    this.devicesChecked = new Map();
    conn.onPush = (m) => this.handlePush(m);
    conn.onStatus = (open) => {
      this.online = open;
      if (!open) {
        this.loggedIn = false;
        this.devicesChecked.clear();
      }
      this.changed();
      if (!open && this.profile.token && !this.closing) setTimeout(() => this.reconnect(), 2000);
    };
    this.closing = false;
    /** @type {string | undefined} held only until the keystore is made, then dropped */
    this.password = undefined;
    this.newDevice = false;
    /**
     * A browser replacing the account's identity, until its `PublishIdentity` is answered:
     * direct deliveries until then were sealed for the old identity (host-client's
     * `forget_direct_deliveries`).
     */
    this.replacingIdentity = false;
    /** @type {Promise<void>} saves, one after the other, so an older state never lands last */
    this.saving = Promise.resolve();
    profile.chats ??= {};
    profile.gone_rooms ??= {};
    profile.invite_rosters ??= {};
    profile.device_id ??= null;
    profile.spk_device ??= null;
    profile.kem_last_resort ??= [];
    profile.kem_one_time ??= {};
    profile.next_kem_id ??= 1;
    profile.kem_device ??= null;
    this.history = new History(profile);
  }

  changed() {
    this.dispatchEvent(new Event('change'));
  }

  /** Whether requests can go out now. */
  canSend() {
    return this.conn.isOpen && this.loggedIn;
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

  /** Writes the profile and the entries changed since the last save (one at a time, in order). */
  save() {
    const run = this.saving.then(async () => {
      if (!this.keystore) return;
      const changes = this.history.takeChanges();
      try {
        await this.keystore.save(this.profile, { put: /** @type {{seq: number}[]} */ (changes.put), removed: changes.removed });
      } catch (e) {
        this.history.restoreChanges(changes);
        throw e;
      }
    });
    this.saving = run.catch(() => {});
    return run;
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
    const username = foldUsername(form.username);
    await holdTabLock(username);
    // An account's first device is device 1: its signed prekey is signed for it (v2).
    const profile = newProfile(username, form.name, 1);
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
    await this.nameDevice();
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
    username = foldUsername(username);
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
    client.replacingIdentity = client.newDevice;
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
      const r = await conn.request(loginMessage(username, password, profile?.device_id));
      if (r.type !== 'TotpRequired') throw new Error(`unexpected reply ${r.type}`);
    } catch (e) {
      conn.close();
      throw e;
    }
    return { client, needsCode: true };
  }

  /**
   * The second factor: a TOTP code, or a recovery code. In a browser holding no keys for the
   * account, the login then starts the account over with a new identity — only if
   * `confirmStartOver` (asked once the server accepted the code) resolves true; otherwise the
   * session is logged out, nothing is published, and `StartOverDeclinedError` is thrown.
   * @param {string} code
   * @param {() => Promise<boolean>} [confirmStartOver]
   */
  async submitCode(code, confirmStartOver = async () => false) {
    code = code.trim();
    const isRecovery = isRecoveryCode(code);
    let s;
    try {
      s = await this.conn.request(secondFactorMessage(code));
    } catch (e) {
      // A refused second factor sends the server back to the start: ask again with the password
      // so the next code can be tried without retyping it.
      if (e instanceof ServerError && e.code === ErrorCode.AUTH_FAILED && this.password) {
        await this.conn.request(loginMessage(this.profile.username, this.password, this.newDevice ? null : this.profile.device_id)).catch(() => {});
      }
      // This browser's device is no longer one of the account's (revoked, or the account
      // started over elsewhere): it can be linked again from a device that is.
      if (e instanceof ServerError && e.code === ErrorCode.NOT_FOUND && !this.newDevice && typeof this.profile.device_id === 'number') {
        throw new DeviceRevokedError(this.profile.username);
      }
      throw e;
    }
    this.acceptSession(s);
    if (this.newDevice && !(await confirmStartOver())) {
      // Nothing was published: the account's identity and devices are as they were.
      await this.conn.request({ type: 'Logout' }).catch(() => {});
      this.profile.token = null;
      this.loggedIn = false;
      this.closing = true;
      this.conn.close();
      releaseTabLock(this.profile.username);
      throw new StartOverDeclinedError(this.profile.username);
    }
    if (this.newDevice) {
      // No keys for this account in this browser, and the user chose to start over: a new
      // identity. The server logs the account's other devices out; contacts are warned that
      // our identity key changed.
      await this.publishNewDevice();
      this.keystore = await Keystore.create(this.profile.username, /** @type {string} */ (this.password));
      this.newDevice = false;
      this.notice('This browser is a new device for your account: new keys were made and published. Your contacts will see that your safety number changed.');
    }
    this.password = undefined;
    await this.save();
    await this.afterLogin();
    if (isRecovery) {
      // A recovery code was used up: say how many are left, every time.
      const left = await recoveryCodesLeft(this).catch(() => null);
      if (left !== null) {
        this.notice(`${left} recovery code${left === 1 ? '' : 's'} left.${left <= 3 ? ' Make new ones in Account settings; if your authenticator is lost, enroll a new one there.' : ''}`);
      }
    }
  }

  /** Names this device in the account's list (`NameDevice`); a refusal is only noted. */
  async nameDevice() {
    await this.conn.request({ type: 'NameDevice', name: browserDeviceName() })
      .catch((e) => this.notice(`This browser could not name itself in your device list: ${e.message}`));
  }

  /**
   * Revokes another device of the account (`RevokeDevice`): the server logs it out at once,
   * deletes its keys and the messages waiting for it, and contacts stop encrypting to it.
   * @param {number} device
   */
  async revokeDevice(device) {
    if (device === this.profile.device_id) throw new Error('that is this browser: log out instead');
    await this.conn.request({ type: 'RevokeDevice', device });
  }

  /**
   * Hands this account to a device being linked (PROTOCOL.md §4.6; `sealroom devices add`):
   * reads the code it shows (`LinkCodeError` says what is wrong with it), seals the link state
   * (the identity and the contacts with their trust) to it, and leaves it on the server for
   * that device (`SendLink`). The server cannot open it. Returns how many contacts went.
   * @param {string} text the code as typed or pasted
   */
  async linkDevice(text) {
    const code = parseLinkCode(text);
    const state = linkStateBytes(this.profile);
    let message;
    try {
      message = sealLink(code, state);
    } finally {
      wipe(state);
    }
    if (message.length > MAX_BODY) throw new Error('This account’s contacts do not fit in one link message.');
    await this.conn.request({ type: 'SendLink', link_id: code.linkId(), message });
    return { contacts: Object.keys(this.profile.contacts).filter((name) => name !== this.profile.username).length };
  }

  /**
   * Closes the connection without logging out (a login that goes no further). With `keepLock`,
   * this tab keeps the account's lock for the flow that takes over (linking it again): a lock
   * released and asked for again at once might not be granted yet.
   * @param {{keepLock?: boolean}} [opts]
   */
  abandon({ keepLock = false } = {}) {
    this.closing = true;
    this.conn.close();
    if (!keepLock) releaseTabLock(this.profile.username);
  }

  /**
   * The account's devices, the most recent first (`ListDevices`).
   * @returns {Promise<{current: number, devices: {device_id: number, name: string, added_at: number, last_seen: number, revoked_at: number | null}[]}>}
   */
  async listDevices() {
    const r = await this.conn.request({ type: 'ListDevices' });
    return {
      current: r.current,
      devices: r.devices.map((/** @type {any} */ d) => ({
        device_id: d.device_id, name: d.name, added_at: Number(d.added_at), last_seen: Number(d.last_seen),
        revoked_at: d.revoked_at === null ? null : Number(d.revoked_at),
      })),
    };
  }

  async publishNewDevice() {
    const id = this.identity();
    await this.conn.request({ type: 'PublishIdentity', identity_sig: id.public().signing, identity_dh: id.public().dh });
    // From here on a direct message can only be for the new identity (nobody can encrypt to it
    // before its signed prekey is published, below): handled, and acknowledged, as usual.
    this.replacingIdentity = false;
    // This session is the account's one new device now: learn its id, sign the prekey for it.
    this.profile.device_id = null;
    await this.ensureDevice();
    await this.conn.request({ type: 'UploadPrekeys', prekeys: Object.entries(this.profile.opks).map(([k, s]) => ({ id: Number(k), key: new OneTimePrekeyPair(Number(k), fromHex(s)).publicKey })) });
    // Without KEM prekeys nobody can start a session with this device (no classical fallback).
    await this.ensureKemPrekeys();
    await this.nameDevice();
  }

  /**
   * Makes a new signed prekey (signed for this device when its id is known, else v1) and
   * publishes it: saved first, so the secret of a published key is never lost; the previous
   * one is kept for first messages still in flight.
   * @param {number} at Unix seconds
   */
  async publishNewSignedPrekey(at) {
    const p = this.profile;
    const spk = makeSignedPrekey(this.identity(), Math.max(...p.spks.map((k) => k.id)) + 1, p.device_id);
    p.spks = [spk.record, ...p.spks.slice(0, 1)];
    p.spk_at = at;
    p.spk_device = p.device_id;
    await this.save();
    await this.conn.request({ type: 'PublishSignedPrekey', prekey: spk.wire });
  }

  /**
   * Learns this browser's device id from the server (`ListDevices`) if the keystore does not
   * hold it (written before devices, or starting over), and makes sure the published signed
   * prekey is signed for it ("Sealroom SPK v2": contacts refuse a v1 one once the account has
   * two devices). host-client `ensure_device`.
   */
  async ensureDevice() {
    const p = this.profile;
    let device = p.device_id;
    if (typeof device !== 'number') {
      const r = await this.conn.request({ type: 'ListDevices' });
      if (r.type !== 'DeviceList') throw new Error(`unexpected reply ${r.type}`);
      device = /** @type {number} */ (r.current);
    }
    const known = p.device_id === device;
    p.device_id = device;
    if (p.spk_device === device) {
      if (!known) await this.save();
      return;
    }
    await this.publishNewSignedPrekey(now());
  }

  /** The next KEM prekey id (unique among this device's KEM prekeys; never 0). */
  takeKemId() {
    const id = this.profile.next_kem_id;
    this.profile.next_kem_id = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  /**
   * `count` new one-time KEM prekeys, kept in the profile (not yet saved); their public halves
   * signed for `device`, as `UploadKemPrekeys` carries them.
   * @param {number} device @param {number} count
   */
  makeKemOneTime(device, count) {
    const identity = this.identity();
    const out = [];
    for (let i = 0; i < count; i++) {
      const k = KemPrekeyPair.generate(this.takeKemId());
      this.profile.kem_one_time[k.id] = toHex(k.seed);
      out.push(kemWire(k.publicForDevice(device, identity)));
    }
    return out;
  }

  /**
   * Publishes this device's KEM prekeys (PQXDH, PROTOCOL.md §4.8) unless they already are, for
   * this device: a new last-resort one and `KEM_PREKEY_BATCH` one-time ones, signed for the
   * device id ("Sealroom KEM PK v1"). Without them no contact can start a session with this
   * device: there is no classical fallback. Saved before the upload, so the secret of a
   * published key is never lost; marked uploaded (`kem_device`) once the server took them.
   * Runs after registration (at the first login), after linking, after starting over, and at
   * every login until an upload went through (host-client `ensure_kem_prekeys`).
   */
  async ensureKemPrekeys() {
    const p = this.profile;
    const device = p.device_id;
    if (typeof device !== 'number') return;
    if (p.kem_device === device && p.kem_last_resort.length > 0) return;
    if (p.kem_device !== null && p.kem_device !== device) {
      // Signed for another device id (starting over gives a new one): of no use any more.
      p.kem_one_time = {};
      p.kem_last_resort = [];
    }
    // One-time keys held from an upload whose end this keystore never saw are kept: the
    // server may hand them out. The last-resort one before stays for first messages in flight.
    const last = KemPrekeyPair.generate(this.takeKemId());
    p.kem_last_resort = [{ id: last.id, seed: toHex(last.seed) }, ...p.kem_last_resort.slice(0, 1)];
    const lastWire = kemWire(last.publicForDevice(device, this.identity()));
    const oneTime = this.makeKemOneTime(device, KEM_PREKEY_BATCH);
    await this.save();
    const full = await this.uploadKemPrekeys({ type: 'UploadKemPrekeys', last_resort: lastWire, one_time: oneTime });
    if (full) {
      // The server still holds one-time KEM prekeys of ours: the last-resort one alone.
      await this.conn.request({ type: 'UploadKemPrekeys', last_resort: lastWire, one_time: [] });
    }
    p.kem_device = device;
    await this.save();
  }

  /**
   * Sends an `UploadKemPrekeys`; resolves true when the server holds as many one-time KEM
   * prekeys as it keeps (`QUOTA_FULL`).
   * @param {{type: 'UploadKemPrekeys', last_resort: any, one_time: any[]}} upload
   */
  async uploadKemPrekeys(upload) {
    try {
      await this.conn.request(upload);
      return false;
    } catch (e) {
      if (e instanceof ServerError && e.code === ErrorCode.QUOTA_FULL) return true;
      throw e;
    }
  }

  /**
   * On `KemPrekeysLow`: one-time KEM prekeys up to `KEM_PREKEY_BATCH` again (saved first); a
   * device whose KEM prekeys were never uploaded publishes them all. A refusal as full drops
   * the secrets of keys nobody can ever use.
   * @param {number} remaining what the server says it still holds
   */
  async refillKemPrekeys(remaining) {
    const p = this.profile;
    const device = p.device_id;
    if (typeof device !== 'number') return;
    if (p.kem_device !== device) {
      await this.ensureKemPrekeys();
      return;
    }
    const want = Math.min(KEM_PREKEY_BATCH - Math.min(remaining, KEM_PREKEY_BATCH), MAX_KEM_PREKEYS_PER_UPLOAD);
    if (want <= 0) return;
    const fresh = this.makeKemOneTime(device, want);
    await this.save();
    if (await this.uploadKemPrekeys({ type: 'UploadKemPrekeys', last_resort: null, one_time: fresh })) {
      for (const k of fresh) delete p.kem_one_time[k.id];
      await this.save();
    }
  }

  /**
   * The KEM prekey `id` names (a one-time one still held, or a last-resort one), or null.
   * @param {number} id
   * @returns {{pair: KemPrekeyPair, oneTime: boolean} | null}
   */
  kemPrekey(id) {
    const p = this.profile;
    const seed = Object.hasOwn(p.kem_one_time, String(id)) ? p.kem_one_time[id] : undefined;
    if (seed) return { pair: new KemPrekeyPair(id, fromHex(seed)), oneTime: true };
    const last = p.kem_last_resort.find((k) => k.id === id);
    return last ? { pair: new KemPrekeyPair(id, fromHex(last.seed)), oneTime: false } : null;
  }

  /**
   * Replaces the signed prekey when it is older than a week, as the CLI does (see
   * `publishNewSignedPrekey`). Returns whether it rotated.
   * @param {number} [at] Unix seconds
   */
  async rotateSignedPrekeyIfOld(at = now()) {
    const p = this.profile;
    if (p.spk_at !== undefined && at - p.spk_at <= SIGNED_PREKEY_LIFETIME) return false;
    await this.publishNewSignedPrekey(at);
    await this.rotateKemLastResort();
    return true;
  }

  /**
   * Replaces the published last-resort KEM prekey with a new one (with the signed prekey, as
   * the CLI does); the one before stays here for first messages still in flight. Nothing
   * happens while the KEM prekeys are not published for this device (`ensureKemPrekeys`).
   */
  async rotateKemLastResort() {
    const p = this.profile;
    const device = p.device_id;
    if (typeof device !== 'number' || p.kem_device !== device) return;
    const last = KemPrekeyPair.generate(this.takeKemId());
    p.kem_last_resort = [{ id: last.id, seed: toHex(last.seed) }, ...p.kem_last_resort.slice(0, 1)];
    await this.save();
    await this.conn.request({ type: 'UploadKemPrekeys', last_resort: kemWire(last.publicForDevice(device, this.identity())), one_time: [] });
  }

  /**
   * After any login: learn this browser's device id (and sign its prekey for it) if unknown;
   * learn our rooms from the server; rotate an old signed prekey.
   */
  async afterLogin() {
    this.changed();
    await this.serial(async () => {
      try {
        await this.ensureDevice();
      } catch (e) {
        this.notice(`could not learn this browser's device id or publish its signed prekey: ${/** @type {Error} */ (e).message}`);
      }
      try {
        await this.rotateSignedPrekeyIfOld();
      } catch (e) {
        this.notice(`could not publish a new signed prekey: ${/** @type {Error} */ (e).message}`);
      }
      try {
        await this.ensureKemPrekeys();
      } catch (e) {
        this.notice(`could not publish this browser's post-quantum (KEM) prekeys; nobody can start a conversation with it until they are: ${/** @type {Error} */ (e).message}`);
      }
      try {
        const r = await this.conn.request({ type: 'ListRooms' });
        const names = /** @type {string[]} */ (r.rooms);
        for (const name of Object.keys(this.profile.rooms)) if (!names.includes(name)) this.roomGone(name, 'removed');
        for (const name of names) {
          if (!this.profile.rooms[name]) this.roomsToSync.push(name);
          delete this.profile.gone_rooms[name];
        }
        await this.save();
      } catch (e) {
        this.notice(`could not list rooms: ${/** @type {Error} */ (e).message}`);
      }
      try {
        this.invitations = await rooms.listInvitations(this);
      } catch (e) {
        this.notice(`could not list invitations: ${/** @type {Error} */ (e).message}`);
      }
      await this.runFollowUps();
    });
    this.changed();
    await outbox.flush(this);
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

  /** Logs out and deletes this account's keys and history from this browser. */
  async forgetThisBrowser() {
    await this.logout();
    await this.queue;
    await this.saving;
    this.keystore = null;
    await Keystore.remove(this.profile.username);
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
    if (user === this.profile.username) {
      // Our own account (sessions with our other devices): its identity is the one this device
      // holds, never learned; kept verified, and never shown as a contact.
      const mine = this.identity().public();
      if (sig !== toHex(mine.signing) || dh !== toHex(mine.dh)) {
        throw new Error('the server lists another identity for your own account: it was started over on another device, and this device is no longer part of it');
      }
      this.profile.contacts[user] ??= { identity_sig: sig, identity_dh: dh, verified: true, key_changed: false, session: null, previous_session: null, devices: {} };
      return true;
    }
    if (!c) {
      this.profile.contacts[user] = { identity_sig: sig, identity_dh: dh, verified: false, key_changed: false, session: null, previous_session: null, devices: {} };
      return true;
    }
    if (c.identity_sig === sig && c.identity_dh === dh) return true;
    c.identity_sig = sig;
    c.identity_dh = dh;
    c.verified = false;
    c.key_changed = true;
    c.session = null;
    c.previous_session = null;
    c.devices = {};
    // The devices this connection checked were the old identity's: asked again before sending.
    this.devicesChecked.delete(user);
    // The key they hold now is not the one our room keys went to: each room hands ours again
    // (to the new key, once it is verified).
    for (const entry of Object.values(this.profile.rooms)) delete entry.key_sent[user];
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

  /**
   * Holds a room key or room message from `from` while their identity key changed and is not
   * verified: a server that substitutes a contact's key must not be able to hand us a sender
   * key, or room messages, in their name. Returns whether it was held.
   * @param {string} from @param {Held} item
   */
  holdIfKeyChanged(from, item) {
    if (!this.profile.contacts[from]?.key_changed) return false;
    const held = (this.profile.held ??= []);
    if (!held.some((h) => h.from === from && h.room === item.room)) {
      this.notice(`#${item.room}: ${item.kind === 'key' ? 'a room key' : 'messages'} from ${from} held until you compare ${from}'s new safety number`);
    }
    held.push(item);
    if (held.length > MAX_HELD) held.shift();
    return true;
  }

  /** After `user` is verified: their held room keys, then their held messages, in order. @param {string} user */
  async releaseHeld(user) {
    const mine = (this.profile.held ?? []).filter((h) => h.from === user);
    this.profile.held = (this.profile.held ?? []).filter((h) => h.from !== user);
    for (const h of mine.filter((x) => x.kind === 'key')) await rooms.receiveRoomKey(this, h.from, h.device ?? 0, h.room, fromHex(h.bytes));
    for (const h of mine.filter((x) => x.kind === 'message')) rooms.receiveRoom(this, h.room, h.from, h.device ?? 0, fromHex(h.bytes), h.at ?? 0, h.sid ?? '0');
  }

  /**
   * The numbers matched: trust the key they were computed from and unblock sending. `shown` is
   * the safety number the person compared; if the key changed since it was shown (a message
   * with a new key arrived meanwhile), nothing is marked and `SafetyNumberChangedError` says so.
   * @param {string} user @param {string} shown
   */
  async markVerified(user, shown) {
    await this.serial(async () => {
      const c = this.profile.contacts[user];
      if (!c) return;
      if (this.safetyNumber(user) !== shown) throw new SafetyNumberChangedError(user);
      c.verified = true;
      c.key_changed = false;
      await this.releaseHeld(user);
      await this.save();
      await this.runFollowUps();
    });
    this.changed();
  }

  /** Whether a conversation is closed to new texts, and why (null when one can write). @param {string} conv */
  closedReason(conv) {
    if (!conv.startsWith('#')) return null;
    const name = conv.slice(1);
    if (this.profile.rooms[name]) return null;
    const why = this.profile.gone_rooms[name];
    return why === 'left' ? `You left #${name}.` : `You are no longer a member of #${name}.`;
  }


  // ---- one-to-one ----

  /** Opens a conversation with `user` (checks the account exists and learns their key). @param {string} user */
  async startConversation(user) {
    user = usernameFrom(user);
    if (user === this.profile.username) throw new Error('that is you');
    await this.serial(async () => {
      // Learns their identity (and that the account exists) without using up a prekey.
      if (!this.profile.contacts[user]) await direct.checkDevices(this, user);
      this.profile.chats[`@${user}`] ??= now();
      await this.save();
    });
    this.changed();
    return `@${user}`;
  }

  /**
   * Sends a text to `@user` or `#room` through the outbox: recorded as `waiting`, sent now if
   * the connection is up, else when it returns. Throws, recording nothing, when the text cannot
   * be sent (too long, a room we are not in, a changed safety number) or when the server
   * refuses it now; the caller keeps the text.
   * @param {string} conv @param {string} text
   * @returns {Promise<Entry | undefined>}
   */
  async sendText(conv, text) {
    if (!text.trim()) return undefined;
    const size = new TextEncoder().encode(text).length;
    if (size > MAX_TEXT_BYTES) throw new Error(`the message is too long (${size.toLocaleString('en')} bytes; at most ${MAX_TEXT_BYTES.toLocaleString('en')})`);
    const closed = this.closedReason(conv);
    if (closed) throw new Error(closed);
    if (conv.startsWith('@') && this.profile.contacts[conv.slice(1)]?.key_changed) throw new direct.KeyChangedError(conv.slice(1));
    /** @type {Entry} */
    const entry = { conv, from: this.profile.username, text, at: now(), id: String(randomU64()), server_id: null, outgoing: true, state: 'waiting', unread: false };
    const earlier = this.history.waiting().length > 0;
    const sendNow = !earlier && this.canSend();
    try {
      await this.serial(async () => {
        this.pushHistory(entry);
        this.changed();
        // Sending saves the entry with the advanced session before anything goes out; a text
        // that does not go (offline, or the connection lost) is saved here, waiting.
        const went = sendNow && (await outbox.deliver(this, entry, true));
        if (!went) await this.save();
      });
    } finally {
      this.changed();
    }
    if (!sendNow && this.canSend()) await outbox.flush(this);
    return entry;
  }

  /** Puts a failed text back in the outbox and tries again. @param {Entry} entry */
  async retry(entry) {
    if (entry.state !== 'failed') return;
    entry.state = 'waiting';
    delete entry.error;
    this.history.touch(entry);
    await this.serial(() => this.save());
    this.changed();
    await outbox.flush(this);
  }

  /** Our texts still waiting to go, oldest first. */
  outbox() {
    return this.history.waiting();
  }

  /** Sends what waits in the outbox (after a reconnect, a login, a verification). */
  flushOutbox() {
    return outbox.flush(this);
  }

  /** @param {Entry} e */
  pushHistory(e) {
    this.history.push(e);
    if (!e.outgoing && e.state !== 'event') this.dispatchEvent(new CustomEvent('incoming', { detail: e }));
  }

  /** Records a membership change in the room's timeline. @param {string} room @param {string} text */
  roomEvent(room, text) {
    this.pushHistory({ conv: `#${room}`, from: '', text, at: now(), id: '0', server_id: null, outgoing: false, state: 'event', unread: false, kind: 'event' });
  }

  /** We are out of a room: keep its history, close it to new texts. @param {string} name @param {'left' | 'removed'} why */
  roomGone(name, why) {
    delete this.profile.rooms[name];
    this.profile.gone_rooms[name] = why;
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

  /**
   * Creates a room and publishes its first signed roster (us alone, as admin: §4.7 rule 1). If
   * that publish fails, the room waits and the next sync tries again.
   * @param {string} name
   */
  async createRoom(name) {
    name = roomNameFrom(name);
    await this.serial(async () => {
      const sender = rooms.ownSenderId(this);
      await this.conn.request({ type: 'CreateRoom', room: name });
      const room = Room.create(roomIdForName(name), sender, 0);
      rooms.storeRoom(this, name, room, { state: null, members: [this.profile.username], admin: this.profile.username, admins: [this.profile.username], key_sent: {}, invited: [] });
      delete this.profile.gone_rooms[name];
      this.profile.chats[`#${name}`] = now();
      this.roomEvent(name, `You created #${name}`);
      await this.save();
      try {
        await rooms.publishFirst(this, name);
      } catch (e) {
        this.notice(`#${name}: could not publish the room's signed member list: ${/** @type {Error} */ (e).message}`);
      }
      await this.save();
    });
    this.changed();
    return `#${name}`;
  }

  /** Whether a room waits for its signed member list (we hold none, so nobody gets our key). @param {string} name */
  roomWaitsForRoster(name) {
    return !!this.profile.rooms[name] && !rooms.hasRoster(this, name);
  }

  /**
   * Invites `user` to a room we are an admin of. They are not a member until they accept and
   * we sign them into the room's roster (on their `Joined`); then the room keys are exchanged.
   * Returns the folded name.
   * @param {string} name @param {string} user
   */
  async invite(name, user) {
    user = usernameFrom(user);
    checkRoomName(name);
    // Our sender key would go to whatever key the server now gives for them: not before the
    // change is verified (the CLI refuses the same way, exit 7).
    if (this.profile.contacts[user]?.key_changed) throw new direct.KeyChangedError(user);
    await this.serial(async () => {
      await rooms.invite(this, name, user);
      this.roomEvent(name, `You invited ${user}; they join when they accept`);
      await this.save();
    });
    this.changed();
    return user;
  }

  /** The invitations waiting for us, by room name. */
  pendingInvitations() {
    return [...this.invitations].map(([room, from]) => ({ room, from })).sort((a, b) => a.room.localeCompare(b.room));
  }

  /**
   * Accepts the invitation to `name` (rooms.js `acceptInvite`); returns the room's conversation.
   * @param {string} name
   */
  async acceptInvite(name) {
    try {
      await this.serial(() => rooms.acceptInvite(this, name));
    } finally {
      this.changed();
    }
    return `#${name}`;
  }

  /** Declines the invitation to `name` (nobody is told). @param {string} name */
  async declineInvite(name) {
    try {
      await this.serial(() => rooms.declineInvite(this, name));
    } finally {
      this.changed();
    }
  }

  /**
   * Leaves a room: the next roster without us (the only member: `Leave`), §4.7 rule 7.
   * @param {string} name
   */
  async leave(name) {
    await this.serial(async () => {
      await rooms.leave(this, name);
      if (!this.profile.gone_rooms[name]) {
        this.roomGone(name, 'left');
        this.roomEvent(name, 'You left the room');
      }
      await this.save();
    });
    this.changed();
  }

  /**
   * Removes `user` from a room we are an admin of: the next roster without them (§4.7 rule 7).
   * @param {string} name @param {string} user
   */
  async remove(name, user) {
    try {
      await this.serial(async () => {
        await rooms.remove(this, name, user);
        await this.save();
      });
    } finally {
      this.changed();
    }
  }

  // ---- what the server pushes ----

  /** @param {any} m */
  handlePush(m) {
    if (m.type === 'Deliver' && m.room === null && this.replacingIdentity) {
      // Handed out with the login of a browser that is replacing the account's identity, before
      // the new one was published: sealed for the old one, unreadable here, and dropped from
      // the server's queue with it. Not shown, not answered, not acknowledged.
      return;
    }
    if (m.type === 'Deliver') {
      this.serial(() => this.receive(m)).catch((e) => console.warn('message handling failed', e)).finally(() => this.changed());
    } else if (m.type === 'Delivered') {
      this.serial(async () => {
        const sid = String(m.server_id);
        if (this.history.markDelivered(sid, Number(m.device ?? 0))) await this.save();
      }).finally(() => this.changed());
    } else if (m.type === 'RoomChanged' && m.change === 'Invited') {
      // An invitation, not a membership: nothing of the room is ours until we accept.
      const fresh = !this.invitations.has(m.room);
      this.invitations.set(m.room, m.username);
      if (fresh) this.dispatchEvent(new CustomEvent('invited', { detail: { room: m.room, from: m.username } }));
      this.changed();
    } else if (m.type === 'RoomChanged') {
      this.serial(async () => {
        // What the server says of others is no membership: the signed roster is, and its
        // changes are shown in the timeline as they are followed. Only our own joining and
        // leaving are told here.
        const mine = m.username === this.profile.username && m.change !== 'Roster';
        if (mine && m.change !== 'Joined') {
          if (!this.profile.gone_rooms[m.room]) {
            this.roomEvent(m.room, m.change === 'Left' ? 'You left the room' : 'You were removed from the room');
            this.roomGone(m.room, m.change === 'Left' ? 'left' : 'removed');
          }
          await this.save();
          return;
        }
        if (mine) {
          this.roomEvent(m.room, 'You joined the room');
          delete this.profile.gone_rooms[m.room];
          this.profile.chats[`#${m.room}`] ??= now();
        }
        if (!this.profile.rooms[m.room] && this.profile.gone_rooms[m.room]) return;
        try {
          await rooms.syncRoom(this, m.room);
        } catch (e) {
          this.notice(`#${m.room}: ${/** @type {Error} */ (e).message}`);
        }
        await this.runFollowUps();
      }).finally(() => this.changed());
    } else if (m.type === 'PrekeysLow') {
      this.serial(() => this.refillPrekeys()).catch(() => {});
    } else if (m.type === 'KemPrekeysLow') {
      this.serial(() => this.refillKemPrekeys(Number(m.remaining))).catch((e) => this.notice(`could not publish more post-quantum (KEM) prekeys: ${/** @type {Error} */ (e).message}`));
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
    try {
      await this.conn.request({ type: 'UploadPrekeys', prekeys: batch });
    } catch (e) {
      if (e instanceof ServerError && e.code === ErrorCode.QUOTA_FULL) {
        // The server keeps no more: secrets of keys nobody can ever use are dropped.
        for (const { id } of batch) delete this.profile.opks[id];
        await this.save();
        return;
      }
      throw e;
    }
  }

  /** One delivered message: decrypt, record, save, then acknowledge. @param {any} m */
  async receive(m) {
    const sid = String(m.server_id);
    if (!this.profile.processed.includes(sid)) {
      const at = Number(m.sent_at);
      if (m.room === null) await direct.receiveDirect(this, m.from, m.device, m.body, at, sid);
      else rooms.receiveRoom(this, m.room, m.from, m.device, m.body, at, sid);
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

  /**
   * Conversations, most recent activity first: chats opened by hand or with history (a room's
   * members are contacts, not chats), and our rooms; with the last entry and unread counts.
   */
  conversations() {
    /** @type {Map<string, {conv: string, last: number, seq: number, unread: number, lastEntry: Entry | null, active: boolean}>} */
    const map = new Map();
    const add = (/** @type {string} */ conv) => {
      let x = map.get(conv);
      if (!x) {
        x = { conv, last: this.profile.chats[conv] ?? 0, seq: -1, unread: 0, lastEntry: null, active: this.closedReason(conv) === null };
        map.set(conv, x);
      }
      return x;
    };
    for (const c of Object.keys(this.profile.chats)) add(c);
    for (const r of Object.keys(this.profile.rooms)) add(`#${r}`);
    for (const [conv, list] of this.history.byConv) {
      if (!list.length) continue;
      const x = add(conv);
      const lastEntry = list[list.length - 1];
      x.lastEntry = lastEntry;
      x.last = Math.max(x.last, lastEntry.at);
      x.seq = lastEntry.seq ?? -1;
    }
    for (const e of this.history.unread) {
      const x = map.get(e.conv);
      if (x) x.unread++;
    }
    return [...map.values()].sort((a, b) => b.last - a.last || b.seq - a.seq || a.conv.localeCompare(b.conv));
  }

  /** The entries of a conversation, oldest first (the live list: do not change it). @param {string} conv */
  messages(conv) {
    return this.history.byConv.get(conv) ?? [];
  }

  /** Unread entries in all conversations. */
  unreadCount() {
    return this.history.unread.size;
  }

  /** @param {string} conv @returns {Promise<boolean>} whether anything changed */
  async markRead(conv) {
    const any = this.history.markRead(conv);
    if (any) await this.serial(() => this.save());
    return any;
  }
}

/** How long a new device waits for its link message (the server keeps one 10 minutes). */
export const LINK_WAIT_MS = 10 * 60 * 1000;
/** How often it asks. */
export const LINK_POLL_MS = 1000;

/**
 * This browser becoming another device of an existing account (PROTOCOL.md §4.6; host-client's
 * `sealroom link`): it logs in as a device being linked (`LoginDevice { device: None }`, then
 * the second factor), shows a link code, waits for a device of the account to send the account
 * to it (`FetchLink`, once a second), checks what came, becomes a device (`AddDevice`), keeps
 * the identity and contacts in a new keystore, and publishes its own prekeys, signed by the
 * account identity for its device id. Until then the session can do nothing else: it reads
 * nothing of the account's and sends nothing as it.
 */
export class DeviceLinking {
  /**
   * @param {Connection} conn @param {string} username folded @param {string} password
   * @param {{keystore: Keystore | null, profile: Profile} | null} previous the keys this browser
   *   kept for a device of the account that was revoked: its history is carried over
   */
  constructor(conn, username, password, previous) {
    this.conn = conn;
    this.username = username;
    /** @type {string | undefined} held until the keystore is made */
    this.password = password;
    this.previous = previous;
    /** Whether the new keys go to IndexedDB (tests without a browser turn it off). */
    this.persist = true;
    /** @type {LinkKeyPair | null} */
    this.pair = null;
    /** The code as people copy it, once the second factor is in. */
    this.codeText = '';
    /** @type {{token: Uint8Array, expires_at: number} | null} */
    this.session = null;
    this.done = false;
  }

  /**
   * Starts linking this browser to `username`'s account: asks the server for a linking
   * session with the password; the second factor follows (`submitCode`). Refuses when this
   * browser already holds keys for the account (log in instead), unless `previous` are those
   * keys (a revoked device linking again).
   * @param {string} url @param {string} username @param {string} password
   * @param {{keystore: Keystore | null, profile: Profile} | null} [previous]
   */
  static async start(url, username, password, previous = null) {
    username = foldUsername(username);
    if (!previous && (await Keystore.exists(username))) {
      throw new Error(`This browser already holds keys for ${username}: log in instead. If this browser’s device was revoked, logging in offers to link it again.`);
    }
    await holdTabLock(username);
    const conn = new Connection(url);
    try {
      await conn.open();
    } catch (e) {
      releaseTabLock(username);
      throw e;
    }
    return DeviceLinking.startOn(conn, username, password, previous);
  }

  /**
   * `start` over an open connection (tests use a stand-in).
   * @param {Connection} conn @param {string} username folded @param {string} password
   * @param {{keystore: Keystore | null, profile: Profile} | null} [previous]
   */
  static async startOn(conn, username, password, previous = null) {
    try {
      const r = await conn.request({ type: 'LoginDevice', username, password, device: null });
      if (r.type !== 'TotpRequired') throw new Error(`unexpected reply ${r.type}`);
    } catch (e) {
      conn.close();
      releaseTabLock(username);
      throw e;
    }
    return new DeviceLinking(conn, username, password, previous);
  }

  /**
   * The second factor (a TOTP code or a recovery code). Once accepted, makes the link key pair
   * and returns the code to show. A refused code lets the next one be tried.
   * @param {string} code
   */
  async submitCode(code) {
    code = code.trim();
    let s;
    try {
      s = await this.conn.request(secondFactorMessage(code));
    } catch (e) {
      if (e instanceof ServerError && e.code === ErrorCode.AUTH_FAILED && this.password) {
        await this.conn.request({ type: 'LoginDevice', username: this.username, password: this.password, device: null }).catch(() => {});
      }
      throw e;
    }
    this.session = { token: s.token, expires_at: Number(s.expires_at) };
    this.pair = LinkKeyPair.generate();
    this.codeText = linkCodeText(this.pair.code);
    return this.codeText;
  }

  /** One `FetchLink`: the link message, or null while none has arrived. */
  async fetch() {
    if (!this.pair) throw new Error('the second factor comes first');
    try {
      const r = await this.conn.request({ type: 'FetchLink', link_id: this.pair.code.linkId() });
      return /** @type {Uint8Array} */ (r.message);
    } catch (e) {
      // Not yet; or asked too often: ask again at the next tick.
      if (e instanceof ServerError && (e.code === ErrorCode.NOT_FOUND || e.code === ErrorCode.RATE_LIMITED)) return null;
      throw e;
    }
  }

  /**
   * Asks for the link message once a second until it arrives (resolves with it), `signal`
   * aborts (resolves null), or `LINK_WAIT_MS` pass (resolves null). `onTick` gets the
   * milliseconds left after each ask.
   * @param {{signal?: AbortSignal, onTick?: (left: number) => void, wait?: number, every?: number}} [opts]
   * @returns {Promise<Uint8Array | null>}
   */
  async waitForMessage({ signal, onTick = () => {}, wait = LINK_WAIT_MS, every = LINK_POLL_MS } = {}) {
    const deadline = Date.now() + wait;
    for (;;) {
      if (signal?.aborted) return null;
      const message = await this.fetch();
      if (message) return message;
      const left = deadline - Date.now();
      onTick(Math.max(0, left));
      if (left <= 0) return null;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, Math.min(every, left));
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve(undefined);
        }, { once: true });
      });
    }
  }

  /**
   * Opens the link message and becomes a device of the account: checks the state (version 1,
   * this account, a well-formed identity; contacts that are not usernames, and rooms that are not
   * that room's, dropped), `AddDevice`, keeps the identity, the contacts with their trust and the
   * rooms with their rosters in a new keystore (saved before any key is published, so a
   * published key's secret is never lost), then publishes a signed prekey signed for the new
   * device id, one-time prekeys and KEM prekeys (PQXDH, signed for it too). The server checks the signed prekey against the account
   * identity: a link message carrying another identity stops there, and nothing is kept. Any
   * failure ends the linking session (start again for a new code). Resolves with the logged-in
   * client.
   * @param {Uint8Array} message
   * @returns {Promise<Client>}
   */
  async finish(message) {
    if (!this.pair || !this.session) throw new Error('the second factor comes first');
    const username = this.username;
    let state;
    try {
      let plain;
      try {
        plain = this.pair.open(message);
      } catch (e) {
        if (e instanceof LinkError) throw new LinkStateError(`The link message does not open under this browser’s code (${e.message}); nothing was set up.`);
        throw e;
      }
      try {
        state = parseLinkState(plain, username);
      } finally {
        wipe(plain);
      }
    } catch (e) {
      await this.cancel();
      throw e;
    }
    let device;
    try {
      const r = await this.conn.request({ type: 'AddDevice', name: browserDeviceName() });
      if (r.type !== 'DeviceAdded') throw new Error(`unexpected reply ${r.type}`);
      device = /** @type {number} */ (r.device);
    } catch (e) {
      await this.cancel();
      throw e;
    }
    const identity = new IdentityKeyPair(fromHex(state.identity.sig), fromHex(state.identity.dh));
    const profile = newProfile(username, username, device, identity);
    /** @type {Record<string, Contact>} */
    const contacts = Object.fromEntries(Object.entries(state.contacts).map(([name, c]) => [name, { ...c, session: null, previous_session: null, devices: {} }]));
    profile.contacts = contacts;
    profile.token = toHex(this.session.token);
    profile.token_expires = this.session.expires_at;
    const before = this.previous;
    if (before) {
      // The messages this browser kept as the revoked device stay readable here.
      profile.history = (before.profile.history ?? []).filter((/** @type {Entry} */ e) => typeof e.seq === 'number');
      profile.next_seq = before.profile.next_seq ?? 0;
      profile.chats = { ...(before.profile.chats ?? {}) };
    }
    const client = new Client(this.conn, profile, null);
    client.loggedIn = true;
    // The account's rooms, each from the roster the sending device holds (§4.6): held here with
    // a fresh sender key of this device's at epoch 0, and queued for a key sync after the login.
    for (const [name, roster] of Object.entries(state.rooms)) rooms.adoptOwnRoster(client, name, fromHex(roster));
    const spk = profile.spks[0];
    const signed = { id: spk.id, key: SignedPrekeyPair.fromSecretKey(spk.id, fromHex(spk.secret), identity).publicKey, signature: fromHex(spk.signature) };
    const opks = Object.entries(profile.opks).map(([k, s]) => ({ id: Number(k), key: new OneTimePrekeyPair(Number(k), fromHex(s)).publicKey }));
    let stored = false;
    try {
      if (this.persist) {
        const keystore = await Keystore.create(username, /** @type {string} */ (this.password));
        await keystore.save(profile, { put: /** @type {{seq: number}[]} */ (profile.history) });
        stored = true;
        client.keystore = keystore;
      }
      await this.conn.request({ type: 'PublishSignedPrekey', prekey: signed });
      await this.conn.request({ type: 'UploadPrekeys', prekeys: opks });
      // The KEM prekeys too (PQXDH): without them nobody can start a session with this device.
      await client.ensureKemPrekeys();
    } catch (e) {
      // Nothing is kept: the keys this browser held before (a revoked device's), if any, are
      // written back as they were.
      client.keystore = null;
      if (stored) {
        try {
          if (before?.keystore) await before.keystore.save(before.profile, { put: /** @type {{seq: number}[]} */ ((before.profile.history ?? []).filter((/** @type {Entry} */ x) => typeof x.seq === 'number')) });
          else await Keystore.remove(username);
        } catch {
          // The error below says what failed; a keystore left behind opens with the password.
        }
      }
      client.closing = true;
      await this.cancel();
      throw new Error(`Could not publish this browser’s keys (${/** @type {Error} */ (e).message}); nothing was kept. Start again for a new code. Device ${device} stays unused: revoke it in Account settings on a device of ${username}.`);
    }
    this.password = undefined;
    this.done = true;
    const n = Object.keys(contacts).length;
    client.notice(`This browser is now device ${device} of ${username}, with ${n} contact${n === 1 ? '' : 's'} and their trust. Messages to ${username} reach it from now on.`);
    await client.afterLogin();
    return client;
  }

  /** Gives up: logs the linking session out and closes it (nothing was set up). */
  async cancel() {
    if (this.done) return;
    this.done = true;
    this.password = undefined;
    if (this.conn.isOpen) await this.conn.request({ type: 'Logout' }).catch(() => {});
    this.conn.close();
    releaseTabLock(this.username);
  }
}

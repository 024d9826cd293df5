// @ts-check
/**
 * One-to-one messaging on the client (host-client `direct.rs`): X3DH against a fetched bundle,
 * the Double Ratchet, the body envelope, identity-key tracking (trust on first use; a change
 * blocks sending until verified), and healing: a message that does not decrypt is kept as
 * "could not decrypt" with the reason, our sessions with the sender are dropped and a
 * `SessionReset` goes out in a new session. Functions take the `Client` whose state they change;
 * call them inside `client.serial`.
 */
import { fromHex, randomU64, toHex } from './bytes.js';
import { ServerError } from './connection.js';
import { decodeContent, emitEnvelope, encodeContent, parseEnvelope } from './envelope.js';
import { MAX_BODY } from './frames.js';
import { ErrorCode } from './message.js';
import { OneTimePrekeyPair, SignedPrekeyPair } from './keys.js';
import { Session } from './ratchet.js';
import * as rooms from './rooms.js';

/** Sending to a contact whose identity key changed waits for the user's decision. */
export class KeyChangedError extends Error {
  /** @param {string} user */
  constructor(user) {
    super(`${user}'s safety number changed. Compare it with ${user} and mark it verified before sending.`);
    this.name = 'KeyChangedError';
    this.user = user;
  }
}

/**
 * A `Bundle` reply's wire bundle as the X3DH bundle (proto-core's
 * `RemoteBundle::from(&PrekeyBundle)`, the one conversion both clients make).
 * @param {any} b
 * @returns {import('./x3dh.js').RemoteBundle}
 */
function remoteBundle(b) {
  return {
    identity: { signing: b.identity_sig, dh: b.identity_dh },
    signed_prekey: { id: b.signed_prekey.id, public: b.signed_prekey.key, signature: b.signed_prekey.signature },
    one_time_prekey: b.one_time_prekey ? { id: b.one_time_prekey.id, public: b.one_time_prekey.key } : null,
  };
}

/**
 * Fetches `user`'s prekey bundle; records (or checks) their identity key.
 * @param {import('./client.js').Client} client
 * @param {string} user
 */
export async function fetchBundle(client, user) {
  const r = await client.conn.request({ type: 'FetchBundle', username: user });
  const bundle = remoteBundle(r.bundle);
  client.observeIdentity(user, bundle.identity);
  await client.save();
  return bundle;
}

/**
 * Asks the server for `user`'s identity and devices (PROTOCOL.md §3.4 message 51) and records
 * the identity as a bundle's would be: a key different from the one we hold marks the contact
 * changed and throws `KeyChangedError`, before anything is encrypted to it. Returns the device
 * to encrypt for (an account has one until linking is on the wire). Done once per connection
 * before the first encryption to `user` (host-client `check_devices`).
 * @param {import('./client.js').Client} client
 * @param {string} user
 * @returns {Promise<number>}
 */
export async function checkDevices(client, user) {
  const r = await client.conn.request({ type: 'FetchDevices', username: user });
  client.observeIdentity(user, { signing: r.identity_sig, dh: r.identity_dh });
  await client.save();
  if (client.profile.contacts[user].key_changed) throw new KeyChangedError(user);
  if (r.devices.length !== 1) {
    throw new Error(`the server lists ${r.devices.length} devices for ${user}; this version writes to accounts with exactly one`);
  }
  const device = r.devices[0];
  client.devicesChecked.set(user, device);
  return device;
}

/**
 * Fetches a bundle and keeps a session started from it (so its one-time prekey is used).
 * @param {import('./client.js').Client} client
 * @param {string} user
 */
export async function fetchBundleForSession(client, user) {
  const bundle = await fetchBundle(client, user);
  const c = client.profile.contacts[user];
  if (c.key_changed) throw new KeyChangedError(user);
  c.session = Session.initiate(client.identity(), bundle).toState();
  await client.save();
}

/**
 * Our session with `user`, starting one (X3DH) if there is none that can send; refuses while the contact's key change is unverified.
 * @param {import('./client.js').Client} client
 * @param {string} user
 */
export async function sendingSession(client, user) {
  if (client.profile.contacts[user]?.key_changed) throw new KeyChangedError(user);
  // Once per connection, before the first encryption to them: is the identity we hold still
  // theirs (they may have started over)? Later changes come back as STALE_DEVICES.
  if (!client.devicesChecked.has(user)) await checkDevices(client, user);
  const c = client.profile.contacts[user];
  if (c && c.session) {
    const s = Session.fromState(c.session);
    if (s.canSend()) return s;
  }
  const bundle = await fetchBundle(client, user);
  if (client.profile.contacts[user].key_changed) throw new KeyChangedError(user);
  return Session.initiate(client.identity(), bundle);
}

/**
 * Encrypts `content` for `user`'s device, saves the advanced session, sends with
 * `SendToDevices`; returns the server id. If the server answers that the device is not theirs
 * any more (`STALE_DEVICES`), their devices are fetched again: a changed identity throws
 * `KeyChangedError` (nothing was stored); the same identity on another device gets a new
 * session and one more try (host-client `send_content_to`).
 * @param {import('./client.js').Client} client
 * @param {string} user @param {import('./envelope.js').Content} content
 */
export async function sendContentTo(client, user, content) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const session = await sendingSession(client, user);
    const device = client.devicesChecked.get(user);
    if (device === undefined) throw new Error(`internal error: ${user}'s device was not checked`);
    const header = session.pendingPrekeyHeader;
    const body = emitEnvelope(header, session.encrypt(encodeContent(content)));
    if (body.length > MAX_BODY) throw new Error('the message is too long');
    client.profile.contacts[user].session = session.toState();
    await client.save();
    try {
      const r = await client.conn.request({ type: 'SendToDevices', to: user, client_id: randomU64(), bodies: [{ device, body }] });
      return String(r.server_id);
    } catch (e) {
      if (!(e instanceof ServerError) || e.code !== ErrorCode.STALE_DEVICES) throw e;
      client.devicesChecked.delete(user);
      const now = await checkDevices(client, user);
      if (now === device) break;
      // Same identity, another device: the session was with the old one.
      const c = client.profile.contacts[user];
      c.previous_session = c.session;
      c.session = null;
    }
  }
  throw new Error(`the server refuses the device it lists for ${user} (STALE_DEVICES); nothing was sent. Try again later`);
}

/** How many accepted first-message base keys each contact keeps, to know replays. */
export const MAX_BASE_KEYS = 64;

/**
 * Records a message that could not be read, with the reason.
 * @param {import('./client.js').Client} client
 * @param {string} conv
 * @param {string} from
 * @param {number} at
 * @param {string} sid
 * @param {string} why
 */
export function undecryptable(client, conv, from, at, sid, why) {
  client.pushHistory({ conv, from, text: `[could not decrypt this message: ${why}]`, at, id: '0', server_id: sid, outgoing: false, state: 'undecryptable', unread: true });
}

/**
 * A message we cannot read: record it, drop our sessions with `from`, owe them a reset.
 * @param {import('./client.js').Client} client
 * @param {string} from
 * @param {number} at
 * @param {string} sid
 * @param {string} why
 */
export function heal(client, from, at, sid, why) {
  undecryptable(client, `@${from}`, from, at, sid, `${why}; the session is being reset`);
  const c = client.profile.contacts[from];
  if (c) {
    c.session = null;
    c.previous_session = null;
    if (!c.key_changed && !client.resets.includes(from)) client.resets.push(from);
  }
}

/**
 * A one-to-one message arrived: the sessions we hold first, then X3DH as responder for a prekey envelope; the content is recorded, a room key handed to rooms.js, a reset honoured.
 * @param {import('./client.js').Client} client
 * @param {string} from
 * @param {Uint8Array} body
 * @param {number} at
 * @param {string} sid
 */
export async function receiveDirect(client, from, body, at, sid) {
  let env;
  try {
    env = parseEnvelope(body);
  } catch (e) {
    undecryptable(client, `@${from}`, from, at, sid, /** @type {Error} */ (e).message);
    return;
  }
  const c = client.profile.contacts[from];
  /** @type {{plain: Uint8Array, session: Session, current: boolean} | null} */
  let outcome = null;
  let failure = 'it failed authentication (wrong session, or altered)';
  for (const [state, current] of /** @type {[any, boolean][]} */ ([[c?.session, true], [c?.previous_session, false]])) {
    if (!state) continue;
    const s = Session.fromState(state);
    try {
      outcome = { plain: s.decrypt(env.message), session: s, current };
      break;
    } catch (e) {
      if (/** @type {any} */ (e).kind === 'Replay') return;
      failure = /** @type {Error} */ (e).message;
    }
  }
  let fresh = false;
  if (!outcome && env.kind === 'Prekey') {
    const header = env.header;
    // A first message whose base key we already took in is a copy (the server replaying it):
    // it must neither re-install the session it started nor, its one-time prekey gone, force
    // a reset. Dropped, and acknowledged like any duplicate.
    if (c?.base_keys?.includes(toHex(header.ephemeral))) return;
    const id = client.identity();
    const spkRec = client.profile.spks.find((k) => k.id === header.signed_prekey_id);
    if (!spkRec) return heal(client, from, at, sid, 'it names a signed prekey this device no longer has');
    const spk = SignedPrekeyPair.fromSecretKey(spkRec.id, fromHex(spkRec.secret), id);
    let opk = null;
    if (header.one_time_prekey_id !== null) {
      const secret = client.profile.opks[header.one_time_prekey_id];
      if (!secret) return heal(client, from, at, sid, 'it uses a one-time prekey already used');
      opk = new OneTimePrekeyPair(header.one_time_prekey_id, fromHex(secret));
    }
    try {
      const s = Session.respond(id, spk, opk, header);
      outcome = { plain: s.decrypt(env.message), session: s, current: false };
      fresh = true;
      if (header.one_time_prekey_id !== null) delete client.profile.opks[header.one_time_prekey_id];
    } catch (e) {
      failure = /** @type {Error} */ (e).message;
    }
    if (outcome) {
      // Only now, the message authenticated, is its identity key recorded (a changed key is
      // flagged here, never on the word of bytes that did not decrypt).
      client.observeIdentity(from, header.identity);
      const contact = client.profile.contacts[from];
      contact.base_keys = [...(contact.base_keys ?? []), toHex(header.ephemeral)].slice(-MAX_BASE_KEYS);
    }
  }
  if (!outcome) {
    // A first message that fails while a session with `from` works is not theirs to break it
    // with (the server can forge one): shown as unreadable, the session kept.
    if (env.kind === 'Prekey' && c?.session) return undecryptable(client, `@${from}`, from, at, sid, failure);
    return heal(client, from, at, sid, failure);
  }
  const contact = client.profile.contacts[from];
  if (!outcome.current) contact.previous_session = contact.session;
  contact.session = outcome.session.toState();
  let content;
  try {
    content = decodeContent(outcome.plain);
  } catch (e) {
    return undecryptable(client, `@${from}`, from, at, sid, `unknown content: ${/** @type {Error} */ (e).message}`);
  }
  if (content.type === 'Text') {
    if (client.noteMessage(from, content.id)) {
      client.pushHistory({ conv: `@${from}`, from, text: content.text, at: Number(content.sent_at), id: String(content.id), server_id: sid, outgoing: false, state: 'received', unread: true });
    }
  } else if (content.type === 'RoomKey') {
    await rooms.receiveRoomKey(client, from, content.room, content.distribution);
  } else if (content.type === 'Roster') {
    await rooms.receiveRosterContent(client, from, content.room, content.roster);
  } else {
    if (!fresh) contact.session = null;
    // They may have failed on a room message too: hand them our room keys again.
    for (const [name, entry] of Object.entries(client.profile.rooms)) {
      if (!entry.members.includes(from)) continue;
      delete entry.key_sent[from];
      if (!client.roomsToSync.includes(name)) client.roomsToSync.push(name);
    }
    client.notice(`${from} could not decrypt a message from you; the session was reset. Resend your last message if ${from} did not get it.`);
  }
}

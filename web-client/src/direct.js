// @ts-check
/**
 * One-to-one messaging on the client (host-client `direct.rs`): PQXDH against each of a
 * contact's devices (its `FetchKemBundle`: the prekey and the KEM prekey signed for that
 * device; a device without a usable KEM prekey gets nothing, never a classical X3DH session),
 * X3DH first messages (`0x01`) still answered for sessions begun by older clients, the Double
 * Ratchet with one session per device, the body envelope, identity-key tracking (trust on first
 * use; a change blocks sending until verified), and healing: a message that does not decrypt is
 * kept as "could not decrypt" with the reason, our sessions with the sending device are dropped
 * and a `SessionReset` goes out in a new session. A text is encrypted once per device of the
 * contact and, as a sent transcript (`Content::Sent`), once per other device of our own account,
 * and both go in one `SendSynced` (other contents in one `SendToDevices`). Sessions with our own
 * devices are kept like a contact's, under our own username (taken only from our own identity,
 * never shown as a contact). Sessions from before device ids (the contact's
 * `session` / `previous_session`) are used for a contact with one device and moved to it.
 * Functions take the `Client` whose state they change; call them inside `client.serial`.
 */
import { fromHex, randomU64, toHex } from './bytes.js';
import { ServerError } from './connection.js';
import { decodeContent, emitEnvelope, encodeContent, parseEnvelope } from './envelope.js';
import { MAX_BODY } from './frames.js';
import { ErrorCode } from './message.js';
import { OneTimePrekeyPair, SignedPrekeyPair } from './keys.js';
import { Session } from './ratchet.js';
import { PqxdhError, kemPrekeyFromBundle } from './pqxdh.js';
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
 * Fetches `user`'s prekey bundle (their primary device's: used only to learn their identity);
 * records (or checks) their identity key.
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
 * Fetches the post-quantum bundle of one of `user`'s devices (`FetchKemBundle`: its X3DH
 * bundle and one KEM prekey); records (or checks) their identity key: a changed one throws
 * `KeyChangedError`. The KEM prekey is checked when the session starts.
 * @param {import('./client.js').Client} client
 * @param {string} user @param {number} device
 * @returns {Promise<{bundle: import('./x3dh.js').RemoteBundle, kem: {id: number, key: Uint8Array, signature: Uint8Array} | null}>}
 */
async function fetchKemBundle(client, user, device) {
  const r = await client.conn.request({ type: 'FetchKemBundle', username: user, device });
  if (r.type !== 'KemBundle') throw new Error(`unexpected reply ${r.type}`);
  const bundle = remoteBundle(r.bundle);
  client.observeIdentity(user, bundle.identity);
  await client.save();
  if (client.profile.contacts[user].key_changed) throw new KeyChangedError(user);
  return { bundle, kem: r.kem_prekey ?? null };
}

/**
 * A new session with a device could not start: PQXDH refused what the server handed out
 * (`kind` is the `PqxdhError` name). Nothing was encrypted or sent; there is no fallback to a
 * session without post-quantum protection.
 */
export class SessionStartError extends Error {
  /** @param {string} user @param {number} device @param {string} kind */
  constructor(user, device, kind) {
    const why = {
      MissingKemPrekey: `it has published no post-quantum (KEM) prekey, so no session with post-quantum protection can start (Sealroom starts no other kind). Its app must be updated, or logged in once, first`,
      KemKeyLength: 'its post-quantum (KEM) prekey is not an ML-KEM-768 key',
      InvalidKemKey: 'its post-quantum (KEM) prekey is not a valid ML-KEM-768 key',
      BadPrekeySignature: `its published keys are not signed by ${user}'s identity for it`,
      BadKemPrekeySignature: `its published keys are not signed by ${user}'s identity for it`,
      NonContributory: 'its published keys are not valid keys',
    }[kind] ?? 'its published keys were refused';
    super(`cannot start a session with ${user}'s device ${device} (${kind}): ${why}. Nothing was sent.`);
    this.name = 'SessionStartError';
    this.kind = kind;
    this.user = user;
    this.device = device;
  }
}

/**
 * Asks the server for `user`'s identity and devices (PROTOCOL.md §3.4 message 51) and records
 * the identity as a bundle's would be: a key different from the one we hold marks the contact
 * changed and throws `KeyChangedError`, before anything is encrypted to it. Returns the devices
 * to encrypt for (each one's prekey is checked against that identity when a session with it
 * starts: a device the identity did not sign gets nothing); sessions with devices no longer
 * listed are dropped. Done once per connection before the first encryption to `user`
 * (host-client `check_devices`).
 * @param {import('./client.js').Client} client
 * @param {string} user
 * @returns {Promise<number[]>}
 */
export async function checkDevices(client, user) {
  const r = await client.conn.request({ type: 'FetchDevices', username: user });
  client.observeIdentity(user, { signing: r.identity_sig, dh: r.identity_dh });
  await client.save();
  const c = client.profile.contacts[user];
  if (c.key_changed) throw new KeyChangedError(user);
  /** @type {number[]} */
  const devices = [...r.devices];
  if (devices.length === 0 && user !== client.profile.username) throw new Error(`${user} has no device to write to (every one was revoked)`);
  // Sessions with devices the account no longer has are of no use.
  for (const id of Object.keys(c.devices ?? {})) {
    if (!devices.includes(Number(id))) delete /** @type {Record<string, DeviceSessions>} */ (c.devices)[id];
  }
  client.devicesChecked.set(user, devices);
  return devices;
}

/**
 * Our sessions with one device of a contact, made if there are none yet.
 * @param {import('./client.js').Contact} c @param {number} device
 * @returns {DeviceSessions}
 */
function deviceSlot(c, device) {
  c.devices ??= {};
  return (c.devices[device] ??= { session: null, previous_session: null });
}

/** @typedef {{session: any, previous_session: any}} DeviceSessions */

/**
 * The devices to encrypt for: `user` must not be us, nor a contact whose key change waits for
 * verification; their identity and devices are checked once per connection, before the first
 * encryption to them (they may have started over); later changes come back as `STALE_DEVICES`.
 * @param {import('./client.js').Client} client
 * @param {string} user
 * @returns {Promise<number[]>}
 */
async function devicesToSend(client, user) {
  if (user === client.profile.username) return ownOtherDevices(client);
  if (client.profile.contacts[user]?.key_changed) throw new KeyChangedError(user);
  return client.devicesChecked.get(user) ?? (await checkDevices(client, user));
}

/**
 * Our account's other devices (for sent transcripts, resets, room keys and rosters between our
 * devices), as the server lists them under this device's own identity (checked once per
 * connection: another identity throws, this device is no longer the account's), without this
 * device.
 * @param {import('./client.js').Client} client
 * @returns {Promise<number[]>}
 */
export async function ownOtherDevices(client) {
  const me = client.profile.username;
  const all = client.devicesChecked.get(me) ?? (await checkDevices(client, me));
  return all.filter((d) => d !== client.profile.device_id);
}

/**
 * Our session with one of `user`'s devices, starting one (PQXDH against its `FetchKemBundle`)
 * if there is none that can send. The device's signed prekey and KEM prekey must be signed for
 * it by `user`'s identity ("Sealroom SPK v2", "Sealroom KEM PK v1"); a bundle without a KEM
 * prekey, or with one that does not verify or is not a valid ML-KEM-768 key, throws
 * `SessionStartError` — never a classical X3DH session. A session from before device ids is
 * used only when the contact has one device (`only`) (host-client `sending_session`).
 * @param {import('./client.js').Client} client
 * @param {string} user @param {number} device @param {boolean} only
 * @returns {Promise<{session: Session, legacy: boolean}>} the session, and whether it is one
 *   from before device ids
 */
export async function sendingSession(client, user, device, only) {
  const c = client.profile.contacts[user];
  const own = c?.devices?.[device]?.session;
  if (own) {
    const s = Session.fromState(own);
    if (s.canSend()) return { session: s, legacy: false };
  }
  if (only && c?.session) {
    const s = Session.fromState(c.session);
    if (s.canSend()) return { session: s, legacy: true };
  }
  const { bundle, kem } = await fetchKemBundle(client, user, device);
  try {
    return { session: Session.initiatePqxdh(client.identity(), bundle, device, kemPrekeyFromBundle(kem)), legacy: false };
  } catch (e) {
    if (e instanceof PqxdhError) throw new SessionStartError(user, device, e.kind);
    throw e;
  }
}

/**
 * Encrypts `content` for each of `user`'s `devices`, each in its own session (started if need
 * be); the sessions are advanced in the profile, not yet saved.
 * @param {import('./client.js').Client} client
 * @param {string} user @param {number[]} devices @param {import('./envelope.js').Content} content
 * @returns {Promise<{device: number, body: Uint8Array}[]>}
 */
async function sealForDevices(client, user, devices, content) {
  const plain = encodeContent(content);
  // A session from before device ids only for a contact's one device.
  const only = devices.length === 1 && user !== client.profile.username;
  /** @type {{device: number, body: Uint8Array}[]} */
  const bodies = [];
  for (const device of devices) {
    const { session, legacy } = await sendingSession(client, user, device, only);
    // `0x03` (PQXDH header and KEM header) until the device replies, then `0x02`; a session
    // begun with X3DH by an older client goes on with `0x01` / `0x02`.
    const header = session.pendingPrekeyHeader;
    const kem = session.pendingKemHeader;
    const body = emitEnvelope(header, session.encrypt(plain), kem);
    if (body.length > MAX_BODY) throw new Error('the message is too long');
    bodies.push({ device, body });
    const c = client.profile.contacts[user];
    const d = deviceSlot(c, device);
    if (legacy) {
      // A session from before device ids, now known to be this device's.
      d.previous_session = c.previous_session ?? null;
      c.previous_session = null;
      c.session = null;
    }
    d.session = session.toState();
  }
  return bodies;
}

/**
 * Encrypts `content` for each of `user`'s devices (each in its own session, saved before
 * anything is sent, so a reload never reuses a key) and sends them in one `SendToDevices`; with
 * a `transcript`, that goes to each of our other devices in the same request (`SendSynced`: the
 * server stores both or neither). Returns the server id and how many of `user`'s devices it was
 * encrypted for ("0" and 0: our own account with no other device, nothing to send). If the
 * server answers that the devices are not exactly theirs (`STALE_DEVICES`), they are fetched
 * again (for a `SendSynced`, ours too): a changed identity throws `KeyChangedError` (nothing was
 * stored); the same lists again are the server contradicting itself (given up); other devices
 * get sessions and one more try (host-client `send_content_synced`).
 * @param {import('./client.js').Client} client
 * @param {string} user @param {import('./envelope.js').Content} content
 * @param {import('./envelope.js').Content | null} transcript
 * @returns {Promise<{serverId: string, devices: number}>}
 */
async function sendContentSynced(client, user, content, transcript) {
  const me = client.profile.username;
  for (let attempt = 0; attempt < 2; attempt++) {
    const devices = await devicesToSend(client, user);
    // Only our own account can have no (other) device: nobody to tell.
    if (devices.length === 0) return { serverId: '0', devices: 0 };
    // Both lists before anything is encrypted: our own account listed under another identity
    // stops the send here.
    const others = transcript ? await ownOtherDevices(client) : null;
    const bodies = await sealForDevices(client, user, devices, content);
    const own = transcript && others ? await sealForDevices(client, me, others, transcript) : null;
    await client.save();
    try {
      const client_id = randomU64();
      const r = await client.conn.request(own
        ? { type: 'SendSynced', to: user, client_id, bodies, own }
        : { type: 'SendToDevices', to: user, client_id, bodies });
      return { serverId: String(r.server_id), devices: bodies.length };
    } catch (e) {
      if (!(e instanceof ServerError) || e.code !== ErrorCode.STALE_DEVICES) throw e;
      let changed = false;
      for (const who of transcript ? [user, me] : [user]) {
        const before = client.devicesChecked.get(who);
        client.devicesChecked.delete(who);
        const now = await checkDevices(client, who);
        changed ||= !(before && before.length === now.length && before.every((d, i) => d === now[i]));
      }
      if (!changed) break;
    }
  }
  throw new Error(`the server refuses the devices it lists for ${user} (STALE_DEVICES); nothing was sent. Try again later`);
}

/**
 * Sends `content` (a room key, a roster, a reset) to each of `user`'s devices in one
 * `SendToDevices` (see `sendContentSynced`); to our own account, to our other devices. Returns
 * the server id ("0" when our account has no other device: nothing was sent).
 * @param {import('./client.js').Client} client
 * @param {string} user @param {import('./envelope.js').Content} content
 */
export async function sendContentTo(client, user, content) {
  return (await sendContentSynced(client, user, content, null)).serverId;
}

/**
 * Sends a text to `user`, and its transcript (`Sent` with the same id, time and text) to our
 * other devices, in one `SendSynced`. Returns the server id and how many of `user`'s devices
 * it was encrypted for (the receipts count towards it).
 * @param {import('./client.js').Client} client
 * @param {string} user
 * @param {{type: 'Text', id: bigint, sent_at: bigint, text: string}} text
 */
export async function sendTextTo(client, user, text) {
  if (user === client.profile.username) throw new Error('that is you: send to someone else');
  const transcript = /** @type {const} */ ({ type: 'Sent', to: user, id: text.id, sent_at: text.sent_at, text: text.text });
  return sendContentSynced(client, user, text, transcript);
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
 * A message we cannot read: record it, drop our sessions with `from`'s device `device` (and
 * any from before device ids), owe them a reset (in a new session with that device).
 * @param {import('./client.js').Client} client
 * @param {string} from
 * @param {number} device
 * @param {number} at
 * @param {string} sid
 * @param {string} why
 */
export function heal(client, from, device, at, sid, why) {
  undecryptable(client, `@${from}`, from, at, sid, `${why}; the session is being reset`);
  const c = client.profile.contacts[from];
  if (c) {
    if (c.devices) delete c.devices[device];
    c.session = null;
    c.previous_session = null;
    if (!c.key_changed && !client.resets.includes(from)) client.resets.push(from);
  }
}

/**
 * Which of the sessions held with a contact's device decrypted a message: the device's current
 * one, the one before it, one from before device ids (`legacy`), the one before that, or a new
 * one this (prekey) message started.
 * @typedef {'current' | 'previous' | 'legacy' | 'legacyPrevious' | 'fresh'} Slot
 */

/**
 * A one-to-one message arrived from `from`'s device `device` (as the server says: a wrong one
 * only makes it undecryptable). The sessions we hold with that device first, then any from
 * before device ids, then PQXDH (a `0x03` body) or X3DH (a `0x01` body, from an older client)
 * as responder; whichever works becomes the device's current session. The content is recorded, a room key or roster (a contact's, or one
 * of our own devices') handed to rooms.js, a reset honoured.
 * @param {import('./client.js').Client} client
 * @param {string} from
 * @param {number} device
 * @param {Uint8Array} body
 * @param {number} at
 * @param {string} sid
 */
export async function receiveDirect(client, from, device, body, at, sid) {
  let env;
  try {
    env = parseEnvelope(body);
  } catch (e) {
    undecryptable(client, `@${from}`, from, at, sid, /** @type {Error} */ (e).message);
    return;
  }
  const c = client.profile.contacts[from];
  const d = c?.devices?.[device];
  /** @type {[any, Slot][]} */
  const held = /** @type {[any, Slot][]} */ ([
    [d?.session, 'current'], [d?.previous_session, 'previous'], [c?.session, 'legacy'], [c?.previous_session, 'legacyPrevious'],
  ]).filter(([state]) => state);
  const hadSession = held.some(([, slot]) => slot === 'current' || slot === 'legacy');
  /** @type {{plain: Uint8Array, session: Session, slot: Slot} | null} */
  let outcome = null;
  let failure = 'it failed authentication (wrong session, or altered)';
  for (const [state, slot] of held) {
    const s = Session.fromState(state);
    try {
      outcome = { plain: s.decrypt(env.message), session: s, slot };
      break;
    } catch (e) {
      if (/** @type {any} */ (e).kind === 'Replay') return;
      failure = /** @type {Error} */ (e).message;
    }
  }
  if (!outcome && env.kind !== 'Ratchet') {
    const header = env.header;
    // A first message whose base key we already took in is a copy (the server replaying it):
    // it must neither re-install the session it started nor, its one-time prekey gone, force
    // a reset. Dropped, and acknowledged like any duplicate.
    if (c?.base_keys?.includes(toHex(header.ephemeral))) return;
    const id = client.identity();
    // A first message said to be from another of our devices must come from our own identity
    // (the server may label anyone's message as ours): nothing of it is installed.
    if (from === client.profile.username) {
      const mine = id.public();
      if (toHex(header.identity.signing) !== toHex(mine.signing) || toHex(header.identity.dh) !== toHex(mine.dh)) {
        return undecryptable(client, `@${from}`, from, at, sid, 'it says it is from another of your devices, but not from your identity');
      }
    }
    const spkRec = client.profile.spks.find((k) => k.id === header.signed_prekey_id);
    if (!spkRec) return heal(client, from, device, at, sid, 'it names a signed prekey this device no longer has');
    const spk = SignedPrekeyPair.fromSecretKey(spkRec.id, fromHex(spkRec.secret), id);
    // A first message naming keys this device does not hold cannot start a session. If a
    // session with that device works, it is not broken for it (the server can forge such a
    // message): shown as unreadable only. Otherwise the session is reset.
    const refuse = (/** @type {string} */ why) => (hadSession ? undecryptable(client, `@${from}`, from, at, sid, why) : heal(client, from, device, at, sid, why));
    let opk = null;
    if (header.one_time_prekey_id !== null) {
      const secret = client.profile.opks[header.one_time_prekey_id];
      if (!secret) return refuse('it uses a one-time prekey already used');
      opk = new OneTimePrekeyPair(header.one_time_prekey_id, fromHex(secret));
    }
    // PQXDH: the KEM prekey it names, a one-time one (deleted once this message decrypted)
    // or a last-resort one (kept until replaced).
    const kem = env.kind === 'PqPrekey' ? client.kemPrekey(env.kem.kem_id) : null;
    if (env.kind === 'PqPrekey' && !kem) return refuse('it names a post-quantum (KEM) prekey this device does not have (used already, or replaced)');
    try {
      const s = env.kind === 'PqPrekey' && kem
        ? Session.respondPqxdh(id, spk, opk, kem.pair, header, env.kem)
        : Session.respond(id, spk, opk, header);
      outcome = { plain: s.decrypt(env.message), session: s, slot: 'fresh' };
      if (header.one_time_prekey_id !== null) delete client.profile.opks[header.one_time_prekey_id];
      if (env.kind === 'PqPrekey' && kem?.oneTime) delete client.profile.kem_one_time[env.kem.kem_id];
    } catch (e) {
      failure = /** @type {Error} */ (e).message;
    } finally {
      kem?.pair.wipe();
    }
    if (outcome) {
      // Only now, the message authenticated, is its identity key recorded (a changed key is
      // flagged here, never on the word of bytes that did not decrypt).
      client.observeIdentity(from, header.identity);
      const contact = client.profile.contacts[from];
      contact.base_keys = [...(contact.base_keys ?? []), toHex(header.ephemeral)].slice(-MAX_BASE_KEYS);
    } else if (hadSession) {
      // A first message that fails while a session with that device works is not theirs to
      // break it with (the server can forge one): shown as unreadable, the session kept.
      return undecryptable(client, `@${from}`, from, at, sid, failure);
    }
  }
  if (!outcome) return heal(client, from, device, at, sid, failure);
  // Commit the session that worked as the device's current one.
  const contact = client.profile.contacts[from];
  if (outcome.slot === 'legacy') contact.session = null;
  else if (outcome.slot === 'legacyPrevious') contact.previous_session = null;
  const slot = deviceSlot(contact, device);
  if (outcome.slot !== 'current') slot.previous_session = slot.session;
  slot.session = outcome.session.toState();
  // A device the list this connection checked does not name (one linked since): the list is
  // out of date, and asked again before the next encryption to `from` (for our own account,
  // nothing would reach the new device otherwise: an empty list sends nothing).
  if (client.devicesChecked.get(from)?.includes(device) === false) client.devicesChecked.delete(from);
  let content;
  try {
    content = decodeContent(outcome.plain);
  } catch (e) {
    return undecryptable(client, `@${from}`, from, at, sid, `unknown content: ${/** @type {Error} */ (e).message}`);
  }
  const mine = from === client.profile.username;
  if (content.type === 'Sent') {
    // A sent transcript: only from a session with one of our own devices.
    if (!mine) return undecryptable(client, `@${from}`, from, at, sid, 'a sent transcript may only come from your own devices');
    receiveTranscript(client, content);
  } else if (mine && content.type === 'SessionReset') {
    client.notice(`your device ${device} could not decrypt a message from this one; the session between them was reset`);
  } else if (content.type === 'RoomKey') {
    // A member's device's sender key, or one of our own other devices' (PROTOCOL.md §4.4).
    await rooms.receiveRoomKey(client, from, device, content.room, content.distribution);
  } else if (content.type === 'Roster') {
    // From a contact: an admin's invitation; from our own device: the roster it holds.
    await rooms.receiveRosterContent(client, from, content.room, content.roster);
  } else if (mine) {
    // Our devices send each other transcripts, resets, room keys and rosters; never texts.
    return undecryptable(client, `@${from}`, from, at, sid, 'your own devices do not send each other this');
  } else if (content.type === 'Text') {
    if (client.noteMessage(from, content.id)) {
      client.pushHistory({ conv: `@${from}`, from, text: content.text, at: Number(content.sent_at), id: String(content.id), server_id: sid, outgoing: false, state: 'received', unread: true });
    }
  } else {
    // A reset comes in a new session, which replaced the broken one above. One that comes in a
    // working session is for another of our devices (it reaches each of them): this device's
    // session stays.
    // They may have failed on a room message too: hand them our room keys again.
    for (const [name, entry] of Object.entries(client.profile.rooms)) {
      if (!entry.members.includes(from)) continue;
      delete entry.key_sent[from];
      if (!client.roomsToSync.includes(name)) client.roomsToSync.push(name);
    }
    client.notice(`${from} could not decrypt a message from you; the session was reset. Resend your last message if ${from} did not get it.`);
  }
}

/**
 * A text this account sent to `to` from another of its devices: shown in the conversation with
 * `to` as ours, "sent from another of your devices" (state `synced`), once per id; dropped when
 * `to` is not a folded username or is ourselves (host-client `receive_transcript`).
 * @param {import('./client.js').Client} client
 * @param {{to: string, id: bigint, sent_at: bigint, text: string}} sent
 */
function receiveTranscript(client, sent) {
  const me = client.profile.username;
  if (!/^[a-z0-9_]{3,32}$/.test(sent.to) || sent.to === me) return;
  if (!client.noteMessage(`${me}>${sent.to}`, sent.id)) return;
  client.pushHistory({ conv: `@${sent.to}`, from: me, text: sent.text, at: Number(sent.sent_at), id: String(sent.id), server_id: null, outgoing: true, state: 'synced', unread: true });
}

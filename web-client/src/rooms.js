// @ts-check
/**
 * Rooms on the client (host-client `rooms.rs`): invitations we accept or decline (an invitation
 * is not a membership: nothing of the room reaches us before we accept), and sender keys per
 * room, epoch and device, handed to every device of each member, and to our own other devices,
 * inside the pairwise sessions (`Content::RoomKey`).
 *
 * Membership is the room's signed roster (PROTOCOL.md §4.7), never the server's `Members` list:
 * the client holds the latest roster it accepted (the *held* roster, in the room's entry), follows
 * the chain the server stores on every `RoomChanged` and before every send, and refuses a version
 * that does not follow. Sender keys go only to listed members whose current identity key is the
 * one listed (and not changed-unverified); keys and messages are taken only from listed members
 * with the sender's key. A member gone from the roster (or listed with another key) starts a new
 * epoch, so they never get a key for anything sent after. Admins sign members in (after the
 * server lists someone they invited), out, and re-key them; every change is a line in the room's
 * timeline.
 *
 * Each device is a sender of its own, known by its room sender id (PROTOCOL.md §4.4): a key is
 * taken only when its sender is the id of the device whose session it came through, and a room
 * message only when its sender is the id of the device the server names. The room's entry
 * records whose each tracked device is, so that a member's departure removes all of theirs. Our
 * own other devices get our key and our held roster as members' devices do, and what we send
 * from one of them shows on the others as ours. Functions take the `Client` whose state they
 * change; call them inside `client.serial`.
 */
import { equal, fromHex, randomU64, toHex } from './bytes.js';
import { ServerError } from './connection.js';
import { decodeContent, encodeContent } from './envelope.js';
import * as direct from './direct.js';
import { MAX_BODY } from './frames.js';
import { ErrorCode } from './message.js';
import { checkRoomName } from './names.js';
import { MAX_EPOCH, Room, SenderKeyDistribution, roomIdForName, roomSenderId } from './room.js';
import { RosterError, checkFirst, checkInvitation, checkNext, departed, isAdmin, parseRoster, rosterContains, rosterHash, writeRoster } from './roster.js';

/** The most room keys kept per room from senders not (yet) on the held roster. */
export const MAX_EARLY_KEYS = 32;
/** Rosters kept from invitations not yet answered (the oldest dropped past this). */
export const MAX_INVITE_ROSTERS = 64;

/**
 * A device the room's sender-key state tracks: whose it is (we ourselves for our other devices),
 * which of their devices, and its room sender id (hex) under the identity they had.
 * @typedef {{member: string, device: number, sender: string}} RoomSender
 * A room key kept aside until a roster names its sender: who sent it, from which device (absent
 * in keystores written before room sender ids: such a key is dropped), the distribution (hex).
 * @typedef {{from: string, device?: number, bytes: string}} EarlyKey
 */

/**
 * A room's entry in the profile. `roster` is the held signed roster (hex; absent: waiting for
 * one, and no sender key goes out); `members` and `admins` are its usernames; `invited` whom we
 * invited and have not signed in yet; `key_sent` the epoch of the key each member's devices (and
 * ours, under our own username) last got from us; `senders` the devices the sender-key state
 * tracks; `early_keys` room keys from senders not on the held roster.
 * @typedef {{state: any, members: string[], admin: string, admins?: string[], key_sent: Record<string, number>,
 *   roster?: string, first?: string, invited?: string[], early_keys?: EarlyKey[], senders?: RoomSender[]}} RoomEntry
 */

/**
 * This device's room sender id (PROTOCOL.md §4.4): what every room knows it by.
 * @param {import('./client.js').Client} client
 */
export function ownSenderId(client) {
  const device = client.profile.device_id;
  if (typeof device !== 'number') throw new Error('this browser does not know its device id yet: log in again to learn it');
  return roomSenderId(client.identity().public().signing, device);
}

/**
 * The identity signing key we hold for `user`'s account (ours for our own), or null for
 * someone we do not know.
 * @param {import('./client.js').Client} client
 * @param {string} user
 */
export function accountIdentity(client, user) {
  if (user === client.profile.username) return client.identity().public().signing;
  return client.contactIdentity(user)?.signing ?? null;
}

/** Queues a room for a key sync (after the message being handled). @param {import('./client.js').Client} client @param {string} name */
function queueSync(client, name) {
  if (!client.roomsToSync.includes(name)) client.roomsToSync.push(name);
}

/**
 * The room's crypto state and entry, if we have it. State kept from before room sender ids is
 * started again first (`upgradeLegacy`).
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @returns {{room: Room, entry: RoomEntry} | null}
 */
export function loadRoom(client, name) {
  const e = client.profile.rooms[name];
  if (!e) return null;
  if (!e.state) return { room: newRoomState(client, name), entry: e };
  return { room: upgradeLegacy(client, name, Room.fromState(e.state), e), entry: e };
}

/** A fresh sender-key state for `name` at `epoch`, this device's sender id as ours. @param {import('./client.js').Client} client @param {string} name */
function newRoomState(client, name, epoch = 0) {
  return Room.create(roomIdForName(name), ownSenderId(client), epoch);
}

/**
 * Room state kept from before room sender ids (our own sender is the account's IKs) starts
 * again (PROTOCOL.md §4.4): this device's sender id, the next epoch, no member chains (they come
 * again with every member's key for that epoch), our key owed to everyone. Stored at once and
 * queued for a key sync. A room at the last epoch has no next one: the new key stays at it.
 * Returns the state to use.
 * @param {import('./client.js').Client} client @param {string} name @param {Room} room @param {RoomEntry} entry
 */
function upgradeLegacy(client, name, room, entry) {
  if (!equal(room.ownSender, client.identity().public().signing)) return room;
  if (room.epoch >= MAX_EPOCH) warnOnce(client, `#${name}: this room has used up its key epochs; this device's new room key stays at the last one`);
  const fresh = newRoomState(client, name, Math.min(room.epoch + 1, MAX_EPOCH));
  entry.key_sent = {};
  entry.senders = [];
  // Keys set aside before sender ids name no device: dropped.
  entry.early_keys = (entry.early_keys ?? []).filter((k) => typeof k.device === 'number');
  storeRoom(client, name, fresh, entry);
  queueSync(client, name);
  return fresh;
}

/**
 * Keeps a room's state (in proto-core's layout) in the profile.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {Room} room
 * @param {any} entry
 */
export function storeRoom(client, name, room, entry) {
  entry.state = room.toState();
  client.profile.rooms[name] = entry;
}

/** The held roster of a room entry, or null while we wait for one. @param {RoomEntry | undefined} entry */
export function heldRoster(entry) {
  if (!entry?.roster) return null;
  try {
    return parseRoster(fromHex(entry.roster));
  } catch {
    return null;
  }
}

/** Whether we hold a signed roster of `name` (else the room waits for one). @param {import('./client.js').Client} client @param {string} name */
export function hasRoster(client, name) {
  return heldRoster(client.profile.rooms[name]) !== null;
}

/** @type {WeakMap<object, Set<string>>} */
const warned = new WeakMap();

/** A notice shown once per client and text (warnings repeat on every sync otherwise). @param {import('./client.js').Client} client @param {string} text */
function warnOnce(client, text) {
  let seen = warned.get(client);
  if (!seen) warned.set(client, (seen = new Set()));
  if (seen.has(text)) return;
  seen.add(text);
  client.notice(text);
}

/**
 * The identity signing key of `user`, fetching their bundle if unknown.
 * @param {import('./client.js').Client} client
 * @param {string} user
 */
export async function memberKey(client, user) {
  const k = client.contactIdentity(user);
  if (k) return k.signing;
  return (await direct.fetchBundle(client, user)).identity.signing;
}

/**
 * Members and admin of a room as the server says (used for whom we invited that joined and for
 * the successor of a leaving admin, never as the membership).
 * @param {import('./client.js').Client} client
 * @param {string} name
 */
export async function listMembers(client, name) {
  const r = await client.conn.request({ type: 'ListMembers', room: name });
  return { admin: /** @type {string} */ (r.admin), members: /** @type {string[]} */ (r.members) };
}

/** "you" for us, else the name. @param {import('./client.js').Client} client @param {string} u */
function who(client, u) {
  return u === client.profile.username ? 'you' : u;
}

/** @param {string} s */
const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

/**
 * The timeline lines for the step from `prev` to `next` (§4.7 rule 8).
 * @param {import('./client.js').Client} client
 * @param {import('./roster.js').Roster} prev @param {import('./roster.js').Roster} next
 */
export function describeChange(client, prev, next) {
  /** @param {Uint8Array} ik */
  const nameOf = (ik) => (next.members.find((m) => equal(m.identity, ik)) ?? prev.members.find((m) => equal(m.identity, ik)))?.username ?? 'someone';
  const signer = who(client, nameOf(next.signer));
  const lines = [];
  for (const m of departed(prev, next)) {
    const u = who(client, m.username);
    if (next.members.some((x) => x.username === m.username)) lines.push(u === 'you' ? 'Your key changed' : `${m.username}'s key changed`);
    else if (equal(m.identity, next.signer)) lines.push(`${cap(u)} left`);
    else lines.push(`${cap(signer)} removed ${u}`);
  }
  for (const m of next.members) {
    if (!prev.members.some((p) => p.username === m.username)) lines.push(`${cap(signer)} added ${who(client, m.username)}`);
  }
  for (const a of next.admins) {
    if (isAdmin(prev, a)) continue;
    const m = next.members.find((x) => equal(x.identity, a));
    // A new key of an admin is told as a key change above.
    if (m && prev.members.some((p) => p.username === m.username && (equal(p.identity, a) || !isAdmin(prev, p.identity)))) {
      lines.push(`${cap(signer)} made ${who(client, m.username)} an admin`);
    }
  }
  for (const a of prev.admins) {
    if (isAdmin(next, a)) continue;
    const m = next.members.find((x) => equal(x.identity, a));
    if (m) lines.push(`${cap(signer)} removed ${who(client, m.username)} as an admin`);
  }
  return lines;
}

/**
 * Whether a tracked device still belongs to the room under `roster`: its member is listed, and
 * its sender id is the one their listed identity gives that device.
 * @param {import('./roster.js').Roster} roster @param {RoomSender} s
 */
function stillListed(roster, s) {
  return roster.members.some((m) => m.username === s.member && toHex(roomSenderId(m.identity, s.device)) === s.sender);
}

/**
 * Makes `roster` the held one: usernames, early room keys now listed, and sender-key state with
 * exactly the devices of listed members. A departure (a member gone, or listed with another
 * key) removes every device of theirs the room tracks and starts one new epoch, whatever their
 * key state (§4.7 rule 6); so does a tracked device whose member the roster does not list.
 * With `prev`, the change is told in the timeline and our own departure closes the room.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {import('./roster.js').Roster | null} prev
 * @param {import('./roster.js').Roster} roster
 */
export function holdRoster(client, name, prev, roster) {
  const loaded = loadRoom(client, name);
  if (!loaded) return;
  const { room, entry } = loaded;
  const own = client.identity().public().signing;
  const me = client.profile.username;
  entry.roster = toHex(roster.bytes);
  delete entry.first;
  entry.members = roster.members.map((m) => m.username);
  entry.admins = roster.members.filter((m) => isAdmin(roster, m.identity)).map((m) => m.username);
  entry.admin = entry.admins[0] ?? '';
  entry.invited = (entry.invited ?? []).filter((u) => !entry.members.includes(u));
  const gone = prev ? departed(prev, roster).map((m) => m.username) : [];
  const senders = entry.senders ?? [];
  const kept = senders.filter((s) => !gone.includes(s.member) && stillListed(roster, s));
  const dropped = room.members.map((m) => m.sender).filter((id) => !kept.some((s) => s.sender === toHex(id)));
  if (gone.length || dropped.length) {
    if (room.removeMembers(dropped) === 0) room.startEpoch(room.epoch + 1);
    for (const u of gone) delete entry.key_sent[u];
  }
  entry.senders = kept;
  for (const u of Object.keys(entry.key_sent)) if (!entry.members.includes(u)) delete entry.key_sent[u];
  storeRoom(client, name, room, entry);
  if (prev) for (const line of describeChange(client, prev, roster)) client.roomEvent(name, line);
  if (!rosterContains(roster, me, own)) {
    client.roomGone(name, equal(roster.signer, own) ? 'left' : 'removed');
    return;
  }
  replayEarlyKeys(client, name);
}

/**
 * Rule 4: fetches versions held + 1, held + 2, … until `NOT_FOUND`; each must follow the one
 * before, and the first that does not is refused with a warning (the chain stops there).
 * @param {import('./client.js').Client} client
 * @param {string} name
 */
export async function followChain(client, name) {
  let held = heldRoster(client.profile.rooms[name]);
  while (held && client.profile.rooms[name]) {
    const version = held.version + 1n;
    let r;
    try {
      r = await client.conn.request({ type: 'FetchRoster', room: name, version });
    } catch (e) {
      if (e instanceof ServerError && e.code === ErrorCode.NOT_FOUND) return;
      throw e;
    }
    let next;
    try {
      next = parseRoster(/** @type {Uint8Array} */ (r.roster));
      checkNext(held, next);
    } catch (e) {
      if (!(e instanceof RosterError)) throw e;
      warnOnce(client, `#${name}: refused version ${version} of the room's signed member list (${e.kind}); the membership stays as it was`);
      return;
    }
    holdRoster(client, name, held, next);
    await client.save();
    held = next;
  }
}

/**
 * Signs and publishes the next roster that `build` makes from the held one (null: nothing to
 * do). On `CONFLICT` the chain is followed and `build` runs once more on the new held roster.
 * Returns the roster published (now held), or null.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {(held: import('./roster.js').Roster) => {admins: Uint8Array[], members: import('./roster.js').RosterMember[]} | null} build
 */
export async function publishNext(client, name, build) {
  for (let attempt = 0; ; attempt++) {
    const held = heldRoster(client.profile.rooms[name]);
    if (!held) throw new Error(`#${name} has no signed member list yet`);
    const fields = build(held);
    if (!fields) return null;
    const stays = held.members.every((m) => fields.members.some((x) => x.username === m.username && equal(x.identity, m.identity)));
    const next = writeRoster({
      roomId: held.roomId, version: held.version + 1n, epoch: stays ? held.epoch : held.epoch + 1,
      prev: rosterHash(held), admins: fields.admins, members: fields.members,
    }, client.identity());
    checkNext(held, next);
    try {
      await client.conn.request({ type: 'PublishRoster', room: name, roster: next.bytes });
    } catch (e) {
      if (attempt === 0 && e instanceof ServerError && e.code === ErrorCode.CONFLICT) {
        await followChain(client, name);
        continue;
      }
      throw e;
    }
    holdRoster(client, name, held, next);
    await client.save();
    return next;
  }
}

/**
 * Rule 1: the room's first roster, us alone as member and admin, published after `CreateRoom`.
 * Kept (as `first`) until the server stores it, and tried again at the next sync if it did not.
 * @param {import('./client.js').Client} client
 * @param {string} name
 */
export async function publishFirst(client, name) {
  const entry = client.profile.rooms[name];
  if (!entry) return;
  const own = client.identity().public().signing;
  const first = entry.first
    ? parseRoster(fromHex(entry.first))
    : writeRoster({ roomId: roomIdForName(name), version: 0n, epoch: 0, prev: new Uint8Array(32), admins: [own], members: [{ username: client.profile.username, identity: own }] }, client.identity());
  checkFirst(first);
  entry.first = toHex(first.bytes);
  await client.save();
  try {
    await client.conn.request({ type: 'PublishRoster', room: name, roster: first.bytes });
  } catch (e) {
    // Someone else's chain is stored for this room: ours cannot start it.
    if (e instanceof ServerError && (e.code === ErrorCode.CONFLICT || e.code === ErrorCode.INVALID_INPUT)) {
      delete entry.first;
      await client.save();
    }
    throw e;
  }
  holdRoster(client, name, null, first);
  await client.save();
}

/** Whether the server holds any roster of `name` (version 0). @param {import('./client.js').Client} client @param {string} name */
async function chainStored(client, name) {
  try {
    await client.conn.request({ type: 'FetchRoster', room: name, version: 0n });
    return true;
  } catch (e) {
    if (e instanceof ServerError && e.code === ErrorCode.NOT_FOUND) return false;
    throw e;
  }
}

/**
 * Rules 2 and 6, run by an admin's client: members the server lists whom we invited are signed
 * in with the identity key we know for them (not while it changed unverified); a listed member
 * whose key changed and was verified since is signed in with the new key. Each added or
 * re-keyed member is then sent the new roster in their pairwise session (`Content::Roster`).
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {string[]} serverMembers
 */
async function signInMembers(client, name, serverMembers) {
  const entry = client.profile.rooms[name];
  const held = heldRoster(entry);
  if (!entry || !held || !isAdmin(held, client.identity().public().signing)) return;
  /** @type {import('./roster.js').RosterMember[]} */
  const joining = [];
  for (const u of entry.invited ?? []) {
    if (!serverMembers.includes(u) || held.members.some((m) => m.username === u)) continue;
    let k;
    try {
      k = await memberKey(client, u);
    } catch (e) {
      warnOnce(client, `#${name}: could not learn ${u}'s key to add them: ${/** @type {Error} */ (e).message}`);
      continue;
    }
    if (client.profile.contacts[u]?.key_changed) {
      warnOnce(client, `#${name}: ${u} joined, but their safety number changed: verify it to add them to the room's signed member list`);
      continue;
    }
    joining.push({ username: u, identity: k });
  }
  /** @type {import('./roster.js').RosterMember[]} */
  const rekeyed = [];
  for (const m of held.members) {
    const c = client.profile.contacts[m.username];
    if (m.username === client.profile.username || !c || c.key_changed || !c.verified) continue;
    if (c.identity_sig !== toHex(m.identity)) rekeyed.push({ username: m.username, identity: fromHex(c.identity_sig) });
  }
  if (!joining.length && !rekeyed.length) return;
  const next = await publishNext(client, name, (h) => {
    const add = joining.filter((j) => !h.members.some((m) => m.username === j.username));
    const swap = rekeyed.filter((r) => h.members.some((m) => m.username === r.username && !equal(m.identity, r.identity)));
    if (!add.length && !swap.length) return null;
    const members = h.members.map((m) => swap.find((r) => r.username === m.username) ?? m).concat(add);
    const admins = h.admins.map((a) => {
      const old = h.members.find((m) => equal(m.identity, a));
      return swap.find((r) => r.username === old?.username)?.identity ?? a;
    });
    return { admins, members };
  });
  if (!next) return;
  for (const m of [...joining, ...rekeyed]) {
    if (!rosterContains(next, m.username, m.identity)) continue;
    try {
      await direct.sendContentTo(client, m.username, { type: 'Roster', room: name, roster: next.bytes });
    } catch (e) {
      client.notice(`#${name}: could not send the signed member list to ${m.username}: ${/** @type {Error} */ (e).message}`);
    }
  }
}

/**
 * Rule 5: our sender key to every device of each listed member who lacks it for this epoch, whom
 * the server also counts as a member, and whose current identity key is the listed one and not
 * changed-unverified; then to our own other devices, if the account has any (the first time
 * with our held roster before it, so that a device linked before the room existed learns the
 * room from it).
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {string[]} serverMembers
 */
async function distributeKeys(client, name, serverMembers) {
  const loaded = loadRoom(client, name);
  const held = heldRoster(loaded?.entry);
  if (!loaded || !held) return;
  const { room, entry } = loaded;
  const dist = room.distribution().toBytes();
  for (const m of held.members) {
    const u = m.username;
    if (u === client.profile.username || entry.key_sent[u] === room.epoch) continue;
    // Listed and on the server (rule 5): an invitee the roster names gets nothing before they
    // accept; the server's list can narrow who gets keys, never widen it.
    if (!serverMembers.includes(u)) continue;
    if (!client.profile.contacts[u]) {
      try {
        await direct.fetchBundle(client, u);
      } catch {
        continue;
      }
    }
    const c = client.profile.contacts[u];
    if (c.key_changed) {
      warnOnce(client, `#${name}: not sending the room key to ${u}: their safety number changed (verify first)`);
      continue;
    }
    if (c.identity_sig !== toHex(m.identity)) {
      warnOnce(client, `#${name}: not sending the room key to ${u}: their key is not the one the room's signed member list names`);
      continue;
    }
    try {
      await direct.sendContentTo(client, u, { type: 'RoomKey', room: name, distribution: dist });
    } catch (e) {
      client.notice(`#${name}: could not send the room key to ${u}: ${/** @type {Error} */ (e).message}`);
      continue;
    }
    entry.key_sent[u] = room.epoch;
    await client.save();
  }
  await sendKeyToOwnDevices(client, name, entry, held, room.epoch, dist);
}

/**
 * Our sender key to our own other devices (none: nothing is sent), unless they have it for this
 * epoch (`key_sent` under our own username); the first time, our held roster goes first.
 * @param {import('./client.js').Client} client @param {string} name @param {RoomEntry} entry
 * @param {import('./roster.js').Roster} held @param {number} epoch @param {Uint8Array} dist
 */
async function sendKeyToOwnDevices(client, name, entry, held, epoch, dist) {
  const me = client.profile.username;
  const sent = entry.key_sent[me];
  if (sent === epoch) return;
  try {
    if ((await direct.ownOtherDevices(client)).length === 0) return;
    if (sent === undefined) await direct.sendContentTo(client, me, { type: 'Roster', room: name, roster: held.bytes });
    await direct.sendContentTo(client, me, { type: 'RoomKey', room: name, distribution: dist });
  } catch (e) {
    client.notice(`#${name}: could not send the room key to your other devices: ${/** @type {Error} */ (e).message}`);
    return;
  }
  entry.key_sent[me] = epoch;
  await client.save();
}

/**
 * Devices the room tracks (ours included) that their account no longer lists — revoked — leave
 * the room's state, which moves to one new epoch for all of them, before anything is sent
 * (PROTOCOL.md §4.4; host-client `drop_revoked_senders`): a revoked device, even with a
 * server's help, reads nothing sent after, and what it sends is no longer taken. Each member
 * with a tracked device is asked for their devices now (`FetchDevices`, which also refreshes
 * the list direct sends use); one whose list cannot be had now is left as it is.
 * @param {import('./client.js').Client} client
 * @param {string} name
 */
async function dropRevokedSenders(client, name) {
  const members = [...new Set((client.profile.rooms[name]?.senders ?? []).map((s) => s.member))].sort();
  /** @type {Set<string>} sender ids (hex) */
  const gone = new Set();
  for (const m of members) {
    let listed;
    try {
      listed = await direct.checkDevices(client, m);
    } catch {
      continue;
    }
    for (const s of client.profile.rooms[name]?.senders ?? []) if (s.member === m && !listed.includes(s.device)) gone.add(s.sender);
  }
  const loaded = gone.size ? loadRoom(client, name) : null;
  if (!loaded) return;
  const { room, entry } = loaded;
  const revoked = (entry.senders ?? []).filter((s) => gone.has(s.sender));
  room.removeMembers(revoked.map((s) => fromHex(s.sender)));
  entry.senders = (entry.senders ?? []).filter((s) => !gone.has(s.sender));
  storeRoom(client, name, room, entry);
  await client.save();
  for (const s of revoked) {
    const whose = s.member === client.profile.username ? 'Your' : `${s.member}'s`;
    client.notice(`#${name}: ${whose} device ${s.device} was revoked: it is out of the room, which moves to a new key`);
  }
}

/**
 * Follows the room's signed roster, signs in members we invited (as an admin), drops revoked
 * devices, then sends our sender key to every listed member who lacks it for this epoch, and to
 * our own other devices. A room with no held roster waits (nothing is sent to anyone).
 * @param {import('./client.js').Client} client
 * @param {string} name
 */
export async function syncRoom(client, name) {
  let server;
  try {
    server = await listMembers(client, name);
  } catch (e) {
    if (e instanceof ServerError) delete client.profile.rooms[name];
    throw e;
  }
  if (!client.profile.rooms[name]) {
    storeRoom(client, name, newRoomState(client, name), { state: null, members: [], admin: '', key_sent: {}, invited: [] });
  }
  const entry = client.profile.rooms[name];
  if (!heldRoster(entry) && entry.first) {
    try {
      await publishFirst(client, name);
    } catch (e) {
      client.notice(`#${name}: could not publish the room's signed member list: ${/** @type {Error} */ (e).message}`);
    }
  }
  await followChain(client, name);
  const me = client.profile.username;
  if (!heldRoster(client.profile.rooms[name]) && !entry.first && server.admin === me && !(await chainStored(client, name))) {
    // A room made before signed rosters, and we are its admin: we sign its first roster, then
    // sign in (rule 2) the members we already had, as if we had just invited them.
    const known = (entry.members ?? []).filter((m) => m !== me && server.members.includes(m));
    entry.invited = [...new Set([...(entry.invited ?? []), ...known])];
    try {
      await publishFirst(client, name);
    } catch (e) {
      client.notice(`#${name}: could not publish the room's signed member list: ${/** @type {Error} */ (e).message}`);
    }
  }
  if (!heldRoster(client.profile.rooms[name])) {
    await client.save();
    if (client.profile.rooms[name]) warnOnce(client, `#${name}: waiting for the room's signed member list; no room key is sent until it arrives`);
    return;
  }
  await signInMembers(client, name, server.members);
  if (!client.profile.rooms[name]) return;
  await dropRevokedSenders(client, name);
  await distributeKeys(client, name, server.members);
  await client.save();
}

/**
 * Takes a distribution that came through the session with `from`'s `device`, whose account
 * identity is `identity` and whom the held roster lists (PROTOCOL.md §4.4; host-client
 * `take_room_key`): its sender must be that device's room sender id. A device the room does not
 * track yet is added (and recorded as `from`'s) and is owed our key: `key_sent` forgets `from`,
 * so ours goes again to all of their devices. A later epoch moves us there. Returns why the key
 * was not used (a refusal's name), or null.
 * @param {Room} room @param {RoomEntry} entry @param {string} from @param {number} device
 * @param {Uint8Array} identity @param {SenderKeyDistribution} dist
 * @returns {string | null}
 */
function takeKey(room, entry, from, device, identity, dist) {
  const sender = roomSenderId(identity, device);
  if (!equal(dist.sender, sender)) return 'SenderMismatch';
  if (!room.isMember(sender)) {
    try {
      room.addMember(sender);
    } catch (e) {
      return /** @type {any} */ (e).kind ?? /** @type {Error} */ (e).message;
    }
    const id = toHex(sender);
    entry.senders = [...(entry.senders ?? []).filter((s) => s.sender !== id), { member: from, device, sender: id }];
    delete entry.key_sent[from];
  }
  let why = null;
  try {
    room.handleDistribution(dist, sender);
  } catch (e) {
    // An older epoch than ours (a new device starts at 0): it gets our newer key and catches
    // up, so there is nothing to tell.
    const kind = /** @type {any} */ (e).kind;
    if (kind !== 'WrongEpoch') why = kind ?? /** @type {Error} */ (e).message;
  }
  if (dist.epoch > room.epoch) {
    room.startEpoch(dist.epoch);
    entry.key_sent = {};
  }
  return why;
}

/**
 * Takes a sender key from `from`'s `device` (whom the held roster lists with `identity`) into
 * the room's state; a refusal is a notice. Our key is queued for `from` if they lack it.
 * @param {import('./client.js').Client} client
 * @param {string} name @param {string} from @param {number} device
 * @param {Uint8Array} identity @param {SenderKeyDistribution} dist
 */
function takeRoomKey(client, name, from, device, identity, dist) {
  const loaded = loadRoom(client, name);
  if (!loaded) return;
  const { room, entry } = loaded;
  const why = takeKey(room, entry, from, device, identity, dist);
  if (why) client.notice(`#${name}: room key from ${from} not used: ${why}`);
  const needsOurs = entry.key_sent[from] !== room.epoch;
  storeRoom(client, name, room, entry);
  if (needsOurs) queueSync(client, name);
}

/**
 * Early room keys whose sender the held roster now lists (with their current key) are taken;
 * those kept from before room sender ids (no device) are dropped.
 * @param {import('./client.js').Client} client @param {string} name
 */
function replayEarlyKeys(client, name) {
  const entry = client.profile.rooms[name];
  const held = heldRoster(entry);
  if (!entry?.early_keys?.length || !held) return;
  /** @type {EarlyKey[]} */
  const keep = [];
  for (const k of entry.early_keys) {
    if (typeof k.device !== 'number') continue;
    const identity = accountIdentity(client, k.from);
    if (!identity || client.profile.contacts[k.from]?.key_changed || !rosterContains(held, k.from, identity)) {
      keep.push(k);
      continue;
    }
    try {
      takeRoomKey(client, name, k.from, k.device, identity, SenderKeyDistribution.fromBytes(fromHex(k.bytes)));
    } catch {
      // malformed: dropped
    }
  }
  const now = client.profile.rooms[name];
  if (now) now.early_keys = keep;
}

/**
 * A member's sender key arrived inside our pairwise session with `from`'s `device` (we ourselves
 * for another of our devices): taken only when the held roster (followed first if it does not
 * list them) lists `from` with their account's identity key, and its sender is that device's
 * room sender id. A key from someone not listed yet is kept aside, and taken if a later roster
 * lists them.
 * @param {import('./client.js').Client} client
 * @param {string} from
 * @param {number} device
 * @param {string} name
 * @param {Uint8Array} distribution
 */
export async function receiveRoomKey(client, from, device, name, distribution) {
  if (client.holdIfKeyChanged(from, { kind: 'key', from, device, room: name, bytes: toHex(distribution) })) return;
  let dist;
  try {
    dist = SenderKeyDistribution.fromBytes(distribution);
  } catch {
    client.notice(`#${name}: ${from} sent a malformed room key`);
    return;
  }
  const identity = accountIdentity(client, from);
  if (!identity || !client.profile.rooms[name]) return;
  if (!rosterContains(/** @type {any} */ (heldRoster(client.profile.rooms[name])) ?? { members: [] }, from, identity)) {
    try {
      await followChain(client, name);
    } catch {
      // the key is kept aside below
    }
  }
  const entry = client.profile.rooms[name];
  if (!entry) return;
  const held = heldRoster(entry);
  if (!held || !rosterContains(held, from, identity)) {
    const early = (entry.early_keys = (entry.early_keys ?? []).filter((k) => !(k.from === from && k.device === device)));
    early.push({ from, device, bytes: toHex(distribution) });
    if (early.length > MAX_EARLY_KEYS) early.shift();
    warnOnce(client, `#${name}: a room key from ${from} is set aside: the room's signed member list does not name them with this key`);
    return;
  }
  takeRoomKey(client, name, from, device, identity, dist);
}

/**
 * Rule 3: a room's signed roster from the admin who added us, inside our pairwise session with
 * `from`. Taken as the room's starting point only when their key is not changed-unverified, it
 * parses and verifies, names this room, is signed by `from`'s key as an admin in it, lists us
 * with our key, and we hold no roster of the room that lists us (then the chain is followed
 * instead). Anything else is ignored with a warning. One from another of our own devices is
 * `adoptOwnRoster`'s.
 * @param {import('./client.js').Client} client
 * @param {string} from
 * @param {string} name
 * @param {Uint8Array} bytes
 */
export async function receiveRosterContent(client, from, name, bytes) {
  if (from === client.profile.username) {
    adoptOwnRoster(client, name, bytes);
    await client.save();
    return;
  }
  const ignore = (/** @type {string} */ why) => client.notice(`#${name}: ignored a signed member list from ${from}: ${why}`);
  const contact = client.profile.contacts[from];
  if (!contact || contact.key_changed) return ignore('their safety number changed (verify first)');
  const entry = client.profile.rooms[name];
  if (!entry) {
    // Sent with an invitation (PROTOCOL.md §4.7 step 2): kept, and checked, when we accept.
    const kept = client.profile.invite_rosters;
    kept[name] = { from, roster: toHex(bytes) };
    const names = Object.keys(kept);
    for (const old of names.slice(0, Math.max(0, names.length - MAX_INVITE_ROSTERS))) delete kept[old];
    await client.save();
    return;
  }
  const own = client.identity().public().signing;
  const me = client.profile.username;
  const theirs = fromHex(contact.identity_sig);
  let r;
  try {
    r = parseRoster(bytes);
    checkInvitation(r, roomIdForName(name), theirs, me, own);
  } catch (e) {
    if (!(e instanceof RosterError)) return ignore('malformed');
    const why = {
      WrongRoom: 'it is for another room',
      NotFromSender: 'it is not signed by them',
      SignerNotAdmin: 'they are not an admin in it',
      NotListed: 'it does not list you with your key',
    }[e.kind];
    return ignore(why ?? e.kind);
  }
  const held = heldRoster(entry);
  if (held && rosterContains(held, me, own)) {
    queueSync(client, name);
    return;
  }
  holdRoster(client, name, null, r);
  client.roomEvent(name, `${cap(from)} added you`);
  await client.save();
  queueSync(client, name);
}

/**
 * A roster another of our own devices holds (sent by it, or in the link state, PROTOCOL.md
 * §4.6): our starting point in the room when we hold none yet. It comes from our own identity,
 * so it is trusted as a first roster from an admin would be, once it is checked to be this
 * room's and to list us with our identity. One we hold already says nothing new (the chain is
 * followed at the sync). The room is queued for a key sync. Returns whether it was taken.
 * host-client `adopt_own_roster`.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {Uint8Array} bytes
 */
export function adoptOwnRoster(client, name, bytes) {
  const ignore = (/** @type {string} */ why) => {
    client.notice(`#${name}: ignored a signed member list from another of your devices: ${why}`);
    return false;
  };
  let r;
  try {
    r = parseRoster(bytes);
  } catch (e) {
    return ignore(e instanceof RosterError ? e.kind : 'malformed');
  }
  if (!equal(r.roomId, roomIdForName(name)) || !rosterContains(r, client.profile.username, client.identity().public().signing)) {
    return ignore(`it is not one of #${name} that lists you`);
  }
  let taken = false;
  if (!heldRoster(client.profile.rooms[name])) {
    client.profile.rooms[name] ??= { state: null, members: [], admin: '', key_sent: {}, invited: [] };
    delete client.profile.gone_rooms[name];
    holdRoster(client, name, null, r);
    taken = true;
  }
  queueSync(client, name);
  return taken;
}

/**
 * A room message arrived from `from`'s `device`, as the server says: verify, decrypt, check
 * that its sender is that device's room sender id and that `from` is on the held roster with
 * their account's key, record. Ours (sent from another of our devices) shows as ours.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {string} from
 * @param {number} device
 * @param {Uint8Array} body
 * @param {number} at
 * @param {string} sid
 */
export function receiveRoom(client, name, from, device, body, at, sid) {
  const conv = `#${name}`;
  const me = client.profile.username;
  if (client.holdIfKeyChanged(from, { kind: 'message', from, device, room: name, bytes: toHex(body), at, sid })) return;
  const loaded = loadRoom(client, name);
  if (!loaded) {
    direct.undecryptable(client, conv, from, at, sid, 'no key for this room yet');
    queueSync(client, name);
    return;
  }
  let got;
  try {
    got = loaded.room.decrypt(body);
  } catch (e) {
    if (/** @type {any} */ (e).kind === 'Replay') return;
    const ask = from === me ? 'sent from another of your devices' : `ask ${from} to send again`;
    direct.undecryptable(client, conv, from, at, sid, `${/** @type {Error} */ (e).message} (${ask})`);
    queueSync(client, name);
    return;
  }
  storeRoom(client, name, loaded.room, loaded.entry);
  // The device the server names must be the one whose key this is (PROTOCOL.md §4.4).
  const identity = accountIdentity(client, from);
  if (!identity || !equal(roomSenderId(identity, device), got.sender)) {
    direct.undecryptable(client, conv, from, at, sid, 'the sender key does not belong to the sender the server named');
    return;
  }
  const held = heldRoster(loaded.entry);
  if (!held || !rosterContains(held, from, identity)) {
    direct.undecryptable(client, conv, from, at, sid, `${from} is not on the room's signed member list`);
    return;
  }
  let content;
  try {
    content = decodeContent(got.plaintext);
  } catch {
    content = null;
  }
  if (content && content.type === 'Text' && from === me) {
    // Ours, sent from another of our devices: shown as a sent transcript is.
    if (client.noteMessage(me, content.id)) {
      client.pushHistory({ conv, from: me, text: content.text, at: Number(content.sent_at), id: String(content.id), server_id: sid, outgoing: true, state: 'synced', unread: true });
    }
  } else if (content && content.type === 'Text') {
    if (client.noteMessage(from, content.id)) {
      client.pushHistory({ conv, from, text: content.text, at: Number(content.sent_at), id: String(content.id), server_id: sid, outgoing: false, state: 'received', unread: true });
    }
  } else {
    direct.undecryptable(client, conv, from, at, sid, 'unexpected content in a room message');
  }
}

/**
 * Sends a content to a room (the roster followed and keys distributed first); returns the
 * server id. Refused while the room has no signed member list.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {import('./envelope.js').Content} content
 */
export async function sendToRoom(client, name, content) {
  await syncRoom(client, name);
  const loaded = loadRoom(client, name);
  if (!loaded) throw new Error(`#${name}: no room state`);
  if (!heldRoster(loaded.entry)) throw new Error(`#${name}: waiting for the room's signed member list`);
  const body = loaded.room.encrypt(encodeContent(content));
  if (body.length > MAX_BODY) throw new Error('the message is too long');
  storeRoom(client, name, loaded.room, loaded.entry);
  await client.save();
  const r = await client.conn.request({ type: 'SendToRoom', room: name, client_id: randomU64(), body });
  return String(r.server_id);
}

/**
 * Rule 2: invites `user` (only an admin of the held roster does), remembering them so that we
 * sign them in once the server lists them as a member.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {string} user
 */
export async function invite(client, name, user) {
  const entry = client.profile.rooms[name];
  const held = heldRoster(entry);
  if (!entry || !held || !isAdmin(held, client.identity().public().signing)) throw new Error(`only an admin of #${name} can add members`);
  await client.conn.request({ type: 'Invite', room: name, username: user });
  const invited = (entry.invited ??= []);
  if (!invited.includes(user)) invited.push(user);
}

/**
 * Rule 7: an admin removes a member by publishing the next roster without them (the server
 * then removes them too). Someone the server lists but the roster does not is removed on the
 * server alone.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {string} user
 */
export async function remove(client, name, user) {
  const entry = client.profile.rooms[name];
  const held = heldRoster(entry);
  const own = client.identity().public().signing;
  if (!entry || !held || !isAdmin(held, own)) throw new Error(`only an admin of #${name} can remove members`);
  if (entry.invited) entry.invited = entry.invited.filter((u) => u !== user);
  await followChain(client, name);
  if (!heldRoster(client.profile.rooms[name])?.members.some((m) => m.username === user)) {
    await client.conn.request({ type: 'Remove', room: name, username: user });
    return;
  }
  await publishNext(client, name, (h) => {
    const gone = h.members.find((m) => m.username === user);
    if (!gone || !isAdmin(h, own)) return null;
    const admins = h.admins.filter((a) => !equal(a, gone.identity));
    if (!admins.length) return null;
    return { admins, members: h.members.filter((m) => m !== gone) };
  });
}

/**
 * Rule 7: we leave by publishing the next roster without us (an admin signs as admin; the only
 * admin hands the role to the remaining member the server lists first). The last member, or a
 * room with no roster that lists us, leaves with `Leave` alone.
 * @param {import('./client.js').Client} client
 * @param {string} name
 */
export async function leave(client, name) {
  const own = client.identity().public().signing;
  const me = client.profile.username;
  if (client.profile.rooms[name]) {
    try {
      await followChain(client, name);
    } catch {
      // leave from what we hold
    }
  }
  const held = heldRoster(client.profile.rooms[name]);
  if (!held || !rosterContains(held, me, own) || held.members.length === 1) {
    await client.conn.request({ type: 'Leave', room: name });
    return;
  }
  const { members: order } = await listMembers(client, name);
  await publishNext(client, name, (h) => {
    const mine = h.members.find((m) => m.username === me && equal(m.identity, own));
    if (!mine) return null;
    const members = h.members.filter((m) => m !== mine);
    if (!isAdmin(h, own)) return { admins: h.admins, members };
    let admins = h.admins.filter((a) => !equal(a, own));
    if (!admins.length) {
      const heir = order.map((u) => members.find((m) => m.username === u)).find((m) => m) ?? members[0];
      admins = [heir.identity];
    }
    return { admins, members };
  });
}

/**
 * The invitations waiting for us, as the server lists them: room → who invited us.
 * @param {import('./client.js').Client} client
 * @returns {Promise<Map<string, string>>}
 */
export async function listInvitations(client) {
  const r = await client.conn.request({ type: 'ListInvitations' });
  const names = /** @type {string[]} */ (r.rooms);
  const from = /** @type {string[]} */ (r.from);
  return new Map(names.map((room, i) => [room, from[i]]));
}

/**
 * Accepts the invitation to `name`: we become a member (the server then tells every member,
 * us included, `Joined`), and sync the room as any member does: the member list, and our new
 * sender key to each of them; theirs come when they hear we joined.
 * @param {import('./client.js').Client} client
 * @param {string} name
 */
export async function acceptInvite(client, name) {
  checkRoomName(name);
  try {
    await client.conn.request({ type: 'AcceptInvite', room: name });
  } catch (e) {
    throw invitationGone(client, name, e);
  }
  client.invitations.delete(name);
  // State left from an earlier membership is not reused: a new member starts with a fresh
  // sender key (as host-client's accept_invite does).
  delete client.profile.rooms[name];
  delete client.profile.gone_rooms[name];
  client.profile.chats[`#${name}`] = Math.floor(Date.now() / 1000);
  const sent = client.profile.invite_rosters[name];
  delete client.profile.invite_rosters[name];
  await client.save();
  try {
    await syncRoom(client, name);
    // The roster the inviter sent with the invitation: our starting point, under rule 3.
    if (sent && !hasRoster(client, name)) {
      await receiveRosterContent(client, sent.from, name, fromHex(sent.roster));
      if (hasRoster(client, name)) await syncRoom(client, name);
    }
  } catch (e) {
    client.notice(`#${name}: ${/** @type {Error} */ (e).message}`);
  }
}

/**
 * Declines the invitation to `name`; nobody is told.
 * @param {import('./client.js').Client} client
 * @param {string} name
 */
export async function declineInvite(client, name) {
  checkRoomName(name);
  try {
    await client.conn.request({ type: 'DeclineInvite', room: name });
  } catch (e) {
    throw invitationGone(client, name, e);
  }
  client.invitations.delete(name);
}

/**
 * A refused answer to an invitation: `NOT_FOUND` means none waits (any more), so it leaves the
 * list; returns the error to show.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {unknown} e
 */
function invitationGone(client, name, e) {
  if (e instanceof ServerError && e.code === ErrorCode.NOT_FOUND) {
    client.invitations.delete(name);
    return new Error(`The invitation to #${name} is no longer open.`);
  }
  return e;
}

// @ts-check
/**
 * Rooms on the client (host-client `rooms.rs`): invitations we accept or decline (an invitation
 * is not a membership: nothing of the room reaches us before we accept), and sender keys per
 * room and epoch, handed to each member inside the pairwise sessions (`Content::RoomKey`).
 *
 * Membership is the room's signed roster (PROTOCOL.md §4.7), never the server's `Members` list:
 * the client holds the latest roster it accepted (the *held* roster, in the room's entry), follows
 * the chain the server stores on every `RoomChanged` and before every send, and refuses a version
 * that does not follow. Sender keys go only to listed members whose current identity key is the
 * one listed (and not changed-unverified); keys and messages are taken only from listed members
 * with the sender's key. A member gone from the roster (or listed with another key) starts a new
 * epoch, so they never get a key for anything sent after. Admins sign members in (after the
 * server lists someone they invited), out, and re-key them; every change is a line in the room's
 * timeline. Functions take the `Client` whose state they change; call them inside `client.serial`.
 */
import { equal, fromHex, randomU64, toHex } from './bytes.js';
import { ServerError } from './connection.js';
import { decodeContent, encodeContent } from './envelope.js';
import * as direct from './direct.js';
import { MAX_BODY } from './frames.js';
import { ErrorCode } from './message.js';
import { checkRoomName } from './names.js';
import { Room, SenderKeyDistribution, roomIdForName } from './room.js';
import { RosterError, checkFirst, checkInvitation, checkNext, departed, isAdmin, parseRoster, rosterContains, rosterHash, writeRoster } from './roster.js';

/** The most room keys kept per room from senders not (yet) on the held roster. */
export const MAX_EARLY_KEYS = 32;
/** Rosters kept from invitations not yet answered (the oldest dropped past this). */
export const MAX_INVITE_ROSTERS = 64;

/**
 * A room's entry in the profile. `roster` is the held signed roster (hex; absent: waiting for
 * one, and no sender key goes out); `members` and `admins` are its usernames; `invited` whom we
 * invited and have not signed in yet; `early_keys` room keys from senders not on the held roster.
 * @typedef {{state: any, members: string[], admin: string, admins?: string[], key_sent: Record<string, number>,
 *   roster?: string, first?: string, invited?: string[], early_keys?: {from: string, bytes: string}[]}} RoomEntry
 */

/**
 * The room's crypto state and entry, if we have it.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @returns {{room: Room, entry: RoomEntry} | null}
 */
export function loadRoom(client, name) {
  const e = client.profile.rooms[name];
  return e ? { room: e.state ? Room.fromState(e.state) : newRoomState(client, name), entry: e } : null;
}

/** @param {import('./client.js').Client} client @param {string} name */
function newRoomState(client, name) {
  return Room.create(roomIdForName(name), client.identity().public().signing, 0);
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
 * Makes `roster` the held one: usernames, sender-key state with exactly the listed keys (a
 * departure, or a key not listed any more, starts a new epoch), early room keys now listed.
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
  const listed = roster.members.filter((m) => !equal(m.identity, own)).map((m) => m.identity);
  const stale = room.members.map((m) => m.sender).filter((s) => !listed.some((k) => equal(k, s)));
  const gone = prev ? departed(prev, roster) : [];
  if (stale.length || gone.length) {
    room.removeMembersAndRotate([...stale, ...gone.map((m) => m.identity)]);
    entry.key_sent = {};
  }
  for (const k of listed) if (!room.isMember(k)) room.addMember(k);
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
 * Rule 5: our sender key to every listed member who lacks it for this epoch, whom the server
 * also counts as a member, and whose current identity key is the listed one and not
 * changed-unverified.
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
}

/**
 * Follows the room's signed roster, signs in members we invited (as an admin), then sends our
 * sender key to every listed member who lacks it for this epoch. A room with no held roster
 * waits (nothing is sent to anyone).
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
  await distributeKeys(client, name, server.members);
  await client.save();
}

/**
 * Takes a checked sender key into the room state (the sender is listed with `sender`).
 * @param {import('./client.js').Client} client
 * @param {string} name @param {string} from
 * @param {SenderKeyDistribution} dist @param {Uint8Array} sender
 */
function takeRoomKey(client, name, from, dist, sender) {
  const loaded = loadRoom(client, name);
  if (!loaded) return;
  const { room, entry } = loaded;
  if (!room.isMember(sender)) room.addMember(sender);
  try {
    room.handleDistribution(dist, sender);
  } catch (e) {
    client.notice(`#${name}: room key from ${from} not used: ${/** @type {Error} */ (e).message}`);
  }
  if (dist.epoch > room.epoch) {
    room.startEpoch(dist.epoch);
    entry.key_sent = {};
  }
  const needsOurs = entry.key_sent[from] !== room.epoch;
  storeRoom(client, name, room, entry);
  if (needsOurs && !client.roomsToSync.includes(name)) client.roomsToSync.push(name);
}

/** Early room keys whose sender the held roster now lists (with their current key) are taken. @param {import('./client.js').Client} client @param {string} name */
function replayEarlyKeys(client, name) {
  const entry = client.profile.rooms[name];
  const held = heldRoster(entry);
  if (!entry?.early_keys?.length || !held) return;
  const keep = [];
  for (const k of entry.early_keys) {
    const sender = client.contactIdentity(k.from)?.signing;
    if (!sender || client.profile.contacts[k.from]?.key_changed || !rosterContains(held, k.from, sender)) {
      keep.push(k);
      continue;
    }
    try {
      takeRoomKey(client, name, k.from, SenderKeyDistribution.fromBytes(fromHex(k.bytes)), sender);
    } catch {
      // malformed: dropped
    }
  }
  const now = client.profile.rooms[name];
  if (now) now.early_keys = keep;
}

/**
 * A member's sender key arrived inside our pairwise session with `from`: taken only when the
 * held roster (followed first if it does not list them) lists `from` with their identity key.
 * A key from someone not listed yet is kept aside, and taken if a later roster lists them.
 * @param {import('./client.js').Client} client
 * @param {string} from
 * @param {string} name
 * @param {Uint8Array} distribution
 */
export async function receiveRoomKey(client, from, name, distribution) {
  if (client.holdIfKeyChanged(from, { kind: 'key', from, room: name, bytes: toHex(distribution) })) return;
  let dist;
  try {
    dist = SenderKeyDistribution.fromBytes(distribution);
  } catch {
    client.notice(`#${name}: ${from} sent a malformed room key`);
    return;
  }
  const sender = client.contactIdentity(from)?.signing;
  if (!sender || !client.profile.rooms[name]) return;
  if (!rosterContains(/** @type {any} */ (heldRoster(client.profile.rooms[name])) ?? { members: [] }, from, sender)) {
    try {
      await followChain(client, name);
    } catch {
      // the key is kept aside below
    }
  }
  const entry = client.profile.rooms[name];
  if (!entry) return;
  const held = heldRoster(entry);
  if (!held || !rosterContains(held, from, sender)) {
    const early = (entry.early_keys ??= []);
    early.push({ from, bytes: toHex(distribution) });
    if (early.length > MAX_EARLY_KEYS) early.shift();
    warnOnce(client, `#${name}: a room key from ${from} is set aside: the room's signed member list does not name them with this key`);
    return;
  }
  takeRoomKey(client, name, from, dist, sender);
}

/**
 * Rule 3: a room's signed roster from the admin who added us, inside our pairwise session with
 * `from`. Taken as the room's starting point only when their key is not changed-unverified, it
 * parses and verifies, names this room, is signed by `from`'s key as an admin in it, lists us
 * with our key, and we hold no roster of the room that lists us (then the chain is followed
 * instead). Anything else is ignored with a warning.
 * @param {import('./client.js').Client} client
 * @param {string} from
 * @param {string} name
 * @param {Uint8Array} bytes
 */
export async function receiveRosterContent(client, from, name, bytes) {
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
    if (!client.roomsToSync.includes(name)) client.roomsToSync.push(name);
    return;
  }
  holdRoster(client, name, null, r);
  client.roomEvent(name, `${cap(from)} added you`);
  await client.save();
  if (!client.roomsToSync.includes(name)) client.roomsToSync.push(name);
}

/**
 * A room message arrived: verify, decrypt, check the sender is who the server named and is on
 * the held roster with that key, record.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {string} from
 * @param {Uint8Array} body
 * @param {number} at
 * @param {string} sid
 */
export function receiveRoom(client, name, from, body, at, sid) {
  const conv = `#${name}`;
  if (client.holdIfKeyChanged(from, { kind: 'message', from, room: name, bytes: toHex(body), at, sid })) return;
  const loaded = loadRoom(client, name);
  if (!loaded) {
    direct.undecryptable(client, conv, from, at, sid, 'no key for this room yet');
    if (!client.roomsToSync.includes(name)) client.roomsToSync.push(name);
    return;
  }
  let got;
  try {
    got = loaded.room.decrypt(body);
  } catch (e) {
    if (/** @type {any} */ (e).kind === 'Replay') return;
    direct.undecryptable(client, conv, from, at, sid, `${/** @type {Error} */ (e).message} (ask ${from} to send again)`);
    if (!client.roomsToSync.includes(name)) client.roomsToSync.push(name);
    return;
  }
  storeRoom(client, name, loaded.room, loaded.entry);
  const k = client.contactIdentity(from);
  if (!k || toHex(k.signing) !== toHex(got.sender)) {
    direct.undecryptable(client, conv, from, at, sid, 'the sender key does not belong to the sender the server named');
    return;
  }
  const held = heldRoster(loaded.entry);
  if (!held || !rosterContains(held, from, got.sender)) {
    direct.undecryptable(client, conv, from, at, sid, `${from} is not on the room's signed member list`);
    return;
  }
  let content;
  try {
    content = decodeContent(got.plaintext);
  } catch {
    content = null;
  }
  if (content && content.type === 'Text') {
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

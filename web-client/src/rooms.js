// @ts-check
/**
 * Rooms on the client (host-client `rooms.rs`): invitations we accept or decline (an invitation
 * is not a membership: nothing of the room reaches us before we accept), sender keys per room and epoch, handed to each
 * member inside the pairwise sessions (`Content::RoomKey`), reconciled with the server's member
 * list before every send and on every membership change; a member who is gone starts a new
 * epoch, so they never get a key for anything sent after. Members converge on the highest
 * epoch. Functions take the `Client` whose state they change; call them inside `client.serial`.
 */
import { toHex, randomU64 } from './bytes.js';
import { ServerError } from './connection.js';
import { decodeContent, encodeContent } from './envelope.js';
import * as direct from './direct.js';
import { MAX_BODY } from './frames.js';
import { ErrorCode } from './message.js';
import { checkRoomName } from './names.js';
import { Room, SenderKeyDistribution, roomIdForName } from './room.js';

/**
 * The room's crypto state and entry, if we have it.
 * @param {import('./client.js').Client} client
 * @param {string} name
 */
export function loadRoom(client, name) {
  const e = client.profile.rooms[name];
  return e ? { room: Room.fromState(e.state), entry: e } : null;
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
 * Members and admin of a room as the server says.
 * @param {import('./client.js').Client} client
 * @param {string} name
 */
export async function listMembers(client, name) {
  const r = await client.conn.request({ type: 'ListMembers', room: name });
  return { admin: /** @type {string} */ (r.admin), members: /** @type {string[]} */ (r.members) };
}

/**
 * Reconciles a room with the server's member list (a new epoch if anyone is gone), then sends
 * our sender key to every member who lacks it for this epoch.
 * @param {import('./client.js').Client} client
 * @param {string} name
 */
export async function syncRoom(client, name) {
  let admin, members;
  try {
    ({ admin, members } = await listMembers(client, name));
  } catch (e) {
    if (e instanceof ServerError) delete client.profile.rooms[name];
    throw e;
  }
  const me = client.profile.username;
  const own = client.identity().public().signing;
  let loaded = loadRoom(client, name);
  if (!loaded) loaded = { room: Room.create(roomIdForName(name), own, 0), entry: { state: null, members: [], admin, key_sent: {} } };
  const { room, entry } = loaded;
  for (const gone of entry.members.filter((m) => m !== me && !members.includes(m))) {
    const k = client.contactIdentity(gone);
    if (k && room.isMember(k.signing)) room.removeMember(k.signing);
    entry.key_sent = {};
    client.notice(`#${name}: ${gone} is no longer a member; new room key (epoch ${room.epoch})`);
  }
  const others = members.filter((m) => m !== me);
  for (const m of others) {
    const k = await memberKey(client, m);
    if (!room.isMember(k)) room.addMember(k);
  }
  entry.members = members;
  entry.admin = admin;
  for (const m of Object.keys(entry.key_sent)) if (!members.includes(m)) delete entry.key_sent[m];
  storeRoom(client, name, room, entry);
  await client.save();
  const dist = room.distribution().toBytes();
  for (const m of others) {
    if (entry.key_sent[m] === room.epoch) continue;
    if (client.profile.contacts[m]?.key_changed) {
      client.notice(`#${name}: not sending the room key to ${m}: their safety number changed (verify first)`);
      continue;
    }
    await direct.sendContentTo(client, m, { type: 'RoomKey', room: name, distribution: dist });
    entry.key_sent[m] = room.epoch;
    await client.save();
  }
}

/**
 * A member's sender key arrived inside our pairwise session with `from`.
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
  if (!sender) return;
  const fresh = !client.profile.rooms[name];
  if (fresh || !client.profile.rooms[name].members.includes(from)) {
    try {
      const { admin, members } = await listMembers(client, name);
      let loaded = loadRoom(client, name);
      if (!loaded) loaded = { room: Room.create(roomIdForName(name), client.identity().public().signing, 0), entry: { state: null, members: [], admin, key_sent: {} } };
      for (const m of members.filter((x) => x !== client.profile.username)) {
        const k = await memberKey(client, m);
        if (!loaded.room.isMember(k)) loaded.room.addMember(k);
      }
      loaded.entry.members = members;
      loaded.entry.admin = admin;
      storeRoom(client, name, loaded.room, loaded.entry);
    } catch {
      return;
    }
  }
  const loaded = loadRoom(client, name);
  if (!loaded) return;
  const { room, entry } = loaded;
  if (!entry.members.includes(from)) {
    client.notice(`#${name}: ignored a room key from ${from}, who is not a member`);
    return;
  }
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
  if ((needsOurs || fresh) && !client.roomsToSync.includes(name)) client.roomsToSync.push(name);
}

/**
 * A room message arrived: verify, decrypt, check the sender is who the server named, record.
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
 * Sends a content to a room (membership reconciled and keys distributed first); returns the server id.
 * @param {import('./client.js').Client} client
 * @param {string} name
 * @param {import('./envelope.js').Content} content
 */
export async function sendToRoom(client, name, content) {
  await syncRoom(client, name);
  const loaded = loadRoom(client, name);
  if (!loaded) throw new Error(`#${name}: no room state`);
  const body = loaded.room.encrypt(encodeContent(content));
  if (body.length > MAX_BODY) throw new Error('the message is too long');
  storeRoom(client, name, loaded.room, loaded.entry);
  await client.save();
  const r = await client.conn.request({ type: 'SendToRoom', room: name, client_id: randomU64(), body });
  return String(r.server_id);
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
  await client.save();
  try {
    await syncRoom(client, name);
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

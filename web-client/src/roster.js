// @ts-check
/**
 * Signed rosters (proto-core `roster.rs`, PROTOCOL.md §4.7): room membership as a chain of
 * rosters signed by identity keys, which the server stores and relays but cannot extend. Every
 * refusal proto-core makes, this makes, in the same order and by the same name
 * (conformance/vectors/roster.json).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, equal } from './bytes.js';
import { ed25519Verify } from './keys.js';
import { MAX_ROOM_MEMBERS } from './message.js';
import { foldUsername } from './names.js';

export const ROSTER_LABEL = new TextEncoder().encode('Sealroom Roster v1');
export const ROSTER_MAX_MEMBERS = MAX_ROOM_MEMBERS;

/**
 * A roster or a step of the chain was refused; `kind` is proto-core's `RosterError` name.
 */
export class RosterError extends Error {
  /** @param {string} kind */
  constructor(kind) {
    super(`roster refused: ${kind}`);
    this.name = 'RosterError';
    this.kind = kind;
  }
}

/** Byte-wise order of two arrays: negative, zero or positive. @param {Uint8Array} a @param {Uint8Array} b */
function compare(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** @param {string} name */
function isUsername(name) {
  try {
    return foldUsername(name) === name;
  } catch {
    return false;
  }
}

/**
 * @typedef {{username: string, identity: Uint8Array}} RosterMember
 * @typedef {{bytes: Uint8Array, roomId: Uint8Array, version: bigint, epoch: number, prev: Uint8Array,
 *   admins: Uint8Array[], adminBytes: Uint8Array, members: RosterMember[], signer: Uint8Array}} Roster
 */

/**
 * Parses a signed roster: canonical form, then the signature by its signer.
 * @param {Uint8Array} bytes @returns {Roster}
 */
export function parseRoster(bytes) {
  let at = 0;
  /** @param {number} n */
  const take = (n) => {
    if (at + n > bytes.length) throw new RosterError('Truncated');
    const out = bytes.subarray(at, at + n);
    at += n;
    return out;
  };
  const view = (/** @type {Uint8Array} */ b) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  const roomId = take(16);
  const version = view(take(8)).getBigUint64(0, false);
  const epoch = view(take(4)).getUint32(0, false);
  const prev = take(32);
  const nAdmins = take(1)[0];
  const adminBytes = take(nAdmins * 32);
  const nMembers = view(take(2)).getUint16(0, false);
  if (nMembers > ROSTER_MAX_MEMBERS) throw new RosterError('TooManyMembers');
  const decoder = new TextDecoder('utf-8', { fatal: true });
  /** @type {RosterMember[]} */
  const members = [];
  /** @type {Uint8Array | null} */
  let last = null;
  for (let i = 0; i < nMembers; i++) {
    const name = take(take(1)[0]);
    const identity = take(32);
    let username;
    try {
      username = decoder.decode(name);
    } catch {
      throw new RosterError('BadUsername');
    }
    if (!isUsername(username)) throw new RosterError('BadUsername');
    if (last && compare(last, name) >= 0) throw new RosterError('NotCanonical');
    last = name;
    members.push({ username, identity });
  }
  const signer = take(32);
  const signedLen = at;
  const signature = take(64);
  if (at !== bytes.length) throw new RosterError('TrailingBytes');
  if (nAdmins === 0) throw new RosterError('NoAdmin');
  const admins = [];
  for (let i = 0; i < nAdmins; i++) {
    const admin = adminBytes.subarray(i * 32, i * 32 + 32);
    if (admins.length && compare(admins[admins.length - 1], admin) >= 0) throw new RosterError('NotCanonical');
    admins.push(admin);
    if (!members.some((m) => equal(m.identity, admin))) throw new RosterError('AdminNotMember');
  }
  if (!ed25519Verify(signer, concat(ROSTER_LABEL, bytes.subarray(0, signedLen)), signature)) {
    throw new RosterError('BadSignature');
  }
  return { bytes, roomId, version, epoch, prev, admins, adminBytes, members, signer };
}

/** SHA-256 of the whole signed roster. @param {Roster} r */
export function rosterHash(r) {
  return sha256(r.bytes);
}

/** @param {Roster} r @param {Uint8Array} key */
export function isAdmin(r, key) {
  return r.admins.some((a) => equal(a, key));
}

/** @param {Roster} r @param {string} username @param {Uint8Array} identity */
export function rosterContains(r, username, identity) {
  return r.members.some((m) => m.username === username && equal(m.identity, identity));
}

/** Throws unless `r` can be a room's first roster. @param {Roster} r */
export function checkFirst(r) {
  if (r.version !== 0n || r.prev.some((b) => b !== 0)) throw new RosterError('NotFirst');
  if (!isAdmin(r, r.signer)) throw new RosterError('SignerNotAdmin');
}

/**
 * Throws unless `r`, handed over in a `Content::Roster` by `sender` (IKs), may be the receiver's
 * starting point in the room with id `roomId` (PROTOCOL.md §4.7 step 3), in this order: the
 * room (`WrongRoom`), signed by the sender (`NotFromSender`), the sender an admin in it
 * (`SignerNotAdmin`), listing `receiver` with `receiverIdentity` (`NotListed`). As proto-core's
 * `Roster::check_invitation`; vectors: roster-invite.json.
 * @param {Roster} r @param {Uint8Array} roomId @param {Uint8Array} sender
 * @param {string} receiver @param {Uint8Array} receiverIdentity
 */
export function checkInvitation(r, roomId, sender, receiver, receiverIdentity) {
  if (compare(r.roomId, roomId) !== 0) throw new RosterError('WrongRoom');
  if (compare(r.signer, sender) !== 0) throw new RosterError('NotFromSender');
  if (!isAdmin(r, sender)) throw new RosterError('SignerNotAdmin');
  if (!rosterContains(r, receiver, receiverIdentity)) throw new RosterError('NotListed');
}

/** Members of `prev` that `next` no longer lists. @param {Roster} prev @param {Roster} next */
export function departed(prev, next) {
  return prev.members.filter((m) => !rosterContains(next, m.username, m.identity));
}

/**
 * Throws unless `next` may follow `prev`: same room, version + 1, prev hash, an allowed signer,
 * the epoch rule (in this order).
 * @param {Roster} prev @param {Roster} next
 */
export function checkNext(prev, next) {
  if (!equal(next.roomId, prev.roomId)) throw new RosterError('WrongRoom');
  if (next.version !== prev.version + 1n) throw new RosterError('WrongVersion');
  if (!equal(next.prev, rosterHash(prev))) throw new RosterError('WrongPrevious');
  if (!isAdmin(prev, next.signer)) {
    const leaving = prev.members.find((m) => equal(m.identity, next.signer));
    if (!leaving) throw new RosterError('NotAuthorized');
    const rest = prev.members.filter((m) => m !== leaving);
    const unchanged =
      equal(next.adminBytes, prev.adminBytes) &&
      rest.length === next.members.length &&
      rest.every((m, i) => m.username === next.members[i].username && equal(m.identity, next.members[i].identity));
    if (!unchanged) throw new RosterError('NotAuthorized');
  }
  let epoch = prev.epoch;
  if (departed(prev, next).length > 0) {
    if (prev.epoch === 0xffffffff) throw new RosterError('EpochOverflow');
    epoch = prev.epoch + 1;
  }
  if (next.epoch !== epoch) throw new RosterError('WrongEpoch');
}

/**
 * Encodes and signs a roster (proto-core `write_roster`): admins and members are sorted here
 * into canonical order, and the result is parsed back before it is returned, so a roster that
 * is not canonical is refused by its writer rather than by every reader.
 * @param {{roomId: Uint8Array, version: bigint, epoch: number, prev: Uint8Array,
 *   admins: Uint8Array[], members: RosterMember[]}} fields
 * @param {import('./keys.js').IdentityKeyPair} signer
 * @returns {Roster}
 */
export function writeRoster(fields, signer) {
  if (fields.members.length > ROSTER_MAX_MEMBERS) throw new RosterError('TooManyMembers');
  if (fields.admins.length > 255) throw new RosterError('NotCanonical');
  const enc = new TextEncoder();
  const admins = [...fields.admins].sort(compare);
  const members = fields.members
    .map((m) => ({ name: enc.encode(m.username), identity: m.identity }))
    .sort((a, b) => compare(a.name, b.name));
  /** @type {Uint8Array[]} */
  const parts = [];
  const head = new Uint8Array(28);
  const dv = new DataView(head.buffer);
  dv.setBigUint64(0, fields.version, false);
  dv.setUint32(8, fields.epoch, false);
  const count = new Uint8Array(2);
  new DataView(count.buffer).setUint16(0, members.length, false);
  parts.push(fields.roomId, head.subarray(0, 12), fields.prev, Uint8Array.of(admins.length), ...admins, count);
  for (const m of members) {
    if (m.name.length > 255) throw new RosterError('BadUsername');
    parts.push(Uint8Array.of(m.name.length), m.name, m.identity);
  }
  parts.push(signer.public().signing);
  const body = concat(...parts);
  const signature = signer.sign(concat(ROSTER_LABEL, body));
  return parseRoster(concat(body, signature));
}

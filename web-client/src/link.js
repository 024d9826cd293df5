// @ts-check
/**
 * Linking a device (docs/PROTOCOL.md §4.6; host-client `link_state.rs`): the link code as people
 * copy it, and the link state an existing device seals to it. The sealing itself is devices.js's;
 * base32 is @scure/base's (RFC 4648, no padding, strict: a stray letter or non-zero trailing
 * bits are refused).
 *
 * - The code as text: base32 of its 49 bytes, upper case, no padding (79 characters), in groups
 *   of four joined by `-`; read back with `-`, white space and case ignored.
 * - The link state, version 1: UTF-8 JSON `{version, username, identity, contacts, rooms}`,
 *   written as the CLI writes it (fields in that order, contacts and rooms sorted by name, no
 *   spaces) and read as it reads it: another version is refused, the username is checked
 *   against the account the new device logged into, a contact whose name is not a folded
 *   username (or is the account itself) is dropped, and so is a room whose name is not a room
 *   name or whose roster does not parse as one of that room (the state came over the network).
 *   `rooms` (each room the account is in, with the signed roster the sending device holds) is
 *   absent in states from older clients.
 *
 * The identity in a link state is the account's secret: nothing here logs it or puts it in an
 * error message.
 */
import { base32nopad } from '@scure/base';
import { equal, fromHex } from './bytes.js';
import { LINK_CODE_LEN, LinkCode, LinkError } from './devices.js';
import { checkRoomName, foldUsername } from './names.js';
import { roomIdForName } from './room.js';
import { parseRoster } from './roster.js';

/** The layout version of the link state. */
export const LINK_STATE_VERSION = 1;
/** The code as text, without the `-` between groups: base32 of 49 bytes. */
export const LINK_CODE_CHARS = Math.ceil((LINK_CODE_LEN * 8) / 5);

/** A link code as typed or pasted that is not one; the message says why, for people. */
export class LinkCodeError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'LinkCodeError';
  }
}

/** A link message whose state this version cannot use; nothing was set up. */
export class LinkStateError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'LinkStateError';
  }
}

/** The code as people copy it: base32, groups of four joined by `-`. @param {LinkCode} code */
export function linkCodeText(code) {
  const text = base32nopad.encode(code.encode());
  return /** @type {string[]} */ (text.match(/.{1,4}/g)).join('-');
}

/**
 * Reads a link code as typed or pasted (any case; `-` and white space ignored). Throws
 * `LinkCodeError` saying what is wrong: a character base32 does not use, the length, a damaged
 * last character, an unknown code version.
 * @param {string} text
 * @returns {LinkCode}
 */
export function parseLinkCode(text) {
  const compact = text.replace(/[\s-]/g, '').replace(/[a-z]/g, (c) => c.toUpperCase());
  if (!compact) throw new LinkCodeError('Paste the link code the new device shows.');
  const bad = /[^A-Z2-7]/u.exec(compact);
  if (bad) {
    const c = bad[0];
    const shown = /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(c) ? `“${c}”` : `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
    throw new LinkCodeError(`${shown} is not in a link code: it holds only the letters A–Z and the digits 2–7, in groups joined by “-”.`);
  }
  if (compact.length !== LINK_CODE_CHARS) {
    throw new LinkCodeError(`A link code has ${LINK_CODE_CHARS} letters and digits; this one has ${compact.length}. Copy the whole code the new device shows.`);
  }
  let bytes;
  try {
    bytes = base32nopad.decode(compact);
  } catch {
    throw new LinkCodeError('That is not a link code: its last character is wrong. Copy the whole code the new device shows.');
  }
  try {
    return LinkCode.decode(bytes);
  } catch (e) {
    if (e instanceof LinkError && e.kind === 'UnknownCodeVersion') {
      throw new LinkCodeError(`That link code is version ${bytes[0]}; this page reads version 1. Is the new device running a newer Sealroom?`);
    }
    throw new LinkCodeError(`That is not a link code: ${/** @type {Error} */ (e).message}.`);
  }
}

/**
 * A contact as the link state carries it.
 * @typedef {{identity_sig: string, identity_dh: string, verified: boolean, key_changed: boolean}} LinkedContact
 * What a new device takes from a link state: the account, its identity (hex, lower case), the
 * contacts with their trust, and the rooms with the signed roster the sending device holds (hex,
 * lower case; parsed and checked to be that room's).
 * @typedef {{username: string, identity: {sig: string, dh: string}, contacts: Record<string, LinkedContact>,
 *   rooms: Record<string, string>}} LinkState
 */

/**
 * The link state of an account (JSON, UTF-8), as `LinkState::of` writes it: the rooms are those
 * with a held roster. Overwrite the bytes once sealed: they hold the identity.
 * @param {{username: string, identity: {sig: string, dh: string}, contacts: Record<string, LinkedContact>,
 *   rooms?: Record<string, {roster?: string}>}} profile
 * @returns {Uint8Array}
 */
export function linkStateBytes(profile) {
  // Our own account is no contact of its own (a profile may hold it for our other devices).
  const names = Object.keys(profile.contacts).filter((name) => name !== profile.username).sort();
  const contacts = Object.fromEntries(names.map((name) => {
    const c = profile.contacts[name];
    return [name, { identity_sig: c.identity_sig, identity_dh: c.identity_dh, verified: !!c.verified, key_changed: !!c.key_changed }];
  }));
  const held = Object.entries(profile.rooms ?? {}).filter(([, r]) => r.roster).map(([name, r]) => [name, /** @type {string} */ (r.roster)]);
  const rooms = Object.fromEntries(held.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return new TextEncoder().encode(JSON.stringify({
    version: LINK_STATE_VERSION,
    username: profile.username,
    identity: profile.identity.sig + profile.identity.dh,
    contacts,
    rooms,
  }));
}

/** A name from the network made fit for one line of text: no control or bidi formatting characters, at most 64 characters. @param {string} s */
export function inertLine(s) {
  return [...s.replace(/[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu, '')].slice(0, 64).join('');
}

const isObject = (/** @type {unknown} */ v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const hexKey = (/** @type {unknown} */ v) => typeof v === 'string' && /^[0-9a-fA-F]{64}$/.test(v);

/**
 * The rooms of a link state: an entry whose name is not a room name, or whose roster (hex) does
 * not parse as a signed roster of that room, is dropped; so is a `rooms` that is not an object
 * (whether a roster lists us is checked when it is adopted).
 * @param {unknown} rooms
 * @returns {Record<string, string>}
 */
function linkedRooms(rooms) {
  if (!isObject(rooms)) return {};
  /** @type {[string, string][]} */
  const kept = [];
  for (const [name, hex] of Object.entries(/** @type {object} */ (rooms))) {
    try {
      checkRoomName(name);
      if (typeof hex !== 'string') continue;
      if (equal(parseRoster(fromHex(hex)).roomId, roomIdForName(name))) kept.push([name, hex.toLowerCase()]);
    } catch {
      // Not a room name, not hex, not a roster, or another room's: dropped.
    }
  }
  return Object.fromEntries(kept);
}

/**
 * Reads an opened link message for the account `username` (folded). Throws `LinkStateError`
 * for another version, another account, a damaged identity, or no link state at all; drops a
 * contact whose name is not a folded username, is the account itself, or whose keys are not
 * 32-byte hex, and a room as `linkedRooms` says.
 * @param {Uint8Array} bytes @param {string} username
 * @returns {LinkState}
 */
export function parseLinkState(bytes, username) {
  /** @type {any} */
  let v;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new LinkStateError('The link message holds no account state.');
  }
  if (!isObject(v) || typeof v.version !== 'number') throw new LinkStateError('The link message holds no account state.');
  if (v.version !== LINK_STATE_VERSION) {
    throw new LinkStateError(`The link message holds link state version ${inertLine(String(v.version))}; this page reads version ${LINK_STATE_VERSION}. Is the other device running a newer Sealroom?`);
  }
  if (typeof v.username !== 'string' || typeof v.identity !== 'string' || !isObject(v.contacts)) {
    throw new LinkStateError('The link message holds no account state.');
  }
  if (v.username !== username) {
    throw new LinkStateError(`The link message is for the account ${inertLine(v.username) || '(no name)'}, not ${username}; nothing was set up.`);
  }
  if (!/^[0-9a-fA-F]{128}$/.test(v.identity)) throw new LinkStateError('The link message’s identity key is damaged; nothing was set up.');
  const identity = v.identity.toLowerCase();
  /** @type {[string, LinkedContact][]} */
  const contacts = [];
  for (const [name, c] of Object.entries(v.contacts)) {
    if (!isObject(c) || typeof c.verified !== 'boolean' || typeof c.key_changed !== 'boolean') {
      throw new LinkStateError('The link message holds no account state.');
    }
    let folded = null;
    try {
      folded = foldUsername(name);
    } catch {
      // Not a username: dropped.
    }
    if (folded !== name || name === username || !hexKey(c.identity_sig) || !hexKey(c.identity_dh)) continue;
    contacts.push([name, { identity_sig: c.identity_sig.toLowerCase(), identity_dh: c.identity_dh.toLowerCase(), verified: c.verified, key_changed: c.key_changed }]);
  }
  return { username, identity: { sig: identity.slice(0, 64), dh: identity.slice(64) }, contacts: Object.fromEntries(contacts), rooms: linkedRooms(v.rooms) };
}

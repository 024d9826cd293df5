// @ts-check
/**
 * The grammar of names every end agrees on (docs/PROTOCOL.md §3.5), as proto-core's `names`
 * module applies it, checked on `conformance/vectors/names.json`: usernames are trimmed,
 * folded to lower case in ASCII only (never Unicode case folding), then `[a-z0-9_]{3,32}`;
 * room names are `[a-z0-9_-]{1,32}` with no folding. Also what people type, made into such
 * names: `usernameFrom` ("@Bob" → `bob`) and `roomNameFrom` (a suggestion: "Team Room" →
 * `team-room`), both ending in the checks above.
 */

/** A name outside the grammar: `kind` is `Username` or `RoomName`; the message is for people. */
export class NameError extends Error {
  /** @param {'Username' | 'RoomName'} kind */
  constructor(kind) {
    super(kind === 'Username'
      ? 'username must be 3 to 32 characters: letters a-z, digits and _'
      : 'room name must be 1 to 32 characters: a-z, digits, _ and -');
    this.name = 'NameError';
    this.kind = kind;
  }
}

/**
 * The folded username, or a `NameError`.
 * @param {string} raw
 * @returns {string}
 */
export function foldUsername(raw) {
  const folded = raw.trim().replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
  if (!/^[a-z0-9_]{3,32}$/.test(folded)) throw new NameError('Username');
  return folded;
}

/**
 * Throws a `NameError` unless `name` is a valid room name.
 * @param {string} name
 */
export function checkRoomName(name) {
  if (!/^[a-z0-9_-]{1,32}$/.test(name)) throw new NameError('RoomName');
}

/**
 * A room name as the server accepts it (`[a-z0-9_-]{1,32}`, checked by `checkRoomName`) from what
 * people type: "Team Room" becomes `team-room`, accents are dropped; throws when nothing usable
 * is left. The lower-casing here only suggests a name; what is sent passes `checkRoomName`.
 * @param {string} input
 */
export function roomNameFrom(input) {
  const name = input.trim().replace(/^#/, '').normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[\s.]+/g, '-').replace(/[^a-z0-9_-]/g, '').replace(/-{2,}/g, '-').replace(/^-+|-+$/g, '');
  if (!name) throw new Error('A room name needs at least one letter or digit.');
  if (name.length > 32) throw new Error(`"${name}" is too long: room names have at most 32 characters.`);
  checkRoomName(name);
  return name;
}

/**
 * A username as typed ("@Bob", " bob ") folded as the protocol folds it (ASCII only), or a
 * `NameError` saying what a username may hold.
 * @param {string} input
 */
export function usernameFrom(input) {
  return foldUsername(input.trim().replace(/^@/, ''));
}

// @ts-check
/**
 * The grammar of names every end agrees on (docs/PROTOCOL.md §3.5), as proto-core's `names`
 * module applies it, checked on `conformance/vectors/names.json`: usernames are trimmed,
 * folded to lower case in ASCII only (never Unicode case folding), then `[a-z0-9_]{3,32}`;
 * room names are `[a-z0-9_-]{1,32}` with no folding.
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

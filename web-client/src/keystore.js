// @ts-check
/**
 * The keystore: an account's state in IndexedDB, always encrypted. The key is derived from the
 * account password with WebCrypto PBKDF2-HMAC-SHA256 (600,000 iterations, 16-byte random salt)
 * as a non-extractable AES-256-GCM key, so the page never holds it as bytes.
 *
 * Two stores, so that one new message costs one small write instead of the whole history:
 * - `keystores`: one record per account, the salt, the iteration count, a nonce and the
 *   ciphertext of the profile without its history (private keys, sessions, room keys, contacts,
 *   the session token). Additional data: the username.
 * - `entries`: one record per history entry (a message, a room event), keyed by
 *   `[username, seq]`, each its own AES-GCM ciphertext with additional data naming the account
 *   and the position, so a record cannot be moved to another account or place unnoticed.
 * A save writes the profile and the changed entries in one transaction: both or neither.
 * A third store, `meta`, keeps the last username typed at login (not a secret: the record keys
 * above name it too). Nothing is ever written unencrypted. It does not know what a profile
 * holds (client.js does).
 */

const DB_NAME = 'sealroom';
const DB_VERSION = 2;
const STORE = 'keystores';
const ENTRIES = 'entries';
const META = 'meta';
export const DEFAULT_ROUNDS = 600_000;
/** The fewest rounds a stored keystore may claim (a tampered record cannot cheapen the key). */
export const MIN_ROUNDS = 1_000;
/** The most rounds a stored keystore may claim (a tampered record cannot make opening take hours). */
export const MAX_ROUNDS = 10_000_000;

/**
 * The round count a stored record claims, if this version accepts it (proto-core's CLI
 * keystore takes the same bounds).
 * @param {unknown} rounds
 */
export function acceptableRounds(rounds) {
  return Number.isInteger(rounds) && /** @type {number} */ (rounds) >= MIN_ROUNDS && /** @type {number} */ (rounds) <= MAX_ROUNDS;
}

/** @type {Promise<IDBDatabase> | null} */
let dbPromise = null;

/** The database, opened once per page (and reopened if another page upgrades it). @returns {Promise<IDBDatabase>} */
function openDb() {
  if (dbPromise) return dbPromise;
  dbPromise = new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, { keyPath: 'username' });
      if (!db.objectStoreNames.contains(ENTRIES)) db.createObjectStore(ENTRIES, { keyPath: ['username', 'seq'] });
      if (!db.objectStoreNames.contains(META)) db.createObjectStore(META, { keyPath: 'key' });
    };
    req.onsuccess = () => {
      const db = req.result;
      db.onversionchange = () => {
        db.close();
        dbPromise = null;
      };
      resolve(db);
    };
    req.onerror = () => {
      dbPromise = null;
      reject(req.error);
    };
  });
  return dbPromise;
}

/**
 * Runs `f` in one transaction over `stores`; resolves with what `f` returns once it commits.
 * @template T @param {string[]} stores @param {'readonly'|'readwrite'} mode
 * @param {(tx: IDBTransaction) => T} f @returns {Promise<T>}
 */
async function transact(stores, mode, f) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(stores, mode);
    const out = f(tx);
    tx.oncomplete = () => resolve(out);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

/** @template T @param {IDBRequest<T>} req @returns {Promise<T>} */
function result(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** All of one account's entry records. @param {string} username */
function entryRange(username) {
  return IDBKeyRange.bound([username, -Infinity], [username, Infinity]);
}

/** The keystore could not be opened with that password (or is damaged). */
export class KeystoreError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'KeystoreError';
  }
}

/** @param {string} password @param {Uint8Array} salt @param {number} rounds */
async function deriveKey(password, salt, rounds) {
  const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(password), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt: /** @type {BufferSource} */ (salt), iterations: rounds },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

const te = new TextEncoder();

/** Additional data binding an entry record to its account and position. @param {string} username @param {number} seq */
const entryAd = (username, seq) => te.encode(`${username}\u0000entry\u0000${seq}`);

/** An unlocked keystore: encrypts and stores one account's profile and history. */
export class Keystore {
  /** @param {string} username @param {CryptoKey} key @param {Uint8Array} salt @param {number} rounds */
  constructor(username, key, salt, rounds) {
    this.username = username;
    this.key = key;
    this.salt = salt;
    this.rounds = rounds;
  }

  /** Whether this browser holds a keystore for `username`. @param {string} username */
  static async exists(username) {
    const rec = await transact([STORE], 'readonly', (tx) => result(tx.objectStore(STORE).get(username)));
    return (await rec) !== undefined;
  }

  /** A new keystore (not written until `save`). @param {string} username @param {string} password */
  static async create(username, password, rounds = DEFAULT_ROUNDS) {
    const salt = crypto.getRandomValues(new Uint8Array(16));
    return new Keystore(username, await deriveKey(password, salt, rounds), salt, rounds);
  }

  /**
   * Opens and decrypts the profile and its history (`profile.history`, in `seq` order); throws
   * `KeystoreError` on a wrong password. A profile saved before entries had their own records
   * comes back with its history inside, and no entry has a `seq` yet (client.js moves them).
   * @param {string} username @param {string} password
   * @returns {Promise<{keystore: Keystore, profile: any}>}
   */
  static async open(username, password) {
    const [recP, entriesP] = await transact([STORE, ENTRIES], 'readonly', (tx) => [
      result(tx.objectStore(STORE).get(username)),
      result(tx.objectStore(ENTRIES).getAll(entryRange(username))),
    ]);
    const rec = await recP;
    const records = /** @type {any[]} */ (await entriesP);
    if (!rec) throw new KeystoreError('no keystore for this account in this browser');
    if (!acceptableRounds(rec.rounds)) throw new KeystoreError(`the keys kept in this browser claim ${rec.rounds} rounds, outside ${MIN_ROUNDS}–${MAX_ROUNDS}: not opened`);
    const salt = new Uint8Array(rec.salt);
    const key = await deriveKey(password, salt, rec.rounds);
    let plain;
    try {
      plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: rec.nonce, additionalData: te.encode(username) }, key, rec.ciphertext);
    } catch {
      throw new KeystoreError('wrong password for the keys kept in this browser');
    }
    const profile = JSON.parse(new TextDecoder().decode(plain));
    if (!Array.isArray(profile.history)) profile.history = [];
    for (const r of records) {
      try {
        const bytes = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: r.nonce, additionalData: entryAd(username, r.seq) }, key, r.ciphertext);
        const entry = JSON.parse(new TextDecoder().decode(bytes));
        entry.seq = r.seq;
        profile.history.push(entry);
      } catch {
        // A damaged record loses one entry, never the account.
        console.warn('skipped a history record that does not decrypt', r.seq);
      }
    }
    profile.history.sort((/** @type {any} */ a, /** @type {any} */ b) => (a.seq ?? -1) - (b.seq ?? -1));
    return { keystore: new Keystore(username, key, salt, rec.rounds), profile };
  }

  /**
   * Encrypts and writes the profile (without `history`) and the given entries, deleting the
   * records of `removed` sequence numbers, in one transaction.
   * @param {any} profile
   * @param {{put?: {seq: number}[], removed?: number[]}} [changes]
   */
  async save(profile, changes = {}) {
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const data = te.encode(JSON.stringify(profile, /** @this {any} @param {string} k @param {any} v */ function (k, v) {
      return this === profile && k === 'history' ? undefined : v;
    }));
    const ciphertext = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: te.encode(this.username) }, this.key, data);
    data.fill(0);
    const rec = { username: this.username, v: 2, salt: this.salt, rounds: this.rounds, nonce, ciphertext };
    /** @type {{username: string, seq: number, nonce: Uint8Array, ciphertext: ArrayBuffer}[]} */
    const records = [];
    for (const e of changes.put ?? []) {
      const n = crypto.getRandomValues(new Uint8Array(12));
      const bytes = te.encode(JSON.stringify(e, (k, v) => (k === 'seq' ? undefined : v)));
      const c = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: n, additionalData: entryAd(this.username, e.seq) }, this.key, bytes);
      bytes.fill(0);
      records.push({ username: this.username, seq: e.seq, nonce: n, ciphertext: c });
    }
    await transact([STORE, ENTRIES], 'readwrite', (tx) => {
      tx.objectStore(STORE).put(rec);
      const entries = tx.objectStore(ENTRIES);
      for (const seq of changes.removed ?? []) entries.delete([this.username, seq]);
      for (const r of records) entries.put(r);
    });
  }

  /** Deletes the account's keystore and history from this browser. @param {string} username */
  static async remove(username) {
    await transact([STORE, ENTRIES, META], 'readwrite', (tx) => {
      tx.objectStore(STORE).delete(username);
      tx.objectStore(ENTRIES).delete(entryRange(username));
      const meta = tx.objectStore(META);
      const req = meta.get('last_username');
      req.onsuccess = () => {
        if (req.result?.value === username) meta.delete('last_username');
      };
    });
  }

  /** The username last used to log in on this browser, if any. @returns {Promise<string | null>} */
  static async lastUsername() {
    try {
      const rec = await transact([META], 'readonly', (tx) => result(tx.objectStore(META).get('last_username')));
      return (await rec)?.value ?? null;
    } catch {
      return null;
    }
  }

  /** Remembers the username for the next login screen. @param {string} username */
  static async rememberUsername(username) {
    await transact([META], 'readwrite', (tx) => {
      tx.objectStore(META).put({ key: 'last_username', value: username });
    });
  }
}

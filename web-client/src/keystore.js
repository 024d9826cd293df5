// @ts-check
/**
 * The keystore: one encrypted record per account in IndexedDB. The record's key is derived
 * from the account password with WebCrypto PBKDF2-HMAC-SHA256 (600,000 iterations, 16-byte
 * random salt) as a non-extractable AES-256-GCM key, so the page never holds it as bytes;
 * what is stored is the salt, the iteration count, a nonce and the ciphertext of the profile
 * (private keys, sessions, room keys, contacts, history, the session token). Nothing is ever
 * written unencrypted. It does not know what a profile holds (client.js does).
 */

const DB_NAME = 'sealroom';
const STORE = 'keystores';
export const DEFAULT_ROUNDS = 600_000;

/** @returns {Promise<IDBDatabase>} */
function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'username' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** @template T @param {'readonly'|'readwrite'} mode @param {(s: IDBObjectStore) => IDBRequest<T>} f @returns {Promise<T>} */
async function withStore(mode, f) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = f(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
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

/** An unlocked keystore: encrypts and stores one account's profile. */
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
    const rec = await withStore('readonly', (s) => s.get(username));
    return rec !== undefined;
  }

  /** A new keystore (not written until `save`). @param {string} username @param {string} password */
  static async create(username, password, rounds = DEFAULT_ROUNDS) {
    const salt = crypto.getRandomValues(new Uint8Array(16));
    return new Keystore(username, await deriveKey(password, salt, rounds), salt, rounds);
  }

  /**
   * Opens and decrypts; throws `KeystoreError` on a wrong password.
   * @param {string} username @param {string} password
   * @returns {Promise<{keystore: Keystore, profile: any}>}
   */
  static async open(username, password) {
    const rec = await withStore('readonly', (s) => s.get(username));
    if (!rec) throw new KeystoreError('no keystore for this account in this browser');
    const salt = new Uint8Array(rec.salt);
    const key = await deriveKey(password, salt, rec.rounds);
    let plain;
    try {
      plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: rec.nonce, additionalData: new TextEncoder().encode(username) }, key, rec.ciphertext);
    } catch {
      throw new KeystoreError('wrong password for the keys kept in this browser');
    }
    const profile = JSON.parse(new TextDecoder().decode(plain));
    return { keystore: new Keystore(username, key, salt, rec.rounds), profile };
  }

  /** Encrypts and writes the whole profile. @param {any} profile */
  async save(profile) {
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const data = new TextEncoder().encode(JSON.stringify(profile));
    const ciphertext = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: new TextEncoder().encode(this.username) }, this.key, data);
    data.fill(0);
    const rec = { username: this.username, v: 1, salt: this.salt, rounds: this.rounds, nonce, ciphertext };
    await withStore('readwrite', (s) => s.put(rec));
  }

  /** Deletes the account's keystore from this browser. @param {string} username */
  static async remove(username) {
    await withStore('readwrite', (s) => s.delete(username));
  }
}

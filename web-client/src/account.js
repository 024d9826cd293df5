// @ts-check
/**
 * The account's recovery from the browser (docs/PROTOCOL.md §3.4, messages 40-47): change the
 * password, enroll a new authenticator, replace and count the recovery codes, delete the
 * account. Every change carries the password and a second factor (six digits: a TOTP code;
 * anything else: a recovery code, used up); the server refuses a wrong one with one text.
 *
 * The keys in this browser are encrypted under the account password (keystore.js), so a new
 * password re-encrypts them — the profile and every history record — in one transaction.
 */
import { Keystore } from './keystore.js';

/** @typedef {import('./client.js').Client} Client */

/** Changes the password; this browser's keys are re-encrypted under the new one. @param {Client} client @param {string} current @param {string} next @param {string} code */
export async function changePassword(client, current, next, code) {
  await client.conn.request({ type: 'ChangePassword', current, new: next, code: code.trim() });
  // In the client's queue, after any save under way: no write under the old key can land
  // between the records written here.
  await client.serial(async () => {
    await client.saving;
    const keystore = await Keystore.create(client.profile.username, next);
    const entries = /** @type {{seq: number}[]} */ (client.profile.history.filter((/** @type {any} */ e) => typeof e.seq === 'number'));
    await keystore.save(client.profile, { put: entries });
    client.keystore = keystore;
  });
}

/** Starts enrolling a new authenticator; resolves with its `otpauth://` URI. @param {Client} client @param {string} password @param {string} code */
export async function startNewAuthenticator(client, password, code) {
  const r = await client.conn.request({ type: 'ReenrollTotp', password, code: code.trim() });
  if (r.type !== 'TotpEnrollment') throw new Error(`unexpected reply ${r.type}`);
  return /** @type {string} */ (r.uri);
}

/** A code from the new authenticator puts it in force. @param {Client} client @param {string} code */
export async function confirmNewAuthenticator(client, code) {
  await client.conn.request({ type: 'ConfirmNewTotp', code: code.trim() });
}

/** New recovery codes (the old ones stop working). @param {Client} client @param {string} password @param {string} code @returns {Promise<string[]>} */
export async function regenerateRecoveryCodes(client, password, code) {
  const r = await client.conn.request({ type: 'RegenerateRecoveryCodes', password, code: code.trim() });
  if (r.type !== 'RecoveryCodes') throw new Error(`unexpected reply ${r.type}`);
  return r.codes;
}

/** How many recovery codes are left. @param {Client} client @returns {Promise<number>} */
export async function recoveryCodesLeft(client) {
  const r = await client.conn.request({ type: 'CountRecoveryCodes' });
  if (r.type !== 'RecoveryCodesLeft') throw new Error(`unexpected reply ${r.type}`);
  return r.remaining;
}

/** Deletes the account on the server, then its keys and history in this browser. @param {Client} client @param {string} password @param {string} code */
export async function deleteAccount(client, password, code) {
  // The server closes the connection after its answer: no reconnecting then.
  client.closing = true;
  try {
    await client.conn.request({ type: 'DeleteAccount', password, code: code.trim() });
  } catch (e) {
    client.closing = false;
    throw e;
  }
  await client.forgetThisBrowser();
}

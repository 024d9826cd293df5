// Page-level helpers shared by the UI tests: a fresh browser context per user, registration
// through the screens (TOTP from the enrollment secret), and the chat gestures people make.
import assert from 'node:assert/strict';
import { nextCode } from './harness.mjs';

/** A new context (its own IndexedDB) and page; records dialogs, page errors, CSP violations and failed responses. */
export async function newPage(browser, server, { viewport = { width: 1100, height: 760 }, colorScheme = 'light', init } = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport, colorScheme, acceptDownloads: true });
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  page.dialogs = [];
  page.errors = [];
  page.failed = [];
  page.on('dialog', async (d) => {
    page.dialogs.push(d.message());
    await d.dismiss();
  });
  page.on('pageerror', (e) => {
    page.errors.push(e.message);
    console.error('page error:', e.message);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) page.failed.push(`${r.status()} ${r.url()}`);
  });
  await page.goto(server.url);
  return { context, page };
}

/** Fills the registration form and returns the TOTP secret (on the enrollment screen). */
export async function fillRegistration(page, { username, name, password }) {
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('Your name').fill(name ?? username);
  await page.getByLabel('Email').fill(`${username}@example.org`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Password again').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('#screen-enroll').waitFor();
  return (await page.locator('#totp-secret').textContent()).trim();
}

/** Confirms enrollment; resolves on the recovery-codes screen. */
export async function confirmEnrollment(page, secret) {
  await page.getByLabel('Code from your app').fill(await nextCode(secret));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.locator('#screen-recovery').waitFor();
}

/** A whole registration in a new context; resolves in the chat. */
export async function registerUser(browser, server, user, opts) {
  const { page, context } = await newPage(browser, server, opts);
  const secret = await fillRegistration(page, user);
  await confirmEnrollment(page, secret);
  await page.getByRole('button', { name: /saved them/ }).click();
  await page.locator('#screen-chat').waitFor();
  await page.locator('#status.online').waitFor();
  return { page, context, secret, ...user };
}

/** Opens (or starts) a conversation from the side list. */
export async function openConv(page, conv) {
  const item = page.locator(`button.conv[data-conv="${conv}"]`);
  if ((await item.count()) === 0) {
    await page.getByLabel('Username to message').fill(conv.slice(1));
    await page.getByRole('button', { name: 'Chat', exact: true }).click();
  } else {
    await item.click();
  }
  await page.locator('#conv-title', { hasText: conv }).waitFor();
}

/** Types and sends with Enter; resolves when our bubble shows. */
export async function send(page, text) {
  await page.locator('#composer-text').fill(text);
  await page.locator('#composer-text').press('Enter');
  await page.locator('#messages li.mine .text', { hasText: text }).last().waitFor();
}

/** Waits until `text` shows in `conv` (opening it). */
export async function expectMessage(page, conv, text) {
  await page.locator(`button.conv[data-conv="${conv}"]`).waitFor({ timeout: 15000 });
  await page.locator(`button.conv[data-conv="${conv}"]`).click();
  await page.locator('#messages .text', { hasText: text }).first().waitFor({ timeout: 15000 });
}

/** Creates a room from the side list; resolves when it is open. */
export async function createRoom(page, typed, conv) {
  await page.getByLabel('New room name').fill(typed);
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.locator('#conv-title', { hasText: conv }).waitFor();
}

/**
 * Invites from the open room's member panel (opening it if closed); resolves when the page says
 * the invitation went. The invitee is not a member until it accepts (`acceptInvitation`).
 */
export async function invite(page, room, user) {
  const toggle = page.locator('#toggle-members[aria-expanded="false"]');
  if (await toggle.count()) await toggle.click();
  await page.getByLabel(`Username to invite to ${room}`).fill(user);
  await page.getByRole('button', { name: 'Invite', exact: true }).click();
  await page.locator('#invite-status', { hasText: `Invited ${user}; they join when they accept.` }).waitFor({ timeout: 15000 });
}

/** The invitee accepts from the Invitations list; resolves when the room is open and lists them. */
export async function acceptInvitation(page, room, from) {
  const item = page.locator(`#invitations li[data-room="${room.slice(1)}"]`);
  await item.waitFor({ timeout: 15000 });
  if (from) assert.equal(await item.locator('.invitation-text').textContent(), `${from} invited you to ${room}`);
  await page.getByRole('button', { name: `Accept invitation to ${room}` }).click();
  await page.locator('#conv-title', { hasText: room }).waitFor({ timeout: 15000 });
  await item.waitFor({ state: 'detached' });
}

/** Reads one account's records from IndexedDB: the profile record's size and the entry records. */
export function readStore(page, username) {
  return page.evaluate((username) => new Promise((ok, fail) => {
    const req = indexedDB.open('sealroom');
    req.onerror = () => fail(req.error);
    req.onsuccess = () => {
      const db = req.result;
      const names = [...db.objectStoreNames];
      if (!names.includes('entries')) {
        const get = db.transaction('keystores').objectStore('keystores').get(username);
        get.onsuccess = () => ok({ profile: get.result ? new Uint8Array(get.result.ciphertext).length : 0, entries: [], hasEntries: false });
        return;
      }
      const tx = db.transaction(['keystores', 'entries']);
      const get = tx.objectStore('keystores').get(username);
      const all = tx.objectStore('entries').getAll(IDBKeyRange.bound([username, -Infinity], [username, Infinity]));
      tx.oncomplete = () => ok({
        profile: get.result ? new Uint8Array(get.result.ciphertext).length : 0,
        entries: all.result.map((r) => Array.from(new Uint8Array(r.ciphertext), (b) => String.fromCharCode(b)).join('')),
        hasEntries: true,
      });
    };
  }), username);
}

export { assert };

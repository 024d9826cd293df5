// Account settings in the browser against a real server (docs/PROTOCOL.md §3.4, messages
// 40-47): recovery codes counted and replaced; the password changed (and the keys in this
// browser re-encrypted, so a reload logs in with the new one); a new authenticator enrolled
// with a recovery code; the account deleted. Each refuses a wrong password, a wrong code and a
// replayed code with the server's reason, and nothing changes then.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, nextCode, screenshot, startServer, wrongCode } from './harness.mjs';
import { readStore, registerUser } from './ui.mjs';

const JUNO = { username: 'juno', name: 'Juno Example', password: 'cobalt lantern meadow 47 quartz' };
const NEW_PASSWORD = 'saffron harbor willow 82 tundra';
const WRONG = 'not the password of juno 0000';
const REFUSED = 'the password or code is wrong';

let server;
let browser;
let juno;
/** Recovery codes made in the first test, used by the later ones. */
let codes = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  juno = await registerUser(browser, server, JUNO);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function openSettings(page) {
  await page.getByRole('button', { name: 'Account settings…' }).click();
  await page.locator('#settings').waitFor();
}

/** Fills a settings form's fields by id and presses its button. */
async function submit(page, fields, button) {
  for (const [id, value] of Object.entries(fields)) await page.locator(`#${id}`).fill(value);
  await page.locator('#settings').getByRole('button', { name: button, exact: true }).click();
}

test('recovery codes: counted, replaced; a wrong password, a wrong code and a replayed code are refused', async () => {
  const p = juno.page;
  await openSettings(p);
  await p.locator('#settings-recovery-left', { hasText: '10 recovery codes left.' }).waitFor();
  // The devices section: this browser, named after itself at registration.
  const row = p.locator('#settings-devices-rows tr');
  await row.first().waitFor();
  assert.equal(await row.count(), 1);
  assert.match(await row.first().textContent(), /Chrom(e|ium) on Linux.*This browser/);
  await submit(p, { 'settings-codes-password': WRONG, 'settings-codes-code': wrongCode(juno.secret) }, 'Make new recovery codes');
  await p.locator('#settings-codes-error', { hasText: REFUSED }).waitFor();
  await submit(p, { 'settings-codes-password': JUNO.password, 'settings-codes-code': wrongCode(juno.secret) }, 'Make new recovery codes');
  await p.locator('#settings-codes-error', { hasText: REFUSED }).waitFor();
  assert.equal(await p.locator('#settings-recovery-codes').count(), 0, 'no codes after a refusal');
  const code = await nextCode(juno.secret);
  await submit(p, { 'settings-codes-password': JUNO.password, 'settings-codes-code': code }, 'Make new recovery codes');
  await p.locator('#settings-recovery-codes li').nth(9).waitFor();
  codes = (await p.locator('#settings-recovery-codes code').allTextContents()).map((c) => c.trim());
  assert.equal(codes.length, 10);
  assert.equal(await p.locator('#settings-codes-error').textContent(), '');
  await screenshot(p, 'settings-01-new-recovery-codes');
  // The same TOTP code again: a replay, refused.
  await submit(p, { 'settings-codes-password': JUNO.password, 'settings-codes-code': code }, 'Make new recovery codes');
  await p.locator('#settings-codes-error', { hasText: REFUSED }).waitFor();
  await p.locator('#settings-recovery-left', { hasText: '10 recovery codes left.' }).waitFor();
  await p.locator('#settings-close').click();
});

test('the password changes, and the keys in this browser open with the new one', async () => {
  const p = juno.page;
  await openSettings(p);
  const fields = (current, code) => ({
    'settings-current-password': current,
    'settings-new-password': NEW_PASSWORD,
    'settings-new-password2': NEW_PASSWORD,
    'settings-password-code': code,
  });
  await submit(p, fields(WRONG, codes[0]), 'Change password');
  await p.locator('#settings-password-error', { hasText: REFUSED }).waitFor();
  const before = await readStore(p, 'juno');
  await submit(p, fields(JUNO.password, codes[0]), 'Change password');
  await p.locator('#settings-password-status', { hasText: 'Password changed.' }).waitFor();
  // The recovery code was used up: a second change with it is refused.
  await submit(p, fields(NEW_PASSWORD, codes[0]), 'Change password');
  await p.locator('#settings-password-error', { hasText: REFUSED }).waitFor();
  const after = await readStore(p, 'juno');
  assert.equal(after.entries.length, before.entries.length, 'every history record is kept, re-encrypted');
  await p.locator('#settings-close').click();

  // A reload: the old password no longer opens this browser's keys; the new one does.
  await p.reload();
  await p.locator('#screen-login').waitFor();
  await p.getByLabel('Username').fill(JUNO.username);
  await p.getByLabel('Password', { exact: true }).fill(JUNO.password);
  await p.getByRole('button', { name: 'Log in' }).click();
  await p.locator('#login-error', { hasText: 'wrong password' }).waitFor();
  await p.getByLabel('Password', { exact: true }).fill(NEW_PASSWORD);
  await p.getByRole('button', { name: 'Log in' }).click();
  await p.locator('#screen-chat').waitFor();
  await p.locator('#status.online').waitFor();
});

test('a new authenticator, started with a recovery code, replaces the old one', async () => {
  const p = juno.page;
  await openSettings(p);
  await submit(p, { 'settings-totp-password': NEW_PASSWORD, 'settings-totp-code': 'zzzz-zzzz-zzzz-zzzz' }, 'Start');
  await p.locator('#settings-totp-error', { hasText: REFUSED }).waitFor();
  await submit(p, { 'settings-totp-password': NEW_PASSWORD, 'settings-totp-code': codes[1] }, 'Start');
  const secret = (await p.locator('#settings-new-totp-secret').textContent()).trim();
  assert.notEqual(secret, juno.secret);
  await screenshot(p, 'settings-02-new-authenticator');
  // A code of the old authenticator does not confirm the new one.
  await p.locator('#settings-new-totp-code').fill(await nextCode(juno.secret));
  await p.locator('#settings-new-totp').getByRole('button', { name: 'Confirm' }).click();
  await p.locator('#settings-new-totp-error', { hasText: 'does not match' }).waitFor();
  await p.locator('#settings-new-totp-code').fill(await nextCode(secret));
  await p.locator('#settings-new-totp').getByRole('button', { name: 'Confirm' }).click();
  await p.locator('#settings-new-totp-done').waitFor();
  juno.secret = secret;
  await p.locator('#settings-close').click();
});

test('deleting the account needs the password and a code, then forgets everything', async () => {
  const p = juno.page;
  await openSettings(p);
  await submit(p, { 'settings-delete-password': WRONG, 'settings-delete-code': codes[2] }, 'Delete the account…');
  await p.getByRole('dialog', { name: 'Delete juno?' }).getByRole('button', { name: 'Delete the account' }).click();
  await p.locator('#settings-delete-error', { hasText: REFUSED }).waitFor();
  assert.ok((await readStore(p, 'juno')).profile > 0, 'a refusal deletes nothing');
  await submit(p, { 'settings-delete-password': NEW_PASSWORD, 'settings-delete-code': codes[2] }, 'Delete the account…');
  await p.getByRole('dialog', { name: 'Delete juno?' }).getByRole('button', { name: 'Delete the account' }).click();
  await p.locator('#screen-login').waitFor();
  await p.locator('#login-error', { hasText: 'Your account was deleted' }).waitFor();
  const left = await readStore(p, 'juno');
  assert.equal(left.profile, 0, 'no keystore record');
  assert.equal(left.entries.length, 0, 'no history records');
  // The server forgot it too.
  await p.getByLabel('Username').fill(JUNO.username);
  await p.getByLabel('Password', { exact: true }).fill(NEW_PASSWORD);
  await p.getByRole('button', { name: 'Log in' }).click();
  await p.locator('#screen-code').waitFor();
  await p.getByLabel('Authenticator code').fill(await nextCode(juno.secret));
  await p.getByRole('button', { name: 'Continue' }).click();
  await p.locator('#code-error', { hasText: 'login failed' }).waitFor();
  assert.deepEqual(p.errors, []);
});

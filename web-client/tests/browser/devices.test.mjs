// Linked devices across the browser and the `sealroom` CLI against a real server
// (docs/PROTOCOL.md §4.6, §6 "Devices"):
// (a) a CLI account links this browser ("Use an existing account": the page shows the code, the
//     CLI runs `devices add CODE`); a message to the account then reaches both;
// (b) a browser account links a CLI device (`sealroom link` shows the code, Settings → Link a
//     device takes it); a message to the account reaches both;
// (b2) sent-message sync and receipts per device: what the browser sends shows on its CLI device
//     as sent from another device, and the other way round; a text to an account with two
//     devices counts "delivered to 1 of 2 devices", then "2 of 2";
// (c) the browser revokes the CLI device: the next message reaches only the browser, and the
//     CLI is logged out;
// (d) a browser whose device was revoked is offered to link itself again, and keeps its messages.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, nextCode, screenshot, startServer } from './harness.mjs';
import { expectMessage, newPage, openConv, registerUser, send } from './ui.mjs';

const skip = !process.env.SEALROOM_CLI_BIN && 'set SEALROOM_CLI_BIN to the sealroom binary';
const ERIN = { username: 'erin', name: 'Erin Browser', password: 'amber quartz lagoon 58 falcon' };
const CAROL_PASSWORD = 'copper meadow tundra 31 heron';

let server;
let browser;
let erin;
/** carol: a CLI account; `page` is her browser once linked. */
const carol = { home: null, page: null };
/** erin's CLI device, once linked. */
let erinCli = null;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  erin = await registerUser(browser, server, ERIN);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** "Use an existing account" up to the code shown; returns the code text. */
async function startLinking(page, username, password, secret) {
  await page.getByRole('button', { name: 'Use an existing account' }).click();
  await page.locator('#screen-link').waitFor();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('#screen-link-code').waitFor();
  await page.getByLabel('Authenticator code').fill(await nextCode(secret));
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('#screen-link-wait').waitFor();
  await page.locator('#link-countdown', { hasText: /left$/ }).waitFor();
  return (await page.locator('#link-code-text').textContent()).trim();
}

async function openSettings(page) {
  await page.getByRole('button', { name: 'Account settings…' }).click();
  await page.locator('#settings').waitFor();
}

test('(a) a CLI account links this browser as a new device; a message to the account reaches both', { skip }, async () => {
  const { cli, cliRegister } = await import('./cli.mjs');
  carol.home = await cliRegister(server, 'carol', CAROL_PASSWORD);
  // carol knows erin before linking: the contact comes over with its trust.
  await cli(carol.home, ['send', '@erin', 'Hello Erin, from carol’s terminal.']);
  await expectMessage(erin.page, '@carol', 'Hello Erin, from carol’s terminal.');

  const { page } = await newPage(browser, server);
  carol.page = page;
  const code = await startLinking(page, 'carol', CAROL_PASSWORD, carol.home.secret);
  assert.match(code, /^([A-Z2-7]{4}-){19}[A-Z2-7]{3}$/);
  assert.equal(await page.locator('#screen-link-wait img.qr').count(), 1, 'the code as a QR code too');
  await screenshot(page, 'devices-01-link-code');
  // No terminal: `devices add` asks no confirmation.
  const added = await cli(carol.home, ['--json', 'devices', 'add', code]);
  assert.match(added, /"event":"link_sent"/);
  await page.locator('#screen-chat').waitFor({ timeout: 30000 });
  await page.locator('#status.online').waitFor();
  await page.locator('#notices', { hasText: 'This browser is now device 2 of carol, with 1 contact and their trust.' }).waitFor();
  await screenshot(page, 'devices-02-linked-browser');
  // The CLI lists it.
  const listed = JSON.parse((await cli(carol.home, ['--json', 'devices'])).split('\n').find((l) => l.startsWith('{"current"')));
  const devices = listed.devices.sort((x, y) => x.id - y.id);
  assert.deepEqual(devices.map((d) => [d.id, d.revoked_at]), [[1, null], [2, null]]);
  assert.match(devices[1].name, /Chrom(e|ium) on Linux/);

  // A third user writes to carol: her terminal and her browser both read it.
  await openConv(erin.page, '@carol');
  await send(erin.page, 'To both of carol’s devices.');
  await expectMessage(page, '@erin', 'To both of carol’s devices.');
  const inbox = await cli(carol.home, ['--json', 'inbox', '--wait', '5']);
  assert.match(inbox, /To both of carol’s devices\./);
  // The browser writes as carol, with the identity erin already trusts: no key change for erin.
  await openConv(page, '@erin');
  await send(page, 'Writing from my new browser.');
  await expectMessage(erin.page, '@carol', 'Writing from my new browser.');
  assert.equal(await erin.page.locator('#key-change-banner').count(), 0, 'the same identity: no warning');
  assert.deepEqual(page.errors, []);
});

test('(b) a browser account links a CLI device from Account settings; a message to the account reaches both', { skip }, async () => {
  const { cli, cliBackground, cliHome } = await import('./cli.mjs');
  assert.ok(carol.home, 'carol was registered by (a)');
  const home = cliHome('erin', ERIN.password);
  const linking = cliBackground(home, ['--json', 'link', '--server', server.addr, '--username', 'erin', '--device-name', 'erin terminal', '--code', await nextCode(erin.secret)]);
  const shown = await linking.line((o) => o.event === 'link_code');
  assert.ok(shown, `sealroom link showed no code: ${linking.output}`);
  const p = erin.page;
  await openSettings(p);
  await p.locator('#settings-link-device').click();
  await p.locator('#link-device').waitFor();
  // A code with a character base32 does not use is refused with the reason; nothing is sent.
  await p.locator('#link-device-code').fill(shown.code.replace(/^./, '1'));
  await p.locator('#link-device-send').click();
  await p.locator('#link-device-error', { hasText: '“1” is not in a link code' }).waitFor();
  // Pasted as people do: lower case, on two lines.
  await p.locator('#link-device-code').fill(`${shown.code.slice(0, 40).toLowerCase()}\n${shown.code.slice(40)}`);
  await p.locator('#link-device-send').click();
  await p.locator('#link-device-status', { hasText: 'The new device will finish on its own' }).waitFor();
  assert.equal(await p.locator('#link-device-error').textContent(), '');
  await screenshot(p, 'devices-03-link-sent');
  assert.equal(await linking.exit, 0, linking.output);
  const done = await linking.line((o) => o.event === 'linked');
  assert.equal(done.username, 'erin');
  assert.equal(done.contacts, 1, 'carol, with her trust');
  await p.locator('#link-device-close').click();
  // The devices list shows it once it added itself.
  await p.locator('#settings-devices-rows tr', { hasText: 'erin terminal' }).waitFor({ timeout: 15000 });
  await screenshot(p, 'devices-04-two-devices');
  await p.locator('#settings-close').click();
  erinCli = home;

  // carol writes to erin: her browser and her new terminal both read it.
  await cli(carol.home, ['send', '@erin', 'To both of erin’s devices.']);
  await expectMessage(p, '@carol', 'To both of erin’s devices.');
  const inbox = await cli(erinCli, ['--json', 'inbox', '--wait', '5']);
  assert.match(inbox, /To both of erin’s devices\./);
  assert.deepEqual(p.errors, []);
});

/** The `messages` of one `sealroom --json inbox` run in `home`. */
async function cliInbox(cli, home, wait = '5') {
  const out = await cli(home, ['--json', 'inbox', '--wait', wait]);
  const line = out.split('\n').find((l) => l.startsWith('{') && l.includes('"messages"'));
  assert.ok(line, `no inbox line in: ${out}`);
  return JSON.parse(line);
}

test('(b2) texts sync between the browser and its CLI device, and receipts count the recipient\u2019s devices', { skip }, async () => {
  const { cli } = await import('./cli.mjs');
  assert.ok(erinCli && carol.page, 'erin linked a CLI device in (b); carol has a CLI and a browser device since (a)');
  const p = erin.page;
  // The browser writes to carol (her terminal and her browser: two devices).
  await openConv(p, '@carol');
  await send(p, 'Sent from erin\u2019s browser.');
  const mine = p.locator('#messages li.mine', { hasText: 'Sent from erin\u2019s browser.' });
  // carol's browser reads it at once: one of her two devices.
  await mine.locator('.state', { hasText: 'delivered to 1 of 2 devices' }).waitFor({ timeout: 15000 });
  assert.equal(await mine.getAttribute('data-state'), 'delivered');
  // erin's terminal has it as her own text, sent from another of her devices.
  const synced = (await cliInbox(cli, erinCli)).messages.find((m) => m.text === 'Sent from erin\u2019s browser.');
  assert.ok(synced, 'the transcript reached erin\u2019s CLI device');
  assert.deepEqual([synced.state, synced.conversation, synced.outgoing, synced.from], ['synced', '@carol', true, 'erin']);
  // carol's terminal reads it too: both devices.
  const read = (await cliInbox(cli, carol.home)).messages.find((m) => m.text === 'Sent from erin\u2019s browser.');
  assert.equal(read?.state, 'received');
  await mine.locator('.state', { hasText: 'delivered to 2 of 2 devices' }).waitFor({ timeout: 15000 });
  await screenshot(p, 'devices-04b-delivered-2-of-2');

  // erin's terminal writes to carol: the browser shows it in the conversation as erin's own.
  await cli(erinCli, ['send', '@carol', 'Sent from erin\u2019s terminal.']);
  await expectMessage(p, '@carol', 'Sent from erin\u2019s terminal.');
  const fromCli = p.locator('#messages li', { hasText: 'Sent from erin\u2019s terminal.' });
  assert.equal(await fromCli.getAttribute('class'), 'msg mine');
  assert.equal(await fromCli.getAttribute('data-state'), 'synced');
  assert.equal(await fromCli.locator('.state').textContent(), ' \u00b7 sent from another of your devices');
  await expectMessage(carol.page, '@erin', 'Sent from erin\u2019s terminal.');
  await screenshot(p, 'devices-04c-sent-from-terminal');
  assert.deepEqual(p.errors, []);
  assert.deepEqual(carol.page.errors, []);
});

test('(c) revoking the CLI device in Settings: the next message reaches only the browser; the CLI is logged out', { skip }, async () => {
  const { cli } = await import('./cli.mjs');
  assert.ok(erinCli, 'erin linked a CLI device in (b)');
  const p = erin.page;
  await openSettings(p);
  const row = p.locator('#settings-devices-rows tr', { hasText: 'erin terminal' });
  await row.waitFor();
  await row.getByRole('button', { name: 'Revoke…' }).click();
  await p.getByRole('dialog', { name: 'Revoke erin terminal?' }).getByRole('button', { name: 'Revoke' }).click();
  await row.locator('td', { hasText: /^Revoked / }).waitFor();
  await p.locator('#settings-close').click();

  await cli(carol.home, ['send', '@erin', 'Only the browser now.']);
  await expectMessage(p, '@carol', 'Only the browser now.');
  await assert.rejects(cli(erinCli, ['--json', 'inbox', '--wait', '2']), /expired or was revoked/);
  const status = JSON.parse((await cli(erinCli, ['--json', 'status'])).split('\n').find((l) => l.startsWith('{')));
  assert.match(status.session, /^logged out by the server/);
  assert.deepEqual(p.errors, []);
});

test('(d) a browser whose device was revoked is offered to link itself again, and keeps its messages', { skip }, async () => {
  const { cli } = await import('./cli.mjs');
  const page = carol.page;
  assert.ok(page, 'carol linked a browser in (a)');
  await cli(carol.home, ['devices', 'revoke', '2']);
  // Logged out at once: the page says so and asks to log in.
  await page.locator('#screen-login').waitFor({ timeout: 20000 });
  await page.getByLabel('Username').fill('carol');
  await page.getByLabel('Password', { exact: true }).fill(CAROL_PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByLabel('Authenticator code').fill(await nextCode(carol.home.secret));
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('#code-error', { hasText: 'no longer one of carol’s devices' }).waitFor();
  await screenshot(page, 'devices-05-revoked-browser');
  await page.getByRole('button', { name: 'Link this browser again' }).click();
  // The password it logged in with is used again; the next code (each works once) is asked.
  await page.locator('#screen-link-code').waitFor();
  await page.getByLabel('Authenticator code').fill(await nextCode(carol.home.secret));
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('#screen-link-wait').waitFor();
  const code = (await page.locator('#link-code-text').textContent()).trim();
  await cli(carol.home, ['devices', 'add', code]);
  await page.locator('#screen-chat').waitFor({ timeout: 30000 });
  await page.locator('#notices', { hasText: 'This browser is now device 3 of carol' }).waitFor();
  // The messages it kept as device 2 are still here; new ones arrive.
  await expectMessage(page, '@erin', 'To both of carol’s devices.');
  await openConv(erin.page, '@carol');
  await send(erin.page, 'Welcome back, carol’s browser.');
  await expectMessage(page, '@erin', 'Welcome back, carol’s browser.');
  // A reload opens the new keys with the same password.
  await page.reload();
  await page.getByLabel('Username').fill('carol');
  await page.getByLabel('Password', { exact: true }).fill(CAROL_PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#screen-chat').waitFor();
  await expectMessage(page, '@erin', 'Welcome back, carol’s browser.');
  assert.deepEqual(page.errors, []);
});

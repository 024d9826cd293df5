// Rooms on linked devices across the browser and the `sealroom` CLI against a real server
// (docs/PROTOCOL.md §4.4, §4.6, §6 SendToRoom): frank, a CLI account in gina's room, links this
// browser as his second device; the link state carries the room, the browser sends its own
// sender key (its own room sender id) to gina and to frank's terminal, and gets theirs back.
// Then every message reaches every device: gina's reaches both of frank's; what the browser
// writes reaches gina and shows in frank's terminal as sent from another of his devices; what
// frank's terminal writes reaches gina and shows in the browser the same way.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, nextCode, screenshot, startServer } from './harness.mjs';
import { expectMessage, newPage, openConv, send } from './ui.mjs';

const skip = !process.env.SEALROOM_CLI_BIN && 'set SEALROOM_CLI_BIN to the sealroom binary';
const FRANK_PASSWORD = 'basalt orchard meteor 64 plover';
const GINA_PASSWORD = 'indigo canyon lantern 27 osprey';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The `messages` of one `sealroom --json inbox` run in `home` (the unread ones; with `all`, every one). */
async function cliInbox(cli, home, wait = '5', all = false) {
  const out = await cli(home, ['--json', 'inbox', ...(all ? ['--all'] : []), '--wait', wait]);
  const line = out.split('\n').find((l) => l.startsWith('{') && l.includes('"messages"'));
  assert.ok(line, `no inbox line in: ${out}`);
  return /** @type {{messages: any[]}} */ (JSON.parse(line)).messages;
}

/** Runs `inbox` in `home` until a message with `text` shows (or the tries run out); returns it. */
async function cliAwait(cli, home, text, tries = 6) {
  const seen = [];
  for (let i = 0; i < tries; i++) {
    const found = (await cliInbox(cli, home, '3')).filter((m) => m.conversation === '#crew');
    seen.push(...found);
    const m = seen.find((x) => x.text === text);
    if (m) return m;
  }
  assert.fail(`"${text}" did not reach ${home.dir}: ${JSON.stringify(seen)}`);
}

test('a CLI account and its linked browser in a room with another CLI user: every message reaches every device', { skip, timeout: 240000 }, async () => {
  const { cli, cliRegister } = await import('./cli.mjs');
  const frank = await cliRegister(server, 'frank', FRANK_PASSWORD);
  const gina = await cliRegister(server, 'gina', GINA_PASSWORD);
  // gina's room, with frank (a CLI device only, for now) in it.
  await cli(gina, ['rooms', 'create', 'crew']);
  await cli(gina, ['rooms', 'invite', 'crew', '@frank']);
  await cli(frank, ['rooms', 'accept', '#crew']);
  await cliInbox(cli, gina, '3');
  await cliInbox(cli, frank, '3');
  await cli(gina, ['send', '#crew', 'Before the browser.']);
  assert.ok(await cliAwait(cli, frank, 'Before the browser.'));

  // frank links this browser from his terminal: the link state carries #crew.
  const { page } = await newPage(browser, server);
  await page.getByRole('button', { name: 'Use an existing account' }).click();
  await page.locator('#screen-link').waitFor();
  await page.getByLabel('Username').fill('frank');
  await page.getByLabel('Password', { exact: true }).fill(FRANK_PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('#screen-link-code').waitFor();
  await page.getByLabel('Authenticator code').fill(await nextCode(frank.secret));
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('#screen-link-wait').waitFor();
  const code = (await page.locator('#link-code-text').textContent()).trim();
  await cli(frank, ['devices', 'add', code]);
  await page.locator('#screen-chat').waitFor({ timeout: 30000 });
  await page.locator('#status.online').waitFor();
  // The room is there at once, from the link state; nothing from before the browser was added.
  await page.locator('button.conv[data-conv="#crew"]').waitFor({ timeout: 15000 });
  await page.locator('button.conv[data-conv="#crew"]').click();
  await page.locator('#conv-title', { hasText: '#crew' }).waitFor();
  assert.equal(await page.locator('#messages .text', { hasText: 'Before the browser.' }).count(), 0);

  // The browser's key went to gina and to frank's terminal; each sends its own back.
  await cliInbox(cli, gina, '3');
  await cliInbox(cli, frank, '3');
  await page.waitForTimeout(1000);

  // gina writes: both of frank's devices read it.
  await cli(gina, ['send', '#crew', 'Hello to both of frank\u2019s devices.']);
  await expectMessage(page, '#crew', 'Hello to both of frank\u2019s devices.');
  const atTerminal = await cliAwait(cli, frank, 'Hello to both of frank\u2019s devices.');
  assert.deepEqual([atTerminal.from, atTerminal.state, atTerminal.outgoing], ['gina', 'received', false]);

  // The browser writes: gina reads it; frank's terminal shows it as his own.
  await openConv(page, '#crew');
  await send(page, 'Written in frank\u2019s browser.');
  const atGina = await cliAwait(cli, gina, 'Written in frank\u2019s browser.');
  assert.deepEqual([atGina.from, atGina.state, atGina.outgoing], ['frank', 'received', false]);
  const synced = await cliAwait(cli, frank, 'Written in frank\u2019s browser.');
  assert.deepEqual([synced.from, synced.state, synced.outgoing], ['frank', 'synced', true]);

  // frank's terminal writes: gina reads it; the browser shows it as his own, sent elsewhere.
  await cli(frank, ['send', '#crew', 'Written in frank\u2019s terminal.']);
  await expectMessage(page, '#crew', 'Written in frank\u2019s terminal.');
  const fromCli = page.locator('#messages li', { hasText: 'Written in frank\u2019s terminal.' });
  assert.equal(await fromCli.getAttribute('class'), 'msg mine');
  assert.equal(await fromCli.getAttribute('data-state'), 'synced');
  assert.equal(await fromCli.locator('.state').textContent(), ' \u00b7 sent from another of your devices');
  const fromFrank = await cliAwait(cli, gina, 'Written in frank\u2019s terminal.');
  assert.deepEqual([fromFrank.from, fromFrank.state], ['frank', 'received']);
  await screenshot(page, 'rooms-devices-01-browser-and-terminal');

  // Nothing anywhere that could not be read.
  assert.equal(await page.locator('#messages li.undecryptable').count(), 0, await page.locator('#messages').textContent());
  for (const home of [gina, frank]) {
    const bad = (await cliInbox(cli, home, '1', true)).filter((m) => m.state === 'undecryptable');
    assert.deepEqual(bad, [], home.dir);
  }
  assert.deepEqual(page.errors, []);
});

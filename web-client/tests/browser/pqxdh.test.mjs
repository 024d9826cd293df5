// PQXDH in the browser against a real server (docs/PROTOCOL.md §4.8, §5.1; issue 17), checked on
// the wire: every WebSocket frame the pages send and receive is decoded with the client's own
// frames.js.
// (a) a new account publishes its KEM prekeys right after registering: a last-resort one and 20
//     one-time ones, each an ML-KEM-768 key signed by the identity for device 1;
// (b) browser ↔ browser: the first messages leave the sender's page, and reach the other page,
//     as 0x03 bodies — the 106-byte prekey header, then the 1,092-byte KEM header naming one of
//     the receiver's one-time KEM prekeys — also after the sender reloads before the reply (the
//     pending KEM header is kept in its keystore); the reply and everything after are 0x02;
// (c) CLI ↔ browser (needs SEALROOM_CLI_BIN): a CLI user writing first reaches the page with a
//     0x03 body and the page answers in that session; the page writing first to a CLI user
//     sends a 0x03 body the CLI reads and answers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, screenshot, startServer } from './harness.mjs';
import { confirmEnrollment, expectMessage, fillRegistration, newPage, openConv, send } from './ui.mjs';
import { decodeWholeFrame } from '../../src/frames.js';
import { parseEnvelope } from '../../src/envelope.js';
import { verifyKemPrekey } from '../../src/pqxdh.js';
import { toHex } from '../../src/bytes.js';

const skipCli = !process.env.SEALROOM_CLI_BIN && 'set SEALROOM_CLI_BIN to the sealroom binary';
const PASSWORD = { alice: 'saffron glacier orbit 63 meadow', bob: 'cobalt willow sonnet 29 ember' };
let server;
let browser;
/** @type {Record<string, {page: any, secret: string, sent: any[], received: any[]}>} */
const users = {};

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Records every frame `page` sends and receives (decoded), on every WebSocket it opens. */
function watch(page) {
  const log = { sent: /** @type {any[]} */ ([]), received: /** @type {any[]} */ ([]) };
  page.on('websocket', (ws) => {
    const decode = (payload) => {
      try {
        return decodeWholeFrame(new Uint8Array(Buffer.isBuffer(payload) ? payload : Buffer.from(payload)));
      } catch {
        return null;
      }
    };
    ws.on('framesent', (e) => { const m = decode(e.payload); if (m) log.sent.push(m); });
    ws.on('framereceived', (e) => { const m = decode(e.payload); if (m) log.received.push(m); });
  });
  return log;
}

/** Resolves with the first value `f` returns that is not undefined (polled), or fails after `ms`. */
async function eventually(f, what, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A registration through the screens, watching the page's frames from before it connects. */
async function register(username) {
  const { page } = await newPage(browser, server);
  const { sent, received } = watch(page);
  const secret = await fillRegistration(page, { username, password: PASSWORD[username] });
  await confirmEnrollment(page, secret);
  await page.getByRole('button', { name: /saved them/ }).click();
  await page.locator('#screen-chat').waitFor();
  await page.locator('#status.online').waitFor();
  users[username] = { page, secret, sent, received };
  return users[username];
}

/** The one-to-one bodies `log` holds for `to` (SendSynced / SendToDevices), oldest first. */
const bodiesTo = (msgs, to) => msgs.filter((m) => (m.type === 'SendSynced' || m.type === 'SendToDevices') && m.to === to).flatMap((m) => m.bodies.map((b) => b.body));
/** The one-to-one bodies delivered from `from`, oldest first. */
const deliveredFrom = (msgs, from) => msgs.filter((m) => m.type === 'Deliver' && m.room === null && m.from === from).map((m) => m.body);

async function login(page, username) {
  await page.locator('#screen-login').waitFor();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD[username]);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#screen-chat').waitFor();
  await page.locator('#status.online').waitFor();
}

test('(a) a new account publishes a last-resort KEM prekey and 20 one-time ones, signed for its device', async () => {
  for (const name of ['alice', 'bob']) {
    const u = await register(name);
    const reg = u.sent.find((m) => m.type === 'Register');
    const upload = await eventually(() => u.sent.find((m) => m.type === 'UploadKemPrekeys'), `${name}'s UploadKemPrekeys`);
    assert.ok(upload.last_resort, 'a last-resort KEM prekey');
    assert.equal(upload.one_time.length, 20);
    const ids = new Set();
    for (const k of [upload.last_resort, ...upload.one_time]) {
      assert.equal(k.key.length, 1184);
      assert.ok(verifyKemPrekey({ id: k.id, public: k.key, signature: k.signature }, reg.device.identity_sig, 1), `${name}: KEM prekey ${k.id} signed for device 1`);
      ids.add(k.id);
    }
    assert.equal(ids.size, 21, 'ids unique');
    assert.equal(u.sent.filter((m) => m.type === 'UploadKemPrekeys').length, 1, 'uploaded once');
  }
});

test('(b) browser ↔ browser: first messages are 0x03 (prekey header, then the KEM header) on both sides of the server, also after a reload; then 0x02', async () => {
  const a = users.alice;
  const b = users.bob;
  assert.ok(a && b, 'registered by (a)');
  const bobsOneTime = b.sent.find((m) => m.type === 'UploadKemPrekeys').one_time.map((k) => k.id);
  await openConv(a.page, '@bob');
  await send(a.page, 'A post-quantum hello.');
  const first = await eventually(() => bodiesTo(a.sent, 'bob')[0], 'alice\'s first body');
  assert.equal(first[0], 0x03, 'a PQXDH first message leaves the page');
  const env = parseEnvelope(first);
  assert.equal(env.kind, 'PqPrekey');
  assert.equal(toHex(env.header.identity.signing), toHex(a.sent.find((m) => m.type === 'Register').device.identity_sig));
  assert.ok(bobsOneTime.includes(env.kem.kem_id), 'the KEM header names one of bob\'s one-time KEM prekeys');
  assert.equal(env.kem.ciphertext.length, 1088);
  assert.equal(first.length - env.message.length, 1 + 106 + 1092);
  assert.ok(!a.sent.some((m) => m.type === 'FetchDeviceBundle'), 'no classical bundle asked for');
  assert.ok(a.sent.some((m) => m.type === 'FetchKemBundle' && m.username === 'bob'));
  await expectMessage(b.page, '@alice', 'A post-quantum hello.');
  const delivered = deliveredFrom(b.received, 'alice')[0];
  assert.equal(toHex(delivered), toHex(first), 'the server relays the 0x03 body as sent');

  // Alice reloads before bob answers: her session still carries both headers.
  await a.page.reload();
  await login(a.page, 'alice');
  await openConv(a.page, '@bob');
  await send(a.page, 'Still before your reply.');
  const second = await eventually(() => bodiesTo(a.sent, 'bob')[1], 'alice\'s second body');
  assert.equal(second[0], 0x03, 'still a first message after the reload');
  assert.equal(toHex(second.subarray(1, 1 + 106 + 1092)), toHex(first.subarray(1, 1 + 106 + 1092)), 'the same prekey and KEM headers');
  assert.equal(a.sent.filter((m) => m.type === 'UploadKemPrekeys').length, 1, 'a login does not publish KEM prekeys again');
  await expectMessage(b.page, '@alice', 'Still before your reply.');
  await screenshot(b.page, 'pqxdh-01-first-messages');

  await openConv(b.page, '@alice');
  await send(b.page, 'Read you, post-quantum.');
  const reply = await eventually(() => bodiesTo(b.sent, 'alice')[0], 'bob\'s reply');
  assert.equal(reply[0], 0x02, 'the responder writes ratchet messages');
  await expectMessage(a.page, '@bob', 'Read you, post-quantum.');
  await send(a.page, 'And on we go.');
  const third = await eventually(() => bodiesTo(a.sent, 'bob')[2], 'alice\'s third body');
  assert.equal(third[0], 0x02, 'after the reply: plain ratchet messages');
  await expectMessage(b.page, '@alice', 'And on we go.');
  assert.deepEqual(a.page.errors, []);
  assert.deepEqual(b.page.errors, []);
});

test('(c) CLI ↔ browser: each side starts a conversation with a 0x03 first message the other reads and answers', { skip: skipCli }, async () => {
  const { cli, cliRegister } = await import('./cli.mjs');
  const a = users.alice;
  assert.ok(a, 'registered by (a)');
  // A CLI user writes first: the page gets a PQXDH first message and answers in that session.
  const dave = await cliRegister(server, 'dave', 'tangerine quarry violin 44 osprey');
  await cli(dave, ['send', '@alice', 'Hello from a terminal, post-quantum.']);
  await expectMessage(a.page, '@dave', 'Hello from a terminal, post-quantum.');
  const fromDave = await eventually(() => deliveredFrom(a.received, 'dave')[0], 'dave\'s first body');
  assert.equal(fromDave[0], 0x03, 'the CLI starts with PQXDH');
  assert.equal(parseEnvelope(fromDave).kind, 'PqPrekey');
  await openConv(a.page, '@dave');
  await send(a.page, 'Hello terminal, from the browser.');
  const answer = await eventually(() => bodiesTo(a.sent, 'dave')[0], 'alice\'s answer to dave');
  assert.equal(answer[0], 0x02, 'answered in the session dave started');
  assert.match(await cli(dave, ['--json', 'inbox', '--wait', '5']), /Hello terminal, from the browser\./);

  // The page writes first to another CLI user: a PQXDH first message the CLI reads and answers.
  const frank = await cliRegister(server, 'frank', 'juniper canyon ledger 85 plover');
  await openConv(a.page, '@frank');
  await send(a.page, 'Hello frank, post-quantum from the browser.');
  const toFrank = await eventually(() => bodiesTo(a.sent, 'frank')[0], 'alice\'s first body to frank');
  assert.equal(toFrank[0], 0x03, 'the page starts with PQXDH');
  assert.equal(parseEnvelope(toFrank).kind, 'PqPrekey');
  assert.ok(a.sent.some((m) => m.type === 'FetchKemBundle' && m.username === 'frank'));
  assert.match(await cli(frank, ['--json', 'inbox', '--wait', '5']), /Hello frank, post-quantum from the browser\./);
  await cli(frank, ['send', '@alice', 'Frank here, read you.']);
  await expectMessage(a.page, '@frank', 'Frank here, read you.');
  const fromFrank = await eventually(() => deliveredFrom(a.received, 'frank')[0], 'frank\'s answer');
  assert.equal(fromFrank[0], 0x02, 'the CLI answers in the session the page started');
  assert.deepEqual(a.page.errors, []);
});

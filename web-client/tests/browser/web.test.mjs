// The web client in Debian's chromium against a real sealroom-server: two browser users
// register with TOTP, log in, chat both ways, use a room (an invitee joins when it accepts),
// reload and keep their history; a wrong code is refused on screen; hostile message text stays
// text; the CSP is sent; a key change is shown; a CLI user and a browser user talk, and invite
// each other to rooms (the CLI accepts with `rooms accept`, the page with its Accept button).
// Screenshots go to target/web-screenshots/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { launchBrowser, nextCode, screenshot, startServer, wrongCode } from './harness.mjs';

const PASSWORD = { alice: 'violet kestrel harbour 42 lantern', bob: 'granite otter mosaic 17 velvet' };
let server;
let browser;
const users = {};
let carolHome;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A new browser context (its own IndexedDB) with a page that records any dialog. */
async function newPage(viewport = { width: 1100, height: 760 }) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  // Count CSP violations: the page must work under the server's policy with nothing blocked.
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = await context.newPage();
  page.dialogs = [];
  page.on('dialog', async (d) => {
    page.dialogs.push(d.message());
    await d.dismiss();
  });
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(server.url);
  return { context, page };
}

async function register(page, username, shoot) {
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('Your name').fill(`${username[0].toUpperCase()}${username.slice(1)} Example`);
  await page.getByLabel('Email').fill(`${username}@example.org`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD[username]);
  await page.getByLabel('Password again').fill(PASSWORD[username]);
  if (shoot) await screenshot(page, '01-register');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('#screen-enroll').waitFor();
  const secret = (await page.locator('#totp-secret').textContent()).trim();
  assert.match(secret, /^[A-Z2-7]{32}$/);
  const qr = page.locator('img.qr');
  assert.match(await qr.getAttribute('src'), /^data:image\/gif;base64,/);
  assert.ok(await qr.evaluate((img) => img.complete && img.naturalWidth > 50), 'the QR code is drawn');
  if (shoot) await screenshot(page, '02-enroll-totp-qr');
  return secret;
}

test('the page is served with a strict CSP, HSTS and nosniff', async () => {
  const headers = await new Promise((ok, fail) => {
    request(server.url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      ok(res.headers);
    }).on('error', fail).end();
  });
  const csp = headers['content-security-policy'];
  assert.ok(csp, 'CSP header present');
  const directives = Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([k, ...v]) => [k, v.join(' ')]));
  assert.match(directives['default-src'], /^'(none|self)'$/);
  assert.equal(directives['script-src'], "'self'");
  assert.ok(!directives['object-src'] || directives['object-src'] === "'none'");
  if (!directives['object-src']) assert.equal(directives['default-src'], "'none'", 'plugins blocked by default-src');
  assert.equal(directives['base-uri'], "'none'");
  assert.equal(directives['frame-ancestors'], "'none'");
  assert.equal(directives['connect-src'] ?? directives['default-src'], "'self'");
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  assert.match(headers['strict-transport-security'], /max-age=\d+/);
  assert.equal(headers['x-content-type-options'], 'nosniff');
});

test('alice registers: TOTP enrollment with a QR code; a wrong code is refused on screen', async () => {
  const { page } = await newPage();
  await screenshot(page, '00-login');
  const secret = await register(page, 'alice', true);
  await page.getByLabel('Code from your app').fill(wrongCode(secret));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await assert.doesNotReject(page.locator('#enroll-error').filter({ hasText: /./ }).waitFor());
  assert.ok((await page.locator('#enroll-error').textContent()).length > 0);
  await screenshot(page, '03-enroll-wrong-code');
  await page.getByLabel('Code from your app').fill(await nextCode(secret));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.locator('#screen-recovery').waitFor();
  assert.equal(await page.locator('#recovery-codes li').count(), 10);
  const codes = await page.locator('#recovery-codes li code').allTextContents();
  await screenshot(page, '04-recovery-codes');
  await page.getByRole('button', { name: /saved them/ }).click();
  await page.locator('#screen-chat').waitFor();
  await page.locator('#status.online').waitFor();
  users.alice = { page, secret, codes };
});

test('bob registers in a second browser context', async () => {
  const { page } = await newPage();
  const secret = await register(page, 'bob', false);
  await page.getByLabel('Code from your app').fill(await nextCode(secret));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('button', { name: /saved them/ }).click();
  await page.locator('#screen-chat').waitFor();
  users.bob = { page, secret };
});

test('alice logs out and logs in again: password, a wrong code (refused), then the right code', async () => {
  const { page, secret } = users.alice;
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.locator('#screen-login').waitFor();
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD.alice);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#screen-code').waitFor();
  await screenshot(page, '05-login-code');
  await page.getByLabel('Authenticator code').fill(wrongCode(secret));
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('#code-error').filter({ hasText: /./ }).waitFor();
  await screenshot(page, '06-login-wrong-code');
  await page.getByLabel('Authenticator code').fill(await nextCode(secret));
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('#screen-chat').waitFor();
  await page.locator('#status.online').waitFor();
});

test('a recovery code logs in once in place of the authenticator code', async () => {
  const { page, codes } = users.alice;
  const loginWith = async (code) => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.locator('#screen-login').waitFor();
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD.alice);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByLabel('Authenticator code').fill(code);
    await page.getByRole('button', { name: 'Continue' }).click();
  };
  await loginWith(codes[0]);
  await page.locator('#screen-chat').waitFor();
  await loginWith(codes[0]);
  await page.locator('#code-error').filter({ hasText: /./ }).waitFor();
  await page.getByLabel('Authenticator code').fill(codes[1]);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('#screen-chat').waitFor();
  await page.locator('#status.online').waitFor();
});

/** Opens (or starts) a conversation from the side list. */
async function openConv(page, conv) {
  const item = page.locator(`button.conv[data-conv="${conv}"]`);
  if ((await item.count()) === 0) {
    await page.getByLabel('Username to message').fill(conv.slice(1));
    await page.getByRole('button', { name: 'Chat', exact: true }).click();
  } else {
    await item.click();
  }
  await page.locator('#conv-title', { hasText: conv }).waitFor();
}

async function send(page, text) {
  await page.locator('#composer-text').fill(text);
  await page.locator('#composer-text').press('Enter');
  await page.locator('#messages li.mine .text', { hasText: text }).last().waitFor();
}

async function expectMessage(page, conv, text) {
  await page.locator(`button.conv[data-conv="${conv}"]`).waitFor({ timeout: 15000 });
  await page.locator(`button.conv[data-conv="${conv}"]`).click();
  await page.locator('#messages .text', { hasText: text }).first().waitFor({ timeout: 15000 });
}

/** Invites from the open room's panel; the page says they join when they accept. */
async function invite(page, room, user) {
  await page.getByLabel(`Username to invite to ${room}`).fill(user);
  await page.getByRole('button', { name: 'Invite', exact: true }).click();
  await page.locator('#invite-status', { hasText: `Invited ${user}; they join when they accept.` }).waitFor({ timeout: 15000 });
}

/** The invitee accepts in its Invitations list; resolves with the room open. */
async function accept(page, room, from) {
  const item = page.locator(`#invitations li[data-room="${room.slice(1)}"]`);
  await item.waitFor({ timeout: 15000 });
  assert.equal(await item.locator('.invitation-text').textContent(), `${from} invited you to ${room}`);
  await page.getByRole('button', { name: `Accept invitation to ${room}` }).click();
  await page.locator('#conv-title', { hasText: room }).waitFor({ timeout: 15000 });
}

test('alice and bob message each other both ways; delivery receipts show', async () => {
  const a = users.alice.page;
  const b = users.bob.page;
  await openConv(a, '@bob');
  await send(a, 'Hi Bob, this is end-to-end encrypted.');
  await expectMessage(b, '@alice', 'Hi Bob, this is end-to-end encrypted.');
  await send(b, 'Hello Alice! Reading you loud and clear.');
  await expectMessage(a, '@bob', 'Hello Alice! Reading you loud and clear.');
  await send(a, 'Second message on the ratchet.');
  await expectMessage(b, '@alice', 'Second message on the ratchet.');
  await a.locator('#messages li.mine[data-state="delivered"]').first().waitFor({ timeout: 15000 });
  await screenshot(a, '07-chat-direct');
});

test('the keystore in IndexedDB holds only ciphertext; nothing in localStorage', async () => {
  const a = users.alice.page;
  const rec = await a.evaluate(() => new Promise((ok, fail) => {
    const req = indexedDB.open('sealroom');
    req.onerror = () => fail(req.error);
    req.onsuccess = () => {
      const get = req.result.transaction('keystores').objectStore('keystores').get('alice');
      get.onsuccess = () => {
        const r = get.result;
        const bytes = new Uint8Array(r.ciphertext);
        ok({
          keys: Object.keys(r).sort(),
          rounds: r.rounds,
          saltLen: new Uint8Array(r.salt).length,
          length: bytes.length,
          latin1: Array.from(bytes, (b) => String.fromCharCode(b)).join(''),
          localStorage: localStorage.length,
        });
      };
    };
  }));
  assert.deepEqual(rec.keys, ['ciphertext', 'nonce', 'rounds', 'salt', 'username', 'v']);
  assert.equal(rec.rounds, 600000);
  assert.equal(rec.saltLen, 16);
  assert.ok(rec.length > 1000);
  for (const plain of ['Hi Bob', 'Hello Alice', 'identity', 'contacts', 'session']) assert.ok(!rec.latin1.includes(plain), `no "${plain}" in the record`);
  assert.equal(rec.localStorage, 0);
  // The history: one encrypted record per entry, nothing readable.
  const entries = await a.evaluate(() => new Promise((ok, fail) => {
    const req = indexedDB.open('sealroom');
    req.onerror = () => fail(req.error);
    req.onsuccess = () => {
      const all = req.result.transaction('entries').objectStore('entries').getAll(IDBKeyRange.bound(['alice', -Infinity], ['alice', Infinity]));
      all.onsuccess = () => ok(all.result.map((r) => ({ keys: Object.keys(r).sort(), latin1: Array.from(new Uint8Array(r.ciphertext), (b) => String.fromCharCode(b)).join('') })));
    };
  }));
  assert.ok(entries.length >= 3, `alice's messages are in their own records (${entries.length})`);
  for (const e of entries) {
    assert.deepEqual(e.keys, ['ciphertext', 'nonce', 'seq', 'username']);
    for (const plain of ['Hi Bob', 'Hello Alice', 'Second message', '"text"']) assert.ok(!e.latin1.includes(plain), `no "${plain}" in an entry record`);
  }
});

test('markup in messages is shown as text and runs nothing', async () => {
  const a = users.alice.page;
  const b = users.bob.page;
  const payloads = [
    '<img src=x onerror=alert(1)>',
    '<script>alert(2)</script>',
    '"><svg onload=alert(3)>',
    '<a href="javascript:alert(4)">click</a>',
    '<iframe srcdoc="<script>parent.alert(5)</script>"></iframe>',
  ];
  await openConv(a, '@bob');
  for (const p of payloads) await send(a, p);
  await b.locator('button.conv[data-conv="@alice"]').click();
  for (const p of payloads) {
    const el = b.locator('#messages .text', { hasText: p }).first();
    await el.waitFor({ timeout: 15000 });
    assert.equal(await el.textContent(), p);
  }
  for (const page of [a, b]) {
    assert.equal(await page.locator('#messages img, #messages script, #messages svg, #messages iframe, #messages a').count(), 0);
    assert.deepEqual(page.dialogs, []);
  }
  await b.waitForTimeout(300);
  assert.deepEqual(b.dialogs, []);
  for (const page of [a, b]) assert.deepEqual(await page.evaluate(() => window.__csp), [], 'no CSP violation');
  await screenshot(b, '08-markup-as-text');
});

test('hostile text cannot reorder or spoof the page: bidi overrides are isolated, control characters stay inside one message', async () => {
  const a = users.alice.page;
  const b = users.bob.page;
  const payloads = [
    'invoice\u202Egnp.exe',
    'left \u2067right\u2069 and \u2066isolate',
    'clear\u001b[2J\u001b]0;pwned\u0007 title',
    'first line\r\n23:59 carol: this line is not from carol',
  ];
  await openConv(a, '@bob');
  await b.locator('button.conv[data-conv="@alice"]').click();
  const before = await b.locator('#messages li.msg').count();
  for (const p of payloads) await send(a, p);
  await b.waitForFunction((n) => document.querySelectorAll('#messages li.msg').length >= n, before + payloads.length, { timeout: 15000 });
  // One bubble per message: a newline and "23:59 carol:" do not make a second one.
  assert.equal(await b.locator('#messages li.msg').count(), before + payloads.length);
  const shown = await b.evaluate(() => [...document.querySelectorAll('#messages li.msg')].slice(-4).map((li) => {
    const text = li.querySelector('.text');
    return { text: text?.textContent, dir: text?.getAttribute('dir'), bidi: text ? getComputedStyle(text).unicodeBidi : null, time: li.querySelector('time')?.textContent };
  }));
  shown.forEach((m, i) => {
    assert.equal(m.text, payloads[i].replace(/\r\n?/g, '\n'));
    assert.equal(m.dir, 'auto');
    assert.equal(m.bidi, 'isolate');
    assert.match(m.time ?? '', /\d/);
  });
  assert.ok(shown[3].text?.startsWith('first line') && shown[3].text.includes('23:59 carol'));
  // The chat list's preview drops the bidi controls, so the name before it keeps its place.
  const preview = await a.evaluate(() => document.querySelector('button.conv[data-conv="@bob"] .conv-preview')?.textContent ?? '');
  assert.ok(!/[\u202a-\u202e\u2066-\u2069]/.test(preview), preview);
  // ESC ] 0; … BEL is text in a page: nothing retitles it.
  assert.ok(!(await b.title()).includes('pwned'));
  await screenshot(b, '08b-hostile-text');
});

test('a room: alice creates it, invites bob, both write and read', async () => {
  const a = users.alice.page;
  const b = users.bob.page;
  await a.getByLabel('New room name').fill('team');
  await a.getByRole('button', { name: 'Create', exact: true }).click();
  await a.locator('#conv-title', { hasText: '#team' }).waitFor();
  await invite(a, '#team', 'bob');
  await accept(b, '#team', 'alice');
  await a.locator('#room-members', { hasText: 'bob' }).waitFor({ timeout: 15000 });
  await b.locator('button.conv[data-conv="#team"]').waitFor({ timeout: 15000 });
  // Let both sender keys cross before the first room message.
  await a.waitForTimeout(1000);
  await send(a, 'Welcome to #team, Bob.');
  await expectMessage(b, '#team', 'Welcome to #team, Bob.');
  await send(b, 'Glad to be here.');
  await expectMessage(a, '#team', 'Glad to be here.');
  await screenshot(a, '09-room');
});

test('the admin removes a member: the others move to a new epoch and the removed one cannot post', async () => {
  const a = users.alice.page;
  const b = users.bob.page;
  await a.getByLabel('New room name').fill('ops');
  await a.getByRole('button', { name: 'Create', exact: true }).click();
  await invite(a, '#ops', 'bob');
  await accept(b, '#ops', 'alice');
  await a.locator('#room-members', { hasText: 'bob' }).waitFor({ timeout: 15000 });
  await b.locator('button.conv[data-conv="#ops"]').waitFor({ timeout: 15000 });
  await a.waitForTimeout(1000);
  await send(a, 'Before the removal.');
  await expectMessage(b, '#ops', 'Before the removal.');
  await a.locator('button.conv[data-conv="#ops"]').click();
  await a.getByRole('button', { name: 'Remove bob' }).click();
  await a.getByRole('dialog').getByRole('button', { name: 'Remove bob' }).click();
  await a.locator('#room-members', { hasText: /^Members: alice \(/ }).waitFor({ timeout: 15000 });
  await a.locator('#messages .event', { hasText: 'You removed bob' }).waitFor({ timeout: 15000 });
  await send(a, 'After the removal.');
  await b.locator('button.conv[data-conv="#ops"]').click();
  // Defect 6: the removed member sees a closed room (no composer), not an active one.
  await b.locator('#room-closed', { hasText: 'no longer a member of #ops' }).waitFor({ timeout: 15000 });
  assert.equal(await b.locator('#composer-text').isVisible(), false, 'no compose box in a room one was removed from');
  await b.locator('#messages .event', { hasText: 'You were removed from the room' }).waitFor();
  assert.equal(await b.locator('#messages .text', { hasText: 'After the removal.' }).count(), 0);
  await screenshot(b, '17-removed-from-room');
});

test('the safety number matches on both sides and can be marked verified', async () => {
  const a = users.alice.page;
  const b = users.bob.page;
  await openConv(a, '@bob');
  await a.getByRole('button', { name: 'Safety number' }).click();
  await b.locator('button.conv[data-conv="@alice"]').click();
  await b.getByRole('button', { name: 'Safety number' }).click();
  const na = (await a.locator('#safety-number').textContent()).replace(/\s/g, '');
  const nb = (await b.locator('#safety-number').textContent()).replace(/\s/g, '');
  assert.match(na, /^\d{60}$/);
  assert.equal(na, nb);
  await screenshot(a, '10-safety-number');
  await a.getByRole('button', { name: /mark as verified/ }).click();
  await a.locator('#verified-note').waitFor();
  await a.getByRole('button', { name: '‹ Back' }).click();
  await b.getByRole('button', { name: '‹ Back' }).click();
});

test('after a reload each user unlocks their keys with the password and still sees the history', async () => {
  for (const [name, peer] of [['alice', '@bob'], ['bob', '@alice']]) {
    const page = users[name].page;
    await page.reload();
    await page.locator('#screen-login').waitFor();
    await page.getByLabel('Username').fill(name);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD[name]);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#screen-chat').waitFor();
    await page.locator(`button.conv[data-conv="${peer}"]`).click();
    await page.locator('#messages .text', { hasText: 'Hi Bob, this is end-to-end encrypted.' }).waitFor();
    await page.locator('#messages .text', { hasText: 'Hello Alice! Reading you loud and clear.' }).waitFor();
    await page.locator('button.conv[data-conv="#team"]').click();
    await page.locator('#messages .text', { hasText: 'Glad to be here.' }).waitFor();
  }
  await send(users.alice.page, 'Still here after the reload.');
  await expectMessage(users.bob.page, '#team', 'Still here after the reload.');
});

test('the server restarts: the pages show they are offline, reconnect by themselves, and chat goes on', async () => {
  const a = users.alice.page;
  const b = users.bob.page;
  await openConv(a, '@bob');
  await server.pause();
  await a.locator('#status.offline').waitFor();
  assert.match(await a.locator('#status').textContent(), /Offline/);
  await screenshot(a, '16-offline');
  await server.resume();
  await a.locator('#status.online').waitFor({ timeout: 20000 });
  await b.locator('#status.online').waitFor({ timeout: 20000 });
  await send(a, 'After the restart.');
  await expectMessage(b, '@alice', 'After the restart.');
});

test('a second tab cannot open the same account at the same time', async () => {
  const tab = await users.alice.page.context().newPage();
  await tab.goto(server.url);
  await tab.getByLabel('Username').fill('alice');
  await tab.getByLabel('Password', { exact: true }).fill(PASSWORD.alice);
  await tab.getByRole('button', { name: 'Log in' }).click();
  await tab.locator('#login-error', { hasText: 'already open' }).waitFor();
  await tab.close();
});

test('usable at 360 px wide: the list and the conversation take turns', async () => {
  const a = users.alice.page;
  await a.setViewportSize({ width: 360, height: 740 });
  await a.getByRole('button', { name: '‹ Chats' }).click();
  await a.locator('nav.sidebar').waitFor();
  const width = await a.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 360, `no horizontal scroll (${width})`);
  await screenshot(a, '11-mobile-list');
  await a.locator('button.conv[data-conv="@bob"]').click();
  await a.locator('#composer-text').waitFor();
  assert.ok((await a.evaluate(() => document.documentElement.scrollWidth)) <= 360);
  await screenshot(a, '12-mobile-conversation');
  await a.setViewportSize({ width: 1100, height: 760 });
});

test('a new device for bob changes his key: alice sees the warning and sending waits', async () => {
  const { page } = await newPage();
  await page.getByLabel('Username').fill('bob');
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD.bob);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByLabel('Authenticator code').fill(await nextCode(users.bob.secret));
  await page.getByRole('button', { name: 'Continue' }).click();
  // This browser holds no keys for bob: starting over is asked, never assumed.
  await page.locator('dialog.confirm #confirm-title', { hasText: 'Start over with a new identity?' }).waitFor();
  await screenshot(page, '12b-start-over-confirm');
  await page.locator('#confirm-ok').click();
  await page.locator('#screen-chat').waitFor();
  await openConv(page, '@alice');
  await send(page, 'New phone, who dis?');
  const a = users.alice.page;
  await expectMessage(a, '@bob', 'New phone, who dis?');
  await a.locator('#key-change-banner').waitFor();
  await a.locator('#composer-text').fill('this must wait');
  await a.locator('#composer-text').press('Enter');
  await a.locator('#send-error', { hasText: 'safety number changed' }).waitFor();
  // Defect 1: the refused text is back in the box, not lost.
  assert.equal(await a.locator('#composer-text').inputValue(), 'this must wait');
  await screenshot(a, '13-key-change-warning');
  await page.context().close();
  // bob's first browser still holds the identity his new device replaced. Left open, it would
  // keep handing out room keys under that superseded identity, and whether a later member saw
  // one of those before bob's current keys would decide the tests below (a changed-key block).
  await users.bob.page.context().close();
});

test('a CLI user and a browser user exchange messages', { skip: !process.env.SEALROOM_CLI_BIN && 'set SEALROOM_CLI_BIN to the sealroom binary' }, async () => {
  const { cliRegister, cli } = await import('./cli.mjs');
  const home = await cliRegister(server, 'carol', 'cobalt walrus prairie 88 ember');
  carolHome = home;
  const a = users.alice.page;
  await openConv(a, '@carol');
  await send(a, 'Hello Carol, from the browser.');
  const inbox = await cli(home, ['--json', 'inbox', '--wait', '5']);
  assert.match(inbox, /Hello Carol, from the browser\./);
  await cli(home, ['send', '@alice', 'Hello Alice, from the command line.']);
  await expectMessage(a, '@carol', 'Hello Alice, from the command line.');
  await screenshot(a, '14-cli-interop');
});

test('a CLI user in a browser-made room reads and writes', {
  skip: !process.env.SEALROOM_CLI_BIN && 'set SEALROOM_CLI_BIN to the sealroom binary',
}, async () => {
  const { cli } = await import('./cli.mjs');
  const home = carolHome;
  assert.ok(home, 'carol was registered by the previous test');
  const a = users.alice.page;
  await a.locator('button.conv[data-conv="#team"]').click();
  await a.locator('#toggle-members[aria-expanded="false"]').click();
  await invite(a, '#team', 'carol');
  // carol is not a member until she accepts on the command line.
  const out = await cli(home, ['--json', 'rooms', 'invitations']);
  const waiting = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((o) => o.invitations);
  assert.deepEqual(waiting?.invitations, [{ room: 'team', from: 'alice' }], out);
  assert.equal(await a.locator('#room-members', { hasText: 'carol' }).count(), 0, 'not a member before accepting');
  await cli(home, ['rooms', 'accept', '#team']);
  await a.locator('#room-members', { hasText: 'carol' }).waitFor({ timeout: 15000 });
  // carol picks up the room keys (and sends hers) before the first message.
  await cli(home, ['--json', 'inbox', '--wait', '3']);
  await a.waitForTimeout(1000);
  await send(a, 'Carol, welcome to the room.');
  const inbox = await cli(home, ['--json', 'inbox', '--wait', '5']);
  assert.match(inbox, /Carol, welcome to the room\./);
  await cli(home, ['send', '#team', 'Hello room, from the command line.']);
  // Only alice reads it here: bob's browsers are closed since his new-device test above.
  await expectMessage(a, '#team', 'Hello room, from the command line.');
  await screenshot(a, '15-cli-in-room');
});

test('a CLI user invites a browser user, who accepts in the page; they talk in the room both ways', {
  skip: !process.env.SEALROOM_CLI_BIN && 'set SEALROOM_CLI_BIN to the sealroom binary',
}, async () => {
  const { cli } = await import('./cli.mjs');
  const home = carolHome;
  assert.ok(home, 'carol was registered by an earlier test');
  const a = users.alice.page;
  await cli(home, ['rooms', 'create', 'cli-made']);
  const said = await cli(home, ['rooms', 'invite', 'cli-made', '@alice']);
  assert.match(said, /they join.*when they accept/i);
  await accept(a, '#cli-made', 'carol');
  await a.locator('#messages .event', { hasText: 'You joined the room' }).waitFor({ timeout: 15000 });
  await a.locator('#toggle-members').click();
  await a.locator('#room-members', { hasText: /carol.*alice|alice.*carol/ }).waitFor({ timeout: 15000 });
  assert.equal(await a.locator('#invitations li').count(), 0, 'the invitation is gone once accepted');
  // carol hears alice joined and sends her room key; alice's arrived with her accept.
  await cli(home, ['--json', 'inbox', '--wait', '3']);
  await a.waitForTimeout(1000);
  await cli(home, ['send', '#cli-made', 'Welcome, Alice, to a room made on the command line.']);
  await expectMessage(a, '#cli-made', 'Welcome, Alice, to a room made on the command line.');
  await send(a, 'Thanks Carol, writing from the browser.');
  const inbox = await cli(home, ['--json', 'inbox', '--wait', '5']);
  assert.match(inbox, /Thanks Carol, writing from the browser\./);
  await screenshot(a, '18-cli-invited-browser');
});

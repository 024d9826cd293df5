// The web client as people use it, against a real server in Debian's chromium: nothing typed is
// lost (failed sends, per-conversation drafts, the offline outbox across a server restart and a
// reload), the page updates in place (scroll, selection, nodes kept; one record saved per
// message), and the screens issue 15 asked for: recovery codes with Copy and Download, the
// display name, closed rooms, member panel with confirmation, joins and leaves, room names,
// accessibility (mine/theirs, live region, safety number 4 groups a row), notifications and the
// unread title, the chat list, day separators, the growing composer, dark theme, password
// twice, remembered username, "Forget this browser", the favicon. Screenshots in
// target/web-screenshots/ (desktop, 375 px phone, dark). Also prints send → shown latency at
// message 1 and message 500 of one conversation (no timing assertion).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, screenshot, startServer } from './harness.mjs';
import { acceptInvitation, confirmEnrollment, expectMessage, invite, newPage, openConv, readStore, registerUser, send } from './ui.mjs';

const DANA = { username: 'dana', name: 'Dana Example', password: 'amber falcon quarry 31 meadow' };
const ERIN = { username: 'erin', name: 'Erin Example', password: 'cedar lynx pavilion 58 orbit' };
const GINA = { username: 'gina', name: 'Gina Example', password: 'willow comet basalt 64 ferry' };
const FINN = { username: 'finn', name: 'Finn <b>Bold</b> & <img src=x>', password: 'harbor moth tundra 77 saffron' };

let server;
let browser;
let dana;
let erin;

/** Records what the page would show as system notifications; permission starts as "default". */
function stubNotifications() {
  window.__notes = [];
  class FakeNotification {
    static permission = 'default';
    static async requestPermission() {
      FakeNotification.permission = 'granted';
      return 'granted';
    }
    constructor(title, opts) {
      window.__notes.push({ title, body: opts?.body ?? '' });
    }
  }
  window.Notification = FakeNotification;
}

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  // Two users for the chat tests, so that each test stands on its own.
  dana = await registerUser(browser, server, DANA, { init: stubNotifications });
  erin = await registerUser(browser, server, ERIN);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('registration asks for the password twice and can show it; recovery codes are laid out, copied and downloaded; the name is shown', async () => {
  const { page, context } = await newPage(browser, server);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(server.url).origin });
  // A favicon, so no 404 on every load.
  assert.equal(await page.evaluate(() => document.querySelector('link[rel="icon"]')?.getAttribute('href')), 'favicon.svg');
  assert.deepEqual(await page.evaluate(() => fetch('favicon.svg').then((r) => [r.status, r.headers.get('content-type')])), [200, 'image/svg+xml']);
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('Your name').fill(GINA.name);
  await page.getByLabel('Email').fill('gina@example.org');
  await page.getByLabel('Username').fill('gina');
  await page.getByLabel('Password', { exact: true }).fill(GINA.password);
  await page.getByLabel('Password again').fill(`${GINA.password}x`);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('#reg-error', { hasText: 'differ' }).waitFor();
  assert.equal(await page.locator('#screen-register').count(), 1, 'still on the form');
  assert.equal(await page.getByLabel('Password', { exact: true }).getAttribute('type'), 'password');
  await page.getByLabel('Show password').check();
  assert.equal(await page.getByLabel('Password', { exact: true }).getAttribute('type'), 'text');
  assert.equal(await page.getByLabel('Password again').getAttribute('type'), 'text');
  await page.getByLabel('Password again').fill(GINA.password);
  await page.getByLabel('Show password').uncheck();
  await screenshot(page, 'ux-01-register-password-twice');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('#screen-enroll').waitFor();
  const secret = (await page.locator('#totp-secret').textContent()).trim();
  await confirmEnrollment(page, secret);

  // Recovery codes: ten, each with its number inside its own box, no two boxes overlapping.
  const boxes = await page.locator('#recovery-codes li').evaluateAll((lis) => lis.map((li) => {
    const r = li.getBoundingClientRect();
    const card = li.closest('.card').getBoundingClientRect();
    const fits = li.scrollWidth <= li.clientWidth + 1 && r.left >= card.left && r.right <= card.right - 8;
    return { x: r.left, y: r.top, w: r.width, h: r.height, text: li.textContent, fits };
  }));
  assert.equal(boxes.length, 10);
  const codes = await page.locator('#recovery-codes li code').allTextContents();
  boxes.forEach((b, i) => {
    assert.ok(b.text.startsWith(`${i + 1}.`), `code ${i + 1} shows its number: ${b.text}`);
    assert.ok(b.fits, `code ${i + 1} fits its box and the card`);
  });
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i];
    const b = boxes[j];
    const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
    assert.ok(!overlap, `codes ${i + 1} and ${j + 1} do not overlap`);
  }
  await screenshot(page, 'ux-02-recovery-codes');
  await page.getByRole('button', { name: 'Copy' }).click();
  await page.locator('#codes-feedback', { hasText: /Copied|Selected/ }).waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText()).catch(() => '');
  for (const c of codes) assert.ok(copied.includes(c), `clipboard holds ${c}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()]);
  assert.match(download.suggestedFilename(), /sealroom-recovery-codes-gina\.txt/);
  const file = await new Promise(async (ok, fail) => {
    const stream = await download.createReadStream();
    let s = '';
    stream.on('data', (d) => { s += d; });
    stream.on('end', () => ok(s));
    stream.on('error', fail);
  });
  for (const c of codes) assert.ok(file.includes(c), `the file holds ${c}`);

  await page.getByRole('button', { name: /saved them/ }).click();
  await page.locator('#screen-chat').waitFor();
  await page.locator('#status.online').waitFor();
  assert.deepEqual(page.failed, [], 'no failed request (favicon included)');
  // The display name beside the username.
  assert.equal(await page.locator('#me-name').textContent(), GINA.name);
  assert.equal(await page.locator('#me').textContent(), '@gina');
  await context.close();
});

test('"Team Room" becomes #team-room; joins show in the timeline; room members are not listed as chats', async () => {
  const d = dana.page;
  await d.getByLabel('New room name').fill('Team Room');
  await d.locator('#room-name-hint', { hasText: 'Will be created as #team-room' }).waitFor();
  await d.getByRole('button', { name: 'Create', exact: true }).click();
  await d.locator('#conv-title', { hasText: '#team-room' }).waitFor();
  assert.equal(await d.locator('#sidebar-error').textContent(), '');
  await invite(d, '#team-room', 'erin');
  await acceptInvitation(erin.page, '#team-room', 'dana');
  await d.locator('#messages .event', { hasText: 'You added erin' }).waitFor({ timeout: 15000 });
  await erin.page.locator('button.conv[data-conv="#team-room"]').click();
  await erin.page.locator('#messages .event', { hasText: 'You joined the room' }).waitFor({ timeout: 15000 });
  // Room keys went through pairwise sessions, so each knows the other's key; still no @chat.
  await d.waitForTimeout(1000);
  assert.equal(await d.locator('button.conv[data-conv="@erin"]').count(), 0, 'a room member is not an empty @chat');
  assert.equal(await erin.page.locator('button.conv[data-conv="@dana"]').count(), 0);
  await send(d, 'Hello room');
  await expectMessage(erin.page, '#team-room', 'Hello room');
});

test('drafts are per conversation: text typed to one never moves to another', async () => {
  const d = dana.page;
  await openConv(d, '@erin');
  await d.locator('#composer-text').fill('draft for erin');
  await d.locator('button.conv[data-conv="#team-room"]').click();
  await d.locator('#conv-title', { hasText: '#team-room' }).waitFor();
  assert.equal(await d.locator('#composer-text').inputValue(), '', 'the room has its own (empty) draft');
  await d.locator('#composer-text').fill('draft for the room');
  await d.locator('#composer-text').press('Enter');
  await d.locator('#messages li.mine .text', { hasText: 'draft for the room' }).waitFor();
  await d.locator('#composer-text').fill('second room draft');
  await d.locator('button.conv[data-conv="@erin"]').click();
  await d.locator('#conv-title', { hasText: '@erin' }).waitFor();
  assert.equal(await d.locator('#composer-text').inputValue(), 'draft for erin');
  await d.locator('#composer-text').press('Enter');
  await d.locator('#messages li.mine .text', { hasText: 'draft for erin' }).waitFor();
  await expectMessage(erin.page, '@dana', 'draft for erin');
  await erin.page.locator('button.conv[data-conv="#team-room"]').click();
  await erin.page.locator('#messages .text', { hasText: 'draft for the room' }).waitFor({ timeout: 15000 });
  assert.equal(await erin.page.locator('#messages .text', { hasText: 'draft for erin' }).count(), 0, 'nothing sent to the wrong place');
  await d.locator('button.conv[data-conv="#team-room"]').click();
  assert.equal(await d.locator('#composer-text').inputValue(), 'second room draft');
  await d.locator('#composer-text').fill('');
});

test('a send that fails keeps the text in the box, with the reason', async () => {
  const d = dana.page;
  await openConv(d, '@erin');
  const long = 'x'.repeat(70_000);
  await d.locator('#composer-text').fill(long);
  await d.locator('#composer-text').press('Enter');
  await d.locator('#send-error', { hasText: /Not sent: the message is too long/ }).waitFor();
  assert.equal((await d.locator('#composer-text').inputValue()).length, long.length, 'the long text is still there');
  assert.equal(await d.locator('#messages li.mine .text', { hasText: 'xxxxxxxxxx' }).count(), 0);
  await d.locator('#composer-text').fill('');
});

test('the page updates in place: a message elsewhere keeps scroll, selection and nodes; one small record per message', async () => {
  const d = dana.page;
  const e = erin.page;
  await openConv(e, '@dana');
  await openConv(d, '@erin');
  const before = await readStore(d, 'dana');
  for (let i = 1; i <= 30; i++) await send(d, `scrollback line ${i} ${'lorem ipsum '.repeat(8)}`);
  await d.locator('#messages li.mine[data-state="delivered"]', { hasText: 'scrollback line 30' }).waitFor({ timeout: 15000 });
  const afterSends = await readStore(d, 'dana');
  assert.ok(afterSends.hasEntries, 'history entries have their own store');
  assert.ok(afterSends.entries.length >= before.entries.length + 30, `one record per message (${before.entries.length} → ${afterSends.entries.length})`);
  assert.ok(afterSends.profile - before.profile < 2000, `the profile record does not carry the history (${before.profile} → ${afterSends.profile} bytes)`);
  for (const rec of afterSends.entries) assert.ok(!rec.includes('scrollback line'), 'entry records are encrypted');

  // Scroll up, select some text, and mark the nodes.
  await d.evaluate(() => {
    const list = document.getElementById('messages');
    list.scrollTop = 0;
    list.__mark = 'same list';
    const first = [...list.querySelectorAll('li.mine .text')].find((t) => t.textContent.startsWith('scrollback line 1 '));
    first.parentElement.__mark = 'same item';
    const range = document.createRange();
    range.selectNodeContents(first);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  });
  const selected = await d.evaluate(() => getSelection().toString());
  assert.match(selected, /^scrollback line 1 /);
  // erin writes in the room (another chat for dana), then in this chat.
  await e.locator('button.conv[data-conv="#team-room"]').click();
  await send(e, 'news in the room');
  await d.locator('button.conv[data-conv="#team-room"] .badge', { hasText: '1' }).waitFor({ timeout: 15000 });
  await openConv(e, '@dana');
  await send(e, 'a reply while dana reads old lines');
  await d.locator('#messages li.theirs .text', { hasText: 'a reply while dana reads old lines' }).waitFor({ timeout: 15000 });
  const state = await d.evaluate(() => {
    const list = document.getElementById('messages');
    return {
      top: list.scrollTop,
      list: list.__mark,
      item: [...list.querySelectorAll('li.mine')].find((li) => li.textContent.includes('scrollback line 1 ')).__mark,
      selection: getSelection().toString(),
      focus: document.activeElement?.id,
    };
  });
  assert.equal(state.top, 0, 'the open chat did not jump to the bottom');
  assert.equal(state.list, 'same list', 'the list was not rebuilt');
  assert.equal(state.item, 'same item', 'old messages were not redrawn');
  assert.equal(state.selection, selected, 'the selection survived');
  // At the bottom, a new message scrolls into view.
  await d.evaluate(() => {
    const list = document.getElementById('messages');
    list.scrollTop = list.scrollHeight;
  });
  await send(e, 'and one more at the bottom');
  await d.locator('#messages .text', { hasText: 'and one more at the bottom' }).waitFor({ timeout: 15000 });
  await d.waitForTimeout(100);
  const atBottom = await d.evaluate(() => {
    const list = document.getElementById('messages');
    return list.scrollHeight - list.scrollTop - list.clientHeight;
  });
  assert.ok(atBottom < 48, `followed the new message (${atBottom}px from the bottom)`);
});

test('screen readers: mine and theirs are told apart, new messages are announced, the safety number reads in 4 groups a row on a phone', async () => {
  const d = dana.page;
  await openConv(d, '@erin');
  const snapshot = await d.locator('#messages').ariaSnapshot();
  assert.match(snapshot, /You: scrollback line 1 /, 'our messages say "You"');
  assert.match(snapshot, /erin: a reply while dana reads old lines/, 'theirs name the sender');
  assert.equal(await d.locator('#messages').getAttribute('aria-live'), 'polite');
  assert.equal(await d.locator('#messages').getAttribute('role'), 'log');
  // A message in a conversation that is not open goes to the live status region.
  await erin.page.locator('button.conv[data-conv="#team-room"]').click();
  await send(erin.page, 'are you there?');
  await d.locator('#announcer', { hasText: 'New message from erin in #team-room' }).waitFor({ timeout: 15000 });

  await d.setViewportSize({ width: 375, height: 740 });
  await d.getByRole('button', { name: 'Safety number' }).click();
  const tops = await d.locator('#safety-number span').evaluateAll((spans) => spans.map((s) => Math.round(s.getBoundingClientRect().top)));
  assert.equal(tops.length, 12);
  const rows = [...new Set(tops)];
  assert.equal(rows.length, 3, `3 rows of 4 groups (${tops.join(',')})`);
  for (let r = 0; r < 3; r++) assert.deepEqual(tops.slice(r * 4, r * 4 + 4), Array(4).fill(rows[r]));
  assert.match(await d.locator('#safety-number').getAttribute('aria-label'), /^Safety number: (\d{5} ){3}\d{5}, /);
  const words = await d.locator('#screen-safety').textContent();
  assert.doesNotMatch(words, /scan/i, 'the browser is not told to scan');
  assert.ok((await d.evaluate(() => document.documentElement.scrollWidth)) <= 375);
  await screenshot(d, 'ux-03-phone-safety-number');
  await d.getByRole('button', { name: '‹ Back' }).click();
  await d.locator('#composer-text').waitFor();
  await screenshot(d, 'ux-04-phone-conversation');
  await d.getByRole('button', { name: '‹ Chats' }).click();
  await screenshot(d, 'ux-05-phone-chat-list');
  await d.setViewportSize({ width: 1100, height: 760 });
});

test('notifications with permission, the unread count in the title, the chat list by activity with last message and time', async () => {
  const d = dana.page;
  await d.getByRole('button', { name: 'Turn on notifications' }).click();
  await d.locator('#enable-notifications').waitFor({ state: 'hidden' });
  await d.locator('button.conv[data-conv="#team-room"]').click();
  await d.locator('#conv-title', { hasText: '#team-room' }).waitFor();
  await openConv(erin.page, '@dana');
  await send(erin.page, 'ping from erin');
  await d.waitForFunction(() => window.__notes.some((n) => n.title === 'erin' && n.body === 'ping from erin'), null, { timeout: 15000 });
  await d.waitForFunction(() => document.title === '(1) Sealroom', null, { timeout: 15000 });
  // The list: @erin moved to the top, with the last message and a short time.
  const first = d.locator('#conv-list li').first();
  assert.equal(await first.locator('button.conv').getAttribute('data-conv'), '@erin');
  assert.equal(await first.locator('.conv-preview').textContent(), 'ping from erin');
  assert.match(await first.locator('.conv-time').textContent(), /^\d{1,2}:\d{2}/);
  assert.equal(await first.locator('.badge').textContent(), '1');
  await screenshot(d, 'ux-06-desktop-unread');
  await d.locator('button.conv[data-conv="@erin"]').click();
  await d.waitForFunction(() => document.title === 'Sealroom', null, { timeout: 5000 });
  // Day separators and short times in the timeline.
  assert.equal(await d.locator('#messages li.day').first().textContent(), 'Today');
  assert.match(await d.locator('#messages li.theirs time').last().textContent(), /^\d{1,2}:\d{2}(\s?[AP]M)?$/);
});

test('the compose box grows with the text and shrinks after sending', async () => {
  const d = dana.page;
  await openConv(d, '@erin');
  const h0 = await d.locator('#composer-text').evaluate((el) => el.getBoundingClientRect().height);
  await d.locator('#composer-text').fill('line one\nline two\nline three\nline four');
  const h1 = await d.locator('#composer-text').evaluate((el) => el.getBoundingClientRect().height);
  assert.ok(h1 > h0 * 1.8, `grew from ${h0} to ${h1}`);
  await d.locator('#composer-text').press('Enter');
  await d.locator('#messages li.mine .text', { hasText: 'line four' }).waitFor();
  const h2 = await d.locator('#composer-text').evaluate((el) => el.getBoundingClientRect().height);
  assert.ok(h2 < h1, `shrank back to ${h2}`);
  assert.equal(await d.locator('#messages li.mine .text').last().textContent(), 'line one\nline two\nline three\nline four');
});

test('the member panel asks before Remove; leaves and removals show in the timeline; the removed member sees a closed room', async () => {
  const d = dana.page;
  const e = erin.page;
  const finn = await registerUser(browser, server, FINN);
  assert.equal(await finn.page.locator('#me-name').textContent(), FINN.name, 'the display name is shown as typed');
  assert.equal(await finn.page.locator('#me-name b, #me-name img').count(), 0, 'as text, not markup');
  await d.locator('button.conv[data-conv="#team-room"]').click();
  await invite(d, '#team-room', 'finn');
  await acceptInvitation(finn.page, '#team-room', 'dana');
  await d.locator('#messages .event', { hasText: 'You added finn' }).waitFor({ timeout: 15000 });
  await d.locator('#room-members-list li[data-member="finn"]').waitFor();
  assert.equal(await d.locator('#room-members-list li[data-member="dana"] .tag').textContent(), 'admin');
  await screenshot(d, 'ux-07-member-panel');
  // Remove asks first; Cancel keeps finn.
  await d.getByRole('button', { name: 'Remove finn' }).click();
  const dialog = d.getByRole('dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /Remove finn from #team-room\?/);
  await screenshot(d, 'ux-08-confirm-remove');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  await d.waitForTimeout(500);
  assert.equal(await d.locator('#room-members-list li[data-member="finn"]').count(), 1, 'Cancel removes nobody');
  await d.getByRole('button', { name: 'Remove finn' }).click();
  await d.getByRole('dialog').getByRole('button', { name: 'Remove finn' }).click();
  await d.locator('#messages .event', { hasText: 'You removed finn' }).waitFor({ timeout: 15000 });
  await d.locator('#room-members-list li[data-member="finn"]').waitFor({ state: 'detached', timeout: 15000 });
  await e.locator('button.conv[data-conv="#team-room"]').click();
  await e.locator('#messages .event', { hasText: 'dana removed finn' }).waitFor({ timeout: 15000 });
  const f = finn.page;
  await f.locator('button.conv[data-conv="#team-room"]').click();
  await f.locator('#room-closed').waitFor({ timeout: 15000 });
  assert.equal(await f.locator('#composer-text').isVisible(), false);
  assert.equal(await f.locator('#toggle-members').count(), 0);
  await f.locator('#messages .event', { hasText: 'You were removed from the room' }).waitFor();
  // A room member is not an empty chat for finn either.
  assert.equal(await f.locator('button.conv[data-conv="@dana"]').count(), 0);
  assert.equal(await f.locator('button.conv[data-conv="@erin"]').count(), 0);
  // erin leaves (after confirming): dana sees it in the timeline.
  await e.locator('#toggle-members').click();
  await e.getByRole('button', { name: 'Leave room' }).click();
  await e.getByRole('dialog').getByRole('button', { name: 'Leave room' }).click();
  await e.locator('#room-closed', { hasText: 'You left #team-room' }).waitFor({ timeout: 15000 });
  await d.locator('#messages .event', { hasText: 'Erin left' }).waitFor({ timeout: 15000 });
  await finn.context.close();
});

test('offline: messages wait in the outbox, shown as waiting, and go when the server is back, also after a reload', async () => {
  const d = dana.page;
  const e = erin.page;
  await openConv(d, '@erin');
  await openConv(e, '@dana');
  await server.pause();
  await d.locator('#status.offline').waitFor({ timeout: 15000 });
  await d.locator('#composer-text').fill('written offline 1');
  await d.locator('#composer-text').press('Enter');
  await d.locator('#composer-text').fill('written offline 2');
  await d.locator('#composer-text').press('Enter');
  const waiting = d.locator('#messages li.mine[data-state="waiting"]');
  await waiting.filter({ hasText: 'written offline 2' }).waitFor();
  assert.equal(await waiting.count(), 2);
  assert.match(await waiting.first().locator('.meta').textContent(), /waiting/);
  assert.equal(await d.locator('#composer-text').inputValue(), '', 'the text moved to the outbox');
  await screenshot(d, 'ux-09-outbox-waiting');
  await server.resume();
  await d.locator('#status.online').waitFor({ timeout: 20000 });
  await d.locator('#messages li.mine[data-state="waiting"]').first().waitFor({ state: 'detached', timeout: 20000 });
  await e.locator('#status.online').waitFor({ timeout: 20000 });
  await e.locator('#messages .text', { hasText: 'written offline 2' }).waitFor({ timeout: 20000 });
  const got = await e.locator('#messages li.theirs .text').allTextContents();
  assert.deepEqual(got.slice(-2), ['written offline 1', 'written offline 2'], 'in order, once each');

  // The outbox is saved: a reload while the server is down keeps the waiting text.
  await server.pause();
  await d.locator('#status.offline').waitFor({ timeout: 15000 });
  await d.locator('#composer-text').fill('kept through a reload');
  await d.locator('#composer-text').press('Enter');
  await d.locator('#messages li.mine[data-state="waiting"]', { hasText: 'kept through a reload' }).waitFor();
  // Reloaded while the server is still down: the page itself cannot load.
  await d.goto(server.url).catch(() => {});
  await server.resume();
  for (let i = 0; ; i++) {
    // The error page of the failed load may still be arriving: try again until the app loads.
    try {
      await d.goto(server.url);
      break;
    } catch (err) {
      if (i === 5) throw err;
      await d.waitForTimeout(500);
    }
  }
  await d.locator('#screen-login').waitFor();
  await d.waitForFunction(() => document.getElementById('login-username').value === 'dana', null, { timeout: 5000 });
  assert.equal(await d.getByLabel('Username').inputValue(), 'dana', 'the login remembers the username');
  await d.getByLabel('Password', { exact: true }).fill(DANA.password);
  await d.getByRole('button', { name: 'Log in' }).click();
  await d.locator('#screen-chat').waitFor();
  await e.locator('#messages .text', { hasText: 'kept through a reload' }).waitFor({ timeout: 20000 });
  await openConv(d, '@erin');
  await d.locator('#messages li.mine[data-state="delivered"]', { hasText: 'kept through a reload' }).waitFor({ timeout: 15000 });
  assert.equal(await e.locator('#messages .text', { hasText: 'kept through a reload' }).count(), 1);
});

test('dark theme follows the system setting; desktop screenshots', async () => {
  const d = dana.page;
  await openConv(d, '@erin');
  await screenshot(d, 'ux-10-desktop-light');
  const light = await d.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await d.emulateMedia({ colorScheme: 'dark' });
  const dark = await d.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const lum = (rgb) => rgb.match(/\d+/g).slice(0, 3).map(Number).reduce((a, b) => a + b, 0) / 3;
  assert.ok(lum(light) > 200, `light background (${light})`);
  assert.ok(lum(dark) < 60, `dark background (${dark})`);
  const bubble = await d.locator('#messages li.mine').last().evaluate((el) => getComputedStyle(el).color);
  assert.ok(lum(bubble) > 150, `light text on dark (${bubble})`);
  await screenshot(d, 'ux-11-desktop-dark');
  await d.setViewportSize({ width: 375, height: 740 });
  await screenshot(d, 'ux-12-phone-dark');
  await d.setViewportSize({ width: 1100, height: 760 });
  await d.emulateMedia({ colorScheme: 'light' });
  assert.deepEqual(await d.evaluate(() => window.__csp), [], 'no CSP violation');
  assert.deepEqual(d.errors, []);
});

test('send → shown latency stays flat from message 1 to message 500 in one conversation (reported, not asserted)', async () => {
  const d = dana.page;
  const e = erin.page;
  await openConv(d, '@erin');
  await openConv(e, '@dana');
  await e.evaluate(() => {
    window.__shown = new Map();
    new MutationObserver((records) => {
      const t = performance.timeOrigin + performance.now();
      for (const r of records) for (const n of r.addedNodes) {
        const text = n.querySelector?.('.text')?.textContent;
        if (text && text.startsWith('latency ') && !window.__shown.has(text)) window.__shown.set(text, t);
      }
    }).observe(document.getElementById('messages'), { childList: true });
  });
  const N = 500;
  const endToEnd = [];
  const local = [];
  for (let i = 1; i <= N; i++) {
    const text = `latency ${i}`;
    const t = await d.evaluate((text) => new Promise((resolve) => {
      const ta = document.getElementById('composer-text');
      const list = document.getElementById('messages');
      ta.value = text;
      ta.dispatchEvent(new Event('input'));
      const t0 = performance.timeOrigin + performance.now();
      let shown = 0;
      const done = () => {
        const last = list.lastElementChild;
        if (!shown && last && last.querySelector('.text')?.textContent === text) shown = performance.timeOrigin + performance.now();
        if (shown && last && last.dataset.state !== 'waiting') {
          obs.disconnect();
          resolve({ t0, shown });
          return true;
        }
        return false;
      };
      const obs = new MutationObserver(done);
      obs.observe(list, { childList: true, subtree: true, attributes: true });
      ta.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }));
      done();
    }), text);
    const shownThere = await e.waitForFunction((text) => window.__shown.get(text), text, { timeout: 30000, polling: 5 });
    endToEnd.push((await shownThere.jsonValue()) - t.t0);
    local.push(t.shown - t.t0);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const f = (x) => `${x.toFixed(0)} ms`;
  console.log(`# web latency, one conversation, send → shown at the recipient: message 1 ${f(endToEnd[0])}, message ${N} ${f(endToEnd[N - 1])}; median of 1-50 ${f(median(endToEnd.slice(0, 50)))}, of ${N - 49}-${N} ${f(median(endToEnd.slice(-50)))}`);
  console.log(`# web latency, send → own bubble: message 1 ${f(local[0])}, message ${N} ${f(local[N - 1])}; median of 1-50 ${f(median(local.slice(0, 50)))}, of ${N - 49}-${N} ${f(median(local.slice(-50)))}`);
  assert.equal(endToEnd.length, N);
  assert.equal(await e.locator('#messages li.theirs .text', { hasText: /^latency \d+$/ }).count(), N, 'every message shown once');
});

test('"Forget this browser" warns first, then deletes the keys and history here', async () => {
  const d = dana.page;
  await d.getByRole('button', { name: 'Forget this browser…' }).click();
  const dialog = d.getByRole('dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /deletes dana's keys and all message history from this browser/);
  assert.match(await dialog.textContent(), /safety number change/);
  await screenshot(d, 'ux-13-forget-warning');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  assert.ok((await readStore(d, 'dana')).profile > 0, 'Cancel keeps everything');
  await d.getByRole('button', { name: 'Forget this browser…' }).click();
  await d.getByRole('dialog').getByRole('button', { name: 'Forget this browser' }).click();
  await d.locator('#screen-login').waitFor();
  const left = await readStore(d, 'dana');
  assert.equal(left.profile, 0, 'no keystore record');
  assert.equal(left.entries.length, 0, 'no history records');
  await d.waitForTimeout(200);
  assert.equal(await d.getByLabel('Username').inputValue(), '', 'the username is forgotten too');
});

// Room invitations in the browser against a real server (docs/PROTOCOL.md §3.4, messages 24, 31,
// 36-39): an invitee hears of the invitation alone and is not a member, so it sees nothing of
// the room, until it accepts; Decline drops the invitation and nobody joins; waiting invitations
// come back after a reload (ListInvitations); Accept, from the keyboard, opens the room and
// messages then go both ways. Browser ↔ CLI invitations are in web.test.mjs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, screenshot, startServer } from './harness.mjs';
import { createRoom, expectMessage, invite, registerUser, send } from './ui.mjs';

const HANA = { username: 'hana', name: 'Hana Example', password: 'topaz heron glacier 23 fable' };
const IVAN = { username: 'ivan', name: 'Ivan Example', password: 'maple raven canyon 91 quill' };

let server;
let browser;
let hana;
let ivan;

/** Records what the page would show as system notifications; permission already granted. */
function grantedNotifications() {
  window.__notes = [];
  class FakeNotification {
    static permission = 'granted';
    static async requestPermission() {
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
  hana = await registerUser(browser, server, HANA);
  ivan = await registerUser(browser, server, IVAN, { init: grantedNotifications });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const invitation = (page, room) => page.locator(`#invitations li[data-room="${room}"]`);

test('an invitee is not a member and sees nothing of the room until it accepts', async () => {
  const h = hana.page;
  const iv = ivan.page;
  assert.equal(await iv.locator('#invitations-heading').isVisible(), false, 'no Invitations section while none waits');
  await createRoom(h, 'plans', '#plans');
  await send(h, 'said before ivan was asked');
  // Typed in capitals: folded as the protocol folds usernames (ASCII only).
  await h.locator('#toggle-members[aria-expanded="true"]').waitFor();
  await h.getByLabel('Username to invite to #plans').fill('IVAN');
  await h.getByRole('button', { name: 'Invite', exact: true }).click();
  await h.locator('#invite-status', { hasText: 'Invited ivan; they join when they accept.' }).waitFor({ timeout: 15000 });
  await h.locator('#messages .event', { hasText: 'You invited ivan; they join when they accept' }).waitFor();

  // ivan: an invitation with its two buttons, told as text, announced and notified.
  await invitation(iv, 'plans').waitFor({ timeout: 15000 });
  assert.equal(await invitation(iv, 'plans').locator('.invitation-text').textContent(), 'hana invited you to #plans');
  await iv.getByRole('button', { name: 'Accept invitation to #plans' }).waitFor();
  await iv.getByRole('button', { name: 'Decline invitation to #plans' }).waitFor();
  await iv.locator('#announcer', { hasText: 'hana invited you to #plans' }).waitFor();
  await iv.waitForFunction(() => window.__notes.some((n) => n.title === 'Invitation to #plans' && n.body === 'hana invited you to #plans'), null, { timeout: 5000 });
  await screenshot(iv, 'inv-01-invitation-waiting');

  // Not a member: hana's list holds only hana, and what she writes now never reaches ivan.
  await h.locator('#room-members-list li[data-member="hana"]').waitFor();
  assert.equal(await h.locator('#room-members-list li').count(), 1);
  await send(h, 'said while ivan was only invited');
  await iv.waitForTimeout(1500);
  assert.equal(await iv.locator('button.conv[data-conv="#plans"]').count(), 0, 'no room in the invitee\'s list');
  const seen = await iv.locator('body').textContent();
  assert.ok(!seen.includes('said before ivan') && !seen.includes('said while ivan'), 'no room text on the invitee\'s page');
  assert.equal(await h.locator('#room-members-list li').count(), 1, 'still only hana');
});

test('decline removes the invitation and nobody joins; the inviter may ask again', async () => {
  const h = hana.page;
  const iv = ivan.page;
  await createRoom(h, 'side', '#side');
  await invite(h, '#side', 'ivan');
  await invitation(iv, 'side').waitFor({ timeout: 15000 });
  await iv.getByRole('button', { name: 'Decline invitation to #side' }).click();
  await invitation(iv, 'side').waitFor({ state: 'detached', timeout: 15000 });
  assert.equal(await invitation(iv, 'plans').count(), 1, 'the other invitation stays');
  assert.equal(await iv.locator('button.conv[data-conv="#side"]').count(), 0);
  await h.waitForTimeout(1000);
  assert.equal(await h.locator('#room-members-list li').count(), 1, 'declining made nobody a member');
  assert.equal(await h.locator('#messages .event', { hasText: 'added ivan' }).count(), 0, 'nobody was signed in');
  // The server dropped it: a second invitation is not "already invited"; declined by keyboard.
  await invite(h, '#side', 'ivan');
  await invitation(iv, 'side').waitFor({ timeout: 15000 });
  await iv.getByRole('button', { name: 'Decline invitation to #side' }).focus();
  await iv.keyboard.press('Enter');
  await invitation(iv, 'side').waitFor({ state: 'detached', timeout: 15000 });
  assert.equal(await iv.locator('#invitation-error').textContent(), '');
});

test('after a reload the invitations still waiting are listed again', async () => {
  const iv = ivan.page;
  await iv.reload();
  await iv.locator('#screen-login').waitFor();
  await iv.getByLabel('Username').fill(IVAN.username);
  await iv.getByLabel('Password', { exact: true }).fill(IVAN.password);
  await iv.getByRole('button', { name: 'Log in' }).click();
  await iv.locator('#screen-chat').waitFor();
  await invitation(iv, 'plans').waitFor({ timeout: 15000 });
  assert.equal(await iv.locator('#invitations li').count(), 1, 'only #plans: #side was declined');
  assert.equal(await invitation(iv, 'plans').locator('.invitation-text').textContent(), 'hana invited you to #plans');
});

test('accept from the keyboard: the room opens, both see the join, and messages go both ways', async () => {
  const h = hana.page;
  const iv = ivan.page;
  await iv.getByRole('button', { name: 'Accept invitation to #plans' }).focus();
  await iv.keyboard.press('Enter');
  await iv.locator('#conv-title', { hasText: '#plans' }).waitFor({ timeout: 15000 });
  await iv.locator('#messages .event', { hasText: 'You joined the room' }).waitFor({ timeout: 15000 });
  assert.equal(await iv.locator('#invitations li').count(), 0);
  assert.equal(await iv.locator('#invitations-heading').isVisible(), false, 'the section goes with the last invitation');
  await h.locator('button.conv[data-conv="#plans"]').click();
  // hana signs ivan into the room's roster once the server lists him.
  await h.locator('#messages .event', { hasText: 'You added ivan' }).waitFor({ timeout: 15000 });
  await h.locator('#room-members-list li[data-member="ivan"]').waitFor({ timeout: 15000 });
  // Let both sender keys cross before the first room message.
  await h.waitForTimeout(1000);
  await send(h, 'Welcome to #plans, Ivan.');
  await expectMessage(iv, '#plans', 'Welcome to #plans, Ivan.');
  await send(iv, 'Thanks, Hana.');
  await expectMessage(h, '#plans', 'Thanks, Hana.');
  // Members who join later do not receive what was said before.
  await iv.locator('button.conv[data-conv="#plans"]').click();
  const texts = await iv.locator('#messages .text').allTextContents();
  assert.ok(!texts.some((t) => t.startsWith('said ')), `nothing from before the join (${texts.join(' | ')})`);
  await screenshot(iv, 'inv-02-accepted-room');
  for (const page of [h, iv]) {
    assert.deepEqual(await page.evaluate(() => window.__csp), [], 'no CSP violation');
    assert.deepEqual(page.errors, []);
  }
});

// @ts-check
/**
 * Account settings, in a modal dialog: the account's devices (name, added, last seen, revoked;
 * revoke another; link a new one, ui/link.js), change the password, enroll a new authenticator, make new
 * recovery codes (showing how many are left), delete the account. Each form asks for the
 * password and a code from the authenticator — or a recovery code when it is lost — and shows
 * the server's answer as text.
 */
import * as account from '../account.js';
import { confirmAction } from './dialog.js';
import { describe, field, h } from './dom.js';
import { showLinkDevice } from './link.js';
import { qrImage } from './register.js';
import { mediumTime } from './timeline.js';

/** @typedef {import('../client.js').Client} Client */

/** The code field every change needs. @param {string} id */
function codeField(id) {
  return field('Code from your authenticator, or a recovery code', { id, autocomplete: 'one-time-code', required: true, autocapitalize: 'none', spellcheck: 'false' });
}

/** @param {string} label @param {string} id @param {string} [autocomplete] */
function passwordField(label, id, autocomplete = 'current-password') {
  return field(label, { id, type: 'password', autocomplete, required: true });
}

/**
 * A form that runs `act` on submit, with its error and status lines; `act` returns the text
 * to show when it succeeds.
 * @param {string} id @param {string} title @param {Node[]} fields @param {string} button
 * @param {() => Promise<string | null>} act @param {Node | null} [extra]
 */
function section(id, title, fields, button, act, extra = null) {
  const error = h('p', { class: 'error', id: `${id}-error`, role: 'alert' });
  const status = h('p', { class: 'hint', id: `${id}-status`, role: 'status' });
  const submit = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit' }, button));
  const form = h('form', {
    class: 'stack',
    'aria-labelledby': `${id}-title`,
    on: {
      submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        error.textContent = '';
        status.textContent = '';
        submit.disabled = true;
        try {
          const done = await act();
          if (done) status.textContent = done;
          for (const input of form.querySelectorAll('input')) input.value = '';
        } catch (e) {
          error.textContent = describe(e);
        } finally {
          submit.disabled = false;
        }
      },
    },
  }, fields, error, submit, status);
  return h('section', { class: 'settings-section', id }, h('h3', { id: `${id}-title` }, title), form, extra);
}

/**
 * Opens the settings dialog.
 * @param {Client} client
 * @param {{onDeleted: () => void}} nav
 */
export function showSettings(client, nav) {
  // Change the password.
  const current = passwordField('Current password', 'settings-current-password');
  const next = passwordField('New password', 'settings-new-password', 'new-password');
  const again = passwordField('New password again', 'settings-new-password2', 'new-password');
  const pwCode = codeField('settings-password-code');
  const password = section('settings-password', 'Change the password', [current.el, next.el, again.el, pwCode.el], 'Change password', async () => {
    if (next.input.value !== again.input.value) throw new Error('The new passwords differ.');
    await account.changePassword(client, current.input.value, next.input.value, pwCode.input.value);
    return 'Password changed. Your other sessions were logged out; the keys in this browser are now encrypted with the new password.';
  });

  // A new authenticator: started with the password and a code, confirmed with a code of the new one.
  const totpPass = passwordField('Password', 'settings-totp-password');
  const totpCode = codeField('settings-totp-code');
  const enrolled = h('div', { id: 'settings-new-totp' });
  const authenticator = section('settings-totp', 'New authenticator', [totpPass.el, totpCode.el], 'Start', async () => {
    const uri = await account.startNewAuthenticator(client, totpPass.input.value, totpCode.input.value);
    const secret = new URL(uri).searchParams.get('secret') ?? '';
    const confirmCode = field('Code from the new authenticator', { id: 'settings-new-totp-code', inputmode: 'numeric', autocomplete: 'one-time-code', required: true });
    const confirmError = h('p', { class: 'error', id: 'settings-new-totp-error', role: 'alert' });
    enrolled.replaceChildren(
      h('p', null, 'Scan this QR code with the new authenticator app, or type the secret. The old one works until you confirm.'),
      qrImage(uri, 'QR code for the new authenticator'),
      h('p', { class: 'secret', id: 'settings-new-totp-secret' }, secret),
      h('form', { class: 'stack', on: { submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        confirmError.textContent = '';
        try {
          await account.confirmNewAuthenticator(client, confirmCode.input.value);
          enrolled.replaceChildren(h('p', { class: 'verified', id: 'settings-new-totp-done' }, 'The new authenticator is in force; the old one no longer works.'));
        } catch (e) {
          confirmError.textContent = describe(e);
        }
      } } }, confirmCode.el, confirmError, h('button', { type: 'submit' }, 'Confirm')));
    return null;
  }, enrolled);

  // Recovery codes: how many are left, and new ones.
  const left = h('p', { class: 'hint', id: 'settings-recovery-left' }, 'Counting your recovery codes…');
  const countLeft = () => account.recoveryCodesLeft(client).then(
    (n) => { left.textContent = `${n} recovery code${n === 1 ? '' : 's'} left.`; },
    (e) => { left.textContent = describe(e); });
  const codesPass = passwordField('Password', 'settings-codes-password');
  const codesCode = codeField('settings-codes-code');
  const newCodes = h('div', { id: 'settings-new-codes' });
  const recovery = section('settings-codes', 'Recovery codes', [left, codesPass.el, codesCode.el], 'Make new recovery codes', async () => {
    const codes = await account.regenerateRecoveryCodes(client, codesPass.input.value, codesCode.input.value);
    newCodes.replaceChildren(
      h('p', null, 'Your new recovery codes; the old ones no longer work. They are shown only now: write them down.'),
      h('ol', { class: 'codes', id: 'settings-recovery-codes' }, codes.map((c) => h('li', null, h('code', null, c)))));
    await countLeft();
    return null;
  }, newCodes);

  // Delete the account.
  const delPass = passwordField('Password', 'settings-delete-password');
  const delCode = codeField('settings-delete-code');
  const remove = section('settings-delete', 'Delete the account', [delPass.el, delCode.el], 'Delete the account…', async () => {
    const ok = await confirmAction({
      title: `Delete ${client.profile.username}?`,
      body: 'The server forgets the account: its waiting messages, keys and room memberships. This browser forgets its keys and history. This cannot be undone.',
      action: 'Delete the account',
      danger: true,
    });
    if (!ok) return 'Nothing was deleted.';
    await account.deleteAccount(client, delPass.input.value, delCode.input.value);
    dialog.close();
    nav.onDeleted();
    return null;
  });

  // This account's devices: name, added, last seen, revoked; another active one can be revoked.
  const deviceRows = h('tbody', { id: 'settings-devices-rows' });
  const devicesNote = h('p', { class: 'hint', id: 'settings-devices-status', role: 'status' }, 'Asking the server for your devices…');
  const devices = h('section', { class: 'settings-section', id: 'settings-devices' },
    h('h3', { id: 'settings-devices-title' }, 'Devices'),
    devicesNote,
    h('table', { class: 'devices', 'aria-labelledby': 'settings-devices-title' },
      h('thead', null, h('tr', null, ['Device', 'Added', 'Last seen', 'Status', ''].map((t) => h('th', { scope: 'col' }, t)))),
      deviceRows),
    h('div', { class: 'row' }, h('button', { type: 'button', class: 'secondary', id: 'settings-link-device', on: { click: () => showLinkDevice(client, watchForNewDevice) } }, 'Link a device…')));
  /** @param {{device_id: number, name: string}} d */
  const revokeButton = (d) => h('button', {
    type: 'button', class: 'secondary', 'data-revoke': String(d.device_id),
    on: {
      click: async () => {
        // Without bidi controls (a server may send any name): the name cannot reorder the title.
        const name = d.name.replace(/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '') || `device ${d.device_id}`;
        const ok = await confirmAction({
          title: `Revoke ${name}?`,
          body: 'It is logged out at once; its keys and the messages waiting for it are deleted, and your contacts stop writing to it. To use it again, link it again.',
          action: 'Revoke',
          danger: true,
        });
        if (!ok) return;
        try {
          await client.revokeDevice(d.device_id);
          await listDevices();
        } catch (e) {
          devicesNote.textContent = describe(e);
        }
      },
    },
  }, 'Revoke…');
  const listDevices = () => client.listDevices().then(({ current, devices: list }) => {
    deviceRows.replaceChildren(...list.map((d) => h('tr', { 'data-device': String(d.device_id) },
      h('td', { dir: 'auto' }, d.name || '(unnamed)'),
      h('td', null, mediumTime(d.added_at)),
      h('td', null, mediumTime(d.last_seen)),
      h('td', null, d.revoked_at !== null ? `Revoked ${mediumTime(d.revoked_at)}` : d.device_id === current ? 'This browser' : 'Active'),
      h('td', null, d.revoked_at === null && d.device_id !== current ? revokeButton(d) : null))));
    devicesNote.textContent = 'Starting over in a browser or terminal without your keys revokes the devices before it; they stay listed here.';
  }, (e) => { devicesNote.textContent = describe(e); });

  // After a link message went: the new device adds itself within seconds (or when its user
  // gets to it); the list is asked again every few seconds for a minute, until it shows.
  let watching = 0;
  const watchForNewDevice = () => {
    clearInterval(watching);
    const before = deviceRows.childElementCount;
    let asks = 0;
    watching = window.setInterval(async () => {
      if (!deviceRows.isConnected || ++asks > 20) {
        clearInterval(watching);
        return;
      }
      await listDevices();
      if (deviceRows.childElementCount > before) clearInterval(watching);
    }, 3000);
  };

  const close = h('button', { type: 'button', class: 'secondary', id: 'settings-close' }, 'Close');
  const dialog = /** @type {HTMLDialogElement} */ (h('dialog', { class: 'settings', id: 'settings', 'aria-labelledby': 'settings-title' },
    h('h2', { id: 'settings-title' }, 'Account settings'),
    devices, password, authenticator, recovery, remove,
    h('div', { class: 'actions' }, close)));
  close.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    clearInterval(watching);
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  countLeft();
  listDevices();
}

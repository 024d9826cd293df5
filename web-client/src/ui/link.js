// @ts-check
/**
 * Linking devices (docs/PROTOCOL.md §4.6), both sides:
 * - "Use an existing account" (`showLinkAccount`): this browser becomes another device of an
 *   account used elsewhere. Username and password, the second factor, then it shows a link code
 *   (text and QR code) and waits, with a countdown and Cancel, for a device of the account to
 *   send it the account; then it sets itself up and opens the chat.
 * - Account settings → "Link a device" (`showLinkDevice`): the user pastes the code a new device
 *   shows, and this browser sends it the account, sealed to that code.
 * The identity never reaches the page's text or the console: only the code (public, one use)
 * and counts are shown. Text only through text nodes.
 */
import { DeviceLinking, LINK_WAIT_MS, defaultServerUrl } from '../client.js';
import { Keystore } from '../keystore.js';
import { describe, field, h, replace } from './dom.js';
import { qrImage, showPasswordToggle } from './register.js';

/** @typedef {import('../client.js').Client} Client */
/** @typedef {{onLoggedIn: (c: Client) => void, onLogin: () => void, onRegister: () => void}} LinkNav */

/** "9:05" for milliseconds. @param {number} ms */
function minutes(ms) {
  const s = Math.ceil(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * The start: username and password of the account to join (or, for a browser whose device was
 * revoked, straight to the second factor with what it logged in with).
 * @param {HTMLElement} root @param {LinkNav} nav
 * @param {{username?: string, password?: string, previous?: ConstructorParameters<typeof DeviceLinking>[3], message?: string}} [opts]
 */
export function showLinkAccount(root, nav, opts = {}) {
  const previous = opts.previous ?? null;
  if (opts.username && opts.password) {
    const username = opts.username;
    const password = opts.password;
    replace(root, h('section', { class: 'card', id: 'screen-link' }, h('h2', null, 'Link this browser again'), h('p', { role: 'status' }, 'Checking the password…')));
    DeviceLinking.start(defaultServerUrl(), username, password, previous).then(
      (linking) => showLinkCode(root, linking, nav, 'Each code works once: type the next one your authenticator shows, or a recovery code.'),
      (e) => showLinkAccount(root, nav, { username, previous, message: describe(e) }));
    return;
  }
  const user = field('Username', { id: 'link-username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false', value: opts.username ?? '' });
  const pass = field('Password', { id: 'link-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'error', id: 'link-error', role: 'alert' }, opts.message ?? '');
  const submit = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit' }, 'Continue'));
  const form = h('form', {
    class: 'stack',
    'aria-labelledby': 'link-title',
    on: {
      submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        error.textContent = '';
        submit.disabled = true;
        submit.textContent = 'Checking…';
        try {
          const linking = await DeviceLinking.start(defaultServerUrl(), user.input.value, pass.input.value, previous);
          showLinkCode(root, linking, nav);
        } catch (e) {
          error.textContent = describe(e);
          submit.disabled = false;
          submit.textContent = 'Continue';
        }
      },
    },
  }, user.el, pass.el, showPasswordToggle([pass.input], 'link-show-password'), error, submit);
  replace(root, h('section', { class: 'card', id: 'screen-link' },
    h('h2', { id: 'link-title' }, previous ? 'Link this browser again' : 'Use an existing account'),
    h('p', { class: 'hint' }, 'Make this browser another device of an account you already use in a terminal or another browser. That device sends this one your identity and contacts, sealed so the server cannot read them.'),
    form,
    h('p', null, h('button', { class: 'link', type: 'button', id: 'link-to-login', on: { click: nav.onLogin } }, 'Log in'), ' · ',
      h('button', { class: 'link', type: 'button', on: { click: nav.onRegister } }, 'Create an account'))));
  (opts.username ? pass.input : user.input).focus();
}

/**
 * The second factor of the linking session.
 * @param {HTMLElement} root @param {DeviceLinking} linking @param {LinkNav} nav @param {string} [hint]
 */
function showLinkCode(root, linking, nav, hint) {
  const code = field('Authenticator code', { id: 'link-totp', name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', required: true },
    hint ?? 'The 6 digits from your authenticator app, or one of your recovery codes.');
  const error = h('p', { class: 'error', id: 'link-code-error', role: 'alert' });
  const submit = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit' }, 'Continue'));
  const cancel = h('button', { type: 'button', class: 'secondary', id: 'link-code-cancel', on: { click: async () => {
    await linking.cancel();
    nav.onLogin();
  } } }, 'Cancel');
  const form = h('form', {
    class: 'stack',
    on: {
      submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        error.textContent = '';
        submit.disabled = true;
        try {
          await linking.submitCode(code.input.value);
          showLinkWait(root, linking, nav);
        } catch (e) {
          if (!linking.conn.isOpen) {
            await linking.cancel();
            showLinkAccount(root, nav, { username: linking.username, previous: linking.previous, message: `${describe(e)} Start again.` });
            return;
          }
          error.textContent = describe(e);
          code.input.value = '';
          code.input.focus();
          submit.disabled = false;
        }
      },
    },
  }, code.el, error, h('div', { class: 'row' }, submit, cancel));
  replace(root, h('section', { class: 'card', id: 'screen-link-code' }, h('h2', null, 'Two-step check'), form));
  code.input.focus();
}

/**
 * The link code, the countdown, and the rest on its own once the account arrives.
 * @param {HTMLElement} root @param {DeviceLinking} linking @param {LinkNav} nav
 */
function showLinkWait(root, linking, nav) {
  const text = linking.codeText;
  const abort = new AbortController();
  const countdown = h('p', { id: 'link-countdown', role: 'timer', 'aria-live': 'off' }, `Waiting for a device of ${linking.username}… ${minutes(LINK_WAIT_MS)} left`);
  const progress = h('p', { class: 'hint', id: 'link-progress', role: 'status' });
  const error = h('p', { class: 'error', id: 'link-wait-error', role: 'alert' });
  const feedback = h('span', { class: 'hint', id: 'link-copy-feedback', role: 'status' });
  const codeEl = h('p', { class: 'secret', id: 'link-code-text', translate: 'no' }, text);
  const copy = h('button', { type: 'button', class: 'secondary', id: 'link-copy', on: { click: async () => {
    try {
      await navigator.clipboard.writeText(text);
      feedback.textContent = 'Copied.';
    } catch {
      const range = document.createRange();
      range.selectNodeContents(codeEl);
      const sel = window.getSelection();
      sel?.removeAllRanges();
      sel?.addRange(range);
      feedback.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
    }
  } } }, 'Copy the code');
  const again = h('button', { type: 'button', id: 'link-again', hidden: true, on: { click: () => showLinkAccount(root, nav, { username: linking.username, previous: linking.previous }) } }, 'Start again');
  const cancel = h('button', { type: 'button', class: 'secondary', id: 'link-cancel', on: { click: async () => {
    abort.abort();
    await linking.cancel();
    nav.onLogin();
  } } }, 'Cancel');
  replace(root, h('section', { class: 'card', id: 'screen-link-wait' },
    h('h2', null, `Link this browser to ${linking.username}`),
    h('p', null, 'On a device already in the account:'),
    h('ul', null,
      h('li', null, 'in a browser: Account settings → Link a device, then paste this code;'),
      h('li', null, 'in a terminal: ', h('code', null, 'sealroom devices add'), ' followed by this code.')),
    qrImage(text, 'QR code of the link code'),
    codeEl,
    h('div', { class: 'row' }, copy, feedback),
    countdown, progress, error,
    h('div', { class: 'row' }, again, cancel)));
  copy.focus();

  const stop = (/** @type {string} */ why) => {
    error.textContent = why;
    countdown.textContent = '';
    progress.textContent = '';
    again.hidden = false;
    cancel.textContent = 'Back to log in';
  };
  linking.waitForMessage({
    signal: abort.signal,
    onTick: (left) => { countdown.textContent = `Waiting for a device of ${linking.username}… ${minutes(left)} left`; },
  }).then(async (message) => {
    if (abort.signal.aborted) return;
    if (!message) {
      await linking.cancel();
      stop('No device of the account sent it to this browser within 10 minutes. Start again for a new code.');
      return;
    }
    countdown.textContent = '';
    progress.textContent = 'The account arrived: setting up this browser…';
    cancel.setAttribute('disabled', '');
    const client = await linking.finish(message);
    Keystore.rememberUsername(client.profile.username).catch(() => {});
    nav.onLoggedIn(client);
  }).catch(async (e) => {
    await linking.cancel();
    cancel.removeAttribute('disabled');
    stop(describe(e));
  });
}

/**
 * Account settings → Link a device: paste the code the new device shows; this browser sends
 * it the account, sealed to that code. `onSent` runs after the server took it.
 * @param {Client} client @param {() => void} onSent
 */
export function showLinkDevice(client, onSent) {
  const input = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'link-device-code', rows: 3, required: true, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'characters', 'aria-describedby': 'link-device-warning' }));
  const error = h('p', { class: 'error', id: 'link-device-error', role: 'alert' });
  const status = h('p', { class: 'hint', id: 'link-device-status', role: 'status' });
  const send = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit', id: 'link-device-send' }, 'Link this device'));
  const close = h('button', { type: 'button', class: 'secondary', id: 'link-device-close' }, 'Cancel');
  const form = h('form', {
    class: 'stack',
    on: {
      submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        error.textContent = '';
        status.textContent = '';
        status.className = 'hint';
        send.disabled = true;
        try {
          const { contacts } = await client.linkDevice(input.value);
          input.value = '';
          status.className = 'verified';
          status.textContent = `Sent your identity and ${contacts} contact${contacts === 1 ? '' : 's'} to the new device, sealed to its code: the server cannot read them. The new device will finish on its own within 10 minutes; it then shows under Devices.`;
          close.textContent = 'Close';
          onSent();
        } catch (e) {
          error.textContent = describe(e);
        } finally {
          send.disabled = false;
        }
      },
    },
  },
  h('label', null, 'Link code shown by the new device', input),
  h('p', { class: 'warn-text', id: 'link-device-warning' }, 'The device showing this code gets this account’s identity and contacts: it can read and send as you. Only link a device you set up yourself, just now.'),
  error, status,
  h('div', { class: 'actions' }, close, send));
  const dialog = /** @type {HTMLDialogElement} */ (h('dialog', { class: 'settings', id: 'link-device', 'aria-labelledby': 'link-device-title' },
    h('h2', { id: 'link-device-title' }, 'Link a device'),
    h('p', null, 'On the new device, choose “Use an existing account” (in a browser) or run ', h('code', null, 'sealroom link'), ' (in a terminal), and log in there. It then shows a link code: paste it here.'),
    form));
  close.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}

// @ts-check
/**
 * The login screen: username and password, then the authenticator code. A browser whose device
 * was revoked is offered to link itself again (ui/link.js).
 */
import { Client, DeviceRevokedError, StartOverDeclinedError, defaultServerUrl } from '../client.js';
import { Keystore } from '../keystore.js';
import { confirmAction } from './dialog.js';
import { describe, field, h, replace } from './dom.js';
import { showPasswordToggle } from './register.js';

/**
 * @param {HTMLElement} root
 * @param {{onLoggedIn: (c: Client) => void, onRegister: () => void, onLink: (opts?: Parameters<typeof import('./link.js').showLinkAccount>[2]) => void, message?: string}} nav
 */
export function showLogin(root, nav) {
  const user = field('Username', { id: 'login-username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const pass = field('Password', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'error', id: 'login-error', role: 'alert' }, nav.message ?? '');
  const submit = h('button', { type: 'submit' }, 'Log in');
  const form = h('form', {
    class: 'stack',
    'aria-labelledby': 'login-title',
    on: {
      submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        error.textContent = '';
        submit.setAttribute('disabled', '');
        submit.textContent = 'Checking…';
        try {
          const { client, needsCode } = await Client.login(defaultServerUrl(), user.input.value, pass.input.value);
          Keystore.rememberUsername(client.profile.username).catch(() => {});
          if (needsCode) showCode(root, client, nav);
          else nav.onLoggedIn(client);
        } catch (e) {
          error.textContent = describe(e);
          submit.removeAttribute('disabled');
          submit.textContent = 'Log in';
        }
      },
    },
  }, user.el, pass.el, showPasswordToggle([pass.input], 'login-show-password'), error, submit);
  replace(root, h('section', { class: 'card', id: 'screen-login' },
    h('h2', { id: 'login-title' }, 'Log in'),
    h('p', { class: 'hint' }, 'Your keys stay in this browser, encrypted with your password.'),
    form,
    h('p', null, 'New here? ', h('button', { class: 'link', type: 'button', on: { click: nav.onRegister } }, 'Create an account')),
    h('p', null, 'Using Sealroom in a terminal or another browser? ', h('button', { class: 'link', type: 'button', id: 'use-existing', on: { click: () => nav.onLink() } }, 'Use an existing account'))));
  user.input.focus();
  // The username typed last time on this browser, so only the password is left to type.
  Keystore.lastUsername().then((last) => {
    if (!last || user.input.value || !user.input.isConnected) return;
    user.input.value = last;
    if (document.activeElement === user.input || document.activeElement === document.body) pass.input.focus();
  }).catch(() => {});
}

/**
 * The second factor.
 * @param {HTMLElement} root @param {Client} client
 * @param {{onLoggedIn: (c: Client) => void, onRegister: () => void, onLink: (opts?: Parameters<typeof import('./link.js').showLinkAccount>[2]) => void}} nav
 */
function showCode(root, client, nav) {
  const code = field('Authenticator code', { id: 'login-code', name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', required: true }, 'The 6 digits from your authenticator app, or one of your recovery codes.');
  const error = h('p', { class: 'error', id: 'code-error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Continue');
  // Offered once the server says this browser's device is no longer the account's.
  const relink = h('button', { type: 'button', id: 'relink', hidden: true, on: { click: () => {
    const previous = { keystore: client.keystore, profile: client.profile };
    const password = client.password;
    client.abandon({ keepLock: true });
    nav.onLink({ username: client.profile.username, password, previous });
  } } }, 'Link this browser again');
  const form = h('form', {
    class: 'stack',
    on: {
      submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        error.textContent = '';
        submit.setAttribute('disabled', '');
        try {
          await client.submitCode(code.input.value, () => confirmAction({
            title: 'Start over with a new identity?',
            body: `This browser holds no keys for ${client.profile.username}. Starting over makes a new identity here: your other devices are logged out at once, messages waiting for them are lost, and your contacts see your safety number change (they cannot write to you until they compare it again). Cancel to keep your identity: use a device that holds it, or link this browser from one (Use an existing account).`,
            action: 'Start over',
            danger: true,
          }));
          nav.onLoggedIn(client);
        } catch (e) {
          if (e instanceof StartOverDeclinedError) {
            showLogin(root, { ...nav, message: e.message });
            return;
          }
          if (e instanceof DeviceRevokedError) {
            error.textContent = describe(e);
            form.replaceChildren(error, relink, h('button', { type: 'button', class: 'secondary', on: { click: () => {
              client.abandon();
              showLogin(root, nav);
            } } }, 'Back to log in'));
            relink.hidden = false;
            relink.focus();
            return;
          }
          error.textContent = describe(e);
          code.input.value = '';
          code.input.focus();
          submit.removeAttribute('disabled');
          if (!client.conn.isOpen) {
            showLogin(root, { ...nav, message: `${describe(e)} Log in again.` });
          }
        }
      },
    },
  }, code.el, error, submit);
  replace(root, h('section', { class: 'card', id: 'screen-code' }, h('h2', null, 'Two-step check'), form));
  code.input.focus();
}

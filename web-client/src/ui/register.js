// @ts-check
/**
 * Registration: the form (with password strength feedback), TOTP enrollment with the QR code
 * drawn in the page, and the recovery codes shown once.
 */
import qrcode from 'qrcode-generator';
import { Client, defaultServerUrl } from '../client.js';
import { Keystore } from '../keystore.js';
import { describe, field, h, replace } from './dom.js';

/**
 * A rough strength estimate for feedback while typing; the server's check (zxcvbn) decides.
 * @param {string} pw
 * @returns {{score: number, text: string}}
 */
export function passwordStrength(pw) {
  if (!pw) return { score: 0, text: 'Use at least 10 characters; a few unrelated words work well.' };
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/].filter((r) => r.test(pw)).length;
  const words = pw.trim().split(/\s+/).length;
  let score = 0;
  if (pw.length >= 10) score++;
  if (pw.length >= 14) score++;
  if (classes >= 3 || words >= 3) score++;
  if (pw.length >= 20) score++;
  if (/^(.)\1+$/.test(pw) || /^(password|123456|qwerty)/i.test(pw)) score = 0;
  const text = ['Too weak', 'Weak: make it longer', 'Fair: add another word', 'Strong', 'Very strong'][score];
  return { score, text };
}

/** A QR code of `text` as an <img> with a data: URL (allowed by the CSP's img-src). @param {string} text @param {string} alt */
export function qrImage(text, alt) {
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  return h('img', { class: 'qr', src: qr.createDataURL(6, 2), alt, width: 220, height: 220 });
}

/**
 * A "Show password" checkbox for the given password fields.
 * @param {HTMLInputElement[]} inputs @param {string} id
 */
export function showPasswordToggle(inputs, id) {
  const box = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', id }));
  box.addEventListener('change', () => {
    for (const i of inputs) i.type = box.checked ? 'text' : 'password';
  });
  return h('label', { class: 'check' }, box, 'Show password');
}

/**
 * @param {HTMLElement} root
 * @param {{onLoggedIn: (c: Client) => void, onLogin: () => void, onLink: () => void}} nav
 */
export function showRegister(root, nav) {
  const name = field('Your name', { id: 'reg-name', name: 'name', autocomplete: 'name', required: true, maxlength: 64 }, 'Shown to the people you chat with.');
  const email = field('Email', { id: 'reg-email', name: 'email', type: 'email', autocomplete: 'email', required: true });
  const user = field('Username', { id: 'reg-username', name: 'username', autocomplete: 'username', required: true, pattern: '[a-z0-9_]{3,32}', autocapitalize: 'none', spellcheck: 'false' }, '3 to 32 of a–z, 0–9 and _.');
  const pass = field('Password', { id: 'reg-password', name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10, 'aria-describedby': 'pw-strength' });
  const again = field('Password again', { id: 'reg-password2', name: 'password2', type: 'password', autocomplete: 'new-password', required: true, 'aria-describedby': 'pw-match' });
  const match = h('span', { class: 'hint', id: 'pw-match', 'aria-live': 'polite' });
  const show = showPasswordToggle([pass.input, again.input], 'reg-show-password');
  const checkMatch = () => {
    const differs = again.input.value !== '' && again.input.value !== pass.input.value;
    match.textContent = differs ? 'The two passwords differ.' : '';
    again.input.setAttribute('aria-invalid', String(differs));
  };
  again.input.addEventListener('input', checkMatch);
  pass.input.addEventListener('input', checkMatch);
  const meter = h('meter', { min: 0, max: 4, value: 0, low: 2, high: 3, optimum: 4, 'aria-hidden': 'true' });
  const strength = h('span', { class: 'hint', id: 'pw-strength', 'aria-live': 'polite' }, passwordStrength('').text);
  pass.input.addEventListener('input', () => {
    const s = passwordStrength(pass.input.value);
    /** @type {HTMLMeterElement} */ (meter).value = s.score;
    strength.textContent = s.text;
  });
  const error = h('p', { class: 'error', id: 'reg-error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Create account');
  const form = h('form', {
    class: 'stack',
    on: {
      submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        error.textContent = '';
        if (pass.input.value !== again.input.value) {
          error.textContent = 'The two passwords differ: type the same password twice.';
          again.input.focus();
          return;
        }
        submit.setAttribute('disabled', '');
        submit.textContent = 'Making your keys…';
        try {
          const { client, uri } = await Client.register(defaultServerUrl(), { name: name.input.value, email: email.input.value, username: user.input.value, password: pass.input.value });
          showEnrollment(root, client, uri, nav);
        } catch (e) {
          error.textContent = describe(e);
          submit.removeAttribute('disabled');
          submit.textContent = 'Create account';
        }
      },
    },
  }, name.el, email.el, user.el, pass.el, meter, strength, again.el, match, show, error, submit);
  replace(root, h('section', { class: 'card', id: 'screen-register' },
    h('h2', null, 'Create an account'),
    h('p', { class: 'hint' }, 'Your encryption keys are made in this browser and never leave it.'),
    form,
    h('p', null, 'Already have an account? ', h('button', { class: 'link', type: 'button', on: { click: nav.onLogin } }, 'Log in'),
      ' · ', h('button', { class: 'link', type: 'button', on: { click: nav.onLink } }, 'Use an existing account'))));
  name.input.focus();
}

/**
 * @param {HTMLElement} root @param {Client} client @param {string} uri
 * @param {{onLoggedIn: (c: Client) => void, onLogin: () => void}} nav
 */
function showEnrollment(root, client, uri, nav) {
  const secret = new URL(uri).searchParams.get('secret') ?? '';
  const code = field('Code from your app', { id: 'enroll-code', name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', required: true, pattern: '[0-9 ]{6,7}' });
  const error = h('p', { class: 'error', id: 'enroll-error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Confirm');
  const form = h('form', {
    class: 'stack',
    on: {
      submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        error.textContent = '';
        submit.setAttribute('disabled', '');
        try {
          const codes = await client.confirmTotp(code.input.value.replace(/\s/g, ''));
          showRecoveryCodes(root, client, codes, nav);
        } catch (e) {
          error.textContent = describe(e);
          code.input.value = '';
          code.input.focus();
          submit.removeAttribute('disabled');
        }
      },
    },
  }, code.el, error, submit);
  replace(root, h('section', { class: 'card', id: 'screen-enroll' },
    h('h2', null, 'Set up two-step login'),
    h('p', null, 'Scan this code with an authenticator app (Aegis, Google Authenticator, 1Password…), then type the 6-digit code it shows.'),
    qrImage(uri, 'QR code for your authenticator app'),
    h('p', { class: 'hint' }, 'Can’t scan? Enter this key in the app:'),
    h('p', { class: 'secret', id: 'totp-secret' }, secret),
    form));
  code.input.focus();
}

/**
 * @param {HTMLElement} root @param {Client} client @param {string[]} codes
 * @param {{onLoggedIn: (c: Client) => void}} nav
 */
function showRecoveryCodes(root, client, codes, nav) {
  Keystore.rememberUsername(client.profile.username).catch(() => {});
  const username = client.profile.username;
  const asText = `Sealroom recovery codes for ${username}\nEach code logs you in once if you lose your authenticator.\n\n${codes.map((c, i) => `${i + 1}. ${c}`).join('\n')}\n`;
  const feedback = h('span', { class: 'hint', id: 'codes-feedback', role: 'status' });
  const list = h('ol', { class: 'codes', id: 'recovery-codes' }, codes.map((c, i) => h('li', null, h('span', { class: 'n', 'aria-hidden': 'true' }, `${i + 1}.`), h('code', null, c))));
  const copy = h('button', { type: 'button', class: 'secondary', id: 'codes-copy', on: { click: async () => {
    try {
      await navigator.clipboard.writeText(asText);
      feedback.textContent = 'Copied.';
    } catch {
      // No clipboard permission: select the codes so Ctrl+C copies them.
      const range = document.createRange();
      range.selectNodeContents(list);
      const sel = window.getSelection();
      sel?.removeAllRanges();
      sel?.addRange(range);
      feedback.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
    }
  } } }, 'Copy');
  const download = h('button', { type: 'button', class: 'secondary', id: 'codes-download', on: { click: () => {
    const url = URL.createObjectURL(new Blob([asText], { type: 'text/plain' }));
    const a = /** @type {HTMLAnchorElement} */ (h('a', { href: url, download: `sealroom-recovery-codes-${username}.txt`, hidden: true }));
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    feedback.textContent = 'Downloaded.';
  } } }, 'Download');
  const done = h('button', { type: 'button', id: 'codes-done', on: { click: () => nav.onLoggedIn(client) } }, 'I have saved them — continue');
  replace(root, h('section', { class: 'card', id: 'screen-recovery' },
    h('h2', null, 'Your recovery codes'),
    h('p', null, 'If you lose your authenticator, each of these lets you log in once. Save them somewhere safe now: they are shown only this once.'),
    list,
    h('div', { class: 'row' }, copy, download, feedback),
    done));
  done.focus();
}

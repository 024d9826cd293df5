// @ts-check
/** The page's entry: which screen shows, and the hand-offs between them. */
import { showChat } from './ui/chat.js';
import { showLinkAccount } from './ui/link.js';
import { showLogin } from './ui/login.js';
import { showRegister } from './ui/register.js';

const root = /** @type {HTMLElement} */ (document.getElementById('app'));
const status = /** @type {HTMLElement} */ (document.getElementById('status'));

/** @param {import('./client.js').Client} client */
function chat(client) {
  showChat(root, client, { onLoggedOut: (message) => login(message) });
}

/** @param {string} [message] */
function login(message) {
  status.textContent = '';
  status.className = 'status';
  showLogin(root, { onLoggedIn: chat, onRegister: register, onLink: link, message });
}

function register() {
  showRegister(root, { onLoggedIn: chat, onLogin: () => login(), onLink: () => link() });
}

/** "Use an existing account": this browser becomes another device of it. @param {Parameters<typeof showLinkAccount>[2]} [opts] */
function link(opts) {
  status.textContent = '';
  status.className = 'status';
  showLinkAccount(root, { onLoggedIn: chat, onLogin: () => login(), onRegister: register }, opts);
}

if (location.hash === '#register') register();
else if (location.hash === '#link') link();
else login();

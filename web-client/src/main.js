// @ts-check
/** The page's entry: which screen shows, and the hand-offs between them. */
import { showChat } from './ui/chat.js';
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
  showLogin(root, { onLoggedIn: chat, onRegister: register, message });
}

function register() {
  showRegister(root, { onLoggedIn: chat, onLogin: () => login() });
}

if (location.hash === '#register') register();
else login();

// @ts-check
/**
 * The chat: conversations and rooms in a side list with unread counts, the open conversation
 * with its messages (always text), a composer, room management, the key-change warning, and the
 * safety-number view. On narrow screens (360 px) the list and the conversation take turns.
 */
import { KeyChangedError } from '../client.js';
import { describe, h, replace } from './dom.js';
import { qrImage } from './register.js';

/** @param {number} at */
function time(at) {
  return new Date(at * 1000).toLocaleString(undefined, { hour: '2-digit', minute: '2-digit', day: 'numeric', month: 'short' });
}

const STATE_LABEL = /** @type {Record<string, string>} */ ({ sent: 'sent to server', delivered: 'delivered', received: '', undecryptable: 'could not decrypt' });

/**
 * @param {HTMLElement} root @param {import('../client.js').Client} client
 * @param {{onLoggedOut: (message?: string) => void}} nav
 */
export function showChat(root, client, nav) {
  /** @type {{conv: string | null, safety: boolean, error: string}} */
  const view = { conv: null, safety: false, error: '' };
  const status = /** @type {HTMLElement} */ (document.getElementById('status'));
  let draft = '';
  let active = true;
  /** @param {string} [message] */
  const leave = (message) => {
    active = false;
    client.removeEventListener('change', render);
    nav.onLoggedOut(message);
  };

  const render = () => {
    if (!active) return;
    status.textContent = client.online && client.loggedIn ? 'Connected' : client.online ? 'Connecting…' : 'Offline — reconnecting';
    status.className = `status ${client.online && client.loggedIn ? 'online' : 'offline'}`;
    // The whole view is rebuilt on every change: keep what the user is typing, and where.
    const focused = /** @type {HTMLInputElement | null} */ (document.activeElement);
    const focusedId = focused?.id;
    const caret = focused && 'selectionStart' in focused ? [focused.selectionStart, focused.selectionEnd] : null;
    /** @type {Map<string, string>} */
    const typed = new Map();
    for (const el of root.querySelectorAll('input[id], textarea[id]')) typed.set(el.id, /** @type {HTMLInputElement} */ (el).value);
    if (typed.has('composer-text')) draft = /** @type {string} */ (typed.get('composer-text'));
    if (view.conv) client.markRead(view.conv);
    replace(root, h('div', { class: `chat${view.conv ? ' in-conv' : ''}`, id: 'screen-chat' }, sidebar(), pane()));
    for (const [id, value] of typed) {
      const el = /** @type {HTMLInputElement | null} */ (document.getElementById(id));
      if (el && !el.value) el.value = value;
    }
    if (focusedId) {
      const el = /** @type {HTMLInputElement | null} */ (document.getElementById(focusedId));
      el?.focus();
      if (el && caret && caret[0] !== null) el.setSelectionRange(caret[0], caret[1]);
    }
    const list = document.getElementById('messages');
    if (list) list.scrollTop = list.scrollHeight;
  };

  /** @param {string} conv */
  const open = async (conv) => {
    view.conv = conv;
    view.safety = false;
    view.error = '';
    await client.markRead(conv);
    render();
    document.getElementById('composer-text')?.focus();
  };

  const sidebar = () => {
    const convs = client.conversations();
    const newChat = h('input', { id: 'new-chat', 'aria-label': 'Username to message', placeholder: '@username', autocapitalize: 'none' });
    const newRoom = h('input', { id: 'new-room', 'aria-label': 'New room name', placeholder: '#room-name', autocapitalize: 'none' });
    const err = h('p', { class: 'error', id: 'sidebar-error', role: 'alert' });
    return h('nav', { class: 'sidebar', 'aria-label': 'Conversations' },
      h('div', { class: 'me' },
        h('span', null, 'Signed in as ', h('strong', { id: 'me' }, client.profile.username)),
        h('button', { class: 'secondary', type: 'button', id: 'logout', on: { click: async () => { active = false; await client.logout(); leave(); } } }, 'Log out')),
      h('h2', { id: 'conv-heading' }, 'Chats and rooms'),
      convs.length === 0 ? h('p', { class: 'hint', style: null }, ' ') : null,
      h('ul', { class: 'convs', 'aria-labelledby': 'conv-heading' }, convs.map((c) => h('li', null,
        h('button', {
          class: 'conv', type: 'button', 'aria-current': c.conv === view.conv ? 'true' : 'false',
          'data-conv': c.conv,
          'aria-label': `${c.conv}${c.unread ? `, ${c.unread} unread` : ''}`,
          on: { click: () => open(c.conv) },
        }, h('span', null, c.conv), c.unread ? h('span', { class: 'badge', 'aria-hidden': 'true' }, c.unread) : null)))),
      h('h2', null, 'Start a chat'),
      h('form', { on: { submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        const input = /** @type {HTMLInputElement} */ (newChat);
        const who = input.value;
        input.value = '';
        try {
          await open(await client.startConversation(who));
        } catch (e) {
          input.value = who;
          err.textContent = describe(e);
        }
      } } }, newChat, h('button', { type: 'submit' }, 'Chat')),
      h('h2', null, 'Create a room'),
      h('form', { on: { submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        const input = /** @type {HTMLInputElement} */ (newRoom);
        const name = input.value;
        input.value = '';
        try {
          await open(await client.createRoom(name));
        } catch (e) {
          input.value = name;
          err.textContent = describe(e);
        }
      } } }, newRoom, h('button', { type: 'submit' }, 'Create')),
      err,
      client.notices.length ? h('ul', { class: 'notices', 'aria-label': 'Notices', id: 'notices' }, client.notices.slice(-5).map((n) => h('li', null, n))) : null);
  };

  const pane = () => {
    const conv = view.conv;
    if (!conv) return h('section', { class: 'pane' }, h('p', { class: 'empty' }, 'Pick a chat, start one with a username, or create a room.'));
    if (view.safety) return safetyPane(conv.slice(1));
    const isRoom = conv.startsWith('#');
    const name = conv.slice(1);
    const contact = isRoom ? null : client.profile.contacts[name];
    const room = isRoom ? client.profile.rooms[name] : null;
    const back = h('button', { class: 'secondary back', type: 'button', on: { click: () => { view.conv = null; render(); } } }, '‹ Chats');
    const head = h('header', { class: 'pane-head' }, back, h('h2', { id: 'conv-title' }, conv),
      !isRoom ? h('button', { class: 'secondary', type: 'button', id: 'open-safety', on: { click: () => { view.safety = true; render(); } } },
        contact?.verified ? 'Verified ✓' : 'Safety number') : null);
    const banner = contact?.key_changed ? h('div', { class: 'banner', role: 'alert', id: 'key-change-banner' },
      h('strong', null, `${name}'s safety number has changed. This can mean a new device — or someone intercepting. Messages to ${name} are held until you verify.`),
      h('button', { type: 'button', on: { click: () => { view.safety = true; render(); } } }, 'Verify')) : null;
    const tools = room ? roomTools(name, room) : null;
    const msgs = client.messages(conv);
    const list = h('ol', { class: 'messages', id: 'messages', 'aria-label': `Messages in ${conv}`, 'aria-live': 'polite', tabindex: 0 },
      msgs.length === 0 ? h('li', { class: 'empty' }, isRoom ? 'No messages yet. Invite people, then say hello.' : 'No messages yet. Messages are end-to-end encrypted.') : null,
      msgs.map((m) => h('li', { class: `msg${m.outgoing ? ' mine' : ''}${m.state === 'undecryptable' ? ' undecryptable' : ''}`, 'data-state': m.state },
        isRoom && !m.outgoing ? h('strong', null, `${m.from}: `) : null,
        h('span', { class: 'text' }, m.text),
        h('span', { class: 'meta' }, time(m.at), m.outgoing ? ` · ${STATE_LABEL[m.state] ?? m.state}` : ''))));
    const text = h('textarea', { id: 'composer-text', 'aria-label': `Message ${conv}`, rows: 1, placeholder: 'Write a message', value: draft });
    const err = h('p', { class: 'error', id: 'send-error', role: 'alert' }, view.error);
    const send = async () => {
      const t = /** @type {HTMLTextAreaElement} */ (text).value;
      if (!t.trim()) return;
      view.error = '';
      draft = '';
      /** @type {HTMLTextAreaElement} */ (text).value = '';
      try {
        await client.sendText(conv, t);
      } catch (e) {
        view.error = e instanceof KeyChangedError ? e.message : `Not sent: ${describe(e)}`;
        draft = t;
      }
      render();
      document.getElementById('composer-text')?.focus();
    };
    text.addEventListener('keydown', (/** @type {KeyboardEvent} */ ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey) {
        ev.preventDefault();
        send();
      }
    });
    const composer = h('form', { class: 'composer', on: { submit: (/** @type {Event} */ ev) => { ev.preventDefault(); send(); } } }, text, h('button', { type: 'submit', id: 'send' }, 'Send'));
    return h('section', { class: 'pane', 'aria-labelledby': 'conv-title' }, head, banner, tools, list, err, composer);
  };

  /** @param {string} name @param {{members: string[], admin: string}} room */
  const roomTools = (name, room) => {
    const who = h('input', { id: 'invite-user', 'aria-label': `Username to invite to #${name}`, placeholder: 'username', autocapitalize: 'none' });
    const err = h('span', { class: 'error', role: 'alert', id: 'room-error' });
    const me = client.profile.username;
    return h('div', { class: 'room-tools', 'aria-label': 'Room' },
      h('span', { id: 'room-members' }, `Members: ${room.members.join(', ')}`, room.admin ? ` (admin ${room.admin})` : ''),
      h('form', { on: { submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        const input = /** @type {HTMLInputElement} */ (who);
        const user = input.value;
        input.value = '';
        try {
          await client.invite(name, user);
        } catch (e) {
          input.value = user;
          err.textContent = describe(e);
        }
      } } }, who, h('button', { type: 'submit', id: 'invite' }, 'Invite')),
      room.admin === me ? room.members.filter((m) => m !== me).map((m) => h('button', { class: 'danger', type: 'button', on: { click: () => client.remove(name, m).catch((e) => { err.textContent = describe(e); }) } }, `Remove ${m}`)) : null,
      h('button', { class: 'danger', type: 'button', id: 'leave-room', on: { click: async () => {
        try {
          await client.leave(name);
          view.conv = null;
          render();
        } catch (e) {
          err.textContent = describe(e);
        }
      } } }, 'Leave room'),
      err);
  };

  /** @param {string} user */
  const safetyPane = (user) => {
    const number = client.safetyNumber(user);
    const contact = client.profile.contacts[user];
    const back = h('button', { class: 'secondary', type: 'button', on: { click: () => { view.safety = false; render(); } } }, '‹ Back');
    if (!number || !contact) return h('section', { class: 'pane' }, h('header', { class: 'pane-head' }, back), h('p', { class: 'empty' }, 'No key known yet for this contact.'));
    const groups = number.match(/.{5}/g) ?? [];
    return h('section', { class: 'pane', id: 'screen-safety', 'aria-labelledby': 'safety-title' },
      h('header', { class: 'pane-head' }, back, h('h2', { id: 'safety-title' }, `Safety number with ${user}`)),
      h('div', { class: 'card' },
        contact.key_changed ? h('p', { class: 'banner', role: 'alert' }, `${user}'s key changed since you last talked. Compare again before sending.`) : null,
        h('p', null, `Compare these numbers with ${user} in person or over a call you trust, or scan each other's code. If they match, nobody is in the middle.`),
        h('p', { class: 'safety', id: 'safety-number', 'aria-label': `Safety number ${groups.join(' ')}` }, groups.map((g) => h('span', null, g))),
        qrImage(`sealroom-safety:${number}`, `QR code of the safety number with ${user}`),
        contact.verified && !contact.key_changed
          ? h('p', { class: 'verified', id: 'verified-note' }, `You have verified ${user}.`)
          : h('button', { type: 'button', id: 'mark-verified', on: { click: async () => { await client.markVerified(user); render(); } } }, 'They match — mark as verified')));
  };

  client.addEventListener('change', render);
  client.addEventListener('expired', () => leave('Your session expired. Log in again.'));
  render();
  return { open, render };
}

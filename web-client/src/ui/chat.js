// @ts-check
/**
 * The chat: invitations waiting for an answer (Accept / Decline) above the conversations and
 * rooms in a side list (last message, time, unread count, most recent first), the open
 * conversation with its timeline (always text), a composer with one draft per conversation,
 * the room's member panel, the key-change warning and the safety-number view; the account
 * settings (ui/settings.js) open from the footer. On narrow
 * screens the list and the conversation take turns.
 *
 * Built once and then updated in place: an event changes only the nodes it concerns, so what
 * the user types, selects or scrolls to stays where it is.
 */
import { KeyChangedError, roomNameFrom } from '../client.js';
import { confirmAction } from './dialog.js';
import { describe, h, replace } from './dom.js';
import { qrImage } from './register.js';
import { showSettings } from './settings.js';
import { Timeline, listTime } from './timeline.js';

/** @typedef {import('../client.js').Entry} Entry */

const BASE_TITLE = 'Sealroom';

/** Sets a node's text only when it differs (no needless DOM writes). @param {Element} el @param {string} text */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Grows a textarea with its text, up to its CSS max-height. @param {HTMLTextAreaElement} ta */
function autosize(ta) {
  ta.style.height = 'auto';
  ta.style.height = `${ta.scrollHeight + 2}px`;
}

/**
 * @param {HTMLElement} root @param {import('../client.js').Client} client
 * @param {{onLoggedOut: (message?: string) => void}} nav
 */
export function showChat(root, client, nav) {
  /** @type {{conv: string | null, panel: 'chat' | 'safety'}} */
  const view = { conv: null, panel: 'chat' };
  /** @type {Map<string, string>} what is typed in each conversation's composer */
  const drafts = new Map();
  /** @type {Map<string, string>} the last send error in each conversation */
  const sendErrors = new Map();
  const status = /** @type {HTMLElement} */ (document.getElementById('status'));
  const me = client.profile.username;
  let active = true;
  /** the next timeline update scrolls to the bottom (we just sent) */
  let stick = false;

  // ---- the frame, built once ----

  const announcer = h('p', { class: 'sr-only', id: 'announcer', role: 'status', 'aria-live': 'polite' });
  const convList = h('ul', { class: 'convs', 'aria-labelledby': 'conv-heading', id: 'conv-list' });
  const emptyList = h('p', { class: 'hint pad', id: 'no-convs' }, 'No chats yet. Start one with a username, or create a room.');
  const invitationList = h('ul', { class: 'invitations', 'aria-labelledby': 'invitations-heading', id: 'invitations' });
  const invitationHeading = h('h2', { id: 'invitations-heading' }, 'Invitations');
  const invitationError = h('p', { class: 'error pad', id: 'invitation-error', role: 'alert' });
  const invitationSection = h('section', { class: 'invitation-section', 'aria-labelledby': 'invitations-heading', hidden: true },
    invitationHeading, invitationList, invitationError);
  const sidebarError = h('p', { class: 'error pad', id: 'sidebar-error', role: 'alert' });
  const notices = h('ul', { class: 'notices', 'aria-label': 'Notices', id: 'notices' });
  const notifyButton = h('button', { class: 'secondary small', type: 'button', id: 'enable-notifications', on: { click: async () => {
    await Notification.requestPermission();
    render();
  } } }, 'Turn on notifications');

  const newChat = /** @type {HTMLInputElement} */ (h('input', { id: 'new-chat', 'aria-label': 'Username to message', placeholder: '@username', autocapitalize: 'none', spellcheck: 'false' }));
  const newRoom = /** @type {HTMLInputElement} */ (h('input', { id: 'new-room', 'aria-label': 'New room name', placeholder: 'Room name', autocapitalize: 'none', 'aria-describedby': 'room-name-hint' }));
  const roomHint = h('p', { class: 'hint pad', id: 'room-name-hint' }, 'Letters, digits, - and _; spaces become dashes.');
  newRoom.addEventListener('input', () => {
    if (!newRoom.value.trim()) {
      setText(roomHint, 'Letters, digits, - and _; spaces become dashes.');
      return;
    }
    try {
      setText(roomHint, `Will be created as #${roomNameFrom(newRoom.value)}`);
    } catch (e) {
      setText(roomHint, describe(e));
    }
  });

  const sidebar = h('nav', { class: 'sidebar', 'aria-label': 'Conversations' },
    h('div', { class: 'me' },
      h('div', { class: 'who' }, h('strong', { id: 'me-name', dir: 'auto' }, client.profile.name || me), ' ', h('span', { class: 'handle', id: 'me' }, `@${me}`)),
      h('button', { class: 'secondary', type: 'button', id: 'logout', on: { click: async () => {
        active = false;
        await client.logout();
        leave();
      } } }, 'Log out')),
    typeof Notification !== 'undefined' ? notifyButton : null,
    invitationSection,
    h('h2', { id: 'conv-heading' }, 'Chats and rooms'),
    emptyList,
    convList,
    h('h2', null, 'Start a chat'),
    h('form', { on: { submit: async (/** @type {Event} */ ev) => {
      ev.preventDefault();
      const who = newChat.value;
      if (!who.trim()) return;
      setText(sidebarError, '');
      try {
        const conv = await client.startConversation(who);
        newChat.value = '';
        await open(conv);
      } catch (e) {
        sidebarError.textContent = describe(e);
      }
    } } }, newChat, h('button', { type: 'submit' }, 'Chat')),
    h('h2', null, 'Create a room'),
    h('form', { on: { submit: async (/** @type {Event} */ ev) => {
      ev.preventDefault();
      const name = newRoom.value;
      if (!name.trim()) return;
      setText(sidebarError, '');
      try {
        const conv = await client.createRoom(name);
        newRoom.value = '';
        newRoom.dispatchEvent(new Event('input'));
        openPanels.add(conv);
        await open(conv);
      } catch (e) {
        sidebarError.textContent = describe(e);
      }
    } } }, newRoom, h('button', { type: 'submit' }, 'Create')),
    roomHint,
    sidebarError,
    notices,
    h('div', { class: 'pad footer' },
      h('button', { class: 'link', type: 'button', id: 'open-settings', on: { click: () => showSettings(client, { onDeleted: () => leave('Your account was deleted, and this browser forgot its keys and history.') }) } }, 'Account settings…'),
      h('button', { class: 'link danger-link', type: 'button', id: 'forget-browser', on: { click: forget } }, 'Forget this browser…')));

  let pane = h('section', { class: 'pane' });
  const frame = h('div', { class: 'chat', id: 'screen-chat' }, sidebar, pane);
  replace(root, frame, announcer);

  // ---- the side list ----

  /** @type {Map<string, {li: HTMLElement, button: HTMLElement, name: HTMLElement, time: HTMLElement, preview: HTMLElement, badge: HTMLElement}>} */
  const convItems = new Map();

  /** @type {Map<string, {li: HTMLElement, from: string}>} */
  const invitationItems = new Map();

  /** Answers an invitation; the list item goes once the client forgets it. @param {string} room @param {boolean} accept */
  const answerInvitation = async (room, accept) => {
    setText(invitationError, '');
    const item = invitationItems.get(room);
    const buttons = item ? [...item.li.querySelectorAll('button')] : [];
    const next = item?.li.nextElementSibling ?? item?.li.previousElementSibling;
    for (const b of buttons) b.setAttribute('disabled', '');
    try {
      if (accept) {
        const conv = await client.acceptInvite(room);
        setText(announcer, `You joined #${room}`);
        await open(conv);
      } else {
        await client.declineInvite(room);
        setText(announcer, `Declined the invitation to #${room}`);
        // Keep the keyboard where it was: the next invitation, else the chat list.
        const focus = next?.querySelector('button') ?? convList.querySelector('button') ?? newChat;
        render();
        queueMicrotask(() => /** @type {HTMLElement} */ (focus).focus());
      }
    } catch (e) {
      invitationError.textContent = describe(e);
      for (const b of buttons) b.removeAttribute('disabled');
      render();
    }
  };

  const renderInvitations = () => {
    const waiting = client.pendingInvitations();
    invitationSection.hidden = waiting.length === 0;
    const wanted = new Map(waiting.map((i) => [i.room, i.from]));
    for (const [room, item] of invitationItems) if (wanted.get(room) !== item.from) {
      item.li.remove();
      invitationItems.delete(room);
    }
    /** @type {ChildNode | null} */
    let prev = null;
    for (const { room, from } of waiting) {
      let item = invitationItems.get(room);
      if (!item) {
        const id = `invitation-${room}`;
        const li = h('li', { class: 'invitation', 'data-room': room },
          h('p', { class: 'invitation-text', id }, `${from} invited you to #${room}`),
          h('div', { class: 'invitation-actions' },
            h('button', { class: 'small', type: 'button', 'aria-label': `Accept invitation to #${room}`, 'aria-describedby': id, on: { click: () => answerInvitation(room, true) } }, 'Accept'),
            h('button', { class: 'secondary small', type: 'button', 'aria-label': `Decline invitation to #${room}`, 'aria-describedby': id, on: { click: () => answerInvitation(room, false) } }, 'Decline')));
        item = { li, from };
        invitationItems.set(room, item);
      }
      /** @type {ChildNode | null} */
      const expected = prev ? prev.nextSibling : invitationList.firstChild;
      if (item.li !== expected) invitationList.insertBefore(item.li, expected);
      prev = item.li;
    }
  };

  const renderSidebar = () => {
    renderInvitations();
    const convs = client.conversations();
    emptyList.hidden = convs.length > 0;
    const wanted = new Set(convs.map((c) => c.conv));
    for (const [conv, item] of convItems) if (!wanted.has(conv)) {
      item.li.remove();
      convItems.delete(conv);
    }
    /** @type {ChildNode | null} */
    let prev = null;
    for (const c of convs) {
      let item = convItems.get(c.conv);
      if (!item) {
        const name = h('span', { class: 'conv-name' }, c.conv);
        const time = h('time', { class: 'conv-time' });
        const preview = h('span', { class: 'conv-preview', dir: 'auto' });
        const badge = h('span', { class: 'badge', 'aria-hidden': 'true' });
        const button = h('button', { class: 'conv', type: 'button', 'data-conv': c.conv, on: { click: () => open(c.conv) } },
          h('span', { class: 'conv-top' }, name, time), h('span', { class: 'conv-bottom' }, preview, badge));
        item = { li: h('li', null, button), button, name, time, preview, badge };
        convItems.set(c.conv, item);
      }
      const last = c.lastEntry;
      let text = '';
      if (last) {
        const prefix = last.kind === 'event' ? '' : last.outgoing ? 'You: ' : c.conv.startsWith('#') ? `${last.from}: ` : '';
        // One line, without bidi controls, so that the text cannot reorder the name before it.
        text = `${prefix}${last.text.replace(/[\u202a-\u202e\u2066-\u2069]/g, '').replace(/\s+/g, ' ').slice(0, 120)}`;
      } else {
        text = c.conv.startsWith('#') ? 'No messages yet' : 'New chat';
      }
      if (!c.active) text = `${client.closedReason(c.conv)} ${text}`;
      setText(item.preview, text);
      setText(item.time, last ? listTime(last.at) : '');
      setText(item.badge, c.unread ? String(c.unread) : '');
      item.badge.hidden = !c.unread;
      item.button.setAttribute('aria-current', c.conv === view.conv ? 'true' : 'false');
      item.button.setAttribute('aria-label', `${c.conv}${c.unread ? `, ${c.unread} unread` : ''}${c.active ? '' : ', closed'}`);
      item.li.classList.toggle('inactive', !c.active);
      /** @type {ChildNode | null} */
      const expected = prev ? prev.nextSibling : convList.firstChild;
      if (item.li !== expected) convList.insertBefore(item.li, expected);
      prev = item.li;
    }
    const shown = client.notices.slice(-5);
    if (notices.childNodes.length !== shown.length || shown.some((n, i) => notices.childNodes[i].textContent !== n)) {
      replace(notices, shown.map((n) => h('li', null, n)));
    }
    notifyButton.hidden = typeof Notification === 'undefined' || Notification.permission !== 'default';
  };

  // ---- the open conversation ----

  /** @type {Set<string>} rooms whose member panel is open */
  const openPanels = new Set();
  /** @type {{conv: string, timeline: Timeline, head: HTMLElement, banner: HTMLElement, roomPanel: HTMLElement | null, members: HTMLElement | null, error: HTMLElement, composer: HTMLElement, text: HTMLTextAreaElement, sig: string} | null} */
  let current = null;

  /** Everything about the conversation's frame that is not the timeline. @param {string} conv */
  const paneSignature = (conv) => {
    if (conv.startsWith('#')) {
      const r = client.profile.rooms[conv.slice(1)];
      return JSON.stringify([client.closedReason(conv), r?.members ?? [], r?.admins ?? r?.admin ?? '', client.roomWaitsForRoster(conv.slice(1))]);
    }
    const c = client.profile.contacts[conv.slice(1)];
    return JSON.stringify([!!c?.verified, !!c?.key_changed]);
  };

  const buildPane = () => {
    const conv = view.conv;
    current = null;
    if (!conv) {
      const section = h('section', { class: 'pane' }, h('p', { class: 'empty' }, 'Pick a chat, start one with a username, or create a room.'));
      pane.replaceWith(section);
      pane = section;
      return;
    }
    if (view.panel === 'safety') {
      const section = safetyPane(conv.slice(1));
      pane.replaceWith(section);
      pane = section;
      return;
    }
    const isRoom = conv.startsWith('#');
    const timeline = new Timeline(conv, { me, onRetry: (e) => { client.retry(e).catch(() => {}); } });
    const head = h('header', { class: 'pane-head' });
    const banner = h('div', { class: 'banner-slot' });
    const text = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'composer-text', 'aria-label': `Message ${conv}`, rows: 1, placeholder: 'Write a message', value: drafts.get(conv) ?? '' }));
    const error = h('p', { class: 'error', id: 'send-error', role: 'alert' }, sendErrors.get(conv) ?? '');
    const send = () => sendFrom(conv, text, error);
    text.addEventListener('input', () => {
      if (text.value) drafts.set(conv, text.value);
      else drafts.delete(conv);
      autosize(text);
    });
    text.addEventListener('keydown', (/** @type {KeyboardEvent} */ ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        send();
      }
    });
    const composer = h('form', { class: 'composer', on: { submit: (/** @type {Event} */ ev) => { ev.preventDefault(); send(); } } },
      text, h('button', { type: 'submit', id: 'send' }, 'Send'));
    const members = isRoom ? h('ul', { class: 'members', id: 'room-members-list', 'aria-label': 'Members' }) : null;
    const roomPanel = isRoom ? roomPanelFor(conv.slice(1), /** @type {HTMLElement} */ (members)) : null;
    const section = h('section', { class: 'pane', 'aria-labelledby': 'conv-title' }, head, banner, roomPanel, timeline.el, error, composer);
    pane.replaceWith(section);
    pane = section;
    current = { conv, timeline, head, banner, roomPanel, members, error, composer, text, sig: '' };
    updatePane();
    timeline.update(client.messages(conv), true);
    autosize(text);
  };

  /** Redraws the head, banner and member panel when what they show changed. */
  const updatePane = () => {
    if (!current) return;
    const { conv } = current;
    const sig = paneSignature(conv);
    if (sig === current.sig) return;
    current.sig = sig;
    const isRoom = conv.startsWith('#');
    const name = conv.slice(1);
    const closed = client.closedReason(conv);
    const back = h('button', { class: 'secondary back', type: 'button', on: { click: () => { view.conv = null; buildPane(); render(); } } }, '‹ Chats');
    if (isRoom) {
      const room = client.profile.rooms[name];
      const count = room ? room.members.length : 0;
      replace(current.head, back, h('h2', { id: 'conv-title' }, conv),
        room ? h('button', { class: 'secondary', type: 'button', id: 'toggle-members', 'aria-expanded': String(openPanels.has(conv)), 'aria-controls': 'room-panel', on: { click: () => toggleMembers(conv) } },
          `Members (${count})`) : null);
      if (current.roomPanel) current.roomPanel.hidden = !room || !openPanels.has(conv);
      if (room && current.members) renderMembers(name, room, current.members);
      const waiting = !closed && client.roomWaitsForRoster(name);
      replace(current.banner, closed ? h('div', { class: 'banner', role: 'status', id: 'room-closed' },
        h('strong', null, `${closed} You can read what was said here, but not write.`))
        : waiting ? h('div', { class: 'banner', role: 'status', id: 'room-waiting' },
          h('strong', null, "Waiting for the room's signed member list."), ' Nobody gets your room key, and you cannot write here, until an admin of the room adds you to it.')
        : null);
    } else {
      const contact = client.profile.contacts[name];
      replace(current.head, back, h('h2', { id: 'conv-title' }, conv),
        h('button', { class: 'secondary', type: 'button', id: 'open-safety', on: { click: () => showSafety() } }, contact?.verified ? 'Verified ✓' : 'Safety number'));
      replace(current.banner, contact?.key_changed ? h('div', { class: 'banner', role: 'alert', id: 'key-change-banner' },
        h('strong', null, `${name}'s safety number has changed. This can mean a new device — or someone intercepting. Messages to ${name} are held until you verify.`),
        h('button', { type: 'button', on: { click: () => showSafety() } }, 'Verify')) : null);
    }
    // A room waiting for its signed member list cannot be written to: nobody would get the key.
    current.composer.hidden = !!closed || (isRoom && client.roomWaitsForRoster(name));
  };

  /** @param {string} conv */
  const toggleMembers = (conv) => {
    if (openPanels.has(conv)) openPanels.delete(conv);
    else openPanels.add(conv);
    if (!current) return;
    const open = openPanels.has(conv);
    if (current.roomPanel) current.roomPanel.hidden = !open;
    document.getElementById('toggle-members')?.setAttribute('aria-expanded', String(open));
    if (open) document.getElementById('invite-user')?.focus();
  };

  /** @param {string} name @param {HTMLElement} members */
  const roomPanelFor = (name, members) => {
    const who = /** @type {HTMLInputElement} */ (h('input', { id: 'invite-user', 'aria-label': `Username to invite to #${name}`, placeholder: 'username', autocapitalize: 'none', spellcheck: 'false' }));
    const err = h('p', { class: 'error', role: 'alert', id: 'room-error' });
    const invited = h('p', { class: 'hint', role: 'status', id: 'invite-status' });
    return h('div', { class: 'room-panel', id: 'room-panel', role: 'region', 'aria-label': `Members of #${name}` },
      members,
      h('form', { class: 'invite', on: { submit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        const user = who.value;
        if (!user.trim()) return;
        setText(err, '');
        setText(invited, '');
        try {
          const folded = await client.invite(name, user);
          who.value = '';
          setText(invited, `Invited ${folded}; they join when they accept.`);
        } catch (e) {
          err.textContent = describe(e);
        }
      } } }, who, h('button', { type: 'submit', id: 'invite' }, 'Invite')),
      invited,
      h('button', { class: 'danger', type: 'button', id: 'leave-room', on: { click: async () => {
        const ok = await confirmAction({ title: `Leave #${name}?`, body: 'You will stop receiving its messages. Someone must invite you again to come back.', action: 'Leave room', danger: true });
        if (!ok) return;
        try {
          await client.leave(name);
        } catch (e) {
          err.textContent = describe(e);
        }
      } } }, 'Leave room'),
      err);
  };

  /**
   * The members of the room's held signed roster, its admins tagged; an admin sees a Remove
   * button by each other member.
   * @param {string} name @param {{members: string[], admin: string, admins?: string[]}} room @param {HTMLElement} list
   */
  const renderMembers = (name, room, list) => {
    const err = () => document.getElementById('room-error');
    const admins = room.admins ?? (room.admin ? [room.admin] : []);
    replace(list, room.members.map((m) => h('li', { 'data-member': m },
      h('span', { class: 'member-name' }, m === me ? `${m} (you)` : m),
      admins.includes(m) ? h('span', { class: 'tag' }, 'admin') : null,
      admins.includes(me) && m !== me ? h('button', { class: 'danger small', type: 'button', on: { click: async () => {
        const ok = await confirmAction({ title: `Remove ${m} from #${name}?`, body: `${m} will no longer receive new messages in #${name}. The room moves to a new key.`, action: `Remove ${m}`, danger: true });
        if (!ok) return;
        try {
          await client.remove(name, m);
        } catch (e) {
          const el = err();
          if (el) el.textContent = describe(e);
        }
      } } }, `Remove ${m}`) : null)));
    // One line for a quick look and for the tests of the old layout.
    const summary = document.getElementById('room-members');
    if (summary) summary.remove();
    list.before(h('p', { class: 'hint', id: 'room-members' }, `Members: ${room.members.join(', ')}`, admins.length ? ` (admin ${admins.join(', ')})` : ''));
  };

  /** @param {string} conv @param {HTMLTextAreaElement} text @param {HTMLElement} error */
  const sendFrom = async (conv, text, error) => {
    const t = text.value;
    if (!t.trim()) return;
    sendErrors.delete(conv);
    setText(error, '');
    text.value = '';
    drafts.delete(conv);
    autosize(text);
    stick = true;
    try {
      await client.sendText(conv, t);
    } catch (e) {
      const msg = e instanceof KeyChangedError ? e.message : `Not sent: ${describe(e)}`;
      sendErrors.set(conv, msg);
      // Give the text back: into the box if it is still this conversation's and empty, else
      // into that conversation's draft. Nothing typed is lost.
      const live = current && current.conv === conv && current.text === text;
      if (live && !text.value) {
        text.value = t;
        autosize(text);
      }
      if (!live || text.value !== t) {
        const d = drafts.get(conv);
        drafts.set(conv, d ? `${t}\n${d}` : t);
      } else {
        drafts.set(conv, t);
      }
      if (live) setText(error, msg);
    }
    render();
  };

  /** @param {string} conv */
  const open = async (conv) => {
    if (view.conv !== conv || view.panel !== 'chat') {
      view.conv = conv;
      view.panel = 'chat';
      buildPane();
    }
    render();
    document.getElementById('composer-text')?.focus();
  };

  const showSafety = () => {
    view.panel = 'safety';
    buildPane();
    render();
    document.getElementById('safety-title')?.focus();
  };

  /** @param {string} user */
  const safetyPane = (user) => {
    const number = client.safetyNumber(user);
    const contact = client.profile.contacts[user];
    const back = h('button', { class: 'secondary', type: 'button', on: { click: () => { view.panel = 'chat'; buildPane(); render(); } } }, '‹ Back');
    if (!number || !contact) return h('section', { class: 'pane' }, h('header', { class: 'pane-head' }, back), h('p', { class: 'empty' }, 'No key known yet for this contact.'));
    const groups = number.match(/.{5}/g) ?? [];
    const rows = [0, 4, 8].map((i) => groups.slice(i, i + 4).join(' '));
    return h('section', { class: 'pane scroll', id: 'screen-safety', 'aria-labelledby': 'safety-title' },
      h('header', { class: 'pane-head' }, back, h('h2', { id: 'safety-title', tabindex: -1 }, `Safety number with ${user}`)),
      h('div', { class: 'card' },
        contact.key_changed ? h('p', { class: 'banner', role: 'alert' }, `${user}'s key changed since you last talked. Compare again before sending.`) : null,
        h('p', null, `Compare these 60 digits with ${user}: read them to each other in person or over a call you trust, or compare them with what ${user}'s Sealroom shows. If every group matches, nobody is in the middle.`),
        h('p', { class: 'safety', id: 'safety-number', role: 'group', 'aria-label': `Safety number: ${rows.join(', ')}` }, groups.map((g) => h('span', { 'aria-hidden': 'true' }, g))),
        h('p', { class: 'hint' }, 'The same number as a QR code, for a phone that can read it:'),
        qrImage(`sealroom-safety:${number}`, `QR code of the safety number with ${user}`),
        contact.verified && !contact.key_changed
          ? h('p', { class: 'verified', id: 'verified-note' }, `You have verified ${user}.`)
          : h('button', { type: 'button', id: 'mark-verified', on: { click: async () => {
            try {
              await client.markVerified(user, number);
            } catch (e) {
              client.notice(describe(e));
            }
            buildPane();
            render();
          } } }, 'They match — mark as verified')));
  };

  async function forget() {
    const ok = await confirmAction({
      title: 'Forget this browser?',
      body: `This deletes ${me}'s keys and all message history from this browser, then logs out. Messages still waiting to be sent are lost. Logging in here again makes a new device: your contacts will see your safety number change. Your account stays.`,
      action: 'Forget this browser',
      danger: true,
    });
    if (!ok) return;
    active = false;
    await client.forgetThisBrowser();
    leave('This browser no longer holds your keys or history.');
  }

  // ---- every change ----

  // Changes often come several to an event (recorded, sent, saved): draw once for all of them.
  let drawQueued = false;
  const render = () => {
    if (drawQueued) return;
    drawQueued = true;
    queueMicrotask(() => {
      drawQueued = false;
      draw();
    });
  };

  const draw = () => {
    if (!active) return;
    const up = client.online && client.loggedIn;
    setText(status, up ? 'Connected' : client.online ? 'Connecting…' : 'Offline — messages wait until the connection is back');
    status.className = `status ${up ? 'online' : 'offline'}`;
    frame.classList.toggle('in-conv', view.conv !== null);
    if (current && current.conv === view.conv) {
      updatePane();
      current.timeline.update(client.messages(current.conv), stick);
      stick = false;
      if (document.visibilityState === 'visible') {
        client.markRead(current.conv).then((any) => { if (any) render(); }).catch(() => {});
      }
    }
    renderSidebar();
    const unread = client.unreadCount();
    const title = unread ? `(${unread}) ${BASE_TITLE}` : BASE_TITLE;
    if (document.title !== title) document.title = title;
  };

  /** A new message: announced to screen readers and notified when not in view. @param {Event} ev */
  const onIncoming = (ev) => {
    const e = /** @type {CustomEvent<Entry>} */ (ev).detail;
    const inView = e.conv === view.conv && view.panel === 'chat' && document.visibilityState === 'visible';
    if (!inView) setText(announcer, `New message from ${e.from}${e.conv.startsWith('#') ? ` in ${e.conv}` : ''}`);
    if (typeof Notification !== 'undefined' && Notification.permission === 'granted' && (!inView || !document.hasFocus())) {
      try {
        const n = new Notification(e.conv.startsWith('#') ? `${e.from} in ${e.conv}` : e.from, { body: e.text, tag: e.conv });
        n.onclick = () => {
          window.focus();
          open(e.conv);
        };
      } catch {
        // Some browsers allow notifications only from a service worker: the title count remains.
      }
    }
  };

  /** A new invitation: announced, and notified when permitted. @param {Event} ev */
  const onInvited = (ev) => {
    const { room, from } = /** @type {CustomEvent<{room: string, from: string}>} */ (ev).detail;
    const line = `${from} invited you to #${room}`;
    setText(announcer, line);
    if (typeof Notification !== 'undefined' && Notification.permission === 'granted') {
      try {
        const n = new Notification(`Invitation to #${room}`, { body: line, tag: `invite:${room}` });
        n.onclick = () => {
          window.focus();
          if (view.conv) {
            view.conv = null;
            buildPane();
          }
          render();
          queueMicrotask(() => invitationItems.get(room)?.li.querySelector('button')?.focus());
        };
      } catch {
        // Notifications only from a service worker here: the Invitations list still shows it.
      }
    }
  };

  const onVisible = () => render();
  const onExpired = () => leave('Your session expired. Log in again.');

  /** @param {string} [message] */
  function leave(message) {
    active = false;
    client.removeEventListener('change', render);
    client.removeEventListener('incoming', onIncoming);
    client.removeEventListener('invited', onInvited);
    client.removeEventListener('expired', onExpired);
    document.removeEventListener('visibilitychange', onVisible);
    document.title = BASE_TITLE;
    nav.onLoggedOut(message);
  }

  client.addEventListener('change', render);
  client.addEventListener('incoming', onIncoming);
  client.addEventListener('invited', onInvited);
  client.addEventListener('expired', onExpired);
  document.addEventListener('visibilitychange', onVisible);
  buildPane();
  render();
  return { open, render };
}

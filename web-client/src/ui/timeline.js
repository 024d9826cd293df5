// @ts-check
/**
 * The open conversation's timeline, drawn incrementally: each entry gets one `<li>` that is
 * made once, updated in place when its state changes (waiting → sent → delivered), and never
 * rebuilt because something else happened. Day separators, short times, "You" / the sender for
 * screen readers, and the scroll position kept unless the reader is at the bottom.
 */
import { h } from './dom.js';
import { deliveredEverywhere, deliveredText } from '../history.js';

/** @typedef {import('../client.js').Entry} Entry */

const STATE_LABEL = /** @type {Record<string, string>} */ ({ waiting: 'waiting', sent: 'sent', delivered: 'delivered', received: '', undecryptable: 'could not decrypt', failed: 'not sent', synced: 'sent from another of your devices' });

/**
 * What the state of our entry says after its time: "✓✓ delivered", "✓✓ delivered to 1 of 2
 * devices" (the ticks hidden from screen readers), "sent", ….
 * @param {Entry} m
 */
function stateLabel(m) {
  if (m.state === 'delivered') return h('span', { class: 'state' }, ' · ', h('span', { 'aria-hidden': 'true' }, '✓✓ '), deliveredText(m));
  const label = STATE_LABEL[m.state] ?? m.state;
  return label ? h('span', { class: 'state' }, ` · ${label}`) : null;
}

/** `14:05`. @param {number} at */
export function shortTime(at) {
  return new Date(at * 1000).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** The full date and time, for a tooltip. @param {number} at */
export function longTime(at) {
  return new Date(at * 1000).toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'short' });
}

/** The date and time in a compact form, for tables (the devices list). @param {number} at */
export function mediumTime(at) {
  return new Date(at * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** @param {Date} d */
const dayKey = (d) => `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;

/** "Today", "Yesterday", or the date. @param {number} at */
export function dayLabel(at) {
  const d = new Date(at * 1000);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(d) === dayKey(today)) return 'Today';
  if (dayKey(d) === dayKey(yesterday)) return 'Yesterday';
  return d.toLocaleDateString(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: d.getFullYear() === today.getFullYear() ? undefined : 'numeric' });
}

/** For the chat list: the time today, the weekday this week, else the date. @param {number} at */
export function listTime(at) {
  const d = new Date(at * 1000);
  const now = new Date();
  if (dayKey(d) === dayKey(now)) return shortTime(at);
  if (now.getTime() - d.getTime() < 6 * 86400_000) return d.toLocaleDateString(undefined, { weekday: 'short' });
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
}

/** The timeline of one conversation. */
export class Timeline {
  /**
   * @param {string} conv
   * @param {{me: string, onRetry: (e: Entry) => void}} opts
   */
  constructor(conv, opts) {
    this.conv = conv;
    this.isRoom = conv.startsWith('#');
    this.opts = opts;
    /** @type {Entry[]} entries drawn, in order */
    this.drawn = [];
    /** @type {Map<Entry, {li: HTMLElement, sig: string}>} entries whose drawing may still change (ours, not yet delivered) */
    this.items = new Map();
    this.lastDay = '';
    this.el = /** @type {HTMLOListElement} */ (h('ol', {
      class: 'messages', id: 'messages', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions',
      'aria-label': `Messages in ${conv}`, tabindex: 0,
    }));
    /** whether the reader is at the bottom, kept up to date by scrolling, so a resize keeps it */
    this.pinned = true;
    this.el.addEventListener('scroll', () => { this.pinned = this.atBottom(); }, { passive: true });
    if (typeof ResizeObserver !== 'undefined') new ResizeObserver(() => { if (this.pinned) this.scrollToBottom(); }).observe(this.el);
    this.empty = h('li', { class: 'empty' }, this.isRoom ? 'No messages yet. Invite people, then say hello.' : 'No messages yet. Messages are end-to-end encrypted.');
  }

  /** Whether the reader is at (or near) the bottom. */
  atBottom() {
    const el = this.el;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 48;
  }

  scrollToBottom() {
    this.el.scrollTop = this.el.scrollHeight;
  }

  /**
   * Brings the list in line with `entries`: appends new ones, updates changed ones, and starts
   * over only when entries were taken out. Scrolls down only if the reader was at the bottom
   * (or `stick`). @param {Entry[]} entries @param {boolean} [stick]
   */
  update(entries, stick = false) {
    // `pinned` follows the reader's scrolling, so no layout is forced here to ask.
    const bottom = stick || this.pinned;
    const top = this.el.scrollTop;
    // Entries are only appended, or taken out (a refused send, the oldest past the limit):
    // comparing both ends of what is drawn tells which.
    const n = this.drawn.length;
    const same = n <= entries.length && (n === 0 || (this.drawn[0] === entries[0] && this.drawn[n - 1] === entries[n - 1]));
    if (!same) {
      this.el.replaceChildren();
      this.drawn = [];
      this.items.clear();
      this.lastDay = '';
    }
    for (const [e, item] of this.items) {
      const sig = signature(e);
      if (item.sig === sig) continue;
      const li = this.item(e);
      item.li.replaceWith(li);
      if (settled(e)) this.items.delete(e);
      else this.items.set(e, { li, sig });
    }
    const added = entries.slice(this.drawn.length);
    if (entries.length === 0 && !this.empty.isConnected) this.el.append(this.empty);
    if (entries.length > 0 && this.empty.isConnected) this.empty.remove();
    for (const e of added) {
      const day = dayKey(new Date(e.at * 1000));
      if (day !== this.lastDay) {
        this.el.append(h('li', { class: 'day', role: 'separator', 'aria-label': dayLabel(e.at) }, dayLabel(e.at)));
        this.lastDay = day;
      }
      const li = this.item(e);
      this.el.append(li);
      if (!settled(e)) this.items.set(e, { li, sig: signature(e) });
      this.drawn.push(e);
    }
    if (bottom) this.scrollToBottom();
    else if (!same) this.el.scrollTop = top;
    this.pinned = bottom;
    return added;
  }

  /** One entry's `<li>`. @param {Entry} m */
  item(m) {
    if (m.kind === 'event') {
      return h('li', { class: 'event', 'data-kind': 'event' }, h('span', { class: 'text', dir: 'auto' }, m.text), ' · ', h('time', { class: 'meta-inline', title: longTime(m.at) }, shortTime(m.at)));
    }
    const who = m.outgoing ? 'You' : m.from;
    return h('li', { class: `msg${m.outgoing ? ' mine' : ' theirs'}${m.state === 'undecryptable' ? ' undecryptable' : ''}${m.state === 'failed' ? ' failed' : ''}`, 'data-state': m.state },
      this.isRoom && !m.outgoing ? h('strong', { class: 'from', dir: 'auto' }, m.from, h('span', { class: 'sr-only' }, ':'), ' ') : h('span', { class: 'sr-only' }, `${who}: `),
      h('span', { class: 'text', dir: 'auto' }, m.text),
      h('span', { class: 'meta' },
        h('time', { title: longTime(m.at) }, shortTime(m.at)),
        m.outgoing ? stateLabel(m) : null,
        m.state === 'failed' && m.error ? h('span', { class: 'why' }, `: ${m.error}`) : null),
      m.state === 'failed' ? h('button', { type: 'button', class: 'secondary small', on: { click: () => this.opts.onRetry(m) } }, 'Try again') : null);
  }
}

/**
 * Whether an entry's drawing can no longer change: theirs, events, ours sent from another of
 * our devices, ours once delivered to every device it went to. @param {Entry} e
 */
function settled(e) {
  return !e.outgoing || e.state === 'synced' || deliveredEverywhere(e);
}

/** What decides an entry's drawing besides its text. @param {Entry} e */
function signature(e) {
  return `${e.state}|${e.error ?? ''}|${e.delivered_to?.length ?? 0}`;
}

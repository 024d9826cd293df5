// @ts-check
/**
 * An account's history (`profile.history`) and the lookups over it: entries by conversation,
 * unread entries, our texts awaiting a receipt, and which entries changed since the last save
 * (the keystore writes one record per entry, so only those are written). Entries are appended
 * in `seq` order and taken out only when refused or past the limit. It keeps no secrets of its
 * own and does no I/O (client.js saves).
 */

/** @typedef {import('./client.js').Entry} Entry */

/** The most entries kept; the oldest go first. */
export const HISTORY_LIMIT = 5000;

export class History {
  /** Indexes a profile's history, numbering entries saved before they had a `seq`. @param {{history: Entry[], next_seq?: number}} profile */
  constructor(profile) {
    this.profile = profile;
    /** @type {Map<string, Entry[]>} oldest first */
    this.byConv = new Map();
    /** @type {Set<Entry>} */
    this.unread = new Set();
    /** @type {Map<string, Entry>} our texts sent but not yet delivered, by server id */
    this.awaitingReceipt = new Map();
    /** @type {Set<Entry>} changed since the last save */
    this.dirty = new Set();
    /** @type {number[]} `seq` of entries dropped since the last save */
    this.removedSeqs = [];
    profile.history ??= [];
    let next = profile.next_seq ?? 0;
    for (const e of profile.history) if (typeof e.seq === 'number' && e.seq >= next) next = e.seq + 1;
    for (const e of profile.history) {
      if (typeof e.seq !== 'number') {
        e.seq = next++;
        this.dirty.add(e);
      }
      this.index(e);
    }
    profile.next_seq = next;
  }

  /** @param {Entry} e */
  index(e) {
    let list = this.byConv.get(e.conv);
    if (!list) {
      list = [];
      this.byConv.set(e.conv, list);
    }
    list.push(e);
    if (e.unread) this.unread.add(e);
    if (e.outgoing && e.server_id && (e.state === 'sent' || (e.state === 'delivered' && !deliveredEverywhere(e)))) this.awaitingReceipt.set(e.server_id, e);
  }

  /** Appends an entry (numbering it), dropping the oldest past the limit. @param {Entry} e */
  push(e) {
    e.seq = /** @type {number} */ (this.profile.next_seq);
    this.profile.next_seq = e.seq + 1;
    this.profile.history.push(e);
    this.index(e);
    this.dirty.add(e);
    if (this.profile.history.length > HISTORY_LIMIT) this.remove(this.profile.history[0]);
  }

  /** Takes an entry out (its record goes at the next save). @param {Entry} e */
  remove(e) {
    const i = this.profile.history.indexOf(e);
    if (i >= 0) this.profile.history.splice(i, 1);
    const list = this.byConv.get(e.conv);
    const j = list ? list.indexOf(e) : -1;
    if (list && j >= 0) list.splice(j, 1);
    this.unread.delete(e);
    if (e.server_id) this.awaitingReceipt.delete(e.server_id);
    this.dirty.delete(e);
    if (typeof e.seq === 'number') this.removedSeqs.push(e.seq);
  }

  /** Marks an entry changed. @param {Entry} e */
  touch(e) {
    this.dirty.add(e);
  }

  /**
   * Our text went: `sent`, awaiting its receipts; `devices`: how many of the recipient's devices
   * it was encrypted for (a direct text).
   * @param {Entry} e @param {string} serverId @param {number} [devices]
   */
  markSent(e, serverId, devices) {
    e.server_id = serverId;
    e.state = 'sent';
    delete e.error;
    if (devices !== undefined) {
      e.devices = devices;
      e.delivered_to = [];
    }
    this.awaitingReceipt.set(serverId, e);
    this.touch(e);
  }

  /**
   * A receipt from the recipient's device `device`: the text with that server id is `delivered`,
   * to one more device (the same device again changes nothing). It awaits receipts until every
   * device it went to has sent one.
   * @param {string} serverId @param {number} device
   * @returns {boolean} whether anything changed
   */
  markDelivered(serverId, device) {
    const e = this.awaitingReceipt.get(serverId);
    if (!e) return false;
    const to = e.delivered_to ?? [];
    if (e.state === 'delivered' && to.includes(device)) return false;
    if (!to.includes(device)) e.delivered_to = [...to, device];
    e.state = 'delivered';
    if (deliveredEverywhere(e)) this.awaitingReceipt.delete(serverId);
    this.touch(e);
    return true;
  }

  /** Marks a conversation read. @param {string} conv @returns {boolean} whether anything was unread */
  markRead(conv) {
    let any = false;
    for (const e of this.unread) if (e.conv === conv) {
      e.unread = false;
      this.unread.delete(e);
      this.touch(e);
      any = true;
    }
    return any;
  }

  /** Our texts still waiting to go, oldest first. */
  waiting() {
    return this.profile.history.filter((e) => e.outgoing && e.state === 'waiting');
  }

  /** What changed since the last call, for a save. */
  takeChanges() {
    const put = [...this.dirty];
    const removed = this.removedSeqs;
    this.dirty = new Set();
    this.removedSeqs = [];
    return { put, removed };
  }

  /** A save failed: its changes are still to be written. @param {{put: Entry[], removed: number[]}} changes */
  restoreChanges(changes) {
    for (const e of changes.put) this.dirty.add(e);
    this.removedSeqs.push(...changes.removed);
  }
}

/**
 * Whether our delivered text reached every device it went to (always, for one without a count:
 * written before receipts named devices, or a room text). @param {Entry} e
 */
export function deliveredEverywhere(e) {
  return e.state === 'delivered' && (e.devices === undefined || (e.delivered_to ?? []).length >= e.devices);
}

/**
 * "delivered", with the count when the text went to several devices: "delivered to 1 of 2
 * devices" (as the CLI says). @param {Entry} e
 */
export function deliveredText(e) {
  const n = e.devices;
  if (n === undefined || n <= 1) return 'delivered';
  return `delivered to ${Math.min((e.delivered_to ?? []).length, n)} of ${n} devices`;
}

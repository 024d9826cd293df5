// @ts-check
/**
 * The outbox (as host-server's `outbox.rs` is the server's): our texts are recorded `waiting`
 * first, then sent in order whenever the connection is up and the session resumed, and only
 * then marked `sent`. A lost connection leaves a text waiting; a refusal marks it `failed` with
 * the reason (or, when the user is still at the composer, takes it out and hands it back).
 * Functions take the `Client` whose state they change.
 */
import { ServerError } from './connection.js';
import * as direct from './direct.js';
import * as rooms from './rooms.js';

/** @typedef {import('./client.js').Entry} Entry */

/**
 * Sends one waiting entry; call inside `client.serial`. A lost connection leaves it waiting
 * (false); any other failure either takes it out and throws (`interactive`: the user still has
 * the text) or marks it `failed` with the reason and throws.
 * @param {import('./client.js').Client} client @param {Entry} entry @param {boolean} interactive
 * @returns {Promise<boolean>} whether it went (or needs nothing more)
 */
export async function deliver(client, entry, interactive) {
  if (entry.state !== 'waiting' || !client.profile.history.includes(entry)) return true;
  if (!client.canSend()) return false;
  const content = /** @type {const} */ ({ type: 'Text', id: BigInt(entry.id), sent_at: BigInt(entry.at), text: entry.text });
  try {
    const closed = client.closedReason(entry.conv);
    if (closed) throw new Error(closed);
    // The same content id on every try: if an earlier try did reach the server, the
    // recipient drops the copy.
    if (entry.conv.startsWith('#')) {
      client.history.markSent(entry, await rooms.sendToRoom(client, entry.conv.slice(1), content));
    } else {
      // With its transcript for our other devices; the receipts count the devices it went to.
      const { serverId, devices } = await direct.sendTextTo(client, entry.conv.slice(1), content);
      client.history.markSent(entry, serverId, devices);
    }
    await client.save();
    return true;
  } catch (e) {
    if (!client.canSend() && !(e instanceof direct.KeyChangedError) && !(e instanceof ServerError)) return false;
    if (interactive) {
      client.history.remove(entry);
    } else {
      entry.state = 'failed';
      entry.error = /** @type {Error} */ (e).message;
      client.history.touch(entry);
    }
    await client.save();
    throw e;
  }
}

/** @type {WeakSet<object>} clients whose outbox is being drained */
const draining = new WeakSet();

/**
 * Sends what waits, oldest first, while the connection holds; a text queued while this runs is
 * picked up by the same loop.
 * @param {import('./client.js').Client} client
 */
export async function flush(client) {
  if (draining.has(client)) return;
  draining.add(client);
  try {
    for (let e = client.history.waiting()[0]; e; e = client.history.waiting()[0]) {
      const entry = e;
      let went;
      try {
        went = await client.serial(() => deliver(client, entry, false));
      } catch {
        went = true; // marked failed; the next one may still go
      }
      client.changed();
      if (!went) break;
    }
  } finally {
    draining.delete(client);
  }
}

// The client's one-to-one logic without a browser: two clients joined by a tiny in-memory
// stand-in for the server (bundles, relay, acks). Covers trust on first use, the prekey →
// ratchet envelope switch, duplicate drops, and healing a broken session with SessionReset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, DeviceLinking, DeviceRevokedError, KEM_PREKEY_BATCH, MAX_TEXT_BYTES, browserDeviceName, SIGNED_PREKEY_LIFETIME, ServerError, newProfileForTests, roomNameFrom, usernameFrom } from '../../src/client.js';
import { ErrorCode } from '../../src/message.js';
import { fromHex, toHex } from '../../src/bytes.js';
import { IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair, signedPrekeyMessage } from '../../src/keys.js';
import { sealLink, verifyDevicePrekey } from '../../src/devices.js';
import { linkStateBytes, parseLinkCode } from '../../src/link.js';
import { ed25519Verify } from '../../src/keys.js';
import { prekeyHeaderFromBytes, prekeyHeaderToBytes } from '../../src/x3dh.js';
import { MAX_ROUNDS, MIN_ROUNDS, acceptableRounds } from '../../src/keystore.js';
import { sendContentTo, sendTextTo, sendingSession } from '../../src/direct.js';
import { KemPrekeyPair, kemHeaderFromBytes, verifyKemPrekey } from '../../src/pqxdh.js';
import { decodeContent, emitEnvelope, encodeContent, parseEnvelope } from '../../src/envelope.js';
import { Session } from '../../src/ratchet.js';
import { History, deliveredText } from '../../src/history.js';
import { Room, roomIdForName } from '../../src/room.js';

/**
 * A stand-in server: a key directory with devices and a relay that delivers at once, one copy
 * per device. An account is `{identity, devices: Map<id, {client, spk, opks}>, next}`.
 */
class FakeServer {
  constructor() {
    this.accounts = new Map();
    this.nextId = 1n;
    this.log = [];
    /** every SendToDevices and SendSynced accepted: {from, to, bodies, own} */
    this.sent = [];
    /** direct messages stored: server id → {from, to, copies: devices that have not acknowledged} */
    this.stored = new Map();
    /** every Delivered pushed: {to (the sender), server_id, device} */
    this.receipts = [];
    /** link messages waiting, by account and link id (hex) */
    this.links = new Map();
  }

  /**
   * A client joins: the same identity as the account's is a linked device (the next id); a
   * new username is device 1; a new identity under a known username starts the account over
   * on its next device (the others revoked). Returns the device id.
   */
  connect(client) {
    const p = client.profile;
    const id = new IdentityKeyPair(fromHex(p.identity.sig), fromHex(p.identity.dh));
    const spk = { id: p.spks[0].id, public: SignedPrekeyPair.fromSecretKey(p.spks[0].id, fromHex(p.spks[0].secret), id).publicKey, signature: fromHex(p.spks[0].signature) };
    const opks = Object.entries(p.opks).map(([k, s]) => new OneTimePrekeyPair(Number(k), fromHex(s)).public());
    let a = this.accounts.get(p.username);
    const same = a && toHex(a.identity.signing) === toHex(id.public().signing);
    if (!a) {
      a = { identity: id.public(), devices: new Map(), next: 1 };
      this.accounts.set(p.username, a);
    } else if (!same) {
      a.identity = id.public();
      a.devices.clear();
    }
    const device = a.next++;
    a.devices.set(device, { client, spk, opks, kemLast: null, kemOne: [] });
    client.conn.device = device;
    return device;
  }

  /**
   * `UploadKemPrekeys` as the server takes it: every signature must verify for the session's
   * device under the account's identity, and no id may be held already (INVALID_INPUT); past
   * `kemQuota` one-time KEM prekeys, QUOTA_FULL and nothing stored.
   */
  uploadKem(username, device, msg) {
    const a = this.accounts.get(username);
    const d = a.devices.get(device);
    const all = [...(msg.last_resort ? [msg.last_resort] : []), ...msg.one_time];
    const held = new Set([...(d.kemLast ? [d.kemLast.id] : []), ...d.kemOne.map((k) => k.id)]);
    for (const k of all) {
      if (!verifyKemPrekey({ id: k.id, public: k.key, signature: k.signature }, a.identity.signing, device)) {
        throw new ServerError(ErrorCode.INVALID_INPUT, 'a KEM prekey\'s signature does not verify');
      }
      if (held.has(k.id)) throw new ServerError(ErrorCode.INVALID_INPUT, 'a KEM prekey id is already held');
      held.add(k.id);
    }
    if (d.kemOne.length + msg.one_time.length > (this.kemQuota ?? 100)) throw new ServerError(ErrorCode.QUOTA_FULL, 'the server holds as many one-time KEM prekeys as it keeps');
    if (msg.last_resort) d.kemLast = msg.last_resort;
    d.kemOne.push(...msg.one_time);
    this.kemUploads = (this.kemUploads ?? 0) + 1;
  }

  /**
   * `FetchKemBundle`: the device's bundle and a one-time KEM prekey (deleted as handed out),
   * else its last-resort one; `KemPrekeysLow` to the device when fewer than `kemLow` one-time
   * ones are left. A hostile test rewrites what goes out with `kemTamper(user, device, kem)`.
   */
  kemBundle(user, device) {
    const b = this.bundle(user, device);
    const d = this.accounts.get(user).devices.get(device);
    let kem = d.kemOne.shift() ?? d.kemLast ?? null;
    if (this.kemLow !== undefined && d.kemOne.length < this.kemLow) setTimeout(() => d.client.handlePush({ type: 'KemPrekeysLow', remaining: d.kemOne.length }), 0);
    if (this.kemTamper) kem = this.kemTamper(user, device, kem);
    return { type: 'KemBundle', bundle: b.bundle, kem_prekey: kem };
  }

  /** The active device ids of `user`. */
  devices(user) {
    return [...this.accounts.get(user).devices.keys()];
  }

  /**
   * `user`'s device `from` is known as `to` from now on (same keys; its KEM prekeys, signed
   * for `from`, are dropped: the device publishes new ones for `to`).
   */
  move(user, from, to) {
    const a = this.accounts.get(user);
    const d = a.devices.get(from);
    a.devices.delete(from);
    a.devices.set(to, d);
    d.kemLast = null;
    d.kemOne = [];
    d.client.conn.device = to;
  }

  bundle(user, device) {
    const a = this.accounts.get(user);
    const d = a?.devices.get(device);
    if (!d) throw new ServerError(ErrorCode.NOT_FOUND, 'no such device');
    return {
      type: 'Bundle',
      bundle: {
        username: user, identity_sig: a.identity.signing, identity_dh: a.identity.dh,
        signed_prekey: { id: d.spk.id, key: d.spk.public, signature: d.spk.signature },
        one_time_prekey: d.opks.length ? (({ id, public: key }) => ({ id, key }))(d.opks.shift()) : null,
      },
    };
  }

  /**
   * `bodies` must name exactly `to`'s reachable devices — for our own account, our other ones
   * (the sending device `device` is never named) — each once, else STALE_DEVICES (a device
   * named twice: INVALID_INPUT), as the server's `store_direct`.
   */
  checkCopies(from, device, to, bodies) {
    const named = bodies.map((b) => b.device).sort((x, y) => x - y);
    if (named.some((d, i) => d === named[i - 1])) throw new ServerError(ErrorCode.INVALID_INPUT, 'bodies: a device is named twice');
    const active = this.devices(to).filter((d) => to !== from || d !== device).sort((x, y) => x - y);
    if (this.alwaysStale || named.length !== active.length || named.some((d, i) => d !== active[i])) {
      throw new ServerError(ErrorCode.STALE_DEVICES, 'the recipient\'s devices have changed');
    }
    if (active.length === 0 && to !== from) throw new ServerError(ErrorCode.STALE_DEVICES, 'the recipient has no device to write to');
  }

  /** Stores a checked direct message and delivers one copy per device, as from `from`'s `device`; returns its id (0: none to our own account). */
  store(from, device, to, bodies) {
    if (bodies.length === 0) return 0n;
    const server_id = this.nextId++;
    this.stored.set(server_id, { from, to, copies: new Set(bodies.map((b) => b.device)) });
    const a = this.accounts.get(to);
    for (const { device: d, body } of bodies) {
      const deliver = { type: 'Deliver', server_id, from, room: null, sent_at: 1764000000n, body, device };
      if (to !== from) this.last = deliver;
      const client = a.devices.get(d).client;
      if (!this.holdDeliveries) setTimeout(() => client.handlePush(deliver), 0);
    }
    return server_id;
  }

  /**
   * `Ack` from `user`'s `device`: its copy is gone; the sender gets `Delivered` naming the
   * device (on each of its devices), except for a message from the account to itself.
   */
  ack(user, device, server_id) {
    const m = this.stored.get(server_id);
    if (!m || m.to !== user || !m.copies.delete(device)) return;
    if (m.copies.size === 0) this.stored.delete(server_id);
    if (m.from === user) return;
    const delivered = { type: 'Delivered', server_id, to: user, device };
    this.receipts.push({ to: m.from, server_id, device });
    for (const d of this.accounts.get(m.from)?.devices.values() ?? []) setTimeout(() => d.client.handlePush(delivered), 0);
  }

  conn(username) {
    const server = this;
    const conn = {
      isOpen: true,
      device: 0,
      onPush: () => {},
      onStatus: () => {},
      send(msg) {
        server.log.push([username, msg.type]);
        if (msg.type === 'Ack' && !server.noReceipts) server.ack(username, conn.device, msg.server_id);
      },
      close() {
        this.isOpen = false;
      },
      async request(msg) {
        server.log.push([username, msg.type]);
        const me = () => server.accounts.get(username).devices.get(conn.device);
        if (msg.type === 'FetchBundle') return server.bundle(msg.username, server.devices(msg.username)[0]);
        if (msg.type === 'FetchDeviceBundle') return server.bundle(msg.username, msg.device);
        if (msg.type === 'FetchKemBundle') return server.kemBundle(msg.username, msg.device);
        if (msg.type === 'UploadKemPrekeys') {
          server.uploadKem(username, conn.device, msg);
          return { type: 'Ok' };
        }
        if (msg.type === 'UploadPrekeys') {
          if (server.prekeysFull) throw new ServerError(ErrorCode.QUOTA_FULL, 'the server holds as many one-time prekeys as it keeps');
          me().opks.push(...msg.prekeys.map((k) => ({ id: k.id, public: k.key })));
          return { type: 'Ok' };
        }
        if (msg.type === 'PublishSignedPrekey') {
          // As the server: signed by the account identity, for this device (v2) or v1.
          const a = server.accounts.get(username);
          const spk = { public: msg.prekey.key, signature: msg.prekey.signature };
          if (!verifyDevicePrekey(spk, a.identity.signing, conn.device) && !ed25519Verify(a.identity.signing, signedPrekeyMessage(spk.public), spk.signature)) {
            throw new ServerError(ErrorCode.INVALID_INPUT, 'the signed prekey\'s signature does not verify');
          }
          me().spk = { id: msg.prekey.id, public: msg.prekey.key, signature: msg.prekey.signature };
          return { type: 'Ok' };
        }
        // Linking (PROTOCOL.md §4.6): a session with no device until AddDevice.
        if (msg.type === 'LoginDevice') {
          conn.device = msg.device ?? null;
          return { type: 'TotpRequired' };
        }
        if (msg.type === 'SendLink') {
          if (conn.device === null) throw new ServerError(ErrorCode.BAD_STATE, 'linking');
          server.links.set(`${username}:${toHex(msg.link_id)}`, msg.message);
          return { type: 'Ok' };
        }
        if (msg.type === 'FetchLink') {
          if (conn.device !== null) throw new ServerError(ErrorCode.BAD_STATE, 'already a device');
          const key = `${username}:${toHex(msg.link_id)}`;
          const message = server.links.get(key);
          if (!message) throw new ServerError(ErrorCode.NOT_FOUND, 'no link message yet');
          server.links.delete(key);
          return { type: 'LinkMessage', message };
        }
        if (msg.type === 'AddDevice') {
          if (conn.device !== null) throw new ServerError(ErrorCode.BAD_STATE, 'already a device');
          const a = server.accounts.get(username);
          const device = a.next++;
          a.devices.set(device, { client: { handlePush: (m) => conn.onPush(m) }, spk: null, opks: [], kemLast: null, kemOne: [] });
          conn.device = device;
          return { type: 'DeviceAdded', device };
        }
        if (msg.type === 'ListDevices') return { type: 'DeviceList', current: conn.device, devices: [] };
        if (msg.type === 'NameDevice') return { type: 'Ok' };
        if (msg.type === 'PublishIdentity') {
          // The account starts over with this session's device (connect() made it the only one).
          server.accounts.get(username).identity = { signing: msg.identity_sig, dh: msg.identity_dh };
          return { type: 'Ok' };
        }
        if (msg.type === 'RevokeDevice') {
          const a = server.accounts.get(username);
          if (msg.device === conn.device || !a.devices.has(msg.device)) throw new ServerError(ErrorCode.NOT_FOUND, 'no such device');
          a.devices.delete(msg.device);
          return { type: 'Ok' };
        }
        if (msg.type === 'TotpCode') return { type: 'Session', token: new Uint8Array(32).fill(7), expires_at: 1900000000n };
        if (msg.type === 'Logout') return { type: 'Ok' };
        if (msg.type === 'FetchDevices') {
          const a = server.accounts.get(msg.username);
          return { type: 'Devices', username: msg.username, identity_sig: a.identity.signing, identity_dh: a.identity.dh, devices: server.devices(msg.username) };
        }
        if (msg.type === 'SendToDevices') {
          server.checkCopies(username, conn.device, msg.to, msg.bodies);
          server.sent.push({ from: username, to: msg.to, bodies: msg.bodies, own: null });
          const server_id = server.store(username, conn.device, msg.to, msg.bodies);
          return { type: 'Accepted', client_id: msg.client_id, server_id };
        }
        if (msg.type === 'SendSynced') {
          // As the server: both sets checked before anything is stored, then both stored.
          if (msg.to === username) throw new ServerError(ErrorCode.INVALID_INPUT, 'SendSynced is for writing to someone else');
          server.checkCopies(username, conn.device, msg.to, msg.bodies);
          if (server.staleOwn) {
            server.staleOwn--;
            throw new ServerError(ErrorCode.STALE_DEVICES, 'your devices have changed');
          }
          server.checkCopies(username, conn.device, username, msg.own);
          server.sent.push({ from: username, to: msg.to, bodies: msg.bodies, own: msg.own });
          const server_id = server.store(username, conn.device, msg.to, msg.bodies);
          server.store(username, conn.device, username, msg.own);
          return { type: 'Accepted', client_id: msg.client_id, server_id };
        }
        throw new Error(`stand-in server: ${msg.type} not handled`);
      },
    };
    return conn;
  }
}

/**
 * A logged-in client with a fresh profile, known to the stand-in server, as a browser is after
 * login: it knows its device id (it leaves out its own device when it sends transcripts to its
 * other devices), its signed prekey is signed for it (made so at once when `device` is given,
 * else published anew) and its KEM prekeys are published (PQXDH).
 */
async function newClient(server, username, device = null) {
  const c = new Client(server.conn(username), newProfileForTests(username, device), null);
  c.loggedIn = true;
  c.profile.device_id = server.connect(c);
  await c.ensureDevice();
  await c.ensureKemPrekeys();
  return c;
}

/**
 * Another device of `first`'s account: its identity, keys of its own; it learns its device id
 * (`ListDevices`) and publishes a signed prekey signed for it, as a browser does after login.
 */
async function linkedClient(server, first) {
  const profile = newProfileForTests(first.profile.username);
  profile.identity = { ...first.profile.identity };
  const c = new Client(server.conn(profile.username), profile, null);
  c.loggedIn = true;
  server.connect(c);
  await c.ensureDevice();
  await c.ensureKemPrekeys();
  return c;
}

const settle = async (clients) => {
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 5));
    await Promise.all(clients.map((c) => c.queue));
  }
};
const texts = (c, conv) => c.messages(conv).map((e) => e.text);

test('two clients talk both ways; the second direction uses ratchet envelopes', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.sendText('@bob', 'hello bob');
  await alice.sendText('@bob', 'are you there?');
  await settle([alice, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['hello bob', 'are you there?']);
  assert.equal(server.last.body[0], 0x03, 'PQXDH prekey envelope until bob replies');
  await bob.sendText('@alice', 'yes');
  await settle([alice, bob]);
  assert.deepEqual(texts(alice, '@bob'), ['hello bob', 'are you there?', 'yes']);
  assert.equal(server.last.body[0], 0x02);
  await alice.sendText('@bob', 'good');
  await settle([alice, bob]);
  assert.equal(server.last.body[0], 0x02, 'after the reply alice sends plain ratchet messages');
  // A second copy of a delivery is dropped.
  bob.handlePush(server.last);
  await settle([alice, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['hello bob', 'are you there?', 'yes', 'good']);
  assert.equal(alice.safetyNumber('bob'), bob.safetyNumber('alice'));
});

test('a broken session is shown, reset, and heals by itself', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.sendText('@bob', 'one');
  await settle([alice, bob]);
  await bob.sendText('@alice', 'two');
  await settle([alice, bob]);
  // Bob loses his session (a restored backup, a bug): alice's next message cannot be read.
  bob.profile.contacts.alice.devices = {};
  await alice.sendText('@bob', 'three');
  await settle([alice, bob]);
  const last = bob.messages('@alice').at(-1);
  assert.equal(last.state, 'undecryptable');
  assert.match(last.text, /could not decrypt this message: .*session is being reset/);
  assert.ok(alice.notices.some((n) => /could not decrypt a message from you/.test(n)), 'alice was told');
  // The next message starts a new session and is read.
  await alice.sendText('@bob', 'four');
  await settle([alice, bob]);
  assert.equal(bob.messages('@alice').at(-1).text, 'four');
});

test('a replayed first message changes no session and forces no reset (with or without a one-time prekey)', async () => {
  for (const withOpk of [true, false]) {
    const server = new FakeServer();
    const alice = await newClient(server, 'alice');
    const bob = await newClient(server, 'bob');
    if (!withOpk) server.accounts.get('bob').devices.get(1).opks = [];
    await alice.sendText('@bob', 'one');
    await settle([alice, bob]);
    const first = server.last;
    assert.equal(first.body[0], 0x03, 'a PQXDH prekey envelope');
    // The conversation moves on: both directions, several ratchet steps.
    for (const [from, to, text] of [[bob, '@alice', 'two'], [alice, '@bob', 'three'], [bob, '@alice', 'four']]) {
      await from.sendText(to, text);
      await settle([alice, bob]);
    }
    const before = JSON.stringify(bob.profile.contacts.alice);
    const shown = bob.messages('@alice').length;
    // The server plays the first message again, as a new delivery.
    bob.handlePush({ ...first, server_id: 999n });
    await settle([alice, bob]);
    assert.equal(JSON.stringify(bob.profile.contacts.alice), before, `withOpk=${withOpk}: the session changed`);
    assert.equal(bob.messages('@alice').length, shown, 'nothing new shown');
    assert.ok(!alice.notices.some((n) => /could not decrypt/.test(n)), 'no reset was asked');
    // And the conversation goes on.
    await alice.sendText('@bob', 'five');
    await settle([alice, bob]);
    assert.equal(bob.messages('@alice').at(-1).text, 'five');
  }
});

test('a first message that does not decrypt neither marks its sender\'s key as changed nor breaks the session', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.sendText('@bob', 'hi');
  await settle([alice, bob]);
  await bob.sendText('@alice', 'hello');
  await settle([alice, bob]);
  // The server forges a first message "from alice" carrying another identity key, naming
  // bob's real signed prekey, so it gets as far as decryption (which fails).
  const mallory = IdentityKeyPair.generate().public();
  const header = prekeyHeaderToBytes({
    identity: mallory, ephemeral: IdentityKeyPair.generate().public().dh,
    signed_prekey_id: bob.profile.spks[0].id, one_time_prekey_id: null,
  });
  const body = new Uint8Array([0x01, ...header, ...Uint8Array.from(server.last.body).subarray(1)]);
  bob.handlePush({ type: 'Deliver', server_id: 77n, from: 'alice', room: null, sent_at: 1764000000n, body, device: 1 });
  await settle([alice, bob]);
  assert.equal(bob.profile.contacts.alice.key_changed, false);
  const last = bob.messages('@alice').at(-1);
  assert.equal(last.state, 'undecryptable');
  assert.doesNotMatch(last.text, /signed prekey/, 'it reached decryption');
  assert.ok(bob.profile.contacts.alice.devices[1].session, 'the working session is kept');
  await alice.sendText('@bob', 'still here');
  await settle([alice, bob]);
  assert.equal(bob.messages('@alice').at(-1).text, 'still here');
  assert.ok(!alice.notices.some((n) => /could not decrypt/.test(n)), 'no reset was asked');
});

test('the signed prekey is replaced after a week, the last-resort KEM prekey with it; first messages to the previous ones still open', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const now = Math.floor(Date.now() / 1000);
  assert.equal(await bob.rotateSignedPrekeyIfOld(now), false, 'a fresh prekey stays');
  const oldId = bob.profile.spks[0].id;
  // Alice fetches bob's bundle (the current prekey), then bob rotates before her message lands.
  const bobs = server.accounts.get('bob').devices.get(1);
  bobs.opks = [];
  const bundleBefore = structuredClone(bobs.spk);
  const kemBefore = bobs.kemLast;
  assert.equal(await bob.rotateSignedPrekeyIfOld(now + SIGNED_PREKEY_LIFETIME + 1), true);
  assert.deepEqual(bob.profile.spks.map((k) => k.id), [oldId + 1, oldId]);
  assert.equal(bobs.spk.id, oldId + 1, 'the new one is published');
  // The last-resort KEM prekey is replaced with it; the previous one is kept for messages in flight.
  assert.notEqual(bobs.kemLast.id, kemBefore.id);
  assert.deepEqual(bob.profile.kem_last_resort.map((k) => k.id), [bobs.kemLast.id, kemBefore.id]);
  bobs.spk = bundleBefore;
  bobs.kemOne = [];
  bobs.kemLast = kemBefore;
  await alice.sendText('@bob', 'to the previous prekey');
  await settle([alice, bob]);
  assert.equal(bob.messages('@alice').at(-1).text, 'to the previous prekey');
  // A second rotation drops the oldest one.
  await bob.rotateSignedPrekeyIfOld(now + 2 * SIGNED_PREKEY_LIFETIME + 2);
  assert.deepEqual(bob.profile.spks.map((k) => k.id), [oldId + 2, oldId + 1]);
});

test('refusals the CLI makes, the page makes: inviting a changed key, unpublished prekeys, keystore rounds', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.sendText('@bob', 'hi');
  await settle([alice, bob]);
  alice.profile.contacts.bob.key_changed = true;
  await assert.rejects(alice.invite('team', 'bob'), { name: 'KeyChangedError' });
  assert.ok(!server.log.some(([, type]) => type === 'Invite'), 'nothing was sent');

  // A refill the server refuses as full leaves no secret of a key nobody can use.
  const held = Object.keys(alice.profile.opks).length;
  server.prekeysFull = true;
  await alice.refillPrekeys();
  assert.equal(Object.keys(alice.profile.opks).length, held);
  server.prekeysFull = false;
  await alice.refillPrekeys();
  assert.ok(Object.keys(alice.profile.opks).length > held);

  // A stored keystore record claiming too few or too many rounds is not opened.
  for (const bad of [0, MIN_ROUNDS - 1, MAX_ROUNDS + 1, 1.5, '600000', NaN, undefined]) assert.equal(acceptableRounds(bad), false, String(bad));
  for (const good of [MIN_ROUNDS, 600_000, MAX_ROUNDS]) assert.equal(acceptableRounds(good), true);
});

test('a session reset from a room member hands them our room key again', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.sendText('@bob', 'hi');
  await settle([alice, bob]);
  alice.profile.rooms.team = { state: null, members: ['alice', 'bob'], admin: 'alice', key_sent: { bob: 0 } };
  await bob.serial(() => sendContentTo(bob, 'alice', { type: 'SessionReset' }));
  await settle([alice, bob]);
  assert.equal(alice.profile.rooms.team.key_sent.bob, undefined, 'our key is owed to bob again');
  assert.ok(server.log.some(([who, type]) => who === 'alice' && type === 'ListMembers'), 'the room was synced');
});

test('room keys and room messages from a contact whose key changed are held until verified', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.sendText('@bob', 'hi');
  await settle([alice, bob]);
  // "bob" comes back with another key (a new device, or the server substituting one).
  const bob2 = await newClient(server, 'bob');
  await bob2.sendText('@alice', 'new key');
  await settle([alice, bob2]);
  assert.equal(alice.profile.contacts.bob.key_changed, true);
  const room = Room.create(roomIdForName('team'), bob2.identity().public().signing, 0);
  await bob2.serial(() => sendContentTo(bob2, 'alice', { type: 'RoomKey', room: 'team', distribution: room.distribution().toBytes() }));
  alice.handlePush({ type: 'Deliver', server_id: 500n, from: 'bob', room: 'team', sent_at: 1764000000n, body: room.encrypt(new Uint8Array([1, 2, 3])), device: 1 });
  await settle([alice, bob2]);
  assert.deepEqual(alice.profile.held.map((h) => h.kind).sort(), ['key', 'message']);
  assert.equal(alice.profile.rooms.team, undefined, 'no sender key taken in');
  assert.equal(alice.messages('#team').length, 0, 'nothing shown as from bob');
  assert.ok(alice.notices.some((n) => /#team: .* from bob held until you compare/.test(n)));
  await alice.markVerified('bob', alice.safetyNumber('bob'));
  await settle([alice, bob2]);
  assert.deepEqual(alice.profile.held, [], 'released once verified');
});

test('a changed identity key is recorded and sending waits for verification', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.sendText('@bob', 'hi');
  await settle([alice, bob]);
  const shownBefore = alice.safetyNumber('bob');
  alice.profile.rooms.team = { state: null, members: ['alice', 'bob'], admin: 'alice', key_sent: { bob: 0 } };
  // Bob reinstalls: new keys under the same name.
  const bob2 = await newClient(server, 'bob');
  await bob2.sendText('@alice', 'new phone');
  await settle([alice, bob2]);
  assert.equal(alice.messages('@bob').at(-1).text, 'new phone');
  assert.equal(alice.profile.contacts.bob.key_changed, true);
  assert.equal(alice.profile.rooms.team.key_sent.bob, undefined, 'our room key is owed to the new key');
  await assert.rejects(alice.sendText('@bob', 'blocked'), { name: 'KeyChangedError' });
  // The number alice compared was computed from bob's first key: it no longer confirms anything.
  await assert.rejects(alice.markVerified('bob', shownBefore), { name: 'SafetyNumberChangedError' });
  assert.equal(alice.profile.contacts.bob.key_changed, true);
  await alice.markVerified('bob', alice.safetyNumber('bob'));
  await alice.sendText('@bob', 'verified now');
  await settle([alice, bob2]);
  assert.equal(bob2.messages('@alice').at(-1).text, 'verified now');
});

test('a contact who started over: the first send is refused before anything is encrypted, on a new connection or the same one', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const carol = await newClient(server, 'carol');
  await alice.sendText('@bob', 'hi bob');
  await alice.sendText('@carol', 'hi carol');
  await settle([alice, bob, carol]);
  assert.deepEqual([server.devices('bob'), server.devices('carol')], [[1], [1]]);

  // A new connection (what a reconnect forgets), then bob starts over: a new identity on the
  // account's next device. Alice's first send asks for bob's devices first, sees the new key,
  // and stops there: nothing encrypted (the session is as it was), nothing sent.
  alice.devicesChecked.delete('bob');
  const bob2 = await newClient(server, 'bob');
  assert.deepEqual(server.devices('bob'), [2]);
  const session = alice.profile.contacts.bob.devices[1].session;
  server.log.length = 0;
  await assert.rejects(alice.sendText('@bob', 'are you still you?'), { name: 'KeyChangedError' });
  assert.deepEqual(server.log, [['alice', 'FetchDevices']]);
  assert.equal(alice.profile.contacts.bob.key_changed, true);
  assert.deepEqual(alice.profile.contacts.bob.devices, {}, 'the old sessions are dropped with the old key');
  assert.notEqual(session, null);

  // On the same connection (carol's device was checked already), the server refuses the send
  // to the replaced device (STALE_DEVICES); the client asks again, sees the new key and stops.
  const carol2 = await newClient(server, 'carol');
  server.log.length = 0;
  await assert.rejects(alice.sendText('@carol', 'still there?'), { name: 'KeyChangedError' });
  assert.deepEqual(server.log, [['alice', 'SendSynced'], ['alice', 'FetchDevices']]);
  assert.equal(alice.profile.contacts.carol.key_changed, true);
  await settle([alice, bob2, carol2]);
  assert.deepEqual([texts(bob2, '@alice'), texts(carol2, '@alice')], [[], []]);
  assert.ok(!alice.messages('@bob').some((e) => e.text === 'are you still you?'));
});

test('a device moved under the same identity gets a new session and one more send; a server contradicting itself gets none', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.sendText('@bob', 'first');
  await settle([alice, bob]);
  // The server moves bob to device 2, same identity: the send to device 1 is refused, alice's
  // client asks again, starts a session for the listed device (a new bundle) and sends once.
  // Bob's keys are signed for device 2 once he knows it (as after a login).
  server.move('bob', 1, 2);
  bob.profile.device_id = 2;
  await bob.ensureDevice();
  await bob.ensureKemPrekeys();
  server.log.length = 0;
  await alice.sendText('@bob', 'second');
  // A text goes with its transcript (SendSynced): both lists are asked again (alice's own: the same).
  assert.deepEqual(server.log.map(([, t]) => t), ['SendSynced', 'FetchDevices', 'FetchDevices', 'FetchKemBundle', 'SendSynced']);
  assert.deepEqual(Object.keys(alice.profile.contacts.bob.devices), ['2'], 'the session with the device no longer listed is dropped');
  await settle([alice, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['first', 'second']);
  assert.equal(alice.profile.contacts.bob.key_changed, false);

  // A server that refuses the very device it lists: one more question, then alice gives up
  // with a clear error, nothing stored, the contact not marked changed.
  server.alwaysStale = true;
  server.log.length = 0;
  await assert.rejects(alice.sendText('@bob', 'third'), /refuses the devices it lists/);
  assert.deepEqual(server.log.map(([, t]) => t), ['SendSynced', 'FetchDevices', 'FetchDevices']);
  assert.equal(alice.profile.contacts.bob.key_changed, false);
  assert.notEqual(alice.profile.contacts.bob.devices[2].session, null, 'the session is kept');
  await settle([alice, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['first', 'second']);
});

/** The request types `who` sent, in order. */
const sentBy = (server, who) => server.log.filter(([w]) => w === who).map(([, t]) => t);

test('a contact with two devices gets one body per device, in one SendSynced; each device reads its own', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice', 1);
  const bob1 = await newClient(server, 'bob', 1);
  const bob2 = await linkedClient(server, bob1);
  assert.deepEqual(server.devices('bob'), [1, 2]);
  assert.equal(bob2.profile.device_id, 2, 'the linked device learned its id');
  server.log.length = 0;
  await alice.sendText('@bob', 'to both');
  assert.deepEqual(sentBy(server, 'alice'), ['FetchDevices', 'FetchDevices', 'FetchKemBundle', 'FetchKemBundle', 'SendSynced']);
  assert.equal(server.sent.length, 1);
  assert.deepEqual(server.sent[0].own, [], 'alice has no other device: no transcript');
  const [b1, b2] = server.sent[0].bodies;
  assert.deepEqual([b1.device, b2.device], [1, 2]);
  assert.notDeepEqual(b1.body, b2.body, 'each device its own encryption');
  await settle([alice, bob1, bob2]);
  assert.deepEqual([texts(bob1, '@alice'), texts(bob2, '@alice')], [['to both'], ['to both']]);
  assert.deepEqual(Object.keys(alice.profile.contacts.bob.devices), ['1', '2']);
  // Both answer; alice reads each in its device's session, and writes to both again.
  await bob1.sendText('@alice', 'from one');
  await bob2.sendText('@alice', 'from two');
  await settle([alice, bob1, bob2]);
  assert.deepEqual(texts(alice, '@bob'), ['to both', 'from one', 'from two']);
  await alice.sendText('@bob', 'again');
  await settle([alice, bob1, bob2]);
  assert.deepEqual(server.sent.at(-1).bodies.map((b) => b.body[0]), [0x02, 0x02], 'ratchet messages in both sessions');
  assert.deepEqual([texts(bob1, '@alice').at(-1), texts(bob2, '@alice').at(-1)], ['again', 'again']);
});

test('a device whose prekey is signed for another device, or v1 (with two devices or one), is refused and nothing is sent', async () => {
  for (const forgery of ['another device', 'v1', 'v1, one device']) {
    const server = new FakeServer();
    const alice = await newClient(server, 'alice', 1);
    const bob1 = await newClient(server, 'bob', 1);
    const bob2 = forgery === 'v1, one device' ? null : await linkedClient(server, bob1);
    const device = bob2 ? 2 : 1;
    const target = server.accounts.get('bob').devices.get(device);
    if (forgery === 'another device') {
      // The server hands out device 1's prekey (signed for device 1) as device 2's.
      target.spk = { ...server.accounts.get('bob').devices.get(1).spk };
    } else {
      // The device's prekey with a valid v1 signature by bob's identity (a client from before
      // devices): PQXDH takes only v2, even for a contact's one device (no classical fallback).
      target.spk = { ...target.spk, signature: bob1.identity().sign(signedPrekeyMessage(target.spk.public)) };
    }
    server.log.length = 0;
    await assert.rejects(alice.sendText('@bob', 'hello'), new RegExp(`cannot start a session with bob's device ${device} \\(BadPrekeySignature\\): its published keys are not signed by bob's identity for it`), forgery);
    assert.ok(!server.log.some(([, t]) => t === 'SendToDevices' || t === 'SendSynced'), `${forgery}: nothing sent`);
    assert.deepEqual(alice.messages('@bob'), [], `${forgery}: nothing recorded`);
    await settle([alice, bob1, ...(bob2 ? [bob2] : [])]);
    assert.deepEqual([texts(bob1, '@alice'), bob2 ? texts(bob2, '@alice') : []], [[], []]);
  }
});

test('STALE_DEVICES with a longer list: a session with the new device, and the text sent once more to both', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice', 1);
  const bob1 = await newClient(server, 'bob', 1);
  await alice.sendText('@bob', 'one');
  await settle([alice, bob1]);
  // Bob links a second device while alice's connection holds the list it checked ([1]).
  const bob2 = await linkedClient(server, bob1);
  server.log.length = 0;
  await alice.sendText('@bob', 'two');
  assert.deepEqual(sentBy(server, 'alice'), ['SendSynced', 'FetchDevices', 'FetchDevices', 'FetchKemBundle', 'SendSynced']);
  assert.deepEqual(server.sent.at(-1).bodies.map((b) => [b.device, b.body[0]]), [[1, 0x03], [2, 0x03]]);
  assert.deepEqual(alice.devicesChecked.get('bob'), [1, 2]);
  await settle([alice, bob1, bob2]);
  assert.deepEqual([texts(bob1, '@alice'), texts(bob2, '@alice')], [['one', 'two'], ['two']]);
});

test('a session from before device ids is used for a single-device contact and moved to that device, on both sides', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.sendText('@bob', 'one');
  await settle([alice, bob]);
  await bob.sendText('@alice', 'two');
  await settle([alice, bob]);
  // Both keystores as written before devices: one session per contact, no device slots.
  for (const [c, peer] of [[alice, 'bob'], [bob, 'alice']]) {
    const k = c.profile.contacts[peer];
    k.session = k.devices[1].session;
    k.previous_session = k.devices[1].previous_session;
    delete k.devices;
  }
  server.log.length = 0;
  await alice.sendText('@bob', 'three');
  assert.deepEqual(sentBy(server, 'alice'), ['SendSynced'], 'the held session: no new bundle');
  assert.equal(server.last.body[0], 0x02, 'a ratchet message in the held session');
  const a = alice.profile.contacts.bob;
  assert.equal(a.session, null, 'moved out of the legacy slot');
  assert.ok(a.devices[1].session, 'into device 1');
  await settle([alice, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['one', 'two', 'three']);
  const b = bob.profile.contacts.alice;
  assert.equal(b.session, null, 'the receiver moved it too');
  assert.ok(b.devices[1].session);
  await bob.sendText('@alice', 'four');
  await settle([alice, bob]);
  assert.equal(server.last.body[0], 0x02);
  assert.deepEqual(texts(alice, '@bob').at(-1), 'four');
});

test('a session from before device ids is not used for a contact with two devices', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice', 1);
  const bob1 = await newClient(server, 'bob', 1);
  await alice.sendText('@bob', 'one');
  await settle([alice, bob1]);
  const k = alice.profile.contacts.bob;
  k.session = k.devices[1].session;
  delete k.devices;
  alice.devicesChecked.clear();
  const bob2 = await linkedClient(server, bob1);
  server.log.length = 0;
  await alice.sendText('@bob', 'two');
  assert.deepEqual(sentBy(server, 'alice'), ['FetchDevices', 'FetchDevices', 'FetchKemBundle', 'FetchKemBundle', 'SendSynced']);
  assert.notEqual(alice.profile.contacts.bob.session, null, 'kept: it may still decrypt what comes');
  await settle([alice, bob1, bob2]);
  assert.deepEqual([texts(bob1, '@alice'), texts(bob2, '@alice')], [['one', 'two'], ['two']]);
});

test('a Deliver from device 2 is read in device 2\'s session; an unreadable one drops only its device\'s sessions; a reset in a working session keeps it', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice', 1);
  const bob1 = await newClient(server, 'bob', 1);
  const bob2 = await linkedClient(server, bob1);
  await alice.sendText('@bob', 'hi both');
  await settle([alice, bob1, bob2]);
  await bob1.sendText('@alice', 'from one');
  await settle([alice, bob1, bob2]);
  const one = alice.profile.contacts.bob.devices[1].session;
  await bob2.sendText('@alice', 'from two');
  const fromTwo = server.last;
  assert.deepEqual([fromTwo.device, fromTwo.body[0]], [2, 0x02], 'a ratchet message from device 2');
  await settle([alice, bob1, bob2]);
  assert.deepEqual(texts(alice, '@bob'), ['hi both', 'from one', 'from two']);
  assert.equal(alice.profile.contacts.bob.devices[1].session, one, 'device 1\'s session untouched');

  // The same bytes said to come from device 1: not readable in device 1's session. Healing
  // drops device 1's sessions only; the reset goes to both of bob's devices.
  const two = alice.profile.contacts.bob.devices[2].session;
  server.log.length = 0;
  alice.handlePush({ ...fromTwo, server_id: 999n, device: 1 });
  await settle([alice, bob1, bob2]);
  assert.equal(alice.messages('@bob').at(-1).state, 'undecryptable');
  assert.ok(alice.profile.contacts.bob.devices[2]?.session, 'device 2\'s sessions kept');
  assert.notEqual(alice.profile.contacts.bob.devices[2].session, two, 'and used for the reset');
  assert.deepEqual(server.sent.at(-1).bodies.map((b) => [b.device, b.body[0]]), [[1, 0x03], [2, 0x02]], 'a new session with device 1 only');
  // Device 2 gets the reset in its working session: meant for device 1, it drops nothing there.
  assert.ok(bob2.profile.contacts.alice.devices[1].session, 'bob\'s device 2 kept its session');
  await bob2.sendText('@alice', 'still two');
  assert.equal(server.last.body[0], 0x02, 'device 2 still writes in its session');
  await settle([alice, bob1, bob2]);
  assert.equal(texts(alice, '@bob').at(-1), 'still two');
  assert.ok(bob1.notices.some((n) => /could not decrypt a message from you/.test(n)));
});

test('a keystore from before devices learns its device id and publishes a prekey signed for it, once', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const p = alice.profile;
  delete p.device_id;
  delete p.spk_device;
  const old = new Client(alice.conn, p, null);
  old.loggedIn = true;
  server.log.length = 0;
  await old.ensureDevice();
  assert.deepEqual(sentBy(server, 'alice'), ['ListDevices', 'PublishSignedPrekey']);
  assert.equal(p.device_id, 1);
  const published = server.accounts.get('alice').devices.get(1).spk;
  assert.equal(published.id, p.spks[0].id);
  assert.ok(verifyDevicePrekey(published, old.identity().public().signing, 1), 'signed v2 for device 1');
  assert.equal(p.spks.length, 2, 'the v1 one kept for first messages in flight');
  server.log.length = 0;
  await old.ensureDevice();
  assert.deepEqual(server.log, [], 'nothing more once it is known');
  // Registering makes device 1's prekey v2 from the start.
  const fresh = newProfileForTests('erin', 1);
  const id = new IdentityKeyPair(fromHex(fresh.identity.sig), fromHex(fresh.identity.dh));
  const spk = SignedPrekeyPair.fromSecretKey(fresh.spks[0].id, fromHex(fresh.spks[0].secret), id);
  assert.ok(verifyDevicePrekey({ public: spk.publicKey, signature: fromHex(fresh.spks[0].signature) }, id.public().signing, 1));
});

test('a browser holding no keys starts the account over only if the user confirms; declining publishes nothing and logs out', async () => {
  const server = new FakeServer();
  const dora = new Client(server.conn('dora'), newProfileForTests('dora'), null);
  dora.newDevice = true;
  let asked = 0;
  await assert.rejects(dora.submitCode(' 123456 ', async () => { asked++; return false; }), { name: 'StartOverDeclinedError', message: /Nothing changed/ });
  assert.equal(asked, 1, 'asked once the code was accepted');
  assert.deepEqual(server.log, [['dora', 'TotpCode'], ['dora', 'Logout']]);
  assert.equal(dora.profile.token, null);
  assert.equal(dora.loggedIn, false);
  // Without a way to ask, it never starts over.
  const eve = new Client(server.conn('eve'), newProfileForTests('eve'), null);
  eve.newDevice = true;
  server.log.length = 0;
  await assert.rejects(eve.submitCode('123456'), { name: 'StartOverDeclinedError' });
  assert.ok(!server.log.some(([, t]) => t === 'PublishIdentity'));
});

test('texts written while offline wait in the outbox and go, in order and once, when the connection returns', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.sendText('@bob', 'online first');
  await settle([alice, bob]);
  alice.conn.isOpen = false;
  const w1 = await alice.sendText('@bob', 'offline one');
  const w2 = await alice.sendText('@bob', 'offline two');
  assert.deepEqual([w1.state, w2.state], ['waiting', 'waiting']);
  assert.deepEqual(alice.outbox().map((e) => e.text), ['offline one', 'offline two']);
  await settle([alice, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['online first']);
  alice.conn.isOpen = true;
  // A text written while the outbox drains goes after the older ones, by the same run.
  const flushing = alice.flushOutbox();
  const w3 = await alice.sendText('@bob', 'while draining');
  await flushing;
  await settle([alice, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['online first', 'offline one', 'offline two', 'while draining']);
  assert.deepEqual([w1.state, w2.state, w3.state], ['delivered', 'delivered', 'delivered'], 'sent, and bob\'s receipts came');
  assert.equal(alice.outbox().length, 0);
});

test('a text that cannot be sent is refused before it is recorded', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  await newClient(server, 'bob');
  await assert.rejects(alice.sendText('@bob', 'x'.repeat(MAX_TEXT_BYTES + 1)), /too long/);
  await assert.rejects(alice.sendText('#gone', 'hello'), /no longer a member of #gone/);
  assert.equal(alice.profile.history.length, 0);
});

test('room names people type become names the server accepts', () => {
  assert.equal(roomNameFrom('Team Room'), 'team-room');
  assert.equal(roomNameFrom('  #Équipe  Café! '), 'equipe-cafe');
  assert.equal(roomNameFrom('ops_2026'), 'ops_2026');
  assert.throws(() => roomNameFrom('!!!'), /at least one letter/);
  assert.throws(() => roomNameFrom('a'.repeat(33)), /at most 32/);
});

test('usernames fold as the protocol folds them (ASCII only), never by Unicode lower-casing', () => {
  assert.equal(usernameFrom(' @Bob_2 '), 'bob_2');
  assert.equal(usernameFrom('ALICE'), 'alice');
  // "\u212Aelvin".toLowerCase() is "kelvin"; proto-core refuses it, and so must we.
  assert.throws(() => usernameFrom('\u212Aelvin'), { name: 'NameError' });
  assert.throws(() => usernameFrom('İpek'), { name: 'NameError' });
  assert.throws(() => usernameFrom('ab'), { name: 'NameError' });
});

test('an Invited push is an invitation, not a membership; decline drops it; a stale one is dropped on accept', async () => {
  const server = new FakeServer();
  const bob = await newClient(server, 'bob');
  server.log.length = 0;
  const base = bob.conn.request;
  bob.conn.request = async (msg) => {
    if (msg.type === 'DeclineInvite') {
      server.log.push(['bob', msg.type]);
      return { type: 'Ok' };
    }
    if (msg.type === 'AcceptInvite') {
      server.log.push(['bob', msg.type]);
      throw new ServerError(ErrorCode.NOT_FOUND, 'no such invitation');
    }
    return base(msg);
  };
  const heard = [];
  bob.addEventListener('invited', (e) => heard.push(e.detail));
  bob.handlePush({ type: 'RoomChanged', room: 'team', username: 'alice', change: 'Invited' });
  bob.handlePush({ type: 'RoomChanged', room: 'ops', username: 'carol', change: 'Invited' });
  bob.handlePush({ type: 'RoomChanged', room: 'team', username: 'alice', change: 'Invited' });
  await settle([bob]);
  assert.deepEqual(bob.pendingInvitations(), [{ room: 'ops', from: 'carol' }, { room: 'team', from: 'alice' }]);
  assert.deepEqual(heard, [{ room: 'team', from: 'alice' }, { room: 'ops', from: 'carol' }], 'one event per new invitation');
  // Nothing of the room: no member list asked for, no room state, no conversation.
  assert.deepEqual(server.log, []);
  assert.deepEqual(Object.keys(bob.profile.rooms), []);
  assert.deepEqual(bob.conversations(), []);
  await bob.declineInvite('ops');
  assert.deepEqual(bob.pendingInvitations(), [{ room: 'team', from: 'alice' }]);
  await assert.rejects(bob.acceptInvite('team'), /no longer open/);
  assert.deepEqual(bob.pendingInvitations(), []);
  assert.deepEqual(server.log, [['bob', 'DeclineInvite'], ['bob', 'AcceptInvite']]);
  await assert.rejects(bob.acceptInvite('Not A Room'), { name: 'NameError' });
});

test('room members are contacts, not chats; a chat opened by hand is listed before its first message', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  await newClient(server, 'bob');
  await newClient(server, 'carol');
  await alice.serial(() => alice.conn.request({ type: 'FetchBundle', username: 'bob' }).then((r) => alice.observeIdentity('bob', { signing: r.bundle.identity_sig, dh: r.bundle.identity_dh })));
  assert.ok(alice.profile.contacts.bob);
  assert.deepEqual(alice.conversations().map((c) => c.conv), []);
  await alice.startConversation('carol');
  assert.deepEqual(alice.conversations().map((c) => c.conv), ['@carol']);
});

test('direct deliveries that reach a browser replacing the identity before it is published are ignored, not shown or acknowledged', async () => {
  const server = new FakeServer();
  const dora = await newClient(server, 'dora');
  dora.replacingIdentity = true;
  server.log.length = 0;
  const sealedForOld = { type: 'Deliver', server_id: 900n, from: 'bob', room: null, sent_at: 1764000000n, body: new Uint8Array([2, 1, 2, 3]), device: 1 };
  dora.handlePush(sealedForOld);
  await settle([dora]);
  assert.deepEqual(dora.messages('@bob'), []);
  assert.deepEqual(server.log, [], 'nothing answered or acknowledged');
  // Once the new identity is published, deliveries are handled as usual.
  dora.replacingIdentity = false;
  dora.handlePush({ ...sealedForOld, server_id: 901n });
  await settle([dora]);
  assert.equal(dora.messages('@bob').length, 1);
  assert.match(dora.messages('@bob')[0].text, /could not decrypt/);
});

test('a browser names itself after the browser and the system', () => {
  assert.equal(browserDeviceName('Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'), 'Firefox on Linux');
  assert.equal(browserDeviceName('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36'), 'Chrome on Linux');
  assert.equal(browserDeviceName('Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15'), 'Safari on macOS');
  assert.equal(browserDeviceName('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0'), 'Edge on Windows');
  assert.equal(browserDeviceName(''), 'A browser');
});

test('revoking another device: the server drops it, senders stop encrypting to it (STALE_DEVICES, one body); this browser cannot revoke itself', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice', 1);
  const carol = await newClient(server, 'carol', 1);
  const phone = await linkedClient(server, carol);
  await alice.serial(() => sendContentTo(alice, 'carol', { type: 'Text', id: 1n, sent_at: 1n, text: 'both' }));
  assert.deepEqual(server.sent.at(-1).bodies.map((b) => b.device), [1, 2]);
  await assert.rejects(carol.revokeDevice(carol.profile.device_id), /log out instead/);
  assert.ok(!server.log.some(([u, t]) => u === 'carol' && t === 'RevokeDevice'), 'nothing sent for ourselves');
  await carol.revokeDevice(phone.profile.device_id);
  assert.deepEqual(server.devices('carol'), [1]);
  await alice.serial(() => sendContentTo(alice, 'carol', { type: 'Text', id: 2n, sent_at: 2n, text: 'one' }));
  assert.deepEqual(server.sent.at(-1).bodies.map((b) => b.device), [1]);
  assert.deepEqual(alice.profile.contacts.carol.devices[2], undefined, 'the revoked device\'s session is dropped');
});

/** An account's device `first` sends the account to a new device linking itself over the stand-in server. */
async function link(server, first, { mangle } = {}) {
  const linking = await DeviceLinking.startOn(server.conn(first.profile.username), first.profile.username, 'the password');
  linking.persist = false;
  const text = await linking.submitCode('123456');
  assert.match(text, /^([A-Z2-7]{4}-){19}[A-Z2-7]{3}$/);
  assert.equal(await linking.fetch(), null, 'nothing yet');
  if (mangle) {
    const code = parseLinkCode(text);
    server.links.set(`${first.profile.username}:${toHex(code.linkId())}`, sealLink(code, new TextEncoder().encode(JSON.stringify(mangle(JSON.parse(new TextDecoder().decode(linkStateBytes(first.profile))))))));
  } else {
    // Typed by hand: lower case, spaces for dashes.
    // Our own account (held for sessions with our other devices) is no contact.
    const contacts = Object.keys(first.profile.contacts).filter((name) => name !== first.profile.username).length;
    assert.deepEqual(await first.linkDevice(text.toLowerCase().replace(/-/g, ' ')), { contacts });
  }
  const ticks = [];
  const message = await linking.waitForMessage({ every: 1, onTick: (left) => ticks.push(left) });
  assert.ok(message);
  return { linking, message };
}

test('linking: a device sends the account to a new one, which keeps the identity and the contacts\' trust and gets messages too', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice', 1);
  const bob = await newClient(server, 'bob', 1);
  const carol = await newClient(server, 'carol', 1);
  await alice.sendText('@bob', 'hi bob');
  await alice.sendText('@carol', 'hi carol');
  await settle([alice, bob, carol]);
  alice.profile.contacts.bob.verified = true;
  alice.profile.contacts.carol.key_changed = true;
  const { linking, message } = await link(server, alice);
  const sent = server.log.filter(([u, t]) => u === 'alice' && t === 'SendLink');
  assert.equal(sent.length, 1);
  const phone = await linking.finish(message);
  assert.equal(phone.profile.username, 'alice');
  assert.deepEqual(phone.profile.identity, alice.profile.identity, 'the account identity');
  assert.equal(phone.profile.device_id, 2);
  assert.equal(phone.profile.spk_device, 2);
  assert.deepEqual(server.devices('alice'), [1, 2]);
  const published = server.accounts.get('alice').devices.get(2);
  assert.ok(verifyDevicePrekey(published.spk, alice.identity().public().signing, 2), 'signed prekey signed v2 for device 2');
  assert.equal(published.opks.length, 50);
  // Its KEM prekeys (PQXDH) too, signed for device 2, before the linking finished.
  assert.equal(phone.profile.kem_device, 2);
  assert.equal(published.kemOne.length, KEM_PREKEY_BATCH);
  for (const k of [published.kemLast, ...published.kemOne]) {
    assert.ok(verifyKemPrekey({ id: k.id, public: k.key, signature: k.signature }, alice.identity().public().signing, 2), 'KEM prekey signed for device 2');
  }
  assert.deepEqual(Object.keys(phone.profile.contacts).sort(), ['bob', 'carol']);
  for (const name of ['bob', 'carol']) {
    const { identity_sig, identity_dh, verified, key_changed } = alice.profile.contacts[name];
    assert.deepEqual((({ identity_sig, identity_dh, verified, key_changed }) => ({ identity_sig, identity_dh, verified, key_changed }))(phone.profile.contacts[name]), { identity_sig, identity_dh, verified, key_changed });
    assert.equal(phone.profile.contacts[name].session, null, 'no sessions come over');
  }
  assert.equal(phone.profile.contacts.bob.verified, true);
  assert.equal(phone.profile.contacts.carol.key_changed, true, 'still blocked until verified');
  assert.equal(phone.safetyNumber('bob'), alice.safetyNumber('bob'));
  assert.match(phone.notices.join('\n'), /device 2 of alice, with 2 contacts and their trust/);
  // bob writes to alice: both her devices read it.
  await bob.sendText('@alice', 'to both of you');
  await settle([alice, bob, phone]);
  assert.deepEqual(server.sent.at(-1).bodies.map((b) => b.device), [1, 2]);
  assert.ok(texts(alice, '@bob').includes('to both of you'));
  assert.deepEqual(texts(phone, '@bob'), ['to both of you']);
  // The phone writes to bob, whom it trusts as alice did; carol waits for a verification.
  await phone.sendText('@bob', 'from the phone');
  await settle([alice, bob, phone]);
  assert.ok(texts(bob, '@alice').includes('from the phone'));
  await assert.rejects(phone.sendText('@carol', 'blocked'), /safety number/);
  // The link message was handed out once.
  assert.equal(server.links.size, 0);
});

test('linking: a link state for another account, another version or a damaged identity sets nothing up', async () => {
  for (const [mangle, why] of [
    [(s) => ({ ...s, username: 'mallory' }), /for the account mallory, not alice; nothing was set up/],
    [(s) => ({ ...s, version: 2 }), /version 2/],
    [(s) => ({ ...s, identity: s.identity.slice(2) }), /identity key is damaged/],
  ]) {
    const server = new FakeServer();
    const alice = await newClient(server, 'alice', 1);
    const { linking, message } = await link(server, alice, { mangle });
    server.log.length = 0;
    await assert.rejects(linking.finish(message), why);
    assert.deepEqual(server.devices('alice'), [1], 'no device added');
    assert.deepEqual(server.log.map(([, t]) => t), ['Logout'], 'the linking session ends');
    assert.equal(linking.conn.isOpen, false);
  }
});

test('linking: a link state carrying another identity is refused when the prekey is published, and nothing is kept', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice', 1);
  const other = newProfileForTests('alice');
  const { linking, message } = await link(server, alice, { mangle: (s) => ({ ...s, identity: other.identity.sig + other.identity.dh }) });
  await assert.rejects(linking.finish(message), /Could not publish this browser’s keys \(the signed prekey's signature does not verify\); nothing was kept\. .*Device 2 stays unused/);
  assert.equal(server.accounts.get('alice').devices.get(2).spk, null, 'nothing published');
  assert.equal(linking.conn.isOpen, false);
});

test('linking: a wrong second factor can be followed by the right one; a code that is not a code sends nothing', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice', 1);
  const conn = server.conn('alice');
  const request = conn.request.bind(conn);
  let refuse = true;
  conn.request = async (msg) => {
    if (msg.type === 'TotpCode' && refuse) {
      refuse = false;
      throw new ServerError(ErrorCode.AUTH_FAILED, 'login failed');
    }
    return request(msg);
  };
  const linking = await DeviceLinking.startOn(conn, 'alice', 'the password');
  await assert.rejects(linking.submitCode('000000'), /login failed/);
  assert.deepEqual(server.log.filter(([, t]) => t === 'LoginDevice').length, 2, 'asked again with the password');
  assert.match(await linking.submitCode('123456'), /^[A-Z2-7-]+$/);
  server.log.length = 0;
  await assert.rejects(alice.linkDevice('sealroom devices add 1234'), /“1” is not in a link code/);
  await assert.rejects(alice.linkDevice('AAAA-BBBB'), /79 letters and digits; this one has 8/);
  assert.deepEqual(server.log, [], 'nothing sent');
  // Cancelled: the wait ends at once, the session is logged out.
  const abort = new AbortController();
  abort.abort();
  assert.equal(await linking.waitForMessage({ signal: abort.signal }), null);
  await linking.cancel();
  assert.ok(server.log.some(([, t]) => t === 'Logout'));
});

test('a login as a device the account no longer has says so, so the browser can be linked again', async () => {
  const server = new FakeServer();
  const carol = await newClient(server, 'carol', 1);
  const conn = server.conn('carol');
  conn.request = async (msg) => {
    if (msg.type === 'TotpCode') throw new ServerError(ErrorCode.NOT_FOUND, 'device 2 is not one of the account\'s devices');
    return { type: 'Ok' };
  };
  const profile = newProfileForTests('carol', 2);
  const browser = new Client(conn, profile, null);
  browser.password = 'pw';
  await assert.rejects(browser.submitCode('123456'), (e) => e instanceof DeviceRevokedError && /no longer one of carol’s devices.*Link it again/.test(e.message));
  assert.ok(carol);
});

// ---- several devices of one account: sent-message sync, receipts per device ----

/** The entries of `conv` as [text, state, outgoing]. */
const shown = (c, conv) => c.messages(conv).map((e) => [e.text, e.state, e.outgoing]);

test('a text sent from one of two linked devices shows on the other as sent from another of your devices', async () => {
  const server = new FakeServer();
  const alice1 = await newClient(server, 'alice', 1);
  const alice2 = await linkedClient(server, alice1);
  const bob = await newClient(server, 'bob', 1);
  server.log.length = 0;
  await alice1.sendText('@bob', 'hello from the laptop');
  // bob's device and alice's other device, in one request; the own list asked for once.
  assert.deepEqual(sentBy(server, 'alice'), ['FetchDevices', 'FetchDevices', 'FetchKemBundle', 'FetchKemBundle', 'SendSynced']);
  const synced = server.sent.at(-1);
  assert.deepEqual([synced.bodies.map((b) => b.device), synced.own.map((b) => b.device)], [[1], [2]]);
  await settle([alice1, alice2, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['hello from the laptop']);
  assert.deepEqual(shown(alice2, '@bob'), [['hello from the laptop', 'synced', true]]);
  const e = alice2.messages('@bob')[0];
  assert.equal(e.from, 'alice');
  assert.equal(e.id, alice1.messages('@bob')[0].id, 'the same text id');
  assert.equal(e.at, alice1.messages('@bob')[0].at);
  // Our own account holds the sessions with our devices: verified, never a chat, never linked on.
  assert.equal(alice2.profile.contacts.alice.verified, true);
  assert.ok(alice1.profile.contacts.alice.devices[2].session);
  assert.ok(!alice2.conversations().some((c) => c.conv === '@alice'), 'no conversation with ourselves');
  assert.deepEqual(Object.keys(JSON.parse(new TextDecoder().decode(linkStateBytes(alice1.profile))).contacts), ['bob']);
  // The transcript's acknowledgement tells nobody; bob's device's does.
  assert.deepEqual(server.receipts.map((r) => [r.to, r.device]), [['alice', 1]]);
  assert.equal(alice1.messages('@bob')[0].state, 'delivered');
  assert.equal(alice2.messages('@bob')[0].state, 'synced', 'the receipt is for the sending device\'s entry');

  // The same text id again (a retry that did reach the server): shown once.
  await alice1.serial(() => sendTextTo(alice1, 'bob', { type: 'Text', id: BigInt(e.id), sent_at: BigInt(e.at), text: e.text }));
  await settle([alice1, alice2, bob]);
  assert.equal(alice2.messages('@bob').length, 1);

  // The other way: alice2 writes to bob, in the session alice1 started (a ratchet message).
  server.log.length = 0;
  await alice2.sendText('@bob', 'and from the phone');
  assert.deepEqual(server.sent.at(-1).own.map((b) => [b.device, b.body[0]]), [[1, 0x02]]);
  await settle([alice1, alice2, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['hello from the laptop', 'and from the phone']);
  assert.deepEqual(shown(alice1, '@bob').at(-1), ['and from the phone', 'synced', true]);
  await alice1.sendText('@bob', 'third');
  assert.equal(server.sent.at(-1).own[0].body[0], 0x02, 'a ratchet message once alice2 answered');
  await settle([alice1, alice2, bob]);
  assert.deepEqual(shown(alice2, '@bob').at(-1), ['third', 'synced', true]);
  // Still no text to ourselves.
  await assert.rejects(alice1.serial(() => sendTextTo(alice1, 'alice', { type: 'Text', id: 9n, sent_at: 9n, text: 'me' })), /that is you/);
  assert.deepEqual([alice1.messages('@alice'), alice2.messages('@alice')], [[], []]);
});

test('STALE_DEVICES on our own list: both lists asked again, the new device gets its transcript; no change at all gives up', async () => {
  const server = new FakeServer();
  const alice1 = await newClient(server, 'alice', 1);
  const bob = await newClient(server, 'bob', 1);
  await alice1.sendText('@bob', 'one');
  await settle([alice1, bob]);
  assert.deepEqual(server.sent.at(-1).own, []);
  // Alice links a device while this connection holds the own list it checked ([1]).
  const alice2 = await linkedClient(server, alice1);
  server.log.length = 0;
  await alice1.sendText('@bob', 'two');
  assert.deepEqual(sentBy(server, 'alice'), ['SendSynced', 'FetchDevices', 'FetchDevices', 'FetchKemBundle', 'SendSynced']);
  assert.deepEqual(alice1.devicesChecked.get('alice'), [1, 2]);
  assert.deepEqual(server.sent.at(-1).own.map((b) => b.device), [2]);
  await settle([alice1, alice2, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['one', 'two']);
  assert.deepEqual(shown(alice2, '@bob'), [['two', 'synced', true]]);

  // A server refusing the own list it gives again: one more question each, then nothing.
  server.staleOwn = 5;
  server.log.length = 0;
  await assert.rejects(alice1.sendText('@bob', 'three'), /refuses the devices it lists for bob \(STALE_DEVICES\); nothing was sent/);
  assert.deepEqual(sentBy(server, 'alice'), ['SendSynced', 'FetchDevices', 'FetchDevices']);
  server.staleOwn = 0;
  await settle([alice1, alice2, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['one', 'two']);

  // The server lists another identity for our own account: this device is no longer the
  // account's. Nothing is encrypted to anyone, nothing is sent.
  const session = alice1.profile.contacts.bob.devices[1].session;
  server.accounts.get('alice').identity = IdentityKeyPair.generate().public();
  alice1.devicesChecked.clear();
  server.log.length = 0;
  await assert.rejects(alice1.sendText('@bob', 'four'), /the server lists another identity for your own account: it was started over on another device, and this device is no longer part of it/);
  assert.ok(!server.log.some(([, t]) => t === 'SendSynced' || t === 'SendToDevices'), 'nothing sent');
  assert.equal(alice1.profile.contacts.bob.devices[1].session, session, 'nothing encrypted for bob either');
  assert.equal(alice1.profile.contacts.alice.key_changed, false);
});

test('a first message "from ourselves" with another identity is refused and installs nothing; a transcript from a contact is refused', async () => {
  const server = new FakeServer();
  const alice1 = await newClient(server, 'alice', 1);
  const alice2 = await linkedClient(server, alice1);
  const mallory = await newClient(server, 'mallory', 1);
  const bob = await newClient(server, 'bob', 1);
  // Mallory starts a session with alice's device 2 (X3DH with her own identity) and seals a
  // transcript in it; the server labels it as from alice's device 1.
  const { session } = await mallory.serial(() => sendingSession(mallory, 'alice', 2, false));
  const opk = session.pendingPrekeyHeader.one_time_prekey_id;
  assert.ok(alice2.profile.opks[opk], 'a one-time prekey of alice2\'s');
  const plain = encodeContent({ type: 'Sent', to: 'bob', id: 5n, sent_at: 1764000000n, text: 'I am alice' });
  const body = emitEnvelope(session.pendingPrekeyHeader, session.encrypt(plain));
  alice2.handlePush({ type: 'Deliver', server_id: 900n, from: 'alice', room: null, sent_at: 1764000000n, body, device: 1 });
  await settle([alice1, alice2]);
  assert.deepEqual(alice2.messages('@bob'), [], 'no transcript shown');
  const last = alice2.messages('@alice').at(-1);
  assert.equal(last.state, 'undecryptable');
  assert.match(last.text, /not from your identity/);
  assert.equal(alice2.profile.contacts.alice?.devices?.[1], undefined, 'no session installed');
  assert.ok(alice2.profile.opks[opk], 'the one-time prekey is not used up');
  assert.deepEqual(alice2.resets, [], 'no reset owed');

  // Bob (a contact, in a session of his own) sends a transcript: unreadable, nothing in @carol.
  await bob.serial(() => sendContentTo(bob, 'alice', { type: 'Sent', to: 'carol', id: 6n, sent_at: 1764000000n, text: 'you said this' }));
  await settle([alice1, alice2, bob]);
  for (const a of [alice1, alice2]) {
    assert.deepEqual(a.messages('@carol'), []);
    const e = a.messages('@bob').at(-1);
    assert.equal(e.state, 'undecryptable');
    assert.match(e.text, /a sent transcript may only come from your own devices/);
  }

  // Between our own devices: a text is not something they send each other; a transcript to
  // ourselves or to a name that is no username is dropped; a reset is a notice (no room resync).
  await alice1.serial(() => sendContentTo(alice1, 'alice', { type: 'Text', id: 7n, sent_at: 1764000000n, text: 'psst' }));
  await settle([alice1, alice2]);
  assert.match(alice2.messages('@alice').at(-1).text, /your own devices do not send each other this/);
  for (const to of ['alice', 'Bob', 'b']) {
    await alice1.serial(() => sendContentTo(alice1, 'alice', { type: 'Sent', to, id: 8n, sent_at: 1764000000n, text: 'odd' }));
  }
  await settle([alice1, alice2]);
  assert.ok(!alice2.profile.history.some((x) => x.text === 'odd'), 'dropped');
  alice2.profile.rooms.team = { state: null, members: ['alice', 'bob'], admin: 'alice', key_sent: { alice: 0 } };
  await alice1.serial(() => sendContentTo(alice1, 'alice', { type: 'SessionReset' }));
  await settle([alice1, alice2]);
  assert.ok(alice2.notices.includes('your device 1 could not decrypt a message from this one; the session between them was reset'));
  assert.deepEqual(alice2.roomsToSync, []);
  assert.deepEqual(alice2.profile.rooms.team.key_sent, { alice: 0 }, 'no room resync');
  delete alice2.profile.rooms.team;
  // A reset to our own account goes to our other devices (SendToDevices to ourselves); with
  // none, nothing is sent.
  assert.deepEqual(server.sent.at(-1).bodies.map((b) => b.device), [2]);
  assert.equal(server.sent.at(-1).to, 'alice');
  const solo = await newClient(server, 'solo', 1);
  server.log.length = 0;
  assert.equal(await solo.serial(() => sendContentTo(solo, 'solo', { type: 'SessionReset' })), '0');
  assert.deepEqual(sentBy(server, 'solo'), ['FetchDevices']);
});

test('receipts count devices: delivered to 1 of 2, then 2 of 2; a repeat changes nothing; old entries still read', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice', 1);
  const bob1 = await newClient(server, 'bob', 1);
  const bob2 = await linkedClient(server, bob1);
  // bob's second device holds its acknowledgements back for now.
  const held = [];
  const send = bob2.conn.send;
  bob2.conn.send = (m) => (m.type === 'Ack' ? held.push(m) : send.call(bob2.conn, m));
  const entry = await alice.sendText('@bob', 'count me');
  assert.equal(entry.devices, 2);
  assert.deepEqual(entry.delivered_to, [], 'nothing counted yet');
  await settle([alice, bob1, bob2]);
  assert.deepEqual([entry.state, entry.delivered_to], ['delivered', [1]]);
  assert.equal(deliveredText(entry), 'delivered to 1 of 2 devices');
  // The same receipt again (kept and pushed again): nothing new.
  alice.handlePush({ type: 'Delivered', server_id: BigInt(entry.server_id), to: 'bob', device: 1 });
  await settle([alice]);
  assert.deepEqual(entry.delivered_to, [1]);
  assert.equal(deliveredText(entry), 'delivered to 1 of 2 devices');
  assert.equal(held.length, 1);
  send.call(bob2.conn, held[0]);
  await settle([alice, bob1, bob2]);
  assert.deepEqual(entry.delivered_to, [1, 2]);
  assert.equal(deliveredText(entry), 'delivered to 2 of 2 devices');
  // And once every device has it, nothing is waiting for a receipt.
  const before = alice.history.dirty.size;
  alice.handlePush({ type: 'Delivered', server_id: BigInt(entry.server_id), to: 'bob', device: 2 });
  await settle([alice]);
  assert.deepEqual(entry.delivered_to, [1, 2]);
  assert.equal(alice.history.dirty.size, before);
  // A contact with one device: plain "delivered".
  const carol = await newClient(server, 'carol', 1);
  const one = await alice.sendText('@carol', 'just one');
  await settle([alice, carol]);
  assert.deepEqual([one.devices, one.state, deliveredText(one)], [1, 'delivered', 'delivered']);

  // History written before receipts named devices: no counts, still "delivered"; an old `sent`
  // entry takes its receipt.
  const h = new History({ history: [
    { conv: '@bob', from: 'alice', text: 'old', at: 1, id: '1', server_id: '5', outgoing: true, state: 'delivered', unread: false },
    { conv: '@bob', from: 'alice', text: 'old sent', at: 2, id: '2', server_id: '6', outgoing: true, state: 'sent', unread: false },
  ] });
  const [old, oldSent] = h.profile.history;
  assert.equal(deliveredText(old), 'delivered');
  assert.equal(h.markDelivered('6', 0), true);
  assert.deepEqual([oldSent.state, deliveredText(oldSent)], ['delivered', 'delivered']);
  assert.equal(h.markDelivered('6', 3), false, 'no longer waiting');
  // An entry delivered to 1 of 2 when saved still waits for the other receipt after a reload.
  const again = new History({ history: [{ ...entry, state: 'delivered', delivered_to: [1], seq: 0 }] });
  assert.equal(again.markDelivered(entry.server_id, 2), true);
  assert.equal(deliveredText(again.profile.history[0]), 'delivered to 2 of 2 devices');
});


// ---- PQXDH (issue 17, PROTOCOL.md §4.8) ----

/** A KEM prekey's public form as the server hands it out. */
const kemWire = (k) => ({ id: k.id, key: k.public, signature: k.signature });

test('PQXDH, hostile server: a KemBundle without its KEM prekey, with one signed for another device, or from another identity is refused and nothing is sent', async () => {
  const mallory = IdentityKeyPair.generate();
  const cases = [
    ['the KEM prekey removed', () => null, 'MissingKemPrekey', /has published no post-quantum \(KEM\) prekey, so no session with post-quantum protection can start/],
    ['device 1\'s KEM prekey handed out as device 2\'s', (server) => server.accounts.get('bob').devices.get(1).kemLast, 'BadKemPrekeySignature', /not signed by bob's identity for it/],
    ['a KEM prekey from another identity', () => kemWire(KemPrekeyPair.generate(7).publicForDevice(2, mallory)), 'BadKemPrekeySignature', /not signed by bob's identity for it/],
    ['a KEM key one byte short', (server, kem) => ({ ...kem, key: kem.key.subarray(1) }), 'KemKeyLength', /not an ML-KEM-768 key/],
  ];
  for (const [what, tamper, kind, says] of cases) {
    const server = new FakeServer();
    const alice = await newClient(server, 'alice');
    const bob1 = await newClient(server, 'bob');
    const bob2 = await linkedClient(server, bob1);
    server.kemTamper = (user, device, kem) => (user === 'bob' && device === 2 ? tamper(server, kem) : kem);
    server.log.length = 0;
    const refused = await alice.sendText('@bob', 'hello').then(() => null, (e) => e);
    assert.ok(refused, `${what}: refused`);
    assert.equal(refused.name, 'SessionStartError', what);
    assert.equal(refused.kind, kind, what);
    assert.match(refused.message, new RegExp(`^cannot start a session with bob's device 2 \\(${kind}\\): `), what);
    assert.match(refused.message, says, what);
    assert.match(refused.message, /Nothing was sent\.$/, what);
    assert.deepEqual(sentBy(server, 'alice').filter((t) => t.startsWith('Send')), [], `${what}: nothing sent`);
    assert.ok(!sentBy(server, 'alice').includes('FetchDeviceBundle'), `${what}: no classical bundle asked for`);
    assert.deepEqual(alice.messages('@bob'), [], `${what}: nothing recorded`);
    await settle([alice, bob1, bob2]);
    assert.deepEqual([texts(bob1, '@alice'), texts(bob2, '@alice')], [[], []], what);
    // The same refusal for an entry the outbox sends later: marked failed with the reason.
    const entry = { conv: '@bob', from: 'alice', text: 'later', at: 1764000000, id: '77', server_id: null, outgoing: true, state: 'waiting', unread: false };
    alice.pushHistory(entry);
    await alice.flushOutbox();
    assert.equal(entry.state, 'failed', what);
    assert.match(entry.error, new RegExp(kind), what);
    assert.deepEqual(sentBy(server, 'alice').filter((t) => t.startsWith('Send')), [], `${what}: still nothing sent`);
  }
});

test('PQXDH on the wire: first messages are 0x03 bodies (106-byte prekey header, then the 1,092-byte KEM header) until the reply; a one-time KEM prekey is deleted once used, the last-resort one kept', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const held = server.accounts.get('bob').devices.get(1);
  assert.equal(held.kemOne.length, KEM_PREKEY_BATCH);
  const oneTime = held.kemOne[0].id;
  assert.ok(bob.profile.kem_one_time[oneTime], 'bob holds its seed');
  await alice.sendText('@bob', 'one');
  const first = server.last.body;
  const sentOne = alice.messages('@bob')[0];
  const plainLen = encodeContent({ type: 'Text', id: BigInt(sentOne.id), sent_at: BigInt(sentOne.at), text: 'one' }).length;
  assert.equal(first[0], 0x03);
  const header = prekeyHeaderFromBytes(first.subarray(1, 107));
  assert.equal(toHex(header.identity.signing), toHex(alice.identity().public().signing));
  const kem = kemHeaderFromBytes(first.subarray(107, 107 + 1092));
  assert.equal(kem.kem_id, oneTime, 'the one-time KEM prekey handed out');
  assert.equal(kem.ciphertext.length, 1088);
  assert.equal(first.length, 1 + 106 + 1092 + 40 + plainLen + 16, 'kind, prekey header, KEM header, ratchet header, the content, the tag');
  await alice.sendText('@bob', 'two');
  const second = server.last.body;
  assert.equal(second[0], 0x03, 'still a first message until bob replies');
  assert.equal(toHex(second.subarray(1, 1199)), toHex(first.subarray(1, 1199)), 'the same prekey and KEM headers');
  await settle([alice, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['one', 'two']);
  assert.equal(bob.profile.kem_one_time[oneTime], undefined, 'the one-time KEM prekey is gone once used');
  assert.equal(Object.keys(bob.profile.kem_one_time).length, KEM_PREKEY_BATCH - 1);
  await bob.sendText('@alice', 'three');
  assert.equal(server.last.body[0], 0x02, 'the responder writes ratchet messages');
  await settle([alice, bob]);
  await alice.sendText('@bob', 'four');
  assert.equal(server.last.body[0], 0x02, 'after the reply: no more headers');
  assert.equal(alice.profile.contacts.bob.devices[1].session.length, 2 * 5856, 'session state version 2');
  await settle([alice, bob]);
  assert.deepEqual(texts(bob, '@alice'), ['one', 'two', 'three', 'four']);

  // No one-time KEM prekey left on the server: the last-resort one, for everyone, kept.
  held.kemOne = [];
  const last = bob.profile.kem_last_resort[0].id;
  assert.equal(held.kemLast.id, last);
  for (const name of ['carol', 'dave']) {
    const c = await newClient(server, name);
    await c.sendText('@bob', `from ${name}`);
    assert.equal(kemHeaderFromBytes(server.last.body.subarray(107, 1199)).kem_id, last, name);
    await settle([c, bob]);
    assert.equal(texts(bob, `@${name}`).at(-1), `from ${name}`);
    assert.equal(bob.profile.kem_last_resort[0].id, last, `${name}: the last-resort KEM prekey stays`);
  }
  assert.equal(Object.keys(bob.profile.kem_one_time).length, KEM_PREKEY_BATCH - 1);
});

test('PQXDH: a first message naming a KEM prekey this device does not hold is shown as unreadable and the session reset; a tampered ciphertext does not decrypt', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const bob2 = await newClient(server, 'bob2');
  // The server keeps alice's first messages and hands bob altered copies instead.
  server.holdDeliveries = true;
  await alice.sendText('@bob', 'one');
  const toBob = server.last;
  await alice.sendText('@bob2', 'hi');
  const toBob2 = server.last;
  // Another KEM prekey id than the one encapsulated to.
  const other = toBob.body.slice();
  other[107 + 3] ^= 0x40;
  bob.handlePush({ ...toBob, body: other });
  await settle([alice, bob]);
  assert.equal(bob.messages('@alice').at(-1).state, 'undecryptable');
  assert.match(bob.messages('@alice').at(-1).text, /post-quantum \(KEM\) prekey this device does not have/);
  assert.equal(bob.profile.contacts.alice?.devices?.[1], undefined, 'no session installed');
  // A flipped ciphertext bit: ML-KEM's implicit rejection gives another SK; nothing stored.
  const tampered = toBob2.body.slice();
  tampered[107 + 4 + 500] ^= 0x01;
  const kemId = kemHeaderFromBytes(tampered.subarray(107, 1199)).kem_id;
  bob2.handlePush({ ...toBob2, body: tampered });
  await settle([alice, bob2]);
  assert.equal(bob2.messages('@alice').at(-1).state, 'undecryptable');
  assert.ok(bob2.profile.kem_one_time[kemId], 'the one-time KEM prekey stays: nothing decrypted');
  assert.equal(bob2.profile.contacts.alice?.devices?.[1], undefined, 'no session installed');
  // The genuine message still opens, and only then is the one-time KEM prekey used up.
  server.holdDeliveries = false;
  bob2.handlePush({ ...toBob2, server_id: 903n });
  await settle([alice, bob2]);
  assert.equal(texts(bob2, '@alice').at(-1), 'hi');
  assert.equal(bob2.profile.kem_one_time[kemId], undefined);
});

test('KEM prekeys are published once per device: a keystore from before PQXDH publishes them at its next login (again after a failed try), starting over publishes new ones for the new device', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  assert.equal(alice.profile.kem_device, 1);
  server.log.length = 0;
  await alice.ensureKemPrekeys();
  assert.deepEqual(server.log, [], 'already published: nothing to do');

  // A keystore from before PQXDH: no KEM prekeys, none on the server.
  const p = alice.profile;
  for (const k of ['kem_last_resort', 'kem_one_time', 'next_kem_id', 'kem_device']) delete p[k];
  const d = server.accounts.get('alice').devices.get(1);
  d.kemLast = null;
  d.kemOne = [];
  const old = new Client(alice.conn, p, null);
  old.loggedIn = true;
  d.client = old;
  // The first try fails on the way (the connection drops): tried again at the next login, with
  // new ids (the server may hold the first batch), the first batch's secrets kept.
  const request = old.conn.request;
  old.conn.request = async (msg) => {
    if (msg.type === 'UploadKemPrekeys') {
      old.conn.request = request;
      await request(msg);
      throw new Error('connection lost');
    }
    return request(msg);
  };
  await assert.rejects(old.ensureKemPrekeys(), /connection lost/);
  assert.equal(p.kem_device, null, 'not known to be published');
  const firstIds = d.kemOne.map((k) => k.id);
  await old.ensureKemPrekeys();
  assert.equal(p.kem_device, 1);
  assert.equal(d.kemOne.length, 2 * KEM_PREKEY_BATCH);
  assert.ok(firstIds.every((id) => p.kem_one_time[id]), 'the secrets of the first batch are kept');
  assert.deepEqual(p.kem_last_resort.map((k) => k.id), [d.kemLast.id, p.kem_last_resort[1].id], 'the previous last-resort one is kept too');
  server.log.length = 0;
  await old.ensureKemPrekeys();
  assert.deepEqual(server.log, []);
  const bob = await newClient(server, 'bob');
  await bob.sendText('@alice', 'to the new keys');
  await settle([bob, old]);
  assert.deepEqual(texts(old, '@bob'), ['to the new keys']);

  // Starting over (a new identity on a new device): new KEM prekeys for it, under the new identity.
  const fresh = new Client(server.conn('alice'), newProfileForTests('alice'), null);
  fresh.loggedIn = true;
  server.connect(fresh);
  await fresh.publishNewDevice();
  const two = server.accounts.get('alice').devices.get(2);
  assert.equal(fresh.profile.kem_device, 2);
  assert.equal(two.kemOne.length, KEM_PREKEY_BATCH);
  for (const k of [two.kemLast, ...two.kemOne]) {
    assert.ok(verifyKemPrekey({ id: k.id, public: k.key, signature: k.signature }, fresh.identity().public().signing, 2));
  }
});

test('KemPrekeysLow: the device tops its one-time KEM prekeys up again; a server that holds as many as it keeps gets none, and their secrets go', async () => {
  const server = new FakeServer();
  const bob = await newClient(server, 'bob');
  const d = server.accounts.get('bob').devices.get(1);
  server.kemLow = 5;
  for (let i = 0; i < KEM_PREKEY_BATCH - 4; i++) server.kemBundle('bob', 1);
  assert.equal(d.kemOne.length, 4);
  await settle([bob]);
  assert.equal(d.kemOne.length, KEM_PREKEY_BATCH, 'topped up to the batch');
  for (const k of d.kemOne) {
    assert.ok(verifyKemPrekey({ id: k.id, public: k.key, signature: k.signature }, bob.identity().public().signing, 1));
    assert.ok(bob.profile.kem_one_time[k.id], 'its seed is kept');
  }
  assert.equal(new Set(d.kemOne.map((k) => k.id)).size, KEM_PREKEY_BATCH, 'ids unique');
  server.kemQuota = KEM_PREKEY_BATCH;
  const held = Object.keys(bob.profile.kem_one_time).length;
  bob.handlePush({ type: 'KemPrekeysLow', remaining: 0 });
  await settle([bob]);
  assert.equal(Object.keys(bob.profile.kem_one_time).length, held, 'no secret of a key nobody can use');
  assert.equal(d.kemOne.length, KEM_PREKEY_BATCH);
});

test('a session begun with X3DH by an older client (0x01 bodies) is still read and answered', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  // Alice's device runs an older client: it fetches bob's device bundle and sends X3DH.
  const bundle = server.bundle('bob', 1).bundle;
  const opkId = bundle.one_time_prekey.id;
  const s = Session.initiateForDevice(alice.identity(), {
    identity: { signing: bundle.identity_sig, dh: bundle.identity_dh },
    signed_prekey: { id: bundle.signed_prekey.id, public: bundle.signed_prekey.key, signature: bundle.signed_prekey.signature },
    one_time_prekey: { id: opkId, public: bundle.one_time_prekey.key },
  }, 1);
  const outgoing = [];
  server.accounts.get('alice').devices.get(1).client = { handlePush: (m) => outgoing.push(m) };
  const text = (t, id) => encodeContent({ type: 'Text', id, sent_at: 1764000000n, text: t });
  const body = emitEnvelope(s.pendingPrekeyHeader, s.encrypt(text('from an older client', 5n)));
  assert.equal(body[0], 0x01);
  bob.handlePush({ type: 'Deliver', server_id: 500n, from: 'alice', room: null, sent_at: 1764000000n, body, device: 1 });
  await settle([bob]);
  assert.deepEqual(texts(bob, '@alice'), ['from an older client']);
  assert.equal(bob.profile.opks[opkId], undefined, 'its one-time prekey is used up');
  await bob.sendText('@alice', 'hello old friend');
  await settle([bob]);
  const reply = outgoing.find((m) => m.type === 'Deliver');
  const env = parseEnvelope(reply.body);
  assert.equal(env.kind, 'Ratchet', 'answered in the X3DH session');
  assert.equal(decodeContent(s.decrypt(env.message)).text, 'hello old friend');
  const next = emitEnvelope(s.pendingPrekeyHeader, s.encrypt(text('and on', 6n)));
  assert.equal(next[0], 0x02);
  bob.handlePush({ type: 'Deliver', server_id: 501n, from: 'alice', room: null, sent_at: 1764000000n, body: next, device: 1 });
  await settle([bob]);
  assert.deepEqual(texts(bob, '@alice'), ['from an older client', 'hello old friend', 'and on']);
});

test('PQXDH: a forged first message naming a KEM prekey this device does not hold, beside a working session, is unreadable and breaks nothing', async () => {
  const server = new FakeServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.sendText('@bob', 'one');
  const first = server.last;
  await settle([alice, bob]);
  await bob.sendText('@alice', 'two');
  await settle([alice, bob]);
  const session = bob.profile.contacts.alice.devices[1].session;
  // The server makes a "first message" of its own: another base key, no one-time prekey, a
  // KEM prekey id bob never had, a ratchet message that does not open in the session.
  const body = first.body.slice();
  body[1 + 65] ^= 1;
  body.fill(0, 1 + 101, 1 + 106);
  body.set([0xde, 0xad, 0xbe, 0xef], 107);
  body.set([0, 0, 0, 5], 1199 + 36);
  bob.handlePush({ ...first, server_id: 950n, body });
  await settle([alice, bob]);
  const last = bob.messages('@alice').at(-1);
  assert.equal(last.state, 'undecryptable');
  assert.match(last.text, /post-quantum \(KEM\) prekey this device does not have/);
  assert.doesNotMatch(last.text, /session is being reset/);
  assert.equal(bob.profile.contacts.alice.devices[1].session, session, 'the working session is kept');
  assert.ok(!alice.notices.some((n) => /could not decrypt/.test(n)), 'no reset was asked');
  await alice.sendText('@bob', 'still here');
  await settle([alice, bob]);
  assert.equal(texts(bob, '@alice').at(-1), 'still here');
});

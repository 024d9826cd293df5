// A stand-in for sealroom-server in the room tests (not a test file itself): a key directory
// with devices, a one-to-one relay that delivers one copy per device, rooms with members and a
// signed-roster chain (PublishRoster checked and chained, CONFLICT, FetchRoster, RoomChanged
// pushes), room messages delivered to every device of every member but the sending device
// (PROTOCOL.md §6, SendToRoom), and device linking (SendLink, FetchLink, AddDevice). A test can
// turn it hostile: listing members nobody signed in, appending rosters that do not follow.
import { Client, ServerError, newProfileForTests } from '../../src/client.js';
import { ErrorCode } from '../../src/message.js';
import { equal, fromHex, toHex } from '../../src/bytes.js';
import { IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair, ed25519Verify, signedPrekeyMessage } from '../../src/keys.js';
import { verifyDevicePrekey } from '../../src/devices.js';
import { verifyKemPrekey } from '../../src/pqxdh.js';
import { roomIdForName } from '../../src/room.js';
import { RosterError, checkFirst, checkNext, parseRoster } from '../../src/roster.js';

export class RoomServer {
  constructor() {
    /** username → {identity, devices: Map<device id, {conn, spk, opks}>, next} */
    this.accounts = new Map();
    /** @type {Map<string, {members: string[], invited: Set<string>, chain: Uint8Array[]}>} */
    this.rooms = new Map();
    this.nextId = 1n;
    /** [who, type, detail] for every request */
    this.log = [];
    /** room messages relayed: {from, device, room, body, server_id} */
    this.roomBodies = [];
    /** room messages delivered: {to, device, from, from_device, room, server_id} */
    this.roomDeliveries = [];
    /** link messages waiting, by account and link id (hex) */
    this.links = new Map();
  }

  /**
   * A client joins: the same identity as the account's is another device of it (the next id);
   * a new username is device 1; a new identity under a known username starts the account over
   * on its next device (the others gone). The client learns its device id. Returns it.
   */
  connect(client) {
    const p = client.profile;
    const id = new IdentityKeyPair(fromHex(p.identity.sig), fromHex(p.identity.dh));
    const spk = SignedPrekeyPair.fromSecretKey(p.spks[0].id, fromHex(p.spks[0].secret), id).public();
    const opks = Object.entries(p.opks).map(([k, s]) => new OneTimePrekeyPair(Number(k), fromHex(s)).public());
    let a = this.accounts.get(p.username);
    if (!a) {
      a = { identity: id.public(), devices: new Map(), next: 1 };
      this.accounts.set(p.username, a);
    } else if (!equal(a.identity.signing, id.public().signing)) {
      a.identity = id.public();
      a.devices.clear();
    }
    const device = a.next++;
    a.devices.set(device, { conn: client.conn, spk, opks, kemLast: null, kemOne: [] });
    client.conn.device = device;
    p.device_id = device;
    return device;
  }

  /** The active device ids of `user`. */
  devices(user) {
    return [...(this.accounts.get(user)?.devices.keys() ?? [])];
  }

  /** Revokes `user`'s `device` (it gets nothing more). */
  revoke(user, device) {
    this.accounts.get(user).devices.delete(device);
  }

  /** Pushes to one device. */
  pushTo(user, device, msg) {
    const d = this.accounts.get(user)?.devices.get(device);
    if (d) setTimeout(() => d.conn.onPush(msg), 0);
  }

  /** Pushes to every device of `user`. */
  push(user, msg) {
    for (const device of this.devices(user)) this.pushTo(user, device, msg);
  }

  /** Tells every member but `except` (each of their devices) that something changed. */
  tell(room, username, change, except) {
    for (const m of this.rooms.get(room).members) if (m !== except) this.push(m, { type: 'RoomChanged', room, username, change });
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
      },
      close() {
        conn.isOpen = false;
      },
      async request(msg) {
        server.log.push([username, msg.type, msg.to ?? msg.username ?? msg.room]);
        return server.handle(username, conn, msg);
      },
    };
    return conn;
  }

  room(name, username) {
    const r = this.rooms.get(name);
    if (!r) throw new ServerError(ErrorCode.NOT_FOUND, 'no such room');
    if (username && !r.members.includes(username)) throw new ServerError(ErrorCode.FORBIDDEN, 'not a member');
    return r;
  }

  bundle(user, device) {
    const a = this.accounts.get(user);
    const d = a?.devices.get(device);
    if (!d || !d.spk) throw new ServerError(ErrorCode.NOT_FOUND, 'no such device');
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
   * `bodies` must name exactly `to`'s devices — for our own account, our other ones (never the
   * sending device) — each once, else STALE_DEVICES, as the server's `store_direct`.
   */
  checkCopies(from, device, to, bodies) {
    const named = bodies.map((b) => b.device).sort((x, y) => x - y);
    if (named.some((d, i) => d === named[i - 1])) throw new ServerError(ErrorCode.INVALID_INPUT, 'bodies: a device is named twice');
    const active = this.devices(to).filter((d) => to !== from || d !== device).sort((x, y) => x - y);
    if (named.length !== active.length || named.some((d, i) => d !== active[i])) {
      throw new ServerError(ErrorCode.STALE_DEVICES, 'the recipient\'s devices have changed');
    }
    if (active.length === 0 && to !== from) throw new ServerError(ErrorCode.STALE_DEVICES, 'the recipient has no device to write to');
  }

  /** Delivers a checked direct message, one copy per device, as from `from`'s `device`. */
  store(from, device, to, bodies) {
    if (bodies.length === 0) return 0n;
    const server_id = this.nextId++;
    for (const b of bodies) this.pushTo(to, b.device, { type: 'Deliver', server_id, from, room: null, sent_at: 1764000000n, body: b.body, device });
    return server_id;
  }

  handle(username, conn, msg) {
    const ok = { type: 'Ok' };
    const me = () => this.accounts.get(username).devices.get(conn.device);
    switch (msg.type) {
      case 'FetchBundle':
        if (!this.accounts.has(msg.username)) throw new ServerError(ErrorCode.NOT_FOUND, 'no such user');
        return this.bundle(msg.username, this.devices(msg.username)[0]);
      case 'FetchDeviceBundle':
        return this.bundle(msg.username, msg.device);
      case 'FetchKemBundle': {
        // As the server: a one-time KEM prekey (handed out once), else the last-resort one.
        const b = this.bundle(msg.username, msg.device);
        const d = this.accounts.get(msg.username).devices.get(msg.device);
        return { type: 'KemBundle', bundle: b.bundle, kem_prekey: d.kemOne.shift() ?? d.kemLast ?? null };
      }
      case 'UploadKemPrekeys': {
        // As the server: every signature for this device under the account's identity.
        const a = this.accounts.get(username);
        for (const k of [...(msg.last_resort ? [msg.last_resort] : []), ...msg.one_time]) {
          if (!verifyKemPrekey({ id: k.id, public: k.key, signature: k.signature }, a.identity.signing, conn.device)) {
            throw new ServerError(ErrorCode.INVALID_INPUT, 'a KEM prekey\'s signature does not verify');
          }
        }
        if (msg.last_resort) me().kemLast = msg.last_resort;
        me().kemOne.push(...msg.one_time);
        return ok;
      }
      case 'FetchDevices': {
        const a = this.accounts.get(msg.username);
        if (!a) throw new ServerError(ErrorCode.NOT_FOUND, 'no such user');
        return { type: 'Devices', username: msg.username, identity_sig: a.identity.signing, identity_dh: a.identity.dh, devices: this.devices(msg.username) };
      }
      case 'PublishSignedPrekey': {
        // As the server: signed by the account identity, for this device (v2) or v1.
        const a = this.accounts.get(username);
        const spk = { public: msg.prekey.key, signature: msg.prekey.signature };
        if (!verifyDevicePrekey(spk, a.identity.signing, conn.device) && !ed25519Verify(a.identity.signing, signedPrekeyMessage(spk.public), spk.signature)) {
          throw new ServerError(ErrorCode.INVALID_INPUT, 'the signed prekey\'s signature does not verify');
        }
        me().spk = { id: msg.prekey.id, public: msg.prekey.key, signature: msg.prekey.signature };
        return ok;
      }
      case 'UploadPrekeys':
        me().opks.push(...msg.prekeys.map((k) => ({ id: k.id, public: k.key })));
        return ok;
      case 'ListDevices':
        return { type: 'DeviceList', current: conn.device, devices: [] };
      // Linking (PROTOCOL.md §4.6): a session with no device until AddDevice.
      case 'LoginDevice':
        conn.device = msg.device ?? null;
        return { type: 'TotpRequired' };
      case 'TotpCode':
        return { type: 'Session', token: new Uint8Array(32).fill(7), expires_at: 1900000000n };
      case 'Logout':
        return ok;
      case 'SendLink':
        if (conn.device === null) throw new ServerError(ErrorCode.BAD_STATE, 'linking');
        this.links.set(`${username}:${toHex(msg.link_id)}`, msg.message);
        return ok;
      case 'FetchLink': {
        const key = `${username}:${toHex(msg.link_id)}`;
        const message = this.links.get(key);
        if (!message) throw new ServerError(ErrorCode.NOT_FOUND, 'no link message yet');
        this.links.delete(key);
        return { type: 'LinkMessage', message };
      }
      case 'AddDevice': {
        if (conn.device !== null) throw new ServerError(ErrorCode.BAD_STATE, 'already a device');
        const a = this.accounts.get(username);
        const device = a.next++;
        a.devices.set(device, { conn, spk: null, opks: [], kemLast: null, kemOne: [] });
        conn.device = device;
        return { type: 'DeviceAdded', device };
      }
      case 'SendToDevices': {
        this.checkCopies(username, conn.device, msg.to, msg.bodies);
        const server_id = this.store(username, conn.device, msg.to, msg.bodies);
        return { type: 'Accepted', client_id: msg.client_id, server_id };
      }
      case 'SendSynced': {
        if (msg.to === username) throw new ServerError(ErrorCode.INVALID_INPUT, 'SendSynced is for writing to someone else');
        this.checkCopies(username, conn.device, msg.to, msg.bodies);
        this.checkCopies(username, conn.device, username, msg.own);
        const server_id = this.store(username, conn.device, msg.to, msg.bodies);
        this.store(username, conn.device, username, msg.own);
        return { type: 'Accepted', client_id: msg.client_id, server_id };
      }
      case 'SendToRoom': {
        // As the server: every device of every member but the sending device, naming it.
        const r = this.room(msg.room, username);
        const server_id = this.nextId++;
        this.roomBodies.push({ from: username, device: conn.device, room: msg.room, body: msg.body, server_id });
        for (const m of r.members) {
          for (const d of this.devices(m)) {
            if (m === username && d === conn.device) continue;
            this.roomDeliveries.push({ to: m, device: d, from: username, from_device: conn.device, room: msg.room, server_id });
            this.pushTo(m, d, { type: 'Deliver', server_id, from: username, room: msg.room, sent_at: 1764000000n, body: msg.body, device: conn.device });
          }
        }
        return { type: 'Accepted', client_id: msg.client_id, server_id };
      }
      case 'CreateRoom':
        if (this.rooms.has(msg.room)) throw new ServerError(ErrorCode.ROOM_TAKEN, 'taken');
        this.rooms.set(msg.room, { members: [username], invited: new Set(), chain: [] });
        return ok;
      case 'ListRooms':
        return { type: 'Rooms', rooms: [...this.rooms].filter(([, r]) => r.members.includes(username)).map(([name]) => name) };
      case 'ListInvitations': {
        const waiting = [...this.rooms].filter(([, r]) => r.invited.has(username));
        return { type: 'Invitations', rooms: waiting.map(([name]) => name), from: waiting.map(([, r]) => r.members[0]) };
      }
      case 'Invite':
        this.room(msg.room, username).invited.add(msg.username);
        this.push(msg.username, { type: 'RoomChanged', room: msg.room, username, change: 'Invited' });
        return ok;
      case 'AcceptInvite': {
        const r = this.room(msg.room);
        if (!r.invited.delete(username)) throw new ServerError(ErrorCode.NOT_FOUND, 'no such invitation');
        r.members.push(username);
        this.tell(msg.room, username, 'Joined');
        return ok;
      }
      case 'ListMembers': {
        const r = this.room(msg.room, username);
        return { type: 'Members', room: msg.room, admin: r.members[0], members: [...r.members] };
      }
      case 'Leave':
        this.drop(msg.room, username, 'Left');
        return ok;
      case 'Remove':
        this.drop(msg.room, msg.username, 'Removed');
        return ok;
      case 'PublishRoster': {
        const r = this.room(msg.room, username);
        let next;
        try {
          next = parseRoster(msg.roster);
          if (!equal(next.roomId, roomIdForName(msg.room))) throw new RosterError('WrongRoom');
          if (r.chain.length === 0) checkFirst(next);
          else {
            const latest = parseRoster(r.chain.at(-1));
            if (next.version !== latest.version + 1n) throw new ServerError(ErrorCode.CONFLICT, 'not the next version');
            checkNext(latest, next);
          }
        } catch (e) {
          if (e instanceof RosterError) throw new ServerError(ErrorCode.INVALID_INPUT, e.kind);
          throw e;
        }
        r.chain.push(msg.roster);
        // As the real server: members of the previous roster that this one no longer lists
        // leave (a first roster has no previous one, and drops nobody).
        const previous = r.chain.length > 1 ? parseRoster(r.chain.at(-2)) : null;
        const listed = new Set(next.members.map((m) => m.username));
        for (const m of [...r.members]) {
          if (listed.has(m) || !previous?.members.some((p) => p.username === m)) continue;
          this.drop(msg.room, m, m === username ? 'Left' : 'Removed');
        }
        this.tell(msg.room, username, 'Roster', username);
        return ok;
      }
      case 'FetchRoster': {
        const r = this.room(msg.room, username);
        const bytes = r.chain[Number(msg.version)];
        if (!bytes) throw new ServerError(ErrorCode.NOT_FOUND, 'no such version');
        return { type: 'Roster', room: msg.room, roster: bytes };
      }
      default:
        throw new Error(`stand-in server: ${msg.type} not handled`);
    }
  }

  drop(room, user, change) {
    const r = this.room(room);
    if (!r.members.includes(user)) return;
    this.tell(room, user, change);
    r.members = r.members.filter((m) => m !== user);
  }

  /** Hostile: stores a roster with no check at all and tells everyone but `except`. */
  forceRoster(room, bytes, except) {
    this.rooms.get(room).chain.push(bytes);
    this.tell(room, 'server', 'Roster', except);
  }

  /** Sends to `to` made by `from` (SendToDevices, SendSynced), for tests. */
  sentTo(from, to) {
    return this.log.filter(([w, t, d]) => w === from && (t === 'SendToDevices' || t === 'SendSynced') && d === to).length;
  }
}

/**
 * A logged-in client of a new account (or, under a known name with new keys, one that starts
 * it over), known to the stand-in server: it learns its device id and publishes a signed prekey
 * signed for it, as a browser does after login.
 */
export async function newClient(server, username) {
  const c = new Client(server.conn(username), newProfileForTests(username), null);
  c.loggedIn = true;
  server.connect(c);
  await c.ensureDevice();
  await c.ensureKemPrekeys();
  return c;
}

/** Another device of `first`'s account, set up by hand (its identity, keys of its own). */
export async function linkedClient(server, first) {
  const profile = newProfileForTests(first.profile.username);
  profile.identity = { ...first.profile.identity };
  const c = new Client(server.conn(profile.username), profile, null);
  c.loggedIn = true;
  server.connect(c);
  await c.ensureDevice();
  await c.ensureKemPrekeys();
  return c;
}

/** Lets pushes land and every client's queue drain, a few rounds. */
export async function settle(clients, rounds = 12) {
  for (let i = 0; i < rounds; i++) {
    await new Promise((r) => setTimeout(r, 3));
    await Promise.all(clients.map((c) => c.queue));
  }
}

// Session and room state bytes in proto-core's layouts (PROTOCOL.md §4.3, room/state.rs):
// the sizes proto-core documents, and write → read → write gives the same bytes mid-conversation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concat, toHex } from '../../src/bytes.js';
import { IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair } from '../../src/keys.js';
import { signDevicePrekey } from '../../src/devices.js';
import { KemPrekeyPair, kemHeaderToBytes } from '../../src/pqxdh.js';
import { Session, StateError } from '../../src/ratchet.js';
import { Room, SenderKeyDistribution, roomIdForName } from '../../src/room.js';

const te = new TextEncoder();

test('session state: 5,856 bytes (version 2), stable through a round trip at every step', () => {
  assert.equal(Session.STATE_LEN, 5856);
  const alice = IdentityKeyPair.generate();
  const bob = IdentityKeyPair.generate();
  const spk = SignedPrekeyPair.generate(1, bob);
  const opk = OneTimePrekeyPair.generate(7);
  let a = Session.initiate(alice, { identity: bob.public(), signed_prekey: spk.public(), one_time_prekey: opk.public() });
  const header = a.pendingPrekeyHeader;
  let b = Session.respond(bob, spk, opk, header);
  const again = (s) => {
    const bytes = s.writeState();
    assert.equal(bytes.length, Session.STATE_LEN);
    const r = Session.readState(bytes);
    assert.equal(toHex(r.writeState()), toHex(bytes));
    return r;
  };
  const m1 = a.encrypt(te.encode('one'));
  const m2 = a.encrypt(te.encode('two'));
  a = again(a);
  assert.equal(new TextDecoder().decode(b.decrypt(m2)), 'two'); // m1 skipped: a stored key
  b = again(b);
  assert.equal(b.skipped.entries.length, 1);
  assert.equal(new TextDecoder().decode(b.decrypt(m1)), 'one');
  b = again(b);
  const r1 = b.encrypt(te.encode('reply'));
  b = again(b);
  assert.equal(new TextDecoder().decode(a.decrypt(r1)), 'reply');
  a = again(a);
  assert.equal(a.pendingPrekeyHeader, null);
  const bytes = a.writeState();
  assert.equal(bytes[0], 2);
  bytes[0] = 3;
  assert.throws(() => Session.readState(bytes), (e) => e instanceof StateError && e.kind === 'UnknownVersion');
  bytes[0] = 2;
  bytes[1] = 0x80;
  assert.throws(() => Session.readState(bytes), (e) => e.kind === 'Malformed');
  bytes[1] = 0;
  assert.throws(() => Session.readState(bytes.subarray(0, 100)), (e) => e.kind === 'Truncated');
});

test('room state: 7,839 bytes, stable through a round trip, and still decrypts', () => {
  assert.equal(Room.STATE_LEN, 7839);
  const id = roomIdForName('team');
  const a = IdentityKeyPair.generate().public().signing;
  const b = IdentityKeyPair.generate().public().signing;
  const ra = Room.create(id, a, 0);
  let rb = Room.create(id, b, 0);
  ra.addMember(b);
  rb.addMember(a);
  rb.handleDistribution(SenderKeyDistribution.fromBytes(ra.distribution().toBytes()), a);
  const m0 = ra.encrypt(te.encode('zero'));
  const m1 = ra.encrypt(te.encode('one'));
  assert.equal(new TextDecoder().decode(rb.decrypt(m1).plaintext), 'one');
  const bytes = rb.writeState();
  assert.equal(bytes.length, Room.STATE_LEN);
  rb = Room.readState(bytes);
  assert.equal(toHex(rb.writeState()), toHex(bytes));
  assert.equal(new TextDecoder().decode(rb.decrypt(m0).plaintext), 'zero');
  assert.throws(() => rb.decrypt(m0), (e) => e.kind === 'Replay');
});

test('a room at the last epoch refuses a removal and changes nothing; no epoch past 2^32 - 1', () => {
  const room = Room.create(roomIdForName('top'), new Uint8Array(32).fill(1), 0xffffffff);
  const bob = new Uint8Array(32).fill(2);
  room.addMember(bob);
  const before = toHex(room.distribution().toBytes());
  assert.throws(() => room.removeMember(bob), { name: 'MembershipError', kind: 'StaleEpoch' });
  assert.ok(room.isMember(bob));
  assert.equal(room.epoch, 0xffffffff);
  assert.equal(toHex(room.distribution().toBytes()), before);
  const low = Room.create(roomIdForName('low'), new Uint8Array(32).fill(1), 5);
  assert.throws(() => low.startEpoch(2 ** 32), { name: 'MembershipError' });
  assert.throws(() => low.startEpoch(6.5), { name: 'MembershipError' });
  assert.equal(low.epoch, 5);
});

test('removing every device of a member starts one new epoch and shuts each out; ids not tracked change nothing', () => {
  const id = roomIdForName('team');
  const [ours, phone, laptop] = [1, 2, 3].map((b) => new Uint8Array(32).fill(b));
  const room = Room.create(id, ours, 4);
  const devices = { phone: Room.create(id, phone, 4), laptop: Room.create(id, laptop, 4) };
  room.addMember(phone);
  room.addMember(laptop);
  for (const [name, d] of Object.entries(devices)) {
    d.addMember(ours);
    d.handleDistribution(SenderKeyDistribution.fromBytes(room.distribution().toBytes()), ours);
    room.handleDistribution(SenderKeyDistribution.fromBytes(d.distribution().toBytes()), name === 'phone' ? phone : laptop);
  }
  assert.equal(toHex(room.ownSender), toHex(ours));
  // Both read us before.
  const earlier = room.encrypt(te.encode('before'));
  for (const d of Object.values(devices)) assert.equal(new TextDecoder().decode(d.decrypt(earlier).plaintext), 'before');
  // Ids the room does not track: nothing changes, not even the epoch.
  const before = room.toState();
  assert.equal(room.removeMembers([new Uint8Array(32).fill(9)]), 0);
  assert.equal(room.toState(), before);
  assert.equal(room.removeMembers([phone, laptop, new Uint8Array(32).fill(9), phone]), 2);
  assert.equal(room.epoch, 5, 'one new epoch for both devices');
  assert.ok(!room.isMember(phone) && !room.isMember(laptop));
  // Neither device reads what we send next, and what they send is refused.
  const next = room.encrypt(te.encode('after'));
  for (const d of Object.values(devices)) {
    assert.throws(() => d.decrypt(next), (e) => e.kind === 'WrongEpoch');
    assert.throws(() => room.decrypt(d.encrypt(te.encode('hi'))), (e) => e.kind === 'UnknownSender');
  }
});

test('removing devices at the last epoch is refused and changes nothing', () => {
  const room = Room.create(roomIdForName('top'), new Uint8Array(32).fill(1), 0xffffffff);
  const phone = new Uint8Array(32).fill(2);
  room.addMember(phone);
  const before = room.toState();
  assert.throws(() => room.removeMembers([phone]), { name: 'MembershipError', kind: 'StaleEpoch' });
  assert.ok(room.isMember(phone));
  assert.equal(room.toState(), before);
  // Nothing tracked: nothing to refuse either.
  assert.equal(room.removeMembers([new Uint8Array(32).fill(9)]), 0);
});

/** A PQXDH session pair, alice the initiator (her pending headers set), bob's keys. */
function pqPair() {
  const alice = IdentityKeyPair.generate();
  const bob = IdentityKeyPair.generate();
  const spk = SignedPrekeyPair.generate(1, bob);
  spk.signature = signDevicePrekey(bob, 2, spk.publicKey);
  const kem = KemPrekeyPair.generate(9);
  const a = Session.initiatePqxdh(alice, { identity: bob.public(), signed_prekey: spk.public(), one_time_prekey: null }, 2, kem.publicForDevice(2, bob));
  return { a, bob, spk, kem };
}

/** Version 2 state bytes as version 1 wrote them: no KEM header field. @param {Uint8Array} v2 */
const asVersion1 = (v2) => {
  const v1 = concat(v2.subarray(0, 410), v2.subarray(410 + 1092));
  v1[0] = 1;
  return v1;
};

test('session state: the pending KEM header is kept until the first reply decrypts, through reloads', () => {
  const { a: a0, bob, spk, kem } = pqPair();
  const header = a0.pendingKemHeader;
  assert.ok(header);
  assert.equal(header.kem_id, 9);
  assert.equal(header.ciphertext.length, 1088);
  const bytes = a0.writeState();
  assert.equal(bytes[1] & 0x30, 0x30, 'prekey and KEM header bits');
  assert.equal(toHex(bytes.subarray(410, 1502)), toHex(kemHeaderToBytes(header)));
  let a = Session.readState(bytes);
  assert.equal(toHex(a.writeState()), toHex(bytes));
  const m1 = a.encrypt(te.encode('one'));
  a = Session.readState(a.writeState());
  assert.equal(toHex(kemHeaderToBytes(/** @type {any} */ (a.pendingKemHeader))), toHex(kemHeaderToBytes(header)), 'still sent with the second message');
  const b = Session.respondPqxdh(bob, spk, null, kem, /** @type {any} */ (a.pendingPrekeyHeader), header);
  assert.equal(new TextDecoder().decode(b.decrypt(m1)), 'one');
  assert.equal(new TextDecoder().decode(a.decrypt(b.encrypt(te.encode('reply')))), 'reply');
  assert.equal(a.pendingPrekeyHeader, null);
  assert.equal(a.pendingKemHeader, null);
  const after = a.writeState();
  assert.equal(after[1] & 0x30, 0, 'neither header bit once a reply decrypted');
  assert.equal(toHex(after.subarray(410, 1502)), '00'.repeat(1092));
});

test('session state: version 1 (saved before PQXDH) still loads and goes on; bad KEM bits are refused', () => {
  // An X3DH session saved by an earlier release, mid-conversation.
  const alice = IdentityKeyPair.generate();
  const bob = IdentityKeyPair.generate();
  const spk = SignedPrekeyPair.generate(1, bob);
  const a = Session.initiate(alice, { identity: bob.public(), signed_prekey: spk.public(), one_time_prekey: null });
  const first = a.encrypt(te.encode('first'));
  const b = Session.respond(bob, spk, null, /** @type {any} */ (a.pendingPrekeyHeader));
  assert.equal(new TextDecoder().decode(b.decrypt(first)), 'first');
  const v1a = asVersion1(a.writeState());
  const v1b = asVersion1(b.writeState());
  assert.equal(v1a.length, 4764);
  const a1 = Session.readState(v1a);
  const b1 = Session.readState(v1b);
  assert.ok(a1.pendingPrekeyHeader, 'the prekey header of a version 1 state is kept');
  assert.equal(a1.pendingKemHeader, null);
  assert.equal(toHex(asVersion1(a1.writeState())), toHex(v1a), 'written back as version 2, the same session');
  assert.equal(a1.writeState()[0], 2);
  assert.equal(new TextDecoder().decode(a1.decrypt(b1.encrypt(te.encode('reply')))), 'reply');
  assert.equal(new TextDecoder().decode(b1.decrypt(a1.encrypt(te.encode('again')))), 'again');
  // Bit 5 does not exist in version 1; in version 2 it needs bit 4.
  const bad1 = v1a.slice();
  bad1[1] |= 0x20;
  assert.throws(() => Session.readState(bad1), (e) => e instanceof StateError && e.kind === 'Malformed');
  const { a: pq } = pqPair();
  const bad2 = pq.writeState();
  bad2[1] &= ~0x10;
  assert.throws(() => Session.readState(bad2), (e) => e instanceof StateError && e.kind === 'Malformed');
});

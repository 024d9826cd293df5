// Session and room state bytes in proto-core's layouts (PROTOCOL.md §4.3, room/state.rs):
// the sizes proto-core documents, and write → read → write gives the same bytes mid-conversation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../../src/bytes.js';
import { IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair } from '../../src/keys.js';
import { Session, StateError } from '../../src/ratchet.js';
import { Room, SenderKeyDistribution, roomIdForName } from '../../src/room.js';

const te = new TextEncoder();

test('session state: 4,764 bytes, stable through a round trip at every step', () => {
  assert.equal(Session.STATE_LEN, 4764);
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
  bytes[0] = 2;
  assert.throws(() => Session.readState(bytes), (e) => e instanceof StateError && e.kind === 'UnknownVersion');
  bytes[0] = 1;
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

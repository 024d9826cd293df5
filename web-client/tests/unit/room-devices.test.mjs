// Rooms on linked devices (PROTOCOL.md §4.4, §4.6, §6 SendToRoom) against the stand-in server,
// which delivers a room message to every device of every member but the sending one: each
// device is a sender of its own (its room sender id), keys go to every device of each member and
// to our own other devices (our held roster first, the first time), a key or message is taken
// only from the device it names, a member's departure removes all their devices at once, a
// device linked after a room existed learns it from the link state, and room state kept from
// before sender ids starts again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceLinking } from '../../src/client.js';
import { toHex } from '../../src/bytes.js';
import { sendContentTo } from '../../src/direct.js';
import { encodeContent } from '../../src/envelope.js';
import { MAX_EPOCH, Room, roomIdForName, roomSenderId } from '../../src/room.js';
import { adoptOwnRoster, heldRoster, loadRoom } from '../../src/rooms.js';
import { writeRoster } from '../../src/roster.js';
import { RoomServer, linkedClient, newClient, settle as settleFor } from './room-server.mjs';

const settle = (clients) => settleFor(clients, 30);
const ik = (c) => c.identity().public().signing;
const sid = (c) => roomSenderId(ik(c), c.profile.device_id);
const state = (c, room = 'team') => Room.fromState(c.profile.rooms[room].state);
/** The texts of a room as [from, text, state, outgoing], events left out. */
const shown = (c, room = 'team') => c.messages(`#${room}`).filter((e) => e.kind !== 'event').map((e) => [e.from, e.text, e.state, e.outgoing]);
const said = (c, text, room = 'team') => c.messages(`#${room}`).find((e) => e.text === text);
const hexes = (ids) => ids.map((x) => toHex(x)).sort();

/** `admin` creates #team; each of `others` (one device of theirs) is invited, accepts and is signed in. */
async function roomWith(admin, others, everyone) {
  await admin.createRoom('team');
  for (const o of others) {
    await admin.invite('team', o.profile.username);
    await settle(everyone);
    await o.acceptInvite('team');
    await settle(everyone);
  }
}

/** A device linked to `first`'s account through the link flow (the code, the link state, AddDevice). */
async function linkDevice(server, first) {
  const user = first.profile.username;
  const linking = await DeviceLinking.startOn(server.conn(user), user, 'the password');
  linking.persist = false;
  await first.linkDevice(await linking.submitCode('123456'));
  return linking.finish(await linking.fetch());
}

test('two linked devices and another member: what bob sends reaches both; what one device sends shows on the other as sent from another device, and bob reads it', async () => {
  const server = new RoomServer();
  const alice1 = await newClient(server, 'alice');
  // Linked before the room exists: it learns the room from its own device's roster.
  const alice2 = await linkedClient(server, alice1);
  const bob = await newClient(server, 'bob');
  const all = [alice1, alice2, bob];
  await roomWith(alice1, [bob], all);
  assert.deepEqual([alice1.profile.device_id, alice2.profile.device_id], [1, 2]);
  assert.equal(toHex(heldRoster(alice2.profile.rooms.team).bytes), toHex(heldRoster(alice1.profile.rooms.team).bytes), 'alice2 holds the roster alice1 sent it');
  // Each device is a sender of its own; everyone tracks every other device.
  for (const c of all) assert.equal(toHex(state(c).ownSender), toHex(sid(c)), c.profile.username);
  assert.deepEqual(hexes(state(bob).members.map((m) => m.sender)), hexes([sid(alice1), sid(alice2)]));
  assert.deepEqual(hexes(state(alice1).members.map((m) => m.sender)), hexes([sid(alice2), sid(bob)]));
  assert.deepEqual(hexes(state(alice2).members.map((m) => m.sender)), hexes([sid(alice1), sid(bob)]));
  assert.deepEqual(bob.profile.rooms.team.senders.map((s) => [s.member, s.device]).sort(), [['alice', 1], ['alice', 2]]);

  await bob.sendText('#team', 'hello both of you');
  await settle(all);
  for (const a of [alice1, alice2]) assert.deepEqual(shown(a), [['bob', 'hello both of you', 'received', false]], a.profile.device_id);

  await alice1.sendText('#team', 'from the laptop');
  await settle(all);
  // The server handed it to bob's device and alice's other one, naming the sending device.
  const sent = server.roomBodies.at(-1);
  assert.deepEqual(server.roomDeliveries.filter((d) => d.server_id === sent.server_id).map((d) => [d.to, d.device, d.from_device]).sort(), [['alice', 2, 1], ['bob', 1, 1]]);
  assert.deepEqual(shown(bob).at(-1), ['alice', 'from the laptop', 'received', false]);
  assert.deepEqual(shown(alice2).at(-1), ['alice', 'from the laptop', 'synced', true]);
  assert.equal(said(alice2, 'from the laptop').id, said(alice1, 'from the laptop').id, 'the same text id');
  assert.equal(shown(alice1).filter(([, t]) => t === 'from the laptop').length, 1, 'the sending device has it once, as sent');

  await alice2.sendText('#team', 'and from the phone');
  await settle(all);
  assert.deepEqual(shown(bob).at(-1), ['alice', 'and from the phone', 'received', false]);
  assert.deepEqual(shown(alice1).at(-1), ['alice', 'and from the phone', 'synced', true]);
  for (const c of all) assert.ok(!c.messages('#team').some((e) => e.state === 'undecryptable'), c.messages('#team').map((e) => e.text).join(' | '));
});

test('a device linked after the room existed learns it from the link state, gets the keys of the current epoch, and reads and writes', async () => {
  const server = new RoomServer();
  const alice1 = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const carol = await newClient(server, 'carol');
  await roomWith(alice1, [bob, carol], [alice1, bob, carol]);
  // carol is removed: the room is at epoch 1 when alice's new device arrives.
  await alice1.remove('team', 'carol');
  await settle([alice1, bob, carol]);
  await bob.sendText('#team', 'before the phone');
  await settle([alice1, bob]);
  const epoch = state(alice1).epoch;
  assert.equal(epoch, 1);

  const alice2 = await linkDevice(server, alice1);
  const all = [alice1, alice2, bob];
  await settle(all);
  assert.equal(alice2.profile.device_id, 2);
  assert.equal(toHex(heldRoster(alice2.profile.rooms.team).bytes), toHex(heldRoster(alice1.profile.rooms.team).bytes), 'the roster alice1 holds');
  assert.deepEqual(alice2.profile.rooms.team.members, ['alice', 'bob']);
  // It started at epoch 0 and was moved to the room's epoch by the keys sent back to it.
  for (const c of all) assert.equal(state(c).epoch, epoch, c.profile.username);
  assert.equal(toHex(state(alice2).ownSender), toHex(sid(alice2)));
  assert.deepEqual(shown(alice2), [], 'nothing from before it was added');

  await bob.sendText('#team', 'welcome, phone');
  await settle(all);
  assert.deepEqual(shown(alice2), [['bob', 'welcome, phone', 'received', false]]);
  await alice2.sendText('#team', 'phone here');
  await settle(all);
  assert.deepEqual(shown(bob).at(-1), ['alice', 'phone here', 'received', false]);
  assert.deepEqual(shown(alice1).at(-1), ['alice', 'phone here', 'synced', true]);
  await alice1.sendText('#team', 'laptop here');
  await settle(all);
  assert.deepEqual(shown(alice2).at(-1), ['alice', 'laptop here', 'synced', true]);
  assert.deepEqual(shown(bob).at(-1), ['alice', 'laptop here', 'received', false]);
  // carol, gone before, got nothing of it.
  assert.ok(!carol.messages('#team').some((e) => /phone/.test(e.text)));
});

test('a room key naming another device, and a room message whose sender is not the device the server names, are refused', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await roomWith(alice, [bob], [alice, bob]);
  const before = hexes(state(alice).members.map((m) => m.sender));
  assert.deepEqual(before, hexes([sid(bob)]));

  // bob's device 1 hands alice a key in the name of a device 7 of his.
  const other = Room.create(roomIdForName('team'), roomSenderId(ik(bob), 7), state(bob).epoch);
  await bob.serial(() => sendContentTo(bob, 'alice', { type: 'RoomKey', room: 'team', distribution: other.distribution().toBytes() }));
  await settle([alice, bob]);
  assert.ok(alice.notices.includes('#team: room key from bob not used: SenderMismatch'), alice.notices.join(' | '));
  assert.deepEqual(hexes(state(alice).members.map((m) => m.sender)), before, 'nothing tracked');
  assert.deepEqual(alice.profile.rooms.team.senders.map((s) => s.device), [1]);

  // A message bob's device 1 sealed, delivered as from his device 2: not readable.
  const copy = state(bob);
  const body = copy.encrypt(encodeContent({ type: 'Text', id: 77n, sent_at: 1764000000n, text: 'moved to another device' }));
  alice.handlePush({ type: 'Deliver', server_id: 901n, from: 'bob', room: 'team', sent_at: 1764000000n, body, device: 2 });
  // The same bytes as from another account's device 1: not readable either.
  const body2 = copy.encrypt(encodeContent({ type: 'Text', id: 78n, sent_at: 1764000000n, text: 'moved to another account' }));
  alice.handlePush({ type: 'Deliver', server_id: 902n, from: 'alice', room: 'team', sent_at: 1764000000n, body: body2, device: 1 });
  await settle([alice, bob]);
  const refused = alice.messages('#team').filter((e) => e.state === 'undecryptable');
  assert.deepEqual(refused.map((e) => [e.from, e.text]), [
    ['bob', '[could not decrypt this message: the sender key does not belong to the sender the server named]'],
    ['alice', '[could not decrypt this message: the sender key does not belong to the sender the server named]'],
  ]);
  assert.ok(!alice.messages('#team').some((e) => /moved to/.test(e.text)));
  // Named right, the next one reads (the check was the refusal, not the path).
  const body3 = copy.encrypt(encodeContent({ type: 'Text', id: 79n, sent_at: 1764000000n, text: 'from the device that sealed it' }));
  alice.handlePush({ type: 'Deliver', server_id: 903n, from: 'bob', room: 'team', sent_at: 1764000000n, body: body3, device: 1 });
  await settle([alice, bob]);
  assert.deepEqual(shown(alice).at(-1), ['bob', 'from the device that sealed it', 'received', false]);
});

test('removing a member with two devices starts one new epoch; neither device reads what is sent after', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob1 = await newClient(server, 'bob');
  const bob2 = await linkedClient(server, bob1);
  const carol = await newClient(server, 'carol');
  const all = [alice, bob1, bob2, carol];
  await roomWith(alice, [bob1, carol], all);
  await bob2.sendText('#team', 'bob on his phone');
  await settle(all);
  for (const c of [alice, carol]) {
    assert.deepEqual(shown(c).at(-1), ['bob', 'bob on his phone', 'received', false], c.profile.username);
    assert.deepEqual(c.profile.rooms.team.senders.filter((s) => s.member === 'bob').map((s) => s.device).sort(), [1, 2]);
  }
  const epoch = state(alice).epoch;
  const bobStates = [bob1, bob2].map((b) => b.profile.rooms.team.state);

  await alice.remove('team', 'bob');
  assert.equal(state(alice).epoch, epoch + 1, 'one new epoch for both of bob\'s devices');
  await settle(all);
  for (const c of [alice, carol]) {
    const room = state(c);
    assert.equal(room.epoch, state(alice).epoch, `${c.profile.username}: in step`);
    assert.ok(!room.isMember(sid(bob1)) && !room.isMember(sid(bob2)), `${c.profile.username} dropped both of bob's devices`);
    assert.ok(!c.profile.rooms.team.senders.some((s) => s.member === 'bob'));
    assert.equal(c.profile.rooms.team.key_sent.bob, undefined);
  }
  const toBob = server.sentTo('alice', 'bob') + server.sentTo('carol', 'bob');
  await alice.sendText('#team', 'after bob');
  await carol.sendText('#team', 'after bob too');
  await settle(all);
  assert.deepEqual(shown(carol).at(-1), ['alice', 'after bob', 'received', false]);
  assert.deepEqual(shown(alice).at(-1), ['carol', 'after bob too', 'received', false]);
  assert.equal(server.sentTo('alice', 'bob') + server.sentTo('carol', 'bob'), toBob, 'no key went to bob after');
  for (const b of [bob1, bob2]) assert.ok(!b.messages('#team').some((e) => /after bob/.test(e.text)));
  // With everything either device held before the removal, the later messages do not open.
  for (const { body } of server.roomBodies.slice(-2)) for (const s of bobStates) assert.throws(() => Room.fromState(s).decrypt(body));
});

test('room state from before sender ids starts again: the next epoch, this device\'s sender id, no members, keys owed to all; at the last epoch it stays there', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await roomWith(alice, [bob], [alice, bob]);
  // As an older version kept it: our IKs as our sender, bob's IKs as a member, keys sent.
  const legacy = Room.create(roomIdForName('team'), ik(alice), 5);
  legacy.addMember(ik(bob));
  const entry = alice.profile.rooms.team;
  entry.state = legacy.toState();
  entry.key_sent = { bob: 5, alice: 5 };
  entry.senders = [];
  entry.early_keys = [{ from: 'bob', bytes: '00' }];
  alice.roomsToSync = [];
  const { room } = loadRoom(alice, 'team');
  assert.equal(room.epoch, 6);
  assert.equal(toHex(room.ownSender), toHex(sid(alice)));
  assert.deepEqual(room.members, []);
  assert.equal(toHex(state(alice).ownSender), toHex(sid(alice)), 'stored at once');
  assert.deepEqual([entry.key_sent, entry.early_keys, alice.roomsToSync], [{}, [], ['team']]);
  // Loaded again: nothing more changes.
  assert.equal(loadRoom(alice, 'team').room.toState(), entry.state);

  // The sync it was queued for hands the new key out; bob moves to epoch 6 and answers.
  await alice.serial(() => alice.runFollowUps());
  await settle([alice, bob]);
  assert.equal(state(bob).epoch, 6);
  assert.deepEqual(hexes(state(alice).members.map((m) => m.sender)), hexes([sid(bob)]));
  await alice.sendText('#team', 'upgraded');
  await bob.sendText('#team', 'me too');
  await settle([alice, bob]);
  assert.deepEqual(shown(bob).at(-1), ['alice', 'upgraded', 'received', false]);
  assert.deepEqual(shown(alice).at(-1), ['bob', 'me too', 'received', false]);

  // At the last epoch there is no next one: a new sender id at the same epoch, and a warning.
  entry.state = Room.create(roomIdForName('team'), ik(alice), MAX_EPOCH).toState();
  const top = loadRoom(alice, 'team').room;
  assert.deepEqual([top.epoch, toHex(top.ownSender)], [MAX_EPOCH, toHex(sid(alice))]);
  assert.ok(alice.notices.some((n) => /#team: this room has used up its key epochs/.test(n)), alice.notices.join(' | '));
});

test('a roster from our own device is taken only when it is that room\'s and lists us; one held already is kept', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const zero = new Uint8Array(32);
  const roster = (room, members, signer = bob) => writeRoster({ roomId: roomIdForName(room), version: 0n, epoch: 0, prev: zero, admins: [ik(signer)], members }, signer.identity()).bytes;
  const A = { username: 'alice', identity: ik(alice) };
  const B = { username: 'bob', identity: ik(bob) };
  // Signed by bob, an admin: trusted from our own device as a first roster from an admin is.
  assert.equal(adoptOwnRoster(alice, 'ours', roster('ours', [A, B])), true);
  assert.deepEqual(alice.profile.rooms.ours.members, ['alice', 'bob']);
  assert.equal(toHex(state(alice, 'ours').ownSender), toHex(sid(alice)));
  assert.equal(state(alice, 'ours').epoch, 0);
  assert.ok(alice.roomsToSync.includes('ours'));
  // Another room's, or one that does not list us (or lists another key for us): ignored.
  assert.equal(adoptOwnRoster(alice, 'mine', roster('other', [A, B])), false);
  assert.equal(adoptOwnRoster(alice, 'mine', roster('mine', [B])), false);
  assert.equal(adoptOwnRoster(alice, 'mine', roster('mine', [{ username: 'alice', identity: ik(bob) }, B])), false);
  assert.equal(adoptOwnRoster(alice, 'mine', Uint8Array.of(1, 2, 3)), false);
  assert.equal(alice.profile.rooms.mine, undefined);
  assert.equal(alice.notices.filter((n) => n.startsWith('#mine: ignored a signed member list from another of your devices')).length, 4);
  // One held already is not replaced.
  const held = alice.profile.rooms.ours.roster;
  assert.equal(adoptOwnRoster(alice, 'ours', roster('ours', [A], alice)), false);
  assert.equal(alice.profile.rooms.ours.roster, held);
});

test('a device that does not know the room (linked by an older client) learns it from the roster its own device sends first; a text between our devices is still refused', async () => {
  const server = new RoomServer();
  const alice1 = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await roomWith(alice1, [bob], [alice1, bob]);
  const alice2 = await linkedClient(server, alice1);
  const all = [alice1, alice2, bob];
  await alice2.serial(() => sendContentTo(alice2, 'alice', { type: 'Text', id: 5n, sent_at: 1764000000n, text: 'psst' }));
  await settle(all);
  assert.match(alice1.messages('@alice').at(-1).text, /your own devices do not send each other this/);
  assert.equal(alice2.profile.rooms.team, undefined);

  // alice1's next send hands alice2 the held roster, then the key, then the message.
  await alice1.sendText('#team', 'hello phone');
  await settle(all);
  assert.equal(toHex(heldRoster(alice2.profile.rooms.team).bytes), toHex(heldRoster(alice1.profile.rooms.team).bytes));
  assert.deepEqual(shown(alice2), [['alice', 'hello phone', 'synced', true]]);
  // Its key came back through the session with alice's device 2, under that device's id.
  assert.ok(state(alice1).isMember(sid(alice2)));
  assert.deepEqual(alice1.profile.rooms.team.senders.filter((s) => s.member === 'alice').map((s) => s.device), [2]);
  assert.deepEqual(alice1.profile.rooms.team.key_sent.alice, state(alice1).epoch);
  await bob.sendText('#team', 'hello both');
  await settle(all);
  assert.deepEqual(shown(alice2).at(-1), ['bob', 'hello both', 'received', false]);
  for (const c of all) assert.ok(!c.notices.some((n) => /not used/.test(n)), c.notices.join(' | '));
});

test('a revoked device is dropped before the next send, all at one new epoch: it reads nothing after, and what it sends is not taken', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob1 = await newClient(server, 'bob');
  const bob2 = await linkedClient(server, bob1);
  const all = [alice, bob1, bob2];
  await roomWith(alice, [bob1], all);
  await bob2.sendText('#team', 'phone check');
  await settle(all);
  assert.deepEqual(shown(alice).at(-1), ['bob', 'phone check', 'received', false]);
  assert.ok(state(alice).isMember(sid(bob2)));
  const epoch = state(alice).epoch;
  const phoneState = bob2.profile.rooms.team.state;

  server.revoke('bob', 2);
  server.log.length = 0;
  await alice.sendText('#team', 'after the revocation');
  // (bob's device 1 drops its other device too, at its next sync: the room may move on again.)
  assert.equal(state(alice).epoch, epoch + 1, 'one new epoch');
  await settle([alice, bob1]);
  // The device list asked before the message went.
  const asked = server.log.findIndex(([w, t, d]) => w === 'alice' && t === 'FetchDevices' && d === 'bob');
  const sent = server.log.findIndex(([w, t]) => w === 'alice' && t === 'SendToRoom');
  assert.ok(asked >= 0 && asked < sent, server.log.map((l) => l.join(':')).join(' '));
  assert.ok(!state(alice).isMember(sid(bob2)) && state(alice).isMember(sid(bob1)));
  assert.deepEqual(alice.profile.rooms.team.senders.filter((s) => s.member === 'bob').map((s) => s.device), [1]);
  assert.ok(alice.notices.includes("#team: bob's device 2 was revoked: it is out of the room, which moves to a new key"), alice.notices.join(' | '));
  assert.ok(!state(bob1).isMember(sid(bob2)), 'bob\'s own device dropped it too');
  // (That first message may cross bob's own move to a new epoch, and be lost to him as any
  // message in flight across an epoch change is.) Once the room settled, bob's device reads.
  await alice.sendText('#team', 'once everyone moved on');
  await settle([alice, bob1]);
  assert.deepEqual(shown(bob1).at(-1), ['alice', 'once everyone moved on', 'received', false]);
  // With everything it held, the revoked device reads neither.
  for (const { body } of server.roomBodies.slice(-2)) assert.throws(() => Room.fromState(phoneState).decrypt(body));
  // What it seals now, handed to alice as from bob's device 2, is not taken.
  const body = Room.fromState(phoneState).encrypt(encodeContent({ type: 'Text', id: 91n, sent_at: 1764000000n, text: 'still here' }));
  alice.handlePush({ type: 'Deliver', server_id: 990n, from: 'bob', room: 'team', sent_at: 1764000000n, body, device: 2 });
  await settle([alice]);
  assert.equal(alice.messages('#team').at(-1).state, 'undecryptable');
  assert.ok(!alice.messages('#team').some((e) => e.text === 'still here'));
});

test('a member removed before any device of theirs sent a key still moves the room to a new epoch', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const carol = await newClient(server, 'carol');
  // Nothing carol sends to alice arrives (offline, or held back by the server).
  const handle = server.handle.bind(server);
  server.handle = (u, conn, msg) => (u === 'carol' && msg.to === 'alice' ? { type: 'Accepted', client_id: msg.client_id, server_id: 0n } : handle(u, conn, msg));
  await roomWith(alice, [carol], [alice, carol]);
  assert.equal(alice.profile.rooms.team.key_sent.carol, 0, 'carol has alice\'s key');
  assert.deepEqual(state(alice).members, [], 'no device of carol\'s is tracked');
  const carolState = carol.profile.rooms.team.state;
  await alice.remove('team', 'carol');
  assert.equal(state(alice).epoch, 1);
  await alice.sendText('#team', 'not for carol');
  await settle([alice, carol]);
  assert.throws(() => Room.fromState(carolState).decrypt(server.roomBodies.at(-1).body));
});

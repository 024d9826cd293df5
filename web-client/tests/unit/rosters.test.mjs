// Signed rosters (PROTOCOL.md §4.7) in the client, against a stand-in server that stores and
// relays rosters as the real one does (PublishRoster checked and chained, CONFLICT, FetchRoster,
// RoomChanged pushes) and that a test can turn hostile: listing members nobody signed in,
// appending rosters that do not follow, handing out rosters from the wrong people.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServerError } from '../../src/client.js';
import { ErrorCode } from '../../src/message.js';
import { equal, toHex } from '../../src/bytes.js';
import { sendContentTo } from '../../src/direct.js';
import { encodeContent } from '../../src/envelope.js';
import { Room, roomIdForName, roomSenderId } from '../../src/room.js';
import { checkNext, parseRoster, rosterHash, writeRoster } from '../../src/roster.js';
import { heldRoster, syncRoom } from '../../src/rooms.js';
import { RoomServer, newClient, settle } from './room-server.mjs';

const ik = (c) => c.identity().public().signing;
const events = (c, room) => c.messages(`#${room}`).filter((e) => e.kind === 'event').map((e) => e.text);
const texts = (c, room) => c.messages(`#${room}`).filter((e) => e.kind !== 'event' && e.state === 'received').map((e) => `${e.from}: ${e.text}`);

/** alice creates #team; each of `others` is invited, accepts and is signed in. */
async function roomWith(server, alice, others) {
  await alice.createRoom('team');
  for (const o of others) {
    await alice.invite('team', o.profile.username);
    await settle([alice, ...others]);
    await o.acceptInvite('team');
    await settle([alice, ...others]);
  }
}

test('happy path: create, invite, join; keys go only once the signed roster lists the member, and both sides read each other', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  await alice.createRoom('team');
  const first = parseRoster(server.rooms.get('team').chain[0]);
  assert.equal(first.version, 0n);
  assert.deepEqual(first.members.map((m) => m.username), ['alice']);
  assert.ok(equal(first.admins[0], ik(alice)));
  await alice.invite('team', 'bob');
  await settle([alice, bob]);
  assert.equal(server.sentTo('alice', 'bob'), 0, 'nothing goes to someone only invited');
  await bob.acceptInvite('team');
  await settle([alice, bob]);
  // Alice signed bob in (after the server listed him), published, then talked to him.
  const chain = server.rooms.get('team').chain.map((b) => parseRoster(b));
  assert.equal(chain.length, 2);
  assert.deepEqual(chain[1].members.map((m) => m.username), ['alice', 'bob']);
  const publishedV0 = server.log.findIndex(([w, t]) => w === 'alice' && t === 'PublishRoster');
  const publishedV1 = server.log.findIndex(([w, t], i) => i > publishedV0 && w === 'alice' && t === 'PublishRoster');
  const firstToBob = server.log.findIndex(([w, t, d]) => w === 'alice' && t === 'SendToDevices' && d === 'bob');
  assert.ok(publishedV1 >= 0 && firstToBob > publishedV1, 'the roster listing bob is published before anything goes to bob');
  assert.equal(toHex(heldRoster(bob.profile.rooms.team).bytes), toHex(chain[1].bytes), 'bob holds the roster alice sent');
  assert.deepEqual(events(alice, 'team'), ['You created #team', 'You invited bob; they join when they accept', 'You added bob']);
  assert.ok(events(bob, 'team').includes('Alice added you'));
  await alice.sendText('#team', 'hello bob');
  await settle([alice, bob]);
  await bob.sendText('#team', 'hello alice');
  await settle([alice, bob]);
  assert.deepEqual(texts(bob, 'team'), ['alice: hello bob']);
  assert.deepEqual(texts(alice, 'team'), ['bob: hello alice']);
});

test('(a) a member the server reports but no signed roster lists gets no room key', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const mallory = await newClient(server, 'mallory');
  await roomWith(server, alice, [bob]);
  // The server slips mallory in: Members lists her, and every member hears she joined.
  server.rooms.get('team').members.push('mallory');
  server.tell('team', 'mallory', 'Joined', 'mallory');
  await settle([alice, bob, mallory]);
  await alice.sendText('#team', 'for members only');
  await bob.sendText('#team', 'me too');
  await settle([alice, bob, mallory]);
  assert.equal(server.sentTo('alice', 'mallory'), 0, 'alice sent mallory nothing');
  assert.equal(server.sentTo('bob', 'mallory'), 0, 'bob sent mallory nothing');
  assert.deepEqual(alice.profile.rooms.team.members, ['alice', 'bob']);
  assert.equal(server.rooms.get('team').chain.length, 2, 'nobody signed her in');
  assert.deepEqual(texts(bob, 'team'), ['alice: for members only']);
  // What mallory receives she cannot read.
  assert.ok(mallory.messages('#team').every((e) => e.state !== 'received'));
  // And her own sender key and room messages are not taken.
  const herSender = roomSenderId(ik(mallory), mallory.profile.device_id);
  const hers = Room.create(roomIdForName('team'), herSender, 0);
  await mallory.serial(() => sendContentTo(mallory, 'alice', { type: 'RoomKey', room: 'team', distribution: hers.distribution().toBytes() }));
  await settle([alice, mallory]);
  alice.handlePush({ type: 'Deliver', server_id: 900n, from: 'mallory', room: 'team', sent_at: 1764000000n, body: hers.encrypt(encodeContent({ type: 'Text', id: 5n, sent_at: 1764000000n, text: 'let me in' })), device: 1 });
  await settle([alice, mallory]);
  assert.ok(!Room.fromState(alice.profile.rooms.team.state).isMember(herSender), 'no chain for mallory');
  assert.deepEqual(texts(alice, 'team'), ['bob: me too']);
  assert.ok(alice.notices.some((n) => /room key from mallory is set aside/.test(n)));
});

test('(b) a roster signed by a non-admin, or not chaining, is refused and the membership stays', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const carol = await newClient(server, 'carol');
  const mallory = await newClient(server, 'mallory');
  await roomWith(server, alice, [bob, carol]);
  const held = parseRoster(server.rooms.get('team').chain.at(-1));
  const withMallory = [...held.members, { username: 'mallory', identity: ik(mallory) }];
  // 1. bob, a member but no admin, signs mallory in.
  const byBob = writeRoster({ roomId: held.roomId, version: held.version + 1n, epoch: held.epoch, prev: rosterHash(held), admins: held.admins, members: withMallory }, bob.identity());
  assert.throws(() => checkNext(held, byBob), { kind: 'NotAuthorized' });
  server.forceRoster('team', byBob.bytes);
  server.rooms.get('team').members.push('mallory');
  await settle([alice, bob, carol]);
  for (const c of [alice, carol]) {
    assert.deepEqual(c.profile.rooms.team.members, ['alice', 'bob', 'carol'], c.profile.username);
    assert.equal(heldRoster(c.profile.rooms.team).version, held.version);
    assert.ok(c.notices.some((n) => /refused version 3 .*NotAuthorized/.test(n)), c.notices.join('\n'));
  }
  await alice.sendText('#team', 'still us');
  await carol.sendText('#team', 'yes');
  await settle([alice, bob, carol]);
  assert.equal(server.sentTo('alice', 'mallory') + server.sentTo('carol', 'mallory'), 0);

  // 2. A roster signed by the admin's key but forking the chain (not the held one's hash).
  const server2 = new RoomServer();
  const a2 = await newClient(server2, 'alice');
  const b2 = await newClient(server2, 'bob');
  const m2 = await newClient(server2, 'mallory');
  await roomWith(server2, a2, [b2]);
  const h2 = parseRoster(server2.rooms.get('team').chain.at(-1));
  const fork = writeRoster({ roomId: h2.roomId, version: h2.version + 1n, epoch: h2.epoch, prev: new Uint8Array(32), admins: h2.admins, members: [...h2.members, { username: 'mallory', identity: ik(m2) }] }, a2.identity());
  server2.forceRoster('team', fork.bytes, 'alice');
  server2.rooms.get('team').members.push('mallory');
  await settle([a2, b2]);
  assert.deepEqual(b2.profile.rooms.team.members, ['alice', 'bob']);
  assert.ok(b2.notices.some((n) => /refused version 2 .*WrongPrevious/.test(n)));
  await b2.sendText('#team', 'hi');
  await settle([a2, b2]);
  assert.equal(server2.sentTo('bob', 'mallory'), 0);
});

test('(c) a removed member whose identity key changed still starts a new epoch and gets no later key', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const carol = await newClient(server, 'carol');
  await roomWith(server, alice, [bob, carol]);
  await alice.sendText('#team', 'before');
  await settle([alice, bob, carol]);
  assert.deepEqual(texts(carol, 'team'), ['alice: before']);
  const carolRoom = carol.profile.rooms.team.state;
  const carolSender = roomSenderId(ik(carol), carol.profile.device_id);
  const epochBefore = Room.fromState(alice.profile.rooms.team.state).epoch;
  for (const c of [alice, bob]) assert.ok(Room.fromState(c.profile.rooms.team.state).isMember(carolSender), `${c.profile.username} tracks carol's device`);
  // "carol" shows up at alice with another key (the server substituting one, or a new device).
  const carol2 = await newClient(server, 'carol');
  await carol2.sendText('@alice', 'new key');
  await settle([alice, carol2]);
  assert.equal(alice.profile.contacts.carol.key_changed, true);
  await alice.remove('team', 'carol');
  await settle([alice, bob, carol]);
  const latest = parseRoster(server.rooms.get('team').chain.at(-1));
  assert.deepEqual(latest.members.map((m) => m.username), ['alice', 'bob']);
  assert.equal(latest.epoch, 1);
  for (const c of [alice, bob]) {
    const room = Room.fromState(c.profile.rooms.team.state);
    assert.ok(room.epoch > epochBefore, `${c.profile.username} moved to a new epoch`);
    assert.ok(!room.isMember(carolSender), `${c.profile.username} dropped carol's key`);
    assert.ok(!c.profile.rooms.team.senders.some((x) => x.member === 'carol'), `${c.profile.username} forgot carol's devices`);
  }
  assert.ok(events(alice, 'team').includes('You removed carol'));
  assert.ok(events(bob, 'team').includes('Alice removed carol'));
  const sentBefore = server.sentTo('alice', 'carol') + server.sentTo('bob', 'carol');
  await alice.sendText('#team', 'after');
  await bob.sendText('#team', 'after too');
  await settle([alice, bob, carol]);
  assert.equal(server.sentTo('alice', 'carol') + server.sentTo('bob', 'carol'), sentBefore, 'no key went to carol after');
  assert.deepEqual(texts(bob, 'team'), ['alice: before', 'alice: after']);
  // With everything carol held before her removal, the later messages do not open.
  for (const { body } of server.roomBodies.slice(-2)) assert.throws(() => Room.fromState(carolRoom).decrypt(body));
});

test('(d) a Content::Roster from a non-admin, for another room, or not listing us is ignored', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const mallory = await newClient(server, 'mallory');
  const dave = await newClient(server, 'dave');
  // dave accepted an invitation to #team: the server lists him, he holds no roster yet.
  server.rooms.set('team', { members: ['mallory', 'dave'], invited: new Set(), chain: [] });
  dave.profile.rooms.team = { state: null, members: [], admin: '', key_sent: {}, invited: [] };
  const zero = new Uint8Array(32);
  const first = (signer, admins, members, room = 'team') =>
    writeRoster({ roomId: roomIdForName(room), version: 0n, epoch: 0, prev: zero, admins, members }, signer.identity()).bytes;
  const A = { username: 'alice', identity: ik(alice) };
  const M = { username: 'mallory', identity: ik(mallory) };
  const D = { username: 'dave', identity: ik(dave) };
  const cases = [
    ['signed by mallory, who is no admin in it', first(mallory, [ik(alice)], [A, D, M]), /not an admin/],
    ['signed by alice, sent by mallory', first(alice, [ik(alice)], [A, D, M]), /not signed by them/],
    ['dave listed with another key', first(mallory, [ik(mallory)], [{ username: 'dave', identity: ik(alice) }, M]), /does not list you/],
    ['dave not listed', first(mallory, [ik(mallory)], [M]), /does not list you/],
    ['for another room', first(mallory, [ik(mallory)], [D, M], 'other'), /another room/],
  ];
  for (const [what, roster, why] of cases) {
    await mallory.serial(() => sendContentTo(mallory, 'dave', { type: 'Roster', room: 'team', roster }));
    await settle([mallory, dave]);
    assert.equal(dave.profile.rooms.team.roster, undefined, what);
    assert.ok(dave.roomWaitsForRoster('team'), what);
    assert.ok(dave.notices.some((n) => n.startsWith('#team: ignored a signed member list from mallory') && why.test(n)), `${what}: ${dave.notices.join(' | ')}`);
  }
  // The same from an admin who signs it and lists dave is taken (so the refusals above were
  // the checks, not the path).
  await mallory.serial(() => sendContentTo(mallory, 'dave', { type: 'Roster', room: 'team', roster: first(mallory, [ik(mallory)], [D, M]) }));
  await settle([mallory, dave]);
  assert.deepEqual(dave.profile.rooms.team.members, ['dave', 'mallory']);
  // Once dave holds a roster that lists him, another one is not a new starting point.
  await mallory.serial(() => sendContentTo(mallory, 'dave', { type: 'Roster', room: 'team', roster: first(mallory, [ik(mallory)], [A, D, M]) }));
  await settle([mallory, dave]);
  assert.deepEqual(dave.profile.rooms.team.members, ['dave', 'mallory']);
});

test('only an admin invites and removes; a non-admin leaves by the next roster; CONFLICT is followed and retried', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const carol = await newClient(server, 'carol');
  await roomWith(server, alice, [bob]);
  await assert.rejects(bob.invite('team', 'carol'), /only an admin of #team can add members/);
  await assert.rejects(bob.remove('team', 'alice'), /only an admin of #team can remove members/);
  assert.ok(!server.log.some(([w, t]) => w === 'bob' && (t === 'Invite' || t === 'Remove')));
  // Bob leaves: the next roster without him, signed by him.
  await bob.leave('team');
  await settle([alice, bob]);
  const latest = parseRoster(server.rooms.get('team').chain.at(-1));
  assert.ok(equal(latest.signer, ik(bob)));
  assert.deepEqual(latest.members.map((m) => m.username), ['alice']);
  assert.ok(events(alice, 'team').includes('Bob left'));
  assert.equal(bob.closedReason('#team'), 'You left #team.');
  // A CONFLICT: someone published first; alice follows the chain and tries once more.
  await alice.invite('team', 'carol');
  await settle([alice, carol]);
  const r = server.rooms.get('team');
  const realHandle = server.handle.bind(server);
  let conflicts = 0;
  server.handle = (u, conn, msg) => {
    if (msg.type === 'PublishRoster' && conflicts === 0) {
      conflicts++;
      throw new ServerError(ErrorCode.CONFLICT, 'not the next version');
    }
    return realHandle(u, conn, msg);
  };
  await carol.acceptInvite('team');
  await settle([alice, carol]);
  assert.equal(conflicts, 1);
  assert.deepEqual(parseRoster(r.chain.at(-1)).members.map((m) => m.username), ['alice', 'carol']);
  assert.deepEqual(carol.profile.rooms.team.members, ['alice', 'carol']);
  // The only admin leaves: carol, the member the server lists first after alice, becomes admin.
  await alice.leave('team');
  await settle([alice, carol]);
  const last = parseRoster(r.chain.at(-1));
  assert.deepEqual(last.members.map((m) => m.username), ['carol']);
  assert.ok(equal(last.admins[0], ik(carol)));
  assert.ok(events(carol, 'team').includes('Alice left'));
  assert.ok(events(carol, 'team').includes('Alice made you an admin'));
  // The last member leaves with Leave.
  await carol.leave('team');
  assert.ok(server.log.some(([w, t]) => w === 'carol' && t === 'Leave'));
});

test('a room saved before rosters still loads; a member waits and sends nobody a key; its admin signs the first roster and the members it had', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  server.rooms.set('old', { members: ['alice', 'bob'], invited: new Set(), chain: [] });
  for (const c of [alice, bob]) {
    c.profile.rooms.old = { state: Room.create(roomIdForName('old'), ik(c), 0).toState(), members: ['alice', 'bob'], admin: 'alice', key_sent: {} };
    c.profile.chats['#old'] = 1;
  }
  // bob, a member but not the admin, waits: nothing is sent.
  assert.ok(bob.roomWaitsForRoster('old'));
  await assert.rejects(bob.sendText('#old', 'hi'), /waiting for the room's signed member list/);
  await bob.serial(() => syncRoom(bob, 'old'));
  await settle([bob]);
  assert.equal(server.sentTo('bob', 'alice'), 0);
  assert.ok(bob.notices.some((n) => /#old: waiting for the room's signed member list/.test(n)));
  assert.equal(server.rooms.get('old').chain.length, 0, 'a member cannot start the chain');
  // alice, the room's admin, signs version 0, then bob (whom she had), and hands him the roster.
  await alice.serial(() => syncRoom(alice, 'old'));
  await settle([alice, bob]);
  const chain = server.rooms.get('old').chain.map((b) => parseRoster(b));
  assert.deepEqual(chain.map((r) => r.members.map((m) => m.username)), [['alice'], ['alice', 'bob']]);
  assert.ok(!bob.roomWaitsForRoster('old'));
  await alice.sendText('#old', 'signed at last');
  await settle([alice, bob]);
  assert.deepEqual(texts(bob, 'old'), ['alice: signed at last']);
});

test('rule 6: a listed member with another key gets no room key; once verified, the admin signs the new key in (new epoch)', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const carol = await newClient(server, 'carol');
  await roomWith(server, alice, [bob, carol]);
  // carol reinstalls: a new identity key under the same name, and the room as a fresh device sees it.
  const carol2 = await newClient(server, 'carol');
  await carol2.serial(() => syncRoom(carol2, 'team'));
  assert.ok(carol2.roomWaitsForRoster('team'));
  for (const c of [bob, alice]) {
    await carol2.sendText(`@${c.profile.username}`, 'new phone');
    await settle([c, carol2]);
    assert.equal(c.profile.contacts.carol.key_changed, true);
  }
  // bob (no admin) verifies the new key: it is still not the one the roster lists.
  await bob.markVerified('carol', bob.safetyNumber('carol'));
  const before = server.sentTo('bob', 'carol');
  await bob.sendText('#team', 'not for the new key yet');
  await settle([alice, bob, carol2]);
  assert.equal(server.sentTo('bob', 'carol'), before, 'no room key to a key the roster does not list');
  assert.ok(bob.notices.some((n) => /not sending the room key to carol: their key is not the one/.test(n)));
  // alice, the admin, verifies too: her next sync signs carol in with the new key.
  await alice.markVerified('carol', alice.safetyNumber('carol'));
  const epochBefore = parseRoster(server.rooms.get('team').chain.at(-1)).epoch;
  await alice.sendText('#team', 'welcome back');
  await settle([alice, bob, carol2]);
  const latest = parseRoster(server.rooms.get('team').chain.at(-1));
  assert.ok(latest.members.some((m) => m.username === 'carol' && equal(m.identity, ik(carol2))));
  assert.equal(latest.epoch, epochBefore + 1, 'a departure and a return');
  assert.ok(events(bob, 'team').includes("carol's key changed"));
  assert.deepEqual(carol2.profile.rooms.team.members, ['alice', 'bob', 'carol']);
  await bob.sendText('#team', 'hi carol');
  await settle([alice, bob, carol2]);
  assert.ok(texts(carol2, 'team').includes('bob: hi carol'), texts(carol2, 'team').join(' | '));
  assert.ok(!texts(carol, 'team').includes('bob: hi carol'));
});

test('rule 5: a member the roster lists but the server does not (an invitee who has not accepted) gets no key until the server lists them', async () => {
  const server = new RoomServer();
  const alice = await newClient(server, 'alice');
  const bob = await newClient(server, 'bob');
  const dave = await newClient(server, 'dave');
  await roomWith(server, alice, [bob]);
  // An admin that signs invitees in at invitation (as the CLI does): dave is listed, validly,
  // before he accepts.
  const held = parseRoster(server.rooms.get('team').chain.at(-1));
  const withDave = writeRoster({ roomId: held.roomId, version: held.version + 1n, epoch: held.epoch, prev: rosterHash(held), admins: held.admins, members: [...held.members, { username: 'dave', identity: ik(dave) }] }, alice.identity());
  server.forceRoster('team', withDave.bytes, 'alice');
  await settle([alice, bob]);
  assert.deepEqual(heldRoster(bob.profile.rooms.team).members.map((m) => m.username), ['alice', 'bob', 'dave']);
  await bob.sendText('#team', 'before dave accepts');
  await settle([alice, bob]);
  assert.equal(server.sentTo('bob', 'dave'), 0, 'nothing to an invitee who has not accepted');
  // He accepts: now the server lists him, and bob's key follows.
  server.rooms.get('team').members.push('dave');
  server.tell('team', 'dave', 'Joined', 'dave');
  await settle([alice, bob, dave]);
  await bob.sendText('#team', 'welcome dave');
  await settle([alice, bob, dave]);
  assert.ok(server.sentTo('bob', 'dave') > 0, 'the key goes once the server lists him');
});

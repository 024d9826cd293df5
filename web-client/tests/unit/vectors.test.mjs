// Every conformance vector file through the JS modules: the browser and the Rust core must
// agree byte for byte (conformance/vectors/*.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromHex, toHex } from '../../src/bytes.js';
import { FrameDecoder, decodeFrame, encodeFrame, MAX_FRAME, TAG_COUNT } from '../../src/frames.js';
import { MESSAGES } from '../../src/message.js';
import { decodeContent, encodeContent, parseEnvelope, emitEnvelope } from '../../src/envelope.js';
import { IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair, dh, x25519Public } from '../../src/keys.js';
import { KemPrekeyPair, PqxdhAgreement, kemHeaderFromBytes, kemHeaderToBytes, kemPrekeyFromBundle, kemPrekeyMessage, verifyKemPrekey } from '../../src/pqxdh.js';
import { DecryptError } from '../../src/ratchet.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { hkdfSha256, PQXDH_INFO, ZERO_SALT } from '../../src/kdf.js';
import { concat } from '../../src/bytes.js';
import { X3dhAgreement, prekeyHeaderFromBytes, prekeyHeaderToBytes } from '../../src/x3dh.js';
import { Session, chainStep } from '../../src/ratchet.js';
import { Room, SenderKeyDistribution, roomIdForName, roomSenderId } from '../../src/room.js';
import { partyFingerprint, safetyNumber } from '../../src/fingerprint.js';
import { messageKeyMaterial, MESSAGE_INFO, ROOM_INFO } from '../../src/kdf.js';
import { NameError, checkRoomName, foldUsername } from '../../src/names.js';
import { PUSHES } from '../../src/connection.js';
import { IdentityKeyPair as Identity } from '../../src/keys.js';
import { RosterError, checkFirst, checkInvitation, checkNext, departed, parseRoster, rosterHash, writeRoster } from '../../src/roster.js';
import { LinkCode, LinkError, LinkKeyPair, devicePrekeyMessage, sealLink, signDevicePrekey, verifyDevicePrekey } from '../../src/devices.js';

const dir = fileURLToPath(new URL('../../../conformance/vectors/', import.meta.url));

/** JSON with integers past 2^53 kept exact: they become strings, compared as BigInt. */
function load(name) {
  const text = readFileSync(dir + name, 'utf8').replace(/([:\[,]\s*)(\d{16,})(?=\s*[,\]}])/g, '$1"$2"');
  return JSON.parse(text);
}

const kindOf = (e) => e.kind ?? e.name;

/** Compare a decoded value with a vector's `fields` (hex for bytes, numbers or digit strings for ints). */
function same(actual, expected, path = '') {
  if (actual instanceof Uint8Array) return assert.equal(toHex(actual), expected, path);
  if (typeof actual === 'bigint') return assert.equal(actual, BigInt(expected), path);
  if (Array.isArray(actual)) {
    assert.equal(actual.length, expected.length, path);
    return actual.forEach((a, i) => same(a, expected[i], `${path}[${i}]`));
  }
  if (actual && typeof actual === 'object') {
    for (const k of Object.keys(expected)) same(actual[k], expected[k], `${path}.${k}`);
    return;
  }
  assert.equal(actual, expected, path);
}

/** Turn vector fields back into a message object (hex → bytes, ints as given). */
function toMessage(type, fields) {
  const conv = (v, key) => {
    if (v === null) return null;
    if (Array.isArray(v)) return v.map((x) => conv(x, key));
    if (typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, conv(x, k)]));
    if (typeof v === 'string' && ['body', 'token', 'identity_sig', 'identity_dh', 'key', 'signature', 'roster', 'link_id', 'message'].includes(key)) return fromHex(v);
    if (typeof v === 'string' && /^\d+$/.test(v) && !['code', 'text'].includes(key)) return BigInt(v);
    return v;
  };
  return { type, ...conv(fields, '') };
}

test('every vector file is covered by this test', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  assert.deepEqual(files, ['content.json', 'crypto-reject.json', 'devices.json', 'fingerprint.json', 'frames-reject.json', 'frames.json', 'names.json', 'pqxdh.json', 'ratchet.json', 'room.json', 'roster-invite.json', 'roster.json', 'x3dh.json']);
});

test('frames.json: every message decodes to its fields and re-encodes to the same bytes', () => {
  const v = load('frames.json');
  assert.equal(v.max_frame, MAX_FRAME);
  assert.equal(v.cases.length, 70);
  assert.equal(MESSAGES.length, TAG_COUNT);
  assert.deepEqual(v.cases.map((c) => c.tag), [...Array(TAG_COUNT).keys()]);
  for (const c of v.cases) {
    const bytes = fromHex(c.frame);
    const { message, used } = decodeFrame(bytes);
    assert.equal(used, bytes.length, c.description);
    assert.equal(message.type, c.message, c.description);
    same(message, c.fields, c.message);
    assert.equal(toHex(encodeFrame(message)), c.frame, `${c.message} round trip`);
    assert.equal(toHex(encodeFrame(toMessage(c.message, c.fields))), c.frame, `${c.message} from fields`);
  }
});

test('frames.json: a stream of every frame back to back decodes in order', () => {
  const v = load('frames.json');
  const dec = new FrameDecoder();
  const types = [];
  for (const c of v.cases) {
    const b = fromHex(c.frame);
    for (let i = 0; i < b.length; i += 7) {
      dec.feed(b.subarray(i, i + 7));
      let m;
      while ((m = dec.pollFrame())) types.push(m.type);
    }
  }
  assert.deepEqual(types, v.cases.map((c) => c.message));
});

test('frames-reject.json: each frame gives its DecodeError by name', () => {
  const v = load('frames-reject.json');
  for (const c of v.cases) {
    const bytes = fromHex(c.frame);
    const expected = c.expect.replace('reject:', '');
    let got;
    try {
      if (c.decoder_buffer) {
        const d = new FrameDecoder(c.decoder_buffer);
        d.feed(bytes);
        d.pollFrame();
      } else {
        decodeFrame(bytes);
      }
      got = 'accept';
    } catch (e) {
      got = kindOf(e);
    }
    assert.equal(got, expected, c.description);
  }
});

test('content.json: contents, envelopes and room ids, accepted and rejected', () => {
  const v = load('content.json');
  for (const c of v.cases) {
    let got;
    if (c.kind === 'room_id') {
      assert.equal(c.expect, 'accept');
      assert.equal(toHex(roomIdForName(c.room)), c.room_id, c.description);
      continue;
    }
    if (c.kind === 'room_sender_id') {
      assert.equal(c.expect, 'accept');
      assert.equal(toHex(roomSenderId(fromHex(c.identity_sig), c.device)), c.sender_id, c.description);
      continue;
    }
    const bytes = fromHex(c.bytes);
    try {
      if (c.kind === 'content') {
        const content = decodeContent(bytes);
        same(content, c.fields, c.description);
        assert.equal(toHex(encodeContent(content)), c.bytes, c.description);
      } else {
        const env = parseEnvelope(bytes);
        assert.equal(env.kind, c.envelope, c.description);
        assert.equal(toHex(env.message), c.message, c.description);
        if (env.kind !== 'Ratchet') assert.equal(toHex(prekeyHeaderToBytes(env.header)), c.prekey_header);
        if (env.kind === 'PqPrekey') assert.equal(toHex(kemHeaderToBytes(env.kem)), c.kem_header);
        assert.equal(toHex(emitEnvelope(env.kind === 'Ratchet' ? null : env.header, env.message, env.kind === 'PqPrekey' ? env.kem : null)), c.bytes);
      }
      got = 'accept';
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      got = `reject:${kindOf(e)}`;
    }
    assert.equal(got, c.expect, c.description);
  }
});

const identity = (p) => new IdentityKeyPair(fromHex(p.identity_sig_private), fromHex(p.identity_dh_private));
const responderKeys = (r) => {
  const id = identity(r);
  const spk = SignedPrekeyPair.fromSecretKey(r.signed_prekey_id, fromHex(r.signed_prekey_private), id);
  const opk = r.one_time_prekey_private ? new OneTimePrekeyPair(r.one_time_prekey_id, fromHex(r.one_time_prekey_private)) : null;
  return { id, spk, opk };
};
const bundleOf = (r, spk, withOpk, signature) => ({
  identity: { signing: fromHex(r.identity_sig_public), dh: fromHex(r.identity_dh_public) },
  signed_prekey: { id: r.signed_prekey_id, public: fromHex(r.signed_prekey_public), signature: signature ? fromHex(signature) : spk.signature },
  one_time_prekey: withOpk ? { id: r.one_time_prekey_id, public: fromHex(withOpk) } : null,
});

test('x3dh.json: both sides derive SK and AD; header and signature byte for byte', () => {
  const v = load('x3dh.json');
  for (const c of v.cases) {
    const alice = identity(c.initiator);
    const bob = responderKeys(c.responder);
    assert.equal(toHex(alice.public().signing), c.initiator.identity_sig_public);
    assert.equal(toHex(bob.spk.publicKey), c.responder.signed_prekey_public);
    assert.equal(toHex(bob.spk.signature), c.signed_prekey_signature);
    const header = prekeyHeaderFromBytes(fromHex(c.prekey_header));
    const withOpk = header.one_time_prekey_id !== null;
    const bundle = bundleOf(c.responder, bob.spk, withOpk ? c.responder.one_time_prekey_public : null);
    const { agreement, header: h } = X3dhAgreement.initiate(alice, bundle, fromHex(c.initiator.ephemeral_private));
    assert.equal(toHex(prekeyHeaderToBytes(h)), c.prekey_header, c.description);
    assert.equal(toHex(agreement.sk), c.sk, c.description);
    assert.equal(toHex(agreement.ad), c.ad, c.description);
    const theirs = X3dhAgreement.respond(bob.id, bob.spk, withOpk ? bob.opk : null, header);
    assert.equal(toHex(theirs.sk), c.sk);
    assert.equal(toHex(theirs.ad), c.ad);
    assert.equal(c.dh.length, withOpk ? 4 : 3);
  }
});

test('ratchet.json: conversations replayed event by event, every byte and key checked', () => {
  const v = load('ratchet.json');
  for (const c of v.cases) {
    const alice = identity(c.initiator);
    const bob = responderKeys(c.responder);
    const header = prekeyHeaderFromBytes(fromHex(c.prekey_header));
    const withOpk = header.one_time_prekey_id !== null;
    const bundle = bundleOf(c.responder, bob.spk, withOpk ? c.responder.one_time_prekey_public : null);
    const a = Session.initiate(alice, bundle, fromHex(c.initiator.ephemeral_private));
    assert.equal(toHex(prekeyHeaderToBytes(a.pendingPrekeyHeader)), c.prekey_header);
    assert.equal(toHex(a.root), c.sk);
    assert.equal(toHex(a.ad), c.ad);
    let b = null;
    const sent = new Map();
    for (const ev of c.events) {
      const m = c.messages[ev.message];
      if (ev.op === 'send') {
        const s = m.sender === 'alice' ? a : b;
        const { mk } = chainStep(fromHex(m.chain_key));
        assert.equal(toHex(mk), m.message_key);
        const { key, nonce } = messageKeyMaterial(mk, MESSAGE_INFO);
        assert.equal(toHex(key), m.aead_key);
        assert.equal(toHex(nonce), m.nonce);
        const out = s.encrypt(fromHex(m.plaintext), m.dh_step ? fromHex(m.dh_step.private) : undefined);
        assert.equal(toHex(out), m.message, `${c.description}: message ${ev.message}`);
        // Round-trip the sender's state through its stored form after every send.
        if (m.sender === 'alice') Object.setPrototypeOf(Object.assign(a, Session.fromState(a.toState())), Session.prototype);
        sent.set(ev.message, out);
      } else {
        const msg = sent.get(ev.message);
        if (m.sender === 'alice') {
          if (!b) b = Session.respond(bob.id, bob.spk, withOpk ? bob.opk : null, header);
          assert.equal(toHex(b.decrypt(msg)), m.plaintext, `bob reads ${ev.message}`);
          b = Session.fromState(JSON.parse(JSON.stringify(b.toState())));
        } else {
          assert.equal(toHex(a.decrypt(msg)), m.plaintext, `alice reads ${ev.message}`);
        }
      }
    }
  }
});

test('room.json: members replay the events; messages, keys and signatures byte for byte', () => {
  const v = load('room.json');
  for (const c of v.cases) {
    const rid = fromHex(c.room_id);
    const ids = Object.fromEntries(c.members.map((m) => [m.name, fromHex(m.sender_id)]));
    const keysFor = (epoch, name) => c.epochs.find((e) => e.epoch === epoch).members.find((m) => m.member === name);
    const rooms = {};
    for (const m of c.members) {
      const k = keysFor(0, m.name);
      rooms[m.name] = Room.create(rid, ids[m.name], 0, fromHex(k.chain_key), fromHex(k.signing_private));
      assert.equal(toHex(rooms[m.name].distribution().toBytes()), k.distribution);
    }
    for (const m of c.members) for (const o of c.members) if (o.name !== m.name) rooms[m.name].addMember(ids[o.name]);
    for (const m of c.members) for (const o of c.members) if (o.name !== m.name) {
      rooms[m.name].handleDistribution(SenderKeyDistribution.fromBytes(rooms[o.name].distribution().toBytes()), ids[o.name]);
    }
    const sent = new Map();
    for (const ev of c.events) {
      if (ev.op === 'send') {
        const m = c.messages[ev.message];
        const { mk } = chainStep(fromHex(m.chain_key));
        assert.equal(toHex(mk), m.message_key);
        const { key, nonce } = messageKeyMaterial(mk, ROOM_INFO);
        assert.equal(toHex(key), m.aead_key);
        assert.equal(toHex(nonce), m.nonce);
        const out = rooms[ev.member].encrypt(fromHex(m.plaintext));
        assert.equal(toHex(out), m.message, `message ${ev.message}`);
        rooms[ev.member] = Room.fromState(JSON.parse(JSON.stringify(rooms[ev.member].toState())));
        sent.set(ev.message, out);
      } else if (ev.op === 'deliver') {
        const m = c.messages[ev.message];
        const got = rooms[ev.to].decrypt(sent.get(ev.message));
        assert.equal(toHex(got.plaintext), m.plaintext, `${ev.to} reads ${ev.message}`);
        assert.equal(toHex(got.sender), m.sender_id);
      } else if (ev.op === 'remove') {
        delete rooms[ev.member];
        const epoch1 = c.epochs.find((e) => e.epoch === 1);
        for (const name of Object.keys(rooms)) {
          const k = keysFor(1, name);
          rooms[name].removeMember(ids[ev.member], fromHex(k.chain_key), fromHex(k.signing_private));
          assert.equal(toHex(rooms[name].distribution().toBytes()), k.distribution);
        }
        for (const name of Object.keys(rooms)) for (const other of Object.keys(rooms)) if (name !== other) {
          rooms[name].handleDistribution(SenderKeyDistribution.fromBytes(rooms[other].distribution().toBytes()), ids[other]);
        }
        assert.ok(epoch1);
      }
    }
  }
});

test('fingerprint.json: party digits and the 60-digit safety number', () => {
  const v = load('fingerprint.json');
  for (const c of v.cases) {
    const key = (p) => ({ signing: fromHex(p.identity_sig_public), dh: fromHex(p.identity_dh_public) });
    assert.equal(partyFingerprint(key(c.local), c.local.username), c.local.digits, c.description);
    assert.equal(partyFingerprint(key(c.remote), c.remote.username), c.remote.digits, c.description);
    assert.equal(safetyNumber(key(c.local), c.local.username, key(c.remote), c.remote.username), c.safety_number, c.description);
  }
});

test('crypto-reject.json: each tampered or hostile input gives its error by name', () => {
  const v = load('crypto-reject.json');
  assert.ok(v.cases.length >= 17);
  for (const c of v.cases) {
    let got;
    try {
      if (c.kind === 'ratchet') {
        const bob = responderKeys(c.responder);
        const header = prekeyHeaderFromBytes(fromHex(c.prekey_header));
        const s = Session.respond(bob.id, bob.spk, header.one_time_prekey_id !== null ? bob.opk : null, header);
        for (const p of c.prior) s.decrypt(fromHex(p));
        s.decrypt(fromHex(c.message));
      } else if (c.kind === 'x3dh') {
        const bob = responderKeys(c.responder);
        const bundle = bundleOf(c.responder, bob.spk, c.one_time_prekey_public, c.signed_prekey_signature);
        X3dhAgreement.initiate(identity(c.initiator), bundle, fromHex(c.initiator.ephemeral_private));
      } else if (c.kind === 'room') {
        const dist = SenderKeyDistribution.fromBytes(fromHex(c.distribution));
        const room = Room.create(dist.room_id, new Uint8Array(32).fill(0xee), c.receiver_epoch);
        room.addMember(dist.sender);
        room.handleDistribution(dist, dist.sender);
        for (const p of c.prior) room.decrypt(fromHex(p));
        room.decrypt(fromHex(c.message));
      } else {
        assert.fail(`unknown kind ${c.kind}`);
      }
      got = 'accept';
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      got = `reject:${kindOf(e)}`;
    }
    assert.equal(got, c.expect, `${c.kind}: ${c.description}`);
  }
});

test('names.json: usernames fold and room names check exactly as proto-core does; the pushes match', () => {
  const v = load('names.json');
  assert.deepEqual([...PUSHES].sort(), [...v.pushes].sort());
  assert.ok(v.cases.length >= 20);
  for (const c of v.cases) {
    let got;
    try {
      if (c.kind === 'username') got = `accept:${foldUsername(c.input)}`;
      else { checkRoomName(c.input); got = 'accept'; }
    } catch (e) {
      assert.ok(e instanceof NameError, c.description);
      got = `reject:${e.kind}`;
    }
    assert.equal(got, c.expect, `${c.kind} ${JSON.stringify(c.input)}: ${c.description}`);
  }
});

test('devices.json: device prekeys, link codes and link messages byte for byte; each refusal by name', () => {
  const v = load('devices.json');
  assert.ok(v.cases.length >= 16);
  for (const c of v.cases) {
    const what = `${c.kind}: ${c.description}`;
    let got;
    try {
      if (c.kind === 'device_prekey' && c.expect === 'accept') {
        const id = new Identity(fromHex(c.identity_sig_private), fromHex(c.identity_dh_private));
        assert.equal(toHex(id.public().signing), c.identity_sig_public, what);
        const spk = fromHex(c.signed_prekey_public);
        assert.equal(toHex(devicePrekeyMessage(c.device_id, spk)), c.signed_message, what);
        assert.equal(toHex(signDevicePrekey(id, c.device_id, spk)), c.signature, what);
      }
      if (c.kind === 'device_prekey') {
        const spk = { public: fromHex(c.signed_prekey_public), signature: fromHex(c.signature) };
        if (!verifyDevicePrekey(spk, fromHex(c.identity_sig_public), c.device_id)) throw Object.assign(new Error('bad signature'), { name: 'SignatureError' });
      } else if (c.kind === 'link_code') {
        const code = LinkCode.decode(fromHex(c.code));
        if (c.expect === 'accept') {
          const pair = new LinkKeyPair(fromHex(c.link_private), fromHex(c.link_secret));
          assert.equal(toHex(pair.code.encode()), c.code, what);
          assert.equal(toHex(code.linkId()), c.link_id, what);
          assert.equal(toHex(code.publicKey), c.link_public, what);
        }
      } else if (c.kind === 'link_message') {
        const pair = new LinkKeyPair(fromHex(c.link_private), fromHex(c.link_secret));
        if (c.expect === 'accept') {
          assert.equal(toHex(sealLink(pair.code, fromHex(c.state), fromHex(c.ephemeral_private))), c.message, what);
        }
        const state = pair.open(fromHex(c.message));
        assert.equal(toHex(state), c.state, what);
      } else if (c.kind !== 'device_prekey') {
        assert.fail(`unknown kind ${c.kind}`);
      }
      got = 'accept';
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      if (e instanceof LinkError) got = `reject:${e.kind}`;
      else got = `reject:${kindOf(e)}`;
    }
    assert.equal(got, c.expect, what);
  }
});

test('roster.json: chains of signed rosters accepted or refused by name; what each says', () => {
  const v = load('roster.json');
  assert.ok(v.cases.length >= 26);
  const kinds = new Set();
  for (const c of v.cases) {
    let got;
    let rosters = [];
    try {
      rosters = c.rosters.map((r) => parseRoster(fromHex(r)));
      checkFirst(rosters[0]);
      for (let i = 1; i < rosters.length; i++) checkNext(rosters[i - 1], rosters[i]);
      got = 'accept';
    } catch (e) {
      if (!(e instanceof RosterError)) throw e;
      got = `reject:${e.kind}`;
      kinds.add(e.kind);
    }
    assert.equal(got, c.expect, c.description);
    if (got !== 'accept') continue;
    rosters.forEach((r, i) => {
      const want = c.parsed[i];
      assert.equal(r.version, BigInt(want.version), c.description);
      assert.equal(r.epoch, want.epoch, c.description);
      assert.equal(toHex(r.signer), want.signer, c.description);
      assert.deepEqual(r.admins.map(toHex), want.admins, c.description);
      assert.deepEqual(r.members.map((m) => ({ username: m.username, identity: toHex(m.identity) })), want.members, c.description);
      assert.equal(toHex(rosterHash(r)), want.hash, c.description);
      if (i > 0) assert.deepEqual(departed(rosters[i - 1], r).map((m) => m.username), c.departed[i - 1], c.description);
    });
  }
  // Every refusal proto-core names is exercised here.
  assert.equal(kinds.size, 16);
});

test('roster-invite.json: a roster handed over as an invitation, taken or refused by name', () => {
  const v = load('roster-invite.json');
  assert.ok(v.cases.length >= 8);
  const kinds = new Set();
  for (const c of v.cases) {
    let got;
    try {
      const r = parseRoster(fromHex(c.roster));
      checkInvitation(r, roomIdForName(c.room), fromHex(c.sender), c.receiver, fromHex(c.receiver_identity));
      got = 'accept';
    } catch (e) {
      if (!(e instanceof RosterError)) throw e;
      got = `reject:${e.kind}`;
      kinds.add(e.kind);
    }
    assert.equal(got, c.expect, c.description);
  }
  assert.deepEqual([...kinds].sort(), ['BadSignature', 'NotFromSender', 'NotListed', 'SignerNotAdmin', 'WrongRoom']);
});

test('roster.json: writeRoster signs every accepted roster to the same bytes (any input order)', () => {
  const v = load('roster.json');
  const secrets = new Map(v.identities.map((i) => [i.sig_public, i.sig_private]));
  let n = 0;
  for (const c of v.cases) {
    if (c.expect !== 'accept') continue;
    c.rosters.forEach((hex, i) => {
      const r = parseRoster(fromHex(hex));
      const secret = secrets.get(toHex(r.signer));
      if (!secret) return;
      const signer = new Identity(fromHex(secret), new Uint8Array(32).fill(7));
      const again = writeRoster({
        roomId: r.roomId, version: r.version, epoch: r.epoch, prev: r.prev,
        admins: [...r.admins].reverse(), members: [...r.members].reverse(),
      }, signer);
      assert.equal(toHex(again.bytes), hex, `${c.description} [${i}]`);
      n++;
    });
  }
  assert.ok(n >= 5, `only ${n} rosters rewritten`);
});

/** The responder's keys of a pqxdh.json agreement case: identity, SPK (v2 for its device), OPK, KEM prekey. */
const pqResponder = (r) => {
  const id = identity(r);
  const spk = SignedPrekeyPair.fromSecretKey(r.signed_prekey_id, fromHex(r.signed_prekey_private), id);
  spk.signature = signDevicePrekey(id, r.device_id, spk.publicKey);
  const opk = r.one_time_prekey_private ? new OneTimePrekeyPair(r.one_time_prekey_id, fromHex(r.one_time_prekey_private)) : null;
  const kem = new KemPrekeyPair(r.kem_prekey_id, fromHex(r.kem_seed));
  return { id, spk, opk, kem };
};

/** Bob's side of a first message: parse the PqPrekey envelope, agree, decrypt. */
const pqRespond = (bob, body) => {
  const env = parseEnvelope(body);
  assert.equal(env.kind, 'PqPrekey');
  const s = Session.respondPqxdh(bob.id, bob.spk, env.header.one_time_prekey_id !== null ? bob.opk : null, bob.kem, env.header, env.kem);
  return s.decrypt(env.message);
};

test('pqxdh.json: agreements byte for byte (signatures, DH, ML-KEM, SK, AD, headers, the whole first message), read by the responder', () => {
  const v = load('pqxdh.json');
  const accepted = v.cases.filter((c) => c.kind === 'agreement');
  assert.equal(accepted.length, 2);
  for (const c of accepted) {
    const what = c.description;
    const r = c.responder;
    const alice = identity(c.initiator);
    const bob = pqResponder(r);
    assert.equal(toHex(alice.public().signing), c.initiator.identity_sig_public, what);
    assert.equal(toHex(alice.public().dh), c.initiator.identity_dh_public, what);
    assert.equal(toHex(bob.id.public().signing), r.identity_sig_public, what);
    assert.equal(toHex(bob.id.public().dh), r.identity_dh_public, what);
    assert.equal(toHex(bob.spk.publicKey), r.signed_prekey_public, what);
    assert.equal(toHex(bob.spk.signature), r.signed_prekey_signature, what);
    // The KEM prekey from its seed (FIPS 203 KeyGen_internal(d, z)) and its signature.
    assert.equal(toHex(bob.kem.publicKey), r.kem_public, what);
    const published = bob.kem.publicForDevice(r.device_id, bob.id);
    assert.equal(toHex(published.signature), r.kem_signature, what);
    assert.equal(kemPrekeyMessage(r.device_id, r.kem_prekey_id, published.public).length, 1210);
    assert.ok(verifyKemPrekey(published, bob.id.public().signing, r.device_id), what);
    assert.ok(!verifyKemPrekey(published, bob.id.public().signing, r.device_id + 1), what);
    // From the primitives: DH1..DH4, ML-KEM's Encaps_internal(ek, m), the SK formula.
    const eph = fromHex(c.initiator.ephemeral_private);
    const dhs = [
      dh(alice.dhSecret, bob.spk.publicKey), dh(eph, bob.id.public().dh), dh(eph, bob.spk.publicKey),
      ...(bob.opk ? [dh(eph, bob.opk.publicKey)] : []),
    ];
    assert.deepEqual(dhs.map(toHex), c.dh, what);
    const direct = ml_kem768.encapsulate(bob.kem.publicKey, fromHex(c.initiator.kem_message));
    assert.equal(toHex(direct.cipherText), c.kem_ciphertext, what);
    assert.equal(toHex(direct.sharedSecret), c.kem_shared_secret, what);
    const byHand = hkdfSha256(ZERO_SALT, concat(new Uint8Array(32).fill(0xff), ...dhs, fromHex(c.kem_shared_secret)),
      concat(PQXDH_INFO, sha256(fromHex(r.kem_public)), sha256(fromHex(c.kem_ciphertext))), 32);
    assert.equal(toHex(byHand), c.sk, what);
    // Through the module, as the client uses it.
    const bundle = {
      identity: bob.id.public(),
      signed_prekey: { id: r.signed_prekey_id, public: bob.spk.publicKey, signature: bob.spk.signature },
      one_time_prekey: bob.opk ? { id: r.one_time_prekey_id, public: fromHex(r.one_time_prekey_public) } : null,
    };
    const kemPub = kemPrekeyFromBundle({ id: r.kem_prekey_id, key: fromHex(r.kem_public), signature: fromHex(r.kem_signature) });
    const { agreement, header, kem } = PqxdhAgreement.initiate(alice, bundle, r.device_id, kemPub, eph, fromHex(c.initiator.kem_message));
    assert.equal(toHex(agreement.sk), c.sk, what);
    assert.equal(toHex(agreement.ad), c.ad, what);
    assert.equal(toHex(prekeyHeaderToBytes(header)), c.prekey_header, what);
    assert.equal(toHex(kemHeaderToBytes(kem)), c.kem_header, what);
    assert.equal(toHex(kem.ciphertext), c.kem_ciphertext, what);
    const theirs = PqxdhAgreement.respond(bob.id, bob.spk, bob.opk, bob.kem, prekeyHeaderFromBytes(fromHex(c.prekey_header)), kemHeaderFromBytes(fromHex(c.kem_header)));
    assert.equal(toHex(theirs.sk), c.sk, what);
    assert.equal(toHex(theirs.ad), c.ad, what);
    // The whole first message: a PqPrekey envelope of the plaintext, the session's state
    // round-tripped (the pending KEM header survives a reload).
    let a = Session.initiatePqxdh(alice, bundle, r.device_id, kemPub, eph, fromHex(c.initiator.kem_message));
    a = Session.fromState(a.toState());
    assert.equal(toHex(kemHeaderToBytes(/** @type {any} */ (a.pendingKemHeader))), c.kem_header, what);
    const body = emitEnvelope(a.pendingPrekeyHeader, a.encrypt(fromHex(c.plaintext), fromHex(c.initiator.ratchet_private)), a.pendingKemHeader);
    assert.equal(toHex(body), c.first_message, what);
    assert.equal(body[0], 0x03);
    assert.equal(toHex(pqRespond(bob, fromHex(c.first_message))), c.plaintext, what);
  }
});

test('pqxdh.json: every refusal by the name proto-core gives it', () => {
  const v = load('pqxdh.json');
  const refused = v.cases.filter((c) => c.kind !== 'agreement');
  assert.equal(refused.length, 9);
  const kinds = new Set();
  for (const c of refused) {
    let got;
    try {
      if (c.kind === 'initiate') {
        const b = c.bundle;
        const bundle = {
          identity: { signing: fromHex(b.identity_sig), dh: fromHex(b.identity_dh) },
          signed_prekey: { id: b.signed_prekey_id, public: fromHex(b.signed_prekey), signature: fromHex(b.signed_prekey_signature) },
          one_time_prekey: b.one_time_prekey ? { id: b.one_time_prekey.id, public: fromHex(b.one_time_prekey.key) } : null,
        };
        const wire = b.kem_prekey ? { id: b.kem_prekey.id, key: fromHex(b.kem_prekey.key), signature: fromHex(b.kem_prekey.signature) } : null;
        Session.initiatePqxdh(identity(c.initiator), bundle, b.device_id, kemPrekeyFromBundle(wire), fromHex(c.initiator.ephemeral_private), fromHex(c.initiator.kem_message));
      } else if (c.kind === 'kem_header') {
        kemHeaderFromBytes(fromHex(c.bytes));
      } else if (c.kind === 'first_message') {
        // Answered by the responder the case gives.
        pqRespond(pqResponder(c.responder), fromHex(c.first_message));
      } else {
        assert.fail(`unknown kind ${c.kind}`);
      }
      got = 'accept';
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      got = e instanceof DecryptError ? 'reject:Decrypt' : `reject:${kindOf(e)}`;
    }
    assert.equal(got, c.expect, `${c.kind}: ${c.description}`);
    kinds.add(got);
  }
  assert.deepEqual([...kinds].sort(), ['reject:BadKemPrekeySignature', 'reject:BadPrekeySignature', 'reject:CiphertextLength', 'reject:Decrypt', 'reject:InvalidKemKey', 'reject:KemKeyLength', 'reject:MissingKemPrekey', 'reject:WrongKemPrekey']);
});

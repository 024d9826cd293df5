// Linking a device without a browser (docs/PROTOCOL.md §4.6; host-client link_state.rs): the
// link code as text (RFC 4648 base32, groups of four, read back whatever the case, spaces and
// dashes; bad characters, lengths and versions refused with a reason) and the link state
// (written as the CLI writes it, read back with its checks: version, account, identity; contacts
// keep their trust; names that are not usernames dropped; rooms with the roster the sending
// device holds, a room that is not that room's dropped).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { LinkCode, LinkKeyPair, sealLink } from '../../src/devices.js';
import { LINK_CODE_CHARS, LinkCodeError, LinkStateError, inertLine, linkCodeText, linkStateBytes, parseLinkCode, parseLinkState } from '../../src/link.js';
import { fromHex, toHex } from '../../src/bytes.js';
import { IdentityKeyPair } from '../../src/keys.js';
import { roomIdForName } from '../../src/room.js';
import { writeRoster } from '../../src/roster.js';

const vectors = JSON.parse(readFileSync(new URL('../../../conformance/vectors/devices.json', import.meta.url), 'utf8'));
const vectorCode = vectors.cases.find((c) => c.kind === 'link_code' && c.expect === 'accept');
/** The vector's code in base32, computed apart from this code (Python's base64.b32encode). */
const VECTOR_TEXT = 'AEKZ-ELFQ-DIUO-5OPA-6VFG-53EP-24W3-O6P3-24FG-JD24-2E2I-2GD6-RJ6H-6UDN-LDXM-Q4MW-2XPC-FYNP-BOYH-Z5Y';

const enc = (s) => new TextEncoder().encode(typeof s === 'string' ? s : JSON.stringify(s));
const IDENTITY = { sig: 'ab'.repeat(32), dh: 'cd'.repeat(32) };
const profile = {
  username: 'alice',
  identity: IDENTITY,
  contacts: {
    carol: { identity_sig: '03'.repeat(32), identity_dh: '04'.repeat(32), verified: false, key_changed: true, session: { secret: 'never sent' } },
    bob: { identity_sig: '01'.repeat(32), identity_dh: '02'.repeat(32), verified: true, key_changed: false, devices: { 1: {} } },
    // Sessions with our own other devices: never handed over as a contact.
    alice: { identity_sig: 'ab'.repeat(32), identity_dh: 'cd'.repeat(32), verified: true, key_changed: false },
  },
};

test('the code as text: base32 in groups of four, as PROTOCOL.md §4.6 and the CLI write it', () => {
  const code = LinkCode.decode(fromHex(vectorCode.code));
  const text = linkCodeText(code);
  assert.equal(text, VECTOR_TEXT);
  assert.equal(LINK_CODE_CHARS, 79);
  assert.equal(text.replace(/-/g, '').length, 79);
  assert.ok(text.split('-').slice(0, -1).every((g) => g.length === 4));
  assert.match(text, /^[A-Z2-7-]+$/);
  for (let i = 0; i < 20; i++) {
    const pair = LinkKeyPair.generate();
    const back = parseLinkCode(linkCodeText(pair.code));
    assert.equal(toHex(back.encode()), toHex(pair.code.encode()));
  }
});

test('the code is read whatever its case, spaces, line breaks and dashes', () => {
  const want = vectorCode.code;
  const compact = VECTOR_TEXT.replace(/-/g, '');
  for (const typed of [
    VECTOR_TEXT,
    VECTOR_TEXT.toLowerCase(),
    compact,
    VECTOR_TEXT.replace(/-/g, ' '),
    `  ${VECTOR_TEXT.slice(0, 40)}\n${VECTOR_TEXT.slice(40)}\t`,
    compact.replace(/(.{5})/g, '$1--'),
  ]) {
    const code = parseLinkCode(typed);
    assert.equal(toHex(code.encode()), want, typed);
    assert.equal(toHex(code.linkId()), vectorCode.link_id);
  }
});

test('a code with a bad character, the wrong length, damaged bits or another version is refused, saying why', () => {
  const compact = VECTOR_TEXT.replace(/-/g, '');
  const refused = (typed, why) => assert.throws(() => parseLinkCode(typed), (e) => e instanceof LinkCodeError && why.test(e.message), typed);
  refused('', /Paste the link code/);
  refused('  - -\n', /Paste the link code/);
  refused(`${compact.slice(0, 10)}1${compact.slice(11)}`, /“1” is not in a link code: it holds only the letters A–Z and the digits 2–7/);
  refused(`${compact.slice(0, 10)}0${compact.slice(11)}`, /“0” is not in a link code/);
  refused(`${compact.slice(0, 10)}8${compact.slice(11)}`, /“8” is not in a link code/);
  refused(`${compact}=`, /“=” is not in a link code/);
  refused(`${compact.slice(0, 10)}É${compact.slice(11)}`, /“É” is not in a link code/);
  refused(`${compact.slice(0, 10)}\u200b${compact.slice(11)}`, /U\+200B is not in a link code/);
  refused(compact.slice(0, 78), /79 letters and digits; this one has 78/);
  refused(`${compact}A`, /this one has 80/);
  refused(compact.slice(0, 20), /this one has 20/);
  // The last character carries 2 data bits and 3 zero bits: others are not a code.
  refused(`${compact.slice(0, 78)}7`, /its last character is wrong/);
  // Version 2 (the first byte): the text starts "AI".
  const v2 = fromHex(vectorCode.code);
  v2[0] = 2;
  const v2text = linkCodeText(new LinkCode(v2.slice(1, 33), v2.slice(33))).replace(/^AE/, 'AI');
  refused(v2text, /version 2; this page reads version 1/);
});

test('the link state is written as the CLI writes it: fields in order, contacts sorted, their trust, nothing else', () => {
  const bytes = linkStateBytes(profile);
  const json = new TextDecoder().decode(bytes);
  assert.equal(json, `{"version":1,"username":"alice","identity":"${'ab'.repeat(32)}${'cd'.repeat(32)}","contacts":{`
    + `"bob":{"identity_sig":"${'01'.repeat(32)}","identity_dh":"${'02'.repeat(32)}","verified":true,"key_changed":false},`
    + `"carol":{"identity_sig":"${'03'.repeat(32)}","identity_dh":"${'04'.repeat(32)}","verified":false,"key_changed":true}},"rooms":{}}`);
  assert.doesNotMatch(json, /never sent|session|devices/);
});

test('the link state reads back, sealed and opened: identity, and contacts with their trust (verified, key changed)', () => {
  const pair = LinkKeyPair.generate();
  const opened = pair.open(sealLink(parseLinkCode(linkCodeText(pair.code)), linkStateBytes(profile)));
  const state = parseLinkState(opened, 'alice');
  assert.deepEqual(state, {
    username: 'alice',
    identity: IDENTITY,
    contacts: {
      bob: { identity_sig: '01'.repeat(32), identity_dh: '02'.repeat(32), verified: true, key_changed: false },
      carol: { identity_sig: '03'.repeat(32), identity_dh: '04'.repeat(32), verified: false, key_changed: true },
    },
    rooms: {},
  });
  // The CLI's hex is lower case; upper case reads too and is kept lower case. Unknown fields are ignored.
  const upper = parseLinkState(enc({ version: 1, username: 'alice', identity: (IDENTITY.sig + IDENTITY.dh).toUpperCase(), contacts: {}, rooms: ['later'] }), 'alice');
  assert.deepEqual(upper.identity, IDENTITY);
});

test('another version, another account, a damaged identity or no state at all is refused', () => {
  const good = { version: 1, username: 'alice', identity: IDENTITY.sig + IDENTITY.dh, contacts: {} };
  const refused = (bytes, why) => assert.throws(() => parseLinkState(bytes, 'alice'), (e) => e instanceof LinkStateError && why.test(e.message));
  assert.equal(parseLinkState(enc(good), 'alice').username, 'alice');
  refused(enc({ ...good, version: 2 }), /link state version 2; this page reads version 1/);
  refused(enc({ ...good, version: 0 }), /version 0/);
  refused(enc({ ...good, version: '1' }), /no account state/);
  refused(enc({ ...good, username: 'mallory' }), /for the account mallory, not alice; nothing was set up/);
  refused(enc({ ...good, username: 'Alice' }), /for the account Alice, not alice/);
  // A name from the network is shown without its bidi or control characters.
  refused(enc({ ...good, username: 'eve\u202e\nlin' }), /for the account evelin, not alice/);
  refused(enc({ ...good, identity: IDENTITY.sig }), /identity key is damaged/);
  refused(enc({ ...good, identity: `${IDENTITY.sig + IDENTITY.dh}00` }), /identity key is damaged/);
  refused(enc({ ...good, identity: `zz${(IDENTITY.sig + IDENTITY.dh).slice(2)}` }), /identity key is damaged/);
  refused(enc({ ...good, identity: 42 }), /no account state/);
  refused(enc({ ...good, contacts: [] }), /no account state/);
  refused(enc({ ...good, contacts: { bob: { identity_sig: '01'.repeat(32), identity_dh: '02'.repeat(32), verified: 'yes', key_changed: false } } }), /no account state/);
  refused(enc('[1]'), /no account state/);
  refused(enc('{"version":1,'), /no account state/);
  refused(Uint8Array.of(0xff, 0xfe, 0x7b, 0x7d), /no account state/);
  refused(enc(''), /no account state/);
});

test('contacts whose names are not usernames (or the account itself), or whose keys are not keys, are dropped; the rest keep their trust', () => {
  const key = (b) => b.repeat(32);
  const contact = { identity_sig: key('01'), identity_dh: key('02'), verified: true, key_changed: false };
  const state = parseLinkState(enc({
    version: 1, username: 'alice', identity: IDENTITY.sig + IDENTITY.dh,
    contacts: {
      bob: contact,
      alice: contact,
      dave_2: { ...contact, verified: false, key_changed: true },
      '\u202eevil\n': contact,
      Bob: contact,
      ' bob': contact,
      ab: contact,
      ['x'.repeat(33)]: contact,
      short_key: { ...contact, identity_dh: key('02').slice(2) },
      not_hex: { ...contact, identity_sig: key('zz') },
    },
  }), 'alice');
  assert.deepEqual(Object.keys(state.contacts).sort(), ['bob', 'dave_2']);
  assert.deepEqual(state.contacts.dave_2, { ...contact, verified: false, key_changed: true });
  // "__proto__" is a username by the grammar: kept as a plain entry, never the object's prototype.
  const proto = parseLinkState(enc(`{"version":1,"username":"alice","identity":"${IDENTITY.sig}${IDENTITY.dh}","contacts":{"__proto__":${JSON.stringify(contact)}}}`), 'alice');
  assert.deepEqual(Object.keys(proto.contacts), ['__proto__']);
  assert.equal(Object.getPrototypeOf(proto.contacts), Object.prototype);
});

test('names from the network are made inert for one line of text', () => {
  assert.equal(inertLine('a\u202eb\u2066c\u200fd\ne\u0000f'), 'abcdef');
  assert.equal([...inertLine('é'.repeat(100))].length, 64);
});

/** A signed first roster of room `room` (hex), alice alone, signed by `signer`. */
function rosterHex(room, signer = IdentityKeyPair.generate()) {
  const me = signer.public().signing;
  return toHex(writeRoster({ roomId: roomIdForName(room), version: 0n, epoch: 0, prev: new Uint8Array(32), admins: [me], members: [{ username: 'alice', identity: me }] }, signer).bytes);
}

test('the link state carries each room with a held roster, sorted by name, and reads them back', () => {
  const team = rosterHex('team');
  const alpha = rosterHex('alpha-1');
  const withRooms = { ...profile, rooms: { team: { roster: team, state: 'secret' }, 'alpha-1': { roster: alpha }, waiting: { state: null } } };
  const json = new TextDecoder().decode(linkStateBytes(withRooms));
  assert.ok(json.endsWith(`,"rooms":{"alpha-1":"${alpha}","team":"${team}"}}`), json);
  assert.doesNotMatch(json, /secret|waiting/, 'no room state, no room without a roster');
  const pair = LinkKeyPair.generate();
  const state = parseLinkState(pair.open(sealLink(pair.code, linkStateBytes(withRooms))), 'alice');
  assert.deepEqual(state.rooms, { 'alpha-1': alpha, team });
  // Upper-case hex reads too, kept lower case.
  const good = { version: 1, username: 'alice', identity: IDENTITY.sig + IDENTITY.dh, contacts: {} };
  assert.deepEqual(parseLinkState(enc({ ...good, rooms: { team: team.toUpperCase() } }), 'alice').rooms, { team });
  // A state from an older client, without rooms, opens with none.
  assert.deepEqual(parseLinkState(enc(good), 'alice').rooms, {});
});

test('a room whose name is not a room name, or whose roster does not parse as one of that room, is dropped; the rest are kept', () => {
  const good = { version: 1, username: 'alice', identity: IDENTITY.sig + IDENTITY.dh, contacts: {} };
  const team = rosterHex('team');
  // The last byte of the signature changed.
  const damaged = `${team.slice(0, -2)}${team.endsWith('00') ? '01' : '00'}`;
  const state = parseLinkState(enc({
    ...good,
    rooms: {
      team,
      Team: rosterHex('Team'),
      '#team': team,
      ['x'.repeat(33)]: rosterHex('x'.repeat(33)),
      other: team,
      short: rosterHex('short').slice(0, 100),
      odd: `${rosterHex('odd')}0`,
      not_hex: 'zz'.repeat(200),
      bad_signature: damaged,
      number: 42,
      nothing: null,
    },
  }), 'alice');
  assert.deepEqual(Object.keys(state.rooms), ['team']);
  // `rooms` of another shape: no rooms, the state still opens.
  for (const rooms of [[team], 'team', 7, null]) assert.deepEqual(parseLinkState(enc({ ...good, rooms }), 'alice').rooms, {}, JSON.stringify(rooms));
  // "__proto__" is a room name by the grammar: kept as a plain entry, never the object's prototype.
  const proto = parseLinkState(enc(`{"version":1,"username":"alice","identity":"${IDENTITY.sig}${IDENTITY.dh}","contacts":{},"rooms":{"__proto__":"${rosterHex('__proto__')}"}}`), 'alice');
  assert.deepEqual(Object.keys(proto.rooms), ['__proto__']);
  assert.equal(Object.getPrototypeOf(proto.rooms), Object.prototype);
});

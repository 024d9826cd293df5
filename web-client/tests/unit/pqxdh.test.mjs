// PQXDH's pieces beyond the vectors (pqxdh.json runs in vectors.test.mjs): FIPS 203's modulus
// check as written here agrees with @noble/post-quantum's own, coefficient by coefficient; KEM
// prekey signatures are bound to identity, device and id; the responder refuses what is not
// its own; a tampered ciphertext gives another SK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { toHex } from '../../src/bytes.js';
import { IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair } from '../../src/keys.js';
import { signDevicePrekey } from '../../src/devices.js';
import {
  KEM_PUBLIC_KEY_LEN, KemPrekeyPair, PqxdhAgreement, PqxdhError, kemHeaderFromBytes, kemHeaderToBytes,
  kemKeyIsValid, kemPrekeyFromBundle, verifyKemPrekey,
} from '../../src/pqxdh.js';

/** Whether noble's encapsulate takes `ek` (it runs the modulus check itself). */
const nobleTakes = (ek) => {
  try {
    ml_kem768.encapsulate(ek, new Uint8Array(32));
    return true;
  } catch {
    return false;
  }
};

/** Sets the `i`th 12-bit coefficient of `ek` to `value`. */
const setCoefficient = (ek, i, value) => {
  const o = Math.floor(i / 2) * 3;
  if (i % 2 === 0) {
    ek[o] = value & 0xff;
    ek[o + 1] = (ek[o + 1] & 0xf0) | (value >> 8);
  } else {
    ek[o + 1] = (ek[o + 1] & 0x0f) | ((value & 0x0f) << 4);
    ek[o + 2] = value >> 4;
  }
};

test('the modulus check (FIPS 203 §7.2): every coefficient below 3,329, as noble checks it; rho is not a coefficient', () => {
  const good = KemPrekeyPair.generate(1).publicKey;
  assert.equal(good.length, KEM_PUBLIC_KEY_LEN);
  assert.ok(kemKeyIsValid(good) && nobleTakes(good));
  for (const i of [0, 1, 2, 3, 255, 256, 511, 512, 766, 767]) {
    for (const [value, valid] of [[3328, true], [3329, false], [4095, false], [0, true]]) {
      const ek = good.slice();
      setCoefficient(ek, i, value);
      assert.equal(kemKeyIsValid(ek), valid, `coefficient ${i} = ${value}`);
      assert.equal(nobleTakes(ek), valid, `noble, coefficient ${i} = ${value}`);
    }
  }
  // The last 32 bytes are the matrix seed rho: any value.
  const rho = good.slice();
  rho.fill(0xff, 1152);
  assert.ok(kemKeyIsValid(rho) && nobleTakes(rho));
  assert.ok(!kemKeyIsValid(good.subarray(1)));
  assert.ok(!kemKeyIsValid(new Uint8Array(KEM_PUBLIC_KEY_LEN).fill(0xff)));
});

/** Bob (device 2) with a v2 signed prekey, a one-time prekey and a KEM prekey; his bundle. */
function bobAt(device = 2) {
  const id = IdentityKeyPair.generate();
  const spk = SignedPrekeyPair.generate(4, id);
  spk.signature = signDevicePrekey(id, device, spk.publicKey);
  const opk = OneTimePrekeyPair.generate(5);
  const kem = KemPrekeyPair.generate(6);
  const bundle = { identity: id.public(), signed_prekey: spk.public(), one_time_prekey: opk.public() };
  return { id, spk, opk, kem, bundle, device };
}

const refusal = (f) => {
  try {
    f();
    return 'accept';
  } catch (e) {
    assert.ok(e instanceof PqxdhError, String(e));
    return e.kind;
  }
};

test('a KEM prekey signature binds the identity, the device and the id; each other one is BadKemPrekeySignature', () => {
  const bob = bobAt();
  const alice = IdentityKeyPair.generate();
  const good = bob.kem.publicForDevice(2, bob.id);
  assert.ok(verifyKemPrekey(good, bob.id.public().signing, 2));
  const stranger = IdentityKeyPair.generate();
  const flipped = { ...good, public: good.public.slice() };
  flipped.public[700] ^= 1;
  const cases = {
    'another device': bob.kem.publicForDevice(3, bob.id),
    'another id': { ...good, id: 7 },
    'another identity': bob.kem.publicForDevice(2, stranger),
    'a bit of ek': flipped,
    'a bit of the signature': { ...good, signature: good.signature.map((b, i) => (i === 9 ? b ^ 1 : b)) },
  };
  for (const [what, kem] of Object.entries(cases)) {
    assert.ok(!verifyKemPrekey(kem, bob.id.public().signing, 2), what);
    assert.equal(refusal(() => PqxdhAgreement.initiate(alice, bob.bundle, 2, kem)), 'BadKemPrekeySignature', what);
  }
  // Asked for another device than the one whose keys these are: the signed prekey says so first.
  assert.equal(refusal(() => PqxdhAgreement.initiate(alice, bob.bundle, 3, good)), 'BadPrekeySignature');
  // No KEM prekey at all, or a key of another length, never becomes X3DH.
  assert.equal(refusal(() => kemPrekeyFromBundle(null)), 'MissingKemPrekey');
  for (const len of [0, 1183, 1185]) {
    assert.equal(refusal(() => kemPrekeyFromBundle({ id: 6, key: new Uint8Array(len), signature: good.signature })), 'KemKeyLength');
    assert.equal(refusal(() => PqxdhAgreement.initiate(alice, bob.bundle, 2, { ...good, public: new Uint8Array(len) })), 'KemKeyLength');
  }
  // A small-order one-time prekey is still refused.
  const zero = { ...bob.bundle, one_time_prekey: { id: 5, public: new Uint8Array(32) } };
  assert.equal(refusal(() => PqxdhAgreement.initiate(alice, zero, 2, good)), 'NonContributory');
});

test('both sides agree with fresh randomness; the responder refuses other prekeys; a tampered ciphertext gives another SK', () => {
  const bob = bobAt();
  const alice = IdentityKeyPair.generate();
  const published = bob.kem.publicForDevice(2, bob.id);
  const one = PqxdhAgreement.initiate(alice, bob.bundle, 2, published);
  const two = PqxdhAgreement.initiate(alice, bob.bundle, 2, published);
  assert.notEqual(toHex(one.kem.ciphertext), toHex(two.kem.ciphertext), 'fresh m each time');
  assert.notEqual(toHex(one.header.ephemeral), toHex(two.header.ephemeral));
  const kem = kemHeaderFromBytes(kemHeaderToBytes(one.kem));
  const theirs = PqxdhAgreement.respond(bob.id, bob.spk, bob.opk, bob.kem, one.header, kem);
  assert.equal(toHex(theirs.sk), toHex(one.agreement.sk));
  assert.equal(toHex(theirs.ad), toHex(one.agreement.ad));
  assert.equal(refusal(() => PqxdhAgreement.respond(bob.id, bob.spk, bob.opk, bob.kem, one.header, { ...kem, kem_id: 7 })), 'WrongKemPrekey');
  assert.equal(refusal(() => PqxdhAgreement.respond(bob.id, bob.spk, null, bob.kem, one.header, kem)), 'WrongOneTimePrekey');
  assert.equal(refusal(() => PqxdhAgreement.respond(bob.id, bob.spk, bob.opk, bob.kem, one.header, { ...kem, ciphertext: kem.ciphertext.subarray(1) })), 'CiphertextLength');
  assert.equal(refusal(() => kemHeaderFromBytes(kemHeaderToBytes(kem).subarray(0, 1091))), 'CiphertextLength');
  const tampered = { ...kem, ciphertext: kem.ciphertext.slice() };
  tampered.ciphertext[600] ^= 0x80;
  const other = PqxdhAgreement.respond(bob.id, bob.spk, bob.opk, bob.kem, one.header, tampered);
  assert.notEqual(toHex(other.sk), toHex(one.agreement.sk));
  // Another KEM key pair under the same id cannot decapsulate it either.
  const impostor = new KemPrekeyPair(6, new Uint8Array(64).fill(9));
  assert.notEqual(toHex(PqxdhAgreement.respond(bob.id, bob.spk, bob.opk, impostor, one.header, kem).sk), toHex(one.agreement.sk));
});

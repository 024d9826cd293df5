#!/usr/bin/env python3
"""An implementation apart from proto-core and the web client checks pqxdh.json, from
docs/PROTOCOL.md §4.8 alone: kyber-py (a pure-Python FIPS 203, not RustCrypto's ml-kem nor
noble's), pyca/cryptography (X25519, Ed25519, HKDF) and hashlib. For every agreement case it
recomputes the KEM key from the seed, both signatures, the encapsulation, DH1..DH4, SK and the
first message's layout. Run by ci/independent-vectors in a throwaway virtualenv."""
import hashlib
import json
import os
import sys
from kyber_py.ml_kem import ML_KEM_768
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes
h = bytes.fromhex
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(root, 'vectors', 'pqxdh.json')) as f:
    v = json.load(f)
def check(ok, what):
    if not ok:
        sys.exit('independent check failed: ' + what)


def x(priv, pub): return X25519PrivateKey.from_private_bytes(priv).exchange(X25519PublicKey.from_public_bytes(pub))
def xpub(priv): return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes_raw()
n = 0
for c in v['cases']:
    if c['kind'] != 'agreement': continue
    i, r = c['initiator'], c['responder']
    seed = h(r['kem_seed'])
    ek, dk = ML_KEM_768._keygen_internal(seed[:32], seed[32:])
    check(ek.hex() == r['kem_public'], 'ek')
    dev = r['device_id'].to_bytes(4, 'big'); kid = r['kem_prekey_id'].to_bytes(4, 'big')
    bsig = Ed25519PrivateKey.from_private_bytes(h(r['identity_sig_private']))
    check(bsig.sign(b'Sealroom KEM PK v1' + dev + kid + ek).hex() == r['kem_signature'], 'kem sig')
    spk_pub = xpub(h(r['signed_prekey_private']))
    check(bsig.sign(b'Sealroom SPK v2' + dev + spk_pub).hex() == r['signed_prekey_signature'], 'spk sig')
    ss, ct = ML_KEM_768._encaps_internal(ek, h(i['kem_message']))
    check(ct.hex() == c['kem_ciphertext'] and ss.hex() == c['kem_shared_secret'], 'encaps')
    check(ML_KEM_768.decaps(dk, ct) == ss, 'decaps')
    eph = h(i['ephemeral_private'])
    dh = [x(h(i['identity_dh_private']), spk_pub), x(eph, xpub(h(r['identity_dh_private']))), x(eph, spk_pub)]
    if r['one_time_prekey_private']: dh.append(x(eph, xpub(h(r['one_time_prekey_private']))))
    check([d.hex() for d in dh] == c['dh'], 'dh')
    ikm = b'\xff' * 32 + b''.join(dh) + ss
    info = b'Sealroom PQXDH v1' + hashlib.sha256(ek).digest() + hashlib.sha256(ct).digest()
    sk = HKDF(hashes.SHA256(), 32, b'\0' * 32, info).derive(ikm)
    check(sk.hex() == c['sk'], 'sk')
    kem_header = kid + ct
    check(kem_header.hex() == c['kem_header'], 'kem header')
    fm = h(c['first_message'])
    check(fm[0] == 3 and fm[1:107].hex() == c['prekey_header'] and fm[107:107 + 1092] == kem_header, 'first message layout')
    n += 1
if n < 2:
    sys.exit('independent check: fewer agreement cases than expected (%d)' % n)
print('independent check: %d agreement cases agree (ek, both signatures, ct, ss, DH1..DH4, SK, first-message layout)' % n)

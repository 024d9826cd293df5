// @ts-check
/**
 * Rooms with sender keys (proto-core `room/`): per room and epoch each device of each member
 * has a random chain key and an Ed25519 signing key, handed to the others in a 121-byte
 * `SenderKeyDistribution` inside the pairwise sessions. A device is known in every room by its
 * room sender id (`roomSenderId`). Message keys come from `KDF_CK`, AEAD key and nonce from
 * `HKDF(32 zero bytes, mk, "Sealroom Room v1", 44)`; a room message is
 * `01 || room id (16) || sender id (32) || epoch || iteration || ciphertext || tag || signature`,
 * the first 57 bytes being the associated data and the signature covering all before it.
 * Membership is the caller's (the signed roster); a removal starts a new epoch.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, equal, fromHex, randomBytes, readU32be, toHex, u32be } from './bytes.js';
import { AEAD_TAG_LEN, open, seal } from './aead.js';
import { ROOM_INFO, messageKeyMaterial } from './kdf.js';
import { ed25519Public, ed25519Sign, ed25519Verify } from './keys.js';
import { DEFAULT_MAX_SKIP, SkippedKeys, StateError, StateReader, chainStep, walk } from './ratchet.js';

export const ROOM_ID_LEN = 16;
export const DISTRIBUTION_LEN = 121;
export const ROOM_VERSION = 1;
export const ROOM_HEADER_LEN = 57;
export const ROOM_OVERHEAD = ROOM_HEADER_LEN + AEAD_TAG_LEN + 64;
export const DEFAULT_ROOM_MEMBERS = 32;
/** The last epoch a room can reach (a u32 on the wire and in saved state). */
export const MAX_EPOCH = 0xffffffff;

/**
 * The 16-byte room id of a server room name (proto-core `room_id_for_name`, PROTOCOL.md §4.4):
 * `SHA-256("Sealroom Room ID v1" || name)[..16]`.
 * @param {string} name
 */
export function roomIdForName(name) {
  const enc = new TextEncoder();
  return sha256(concat(enc.encode('Sealroom Room ID v1'), enc.encode(name))).slice(0, ROOM_ID_LEN);
}

/**
 * The 32-byte id a device is known by in every room (proto-core `room_sender_id`, PROTOCOL.md
 * §4.4): `SHA-256("Sealroom Room Sender v1" || IKs || device_id (u32 BE))`.
 * @param {Uint8Array} identitySig the account's 32-byte IKs
 * @param {number} device
 */
export function roomSenderId(identitySig, device) {
  if (identitySig.length !== 32) throw new RangeError('an identity key is 32 bytes');
  return sha256(concat(new TextEncoder().encode('Sealroom Room Sender v1'), identitySig, u32be(device)));
}

/** A room error; `name` is the error type (`RoomDecryptError`, `DistributionError`, `MembershipError`), `kind` the variant. */
export class RoomError extends Error {
  /** @param {string} type @param {string} kind */
  constructor(type, kind) {
    super(`${type}: ${kind}`);
    this.name = type;
    this.kind = kind;
  }
}

/** One member's sender key for an epoch. */
export class SenderKeyDistribution {
  /**
   * @param {Uint8Array} room_id @param {Uint8Array} sender @param {number} epoch @param {number} iteration
   * @param {Uint8Array} chain_key @param {Uint8Array} signing_public
   */
  constructor(room_id, sender, epoch, iteration, chain_key, signing_public) {
    this.room_id = room_id;
    this.sender = sender;
    this.epoch = epoch;
    this.iteration = iteration;
    this.chain_key = chain_key;
    this.signing_public = signing_public;
  }

  /** @param {Uint8Array} b */
  static fromBytes(b) {
    if (b.length !== DISTRIBUTION_LEN) throw new RoomError('DistributionError', 'Malformed');
    if (b[0] !== ROOM_VERSION) throw new RoomError('DistributionError', 'UnknownVersion');
    return new SenderKeyDistribution(b.slice(1, 17), b.slice(17, 49), readU32be(b, 49), readU32be(b, 53), b.slice(57, 89), b.slice(89, 121));
  }

  toBytes() {
    return concat(Uint8Array.of(ROOM_VERSION), this.room_id, this.sender, u32be(this.epoch), u32be(this.iteration), this.chain_key, this.signing_public);
  }
}

/**
 * @typedef {{epoch: number, key: Uint8Array, iteration: number, verifying: Uint8Array}} MemberChain
 * @typedef {{sender: Uint8Array, chain: MemberChain | null}} MemberSlot
 */

/**
 * One device's view of a room. `ownSender` is this device's room sender id (what the others
 * know it by; the account's IKs in state kept from before sender ids); `members` are the other
 * sending devices, by sender id.
 */
export class Room {
  /**
   * @param {Uint8Array} roomId @param {Uint8Array} ownSender our room sender id @param {number} epoch
   * @param {Uint8Array} chainKey @param {Uint8Array} signingSecret
   */
  constructor(roomId, ownSender, epoch, chainKey, signingSecret) {
    this.roomId = roomId;
    this.ownSender = ownSender;
    this.epoch = epoch;
    this.own = { key: chainKey, iteration: 0, signing: signingSecret };
    /** @type {MemberSlot[]} */
    this.members = [];
    this.capacity = DEFAULT_ROOM_MEMBERS;
    this.skipped = new SkippedKeys(DEFAULT_MAX_SKIP);
  }

  /**
   * A room with no other members yet and a fresh sender key (given keys: test vectors only).
   * @param {Uint8Array} roomId @param {Uint8Array} ownSender @param {number} epoch
   * @param {Uint8Array} [chainKey] @param {Uint8Array} [signingSecret]
   */
  static create(roomId, ownSender, epoch, chainKey, signingSecret) {
    return new Room(roomId, ownSender, epoch, chainKey ?? randomBytes(32), signingSecret ?? randomBytes(32));
  }

  /** @param {Uint8Array} sender */
  slot(sender) {
    return this.members.find((m) => equal(m.sender, sender));
  }

  /** @param {Uint8Array} sender */
  isMember(sender) {
    return this.slot(sender) !== undefined;
  }

  /** @param {Uint8Array} sender */
  addMember(sender) {
    if (this.isMember(sender) || equal(sender, this.ownSender)) throw new RoomError('MembershipError', 'AlreadyMember');
    if (this.members.length >= this.capacity) throw new RoomError('MembershipError', 'RoomFull');
    this.members.push({ sender, chain: null });
  }

  /**
   * Removes a member and starts the next epoch (given keys: test vectors only).
   * @param {Uint8Array} sender @param {Uint8Array} [chainKey] @param {Uint8Array} [signingSecret]
   */
  removeMember(sender, chainKey, signingSecret) {
    // No epoch after 2³² − 1 (proto-core's checked_add): refused before anything changes.
    if (this.epoch >= MAX_EPOCH) throw new RoomError('MembershipError', 'StaleEpoch');
    const i = this.members.findIndex((m) => equal(m.sender, sender));
    if (i < 0) throw new RoomError('MembershipError', 'NotMember');
    this.members.splice(i, 1);
    this.skipped.removeChain(sender);
    this.startEpoch(this.epoch + 1, chainKey, signingSecret);
  }

  /**
   * Removes every one of `senders` the room tracks (the devices of one member who left) and, if
   * any was tracked, starts the next epoch once; returns how many were removed. Nothing changes
   * when none was tracked (0), or when there is no next epoch (`StaleEpoch`, thrown).
   * proto-core `Room::remove_members`.
   * @param {Uint8Array[]} senders
   */
  removeMembers(senders) {
    if (!senders.some((s) => this.isMember(s))) return 0;
    if (this.epoch >= MAX_EPOCH) throw new RoomError('MembershipError', 'StaleEpoch');
    let removed = 0;
    for (const sender of senders) {
      const i = this.members.findIndex((m) => equal(m.sender, sender));
      if (i < 0) continue;
      this.members.splice(i, 1);
      this.skipped.removeChain(sender);
      removed += 1;
    }
    this.startEpoch(this.epoch + 1);
    return removed;
  }

  /**
   * Moves to a later epoch with a fresh chain and signing key.
   * @param {number} epoch @param {Uint8Array} [chainKey] @param {Uint8Array} [signingSecret]
   */
  startEpoch(epoch, chainKey, signingSecret) {
    if (!Number.isInteger(epoch) || epoch > MAX_EPOCH) throw new RoomError('MembershipError', 'StaleEpoch');
    if (epoch <= this.epoch) throw new RoomError('MembershipError', 'StaleEpoch');
    this.epoch = epoch;
    this.own = { key: chainKey ?? randomBytes(32), iteration: 0, signing: signingSecret ?? randomBytes(32) };
    for (const m of this.members) {
      if (m.chain && m.chain.epoch < epoch) {
        m.chain = null;
        this.skipped.removeChain(m.sender);
      }
    }
  }

  /** Our sender key at its current iteration. */
  distribution() {
    return new SenderKeyDistribution(this.roomId, this.ownSender, this.epoch, this.own.iteration, this.own.key, ed25519Public(this.own.signing));
  }

  /**
   * Takes in a member's sender key that came through the pairwise session with the device whose
   * room sender id is `from`.
   * @param {SenderKeyDistribution} dist @param {Uint8Array} from
   */
  handleDistribution(dist, from) {
    const err = (/** @type {string} */ k) => new RoomError('DistributionError', k);
    if (!equal(dist.room_id, this.roomId)) throw err('WrongRoom');
    if (!equal(dist.sender, from)) throw err('SenderMismatch');
    if (dist.epoch < this.epoch) throw err('WrongEpoch');
    const slot = this.slot(dist.sender);
    if (!slot) throw err('NotMember');
    if (slot.chain && slot.chain.epoch > dist.epoch) throw err('WrongEpoch');
    if (slot.chain && slot.chain.epoch === dist.epoch) {
      if (equal(slot.chain.verifying, dist.signing_public)) return;
      throw err('EpochConflict');
    }
    slot.chain = { epoch: dist.epoch, key: dist.chain_key, iteration: dist.iteration, verifying: dist.signing_public };
    this.skipped.removeChain(dist.sender);
  }

  /** @param {Uint8Array} plaintext */
  encrypt(plaintext) {
    if (this.own.iteration === 0xffffffff) throw new RoomError('RoomEncryptError', 'ChainExhausted');
    const header = concat(Uint8Array.of(ROOM_VERSION), this.roomId, this.ownSender, u32be(this.epoch), u32be(this.own.iteration));
    const { mk, next } = chainStep(this.own.key);
    const { key, nonce } = messageKeyMaterial(mk, ROOM_INFO);
    const signed = concat(header, seal(key, nonce, header, plaintext));
    const out = concat(signed, ed25519Sign(this.own.signing, signed));
    this.own.key = next;
    this.own.iteration += 1;
    return out;
  }

  /**
   * Verifies and decrypts; on any error the room is unchanged.
   * @param {Uint8Array} message
   * @returns {{sender: Uint8Array, iteration: number, plaintext: Uint8Array}}
   */
  decrypt(message) {
    const err = (/** @type {string} */ k) => new RoomError('RoomDecryptError', k);
    if (message.length < ROOM_OVERHEAD) throw err('Malformed');
    const signed = message.subarray(0, message.length - 64);
    const signature = message.subarray(message.length - 64);
    const header = signed.subarray(0, ROOM_HEADER_LEN);
    const sealed = signed.subarray(ROOM_HEADER_LEN);
    if (header[0] !== ROOM_VERSION) throw err('Malformed');
    const rid = header.subarray(1, 17);
    const sender = header.slice(17, 49);
    const epoch = readU32be(header, 49);
    const i = readU32be(header, 53);
    if (!equal(rid, this.roomId)) throw err('WrongRoom');
    const chain = this.slot(sender)?.chain;
    if (!chain) throw err('UnknownSender');
    if (epoch !== chain.epoch || epoch < this.epoch) throw err('WrongEpoch');
    if (!ed25519Verify(chain.verifying, signed, signature)) throw err('BadSignature');
    /** @param {Uint8Array} mk */
    const openWith = (mk) => {
      const { key, nonce } = messageKeyMaterial(mk, ROOM_INFO);
      try {
        return open(key, nonce, header, sealed);
      } catch {
        throw err('Authentication');
      }
    };
    const idx = this.skipped.find(sender, i);
    if (idx >= 0) {
      const plaintext = openWith(this.skipped.entries[idx].key);
      this.skipped.remove(idx);
      return { sender, iteration: i, plaintext };
    }
    if (i < chain.iteration) throw err('Replay');
    if (i - chain.iteration > this.skipped.capacity) throw err('TooManySkipped');
    const { mk, next } = walk(chain.key, chain.iteration, i);
    const plaintext = openWith(mk);
    this.skipped.storeRange(sender, chain.key, chain.iteration, i);
    chain.key = next;
    chain.iteration = Math.min(i + 1, 0xffffffff);
    return { sender, iteration: i, plaintext };
  }

  /** Size of the serialized state: 127 + 105 × MEMBERS + 68 × MAX_SKIP (7,839). */
  static get STATE_LEN() {
    return 125 + 105 * DEFAULT_ROOM_MEMBERS + 2 + SkippedKeys.ENTRY_LEN * DEFAULT_MAX_SKIP;
  }

  /**
   * The whole state in proto-core's layout (`room/state.rs`, `Room::write_state`); it holds
   * every secret of the room: store it encrypted.
   */
  writeState() {
    const caps = new Uint8Array(4);
    new DataView(caps.buffer).setUint16(0, this.capacity, false);
    new DataView(caps.buffer).setUint16(2, this.skipped.capacity, false);
    /** @type {Uint8Array[]} */
    const slots = [];
    for (let i = 0; i < this.capacity; i++) {
      const m = this.members[i];
      if (!m) {
        slots.push(new Uint8Array(105));
        continue;
      }
      const c = m.chain;
      slots.push(concat(
        Uint8Array.of(1 | (c ? 2 : 0)), m.sender, u32be(c ? c.epoch : 0), c ? c.key : new Uint8Array(32),
        u32be(c ? c.iteration : 0), c ? c.verifying : new Uint8Array(32),
      ));
    }
    return concat(
      Uint8Array.of(ROOM_VERSION), this.roomId, this.ownSender, u32be(this.epoch), this.own.key,
      u32be(this.own.iteration), this.own.signing, caps, ...slots, this.skipped.write(),
    );
  }

  /** Restores from `writeState` bytes (or proto-core's). @param {Uint8Array} bytes */
  static readState(bytes) {
    const r = new StateReader(bytes);
    if (r.u8() !== ROOM_VERSION) throw new StateError('UnknownVersion');
    const roomId = r.take(ROOM_ID_LEN);
    const ownSender = r.take(32);
    const epoch = r.u32();
    const key = r.take(32);
    const iteration = r.u32();
    const signing = r.take(32);
    const storedMembers = r.u16();
    const storedSkip = r.u16();
    const room = new Room(roomId, ownSender, epoch, key, signing);
    room.own.iteration = iteration;
    for (let i = 0; i < storedMembers; i++) {
      const flags = r.u8();
      const sender = r.take(32);
      const chainEpoch = r.u32();
      const chainKey = r.take(32);
      const chainIteration = r.u32();
      const verifying = r.take(32);
      if ((flags & ~3) !== 0 || flags === 2) throw new StateError('Malformed');
      if (!(flags & 1)) continue;
      if (room.members.length >= room.capacity) throw new StateError('Malformed');
      room.members.push({ sender, chain: flags & 2 ? { epoch: chainEpoch, key: chainKey, iteration: chainIteration, verifying } : null });
    }
    const skipped = SkippedKeys.read(r.rest(), storedSkip, DEFAULT_MAX_SKIP);
    if (!skipped) throw new StateError('Malformed');
    room.skipped = skipped;
    return room;
  }

  /** `writeState` as hex, for the keystore's JSON. */
  toState() {
    return toHex(this.writeState());
  }

  /** @param {string} hex */
  static fromState(hex) {
    return Room.readState(fromHex(hex));
  }
}

// @ts-check
/**
 * Every message two Sealroom endpoints exchange (proto-core `message.rs`): the tag is the
 * position in `MESSAGES`, fields in wire order with their encodings. A decoded message is a
 * plain object `{ type, ...fields }` with proto-core's field names: strings, `Uint8Array` for
 * keys, signatures and bodies, numbers for u8/u16/u32, BigInt for u64, `null` for `None`.
 * Lists (`List<T>`) are read as their bytes first and checked after the whole message, exactly
 * as proto-core does, so the same input gives the same error. Framing lives in frames.js.
 */
import { DecodeError, Reader, Writer } from './postcard.js';

export const MAX_PREKEYS_PER_UPLOAD = 100;
export const MAX_RECOVERY_CODES = 16;
export const MAX_ROOM_MEMBERS = 256;
export const MAX_ROOMS_LISTED = 1024;
export const MAX_DEVICES = 16;
export const MAX_DEVICES_LISTED = 64;
/** One-time KEM prekeys in one `UploadKemPrekeys` (PROTOCOL.md §3.3). */
export const MAX_KEM_PREKEYS_PER_UPLOAD = 32;
/** An ML-KEM-768 encapsulation key: a `KemPrekey` key of any other length is `Malformed` (§3.1). */
export const KEM_PUBLIC_KEY_LEN = 1184;

/** Error codes (docs/PROTOCOL.md §3.2). */
export const ErrorCode = Object.freeze({
  BAD_FRAME: 1, UNSUPPORTED_VERSION: 2, TOO_LARGE: 3, BAD_STATE: 4, AUTH_FAILED: 10,
  RATE_LIMITED: 11, WEAK_PASSWORD: 12, USERNAME_TAKEN: 13, INVALID_INPUT: 14, CODE_REUSED: 15,
  SESSION_EXPIRED: 16, NOT_FOUND: 20, FORBIDDEN: 21, QUOTA_FULL: 22, ROOM_TAKEN: 23, CONFLICT: 24,
  STALE_DEVICES: 25, BUSY: 30, INTERNAL: 31,
});

export const ROOM_CHANGES = ['Joined', 'Left', 'Removed', 'Invited', 'Roster'];

/**
 * @typedef {'str'|'bytes'|'key32'|'sig64'|'u8'|'u16'|'u32'|'u64'|'roomchange'
 *   |{struct: any[]}|{option: any}|{list: any, max: number}} FieldType
 */

const SignedPrekey = { struct: [['id', 'u32'], ['key', 'key32'], ['signature', 'sig64']] };
const OneTimePrekey = { struct: [['id', 'u32'], ['key', 'key32']] };
/** `key` is `bytes` that must be exactly `KEM_PUBLIC_KEY_LEN` long (checked once the message decoded, as proto-core's `Message::validate`). */
const KemPrekey = { struct: [['id', 'u32'], ['key', 'bytes'], ['signature', 'sig64']] };
const DeviceKeys = {
  struct: [
    ['identity_sig', 'key32'], ['identity_dh', 'key32'], ['signed_prekey', SignedPrekey],
    ['one_time_prekeys', { list: OneTimePrekey, max: MAX_PREKEYS_PER_UPLOAD }],
  ],
};
const DeviceBody = { struct: [['device', 'u32'], ['body', 'bytes']] };
const DeviceInfo = {
  struct: [['device_id', 'u32'], ['name', 'str'], ['added_at', 'u64'], ['last_seen', 'u64'], ['revoked_at', { option: 'u64' }]],
};
const PrekeyBundle = {
  struct: [
    ['username', 'str'], ['identity_sig', 'key32'], ['identity_dh', 'key32'],
    ['signed_prekey', SignedPrekey], ['one_time_prekey', { option: OneTimePrekey }],
  ],
};

/** @type {[string, [string, FieldType][]][]} the variants in tag order */
export const MESSAGES = [
  ['Register', [['name', 'str'], ['email', 'str'], ['username', 'str'], ['password', 'str'], ['device', DeviceKeys]]],
  ['TotpEnrollment', [['uri', 'str']]],
  ['ConfirmTotp', [['code', 'str']]],
  ['EnrollmentComplete', [['recovery_codes', { list: 'str', max: MAX_RECOVERY_CODES }]]],
  ['Login', [['username', 'str'], ['password', 'str']]],
  ['TotpRequired', []],
  ['TotpCode', [['code', 'str']]],
  ['RecoveryCode', [['code', 'str']]],
  ['Resume', [['username', 'str'], ['token', 'key32']]],
  ['Session', [['token', 'key32'], ['expires_at', 'u64']]],
  ['Logout', []],
  ['PublishIdentity', [['identity_sig', 'key32'], ['identity_dh', 'key32']]],
  ['PublishSignedPrekey', [['prekey', SignedPrekey]]],
  ['UploadPrekeys', [['prekeys', { list: OneTimePrekey, max: MAX_PREKEYS_PER_UPLOAD }]]],
  ['FetchBundle', [['username', 'str']]],
  ['Bundle', [['bundle', PrekeyBundle]]],
  ['PrekeysLow', [['remaining', 'u32']]],
  ['SendToUser', [['to', 'str'], ['client_id', 'u64'], ['body', 'bytes']]],
  ['SendToRoom', [['room', 'str'], ['client_id', 'u64'], ['body', 'bytes']]],
  ['Accepted', [['client_id', 'u64'], ['server_id', 'u64']]],
  ['Deliver', [['server_id', 'u64'], ['from', 'str'], ['room', { option: 'str' }], ['sent_at', 'u64'], ['body', 'bytes'], ['device', 'u32']]],
  ['Ack', [['server_id', 'u64']]],
  ['Delivered', [['server_id', 'u64'], ['to', 'str'], ['device', 'u32']]],
  ['CreateRoom', [['room', 'str']]],
  ['Invite', [['room', 'str'], ['username', 'str']]],
  ['Leave', [['room', 'str']]],
  ['Remove', [['room', 'str'], ['username', 'str']]],
  ['ListRooms', []],
  ['Rooms', [['rooms', { list: 'str', max: MAX_ROOMS_LISTED }]]],
  ['ListMembers', [['room', 'str']]],
  ['Members', [['room', 'str'], ['admin', 'str'], ['members', { list: 'str', max: MAX_ROOM_MEMBERS }]]],
  ['RoomChanged', [['room', 'str'], ['username', 'str'], ['change', 'roomchange']]],
  ['Ok', []],
  ['Error', [['code', 'u16'], ['text', 'str']]],
  ['Ping', [['nonce', 'u64']]],
  ['Pong', [['nonce', 'u64']]],
  ['AcceptInvite', [['room', 'str']]],
  ['DeclineInvite', [['room', 'str']]],
  ['ListInvitations', []],
  ['Invitations', [['rooms', { list: 'str', max: MAX_ROOMS_LISTED }], ['from', { list: 'str', max: MAX_ROOMS_LISTED }]]],
  ['ChangePassword', [['current', 'str'], ['new', 'str'], ['code', 'str']]],
  ['ReenrollTotp', [['password', 'str'], ['code', 'str']]],
  ['ConfirmNewTotp', [['code', 'str']]],
  ['RegenerateRecoveryCodes', [['password', 'str'], ['code', 'str']]],
  ['RecoveryCodes', [['codes', { list: 'str', max: MAX_RECOVERY_CODES }]]],
  ['CountRecoveryCodes', []],
  ['RecoveryCodesLeft', [['remaining', 'u32']]],
  ['DeleteAccount', [['password', 'str'], ['code', 'str']]],
  // Signed rosters (PROTOCOL.md §4.7), tags 48-50.
  ['PublishRoster', [['room', 'str'], ['roster', 'bytes']]],
  ['FetchRoster', [['room', 'str'], ['version', 'u64']]],
  ['Roster', [['room', 'str'], ['roster', 'bytes']]],
  // Devices (PROTOCOL.md §4.6, §6), tags 51-56.
  ['FetchDevices', [['username', 'str']]],
  ['Devices', [['username', 'str'], ['identity_sig', 'key32'], ['identity_dh', 'key32'], ['devices', { list: 'u32', max: MAX_DEVICES }]]],
  ['SendToDevices', [['to', 'str'], ['client_id', 'u64'], ['bodies', { list: DeviceBody, max: MAX_DEVICES }]]],
  ['NameDevice', [['name', 'str']]],
  ['ListDevices', []],
  ['DeviceList', [['current', 'u32'], ['devices', { list: DeviceInfo, max: MAX_DEVICES_LISTED }]]],
  // Linked devices (PROTOCOL.md §4.6, §6), tags 57-64.
  ['LoginDevice', [['username', 'str'], ['password', 'str'], ['device', { option: 'u32' }]]],
  ['SendLink', [['link_id', 'bytes'], ['message', 'bytes']]],
  ['FetchLink', [['link_id', 'bytes']]],
  ['LinkMessage', [['message', 'bytes']]],
  ['AddDevice', [['name', 'str']]],
  ['DeviceAdded', [['device', 'u32']]],
  ['FetchDeviceBundle', [['username', 'str'], ['device', 'u32']]],
  ['RevokeDevice', [['device', 'u32']]],
  ['SendSynced', [['to', 'str'], ['client_id', 'u64'], ['bodies', { list: DeviceBody, max: MAX_DEVICES }], ['own', { list: DeviceBody, max: MAX_DEVICES }]]],
  // PQXDH (PROTOCOL.md §4.8), tags 66-69.
  ['UploadKemPrekeys', [['last_resort', { option: KemPrekey }], ['one_time', { list: KemPrekey, max: MAX_KEM_PREKEYS_PER_UPLOAD }]]],
  ['FetchKemBundle', [['username', 'str'], ['device', 'u32']]],
  ['KemBundle', [['bundle', PrekeyBundle], ['kem_prekey', { option: KemPrekey }]]],
  ['KemPrekeysLow', [['remaining', 'u32']]],
];

/** How many message variants there are (proto-core's tag count); a tag at or past it is `UnknownTag`. */
export const TAG_COUNT = 70;

const TAGS = new Map(MESSAGES.map(([name], i) => [name, i]));

/**
 * Reads one field. Lists are returned as `{ pendingList, type, max }` to be checked later.
 * @param {Reader} r @param {FieldType} t @param {any[]} lists
 * @returns {any}
 */
function readField(r, t, lists) {
  if (typeof t === 'string') {
    switch (t) {
      case 'str': return r.str();
      case 'bytes': return r.bytes();
      case 'key32': return r.take(32).slice();
      case 'sig64': return r.take(64).slice();
      case 'u8': return r.u8();
      case 'u16': return r.u16();
      case 'u32': return r.u32();
      case 'u64': return r.u64();
      case 'roomchange': {
        const tag = r.u32();
        if (tag >= ROOM_CHANGES.length) throw new DecodeError('UnknownTag');
        return ROOM_CHANGES[tag];
      }
    }
    throw new Error(`unknown field type ${t}`);
  }
  if ('struct' in t) {
    /** @type {Record<string, any>} */
    const out = {};
    for (const [name, ft] of t.struct) out[name] = readField(r, ft, lists);
    return out;
  }
  if ('option' in t) return r.optionTag() ? readField(r, t.option, lists) : null;
  // A list: its bytes now, its items once the whole message has decoded.
  const holder = { items: /** @type {any[]} */ ([]), raw: r.bytes(), type: t.list, max: t.max };
  lists.push(holder);
  return holder;
}

/** Decodes and checks a list's items (proto-core `List::validate`). @param {any} holder */
function validateList(holder) {
  const r = new Reader(holder.raw);
  const items = [];
  while (r.remaining > 0) {
    if (items.length + 1 > holder.max) throw new DecodeError('TooManyItems');
    items.push(readField(r, holder.type, []));
  }
  return items;
}

/** Replace list holders by their items, in place. @param {any} v */
function resolveLists(v) {
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    for (const [k, x] of Object.entries(v)) {
      if (x && typeof x === 'object' && 'raw' in x && 'max' in x) v[k] = x.items;
      else resolveLists(x);
    }
  }
}

/**
 * Decodes one postcard `Message` that must use every byte of `body`.
 * @param {Uint8Array} body
 * @returns {Record<string, any> & { type: string }}
 */
export function decodeMessage(body) {
  const r = new Reader(body);
  const tag = r.u32();
  const variant = MESSAGES[tag];
  if (!variant) throw new DecodeError('UnknownTag');
  /** @type {any[]} */
  const lists = [];
  /** @type {Record<string, any> & { type: string }} */
  const msg = { type: variant[0] };
  for (const [name, ft] of variant[1]) msg[name] = readField(r, ft, lists);
  if (r.remaining !== 0) throw new DecodeError('TrailingBytes');
  for (const l of lists) l.items = validateList(l);
  resolveLists(msg);
  // proto-core `Message::validate`: an invitation list names one inviter per room.
  if (msg.type === 'Invitations' && msg.rooms.length !== msg.from.length) throw new DecodeError('Malformed');
  // A KEM key of any length but 1,184 does not decode: the last-resort one, then the one-time
  // ones (after the list itself checked), as proto-core orders them.
  /** @param {any} k */
  const kemKey = (k) => {
    if (k && k.key.length !== KEM_PUBLIC_KEY_LEN) throw new DecodeError('Malformed');
  };
  if (msg.type === 'UploadKemPrekeys') {
    kemKey(msg.last_resort);
    msg.one_time.forEach(kemKey);
  }
  if (msg.type === 'KemBundle') kemKey(msg.kem_prekey);
  return msg;
}

/** @param {Writer} w @param {FieldType} t @param {any} v */
function writeField(w, t, v) {
  if (typeof t === 'string') {
    switch (t) {
      case 'str': return w.str(v);
      case 'bytes': return w.bytes(v);
      case 'key32':
        if (!(v instanceof Uint8Array) || v.length !== 32) throw new TypeError('Key32 needs 32 bytes');
        return w.raw(v);
      case 'sig64':
        if (!(v instanceof Uint8Array) || v.length !== 64) throw new TypeError('Sig64 needs 64 bytes');
        return w.raw(v);
      case 'u8': return w.u8(v);
      case 'u16': case 'u32': case 'u64': return w.varint(v);
      case 'roomchange': return w.varint(ROOM_CHANGES.indexOf(v));
    }
    throw new Error(`unknown field type ${t}`);
  }
  if ('struct' in t) {
    for (const [name, ft] of t.struct) writeField(w, ft, v[name]);
    return;
  }
  if ('option' in t) {
    if (v === null || v === undefined) return w.u8(0);
    w.u8(1);
    return writeField(w, t.option, v);
  }
  if (v.length > t.max) throw new RangeError('too many items');
  const inner = new Writer();
  for (const item of v) writeField(inner, t.list, item);
  w.bytes(inner.finish());
}

/**
 * Encodes a message object `{ type, ...fields }` as postcard.
 * @param {Record<string, any> & { type: string }} msg
 */
export function encodeMessage(msg) {
  const tag = TAGS.get(msg.type);
  if (tag === undefined) throw new TypeError(`unknown message ${msg.type}`);
  const kems = msg.type === 'UploadKemPrekeys' ? [msg.last_resort, ...(msg.one_time ?? [])] : msg.type === 'KemBundle' ? [msg.kem_prekey] : [];
  for (const k of kems) if (k && k.key?.length !== KEM_PUBLIC_KEY_LEN) throw new TypeError('a KEM prekey key needs 1,184 bytes');
  const w = new Writer();
  w.varint(tag);
  for (const [name, ft] of MESSAGES[tag][1]) writeField(w, ft, msg[name]);
  return w.finish();
}

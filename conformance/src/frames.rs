//! Frame vectors: one accepted example of every message type (`frames.json`) and a rejected
//! example of every decode error (`frames-reject.json`).
//!
//! An accept case holds the frame (`frame`), its COBS form (`cobs`), the message's name and tag,
//! and its fields as JSON (`fields`, hex for bytes), so another implementation can check both
//! directions: decode `frame` and compare with `fields`; encode `fields` and compare with `frame`.

use proto_core::limits::{MAX_FRAME, MAX_FRAME_WIRE, MAX_PREKEYS_PER_UPLOAD};
use proto_core::{
    DecodeError, DeviceBody, DeviceInfo, DeviceKeys, ErrorCode, FrameDecoder, KEM_PUBLIC_KEY_LEN,
    KemPrekey, Key32, List, Message, OneTimePrekey, PROTOCOL_VERSION, PrekeyBundle, RoomChange,
    Sig64, SignedPrekey, decode_frame, decode_frame_cobs, encode_frame, encode_frame_cobs,
};
use serde_json::{Value, json};

use crate::seeded::Filler;
use crate::{cases, hex_field};

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

/// One example of every message type, in tag order, with a description.
pub fn samples() -> Vec<(&'static str, Message<'static>)> {
    let mut f = Filler::new(0x5ea1_2007);
    let key = |f: &mut Filler| Key32(f.bytes::<32>());
    let spk = |f: &mut Filler| SignedPrekey {
        id: 7,
        key: Key32(f.bytes::<32>()),
        signature: Sig64(f.bytes::<64>()),
    };
    let otpks: &'static [OneTimePrekey] = leak(
        (1..=3)
            .map(|id| OneTimePrekey {
                id,
                key: Key32(f.bytes::<32>()),
            })
            .collect(),
    );
    let codes: &'static [&'static str] = &["k7q2-9xmv-3hpd", "a4tz-w8ne-c6rj", "m2fy-5bsu-q9lk"];
    let rooms: &'static [&'static str] = &["family", "ops-oncall"];
    let members: &'static [&'static str] = &["alice", "bob", "carol"];
    // The frame carries a roster as opaque bytes; roster.json holds real ones.
    let roster: &'static [u8] = leak((0u8..48).collect());
    let device = DeviceKeys {
        identity_sig: key(&mut f),
        identity_dh: key(&mut f),
        signed_prekey: spk(&mut f),
        one_time_prekeys: List::from_items(otpks),
    };
    let bundle = PrekeyBundle {
        username: "bob",
        identity_sig: key(&mut f),
        identity_dh: key(&mut f),
        signed_prekey: spk(&mut f),
        one_time_prekey: Some(OneTimePrekey {
            id: 300,
            key: key(&mut f),
        }),
    };
    // Drawn from their own filler so the samples before them keep their bytes.
    let mut link = Filler::new(0x5ea1_2057);
    let link_id = link.leaked(16);
    let link_message = link.leaked(64);
    vec![
        (
            "register with name, email, username, password and device keys",
            Message::Register {
                name: "Alice Liddell",
                email: "alice@example.org",
                username: "alice",
                password: "correct horse battery staple",
                device,
            },
        ),
        (
            "TOTP enrollment URI",
            Message::TotpEnrollment {
                uri: "otpauth://totp/Sealroom:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Sealroom",
            },
        ),
        (
            "confirm TOTP enrollment",
            Message::ConfirmTotp { code: "287082" },
        ),
        (
            "enrollment complete with recovery codes",
            Message::EnrollmentComplete {
                recovery_codes: List::from_items(codes),
            },
        ),
        (
            "login, first factor",
            Message::Login {
                username: "alice",
                password: "correct horse battery staple",
            },
        ),
        ("second factor required", Message::TotpRequired),
        ("TOTP code", Message::TotpCode { code: "081804" }),
        (
            "recovery code",
            Message::RecoveryCode {
                code: "k7q2-9xmv-3hpd",
            },
        ),
        (
            "resume with a session token",
            Message::Resume {
                username: "alice",
                token: key(&mut f),
            },
        ),
        (
            "session established",
            Message::Session {
                token: key(&mut f),
                expires_at: 1_800_000_000,
            },
        ),
        ("logout", Message::Logout),
        (
            "publish identity keys",
            Message::PublishIdentity {
                identity_sig: key(&mut f),
                identity_dh: key(&mut f),
            },
        ),
        (
            "publish a signed prekey",
            Message::PublishSignedPrekey {
                prekey: spk(&mut f),
            },
        ),
        (
            "upload one-time prekeys",
            Message::UploadPrekeys {
                prekeys: List::from_items(otpks),
            },
        ),
        (
            "fetch a prekey bundle",
            Message::FetchBundle { username: "bob" },
        ),
        (
            "a prekey bundle with a one-time prekey",
            Message::Bundle { bundle },
        ),
        ("prekeys running low", Message::PrekeysLow { remaining: 5 }),
        (
            "send a ciphertext to a user",
            Message::SendToUser {
                to: "bob",
                client_id: 42,
                body: f.leaked(80),
            },
        ),
        (
            "send a ciphertext to a room",
            Message::SendToRoom {
                room: "family",
                client_id: 43,
                body: f.leaked(120),
            },
        ),
        (
            "accepted: durably stored",
            Message::Accepted {
                client_id: 42,
                server_id: 1_000_001,
            },
        ),
        (
            "deliver a room message",
            Message::Deliver {
                server_id: 1_000_001,
                from: "alice",
                room: Some("family"),
                sent_at: 1_764_000_000,
                body: f.leaked(64),
                device: 2,
            },
        ),
        (
            "acknowledge a delivery",
            Message::Ack {
                server_id: 1_000_001,
            },
        ),
        (
            "delivery receipt to the sender",
            Message::Delivered {
                server_id: 1_000_001,
                to: "bob",
                device: 2,
            },
        ),
        ("create a room", Message::CreateRoom { room: "family" }),
        (
            "invite to a room",
            Message::Invite {
                room: "family",
                username: "carol",
            },
        ),
        ("leave a room", Message::Leave { room: "family" }),
        (
            "remove from a room",
            Message::Remove {
                room: "family",
                username: "mallory",
            },
        ),
        ("list my rooms", Message::ListRooms),
        (
            "my rooms",
            Message::Rooms {
                rooms: List::from_items(rooms),
            },
        ),
        (
            "list a room's members",
            Message::ListMembers { room: "family" },
        ),
        (
            "a room's members",
            Message::Members {
                room: "family",
                admin: "alice",
                members: List::from_items(members),
            },
        ),
        (
            "a member was removed",
            Message::RoomChanged {
                room: "family",
                username: "mallory",
                change: RoomChange::Removed,
            },
        ),
        ("generic success", Message::Ok),
        (
            "an error with code and text",
            Message::Error {
                code: ErrorCode::QUOTA_FULL,
                text: "bob's queue is full; try again later",
            },
        ),
        (
            "ping",
            Message::Ping {
                nonce: 0x0123_4567_89ab_cdef,
            },
        ),
        (
            "pong",
            Message::Pong {
                nonce: 0x0123_4567_89ab_cdef,
            },
        ),
        (
            "accept an invitation",
            Message::AcceptInvite { room: "family" },
        ),
        (
            "decline an invitation",
            Message::DeclineInvite { room: "family" },
        ),
        ("list my invitations", Message::ListInvitations),
        (
            "my invitations",
            Message::Invitations {
                rooms: List::from_items(&["family", "book-club"]),
                from: List::from_items(&["alice", "carol"]),
            },
        ),
        (
            "change the password",
            Message::ChangePassword {
                current: "correct horse battery staple",
                new: "a new and longer passphrase 7",
                code: "287082",
            },
        ),
        (
            "enroll a new authenticator",
            Message::ReenrollTotp {
                password: "correct horse battery staple",
                code: "abcd-efgh-ijkl-mnop",
            },
        ),
        (
            "confirm the new authenticator",
            Message::ConfirmNewTotp { code: "287082" },
        ),
        (
            "new recovery codes, please",
            Message::RegenerateRecoveryCodes {
                password: "correct horse battery staple",
                code: "287082",
            },
        ),
        (
            "new recovery codes",
            Message::RecoveryCodes {
                codes: List::from_items(&["abcd-efgh-ijkl-mnop", "qrst-uvwx-yz23-4567"]),
            },
        ),
        (
            "how many recovery codes are left",
            Message::CountRecoveryCodes,
        ),
        (
            "recovery codes left",
            Message::RecoveryCodesLeft { remaining: 9 },
        ),
        (
            "delete the account",
            Message::DeleteAccount {
                password: "correct horse battery staple",
                code: "287082",
            },
        ),
        (
            "publish a room's next signed roster",
            Message::PublishRoster {
                room: "family",
                roster,
            },
        ),
        (
            "fetch a room's roster at a version",
            Message::FetchRoster {
                room: "family",
                version: 3,
            },
        ),
        (
            "one stored roster",
            Message::Roster {
                room: "family",
                roster,
            },
        ),
        (
            "fetch an account's identity and devices",
            Message::FetchDevices { username: "carol" },
        ),
        (
            "an account's identity and active devices",
            Message::Devices {
                username: "carol",
                identity_sig: key(&mut f),
                identity_dh: key(&mut f),
                devices: List::from_items(&[1, 2, 300]),
            },
        ),
        (
            "send a direct message, one ciphertext per device",
            Message::SendToDevices {
                to: "carol",
                client_id: 44,
                bodies: List::from_items(leak(vec![
                    DeviceBody {
                        device: 1,
                        body: f.leaked(60),
                    },
                    DeviceBody {
                        device: 300,
                        body: f.leaked(60),
                    },
                ])),
            },
        ),
        (
            "name this device",
            Message::NameDevice {
                name: "carol's laptop",
            },
        ),
        ("list this account's devices", Message::ListDevices),
        (
            "this account's devices, the most recent first",
            Message::DeviceList {
                current: 2,
                devices: List::from_items(&[
                    DeviceInfo {
                        device_id: 2,
                        name: "carol's laptop",
                        added_at: 1_764_000_000,
                        last_seen: 1_764_086_400,
                        revoked_at: None,
                    },
                    DeviceInfo {
                        device_id: 1,
                        name: "",
                        added_at: 1_760_000_000,
                        last_seen: 1_763_990_000,
                        revoked_at: Some(1_764_000_000),
                    },
                ]),
            },
        ),
        (
            "log in to link a new device, first factor",
            Message::LoginDevice {
                username: "carol",
                password: "correct horse battery staple",
                device: None,
            },
        ),
        (
            "relay a link message to the new device",
            Message::SendLink {
                link_id,
                message: link_message,
            },
        ),
        (
            "fetch the link message for this link id",
            Message::FetchLink { link_id },
        ),
        (
            "the link message, handed out once",
            Message::LinkMessage {
                message: link_message,
            },
        ),
        (
            "add this session's device to the account",
            Message::AddDevice {
                name: "carol's phone",
            },
        ),
        ("the new device's id", Message::DeviceAdded { device: 3 }),
        (
            "fetch one device's prekey bundle",
            Message::FetchDeviceBundle {
                username: "carol",
                device: 300,
            },
        ),
        ("revoke a device", Message::RevokeDevice { device: 1 }),
        (
            "send a direct message and its transcript to the sender's other devices",
            Message::SendSynced {
                to: "carol",
                client_id: 45,
                bodies: List::from_items(leak(vec![DeviceBody {
                    device: 1,
                    body: f.leaked(60),
                }])),
                own: List::from_items(leak(vec![
                    DeviceBody {
                        device: 2,
                        body: f.leaked(60),
                    },
                    DeviceBody {
                        device: 7,
                        body: f.leaked(60),
                    },
                ])),
            },
        ),
        (
            "publish a last-resort KEM prekey and a one-time one",
            Message::UploadKemPrekeys {
                last_resort: Some(KemPrekey {
                    id: 1,
                    key: f.leaked(KEM_PUBLIC_KEY_LEN),
                    signature: Sig64(f.bytes::<64>()),
                }),
                one_time: List::from_items(leak(
                    (2..=2)
                        .map(|id| KemPrekey {
                            id,
                            key: f.leaked(KEM_PUBLIC_KEY_LEN),
                            signature: Sig64(f.bytes::<64>()),
                        })
                        .collect(),
                )),
            },
        ),
        (
            "fetch one device's post-quantum bundle",
            Message::FetchKemBundle {
                username: "bob",
                device: 2,
            },
        ),
        (
            "a device's post-quantum bundle: X3DH part and a KEM prekey",
            Message::KemBundle {
                bundle: PrekeyBundle {
                    username: "bob",
                    identity_sig: key(&mut f),
                    identity_dh: key(&mut f),
                    signed_prekey: spk(&mut f),
                    one_time_prekey: None,
                },
                kem_prekey: Some(KemPrekey {
                    id: 300,
                    key: f.leaked(KEM_PUBLIC_KEY_LEN),
                    signature: Sig64(f.bytes::<64>()),
                }),
            },
        ),
        (
            "one-time KEM prekeys are running low",
            Message::KemPrekeysLow { remaining: 4 },
        ),
    ]
}

fn h(bytes: &[u8]) -> Value {
    Value::String(hex::encode(bytes))
}

fn spk_json(p: &SignedPrekey) -> Value {
    json!({ "id": p.id, "key": h(&p.key.0), "signature": h(&p.signature.0) })
}

fn otpk_json(p: &OneTimePrekey) -> Value {
    json!({ "id": p.id, "key": h(&p.key.0) })
}

fn kem_json(p: &KemPrekey<'_>) -> Value {
    json!({ "id": p.id, "key": h(p.key), "signature": h(&p.signature.0) })
}

fn strs(l: &List<'_, &str>) -> Value {
    Value::Array(l.iter().map(|s| Value::String(s.to_owned())).collect())
}

/// A message's fields as JSON: names as in proto-core, hex for bytes, lists as arrays.
pub fn fields(m: &Message<'_>) -> Value {
    match m {
        Message::Register {
            name,
            email,
            username,
            password,
            device,
        } => json!({
            "name": name, "email": email, "username": username, "password": password,
            "device": {
                "identity_sig": h(&device.identity_sig.0),
                "identity_dh": h(&device.identity_dh.0),
                "signed_prekey": spk_json(&device.signed_prekey),
                "one_time_prekeys": device.one_time_prekeys.iter().map(|p| otpk_json(&p)).collect::<Vec<_>>(),
            }
        }),
        Message::TotpEnrollment { uri } => json!({ "uri": uri }),
        Message::ConfirmTotp { code }
        | Message::TotpCode { code }
        | Message::RecoveryCode { code } => {
            json!({ "code": code })
        }
        Message::EnrollmentComplete { recovery_codes } => {
            json!({ "recovery_codes": strs(recovery_codes) })
        }
        Message::Login { username, password } => {
            json!({ "username": username, "password": password })
        }
        Message::TotpRequired
        | Message::Logout
        | Message::ListRooms
        | Message::ListInvitations
        | Message::CountRecoveryCodes
        | Message::ListDevices
        | Message::Ok => json!({}),
        Message::ChangePassword { current, new, code } => {
            json!({ "current": current, "new": new, "code": code })
        }
        Message::ReenrollTotp { password, code }
        | Message::RegenerateRecoveryCodes { password, code }
        | Message::DeleteAccount { password, code } => {
            json!({ "password": password, "code": code })
        }
        Message::ConfirmNewTotp { code } => json!({ "code": code }),
        Message::RecoveryCodes { codes } => json!({ "codes": strs(codes) }),
        Message::RecoveryCodesLeft { remaining } => json!({ "remaining": remaining }),
        Message::Resume { username, token } => {
            json!({ "username": username, "token": h(&token.0) })
        }
        Message::Session { token, expires_at } => {
            json!({ "token": h(&token.0), "expires_at": expires_at })
        }
        Message::PublishIdentity {
            identity_sig,
            identity_dh,
        } => {
            json!({ "identity_sig": h(&identity_sig.0), "identity_dh": h(&identity_dh.0) })
        }
        Message::PublishSignedPrekey { prekey } => json!({ "prekey": spk_json(prekey) }),
        Message::UploadPrekeys { prekeys } => {
            json!({ "prekeys": prekeys.iter().map(|p| otpk_json(&p)).collect::<Vec<_>>() })
        }
        Message::FetchBundle { username } => json!({ "username": username }),
        Message::Bundle { bundle } => json!({ "bundle": {
            "username": bundle.username,
            "identity_sig": h(&bundle.identity_sig.0),
            "identity_dh": h(&bundle.identity_dh.0),
            "signed_prekey": spk_json(&bundle.signed_prekey),
            "one_time_prekey": bundle.one_time_prekey.as_ref().map(otpk_json),
        }}),
        Message::PrekeysLow { remaining } => json!({ "remaining": remaining }),
        Message::SendToUser {
            to,
            client_id,
            body,
        } => {
            json!({ "to": to, "client_id": client_id, "body": h(body) })
        }
        Message::SendToRoom {
            room,
            client_id,
            body,
        } => {
            json!({ "room": room, "client_id": client_id, "body": h(body) })
        }
        Message::Accepted {
            client_id,
            server_id,
        } => json!({ "client_id": client_id, "server_id": server_id }),
        Message::Deliver {
            server_id,
            from,
            room,
            sent_at,
            body,
            device,
        } => json!({
            "server_id": server_id, "from": from, "room": room, "sent_at": sent_at, "body": h(body),
            "device": device
        }),
        Message::Ack { server_id } => json!({ "server_id": server_id }),
        Message::Delivered {
            server_id,
            to,
            device,
        } => json!({ "server_id": server_id, "to": to, "device": device }),
        Message::CreateRoom { room }
        | Message::Leave { room }
        | Message::ListMembers { room }
        | Message::AcceptInvite { room }
        | Message::DeclineInvite { room } => json!({ "room": room }),
        Message::Invitations { rooms, from } => {
            json!({ "rooms": strs(rooms), "from": strs(from) })
        }
        Message::Invite { room, username } | Message::Remove { room, username } => {
            json!({ "room": room, "username": username })
        }
        Message::Rooms { rooms } => json!({ "rooms": strs(rooms) }),
        Message::Members {
            room,
            admin,
            members,
        } => {
            json!({ "room": room, "admin": admin, "members": strs(members) })
        }
        Message::RoomChanged {
            room,
            username,
            change,
        } => json!({
            "room": room, "username": username, "change": format!("{change:?}")
        }),
        Message::PublishRoster { room, roster } | Message::Roster { room, roster } => {
            json!({ "room": room, "roster": h(roster) })
        }
        Message::FetchRoster { room, version } => json!({ "room": room, "version": version }),
        Message::FetchDevices { username } => json!({ "username": username }),
        Message::NameDevice { name } => json!({ "name": name }),
        Message::DeviceList { current, devices } => json!({
            "current": current,
            "devices": devices
                .iter()
                .map(|d| json!({
                    "device_id": d.device_id,
                    "name": d.name,
                    "added_at": d.added_at,
                    "last_seen": d.last_seen,
                    "revoked_at": d.revoked_at,
                }))
                .collect::<Vec<_>>(),
        }),
        Message::Devices {
            username,
            identity_sig,
            identity_dh,
            devices,
        } => json!({
            "username": username,
            "identity_sig": h(&identity_sig.0),
            "identity_dh": h(&identity_dh.0),
            "devices": devices.iter().collect::<Vec<u32>>(),
        }),
        Message::SendToDevices {
            to,
            client_id,
            bodies,
        } => json!({
            "to": to,
            "client_id": client_id,
            "bodies": bodies
                .iter()
                .map(|b| json!({ "device": b.device, "body": h(b.body) }))
                .collect::<Vec<_>>(),
        }),
        Message::SendSynced {
            to,
            client_id,
            bodies,
            own,
        } => {
            let list = |l: &List<'_, DeviceBody<'_>>| {
                l.iter()
                    .map(|b| json!({ "device": b.device, "body": h(b.body) }))
                    .collect::<Vec<_>>()
            };
            json!({ "to": to, "client_id": client_id, "bodies": list(bodies), "own": list(own) })
        }
        Message::LoginDevice {
            username,
            password,
            device,
        } => json!({ "username": username, "password": password, "device": device }),
        Message::SendLink { link_id, message } => {
            json!({ "link_id": h(link_id), "message": h(message) })
        }
        Message::FetchLink { link_id } => json!({ "link_id": h(link_id) }),
        Message::LinkMessage { message } => json!({ "message": h(message) }),
        Message::AddDevice { name } => json!({ "name": name }),
        Message::DeviceAdded { device } | Message::RevokeDevice { device } => {
            json!({ "device": device })
        }
        Message::FetchDeviceBundle { username, device } => {
            json!({ "username": username, "device": device })
        }
        Message::UploadKemPrekeys {
            last_resort,
            one_time,
        } => json!({
            "last_resort": last_resort.as_ref().map(kem_json),
            "one_time": one_time.iter().map(|p| kem_json(&p)).collect::<Vec<_>>(),
        }),
        Message::FetchKemBundle { username, device } => {
            json!({ "username": username, "device": device })
        }
        Message::KemBundle { bundle, kem_prekey } => json!({ "bundle": {
            "username": bundle.username,
            "identity_sig": h(&bundle.identity_sig.0),
            "identity_dh": h(&bundle.identity_dh.0),
            "signed_prekey": spk_json(&bundle.signed_prekey),
            "one_time_prekey": bundle.one_time_prekey.as_ref().map(otpk_json),
        }, "kem_prekey": kem_prekey.as_ref().map(kem_json) }),
        Message::KemPrekeysLow { remaining } => json!({ "remaining": remaining }),
        Message::Error { code, text } => json!({ "code": code.0, "text": text }),
        Message::Ping { nonce } | Message::Pong { nonce } => json!({ "nonce": nonce }),
    }
}

fn frame_bytes(m: &Message<'_>) -> Vec<u8> {
    let mut out = vec![0u8; MAX_FRAME_WIRE];
    let n = encode_frame(m, &mut out).unwrap_or(0);
    out.truncate(n);
    out
}

fn cobs_bytes(m: &Message<'_>) -> Vec<u8> {
    let mut out = vec![0u8; MAX_FRAME_WIRE * 2];
    let n = encode_frame_cobs(m, &mut out).unwrap_or(0);
    out.truncate(n);
    out
}

/// A frame with an arbitrary prefix, version and body (for rejection vectors).
fn raw_frame(len: u32, version: u8, body: &[u8]) -> Vec<u8> {
    let mut v = len.to_be_bytes().to_vec();
    v.push(version);
    v.extend_from_slice(body);
    v
}

/// A well-formed frame of `version || body`.
fn framed(version: u8, body: &[u8]) -> Vec<u8> {
    raw_frame(
        u32::try_from(body.len() + 1).unwrap_or(u32::MAX),
        version,
        body,
    )
}

fn reject_cases() -> Vec<Value> {
    let ping = frame_bytes(&Message::Ping { nonce: 1 });
    let ping_body = &ping[5..];
    let mut out = Vec::new();
    let mut case = |description: &str, frame: Vec<u8>, err: DecodeError, buffer: Option<usize>| {
        let mut c = json!({ "description": description, "frame": h(&frame), "expect": format!("reject:{}", err.name()) });
        if let Some(b) = buffer {
            c["decoder_buffer"] = json!(b);
        }
        out.push(c);
    };
    case(
        "input shorter than the length prefix",
        vec![0, 0],
        DecodeError::Truncated,
        None,
    );
    case(
        "length prefix announces more than is present",
        raw_frame(10, PROTOCOL_VERSION, &[34, 1]),
        DecodeError::Truncated,
        None,
    );
    case(
        "empty frame: no version byte",
        vec![0, 0, 0, 0],
        DecodeError::Truncated,
        None,
    );
    // Ping's tag, then a varint nonce cut short inside the frame's own length.
    case(
        "a field ends early inside the frame",
        framed(PROTOCOL_VERSION, &[34, 0x80]),
        DecodeError::Truncated,
        None,
    );
    let over = u32::try_from(MAX_FRAME + 1).unwrap_or(u32::MAX);
    case(
        "length prefix one past MAX_FRAME",
        raw_frame(over, PROTOCOL_VERSION, &[]),
        DecodeError::Oversized,
        None,
    );
    case(
        "length prefix 0xffffffff",
        raw_frame(u32::MAX, PROTOCOL_VERSION, &[]),
        DecodeError::Oversized,
        None,
    );
    case(
        "frame larger than the decoder's 8-byte buffer",
        frame_bytes(&Message::Ping { nonce: u64::MAX }),
        DecodeError::Caller(proto_core::CallerError::BufferTooSmall),
        Some(8),
    );
    case(
        "protocol version 2",
        framed(2, ping_body),
        DecodeError::UnknownVersion,
        None,
    );
    case(
        "protocol version 0",
        framed(0, ping_body),
        DecodeError::UnknownVersion,
        None,
    );
    case(
        "message tag one past the last",
        framed(PROTOCOL_VERSION, &[Message::TAG_COUNT as u8]),
        DecodeError::UnknownTag,
        None,
    );
    // RoomChanged { room: "r", username: "u", change: 5 }
    case(
        "nested enum tag out of range",
        framed(PROTOCOL_VERSION, &[31, 1, b'r', 1, b'u', 5]),
        DecodeError::UnknownTag,
        None,
    );
    let mut trailing = ping_body.to_vec();
    trailing.push(0);
    case(
        "a byte after the message",
        framed(PROTOCOL_VERSION, &trailing),
        DecodeError::TrailingBytes,
        None,
    );
    case(
        "username not UTF-8",
        framed(PROTOCOL_VERSION, &[14, 2, 0xc3, 0x28]),
        DecodeError::InvalidUtf8,
        None,
    );
    for (description, len) in [
        ("a KEM prekey one byte short", KEM_PUBLIC_KEY_LEN - 1),
        ("a KEM prekey one byte long", KEM_PUBLIC_KEY_LEN + 1),
    ] {
        let key = vec![9u8; len];
        case(
            description,
            frame_bytes(&Message::UploadKemPrekeys {
                last_resort: Some(KemPrekey {
                    id: 1,
                    key: &key,
                    signature: Sig64([3; 64]),
                }),
                one_time: List::empty(),
            }),
            DecodeError::Malformed,
            None,
        );
    }
    // Rooms with one list item that is not UTF-8.
    case(
        "list item not UTF-8",
        framed(PROTOCOL_VERSION, &[28, 2, 1, 0xff]),
        DecodeError::InvalidUtf8,
        None,
    );
    let many: Vec<OneTimePrekey> = (0..=MAX_PREKEYS_PER_UPLOAD as u32)
        .map(|id| OneTimePrekey {
            id,
            key: Key32([id as u8; 32]),
        })
        .collect();
    case(
        "one more one-time prekey than allowed",
        frame_bytes(&Message::UploadPrekeys {
            prekeys: List::from_items(&many),
        }),
        DecodeError::TooManyItems,
        None,
    );
    case(
        "varint longer than 10 bytes",
        framed(
            PROTOCOL_VERSION,
            &[
                34, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ),
        DecodeError::Malformed,
        None,
    );
    // Deliver { server_id 1, from "a", room: option tag 2 }
    case(
        "option tag neither 0 nor 1",
        framed(PROTOCOL_VERSION, &[20, 1, 1, b'a', 2]),
        DecodeError::Malformed,
        None,
    );
    out
}

/// The frame vector files.
pub fn generate() -> Vec<(&'static str, Value)> {
    let accept: Vec<Value> = samples()
        .iter()
        .enumerate()
        .map(|(tag, (description, m))| {
            json!({
                "description": description,
                "message": m.name(),
                "tag": tag,
                "fields": fields(m),
                "frame": h(&frame_bytes(m)),
                "cobs": h(&cobs_bytes(m)),
                "expect": "accept",
            })
        })
        .collect();
    vec![
        (
            "frames.json",
            json!({
                "description": "One frame of every message type: u32 BE length || version 0x01 || postcard(Message). `cobs` is COBS(version || message) || 0x00.",
                "protocol_version": PROTOCOL_VERSION,
                "max_frame": MAX_FRAME,
                "cases": accept,
            }),
        ),
        (
            "frames-reject.json",
            json!({
                "description": "Frames every decoder must reject, one or more per DecodeError. `decoder_buffer`, when present, is the size of the buffer lent to the streaming decoder.",
                "cases": reject_cases(),
            }),
        ),
    ]
}

fn expect_of(case: &Value) -> Result<&str, String> {
    case.get("expect")
        .and_then(Value::as_str)
        .ok_or_else(|| "missing `expect`".to_owned())
}

fn check_accept(case: &Value) -> Result<(), String> {
    let frame = hex_field(case, "frame")?;
    let (m, used) = decode_frame(&frame).map_err(|e| format!("decode failed: {e}"))?;
    if used != frame.len() {
        return Err(format!("decode used {used} of {} bytes", frame.len()));
    }
    if Some(m.name()) != case.get("message").and_then(Value::as_str) {
        return Err(format!("decoded a {}", m.name()));
    }
    if case.get("fields") != Some(&fields(&m)) {
        return Err("decoded fields differ".to_owned());
    }
    if frame_bytes(&m) != frame {
        return Err("re-encoding differs".to_owned());
    }
    // The streaming decoder, fed one byte at a time, must agree.
    let mut buf = vec![0u8; MAX_FRAME_WIRE];
    let mut dec = FrameDecoder::new(&mut buf);
    let mut streamed = None;
    for b in &frame {
        dec.feed(core::slice::from_ref(b));
        if let Some(s) = dec
            .poll_frame()
            .map_err(|e| format!("stream decode failed: {e}"))?
        {
            streamed = Some(fields(&s));
        }
    }
    if streamed.as_ref() != case.get("fields") {
        return Err("streaming decode differs".to_owned());
    }
    let mut cobs = hex_field(case, "cobs")?;
    if cobs_bytes(&m) != cobs {
        return Err("COBS encoding differs".to_owned());
    }
    let total = cobs.len();
    let (cm, cused) =
        decode_frame_cobs(&mut cobs).map_err(|e| format!("COBS decode failed: {e}"))?;
    if cused != total || fields(&cm) != fields(&m) {
        return Err("COBS decode differs".to_owned());
    }
    Ok(())
}

fn check_reject(case: &Value, want: &str) -> Result<(), String> {
    let frame = hex_field(case, "frame")?;
    let got = match case.get("decoder_buffer").and_then(Value::as_u64) {
        Some(n) => {
            let mut buf = vec![0u8; usize::try_from(n).map_err(|e| e.to_string())?];
            let mut dec = FrameDecoder::new(&mut buf);
            dec.feed(&frame);
            match dec.poll_frame() {
                Ok(Some(m)) => Ok(m.name()),
                Ok(None) => Err(DecodeError::Truncated),
                Err(e) => Err(e),
            }
        }
        None => decode_frame(&frame).map(|(m, _)| m.name()),
    };
    match got {
        Err(e) if format!("reject:{}", e.name()) == want => Ok(()),
        Err(e) => Err(format!("rejected with {} instead", e.name())),
        Ok(name) => Err(format!("accepted as {name}")),
    }
}

/// Checks a frame vector file; `None` if the file is not a frame one.
pub fn check(file: &str, v: &Value) -> Option<Result<usize, String>> {
    if file != "frames.json" && file != "frames-reject.json" {
        return None;
    }
    Some((|| {
        let cases = cases(v)?;
        for (i, case) in cases.iter().enumerate() {
            let desc = case
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let r = match expect_of(case)? {
                "accept" => check_accept(case),
                want => check_reject(case, want),
            };
            r.map_err(|e| format!("{file} case {i} ({desc}): {e}"))?;
        }
        Ok(cases.len())
    })())
}

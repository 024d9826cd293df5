//! Frame codec properties, through the public API only:
//! - every message type round-trips through the stream codec, the streaming decoder and COBS;
//! - flipping any bit or truncating at any length of valid frames never panics and always gives
//!   either an error or a well-formed frame;
//! - the blocking embedded-io adapters move whole frames.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly"
)]

use proptest::prelude::*;
use proto_core::limits::{
    MAX_DEVICES, MAX_DEVICES_LISTED, MAX_FRAME, MAX_FRAME_WIRE, MAX_KEM_PREKEYS_PER_UPLOAD,
    MAX_PREKEYS_PER_UPLOAD, MAX_RECOVERY_CODES, MAX_ROOMS_LISTED,
};
use proto_core::{
    DecodeError, DeviceBody, DeviceInfo, DeviceKeys, EncodeError, ErrorCode, FrameDecoder,
    KEM_PUBLIC_KEY_LEN, KemPrekey, Key32, List, Message, NextFrame, OneTimePrekey, PrekeyBundle,
    RoomChange, Sig64, SignedPrekey, decode_frame, decode_frame_cobs, encode_frame,
    encode_frame_cobs, frame_is_push, frame_len, next_frame, read_frame, write_frame,
};

/// A KEM key one byte short, or long, does not decode (PROTOCOL.md §4.8).
#[test]
fn kem_prekeys_of_the_wrong_length_do_not_decode() {
    let sig = Sig64([1; 64]);
    for len in [KEM_PUBLIC_KEY_LEN - 1, KEM_PUBLIC_KEY_LEN + 1, 0] {
        let key = vec![7u8; len];
        let bad = KemPrekey {
            id: 1,
            key: &key,
            signature: sig,
        };
        let good_key = vec![7u8; KEM_PUBLIC_KEY_LEN];
        let good = KemPrekey {
            id: 2,
            key: &good_key,
            signature: sig,
        };
        for msg in [
            Message::UploadKemPrekeys {
                last_resort: Some(bad),
                one_time: List::empty(),
            },
            Message::UploadKemPrekeys {
                last_resort: Some(good),
                one_time: List::from_items(&[good, bad]),
            },
            Message::KemBundle {
                bundle: PrekeyBundle {
                    username: "bob",
                    identity_sig: Key32([1; 32]),
                    identity_dh: Key32([2; 32]),
                    signed_prekey: SignedPrekey {
                        id: 1,
                        key: Key32([3; 32]),
                        signature: sig,
                    },
                    one_time_prekey: None,
                },
                kem_prekey: Some(bad),
            },
        ] {
            let mut buf = vec![0u8; MAX_FRAME_WIRE];
            let n = encode_frame(&msg, &mut buf).expect("encodes");
            assert_eq!(
                decode_frame(&buf[..n]).map(|(m, _)| m.name()),
                Err(DecodeError::Malformed),
                "{len}-byte KEM key in {}",
                msg.name()
            );
        }
    }
    let too_many = vec![
        KemPrekey {
            id: 1,
            key: &[0u8; KEM_PUBLIC_KEY_LEN],
            signature: sig
        };
        MAX_KEM_PREKEYS_PER_UPLOAD + 1
    ];
    let msg = Message::UploadKemPrekeys {
        last_resort: None,
        one_time: List::from_items(&too_many),
    };
    let mut buf = vec![0u8; MAX_FRAME_WIRE];
    let n = encode_frame(&msg, &mut buf).expect("33 KEM prekeys fit a frame");
    assert!(matches!(
        decode_frame(&buf[..n]),
        Err(DecodeError::TooManyItems)
    ));
}

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

fn text() -> BoxedStrategy<&'static str> {
    ".{0,40}".prop_map(leak_str).boxed()
}

fn bytes(max: usize) -> BoxedStrategy<&'static [u8]> {
    proptest::collection::vec(any::<u8>(), 0..max)
        .prop_map(leak)
        .boxed()
}

fn key() -> BoxedStrategy<Key32> {
    any::<[u8; 32]>().prop_map(Key32).boxed()
}

fn sig() -> BoxedStrategy<Sig64> {
    (any::<[u8; 32]>(), any::<[u8; 32]>())
        .prop_map(|(a, b)| {
            let mut s = [0u8; 64];
            s[..32].copy_from_slice(&a);
            s[32..].copy_from_slice(&b);
            Sig64(s)
        })
        .boxed()
}

fn spk() -> BoxedStrategy<SignedPrekey> {
    (any::<u32>(), key(), sig())
        .prop_map(|(id, key, signature)| SignedPrekey { id, key, signature })
        .boxed()
}

fn otpk() -> BoxedStrategy<OneTimePrekey> {
    (any::<u32>(), key())
        .prop_map(|(id, key)| OneTimePrekey { id, key })
        .boxed()
}

fn otpks() -> BoxedStrategy<List<'static, OneTimePrekey>> {
    proptest::collection::vec(otpk(), 0..=MAX_PREKEYS_PER_UPLOAD)
        .prop_map(|v| List::from_items(leak(v)))
        .boxed()
}

fn kem_prekey() -> BoxedStrategy<KemPrekey<'static>> {
    (
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), KEM_PUBLIC_KEY_LEN),
        sig(),
    )
        .prop_map(|(id, key, signature)| KemPrekey {
            id,
            key: leak(key),
            signature,
        })
        .boxed()
}

fn names(max: usize) -> BoxedStrategy<List<'static, &'static str>> {
    proptest::collection::vec(text(), 0..max)
        .prop_map(|v| List::from_items(leak(v)))
        .boxed()
}

/// A strategy for the message with wire tag `tag`.
fn message(tag: u32) -> BoxedStrategy<Message<'static>> {
    match tag {
        0 => (text(), text(), text(), text(), key(), key(), spk(), otpks())
            .prop_map(
                |(name, email, username, password, s, d, signed_prekey, one_time_prekeys)| {
                    Message::Register {
                        name,
                        email,
                        username,
                        password,
                        device: DeviceKeys {
                            identity_sig: s,
                            identity_dh: d,
                            signed_prekey,
                            one_time_prekeys,
                        },
                    }
                },
            )
            .boxed(),
        1 => text()
            .prop_map(|uri| Message::TotpEnrollment { uri })
            .boxed(),
        2 => text()
            .prop_map(|code| Message::ConfirmTotp { code })
            .boxed(),
        3 => names(16)
            .prop_map(|recovery_codes| Message::EnrollmentComplete { recovery_codes })
            .boxed(),
        4 => (text(), text())
            .prop_map(|(username, password)| Message::Login { username, password })
            .boxed(),
        5 => Just(Message::TotpRequired).boxed(),
        6 => text().prop_map(|code| Message::TotpCode { code }).boxed(),
        7 => text()
            .prop_map(|code| Message::RecoveryCode { code })
            .boxed(),
        8 => (text(), key())
            .prop_map(|(username, token)| Message::Resume { username, token })
            .boxed(),
        9 => (key(), any::<u64>())
            .prop_map(|(token, expires_at)| Message::Session { token, expires_at })
            .boxed(),
        10 => Just(Message::Logout).boxed(),
        11 => (key(), key())
            .prop_map(|(identity_sig, identity_dh)| Message::PublishIdentity {
                identity_sig,
                identity_dh,
            })
            .boxed(),
        12 => spk()
            .prop_map(|prekey| Message::PublishSignedPrekey { prekey })
            .boxed(),
        13 => otpks()
            .prop_map(|prekeys| Message::UploadPrekeys { prekeys })
            .boxed(),
        14 => text()
            .prop_map(|username| Message::FetchBundle { username })
            .boxed(),
        15 => (text(), key(), key(), spk(), proptest::option::of(otpk()))
            .prop_map(
                |(username, identity_sig, identity_dh, signed_prekey, one_time_prekey)| {
                    Message::Bundle {
                        bundle: PrekeyBundle {
                            username,
                            identity_sig,
                            identity_dh,
                            signed_prekey,
                            one_time_prekey,
                        },
                    }
                },
            )
            .boxed(),
        16 => any::<u32>()
            .prop_map(|remaining| Message::PrekeysLow { remaining })
            .boxed(),
        17 => (text(), any::<u64>(), bytes(2048))
            .prop_map(|(to, client_id, body)| Message::SendToUser {
                to,
                client_id,
                body,
            })
            .boxed(),
        18 => (text(), any::<u64>(), bytes(2048))
            .prop_map(|(room, client_id, body)| Message::SendToRoom {
                room,
                client_id,
                body,
            })
            .boxed(),
        19 => (any::<u64>(), any::<u64>())
            .prop_map(|(client_id, server_id)| Message::Accepted {
                client_id,
                server_id,
            })
            .boxed(),
        20 => (
            any::<u64>(),
            text(),
            proptest::option::of(text()),
            any::<u64>(),
            bytes(2048),
            any::<u32>(),
        )
            .prop_map(
                |(server_id, from, room, sent_at, body, device)| Message::Deliver {
                    server_id,
                    from,
                    room,
                    sent_at,
                    body,
                    device,
                },
            )
            .boxed(),
        21 => any::<u64>()
            .prop_map(|server_id| Message::Ack { server_id })
            .boxed(),
        22 => (any::<u64>(), text(), any::<u32>())
            .prop_map(|(server_id, to, device)| Message::Delivered {
                server_id,
                to,
                device,
            })
            .boxed(),
        23 => text().prop_map(|room| Message::CreateRoom { room }).boxed(),
        24 => (text(), text())
            .prop_map(|(room, username)| Message::Invite { room, username })
            .boxed(),
        25 => text().prop_map(|room| Message::Leave { room }).boxed(),
        26 => (text(), text())
            .prop_map(|(room, username)| Message::Remove { room, username })
            .boxed(),
        27 => Just(Message::ListRooms).boxed(),
        28 => names(64).prop_map(|rooms| Message::Rooms { rooms }).boxed(),
        29 => text()
            .prop_map(|room| Message::ListMembers { room })
            .boxed(),
        30 => (text(), text(), names(64))
            .prop_map(|(room, admin, members)| Message::Members {
                room,
                admin,
                members,
            })
            .boxed(),
        31 => (
            text(),
            text(),
            prop_oneof![
                Just(RoomChange::Joined),
                Just(RoomChange::Left),
                Just(RoomChange::Removed),
                Just(RoomChange::Invited),
                Just(RoomChange::Roster)
            ],
        )
            .prop_map(|(room, username, change)| Message::RoomChanged {
                room,
                username,
                change,
            })
            .boxed(),
        32 => Just(Message::Ok).boxed(),
        33 => (any::<u16>(), text())
            .prop_map(|(c, text)| Message::Error {
                code: ErrorCode(c),
                text,
            })
            .boxed(),
        34 => any::<u64>()
            .prop_map(|nonce| Message::Ping { nonce })
            .boxed(),
        35 => any::<u64>()
            .prop_map(|nonce| Message::Pong { nonce })
            .boxed(),
        36 => text()
            .prop_map(|room| Message::AcceptInvite { room })
            .boxed(),
        37 => text()
            .prop_map(|room| Message::DeclineInvite { room })
            .boxed(),
        38 => Just(Message::ListInvitations).boxed(),
        39 => names(MAX_ROOMS_LISTED / 4)
            .prop_flat_map(|rooms| {
                let n = rooms.len();
                proptest::collection::vec(text(), n..=n).prop_map(move |from| {
                    Message::Invitations {
                        rooms,
                        from: List::from_items(leak(from)),
                    }
                })
            })
            .boxed(),
        40 => (text(), text(), text())
            .prop_map(|(current, new, code)| Message::ChangePassword { current, new, code })
            .boxed(),
        41 => (text(), text())
            .prop_map(|(password, code)| Message::ReenrollTotp { password, code })
            .boxed(),
        42 => text()
            .prop_map(|code| Message::ConfirmNewTotp { code })
            .boxed(),
        43 => (text(), text())
            .prop_map(|(password, code)| Message::RegenerateRecoveryCodes { password, code })
            .boxed(),
        44 => names(MAX_RECOVERY_CODES)
            .prop_map(|codes| Message::RecoveryCodes { codes })
            .boxed(),
        45 => Just(Message::CountRecoveryCodes).boxed(),
        46 => any::<u32>()
            .prop_map(|remaining| Message::RecoveryCodesLeft { remaining })
            .boxed(),
        47 => (text(), text())
            .prop_map(|(password, code)| Message::DeleteAccount { password, code })
            .boxed(),
        48 => (text(), bytes(2048))
            .prop_map(|(room, roster)| Message::PublishRoster { room, roster })
            .boxed(),
        49 => (text(), any::<u64>())
            .prop_map(|(room, version)| Message::FetchRoster { room, version })
            .boxed(),
        50 => (text(), bytes(2048))
            .prop_map(|(room, roster)| Message::Roster { room, roster })
            .boxed(),
        51 => text()
            .prop_map(|username| Message::FetchDevices { username })
            .boxed(),
        52 => (
            text(),
            key(),
            key(),
            proptest::collection::vec(any::<u32>(), 0..=MAX_DEVICES),
        )
            .prop_map(
                |(username, identity_sig, identity_dh, ids)| Message::Devices {
                    username,
                    identity_sig,
                    identity_dh,
                    devices: List::from_items(leak(ids)),
                },
            )
            .boxed(),
        53 => (
            text(),
            any::<u64>(),
            proptest::collection::vec((any::<u32>(), bytes(256)), 0..=MAX_DEVICES),
        )
            .prop_map(|(to, client_id, bodies)| Message::SendToDevices {
                to,
                client_id,
                bodies: List::from_items(leak(
                    bodies
                        .into_iter()
                        .map(|(device, body)| DeviceBody { device, body })
                        .collect(),
                )),
            })
            .boxed(),
        54 => text().prop_map(|name| Message::NameDevice { name }).boxed(),
        55 => Just(Message::ListDevices).boxed(),
        56 => (
            any::<u32>(),
            proptest::collection::vec(
                (
                    any::<u32>(),
                    text(),
                    any::<u64>(),
                    any::<u64>(),
                    any::<Option<u64>>(),
                ),
                0..=MAX_DEVICES_LISTED,
            ),
        )
            .prop_map(|(current, devices)| Message::DeviceList {
                current,
                devices: List::from_items(leak(
                    devices
                        .into_iter()
                        .map(
                            |(device_id, name, added_at, last_seen, revoked_at)| DeviceInfo {
                                device_id,
                                name,
                                added_at,
                                last_seen,
                                revoked_at,
                            },
                        )
                        .collect(),
                )),
            })
            .boxed(),
        57 => (text(), text(), any::<Option<u32>>())
            .prop_map(|(username, password, device)| Message::LoginDevice {
                username,
                password,
                device,
            })
            .boxed(),
        58 => (bytes(17), bytes(2048))
            .prop_map(|(link_id, message)| Message::SendLink { link_id, message })
            .boxed(),
        59 => bytes(17)
            .prop_map(|link_id| Message::FetchLink { link_id })
            .boxed(),
        60 => bytes(2048)
            .prop_map(|message| Message::LinkMessage { message })
            .boxed(),
        61 => text().prop_map(|name| Message::AddDevice { name }).boxed(),
        62 => any::<u32>()
            .prop_map(|device| Message::DeviceAdded { device })
            .boxed(),
        63 => (text(), any::<u32>())
            .prop_map(|(username, device)| Message::FetchDeviceBundle { username, device })
            .boxed(),
        64 => any::<u32>()
            .prop_map(|device| Message::RevokeDevice { device })
            .boxed(),
        65 => (
            text(),
            any::<u64>(),
            proptest::collection::vec((any::<u32>(), bytes(256)), 0..=MAX_DEVICES),
            proptest::collection::vec((any::<u32>(), bytes(256)), 0..=MAX_DEVICES),
        )
            .prop_map(|(to, client_id, bodies, own)| {
                let list = |v: Vec<(u32, &'static [u8])>| {
                    List::from_items(leak(
                        v.into_iter()
                            .map(|(device, body)| DeviceBody { device, body })
                            .collect(),
                    ))
                };
                Message::SendSynced {
                    to,
                    client_id,
                    bodies: list(bodies),
                    own: list(own),
                }
            })
            .boxed(),
        66 => (
            proptest::option::of(kem_prekey()),
            proptest::collection::vec(kem_prekey(), 0..=MAX_KEM_PREKEYS_PER_UPLOAD),
        )
            .prop_map(|(last_resort, one_time)| Message::UploadKemPrekeys {
                last_resort,
                one_time: List::from_items(leak(one_time)),
            })
            .boxed(),
        67 => (text(), any::<u32>())
            .prop_map(|(username, device)| Message::FetchKemBundle { username, device })
            .boxed(),
        68 => (
            text(),
            key(),
            key(),
            spk(),
            proptest::option::of(otpk()),
            proptest::option::of(kem_prekey()),
        )
            .prop_map(
                |(username, identity_sig, identity_dh, signed_prekey, one_time_prekey, kem)| {
                    Message::KemBundle {
                        bundle: PrekeyBundle {
                            username,
                            identity_sig,
                            identity_dh,
                            signed_prekey,
                            one_time_prekey,
                        },
                        kem_prekey: kem,
                    }
                },
            )
            .boxed(),
        69 => any::<u32>()
            .prop_map(|remaining| Message::KemPrekeysLow { remaining })
            .boxed(),
        _ => unreachable!("tag {tag} has no strategy: add one for the new message"),
    }
}

fn any_message() -> BoxedStrategy<Message<'static>> {
    (0..Message::TAG_COUNT).prop_flat_map(message).boxed()
}

fn encode(m: &Message<'_>) -> Vec<u8> {
    let mut out = vec![0u8; frame_len(m).expect("fits in a frame")];
    let n = encode_frame(m, &mut out).expect("encodes");
    out.truncate(n);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(m in any_message()) {
        let frame = encode(&m);
        prop_assert_eq!(frame_len(&m), Ok(frame.len()));
        let (back, used) = decode_frame(&frame).expect("decodes");
        prop_assert_eq!(used, frame.len());
        prop_assert_eq!(back, m);

        // The same bytes through the streaming decoder, in two uneven pieces, twice in a row.
        let mut buf = vec![0u8; MAX_FRAME_WIRE];
        let mut dec = FrameDecoder::new(&mut buf);
        let mut seen = 0;
        let stream = [frame.as_slice(), frame.as_slice()].concat();
        let split = stream.len() / 3;
        for piece in [&stream[..split], &stream[split..]] {
            let mut rest = piece;
            while !rest.is_empty() {
                let n = dec.feed(rest);
                rest = &rest[n..];
                while let Some(got) = dec.poll_frame().expect("stream decodes") {
                    prop_assert_eq!(got, m);
                    seen += 1;
                }
            }
        }
        prop_assert_eq!(seen, 2);
        prop_assert_eq!(dec.buffered(), 0);

        // The host-side splitter: incomplete until the last byte, then the message once.
        prop_assert_eq!(next_frame(&frame[..frame.len() - 1]), Ok(NextFrame::Incomplete));
        prop_assert_eq!(
            next_frame(&stream),
            Ok(NextFrame::Whole { message: Ok(m), wire_len: frame.len() })
        );
        // A push is known by its tag without decoding.
        prop_assert_eq!(frame_is_push(&frame), m.is_push());

        let mut cobs = vec![0u8; MAX_FRAME_WIRE * 2];
        let n = encode_frame_cobs(&m, &mut cobs).expect("COBS encodes");
        prop_assert!(!cobs[..n - 1].contains(&0));
        let (back, used) = decode_frame_cobs(&mut cobs[..n]).expect("COBS decodes");
        prop_assert_eq!(used, n);
        prop_assert_eq!(back, m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        proto_core::fuzzing::frame(&data);
    }
}

/// Every message type, tag by tag, so none is left to chance.
#[test]
fn every_tag_has_a_round_trip() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    for tag in 0..Message::TAG_COUNT {
        for _ in 0..16 {
            let m = message(tag).new_tree(&mut runner).expect("value").current();
            let frame = encode(&m);
            assert_eq!(frame[5] as u32, tag, "tag byte of {}", m.name());
            assert_eq!(decode_frame(&frame).expect("decodes").0, m);
        }
    }
}

/// A decoded frame is well formed: it re-encodes to bytes that decode to the same message.
fn assert_well_formed_or_error(bytes: &[u8]) {
    if let Ok((m, used)) = decode_frame(bytes) {
        assert!(used <= bytes.len());
        let again = encode(&m);
        assert_eq!(decode_frame(&again).expect("re-encoded frame decodes").0, m);
    }
    let mut buf = vec![0u8; bytes.len().max(8)];
    let mut dec = FrameDecoder::new(&mut buf);
    dec.feed(bytes);
    if let Ok(Some(m)) = dec.poll_frame() {
        assert_eq!(Ok(m), decode_frame(bytes).map(|(m, _)| m));
    }
}

#[test]
fn bit_flips_and_truncations_never_panic() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for tag in 0..Message::TAG_COUNT {
        let m = message(tag).new_tree(&mut runner).expect("value").current();
        frames.push(encode(&m));
    }
    let mut outcomes = [0usize; 2];
    for frame in &frames {
        // Every bit of the first 300 bytes: prefix, version, tags and the fixed fields all lie there.
        let len = frame.len().min(300);
        for cut in 0..=frame.len() {
            assert_well_formed_or_error(&frame[..cut]);
        }
        for bit in 0..len * 8 {
            let mut f = frame.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            let ok = decode_frame(&f).is_ok();
            outcomes[usize::from(ok)] += 1;
            assert_well_formed_or_error(&f);
        }
    }
    // Both outcomes occur: the flips exercise rejection and acceptance paths alike.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

#[test]
fn each_decode_error_is_distinct() {
    let ping = encode(&Message::Ping { nonce: 5 });
    assert_eq!(decode_frame(&ping[..3]), Err(DecodeError::Truncated));
    assert_eq!(
        decode_frame(&ping[..ping.len() - 1]),
        Err(DecodeError::Truncated)
    );
    let mut big = ping.clone();
    big[..4].copy_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
    assert_eq!(decode_frame(&big), Err(DecodeError::Oversized));
    let mut v2 = ping.clone();
    v2[4] = 2;
    assert_eq!(decode_frame(&v2), Err(DecodeError::UnknownVersion));
    let mut tag = ping.clone();
    tag[5] = Message::TAG_COUNT as u8;
    assert_eq!(decode_frame(&tag), Err(DecodeError::UnknownTag));
    let mut trailing = ping.clone();
    trailing.push(0);
    trailing[3] += 1;
    assert_eq!(decode_frame(&trailing), Err(DecodeError::TrailingBytes));
    let bad_utf8 = [0, 0, 0, 4, 1, 14, 1, 0xff];
    assert_eq!(decode_frame(&bad_utf8), Err(DecodeError::InvalidUtf8));
}

#[test]
fn decoder_refuses_oversized_length_before_buffering_and_stays_failed() {
    let mut buf = [0u8; 64];
    let mut dec = FrameDecoder::new(&mut buf);
    dec.feed(&(MAX_FRAME as u32 + 1).to_be_bytes());
    assert_eq!(dec.poll_frame(), Err(DecodeError::Oversized));
    assert_eq!(dec.poll_frame(), Err(DecodeError::Oversized));

    let mut small = [0u8; 16];
    let mut dec = FrameDecoder::new(&mut small);
    dec.feed(
        &encode(&Message::FetchBundle {
            username: "a-rather-long-username",
        })[..8],
    );
    assert_eq!(
        dec.poll_frame(),
        Err(DecodeError::Caller(proto_core::CallerError::BufferTooSmall))
    );
}

#[test]
fn decoder_skips_a_bad_frame_and_continues() {
    let mut stream = encode(&Message::Ping { nonce: 1 });
    stream[5] = 200; // unknown tag in a correctly framed frame
    stream.extend(encode(&Message::Pong { nonce: 2 }));
    let mut buf = vec![0u8; 256];
    let mut dec = FrameDecoder::new(&mut buf);
    assert_eq!(dec.feed(&stream), stream.len());
    assert_eq!(dec.poll_frame(), Err(DecodeError::UnknownTag));
    assert_eq!(dec.poll_frame(), Ok(Some(Message::Pong { nonce: 2 })));
    assert_eq!(dec.poll_frame(), Ok(None));
}

#[test]
fn encoder_reports_small_buffers_and_oversized_messages() {
    let m = Message::Ping { nonce: 7 };
    let mut tiny = [0u8; 5];
    assert_eq!(
        encode_frame(&m, &mut tiny),
        Err(EncodeError::BufferTooSmall)
    );
    let huge = vec![0u8; MAX_FRAME];
    let big = Message::SendToUser {
        to: "bob",
        client_id: 1,
        body: &huge,
    };
    let mut out = vec![0u8; MAX_FRAME_WIRE * 2];
    assert_eq!(encode_frame(&big, &mut out), Err(EncodeError::TooLarge));
    assert_eq!(frame_len(&big), Err(EncodeError::TooLarge));
}

#[test]
fn oversized_lists_are_refused() {
    let many: Vec<OneTimePrekey> = (0..=MAX_PREKEYS_PER_UPLOAD as u32)
        .map(|id| OneTimePrekey {
            id,
            key: Key32([1; 32]),
        })
        .collect();
    let f = encode(&Message::UploadPrekeys {
        prekeys: List::from_items(&many),
    });
    assert_eq!(decode_frame(&f), Err(DecodeError::TooManyItems));
    let ok = &many[..MAX_PREKEYS_PER_UPLOAD];
    let f = encode(&Message::UploadPrekeys {
        prekeys: List::from_items(ok),
    });
    match decode_frame(&f).expect("the maximum is allowed").0 {
        Message::UploadPrekeys { prekeys } => {
            assert_eq!(prekeys.len(), MAX_PREKEYS_PER_UPLOAD);
            assert!(prekeys.iter().eq(ok.iter().copied()));
        }
        other => panic!("decoded {other:?}"),
    }
}

/// An in-memory byte pipe for the embedded-io adapters, handing out at most 3 bytes per read.
struct Pipe {
    data: Vec<u8>,
    pos: usize,
}

impl embedded_io::ErrorType for Pipe {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(3).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl embedded_io::Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn embedded_io_adapters_move_whole_frames() {
    let mut pipe = Pipe {
        data: Vec::new(),
        pos: 0,
    };
    let mut scratch = [0u8; 256];
    let sent = [Message::Ping { nonce: 9 }, Message::Ack { server_id: 77 }];
    for m in &sent {
        write_frame(&mut pipe, m, &mut scratch).expect("writes");
    }
    for m in &sent {
        let mut rx = [0u8; 256];
        assert_eq!(read_frame(&mut pipe, &mut rx).expect("reads"), *m);
    }
    let mut rx = [0u8; 256];
    assert_eq!(
        read_frame(&mut pipe, &mut rx),
        Err(proto_core::IoError::UnexpectedEof)
    );
}

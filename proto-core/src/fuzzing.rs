//! Entry points for the fuzz targets in `fuzz/`. Not part of the API; each one asserts the
//! invariants its attack surface promises, and panics (for the fuzzer to see) only when one breaks.
#![allow(clippy::panic, reason = "a broken invariant must crash the fuzzer")]

use crate::frame::{FrameDecoder, decode_frame, encode_frame};
use crate::limits::MAX_FRAME_WIRE;

/// Frame decoding: one-shot and streaming agree, and whatever decodes re-encodes to a frame that
/// decodes to the same message.
pub fn frame(data: &[u8]) {
    let one_shot = decode_frame(data);
    if let Ok((msg, used)) = one_shot {
        assert!(used <= data.len());
        let mut out = [0u8; MAX_FRAME_WIRE];
        let n = match encode_frame(&msg, &mut out) {
            Ok(n) => n,
            Err(e) => panic!("a decoded message failed to re-encode: {e}"),
        };
        match decode_frame(out.get(..n).unwrap_or_default()) {
            Ok((again, m)) => {
                assert_eq!(m, n);
                assert_eq!(again, msg);
            }
            Err(e) => panic!("a re-encoded message failed to decode: {e}"),
        }
    }

    // Stream the same bytes in uneven chunks; the first frame must match the one-shot result.
    let mut buf = [0u8; MAX_FRAME_WIRE];
    let mut dec = FrameDecoder::new(&mut buf);
    let mut rest = data;
    let mut first = None;
    let mut step = 1usize;
    while first.is_none() {
        let take = step.min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        let fed = dec.feed(chunk);
        rest = tail;
        assert_eq!(fed, take);
        match dec.poll_frame() {
            Ok(Some(msg)) => first = Some(Ok(msg.name())),
            Ok(None) if rest.is_empty() => break,
            Ok(None) => {}
            Err(e) => first = Some(Err(e)),
        }
        step = step * 2 + 1;
    }
    match (one_shot, first) {
        (Ok((msg, _)), Some(Ok(name))) => assert_eq!(msg.name(), name),
        (Err(e), Some(Err(f))) => assert_eq!(e, f),
        (Err(crate::DecodeError::Truncated), None) => {}
        (a, b) => panic!("one-shot {a:?} and streaming {b:?} disagree"),
    }
}

//! Frames: how a [`Message`] travels on a byte stream.
//!
//! ```text
//! +----------------------+---------+------------------------------+
//! | length: u32, BE      | version | postcard(Message)            |
//! | (= 1 + message len)  | u8 = 1  |                              |
//! +----------------------+---------+------------------------------+
//! ```
//!
//! The length counts the version byte and the message, never the prefix itself, and is at most
//! [`MAX_FRAME`]; it is checked before any byte of the frame is buffered. For links without
//! framing of their own (a UART), [`encode_frame_cobs`] writes `COBS(version || message) || 0x00`.
//!
//! After [`decode_frame`] or [`FrameDecoder::poll_frame`] returns `Ok`, the message is well
//! formed: every field decoded, every list checked, no byte left over. No function here panics
//! or indexes past a buffer, whatever the input.
//!
//! This module owns the framing only; what a message means is the caller's business.

use core::fmt;

use crate::caller::CallerError;
use crate::limits::{LENGTH_PREFIX_LEN, MAX_FRAME};
use crate::message::Message;

/// The protocol version this core speaks; the first byte after the length prefix.
pub const PROTOCOL_VERSION: u8 = 1;

/// Why bytes are not a valid frame. Every variant but `Caller` is a fault of the peer's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The input ends before the frame, or a field inside it, is complete.
    Truncated,
    /// The length prefix exceeds [`MAX_FRAME`]. The stream cannot be resynchronised.
    Oversized,
    /// The frame is within [`MAX_FRAME`] but larger than the buffer the caller lent (the
    /// caller's limit, not the peer's fault).
    Caller(CallerError),
    /// The version byte is not [`PROTOCOL_VERSION`].
    UnknownVersion,
    /// A message or enum tag this version does not define.
    UnknownTag,
    /// The message ended before its length did.
    TrailingBytes,
    /// A text field is not UTF-8.
    InvalidUtf8,
    /// A list holds more items than its limit.
    TooManyItems,
    /// Any other malformation: a bad varint, bool or option tag, or bad COBS.
    Malformed,
}

impl DecodeError {
    /// Every variant, in declaration order (for tests and vectors).
    pub const ALL: [DecodeError; 9] = [
        DecodeError::Truncated,
        DecodeError::Oversized,
        DecodeError::Caller(CallerError::BufferTooSmall),
        DecodeError::UnknownVersion,
        DecodeError::UnknownTag,
        DecodeError::TrailingBytes,
        DecodeError::InvalidUtf8,
        DecodeError::TooManyItems,
        DecodeError::Malformed,
    ];

    /// The variant's name, as used in vectors (`reject:<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            DecodeError::Truncated => "Truncated",
            DecodeError::Oversized => "Oversized",
            DecodeError::Caller(e) => e.name(),
            DecodeError::UnknownVersion => "UnknownVersion",
            DecodeError::UnknownTag => "UnknownTag",
            DecodeError::TrailingBytes => "TrailingBytes",
            DecodeError::InvalidUtf8 => "InvalidUtf8",
            DecodeError::TooManyItems => "TooManyItems",
            DecodeError::Malformed => "Malformed",
        }
    }

    pub(crate) fn from_postcard(e: postcard::Error) -> Self {
        match e {
            postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated,
            postcard::Error::DeserializeBadUtf8 => DecodeError::InvalidUtf8,
            // serde's derive reports an out-of-range variant index as a custom error, and that is
            // the only custom error our types raise.
            postcard::Error::DeserializeBadEnum | postcard::Error::SerdeDeCustom => {
                DecodeError::UnknownTag
            }
            _ => DecodeError::Malformed,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Truncated => "frame is truncated",
            DecodeError::Oversized => "frame length exceeds the protocol maximum",
            DecodeError::Caller(_) => "frame is larger than the receive buffer",
            DecodeError::UnknownVersion => "unsupported protocol version",
            DecodeError::UnknownTag => "unknown message or enum tag",
            DecodeError::TrailingBytes => "bytes left over after the message",
            DecodeError::InvalidUtf8 => "text field is not valid UTF-8",
            DecodeError::TooManyItems => "list exceeds its item limit",
            DecodeError::Malformed => "malformed frame",
        })
    }
}

impl core::error::Error for DecodeError {}

/// Why a message could not be encoded. Both are the caller's to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncodeError {
    /// The output slice is too small for this frame.
    BufferTooSmall,
    /// The message would exceed [`MAX_FRAME`]; it can never be sent.
    TooLarge,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::BufferTooSmall => "output buffer too small for the frame",
            EncodeError::TooLarge => "message exceeds the protocol's maximum frame size",
        })
    }
}

impl core::error::Error for EncodeError {}

/// The fixed part of a frame: its length prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes after the prefix: the version byte plus the encoded message.
    pub len: usize,
}

impl FrameHeader {
    /// Reads and checks a length prefix; `Ok(None)` if fewer than 4 bytes are given.
    pub fn parse(bytes: &[u8]) -> Result<Option<Self>, DecodeError> {
        let Some((prefix, _)) = bytes.split_first_chunk::<LENGTH_PREFIX_LEN>() else {
            return Ok(None);
        };
        let len =
            usize::try_from(u32::from_be_bytes(*prefix)).map_err(|_| DecodeError::Oversized)?;
        if len > MAX_FRAME {
            return Err(DecodeError::Oversized);
        }
        Ok(Some(Self { len }))
    }

    /// The whole frame's size on the wire, prefix included.
    pub const fn wire_len(&self) -> usize {
        LENGTH_PREFIX_LEN + self.len
    }
}

/// Encodes `msg` as one frame at the start of `out`; returns the bytes written.
pub fn encode_frame(msg: &Message<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    let (prefix, rest) = out
        .split_first_chunk_mut::<LENGTH_PREFIX_LEN>()
        .ok_or(EncodeError::BufferTooSmall)?;
    let (version, body) = rest.split_first_mut().ok_or(EncodeError::BufferTooSmall)?;
    *version = PROTOCOL_VERSION;
    // Never let a frame grow past MAX_FRAME, however large the caller's buffer.
    let room = body.len().min(MAX_FRAME - 1);
    let body = body.get_mut(..room).ok_or(EncodeError::BufferTooSmall)?;
    let written = match postcard::to_slice(msg, body) {
        Ok(used) => used.len(),
        Err(postcard::Error::SerializeBufferFull) if room == MAX_FRAME - 1 => {
            return Err(EncodeError::TooLarge);
        }
        Err(_) => return Err(EncodeError::BufferTooSmall),
    };
    let len = 1 + written;
    let len_u32 = u32::try_from(len).map_err(|_| EncodeError::TooLarge)?;
    *prefix = len_u32.to_be_bytes();
    Ok(LENGTH_PREFIX_LEN + len)
}

/// The frame size `msg` would take on the wire, prefix included.
pub fn frame_len(msg: &Message<'_>) -> Result<usize, EncodeError> {
    let body = postcard::experimental::serialized_size(msg).map_err(|_| EncodeError::TooLarge)?;
    if 1 + body > MAX_FRAME {
        return Err(EncodeError::TooLarge);
    }
    Ok(LENGTH_PREFIX_LEN + 1 + body)
}

/// Decodes the frame at the start of `input`; returns the message and the bytes it used.
///
/// Bytes after the frame are left alone (they belong to the next frame); an incomplete frame
/// is [`DecodeError::Truncated`].
pub fn decode_frame(input: &[u8]) -> Result<(Message<'_>, usize), DecodeError> {
    let header = FrameHeader::parse(input)?.ok_or(DecodeError::Truncated)?;
    let payload = input
        .get(LENGTH_PREFIX_LEN..header.wire_len())
        .ok_or(DecodeError::Truncated)?;
    Ok((decode_payload(payload)?, header.wire_len()))
}

/// The first frame of a byte stream's buffered bytes, as [`next_frame`] finds it.
#[derive(Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a borrowed view, returned and matched at once"
)]
pub enum NextFrame<'a> {
    /// Fewer bytes than the frame announces are buffered: read more.
    Incomplete,
    /// A whole frame of `wire_len` bytes (prefix included) is buffered; `message` is its decoded
    /// content or why it is not valid. Either way the caller drops `wire_len` bytes and goes on:
    /// a bad frame whose length prefix was sound does not desynchronise the stream.
    Whole {
        /// The decoded message, or its decode error.
        message: Result<Message<'a>, DecodeError>,
        /// The frame's size on the wire.
        wire_len: usize,
    },
}

/// Splits the first frame off a stream's buffered bytes and decodes it, once (PROTOCOL.md §2.2).
///
/// The streaming counterpart of [`decode_frame`] for hosts that buffer received bytes
/// themselves. `Err` is a length prefix over [`MAX_FRAME`] ([`DecodeError::Oversized`]): the
/// stream cannot be resynchronised and the caller should close it.
pub fn next_frame(buffered: &[u8]) -> Result<NextFrame<'_>, DecodeError> {
    let Some(header) = FrameHeader::parse(buffered)? else {
        return Ok(NextFrame::Incomplete);
    };
    match buffered.get(LENGTH_PREFIX_LEN..header.wire_len()) {
        None => Ok(NextFrame::Incomplete),
        Some(payload) => Ok(NextFrame::Whole {
            message: decode_payload(payload),
            wire_len: header.wire_len(),
        }),
    }
}

/// Whether a whole frame (prefix included) carries a server push ([`Message::is_push`]),
/// read from its version byte and message tag alone, without decoding the rest: a client can
/// set a push aside and decode it once, when it handles it. A frame too short to hold a tag,
/// or of another version, is not a push (decoding it will say what is wrong).
pub fn frame_is_push(frame: &[u8]) -> bool {
    match frame.get(LENGTH_PREFIX_LEN..LENGTH_PREFIX_LEN + 2) {
        // Every tag is below 128, so postcard's varint is the single byte after the version.
        Some(&[PROTOCOL_VERSION, tag]) => Message::tag_is_push(u32::from(tag)),
        _ => false,
    }
}

/// Decodes `version || message`, the part of a frame after its length prefix.
pub(crate) fn decode_payload(payload: &[u8]) -> Result<Message<'_>, DecodeError> {
    let (&version, body) = payload.split_first().ok_or(DecodeError::Truncated)?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnknownVersion);
    }
    let (msg, rest) =
        postcard::take_from_bytes::<Message<'_>>(body).map_err(DecodeError::from_postcard)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    msg.validate()?;
    Ok(msg)
}

/// Encodes `msg` as `COBS(version || message) || 0x00` for links that carry no framing.
pub fn encode_frame_cobs(msg: &Message<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    // Refuse what could never be sent over the stream transport either.
    frame_len(msg)?;
    postcard::to_slice_cobs(&(PROTOCOL_VERSION, msg), out)
        .map(|used| used.len())
        .map_err(|_| EncodeError::BufferTooSmall)
}

/// Decodes one COBS frame from the start of `buf` (in place); returns the message and the
/// bytes used, terminator included. No terminator yet is [`DecodeError::Truncated`].
pub fn decode_frame_cobs(buf: &mut [u8]) -> Result<(Message<'_>, usize), DecodeError> {
    let end = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or(DecodeError::Truncated)?;
    if end > MAX_FRAME + MAX_FRAME / 254 + 1 {
        return Err(DecodeError::Oversized);
    }
    let encoded = buf.get_mut(..end).ok_or(DecodeError::Truncated)?;
    let len = cobs::decode_in_place(encoded).map_err(|_| DecodeError::Malformed)?;
    let payload = buf.get(..len).ok_or(DecodeError::Malformed)?;
    Ok((decode_payload(payload)?, end + 1))
}

/// A sans-IO frame decoder over a buffer the caller lends.
///
/// Call order: put bytes in with [`feed`](Self::feed) (or write into
/// [`unfilled`](Self::unfilled) and call [`advance`](Self::advance)), then call
/// [`poll_frame`](Self::poll_frame) until it returns `Ok(None)`; repeat. A frame returned by
/// `poll_frame` stays valid until the next call on the decoder.
///
/// A frame with bad content is skipped and reported, and decoding continues with the next one.
/// A bad length prefix ([`DecodeError::Oversized`], [`DecodeError::Caller`]) leaves the
/// stream unreadable: every later `poll_frame` repeats the error, and the caller should close
/// the connection.
#[derive(Debug)]
pub struct FrameDecoder<'b> {
    buf: &'b mut [u8],
    filled: usize,
    /// Bytes of the frame last returned, discarded on the next call.
    consumed: usize,
    failed: Option<DecodeError>,
}

impl<'b> FrameDecoder<'b> {
    /// A decoder over `buf`. A buffer of [`MAX_FRAME_WIRE`](crate::limits::MAX_FRAME_WIRE)
    /// bytes takes any valid frame; a smaller one refuses larger frames.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            filled: 0,
            consumed: 0,
            failed: None,
        }
    }

    /// Copies as much of `input` as fits; returns how many bytes were taken. Feed the rest after
    /// the next [`poll_frame`](Self::poll_frame).
    pub fn feed(&mut self, input: &[u8]) -> usize {
        self.discard_consumed();
        let space = self.unfilled();
        let n = space.len().min(input.len());
        if let (Some(dst), Some(src)) = (space.get_mut(..n), input.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.filled += n;
        n
    }

    /// The free part of the buffer, for reading straight from a socket; follow with
    /// [`advance`](Self::advance).
    pub fn unfilled(&mut self) -> &mut [u8] {
        self.discard_consumed();
        self.buf.get_mut(self.filled..).unwrap_or_default()
    }

    /// Marks `n` bytes written into [`unfilled`](Self::unfilled) as received.
    pub fn advance(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.filled - self.consumed
    }

    /// The next whole frame, if one is buffered.
    pub fn poll_frame(&mut self) -> Result<Option<Message<'_>>, DecodeError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.discard_consumed();
        let filled = self.buf.get(..self.filled).unwrap_or_default();
        let header = match FrameHeader::parse(filled) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        if header.wire_len() > self.buf.len() {
            return Err(self.fail(DecodeError::Caller(CallerError::BufferTooSmall)));
        }
        if self.filled < header.wire_len() {
            return Ok(None);
        }
        self.consumed = header.wire_len();
        let payload = self
            .buf
            .get(LENGTH_PREFIX_LEN..header.wire_len())
            .ok_or(DecodeError::Truncated)?;
        decode_payload(payload).map(Some)
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.failed = Some(e);
        e
    }

    fn discard_consumed(&mut self) {
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
    }
}

//! Whole frames over `embedded_io` byte streams (blocking) and `embedded_io_async` (feature
//! `async`). Both read exactly one frame into a caller-lent buffer: the length prefix first,
//! checked against [`MAX_FRAME`](crate::limits::MAX_FRAME) and the buffer before the body is read.

use core::fmt;

use embedded_io::ReadExactError;

use crate::caller::CallerError;
use crate::frame::{DecodeError, EncodeError, FrameHeader, decode_payload, encode_frame};
use crate::limits::LENGTH_PREFIX_LEN;
use crate::message::Message;

/// Why a frame could not be read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError<E> {
    /// The underlying stream failed.
    Io(E),
    /// The stream ended inside a frame (or, on a read, before one began).
    UnexpectedEof,
    /// The bytes read are not a valid frame.
    Decode(DecodeError),
    /// The message could not be encoded into the buffer given.
    Encode(EncodeError),
}

impl<E: fmt::Debug> fmt::Display for IoError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::Io(e) => write!(f, "stream error: {e:?}"),
            IoError::UnexpectedEof => f.write_str("stream ended inside a frame"),
            IoError::Decode(e) => write!(f, "{e}"),
            IoError::Encode(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for IoError<E> {}

impl<E> From<ReadExactError<E>> for IoError<E> {
    fn from(e: ReadExactError<E>) -> Self {
        match e {
            ReadExactError::UnexpectedEof => IoError::UnexpectedEof,
            ReadExactError::Other(e) => IoError::Io(e),
        }
    }
}

/// Splits `buf` into the prefix slot and checks the announced length fits.
fn body_slot(buf: &mut [u8], prefix: [u8; LENGTH_PREFIX_LEN]) -> Result<&mut [u8], DecodeError> {
    let header = FrameHeader::parse(&prefix)?.ok_or(DecodeError::Truncated)?;
    buf.get_mut(..header.len)
        .ok_or(DecodeError::Caller(CallerError::BufferTooSmall))
}

/// Encodes `msg` as a frame at the start of `scratch`; returns the frame.
fn encode_into<'s>(msg: &Message<'_>, scratch: &'s mut [u8]) -> Result<&'s [u8], EncodeError> {
    let n = encode_frame(msg, scratch)?;
    scratch.get(..n).ok_or(EncodeError::BufferTooSmall)
}

/// Reads one whole frame from `r` into `buf` and decodes it.
pub fn read_frame<'b, R: embedded_io::Read>(
    r: &mut R,
    buf: &'b mut [u8],
) -> Result<Message<'b>, IoError<R::Error>> {
    let mut prefix = [0u8; LENGTH_PREFIX_LEN];
    r.read_exact(&mut prefix)?;
    let body = body_slot(buf, prefix).map_err(IoError::Decode)?;
    r.read_exact(body)?;
    decode_payload(body).map_err(IoError::Decode)
}

/// Encodes `msg` into `scratch` and writes the whole frame to `w`, then flushes.
pub fn write_frame<W: embedded_io::Write>(
    w: &mut W,
    msg: &Message<'_>,
    scratch: &mut [u8],
) -> Result<(), IoError<W::Error>> {
    let frame = encode_into(msg, scratch).map_err(IoError::Encode)?;
    w.write_all(frame).map_err(IoError::Io)?;
    w.flush().map_err(IoError::Io)
}

/// Reads one whole frame from an async stream into `buf` and decodes it.
#[cfg(feature = "async")]
pub async fn read_frame_async<'b, R: embedded_io_async::Read>(
    r: &mut R,
    buf: &'b mut [u8],
) -> Result<Message<'b>, IoError<R::Error>> {
    let mut prefix = [0u8; LENGTH_PREFIX_LEN];
    r.read_exact(&mut prefix).await?;
    let body = body_slot(buf, prefix).map_err(IoError::Decode)?;
    r.read_exact(body).await?;
    decode_payload(body).map_err(IoError::Decode)
}

/// Encodes `msg` into `scratch` and writes the whole frame to an async stream, then flushes.
#[cfg(feature = "async")]
pub async fn write_frame_async<W: embedded_io_async::Write>(
    w: &mut W,
    msg: &Message<'_>,
    scratch: &mut [u8],
) -> Result<(), IoError<W::Error>> {
    let frame = encode_into(msg, scratch).map_err(IoError::Encode)?;
    w.write_all(frame).await.map_err(IoError::Io)?;
    w.flush().await.map_err(IoError::Io)
}

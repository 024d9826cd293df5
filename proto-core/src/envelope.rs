//! What travels inside a message `body`: the envelope the server relays unopened, and the
//! content a client finds once it has decrypted it.
//!
//! A one-to-one body (`SendToUser.body`, `Deliver.body` without a room):
//!
//! ```text
//! kind u8 | rest
//! 0x01 Prekey:   PrekeyHeader (106 bytes) || ratchet message   (X3DH; until the peer has replied)
//! 0x02 Ratchet:  ratchet message
//! 0x03 PqPrekey: PrekeyHeader (106 bytes) || kem_id (u32 BE) || ct (1,088 bytes)
//!                || ratchet message                             (PQXDH; until the peer has replied)
//! ```
//!
//! A room body (`SendToRoom.body`) is a room message exactly as [`Room::encrypt`](crate::Room)
//! writes it; it names its own room id, sender, epoch and iteration.
//!
//! Either way the plaintext is one postcard-encoded [`Content`]. This module owns both layouts; it
//! does not encrypt (the ratchet and rooms do) and it does not decide what a client shows.

use serde::{Deserialize, Serialize};

use crate::caller::CallerError;
use crate::frame::DecodeError;
use crate::pqxdh::{KEM_CIPHERTEXT_LEN, KEM_HEADER_LEN, KemCiphertext, KemHeader};
use crate::x3dh::{PREKEY_HEADER_LEN, PrekeyHeader};

/// Envelope kind: a prekey message (X3DH header, then the ratchet message).
pub const ENVELOPE_PREKEY: u8 = 0x01;
/// Envelope kind: a plain ratchet message.
pub const ENVELOPE_RATCHET: u8 = 0x02;
/// Envelope kind: a post-quantum prekey message (X3DH header, KEM header, then the ratchet
/// message): how every new session starts (PQXDH).
pub const ENVELOPE_PQ_PREKEY: u8 = 0x03;

/// A one-to-one body, split into its parts without copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope<'a> {
    /// The first messages of a session: what the responder needs to run X3DH, then the ratchet
    /// message.
    Prekey {
        /// The initiator's X3DH header.
        header: PrekeyHeader,
        /// The ratchet message.
        message: &'a [u8],
    },
    /// The first messages of a PQXDH session: the X3DH header, the id of the KEM prekey
    /// encapsulated to and the ML-KEM ciphertext, then the ratchet message.
    PqPrekey {
        /// The initiator's X3DH header.
        header: PrekeyHeader,
        /// Which of the responder's KEM prekeys the ciphertext is for.
        kem_id: u32,
        /// The ML-KEM-768 ciphertext.
        ciphertext: &'a [u8; KEM_CIPHERTEXT_LEN],
        /// The ratchet message.
        message: &'a [u8],
    },
    /// A ratchet message of an established session.
    Ratchet {
        /// The ratchet message.
        message: &'a [u8],
    },
}

/// Why a body is not an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EnvelopeError {
    /// Empty, or shorter than its kind requires.
    Truncated,
    /// An envelope kind this version does not define.
    UnknownKind,
    /// The prekey header is malformed (bad version or flag).
    BadPrekeyHeader,
    /// The output slice is too small (encoding only; the caller's fault).
    Caller(CallerError),
}

impl EnvelopeError {
    /// The variant's name, as used in vectors (`reject:<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            EnvelopeError::Truncated => "Truncated",
            EnvelopeError::UnknownKind => "UnknownKind",
            EnvelopeError::BadPrekeyHeader => "BadPrekeyHeader",
            EnvelopeError::Caller(e) => e.name(),
        }
    }
}

impl core::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EnvelopeError::Truncated => "message body is truncated",
            EnvelopeError::UnknownKind => "unknown message body kind",
            EnvelopeError::BadPrekeyHeader => "malformed session-start header",
            EnvelopeError::Caller(_) => "output buffer too small",
        })
    }
}

impl core::error::Error for EnvelopeError {}

impl<'a> Envelope<'a> {
    /// Splits a body into its envelope parts.
    pub fn parse(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        let (&kind, rest) = body.split_first().ok_or(EnvelopeError::Truncated)?;
        match kind {
            ENVELOPE_PREKEY => {
                let (header, message) = rest
                    .split_first_chunk::<PREKEY_HEADER_LEN>()
                    .ok_or(EnvelopeError::Truncated)?;
                let header =
                    PrekeyHeader::from_bytes(header).map_err(|_| EnvelopeError::BadPrekeyHeader)?;
                if message.is_empty() {
                    return Err(EnvelopeError::Truncated);
                }
                Ok(Envelope::Prekey { header, message })
            }
            ENVELOPE_PQ_PREKEY => {
                let (header, rest) = rest
                    .split_first_chunk::<PREKEY_HEADER_LEN>()
                    .ok_or(EnvelopeError::Truncated)?;
                let header =
                    PrekeyHeader::from_bytes(header).map_err(|_| EnvelopeError::BadPrekeyHeader)?;
                let (kem_id, rest) = rest
                    .split_first_chunk::<4>()
                    .ok_or(EnvelopeError::Truncated)?;
                let (ciphertext, message) = rest
                    .split_first_chunk::<KEM_CIPHERTEXT_LEN>()
                    .ok_or(EnvelopeError::Truncated)?;
                if message.is_empty() {
                    return Err(EnvelopeError::Truncated);
                }
                Ok(Envelope::PqPrekey {
                    header,
                    kem_id: u32::from_be_bytes(*kem_id),
                    ciphertext,
                    message,
                })
            }
            ENVELOPE_RATCHET if rest.is_empty() => Err(EnvelopeError::Truncated),
            ENVELOPE_RATCHET => Ok(Envelope::Ratchet { message: rest }),
            _ => Err(EnvelopeError::UnknownKind),
        }
    }

    /// Writes the envelope's kind (and headers) into `out`, leaving the ratchet message to be
    /// written after it; returns the bytes written. The caller encrypts into
    /// `out[written..]`. With a prekey header and a KEM header the kind is
    /// [`ENVELOPE_PQ_PREKEY`], with a prekey header alone [`ENVELOPE_PREKEY`], with neither
    /// [`ENVELOPE_RATCHET`] (a KEM header without a prekey header is ignored: it never occurs,
    /// [`Session`](crate::Session) keeps both until the first reply).
    pub fn emit_prefix(
        header: Option<&PrekeyHeader>,
        kem: Option<&KemHeader>,
        out: &mut [u8],
    ) -> Result<usize, EnvelopeError> {
        let small = EnvelopeError::Caller(CallerError::BufferTooSmall);
        let (kind, rest) = out.split_first_mut().ok_or(small)?;
        let Some(h) = header else {
            *kind = ENVELOPE_RATCHET;
            return Ok(1);
        };
        let (slot, rest) = rest
            .split_first_chunk_mut::<PREKEY_HEADER_LEN>()
            .ok_or(small)?;
        *slot = h.to_bytes();
        match kem {
            Some(k) => {
                *kind = ENVELOPE_PQ_PREKEY;
                let slot = rest.first_chunk_mut::<KEM_HEADER_LEN>().ok_or(small)?;
                *slot = k.to_bytes();
                Ok(1 + PREKEY_HEADER_LEN + KEM_HEADER_LEN)
            }
            None => {
                *kind = ENVELOPE_PREKEY;
                Ok(1 + PREKEY_HEADER_LEN)
            }
        }
    }

    /// The KEM header of a [`PqPrekey`](Self::PqPrekey) envelope (`None` for the others).
    pub fn kem_header(&self) -> Option<KemHeader> {
        match self {
            Envelope::PqPrekey {
                kem_id, ciphertext, ..
            } => Some(KemHeader {
                kem_id: *kem_id,
                ciphertext: KemCiphertext::from(**ciphertext),
            }),
            _ => None,
        }
    }

    /// The X3DH header of a prekey envelope, classical or post-quantum.
    pub fn prekey_header(&self) -> Option<&PrekeyHeader> {
        match self {
            Envelope::Prekey { header, .. } | Envelope::PqPrekey { header, .. } => Some(header),
            Envelope::Ratchet { .. } => None,
        }
    }

    /// The ratchet message, whichever the kind.
    pub fn message(&self) -> &'a [u8] {
        match self {
            Envelope::Prekey { message, .. }
            | Envelope::PqPrekey { message, .. }
            | Envelope::Ratchet { message } => message,
        }
    }
}

/// What a decrypted message says. Postcard-encoded; the variant order is the wire tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content<'a> {
    /// A text message, shown as text (never markup).
    Text {
        /// Random, chosen by the sender: receivers drop a second copy of the same id.
        id: u64,
        /// When the sender wrote it, Unix seconds (the sender's clock).
        sent_at: u64,
        /// The text.
        text: &'a str,
    },
    /// The sender's key for a room and epoch, carried inside a pairwise session.
    RoomKey {
        /// The room's name on the server.
        room: &'a str,
        /// A [`SenderKeyDistribution`](crate::SenderKeyDistribution) in its encoded form.
        distribution: &'a [u8],
    },
    /// "I could not decrypt what you sent": the peer should start a new session (X3DH) on its
    /// next message. Carries no secret; sent inside a fresh session.
    SessionReset,
    /// A room's current signed roster (PROTOCOL.md §4.7), sent by the admin who added the
    /// receiver: the receiver's starting point in the room's chain, which it then follows
    /// from the server.
    Roster {
        /// The room's name on the server.
        room: &'a str,
        /// The encoded, signed roster.
        roster: &'a [u8],
    },
    /// A text this account sent to `to` from another of its devices (a sent transcript,
    /// PROTOCOL.md §6 **Devices**): shown in the conversation with `to` as sent from another
    /// device. Only taken from a session with one of the account's own devices.
    Sent {
        /// The conversation: the username the text was sent to.
        to: &'a str,
        /// The id of the [`Content::Text`] sent to `to`.
        id: u64,
        /// When it was written, Unix seconds (the sending device's clock).
        sent_at: u64,
        /// The text.
        text: &'a str,
    },
}

impl<'a> Content<'a> {
    /// Decodes a content; every byte must be used.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let (c, rest) =
            postcard::take_from_bytes::<Content<'a>>(bytes).map_err(DecodeError::from_postcard)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(c)
    }

    /// Encodes into `out`; returns the bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, crate::EncodeError> {
        postcard::to_slice(self, out)
            .map(|used| used.len())
            .map_err(|_| crate::EncodeError::BufferTooSmall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_kinds_parse_and_reject() {
        assert_eq!(Envelope::parse(&[]), Err(EnvelopeError::Truncated));
        assert_eq!(Envelope::parse(&[0x02]), Err(EnvelopeError::Truncated));
        assert_eq!(Envelope::parse(&[0x04, 1]), Err(EnvelopeError::UnknownKind));
        assert_eq!(Envelope::parse(&[0x03, 1]), Err(EnvelopeError::Truncated));
        assert_eq!(
            Envelope::parse(&[0x02, 9, 9]),
            Ok(Envelope::Ratchet { message: &[9, 9] })
        );
        assert_eq!(Envelope::parse(&[0x01; 50]), Err(EnvelopeError::Truncated));
        let mut bad = [0u8; 1 + PREKEY_HEADER_LEN + 1];
        bad[0] = ENVELOPE_PREKEY;
        bad[1] = 0x7f; // header version
        assert_eq!(Envelope::parse(&bad), Err(EnvelopeError::BadPrekeyHeader));
    }

    #[test]
    fn pq_prekey_envelope_round_trips_and_needs_its_whole_kem_header() {
        let mut header = [0u8; PREKEY_HEADER_LEN];
        header[0] = crate::PREKEY_HEADER_VERSION;
        let header = PrekeyHeader::from_bytes(&header).unwrap();
        let kem = KemHeader {
            kem_id: 0x0102_0304,
            ciphertext: KemCiphertext::from([7u8; KEM_CIPHERTEXT_LEN]),
        };
        let mut body = [0u8; 1 + PREKEY_HEADER_LEN + KEM_HEADER_LEN + 3];
        let n = Envelope::emit_prefix(Some(&header), Some(&kem), &mut body).unwrap();
        assert_eq!(n, 1 + PREKEY_HEADER_LEN + KEM_HEADER_LEN);
        assert_eq!(body[0], ENVELOPE_PQ_PREKEY);
        assert_eq!(&body[1 + PREKEY_HEADER_LEN..][..4], &[1, 2, 3, 4]);
        body[n..].copy_from_slice(&[9, 9, 9]);
        let parsed = Envelope::parse(&body).unwrap();
        assert_eq!(parsed.prekey_header(), Some(&header));
        assert_eq!(parsed.kem_header(), Some(kem));
        assert_eq!(parsed.message(), &[9, 9, 9]);
        // No ratchet message, or a ciphertext one byte short: truncated, never read as X3DH.
        assert_eq!(Envelope::parse(&body[..n]), Err(EnvelopeError::Truncated));
        assert_eq!(
            Envelope::parse(&body[..n - 1]),
            Err(EnvelopeError::Truncated)
        );
        // Without a KEM header the classical kind is written (only for old sessions).
        assert_eq!(
            Envelope::emit_prefix(Some(&header), None, &mut body),
            Ok(1 + PREKEY_HEADER_LEN)
        );
        assert_eq!(body[0], ENVELOPE_PREKEY);
    }

    #[test]
    fn content_round_trips() {
        let c = Content::Text {
            id: 9,
            sent_at: 1_700_000_000,
            text: "héllo <b>",
        };
        let mut buf = [0u8; 64];
        let n = c.encode(&mut buf).unwrap();
        assert_eq!(Content::decode(&buf[..n]), Ok(c));
        assert_eq!(Content::decode(&buf[..n - 1]), Err(DecodeError::Truncated));
        let mut long = buf;
        long[n] = 0;
        assert_eq!(
            Content::decode(&long[..n + 1]),
            Err(DecodeError::TrailingBytes)
        );
        assert_eq!(Content::decode(&[5]), Err(DecodeError::UnknownTag));
        let sent = Content::Sent {
            to: "bob",
            id: 9,
            sent_at: 1_700_000_000,
            text: "héllo",
        };
        let n = sent.encode(&mut buf).unwrap();
        assert_eq!(Content::decode(&buf[..n]), Ok(sent));
        assert_eq!(Content::decode(&buf[..n - 1]), Err(DecodeError::Truncated));
    }
}

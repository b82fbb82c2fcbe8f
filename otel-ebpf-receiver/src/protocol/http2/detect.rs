//! HTTP/2 detection at the start of a syscall's bytes.
//!
//! Stage: conn → **protocol::http2::detect** → protocol::http2. Input: the captured bytes of one
//! syscall and its full length (bytes). Output: whether they begin with the client connection
//! preface (RFC 9113 §3.4) or a prefix of it, with a server's first SETTINGS frame (§3.4: the
//! server connection preface), or with a sequence of valid frame headers (§4.1, §6) that ends
//! exactly where the syscall ends — the conservative test used on connections joined mid-way
//! and to resynchronise after lost bytes. Limits: looks at frame headers only, at most
//! [`MAX_CHAIN_FRAMES`] of them; allocates nothing.

use super::PREFACE;
use super::frame::{FRAME_HEADER_LEN, FrameHeader, kind};

/// Most frame headers walked by [`frame_chain`].
pub const MAX_CHAIN_FRAMES: usize = 256;

/// What a plausible frame sequence holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Frame headers validated.
    pub frames: usize,
    /// One of them is a HEADERS frame.
    pub has_headers: bool,
}

/// True when `bytes` start with the client preface, or are a non-empty prefix of it.
pub fn is_preface(bytes: &[u8]) -> bool {
    let n = bytes.len().min(PREFACE.len());
    n > 0 && bytes[..n] == PREFACE[..n]
}

/// True when `bytes` start with a SETTINGS frame (not an ACK) on stream 0 whose payload is a
/// whole number of settings: the server connection preface.
pub fn is_server_preface(bytes: &[u8]) -> bool {
    let Some(h) = header_at(bytes, 0) else {
        return false;
    };
    h.kind == kind::SETTINGS && h.flags == 0 && valid(&h)
}

/// Walks frame headers from the start of `captured` (one syscall of `total_len` bytes). Returns
/// the chain when every header is valid by [`valid`] and the last frame ends exactly at the end
/// of the syscall (or runs past the captured bytes into the uncaptured ones, without passing
/// `total_len`). `None` otherwise.
pub fn frame_chain(captured: &[u8], total_len: u64) -> Option<Chain> {
    let total = total_len.max(captured.len() as u64);
    let mut off = 0u64;
    let mut chain = Chain {
        frames: 0,
        has_headers: false,
    };
    while chain.frames < MAX_CHAIN_FRAMES {
        if off == total {
            return (chain.frames > 0).then_some(chain);
        }
        let Some(h) = header_at(captured, off as usize) else {
            // Header not (fully) captured: plausible only if bytes were cut here.
            return (chain.frames > 0 && (captured.len() as u64) < total).then_some(chain);
        };
        if !valid(&h) {
            return None;
        }
        chain.frames += 1;
        chain.has_headers |= h.kind == kind::HEADERS;
        off += (FRAME_HEADER_LEN as u64) + u64::from(h.length);
        if off > total {
            return None;
        }
    }
    Some(chain)
}

fn header_at(bytes: &[u8], off: usize) -> Option<FrameHeader> {
    let b: &[u8; FRAME_HEADER_LEN] = bytes.get(off..off + FRAME_HEADER_LEN)?.try_into().ok()?;
    // The reserved bit must be 0 when sent (§4.1).
    (b[5] & 0x80 == 0).then(|| FrameHeader::parse(b))
}

/// Strict validity of a frame header: a known type, only its defined flags, the stream id rule
/// and fixed payload length of its type (§6.1–§6.10).
pub fn valid(h: &FrameHeader) -> bool {
    let (flags, on_stream, len_ok) = match h.kind {
        kind::DATA => (0x09, Some(true), true),
        kind::HEADERS => (0x2d, Some(true), true),
        kind::PRIORITY => (0x00, Some(true), h.length == 5),
        kind::RST_STREAM => (0x00, Some(true), h.length == 4),
        kind::SETTINGS => (
            0x01,
            Some(false),
            if h.flags & 1 != 0 {
                h.length == 0
            } else {
                h.length.is_multiple_of(6) && h.length <= 6 * 16
            },
        ),
        kind::PUSH_PROMISE => (0x0c, Some(true), h.length >= 4),
        kind::PING => (0x01, Some(false), h.length == 8),
        kind::GOAWAY => (0x00, Some(false), h.length >= 8),
        kind::WINDOW_UPDATE => (0x00, None, h.length == 4),
        kind::CONTINUATION => (0x04, Some(true), true),
        _ => return false,
    };
    let stream_ok = match on_stream {
        Some(true) => h.stream_id != 0,
        Some(false) => h.stream_id == 0,
        None => true,
    };
    h.flags & !flags == 0 && stream_ok && len_ok && h.length < 1 << 24
}

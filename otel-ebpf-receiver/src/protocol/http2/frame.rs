//! HTTP/2 frame decoder of one direction of a connection (RFC 9113 §4.1, §6).
//!
//! Stage: protocol::http2::connection → **frame** → connection. Input: the bytes of one
//! direction in syscall order, as `(ts_ns, captured, total_len)` where `total_len -
//! captured.len()` bytes went by uncaptured. Frames may be split across any number of syscalls
//! and one syscall may carry many frames. Output: calls on a [`FrameSink`]: each complete
//! non-DATA frame with its whole payload, each DATA frame's end with its content size (bytes,
//! padding removed), frames whose payload was lost, and losses of frame sync.
//!
//! Uncaptured bytes inside a DATA payload are just counted (the frame length says how many
//! bytes belong to it). Uncaptured bytes inside any other frame's payload lose that frame
//! ([`FrameSink::lost`]: its header is still known). Uncaptured bytes inside a frame header
//! lose sync ([`FrameSink::desync`]): the decoder then skips syscalls until one starts with a
//! plausible frame sequence ([`super::detect::frame_chain`]) or the preface.
//! Limits: non-DATA payloads are buffered up to `max_buffer` bytes (larger ones are lost);
//! DATA payloads are never copied. No IO, no panics on any input.

use super::PREFACE;
use super::detect;

/// Octets in a frame header (§4.1).
pub const FRAME_HEADER_LEN: usize = 9;

/// Frame type codes (§6, §11.2).
pub mod kind {
    /// DATA (§6.1).
    pub const DATA: u8 = 0x0;
    /// HEADERS (§6.2).
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY (§6.3, deprecated but still parsed).
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM (§6.4).
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS (§6.5).
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE (§6.6).
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING (§6.7).
    pub const PING: u8 = 0x6;
    /// GOAWAY (§6.8).
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE (§6.9).
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION (§6.10).
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (§6).
pub mod flag {
    /// END_STREAM on DATA and HEADERS.
    pub const END_STREAM: u8 = 0x1;
    /// ACK on SETTINGS and PING.
    pub const ACK: u8 = 0x1;
    /// END_HEADERS on HEADERS, PUSH_PROMISE and CONTINUATION.
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED on DATA, HEADERS and PUSH_PROMISE.
    pub const PADDED: u8 = 0x8;
    /// PRIORITY on HEADERS.
    pub const PRIORITY: u8 = 0x20;
}

/// A frame header (§4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (bytes, < 2^24).
    pub length: u32,
    /// Type code ([`kind`]).
    pub kind: u8,
    /// Flags ([`flag`]).
    pub flags: u8,
    /// Stream identifier (31 bits; the reserved bit is dropped).
    pub stream_id: u32,
}

impl FrameHeader {
    /// Parses the 9 header octets.
    pub fn parse(b: &[u8; FRAME_HEADER_LEN]) -> Self {
        Self {
            length: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    /// True when `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Receives what a [`FrameDecoder`] recognises, in stream order. `start_ns` is the ts of the
/// syscall carrying the frame's first byte, `end_ns` of the one carrying its last.
pub trait FrameSink {
    /// A complete non-DATA frame with its whole payload.
    fn frame(&mut self, h: FrameHeader, payload: &[u8], start_ns: u64, end_ns: u64);
    /// A DATA frame ended; `content_bytes` = payload minus padding (the whole payload when the
    /// pad length octet was not captured).
    fn data(&mut self, h: FrameHeader, content_bytes: u64, end_ns: u64);
    /// A non-DATA frame whose payload was not all captured, or exceeded the buffer limit.
    fn lost(&mut self, h: FrameHeader, start_ns: u64, end_ns: u64);
    /// Frame sync was lost at `ts_ns` (uncaptured or invalid bytes where a frame header was
    /// due); bytes are skipped until a syscall starts with a plausible frame sequence.
    fn desync(&mut self, ts_ns: u64);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Expecting the client preface (its first `n` octets matched so far).
    Preface(usize),
    /// Between frames or inside a frame header.
    Header,
    /// Inside a frame's payload.
    Payload,
    /// Sync lost: waiting for a syscall that starts with frames.
    Resync,
}

/// Frame decoder of one direction.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    state: State,
    hdr: [u8; FRAME_HEADER_LEN],
    hdr_len: usize,
    cur: FrameHeader,
    /// Payload bytes of `cur` still to come.
    left: u32,
    start_ns: u64,
    /// Payload of `cur` (non-DATA), ≤ `max_buffer`.
    buf: Vec<u8>,
    /// Part of `cur`'s payload was not captured or did not fit.
    lost: bool,
    /// Pad length of the current DATA frame, once read.
    pad: Option<u8>,
    max_buffer: usize,
}

impl FrameDecoder {
    /// A decoder at a frame boundary; with `preface` it first consumes the client connection
    /// preface if the bytes start with it (RFC 9113 §3.4; optional so that the same decoder
    /// serves `h2c` upgrades). `max_buffer` bounds buffered non-DATA payloads (bytes).
    pub fn new(preface: bool, max_buffer: usize) -> Self {
        Self {
            state: if preface {
                State::Preface(0)
            } else {
                State::Header
            },
            hdr: [0; FRAME_HEADER_LEN],
            hdr_len: 0,
            cur: FrameHeader::default(),
            left: 0,
            start_ns: 0,
            buf: Vec::new(),
            lost: false,
            pad: None,
            max_buffer,
        }
    }

    /// A decoder joining a stream mid-way: it waits for a syscall that starts with frames.
    pub fn resyncing(max_buffer: usize) -> Self {
        Self {
            state: State::Resync,
            ..Self::new(false, max_buffer)
        }
    }

    /// True while skipping bytes to find frame sync.
    pub fn is_resyncing(&self) -> bool {
        self.state == State::Resync
    }

    /// Bytes held in the payload buffer (memory accounting).
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Feeds one syscall. Returns true when this syscall started with the client preface
    /// (the connection's start: HPACK state is fresh).
    pub fn feed(
        &mut self,
        ts_ns: u64,
        captured: &[u8],
        total_len: u64,
        sink: &mut impl FrameSink,
    ) -> bool {
        let mut preface_seen = false;
        if self.state == State::Resync {
            if captured.starts_with(PREFACE) {
                self.state = State::Preface(0);
            } else if detect::frame_chain(captured, total_len).is_some() {
                self.state = State::Header;
            } else {
                return false;
            }
        }
        let mut input = captured;
        while !input.is_empty() {
            let n = match self.state {
                State::Preface(m) => {
                    let want = &PREFACE[m..];
                    let n = want.len().min(input.len());
                    if input[..n] != want[..n] {
                        if m == 0 {
                            self.state = State::Header; // no preface (h2c upgrade's server side)
                            continue;
                        }
                        self.lose_sync(ts_ns, sink);
                        return preface_seen;
                    }
                    self.state = if m + n == PREFACE.len() {
                        preface_seen = true;
                        State::Header
                    } else {
                        State::Preface(m + n)
                    };
                    n
                }
                State::Header => self.header_input(ts_ns, input, sink),
                State::Payload => self.payload_input(ts_ns, input, sink),
                State::Resync => return preface_seen,
            };
            input = &input[n..];
        }
        let missing = total_len.saturating_sub(captured.len() as u64);
        if missing > 0 {
            self.uncaptured(ts_ns, missing, sink);
        }
        preface_seen
    }

    fn header_input(&mut self, ts_ns: u64, input: &[u8], sink: &mut impl FrameSink) -> usize {
        if self.hdr_len == 0 {
            self.start_ns = ts_ns;
        }
        let n = (FRAME_HEADER_LEN - self.hdr_len).min(input.len());
        self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&input[..n]);
        self.hdr_len += n;
        if self.hdr_len == FRAME_HEADER_LEN {
            self.hdr_len = 0;
            self.cur = FrameHeader::parse(&self.hdr);
            self.left = self.cur.length;
            self.lost = false;
            self.pad = None;
            self.buf.clear();
            self.state = State::Payload;
            if self.left == 0 {
                self.finish(ts_ns, sink);
            }
        }
        n
    }

    fn payload_input(&mut self, ts_ns: u64, input: &[u8], sink: &mut impl FrameSink) -> usize {
        let n = (self.left as usize).min(input.len());
        if self.cur.kind == kind::DATA {
            if self.cur.has(flag::PADDED) && self.left == self.cur.length && n > 0 {
                self.pad = Some(input[0]);
            }
        } else if !self.lost {
            if self.buf.len() + n <= self.max_buffer {
                self.buf.extend_from_slice(&input[..n]);
            } else {
                self.lost = true;
                self.buf = Vec::new();
            }
        }
        self.left -= n as u32;
        if self.left == 0 {
            self.finish(ts_ns, sink);
        }
        n
    }

    /// `n` bytes went by uncaptured.
    fn uncaptured(&mut self, ts_ns: u64, mut n: u64, sink: &mut impl FrameSink) {
        if self.state == State::Payload {
            let k = u64::from(self.left).min(n);
            self.left -= k as u32;
            n -= k;
            if self.cur.kind != kind::DATA {
                self.lost = true;
                self.buf = Vec::new();
            }
            if self.left == 0 {
                self.finish(ts_ns, sink);
            }
        }
        if n > 0 && self.state != State::Resync {
            self.lose_sync(ts_ns, sink);
        }
    }

    fn finish(&mut self, ts_ns: u64, sink: &mut impl FrameSink) {
        self.state = State::Header;
        let h = self.cur;
        if h.kind == kind::DATA {
            let len = u64::from(h.length);
            let content = match self.pad {
                Some(p) => len.saturating_sub(1 + u64::from(p)),
                None => len,
            };
            sink.data(h, content, ts_ns);
        } else if self.lost {
            sink.lost(h, self.start_ns, ts_ns);
        } else {
            sink.frame(h, &self.buf, self.start_ns, ts_ns);
            if self.buf.capacity() > 16_384 {
                self.buf = Vec::new();
            }
        }
    }

    fn lose_sync(&mut self, ts_ns: u64, sink: &mut impl FrameSink) {
        self.state = State::Resync;
        self.hdr_len = 0;
        self.buf = Vec::new();
        sink.desync(ts_ns);
    }
}

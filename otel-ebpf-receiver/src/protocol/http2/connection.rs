//! One HTTP/2 connection: a frame decoder and an HPACK decoder per direction, header block
//! assembly, and the open streams paired request → response by stream id.
//!
//! Stage: conn → **protocol::http2::connection** → span. Input: the syscalls of one connection
//! detected as HTTP/2, each with its [`Direction`], ts (ns), captured bytes and full byte
//! count. Output: [`HttpExchange`]s, one per stream, when the response ends (END_STREAM), the
//! stream is reset (RST_STREAM, or refused by GOAWAY), times out, or the connection closes.
//!
//! The request direction (the client's bytes) is known from the preface, the socket's role, or
//! else from the first decoded header block holding `:method`/`:path` (request) or `:status`
//! (response). Limits: [`MAX_STREAMS`] open streams (more are dropped, counted), header blocks
//! up to [`MAX_HEADER_BLOCK`] bytes (larger ones are lost, counted), HPACK limits from
//! [`hpack::Limits`]. Every error is counted in [`Http2Stats`], none is fatal.

use super::frame::{FrameDecoder, FrameHeader, FrameSink, flag, kind};
use super::hpack::{self, HeaderList};
use super::stream::{ConnInfo, Request, Stream};
use super::{PREFACE, handlers};
use crate::events::Tuple;
use crate::protocol::{ExchangeError, HttpExchange, Side};
use otel_ebpf_common::Direction;
use std::collections::BTreeMap;

/// Most streams open at once per connection; new streams past it are dropped (counted in
/// [`Http2Stats::streams_dropped`]).
pub const MAX_STREAMS: usize = 1024;
/// Largest header block assembled (bytes, HEADERS/PUSH_PROMISE + CONTINUATION fragments);
/// larger blocks are lost (counted in [`Http2Stats::header_blocks_lost`]).
pub const MAX_HEADER_BLOCK: usize = 65_536;

/// Error counts of one connection since the last [`Http2Connection::take_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Http2Stats {
    /// Malformed frames (bad padding or length, orphan CONTINUATION, interleaved header
    /// blocks) and losses of frame sync.
    pub frame_errors: u64,
    /// Header blocks HPACK could not decode whole ([`HpackError`]).
    pub hpack_errors: u64,
    /// Header blocks lost to capture (uncaptured bytes) or too large to assemble.
    pub header_blocks_lost: u64,
    /// Streams not tracked because [`MAX_STREAMS`] were open.
    pub streams_dropped: u64,
}

impl Http2Stats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: Http2Stats) {
        self.frame_errors += other.frame_errors;
        self.hpack_errors += other.hpack_errors;
        self.header_blocks_lost += other.header_blocks_lost;
        self.streams_dropped += other.streams_dropped;
    }
}

/// The stream a request opened before the connection switched to HTTP/2 (`Upgrade: h2c`,
/// RFC 7540 §3.2): it becomes stream 1, its request already complete.
#[derive(Clone, Debug)]
pub struct UpgradedRequest {
    /// Request fields from the HTTP/1 head.
    pub request: Request,
    /// ts of the request's first byte (ns).
    pub start_ns: u64,
    /// Request content (bytes).
    pub body_bytes: u64,
}

/// A header block being assembled on one direction.
#[derive(Clone, Debug)]
pub(super) struct Block {
    pub stream_id: u32,
    /// Some(id) for PUSH_PROMISE: the promised stream.
    pub promised: Option<u32>,
    pub end_stream: bool,
    pub start_ns: u64,
    pub buf: Vec<u8>,
    /// A fragment was lost: the block cannot be decoded.
    pub lost: bool,
}

/// Per-connection state other than the frame decoders (borrowed by the frame sink).
#[derive(Clone, Debug)]
pub(super) struct State {
    pub info: ConnInfo,
    pub request_dir: Option<Direction>,
    pub hpack: [hpack::Decoder; 2],
    pub block: [Option<Block>; 2],
    pub streams: BTreeMap<u32, Stream>,
    pub stats: Http2Stats,
    pub out: Vec<HttpExchange>,
    /// A header block was decoded or lost (HPACK state is no longer the initial one).
    pub headers_seen: bool,
    pub scratch: HeaderList,
    /// Thread of the syscall being fed (stamped on streams it opens).
    pub tid: u32,
}

/// Index of a direction in per-direction arrays.
pub(super) fn di(d: Direction) -> usize {
    match d {
        Direction::Egress => 0,
        Direction::Ingress => 1,
    }
}

/// The other direction.
pub(super) fn other(d: Direction) -> Direction {
    match d {
        Direction::Egress => Direction::Ingress,
        Direction::Ingress => Direction::Egress,
    }
}

/// Frame and HPACK state of one HTTP/2 connection.
#[derive(Clone, Debug)]
pub struct Http2Connection {
    frames: [FrameDecoder; 2],
    st: State,
}

impl Http2Connection {
    /// A connection seen from its start (`from_start`: preface or server SETTINGS first, HPACK
    /// tables known and empty), or joined mid-way (frame sync and HPACK tables unknown).
    /// `request_dir`: the direction carrying the client's bytes, if known.
    pub fn new(
        pid: u32,
        conn_id: u64,
        tuple: Option<Tuple>,
        request_dir: Option<Direction>,
        from_start: bool,
    ) -> Self {
        let limits = hpack::Limits::default();
        let (frames, hpack) = if from_start {
            let dec = |d| FrameDecoder::new(Some(d) == request_dir, MAX_HEADER_BLOCK);
            (
                [dec(Direction::Egress), dec(Direction::Ingress)],
                [hpack::Decoder::new(limits), hpack::Decoder::new(limits)],
            )
        } else {
            let dec = || FrameDecoder::resyncing(MAX_HEADER_BLOCK);
            let hp = || hpack::Decoder::unknown(limits);
            ([dec(), dec()], [hp(), hp()])
        };
        Self {
            frames,
            st: State {
                info: ConnInfo {
                    pid,
                    conn_id,
                    tuple,
                },
                request_dir,
                hpack,
                block: [None, None],
                streams: BTreeMap::new(),
                stats: Http2Stats::default(),
                out: Vec::new(),
                headers_seen: false,
                scratch: HeaderList::default(),
                tid: 0,
            },
        }
    }

    /// A connection upgraded from HTTP/1 by `Upgrade: h2c` and `101`: stream 1 carries `req`.
    pub fn upgraded(
        pid: u32,
        conn_id: u64,
        tuple: Option<Tuple>,
        request_dir: Direction,
        req: UpgradedRequest,
    ) -> Self {
        let mut c = Self::new(pid, conn_id, tuple, Some(request_dir), true);
        let mut s = Stream::new(1, req.request, req.start_ns, true);
        s.request_body_bytes = req.body_bytes;
        c.st.streams.insert(1, s);
        c
    }

    /// Which side the traced process is, once the request direction is known.
    pub fn side(&self) -> Option<Side> {
        self.st.request_dir.map(side_of)
    }

    /// Sets the connection's endpoints (kept in later exchanges).
    pub fn set_tuple(&mut self, tuple: Option<Tuple>) {
        self.st.info.tuple = tuple;
    }

    /// Streams open (waiting for their response to end).
    pub fn pending_len(&self) -> usize {
        self.st.streams.len()
    }

    /// Bytes buffered (frame payloads, header blocks, HPACK tables) for memory accounting.
    pub fn buffered(&self) -> usize {
        let blocks: usize = self
            .st
            .block
            .iter()
            .flatten()
            .map(|b| b.buf.capacity())
            .sum();
        self.frames.iter().map(|f| f.buffered()).sum::<usize>()
            + blocks
            + self.st.hpack.iter().map(|h| h.table_bytes()).sum::<usize>()
    }

    /// Returns and resets the error counts.
    pub fn take_stats(&mut self) -> Http2Stats {
        std::mem::take(&mut self.st.stats)
    }

    /// Feeds one syscall (`total_len` bytes, of which `captured` were copied); finished
    /// exchanges are appended to `out`.
    /// The thread of the syscall about to be fed (stamped on the streams it opens).
    pub fn set_tid(&mut self, tid: u32) {
        self.st.tid = tid;
    }

    pub fn feed(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        captured: &[u8],
        total_len: u64,
        out: &mut Vec<HttpExchange>,
    ) {
        let i = di(direction);
        if captured.starts_with(PREFACE) && self.frames[i].is_resyncing() {
            // The connection's true start, seen late: the client's direction; HPACK tables
            // are fresh if no header block went by yet.
            self.st.request_dir.get_or_insert(direction);
            if !self.st.headers_seen {
                let limits = hpack::Limits::default();
                self.st.hpack = [hpack::Decoder::new(limits), hpack::Decoder::new(limits)];
            }
        }
        let mut sink = DirSink {
            st: &mut self.st,
            dir: direction,
        };
        self.frames[i].feed(ts_ns, captured, total_len, &mut sink);
        out.append(&mut self.st.out);
    }

    /// The connection closed (or its process exited) at `ts_ns`: every open stream ends with
    /// `error`, keeping the status it got (see [`Stream::closed_out`] for streams whose end
    /// may have been lost to capture).
    pub fn close(&mut self, error: ExchangeError, ts_ns: u64, out: &mut Vec<HttpExchange>) {
        let side = self.side().unwrap_or(Side::Client);
        for (_, s) in std::mem::take(&mut self.st.streams) {
            out.push(s.closed_out(&self.st.info, side, ts_ns, error));
        }
    }

    /// Ends streams with no frame for longer than `timeout_ns` at `now_ns` as
    /// [`ExchangeError::Timeout`] (end = `now_ns`; see [`Stream::closed_out`]).
    pub fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<HttpExchange>) {
        let side = self.side().unwrap_or(Side::Client);
        let old: Vec<u32> = self
            .st
            .streams
            .iter()
            .filter(|(_, s)| now_ns.saturating_sub(s.last_ns) > timeout_ns)
            .map(|(&id, _)| id)
            .collect();
        for id in old {
            if let Some(s) = self.st.streams.remove(&id) {
                out.push(s.closed_out(&self.st.info, side, now_ns, ExchangeError::Timeout));
            }
        }
    }
}

/// Side of the traced process given the request direction.
pub(super) fn side_of(request_dir: Direction) -> Side {
    match request_dir {
        Direction::Egress => Side::Client,
        Direction::Ingress => Side::Server,
    }
}

/// The frame sink of one direction.
struct DirSink<'a> {
    st: &'a mut State,
    dir: Direction,
}

impl FrameSink for DirSink<'_> {
    fn frame(&mut self, h: FrameHeader, payload: &[u8], start_ns: u64, end_ns: u64) {
        let (st, d) = (&mut *self.st, self.dir);
        match h.kind {
            kind::HEADERS | kind::PUSH_PROMISE => {
                handlers::block_start(st, d, h, Some(payload), start_ns, end_ns)
            }
            kind::CONTINUATION => handlers::continuation(st, d, h, Some(payload), end_ns),
            kind::RST_STREAM => {
                if let Some(code) = payload.get(..4) {
                    let code = u32::from_be_bytes([code[0], code[1], code[2], code[3]]);
                    handlers::end_stream(
                        st,
                        h.stream_id,
                        end_ns,
                        Some(ExchangeError::StreamReset(code)),
                    );
                }
            }
            kind::SETTINGS if !h.has(flag::ACK) => {
                // SETTINGS_HEADER_TABLE_SIZE bounds the peer's encoder (RFC 9113 §6.5.2).
                for s in payload.chunks_exact(6) {
                    if u16::from_be_bytes([s[0], s[1]]) == 0x1 {
                        let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                        st.hpack[di(other(d))].set_settings_limit(v as usize);
                    }
                }
            }
            kind::GOAWAY => {
                if let Some(b) = payload.get(..4) {
                    let last = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff;
                    handlers::goaway(st, d, last, end_ns);
                }
            }
            // DATA never comes here; PRIORITY, PING, WINDOW_UPDATE, SETTINGS ACK and unknown
            // types carry nothing we report.
            _ => {}
        }
    }

    fn data(&mut self, h: FrameHeader, content_bytes: u64, end_ns: u64) {
        handlers::data(self.st, self.dir, h, content_bytes, end_ns);
    }

    fn lost(&mut self, h: FrameHeader, start_ns: u64, end_ns: u64) {
        let (st, d) = (&mut *self.st, self.dir);
        match h.kind {
            kind::HEADERS | kind::PUSH_PROMISE => {
                handlers::block_start(st, d, h, None, start_ns, end_ns)
            }
            kind::CONTINUATION => handlers::continuation(st, d, h, None, end_ns),
            // Other frames lost to capture carry nothing a span needs, except RST_STREAM and
            // GOAWAY: their streams then end by timeout or close.
            _ => {}
        }
    }

    fn desync(&mut self, _ts_ns: u64) {
        let i = di(self.dir);
        self.st.stats.frame_errors += 1;
        if self.st.request_dir != Some(self.dir) {
            // Response frames (END_STREAM among them) may have gone by unseen.
            for s in self.st.streams.values_mut() {
                s.end_lost = true;
            }
        }
        self.st.hpack[i].mark_unknown();
        if self.st.block[i].take().is_some() {
            self.st.stats.header_blocks_lost += 1;
        }
    }
}

//! The protocol-connection interface: what the connection tracker needs from a parser.
//!
//! Stage: conn → **protocol** (interface). The tracker in `conn/` knows no protocol: it keeps
//! one [`ProtocolConnection`] per stream once one of the [`super::DETECTORS`] recognised the stream's
//! bytes, feeds it every later syscall ([`Syscall`]), asks it to close out at a close, a process
//! exit or a timeout, and reads its counters ([`ParserStats`]). Adding a protocol is one module
//! implementing [`ProtocolConnection`] plus its detector appended to
//! [`super::DETECTORS`].
//!
//! Inputs: one captured syscall of one stream. Outputs: [`HttpExchange`]s appended to the
//! caller's vector, and the next state of the stream ([`Next`]: keep parsing, become another
//! protocol — HTTP/1 → HTTP/2 after `Upgrade: h2c` — or stop parsing, e.g. a CONNECT tunnel).
//! Limits: each implementation bounds its own buffers (see its module).

use super::http2::connection::Http2Stats;
use super::{ExchangeError, HttpExchange};
use crate::events::Tuple;
use otel_ebpf_common::{Direction, SockRole};

/// One syscall's bytes on one stream, as the parsers see them.
#[derive(Clone, Copy, Debug)]
pub struct Syscall<'a> {
    /// Process (tgid).
    pub pid: u32,
    /// Stream key: the socket's connection id, or a TLS stream key (carried by exchanges as
    /// `conn_id`).
    pub stream: u64,
    /// Thread that made the syscall.
    pub tid: u32,
    /// Egress = written by the traced process.
    pub direction: Direction,
    /// Kernel time of the syscall (ns, CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// Captured bytes (a prefix of the syscall's bytes).
    pub payload: &'a [u8],
    /// The syscall's full byte count (≥ `payload.len()` unless the probes cut nothing).
    pub total_len: u64,
    /// The socket's endpoints, when the probes know them.
    pub tuple: Option<Tuple>,
    /// How the probes saw the socket being obtained (connect / accept / unknown).
    pub role: SockRole,
}

impl Syscall<'_> {
    /// True when every byte of the syscall was captured.
    pub fn whole(&self) -> bool {
        self.total_len <= self.payload.len() as u64
    }
}

/// Error counters of the parsers, summed over connections (self-telemetry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Parse errors in HTTP/1 streams (each [`crate::protocol::http1::ParseError`] once).
    pub parse_errors: u64,
    /// HTTP/2 errors (frames, HPACK, lost header blocks, dropped streams).
    pub http2: Http2Stats,
}

/// What a stream becomes after a syscall.
#[derive(Debug)]
pub enum Next {
    /// Same parser.
    Keep,
    /// Another protocol takes over the stream (it was already fed the rest of the syscall).
    Become(Box<dyn ProtocolConnection>),
    /// Nothing more to parse (a tunnel): later bytes are dropped unbuffered.
    Stop,
}

/// A protocol parser for one stream (one connection, or one TLS session's plaintext).
pub trait ProtocolConnection: std::fmt::Debug + Send {
    /// Feeds one syscall; finished exchanges go to `out`, error counts to `stats`.
    fn on_syscall(
        &mut self,
        s: &Syscall<'_>,
        stats: &mut ParserStats,
        out: &mut Vec<HttpExchange>,
    ) -> Next;
    /// The stream's endpoints became known (kept in later exchanges).
    fn set_tuple(&mut self, tuple: Option<Tuple>);
    /// The stream ended at `ts_ns` (close, process exit, eviction): everything unfinished is
    /// closed out with `error`.
    fn close(
        &mut self,
        error: ExchangeError,
        ts_ns: u64,
        stats: &mut ParserStats,
        out: &mut Vec<HttpExchange>,
    );
    /// Closes out requests with no progress for longer than `timeout_ns` at `now_ns` (ns).
    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<HttpExchange>);
    /// Bytes held in buffers (memory accounting).
    fn buffered(&self) -> usize;
    /// Requests (streams) waiting for their response.
    fn pending_len(&self) -> usize;
}

/// What a detector knows about the stream besides the syscall.
#[derive(Clone, Copy, Debug)]
pub struct StartContext {
    /// The stream is seen from its start (connect/accept traced) and this is its first
    /// syscall.
    pub fresh: bool,
    /// The endpoints known for the stream so far.
    pub tuple: Option<Tuple>,
    /// Bound on each head buffer (bytes).
    pub max_buffer_bytes: usize,
}

/// Recognises a protocol from a stream's syscall: a new parser (not yet fed), or `None`.
pub type Detector = fn(&Syscall<'_>, &StartContext) -> Option<Box<dyn ProtocolConnection>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DETECTORS;

    fn syscall(payload: &[u8], role: SockRole) -> Syscall<'_> {
        Syscall {
            pid: 1,
            stream: 7,
            tid: 1,
            direction: Direction::Egress,
            ts_ns: 1,
            payload,
            total_len: payload.len() as u64,
            tuple: None,
            role,
        }
    }

    /// Index of the first detector that claims the bytes.
    fn claimed_by(payload: &[u8], fresh: bool) -> Option<usize> {
        let ctx = StartContext {
            fresh,
            tuple: None,
            max_buffer_bytes: 4096,
        };
        let s = syscall(payload, SockRole::Client);
        DETECTORS.iter().position(|d| d(&s, &ctx).is_some())
    }

    #[test]
    fn each_protocol_is_claimed_by_its_own_detector_in_order() {
        assert_eq!(
            claimed_by(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            Some(0)
        );
        assert_eq!(claimed_by(crate::protocol::http2::PREFACE, true), Some(1));
        // A TLS ClientHello and random bytes are nobody's.
        assert_eq!(
            claimed_by(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3], true),
            None
        );
        assert_eq!(claimed_by(b"\x00\x01garbage", false), None);
    }

    #[test]
    fn a_cut_request_line_is_trusted_only_at_the_start_or_when_whole() {
        let ctx = |fresh| StartContext {
            fresh,
            tuple: None,
            max_buffer_bytes: 4096,
        };
        let mut s = syscall(b"GET /very/long/pa", SockRole::Unknown);
        s.total_len = 4096; // the probes cut the syscall
        assert!(super::super::connection::detect_http1(&s, &ctx(false)).is_none());
        assert!(super::super::connection::detect_http1(&s, &ctx(true)).is_some());
        s.total_len = s.payload.len() as u64;
        assert!(super::super::connection::detect_http1(&s, &ctx(false)).is_some());
    }

    #[test]
    fn an_h2c_upgrade_hands_the_stream_to_http2() {
        let ctx = StartContext {
            fresh: true,
            tuple: None,
            max_buffer_bytes: 4096,
        };
        let req = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n\
Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
        let s = syscall(req, SockRole::Client);
        let mut p = DETECTORS[0](&s, &ctx).expect("HTTP/1");
        let (mut stats, mut out) = (ParserStats::default(), Vec::new());
        assert!(matches!(p.on_syscall(&s, &mut stats, &mut out), Next::Keep));
        let resp =
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
        let mut r = syscall(resp, SockRole::Client);
        r.direction = Direction::Ingress;
        let next = p.on_syscall(&r, &mut stats, &mut out);
        let Next::Become(h2) = next else {
            panic!("expected HTTP/2, got {next:?}");
        };
        // The upgraded request is HTTP/2 stream 1, waiting for its response.
        assert_eq!(h2.pending_len(), 1);
        assert_eq!(stats, ParserStats::default());
    }
}

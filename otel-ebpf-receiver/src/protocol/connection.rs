//! One HTTP/1 connection: a request parser, a response parser and their pairing.
//!
//! Stage: conn → **protocol::connection** → span. Input: the syscalls of one connection already
//! detected as HTTP/1, each with its [`Direction`] (from the traced process's view), ts (ns),
//! captured bytes and full byte count. The direction that carried the first request is the
//! request direction for the connection's life (Egress → [`Side::Client`], Ingress →
//! [`Side::Server`]). Output: [`HttpExchange`]s. [`detect_http1`] and the
//! [`ProtocolConnection`] implementation plug it into the connection tracker. Limits: two head buffers of at most
//! `max_head` bytes each and [`super::pairing::MAX_PENDING`] waiting requests.

use super::detect::{self, Start};
use super::http1::{Http1Parser, MessageKind};
use super::http2::connection::{Http2Connection, UpgradedRequest};
use super::http2::stream::Request;
use super::pairing::Pairing;
use super::parser::{Next, ParserStats, ProtocolConnection, StartContext, Syscall};
use super::{ExchangeError, HttpExchange, Side};
use crate::events::Tuple;
use otel_ebpf_common::Direction;

/// Parsers and pairing state of one HTTP/1 connection.
#[derive(Clone, Debug)]
pub struct Http1Connection {
    request_direction: Direction,
    requests: Http1Parser,
    responses: Http1Parser,
    pairing: Pairing,
}

impl Http1Connection {
    /// A connection whose next `request_direction` syscall starts a request. With
    /// `from_start` (the connection was seen from its first byte) the response stream is parsed
    /// from its first byte too; otherwise responses are looked for at the start of syscalls
    /// (the stream was joined mid-way). `max_head` bounds each head buffer (bytes).
    pub fn new(
        pid: u32,
        conn_id: u64,
        request_direction: Direction,
        tuple: Option<Tuple>,
        max_head: usize,
        from_start: bool,
    ) -> Self {
        let side = match request_direction {
            Direction::Egress => Side::Client,
            Direction::Ingress => Side::Server,
        };
        Self {
            request_direction,
            requests: Http1Parser::new(MessageKind::Request, max_head),
            responses: if from_start {
                Http1Parser::new(MessageKind::Response, max_head)
            } else {
                Http1Parser::resyncing(MessageKind::Response, max_head)
            },
            pairing: Pairing::new(pid, conn_id, side, tuple, from_start),
        }
    }

    /// The thread of the syscall about to be fed (stamped on the requests it starts).
    pub fn set_tid(&mut self, tid: u32) {
        self.pairing.tid = tid;
    }

    /// The direction that carries requests.
    pub fn request_direction(&self) -> Direction {
        self.request_direction
    }

    /// After a 101 answering `Upgrade: h2c` in the syscall just fed: the upgraded request
    /// (HTTP/2 stream 1) and the offset in that syscall's captured bytes where HTTP/2 frames
    /// begin. Once.
    pub fn take_h2c_upgrade(&mut self) -> Option<(UpgradedRequest, usize)> {
        let (head, start_ns, body_bytes) = self.pairing.take_h2c_upgrade()?;
        let offset = self.responses.take_tunnel_offset().unwrap_or(0);
        let request = Request {
            method: Some(head.method.clone()),
            path: Some(head.target),
            authority: head.host,
            user_agent: head.user_agent,
            grpc: false,
            incomplete: false,
            propagated: head.propagation.clone().and_then(Result::ok).map(Box::new),
            propagation_error: head.propagation.as_ref().is_some_and(Result::is_err),
        };
        Some((
            UpgradedRequest {
                request,
                start_ns,
                body_bytes,
            },
            offset,
        ))
    }

    /// Which side the traced process is.
    pub fn side(&self) -> Side {
        self.pairing.side
    }

    /// Sets the connection's endpoints (kept in later exchanges).
    pub fn set_tuple(&mut self, tuple: Option<Tuple>) {
        self.pairing.tuple = tuple;
    }

    /// True after an upgrade (101) or CONNECT tunnel: bytes are no longer parsed.
    pub fn is_tunnel(&self) -> bool {
        self.responses.is_tunnel()
    }

    /// True once tunnelled with nothing left to report: the caller may drop this state.
    pub fn is_finished(&self) -> bool {
        self.is_tunnel() && self.pairing.is_idle()
    }

    /// Bytes held in head buffers (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.requests.buffered() + self.responses.buffered()
    }

    /// Requests seen and not yet answered.
    pub fn pending_len(&self) -> usize {
        self.pairing.pending_len()
    }

    /// Returns and resets the parse error count.
    pub fn take_parse_errors(&mut self) -> u64 {
        self.pairing.take_parse_errors()
    }

    /// Feeds one syscall's bytes (`total_len` bytes, of which `captured` were copied).
    pub fn feed(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        captured: &[u8],
        total_len: u64,
        out: &mut Vec<HttpExchange>,
    ) {
        if self.is_tunnel() {
            return;
        }
        if direction == self.request_direction {
            let mut sink = self.pairing.sink(MessageKind::Request, out);
            self.requests.feed(ts_ns, captured, total_len, &mut sink);
        } else {
            let mut sink = self.pairing.sink(MessageKind::Response, out);
            self.responses.feed(ts_ns, captured, total_len, &mut sink);
        }
    }

    /// The connection closed (or its process exited) at `ts_ns`: a close-delimited response
    /// completes; every other unfinished exchange ends with `error`.
    pub fn close(&mut self, error: ExchangeError, ts_ns: u64, out: &mut Vec<HttpExchange>) {
        self.requests
            .finish(&mut self.pairing.sink(MessageKind::Request, out));
        self.responses
            .finish(&mut self.pairing.sink(MessageKind::Response, out));
        self.pairing.close(error, ts_ns, out);
    }

    /// Closes out requests older than `timeout_ns` at `now_ns` (see [`Pairing::expire`]).
    pub fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<HttpExchange>) {
        let progress = (self.responses.last_ns(), self.responses.body_bytes());
        self.pairing.expire(now_ns, timeout_ns, progress, out);
    }
}

/// [`super::parser::Detector`] for HTTP/1: a request-line at the start of the syscall; a cut
/// request-line only at a stream's very start or when the syscall was captured whole (the line
/// goes on in the next one). The syscall's direction becomes the request direction.
pub fn detect_http1(s: &Syscall<'_>, ctx: &StartContext) -> Option<Box<dyn ProtocolConnection>> {
    match detect::request_start(s.payload) {
        Start::Request => {}
        Start::PartialRequest if s.whole() || ctx.fresh => {}
        _ => return None,
    }
    Some(Box::new(Http1Connection::new(
        s.pid,
        s.stream,
        s.direction,
        ctx.tuple,
        ctx.max_buffer_bytes,
        ctx.fresh,
    )))
}

impl ProtocolConnection for Http1Connection {
    /// Feeds the syscall; after a `101` answering `Upgrade: h2c` the stream becomes HTTP/2
    /// (the upgraded request is stream 1, the rest of the syscall is fed to it), after another
    /// upgrade or a CONNECT tunnel parsing stops.
    fn on_syscall(
        &mut self,
        s: &Syscall<'_>,
        stats: &mut ParserStats,
        out: &mut Vec<HttpExchange>,
    ) -> Next {
        self.set_tid(s.tid);
        self.feed(s.direction, s.ts_ns, s.payload, s.total_len, out);
        stats.parse_errors += self.take_parse_errors();
        if let Some((req, offset)) = self.take_h2c_upgrade() {
            let dir = self.request_direction();
            let mut h2 = Http2Connection::upgraded(s.pid, s.stream, s.tuple, dir, req);
            if let Some(rest) = s.payload.get(offset..).filter(|r| !r.is_empty()) {
                let rest = Syscall {
                    payload: rest,
                    total_len: s.total_len.saturating_sub(offset as u64),
                    ..*s
                };
                h2.on_syscall(&rest, stats, out);
            }
            return Next::Become(Box::new(h2));
        }
        if self.is_finished() {
            Next::Stop
        } else {
            Next::Keep
        }
    }

    fn set_tuple(&mut self, tuple: Option<Tuple>) {
        Http1Connection::set_tuple(self, tuple);
    }

    fn close(
        &mut self,
        error: ExchangeError,
        ts_ns: u64,
        stats: &mut ParserStats,
        out: &mut Vec<HttpExchange>,
    ) {
        Http1Connection::close(self, error, ts_ns, out);
        stats.parse_errors += self.take_parse_errors();
    }

    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<HttpExchange>) {
        Http1Connection::expire(self, now_ns, timeout_ns, out);
    }

    fn buffered(&self) -> usize {
        Http1Connection::buffered(self)
    }

    fn pending_len(&self) -> usize {
        Http1Connection::pending_len(self)
    }
}

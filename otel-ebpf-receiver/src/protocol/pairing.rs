//! Request/response pairing for one HTTP/1 connection.
//!
//! Stage: protocol::http1 → **protocol::pairing** → span. Input: [`MessageSink`] calls from the
//! request parser and the response parser of one connection, plus close and expiry. Output:
//! [`HttpExchange`]s appended to the caller's vector. HTTP/1 answers requests in order (RFC 9112
//! §9.3.2), so pending requests form a FIFO; 1xx interim responses never reach this layer. A
//! response whose head arrived before the oldest pending request started answers a request that
//! was not seen and is dropped (causality guard against mis-pairing after lost bytes). When the
//! response stream loses sync at a message boundary (its bytes there are not a status-line,
//! e.g. a lost first syscall), the oldest request sent before is dropped with it.
//! Limits: at most [`MAX_PENDING`] requests wait per connection.

use super::http1::{Answered, EndKind, MessageKind, MessageSink, ParseError, RequestHead};
use super::propagation::Propagated;
use super::{ExchangeContext, ExchangeError, HttpExchange, Side};
use crate::events::Tuple;
use std::collections::VecDeque;

/// Most requests waiting for a response on one connection; more are dropped with a
/// [`ParseError::TooManyPending`].
pub const MAX_PENDING: usize = 64;

/// A request seen, waiting for (or receiving) its response.
#[derive(Clone, Debug)]
struct Pending {
    /// Order of the request on the connection (0, 1, …).
    seq: u64,
    /// Thread of the syscall that carried the head's first byte... (set when the head
    /// completes; the same thread in practice).
    tid: u32,
    /// Trace context from the request head.
    propagated: Option<Box<Propagated>>,
    propagation_error: bool,
    head: RequestHead,
    start_ns: u64,
    request_body_bytes: u64,
}

/// A request whose final response head arrived.
#[derive(Clone, Debug)]
struct Answering {
    req: Pending,
    status: u16,
    response_body_bytes: u64,
}

/// Pairing state of one connection.
#[derive(Clone, Debug)]
pub struct Pairing {
    /// Process owning the connection (copied into exchanges).
    pub pid: u32,
    /// Connection id (copied into exchanges).
    pub conn_id: u64,
    /// Client when this process sent the requests (Egress), Server when it received them.
    pub side: Side,
    /// Endpoints (copied into exchanges).
    pub tuple: Option<Tuple>,
    pending: VecDeque<Pending>,
    answering: Option<Answering>,
    next_seq: u64,
    /// Seq of the request whose body the request parser is reading.
    open_request: Option<u64>,
    /// Parse errors reported since the last [`Pairing::take_parse_errors`].
    parse_errors: u64,
    /// A request with `Upgrade: h2c` answered by 101: it goes on as HTTP/2 stream 1 (no
    /// exchange here). `(head, start_ns, request_body_bytes)`.
    h2c_upgrade: Option<(RequestHead, u64, u64)>,
    /// Thread of the syscall being fed.
    pub tid: u32,
    /// The connection was seen from its start: request order numbers match the peer's.
    from_start: bool,
}

impl Pairing {
    /// Empty pairing state for one connection.
    pub fn new(pid: u32, conn_id: u64, side: Side, tuple: Option<Tuple>, from_start: bool) -> Self {
        Self {
            pid,
            conn_id,
            side,
            tuple,
            pending: VecDeque::new(),
            answering: None,
            next_seq: 0,
            open_request: None,
            parse_errors: 0,
            h2c_upgrade: None,
            tid: 0,
            from_start,
        }
    }

    /// The request that switched the connection to HTTP/2 (`Upgrade: h2c` + 101), once:
    /// `(head, start_ns, request_body_bytes)`.
    pub fn take_h2c_upgrade(&mut self) -> Option<(RequestHead, u64, u64)> {
        self.h2c_upgrade.take()
    }

    /// The sink for the parser of `kind` messages; finished exchanges go to `out`.
    pub fn sink<'a>(
        &'a mut self,
        kind: MessageKind,
        out: &'a mut Vec<HttpExchange>,
    ) -> PairingSink<'a> {
        PairingSink {
            pairing: self,
            kind,
            out,
        }
    }

    /// Returns and resets the parse error count.
    pub fn take_parse_errors(&mut self) -> u64 {
        std::mem::take(&mut self.parse_errors)
    }

    /// Requests seen and not yet answered by a final response head.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing waits: no pending request and no response in progress.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.answering.is_none()
    }

    /// Closes out everything at connection close / process exit at `ts_ns`: a response in
    /// progress keeps its status; waiting requests get `status = None`; all get `error`.
    pub fn close(&mut self, error: ExchangeError, ts_ns: u64, out: &mut Vec<HttpExchange>) {
        if let Some(a) = self.answering.take() {
            out.push(self.exchange(
                a.req,
                Some(a.status),
                a.response_body_bytes,
                ts_ns,
                Some(error),
            ));
        }
        while let Some(p) = self.pending.pop_front() {
            out.push(self.exchange(p, None, 0, ts_ns, Some(error)));
        }
    }

    /// Closes out requests older than `timeout_ns` at `now_ns` with [`ExchangeError::Timeout`]
    /// (`end_ns = now_ns`). A response in progress times out only when its last bytes
    /// (`response_last_ns`) are older than the timeout too; it keeps its status and the
    /// `response_body_bytes` received so far.
    pub fn expire(
        &mut self,
        now_ns: u64,
        timeout_ns: u64,
        (response_last_ns, response_body_bytes): (u64, u64),
        out: &mut Vec<HttpExchange>,
    ) {
        let old = |start: u64| now_ns.saturating_sub(start) > timeout_ns;
        if let Some(a) = &self.answering
            && old(a.req.start_ns.max(response_last_ns))
            && let Some(a) = self.answering.take()
        {
            let (status, body) = (Some(a.status), response_body_bytes);
            out.push(self.exchange(a.req, status, body, now_ns, Some(ExchangeError::Timeout)));
        }
        while self.pending.front().is_some_and(|p| old(p.start_ns)) {
            if let Some(p) = self.pending.pop_front() {
                out.push(self.exchange(p, None, 0, now_ns, Some(ExchangeError::Timeout)));
            }
        }
    }

    fn exchange(
        &self,
        req: Pending,
        status: Option<u16>,
        response_body_bytes: u64,
        end_ns: u64,
        error: Option<ExchangeError>,
    ) -> HttpExchange {
        let h = req.head;
        HttpExchange {
            pid: self.pid,
            conn_id: self.conn_id,
            side: self.side,
            tuple: self.tuple,
            method: h.method,
            target: h.target,
            version: if h.minor_version == 0 { "1.0" } else { "1.1" }.to_owned(),
            host: h.host,
            user_agent: h.user_agent,
            status,
            start_ns: req.start_ns,
            end_ns: end_ns.max(req.start_ns),
            request_body_bytes: req.request_body_bytes,
            response_body_bytes,
            error,
            grpc: None,
            headers_incomplete: false,
            context: ExchangeContext {
                tid: req.tid,
                seq: self.from_start.then_some(req.seq),
                stream_id: 0,
                propagated: req.propagated,
                propagation_error: req.propagation_error,
            },
        }
    }

    fn request_body(&mut self, seq: u64, bytes: u64) {
        if let Some(p) = self.pending.iter_mut().rev().find(|p| p.seq == seq) {
            p.request_body_bytes = bytes;
        } else if let Some(a) = self.answering.as_mut().filter(|a| a.req.seq == seq) {
            a.req.request_body_bytes = bytes;
        }
    }
}

/// [`MessageSink`] for one parser (`kind`) of a connection, writing exchanges into `out`.
pub struct PairingSink<'a> {
    pairing: &'a mut Pairing,
    kind: MessageKind,
    out: &'a mut Vec<HttpExchange>,
}

impl MessageSink for PairingSink<'_> {
    fn request_head(&mut self, mut head: RequestHead, start_ns: u64) {
        let p = &mut *self.pairing;
        if p.pending.len() >= MAX_PENDING {
            p.open_request = None;
            self.parse_error(ParseError::TooManyPending, start_ns);
            return;
        }
        let seq = p.next_seq;
        p.next_seq += 1;
        p.open_request = Some(seq);
        let (propagated, propagation_error) = match head.propagation.take() {
            Some(Ok(p)) => (Some(Box::new(p)), false),
            Some(Err(_)) => (None, true),
            None => (None, false),
        };
        p.pending.push_back(Pending {
            seq,
            tid: p.tid,
            propagated,
            propagation_error,
            head,
            start_ns,
            request_body_bytes: 0,
        });
    }

    fn response_head(&mut self, status: u16, start_ns: u64) -> Answered {
        let p = &mut *self.pairing;
        if let Some(a) = p.answering.take() {
            // The previous response never ended (cannot happen with in-order parsers).
            let (st, body) = (Some(a.status), a.response_body_bytes);
            self.out.push(p.exchange(a.req, st, body, start_ns, None));
        }
        if p.pending.front().is_none_or(|r| r.start_ns > start_ns) {
            return Answered::Other; // answers a request that was not seen
        }
        let Some(req) = p.pending.pop_front() else {
            return Answered::Other;
        };
        if status == 101 && req.head.upgrade_h2c {
            // RFC 7540 §3.2: the response comes as HTTP/2 on stream 1.
            p.h2c_upgrade = Some((req.head, req.start_ns, req.request_body_bytes));
            return Answered::Other;
        }
        let answered = match req.head.method.as_str() {
            "HEAD" => Answered::Head,
            "CONNECT" => Answered::Connect,
            _ => Answered::Other,
        };
        p.answering = Some(Answering {
            req,
            status,
            response_body_bytes: 0,
        });
        answered
    }

    fn message_end(&mut self, end_ns: u64, body_bytes: u64, how: EndKind) {
        let p = &mut *self.pairing;
        match self.kind {
            MessageKind::Request => {
                if let Some(seq) = p.open_request.take() {
                    p.request_body(seq, body_bytes);
                }
            }
            MessageKind::Response if how == EndKind::Closed => {
                // Stays answering: `Pairing::close` ends it with the close reason.
                if let Some(a) = p.answering.as_mut() {
                    a.response_body_bytes = body_bytes;
                }
            }
            MessageKind::Response => {
                if let Some(a) = p.answering.take() {
                    let status = Some(a.status);
                    self.out
                        .push(p.exchange(a.req, status, body_bytes, end_ns, None));
                }
            }
        }
    }

    fn parse_error(&mut self, _err: ParseError, _ts_ns: u64) {
        self.pairing.parse_errors += 1;
    }

    /// The oldest request sent before the loss is taken as answered by the lost response and
    /// dropped (its parse error is already counted): without this, every later response
    /// would pair with the request before its own.
    fn response_lost(&mut self, ts_ns: u64) {
        let p = &mut *self.pairing;
        if p.pending.front().is_some_and(|r| r.start_ns <= ts_ns) {
            p.pending.pop_front();
        }
    }
}

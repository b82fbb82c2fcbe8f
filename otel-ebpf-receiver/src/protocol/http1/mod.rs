//! HTTP/1.0 and HTTP/1.1 stream parser, one per direction of a connection.
//!
//! Stage: conn → **protocol::http1** → protocol::pairing. Input: the bytes of one direction in
//! syscall order, as chunks `(ts_ns, captured, total_len)` where `total_len - captured.len()`
//! bytes exist but were not captured. Output: calls on a [`MessageSink`]: a head, then the end
//! of that message (with its body size in bytes), or a parse error. Framing follows RFC 9112
//! §6.3 (Content-Length, chunked, close-delimited, no body for HEAD / 1xx / 204 / 304, tunnels
//! after CONNECT 2xx and 101). Uncaptured bytes count towards bodies; if they fall inside a head
//! or chunk framing the parser reports a parse error and resynchronises at the next syscall that
//! starts a message. Limits: a head is buffered up to `max_head` bytes (then a parse error);
//! bodies are only counted, never copied. No IO, no panics on any input.

mod chunked;
pub mod head;
#[cfg(test)]
mod tests;

use crate::protocol::detect::{self, Start};
use chunked::Chunked;
pub use head::{Framing, Head, RequestHead, Salvaged};

/// Head buffer capacity kept between messages (bytes); larger buffers are freed.
const KEEP_HEAD_CAPACITY: usize = 4096;

/// Why bytes could not be parsed; each occurrence counts once in `ConnStats::parse_errors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The bytes are not a valid start-line and header section (RFC 9112 §2.1).
    InvalidHead,
    /// The head did not end within the buffer limit.
    HeadTooLarge,
    /// Uncaptured bytes fell inside (or at the start of) a head.
    HeadNotCaptured,
    /// Invalid or conflicting Content-Length (RFC 9112 §6.3 rule 5).
    BadContentLength,
    /// A request's final transfer coding is not chunked (RFC 9112 §6.3 rule 4).
    BadTransferCoding,
    /// Invalid chunk-size line or missing CRLF after chunk-data (RFC 9112 §7.1).
    BadChunk,
    /// Uncaptured bytes fell inside chunk framing.
    ChunkNotCaptured,
    /// The trailer section exceeded the buffer limit.
    TrailerTooLarge,
    /// More requests awaited responses than the pairing layer keeps.
    TooManyPending,
}

/// Which messages a parser reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// Requests (RFC 9112 §3).
    Request,
    /// Responses (RFC 9112 §4).
    Response,
}

/// What the answered request implies for a response's framing (RFC 9112 §6.3 rules 1–2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    /// A HEAD request: the response has no content.
    Head,
    /// A CONNECT request: a 2xx response turns the connection into a tunnel.
    Connect,
    /// Any other method, or unknown.
    Other,
}

/// How a message ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndKind {
    /// Its framing completed (or the connection closed a close-delimited body).
    Complete,
    /// A parse error cut it short; the parser resynchronises.
    ParseError,
    /// The connection closed before its framing completed.
    Closed,
}

/// Receives what a parser recognises, in stream order.
pub trait MessageSink {
    /// A request head; `start_ns` is the ts of the syscall carrying its first byte.
    fn request_head(&mut self, head: RequestHead, start_ns: u64);
    /// A final (non-1xx, or 101) response head with its status code; `start_ns` as above.
    /// Returns what the request it answers implies for framing.
    fn response_head(&mut self, status: u16, start_ns: u64) -> Answered;
    /// The current message ended in the syscall at `end_ns` with `body_bytes` of content.
    fn message_end(&mut self, end_ns: u64, body_bytes: u64, how: EndKind);
    /// A parse error at the syscall at `ts_ns`.
    fn parse_error(&mut self, err: ParseError, ts_ns: u64);
    /// The response stream lost sync at a message boundary at `ts_ns` without recovering a
    /// status-line: a response was probably there (its first syscall lost or not captured).
    fn response_lost(&mut self, _ts_ns: u64) {}
}

/// Message body framing in progress (RFC 9112 §6.3).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    /// Content-Length: bytes left.
    Length(u64),
    Chunked(Chunked),
    /// Response body delimited by the connection closing.
    UntilClose,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Between messages, or inside a head (buffered in `head`).
    Head,
    Body(Body),
    /// After an error: skip syscalls until one starts with a message start.
    Resync,
    /// After an upgrade (101) or a CONNECT 2xx: the bytes are not HTTP/1 any more.
    Tunnel,
}

/// Stream parser of one direction (requests or responses) of one connection.
#[derive(Clone, Debug)]
pub struct Http1Parser {
    kind: MessageKind,
    state: State,
    /// Partial head bytes (≤ `max_head`).
    head: Vec<u8>,
    max_head: usize,
    /// ts of the syscall that carried the current message's first byte (ns).
    start_ns: u64,
    /// Body bytes of the current message so far.
    body_bytes: u64,
    /// ts of the last syscall fed while a message was in progress (ns).
    last_ns: u64,
    /// Offset in the last fed syscall's captured bytes where a tunnel began (101 / CONNECT
    /// 2xx): the bytes from there on belong to the new protocol.
    tunnel_at: Option<usize>,
}

impl Http1Parser {
    /// A parser expecting a message start at the next byte. `max_head` bounds buffered head
    /// bytes, a chunk-size line and a trailer section (bytes).
    pub fn new(kind: MessageKind, max_head: usize) -> Self {
        Self {
            kind,
            state: State::Head,
            head: Vec::new(),
            max_head: max_head.max(1),
            start_ns: 0,
            body_bytes: 0,
            last_ns: 0,
            tunnel_at: None,
        }
    }

    /// A parser that first waits for a syscall starting with a message start (for streams
    /// joined mid-way).
    pub fn resyncing(kind: MessageKind, max_head: usize) -> Self {
        Self {
            state: State::Resync,
            ..Self::new(kind, max_head)
        }
    }

    /// True after an upgrade or CONNECT tunnel: further bytes are ignored.
    pub fn is_tunnel(&self) -> bool {
        self.state == State::Tunnel
    }

    /// Where the tunnel began in the syscall just fed (offset into its captured bytes), once:
    /// the rest of that syscall is the tunnelled protocol's (e.g. HTTP/2 after `h2c`).
    pub fn take_tunnel_offset(&mut self) -> Option<usize> {
        self.tunnel_at.take()
    }

    /// True while skipping bytes to resynchronise.
    pub fn is_resyncing(&self) -> bool {
        self.state == State::Resync
    }

    /// True between messages (nothing buffered, no body in progress).
    pub fn is_idle(&self) -> bool {
        self.state == State::Head && self.head.is_empty()
    }

    /// ts of the last syscall that carried bytes of a message (ns).
    pub fn last_ns(&self) -> u64 {
        self.last_ns
    }

    /// Body bytes of the current (or last) message so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Bytes held in the head buffer (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.head.capacity()
    }

    /// Feeds one syscall: `captured` bytes, then `total_len - captured.len()` uncaptured ones.
    pub fn feed(
        &mut self,
        ts_ns: u64,
        captured: &[u8],
        total_len: u64,
        sink: &mut impl MessageSink,
    ) {
        let missing = total_len.saturating_sub(captured.len() as u64);
        match self.state {
            State::Tunnel => return,
            State::Resync if !self.starts_message(captured, missing) => return,
            State::Resync => self.state = State::Head,
            _ => {}
        }
        let mut input = captured;
        while !input.is_empty() {
            let n = match self.state {
                State::Head => self.head_input(ts_ns, input, sink),
                State::Body(_) => self.body_input(ts_ns, input, sink),
                State::Resync | State::Tunnel => break,
            };
            input = &input[n..];
        }
        match self.state {
            State::Tunnel => {
                self.tunnel_at = Some(captured.len() - input.len());
                return;
            }
            State::Resync if !input.is_empty() => return,
            _ => {}
        }
        if missing > 0 {
            self.uncaptured(ts_ns, missing, sink);
        }
    }

    /// The connection closed: a close-delimited body completes (RFC 9112 §6.3 rule 8); any
    /// other message in progress ends as [`EndKind::Closed`].
    /// A head cut by the close reports its start-line (see `salvage`).
    pub fn finish(&mut self, sink: &mut impl MessageSink) {
        match &self.state {
            State::Body(body) => {
                let how = match body {
                    Body::UntilClose => EndKind::Complete,
                    _ => EndKind::Closed,
                };
                sink.message_end(self.last_ns, self.body_bytes, how);
            }
            State::Head if !self.head.is_empty() => {
                let head = std::mem::take(&mut self.head);
                self.salvage(&head, sink);
            }
            _ => {}
        }
        self.state = State::Resync;
        self.head = Vec::new();
    }

    fn starts_message(&self, captured: &[u8], missing: u64) -> bool {
        let start = match self.kind {
            MessageKind::Request => detect::request_start(captured),
            MessageKind::Response => detect::response_start(captured),
        };
        match start {
            Start::Request | Start::Response => true,
            // A cut start-line is only trusted if the whole syscall was seen.
            Start::PartialRequest | Start::PartialResponse => missing == 0,
            Start::Other => false,
        }
    }

    /// State Head: returns input bytes consumed.
    fn head_input(&mut self, ts_ns: u64, input: &[u8], sink: &mut impl MessageSink) -> usize {
        let request = self.kind == MessageKind::Request;
        if self.head.is_empty() {
            // Empty lines before a start-line are ignored (RFC 9112 §2.2).
            let skip = input
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if skip > 0 {
                return skip;
            }
            self.start_ns = ts_ns;
            self.last_ns = ts_ns;
            if !detect::plausible_start(request, input) {
                return self.head_failed(&[], ParseError::InvalidHead, ts_ns, sink, input.len());
            }
            return match head::parse(request, input) {
                Ok(Some((n, h))) => {
                    self.on_head(h, ts_ns, sink);
                    n
                }
                Ok(None) if input.len() <= self.max_head => {
                    self.head.extend_from_slice(input);
                    input.len()
                }
                Ok(None) => {
                    self.head_failed(input, ParseError::HeadTooLarge, ts_ns, sink, input.len())
                }
                Err(e) => self.head_failed(input, e, ts_ns, sink, input.len()),
            };
        }
        self.last_ns = ts_ns;
        let old = self.head.len();
        let take = input.len().min(self.max_head - old);
        self.head.extend_from_slice(&input[..take]);
        // A head can only end at a LF, so parse again only when one arrived.
        let parsed = if input[..take].contains(&b'\n') {
            head::parse(request, &self.head)
        } else {
            Ok(None)
        };
        match parsed {
            Ok(Some((n, h))) if n > old => {
                self.clear_head();
                self.on_head(h, ts_ns, sink);
                n - old
            }
            Ok(None) if self.head.len() < self.max_head => take,
            other => {
                let head = std::mem::take(&mut self.head);
                let err = other.err().unwrap_or(ParseError::HeadTooLarge);
                self.head_failed(&head, err, ts_ns, sink, input.len())
            }
        }
    }

    /// A complete head: tell the sink and pick the body framing (RFC 9112 §6.3).
    fn on_head(&mut self, h: Head, ts_ns: u64, sink: &mut impl MessageSink) {
        self.body_bytes = 0;
        let framing = match h {
            Head::Request(req, f) => {
                sink.request_head(req, self.start_ns);
                if f.transfer_encoding && !f.chunked {
                    self.fail(ParseError::BadTransferCoding, ts_ns, sink, 0);
                    return;
                }
                f
            }
            Head::Response(status, f) => {
                if (100..200).contains(&status) && status != 101 {
                    return; // interim response: ignored, the final one follows
                }
                let answered = sink.response_head(status, self.start_ns);
                if status == 101 || (answered == Answered::Connect && status / 100 == 2) {
                    sink.message_end(ts_ns, 0, EndKind::Complete);
                    self.state = State::Tunnel;
                    return;
                }
                if answered == Answered::Head || status == 204 || status == 304 {
                    sink.message_end(ts_ns, 0, EndKind::Complete);
                    return;
                }
                if !f.transfer_encoding && f.content_length.is_none() {
                    self.state = State::Body(Body::UntilClose);
                    return;
                }
                f
            }
        };
        self.state = if framing.chunked {
            State::Body(Body::Chunked(Chunked::default()))
        } else if let Some(n @ 1..) = framing
            .content_length
            .filter(|_| !framing.transfer_encoding)
        {
            State::Body(Body::Length(n))
        } else if framing.transfer_encoding {
            State::Body(Body::UntilClose) // response with a non-chunked final coding
        } else {
            sink.message_end(ts_ns, 0, EndKind::Complete);
            State::Head
        };
    }

    /// State Body: returns input bytes consumed.
    fn body_input(&mut self, ts_ns: u64, input: &[u8], sink: &mut impl MessageSink) -> usize {
        self.last_ns = ts_ns;
        let State::Body(body) = &mut self.state else {
            return input.len();
        };
        match body {
            Body::Length(left) => {
                let n = (*left).min(input.len() as u64);
                *left -= n;
                self.body_bytes = self.body_bytes.saturating_add(n);
                if *left == 0 {
                    self.end(ts_ns, sink);
                }
                n as usize
            }
            Body::UntilClose => {
                self.body_bytes = self.body_bytes.saturating_add(input.len() as u64);
                input.len()
            }
            Body::Chunked(c) => {
                let p = c.feed(input, self.max_head);
                self.body_bytes = self.body_bytes.saturating_add(p.data);
                if let Some(e) = p.error {
                    self.fail(e, ts_ns, sink, input.len())
                } else {
                    if p.done {
                        self.end(ts_ns, sink);
                    }
                    p.consumed
                }
            }
        }
    }

    /// `n` bytes exist but were not captured.
    fn uncaptured(&mut self, ts_ns: u64, n: u64, sink: &mut impl MessageSink) {
        let mut left = n;
        if let State::Body(body) = &mut self.state {
            self.last_ns = ts_ns;
            match body {
                Body::Length(l) => {
                    let k = (*l).min(left);
                    *l -= k;
                    left -= k;
                    self.body_bytes = self.body_bytes.saturating_add(k);
                    if *l == 0 {
                        self.end(ts_ns, sink);
                    }
                }
                Body::UntilClose => {
                    self.body_bytes = self.body_bytes.saturating_add(left);
                    left = 0;
                }
                Body::Chunked(c) => {
                    let (k, data) = c.skip(left);
                    left -= k;
                    self.body_bytes = self.body_bytes.saturating_add(data);
                    if left > 0 {
                        self.fail(ParseError::ChunkNotCaptured, ts_ns, sink, 0);
                        return;
                    }
                }
            }
        }
        if left > 0 && self.state == State::Head {
            let head = std::mem::take(&mut self.head);
            self.head_failed(&head, ParseError::HeadNotCaptured, ts_ns, sink, 0);
        }
    }

    /// A head (`head`: its bytes so far) cannot be parsed whole: report its start-line if it
    /// can be recovered, else (for responses) a lost response; then fail with `err`.
    fn head_failed(
        &mut self,
        head: &[u8],
        err: ParseError,
        ts_ns: u64,
        sink: &mut impl MessageSink,
        consumed: usize,
    ) -> usize {
        if !self.salvage(head, sink) && self.kind == MessageKind::Response {
            sink.response_lost(ts_ns);
        }
        self.fail(err, ts_ns, sink, consumed)
    }

    /// Reports what a head that cannot be parsed whole (cut by uncaptured bytes, too large,
    /// bad header fields) still tells: its start-line, so that pairing stays in step.
    /// Returns whether a start-line was recovered.
    fn salvage(&mut self, head: &[u8], sink: &mut impl MessageSink) -> bool {
        match head::salvage(self.kind == MessageKind::Request, head) {
            Some(Salvaged::Request(req)) => sink.request_head(req, self.start_ns),
            Some(Salvaged::Response(status)) if !(100..200).contains(&status) => {
                sink.response_head(status, self.start_ns);
                sink.message_end(self.last_ns, 0, EndKind::ParseError);
            }
            Some(Salvaged::Response(_)) => {}
            None => return false,
        }
        true
    }

    fn end(&mut self, ts_ns: u64, sink: &mut impl MessageSink) {
        sink.message_end(ts_ns, self.body_bytes, EndKind::Complete);
        self.state = State::Head;
    }

    /// Ends the message in progress (if any), reports `err` and starts resynchronising.
    /// Returns `consumed` for the caller's convenience.
    fn fail(
        &mut self,
        err: ParseError,
        ts_ns: u64,
        sink: &mut impl MessageSink,
        consumed: usize,
    ) -> usize {
        if matches!(self.state, State::Body(_)) {
            sink.message_end(ts_ns, self.body_bytes, EndKind::ParseError);
        }
        sink.parse_error(err, ts_ns);
        self.state = State::Resync;
        self.clear_head();
        consumed
    }

    fn clear_head(&mut self) {
        if self.head.capacity() > KEEP_HEAD_CAPACITY {
            self.head = Vec::new();
        } else {
            self.head.clear();
        }
    }
}

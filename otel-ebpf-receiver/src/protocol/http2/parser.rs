//! HTTP/2 as a [`ProtocolConnection`]: its detector and the tracker-facing implementation.
//!
//! Stage: conn → **protocol::http2** (plug). Input: a syscall of a stream that is not HTTP/1.
//! Output: an [`Http2Connection`] when the syscall starts HTTP/2 (RFC 9113 §3.4 client
//! preface from either side at any time; a server's SETTINGS as the first bytes of a stream
//! seen from its start; on a stream joined mid-way, a syscall that is exactly a sequence of
//! valid frames — two or more, or one HEADERS — whose request direction then comes from the
//! socket's role when the probes saw it). Limits: those of [`Http2Connection`].

use super::connection::Http2Connection;
use super::detect;
use crate::events::Tuple;
use crate::protocol::parser::{Next, ParserStats, ProtocolConnection, StartContext, Syscall};
use crate::protocol::{ExchangeError, HttpExchange};
use otel_ebpf_common::{Direction, SockRole};

/// [`crate::protocol::parser::Detector`] for HTTP/2 (see the module doc).
pub fn detect_http2(s: &Syscall<'_>, ctx: &StartContext) -> Option<Box<dyn ProtocolConnection>> {
    let p = s.payload;
    let (dir, from_start) = if detect::is_preface(p) && (s.whole() || p.len() >= 24) {
        (Some(s.direction), true)
    } else if ctx.fresh && detect::is_server_preface(p) {
        (Some(opposite(s.direction)), true)
    } else if !ctx.fresh
        && detect::frame_chain(p, s.total_len).is_some_and(|c| c.frames >= 2 || c.has_headers)
    {
        let dir = match s.role {
            SockRole::Client => Some(Direction::Egress),
            SockRole::Server => Some(Direction::Ingress),
            SockRole::Unknown => None,
        };
        (dir, false)
    } else {
        return None;
    };
    Some(Box::new(Http2Connection::new(
        s.pid, s.stream, ctx.tuple, dir, from_start,
    )))
}

fn opposite(d: Direction) -> Direction {
    match d {
        Direction::Egress => Direction::Ingress,
        Direction::Ingress => Direction::Egress,
    }
}

impl ProtocolConnection for Http2Connection {
    fn on_syscall(
        &mut self,
        s: &Syscall<'_>,
        stats: &mut ParserStats,
        out: &mut Vec<HttpExchange>,
    ) -> Next {
        self.set_tid(s.tid);
        self.feed(s.direction, s.ts_ns, s.payload, s.total_len, out);
        stats.http2.add(self.take_stats());
        Next::Keep
    }

    fn set_tuple(&mut self, tuple: Option<Tuple>) {
        Http2Connection::set_tuple(self, tuple);
    }

    fn close(
        &mut self,
        error: ExchangeError,
        ts_ns: u64,
        stats: &mut ParserStats,
        out: &mut Vec<HttpExchange>,
    ) {
        Http2Connection::close(self, error, ts_ns, out);
        stats.http2.add(self.take_stats());
    }

    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<HttpExchange>) {
        Http2Connection::expire(self, now_ns, timeout_ns, out);
    }

    fn buffered(&self) -> usize {
        Http2Connection::buffered(self)
    }

    fn pending_len(&self) -> usize {
        Http2Connection::pending_len(self)
    }
}

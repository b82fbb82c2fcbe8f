//! Per-connection stream reassembly.
//!
//! Stage: events → **conn** → protocol. Input: decoded [`Event`]s in ring buffer order.
//! Output: [`HttpExchange`]s appended to the caller's vector. Each connection, keyed by
//! (pid, conn_id), is first *probed*: the start of each syscall's bytes is checked for an
//! HTTP/1 request-line ([`crate::protocol::detect`]), then for HTTP/2
//! ([`crate::protocol::http2::detect`]): the client preface (either side, any time), a server's
//! SETTINGS as the first bytes of a connection seen from its start, or — on a connection
//! joined mid-way — a syscall that is exactly a sequence of valid frames (two or more, or one
//! HEADERS). An HTTP/1 request with `Upgrade: h2c` answered by 101 switches the connection to
//! HTTP/2 (the request becomes stream 1). A connection seen from its start
//! (`role` Client/Server: the probes saw connect/accept) whose first bytes are neither, a
//! TLS record, or a joined-mid-way connection with no request-line or frames within
//! [`PROBE_WINDOW_SYSCALLS`] syscalls is marked not-HTTP and its bytes are dropped unbuffered.
//! `Event::TcpState` is ignored.
//!
//! TLS plaintext (`DataEvent::tls` set) is its own stream, keyed by (pid, [`TLS_STREAM`] |
//! session pointer) so it never mixes with the ciphertext of the same socket (which is
//! marked not-HTTP as soon as a TLS record is seen, or not sent at all once the probes know
//! the socket is TLS). When the probes associated the socket, its tuple and role are used, a
//! `Close` of that socket also ends the TLS stream, and a session pointer seen on another
//! socket (freed and reused by the library) starts a new stream. Exchanges of TLS streams
//! carry the stream key as `conn_id` ([`HttpExchange::is_tls`]).
//! Limits: bounded number of connections (the least recently used is evicted, and its
//! unfinished exchanges are dropped, counted in [`ConnStats::connections_evicted`]) and bytes
//! buffered per connection (see [`ConnLimits`]).

mod lru;
#[cfg(test)]
mod tests;

use crate::events::{DataEvent, Event};
use crate::protocol::detect::{self, Start};
use crate::protocol::http2::{self, Http2Connection, Http2Stats};
use crate::protocol::{ExchangeError, Http1Connection, HttpExchange};
use lru::Lru;
use otel_ebpf_common::Direction;
use otel_ebpf_common::SockRole;
use std::collections::{BTreeSet, HashMap};

/// Bit set in the stream key (and the exchanges' `conn_id`) of TLS plaintext streams; the
/// low 48 bits are the session pointer. Probe connection ids never reach bit 63.
pub const TLS_STREAM: u64 = 1 << 63;

/// Syscalls checked for a request-line on a connection joined mid-way before it is marked
/// not-HTTP.
pub const PROBE_WINDOW_SYSCALLS: u32 = 64;

/// Bounds on per-connection state.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Connections tracked at once; the least recently used is dropped past this.
    pub max_connections: usize,
    /// Requests without a response are closed out after this long (ns).
    pub request_timeout_ns: u64,
    /// Bytes buffered per direction while a message head is incomplete.
    pub max_buffer_bytes: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: 65_536,
            request_timeout_ns: 30_000_000_000,
            max_buffer_bytes: 65_536,
        }
    }
}

/// Counters kept by the tracker (read by self-telemetry).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Parse errors in HTTP/1 streams (each [`crate::protocol::http1::ParseError`] once).
    pub parse_errors: u64,
    /// Connections dropped to stay within [`ConnLimits::max_connections`].
    pub connections_evicted: u64,
    /// HTTP/2 errors (frames, HPACK, lost header blocks, dropped streams).
    pub http2: Http2Stats,
}

/// (pid, conn_id).
type ConnKey = (u32, u64);

/// What is known about a connection's protocol.
#[derive(Debug)]
enum Proto {
    /// Not recognised yet; `syscalls` checked so far.
    Probing {
        syscalls: u32,
    },
    Http(Box<Http1Connection>),
    Http2(Box<Http2Connection>),
    /// Not HTTP (or tunnelled): bytes are dropped.
    Other,
}

#[derive(Debug)]
struct Conn {
    tuple: Option<crate::events::Tuple>,
    proto: Proto,
    /// TLS streams: the probes' conn_id of the socket under it (0 = not known).
    sock: u64,
}

/// Tracks every connection and drives its protocol parsers.
#[derive(Default)]
pub struct ConnTracker {
    /// Bounds applied to every connection.
    pub limits: ConnLimits,
    /// Counters since creation.
    pub stats: ConnStats,
    conns: Lru<ConnKey, Conn>,
    /// Same keys as `conns`, ordered, to find a process's connections at exit.
    by_pid: BTreeSet<ConnKey>,
    /// (pid, socket conn_id) → TLS stream key on that socket.
    tls_by_sock: HashMap<ConnKey, u64>,
}

impl ConnTracker {
    /// An empty tracker with the given bounds.
    pub fn new(limits: ConnLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Connections tracked now.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True when no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Bytes held in head buffers over all connections (O(connections); for tests, fuzzing
    /// and occasional self-telemetry).
    pub fn buffered_bytes(&self) -> usize {
        self.conns
            .iter()
            .map(|(_, c)| match &c.proto {
                Proto::Http(h) => h.buffered(),
                Proto::Http2(h) => h.buffered(),
                _ => 0,
            })
            .sum()
    }

    /// Requests (HTTP/2: open streams) waiting for a response over all connections
    /// (O(connections)).
    pub fn pending_requests(&self) -> usize {
        self.conns
            .iter()
            .map(|(_, c)| match &c.proto {
                Proto::Http(h) => h.pending_len(),
                Proto::Http2(h) => h.pending_len(),
                _ => 0,
            })
            .sum()
    }

    /// The socket connection id behind exchange stream `(pid, conn_id)`: `conn_id` itself for
    /// plaintext, the associated socket's for a TLS stream (0 when none is known).
    pub fn socket_of(&mut self, pid: u32, conn_id: u64) -> u64 {
        if conn_id & TLS_STREAM == 0 {
            return conn_id;
        }
        self.conns.get_mut(&(pid, conn_id)).map_or(0, |c| c.sock)
    }

    /// Feeds one event; completed exchanges are appended to `out`.
    pub fn on_event(&mut self, ev: Event, out: &mut Vec<HttpExchange>) {
        match ev {
            Event::Data(d) => self.on_data(&d, out),
            Event::Close {
                pid,
                conn_id,
                ts_ns,
                ..
            } => {
                self.finish((pid, conn_id), ExchangeError::ConnectionClosed, ts_ns, out);
                if let Some(stream) = self.tls_by_sock.remove(&(pid, conn_id)) {
                    self.finish((pid, stream), ExchangeError::ConnectionClosed, ts_ns, out);
                }
            }
            Event::ProcessExit { pid, ts_ns } => {
                let keys: Vec<ConnKey> = self
                    .by_pid
                    .range((pid, 0)..=(pid, u64::MAX))
                    .copied()
                    .collect();
                for key in keys {
                    self.finish(key, ExchangeError::ProcessExited, ts_ns, out);
                }
            }
            Event::TcpState { .. }
            | Event::ProcessExec { .. }
            | Event::ProcessFork { .. }
            | Event::Net(_) => {}
        }
    }

    /// Closes out requests older than the timeout at `now_ns` (CLOCK_MONOTONIC).
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<HttpExchange>) {
        let timeout = self.limits.request_timeout_ns;
        for (_, conn) in self.conns.iter_mut() {
            match &mut conn.proto {
                Proto::Http(h) => h.expire(now_ns, timeout, out),
                Proto::Http2(h) => h.expire(now_ns, timeout, out),
                _ => {}
            }
        }
    }

    fn on_data(&mut self, d: &DataEvent, out: &mut Vec<HttpExchange>) {
        if d.total_len == 0 && d.payload.is_empty() {
            return;
        }
        let key = match d.tls {
            Some(t) => (d.pid, TLS_STREAM | (t.session & 0xffff_ffff_ffff)),
            None => (d.pid, d.conn_id),
        };
        if d.tls.is_some() && d.conn_id != 0 {
            let sock = self.conns.get_mut(&key).map(|c| c.sock);
            if sock.is_some_and(|s| s != 0 && s != d.conn_id) {
                // The library reused the session pointer for another socket: a new stream.
                self.finish(key, ExchangeError::ConnectionClosed, d.ts_ns, out);
            }
        }
        let conn = match self.conns.get_mut(&key) {
            Some(c) => c,
            None => {
                while self.conns.len() >= self.limits.max_connections.max(1) {
                    let Some((old, c)) = self.conns.pop_oldest() else {
                        break;
                    };
                    self.by_pid.remove(&old);
                    if c.sock != 0 {
                        self.tls_by_sock.remove(&(old.0, c.sock));
                    }
                    self.stats.connections_evicted += 1;
                }
                self.by_pid.insert(key);
                let conn = Conn {
                    tuple: None,
                    proto: Proto::Probing { syscalls: 0 },
                    sock: 0,
                };
                self.conns.insert(key, conn)
            }
        };
        if d.tls.is_some() && d.conn_id != 0 && conn.sock == 0 {
            conn.sock = d.conn_id;
            self.tls_by_sock.insert((d.pid, d.conn_id), key.1);
        }
        if conn.tuple.is_none() && d.tuple.is_some() {
            conn.tuple = d.tuple;
            match &mut conn.proto {
                Proto::Http(h) => h.set_tuple(d.tuple),
                Proto::Http2(h) => h.set_tuple(d.tuple),
                _ => {}
            }
        }
        let payload = &d.payload[..];
        match &mut conn.proto {
            Proto::Other => {}
            Proto::Http(h) => {
                h.set_tid(d.tid);
                h.feed(d.direction, d.ts_ns, payload, d.total_len, out);
                self.stats.parse_errors += h.take_parse_errors();
                if let Some(next) = after_http1(h, key.1, d, &mut self.stats, out) {
                    conn.proto = next;
                }
            }
            Proto::Http2(h) => {
                h.set_tid(d.tid);
                h.feed(d.direction, d.ts_ns, payload, d.total_len, out);
                self.stats.http2.add(h.take_stats());
            }
            Proto::Probing { syscalls } => {
                // Seen from its start: connect/accept traced and this is its first syscall.
                let fresh = d.role != SockRole::Unknown && *syscalls == 0;
                let whole = d.total_len <= payload.len() as u64;
                match detect::request_start(payload) {
                    Start::Request => {}
                    // A cut request-line is trusted at a connection's very start, or when the
                    // syscall was captured whole (the line goes on in the next one).
                    Start::PartialRequest if whole || fresh => {}
                    _ => {
                        if let Some(mut h) = http2_start(d, key.1, fresh, conn.tuple) {
                            h.set_tid(d.tid);
                            h.feed(d.direction, d.ts_ns, payload, d.total_len, out);
                            self.stats.http2.add(h.take_stats());
                            conn.proto = Proto::Http2(h);
                            return;
                        }
                        // Fresh and not opening with a request: not HTTP. Joined mid-way:
                        // give it a window.
                        *syscalls += 1;
                        if fresh
                            || detect::is_tls_record(payload)
                            || *syscalls >= PROBE_WINDOW_SYSCALLS
                        {
                            conn.proto = Proto::Other;
                        }
                        return;
                    }
                }
                let mut h = Box::new(Http1Connection::new(
                    d.pid,
                    key.1,
                    d.direction,
                    conn.tuple,
                    self.limits.max_buffer_bytes,
                    fresh,
                ));
                h.set_tid(d.tid);
                h.feed(d.direction, d.ts_ns, payload, d.total_len, out);
                self.stats.parse_errors += h.take_parse_errors();
                conn.proto = match after_http1(&mut h, key.1, d, &mut self.stats, out) {
                    Some(next) => next,
                    None => Proto::Http(h),
                };
            }
        }
    }

    /// Ends a connection: everything unfinished on it is closed out with `error` at `ts_ns`.
    fn finish(
        &mut self,
        key: ConnKey,
        error: ExchangeError,
        ts_ns: u64,
        out: &mut Vec<HttpExchange>,
    ) {
        self.by_pid.remove(&key);
        let Some(conn) = self.conns.remove(&key) else {
            return;
        };
        if conn.sock != 0 {
            self.tls_by_sock.remove(&(key.0, conn.sock));
        }
        match conn.proto {
            Proto::Http(mut h) => {
                h.close(error, ts_ns, out);
                self.stats.parse_errors += h.take_parse_errors();
            }
            Proto::Http2(mut h) => {
                h.close(error, ts_ns, out);
                self.stats.http2.add(h.take_stats());
            }
            _ => {}
        }
    }
}

/// What an HTTP/1 connection becomes after a syscall: HTTP/2 after an `h2c` upgrade (the rest
/// of that syscall fed to it), not-HTTP after another tunnel, or unchanged (`None`).
fn after_http1(
    h: &mut Http1Connection,
    conn_id: u64,
    d: &DataEvent,
    stats: &mut ConnStats,
    out: &mut Vec<HttpExchange>,
) -> Option<Proto> {
    if let Some((req, offset)) = h.take_h2c_upgrade() {
        let dir = h.request_direction();
        let mut h2 = Http2Connection::upgraded(d.pid, conn_id, d.tuple, dir, req);
        if let Some(rest) = d.payload.get(offset..).filter(|r| !r.is_empty()) {
            let total = d.total_len.saturating_sub(offset as u64);
            h2.set_tid(d.tid);
            h2.feed(d.direction, d.ts_ns, rest, total, out);
        }
        stats.http2.add(h2.take_stats());
        return Some(Proto::Http2(Box::new(h2)));
    }
    h.is_finished().then_some(Proto::Other) // other upgrade / CONNECT tunnel
}

/// An HTTP/2 connection (exchanges carry `conn_id`: the stream key, so TLS streams keep
/// their marker) if this syscall (not HTTP/1) starts one: the client preface (its
/// sender is the client), a server's SETTINGS first on a connection seen from its start (its
/// sender is the server), or on a connection joined mid-way a syscall that is exactly valid
/// frames (two or more, or a HEADERS) — then the request direction comes from the socket's
/// role when the probes saw it.
fn http2_start(
    d: &DataEvent,
    conn_id: u64,
    fresh: bool,
    tuple: Option<crate::events::Tuple>,
) -> Option<Box<Http2Connection>> {
    let p = &d.payload[..];
    let whole = d.total_len <= p.len() as u64;
    let (dir, from_start) = if http2::detect::is_preface(p) && (whole || p.len() >= 24) {
        (Some(d.direction), true)
    } else if fresh && http2::detect::is_server_preface(p) {
        (Some(opposite(d.direction)), true)
    } else if !fresh
        && http2::detect::frame_chain(p, d.total_len)
            .is_some_and(|c| c.frames >= 2 || c.has_headers)
    {
        let dir = match d.role {
            SockRole::Client => Some(Direction::Egress),
            SockRole::Server => Some(Direction::Ingress),
            SockRole::Unknown => None,
        };
        (dir, false)
    } else {
        return None;
    };
    Some(Box::new(Http2Connection::new(
        d.pid, conn_id, tuple, dir, from_start,
    )))
}

fn opposite(d: Direction) -> Direction {
    match d {
        Direction::Egress => Direction::Ingress,
        Direction::Ingress => Direction::Egress,
    }
}

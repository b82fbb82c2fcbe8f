//! Per-connection stream reassembly.
//!
//! Stage: events → **conn** → protocol. Input: decoded [`Event`]s in ring buffer order.
//! Output: [`HttpExchange`]s appended to the caller's vector. The tracker knows no protocol:
//! each connection, keyed by (pid, conn_id), is first *probed* by the protocol detectors
//! ([`crate::protocol::parser::DETECTORS`]: an HTTP/1 request-line, then HTTP/2's preface,
//! server SETTINGS or a run of valid frames), then driven through the
//! [`ProtocolConnection`] interface, which may hand the stream to another protocol (HTTP/1
//! `Upgrade: h2c` answered by 101 → HTTP/2, the request becoming stream 1) or stop parsing it
//! (a tunnel). A connection seen from its start
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
use crate::hash::HashMap;
use crate::protocol::DETECTORS;
use crate::protocol::detect;
use crate::protocol::parser::{Next, ParserStats, ProtocolConnection, StartContext, Syscall};
use crate::protocol::{ExchangeError, HttpExchange};
use lru::Lru;
use otel_ebpf_common::SockRole;
use std::collections::BTreeSet;

pub use crate::protocol::TLS_STREAM;

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
    /// The parsers' error counts.
    pub parsers: ParserStats,
    /// Connections dropped to stay within [`ConnLimits::max_connections`].
    pub connections_evicted: u64,
}

/// (pid, conn_id).
type ConnKey = (u32, u64);

/// What is known about a connection's protocol.
#[derive(Debug)]
enum Proto {
    /// Not recognised yet; `syscalls` checked so far.
    Probing { syscalls: u32 },
    /// Recognised: its parser.
    Parsing(Box<dyn ProtocolConnection>),
    /// Not parsed (not a known protocol, or tunnelled): bytes are dropped.
    Other,
}

impl Proto {
    fn parser(&self) -> Option<&dyn ProtocolConnection> {
        match self {
            Proto::Parsing(p) => Some(p.as_ref()),
            _ => None,
        }
    }

    fn after(next: Next, current: Box<dyn ProtocolConnection>) -> Proto {
        match next {
            Next::Keep => Proto::Parsing(current),
            Next::Become(p) => Proto::Parsing(p),
            Next::Stop => Proto::Other,
        }
    }
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
            .filter_map(|(_, c)| c.proto.parser())
            .map(|p| p.buffered())
            .sum()
    }

    /// Requests (HTTP/2: open streams) waiting for a response over all connections
    /// (O(connections)).
    pub fn pending_requests(&self) -> usize {
        self.conns
            .iter()
            .filter_map(|(_, c)| c.proto.parser())
            .map(|p| p.pending_len())
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
            if let Proto::Parsing(p) = &mut conn.proto {
                p.expire(now_ns, timeout, out);
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
            if let Proto::Parsing(p) = &mut conn.proto {
                p.set_tuple(d.tuple);
            }
        }
        let s = Syscall {
            pid: d.pid,
            stream: key.1,
            tid: d.tid,
            direction: d.direction,
            ts_ns: d.ts_ns,
            payload: &d.payload[..],
            total_len: d.total_len,
            tuple: d.tuple,
            role: d.role,
        };
        let stats = &mut self.stats.parsers;
        let proto = std::mem::replace(&mut conn.proto, Proto::Other);
        conn.proto = match proto {
            Proto::Other => Proto::Other,
            Proto::Parsing(mut p) => {
                let next = p.on_syscall(&s, stats, out);
                Proto::after(next, p)
            }
            Proto::Probing { syscalls } => {
                // Seen from its start: connect/accept traced and this is its first syscall.
                let ctx = StartContext {
                    fresh: d.role != SockRole::Unknown && syscalls == 0,
                    tuple: conn.tuple,
                    max_buffer_bytes: self.limits.max_buffer_bytes,
                };
                match DETECTORS.iter().find_map(|detect| detect(&s, &ctx)) {
                    Some(mut p) => {
                        let next = p.on_syscall(&s, stats, out);
                        Proto::after(next, p)
                    }
                    // Fresh and not opening with a known protocol: not parsed. Joined
                    // mid-way: give it a window.
                    None if ctx.fresh
                        || detect::is_tls_record(s.payload)
                        || syscalls + 1 >= PROBE_WINDOW_SYSCALLS =>
                    {
                        Proto::Other
                    }
                    None => Proto::Probing {
                        syscalls: syscalls + 1,
                    },
                }
            }
        };
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
        if let Proto::Parsing(mut p) = conn.proto {
            p.close(error, ts_ns, &mut self.stats.parsers, out);
        }
    }
}

//! Scenario tests of the conn + protocol stages: realistic syscall streams in, exact
//! [`HttpExchange`]s out.

mod framing;
mod http2;
mod lifecycle;
mod resync;
mod tls;

use super::*;
use crate::events::Tuple;
use crate::protocol::Side;
use bytes::Bytes;
use otel_ebpf_common::{Direction, Syscall};

pub const PID: u32 = 4242;
pub const CONN: u64 = 7;
/// Capture size of the probes' default configuration (bytes).
pub const CAPTURE: usize = 4096;

pub fn tuple() -> Tuple {
    Tuple {
        local: "10.0.0.1:40000".parse().unwrap(),
        remote: "10.0.0.2:80".parse().unwrap(),
    }
}

/// A GET request head with the Host and User-Agent every expected exchange carries.
pub fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\n\r\n").into_bytes()
}

/// A request head with a Content-Length body.
pub fn with_body(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "{method} {target} HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

/// A 200 response with a Content-Length body.
pub fn ok(body: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v
}

/// The exchange the helpers above produce, for `side`; tweak fields with struct update.
pub fn exchange(side: Side, method: &str, target: &str, status: Option<u16>) -> HttpExchange {
    HttpExchange {
        pid: PID,
        conn_id: CONN,
        side,
        tuple: Some(tuple()),
        method: method.into(),
        target: target.into(),
        version: "1.1".into(),
        host: Some("example.com".into()),
        user_agent: Some("test/1".into()),
        status,
        start_ns: 0,
        end_ns: 0,
        request_body_bytes: 0,
        response_body_bytes: 0,
        error: None,
        grpc: None,
        headers_incomplete: false,
        context: Default::default(),
    }
}

/// A tracker plus one connection of one process, driven syscall by syscall.
pub struct Sim {
    pub t: ConnTracker,
    pub out: Vec<HttpExchange>,
    pub role: SockRole,
    pub conn_id: u64,
    pub pid: u32,
}

impl Sim {
    pub fn new(role: SockRole) -> Self {
        Self::with_limits(role, ConnLimits::default())
    }

    pub fn with_limits(role: SockRole, limits: ConnLimits) -> Self {
        Self {
            t: ConnTracker::new(limits),
            out: Vec::new(),
            role,
            conn_id: CONN,
            pid: PID,
        }
    }

    /// One syscall of `total` bytes of which `bytes` (already cut to the capture) were copied.
    pub fn syscall(&mut self, dir: Direction, ts: u64, bytes: &[u8], total: u64) {
        let ev = Event::Data(DataEvent {
            pid: self.pid,
            tid: self.pid,
            fd: 5,
            conn_id: self.conn_id,
            ts_ns: ts,
            direction: dir,
            role: self.role,
            syscall: if dir == Direction::Egress {
                Syscall::Write
            } else {
                Syscall::Read
            },
            total_len: total,
            tuple: Some(tuple()),
            payload: Bytes::copy_from_slice(bytes),
            tls: None,
        });
        self.t.on_event(ev, &mut self.out);
    }

    /// The process wrote `bytes` in one syscall (all captured).
    pub fn send(&mut self, ts: u64, bytes: &[u8]) {
        self.syscall(Direction::Egress, ts, bytes, bytes.len() as u64);
    }

    /// The process read `bytes` in one syscall (all captured).
    pub fn recv(&mut self, ts: u64, bytes: &[u8]) {
        self.syscall(Direction::Ingress, ts, bytes, bytes.len() as u64);
    }

    /// One syscall moving `bytes`, of which only the first [`CAPTURE`] were captured.
    pub fn capped(&mut self, dir: Direction, ts: u64, bytes: &[u8]) {
        let n = bytes.len().min(CAPTURE);
        self.syscall(dir, ts, &bytes[..n], bytes.len() as u64);
    }

    pub fn close(&mut self, ts: u64) {
        let ev = Event::Close {
            pid: self.pid,
            fd: 5,
            conn_id: self.conn_id,
            ts_ns: ts,
        };
        self.t.on_event(ev, &mut self.out);
    }

    /// The exchanges so far, their linking context cleared (checked by
    /// [`exchanges_carry_thread_and_request_number`]).
    pub fn take(&mut self) -> Vec<HttpExchange> {
        let mut out = std::mem::take(&mut self.out);
        for e in &mut out {
            e.context = Default::default();
        }
        out
    }

    /// The exchanges so far, as built.
    pub fn take_raw(&mut self) -> Vec<HttpExchange> {
        std::mem::take(&mut self.out)
    }
}

#[test]
fn exchanges_carry_thread_and_request_number() {
    // Seen from its start (the probes saw connect): request numbers count from 0.
    let mut s = Sim::new(SockRole::Client);
    for i in 0..3u64 {
        s.send(10 + i * 10, &get("/a"));
        s.recv(15 + i * 10, &ok(b"x"));
    }
    let got = s.take_raw();
    let ctx: Vec<_> = got.iter().map(|e| (e.context.tid, e.context.seq)).collect();
    assert_eq!(ctx, [(PID, Some(0)), (PID, Some(1)), (PID, Some(2))]);
    // Joined mid-way: no request number (the peer may count differently).
    let mut s = Sim::new(SockRole::Unknown);
    s.send(10, &get("/a"));
    s.recv(15, &ok(b"x"));
    assert_eq!(s.take_raw()[0].context.seq, None);
}

#[test]
fn propagation_headers_reach_the_exchange() {
    let mut s = Sim::new(SockRole::Server);
    let req = b"GET / HTTP/1.1\r\nHost: a\r\n\
        traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n";
    s.recv(10, req);
    s.send(20, &ok(b""));
    s.recv(
        30,
        b"GET / HTTP/1.1\r\nHost: a\r\ntraceparent: bogus\r\n\r\n",
    );
    s.send(40, &ok(b""));
    let got = s.take_raw();
    let p = got[0].context.propagated.as_ref().expect("context");
    assert_eq!(p.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
    assert!(!got[0].context.propagation_error);
    assert!(got[1].context.propagated.is_none() && got[1].context.propagation_error);
}

#[test]
fn keep_alive_200_requests_on_one_connection() {
    let mut s = Sim::new(SockRole::Client);
    let mut want = Vec::new();
    for i in 0..200u64 {
        let target = format!("/item/{i}");
        let body = vec![b'x'; (i % 7) as usize];
        let ts = 1_000 + i * 100;
        s.send(ts, &get(&target));
        s.recv(ts + 40, &ok(&body));
        want.push(HttpExchange {
            start_ns: ts,
            end_ns: ts + 40,
            response_body_bytes: body.len() as u64,
            ..exchange(Side::Client, "GET", &target, Some(200))
        });
    }
    assert_eq!(s.take(), want);
    assert_eq!(s.t.stats, ConnStats::default());
}

#[test]
fn pipelined_three_requests_one_write_three_responses_one_read() {
    let mut s = Sim::new(SockRole::Server);
    let mut reqs = get("/a");
    reqs.extend(with_body("POST", "/b", b"abc"));
    reqs.extend(get("/c"));
    s.recv(10, &reqs);
    assert_eq!(s.take(), vec![]);
    let mut resps = ok(b"first");
    resps.extend(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    resps.extend(ok(b"3rd"));
    s.send(20, &resps);
    let base = |m, t, st| HttpExchange {
        start_ns: 10,
        end_ns: 20,
        ..exchange(Side::Server, m, t, Some(st))
    };
    assert_eq!(
        s.take(),
        vec![
            HttpExchange {
                response_body_bytes: 5,
                ..base("GET", "/a", 200)
            },
            HttpExchange {
                request_body_bytes: 3,
                ..base("POST", "/b", 201)
            },
            HttpExchange {
                response_body_bytes: 3,
                ..base("GET", "/c", 200)
            },
        ]
    );
    assert_eq!(s.t.stats, ConnStats::default());
}

#[test]
fn request_head_over_many_syscalls_starts_at_first_byte() {
    let mut s = Sim::new(SockRole::Client);
    let req = get("/slow");
    for (i, b) in req.iter().enumerate() {
        s.send(100 + i as u64, std::slice::from_ref(b));
    }
    s.recv(500, &ok(b""));
    let want = HttpExchange {
        start_ns: 100,
        end_ns: 500,
        ..exchange(Side::Client, "GET", "/slow", Some(200))
    };
    assert_eq!(s.take(), vec![want]);
    assert_eq!(s.t.stats.parsers.parse_errors, 0);
}

//! Fuzz target: the conn + protocol stages on arbitrary syscall streams.
//!
//! Stage: conn → protocol. Input: arbitrary bytes read as a script of syscalls on a few
//! connections: each step takes a control byte (direction, connection, role, close/exit/expire),
//! a captured length and an uncaptured length, then that many bytes as the payload, so
//! `total_len ≥ captured` always holds. Checks: no panic, and memory stays bounded (tracked
//! connections, buffered head bytes and waiting requests under their limits).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use otel_ebpf_common::{Direction, SockRole, Syscall};
use otel_ebpf_receiver::conn::{ConnLimits, ConnTracker};
use otel_ebpf_receiver::events::{DataEvent, Event};
use otel_ebpf_receiver::protocol::pairing::MAX_PENDING;

const MAX_CONNS: usize = 3;
const MAX_BUFFER: usize = 512;
/// Canned first bytes so most inputs get past detection at once.
const PRELUDE: &[u8] = b"GET /fuzz HTTP/1.1\r\nHost: f\r\n";

fuzz_target!(|data: &[u8]| {
    let limits = ConnLimits {
        max_connections: MAX_CONNS,
        request_timeout_ns: 1_000,
        max_buffer_bytes: MAX_BUFFER,
    };
    let mut t = ConnTracker::new(limits);
    let mut out = Vec::new();
    let mut rest = data;
    let mut ts = 0u64;
    let mut first = true;
    while let [ctl, cap, miss, tail @ ..] = rest {
        ts += 1 + u64::from(*miss & 0x0f);
        let conn_id = u64::from(ctl >> 5) % 4;
        let pid = 1 + u32::from(ctl >> 7);
        match ctl & 0x07 {
            6 => t.on_event(
                Event::Close {
                    pid,
                    fd: 3,
                    conn_id,
                    ts_ns: ts,
                },
                &mut out,
            ),
            7 if ctl & 0x18 == 0 => t.on_event(Event::ProcessExit { pid, ts_ns: ts }, &mut out),
            7 => t.expire(ts + u64::from(*cap) * 16, &mut out),
            _ => {}
        }
        let n = usize::from(*cap).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        if ctl & 0x07 >= 6 {
            continue;
        }
        let mut bytes = Vec::new();
        if first && ctl & 0x08 != 0 {
            bytes.extend_from_slice(PRELUDE);
        }
        first = false;
        bytes.extend_from_slice(payload);
        // Uncaptured bytes: small counts often, huge ones sometimes.
        let missing = match miss >> 4 {
            0..=9 => 0,
            10..=13 => u64::from(*miss),
            14 => u64::from(*miss) << 12,
            _ => u64::MAX / 4,
        };
        let direction = if ctl & 0x01 == 0 {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let role = match (ctl >> 1) & 0x03 {
            0 => SockRole::Unknown,
            1 => SockRole::Client,
            _ => SockRole::Server,
        };
        let ev = DataEvent {
            pid,
            tid: pid,
            fd: 3,
            conn_id,
            ts_ns: ts,
            direction,
            role,
            syscall: Syscall::Read,
            total_len: bytes.len() as u64 + missing,
            tuple: None,
            payload: Bytes::from(bytes),
            tls: None,
        };
        t.on_event(Event::Data(ev), &mut out);
        assert!(t.len() <= MAX_CONNS);
        // Each connection has two head buffers; a Vec may round its capacity up.
        assert!(t.buffered_bytes() <= MAX_CONNS * 2 * 2 * MAX_BUFFER.max(4096));
        assert!(t.pending_requests() <= MAX_CONNS * MAX_PENDING);
        for x in &out {
            assert!(x.end_ns >= x.start_ns);
            assert!(x.status.is_some() || x.error.is_some());
        }
        out.clear();
    }
});

//! Fuzz target: the HTTP/2 frame decoder, HPACK and stream state of one connection fed
//! arbitrary chunks.
//!
//! Stage: protocol::http2. Input: arbitrary bytes; the first byte picks the connection's start
//! (from its start with the preface prepended, from its start without it, or joined mid-way)
//! and the request direction; then a script of steps: a control byte (direction, close,
//! expire), a captured length and an uncaptured length, then that many payload bytes, so
//! `total_len ≥ captured` always holds. Checks: no panic, bounded memory (open streams,
//! buffered bytes), exchanges well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_ebpf_common::Direction;
use otel_ebpf_receiver::protocol::ExchangeError;
use otel_ebpf_receiver::protocol::http2::connection::{MAX_HEADER_BLOCK, MAX_STREAMS};
use otel_ebpf_receiver::protocol::http2::{Http2Connection, PREFACE};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let req_dir = match mode & 0x3 {
        0 => None,
        1 | 2 => Some(Direction::Egress),
        _ => Some(Direction::Ingress),
    };
    let from_start = mode & 0x4 == 0 && req_dir.is_some();
    let mut c = Http2Connection::new(1, 2, None, req_dir, from_start);
    let mut out = Vec::new();
    if from_start && mode & 0x8 == 0 {
        let d = req_dir.unwrap_or(Direction::Egress);
        c.feed(d, 0, PREFACE, PREFACE.len() as u64, &mut out);
    }
    let mut ts = 1u64;
    while let [ctl, cap, miss, tail @ ..] = rest {
        ts += 1 + u64::from(*miss & 0x0f);
        let n = usize::from(*cap).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        match ctl & 0x0f {
            0xe => c.expire(ts + u64::from(*cap) * 16, 1_000, &mut out),
            0xf => {
                c.close(ExchangeError::ConnectionClosed, ts, &mut out);
                c = Http2Connection::new(1, 2, None, req_dir, false);
            }
            _ => {}
        }
        let missing = match miss >> 4 {
            0..=10 => 0,
            11..=13 => u64::from(*miss),
            14 => u64::from(*miss) << 12,
            _ => u64::MAX / 4,
        };
        let dir = if ctl & 0x10 == 0 {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        c.feed(dir, ts, payload, payload.len() as u64 + missing, &mut out);
        assert!(c.pending_len() <= MAX_STREAMS);
        // Two frame buffers, two header blocks, two HPACK tables (64 KiB each), with Vec
        // capacity rounding.
        assert!(c.buffered() <= 8 * MAX_HEADER_BLOCK, "{}", c.buffered());
        for x in &out {
            assert!(x.end_ns >= x.start_ns);
            assert_eq!(x.version, "2");
        }
        out.clear();
    }
    let _ = c.take_stats();
});

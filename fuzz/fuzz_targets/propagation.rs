//! Fuzz target: trace context header parsing (W3C `traceparent`/`tracestate`, B3).
//!
//! Stage: protocol (propagation). Input: arbitrary bytes split into header (name, value)
//! pairs at `\n` and the first `:`; names are drawn from the propagation headers when the
//! line starts with a digit 0–6, so most inputs reach the parsers. Checks: no panic; a
//! returned context has non-zero ids and a `tracestate` within its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_ebpf_receiver::protocol::propagation::{Collector, MAX_TRACESTATE_BYTES};

const NAMES: [&str; 7] = [
    "traceparent",
    "tracestate",
    "b3",
    "X-B3-TraceId",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-flags",
];

fuzz_target!(|data: &[u8]| {
    let mut c = Collector::default();
    for line in data.split(|&b| b == b'\n') {
        let (name, value): (&[u8], &[u8]) = match line.first() {
            Some(d @ b'0'..=b'6') => (NAMES[(d - b'0') as usize].as_bytes(), &line[1..]),
            _ => match line.iter().position(|&b| b == b':') {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => continue,
            },
        };
        c.header(name, value);
    }
    if let Ok(Some(p)) = c.finish() {
        assert!(p.trace_id != [0; 16] && p.span_id != [0; 8]);
        assert!(p.trace_state.as_deref().is_none_or(|t| t.len() <= MAX_TRACESTATE_BYTES));
    }
});

//! Fuzz target: classification of an OTLP backend's replies (HTTP status, `Retry-After` and
//! body; gRPC `grpc-status` / `grpc-message`).
//!
//! Stage: export::reply. Input: arbitrary bytes; the first two bytes give the HTTP status
//! (100..=599) and the signal, the rest is split at `\n` into header lines `name:value` and,
//! after an empty line, the body. Checks: no panic; a retry delay never exceeds the 1 h clamp;
//! messages stay within their cut; the same headers read as gRPC trailers classify without
//! panic too, and only 2xx HTTP replies are accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_ebpf_receiver::export::Signal;
use otel_ebpf_receiver::export::reply::{
    MAX_MESSAGE_CHARS, MAX_RETRY_AFTER, Reply, grpc_reply, http_reply, retry_after,
};

fn check(r: &Reply) {
    match r {
        Reply::Retry { after, message } => {
            assert!(after.is_none_or(|d| d <= MAX_RETRY_AFTER));
            assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1);
        }
        Reply::Permanent { message } => {
            assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1)
        }
        Reply::Accepted { .. } => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let status = 100 + u16::from_le_bytes([*a, *b & 0x03]) % 500;
    let signal = [Signal::Traces, Signal::Metrics, Signal::Logs][usize::from(*b >> 2) % 3];
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let headers: Vec<(&[u8], &[u8])> = head
        .split(|&c| c == b'\n')
        .filter_map(|l| {
            let i = l.iter().position(|&c| c == b':')?;
            Some((&l[..i], &l[i + 1..]))
        })
        .collect();
    let r = http_reply(status, &headers, body, signal);
    check(&r);
    if matches!(r, Reply::Accepted { .. }) {
        assert!((200..300).contains(&status));
    }
    check(&grpc_reply(&headers));
    for (_, v) in &headers {
        assert!(retry_after(v).is_none_or(|d| d <= MAX_RETRY_AFTER));
    }
});

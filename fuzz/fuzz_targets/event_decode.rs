//! Fuzz target: ring buffer record decoding.
//!
//! Stage: events. Input: arbitrary bytes as one ring buffer record. Checks: `decode` never
//! panics, and every record it accepts re-encodes to bytes that decode to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_ebpf_receiver::events::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = decode(data) {
        let again = decode(&encode(&ev));
        assert_eq!(again.as_ref(), Ok(&ev), "round trip changed the event");
    }
});

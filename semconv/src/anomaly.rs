//! TCP health anomalies exported as OTLP log records: event names (carried in the
//! OTLP `LogRecord.event_name` field, which replaced the deprecated `event.name` attribute) and
//! this project's own attributes (not semconv; prefixed `otel_ebpf.`).
//!
//! Stage: none (shared names). Input: nothing. Output: `&'static str` names used by
//! `otel_ebpf_receiver::kernel::anomaly` on each log record (event name, attributes) and by
//! tests. Limits: names only; the rules that produce the records live in the receiver.

/// `tcp.reset_storm` — event name; the TCP resets (RST sent or received) of one window
/// reached `receiver.kernel_timing.anomalies.reset_storm_threshold`.
pub const EVENT_RESET_STORM: &str = "tcp.reset_storm";
/// `tcp.connect_failures` — event name; the share of failed outgoing TCP connects of one
/// window reached `connect_failure_ratio` with at least `connect_failure_min_attempts` attempts.
pub const EVENT_CONNECT_FAILURES: &str = "tcp.connect_failures";
/// `tcp.peer_connection_spike` — event name; the TCP connections accepted from one peer in one
/// window reached `peer_connection_spike`.
pub const EVENT_PEER_CONNECTION_SPIKE: &str = "tcp.peer_connection_spike";

/// `otel_ebpf.anomaly.type` — string; one of the `EVENT_*` names above.
pub const TYPE: &str = "otel_ebpf.anomaly.type";
/// `otel_ebpf.anomaly.count` — int; what crossed the threshold in the window: resets (reset
/// storm), failed connects (connect failures), connections accepted from the peer (spike).
pub const COUNT: &str = "otel_ebpf.anomaly.count";
/// `otel_ebpf.anomaly.window` — double, unit seconds; length of the tumbling window.
pub const WINDOW: &str = "otel_ebpf.anomaly.window";
/// `otel_ebpf.anomaly.attempts` — int; outgoing connects that finished in the window
/// (succeeded + failed). Connect failures only.
pub const ATTEMPTS: &str = "otel_ebpf.anomaly.attempts";
/// `otel_ebpf.anomaly.ratio` — double in 0..=1; failed / attempted connects. Connect failures
/// only.
pub const RATIO: &str = "otel_ebpf.anomaly.ratio";
/// `otel_ebpf.anomaly.pids` — int array; some (at most 8) of the processes involved, in
/// first-seen order.
pub const PIDS: &str = "otel_ebpf.anomaly.pids";
/// `network.peer.address` — string (semconv); the peer with the most resets or failed
/// connects, or the spiking peer. Absent when not known.
pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";

/// Every event name, in the order of the receiver's `AnomalyKind`.
pub const EVENTS: [&str; 3] = [
    EVENT_RESET_STORM,
    EVENT_CONNECT_FAILURES,
    EVENT_PEER_CONNECTION_SPIKE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_address_is_the_semconv_name() {
        assert_eq!(
            NETWORK_PEER_ADDRESS,
            crate::otel::attribute::NETWORK_PEER_ADDRESS
        );
    }

    #[test]
    fn own_names_are_prefixed_and_distinct() {
        let own = [TYPE, COUNT, WINDOW, ATTEMPTS, RATIO, PIDS];
        for n in own {
            assert!(n.starts_with("otel_ebpf.anomaly."), "{n}");
        }
        let mut all: Vec<&str> = own.iter().chain(EVENTS.iter()).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), own.len() + EVENTS.len());
        assert!(EVENTS.iter().all(|e| e.starts_with("tcp.")));
    }
}

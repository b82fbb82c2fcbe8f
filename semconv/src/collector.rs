//! The OpenTelemetry Collector's own self-telemetry names, served by the receiver beside its
//! `otel_ebpf_*` counters so that dashboards and alerts written for Collectors work on it.
//!
//! Stage: none (shared names). Input: nothing. Output: the Collector's metric names as its
//! Prometheus endpoint (`:8888/metrics`) shows them since the Collector moved its internal
//! telemetry to the OTel Go SDK: counters with `_total` (older, OpenCensus-based Collectors
//! showed them without it), gauges without; the `receiver` / `exporter` label names and the
//! values the receiver puts in them. Limits: only the span-pipeline metrics the receiver can
//! map to counters it keeps (see `docs/telemetry.md` for the mapping).

/// Counter: spans the receiver pushed into its pipeline (label `receiver`).
pub const RECEIVER_ACCEPTED_SPANS: &str = "otelcol_receiver_accepted_spans_total";
/// Counter: spans the receiver could not push into its pipeline (label `receiver`).
pub const RECEIVER_REFUSED_SPANS: &str = "otelcol_receiver_refused_spans_total";
/// Counter: spans sent by the exporter and accepted (label `exporter`).
pub const EXPORTER_SENT_SPANS: &str = "otelcol_exporter_sent_spans_total";
/// Counter: spans the exporter failed to send (label `exporter`).
pub const EXPORTER_SEND_FAILED_SPANS: &str = "otelcol_exporter_send_failed_spans_total";
/// Counter: spans that could not be put in the exporter's queue (label `exporter`).
pub const EXPORTER_ENQUEUE_FAILED_SPANS: &str = "otelcol_exporter_enqueue_failed_spans_total";
/// Gauge: spans in the exporter's queue now (label `exporter`).
pub const EXPORTER_QUEUE_SIZE: &str = "otelcol_exporter_queue_size";
/// Gauge: the exporter queue's capacity (label `exporter`).
pub const EXPORTER_QUEUE_CAPACITY: &str = "otelcol_exporter_queue_capacity";

/// Label naming the receiver component.
pub const LABEL_RECEIVER: &str = "receiver";
/// Label naming the exporter component.
pub const LABEL_EXPORTER: &str = "exporter";
/// Label naming the receiver's transport (Collector convention).
pub const LABEL_TRANSPORT: &str = "transport";
/// `receiver` label value: this receiver, named as a Collector component id would be.
pub const RECEIVER_ID: &str = "ebpf";
/// `transport` label value: spans come from eBPF probes.
pub const TRANSPORT_EBPF: &str = "ebpf";
/// `exporter` label value of the OTLP exporter (Collector component id `otlp`).
pub const EXPORTER_OTLP: &str = "otlp";
/// `exporter` label value of the console exporter (the Collector's `debug` exporter id).
pub const EXPORTER_CONSOLE: &str = "debug";

/// Counter names (Prometheus `counter`).
pub const COUNTERS: [&str; 5] = [
    RECEIVER_ACCEPTED_SPANS,
    RECEIVER_REFUSED_SPANS,
    EXPORTER_SENT_SPANS,
    EXPORTER_SEND_FAILED_SPANS,
    EXPORTER_ENQUEUE_FAILED_SPANS,
];
/// Gauge names (Prometheus `gauge`).
pub const GAUGES: [&str; 2] = [EXPORTER_QUEUE_SIZE, EXPORTER_QUEUE_CAPACITY];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_collector() {
        for c in COUNTERS {
            assert!(
                c.starts_with("otelcol_") && c.ends_with("_spans_total"),
                "{c}"
            );
        }
        for g in GAUGES {
            assert!(g.starts_with("otelcol_exporter_queue_"), "{g}");
        }
    }
}

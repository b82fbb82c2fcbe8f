//! Every attribute and metric name otel-ebpf-receiver emits: re-exports of the OpenTelemetry
//! semantic conventions plus this project's own names, each documented with type and unit.
pub use opentelemetry_semantic_conventions as otel;

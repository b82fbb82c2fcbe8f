//! The instrumentation scope of everything this receiver exports (spans, metrics, logs).
//!
//! Stage: inside **export**. Output: the scope name and version (`otel-ebpf-receiver` at this
//! crate's version) and its OTLP form for metrics and logs requests; spans are grouped by
//! resource and encoded in `encode`.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;

/// Instrumentation scope name on every exported span.
pub(crate) const SCOPE_NAME: &str = "otel-ebpf-receiver";
/// Instrumentation scope version (this crate's version).
pub(crate) const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The instrumentation scope of everything this receiver exports (spans, metrics, logs).
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.into(),
        version: SCOPE_VERSION.into(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

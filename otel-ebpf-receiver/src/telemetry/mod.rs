//! Self-telemetry: counters every stage increments, served as Prometheus text, and the health
//! endpoint.
//!
//! Input: [`SelfMetrics`] (shared atomics) and a readiness flag. Output: HTTP answers on the
//! configured addresses (`/metrics`, `/`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the receiver itself. All are monotonically increasing totals.
#[derive(Debug, Default)]
pub struct SelfMetrics {
    /// Ring buffer records read.
    pub events_read: AtomicU64,
    /// Events lost in the kernel (sum of the probes' drop counters), last value read.
    pub events_lost_kernel: AtomicU64,
    /// Records that could not be decoded.
    pub decode_errors: AtomicU64,
    /// HTTP parse errors (a connection's stream was not valid HTTP where HTTP was expected).
    pub parse_errors: AtomicU64,
    /// Spans built.
    pub spans_produced: AtomicU64,
    /// Spans accepted by the backend (or written to the console).
    pub spans_exported: AtomicU64,
    /// Spans dropped: queue full, or the backend rejected them after retries.
    pub spans_dropped: AtomicU64,
    /// Export requests that failed (each retry counts).
    pub export_failures: AtomicU64,
    /// Spans filtered out by the config's filters.
    pub spans_filtered: AtomicU64,
}

impl SelfMetrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

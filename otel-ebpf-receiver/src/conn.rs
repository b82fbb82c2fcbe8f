//! Per-connection stream reassembly.
//!
//! Stage: events → **conn** → protocol. Input: decoded [`Event`]s. Output: [`HttpExchange`]s.
//! Limits: bounded number of connections and bytes buffered per connection (see
//! [`ConnLimits`]).

use crate::events::Event;
use crate::protocol::HttpExchange;

/// Bounds on per-connection state.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Connections tracked at once; the least recently used is dropped past this.
    pub max_connections: usize,
    /// Requests without a response are closed out after this long (ns).
    pub request_timeout_ns: u64,
    /// Bytes buffered per direction while a message head is incomplete.
    pub max_buffer_bytes: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: 65_536,
            request_timeout_ns: 30_000_000_000,
            max_buffer_bytes: 65_536,
        }
    }
}

/// Counters kept by the tracker (read by self-telemetry).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    pub parse_errors: u64,
    pub connections_evicted: u64,
}

/// Tracks every connection and drives its protocol parsers.
#[derive(Default)]
pub struct ConnTracker {
    pub limits: ConnLimits,
    pub stats: ConnStats,
}

impl ConnTracker {
    pub fn new(limits: ConnLimits) -> Self {
        Self {
            limits,
            stats: ConnStats::default(),
        }
    }

    /// Feeds one event; completed exchanges are appended to `out`.
    pub fn on_event(&mut self, _ev: Event, _out: &mut Vec<HttpExchange>) {}

    /// Closes out requests older than the timeout at `now_ns` (CLOCK_MONOTONIC).
    pub fn expire(&mut self, _now_ns: u64, _out: &mut Vec<HttpExchange>) {}
}

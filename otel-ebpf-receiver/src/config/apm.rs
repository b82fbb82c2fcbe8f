//! The `receiver.routes` and `receiver.sampling` sections: route derivation for span names and
//! HTTP metrics, and span sampling.
//!
//! Stage: configuration, read at start-up. Input: YAML under `receiver.routes` and
//! `receiver.sampling`. Output: [`RoutesConfig`] (read by [`crate::span::route::RouteTable`])
//! and [`SamplingConfig`] (read by [`crate::span::sampling::Sampler`]).
//! Limits: ranges are checked in `validate.rs`; values built in code are not validated until
//! [`super::Config::validate`]. Pattern syntax is checked there too (by parsing each pattern
//! as the route table will).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::null_as_default;

/// Route derivation (`receiver.routes:`): declared patterns per service, then the built-in
/// heuristic, then the per-service cardinality guard. See `docs/routes.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutesConfig {
    /// Route patterns per `service.name` (the key `"*"` applies to every service, after the
    /// service's own), tried in order; the first that matches a path is its route, reported in
    /// `http.route` as written. Segments: a literal, `{name}` or `:name` (one segment), `*`
    /// (one segment), `**` (last only: the rest of the path, zero or more segments). Each
    /// pattern starts with `/`; at most 1024 patterns in all.
    #[serde(deserialize_with = "null_as_default")]
    pub patterns: BTreeMap<String, Vec<String>>,
    /// A path position with more than this many distinct values under one parent collapses to
    /// `*` (values, 1..=1000; default 10).
    pub max_children: usize,
    /// Most distinct span names (`{method} {route}`) per service; later new ones overflow to
    /// the span name `{method}` with route `_OTHER`, counted (names, 1..=100000; default 100).
    pub max_span_names: usize,
    /// Most services with derived routes; exchanges of further services overflow (services,
    /// 1..=100000; default 1024).
    pub max_services: usize,
}

impl Default for RoutesConfig {
    fn default() -> Self {
        Self {
            patterns: BTreeMap::new(),
            max_children: 10,
            max_span_names: 100,
            max_services: 1024,
        }
    }
}

impl RoutesConfig {
    /// Largest accepted `max_children`.
    pub const MAX_CHILDREN: usize = 1000;
    /// Largest accepted `max_span_names` and `max_services`.
    pub const MAX_NAMES: usize = 100_000;
    /// Most patterns over all services.
    pub const MAX_PATTERNS: usize = 1024;
}

/// Span sampling (`receiver.sampling:`), in the vocabulary of the Collector's
/// `probabilistic_sampler` where it has one. Metrics are computed from every exchange before
/// sampling; only spans are sampled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Share of traces whose spans are kept (percent, 0..=100; default 100 = every span). The
    /// decision is consistent per trace id (its lowest 56 bits, as the OTel probability
    /// sampling specification says), so the spans of one trace are kept or dropped together.
    pub sampling_percentage: f64,
    /// Keep every span whose exchange is an error, whatever the percentage (default true).
    pub keep_errors: bool,
    /// Keep every span whose exchange took at least this long (milliseconds, > 0; `null`, the
    /// default: no such rule).
    pub keep_slower_than_ms: Option<f64>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            sampling_percentage: 100.0,
            keep_errors: true,
            keep_slower_than_ms: None,
        }
    }
}

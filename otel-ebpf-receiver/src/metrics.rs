//! HTTP and gRPC duration metrics aggregated from spans.
//!
//! Stage: span/enrich → **metrics** → export. Input: each [`ObservedSpan`] with its process's
//! [`ProcessResource`]. Output: on [`HttpMetrics::collect`], an OTLP
//! [`ExportMetricsServiceRequest`] with CUMULATIVE explicit-bucket histograms
//! `http.server.request.duration` / `http.client.request.duration` and, for gRPC spans,
//! `rpc.server.call.duration` / `rpc.client.call.duration` (unit `s`, buckets
//! [`HTTP_DURATION_BUCKETS`]), one `ResourceMetrics` per process, scope `otel-ebpf-receiver`.
//!
//! Attributes of a series are read back from the span (so they match it exactly):
//! `http.request.method` (HTTP; `_OTHER` when the span has none), `rpc.system.name`,
//! `rpc.method`, `rpc.response.status_code` (gRPC), `http.response.status_code`, `error.type`,
//! `network.protocol.name`, `network.protocol.version`, `url.scheme`, plus `server.address` and
//! `server.port` on the client metrics. Duration = span end − span start.
//!
//! Limits (memory is bounded): at most [`MetricsLimits::max_series_per_process`] series per
//! process and instrument, counting the overflow series: past `limit − 1` distinct attribute
//! sets, measurements go to one series whose only attribute is `otel.metric.overflow=true`
//! (OTel metrics SDK cardinality-limit rule). The same overflow is used once
//! [`MetricsLimits::max_total_series`] is reached over all processes. At most
//! [`MetricsLimits::max_processes`] processes: past that, the process updated least recently is
//! dropped (its series stop). Pure code, no IO.
//!
//! Process exit policy: keep recording after the exit (late spans), and call
//! [`HttpMetrics::forget`] after the first [`HttpMetrics::collect`] whose output was exported
//! following the exit, so the final cumulative values are exported exactly once more.

use crate::enrich::ProcessResource;
use crate::span::{ObservedSpan, find_attr, kv, kv_str};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
    metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use otel_ebpf_semconv::metric::{
    DURATION_UNIT, HTTP_CLIENT_REQUEST_DURATION, HTTP_DURATION_BUCKETS,
    HTTP_SERVER_REQUEST_DURATION, RPC_CLIENT_CALL_DURATION, RPC_SERVER_CALL_DURATION,
};
use otel_ebpf_semconv::{attribute as attr, value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Default of [`MetricsLimits::max_series_per_process`].
pub const DEFAULT_MAX_SERIES_PER_PROCESS: usize = 1000;
/// Default of [`MetricsLimits::max_total_series`].
pub const DEFAULT_MAX_TOTAL_SERIES: usize = 100_000;
/// Default of [`MetricsLimits::max_processes`].
pub const DEFAULT_MAX_PROCESSES: usize = 16_384;

/// Bounds on what [`HttpMetrics`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsLimits {
    /// Series per process and instrument, the overflow series included (≥ 1).
    pub max_series_per_process: usize,
    /// Regular (non-overflow) series over all processes and both instruments.
    pub max_total_series: usize,
    /// Processes tracked at once (≥ 1).
    pub max_processes: usize,
}

impl Default for MetricsLimits {
    fn default() -> Self {
        Self {
            max_series_per_process: DEFAULT_MAX_SERIES_PER_PROCESS,
            max_total_series: DEFAULT_MAX_TOTAL_SERIES,
            max_processes: DEFAULT_MAX_PROCESSES,
        }
    }
}

/// Cumulative HTTP duration histograms per (process, instrument, attribute set).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    limits: MetricsLimits,
    processes: HashMap<u32, ProcessSeries>,
    /// Regular series over all processes.
    total_series: usize,
    /// Increments on every record; orders processes by last update.
    tick: u64,
}

#[derive(Debug)]
struct ProcessSeries {
    resource: Arc<ProcessResource>,
    last_update: u64,
    server: Instrument,
    client: Instrument,
    rpc_server: Instrument,
    rpc_client: Instrument,
}

#[derive(Debug, Default)]
struct Instrument {
    series: BTreeMap<SeriesKey, Hist>,
    overflow: Option<Hist>,
}

/// Attribute set of one series; `None` fields are left out.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct SeriesKey {
    /// `http.request.method` (HTTP series only).
    method: Option<String>,
    rpc_system: Option<String>,
    rpc_method: Option<String>,
    rpc_status: Option<String>,
    status: Option<i64>,
    error_type: Option<String>,
    protocol_name: Option<String>,
    protocol_version: Option<String>,
    scheme: Option<String>,
    server_address: Option<String>,
    server_port: Option<i64>,
}

#[derive(Debug)]
struct Hist {
    /// Unix ns: start of the first span recorded into this series.
    start_ns: u64,
    count: u64,
    sum_ns: u128,
    min_s: f64,
    max_s: f64,
    buckets: [u64; HTTP_DURATION_BUCKETS.len() + 1],
}

impl HttpMetrics {
    /// An empty aggregator with [`MetricsLimits::default`].
    pub fn new() -> Self {
        Self::with_limits(MetricsLimits::default())
    }

    /// An empty aggregator with the given limits (zero limits are raised to 1).
    pub fn with_limits(limits: MetricsLimits) -> Self {
        let limits = MetricsLimits {
            max_series_per_process: limits.max_series_per_process.max(1),
            max_processes: limits.max_processes.max(1),
            ..limits
        };
        Self {
            limits,
            ..Default::default()
        }
    }

    /// Records one span: SERVER spans into `http.server.request.duration`, CLIENT spans into
    /// `http.client.request.duration` — or, for gRPC spans (`rpc.system.name` set), into
    /// `rpc.server.call.duration` / `rpc.client.call.duration`; other kinds are ignored. Keyed by `span.pid`; the
    /// process's resource is replaced by `resource` when it differs.
    pub fn record(&mut self, resource: &Arc<ProcessResource>, span: &ObservedSpan) {
        let s = &span.span;
        let client = match SpanKind::try_from(s.kind) {
            Ok(SpanKind::Server) => false,
            Ok(SpanKind::Client) => true,
            _ => return,
        };
        self.tick += 1;
        if !self.processes.contains_key(&span.pid)
            && self.processes.len() >= self.limits.max_processes
        {
            self.evict_least_recent();
        }
        let p = self
            .processes
            .entry(span.pid)
            .or_insert_with(|| ProcessSeries {
                resource: Arc::clone(resource),
                last_update: 0,
                server: Instrument::default(),
                client: Instrument::default(),
                rpc_server: Instrument::default(),
                rpc_client: Instrument::default(),
            });
        if !Arc::ptr_eq(&p.resource, resource) {
            p.resource = Arc::clone(resource);
        }
        p.last_update = self.tick;
        let key = SeriesKey::from_span(s, client);
        let inst = match (key.rpc_system.is_some(), client) {
            (false, false) => &mut p.server,
            (false, true) => &mut p.client,
            (true, false) => &mut p.rpc_server,
            (true, true) => &mut p.rpc_client,
        };
        let duration_ns = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano);
        let hist = if let Some(h) = inst.series.get_mut(&key) {
            h
        } else if inst.series.len() + 1 < self.limits.max_series_per_process
            && self.total_series < self.limits.max_total_series
        {
            self.total_series += 1;
            inst.series
                .entry(key)
                .or_insert_with(|| Hist::new(s.start_time_unix_nano))
        } else {
            inst.overflow
                .get_or_insert_with(|| Hist::new(s.start_time_unix_nano))
        };
        hist.add(duration_ns);
    }

    /// Cumulative snapshot of every series, stamped `now_unix_ns` (Unix-epoch ns; raised to a
    /// series' start time if earlier). One `ResourceMetrics` per process, ordered by pid;
    /// series ordered by attribute set, overflow last. `None` when nothing was recorded.
    pub fn collect(&self, now_unix_ns: u64) -> Option<ExportMetricsServiceRequest> {
        if self.processes.is_empty() {
            return None;
        }
        let mut pids: Vec<u32> = self.processes.keys().copied().collect();
        pids.sort_unstable();
        let resource_metrics = pids
            .into_iter()
            .map(|pid| {
                let p = &self.processes[&pid];
                let metrics = [
                    (
                        HTTP_SERVER_REQUEST_DURATION,
                        "Duration of HTTP server requests.",
                        &p.server,
                    ),
                    (
                        HTTP_CLIENT_REQUEST_DURATION,
                        "Duration of HTTP client requests.",
                        &p.client,
                    ),
                    (
                        RPC_SERVER_CALL_DURATION,
                        "Measures the duration of inbound remote procedure calls (RPC).",
                        &p.rpc_server,
                    ),
                    (
                        RPC_CLIENT_CALL_DURATION,
                        "Measures the duration of outbound remote procedure calls (RPC).",
                        &p.rpc_client,
                    ),
                ]
                .into_iter()
                .filter_map(|(name, desc, inst)| inst.metric(name, desc, now_unix_ns))
                .collect();
                resource_metrics(Some(p.resource.resource.clone()), metrics)
            })
            .collect();
        Some(ExportMetricsServiceRequest { resource_metrics })
    }

    /// Drops every series of `pid`. See the module docs for when to call it.
    pub fn forget(&mut self, pid: u32) {
        if let Some(p) = self.processes.remove(&pid) {
            self.total_series -= p.server.series.len()
                + p.client.series.len()
                + p.rpc_server.series.len()
                + p.rpc_client.series.len();
        }
    }

    /// Regular (non-overflow) series currently kept, over all processes.
    pub fn series_count(&self) -> usize {
        self.total_series
    }

    /// Processes currently tracked.
    pub fn process_count(&self) -> usize {
        self.processes.len()
    }

    fn evict_least_recent(&mut self) {
        let oldest = self
            .processes
            .iter()
            .min_by_key(|(_, p)| p.last_update)
            .map(|(&pid, _)| pid);
        if let Some(pid) = oldest {
            self.forget(pid);
        }
    }
}

impl Instrument {
    fn metric(&self, name: &str, description: &str, now: u64) -> Option<Metric> {
        let overflow_attrs = || vec![kv(attr::OTEL_METRIC_OVERFLOW, Value::BoolValue(true))];
        let data_points: Vec<HistogramDataPoint> = self
            .series
            .iter()
            .map(|(k, h)| h.point(k.attributes(), now))
            .chain(self.overflow.iter().map(|h| h.point(overflow_attrs(), now)))
            .collect();
        (!data_points.is_empty()).then(|| Metric {
            name: name.into(),
            description: description.into(),
            unit: DURATION_UNIT.into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        })
    }
}

impl SeriesKey {
    fn from_span(s: &Span, client: bool) -> Self {
        let a = &s.attributes;
        let string = |key| match find_attr(a, key) {
            Some(Value::StringValue(v)) => Some(v.clone()),
            _ => None,
        };
        let int = |key| match find_attr(a, key) {
            Some(Value::IntValue(v)) => Some(*v),
            _ => None,
        };
        let rpc_system = string(attr::RPC_SYSTEM_NAME);
        let rpc = rpc_system.is_some();
        Self {
            method: (!rpc).then(|| {
                string(attr::HTTP_REQUEST_METHOD).unwrap_or_else(|| value::METHOD_OTHER.into())
            }),
            rpc_system,
            rpc_method: string(attr::RPC_METHOD),
            rpc_status: string(attr::RPC_RESPONSE_STATUS_CODE),
            status: int(attr::HTTP_RESPONSE_STATUS_CODE),
            error_type: string(attr::ERROR_TYPE),
            protocol_name: string(attr::NETWORK_PROTOCOL_NAME),
            protocol_version: string(attr::NETWORK_PROTOCOL_VERSION),
            scheme: string(attr::URL_SCHEME),
            server_address: client.then(|| string(attr::SERVER_ADDRESS)).flatten(),
            server_port: client.then(|| int(attr::SERVER_PORT)).flatten(),
        }
    }

    fn attributes(&self) -> Vec<KeyValue> {
        let int = |k, v: Option<i64>| v.map(|v| kv(k, Value::IntValue(v)));
        let string = |k, v: &Option<String>| v.as_deref().map(|v| kv_str(k, v));
        let mut out: Vec<KeyValue> = [
            string(attr::HTTP_REQUEST_METHOD, &self.method),
            string(attr::RPC_SYSTEM_NAME, &self.rpc_system),
            string(attr::RPC_METHOD, &self.rpc_method),
            string(attr::RPC_RESPONSE_STATUS_CODE, &self.rpc_status),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.extend(
            [
                int(attr::HTTP_RESPONSE_STATUS_CODE, self.status),
                string(attr::ERROR_TYPE, &self.error_type),
                string(attr::NETWORK_PROTOCOL_NAME, &self.protocol_name),
                string(attr::NETWORK_PROTOCOL_VERSION, &self.protocol_version),
                string(attr::URL_SCHEME, &self.scheme),
                string(attr::SERVER_ADDRESS, &self.server_address),
                int(attr::SERVER_PORT, self.server_port),
            ]
            .into_iter()
            .flatten(),
        );
        out
    }
}

impl Hist {
    fn new(start_ns: u64) -> Self {
        Self {
            start_ns,
            count: 0,
            sum_ns: 0,
            min_s: f64::INFINITY,
            max_s: f64::NEG_INFINITY,
            buckets: [0; HTTP_DURATION_BUCKETS.len() + 1],
        }
    }

    /// Adds one duration; bucket `i` holds `(bounds[i-1], bounds[i]]` (upper bound inclusive).
    fn add(&mut self, duration_ns: u64) {
        let s = duration_ns as f64 / 1e9;
        let i = HTTP_DURATION_BUCKETS.partition_point(|&b| b < s);
        self.buckets[i] += 1;
        self.count += 1;
        self.sum_ns += u128::from(duration_ns);
        self.min_s = self.min_s.min(s);
        self.max_s = self.max_s.max(s);
    }

    fn point(&self, attributes: Vec<KeyValue>, now: u64) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: self.start_ns,
            time_unix_nano: now.max(self.start_ns),
            count: self.count,
            sum: Some(self.sum_ns as f64 / 1e9),
            bucket_counts: self.buckets.to_vec(),
            explicit_bounds: HTTP_DURATION_BUCKETS.to_vec(),
            min: Some(self.min_s),
            max: Some(self.max_s),
            ..Default::default()
        }
    }
}

/// One `ResourceMetrics` with this receiver's scope (shared with [`crate::kernel::metrics`]).
pub(crate) fn resource_metrics(
    resource: Option<Resource>,
    metrics: Vec<Metric>,
) -> ResourceMetrics {
    ResourceMetrics {
        resource,
        scope_metrics: vec![ScopeMetrics {
            scope: Some(crate::export::batch::scope()),
            metrics,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

#[cfg(test)]
mod tests;

//! HTTP and gRPC duration metrics aggregated from spans.
//!
//! Stage: span/enrich → **metrics** → export. Input: each [`SpanRecord`] with its process's
//! [`ProcessResource`]. Output: on [`HttpMetrics::collect`], a [`MetricsBatch`] (our own
//! model; `export/` encodes it as OTLP) with CUMULATIVE explicit-bucket histograms
//! `http.server.request.duration` / `http.client.request.duration` and, for gRPC spans,
//! `rpc.server.call.duration` / `rpc.client.call.duration` (unit `s`, buckets
//! [`HTTP_DURATION_BUCKETS`]), one [`ResourceMetrics`] per process.
//!
//! Attributes of a series are the span's own (the same derivations, read from its fields; a
//! recording into an existing series allocates nothing):
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
//! Process exit policy (shared with the kernel metrics through [`exited::ExitedProcesses`]):
//! [`HttpMetrics::process_exited`] marks the pid, recording goes on (late spans), and
//! [`HttpMetrics::prune_exited`], called right after each of the next two
//! [`HttpMetrics::collect`]s, drops the process's series, interned strings and resource, so its
//! final cumulative values (and those of spans released after the exit) are exported once more
//! and nothing of it stays.

use crate::attr::Attributes;
use crate::enrich::ProcessResource;
use crate::hash::HashMap;
use crate::model::{HistogramDataPoint, Metric, MetricData, MetricsBatch, ResourceMetrics};
use crate::protocol::Side;
use crate::span::{ErrorType, ServerHost, SpanRecord, grpc};
use exited::ExitedProcesses;
use otel_ebpf_semconv::metric::{
    DURATION_UNIT, HTTP_CLIENT_REQUEST_DURATION, HTTP_DURATION_BUCKETS,
    HTTP_SERVER_REQUEST_DURATION, RPC_CLIENT_CALL_DURATION, RPC_SERVER_CALL_DURATION,
};
use otel_ebpf_semconv::{attribute as attr, value};
use std::net::IpAddr;
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
    /// Processes that exited, forgotten after the next collection.
    exited: ExitedProcesses,
}

#[derive(Debug)]
struct ProcessSeries {
    resource: Arc<ProcessResource>,
    last_update: u64,
    server: Instrument,
    client: Instrument,
    rpc_server: Instrument,
    rpc_client: Instrument,
    /// The variable strings of this process's series keys (`rpc.method`, `server.address`).
    strings: Interner,
}

#[derive(Debug, Default)]
struct Instrument {
    series: HashMap<SeriesKey, Hist>,
    overflow: Option<Hist>,
}

/// Strings interned per process: a series key holds their index, so recording a span into an
/// existing series allocates nothing. Grows only when a series is created (bounded by the
/// series limits).
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// `server.address` of a client series: an interned name or an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Addr {
    Name(u32),
    Ip(IpAddr),
}

/// Attribute set of one series; `None` fields are left out. Every field is a fixed value, a
/// number or an interned string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    /// `http.request.method` (HTTP series only; `_OTHER` when unknown).
    method: Option<&'static str>,
    /// gRPC series (`rpc.system.name=grpc`).
    rpc: bool,
    /// `rpc.method` (interned).
    rpc_method: Option<u32>,
    /// `rpc.response.status_code` (gRPC status number).
    rpc_status: Option<u32>,
    /// `http.response.status_code`.
    status: Option<u16>,
    error_type: Option<ErrorType>,
    protocol_version: Option<&'static str>,
    scheme: &'static str,
    server_address: Option<Addr>,
    server_port: Option<u16>,
    /// The route: (declared → `http.route`, else `otel_ebpf.http.route`; interned).
    route: Option<(bool, u32)>,
}

/// The variable strings of a span's series key, before interning.
struct KeyStrings<'a> {
    rpc_method: Option<&'a str>,
    server_name: Option<&'a str>,
    /// (declared, route).
    route: Option<(bool, &'a str)>,
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
    /// `http.client.request.duration` — or, for gRPC spans, into `rpc.server.call.duration` /
    /// `rpc.client.call.duration`. Keyed by the span's pid; the process's resource is
    /// replaced by `resource` when it differs. Allocates only when a series is created.
    pub fn record(&mut self, resource: &Arc<ProcessResource>, span: &SpanRecord) {
        let client = span.side() == Side::Client;
        let pid = span.pid();
        self.tick += 1;
        if !self.processes.contains_key(&pid) && self.processes.len() >= self.limits.max_processes {
            self.evict_least_recent();
        }
        let p = self.processes.entry(pid).or_insert_with(|| ProcessSeries {
            resource: Arc::clone(resource),
            last_update: 0,
            server: Instrument::default(),
            client: Instrument::default(),
            rpc_server: Instrument::default(),
            rpc_client: Instrument::default(),
            strings: Interner::default(),
        });
        if !Arc::ptr_eq(&p.resource, resource) {
            p.resource = Arc::clone(resource);
        }
        p.last_update = self.tick;
        let (mut key, strings) = SeriesKey::of(span, client);
        let known = |id: Option<u32>, s: Option<&str>| s.is_none() || id.is_some();
        let rpc_id = strings.rpc_method.and_then(|s| p.strings.get(s));
        let name_id = strings.server_name.and_then(|s| p.strings.get(s));
        let route_id = strings.route.and_then(|(_, r)| p.strings.get(r));
        let mut existing = None;
        if known(rpc_id, strings.rpc_method)
            && known(name_id, strings.server_name)
            && known(route_id, strings.route.map(|r| r.1))
        {
            key.rpc_method = rpc_id;
            if let Some(id) = name_id {
                key.server_address = Some(Addr::Name(id));
            }
            key.route = strings.route.zip(route_id).map(|((d, _), id)| (d, id));
            existing = Some(key);
        }
        let inst = match (key.rpc, client) {
            (false, false) => &mut p.server,
            (false, true) => &mut p.client,
            (true, false) => &mut p.rpc_server,
            (true, true) => &mut p.rpc_client,
        };
        let start = span.start_unix_ns;
        let hist = match existing.and_then(|k| inst.series.contains_key(&k).then_some(k)) {
            Some(k) => inst.series.get_mut(&k).expect("checked"),
            None if inst.series.len() + 1 < self.limits.max_series_per_process
                && self.total_series < self.limits.max_total_series =>
            {
                key.rpc_method = strings.rpc_method.map(|s| p.strings.intern(s));
                if let Some(n) = strings.server_name {
                    key.server_address = Some(Addr::Name(p.strings.intern(n)));
                }
                key.route = strings.route.map(|(d, r)| (d, p.strings.intern(r)));
                self.total_series += 1;
                inst.series.entry(key).or_insert_with(|| Hist::new(start))
            }
            None => inst.overflow.get_or_insert_with(|| Hist::new(start)),
        };
        hist.add(span.duration_ns());
    }

    /// Cumulative snapshot of every series, stamped `now_unix_ns` (Unix-epoch ns; raised to a
    /// series' start time if earlier). One [`ResourceMetrics`] per process, ordered by pid;
    /// series ordered by attribute set, overflow last. `None` when nothing was recorded.
    pub fn collect(&self, now_unix_ns: u64) -> Option<MetricsBatch> {
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
                .filter_map(|(name, desc, inst)| inst.metric(name, desc, &p.strings, now_unix_ns))
                .collect();
                ResourceMetrics {
                    resource: p.resource.attributes.clone(),
                    metrics,
                }
            })
            .collect();
        Some(MetricsBatch { resource_metrics })
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

    /// Marks `pid` as exited: its series are collected once more with their final values,
    /// then [`HttpMetrics::prune_exited`] drops them; spans recorded after the exit (released
    /// late) are exported once and dropped by the next prune.
    pub fn process_exited(&mut self, pid: u32) {
        self.exited.mark(pid);
    }

    /// Forgets everything kept for the processes marked exited; call it right after a
    /// collection. Returns the number of processes forgotten.
    pub fn prune_exited(&mut self) -> usize {
        let mut n = 0;
        for pid in self.exited.take() {
            if self.processes.contains_key(&pid) {
                self.forget(pid);
                n += 1;
            }
        }
        n
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
    fn metric(
        &self,
        name: &'static str,
        description: &'static str,
        strings: &Interner,
        now: u64,
    ) -> Option<Metric> {
        let overflow_attrs = || {
            let mut a = Attributes::new();
            a.push(attr::OTEL_METRIC_OVERFLOW, true);
            a
        };
        let mut series: Vec<(SortKey, Attributes, &Hist)> = self
            .series
            .iter()
            .map(|(k, h)| (k.sort_key(strings), k.attributes(strings), h))
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let data_points: Vec<HistogramDataPoint> = series
            .into_iter()
            .map(|(_, a, h)| h.point(a, now))
            .chain(self.overflow.iter().map(|h| h.point(overflow_attrs(), now)))
            .collect();
        (!data_points.is_empty()).then(|| Metric {
            name,
            description: description.into(),
            unit: DURATION_UNIT,
            data: MetricData::Histogram(data_points),
        })
    }
}

/// Order of the series in a collection: by attribute values, as they are emitted.
type SortKey = (
    Option<&'static str>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u16>,
    Option<String>,
    Option<&'static str>,
    &'static str,
    Option<String>,
    Option<u16>,
);

impl SeriesKey {
    /// The key of a span (its interned fields left `None`) and the strings to intern.
    fn of(span: &SpanRecord, client: bool) -> (Self, KeyStrings<'_>) {
        let ex = &span.exchange;
        let rpc = ex.grpc.is_some();
        let (host, port) = if client {
            span.server_endpoint()
        } else {
            (None, None)
        };
        let key = Self {
            method: (!rpc).then(|| span.method().unwrap_or(value::METHOD_OTHER)),
            rpc,
            rpc_method: None,
            rpc_status: ex.grpc.and_then(|g| g.status),
            // gRPC spans carry no `http.response.status_code`.
            status: ex.status.filter(|_| !rpc),
            error_type: span.error_type(),
            protocol_version: span.protocol_version(),
            scheme: span.scheme(),
            server_address: match host {
                Some(ServerHost::Ip(ip)) => Some(Addr::Ip(ip)),
                _ => None,
            },
            server_port: port,
            route: None,
        };
        let route = match &span.route {
            Some(r) if !rpc => Some((
                r.source == crate::span::route::RouteSource::Declared,
                &*r.route,
            )),
            _ => None,
        };
        let strings = KeyStrings {
            route,
            rpc_method: if rpc { grpc::rpc_method_name(ex) } else { None },
            server_name: match host {
                Some(ServerHost::Name(n)) => Some(n),
                _ => None,
            },
        };
        (key, strings)
    }

    fn address(&self, strings: &Interner) -> Option<String> {
        self.server_address.map(|a| match a {
            Addr::Name(id) => strings.name(id).to_string(),
            Addr::Ip(ip) => ip.to_string(),
        })
    }

    fn sort_key(&self, strings: &Interner) -> SortKey {
        (
            self.method,
            self.route.map(|(_, id)| strings.name(id).to_string()),
            self.rpc_method.map(|id| strings.name(id).to_string()),
            self.rpc_status.map(|c| grpc::status_name(c).to_string()),
            self.status,
            self.error_type.map(|e| e.to_string()),
            self.protocol_version,
            self.scheme,
            self.address(strings),
            self.server_port,
        )
    }

    /// The series attributes, in the documented order.
    fn attributes(&self, strings: &Interner) -> Attributes {
        let mut out = Attributes::new();
        if let Some(m) = self.method {
            out.push(attr::HTTP_REQUEST_METHOD, m);
        }
        if let Some((declared, id)) = self.route {
            let key = if declared {
                attr::HTTP_ROUTE
            } else {
                attr::OTEL_EBPF_HTTP_ROUTE
            };
            out.push(key, strings.name(id).to_string());
        }
        if self.rpc {
            out.push(attr::RPC_SYSTEM_NAME, value::RPC_SYSTEM_GRPC);
        }
        if let Some(id) = self.rpc_method {
            out.push(attr::RPC_METHOD, strings.name(id).to_string());
        }
        if let Some(c) = self.rpc_status {
            out.push(
                attr::RPC_RESPONSE_STATUS_CODE,
                grpc::status_name(c).to_string(),
            );
        }
        if let Some(c) = self.status {
            out.push(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(c));
        }
        if let Some(e) = self.error_type {
            out.push(attr::ERROR_TYPE, e.to_string());
        }
        out.push(attr::NETWORK_PROTOCOL_NAME, value::PROTOCOL_HTTP);
        if let Some(v) = self.protocol_version {
            out.push(attr::NETWORK_PROTOCOL_VERSION, v);
        }
        if !self.rpc {
            out.push(attr::URL_SCHEME, self.scheme);
        }
        if let Some(a) = self.address(strings) {
            out.push(attr::SERVER_ADDRESS, a);
        }
        if let Some(p) = self.server_port {
            out.push(attr::SERVER_PORT, i64::from(p));
        }
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

    fn point(&self, attributes: Attributes, now: u64) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: self.start_ns,
            time_unix_nano: now.max(self.start_ns),
            count: self.count,
            sum: self.sum_ns as f64 / 1e9,
            bucket_counts: self.buckets.to_vec(),
            explicit_bounds: &HTTP_DURATION_BUCKETS,
            min: Some(self.min_s),
            max: Some(self.max_s),
        }
    }
}

pub mod exited;
pub mod graph;
#[cfg(test)]
mod tests;

//! Kernel network timing and TCP health as OTLP metrics.
//!
//! Stage: kernel → **metrics** → export. Input: each [`NetSample`] with the resource of its
//! process (pid 0: the host's "unknown process" resource), and anomaly totals. Output: on
//! [`KernelMetrics::collect`], CUMULATIVE histograms (s, buckets
//! [`metric::LAYER_BUCKETS`]) and monotonic sums, one `ResourceMetrics` per process; names,
//! units and attributes in `otel_ebpf_semconv::kernel`.
//!
//! Limits: at most `max_series` series over all processes and instruments; past that a
//! measurement goes to its instrument's overflow series (`otel.metric.overflow=true`, host
//! resource). Pure code, no IO.

use super::event::{ConnectResult, NetSample};
use crate::enrich::ProcessResource;
use crate::probes::netbtf::ReasonNames;
use crate::span::{kv, kv_str};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use otel_ebpf_common::{NetKind, SockRole};
use otel_ebpf_semconv::kernel::{TCP_STATES, attribute as kattr, layer, metric as m};
use otel_ebpf_semconv::{attribute as attr, value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Default of [`KernelMetrics::new`]'s series bound.
pub const DEFAULT_MAX_SERIES: usize = 20_000;

/// The instruments, in export order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Instrument {
    SendDuration,
    ReceiveDuration,
    ConnectDuration,
    Srtt,
    Retransmits,
    Resets,
    Drops,
    Opened,
    Closed,
    Anomalies,
}

impl Instrument {
    const ALL: [Instrument; 10] = [
        Self::SendDuration,
        Self::ReceiveDuration,
        Self::ConnectDuration,
        Self::Srtt,
        Self::Retransmits,
        Self::Resets,
        Self::Drops,
        Self::Opened,
        Self::Closed,
        Self::Anomalies,
    ];

    /// (name, unit, description, histogram?)
    fn spec(self) -> (&'static str, &'static str, &'static str, bool) {
        match self {
            Self::SendDuration => (
                m::SEND_DURATION,
                m::UNIT_SECONDS,
                "Kernel time of transmitted skbs per layer.",
                true,
            ),
            Self::ReceiveDuration => (
                m::RECEIVE_DURATION,
                m::UNIT_SECONDS,
                "Kernel time of received skbs per layer.",
                true,
            ),
            Self::ConnectDuration => (
                m::CONNECT_DURATION,
                m::UNIT_SECONDS,
                "Duration of outgoing TCP connects.",
                true,
            ),
            Self::Srtt => (
                m::SRTT,
                m::UNIT_SECONDS,
                "Smoothed TCP round-trip time.",
                true,
            ),
            Self::Retransmits => (
                m::RETRANSMITS,
                "{segment}",
                "Retransmitted segments.",
                false,
            ),
            Self::Resets => (
                m::RESETS,
                "{segment}",
                "TCP resets sent and received.",
                false,
            ),
            Self::Drops => (
                m::DROPS,
                "{packet}",
                "TCP packets dropped by the kernel.",
                false,
            ),
            Self::Opened => (
                m::CONNECTIONS_OPENED,
                "{connection}",
                "TCP connections opened.",
                false,
            ),
            Self::Closed => (
                m::CONNECTIONS_CLOSED,
                "{connection}",
                "TCP connections closed, by the state they left.",
                false,
            ),
            Self::Anomalies => (m::ANOMALIES, "{anomaly}", "TCP anomalies detected.", false),
        }
    }
}

type Attrs = Vec<(&'static str, String)>;

/// One process's series grouped by instrument, with their OTLP attributes (for [`KernelMetrics::collect`]).
type ByInstrument<'a> = BTreeMap<Instrument, Vec<(Vec<KeyValue>, &'a Series)>>;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    pid: u32,
    inst: Instrument,
    attrs: Attrs,
}

#[derive(Debug)]
struct Series {
    start_unix_ns: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// Histogram buckets (empty for counters).
    buckets: Vec<u64>,
}

impl Series {
    fn new(hist: bool, start: u64) -> Self {
        Self {
            start_unix_ns: start,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            buckets: if hist {
                vec![0; m::LAYER_BUCKETS.len() + 1]
            } else {
                Vec::new()
            },
        }
    }

    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if !self.buckets.is_empty() {
            self.buckets[m::LAYER_BUCKETS.partition_point(|&b| b < v)] += 1;
        }
    }
}

/// Cumulative kernel metrics per (process, instrument, attribute set).
#[derive(Debug)]
pub struct KernelMetrics {
    series: BTreeMap<Key, Series>,
    overflow: BTreeMap<Instrument, Series>,
    resources: HashMap<u32, Arc<ProcessResource>>,
    max_series: usize,
    reasons: ReasonNames,
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

impl KernelMetrics {
    /// An empty aggregator keeping at most `max_series` series; reason names from `reasons`.
    pub fn new(max_series: usize, reasons: ReasonNames) -> Self {
        Self {
            series: BTreeMap::new(),
            overflow: BTreeMap::new(),
            resources: HashMap::new(),
            max_series: max_series.max(1),
            reasons,
        }
    }

    fn add(
        &mut self,
        res: &Arc<ProcessResource>,
        pid: u32,
        inst: Instrument,
        attrs: Attrs,
        v: f64,
        now: u64,
    ) {
        let hist = inst.spec().3;
        let key = Key { pid, inst, attrs };
        if let Some(s) = self.series.get_mut(&key) {
            s.add(v);
        } else if self.series.len() < self.max_series {
            self.resources.entry(pid).or_insert_with(|| Arc::clone(res));
            self.series
                .entry(key)
                .or_insert_with(|| Series::new(hist, now))
                .add(v);
        } else {
            self.overflow
                .entry(inst)
                .or_insert_with(|| Series::new(hist, now))
                .add(v);
        }
    }

    /// Records one sample for the process whose resource is `res`, at `now_unix_ns`.
    pub fn record(&mut self, res: &Arc<ProcessResource>, s: &NetSample, now_unix_ns: u64) {
        let peer = s
            .tuple
            .map(|t| t.remote.ip().to_string())
            .unwrap_or_default();
        let base = |extra: Attrs| {
            let mut a = extra;
            if !peer.is_empty() {
                a.push((attr::NETWORK_PEER_ADDRESS, peer.clone()));
            }
            a.sort();
            a
        };
        let pid = s.pid;
        let now = now_unix_ns;
        match s.kind {
            NetKind::Tx | NetKind::Rx => {
                let (inst, names): (_, &[&str]) = if s.kind == NetKind::Tx {
                    (Instrument::SendDuration, &layer::SEND)
                } else {
                    (Instrument::ReceiveDuration, &layer::RECEIVE)
                };
                for (name, d) in names.iter().zip(s.d) {
                    if let Some(ns) = d {
                        self.add(
                            res,
                            pid,
                            inst,
                            base(vec![(kattr::LAYER, name.to_string())]),
                            secs(ns),
                            now,
                        );
                    }
                }
                if s.kind == NetKind::Rx && s.aux != 0 {
                    self.add(
                        res,
                        pid,
                        Instrument::Srtt,
                        base(vec![]),
                        s.aux as f64 / 1e6,
                        now,
                    );
                }
            }
            NetKind::Retransmit => {
                self.add(res, pid, Instrument::Retransmits, base(vec![]), 1.0, now)
            }
            NetKind::ResetSent => {
                let a = vec![
                    (kattr::IO_DIRECTION, "transmit".to_string()),
                    (kattr::RESET_REASON, self.reasons.reset(s.aux)),
                ];
                self.add(res, pid, Instrument::Resets, base(a), 1.0, now);
            }
            NetKind::ResetReceived => {
                let a = vec![(kattr::IO_DIRECTION, "receive".to_string())];
                self.add(res, pid, Instrument::Resets, base(a), 1.0, now);
            }
            NetKind::Drop => {
                let a = vec![(kattr::DROP_REASON, self.reasons.drop(s.aux))];
                self.add(res, pid, Instrument::Drops, base(a), 1.0, now);
            }
            NetKind::Connect => {
                let d = secs(s.d[0].unwrap_or(0));
                let a = match s.connect_result() {
                    Some(ConnectResult::Ok) => {
                        let role = vec![(kattr::ROLE, "client".to_string())];
                        self.add(res, pid, Instrument::Opened, base(role), 1.0, now);
                        vec![]
                    }
                    Some(ConnectResult::Refused) => {
                        vec![(attr::ERROR_TYPE, "connection_refused".to_string())]
                    }
                    _ => vec![(attr::ERROR_TYPE, "connect_failed".to_string())],
                };
                self.add(res, pid, Instrument::ConnectDuration, base(a), d, now);
            }
            NetKind::Accepted => {
                let role = vec![(kattr::ROLE, "server".to_string())];
                self.add(res, pid, Instrument::Opened, base(role), 1.0, now);
            }
            NetKind::Closed => {
                let state = TCP_STATES
                    .get(s.aux as usize)
                    .copied()
                    .unwrap_or("UNKNOWN")
                    .to_string();
                let role = match s.role {
                    SockRole::Client => "client",
                    SockRole::Server => "server",
                    SockRole::Unknown => "unknown",
                };
                let a = vec![(kattr::STATE, state), (kattr::ROLE, role.to_string())];
                self.add(res, pid, Instrument::Closed, base(a), 1.0, now);
            }
        }
    }

    /// Adds `n` anomalies of type `kind` (counted under pid 0 with the host resource `res`).
    pub fn record_anomalies(
        &mut self,
        res: &Arc<ProcessResource>,
        kind: &str,
        n: u64,
        now_unix_ns: u64,
    ) {
        if n == 0 {
            return;
        }
        let a = vec![("otel_ebpf.anomaly.type", kind.to_string())];
        self.add(res, 0, Instrument::Anomalies, a, 1.0, now_unix_ns);
        let key = Key {
            pid: 0,
            inst: Instrument::Anomalies,
            attrs: vec![("otel_ebpf.anomaly.type", kind.to_string())],
        };
        if let Some(s) = self.series.get_mut(&key) {
            s.count += n - 1;
        }
    }

    /// Replaces the reason names (known once the probes are loaded).
    pub fn set_reasons(&mut self, reasons: ReasonNames) {
        self.reasons = reasons;
    }

    /// Series kept (overflow series excluded).
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Cumulative snapshot stamped `now_unix_ns`; `None` when nothing was recorded.
    pub fn collect(&self, now_unix_ns: u64) -> Option<ExportMetricsServiceRequest> {
        if self.series.is_empty() && self.overflow.is_empty() {
            return None;
        }
        let mut by_pid: BTreeMap<u32, ByInstrument> = BTreeMap::new();
        for (k, s) in &self.series {
            let attrs = k.attrs.iter().map(|(n, v)| kv_str(n, v)).collect();
            by_pid
                .entry(k.pid)
                .or_default()
                .entry(k.inst)
                .or_default()
                .push((attrs, s));
        }
        for (inst, s) in &self.overflow {
            let attrs = vec![kv(attr::OTEL_METRIC_OVERFLOW, Value::BoolValue(true))];
            by_pid
                .entry(0)
                .or_default()
                .entry(*inst)
                .or_default()
                .push((attrs, s));
        }
        let resource_metrics = by_pid
            .into_iter()
            .map(|(pid, insts)| {
                let metrics = Instrument::ALL
                    .iter()
                    .filter_map(|i| insts.get(i).map(|pts| metric_of(*i, pts, now_unix_ns)))
                    .collect();
                ResourceMetrics {
                    resource: self.resources.get(&pid).map(|r| r.resource.clone()),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: value::SDK_NAME.into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            ..Default::default()
                        }),
                        metrics,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }
            })
            .collect();
        Some(ExportMetricsServiceRequest { resource_metrics })
    }
}

fn metric_of(inst: Instrument, points: &[(Vec<KeyValue>, &Series)], now: u64) -> Metric {
    let (name, unit, description, hist) = inst.spec();
    let data = if hist {
        metric::Data::Histogram(Histogram {
            data_points: points
                .iter()
                .map(|(a, s)| HistogramDataPoint {
                    attributes: a.clone(),
                    start_time_unix_nano: s.start_unix_ns,
                    time_unix_nano: now.max(s.start_unix_ns),
                    count: s.count,
                    sum: Some(s.sum),
                    bucket_counts: s.buckets.clone(),
                    explicit_bounds: m::LAYER_BUCKETS.to_vec(),
                    min: Some(s.min),
                    max: Some(s.max),
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })
    } else {
        metric::Data::Sum(Sum {
            data_points: points
                .iter()
                .map(|(a, s)| NumberDataPoint {
                    attributes: a.clone(),
                    start_time_unix_nano: s.start_unix_ns,
                    time_unix_nano: now.max(s.start_unix_ns),
                    value: Some(number_data_point::Value::AsInt(s.count as i64)),
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })
    };
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;

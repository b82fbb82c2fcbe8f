//! Kernel network timing and TCP health as OTLP metrics.
//!
//! Stage: kernel → **metrics** → export. Input: each [`NetSample`] with the resource of its
//! process (pid 0: the host's "unknown process" resource), and anomaly totals. Output: on
//! [`KernelMetrics::collect`], CUMULATIVE histograms (s, buckets
//! [`metric::LAYER_BUCKETS`]) and monotonic sums as a [`MetricsBatch`] (our own model;
//! `export/` encodes it), one [`ResourceMetrics`] per process; names, units and attributes in
//! `otel_ebpf_semconv::kernel`.
//!
//! Limits: at most `max_series` series over all processes and instruments; past that a
//! measurement goes to its instrument's overflow series (`otel.metric.overflow=true`, host
//! resource). A process marked exited ([`KernelMetrics::process_exited`]) keeps its series
//! until the next collection, then [`KernelMetrics::prune_exited`] forgets them (memory does
//! not grow with every process that ever made a request).
//!
//! Peer addresses: `network.peer.address` is kept only for peers that exchanged data or
//! completed a handshake with this host (a sent/received sample, an accepted connection, a
//! successful connect), at most `max_peers` of them over the live series; a sample about
//! another peer (a spoofed SYN's reset, drop or SYN-ACK retransmit, a refused connect to an
//! unknown address) is recorded without its peer, in a series marked
//! `otel.metric.overflow=true`, and counted ([`KernelMetrics::peers_overflowed`]). So forged
//! source addresses cannot fill the series bound. Pure code, no IO.

use super::peers::PeerBudget;
use crate::attr::Attributes;
use crate::enrich::ProcessResource;
use crate::events::net::{ConnectResult, NetSample};
use crate::hash::{HashMap, HashMapExt};
use crate::metrics::exited::ExitedProcesses;
use crate::model::{
    HistogramDataPoint, Metric, MetricData, MetricsBatch, NumberDataPoint, ResourceMetrics,
};
use crate::probes::netbtf::ReasonNames;
use otel_ebpf_common::{NetKind, SockRole};
use otel_ebpf_semconv::anomaly::TYPE as ANOMALY_TYPE;
use otel_ebpf_semconv::attribute as attr;
use otel_ebpf_semconv::kernel::{TCP_STATES, attribute as kattr, layer, metric as m};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Default of [`KernelMetrics::new`]'s series bound.
pub const DEFAULT_MAX_SERIES: usize = 20_000;

/// The instruments, in export order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Instrument {
    SendDuration,
    ReceiveDuration,
    ConnectDuration,
    AcceptDuration,
    Srtt,
    Retransmits,
    Resets,
    Drops,
    Opened,
    Closed,
    Anomalies,
}

impl Instrument {
    const ALL: [Instrument; 11] = [
        Self::SendDuration,
        Self::ReceiveDuration,
        Self::ConnectDuration,
        Self::AcceptDuration,
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
            Self::AcceptDuration => (
                m::ACCEPT_DURATION,
                m::UNIT_SECONDS,
                "Handshake of incoming TCP connections (SYN-ACK sent to final ACK).",
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

/// The points of one instrument: (attributes, series).
type Points<'a> = Vec<(Attributes, &'a Series)>;

/// What distinguishes series of one instrument besides process and peer; turned into
/// attributes only at export, so recording allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Label {
    None,
    /// Index into `layer::SEND` / `layer::RECEIVE`.
    Layer(u8),
    Drop(u32),
    ResetSent(u32),
    ResetReceived,
    ConnectRefused,
    ConnectFailed,
    /// `SockRole as u8`.
    Role(u8),
    /// (TCP state, `SockRole as u8`).
    Closed(u8, u8),
    Anomaly(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    pid: u32,
    inst: Instrument,
    peer: Option<IpAddr>,
    label: Label,
    /// The sample's peer address was not kept (unobserved peer or peer budget spent).
    peer_dropped: bool,
}

fn role_name(r: u8) -> &'static str {
    match r {
        x if x == SockRole::Client as u8 => "client",
        x if x == SockRole::Server as u8 => "server",
        _ => "unknown",
    }
}

impl Key {
    fn attributes(&self, reasons: &ReasonNames) -> Attributes {
        let mut a = Attributes(Vec::with_capacity(3));
        match self.label {
            Label::None => {}
            Label::Layer(i) => {
                let names: &[&str] = if self.inst == Instrument::SendDuration {
                    &layer::SEND
                } else {
                    &layer::RECEIVE
                };
                a.push(kattr::LAYER, *names.get(i as usize).unwrap_or(&"?"));
            }
            Label::Drop(r) => a.push(kattr::DROP_REASON, reasons.drop(r)),
            Label::ResetSent(r) => {
                a.push(kattr::IO_DIRECTION, "transmit");
                a.push(kattr::RESET_REASON, reasons.reset(r));
            }
            Label::ResetReceived => a.push(kattr::IO_DIRECTION, "receive"),
            Label::ConnectRefused => a.push(attr::ERROR_TYPE, "connection_refused"),
            Label::ConnectFailed => a.push(attr::ERROR_TYPE, "connect_failed"),
            Label::Role(r) => a.push(kattr::ROLE, role_name(r)),
            Label::Closed(state, r) => {
                let name = TCP_STATES.get(state as usize).copied().unwrap_or("UNKNOWN");
                a.push(kattr::STATE, name);
                a.push(kattr::ROLE, role_name(r));
            }
            Label::Anomaly(kind) => a.push(ANOMALY_TYPE, kind),
        }
        if let Some(p) = self.peer {
            a.push(attr::NETWORK_PEER_ADDRESS, p.to_string());
        }
        if self.peer_dropped {
            a.push(attr::OTEL_METRIC_OVERFLOW, true);
        }
        a.0.sort_by(|x, y| x.0.cmp(&y.0));
        a
    }
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
    /// Processes that exited, whose series go after the next collection.
    exited: ExitedProcesses,
    /// Peer addresses kept on series.
    peers: PeerBudget,
    /// Appended to the descriptions of the sampled histograms (layer durations, smoothed
    /// RTT): how they are sampled ([`sampling_note`]); empty = every skb.
    sampling: String,
}

/// The sampling sentence of the layer histograms' descriptions for a layer-timing
/// configuration: the expected share of data skbs timed and how they are chosen.
pub fn sampling_note(s: &crate::config::LayerSampling) -> String {
    if s.expected_rate() >= 1.0 {
        return String::new();
    }
    format!(
        "Sampled: expected rate {:.6} of data skbs ({} s windows every {} s, connections by tuple hash at rate {}, 1 skb in {}); connections over {} ms smoothed RTT or {} retransmits are timed whole for 10 s. Counts are of the sampled skbs; the distribution is an unbiased estimate outside those threshold crossings.",
        s.expected_rate(),
        s.window_seconds,
        s.period_seconds,
        s.connection_rate,
        s.skb_interval,
        s.srtt_threshold_ms,
        s.retransmit_threshold
    )
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
            exited: ExitedProcesses::default(),
            peers: PeerBudget::default(),
            sampling: String::new(),
        }
    }

    /// Keeps at most `max_peers` distinct peer addresses on the live series (0: none).
    pub fn with_max_peers(mut self, max_peers: usize) -> Self {
        self.peers = PeerBudget::new(max_peers);
        self
    }

    /// Samples recorded without their peer address so far (unobserved peer, or the peer
    /// budget spent): the `otel_ebpf_kernel_metric_peers_overflowed_total` self-metric.
    pub fn peers_overflowed(&self) -> u64 {
        self.peers.overflowed()
    }

    /// Distinct peer addresses on the live series.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Sets the sampling sentence of the layer histograms ([`sampling_note`]).
    pub fn set_sampling(&mut self, note: String) {
        self.sampling = note;
    }

    /// Marks `pid` as exited (pid 0, the host's series, never is): its series are collected
    /// once more with their final values, then [`KernelMetrics::prune_exited`] drops them.
    pub fn process_exited(&mut self, pid: u32) {
        self.exited.mark(pid);
    }

    /// Forgets the series and resources of the processes marked exited; call it right after
    /// a collection. Returns the number of series removed.
    pub fn prune_exited(&mut self) -> usize {
        if self.exited.is_empty() {
            return 0;
        }
        let before = self.series.len();
        let exited = self.exited.take();
        let peers = &mut self.peers;
        self.series.retain(|k, _| {
            let keep = !exited.contains(&k.pid);
            if !keep && let Some(ip) = k.peer {
                peers.release(ip);
            }
            keep
        });
        self.resources.retain(|pid, _| !exited.contains(pid));
        before - self.series.len()
    }

    fn add(&mut self, res: &Arc<ProcessResource>, key: Key, v: f64, now: u64) {
        let hist = key.inst.spec().3;
        if let Some(s) = self.series.get_mut(&key) {
            s.add(v);
        } else if self.series.len() < self.max_series {
            self.resources
                .entry(key.pid)
                .or_insert_with(|| Arc::clone(res));
            if let Some(ip) = key.peer {
                self.peers.hold(ip);
            }
            self.series
                .entry(key)
                .or_insert_with(|| Series::new(hist, now))
                .add(v);
        } else {
            self.overflow
                .entry(key.inst)
                .or_insert_with(|| Series::new(hist, now))
                .add(v);
        }
    }

    /// Records one sample for the process whose resource is `res`, at `now_unix_ns`.
    pub fn record(&mut self, res: &Arc<ProcessResource>, s: &NetSample, now_unix_ns: u64) {
        // Data moved, a handshake completed: the peer is real (a forged source cannot do this).
        let observed = match s.kind {
            NetKind::Tx | NetKind::Rx | NetKind::Accepted => true,
            NetKind::Connect => s.connect_result() == Some(ConnectResult::Ok),
            _ => false,
        };
        let (peer, peer_dropped) = self.peers.admit(s.tuple.map(|t| t.remote.ip()), observed);
        let key = |inst, label| Key {
            pid: s.pid,
            inst,
            peer,
            label,
            peer_dropped,
        };
        let now = now_unix_ns;
        match s.kind {
            NetKind::Tx | NetKind::Rx => {
                let inst = if s.kind == NetKind::Tx {
                    Instrument::SendDuration
                } else {
                    Instrument::ReceiveDuration
                };
                let layers = if s.kind == NetKind::Tx {
                    layer::SEND.len()
                } else {
                    layer::RECEIVE.len()
                };
                for (i, d) in s.d.iter().take(layers).enumerate() {
                    if let Some(ns) = d {
                        self.add(res, key(inst, Label::Layer(i as u8)), secs(*ns), now);
                    }
                }
                if s.kind == NetKind::Rx && s.aux != 0 {
                    let k = key(Instrument::Srtt, Label::None);
                    self.add(res, k, s.aux as f64 / 1e6, now);
                }
            }
            NetKind::Retransmit => {
                self.add(res, key(Instrument::Retransmits, Label::None), 1.0, now)
            }
            NetKind::ResetSent => self.add(
                res,
                key(Instrument::Resets, Label::ResetSent(s.aux)),
                1.0,
                now,
            ),
            NetKind::ResetReceived => {
                self.add(res, key(Instrument::Resets, Label::ResetReceived), 1.0, now)
            }
            NetKind::Drop => self.add(res, key(Instrument::Drops, Label::Drop(s.aux)), 1.0, now),
            NetKind::Connect => {
                let d = secs(s.d[0].unwrap_or(0));
                let label = match s.connect_result() {
                    Some(ConnectResult::Ok) => {
                        let k = key(Instrument::Opened, Label::Role(SockRole::Client as u8));
                        self.add(res, k, 1.0, now);
                        Label::None
                    }
                    Some(ConnectResult::Refused) => Label::ConnectRefused,
                    _ => Label::ConnectFailed,
                };
                self.add(res, key(Instrument::ConnectDuration, label), d, now);
            }
            NetKind::Accepted => {
                let k = key(Instrument::Opened, Label::Role(SockRole::Server as u8));
                self.add(res, k, 1.0, now);
                if let Some(ns) = s.d[0] {
                    self.add(
                        res,
                        key(Instrument::AcceptDuration, Label::None),
                        secs(ns),
                        now,
                    );
                }
            }
            NetKind::Closed => {
                let k = key(
                    Instrument::Closed,
                    Label::Closed(s.aux.min(255) as u8, s.role as u8),
                );
                self.add(res, k, 1.0, now);
            }
        }
    }

    /// Counts one anomaly of type `kind` (under pid 0 with the host resource `res`).
    pub fn record_anomaly(
        &mut self,
        res: &Arc<ProcessResource>,
        kind: &'static str,
        now_unix_ns: u64,
    ) {
        let key = Key {
            pid: 0,
            inst: Instrument::Anomalies,
            peer: None,
            label: Label::Anomaly(kind),
            peer_dropped: false,
        };
        self.add(res, key, 1.0, now_unix_ns);
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
    pub fn collect(&self, now_unix_ns: u64) -> Option<MetricsBatch> {
        if self.series.is_empty() && self.overflow.is_empty() {
            return None;
        }
        let mut by_pid: BTreeMap<u32, BTreeMap<Instrument, Points>> = BTreeMap::new();
        for (k, s) in &self.series {
            let attrs = k.attributes(&self.reasons);
            by_pid
                .entry(k.pid)
                .or_default()
                .entry(k.inst)
                .or_default()
                .push((attrs, s));
        }
        for (inst, s) in &self.overflow {
            let mut attrs = Attributes::new();
            attrs.push(attr::OTEL_METRIC_OVERFLOW, true);
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
                    .filter_map(|i| {
                        insts
                            .get(i)
                            .map(|pts| metric_of(*i, pts, now_unix_ns, &self.sampling))
                    })
                    .collect();
                ResourceMetrics {
                    resource: self
                        .resources
                        .get(&pid)
                        .map(|r| r.attributes.clone())
                        .unwrap_or_default(),
                    metrics,
                }
            })
            .collect();
        Some(MetricsBatch { resource_metrics })
    }
}

fn metric_of(
    inst: Instrument,
    points: &[(Attributes, &Series)],
    now: u64,
    sampling: &str,
) -> Metric {
    let (name, unit, description, hist) = inst.spec();
    let sampled = matches!(
        inst,
        Instrument::SendDuration | Instrument::ReceiveDuration | Instrument::Srtt
    );
    let description = if sampled && !sampling.is_empty() {
        format!("{description} {sampling}").into()
    } else {
        description.into()
    };
    let data = if hist {
        MetricData::Histogram(
            points
                .iter()
                .map(|(a, s)| HistogramDataPoint {
                    attributes: a.clone(),
                    start_time_unix_nano: s.start_unix_ns,
                    time_unix_nano: now.max(s.start_unix_ns),
                    count: s.count,
                    sum: s.sum,
                    bucket_counts: s.buckets.clone(),
                    explicit_bounds: &m::LAYER_BUCKETS,
                    min: Some(s.min),
                    max: Some(s.max),
                })
                .collect(),
        )
    } else {
        MetricData::Sum(
            points
                .iter()
                .map(|(a, s)| NumberDataPoint {
                    attributes: a.clone(),
                    start_time_unix_nano: s.start_unix_ns,
                    time_unix_nano: now.max(s.start_unix_ns),
                    value: s.count as i64,
                })
                .collect(),
        )
    };
    Metric {
        name,
        description,
        unit,
        data,
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;

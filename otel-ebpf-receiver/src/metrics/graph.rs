//! Service-graph metrics computed by the receiver itself.
//!
//! Stage: span/link → **metrics** → export. Input: the [`Edge`]s the trace linker found (one
//! per request: a same-host pair once, or one observed side with a virtual peer). Output, on
//! [`ServiceGraph::collect`]: the Collector `servicegraph` connector's metrics —
//! `traces_service_graph_request_total`, `traces_service_graph_request_failed_total`
//! (cumulative sums) and `traces_service_graph_request_server` /
//! `traces_service_graph_request_client` (cumulative histograms, seconds, the connector's
//! default buckets) — labelled `client`, `server`, `connection_type` (`virtual_node` when a
//! side was not observed, else empty), under the receiver's own resource.
//!
//! Node names: an observed process → its `service.name`; an unobserved peer → its name in
//! `receiver.traces.peer_service`, else its IP address. Limits: at most [`MAX_EDGES`]
//! distinct edges; further edges go to one overflow series (`otel.metric.overflow=true`),
//! counted. Pure code, no IO.

use crate::attr::Attributes;
use crate::config::TracesConfig;
use crate::model::{HistogramDataPoint, Metric, MetricData, NumberDataPoint, ResourceMetrics};
use crate::span::link::{Edge, Node};
use otel_ebpf_semconv::service_graph as sg;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most distinct (client, server, connection type) edges kept.
pub const MAX_EDGES: usize = 10_000;

type EdgeKey = (Arc<str>, Arc<str>, bool);

#[derive(Debug, Default)]
struct EdgeStats {
    start_ns: u64,
    total: u64,
    failed: u64,
    server: Hist,
    client: Hist,
}

#[derive(Debug, Default)]
struct Hist {
    count: u64,
    sum_ns: u128,
    buckets: [u64; sg::BUCKETS.len() + 1],
}

impl Hist {
    fn add(&mut self, ns: u64) {
        let s = ns as f64 / 1e9;
        self.buckets[sg::BUCKETS.partition_point(|&b| b < s)] += 1;
        self.count += 1;
        self.sum_ns += u128::from(ns);
    }
}

/// Cumulative service-graph series.
#[derive(Debug, Default)]
pub struct ServiceGraph {
    edges: BTreeMap<EdgeKey, EdgeStats>,
    overflow: Option<EdgeStats>,
    /// Node names interned (service names and peers; at most [`MAX_EDGES`]).
    names: BTreeMap<String, Arc<str>>,
    /// Edges that went to the overflow series.
    pub overflowed: u64,
}

impl ServiceGraph {
    /// Records one edge at Unix time `now_ns`.
    pub fn record(&mut self, e: &Edge, cfg: &TracesConfig, now_ns: u64) {
        let virtual_node = matches!(e.client, Node::Peer(_)) || matches!(e.server, Node::Peer(_));
        let client = self.name(&e.client, cfg);
        let server = self.name(&e.server, cfg);
        let key = (client, server, virtual_node);
        let stats = if self.edges.contains_key(&key) || self.edges.len() < MAX_EDGES {
            self.edges.entry(key).or_insert_with(|| EdgeStats {
                start_ns: now_ns,
                ..EdgeStats::default()
            })
        } else {
            self.overflowed += 1;
            self.overflow.get_or_insert_with(|| EdgeStats {
                start_ns: now_ns,
                ..EdgeStats::default()
            })
        };
        stats.total += 1;
        stats.failed += u64::from(e.failed);
        if let Some(ns) = e.server_ns {
            stats.server.add(ns);
        }
        if let Some(ns) = e.client_ns {
            stats.client.add(ns);
        }
    }

    /// The node's name, interned (recording an edge of known nodes allocates nothing).
    fn name(&mut self, n: &Node, cfg: &TracesConfig) -> Arc<str> {
        let peer;
        let s: &str = match n {
            Node::Process(r) => &r.service_name,
            Node::Peer(addr) => match cfg.peer_name(*addr) {
                Some(name) => name,
                None => {
                    peer = addr.ip().to_string();
                    &peer
                }
            },
        };
        if let Some(a) = self.names.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.names.len() < MAX_EDGES {
            self.names.insert(s.to_string(), a.clone());
        }
        a
    }

    /// Distinct edges kept.
    pub fn len(&self) -> usize {
        self.edges.len()
    }

    /// True when no edge was recorded.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty() && self.overflow.is_none()
    }

    /// The four metrics at Unix time `now_ns` under `resource`; `None` before any edge.
    pub fn collect(&self, now_ns: u64, resource: &Attributes) -> Option<ResourceMetrics> {
        if self.is_empty() {
            return None;
        }
        let series: Vec<(Attributes, &EdgeStats)> = self
            .edges
            .iter()
            .map(|((c, s, v), st)| {
                let mut a = Attributes::new();
                a.push(sg::CLIENT, c.to_string());
                a.push(sg::SERVER, s.to_string());
                a.push(sg::CONNECTION_TYPE, if *v { sg::VIRTUAL_NODE } else { "" });
                (a, st)
            })
            .chain(self.overflow.iter().map(|st| {
                let mut a = Attributes::new();
                a.push(otel_ebpf_semconv::attribute::OTEL_METRIC_OVERFLOW, true);
                (a, st)
            }))
            .collect();
        let sum = |name: &'static str, desc: &'static str, get: fn(&EdgeStats) -> u64| Metric {
            name,
            description: desc.into(),
            unit: "{request}",
            data: MetricData::Sum(
                series
                    .iter()
                    .map(|(a, st)| NumberDataPoint {
                        attributes: a.clone(),
                        start_time_unix_nano: st.start_ns,
                        time_unix_nano: now_ns.max(st.start_ns),
                        value: get(st) as i64,
                    })
                    .collect(),
            ),
        };
        let hist = |name: &'static str, desc: &'static str, get: fn(&EdgeStats) -> &Hist| Metric {
            name,
            description: desc.into(),
            unit: "s",
            data: MetricData::Histogram(
                series
                    .iter()
                    .filter(|(_, st)| get(st).count > 0)
                    .map(|(a, st)| {
                        let h = get(st);
                        HistogramDataPoint {
                            attributes: a.clone(),
                            start_time_unix_nano: st.start_ns,
                            time_unix_nano: now_ns.max(st.start_ns),
                            count: h.count,
                            sum: h.sum_ns as f64 / 1e9,
                            bucket_counts: h.buckets.to_vec(),
                            explicit_bounds: &sg::BUCKETS,
                            min: None,
                            max: None,
                        }
                    })
                    .collect(),
            ),
        };
        let metrics = vec![
            sum(sg::REQUEST_TOTAL, "Requests between two nodes.", |s| {
                s.total
            }),
            sum(
                sg::REQUEST_FAILED_TOTAL,
                "Failed requests between two nodes.",
                |s| s.failed,
            ),
            hist(
                sg::REQUEST_SERVER,
                "Time the server side took for a request.",
                |s| &s.server,
            ),
            hist(
                sg::REQUEST_CLIENT,
                "Time the client side took for a request.",
                |s| &s.client,
            ),
        ];
        Some(ResourceMetrics {
            resource: resource.clone(),
            metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::test_resource;

    fn edge(client: Node, server: Node, failed: bool) -> Edge {
        Edge {
            client,
            server,
            failed,
            client_ns: Some(3_000_000),
            server_ns: Some(1_000_000),
        }
    }

    fn sums(m: &ResourceMetrics, name: &str) -> Vec<(Vec<String>, i64)> {
        let metric = m.metrics.iter().find(|x| x.name == name).unwrap();
        let MetricData::Sum(points) = &metric.data else {
            panic!("not a sum")
        };
        points
            .iter()
            .map(|p| {
                let labels = p
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                (labels, p.value)
            })
            .collect()
    }

    #[test]
    fn edges_count_once_with_connector_labels() {
        let mut g = ServiceGraph::default();
        let mut cfg = TracesConfig::default();
        cfg.peer_service
            .insert("10.0.0.5:5432".into(), "postgres".into());
        let fe = test_resource(1, "frontend");
        let be = test_resource(2, "backend");
        for _ in 0..3 {
            g.record(
                &edge(Node::Process(fe.clone()), Node::Process(be.clone()), false),
                &cfg,
                5,
            );
        }
        g.record(
            &edge(Node::Process(fe.clone()), Node::Process(be.clone()), true),
            &cfg,
            6,
        );
        g.record(
            &edge(
                Node::Process(be.clone()),
                Node::Peer("10.0.0.5:5432".parse().unwrap()),
                false,
            ),
            &cfg,
            7,
        );
        g.record(
            &edge(
                Node::Peer("192.0.2.1:4000".parse().unwrap()),
                Node::Process(fe),
                false,
            ),
            &cfg,
            8,
        );
        let m = g.collect(100, &Attributes::new()).unwrap();
        let total = sums(&m, sg::REQUEST_TOTAL);
        assert_eq!(
            total,
            [
                (
                    vec![
                        "client=192.0.2.1".into(),
                        "server=frontend".into(),
                        "connection_type=virtual_node".into()
                    ],
                    1
                ),
                (
                    vec![
                        "client=backend".into(),
                        "server=postgres".into(),
                        "connection_type=virtual_node".into()
                    ],
                    1
                ),
                (
                    vec![
                        "client=frontend".into(),
                        "server=backend".into(),
                        "connection_type=".into()
                    ],
                    4
                ),
            ]
        );
        let failed = sums(&m, sg::REQUEST_FAILED_TOTAL);
        assert_eq!(failed[2].1, 1);
        let server = m
            .metrics
            .iter()
            .find(|x| x.name == sg::REQUEST_SERVER)
            .unwrap();
        let h = server.data.histogram();
        // 1 ms server time: bucket (0.0, 0.002].
        assert_eq!(h[2].count, 4);
        assert_eq!(h[2].bucket_counts[0], 4);
    }

    #[test]
    fn edges_are_bounded() {
        let mut g = ServiceGraph::default();
        let cfg = TracesConfig::default();
        let fe = test_resource(1, "frontend");
        for i in 0..(MAX_EDGES + 50) {
            let peer =
                std::net::SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 80));
            g.record(
                &edge(Node::Process(fe.clone()), Node::Peer(peer), false),
                &cfg,
                1,
            );
        }
        assert_eq!(g.len(), MAX_EDGES);
        assert_eq!(g.overflowed, 50);
    }
}

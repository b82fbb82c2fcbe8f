//! Kernel network timing and TCP health.
//!
//! Stage: events → **kernel** → spans (attributes), metrics and logs. Input: [`crate::events::net::NetSample`]s
//! decoded from the probes' skb/net/tcp tracepoints. Output: per-span kernel time per layer
//! ([`spans`]), OTLP metrics ([`metrics`]), TCP anomaly log records ([`anomaly`]), and the
//! probe plan ([`plan`]).

pub mod anomaly;
pub mod metrics;
pub mod peers;
pub mod plan;
pub mod spans;

use crate::clock::Clock;
use crate::enrich::ProcessResource;
use crate::export::{LogsSource, MetricsSource};
use crate::metrics::HttpMetrics;
use crate::metrics::graph::ServiceGraph;
use anomaly::{AnomalyDetector, TcpSignal};
use metrics::KernelMetrics;
use otel_ebpf_common::NetKind;
use std::sync::{Arc, Mutex};

/// The anomaly detector's view of a kernel event (resets, connects, accepts).
pub fn tcp_signal(n: &crate::events::net::NetSample) -> Option<TcpSignal> {
    let peer = n.tuple?.remote.ip();
    let pid = n.pid;
    Some(match n.kind {
        NetKind::ResetSent => TcpSignal::Reset {
            peer,
            pid,
            sent: true,
        },
        NetKind::ResetReceived => TcpSignal::Reset {
            peer,
            pid,
            sent: false,
        },
        NetKind::Connect => TcpSignal::Connect {
            peer,
            pid,
            ok: n.connect_result() == Some(crate::events::net::ConnectResult::Ok),
        },
        NetKind::Accepted => TcpSignal::Accepted { peer, pid },
        _ => return None,
    })
}

/// The exporter's logs source: polls `detector` (anomalies of windows that ended), counts them
/// in `kmetrics` (`otel_ebpf.tcp.anomalies`) and turns them into log records under the
/// receiver's own resource (`service.name=otel-ebpf-receiver`, `host.name`).
pub fn logs_source(
    detector: Arc<Mutex<AnomalyDetector>>,
    kmetrics: Arc<Mutex<KernelMetrics>>,
    host_name: &str,
) -> LogsSource {
    let host = Arc::new(ProcessResource {
        pid: 0,
        service_name: otel_ebpf_semconv::value::SDK_NAME.into(),
        executable_name: String::new(),
        attributes: anomaly::receiver_resource(host_name),
        netns: 0,
    });
    Box::new(move |unix_now| {
        let found = detector.lock().ok()?.poll(Clock::monotonic_now_ns());
        if let Ok(mut k) = kmetrics.lock() {
            for a in &found {
                k.record_anomaly(&host, a.kind.name(), unix_now);
            }
        }
        anomaly::logs_batch(&found, &host.attributes, unix_now)
    })
}

/// The exporter's metrics source: HTTP/RPC duration metrics, kernel metrics and the
/// service graph (under the receiver's own resource, `receiver`) in one request.
pub fn metrics_source(
    http: Arc<Mutex<HttpMetrics>>,
    kernel: Arc<Mutex<KernelMetrics>>,
    graph: Arc<Mutex<ServiceGraph>>,
    receiver: crate::attr::Attributes,
) -> MetricsSource {
    Box::new(move |now| {
        // Series of exited processes go out once more (this collection), then are forgotten.
        let h = http.lock().ok().and_then(|mut m| {
            let h = m.collect(now);
            m.prune_exited();
            h
        });
        let k = kernel.lock().ok().and_then(|mut m| {
            let k = m.collect(now);
            m.prune_exited();
            k
        });
        let g = graph.lock().ok().and_then(|g| g.collect(now, &receiver));
        let mut req = match (h, k) {
            (Some(mut h), Some(k)) => {
                h.resource_metrics.extend(k.resource_metrics);
                Some(h)
            }
            (h, k) => h.or(k),
        };
        if let Some(g) = g {
            req.get_or_insert_with(Default::default)
                .resource_metrics
                .push(g);
        }
        req
    })
}

//! Unit tests of HTTP metrics aggregation: exact bucket counts, sums, attributes and limits.

use super::*;
use crate::attr::AttrValue;
use crate::clock::Clock;
use crate::events::Tuple;
use crate::model::MetricData;
use crate::protocol::{ExchangeError, HttpExchange, Side};
use crate::span::{SpanOptions, build_span};

const OFFSET: i128 = 1_700_000_000_000_000_000;
const T0: u64 = 5_000_000_000; // monotonic ns of the first request's start

fn resource(pid: u32) -> Arc<ProcessResource> {
    let name = format!("svc{pid}");
    Arc::new(ProcessResource {
        pid,
        service_name: name.clone(),
        executable_name: name.clone(),
        attributes: {
            let mut a = Attributes::new();
            a.push("service.name", name.clone());
            a
        },
        netns: 1,
    })
}

/// A span of `dur_ns` starting at monotonic `start`.
fn span_at(pid: u32, side: Side, status: Option<u16>, start: u64, dur_ns: u64) -> SpanRecord {
    let ex = HttpExchange {
        pid,
        conn_id: 1,
        side,
        tuple: Some(Tuple {
            local: "10.0.0.1:40000".parse().unwrap(),
            remote: "10.0.0.9:8080".parse().unwrap(),
        }),
        method: "GET".into(),
        target: "/x".into(),
        version: "1.1".into(),
        host: Some("backend:8080".into()),
        user_agent: None,
        status,
        start_ns: start,
        end_ns: start + dur_ns,
        request_body_bytes: 0,
        response_body_bytes: 0,
        error: None,
        grpc: None,
        headers_incomplete: false,
        context: Default::default(),
    };
    build_span(ex, &Clock::with_offset(OFFSET), &SpanOptions::default())
}

fn span(pid: u32, side: Side, status: Option<u16>, dur_ns: u64) -> SpanRecord {
    span_at(pid, side, status, T0, dur_ns)
}

fn unix(mono: u64) -> u64 {
    (OFFSET + mono as i128) as u64
}

fn attrs(a: &Attributes) -> Vec<String> {
    a.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Data points of metric `name` in the `i`-th ResourceMetrics.
fn points(req: &MetricsBatch, i: usize, name: &str) -> Vec<HistogramDataPoint> {
    let rm = &req.resource_metrics[i];
    let Some(m) = rm.metrics.iter().find(|m| m.name == name) else {
        return vec![];
    };
    match &m.data {
        MetricData::Histogram(h) => h.clone(),
        other => panic!("not a histogram: {other:?}"),
    }
}

fn buckets(pairs: &[(usize, u64)]) -> Vec<u64> {
    let mut b = vec![0; 15];
    for &(i, n) in pairs {
        b[i] = n;
    }
    b
}

#[test]
fn nothing_recorded_is_none() {
    assert_eq!(HttpMetrics::new().collect(1), None);
}

#[test]
fn server_histogram_buckets_sum_and_attributes() {
    let mut m = HttpMetrics::new();
    let r = resource(10);
    // 3 ms and exactly 5 ms → bucket 0 (≤ 0.005); 200 ms → bucket 6 (0.1, 0.25];
    // 10 s → bucket 13 (7.5, 10]; 12 s → bucket 14 (+Inf).
    for d in [
        3_000_000,
        5_000_000,
        200_000_000,
        10_000_000_000,
        12_000_000_000,
    ] {
        m.record(&r, &span(10, Side::Server, Some(200), d));
    }
    let now = unix(T0) + 60_000_000_000;
    let req = m.collect(now).unwrap();
    assert_eq!(req.resource_metrics.len(), 1);
    let rm = &req.resource_metrics[0];
    assert_eq!(rm.resource, r.attributes);
    let sm = rm;
    assert_eq!(sm.metrics.len(), 1, "no client metric without client spans");
    assert_eq!(sm.metrics[0].name, "http.server.request.duration");
    assert_eq!(sm.metrics[0].unit, "s");
    let p = points(&req, 0, "http.server.request.duration");
    assert_eq!(p.len(), 1);
    let p = &p[0];
    assert_eq!(p.count, 5);
    assert_eq!(p.sum, 22.208);
    assert_eq!((p.min, p.max), (Some(0.003), Some(12.0)));
    assert_eq!(
        p.bucket_counts,
        buckets(&[(0, 2), (6, 1), (13, 1), (14, 1)])
    );
    assert_eq!(p.explicit_bounds, &HTTP_DURATION_BUCKETS[..]);
    assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (unix(T0), now));
    assert_eq!(
        attrs(&p.attributes),
        [
            "http.request.method=GET",
            "http.response.status_code=200",
            "network.protocol.name=http",
            "network.protocol.version=1.1",
            "url.scheme=http",
        ]
    );
}

#[test]
fn client_series_carry_server_address_and_error_type() {
    let mut m = HttpMetrics::new();
    let r = resource(11);
    m.record(&r, &span(11, Side::Client, Some(503), 50_000_000));
    m.record(&r, &span(11, Side::Client, Some(200), 1_000_000));
    let mut ex = span(11, Side::Client, None, 30_000_000_000);
    // A timed-out exchange.
    ex.exchange.error = Some(ExchangeError::Timeout);
    m.record(&r, &ex);
    let req = m.collect(unix(T0) + 1).unwrap();
    assert!(points(&req, 0, "http.server.request.duration").is_empty());
    let p = points(&req, 0, "http.client.request.duration");
    let got: Vec<_> = p
        .iter()
        .map(|p| (attrs(&p.attributes), p.count, p.bucket_counts.clone()))
        .collect();
    let base = |status: Option<&str>, err: Option<&str>| {
        let mut v = vec!["http.request.method=GET".to_string()];
        v.extend(status.map(|s| format!("http.response.status_code={s}")));
        v.extend(err.map(|e| format!("error.type={e}")));
        v.extend(
            [
                "network.protocol.name=http",
                "network.protocol.version=1.1",
                "url.scheme=http",
            ]
            .map(String::from),
        );
        v.extend([
            "server.address=backend".to_string(),
            "server.port=8080".to_string(),
        ]);
        v
    };
    assert_eq!(
        got,
        [
            (base(None, Some("timeout")), 1, buckets(&[(14, 1)])),
            (base(Some("200"), None), 1, buckets(&[(0, 1)])),
            (base(Some("503"), Some("503")), 1, buckets(&[(3, 1)])),
        ]
    );
}

#[test]
fn cumulative_across_collects_with_fixed_start() {
    let mut m = HttpMetrics::new();
    let r = resource(12);
    m.record(&r, &span(12, Side::Server, Some(200), 1_000_000));
    let a = points(
        &m.collect(unix(T0) + 10).unwrap(),
        0,
        "http.server.request.duration",
    );
    m.record(
        &r,
        &span_at(12, Side::Server, Some(200), T0 + 1_000_000_000, 2_000_000),
    );
    // Earlier span recorded later: it neither moves the start time nor is lost.
    m.record(
        &r,
        &span_at(12, Side::Server, Some(200), T0 - 1_000_000_000, 2_000_000),
    );
    let b = points(
        &m.collect(unix(T0) + 20).unwrap(),
        0,
        "http.server.request.duration",
    );
    assert_eq!((a[0].count, b[0].count), (1, 3));
    assert_eq!(a[0].start_time_unix_nano, b[0].start_time_unix_nano);
    assert_eq!(b[0].sum, 0.005);
    assert_eq!(b[0].time_unix_nano, unix(T0) + 20);
    // A collect stamped before the series start is raised to it.
    let c = points(&m.collect(0).unwrap(), 0, "http.server.request.duration");
    assert_eq!(c[0].time_unix_nano, c[0].start_time_unix_nano);
}

#[test]
fn one_resource_metrics_per_process_ordered_by_pid() {
    let mut m = HttpMetrics::new();
    for pid in [30, 20] {
        m.record(&resource(pid), &span(pid, Side::Server, Some(200), 1));
        m.record(&resource(pid), &span(pid, Side::Client, Some(200), 1));
    }
    let req = m.collect(unix(T0)).unwrap();
    let names: Vec<_> = req
        .resource_metrics
        .iter()
        .map(|rm| attrs(&rm.resource))
        .collect();
    assert_eq!(names, [["service.name=svc20"], ["service.name=svc30"]]);
    for rm in &req.resource_metrics {
        let metric_names: Vec<_> = rm.metrics.iter().map(|m| m.name).collect();
        assert_eq!(
            metric_names,
            [
                "http.server.request.duration",
                "http.client.request.duration"
            ]
        );
    }
    assert_eq!((m.process_count(), m.series_count()), (2, 4));
}

#[test]
fn forget_drops_the_process() {
    let mut m = HttpMetrics::new();
    m.record(&resource(1), &span(1, Side::Server, Some(200), 1));
    m.record(&resource(2), &span(2, Side::Server, Some(200), 1));
    m.forget(1);
    m.forget(99);
    let req = m.collect(unix(T0)).unwrap();
    assert_eq!(req.resource_metrics.len(), 1);
    assert_eq!((m.process_count(), m.series_count()), (1, 1));
    m.forget(2);
    assert_eq!(m.collect(unix(T0)), None);
}

/// The pids of the resources in a request.
fn pids_of(req: &MetricsBatch) -> Vec<i64> {
    req.resource_metrics
        .iter()
        .filter_map(|rm| {
            rm.resource
                .get("service.name")
                .and_then(AttrValue::as_str)
                .and_then(|s| s.trim_start_matches("svc").parse().ok())
        })
        .collect()
}

#[test]
fn exited_process_is_exported_once_more_then_forgotten() {
    let mut m = HttpMetrics::new();
    m.record(&resource(1), &span(1, Side::Server, Some(200), 1));
    m.record(&resource(2), &span(2, Side::Client, Some(200), 1));
    m.process_exited(1);
    m.process_exited(99); // never recorded: ignored
    // A late span of the exited process still counts in its final values.
    m.record(&resource(1), &span(1, Side::Server, Some(200), 1));
    let req = m.collect(unix(T0)).unwrap();
    assert_eq!(pids_of(&req), vec![1, 2]);
    assert_eq!(points(&req, 0, HTTP_SERVER_REQUEST_DURATION)[0].count, 2);
    assert_eq!(m.prune_exited(), 1);
    assert_eq!((m.process_count(), m.series_count()), (1, 1));
    assert_eq!(pids_of(&m.collect(unix(T0)).unwrap()), vec![2]);
    assert_eq!(m.prune_exited(), 0);
}

/// A span released after its process exited (it waited for trace pairing, or the exit came
/// first): exported once, then forgotten too.
#[test]
fn span_released_after_the_exit_is_exported_once_then_forgotten() {
    let mut m = HttpMetrics::new();
    m.process_exited(3); // no series yet
    m.record(&resource(3), &span(3, Side::Client, Some(200), 1));
    assert_eq!(pids_of(&m.collect(unix(T0)).unwrap()), vec![3]);
    m.prune_exited();
    assert_eq!(m.process_count(), 0);
    // Even later: recorded after the first prune, dropped by the second.
    m.process_exited(4);
    let _ = m.collect(unix(T0));
    m.prune_exited();
    m.record(&resource(4), &span(4, Side::Server, Some(200), 1));
    assert_eq!(pids_of(&m.collect(unix(T0)).unwrap()), vec![4]);
    m.prune_exited();
    assert_eq!((m.process_count(), m.series_count()), (0, 0));
}

/// Churn: many short-lived processes, one request each, collected as the exporter does
/// (through the metrics source, which prunes after each collection): nothing stays.
#[test]
fn churn_of_short_lived_processes_leaves_nothing_behind() {
    let http = Arc::new(std::sync::Mutex::new(HttpMetrics::new()));
    let kernel = Arc::new(std::sync::Mutex::new(
        crate::kernel::metrics::KernelMetrics::new(1000, Default::default()),
    ));
    let graph = Arc::new(std::sync::Mutex::new(graph::ServiceGraph::default()));
    let mut source =
        crate::kernel::metrics_source(Arc::clone(&http), kernel, graph, Attributes::new());
    for round in 0..10u32 {
        for i in 0..500 {
            let pid = 1000 + round * 500 + i;
            let mut m = http.lock().unwrap();
            m.record(&resource(pid), &span(pid, Side::Client, Some(200), 1));
            m.process_exited(pid);
        }
        let req = source(unix(T0)).expect("the exited processes' final values");
        assert_eq!(req.resource_metrics.len(), 500);
        let m = http.lock().unwrap();
        assert_eq!((m.process_count(), m.series_count()), (0, 0));
    }
    assert_eq!(source(unix(T0)), None);
}

#[test]
fn overflow_series_past_the_per_process_limit() {
    let limits = MetricsLimits {
        max_series_per_process: 3,
        ..Default::default()
    };
    let mut m = HttpMetrics::with_limits(limits);
    let r = resource(5);
    for status in [200, 201, 202, 203, 200, 204] {
        m.record(&r, &span(5, Side::Server, Some(status), 1_000_000));
    }
    let p = points(
        &m.collect(unix(T0)).unwrap(),
        0,
        "http.server.request.duration",
    );
    let got: Vec<_> = p
        .iter()
        .map(|p| {
            (
                attrs(&p.attributes)
                    .into_iter()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" "),
                p.count,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "http.request.method=GET http.response.status_code=200".to_string(),
                2
            ),
            (
                "http.request.method=GET http.response.status_code=201".to_string(),
                1
            ),
            ("otel.metric.overflow=true".to_string(), 3),
        ]
    );
    assert_eq!(attrs(&p[2].attributes), ["otel.metric.overflow=true"]);
    assert_eq!(p[2].bucket_counts, buckets(&[(0, 3)]));
    assert_eq!(m.series_count(), 2);
}

#[test]
fn overflow_past_the_total_limit_and_freed_by_forget() {
    let limits = MetricsLimits {
        max_total_series: 2,
        ..Default::default()
    };
    let mut m = HttpMetrics::with_limits(limits);
    m.record(&resource(1), &span(1, Side::Server, Some(200), 1));
    m.record(&resource(2), &span(2, Side::Server, Some(200), 1));
    m.record(&resource(3), &span(3, Side::Server, Some(200), 1));
    let req = m.collect(unix(T0)).unwrap();
    let p = points(&req, 2, "http.server.request.duration");
    assert_eq!(attrs(&p[0].attributes), ["otel.metric.overflow=true"]);
    m.forget(1);
    m.record(&resource(4), &span(4, Side::Server, Some(200), 1));
    let p = points(
        &m.collect(unix(T0)).unwrap(),
        2,
        "http.server.request.duration",
    );
    assert_eq!(attrs(&p[0].attributes)[0], "http.request.method=GET");
}

#[test]
fn least_recently_updated_process_is_evicted() {
    let limits = MetricsLimits {
        max_processes: 2,
        ..Default::default()
    };
    let mut m = HttpMetrics::with_limits(limits);
    m.record(&resource(1), &span(1, Side::Server, Some(200), 1));
    m.record(&resource(2), &span(2, Side::Server, Some(200), 1));
    m.record(&resource(1), &span(1, Side::Server, Some(200), 1));
    m.record(&resource(3), &span(3, Side::Server, Some(200), 1)); // evicts pid 2
    let req = m.collect(unix(T0)).unwrap();
    let pids: Vec<_> = req
        .resource_metrics
        .iter()
        .map(|rm| attrs(&rm.resource)[0].clone())
        .collect();
    assert_eq!(pids, ["service.name=svc1", "service.name=svc3"]);
    assert_eq!(m.series_count(), 2);
}

#[test]
fn resource_is_updated() {
    let mut m = HttpMetrics::new();
    m.record(&resource(7), &span(7, Side::Server, Some(200), 1));
    let mut newer = (*resource(7)).clone();
    newer.attributes = Attributes::new();
    newer.attributes.push("service.name", "renamed");
    m.record(&Arc::new(newer), &span(7, Side::Server, Some(200), 1));
    let req = m.collect(unix(T0)).unwrap();
    let r = &req.resource_metrics[0];
    assert_eq!(attrs(&r.resource), ["service.name=renamed"]);
    assert_eq!(points(&req, 0, "http.server.request.duration")[0].count, 2);
}

#[test]
fn exchange_errors_from_build_span_are_series_attributes() {
    let mut m = HttpMetrics::new();
    let ex = HttpExchange {
        pid: 8,
        conn_id: 1,
        side: Side::Server,
        tuple: None,
        method: "BREW".into(),
        target: "/pot".into(),
        version: "1.1".into(),
        host: None,
        user_agent: None,
        status: None,
        start_ns: T0,
        end_ns: T0 + 1,
        request_body_bytes: 0,
        response_body_bytes: 0,
        error: Some(ExchangeError::ProcessExited),
        grpc: None,
        headers_incomplete: false,
        context: Default::default(),
    };
    let s = build_span(ex, &Clock::with_offset(OFFSET), &SpanOptions::default());
    m.record(&resource(8), &s);
    let p = points(
        &m.collect(unix(T0)).unwrap(),
        0,
        "http.server.request.duration",
    );
    assert_eq!(
        attrs(&p[0].attributes),
        [
            "http.request.method=_OTHER",
            "error.type=process_exited",
            "network.protocol.name=http",
            "network.protocol.version=1.1",
            "url.scheme=http",
        ]
    );
}

#[test]
fn grpc_spans_go_to_rpc_call_duration() {
    let mut m = HttpMetrics::new();
    for (side, code) in [(Side::Server, 0), (Side::Server, 0), (Side::Client, 5)] {
        let ex = HttpExchange {
            pid: 9,
            conn_id: 1,
            side,
            tuple: Some(Tuple {
                local: "10.0.0.1:40000".parse().unwrap(),
                remote: "10.0.0.9:50051".parse().unwrap(),
            }),
            method: "POST".into(),
            target: "/pkg.Svc/Get".into(),
            version: "2".into(),
            host: Some("backend:50051".into()),
            user_agent: None,
            status: Some(200),
            start_ns: T0,
            end_ns: T0 + 3_000_000,
            request_body_bytes: 0,
            response_body_bytes: 0,
            error: None,
            grpc: Some(crate::protocol::GrpcCall { status: Some(code) }),
            headers_incomplete: false,
            context: Default::default(),
        };
        let s = build_span(ex, &Clock::with_offset(OFFSET), &SpanOptions::default());
        m.record(&resource(9), &s);
    }
    let req = m.collect(unix(T0) + 1).unwrap();
    assert!(points(&req, 0, "http.server.request.duration").is_empty());
    let server = points(&req, 0, "rpc.server.call.duration");
    assert_eq!(server.len(), 1);
    assert_eq!(server[0].count, 2);
    assert_eq!(
        attrs(&server[0].attributes),
        [
            "rpc.system.name=grpc",
            "rpc.method=pkg.Svc/Get",
            "rpc.response.status_code=OK",
            "network.protocol.name=http",
            "network.protocol.version=2",
        ]
    );
    let client = points(&req, 0, "rpc.client.call.duration");
    assert_eq!(client.len(), 1);
    assert_eq!(
        attrs(&client[0].attributes),
        [
            "rpc.system.name=grpc",
            "rpc.method=pkg.Svc/Get",
            "rpc.response.status_code=NOT_FOUND",
            "error.type=NOT_FOUND",
            "network.protocol.name=http",
            "network.protocol.version=2",
            "server.address=backend",
            "server.port=50051",
        ]
    );
    assert_eq!(client[0].bucket_counts, buckets(&[(0, 1)]));
    assert_eq!(m.series_count(), 2);
}

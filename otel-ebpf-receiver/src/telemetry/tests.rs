//! Tests of the Prometheus exposition (checked by a strict line parser) and of the HTTP
//! endpoints over real sockets.

use super::*;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAMES: [&str; 23] = [
    "otel_ebpf_events_read_total",
    "otel_ebpf_events_lost_kernel_total",
    "otel_ebpf_decode_errors_total",
    "otel_ebpf_parse_errors_total",
    "otel_ebpf_http2_frame_errors_total",
    "otel_ebpf_hpack_errors_total",
    "otel_ebpf_http2_header_blocks_lost_total",
    "otel_ebpf_http2_streams_dropped_total",
    "otel_ebpf_spans_produced_total",
    "otel_ebpf_spans_exported_total",
    "otel_ebpf_spans_dropped_total",
    "otel_ebpf_export_failures_total",
    "otel_ebpf_spans_filtered_total",
    "otel_ebpf_spans_paired_total",
    "otel_ebpf_spans_unpaired_total",
    "otel_ebpf_client_spans_linked_total",
    "otel_ebpf_client_spans_unlinked_total",
    "otel_ebpf_log_records_exported_total",
    "otel_ebpf_log_records_dropped_total",
    "otel_ebpf_routes_overflowed_total",
    "otel_ebpf_spans_sampled_out_total",
    "otel_ebpf_connections_evicted_total",
    "otel_ebpf_kernel_metric_peers_overflowed_total",
];

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    chars.next().is_some_and(ok) && chars.all(|c| ok(c) || c.is_ascii_digit())
}

/// Parsed families: name → (type, help, samples as (labels in order, value)).
type Families = BTreeMap<String, (String, String, Vec<(Vec<(String, String)>, f64)>)>;

/// Reads the text with a Prometheus text-format parser library (`openmetrics-parser`, which
/// resolves label and HELP escapes) and checks that it took every sample line. Panics on
/// anything invalid.
fn parse_families(text: &str) -> Families {
    use openmetrics_parser::{PrometheusValue, prometheus::parse_prometheus};
    assert!(text.ends_with('\n') && !text.contains('\r'), "line endings");
    let parsed = parse_prometheus(text).unwrap_or_else(|e| panic!("{e:?} in\n{text}"));
    let mut out = Families::new();
    let mut sample_count = 0;
    for (name, f) in &parsed.families {
        assert!(is_name(name, true), "{name}");
        let mut samples = vec![];
        for smp in f.iter_samples() {
            let labels = smp.get_labelset().unwrap();
            let labels: Vec<(String, String)> = f
                .get_label_names()
                .iter()
                .map(|k| (k.clone(), labels.get_label_value(k).unwrap().to_string()))
                .collect();
            for (k, _) in &labels {
                assert!(is_name(k, false), "{name}: label {k}");
            }
            let v = match &smp.value {
                PrometheusValue::Counter(c) => c.value.as_f64(),
                PrometheusValue::Gauge(n) => n.as_f64(),
                other => panic!("{name}: unexpected {other:?}"),
            };
            samples.push((labels, v));
        }
        sample_count += samples.len();
        out.insert(
            name.clone(),
            (f.family_type.to_string(), f.help.clone(), samples),
        );
    }
    // Every sample line was read (a line the parser skipped would show here).
    let lines = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(lines, sample_count, "sample lines vs parsed samples");
    out
}

/// `series → value` (series = `name{k="v",...}`, labels sorted by name as the parser gives
/// them, values escaped again) and family types, from
/// [`parse_families`].
fn parse_exposition(text: &str) -> (BTreeMap<String, u64>, BTreeMap<String, String>) {
    let (mut samples, mut types) = (BTreeMap::new(), BTreeMap::new());
    for (name, (kind, help, rows)) in parse_families(text) {
        assert!(!help.is_empty(), "{name} has no HELP");
        types.insert(name.clone(), kind);
        for (labels, v) in rows {
            let mut series = name.clone();
            if !labels.is_empty() {
                let pairs: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
                    .collect();
                series = format!("{series}{{{}}}", pairs.join(","));
            }
            assert!(v >= 0.0 && v.fract() == 0.0, "{series} {v}");
            assert!(
                samples.insert(series.clone(), v as u64).is_none(),
                "duplicate {series}"
            );
        }
    }
    (samples, types)
}

#[test]
fn label_values_and_help_round_trip() {
    let m = SelfMetrics::default();
    let nasty = [
        "/opt/app \"quoted\"/libssl.so.3",
        "C:\\DIR\\FILE.TXT",
        "line one\nline two",
        "all \\ \" \n at once\\",
        "ünïcödé ✓",
        "",
    ];
    for (i, file) in nasty.iter().enumerate() {
        m.tls
            .skipped
            .lock()
            .unwrap()
            .insert(("attach_failed".into(), file.to_string()), i as u64 + 1);
    }
    let text = m.render_prometheus();
    let fams = parse_families(&text);
    let rows = &fams["otel_ebpf_tls_skipped_total"].2;
    assert_eq!(rows.len(), nasty.len());
    for (i, file) in nasty.iter().enumerate() {
        let row = rows
            .iter()
            .find(|(l, _)| l.contains(&("file".to_string(), file.to_string())))
            .unwrap_or_else(|| panic!("{file:?} did not round-trip: {rows:?}"));
        assert!(
            row.0
                .contains(&("reason".to_string(), "attach_failed".to_string()))
        );
        assert_eq!(row.1, i as f64 + 1.0);
    }
    assert_eq!(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    assert_eq!(escape_help("a\\b\"c\nd"), "a\\\\b\"c\\nd");
    assert!(matches!(
        escape_label_value("plain"),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn collector_names_map_to_our_counters() {
    use otel_ebpf_semconv::collector as col;
    let m = SelfMetrics::default();
    SelfMetrics::add(&m.spans_produced, 100);
    SelfMetrics::add(&m.spans_enqueue_failed, 7);
    SelfMetrics::add(&m.spans_exported, 80);
    SelfMetrics::add(&m.spans_send_failed, 5);
    // Before the exporter started: the receiver families only.
    let (samples, types) = parse_exposition(&m.render_prometheus());
    let r = |n: &str| format!("{n}{{receiver=\"ebpf\",transport=\"ebpf\"}}");
    assert_eq!(samples[&r(col::RECEIVER_ACCEPTED_SPANS)], 93);
    assert_eq!(samples[&r(col::RECEIVER_REFUSED_SPANS)], 7);
    assert!(!types.contains_key(col::EXPORTER_SENT_SPANS));
    let queue = Arc::new(std::sync::atomic::AtomicU64::new(12));
    m.exporter
        .set(ExporterGauges {
            id: "otlp",
            queue_size: queue.clone(),
            queue_capacity: 32768,
        })
        .unwrap();
    let (samples, types) = parse_exposition(&m.render_prometheus());
    let e = |n: &str| samples[&format!("{n}{{exporter=\"otlp\"}}")];
    assert_eq!(e(col::EXPORTER_SENT_SPANS), 80);
    assert_eq!(e(col::EXPORTER_SEND_FAILED_SPANS), 5);
    assert_eq!(e(col::EXPORTER_ENQUEUE_FAILED_SPANS), 7);
    assert_eq!(e(col::EXPORTER_QUEUE_SIZE), 12);
    assert_eq!(e(col::EXPORTER_QUEUE_CAPACITY), 32768);
    for c in col::COUNTERS {
        assert_eq!(types[c], "counter", "{c}");
    }
    for g in col::GAUGES {
        assert_eq!(types[g], "gauge", "{g}");
    }
    // Every family the endpoint shows is named in semconv.
    let known: HashSet<String> = otel_ebpf_semconv::prometheus::emitted_series()
        .into_iter()
        .collect();
    for name in types.keys() {
        assert!(known.contains(name), "{name} is not in semconv");
    }
}

#[test]
fn counter_names_are_the_semconv_ones() {
    assert_eq!(NAMES, otel_ebpf_semconv::self_metric::ALL);
}

#[test]
fn kernel_counter_table_matches_the_probes() {
    assert_eq!(
        ALL_KERNEL_COUNTERS.len(),
        otel_ebpf_common::COUNTER_COUNT as usize
    );
    let mut labels = HashSet::new();
    for (i, c) in ALL_KERNEL_COUNTERS.iter().enumerate() {
        assert_eq!(*c as usize, i);
        assert!(
            is_name(kernel_counter_label(*c), false) && labels.insert(kernel_counter_label(*c))
        );
    }
}

#[test]
fn net_plan_is_exposed_one_series_per_point() {
    use crate::kernel::plan::{KernelOffers, POINTS, plan};
    let m = SelfMetrics::default();
    let offers = KernelOffers {
        tracepoints: vec!["net_dev_queue", "sock_send_length"],
        ..Default::default()
    };
    m.set_net_plan(&plan(&offers));
    let (samples, _) = parse_exposition(&m.render_prometheus());
    let rows: Vec<_> = samples
        .iter()
        .filter(|(k, _)| k.starts_with("otel_ebpf_kernel_timing_hook{"))
        .collect();
    assert_eq!(rows.len(), POINTS.len());
    assert_eq!(rows.iter().filter(|(_, v)| **v == 1).count(), 2);
    assert_eq!(
        samples[r#"otel_ebpf_kernel_timing_hook{hook="tracepoint net_dev_queue",point="send: qdisc enqueue"}"#],
        1
    );
}

#[test]
fn exposition_is_valid_and_exact() {
    let m = SelfMetrics::default();
    let (samples, types) = parse_exposition(&m.render_prometheus());
    // Ours, the kernel counters, the attached-files and lingering-files gauges, the exec
    // gate outcomes (7), the analysis cache outcomes (5), the exec timings (8) and the two
    // receiver families.
    assert_eq!(
        samples.len(),
        NAMES.len() + KERNEL_COUNTERS + 2 + 7 + 5 + 8 + 2
    );
    assert!(samples.values().all(|v| *v == 0));
    for name in NAMES {
        assert_eq!(types[name], "counter");
    }
    assert_eq!(types["otel_ebpf_kernel_events_total"], "counter");
    assert_eq!(types["otel_ebpf_tls_skipped_total"], "counter");
    assert_eq!(types["otel_ebpf_tls_attached_files"], "gauge");
    assert_eq!(types["otel_ebpf_kernel_timing_hook"], "gauge");
    assert_eq!(types["otel_ebpf_tls_exec_holds_total"], "counter");
    assert_eq!(types["otel_ebpf_tls_analysis_cache_total"], "counter");
    assert_eq!(types.len(), NAMES.len() + 8 + 2);
    m.tls
        .skipped
        .lock()
        .unwrap()
        .insert(("stripped".into(), "/usr/lib/x\"y/libssl.so.3".into()), 2);

    let fields = [
        &m.events_read,
        &m.events_lost_kernel,
        &m.decode_errors,
        &m.parse_errors,
        &m.http2_frame_errors,
        &m.hpack_errors,
        &m.http2_header_blocks_lost,
        &m.http2_streams_dropped,
        &m.spans_produced,
        &m.spans_exported,
        &m.spans_dropped,
        &m.export_failures,
        &m.spans_filtered,
        &m.spans_paired,
        &m.spans_unpaired,
        &m.client_spans_linked,
        &m.client_spans_unlinked,
        &m.log_records_exported,
        &m.log_records_dropped,
        &m.routes_overflowed,
        &m.spans_sampled_out,
        &m.connections_evicted,
        &m.kernel_metric_peers_overflowed,
    ];
    for (i, f) in fields.iter().enumerate() {
        SelfMetrics::add(f, 1000 + i as u64);
    }
    SelfMetrics::add(&m.events_read, 1);
    SelfMetrics::set(
        &m.kernel_counters[Counter::DataLostRingbufFull as usize],
        77,
    );
    SelfMetrics::set(
        &m.kernel_counters[Counter::PayloadReadFailed as usize],
        u64::MAX,
    );
    let (samples, _) = parse_exposition(&m.render_prometheus());
    for (i, name) in NAMES.iter().enumerate() {
        let want = 1000 + i as u64 + u64::from(i == 0);
        assert_eq!(samples[*name], want, "{name}");
    }
    let k = |l: &str| samples[&format!("otel_ebpf_kernel_events_total{{counter=\"{l}\"}}")];
    assert_eq!(k("data_lost_ringbuf_full"), 77);
    assert_eq!(k("payload_read_failed"), u64::MAX);
    assert_eq!(k("data_events"), 0);
    assert_eq!(
        samples["otel_ebpf_tls_skipped_total{file=\"/usr/lib/x\\\"y/libssl.so.3\",reason=\"stripped\"}"],
        2
    );
}

/// One request over a fresh connection; returns (status, headers lower-cased, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> (u16, BTreeMap<String, String>, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect(&raw);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| l.split_once(": ").unwrap())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn any_port() -> Option<SocketAddr> {
    Some("127.0.0.1:0".parse().unwrap())
}

#[tokio::test]
async fn health_turns_ready() {
    let ready = Arc::new(Readiness::default());
    let h = serve(any_port(), None, Arc::default(), ready.clone())
        .await
        .unwrap();
    let addr = h.health_addr().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(h.metrics_addr(), None);
    let (status, headers, body) = request(addr, "GET", "/").await;
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            r#"{"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""}"#
        )
    );
    assert_eq!(headers["content-type"], "application/json");
    ready.store(true, Ordering::Release);
    let (status, _, body) = request(addr, "GET", "/").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], STATUS_AVAILABLE);
    assert!(v["upSince"].as_str().unwrap().ends_with('Z'), "{body}");
    assert!(v["uptime"].as_str().unwrap().ends_with('s'), "{body}");
    let (status, headers, body) = request(addr, "HEAD", "/").await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(headers["content-length"].parse::<usize>().unwrap() > 60);
    assert_eq!(request(addr, "GET", "/metrics").await.0, 404);
    let (status, headers, _) = request(addr, "POST", "/").await;
    assert_eq!((status, headers["allow"].as_str()), (405, "GET, HEAD"));
    h.shutdown().await;
}

#[tokio::test]
async fn health_is_503_with_the_reason_when_a_component_died() {
    let ready = Arc::new(Readiness::default());
    ready.store(true, std::sync::atomic::Ordering::Release);
    let me = Arc::new(SelfMetrics::default());
    let h = serve(any_port(), None, me.clone(), ready.clone())
        .await
        .unwrap();
    let addr = h.health_addr().unwrap();
    assert_eq!(request(addr, "GET", "/").await.0, 200);
    me.tls
        .set_failure("TLS attacher thread panicked: boom \"x\"");
    let (status, _, body) = request(addr, "GET", "/").await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        r#"{"status":"Server not available","reason":"TLS attacher thread panicked: boom \"x\""}"#
    );
    let me2 = Arc::new(SelfMetrics::default());
    me2.set_failure("export task ended");
    let h2 = serve(any_port(), None, me2, ready).await.unwrap();
    let (status, _, body) = request(h2.health_addr().unwrap(), "GET", "/").await;
    assert_eq!(status, 503);
    assert!(body.contains("export task ended"), "{body}");
    h.shutdown().await;
    h2.shutdown().await;
}

#[tokio::test]
async fn metrics_are_served() {
    let metrics = Arc::new(SelfMetrics::default());
    let h = serve(any_port(), any_port(), metrics.clone(), Arc::default())
        .await
        .unwrap();
    let addr = h.metrics_addr().unwrap();
    assert_ne!(Some(addr), h.health_addr());
    SelfMetrics::add(&metrics.spans_exported, 42);
    SelfMetrics::add(&metrics.spans_filtered, 3);
    SelfMetrics::set(&metrics.kernel_counters[Counter::ConnMapFull as usize], 9);
    let (status, headers, body) = request(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], PROMETHEUS_CONTENT_TYPE);
    assert_eq!(body, metrics.render_prometheus());
    let (samples, _) = parse_exposition(&body);
    assert_eq!(samples["otel_ebpf_spans_exported_total"], 42);
    assert_eq!(samples["otel_ebpf_spans_filtered_total"], 3);
    assert_eq!(
        samples["otel_ebpf_kernel_events_total{counter=\"conn_map_full\"}"],
        9
    );
    assert_eq!(samples["otel_ebpf_events_read_total"], 0);
    assert!(body.contains("\notel_ebpf_spans_exported_total 42\n"));
    // The query string is ignored; other paths are not found.
    assert_eq!(request(addr, "GET", "/metrics?x=1").await.0, 200);
    assert_eq!(request(addr, "GET", "/").await.0, 404);
    // The health endpoint of the same server is independent.
    assert_eq!(request(h.health_addr().unwrap(), "GET", "/").await.0, 503);
    h.shutdown().await;
}

#[tokio::test]
async fn bind_failure_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let e = serve(any_port(), Some(addr), Arc::default(), Arc::default())
        .await
        .unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains(&addr.to_string()) && msg.contains("metrics"),
        "{msg}"
    );
    // The health listener bound first was released with the error.
    let e = serve(Some(addr), None, Arc::default(), Arc::default())
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("health endpoint"), "{e:#}");
}

#[tokio::test]
async fn disabled_endpoints_and_shutdown() {
    let h = serve(None, None, Arc::default(), Arc::default())
        .await
        .unwrap();
    assert_eq!((h.health_addr(), h.metrics_addr()), (None, None));
    h.shutdown().await;

    let h = serve(any_port(), any_port(), Arc::default(), Arc::default())
        .await
        .unwrap();
    let (health, metrics) = (h.health_addr().unwrap(), h.metrics_addr().unwrap());
    // An idle keep-alive connection does not hold shutdown up.
    let mut idle = tokio::net::TcpStream::connect(health).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(idle.read(&mut buf).await.unwrap() > 0);
    let started = std::time::Instant::now();
    h.shutdown().await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        idle.read(&mut buf).await.unwrap_or(0),
        0,
        "connection closed"
    );
    for addr in [health, metrics] {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still listening"
        );
    }
}

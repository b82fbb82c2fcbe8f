//! Tests of the Prometheus exposition (checked by a strict line parser) and of the HTTP
//! endpoints over real sockets.

use super::*;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAMES: [&str; 16] = [
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
    "otel_ebpf_log_records_exported_total",
    "otel_ebpf_log_records_dropped_total",
    "otel_ebpf_connections_evicted_total",
];

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    chars.next().is_some_and(ok) && chars.all(|c| ok(c) || c.is_ascii_digit())
}

/// Parses text exposition format 0.0.4 strictly; returns `series → value` (series = the sample
/// line before the value) and the family types. Panics on anything invalid.
fn parse_exposition(text: &str) -> (BTreeMap<String, u64>, BTreeMap<String, String>) {
    assert!(text.ends_with('\n') && !text.contains('\r'), "line endings");
    let (mut samples, mut types) = (BTreeMap::new(), BTreeMap::new());
    let (mut helps, mut done) = (HashSet::new(), HashSet::<String>::new());
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let (kind, rest) = comment.split_once(' ').expect(line);
            let (name, arg) = rest.split_once(' ').expect(line);
            assert!(is_name(name, true), "{line}");
            if current.as_deref() != Some(name) {
                assert!(
                    done.insert(name.to_string()),
                    "family {name} is split: {line}"
                );
                current = Some(name.to_string());
            }
            match kind {
                "HELP" => {
                    assert!(
                        !arg.contains('\\') && helps.insert(name.to_string()),
                        "{line}"
                    );
                    assert!(
                        !samples.keys().any(|s: &String| s.starts_with(name)),
                        "HELP after samples"
                    );
                }
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg),
                        "{line}"
                    );
                    assert!(
                        types.insert(name.to_string(), arg.to_string()).is_none(),
                        "TYPE twice: {line}"
                    );
                }
                _ => panic!("unknown comment {line}"),
            }
            continue;
        }
        assert!(!line.is_empty() && !line.starts_with('#'), "{line:?}");
        let (series, value) = line.rsplit_once(' ').expect(line);
        let name = series.split('{').next().unwrap();
        assert!(is_name(name, true), "{line}");
        assert_eq!(
            current.as_deref(),
            Some(name),
            "sample outside its family: {line}"
        );
        assert!(
            types.contains_key(name) && helps.contains(name),
            "no HELP/TYPE before {line}"
        );
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let labels = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .expect(line);
            for pair in labels.split(',') {
                let (k, v) = pair.split_once('=').expect(line);
                assert!(is_name(k, false), "{line}");
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .expect(line);
                assert!(!v.contains(['"', '\\', '\n']), "{line}");
            }
        }
        let value: u64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "duplicate series {line}"
        );
    }
    (samples, types)
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
        samples[r#"otel_ebpf_kernel_timing_hook{point="send: qdisc enqueue",hook="tracepoint net_dev_queue"}"#],
        1
    );
}

#[test]
fn exposition_is_valid_and_exact() {
    let m = SelfMetrics::default();
    let (samples, types) = parse_exposition(&m.render_prometheus());
    assert_eq!(samples.len(), NAMES.len() + KERNEL_COUNTERS + 1);
    assert!(samples.values().all(|v| *v == 0));
    for name in NAMES {
        assert_eq!(types[name], "counter");
    }
    assert_eq!(types["otel_ebpf_kernel_events_total"], "counter");
    assert_eq!(types["otel_ebpf_tls_skipped_total"], "counter");
    assert_eq!(types["otel_ebpf_tls_attached_files"], "gauge");
    assert_eq!(types["otel_ebpf_kernel_timing_hook"], "gauge");
    assert_eq!(types.len(), NAMES.len() + 4);
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
        &m.log_records_exported,
        &m.log_records_dropped,
        &m.connections_evicted,
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
        samples["otel_ebpf_tls_skipped_total{reason=\"stripped\",file=\"/usr/lib/x_y/libssl.so.3\"}"],
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
    let ready = Arc::new(AtomicBool::new(false));
    let h = serve(any_port(), None, Arc::default(), ready.clone())
        .await
        .unwrap();
    let addr = h.health_addr().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(h.metrics_addr(), None);
    let (status, headers, body) = request(addr, "GET", "/").await;
    assert_eq!((status, body.as_str()), (503, HEALTH_NOT_READY_BODY));
    assert_eq!(headers["content-type"], "application/json");
    ready.store(true, Ordering::Release);
    let (status, _, body) = request(addr, "GET", "/").await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"status":"Server available"}"#)
    );
    assert_eq!(body, HEALTH_READY_BODY);
    let (status, headers, body) = request(addr, "HEAD", "/").await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(
        headers["content-length"],
        HEALTH_READY_BODY.len().to_string()
    );
    assert_eq!(request(addr, "GET", "/metrics").await.0, 404);
    let (status, headers, _) = request(addr, "POST", "/").await;
    assert_eq!((status, headers["allow"].as_str()), (405, "GET, HEAD"));
    h.shutdown().await;
}

#[tokio::test]
async fn health_is_503_with_the_reason_when_a_component_died() {
    let ready = Arc::new(AtomicBool::new(true));
    let me = Arc::new(SelfMetrics::default());
    let h = serve(any_port(), None, me.clone(), ready).await.unwrap();
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
    let h2 = serve(any_port(), None, me2, Arc::new(AtomicBool::new(true)))
        .await
        .unwrap();
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

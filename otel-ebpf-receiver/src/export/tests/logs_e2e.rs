//! Log records end to end: the [`LogsSource`] polled every flush interval and at shutdown,
//! exported over OTLP/gRPC (`LogsService`) and OTLP/HTTP (`/v1/logs`) to the in-test
//! collectors, retries, permanent errors, partial success, the console sink, and no sink.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::support::*;
use crate::config::ExportersConfig;
use crate::export::console::Console;
use crate::export::{Compression, ExportSettings, Exporter, LogsSource, Protocol};
use crate::telemetry::SelfMetrics;

/// A source that yields `logs_batch` with one record per body, once, then nothing.
fn once(bodies: &'static [&'static str]) -> LogsSource {
    let mut done = false;
    Box::new(move |_| {
        let first = !done;
        done = true;
        first.then(|| logs_batch("otel-ebpf-receiver", bodies))
    })
}

/// Export settings with only a logs endpoint at `endpoint`.
fn logs_settings(endpoint: String, protocol: Protocol) -> ExportSettings {
    let mut s = settings(None);
    s.logs = Some(signal(endpoint, protocol));
    s
}

#[tokio::test]
async fn grpc_logs_every_flush_interval_and_once_more_at_shutdown() {
    let backend = grpc_backend(0, false).await;
    let mut s = logs_settings(format!("http://{}", backend.addr), Protocol::Grpc);
    let sig = s.logs.as_mut().unwrap();
    sig.compression = Compression::Gzip;
    sig.headers.insert("x-tenant", "t1".parse().unwrap());
    s.flush_interval = Duration::from_millis(20);
    let polls = Arc::new(AtomicU64::new(0));
    let p = polls.clone();
    let source: LogsSource = Box::new(move |now_ns| {
        assert!(now_ns > 1_700_000_000_000_000_000);
        let n = p.fetch_add(1, Ordering::SeqCst) + 1;
        // The second poll has nothing; the third an empty request: neither is sent.
        match n {
            2 => None,
            3 => Some(crate::model::LogsBatch::default()),
            _ => Some(logs_batch("otel-ebpf-receiver", &[&*n.to_string()])),
        }
    });
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, Some(source)).unwrap();
    wait_until("3 logs exports", || {
        backend.collector.state().logs.len() >= 3
    })
    .await;
    exp.shutdown().await;
    let n = polls.load(Ordering::SeqCst);
    let expected: Vec<String> = (1..=n)
        .filter(|&i| i != 2 && i != 3)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(log_bodies(&backend.collector), expected);
    assert_eq!(log_counts(&m), (expected.len() as u64, 0, 0));
    let st = backend.collector.state();
    let tenant = st.headers[0].iter().find(|(k, _)| k == "x-tenant");
    assert_eq!(tenant.map(|(_, v)| v.as_str()), Some("t1"));
    assert_eq!(st.traces.len() + st.metrics.len(), 0);
}

#[tokio::test]
async fn grpc_logs_last_poll_at_shutdown() {
    let backend = grpc_backend(0, false).await;
    let s = logs_settings(format!("http://{}", backend.addr), Protocol::Grpc);
    let m = Arc::new(SelfMetrics::default());
    // The flush interval is 1 h: only the shutdown poll runs.
    let exp = Exporter::start(s, m.clone(), None, Some(once(&["a", "b"]))).unwrap();
    exp.shutdown().await;
    assert_eq!(log_bodies(&backend.collector), vec!["a", "b"]);
    assert_eq!(log_counts(&m), (2, 0, 0));
}

#[tokio::test]
async fn grpc_logs_retry_permanent_errors_and_partial_success() {
    // UNAVAILABLE then accepted: retried, exported.
    let backend = grpc_backend(0, false).await;
    backend.collector.state().failures.extend([14]);
    let s = logs_settings(format!("http://{}", backend.addr), Protocol::Grpc);
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, Some(once(&["a", "b", "c"]))).unwrap();
    exp.shutdown().await;
    assert_eq!(log_counts(&m), (3, 0, 1));
    assert_eq!(backend.collector.state().calls, 2);

    // INVALID_ARGUMENT: permanent, every record dropped after one attempt.
    let backend = grpc_backend(0, false).await;
    backend.collector.state().failures.extend([3]);
    let s = logs_settings(format!("http://{}", backend.addr), Protocol::Grpc);
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, Some(once(&["a", "b", "c"]))).unwrap();
    exp.shutdown().await;
    assert_eq!(log_counts(&m), (0, 3, 1));
    assert_eq!(backend.collector.state().calls, 1);

    // Partial success: the rejected records are dropped, the rest exported.
    let backend = grpc_backend(0, false).await;
    backend.collector.state().reject_logs = 2;
    let s = logs_settings(format!("http://{}", backend.addr), Protocol::Grpc);
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, Some(once(&["a", "b", "c"]))).unwrap();
    exp.shutdown().await;
    assert_eq!(log_counts(&m), (1, 2, 0));
}

#[tokio::test]
async fn http_protobuf_posts_logs_to_v1_logs_from_env_settings() {
    let backend = http_backend(0, false).await;
    let env: HashMap<&str, String> = HashMap::from([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", backend.addr),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip".into()),
    ]);
    let mut s =
        ExportSettings::resolve(&ExportersConfig::default(), &|k| env.get(k).cloned()).unwrap();
    s.console = false;
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, Some(once(&["x", "y"]))).unwrap();
    exp.submit(resource(1, "a"), span("s"));
    exp.shutdown().await;
    assert_eq!(log_counts(&m), (2, 0, 0));
    assert_eq!(counts(&m), (1, 0, 0));
    let st = backend.collector.state();
    let mut paths = st.paths.clone();
    paths.sort();
    assert_eq!(paths, vec!["/v1/logs", "/v1/traces"]);
    let logs_call = st.paths.iter().position(|p| p == "/v1/logs").unwrap();
    let header = |name: &str| {
        st.headers[logs_call]
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/x-protobuf")
    );
    assert_eq!(header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(
        st.logs[0],
        crate::export::otlp::logs_request(&logs_batch("otel-ebpf-receiver", &["x", "y"]))
    );
}

#[tokio::test]
async fn http_logs_retryable_permanent_and_partial_success() {
    let url = |b: &Backend| format!("http://{}/v1/logs", b.addr);
    let backend = http_backend(0, false).await;
    backend.collector.state().failures.extend([503, 429]);
    let s = logs_settings(url(&backend), Protocol::HttpProtobuf);
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, Some(once(&["a"]))).unwrap();
    exp.shutdown().await;
    assert_eq!(log_counts(&m), (1, 0, 2));
    assert_eq!(log_bodies(&backend.collector), vec!["a"]);

    let backend = http_backend(0, false).await;
    backend.collector.state().failures.extend([400]);
    let s = logs_settings(url(&backend), Protocol::HttpProtobuf);
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, Some(once(&["a", "b"]))).unwrap();
    exp.shutdown().await;
    assert_eq!(log_counts(&m), (0, 2, 1));
    assert_eq!(backend.collector.state().calls, 1);

    let backend = http_backend(0, false).await;
    backend.collector.state().reject_logs = 1;
    let s = logs_settings(url(&backend), Protocol::HttpProtobuf);
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, Some(once(&["a", "b"]))).unwrap();
    exp.shutdown().await;
    assert_eq!(log_counts(&m), (1, 1, 0));
}

#[tokio::test]
async fn console_only_writes_one_line_per_log_record_and_counts_them_exported() {
    let mut s = settings(None);
    s.console = true;
    let buf = Arc::new(Mutex::new(Vec::new()));
    let m = Arc::new(SelfMetrics::default());
    let console = Some(Console::memory(buf.clone()));
    let source = once(&["250 resets in 10s (peer 10.0.0.2)"]);
    let exp = Exporter::start_with_console(s, m.clone(), None, Some(source), console).unwrap();
    exp.shutdown().await;
    assert_eq!(
        String::from_utf8(buf.lock().unwrap().clone()).unwrap(),
        "1970-01-01T00:00:00.000Z LOG WARN test.event 250 resets in 10s (peer 10.0.0.2) \
         service=otel-ebpf-receiver\n"
    );
    assert_eq!(log_counts(&m), (1, 0, 0));
}

#[tokio::test]
async fn without_any_logs_sink_the_source_is_still_polled_and_nothing_counted() {
    let mut s = settings(None);
    s.flush_interval = Duration::from_millis(10);
    let polls = Arc::new(AtomicU64::new(0));
    let p = polls.clone();
    let source: LogsSource = Box::new(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
        Some(logs_batch("svc", &["r"]))
    });
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, Some(source)).unwrap();
    wait_until("3 polls", || polls.load(Ordering::SeqCst) >= 3).await;
    exp.shutdown().await;
    assert_eq!(log_counts(&m), (0, 0, 0));
}

//! Pipeline behaviour independent of the transport: timer flushes, console sink accounting,
//! console + OTLP together, no sink at all, and start-up errors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::protocol::Side;

use super::support::*;
use crate::export::console::Console;
use crate::export::{Exporter, Protocol};
use crate::telemetry::SelfMetrics;

#[tokio::test]
async fn a_partial_batch_is_sent_after_the_flush_interval() {
    let backend = grpc_backend(0, false).await;
    let mut s = settings(Some(signal(
        format!("http://{}", backend.addr),
        Protocol::Grpc,
    )));
    s.flush_interval = Duration::from_millis(20);
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, None).unwrap();
    exp.submit(resource(1, "a"), span("x"));
    exp.submit(resource(1, "a"), span("y"));
    // No shutdown: only the timer can send this batch of 2 (max_batch_size is 100).
    wait_until("the timed flush", || backend.collector.span_count() == 2).await;
    assert_eq!(backend.collector.state().traces.len(), 1);
    wait_until("accounting", || exp.pending() == 0).await;
    assert_eq!(counts(&m), (2, 0, 0));
    exp.shutdown().await;
}

fn console_span(
    pid: u32,
    ms: u64,
) -> (Arc<crate::enrich::ProcessResource>, crate::span::SpanRecord) {
    let ex = exchange(Side::Server, "127.0.0.1:8080", "127.0.0.1:51234", Some(200));
    let mut sp = record(ex, 1_795_255_200_123_000_000, ms * 1_000_000);
    sp.trace.trace_id = [0x4b; 16];
    sp.trace.span_id = [0x0a; 8];
    (resource(pid, "nginx"), sp)
}

#[tokio::test]
async fn console_only_writes_one_line_per_span_and_counts_them_exported() {
    let mut s = settings(None);
    s.console = true;
    let buf = Arc::new(Mutex::new(Vec::new()));
    let m = Arc::new(SelfMetrics::default());
    let exp =
        Exporter::start_with_console(s, m.clone(), None, None, Some(Console::memory(buf.clone())))
            .unwrap();
    for (pid, ms) in [(1234, 1), (1234, 2), (99, 3)] {
        let (r, sp) = console_span(pid, ms);
        assert!(exp.submit(r, sp));
    }
    exp.shutdown().await;
    assert_eq!(
        String::from_utf8(buf.lock().unwrap().clone()).unwrap(),
        "2026-11-21T10:00:00.123Z SERVER GET /index.html 200 1.000ms 127.0.0.1:51234 -> 127.0.0.1:8080 nginx[1234] trace=4b4b4b4b span=0a0a0a0a parent=-\n\
         2026-11-21T10:00:00.123Z SERVER GET /index.html 200 2.000ms 127.0.0.1:51234 -> 127.0.0.1:8080 nginx[1234] trace=4b4b4b4b span=0a0a0a0a parent=-\n\
         2026-11-21T10:00:00.123Z SERVER GET /index.html 200 3.000ms 127.0.0.1:51234 -> 127.0.0.1:8080 nginx[99] trace=4b4b4b4b span=0a0a0a0a parent=-\n"
    );
    assert_eq!(counts(&m), (3, 0, 0));
}

#[tokio::test]
async fn console_and_otlp_together_count_each_span_once() {
    let backend = http_backend(0, false).await;
    let mut s = settings(Some(signal(
        format!("http://{}/v1/traces", backend.addr),
        Protocol::HttpProtobuf,
    )));
    s.console = true;
    let buf = Arc::new(Mutex::new(Vec::new()));
    let m = Arc::new(SelfMetrics::default());
    let exp =
        Exporter::start_with_console(s, m.clone(), None, None, Some(Console::memory(buf.clone())))
            .unwrap();
    for ms in 1..=4 {
        let (r, sp) = console_span(1, ms);
        exp.submit(r, sp);
    }
    exp.shutdown().await;
    assert_eq!(
        buf.lock().unwrap().iter().filter(|&&b| b == b'\n').count(),
        4
    );
    assert_eq!(backend.collector.span_count(), 4);
    assert_eq!(counts(&m), (4, 0, 0));
}

#[tokio::test]
async fn without_any_sink_spans_are_discarded_uncounted() {
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(settings(None), m.clone(), None, None).unwrap();
    assert!(exp.submit(resource(1, "a"), span("x")));
    exp.shutdown().await;
    assert_eq!(counts(&m), (0, 0, 0));
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let err = Exporter::start(settings(None), Arc::new(SelfMetrics::default()), None, None)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "cannot start exporter: must be called inside a tokio runtime"
    );
}

#[test]
fn exporter_handle_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Exporter>();
}

#[test]
fn settings_debug_output_hides_header_values() {
    let cfg = crate::config::ExportersConfig::default();
    let env = |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://c:4317".to_string()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("authorization=Bearer%20s3cret".to_string()),
        _ => None,
    };
    let s = crate::export::ExportSettings::resolve(&cfg, &env).unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("s3cret"), "{dbg}");
    assert_eq!(s.traces.unwrap().headers["authorization"], "Bearer s3cret");
}

#[tokio::test]
async fn unusable_hand_built_settings_are_rejected_at_start() {
    let mut s = settings(None);
    s.max_batch_size = 0;
    let err = Exporter::start(s, Arc::new(SelfMetrics::default()), None, None)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "cannot start exporter: queue_size and max_batch_size must be at least 1"
    );
    let mut s = settings(None);
    s.flush_interval = Duration::ZERO;
    let err = Exporter::start(s, Arc::new(SelfMetrics::default()), None, None)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "cannot start exporter: flush_interval and metrics_interval must be positive"
    );
}

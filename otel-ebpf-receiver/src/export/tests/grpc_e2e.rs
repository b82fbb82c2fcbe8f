//! OTLP/gRPC end to end: a real tonic collector receives exactly the submitted spans, grouped
//! by process resource; metrics, retries, permanent errors, partial success, mTLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::model::{MetricsBatch, ResourceMetrics};

use super::support::*;
use crate::export::{Compression, Exporter, FileSetting, MetricsSource, Protocol, TlsSettings};
use crate::telemetry::SelfMetrics;

fn names_by_resource(c: &Collector) -> Vec<(String, Vec<String>)> {
    let st = c.state();
    st.traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .map(|rs| {
            let res = rs.resource.as_ref().unwrap();
            let svc = match res.attributes[0]
                .value
                .as_ref()
                .unwrap()
                .value
                .as_ref()
                .unwrap()
            {
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                    s.clone()
                }
                v => panic!("{v:?}"),
            };
            let names = rs.scope_spans.iter().flat_map(|ss| &ss.spans).map(label);
            (svc, names.collect())
        })
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn grpc_receives_exactly_the_spans_grouped_by_resource() {
    let backend = grpc_backend(0, false).await;
    let mut sig = signal(format!("http://{}", backend.addr), Protocol::Grpc);
    sig.headers
        .insert("authorization", "Bearer t0k".parse().unwrap());
    sig.compression = Compression::Gzip;
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(settings(Some(sig)), m.clone(), None, None).unwrap();
    let procs = [
        resource(1, "nginx"),
        resource(2, "redis"),
        resource(3, "curl"),
    ];
    for i in 0..10 {
        assert!(exp.submit(procs[i % 3].clone(), span(&format!("s{i}"))));
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (10, 0, 0));
    assert_eq!(backend.collector.state().traces.len(), 1);
    assert_eq!(
        names_by_resource(&backend.collector),
        vec![
            ("nginx".to_string(), strings(&["s0", "s3", "s6", "s9"])),
            ("redis".to_string(), strings(&["s1", "s4", "s7"])),
            ("curl".to_string(), strings(&["s2", "s5", "s8"])),
        ]
    );
    let st = backend.collector.state();
    let rs = &st.traces[0].resource_spans[1];
    assert_eq!(
        rs.resource,
        Some(crate::export::otlp::resource(&procs[1].attributes))
    );
    assert_eq!(rs.scope_spans.len(), 1);
    assert_eq!(
        rs.scope_spans[0].scope.as_ref().unwrap().name,
        "otel-ebpf-receiver"
    );
    let headers = &st.headers[0];
    assert!(
        headers.contains(&("authorization".into(), "Bearer t0k".into())),
        "{headers:?}"
    );
    assert!(
        headers.contains(&("grpc-encoding".into(), "gzip".into())),
        "{headers:?}"
    );
}

#[tokio::test]
async fn grpc_batches_are_cut_at_max_batch_size() {
    let backend = grpc_backend(0, false).await;
    let mut s = settings(Some(signal(
        format!("http://{}", backend.addr),
        Protocol::Grpc,
    )));
    s.max_batch_size = 4;
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, None).unwrap();
    let r = resource(7, "app");
    for i in 0..10 {
        assert!(exp.submit(r.clone(), span(&format!("s{i}"))));
    }
    exp.shutdown().await;
    let sizes: Vec<usize> = backend
        .collector
        .state()
        .traces
        .iter()
        .map(|t| t.resource_spans[0].scope_spans[0].spans.len())
        .collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    assert_eq!(counts(&m), (10, 0, 0));
}

/// A batch whose one resource has attribute `call` = `call`.
fn metrics_request(call: u64) -> MetricsBatch {
    let mut resource = crate::attr::Attributes::new();
    resource.push("call", call as i64);
    MetricsBatch {
        resource_metrics: vec![ResourceMetrics {
            resource,
            metrics: Vec::new(),
        }],
    }
}

fn call_numbers(c: &Collector) -> Vec<i64> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    c.state()
        .metrics
        .iter()
        .map(|r| {
            let kv = &r.resource_metrics[0].resource.as_ref().unwrap().attributes[0];
            match kv.value.as_ref().unwrap().value {
                Some(Value::IntValue(i)) => i,
                ref v => panic!("{v:?}"),
            }
        })
        .collect()
}

#[tokio::test]
async fn grpc_metrics_every_interval_and_once_more_at_shutdown() {
    let backend = grpc_backend(0, false).await;
    let mut s = settings(None);
    s.metrics = Some(signal(format!("http://{}", backend.addr), Protocol::Grpc));
    s.metrics_interval = Duration::from_millis(20);
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let source: MetricsSource = Box::new(move |now_ns| {
        assert!(now_ns > 1_700_000_000_000_000_000);
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        // The second collection has nothing to export.
        (n != 2).then(|| metrics_request(n))
    });
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), Some(source), None).unwrap();
    wait_until("3 metrics exports", || {
        backend.collector.state().metrics.len() >= 3
    })
    .await;
    exp.shutdown().await;
    let n = calls.load(Ordering::SeqCst);
    let expected: Vec<i64> = (1..=n as i64).filter(|&i| i != 2).collect();
    assert_eq!(call_numbers(&backend.collector), expected);
    assert_eq!(counts(&m), (0, 0, 0));
}

#[tokio::test]
async fn grpc_metrics_last_collection_at_shutdown() {
    let backend = grpc_backend(0, false).await;
    let mut s = settings(None);
    s.metrics = Some(signal(format!("http://{}", backend.addr), Protocol::Grpc));
    let source: MetricsSource = Box::new(|_| Some(metrics_request(42)));
    let exp = Exporter::start(s, Arc::new(SelfMetrics::default()), Some(source), None).unwrap();
    exp.shutdown().await;
    assert_eq!(call_numbers(&backend.collector), vec![42]);
}

/// A collection larger than the collector's 4 MiB message limit (tonic's default, as the
/// Collector's) reaches it in several requests, each within the budget, nothing lost.
#[tokio::test]
async fn grpc_metrics_over_4_mib_are_split_and_all_accepted() {
    use prost::Message;
    let backend = grpc_backend(0, false).await;
    let mut s = settings(None);
    s.metrics = Some(signal(format!("http://{}", backend.addr), Protocol::Grpc));
    let big = MetricsBatch {
        resource_metrics: (0..40_000)
            .map(|i| {
                let mut rm = metrics_request(i).resource_metrics[0].clone();
                rm.resource.push("x".repeat(100), 0i64);
                rm
            })
            .collect(),
    };
    let len = crate::export::otlp::metrics_request(&big).encoded_len();
    assert!(len > 4 << 20, "{len}");
    let mut once = Some(big);
    let source: MetricsSource = Box::new(move |_| once.take());
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), Some(source), None).unwrap();
    exp.shutdown().await;
    let st = backend.collector.state();
    assert!(st.metrics.len() >= 2, "{} requests", st.metrics.len());
    for r in &st.metrics {
        assert!(r.encoded_len() <= crate::export::split::DEFAULT_MAX_METRICS_REQUEST_BYTES);
    }
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let calls: Vec<i64> = st
        .metrics
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .map(
            |rm| match rm.resource.as_ref().unwrap().attributes[0].value.as_ref() {
                Some(v) => match v.value {
                    Some(Value::IntValue(i)) => i,
                    _ => -1,
                },
                None => -1,
            },
        )
        .collect();
    assert_eq!(calls, (0..40_000).collect::<Vec<i64>>());
    assert_eq!(m.export_failures.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn grpc_unavailable_is_retried_until_accepted() {
    let backend = grpc_backend(0, false).await;
    backend.collector.state().failures.extend([14, 8]); // UNAVAILABLE, RESOURCE_EXHAUSTED
    let m = Arc::new(SelfMetrics::default());
    let sig = signal(format!("http://{}", backend.addr), Protocol::Grpc);
    let exp = Exporter::start(settings(Some(sig)), m.clone(), None, None).unwrap();
    for i in 0..5 {
        exp.submit(resource(1, "a"), span(&i.to_string()));
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (5, 0, 2));
    assert_eq!(backend.collector.state().calls, 3);
    assert_eq!(backend.collector.span_count(), 5);
}

#[tokio::test]
async fn grpc_permanent_error_drops_the_batch() {
    let backend = grpc_backend(0, false).await;
    backend.collector.state().failures.extend([3]); // INVALID_ARGUMENT
    let m = Arc::new(SelfMetrics::default());
    let sig = signal(format!("http://{}", backend.addr), Protocol::Grpc);
    let exp = Exporter::start(settings(Some(sig)), m.clone(), None, None).unwrap();
    for i in 0..5 {
        exp.submit(resource(1, "a"), span(&i.to_string()));
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (0, 5, 1));
    assert_eq!(backend.collector.state().calls, 1);
    assert_eq!(backend.collector.span_count(), 0);
}

#[tokio::test]
async fn grpc_partial_success_counts_rejected_spans_as_dropped() {
    let backend = grpc_backend(0, false).await;
    backend.collector.state().reject_spans = 2;
    let m = Arc::new(SelfMetrics::default());
    let sig = signal(format!("http://{}", backend.addr), Protocol::Grpc);
    let exp = Exporter::start(settings(Some(sig)), m.clone(), None, None).unwrap();
    for i in 0..5 {
        exp.submit(resource(1, "a"), span(&i.to_string()));
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (3, 2, 0));
}

fn mtls(client_cert: bool) -> TlsSettings {
    let f = |name: &str, origin: &str| {
        Some(FileSetting {
            path: testdata(name),
            origin: origin.into(),
        })
    };
    TlsSettings {
        certificate: f("ca.pem", "OTEL_EXPORTER_OTLP_CERTIFICATE"),
        client_certificate: client_cert.then(|| f("client.pem", "cc")).flatten(),
        client_key: client_cert.then(|| f("client.key", "ck")).flatten(),
    }
}

#[tokio::test]
async fn grpc_over_mtls_with_custom_ca() {
    let backend = grpc_backend(0, true).await;
    let mut sig = signal(
        format!("https://localhost:{}", backend.addr.port()),
        Protocol::Grpc,
    );
    sig.tls = mtls(true);
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(settings(Some(sig)), m.clone(), None, None).unwrap();
    for i in 0..4 {
        exp.submit(resource(1, "a"), span(&i.to_string()));
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (4, 0, 0));
    assert_eq!(backend.collector.span_count(), 4);
}

#[tokio::test]
async fn grpc_mtls_without_client_certificate_fails_and_drops() {
    let backend = grpc_backend(0, true).await;
    let mut sig = signal(
        format!("https://127.0.0.1:{}", backend.addr.port()),
        Protocol::Grpc,
    );
    sig.tls = mtls(false);
    let mut s = settings(Some(sig));
    s.retry.max_elapsed = Duration::ZERO;
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, None).unwrap();
    for i in 0..4 {
        exp.submit(resource(1, "a"), span(&i.to_string()));
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (0, 4, 1));
    assert_eq!(backend.collector.span_count(), 0);
}

#[tokio::test]
async fn missing_ca_file_fails_at_start() {
    let mut sig = signal("https://127.0.0.1:1", Protocol::Grpc);
    sig.tls.certificate = Some(FileSetting {
        path: "/nonexistent/ca.pem".into(),
        origin: "OTEL_EXPORTER_OTLP_CERTIFICATE".into(),
    });
    let err = Exporter::start(
        settings(Some(sig)),
        Arc::new(SelfMetrics::default()),
        None,
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE: /nonexistent/ca.pem: cannot read: "),
        "{err}"
    );
}

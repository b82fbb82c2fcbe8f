//! OTLP/HTTP (protobuf) end to end against an in-test hyper collector: paths, headers, gzip,
//! retryable and permanent statuses, partial success, HTTPS with mTLS.

use std::collections::HashMap;
use std::sync::Arc;

use super::support::*;
use crate::config::ExportersConfig;
use crate::export::{Compression, ExportSettings, Exporter, FileSetting, Protocol, TlsSettings};
use crate::telemetry::SelfMetrics;

fn header<'a>(c: &'a CollectorState, call: usize, name: &str) -> Option<&'a str> {
    c.headers[call]
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn per_resource_counts(c: &Collector) -> Vec<(u32, usize)> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    c.state()
        .traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .map(|rs| {
            let pid = rs.resource.as_ref().unwrap().attributes[1]
                .value
                .as_ref()
                .unwrap();
            let Some(Value::IntValue(pid)) = pid.value else {
                panic!()
            };
            (pid as u32, rs.scope_spans[0].spans.len())
        })
        .collect()
}

#[tokio::test]
async fn http_protobuf_posts_to_v1_traces_and_v1_metrics_from_env_settings() {
    let backend = http_backend(0, false).await;
    let env: HashMap<&str, String> = HashMap::from([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", backend.addr),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc%3D".into()),
    ]);
    let s = ExportSettings::resolve(&ExportersConfig::default(), &|k| env.get(k).cloned()).unwrap();
    let m = Arc::new(SelfMetrics::default());
    let source = Box::new(|_| Some(crate::model::MetricsBatch::default()));
    let exp = Exporter::start(s, m.clone(), Some(source), None).unwrap();
    let (a, b) = (resource(100, "a"), resource(200, "b"));
    for i in 0..6 {
        assert!(exp.submit(
            if i < 4 { a.clone() } else { b.clone() },
            span(&i.to_string())
        ));
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (6, 0, 0));
    let st = backend.collector.state();
    let mut paths = st.paths.clone();
    paths.sort();
    assert_eq!(paths, vec!["/v1/metrics", "/v1/traces"]);
    assert_eq!((st.traces.len(), st.metrics.len()), (1, 1));
    for call in 0..2 {
        assert_eq!(
            header(&st, call, "content-type"),
            Some("application/x-protobuf")
        );
        assert_eq!(header(&st, call, "x-api-key"), Some("abc="));
        assert_eq!(header(&st, call, "content-encoding"), None);
    }
    drop(st);
    assert_eq!(
        per_resource_counts(&backend.collector),
        vec![(100, 4), (200, 2)]
    );
}

#[tokio::test]
async fn http_gzip_bodies_decode_to_the_submitted_spans() {
    let backend = http_backend(0, false).await;
    let mut sig = signal(
        format!("http://{}/v1/traces", backend.addr),
        Protocol::HttpProtobuf,
    );
    sig.compression = Compression::Gzip;
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(settings(Some(sig)), m.clone(), None, None).unwrap();
    let sent: Vec<_> = (0..50).map(|i| span(&format!("span-{i}"))).collect();
    for s in &sent {
        exp.submit(resource(1, "a"), s.clone());
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (50, 0, 0));
    let st = backend.collector.state();
    assert_eq!(header(&st, 0, "content-encoding"), Some("gzip"));
    assert_eq!(st.traces.len(), 1);
    let got: Vec<String> = st.traces[0].resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(label)
        .collect();
    let want: Vec<String> = (0..50).map(|i| format!("span-{i}")).collect();
    assert_eq!(got, want);
    assert_eq!(sent.len(), 50);
}

#[tokio::test]
async fn http_retryable_statuses_are_retried() {
    let backend = http_backend(0, false).await;
    backend
        .collector
        .state()
        .failures
        .extend([503, 429, 502, 504]);
    let sig = signal(
        format!("http://{}/v1/traces", backend.addr),
        Protocol::HttpProtobuf,
    );
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(settings(Some(sig)), m.clone(), None, None).unwrap();
    for i in 0..5 {
        exp.submit(resource(1, "a"), span(&i.to_string()));
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (5, 0, 4));
    assert_eq!(backend.collector.state().calls, 5);
    assert_eq!(backend.collector.span_count(), 5);
}

#[tokio::test]
async fn http_400_is_permanent() {
    let backend = http_backend(0, false).await;
    backend.collector.state().failures.extend([400]);
    let sig = signal(
        format!("http://{}/v1/traces", backend.addr),
        Protocol::HttpProtobuf,
    );
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(settings(Some(sig)), m.clone(), None, None).unwrap();
    for i in 0..5 {
        exp.submit(resource(1, "a"), span(&i.to_string()));
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (0, 5, 1));
    assert_eq!(backend.collector.state().calls, 1);
}

#[tokio::test]
async fn http_partial_success_counts_rejected_spans_as_dropped() {
    let backend = http_backend(0, false).await;
    backend.collector.state().reject_spans = 1;
    let sig = signal(
        format!("http://{}/v1/traces", backend.addr),
        Protocol::HttpProtobuf,
    );
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(settings(Some(sig)), m.clone(), None, None).unwrap();
    for i in 0..5 {
        exp.submit(resource(1, "a"), span(&i.to_string()));
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (4, 1, 0));
}

#[tokio::test]
async fn https_with_custom_ca_and_client_certificate() {
    let backend = http_backend(0, true).await;
    let url = format!("https://localhost:{}/v1/traces", backend.addr.port());
    let mut sig = signal(url, Protocol::HttpProtobuf);
    let f = |name: &str| {
        Some(FileSetting {
            path: testdata(name),
            origin: name.into(),
        })
    };
    sig.tls = TlsSettings {
        certificate: f("ca.pem"),
        client_certificate: f("client.pem"),
        client_key: f("client.key"),
    };
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(settings(Some(sig)), m.clone(), None, None).unwrap();
    for i in 0..3 {
        exp.submit(resource(1, "a"), span(&i.to_string()));
    }
    exp.shutdown().await;
    assert_eq!(counts(&m), (3, 0, 0));
    assert_eq!(backend.collector.span_count(), 3);
}

#[tokio::test]
async fn https_without_the_custom_ca_fails_verification() {
    let backend = http_backend(0, true).await;
    let url = format!("https://127.0.0.1:{}/v1/traces", backend.addr.port());
    let mut sig = signal(url, Protocol::HttpProtobuf);
    let f = |name: &str| {
        Some(FileSetting {
            path: testdata(name),
            origin: name.into(),
        })
    };
    // The server certificate is trusted only through ca.pem; here the client trusts the
    // server certificate itself as a CA, which does not verify.
    sig.tls = TlsSettings {
        certificate: f("server.pem"),
        client_certificate: f("client.pem"),
        client_key: f("client.key"),
    };
    let mut s = settings(Some(sig));
    s.retry.max_elapsed = std::time::Duration::ZERO;
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, None).unwrap();
    exp.submit(resource(1, "a"), span("x"));
    exp.shutdown().await;
    assert_eq!(counts(&m), (0, 1, 1));
    assert_eq!(backend.collector.state().calls, 0);
}

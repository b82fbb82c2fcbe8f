//! Test support for the export stage: span/resource/log builders, settings, and in-test OTLP
//! backends — a tonic gRPC collector (`TraceService`, `MetricsService`, `LogsService`) and a
//! hyper HTTP collector (`/v1/traces`, `/v1/metrics`, `/v1/logs`, gzip), both optionally over
//! TLS with the test PKI in
//! `src/export/testdata/` (CA, `localhost`/127.0.0.1 server cert, client cert; ECDSA P-256,
//! valid until 2126; test-only keys).

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::{Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsServiceServer;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::attr::Attributes;
use crate::clock::Clock;
use crate::enrich::ProcessResource;
use crate::events::Tuple;
use crate::export::{
    Compression, ExportSettings, OtlpSignalSettings, Protocol, RetrySettings, TlsSettings,
};
use crate::protocol::{HttpExchange, Side};
use crate::span::{SpanOptions, SpanRecord, build_span};
use crate::telemetry::SelfMetrics;

mod logs;
pub use logs::*;

pub fn kv_s(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// Resource of process `pid` named `service`.
pub fn resource(pid: u32, service: &str) -> Arc<ProcessResource> {
    let mut attributes = Attributes::new();
    attributes.push("service.name", service.to_string());
    attributes.push("process.pid", i64::from(pid));
    Arc::new(ProcessResource {
        pid,
        service_name: service.into(),
        executable_name: service.into(),
        attributes,
        netns: 1,
    })
}

/// A `GET /index.html` exchange on `local` ↔ `remote` (`"ip:port"`), HTTP/1.1, `Host:
/// shop.example`, seen from `side`.
pub fn exchange(side: Side, local: &str, remote: &str, status: Option<u16>) -> HttpExchange {
    HttpExchange {
        pid: 1,
        conn_id: 1,
        side,
        tuple: Some(Tuple {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }),
        method: "GET".into(),
        target: "/index.html".into(),
        version: "1.1".into(),
        host: None,
        user_agent: None,
        status,
        start_ns: 0,
        end_ns: 0,
        request_body_bytes: 0,
        response_body_bytes: 0,
        error: None,
        grpc: None,
        headers_incomplete: false,
        context: Default::default(),
    }
}

/// The span of `ex` starting at `start` (Unix ns) lasting `dur` ns.
pub fn record(ex: HttpExchange, start: u64, dur: u64) -> SpanRecord {
    let mut s = build_span(ex, &Clock::with_offset(0), &SpanOptions::default());
    s.start_unix_ns = start;
    s.end_unix_ns = start + dur;
    s
}

/// A SERVER span `GET /<label>` (its label comes back from [`label`]).
pub fn span(label: &str) -> SpanRecord {
    let mut ex = exchange(Side::Server, "127.0.0.1:8080", "127.0.0.1:40000", Some(200));
    ex.target = format!("/{label}");
    record(ex, 1_000, 1_000)
}

/// The label a [`span`] was made with (its `url.path` without the leading `/`).
pub fn label(s: &Span) -> String {
    s.attributes
        .iter()
        .find(|kv| kv.key == "url.path")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(p) => Some(p.trim_start_matches('/').to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Path of a file in `src/export/testdata/`.
pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src/export/testdata")).join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(testdata(name)).unwrap()
}

/// Settings for one OTLP signal with defaults suited to tests.
pub fn signal(endpoint: impl Into<String>, protocol: Protocol) -> OtlpSignalSettings {
    OtlpSignalSettings {
        endpoint: endpoint.into(),
        protocol,
        headers: Default::default(),
        timeout: Duration::from_secs(5),
        compression: Compression::None,
        tls: TlsSettings::default(),
    }
}

/// Export settings: no console, flush only on full batches or shutdown (1 h interval), fast
/// retries with a 10 s budget.
pub fn settings(traces: Option<OtlpSignalSettings>) -> ExportSettings {
    ExportSettings {
        traces,
        metrics: None,
        logs: None,
        console: false,
        flush_interval: Duration::from_secs(3600),
        queue_size: 1000,
        max_batch_size: 100,
        metrics_interval: Duration::from_secs(3600),
        max_metrics_request_bytes: crate::export::split::DEFAULT_MAX_METRICS_REQUEST_BYTES,
        retry: RetrySettings {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            max_elapsed: Duration::from_secs(10),
        },
        shutdown_timeout: Duration::from_secs(10),
    }
}

/// (exported, dropped, failures) self-metrics.
pub fn counts(m: &SelfMetrics) -> (u64, u64, u64) {
    (
        m.spans_exported.load(Ordering::Relaxed),
        m.spans_dropped.load(Ordering::Relaxed),
        m.export_failures.load(Ordering::Relaxed),
    )
}

/// Polls `cond` every 5 ms; panics after 10 s (a hang guard, not a performance assertion).
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A free port on 127.0.0.1 with nothing listening on it (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a collector received and how it answers.
#[derive(Default)]
pub struct CollectorState {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    /// Every export call, including those answered with an error.
    pub calls: u64,
    /// Request headers / metadata of every call, lower-case names.
    pub headers: Vec<Vec<(String, String)>>,
    /// HTTP: request paths.
    pub paths: Vec<String>,
    /// Errors to answer the next calls with: gRPC code or HTTP status.
    pub failures: VecDeque<u16>,
    /// Spans to reject (partial success) in each trace response.
    pub reject_spans: i64,
    /// Log records to reject (partial success) in each logs response.
    pub reject_logs: i64,
}

/// Shared handle to a collector's state.
#[derive(Clone, Default)]
pub struct Collector(pub Arc<Mutex<CollectorState>>);

impl Collector {
    pub fn state(&self) -> std::sync::MutexGuard<'_, CollectorState> {
        self.0.lock().unwrap()
    }
    /// Spans received, in arrival order.
    pub fn span_count(&self) -> usize {
        let s = self.state();
        s.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum()
    }
    fn record(&self, headers: Vec<(String, String)>) -> Option<u16> {
        let mut s = self.state();
        s.calls += 1;
        s.headers.push(headers);
        s.failures.pop_front()
    }
    fn trace_response(&self) -> ExportTraceServiceResponse {
        let reject = self.state().reject_spans;
        ExportTraceServiceResponse {
            partial_success: (reject > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: reject,
                error_message: "too old".into(),
            }),
        }
    }
}

fn metadata_pairs(m: &tonic::metadata::MetadataMap) -> Vec<(String, String)> {
    m.clone()
        .into_headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if let Some(code) = self.record(metadata_pairs(req.metadata())) {
            return Err(tonic::Status::new(
                tonic::Code::from_i32(code as i32),
                "scripted failure",
            ));
        }
        self.state().traces.push(req.into_inner());
        Ok(tonic::Response::new(self.trace_response()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        if let Some(code) = self.record(metadata_pairs(req.metadata())) {
            return Err(tonic::Status::new(
                tonic::Code::from_i32(code as i32),
                "scripted failure",
            ));
        }
        self.state().metrics.push(req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// The OTLP gRPC services on one server, routed by path (tonic's router needs axum).
#[derive(Clone)]
struct OtlpServices {
    traces: TraceServiceServer<Collector>,
    metrics: MetricsServiceServer<Collector>,
    logs: LogsServiceServer<Collector>,
}

impl Service<Request<tonic::body::Body>> for OtlpServices {
    type Response = Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        let path = req.uri().path();
        if path.starts_with("/opentelemetry.proto.collector.metrics.") {
            self.metrics.call(req)
        } else if path.starts_with("/opentelemetry.proto.collector.logs.") {
            self.logs.call(req)
        } else {
            self.traces.call(req)
        }
    }
}

/// A running in-test backend; stops when dropped.
pub struct Backend {
    pub addr: SocketAddr,
    pub collector: Collector,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen(port: u16) -> TcpListener {
    TcpListener::bind(("127.0.0.1", port)).await.unwrap()
}

/// Starts a tonic OTLP gRPC collector on 127.0.0.1:`port` (0: any). With `tls`, it serves
/// the test server certificate and requires a client certificate signed by the test CA.
pub async fn grpc_backend(port: u16, tls: bool) -> Backend {
    let listener = listen(port).await;
    let addr = listener.local_addr().unwrap();
    let collector = Collector::default();
    let mut builder = Server::builder();
    if tls {
        let cfg = ServerTlsConfig::new()
            .identity(Identity::from_pem(pem("server.pem"), pem("server.key")))
            .client_ca_root(Certificate::from_pem(pem("ca.pem")));
        builder = builder.tls_config(cfg).unwrap();
    }
    let svc = OtlpServices {
        traces: TraceServiceServer::new(collector.clone())
            .accept_compressed(CompressionEncoding::Gzip),
        metrics: MetricsServiceServer::new(collector.clone())
            .accept_compressed(CompressionEncoding::Gzip),
        logs: LogsServiceServer::new(collector.clone())
            .accept_compressed(CompressionEncoding::Gzip),
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let task = tokio::spawn(async move {
        builder.serve_with_incoming(svc, incoming).await.unwrap();
    });
    Backend {
        addr,
        collector,
        task,
    }
}

async fn handle_http(
    collector: Collector,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let mut raw = body.collect().await.unwrap().to_bytes().to_vec();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    if parts
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip")
    {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        raw = out;
    }
    collector.state().paths.push(parts.uri.path().to_string());
    let reply = |status: u16, body: Vec<u8>| {
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/x-protobuf")
            .header("retry-after", "0")
            .body(Full::new(Bytes::from(body)))
            .unwrap())
    };
    if let Some(status) = collector.record(headers) {
        return reply(status, Vec::new());
    }
    match parts.uri.path() {
        "/v1/traces" => {
            collector
                .state()
                .traces
                .push(ExportTraceServiceRequest::decode(&raw[..]).unwrap());
            reply(200, collector.trace_response().encode_to_vec())
        }
        "/v1/metrics" => {
            collector
                .state()
                .metrics
                .push(ExportMetricsServiceRequest::decode(&raw[..]).unwrap());
            reply(200, ExportMetricsServiceResponse::default().encode_to_vec())
        }
        "/v1/logs" => {
            collector
                .state()
                .logs
                .push(ExportLogsServiceRequest::decode(&raw[..]).unwrap());
            reply(200, collector.logs_response().encode_to_vec())
        }
        _ => Ok(Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::default())
            .unwrap()),
    }
}

fn server_tls() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&pem("ca.pem")).unwrap())
        .unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(&pem("server.pem")).unwrap()],
            PrivateKeyDer::from_pem_slice(&pem("server.key")).unwrap(),
        )
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// Starts a hyper OTLP/HTTP collector on 127.0.0.1:`port` (0: any); with `tls`, HTTPS with
/// client-certificate verification against the test CA.
pub async fn http_backend(port: u16, tls: bool) -> Backend {
    let listener = listen(port).await;
    let addr = listener.local_addr().unwrap();
    let collector = Collector::default();
    let c = collector.clone();
    let acceptor = tls.then(server_tls);
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let c = c.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle_http(c.clone(), req));
                let http = hyper::server::conn::http1::Builder::new();
                let _ = match acceptor {
                    Some(a) => match a.accept(stream).await {
                        Ok(s) => {
                            http.serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                                .await
                        }
                        Err(_) => return,
                    },
                    None => {
                        http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await
                    }
                };
            });
        }
    });
    Backend {
        addr,
        collector,
        task,
    }
}

//! A real OTLP/gRPC receiver for tests: stores every span, metric and log record it is sent.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
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
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A received span, flattened: attributes and resource attributes as strings.
#[derive(Clone, Debug)]
pub struct Span {
    pub name: String,
    /// 2 = SERVER, 3 = CLIENT (OTLP SpanKind).
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    /// 0 unset, 1 ok, 2 error.
    pub status: i32,
    pub attrs: BTreeMap<String, String>,
    pub resource: BTreeMap<String, String>,
    /// Trace id (16 bytes).
    pub trace_id: Vec<u8>,
    /// Span id (8 bytes).
    pub span_id: Vec<u8>,
    /// Parent span id (8 bytes), empty for a root span.
    pub parent_span_id: Vec<u8>,
    /// W3C `tracestate`.
    pub trace_state: String,
    /// OTLP `Span.flags`.
    pub flags: u32,
}

impl Span {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
    pub fn is_server(&self) -> bool {
        self.kind == 2
    }
    pub fn is_client(&self) -> bool {
        self.kind == 3
    }
}

fn value(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn flatten(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value(&kv.value)))
        .collect()
}

#[derive(Default)]
struct Store {
    /// Counting mode (benchmarks): spans are counted in `counts`, not stored.
    count_only: bool,
    /// (OTLP span kind, `server.port`) → spans received.
    counts: BTreeMap<(i32, i64), u64>,
    spans: Vec<Span>,
    metrics: Vec<ExportMetricsServiceRequest>,
    logs: Vec<ExportLogsServiceRequest>,
    requests: usize,
}

#[derive(Clone, Default)]
struct Svc(Arc<Mutex<Store>>);

#[tonic::async_trait]
impl TraceService for Svc {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut st = self.0.lock().unwrap();
        st.requests += 1;
        if st.count_only {
            let req = req.into_inner();
            for s in req
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
            {
                let port = s
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "server.port")
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        Value::IntValue(i) => Some(*i),
                        _ => None,
                    })
                    .unwrap_or(-1);
                *st.counts.entry((s.kind, port)).or_default() += 1;
            }
            return Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }));
        }
        for rs in req.into_inner().resource_spans {
            let resource = flatten(&rs.resource.map(|r| r.attributes).unwrap_or_default());
            for ss in rs.scope_spans {
                for s in ss.spans {
                    st.spans.push(Span {
                        name: s.name,
                        kind: s.kind,
                        start_ns: s.start_time_unix_nano,
                        end_ns: s.end_time_unix_nano,
                        status: s.status.map(|x| x.code).unwrap_or(0),
                        attrs: flatten(&s.attributes),
                        resource: resource.clone(),
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent_span_id: s.parent_span_id,
                        trace_state: s.trace_state,
                        flags: s.flags,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Svc {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().metrics.push(req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Svc {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().logs.push(req.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

/// OTLP/gRPC sink on 127.0.0.1 (its own runtime thread).
pub struct OtlpSink {
    pub addr: SocketAddr,
    svc: Svc,
    _rt: tokio::runtime::Runtime,
}

impl OtlpSink {
    pub fn start() -> Self {
        Self::start_with(false, 0)
    }

    /// A sink on 127.0.0.1:`port` (e.g. a backend that comes back where it was down).
    pub fn start_at(port: u16) -> Self {
        Self::start_with(false, port)
    }

    /// A sink that only counts spans by (kind, `server.port`) (see [`OtlpSink::count`]);
    /// for benchmarks with millions of spans.
    pub fn start_counting() -> Self {
        Self::start_with(true, 0)
    }

    fn start_with(count_only: bool, port: u16) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let svc = Svc::default();
        svc.0.lock().unwrap().count_only = count_only;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let s = svc.clone();
        rt.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(
                    TraceServiceServer::new(s.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .add_service(
                    MetricsServiceServer::new(s.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .add_service(
                    LogsServiceServer::new(s)
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        Self { addr, svc, _rt: rt }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Spans received so far that match `pred`.
    pub fn spans(&self, pred: impl Fn(&Span) -> bool) -> Vec<Span> {
        self.svc
            .0
            .lock()
            .unwrap()
            .spans
            .iter()
            .filter(|s| pred(s))
            .cloned()
            .collect()
    }

    /// Spans of OTLP `kind` (2 SERVER, 3 CLIENT) with `server.port` = `port` counted so far
    /// (counting sinks only).
    pub fn count(&self, kind: i32, port: u16) -> u64 {
        let st = self.svc.0.lock().unwrap();
        st.counts.get(&(kind, port as i64)).copied().unwrap_or(0)
    }

    /// Metric export requests received so far.
    pub fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.svc.0.lock().unwrap().metrics.clone()
    }

    /// Log export requests received so far (TCP anomaly log records).
    pub fn logs(&self) -> Vec<ExportLogsServiceRequest> {
        self.svc.0.lock().unwrap().logs.clone()
    }

    /// Waits until `n` matching spans arrived (or `timeout`), then waits `settle` more so
    /// that extra (wrong) spans would show up too; returns the matching spans.
    pub fn wait_spans(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Span) -> bool,
    ) -> Vec<Span> {
        let t0 = Instant::now();
        while self.spans(&pred).len() < n && t0.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(1500));
        self.spans(&pred)
    }
}

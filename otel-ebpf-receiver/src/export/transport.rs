//! Transport selection: one OTLP exporter per signal, gRPC or HTTP/protobuf.
//!
//! Stage: inside **export**. Input: resolved [`OtlpSignalSettings`]. Output: a [`Transport`]
//! whose `export_*` methods make exactly one attempt and return the number of items the backend
//! rejected (partial success) or an [`AttemptError`]. Retrying is the caller's job (`retry`).

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use super::grpc::GrpcTransport;
use super::http::HttpTransport;
use super::retry::AttemptError;
use super::{ExportError, OtlpSignalSettings, Protocol, Signal};

/// An OTLP client for one signal (boxed: the HTTP client is several hundred bytes).
pub(crate) enum Transport {
    Grpc(Box<GrpcTransport>),
    Http(Box<HttpTransport>),
}

impl Transport {
    /// Builds the client for `signal`; reads TLS files. Must run inside a tokio runtime.
    pub fn new(s: &OtlpSignalSettings, signal: Signal) -> Result<Self, ExportError> {
        let origin = match signal {
            Signal::Traces => "traces exporter",
            Signal::Metrics => "metrics exporter",
            Signal::Logs => "logs exporter",
        };
        Ok(match s.protocol {
            Protocol::Grpc => Transport::Grpc(Box::new(GrpcTransport::new(s, origin)?)),
            Protocol::HttpProtobuf => Transport::Http(Box::new(HttpTransport::new(s, origin)?)),
        })
    }

    /// One attempt to export spans; `Ok(rejected spans)`.
    /// `body` is an encoded `ExportTraceServiceRequest` (see `encode`).
    pub async fn export_traces(&self, body: &Bytes) -> Result<u64, AttemptError> {
        match self {
            Transport::Grpc(t) => t.export_traces(body).await,
            Transport::Http(t) => t.export_traces(body).await,
        }
    }

    /// One attempt to export metrics; `Ok(rejected data points)`.
    pub async fn export_metrics(
        &self,
        req: &ExportMetricsServiceRequest,
    ) -> Result<u64, AttemptError> {
        match self {
            Transport::Grpc(t) => t.export_metrics(req).await,
            Transport::Http(t) => t.export_metrics(req).await,
        }
    }

    /// One attempt to export log records; `Ok(rejected log records)`.
    pub async fn export_logs(&self, req: &ExportLogsServiceRequest) -> Result<u64, AttemptError> {
        match self {
            Transport::Grpc(t) => t.export_logs(req).await,
            Transport::Http(t) => t.export_logs(req).await,
        }
    }
}

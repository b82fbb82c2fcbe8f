//! OTLP/gRPC transport (tonic).
//!
//! Stage: a transport of **export**. Input: [`OtlpSignalSettings`] with `Protocol::Grpc` and
//! export requests. Output: `Export` unary calls on `TraceService` / `MetricsService` /
//! `LogsService`, with the
//! configured metadata (headers), gzip, per-request timeout and TLS for `https://` endpoints.
//! Result: the number of items the backend rejected (partial success), or an
//! [`AttemptError`] classified per the OTLP spec "OTLP/gRPC Response"
//! (<https://opentelemetry.io/docs/specs/otlp/#failures>): retryable are CANCELLED,
//! DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS and
//! transport errors; all other codes are permanent.
//! Limits: the channel connects lazily and reconnects on its own; `-bin` headers are rejected.

use std::str::FromStr;

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use hyper::http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::Signal;
use super::reply::{self, Reply, rejected};
use super::retry::AttemptError;
use super::tls::TlsMaterial;
use super::{Compression, ExportError, OtlpSignalSettings};

/// Where headers come from, for errors (they are merged from several sources).
const HEADERS_ORIGIN: &str =
    "OTEL_EXPORTER_OTLP_[TRACES_|METRICS_|LOGS_]HEADERS or exporters.otlp.headers";

/// Decoded-message size limit for responses (bytes).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A lazily connected gRPC channel plus per-request settings.
pub(crate) struct GrpcTransport {
    channel: Channel,
    metadata: MetadataMap,
    gzip: bool,
}

impl GrpcTransport {
    /// Builds the channel (no connection yet). TLS files are read and checked here.
    pub fn new(s: &OtlpSignalSettings, origin: &str) -> Result<Self, ExportError> {
        let start = |e: &dyn std::fmt::Display| {
            ExportError::Start(format!("{origin}: {}: {e}", s.endpoint))
        };
        let tls = TlsMaterial::load(&s.tls)?;
        let mut endpoint = Endpoint::from_str(&s.endpoint)
            .map_err(|e| start(&e))?
            .timeout(s.timeout)
            .connect_timeout(s.timeout)
            .user_agent(concat!("otel-ebpf-receiver/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| start(&e))?;
        if s.endpoint.starts_with("https://") {
            endpoint = endpoint
                .tls_config(tls.tonic_config())
                .map_err(|e| start(&e))?;
        }
        let mut metadata = MetadataMap::new();
        for (name, value) in &s.headers {
            let key = AsciiMetadataKey::from_str(name.as_str()).map_err(|_| {
                ExportError::InvalidSetting {
                    name: HEADERS_ORIGIN.into(),
                    value: name.to_string(),
                    reason: "not usable as gRPC metadata (binary -bin keys are unsupported)".into(),
                }
            })?;
            let value = AsciiMetadataValue::try_from(value.as_bytes()).map_err(|_| {
                ExportError::InvalidSetting {
                    name: HEADERS_ORIGIN.into(),
                    value: name.to_string(),
                    reason: "value is not printable ASCII".into(),
                }
            })?;
            metadata.insert(key, value);
        }
        Ok(Self {
            channel: endpoint.connect_lazy(),
            metadata,
            gzip: s.compression == Compression::Gzip,
        })
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        *req.metadata_mut() = self.metadata.clone();
        req
    }

    /// One unary `Export` call with an already encoded request body; returns the response.
    async fn call<R: Message + Default + Send + 'static>(
        &self,
        path: &'static str,
        body: &Bytes,
    ) -> Result<R, AttemptError> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        if self.gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        grpc.ready()
            .await
            .map_err(|e| classify(Status::unavailable(format!("channel not ready: {e}"))))?;
        let resp = grpc
            .unary(
                self.request(body.clone()),
                PathAndQuery::from_static(path),
                EncodedCodec::<R>::default(),
            )
            .await
            .map_err(classify)?;
        Ok(resp.into_inner())
    }

    /// Sends one encoded `ExportTraceServiceRequest`; returns the number of rejected spans.
    pub async fn export_traces(&self, body: &Bytes) -> Result<u64, AttemptError> {
        let resp: ExportTraceServiceResponse = self.call(TRACES_PATH, body).await?;
        Ok(resp.partial_success.map_or(0, |p| {
            rejected(p.rejected_spans, &p.error_message, Signal::Traces)
        }))
    }

    /// Sends one metrics request; returns the number of rejected data points.
    pub async fn export_metrics(
        &self,
        req: &ExportMetricsServiceRequest,
    ) -> Result<u64, AttemptError> {
        let body = Bytes::from(req.encode_to_vec());
        let resp: ExportMetricsServiceResponse = self.call(METRICS_PATH, &body).await?;
        Ok(resp.partial_success.map_or(0, |p| {
            rejected(p.rejected_data_points, &p.error_message, Signal::Metrics)
        }))
    }

    /// Sends one logs request; returns the number of rejected log records.
    pub async fn export_logs(&self, req: &ExportLogsServiceRequest) -> Result<u64, AttemptError> {
        let body = Bytes::from(req.encode_to_vec());
        let resp: ExportLogsServiceResponse = self.call(LOGS_PATH, &body).await?;
        Ok(resp.partial_success.map_or(0, |p| {
            rejected(p.rejected_log_records, &p.error_message, Signal::Logs)
        }))
    }
}

/// gRPC method paths of the OTLP collector services (opentelemetry-proto `collector/*/v1`).
const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// A tonic codec that sends an already encoded protobuf message as it is and decodes the
/// response with prost: the request is encoded once per batch, and a retry resends the same
/// bytes (the generated clients take a message object and clone it per attempt).
struct EncodedCodec<R>(PhantomData<fn() -> R>);

impl<R> Default for EncodedCodec<R> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<R: Message + Default + Send + 'static> Codec for EncodedCodec<R> {
    type Encode = Bytes;
    type Decode = R;
    type Encoder = BytesEncoder;
    type Decoder = ProstDecoder<R>;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> ProstDecoder<R> {
        ProstDecoder(PhantomData)
    }
}

struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

struct ProstDecoder<R>(PhantomData<fn() -> R>);

impl<R: Message + Default> Decoder for ProstDecoder<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<R>, Status> {
        R::decode(buf)
            .map(Some)
            .map_err(|e| Status::internal(format!("undecodable response: {e}")))
    }
}

fn classify(status: Status) -> AttemptError {
    match reply::grpc_status(status.code(), status.message()) {
        Reply::Retry { message, .. } => AttemptError::retryable(message),
        Reply::Permanent { message } => AttemptError::permanent(message),
        Reply::Accepted { .. } => AttemptError::permanent(format!("gRPC {:?}", status.code())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binary_metadata_headers_are_rejected_at_start() {
        let endpoint = "http://127.0.0.1:1";
        let mut s = crate::export::tests::support::signal(endpoint, crate::export::Protocol::Grpc);
        s.headers.insert("trace-bin", "x".parse().unwrap());
        let err = GrpcTransport::new(&s, "traces exporter")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{HEADERS_ORIGIN}: invalid value \"trace-bin\": not usable as gRPC metadata \
                 (binary -bin keys are unsupported)"
            )
        );
    }
}

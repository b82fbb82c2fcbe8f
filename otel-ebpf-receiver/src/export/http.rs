//! OTLP/HTTP transport with binary protobuf bodies (hyper-util client, rustls via hyper-rustls).
//!
//! Stage: a transport of **export**. Input: [`OtlpSignalSettings`] with
//! `Protocol::HttpProtobuf` and export requests. Output: `POST <endpoint>` with
//! `Content-Type: application/x-protobuf` (gzip when configured), the configured headers and
//! timeout. Result: rejected item count from a partial-success response, or an
//! [`AttemptError`]; 429, 502, 503, 504 and network errors/timeouts are retryable (honouring
//! `Retry-After` in seconds), every other status is permanent.
//! Source: OTLP spec "OTLP/HTTP" (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>).
//! Limits: HTTP/1.1 only; response bodies over 4 MiB are treated as an error; no redirects.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

use super::Signal;
use super::reply::{self, Reply};
use super::retry::AttemptError;
use super::tls::TlsMaterial;
use super::{Compression, ExportError, OtlpSignalSettings};

/// Largest response body read (bytes).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A pooled HTTP/1.1 client bound to one OTLP/HTTP endpoint.
pub(crate) struct HttpTransport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    headers: HeaderMap,
    gzip: bool,
    timeout: Duration,
}

impl HttpTransport {
    /// Builds the client (no connection yet). TLS files are read and checked here; system
    /// roots are loaded only for `https://` endpoints.
    pub fn new(s: &OtlpSignalSettings, origin: &str) -> Result<Self, ExportError> {
        let uri: Uri = s.endpoint.parse().map_err(|e| {
            ExportError::Start(format!("{origin}: {}: not a valid URL: {e}", s.endpoint))
        })?;
        let tls = TlsMaterial::load(&s.tls)?;
        let tls_config = if uri.scheme_str() == Some("https") {
            tls.rustls_config(origin)?
        } else {
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ExportError::Start(format!("TLS set-up: {e}")))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(s.timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(connector);
        Ok(Self {
            client,
            uri,
            headers: s.headers.clone(),
            gzip: s.compression == Compression::Gzip,
            timeout: s.timeout,
        })
    }

    /// Sends one trace request; returns the number of rejected spans.
    pub async fn export_traces(&self, body: &Bytes) -> Result<u64, AttemptError> {
        self.export(body.clone(), Signal::Traces).await
    }

    /// Sends one metrics request; returns the number of rejected data points.
    pub async fn export_metrics(
        &self,
        req: &ExportMetricsServiceRequest,
    ) -> Result<u64, AttemptError> {
        self.export(Bytes::from(req.encode_to_vec()), Signal::Metrics)
            .await
    }

    /// Sends one logs request; returns the number of rejected log records.
    pub async fn export_logs(&self, req: &ExportLogsServiceRequest) -> Result<u64, AttemptError> {
        self.export(Bytes::from(req.encode_to_vec()), Signal::Logs)
            .await
    }

    /// POSTs one request of `signal` and classifies the reply ([`reply::http_reply`]).
    async fn export(&self, body: Bytes, signal: Signal) -> Result<u64, AttemptError> {
        let (status, headers, body) = self.post(body).await?;
        let headers: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()))
            .collect();
        match reply::http_reply(status.as_u16(), &headers, &body, signal) {
            Reply::Accepted { rejected } => Ok(rejected),
            Reply::Retry { after, message } => Err(AttemptError {
                retryable: true,
                retry_after: after,
                message: format!("POST {}: {message}", self.uri),
            }),
            Reply::Permanent { message } => Err(AttemptError::permanent(format!(
                "POST {}: {message}",
                self.uri
            ))),
        }
    }

    /// POSTs a protobuf body; returns the reply's status, headers and body (at most
    /// `MAX_RESPONSE_BYTES`).
    async fn post(&self, body: Bytes) -> Result<(StatusCode, HeaderMap, Bytes), AttemptError> {
        let body = if self.gzip {
            Bytes::from(gzip(&body))
        } else {
            body
        };
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header(
                header::USER_AGENT,
                concat!("otel-ebpf-receiver/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .map_err(|e| AttemptError::permanent(format!("cannot build request: {e}")))?;
        if self.gzip {
            req.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| AttemptError::retryable(format!("POST {}: {e:#}", self.uri)))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| AttemptError::retryable(format!("reading response: {e}")))?
                .to_bytes();
            Ok::<_, AttemptError>((status, headers, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| AttemptError::retryable(format!("POST {}: timed out", self.uri)))?
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_round_trips() {
        let data = b"hello hello hello hello".repeat(10);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&data)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}

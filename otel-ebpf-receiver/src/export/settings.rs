//! Export settings: the `exporters` YAML section merged with the standard OTLP exporter
//! environment variables.
//!
//! Stage: configuration of **export**. Input: [`ExportersConfig`] and an environment lookup.
//! Output: a validated [`ExportSettings`] (per-signal endpoint, protocol, headers, timeout,
//! compression, TLS files; batching and queue limits) or an [`ExportError`] naming the
//! offending variable or key.
//!
//! Sources: OTLP exporter configuration,
//! <https://opentelemetry.io/docs/specs/otel/protocol/exporter/>, and the batch span processor
//! / periodic metric reader variables of
//! <https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/>.
//!
//! Precedence for every OTLP option, highest first: the per-signal variable
//! (`OTEL_EXPORTER_OTLP_TRACES_*` / `_METRICS_*` / `_LOGS_*`), the general variable
//! (`OTEL_EXPORTER_OTLP_*`), the per-signal config key (`traces_endpoint`, `metrics_endpoint`,
//! `logs_endpoint`), the general config key.
//! Headers are merged in the reverse order (later sources override same-named headers).
//! Empty variables count as unset (spec: "empty value … same way as when the variable is unset").
//! Limits: certificate files are only named here; they are read in `Exporter::start`.

use std::path::PathBuf;
use std::time::Duration;

use hyper::http::HeaderMap;

use super::ExportError;
use crate::config::ExportersConfig;
use endpoint::{endpoint_url, raw_endpoint};
use parse::*;

mod endpoint;
mod parse;

/// Default OTLP request timeout (ms), spec "Timeout".
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// Wire protocol of an OTLP exporter (`OTEL_EXPORTER_OTLP_PROTOCOL`; the spec default is `grpc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`grpc`).
    Grpc,
    /// OTLP/HTTP with binary protobuf bodies (`http/protobuf`).
    HttpProtobuf,
}

/// Request body compression (`OTEL_EXPORTER_OTLP_COMPRESSION`: `gzip` or `none`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed bodies.
    None,
    /// gzip (`Content-Encoding: gzip` for HTTP, `grpc-encoding: gzip` for gRPC).
    Gzip,
}

/// Which telemetry signal an OTLP exporter carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Spans (`/v1/traces`, `OTEL_EXPORTER_OTLP_TRACES_*`).
    Traces,
    /// Metrics (`/v1/metrics`, `OTEL_EXPORTER_OTLP_METRICS_*`).
    Metrics,
    /// Log records (`/v1/logs`, `OTEL_EXPORTER_OTLP_LOGS_*`).
    Logs,
}

impl Signal {
    fn env_part(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }
    /// Path appended to a base endpoint for OTLP/HTTP (spec "Endpoint URLs for OTLP/HTTP").
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "v1/traces",
            Signal::Metrics => "v1/metrics",
            Signal::Logs => "v1/logs",
        }
    }
}

/// A file path together with the setting it came from (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSetting {
    /// Path of a PEM file.
    pub path: PathBuf,
    /// Variable or config key that named it, e.g. `OTEL_EXPORTER_OTLP_CERTIFICATE`.
    pub origin: String,
}

/// TLS files for one exporter. Without `certificate` the system roots are trusted; with it,
/// only the given CA(s) are (spec `OTEL_EXPORTER_OTLP_CERTIFICATE`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM CA certificate(s) to verify the backend with.
    pub certificate: Option<FileSetting>,
    /// PEM client certificate chain for mTLS (needs `client_key`).
    pub client_certificate: Option<FileSetting>,
    /// PEM private key for mTLS (needs `client_certificate`).
    pub client_key: Option<FileSetting>,
}

/// Resolved settings of one OTLP exporter (traces, metrics or logs).
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpSignalSettings {
    /// Full URL. gRPC: `http(s)://host:port` (a scheme-less endpoint got `https://`, or
    /// `http://` when insecure). HTTP: the POST target, e.g. `http://host:4318/v1/traces`.
    pub endpoint: String,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Extra request headers (gRPC metadata), e.g. `authorization`.
    pub headers: HeaderMap,
    /// Per-request timeout (spec default 10 s).
    pub timeout: Duration,
    /// Body compression.
    pub compression: Compression,
    /// TLS files (used for `https://` endpoints; always checked at start).
    pub tls: TlsSettings,
}

/// Retry policy for retryable export failures: exponential backoff with jitter
/// (spec "OTLP/gRPC Throttling", "Retryable Response Codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySettings {
    /// First backoff before jitter (default 100 ms); each retry doubles it.
    pub initial_backoff: Duration,
    /// Largest backoff before jitter (default 5 s).
    pub max_backoff: Duration,
    /// A batch is given up (dropped and counted) once retrying it would exceed this total
    /// time since its first attempt (default 30 s). Zero disables retries.
    pub max_elapsed: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

/// Everything the export stage needs, resolved and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSettings {
    /// OTLP trace exporter; `None` when no endpoint is configured anywhere.
    pub traces: Option<OtlpSignalSettings>,
    /// OTLP metrics exporter; `None` when no endpoint is configured anywhere.
    pub metrics: Option<OtlpSignalSettings>,
    /// OTLP logs exporter (TCP anomaly log records); `None` when no endpoint is configured
    /// anywhere (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, `exporters.otlp.logs_endpoint`, or the
    /// general endpoint).
    pub logs: Option<OtlpSignalSettings>,
    /// Write one line per span and per log record to stdout (`exporters.console`; defaults to
    /// on exactly when there is no trace endpoint).
    pub console: bool,
    /// Batches are sent, and the logs source is polled, at least this often
    /// (`exporters.flush_interval_seconds`, `OTEL_BSP_SCHEDULE_DELAY` in ms; default 1 s).
    pub flush_interval: Duration,
    /// Most spans waiting in the queue (`exporters.queue_size`, `OTEL_BSP_MAX_QUEUE_SIZE`).
    pub queue_size: usize,
    /// Most spans per export request (`exporters.max_batch_size`,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`); at most `queue_size`.
    pub max_batch_size: usize,
    /// Metrics collection/export period (`exporters.metrics_interval_seconds`,
    /// `OTEL_METRIC_EXPORT_INTERVAL` in ms; default 10 s).
    pub metrics_interval: Duration,
    /// Most bytes of one metrics export request (`exporters.max_metrics_request_bytes`);
    /// larger collections are split ([`super::split`]).
    pub max_metrics_request_bytes: usize,
    /// Retry policy for every signal.
    pub retry: RetrySettings,
    /// Upper bound on [`super::Exporter::shutdown`]: the largest OTLP timeout (default 10 s).
    pub shutdown_timeout: Duration,
}

impl ExportSettings {
    /// `(host, port)` of every OTLP endpoint set (traces, metrics, logs; duplicates removed);
    /// the port defaults to 443 for `https`, 80 otherwise.
    pub fn endpoint_hosts(&self) -> Vec<(String, u16)> {
        let mut out: Vec<(String, u16)> = Vec::new();
        for s in [&self.traces, &self.metrics, &self.logs]
            .into_iter()
            .flatten()
        {
            let Ok(uri) = s.endpoint.parse::<hyper::Uri>() else {
                continue;
            };
            let Some(host) = uri.host() else { continue };
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                });
            if !out.contains(&(host.clone(), port)) {
                out.push((host, port));
            }
        }
        out
    }
}

/// An environment lookup that treats empty values as unset.
pub(super) struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    pub(super) fn get(&self, name: &str) -> Option<(String, String)> {
        (self.0)(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name.to_string(), v))
    }
    /// Per-signal variable first, then the general one. Returns (variable name, value).
    fn otlp(&self, signal: Signal, suffix: &str) -> Option<(String, String)> {
        self.get(&format!(
            "OTEL_EXPORTER_OTLP_{}_{suffix}",
            signal.env_part()
        ))
        .or_else(|| self.get(&format!("OTEL_EXPORTER_OTLP_{suffix}")))
    }
}

impl ExportSettings {
    /// Config + environment (env vars override config, per the OTel spec). `env` is injected
    /// for tests; in production pass `&|k| std::env::var(k).ok()`.
    pub fn resolve(
        cfg: &ExportersConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ExportError> {
        let env = Env(env);
        let traces = resolve_signal(cfg, &env, Signal::Traces)?;
        let metrics = resolve_signal(cfg, &env, Signal::Metrics)?;
        let logs = resolve_signal(cfg, &env, Signal::Logs)?;
        let flush_interval = match env.get("OTEL_BSP_SCHEDULE_DELAY") {
            Some((n, v)) => Duration::from_millis(parse_positive(&n, &v)?),
            None => seconds(
                "exporters.flush_interval_seconds",
                cfg.flush_interval_seconds,
            )?,
        };
        let metrics_interval = match env.get("OTEL_METRIC_EXPORT_INTERVAL") {
            Some((n, v)) => Duration::from_millis(parse_positive(&n, &v)?),
            None => seconds(
                "exporters.metrics_interval_seconds",
                cfg.metrics_interval_seconds,
            )?,
        };
        let (queue_name, queue_size) = match env.get("OTEL_BSP_MAX_QUEUE_SIZE") {
            Some((n, v)) => (n.clone(), parse_positive(&n, &v)? as usize),
            None => ("exporters.queue_size".to_string(), cfg.queue_size),
        };
        let (batch_name, max_batch_size) = match env.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
            Some((n, v)) => (n.clone(), parse_positive(&n, &v)? as usize),
            None => ("exporters.max_batch_size".to_string(), cfg.max_batch_size),
        };
        if queue_size == 0 {
            return Err(invalid(&queue_name, "0", "must be at least 1"));
        }
        if max_batch_size == 0 || max_batch_size > queue_size {
            return Err(invalid(
                &batch_name,
                &max_batch_size.to_string(),
                format!("must be between 1 and the queue size ({queue_size})"),
            ));
        }
        let shutdown_timeout = [&traces, &metrics, &logs]
            .iter()
            .filter_map(|s| s.as_ref().map(|s| s.timeout))
            .max()
            .unwrap_or(Duration::from_millis(DEFAULT_TIMEOUT_MS));
        Ok(Self {
            console: cfg.console.unwrap_or(traces.is_none()),
            traces,
            metrics,
            logs,
            flush_interval,
            queue_size,
            max_batch_size,
            metrics_interval,
            max_metrics_request_bytes: cfg.max_metrics_request_bytes,
            retry: RetrySettings::default(),
            shutdown_timeout,
        })
    }
}

fn file_setting(
    env: &Env,
    signal: Signal,
    suffix: &str,
    key: &str,
    cfg: &Option<String>,
) -> Option<FileSetting> {
    if let Some((origin, v)) = env.otlp(signal, suffix) {
        return Some(FileSetting {
            path: PathBuf::from(v.trim()),
            origin,
        });
    }
    cfg.as_ref()
        .filter(|s| !s.trim().is_empty())
        .map(|v| FileSetting {
            path: PathBuf::from(v.trim()),
            origin: key.into(),
        })
}

fn resolve_signal(
    cfg: &ExportersConfig,
    env: &Env,
    signal: Signal,
) -> Result<Option<OtlpSignalSettings>, ExportError> {
    let otlp = &cfg.otlp;
    let protocol = match (env.otlp(signal, "PROTOCOL"), &otlp.protocol) {
        (Some((n, v)), _) => parse_protocol(&n, &v)?,
        (None, Some(v)) => parse_protocol("exporters.otlp.protocol", v)?,
        (None, None) => Protocol::Grpc,
    };
    let insecure = match (env.otlp(signal, "INSECURE"), otlp.insecure) {
        (Some((n, v)), _) => parse_bool(&n, &v)?,
        (None, v) => v.unwrap_or(false),
    };
    let timeout = match (env.otlp(signal, "TIMEOUT"), otlp.timeout_seconds) {
        (Some((n, v)), _) => Duration::from_millis(parse_positive(&n, &v)?),
        (None, Some(s)) => seconds("exporters.otlp.timeout_seconds", s)?,
        (None, None) => Duration::from_millis(DEFAULT_TIMEOUT_MS),
    };
    let compression = match (env.otlp(signal, "COMPRESSION"), &otlp.compression) {
        (Some((n, v)), _) => parse_compression(&n, &v)?,
        (None, Some(v)) => parse_compression("exporters.otlp.compression", v)?,
        (None, None) => Compression::None,
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &otlp.headers {
        insert_header(&mut headers, "exporters.otlp.headers", k, v)?;
    }
    if let Some((n, v)) = env.get("OTEL_EXPORTER_OTLP_HEADERS") {
        parse_headers(&mut headers, &n, &v)?;
    }
    if let Some((n, v)) = env.get(&format!("OTEL_EXPORTER_OTLP_{}_HEADERS", signal.env_part())) {
        parse_headers(&mut headers, &n, &v)?;
    }
    let tls = TlsSettings {
        certificate: file_setting(
            env,
            signal,
            "CERTIFICATE",
            "exporters.otlp.certificate",
            &otlp.certificate,
        ),
        client_certificate: file_setting(
            env,
            signal,
            "CLIENT_CERTIFICATE",
            "exporters.otlp.client_certificate",
            &otlp.client_certificate,
        ),
        client_key: file_setting(
            env,
            signal,
            "CLIENT_KEY",
            "exporters.otlp.client_key",
            &otlp.client_key,
        ),
    };
    match (&tls.client_certificate, &tls.client_key) {
        (Some(c), None) => {
            return Err(invalid(
                &c.origin,
                &c.path.display().to_string(),
                "needs a client key",
            ));
        }
        (None, Some(k)) => {
            let reason = "needs a client certificate";
            return Err(invalid(&k.origin, &k.path.display().to_string(), reason));
        }
        _ => {}
    }
    let Some(raw) = raw_endpoint(cfg, env, signal) else {
        return Ok(None);
    };
    let endpoint = endpoint_url(&raw, protocol, signal, insecure)?;
    Ok(Some(OtlpSignalSettings {
        endpoint,
        protocol,
        headers,
        timeout,
        compression,
        tls,
    }))
}

#[cfg(test)]
mod tests;

//! Configuration: Collector-style YAML (`receiver`, `exporters`, `telemetry` sections).
//!
//! Stage: start-up, before every other stage; the result is read by all of them.
//! Input: a YAML file ([`Config::load`]), YAML text ([`Config::from_yaml`]) or nothing
//! ([`Config::builtin`]: the built-in defaults, identical to the workspace's
//! `config/default.yaml`, which documents every key).
//! Output: a [`Config`] that passed [`Config::validate`].
//! Errors: one line naming the file, the key path (e.g. `receiver.filters.include_ports[0]`) and
//! what is wrong: unknown keys, wrong types, duplicate keys, out-of-range values.
//! Limits: every key has a default, so any subset of keys (or an empty file) is valid, and a
//! section or list left empty (`null`) takes its default; the `OTEL_EXPORTER_OTLP_*`
//! environment overrides are applied by the exporter, not here; no `${env:VAR}` substitution.

mod apm;
mod kernel;
mod kubernetes;
mod tls;
mod traces;
mod validate;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{AddrParseError, SocketAddr};
use std::time::Duration;

pub use apm::{RoutesConfig, SamplingConfig};
pub use kernel::{AnomalyConfig, KernelTimingConfig, LayerSampling};
pub use kubernetes::{KubernetesConfig, KubernetesEnabled};
pub use tls::TlsConfig;
pub use traces::TracesConfig;

/// Whole configuration. Every section and key is optional in the YAML; missing ones take the
/// defaults shown in `config/default.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// What is captured and how (`receiver:`).
    #[serde(deserialize_with = "null_as_default")]
    pub receiver: ReceiverConfig,
    /// Where spans and metrics go (`exporters:`).
    #[serde(deserialize_with = "null_as_default")]
    pub exporters: ExportersConfig,
    /// The receiver's own health and metrics endpoints (`telemetry:`).
    #[serde(deserialize_with = "null_as_default")]
    pub telemetry: TelemetryConfig,
}

/// What is captured and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiverConfig {
    /// Payload bytes copied per syscall (bytes, 1..=16384, the probes' compile-time ceiling
    /// [`otel_ebpf_common::MAX_CAPTURE`]; default 4096). Larger bodies are never copied whole:
    /// only their first `capture_bytes` bytes are, while the syscall's full byte count is still
    /// reported, so request/response pairing stays right.
    pub capture_bytes: u32,
    /// BPF ring buffer size shared by all CPUs (bytes, power of two, 4096 (and at least the
    /// page size) ..= 1 GiB; default 4 MiB). Too small a buffer loses events under load
    /// (counted in `otel_ebpf_events_lost_kernel_total`).
    pub ring_buffer_bytes: u32,
    /// Requests without a response are closed out after this many seconds (seconds, > 0,
    /// default 30).
    pub request_timeout_seconds: f64,
    /// Record `url.query` (default off: queries often carry secrets).
    pub capture_url_query: bool,
    /// Export each process's full, unredacted arguments as `process.command_args` (default
    /// off: `process.command_line` is exported with well-known secrets redacted).
    pub full_command_line: bool,
    /// Which processes and connections are captured.
    #[serde(deserialize_with = "null_as_default")]
    pub filters: Filters,
    /// Kernel network timing and TCP health anomalies.
    #[serde(deserialize_with = "null_as_default")]
    pub kernel_timing: KernelTimingConfig,
    /// Trace linking and the service graph.
    #[serde(deserialize_with = "null_as_default")]
    pub traces: TracesConfig,
    /// Route derivation for span names and HTTP metrics (`receiver.routes:`).
    #[serde(deserialize_with = "null_as_default")]
    pub routes: RoutesConfig,
    /// Span sampling (`receiver.sampling:`).
    #[serde(deserialize_with = "null_as_default")]
    pub sampling: SamplingConfig,
    /// Kubernetes pod identity on every span and metric (`receiver.kubernetes:`).
    #[serde(deserialize_with = "null_as_default")]
    pub kubernetes: KubernetesConfig,
    /// Which hook family serves the socket data path (default `auto`: per hook point the
    /// first that loads and attaches of fentry/fexit, raw tracepoint, kprobe/kretprobe; see
    /// `docs/kernels.md`). Forcing one family is for tests and diagnosis: start-up fails when
    /// that family cannot serve a point on this kernel.
    #[serde(deserialize_with = "null_as_default")]
    pub capture_hooks: CaptureHooks,
    /// TLS code inside executables: exec hold, lingering probes, analysis cache
    /// (`receiver.tls:`).
    #[serde(deserialize_with = "null_as_default")]
    pub tls: TlsConfig,
}

/// `receiver.capture_hooks`: the hook family of the socket data path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureHooks {
    /// The first of fentry, tracepoint, kprobe that this kernel offers and that loads.
    #[default]
    Auto,
    /// fexit programs on `tcp_sendmsg` / `tcp_recvmsg` only.
    Fentry,
    /// kprobe + kretprobe programs on `tcp_sendmsg` / `tcp_recvmsg` only.
    Kprobe,
    /// The `sock_send_length` / `sock_recv_length` raw tracepoints only (Linux ≥ 6.3).
    Tracepoint,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            capture_bytes: 4096,
            ring_buffer_bytes: 4 * 1024 * 1024,
            request_timeout_seconds: 30.0,
            capture_url_query: false,
            full_command_line: false,
            filters: Filters::default(),
            kernel_timing: KernelTimingConfig::default(),
            traces: TracesConfig::default(),
            routes: RoutesConfig::default(),
            sampling: SamplingConfig::default(),
            kubernetes: KubernetesConfig::default(),
            capture_hooks: CaptureHooks::Auto,
            tls: TlsConfig::default(),
        }
    }
}

impl ReceiverConfig {
    /// [`Self::request_timeout_seconds`] as a [`Duration`] (falls back to 30 s if the value
    /// was not validated and is not a valid duration).
    pub fn request_timeout(&self) -> Duration {
        secs(self.request_timeout_seconds, 30.0)
    }
}

/// Include/exclude filters, applied by [`crate::filter::Filter`].
///
/// An empty include list includes everything; exclude lists win over include lists. A process
/// is included if it matches any include list (`include_pids` or `include_executables`) and
/// no exclude list; a connection additionally needs a port match when `include_ports` is set.
/// The same pid or port (or executable) in both an include and an exclude list is an error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// Process ids (tgid, as in `/proc/<pid>`) to capture; each ≥ 1.
    #[serde(deserialize_with = "null_as_default")]
    pub include_pids: Vec<u32>,
    /// Process ids never captured; each ≥ 1.
    #[serde(deserialize_with = "null_as_default")]
    pub exclude_pids: Vec<u32>,
    /// Executables to capture: a name without `/` matches the executable's file name (e.g.
    /// `nginx`), a name with `/` matches its full path (e.g. `/usr/sbin/nginx`).
    #[serde(deserialize_with = "null_as_default")]
    pub include_executables: Vec<String>,
    /// Executables never captured, matched like `include_executables`.
    #[serde(deserialize_with = "null_as_default")]
    pub exclude_executables: Vec<String>,
    /// Local or remote port (e.g. `[8080]`: only connections with 8080 at either end); each ≥ 1.
    #[serde(deserialize_with = "null_as_default")]
    pub include_ports: Vec<u16>,
    /// Connections with one of these ports at either end are never captured; each ≥ 1.
    #[serde(deserialize_with = "null_as_default")]
    pub exclude_ports: Vec<u16>,
    /// Capture connections to and from the receiver's own OTLP export endpoints too (default
    /// off: a collector on this host would get a SERVER span per export request).
    pub trace_export_endpoints: bool,
}

/// Where spans, metrics and log records go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportersConfig {
    /// One readable line per span and per log record on stdout. Unset (`null`, the default): on
    /// when no OTLP endpoint is set (neither here nor in the environment), off otherwise.
    pub console: Option<bool>,
    /// OTLP exporter (spans, metrics and log records).
    #[serde(deserialize_with = "null_as_default")]
    pub otlp: OtlpConfig,
    /// Batches are flushed at least this often (seconds, > 0; default 1).
    pub flush_interval_seconds: f64,
    /// Most spans queued for export (spans, 1..=16777216; default 32768: ~2 KB each, so
    /// ~60 MB at most while the export falls behind; 8192 dropped spans at 40,000 spans/s on
    /// a busy 2-core machine, 65536 reached 145 MB RSS at saturation); past this, spans are
    /// dropped and counted in `otel_ebpf_spans_dropped_total`.
    pub queue_size: usize,
    /// Most spans per export request (spans, 1..=`queue_size`; default 1024: each span in a
    /// batch holds ~2 KB until sent, so 8192 cost ~20 MB of RSS at 40,000 spans/s).
    pub max_batch_size: usize,
    /// Metrics export interval (seconds, > 0; default 10).
    pub metrics_interval_seconds: f64,
    /// Most bytes of one metrics export request (protobuf, before compression;
    /// 4096..=67108864; default 3670016 = 3.5 MiB, under a collector's 4 MiB limit): larger
    /// collections are split into several requests.
    pub max_metrics_request_bytes: usize,
}

impl Default for ExportersConfig {
    fn default() -> Self {
        Self {
            console: None,
            otlp: OtlpConfig::default(),
            flush_interval_seconds: 1.0,
            queue_size: 32_768,
            max_batch_size: 1_024,
            metrics_interval_seconds: 10.0,
            max_metrics_request_bytes: crate::export::split::DEFAULT_MAX_METRICS_REQUEST_BYTES,
        }
    }
}

impl ExportersConfig {
    /// [`Self::flush_interval_seconds`] as a [`Duration`] (1 s if not a valid duration).
    pub fn flush_interval(&self) -> Duration {
        secs(self.flush_interval_seconds, 1.0)
    }

    /// [`Self::metrics_interval_seconds`] as a [`Duration`] (10 s if not a valid duration).
    pub fn metrics_interval(&self) -> Duration {
        secs(self.metrics_interval_seconds, 10.0)
    }
}

/// OTLP exporter settings; each is overridden by the standard `OTEL_EXPORTER_OTLP_*`
/// environment variables when they are set (applied by the exporter). Unset (`null`) keys take
/// the OTLP exporter specification's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Base URL, `http://` or `https://`, e.g. `http://127.0.0.1:4317` (grpc) or
    /// `http://127.0.0.1:4318` (http/protobuf, to which `/v1/traces`, `/v1/metrics` and
    /// `/v1/logs` are appended). Unset and no `OTEL_EXPORTER_OTLP_ENDPOINT`: no OTLP export.
    pub endpoint: Option<String>,
    /// Full URL for spans, used as is (overrides `endpoint` for traces).
    pub traces_endpoint: Option<String>,
    /// Full URL for metrics, used as is (overrides `endpoint` for metrics).
    pub metrics_endpoint: Option<String>,
    /// Full URL for log records (TCP anomalies), used as is (overrides `endpoint` for logs).
    pub logs_endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (unset: `grpc`).
    pub protocol: Option<String>,
    /// Extra request headers (gRPC metadata), e.g. `{authorization: "Bearer …"}`; names must be
    /// valid HTTP header names, values valid header values.
    #[serde(deserialize_with = "null_as_default")]
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout (seconds, > 0; unset: 10).
    pub timeout_seconds: Option<f64>,
    /// `gzip` or `none` (unset: `none`).
    pub compression: Option<String>,
    /// Plain-text gRPC (no TLS), as `OTEL_EXPORTER_OTLP_INSECURE` (unset: decided by the URL
    /// scheme, `http` plain and `https` TLS).
    pub insecure: Option<bool>,
    /// PEM file of the CA certificate(s) to trust for the server (path).
    pub certificate: Option<String>,
    /// PEM file of the client certificate for mTLS (path); needs `client_key`.
    pub client_certificate: Option<String>,
    /// PEM file of the client private key for mTLS (path); needs `client_certificate`.
    pub client_key: Option<String>,
}

impl OtlpConfig {
    /// [`Self::timeout_seconds`] as a [`Duration`], `None` when unset or not a valid duration.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_seconds
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
    }
}

/// Self-telemetry endpoints, served by [`crate::telemetry::serve`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Health check `IP:port` (`GET /`): 200 once every probe is attached, 503 before, with the
    /// Collector health_check extension's JSON body. Empty
    /// string disables. Default `127.0.0.1:13133` (the Collector's health_check port).
    pub health_address: String,
    /// Prometheus text self-metrics `IP:port` (`GET /metrics`). Empty string disables. Default
    /// `127.0.0.1:8888` (the Collector's own-metrics port).
    pub metrics_address: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            health_address: "127.0.0.1:13133".into(),
            metrics_address: "127.0.0.1:8888".into(),
        }
    }
}

impl TelemetryConfig {
    /// [`Self::health_address`] parsed; `Ok(None)` when empty (disabled).
    pub fn health_addr(&self) -> Result<Option<SocketAddr>, AddrParseError> {
        parse_addr(&self.health_address)
    }

    /// [`Self::metrics_address`] parsed; `Ok(None)` when empty (disabled).
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, AddrParseError> {
        parse_addr(&self.metrics_address)
    }
}

/// A configuration error. Its `Display` is one line naming the source, the key path and the
/// problem, e.g. `config /etc/r.yaml: receiver.capture_bytes: must be in 1..=16384, got 0`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// File path as given.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key or a wrong type, or a value is out of range.
    #[error("config {path}: {key}: {message}")]
    Invalid {
        /// File path, or another name of the source (`from_yaml`'s `origin`).
        path: String,
        /// Key path, e.g. `receiver.filters.include_ports[0]` (`.` for the document itself).
        key: String,
        /// What is wrong (one line).
        message: String,
    },
}

impl Config {
    /// Loads, parses and validates a YAML file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates YAML text; `origin` names the source in errors. Text that holds no
    /// YAML document (empty, or comments only) yields the built-in defaults.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg = if is_blank_yaml(text) {
            Config::default()
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let key = e.path().to_string();
                let inner = e.into_inner();
                let mut message = strip_path_prefix(&inner.to_string(), &key).to_string();
                if let Some(at) = inner.location()
                    && !message.contains(" line ")
                {
                    message += &format!(" at line {} column {}", at.line(), at.column());
                }
                invalid(origin, &key, message)
            })?
        };
        cfg.validate_as(origin)?;
        Ok(cfg)
    }

    /// The built-in defaults (equal to `Config::default()` and to `config/default.yaml`).
    pub fn builtin() -> Self {
        Self::default()
    }

    /// Checks every value's range and the consistency of the filters; the error (the first
    /// problem found, in file order) names the key path. Called by [`Self::load`] and
    /// [`Self::from_yaml`]; call it on a config built in code. Errors name the source
    /// `<in-memory config>`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_as("<in-memory config>")
    }
}

/// True when `text` has no YAML content: only blank lines, comments and document markers.
fn is_blank_yaml(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---")
}

/// serde_yaml_ng prefixes its messages with the path of the enclosing value (`receiver: …`);
/// the error names the key path already, so that prefix is dropped.
fn strip_path_prefix<'a>(message: &'a str, key: &str) -> &'a str {
    let mut p = key;
    while !p.is_empty() {
        if let Some(rest) = message.strip_prefix(p).and_then(|r| r.strip_prefix(": ")) {
            return rest;
        }
        p = &p[..p.rfind(['.', '[']).unwrap_or(0)];
    }
    message
}

fn invalid(origin: &str, key: &str, message: String) -> ConfigError {
    let key = if key.is_empty() { "." } else { key };
    // One line, whatever the underlying message holds.
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    ConfigError::Invalid {
        path: origin.into(),
        key: key.into(),
        message,
    }
}

/// A section or list given as `null` (e.g. every key under it commented out) takes its default.
fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

fn parse_addr(s: &str) -> Result<Option<SocketAddr>, AddrParseError> {
    if s.is_empty() {
        Ok(None)
    } else {
        s.parse().map(Some)
    }
}

fn secs(v: f64, fallback: f64) -> Duration {
    Duration::try_from_secs_f64(v).unwrap_or(Duration::from_secs_f64(fallback))
}

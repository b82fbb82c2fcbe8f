//! Configuration: Collector-style YAML (`receiver`, `exporters`, `telemetry` sections).
//!
//! Input: a YAML file (or none: the built-in defaults, identical to `config/default.yaml`).
//! Output: a validated [`Config`]. Errors: unknown keys (with their path), bad values.

use serde::{Deserialize, Serialize};

/// Whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub receiver: ReceiverConfig,
    pub exporters: ExportersConfig,
    pub telemetry: TelemetryConfig,
}

/// What is captured and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiverConfig {
    /// Payload bytes copied per syscall (bytes, 1..=16384). Larger bodies are not copied whole:
    /// the syscall's full byte count is still reported, so pairing stays right.
    pub capture_bytes: u32,
    /// BPF ring buffer size (bytes, power of two ≥ 4096 × page).
    pub ring_buffer_bytes: u32,
    /// Requests without a response are closed out after this many seconds.
    pub request_timeout_seconds: f64,
    /// Record `url.query` (off by default: queries often carry secrets).
    pub capture_url_query: bool,
    pub filters: Filters,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            capture_bytes: 4096,
            ring_buffer_bytes: 8 * 1024 * 1024,
            request_timeout_seconds: 30.0,
            capture_url_query: false,
            filters: Filters::default(),
        }
    }
}

/// Include/exclude filters. An empty include list includes everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    pub include_pids: Vec<u32>,
    pub exclude_pids: Vec<u32>,
    pub include_executables: Vec<String>,
    pub exclude_executables: Vec<String>,
    /// Local or remote port (e.g. `[8080]`: only connections with 8080 at either end).
    pub include_ports: Vec<u16>,
    pub exclude_ports: Vec<u16>,
}

/// Where spans and metrics go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportersConfig {
    /// One readable line per span on stdout. On by default when no OTLP endpoint is set.
    pub console: Option<bool>,
    pub otlp: OtlpConfig,
    /// Batches are flushed at least this often (seconds).
    pub flush_interval_seconds: f64,
    /// Most spans queued for export; past this, spans are dropped and counted.
    pub queue_size: usize,
    /// Most spans per export request.
    pub max_batch_size: usize,
    /// Metrics export interval (seconds).
    pub metrics_interval_seconds: f64,
}

impl Default for ExportersConfig {
    fn default() -> Self {
        Self {
            console: None,
            otlp: OtlpConfig::default(),
            flush_interval_seconds: 1.0,
            queue_size: 65_536,
            max_batch_size: 8_192,
            metrics_interval_seconds: 10.0,
        }
    }
}

/// OTLP exporter settings; each is overridden by the standard `OTEL_EXPORTER_OTLP_*`
/// environment variables when they are set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// e.g. `http://127.0.0.1:4317` (grpc) or `http://127.0.0.1:4318` (http/protobuf).
    pub endpoint: Option<String>,
    pub traces_endpoint: Option<String>,
    pub metrics_endpoint: Option<String>,
    /// `grpc` or `http/protobuf`.
    pub protocol: Option<String>,
    pub headers: std::collections::BTreeMap<String, String>,
    pub timeout_seconds: Option<f64>,
    /// `gzip` or `none`.
    pub compression: Option<String>,
    pub insecure: Option<bool>,
    pub certificate: Option<String>,
    pub client_certificate: Option<String>,
    pub client_key: Option<String>,
}

/// Self-telemetry endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Health check: 200 once every probe is attached, 503 before. Empty string disables.
    pub health_address: String,
    /// Prometheus text self-metrics at `/metrics`. Empty string disables.
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

/// A configuration error, naming the offending key path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {key}: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
}

impl Config {
    /// Loads and validates a YAML file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates YAML text; `origin` names the source in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let cfg: Config =
            serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Invalid {
                path: origin.into(),
                key: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        Ok(cfg)
    }
}

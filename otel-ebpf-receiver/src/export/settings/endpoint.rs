//! Endpoint resolution of one OTLP signal: which variable or key gives the URL, and the URL.
//!
//! Stage: configuration of **export**. Input: [`ExportersConfig`], the environment, a
//! [`Signal`]. Output: the raw endpoint with its origin (per-signal variable
//! `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`, then `OTEL_EXPORTER_OTLP_ENDPOINT`, then
//! `exporters.otlp.{traces,metrics,logs}_endpoint`, then `exporters.otlp.endpoint`), and the
//! final URL: per-signal endpoints are used as is, a base URL gets `/v1/{signal}` for
//! OTLP/HTTP, a scheme-less gRPC endpoint gets `https://` (`http://` when insecure).
//! Source: <https://opentelemetry.io/docs/specs/otel/protocol/exporter/> ("Endpoint URLs for
//! OTLP/HTTP"). Limits: the URL is only checked for shape, never resolved.

use super::parse::check_url;
use super::{Env, ExportError, Protocol, Signal};
use crate::config::ExportersConfig;

/// Endpoint string with its origin and whether it is per-signal (used as is) or a base URL.
pub(super) struct RawEndpoint {
    pub origin: String,
    pub value: String,
    pub per_signal: bool,
}

pub(super) fn raw_endpoint(
    cfg: &ExportersConfig,
    env: &Env,
    signal: Signal,
) -> Option<RawEndpoint> {
    let sig = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.env_part());
    if let Some((origin, value)) = env.get(&sig) {
        return Some(RawEndpoint {
            origin,
            value,
            per_signal: true,
        });
    }
    if let Some((origin, value)) = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        return Some(RawEndpoint {
            origin,
            value,
            per_signal: false,
        });
    }
    let (key, per_signal_cfg) = match signal {
        Signal::Traces => ("exporters.otlp.traces_endpoint", &cfg.otlp.traces_endpoint),
        Signal::Metrics => (
            "exporters.otlp.metrics_endpoint",
            &cfg.otlp.metrics_endpoint,
        ),
        Signal::Logs => ("exporters.otlp.logs_endpoint", &cfg.otlp.logs_endpoint),
    };
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    if let Some(value) = nonempty(per_signal_cfg) {
        return Some(RawEndpoint {
            origin: key.into(),
            value,
            per_signal: true,
        });
    }
    nonempty(&cfg.otlp.endpoint).map(|value| RawEndpoint {
        origin: "exporters.otlp.endpoint".into(),
        value,
        per_signal: false,
    })
}

pub(super) fn endpoint_url(
    raw: &RawEndpoint,
    protocol: Protocol,
    signal: Signal,
    insecure: bool,
) -> Result<String, ExportError> {
    let value = raw.value.trim();
    match protocol {
        Protocol::Grpc => {
            let with_scheme = if value.contains("://") {
                value.to_string()
            } else {
                // Spec: OTEL_EXPORTER_OTLP_INSECURE applies to scheme-less gRPC endpoints.
                format!("{}://{value}", if insecure { "http" } else { "https" })
            };
            check_url(&raw.origin, &with_scheme)
        }
        Protocol::HttpProtobuf if raw.per_signal => check_url(&raw.origin, value),
        Protocol::HttpProtobuf => {
            check_url(&raw.origin, value)?;
            let base = value.trim_end_matches('/');
            check_url(&raw.origin, &format!("{base}/{}", signal.http_path()))
        }
    }
}

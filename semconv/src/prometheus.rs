//! Every metric the receiver emits, and its name as it arrives in Prometheus.
//!
//! Stage: none (shared names). Input: nothing. Output: [`OTLP_METRICS`] (every OTLP metric:
//! name, unit, instrument), [`to_prometheus`] (the series names the Collector's Prometheus
//! exporter makes of one: dots → underscores, a unit suffix such as `_seconds`, `_total` for
//! monotonic sums, `_bucket`/`_sum`/`_count` for histograms) and [`emitted_series`] (those plus
//! the receiver's own `/metrics` names, which Prometheus scrapes as they are). Dashboards are
//! checked against [`emitted_series`] (`semconv/tests/dashboards.rs`), so a rename here
//! that a dashboard does not follow fails a test instead of blanking a panel.
//!
//! Limits: the translation covers the units the receiver uses (`s`, `By`, `1`, `{…}`
//! annotations), following the Collector's `prometheus` exporter with its default
//! `add_metric_suffixes: true` and no `namespace`.

use crate::{collector, kernel, metric, self_metric, service_graph as sg};

/// OTLP instrument kinds, as far as Prometheus naming cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Explicit-bucket histogram.
    Histogram,
    /// Cumulative monotonic sum (a counter).
    Counter,
    /// Gauge or non-monotonic sum.
    Gauge,
}

/// Every OTLP metric the receiver exports: (name, unit, kind).
pub const OTLP_METRICS: &[(&str, &str, Kind)] = &[
    (
        metric::HTTP_SERVER_REQUEST_DURATION,
        metric::DURATION_UNIT,
        Kind::Histogram,
    ),
    (
        metric::HTTP_CLIENT_REQUEST_DURATION,
        metric::DURATION_UNIT,
        Kind::Histogram,
    ),
    (
        metric::RPC_SERVER_CALL_DURATION,
        metric::DURATION_UNIT,
        Kind::Histogram,
    ),
    (
        metric::RPC_CLIENT_CALL_DURATION,
        metric::DURATION_UNIT,
        Kind::Histogram,
    ),
    (
        kernel::metric::SEND_DURATION,
        kernel::metric::UNIT_SECONDS,
        Kind::Histogram,
    ),
    (
        kernel::metric::RECEIVE_DURATION,
        kernel::metric::UNIT_SECONDS,
        Kind::Histogram,
    ),
    (
        kernel::metric::CONNECT_DURATION,
        kernel::metric::UNIT_SECONDS,
        Kind::Histogram,
    ),
    (
        kernel::metric::ACCEPT_DURATION,
        kernel::metric::UNIT_SECONDS,
        Kind::Histogram,
    ),
    (
        kernel::metric::SRTT,
        kernel::metric::UNIT_SECONDS,
        Kind::Histogram,
    ),
    (kernel::metric::RETRANSMITS, "{segment}", Kind::Counter),
    (kernel::metric::RESETS, "{segment}", Kind::Counter),
    (kernel::metric::DROPS, "{packet}", Kind::Counter),
    (
        kernel::metric::CONNECTIONS_OPENED,
        "{connection}",
        Kind::Counter,
    ),
    (
        kernel::metric::CONNECTIONS_CLOSED,
        "{connection}",
        Kind::Counter,
    ),
    (kernel::metric::ANOMALIES, "{anomaly}", Kind::Counter),
    (sg::REQUEST_TOTAL, "{request}", Kind::Counter),
    (sg::REQUEST_FAILED_TOTAL, "{request}", Kind::Counter),
    (sg::REQUEST_SERVER, metric::DURATION_UNIT, Kind::Histogram),
    (sg::REQUEST_CLIENT, metric::DURATION_UNIT, Kind::Histogram),
];

/// A metric or label name as Prometheus spells it: every character outside `[a-zA-Z0-9_:]`
/// becomes `_`, and a leading digit gets a `_` in front.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The Prometheus unit word of a UCUM unit (`None`: no suffix).
fn unit_word(unit: &str) -> Option<&'static str> {
    match unit {
        "s" => Some("seconds"),
        "ms" => Some("milliseconds"),
        "us" => Some("microseconds"),
        "ns" => Some("nanoseconds"),
        "By" => Some("bytes"),
        "KiBy" => Some("kibibytes"),
        "MiBy" => Some("mebibytes"),
        "%" => Some("percent"),
        _ => None,
    }
}

/// The series names Prometheus shows for one OTLP metric exported through the Collector's
/// Prometheus exporter (see the module docs).
pub fn to_prometheus(name: &str, unit: &str, kind: Kind) -> Vec<String> {
    let mut base = sanitize(name);
    if let Some(u) = unit_word(unit)
        && !base.ends_with(&format!("_{u}"))
    {
        base = format!("{base}_{u}");
    }
    if unit == "1" && kind == Kind::Gauge && !base.ends_with("_ratio") {
        base.push_str("_ratio");
    }
    match kind {
        Kind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|s| format!("{base}{s}"))
            .collect(),
        Kind::Counter if base.ends_with("_total") => vec![base],
        Kind::Counter => vec![format!("{base}_total")],
        Kind::Gauge => vec![base],
    }
}

/// Every series name the receiver's metrics have in Prometheus: the OTLP metrics through the
/// Collector's Prometheus exporter, and the receiver's own `/metrics` endpoint as scraped.
pub fn emitted_series() -> Vec<String> {
    let mut out: Vec<String> = OTLP_METRICS
        .iter()
        .flat_map(|(n, u, k)| to_prometheus(n, u, *k))
        .collect();
    out.extend(self_metric::ALL.iter().map(|s| s.to_string()));
    out.extend(self_metric::LABELLED.iter().map(|s| s.to_string()));
    out.extend(collector::COUNTERS.iter().map(|s| s.to_string()));
    out.extend(collector::GAUGES.iter().map(|s| s.to_string()));
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_follows_the_prometheus_exporter() {
        assert_eq!(
            to_prometheus("http.server.request.duration", "s", Kind::Histogram),
            [
                "http_server_request_duration_seconds_bucket",
                "http_server_request_duration_seconds_sum",
                "http_server_request_duration_seconds_count"
            ]
        );
        assert_eq!(
            to_prometheus("otel_ebpf.tcp.retransmits", "{segment}", Kind::Counter),
            ["otel_ebpf_tcp_retransmits_total"]
        );
        assert_eq!(
            to_prometheus(
                "traces_service_graph_request_total",
                "{request}",
                Kind::Counter
            ),
            ["traces_service_graph_request_total"]
        );
        assert_eq!(
            to_prometheus("traces_service_graph_request_server", "s", Kind::Histogram)[0],
            "traces_service_graph_request_server_seconds_bucket"
        );
        assert_eq!(
            to_prometheus("x.duration_seconds", "s", Kind::Gauge),
            ["x_duration_seconds"]
        );
        assert_eq!(
            to_prometheus("cpu.utilization", "1", Kind::Gauge),
            ["cpu_utilization_ratio"]
        );
        assert_eq!(sanitize("9lives-x"), "_9lives_x");
    }

    #[test]
    fn emitted_series_are_distinct_and_well_formed() {
        let all = emitted_series();
        assert!(all.len() > 60, "{}", all.len());
        for n in &all {
            assert_eq!(&sanitize(n), n);
        }
    }
}

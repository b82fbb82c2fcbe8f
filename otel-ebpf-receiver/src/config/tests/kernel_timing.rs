//! Tests of the `receiver.kernel_timing` section and `exporters.otlp.logs_endpoint`: defaults,
//! parsing and every validation rule, each at its bound and one step past it.

use super::super::*;
use super::{DEFAULT_YAML, assert_err, parse};

const P: &str = "receiver.kernel_timing.anomalies";

fn anomalies(body: &str) -> String {
    format!("receiver:\n  kernel_timing:\n    anomalies:\n      {body}\n")
}

#[test]
fn defaults_match_the_documented_values() {
    let k = Config::default().receiver.kernel_timing;
    assert!(k.enabled);
    assert_eq!(
        k.anomalies,
        AnomalyConfig {
            window_seconds: 10.0,
            reset_storm_threshold: 100,
            connect_failure_ratio: 0.5,
            connect_failure_min_attempts: 10,
            peer_connection_spike: 1000,
        }
    );
    assert_eq!(k.anomalies.window(), Duration::from_secs(10));
    assert!(DEFAULT_YAML.contains("  kernel_timing:\n    enabled: true\n"));
    assert!(DEFAULT_YAML.contains("    logs_endpoint: null\n"));
    assert_eq!(Config::default().exporters.otlp.logs_endpoint, None);
}

#[test]
fn section_parses_and_empty_parts_take_defaults() {
    let c = parse(concat!(
        "receiver:\n",
        "  kernel_timing:\n",
        "    enabled: false\n",
        "    anomalies:\n",
        "      window_seconds: 0.5\n",
        "      reset_storm_threshold: 3\n",
        "      connect_failure_ratio: 1\n",
        "      connect_failure_min_attempts: 1\n",
        "      peer_connection_spike: 7\n",
    ));
    let k = &c.receiver.kernel_timing;
    assert!(!k.enabled);
    assert_eq!(
        k.anomalies,
        AnomalyConfig {
            window_seconds: 0.5,
            reset_storm_threshold: 3,
            connect_failure_ratio: 1.0,
            connect_failure_min_attempts: 1,
            peer_connection_spike: 7,
        }
    );
    assert_eq!(k.anomalies.window(), Duration::from_millis(500));
    for null in [
        "receiver:\n  kernel_timing:\n",
        "receiver:\n  kernel_timing:\n    anomalies:\n",
        "receiver:\n  kernel_timing: {enabled: true, anomalies: ~}\n",
    ] {
        assert_eq!(parse(null), Config::default(), "{null:?}");
    }
}

#[test]
fn unknown_keys_are_rejected() {
    assert_err(
        "receiver:\n  kernel_timing:\n    enable: true\n",
        "receiver.kernel_timing.enable",
        "unknown field `enable`",
    );
    assert_err(
        &anomalies("reset_threshold: 5"),
        &format!("{P}.reset_threshold"),
        "unknown field `reset_threshold`",
    );
    assert_err(
        &anomalies("reset_storm_threshold: -1"),
        &format!("{P}.reset_storm_threshold"),
        "-1",
    );
}

#[test]
fn window_seconds_range() {
    for ok in ["0.1", "3600", "10"] {
        parse(&anomalies(&format!("window_seconds: {ok}")));
    }
    for bad in ["0.09", "3600.5", "0", "-1", ".nan", ".inf"] {
        assert_err(
            &anomalies(&format!("window_seconds: {bad}")),
            &format!("{P}.window_seconds"),
            "must be a number of seconds in 0.1..=3600",
        );
    }
}

#[test]
fn thresholds_must_be_at_least_one() {
    for key in [
        "reset_storm_threshold",
        "connect_failure_min_attempts",
        "peer_connection_spike",
    ] {
        let c = parse(&anomalies(&format!("{key}: 1")));
        assert_ne!(c, Config::default(), "{key}");
        assert_err(
            &anomalies(&format!("{key}: 0")),
            &format!("{P}.{key}"),
            "must be at least 1",
        );
    }
}

#[test]
fn connect_failure_ratio_range() {
    for ok in ["1", "1.0", "0.001", "0.5"] {
        parse(&anomalies(&format!("connect_failure_ratio: {ok}")));
    }
    for bad in ["0", "-0.5", "1.01", ".nan", ".inf"] {
        assert_err(
            &anomalies(&format!("connect_failure_ratio: {bad}")),
            &format!("{P}.connect_failure_ratio"),
            "0 < ratio <= 1",
        );
    }
}

#[test]
fn window_of_unvalidated_values_is_clamped() {
    let mut a = AnomalyConfig {
        window_seconds: f64::NAN,
        ..AnomalyConfig::default()
    };
    assert_eq!(a.window(), Duration::from_secs(10));
    a.window_seconds = 0.0;
    assert_eq!(a.window(), Duration::from_millis(100));
    a.window_seconds = f64::INFINITY;
    assert_eq!(a.window(), Duration::from_secs(3600));
}

#[test]
fn logs_endpoint_is_a_url() {
    let c = parse("exporters: {otlp: {logs_endpoint: 'http://c:4318/v1/logs'}}");
    assert_eq!(
        c.exporters.otlp.logs_endpoint.as_deref(),
        Some("http://c:4318/v1/logs")
    );
    for bad in ["''", "c:4318", "'ftp://c'"] {
        assert_err(
            &format!("exporters: {{otlp: {{logs_endpoint: {bad}}}}}"),
            "exporters.otlp.logs_endpoint",
            "URL",
        );
    }
}

#[test]
fn layers_are_on_by_default_and_sampled() {
    let k = Config::default().receiver.kernel_timing;
    assert!(k.layers && k.enabled);
    assert!(DEFAULT_YAML.contains("    layers: true\n"));
    assert!(!k.sampling.continuous());
    // 1 s in 60 s, every connection, every skb.
    assert!((k.sampling.expected_rate() - 1.0 / 60.0).abs() < 1e-12);
    // `enabled: false` turns everything off, layers included (no error).
    let c = parse("receiver:\n  kernel_timing:\n    enabled: false\n");
    assert!(!c.receiver.kernel_timing.enabled);
    let c = parse(
        "receiver:\n  kernel_timing:\n    sampling:\n      connection_rate: 0.25\n      skb_interval: 4\n      window_seconds: 5\n      period_seconds: 5\n",
    );
    let s = &c.receiver.kernel_timing.sampling;
    assert!(s.continuous());
    assert!((s.expected_rate() - 0.0625).abs() < 1e-12);
    assert!(LayerSampling::always().continuous());
    assert_eq!(LayerSampling::always().expected_rate(), 1.0);
}

#[test]
fn sampling_ranges_are_checked() {
    let pre = "receiver:\n  kernel_timing:\n    sampling:\n";
    for (line, key) in [
        ("      connection_rate: 0\n", "connection_rate"),
        ("      connection_rate: 1.5\n", "connection_rate"),
        ("      skb_interval: 0\n", "skb_interval"),
        ("      window_seconds: 0\n", "window_seconds"),
        ("      period_seconds: -1\n", "period_seconds"),
        ("      srtt_threshold_ms: -1\n", "srtt_threshold_ms"),
        ("      retransmit_threshold: 256\n", "retransmit_threshold"),
    ] {
        assert_err(
            &format!("{pre}{line}"),
            &format!("receiver.kernel_timing.sampling.{key}"),
            "must",
        );
    }
}

//! Tests of config + environment resolution: every variable, precedence, bad values.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::{ExportersConfig, OtlpConfig};

mod logs;

pub(super) fn resolve(
    cfg: &ExportersConfig,
    vars: &[(&str, &str)],
) -> Result<ExportSettings, ExportError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ExportSettings::resolve(cfg, &move |k| map.get(k).cloned())
}

pub(super) fn env_only(vars: &[(&str, &str)]) -> ExportSettings {
    resolve(&ExportersConfig::default(), vars).unwrap()
}

pub(super) fn err(cfg: &ExportersConfig, vars: &[(&str, &str)]) -> String {
    match resolve(cfg, vars) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

pub(super) fn env_err(vars: &[(&str, &str)]) -> String {
    err(&ExportersConfig::default(), vars)
}

pub(super) fn cfg_with(f: impl FnOnce(&mut OtlpConfig)) -> ExportersConfig {
    let mut cfg = ExportersConfig::default();
    f(&mut cfg.otlp);
    cfg
}

pub(super) fn header_pairs(s: &OtlpSignalSettings) -> Vec<(String, String)> {
    let mut v: Vec<_> = s
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

pub(super) fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn defaults_without_any_endpoint_use_the_console() {
    let s = env_only(&[]);
    assert_eq!(s.traces, None);
    assert_eq!(s.metrics, None);
    assert_eq!(s.logs, None);
    assert!(s.console);
    assert_eq!(s.flush_interval, Duration::from_secs(1));
    assert_eq!(s.queue_size, 32_768);
    assert_eq!(s.max_batch_size, 1_024);
    assert_eq!(s.metrics_interval, Duration::from_secs(10));
    assert_eq!(s.shutdown_timeout, Duration::from_millis(10_000));
    assert_eq!(s.retry, RetrySettings::default());
}

#[test]
fn general_endpoint_is_used_as_is_for_grpc() {
    let s = env_only(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
    let t = s.traces.unwrap();
    assert_eq!(t.endpoint, "http://collector:4317");
    assert_eq!(t.protocol, Protocol::Grpc);
    assert_eq!(t.timeout, Duration::from_secs(10));
    assert_eq!(t.compression, Compression::None);
    assert!(t.headers.is_empty());
    assert_eq!(t.tls, TlsSettings::default());
    assert_eq!(s.metrics.unwrap().endpoint, "http://collector:4317");
    assert!(!s.console);
}

#[test]
fn general_endpoint_gets_signal_paths_for_http() {
    for (base, traces, metrics) in [
        (
            "http://c:4318",
            "http://c:4318/v1/traces",
            "http://c:4318/v1/metrics",
        ),
        (
            "http://c:4318/",
            "http://c:4318/v1/traces",
            "http://c:4318/v1/metrics",
        ),
        (
            "https://c/otlp",
            "https://c/otlp/v1/traces",
            "https://c/otlp/v1/metrics",
        ),
    ] {
        let s = env_only(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", base),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ]);
        assert_eq!(s.traces.as_ref().unwrap().endpoint, traces);
        assert_eq!(s.traces.unwrap().protocol, Protocol::HttpProtobuf);
        assert_eq!(s.metrics.unwrap().endpoint, metrics);
    }
}

#[test]
fn per_signal_endpoints_are_used_as_is() {
    let s = env_only(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1234/custom"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:5678"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ]);
    assert_eq!(s.traces.unwrap().endpoint, "http://t:1234/custom");
    assert_eq!(s.metrics.unwrap().endpoint, "http://m:5678");
}

#[test]
fn only_a_metrics_endpoint_keeps_the_console_for_spans() {
    let s = env_only(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4317")]);
    assert_eq!(s.traces, None);
    assert_eq!(s.metrics.unwrap().endpoint, "http://m:4317");
    assert!(s.console);
}

#[test]
fn per_signal_protocol_overrides_the_general_one() {
    let s = env_only(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
    ]);
    let t = s.traces.unwrap();
    assert_eq!(
        (t.protocol, t.endpoint.as_str()),
        (Protocol::HttpProtobuf, "http://c:4318/v1/traces")
    );
    let m = s.metrics.unwrap();
    assert_eq!(
        (m.protocol, m.endpoint.as_str()),
        (Protocol::Grpc, "http://c:4318")
    );
}

#[test]
fn config_alone_is_used_and_env_overrides_it() {
    let cfg = cfg_with(|o| {
        o.endpoint = Some("http://cfg:4318".into());
        o.metrics_endpoint = Some("http://cfg-m:9999/m".into());
        o.protocol = Some("http/protobuf".into());
        o.timeout_seconds = Some(3.0);
        o.compression = Some("gzip".into());
    });
    let s = resolve(&cfg, &[]).unwrap();
    let t = s.traces.unwrap();
    assert_eq!(t.endpoint, "http://cfg:4318/v1/traces");
    assert_eq!(t.timeout, Duration::from_secs(3));
    assert_eq!(t.compression, Compression::Gzip);
    assert_eq!(s.metrics.unwrap().endpoint, "http://cfg-m:9999/m");
    assert_eq!(s.shutdown_timeout, Duration::from_secs(3));

    let s = resolve(
        &cfg,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
        ],
    )
    .unwrap();
    let t = s.traces.unwrap();
    assert_eq!(t.endpoint, "http://env:4317");
    assert_eq!(t.protocol, Protocol::Grpc);
    assert_eq!(t.timeout, Duration::from_millis(1500));
    assert_eq!(t.compression, Compression::None);
    // An env endpoint (even the general one) overrides the config's per-signal endpoint.
    assert_eq!(s.metrics.unwrap().endpoint, "http://env:4317");
}

#[test]
fn config_traces_endpoint_is_used_as_is() {
    let cfg = cfg_with(|o| {
        o.traces_endpoint = Some("http://t:4318/x".into());
        o.protocol = Some("http/protobuf".into());
    });
    let s = resolve(&cfg, &[]).unwrap();
    assert_eq!(s.traces.unwrap().endpoint, "http://t:4318/x");
    assert_eq!(s.metrics, None);
}

#[test]
fn headers_are_url_decoded_and_merged_by_precedence() {
    let cfg = cfg_with(|o| {
        o.endpoint = Some("http://c:4317".into());
        o.headers.insert("from-config".into(), "1".into());
        o.headers.insert("api-key".into(), "config".into());
    });
    let s = resolve(
        &cfg,
        &[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=secret%20value, tenant=a%2Cb,x=1",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x=2"),
        ],
    )
    .unwrap();
    assert_eq!(
        header_pairs(s.traces.as_ref().unwrap()),
        pairs(&[
            ("api-key", "secret value"),
            ("from-config", "1"),
            ("tenant", "a,b"),
            ("x", "2")
        ])
    );
    assert_eq!(
        header_pairs(s.metrics.as_ref().unwrap()),
        pairs(&[
            ("api-key", "secret value"),
            ("from-config", "1"),
            ("tenant", "a,b"),
            ("x", "1")
        ])
    );
}

#[test]
fn bad_headers_name_the_variable() {
    let ep = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
    assert_eq!(
        env_err(&[ep, ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,novalue")]),
        "OTEL_EXPORTER_OTLP_HEADERS: invalid value \"a=1,novalue\": entry \"novalue\" is not key=value"
    );
    assert_eq!(
        env_err(&[ep, ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a=%zz")]),
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS: invalid value \"%zz\": bad %-escape"
    );
    assert_eq!(
        env_err(&[ep, ("OTEL_EXPORTER_OTLP_HEADERS", "bad key=1")]),
        "OTEL_EXPORTER_OTLP_HEADERS: invalid value \"bad key\": invalid header name"
    );
    assert_eq!(
        env_err(&[ep, ("OTEL_EXPORTER_OTLP_HEADERS", "=1")]),
        "OTEL_EXPORTER_OTLP_HEADERS: invalid value \"=1\": entry \"=1\" has an empty key"
    );
}

#[test]
fn timeouts_per_signal_and_bad_values() {
    let s = env_only(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "12000"),
    ]);
    assert_eq!(s.traces.unwrap().timeout, Duration::from_millis(2500));
    assert_eq!(s.metrics.unwrap().timeout, Duration::from_millis(12_000));
    assert_eq!(s.shutdown_timeout, Duration::from_millis(12_000));
    let ep = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
    for bad in ["abc", "0", "-5", "1.5"] {
        assert_eq!(
            env_err(&[ep, ("OTEL_EXPORTER_OTLP_TIMEOUT", bad)]),
            format!(
                "OTEL_EXPORTER_OTLP_TIMEOUT: invalid value {bad:?}: must be a positive integer"
            )
        );
    }
    let cfg = cfg_with(|o| o.timeout_seconds = Some(-1.0));
    assert_eq!(
        err(&cfg, &[]),
        "exporters.otlp.timeout_seconds: invalid value \"-1\": must be a positive number of seconds"
    );
}

#[test]
fn compression_values() {
    let ep = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
    let s = env_only(&[ep, ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP")]);
    assert_eq!(s.traces.unwrap().compression, Compression::Gzip);
    let s = env_only(&[ep, ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")]);
    assert_eq!(s.traces.unwrap().compression, Compression::Gzip);
    assert_eq!(s.metrics.unwrap().compression, Compression::None);
    assert_eq!(
        env_err(&[ep, ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")]),
        "OTEL_EXPORTER_OTLP_COMPRESSION: invalid value \"brotli\": must be gzip or none"
    );
    let cfg = cfg_with(|o| o.compression = Some("zstd".into()));
    assert_eq!(
        err(&cfg, &[]),
        "exporters.otlp.compression: invalid value \"zstd\": must be gzip or none"
    );
}

#[test]
fn protocol_bad_values() {
    assert_eq!(
        env_err(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]),
        "OTEL_EXPORTER_OTLP_PROTOCOL: invalid value \"http/json\": http/json is not supported; \
         use grpc or http/protobuf"
    );
    assert_eq!(
        env_err(&[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "thrift")]),
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: invalid value \"thrift\": must be grpc or http/protobuf"
    );
}

#[test]
fn insecure_decides_the_scheme_of_scheme_less_grpc_endpoints() {
    let ep = ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317");
    assert_eq!(
        env_only(&[ep]).traces.unwrap().endpoint,
        "https://collector:4317"
    );
    let s = env_only(&[ep, ("OTEL_EXPORTER_OTLP_INSECURE", "true")]);
    assert_eq!(s.traces.unwrap().endpoint, "http://collector:4317");
    let s = env_only(&[ep, ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "TRUE")]);
    assert_eq!(s.traces.unwrap().endpoint, "http://collector:4317");
    assert_eq!(s.metrics.unwrap().endpoint, "https://collector:4317");
    // An explicit scheme wins over INSECURE.
    let s = env_only(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ]);
    assert_eq!(s.traces.unwrap().endpoint, "https://c:4317");
    let cfg = cfg_with(|o| {
        o.endpoint = Some("c:4317".into());
        o.insecure = Some(true);
    });
    assert_eq!(
        resolve(&cfg, &[]).unwrap().traces.unwrap().endpoint,
        "http://c:4317"
    );
    assert_eq!(
        env_err(&[ep, ("OTEL_EXPORTER_OTLP_INSECURE", "yes")]),
        "OTEL_EXPORTER_OTLP_INSECURE: invalid value \"yes\": must be true or false"
    );
}

#[test]
fn bad_endpoints_name_the_variable() {
    assert_eq!(
        env_err(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ]),
        "OTEL_EXPORTER_OTLP_ENDPOINT: invalid value \"collector:4318\": scheme must be http:// or https://"
    );
    assert_eq!(
        env_err(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://c:21")]),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: invalid value \"ftp://c:21\": scheme must be http:// or https://"
    );
    let msg = env_err(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://bad host:1")]);
    assert!(
        msg.starts_with(
            "OTEL_EXPORTER_OTLP_ENDPOINT: invalid value \"http://bad host:1\": not a valid URL"
        ),
        "{msg}"
    );
    let cfg = cfg_with(|o| o.endpoint = Some("http://".into()));
    assert!(err(&cfg, &[]).starts_with("exporters.otlp.endpoint: invalid value \"http://\""));
}

#[test]
fn certificate_files_keep_their_origin() {
    let s = env_only(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
        ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "/etc/m-ca.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/client.key"),
    ]);
    let fs = |p: &str, o: &str| {
        Some(FileSetting {
            path: PathBuf::from(p),
            origin: o.into(),
        })
    };
    assert_eq!(
        s.traces.unwrap().tls,
        TlsSettings {
            certificate: fs("/etc/ca.pem", "OTEL_EXPORTER_OTLP_CERTIFICATE"),
            client_certificate: fs("/etc/client.pem", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
            client_key: fs("/etc/client.key", "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        }
    );
    assert_eq!(
        s.metrics.unwrap().tls.certificate,
        fs("/etc/m-ca.pem", "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE")
    );
    let cfg = cfg_with(|o| {
        o.endpoint = Some("https://c:4317".into());
        o.certificate = Some("/cfg/ca.pem".into());
    });
    assert_eq!(
        resolve(&cfg, &[]).unwrap().traces.unwrap().tls.certificate,
        fs("/cfg/ca.pem", "exporters.otlp.certificate")
    );
}

#[test]
fn client_certificate_needs_a_key() {
    assert_eq!(
        env_err(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"),
        ]),
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: invalid value \"/etc/client.pem\": needs a client key"
    );
    assert_eq!(
        env_err(&[("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/k")]),
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: invalid value \"/k\": needs a client certificate"
    );
}

#[test]
fn empty_variables_count_as_unset() {
    let cfg = cfg_with(|o| o.endpoint = Some("http://cfg:4317".into()));
    let s = resolve(
        &cfg,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", " "),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", ""),
        ],
    )
    .unwrap();
    let t = s.traces.unwrap();
    assert_eq!(t.endpoint, "http://cfg:4317");
    assert_eq!(t.timeout, Duration::from_secs(10));
}

#[test]
fn console_flag_from_config() {
    let mut cfg = cfg_with(|o| o.endpoint = Some("http://c:4317".into()));
    cfg.console = Some(true);
    assert!(resolve(&cfg, &[]).unwrap().console);
    let cfg = ExportersConfig {
        console: Some(false),
        ..Default::default()
    };
    assert!(!resolve(&cfg, &[]).unwrap().console);
}

#[test]
fn batch_processor_variables_and_limits() {
    let s = env_only(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "500"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "60000"),
    ]);
    assert_eq!(s.flush_interval, Duration::from_millis(500));
    assert_eq!((s.queue_size, s.max_batch_size), (100, 50));
    assert_eq!(s.metrics_interval, Duration::from_secs(60));
    assert_eq!(
        env_err(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200")
        ]),
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: invalid value \"200\": must be between 1 and the queue size (100)"
    );
    assert_eq!(
        env_err(&[("OTEL_BSP_SCHEDULE_DELAY", "soon")]),
        "OTEL_BSP_SCHEDULE_DELAY: invalid value \"soon\": must be a positive integer"
    );
    let cfg = ExportersConfig {
        flush_interval_seconds: 0.0,
        ..Default::default()
    };
    assert_eq!(
        err(&cfg, &[]),
        "exporters.flush_interval_seconds: invalid value \"0\": must be a positive number of seconds"
    );
    let cfg = ExportersConfig {
        queue_size: 0,
        ..Default::default()
    };
    assert_eq!(
        err(&cfg, &[]),
        "exporters.queue_size: invalid value \"0\": must be at least 1"
    );
    let cfg = ExportersConfig {
        metrics_interval_seconds: f64::NAN,
        ..Default::default()
    };
    assert_eq!(
        err(&cfg, &[]),
        "exporters.metrics_interval_seconds: invalid value \"NaN\": must be a positive number of seconds"
    );
}

#[test]
fn endpoint_hosts_of_every_signal_once() {
    let s = env_only(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:4318/v1/traces",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://collector:4318/v1/metrics",
        ),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://[::1]/v1/logs"),
    ]);
    assert_eq!(
        s.endpoint_hosts(),
        vec![("collector".to_string(), 4318), ("::1".to_string(), 443)]
    );
    assert!(env_only(&[]).endpoint_hosts().is_empty());
}

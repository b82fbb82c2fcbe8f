//! Tests of the logs signal's settings: `OTEL_EXPORTER_OTLP_LOGS_*` and
//! `exporters.otlp.logs_endpoint`, resolved by the same rules as traces and metrics.

use std::time::Duration;

use super::*;

#[test]
fn general_endpoint_serves_logs_too() {
    let s = env_only(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
    let l = s.logs.unwrap();
    assert_eq!(l.endpoint, "http://collector:4317");
    assert_eq!(l.protocol, Protocol::Grpc);
    assert_eq!(l.timeout, Duration::from_secs(10));
    let s = env_only(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c/otlp/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ]);
    assert_eq!(s.logs.unwrap().endpoint, "https://c/otlp/v1/logs");
}

#[test]
fn logs_endpoint_variable_is_used_as_is_and_only_for_logs() {
    let s = env_only(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:1234/custom"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ]);
    assert_eq!(s.logs.unwrap().endpoint, "http://l:1234/custom");
    assert_eq!(s.traces.unwrap().endpoint, "http://general:4318/v1/traces");
    assert_eq!(
        s.metrics.unwrap().endpoint,
        "http://general:4318/v1/metrics"
    );
    // Only a logs endpoint: no traces, so spans (and log records) go to the console too.
    let s = env_only(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:4317")]);
    assert_eq!((s.traces, s.metrics), (None, None));
    assert_eq!(s.logs.unwrap().endpoint, "http://l:4317");
    assert!(s.console);
}

#[test]
fn config_logs_endpoint_is_used_as_is_and_env_overrides_it() {
    let cfg = cfg_with(|o| {
        o.endpoint = Some("http://cfg:4318".into());
        o.logs_endpoint = Some("http://cfg-l:9999/l".into());
        o.protocol = Some("http/protobuf".into());
    });
    let s = resolve(&cfg, &[]).unwrap();
    assert_eq!(s.logs.unwrap().endpoint, "http://cfg-l:9999/l");
    assert_eq!(s.traces.unwrap().endpoint, "http://cfg:4318/v1/traces");
    // Any env endpoint, even the general one, overrides the config's per-signal endpoint.
    let s = resolve(&cfg, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")]).unwrap();
    assert_eq!(s.logs.unwrap().endpoint, "http://env:4318/v1/logs");
    let cfg = cfg_with(|o| o.logs_endpoint = Some("  ".into()));
    assert_eq!(resolve(&cfg, &[]).unwrap().logs, None);
}

#[test]
fn logs_variables_override_the_general_ones() {
    let s = env_only(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=1"),
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "b=2"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "20000"),
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "/etc/l-ca.pem"),
    ]);
    let l = s.logs.as_ref().unwrap();
    assert_eq!(
        (l.protocol, l.endpoint.as_str()),
        (Protocol::HttpProtobuf, "http://c:4318/v1/logs")
    );
    assert_eq!(header_pairs(l), pairs(&[("a", "1"), ("b", "2")]));
    assert_eq!(l.timeout, Duration::from_secs(20));
    assert_eq!(l.compression, Compression::Gzip);
    assert_eq!(
        l.tls.certificate.as_ref().unwrap().origin,
        "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE"
    );
    // The slowest signal bounds shutdown.
    assert_eq!(s.shutdown_timeout, Duration::from_secs(20));
    let t = s.traces.unwrap();
    assert_eq!(
        (t.protocol, t.compression),
        (Protocol::Grpc, Compression::None)
    );
    assert_eq!(header_pairs(&t), pairs(&[("a", "1"), ("b", "1")]));
}

#[test]
fn bad_logs_settings_name_the_variable_or_key() {
    assert_eq!(
        env_err(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "ftp://c:21")]),
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: invalid value \"ftp://c:21\": scheme must be http:// or https://"
    );
    assert_eq!(
        env_err(&[("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json")]),
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: invalid value \"http/json\": http/json is not supported; \
         use grpc or http/protobuf"
    );
    let cfg = cfg_with(|o| {
        o.logs_endpoint = Some("collector:4318".into());
        o.protocol = Some("http/protobuf".into());
    });
    assert_eq!(
        err(&cfg, &[]),
        "exporters.otlp.logs_endpoint: invalid value \"collector:4318\": scheme must be http:// or https://"
    );
}

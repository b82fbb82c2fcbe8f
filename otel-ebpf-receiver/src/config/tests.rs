//! Tests of config parsing, the default file and every validation rule.

use super::*;

mod apm;
mod kernel_timing;
mod reference;

pub(super) const DEFAULT_YAML: &str = include_str!("../../../config/default.yaml");

pub(super) fn parse(yaml: &str) -> Config {
    Config::from_yaml(yaml, "test.yaml").unwrap_or_else(|e| panic!("{yaml:?} should be valid: {e}"))
}

/// The (key path, message) of the error `yaml` must cause; also checks the error's shape.
fn err(yaml: &str) -> (String, String) {
    let e = Config::from_yaml(yaml, "test.yaml").expect_err(yaml);
    let line = e.to_string();
    assert!(!line.contains('\n'), "error is not one line: {line:?}");
    assert!(
        line.starts_with("config test.yaml: "),
        "error does not name the file: {line:?}"
    );
    match e {
        ConfigError::Invalid { key, message, .. } => (key, message),
        other => panic!("unexpected {other:?}"),
    }
}

pub(super) fn assert_err(yaml: &str, key: &str, needle: &str) {
    let (k, m) = err(yaml);
    assert_eq!(k, key, "key path for {yaml:?} (message {m:?})");
    assert!(
        m.contains(needle),
        "message {m:?} for {yaml:?} lacks {needle:?}"
    );
}

#[test]
fn default_yaml_equals_builtin() {
    assert_eq!(parse(DEFAULT_YAML), Config::default());
    assert_eq!(Config::builtin(), Config::default());
    Config::builtin().validate().unwrap();
}

fn key_paths(v: &serde_yaml_ng::Value, prefix: &str, out: &mut Vec<String>) {
    if let serde_yaml_ng::Value::Mapping(m) = v {
        for (k, v) in m {
            let path = format!("{prefix}{}", k.as_str().unwrap());
            // `headers` is a free-form map: its (empty) content is not a key of ours.
            if !path.ends_with(".headers") {
                key_paths(v, &format!("{path}."), out);
            }
            out.push(path);
        }
    }
}

#[test]
fn default_yaml_lists_every_key() {
    let file: serde_yaml_ng::Value = serde_yaml_ng::from_str(DEFAULT_YAML).unwrap();
    let builtin = serde_yaml_ng::to_value(Config::default()).unwrap();
    let (mut a, mut b) = (vec![], vec![]);
    key_paths(&file, "", &mut a);
    key_paths(&builtin, "", &mut b);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert!(b.len() >= 30, "{b:?}");
    // Every key is documented: a comment precedes each section and each scalar key's group.
    assert!(DEFAULT_YAML.contains("large body is never copied whole"));
}

#[test]
fn blank_and_partial_files() {
    for blank in ["", "\n\n", "# only a comment\n", "---\n# x\n"] {
        assert_eq!(parse(blank), Config::default(), "{blank:?}");
    }
    let c = parse("receiver:\n  capture_bytes: 512\n  filters:\n    include_ports: [8080]\n");
    assert_eq!(c.receiver.capture_bytes, 512);
    assert_eq!(c.receiver.filters.include_ports, vec![8080]);
    assert_eq!(c.receiver.ring_buffer_bytes, 4 << 20);
    assert_eq!(c.exporters, ExportersConfig::default());
    // Sections and lists left empty (every key under them commented out) take their defaults.
    for null in [
        "receiver:\n",
        "receiver:\n  filters:\n",
        "receiver:\n  filters:\n    include_ports:\n    exclude_pids: ~\n",
        "exporters:\n  otlp:\n    headers:\n",
        "exporters:\n  otlp:\n",
        "telemetry:\n",
    ] {
        assert_eq!(parse(null), Config::default(), "{null:?}");
    }
    // Integers are accepted for seconds.
    let c = parse("exporters:\n  flush_interval_seconds: 2\n  otlp: {timeout_seconds: 5}\n");
    assert_eq!(c.exporters.flush_interval(), Duration::from_secs(2));
    assert_eq!(c.exporters.otlp.timeout(), Some(Duration::from_secs(5)));
    assert_eq!(c.receiver.request_timeout(), Duration::from_secs(30));
    assert_eq!(c.exporters.metrics_interval(), Duration::from_secs(10));
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    assert_err(
        "recevier: {}\n",
        "recevier",
        "unknown field `recevier`, expected one of `receiver`",
    );
    assert_err(
        "receiver:\n  capture_byte: 10\n",
        "receiver.capture_byte",
        "unknown field",
    );
    let yaml = "receiver:\n  filters:\n    include_port: [80]\n";
    assert_err(
        yaml,
        "receiver.filters.include_port",
        "unknown field `include_port`",
    );
    // The position is given too, and the path is not repeated in the message.
    let (_, m) = err(yaml);
    assert!(
        m.starts_with("unknown field `include_port`, expected one of"),
        "{m}"
    );
    assert!(m.ends_with("at line 3 column 5"), "{m}");
    let yaml = "exporters:\n  otlp:\n    endpiont: http://x:4317\n";
    assert_err(yaml, "exporters.otlp.endpiont", "unknown field");
    assert_err(
        "telemetry:\n  health: x\n",
        "telemetry.health",
        "unknown field",
    );
}

#[test]
fn wrong_types_name_the_element() {
    assert_err(
        "receiver:\n  filters:\n    include_ports: [80, 70000]\n",
        "receiver.filters.include_ports[1]",
        "70000",
    );
    assert_err(
        "receiver:\n  capture_bytes: lots\n",
        "receiver.capture_bytes",
        "invalid type",
    );
    assert_err(
        "exporters:\n  queue_size: -1\n",
        "exporters.queue_size",
        "-1",
    );
    assert_err("receiver: [1]\n", "receiver", "invalid type");
    let (_, m) = err("receiver:\n  capture_bytes: lots\n");
    assert!(
        m.starts_with("invalid type: string \"lots\", expected u32"),
        "{m}"
    );
    assert_err(
        "receiver:\n  capture_bytes: 1\n  capture_bytes: 2\n",
        "receiver",
        "duplicate",
    );
    // YAML syntax errors name the document and the position.
    let (k, m) = err("receiver: [\n");
    assert_eq!(k, "receiver");
    assert!(m.contains("line"), "{m}");
}

#[test]
fn capture_bytes_range() {
    assert_eq!(
        parse("receiver: {capture_bytes: 1}").receiver.capture_bytes,
        1
    );
    assert_eq!(
        parse("receiver: {capture_bytes: 16384}")
            .receiver
            .capture_bytes,
        16384
    );
    assert_err(
        "receiver: {capture_bytes: 0}",
        "receiver.capture_bytes",
        "1..=16384",
    );
    assert_err(
        "receiver: {capture_bytes: 16385}",
        "receiver.capture_bytes",
        "got 16385",
    );
}

#[test]
fn ring_buffer_range() {
    let page = validate::page_size();
    assert_eq!(
        parse(&format!("receiver: {{ring_buffer_bytes: {page}}}"))
            .receiver
            .ring_buffer_bytes,
        page
    );
    assert_eq!(
        parse("receiver: {ring_buffer_bytes: 1073741824}")
            .receiver
            .ring_buffer_bytes,
        1 << 30
    );
    for bad in [0u64, 2048, 12288, 3 << 20, 1 << 31] {
        assert_err(
            &format!("receiver: {{ring_buffer_bytes: {bad}}}"),
            "receiver.ring_buffer_bytes",
            "power of two",
        );
    }
}

#[test]
fn seconds_must_be_positive_and_finite() {
    for key in [
        "receiver.request_timeout_seconds",
        "exporters.flush_interval_seconds",
        "exporters.metrics_interval_seconds",
        "exporters.otlp.timeout_seconds",
    ] {
        let (path, leaf) = key.rsplit_once('.').unwrap();
        let mut yaml = String::new();
        for (depth, part) in path.split('.').enumerate() {
            yaml += &format!("{}{part}:\n", "  ".repeat(depth));
        }
        let indent = "  ".repeat(path.split('.').count());
        for bad in ["0", "-1", ".nan", ".inf", "-.inf", "0.0001", "1e12"] {
            assert_err(
                &format!("{yaml}{indent}{leaf}: {bad}\n"),
                key,
                "finite number of seconds",
            );
        }
        parse(&format!("{yaml}{indent}{leaf}: 0.5\n"));
    }
}

#[test]
fn queue_and_batch_sizes() {
    assert_err("exporters: {queue_size: 0}", "exporters.queue_size", "1..=");
    assert_err(
        "exporters: {queue_size: 16777217}",
        "exporters.queue_size",
        "got 16777217",
    );
    assert_err(
        "exporters: {max_batch_size: 0}",
        "exporters.max_batch_size",
        "1..=queue_size",
    );
    assert_err(
        "exporters: {queue_size: 100, max_batch_size: 101}",
        "exporters.max_batch_size",
        "got 101",
    );
    let c = parse("exporters: {queue_size: 1, max_batch_size: 1}");
    assert_eq!((c.exporters.queue_size, c.exporters.max_batch_size), (1, 1));
}

#[test]
fn protocol_and_compression() {
    for ok in ["grpc", "http/protobuf"] {
        parse(&format!("exporters: {{otlp: {{protocol: {ok}}}}}"));
    }
    assert_err(
        "exporters: {otlp: {protocol: http/json}}",
        "exporters.otlp.protocol",
        "`grpc` or `http/protobuf`",
    );
    assert_err(
        "exporters: {otlp: {protocol: GRPC}}",
        "exporters.otlp.protocol",
        "\"GRPC\"",
    );
    for ok in ["gzip", "none"] {
        parse(&format!("exporters: {{otlp: {{compression: {ok}}}}}"));
    }
    assert_err(
        "exporters: {otlp: {compression: zstd}}",
        "exporters.otlp.compression",
        "`gzip` or `none`",
    );
}

#[test]
fn otlp_endpoints_headers_and_tls() {
    parse(
        "exporters: {otlp: {endpoint: 'http://127.0.0.1:4317', traces_endpoint: 'https://c.example/v1/traces'}}",
    );
    for bad in ["''", "127.0.0.1:4317", "'ftp://x'", "'http://'"] {
        assert_err(
            &format!("exporters: {{otlp: {{endpoint: {bad}}}}}"),
            "exporters.otlp.endpoint",
            "URL",
        );
    }
    assert_err(
        "exporters: {otlp: {metrics_endpoint: 'grpc://x:1'}}",
        "exporters.otlp.metrics_endpoint",
        "URL",
    );
    parse("exporters: {otlp: {headers: {authorization: 'Bearer x', X-Tenant: a}}}");
    assert_err(
        "exporters: {otlp: {headers: {'bad name': x}}}",
        "exporters.otlp.headers",
        "header name",
    );
    assert_err(
        "exporters: {otlp: {headers: {a: \"x\\ny\"}}}",
        "exporters.otlp.headers.a",
        "header value",
    );
    parse("exporters: {otlp: {client_certificate: c.pem, client_key: k.pem, certificate: ca.pem}}");
    assert_err(
        "exporters: {otlp: {client_certificate: c.pem}}",
        "exporters.otlp.client_key",
        "mTLS",
    );
    assert_err(
        "exporters: {otlp: {client_key: k.pem}}",
        "exporters.otlp.client_certificate",
        "mTLS",
    );
    assert_err(
        "exporters: {otlp: {certificate: ''}}",
        "exporters.otlp.certificate",
        "empty path",
    );
}

#[test]
fn telemetry_addresses() {
    let c = parse("telemetry: {health_address: '', metrics_address: '[::1]:9000'}");
    assert_eq!(c.telemetry.health_addr().unwrap(), None);
    assert_eq!(
        c.telemetry.metrics_addr().unwrap(),
        Some("[::1]:9000".parse().unwrap())
    );
    assert_err(
        "telemetry: {health_address: 'localhost:13133'}",
        "telemetry.health_address",
        "not IP:port",
    );
    assert_err(
        "telemetry: {metrics_address: '127.0.0.1'}",
        "telemetry.metrics_address",
        "not IP:port",
    );
    assert_err(
        "telemetry: {health_address: '127.0.0.1:9', metrics_address: '127.0.0.1:9'}",
        "telemetry.metrics_address",
        "also health_address",
    );
    // Port 0 (any free port) twice is two different ports.
    parse("telemetry: {health_address: '127.0.0.1:0', metrics_address: '127.0.0.1:0'}");
}

#[test]
fn filters_values_and_overlap() {
    parse(
        "receiver: {filters: {include_pids: [1, 2], exclude_pids: [3], include_ports: [80], exclude_ports: [22]}}",
    );
    assert_err(
        "receiver: {filters: {include_pids: [5, 0]}}",
        "receiver.filters.include_pids[1]",
        "pid 0",
    );
    assert_err(
        "receiver: {filters: {exclude_pids: [0]}}",
        "receiver.filters.exclude_pids[0]",
        "pid 0",
    );
    assert_err(
        "receiver: {filters: {include_ports: [0]}}",
        "receiver.filters.include_ports[0]",
        "port 0",
    );
    assert_err(
        "receiver: {filters: {exclude_ports: [1, 0]}}",
        "receiver.filters.exclude_ports[1]",
        "port 0",
    );
    assert_err(
        "receiver: {filters: {include_executables: ['']}}",
        "receiver.filters.include_executables[0]",
        "not an executable",
    );
    assert_err(
        "receiver: {filters: {exclude_executables: [a, /usr/bin/]}}",
        "receiver.filters.exclude_executables[1]",
        "not an executable",
    );
    assert_err(
        "receiver: {filters: {include_pids: [7, 42], exclude_pids: [1, 42]}}",
        "receiver.filters.exclude_pids[1]",
        "pid 42 is also listed in include_pids[1]",
    );
    assert_err(
        "receiver: {filters: {include_ports: [8080], exclude_ports: [8080]}}",
        "receiver.filters.exclude_ports[0]",
        "port 8080 is also listed in include_ports[0]",
    );
    assert_err(
        "receiver: {filters: {include_executables: [nginx], exclude_executables: [nginx]}}",
        "receiver.filters.exclude_executables[0]",
        "executable nginx",
    );
}

#[test]
fn validate_checks_in_memory_configs() {
    let mut c = Config::builtin();
    c.receiver.capture_bytes = 0;
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.starts_with("config <in-memory config>: receiver.capture_bytes: "),
        "{e}"
    );
}

#[test]
fn load_reads_files_and_names_them() {
    let dir = std::env::temp_dir().join(format!("otel-ebpf-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(&good, "receiver:\n  capture_url_query: true\n").unwrap();
    assert!(Config::load(&good).unwrap().receiver.capture_url_query);
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "receiver:\n  filters:\n    include_ports: [0]\n").unwrap();
    let e = Config::load(&bad).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "config {}: receiver.filters.include_ports[0]: port 0 never appears on a connection",
            bad.display()
        )
    );
    let missing = dir.join("missing.yaml");
    let e = Config::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("missing.yaml"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn capture_hooks_values() {
    use super::CaptureHooks;
    assert_eq!(parse("{}").receiver.capture_hooks, CaptureHooks::Auto);
    for (text, want) in [
        ("auto", CaptureHooks::Auto),
        ("fentry", CaptureHooks::Fentry),
        ("kprobe", CaptureHooks::Kprobe),
        ("tracepoint", CaptureHooks::Tracepoint),
    ] {
        let c = parse(&format!("receiver: {{capture_hooks: {text}}}"));
        assert_eq!(c.receiver.capture_hooks, want, "{text}");
    }
    assert_eq!(
        parse("receiver: {capture_hooks: null}")
            .receiver
            .capture_hooks,
        CaptureHooks::Auto
    );
    let (path, msg) = err("receiver: {capture_hooks: uprobe}");
    assert_eq!(path, "receiver.capture_hooks", "{msg}");
    assert!(
        msg.contains("`auto`, `fentry`, `kprobe`, `tracepoint`"),
        "{msg}"
    );
}

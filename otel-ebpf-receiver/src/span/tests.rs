//! Unit tests of span building: one test per semconv rule.

use super::*;
use crate::attr::{AttrValue, Attributes};
use crate::events::Tuple;

const OFFSET: i128 = 1_700_000_000_000_000_000;

fn exchange(side: Side, status: Option<u16>) -> HttpExchange {
    HttpExchange {
        pid: 42,
        conn_id: 7,
        side,
        tuple: Some(Tuple {
            local: "10.0.0.1:8080".parse().unwrap(),
            remote: "10.0.0.2:51000".parse().unwrap(),
        }),
        method: "GET".into(),
        target: "/api/items?id=3&token=x".into(),
        version: "1.1".into(),
        host: Some("shop.example:8080".into()),
        user_agent: Some("curl/8.5.0".into()),
        status,
        start_ns: 1_000,
        end_ns: 251_000,
        request_body_bytes: 0,
        response_body_bytes: 12,
        error: None,
        grpc: None,
        headers_incomplete: false,
        context: Default::default(),
    }
}

fn build(ex: &HttpExchange) -> SpanRecord {
    build_opts(ex, SpanOptions::default())
}

fn build_opts(ex: &HttpExchange, opts: SpanOptions) -> SpanRecord {
    let s = build_span(ex.clone(), &Clock::with_offset(OFFSET), &opts);
    assert_eq!(s.pid(), ex.pid);
    s
}

/// Attributes as `key=value` strings, in order (ints bare, strings quoted).
fn attrs(s: &SpanRecord) -> Vec<String> {
    let mut a = Attributes::new();
    s.attributes(&mut a);
    a.iter()
        .map(|(k, v)| match v {
            AttrValue::Str(v) => format!("{k}={v:?}"),
            AttrValue::Int(v) => format!("{k}={v}"),
            other => panic!("unexpected value {other:?}"),
        })
        .collect()
}

fn get(s: &SpanRecord, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    attrs(s)
        .into_iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

fn status(s: &SpanRecord) -> (i32, String) {
    let (error, msg) = s.status();
    (if error { ERROR } else { UNSET }, msg.to_string())
}

const UNSET: i32 = 0;
const ERROR: i32 = 2;

#[test]
fn server_span_has_every_attribute_in_order() {
    let s = build(&exchange(Side::Server, Some(200)));
    assert_eq!(s.name(), "GET");
    assert_eq!(s.side(), Side::Server);
    assert_eq!(s.start_unix_ns, (OFFSET + 1_000) as u64);
    assert_eq!(s.end_unix_ns, (OFFSET + 251_000) as u64);
    assert_eq!(
        attrs(&s),
        [
            r#"http.request.method="GET""#,
            r#"url.path="/api/items""#,
            r#"url.scheme="http""#,
            "http.response.status_code=200",
            r#"server.address="shop.example""#,
            "server.port=8080",
            r#"client.address="10.0.0.2""#,
            "client.port=51000",
            r#"network.peer.address="10.0.0.2""#,
            "network.peer.port=51000",
            r#"network.protocol.name="http""#,
            r#"network.protocol.version="1.1""#,
            r#"user_agent.original="curl/8.5.0""#,
        ]
    );
    assert_eq!(status(&s), (UNSET, String::new()));
    assert!(s.trace.parent_span_id.is_none());
}

#[test]
fn client_span_uses_host_header_and_remote_peer() {
    let mut ex = exchange(Side::Client, Some(201));
    ex.method = "POST".into();
    ex.host = Some("api.example".into());
    ex.user_agent = None;
    let s = build(&ex);
    assert_eq!((s.name(), s.side()), ("POST", Side::Client));
    assert_eq!(
        attrs(&s),
        [
            r#"http.request.method="POST""#,
            r#"url.path="/api/items""#,
            r#"url.scheme="http""#,
            "http.response.status_code=201",
            r#"server.address="api.example""#,
            "server.port=51000",
            r#"url.full="http://api.example:51000/api/items""#,
            r#"network.peer.address="10.0.0.2""#,
            "network.peer.port=51000",
            r#"network.protocol.name="http""#,
            r#"network.protocol.version="1.1""#,
        ]
    );
}

#[test]
fn client_span_without_host_uses_remote_address() {
    let mut ex = exchange(Side::Client, Some(200));
    ex.host = None;
    let s = build(&ex);
    assert_eq!(get(&s, "server.address").unwrap(), r#""10.0.0.2""#);
    assert_eq!(get(&s, "server.port").unwrap(), "51000");
    ex.tuple = None;
    let s = build(&ex);
    assert_eq!(
        (get(&s, "server.address"), get(&s, "server.port")),
        (None, None)
    );
    assert_eq!(get(&s, "network.peer.address"), None);
    // Host without port and no tuple: the scheme's default port.
    ex.host = Some("a.example".into());
    assert_eq!(get(&build(&ex), "server.port").unwrap(), "80");
}

#[test]
fn server_span_without_host_uses_local_address() {
    let mut ex = exchange(Side::Server, Some(200));
    ex.host = None;
    let s = build(&ex);
    assert_eq!(get(&s, "server.address").unwrap(), r#""10.0.0.1""#);
    assert_eq!(get(&s, "server.port").unwrap(), "8080");
    // Host port differs (behind a proxy): the local port is what was observed.
    ex.host = Some("[2001:db8::1]:9999".into());
    let s = build(&ex);
    assert_eq!(get(&s, "server.address").unwrap(), r#""2001:db8::1""#);
    assert_eq!(get(&s, "server.port").unwrap(), "8080");
}

#[test]
fn status_rules_per_kind() {
    for (side, code, want_error) in [
        (Side::Server, 200, false),
        (Side::Server, 302, false),
        (Side::Server, 404, false),
        (Side::Server, 499, false),
        (Side::Server, 500, true),
        (Side::Server, 503, true),
        (Side::Client, 200, false),
        (Side::Client, 304, false),
        (Side::Client, 400, true),
        (Side::Client, 404, true),
        (Side::Client, 502, true),
        (Side::Server, 600, true),
        (Side::Client, 99, true),
    ] {
        let s = build(&exchange(side, Some(code)));
        let et = get(&s, "error.type");
        if want_error {
            assert_eq!(status(&s), (ERROR, String::new()), "{side:?} {code}");
            assert_eq!(
                et,
                Some(format!("{:?}", code.to_string())),
                "{side:?} {code}"
            );
        } else {
            assert_eq!(status(&s), (UNSET, String::new()), "{side:?} {code}");
            assert_eq!(et, None, "{side:?} {code}");
        }
    }
}

#[test]
fn exchange_errors_set_error_type_and_status() {
    for (err, name) in [
        (ExchangeError::Timeout, "timeout"),
        (ExchangeError::ConnectionClosed, "connection_closed"),
        (ExchangeError::ProcessExited, "process_exited"),
    ] {
        for side in [Side::Server, Side::Client] {
            let mut ex = exchange(side, None);
            ex.error = Some(err);
            let s = build(&ex);
            assert_eq!(get(&s, "error.type"), Some(format!("{name:?}")));
            assert_eq!(get(&s, "http.response.status_code"), None);
            let (code, msg) = status(&s);
            assert_eq!(code, ERROR);
            assert_eq!(msg, describe(err));
        }
    }
    // An exchange error wins over an error status code that was already seen.
    let mut ex = exchange(Side::Server, Some(500));
    ex.error = Some(ExchangeError::ConnectionClosed);
    let s = build(&ex);
    assert_eq!(get(&s, "error.type").unwrap(), r#""connection_closed""#);
    assert_eq!(get(&s, "http.response.status_code").unwrap(), "500");
}

#[test]
fn unknown_methods_become_other() {
    for m in ["FOO", "get", "PROPFIND"] {
        let mut ex = exchange(Side::Server, Some(200));
        ex.method = m.into();
        let s = build(&ex);
        assert_eq!(s.name(), "HTTP");
        assert_eq!(get(&s, "http.request.method").unwrap(), r#""_OTHER""#);
        assert_eq!(
            get(&s, "http.request.method_original"),
            Some(format!("{m:?}"))
        );
    }
    for m in value::KNOWN_HTTP_METHODS {
        let mut ex = exchange(Side::Client, Some(200));
        ex.method = m.into();
        let s = build(&ex);
        assert_eq!(s.name(), m);
        assert_eq!(get(&s, "http.request.method_original"), None);
    }
}

#[test]
fn query_only_when_enabled() {
    let ex = exchange(Side::Server, Some(200));
    assert_eq!(get(&build(&ex), "url.query"), None);
    let s = build_opts(
        &ex,
        SpanOptions {
            capture_url_query: true,
        },
    );
    assert_eq!(get(&s, "url.query").unwrap(), r#""id=3&token=REDACTED""#);
    assert_eq!(get(&s, "url.path").unwrap(), r#""/api/items""#);
    let cfg = ReceiverConfig {
        capture_url_query: true,
        ..Default::default()
    };
    assert!(SpanOptions::from_config(&cfg).capture_url_query);
}

#[test]
fn absolute_form_target() {
    let mut ex = exchange(Side::Client, Some(200));
    ex.target = "http://user:pw@origin.example:8081/a/b?x=1#frag".into();
    ex.host = None;
    let s = build_opts(
        &ex,
        SpanOptions {
            capture_url_query: true,
        },
    );
    assert_eq!(get(&s, "url.path").unwrap(), r#""/a/b""#);
    assert_eq!(get(&s, "url.query").unwrap(), r#""x=1""#);
    assert_eq!(get(&s, "server.address").unwrap(), r#""origin.example""#);
    assert_eq!(get(&s, "server.port").unwrap(), "8081");
    ex.target = "http://origin.example?q".into();
    assert_eq!(get(&build(&ex), "url.path").unwrap(), r#""/""#);
}

#[test]
fn http_1_0_and_ipv6_peer() {
    let mut ex = exchange(Side::Server, Some(200));
    ex.version = "1.0".into();
    ex.tuple = Some(Tuple {
        local: "[2001:db8::1]:80".parse().unwrap(),
        remote: "[2001:db8::2]:40000".parse().unwrap(),
    });
    ex.host = None;
    let s = build(&ex);
    assert_eq!(get(&s, "network.protocol.version").unwrap(), r#""1.0""#);
    assert_eq!(get(&s, "server.address").unwrap(), r#""2001:db8::1""#);
    assert_eq!(get(&s, "client.address").unwrap(), r#""2001:db8::2""#);
}

#[test]
fn ids_are_random_and_non_zero() {
    let ex = exchange(Side::Server, Some(200));
    let (a, b) = (build(&ex), build(&ex));
    assert!(a.trace.trace_id.iter().any(|&x| x != 0) && a.trace.span_id.iter().any(|&x| x != 0));
    assert_ne!(a.trace.trace_id, b.trace.trace_id);
    assert_ne!(a.trace.span_id, b.trace.span_id);
    assert_eq!(a.trace.otlp_flags(), 0x101);
}

#[test]
fn end_before_start_is_clamped() {
    let mut ex = exchange(Side::Server, Some(200));
    ex.end_ns = 10;
    let s = build(&ex);
    assert_eq!(s.end_unix_ns, s.start_unix_ns);
    assert_eq!(s.duration_ns(), 0);
}

#[test]
fn url_full_on_client_spans_only() {
    let mut ex = exchange(Side::Client, Some(200));
    ex.host = Some("api.example".into());
    ex.tuple = None;
    let full = |ex: &HttpExchange, capture_url_query| {
        get(
            &build_opts(ex, SpanOptions { capture_url_query }),
            "url.full",
        )
    };
    assert_eq!(
        full(&ex, false).unwrap(),
        r#""http://api.example/api/items""#
    );
    assert_eq!(
        full(&ex, true).unwrap(),
        r#""http://api.example/api/items?id=3&token=REDACTED""#
    );
    ex.host = Some("[2001:db8::5]:8443".into());
    assert_eq!(
        full(&ex, false).unwrap(),
        r#""http://[2001:db8::5]:8443/api/items""#
    );
    ex.method = "CONNECT".into();
    ex.target = "db.example:5432".into();
    assert_eq!(full(&ex, false), None);
    assert_eq!(full(&exchange(Side::Server, Some(200)), true), None);
}

#[test]
fn sensitive_query_values_are_redacted() {
    let mut ex = exchange(Side::Client, Some(200));
    ex.target = "/o?a=1&sig=s3cr3t&X-Amz-Signature=abc&SIG=keep&flag".into();
    let s = build_opts(
        &ex,
        SpanOptions {
            capture_url_query: true,
        },
    );
    let want = "a=1&sig=REDACTED&X-Amz-Signature=REDACTED&SIG=keep&flag";
    assert_eq!(get(&s, "url.query"), Some(format!("{want:?}")));
    let full = get(&s, "url.full").unwrap();
    assert!(full.ends_with(&format!("/o?{want}\"")), "{full}");
}

#[test]
fn tls_exchanges_are_https() {
    let mut ex = exchange(Side::Client, Some(200));
    ex.conn_id |= crate::protocol::TLS_STREAM;
    ex.host = Some("example.com".into());
    ex.tuple = None;
    let s = build_span(ex, &Clock::with_offset(0), &SpanOptions::default());
    let mut a = Attributes::new();
    s.attributes(&mut a);
    let get = |k: &str| a.get(k).map(|v| v.to_string()).unwrap_or_default();
    assert_eq!(get("url.scheme"), "https");
    assert_eq!(get("server.port"), "443");
    assert!(
        get("url.full").starts_with("https://example.com/"),
        "{}",
        get("url.full")
    );
}

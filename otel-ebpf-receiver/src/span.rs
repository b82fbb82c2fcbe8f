//! Span building.
//!
//! Stage: protocol → **span** → enrich/export. Input: one [`HttpExchange`] (monotonic
//! timestamps, request line, `Host`/`User-Agent`, status, error), the [`Clock`] and
//! [`SpanOptions`]. Output: an [`ObservedSpan`]: an OTLP span following the stable OTel HTTP
//! semantic conventions, kind SERVER or CLIENT, without resource (attached in export).
//!
//! Limits: every span is a root span with fresh random ids: the bytes carry no trace context we
//! act on, so client and server spans of one request are not linked. No `http.route` (HTTP/1
//! bytes carry none), so the span name is just the method. `url.scheme` is `https` for
//! exchanges rebuilt from TLS plaintext ([`HttpExchange::is_tls`]), else `http`. Pure code,
//! no IO.
//!
//! `error.type` values: the status code as a string (e.g. `"500"`) for error statuses (server
//! spans: ≥ 500; client spans: ≥ 400; both: < 100 or ≥ 600), or for an
//! [`ExchangeError`]: `timeout` (no response within the request timeout), `connection_closed`
//! (connection closed before the response completed), `process_exited` (process exited before
//! the response completed). An exchange error wins over the status code.
//!
//! Client spans also get `url.full` (semconv: required there), rebuilt from `server.address`,
//! `server.port` and the target. Query values of semconv's sensitive keys (`sig`,
//! `X-Amz-Signature`, …) are redacted in `url.query` and `url.full`.

use crate::clock::Clock;
use crate::config::ReceiverConfig;
use crate::protocol::{ExchangeError, HttpExchange, Side};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{
    Span, SpanFlags, Status, span::SpanKind, status::StatusCode,
};
use otel_ebpf_semconv::{attribute as attr, value};
use std::net::SocketAddr;

/// A span observed for process `pid` (its resource is attached in export).
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedSpan {
    /// Process id (host pid namespace) of the observed process.
    pub pid: u32,
    /// The span; timestamps are Unix-epoch ns (converted by [`Clock::to_unix_nanos`]).
    pub span: Span,
}

/// What [`build_span`] records beyond the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanOptions {
    /// Record `url.query` (from [`ReceiverConfig::capture_url_query`]; off by default).
    pub capture_url_query: bool,
}

impl SpanOptions {
    /// Options taken from the receiver configuration.
    pub fn from_config(cfg: &ReceiverConfig) -> Self {
        Self {
            capture_url_query: cfg.capture_url_query,
        }
    }
}

/// Builds the OTLP span of one exchange.
///
/// Name `{method}` (or `HTTP` for unknown methods); kind SERVER for [`Side::Server`], CLIENT
/// for [`Side::Client`]; start/end = `clock.to_unix_nanos(ex.start_ns / ex.end_ns)`; random
/// non-zero trace id (16 bytes) and span id (8 bytes); flags: sampled, parent not remote.
/// Attributes and status: see the module docs and [`otel_ebpf_semconv::attribute`].
pub fn build_span(ex: &HttpExchange, clock: &Clock, opts: &SpanOptions) -> ObservedSpan {
    if let Some(call) = &ex.grpc {
        return grpc::build_span(ex, call, clock);
    }
    let known = value::KNOWN_HTTP_METHODS
        .binary_search(&ex.method.as_str())
        .is_ok();
    let name = if known {
        ex.method.clone()
    } else {
        value::SPAN_NAME_OTHER.to_string()
    };
    let mut attrs = Vec::with_capacity(16);
    // An empty method is one HTTP/2 could not decode: left out rather than guessed.
    if !ex.method.is_empty() {
        let method = if known {
            ex.method.as_str()
        } else {
            value::METHOD_OTHER
        };
        attrs.push(kv_str(attr::HTTP_REQUEST_METHOD, method));
        if !known {
            attrs.push(kv_str(attr::HTTP_REQUEST_METHOD_ORIGINAL, &ex.method));
        }
    }
    let target = Target::parse(&ex.target);
    if let Some(path) = target.path {
        attrs.push(kv_str(attr::URL_PATH, path));
    }
    let query = target
        .query
        .filter(|q| opts.capture_url_query && !q.is_empty())
        .map(redact_query);
    if let Some(q) = &query {
        attrs.push(kv_str(attr::URL_QUERY, q));
    }
    let scheme = if ex.is_tls() {
        value::SCHEME_HTTPS
    } else {
        value::SCHEME_HTTP
    };
    attrs.push(kv_str(attr::URL_SCHEME, scheme));
    if let Some(code) = ex.status {
        attrs.push(kv_int(attr::HTTP_RESPONSE_STATUS_CODE, code.into()));
    }

    let (server_addr, server_port) = server_endpoint(ex, &target);
    if let Some(a) = &server_addr {
        attrs.push(kv_str(attr::SERVER_ADDRESS, a));
    }
    if let Some(p) = server_port {
        attrs.push(kv_int(attr::SERVER_PORT, p.into()));
    }
    if ex.side == Side::Client
        && let (Some(host), Some(path)) = (&server_addr, target.path)
        && path.starts_with('/')
    {
        let url = full_url(scheme, host, server_port, path, query.as_deref());
        attrs.push(kv_str(attr::URL_FULL, &url));
    }
    push_network(ex, &mut attrs);

    let error_type = error_type(ex);
    finish(ex, clock, name, attrs, error_type)
}

/// `server.address` / `server.port`: client spans take the authority the request names (Host
/// header / `:authority`, else an absolute-form target's), else the remote end; server spans
/// the authority's host and the local port.
pub(crate) fn server_endpoint(
    ex: &HttpExchange,
    target: &Target<'_>,
) -> (Option<String>, Option<u16>) {
    let authority = ex
        .host
        .as_deref()
        .or(target.authority)
        .and_then(split_host_port);
    let local = ex.tuple.map(|t| t.local);
    let remote = ex.tuple.map(|t| t.remote);
    match ex.side {
        Side::Client => (
            authority
                .map(|a| a.0.to_string())
                .or(remote.map(|r| r.ip().to_string())),
            authority
                .and_then(|a| a.1)
                .or(remote.map(|r| r.port()))
                .or(authority.map(|_| if ex.is_tls() { 443 } else { 80 })),
        ),
        Side::Server => (
            authority
                .map(|a| a.0.to_string())
                .or(local.map(|l| l.ip().to_string())),
            local.map(|l| l.port()).or(authority.and_then(|a| a.1)),
        ),
    }
}

/// `client.*` (server spans), `network.peer.*`, `network.protocol.*`, `user_agent.original`
/// and the HTTP/2 incomplete-headers marker.
pub(crate) fn push_network(ex: &HttpExchange, attrs: &mut Vec<KeyValue>) {
    let remote = ex.tuple.map(|t| t.remote);
    if let (Side::Server, Some(r)) = (ex.side, remote) {
        push_addr(attrs, attr::CLIENT_ADDRESS, attr::CLIENT_PORT, r);
    }
    if let Some(r) = remote {
        push_addr(
            attrs,
            attr::NETWORK_PEER_ADDRESS,
            attr::NETWORK_PEER_PORT,
            r,
        );
    }
    attrs.push(kv_str(attr::NETWORK_PROTOCOL_NAME, value::PROTOCOL_HTTP));
    if !ex.version.is_empty() {
        attrs.push(kv_str(attr::NETWORK_PROTOCOL_VERSION, &ex.version));
    }
    if let Some(ua) = &ex.user_agent {
        attrs.push(kv_str(attr::USER_AGENT_ORIGINAL, ua));
    }
    if ex.headers_incomplete {
        attrs.push(kv(attr::HTTP2_HEADERS_INCOMPLETE, Value::BoolValue(true)));
    }
}

/// The span: status ERROR iff `error_type`, message from the exchange error; ids, kind, times.
pub(crate) fn finish(
    ex: &HttpExchange,
    clock: &Clock,
    name: String,
    mut attrs: Vec<KeyValue>,
    error_type: Option<String>,
) -> ObservedSpan {
    let status = Status {
        code: if error_type.is_some() {
            StatusCode::Error
        } else {
            StatusCode::Unset
        } as i32,
        message: ex.error.map(describe).unwrap_or_default().to_string(),
    };
    if let Some(et) = error_type {
        attrs.push(kv_str(attr::ERROR_TYPE, &et));
    }
    let span = Span {
        trace_id: random_nonzero::<16>().to_vec(),
        span_id: random_nonzero::<8>().to_vec(),
        flags: 0x01 | SpanFlags::ContextHasIsRemoteMask as u32,
        name,
        kind: match ex.side {
            Side::Server => SpanKind::Server,
            Side::Client => SpanKind::Client,
        } as i32,
        start_time_unix_nano: clock.to_unix_nanos(ex.start_ns),
        end_time_unix_nano: clock.to_unix_nanos(ex.end_ns.max(ex.start_ns)),
        attributes: attrs,
        status: Some(status),
        ..Default::default()
    };
    ObservedSpan { pid: ex.pid, span }
}

/// `error.type` of an exchange, per the module docs; `None` when it succeeded.
fn error_type(ex: &HttpExchange) -> Option<String> {
    if let Some(e) = ex.error {
        return Some(exchange_error_type(e));
    }
    let code = ex.status?;
    let threshold = match ex.side {
        Side::Server => 500,
        Side::Client => 400,
    };
    (code < 100 || code >= threshold).then(|| code.to_string())
}

/// `error.type` of an exchange error: `timeout`, `connection_closed`, `process_exited`, or the
/// RFC 9113 §7 name of a stream reset's error code (`0x…` for codes it does not name).
pub(crate) fn exchange_error_type(e: ExchangeError) -> String {
    match e {
        ExchangeError::Timeout => value::ERROR_TIMEOUT.into(),
        ExchangeError::ConnectionClosed => value::ERROR_CONNECTION_CLOSED.into(),
        ExchangeError::ProcessExited => value::ERROR_PROCESS_EXITED.into(),
        ExchangeError::StreamReset(code) => value::HTTP2_ERROR_NAMES
            .get(code as usize)
            .map_or_else(|| format!("{code:#x}"), |n| (*n).to_string()),
    }
}

fn describe(e: ExchangeError) -> &'static str {
    match e {
        ExchangeError::Timeout => "no response within the request timeout",
        ExchangeError::ConnectionClosed => "connection closed before the response completed",
        ExchangeError::ProcessExited => "process exited before the response completed",
        ExchangeError::StreamReset(_) => "HTTP/2 stream reset (RST_STREAM) or refused (GOAWAY)",
    }
}

/// `scheme://host[:port]path[?query]`; IPv6 hosts in brackets, the scheme's default port
/// (80 for http, 443 for https) left out.
fn full_url(
    scheme: &str,
    host: &str,
    port: Option<u16>,
    path: &str,
    query: Option<&str>,
) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let default = if scheme == value::SCHEME_HTTPS {
        443
    } else {
        80
    };
    let port = port
        .filter(|&p| p != default)
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{path}{query}")
}

/// Replaces the values of [`value::SENSITIVE_QUERY_KEYS`] and of well-known secret keys
/// (`password`, `token`, …: [`crate::enrich::redact`]) by `REDACTED`, keeping the keys.
fn redact_query(q: &str) -> String {
    crate::enrich::redact::query(q)
}

fn push_addr(attrs: &mut Vec<KeyValue>, addr_key: &str, port_key: &str, a: SocketAddr) {
    attrs.push(kv_str(addr_key, &a.ip().to_string()));
    attrs.push(kv_int(port_key, a.port().into()));
}

/// Parts of a request target (RFC 9112 §3.2).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    pub(crate) path: Option<&'a str>,
    pub(crate) query: Option<&'a str>,
    /// `host[:port]` of absolute-form and authority-form targets (userinfo removed).
    pub(crate) authority: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub(crate) fn parse(t: &'a str) -> Self {
        let t = t.split_once('#').map_or(t, |(before, _)| before);
        let path_query = |pq: &'a str| {
            let (p, q) = pq.split_once('?').map_or((pq, None), |(p, q)| (p, Some(q)));
            (Some(if p.is_empty() { "/" } else { p }), q)
        };
        if t.starts_with('/') || t == "*" {
            let (path, query) = path_query(t);
            return Self {
                path,
                query,
                authority: None,
            };
        }
        if let Some((_scheme, rest)) = t.split_once("://") {
            // absolute-form: scheme "://" authority path-abempty [ "?" query ]
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (auth, pq) = rest.split_at(end);
            let (path, query) = path_query(pq);
            return Self {
                path,
                query,
                authority: strip_userinfo(auth),
            };
        }
        // authority-form (CONNECT host:port): no path.
        Self {
            path: None,
            query: None,
            authority: strip_userinfo(t),
        }
    }
}

fn strip_userinfo(auth: &str) -> Option<&str> {
    let a = auth.rsplit_once('@').map_or(auth, |(_, host)| host);
    (!a.is_empty()).then_some(a)
}

/// Splits `host[:port]` (`[v6]:port` for IPv6); `None` for an empty host.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match s.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            _ => (s, None), // no port, or a bare IPv6 address
        }
    };
    (!host.is_empty()).then(|| (host, port.and_then(|p| p.parse().ok())))
}

pub(crate) fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let b: [u8; N] = rand::random();
        if b != [0; N] {
            return b;
        }
    }
}

/// A string attribute.
pub(crate) fn kv_str(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.to_string()))
}

/// An int attribute.
pub(crate) fn kv_int(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

/// An attribute of any value.
pub(crate) fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// The value of attribute `key` in `attrs`, if present.
pub(crate) fn find_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()
}

mod grpc;
#[cfg(test)]
mod tests;

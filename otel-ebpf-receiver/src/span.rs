//! Span building: the receiver's own compact span.
//!
//! Stage: protocol → **span** → enrich/metrics/export. Input: one [`HttpExchange`]
//! (monotonic timestamps, request line, `Host`/`User-Agent`, status, error), the [`Clock`] and
//! [`SpanOptions`]. Output: a [`SpanRecord`]: the exchange as it was parsed, its trace
//! context, Unix-epoch times and the kernel time of its connection. Nothing is rendered at
//! build time: name, status and attributes (stable OTel HTTP semantic conventions, or the RPC
//! conventions for gRPC) are *derived* on demand — [`SpanRecord::name`],
//! [`SpanRecord::error_type`], [`SpanRecord::attributes`] into any [`AttrSink`] — so the
//! OTLP encoder in `export/` writes them straight into its buffer and metrics read the fields.
//! A queued span costs its exchange (a few hundred bytes), not an object tree.
//!
//! Limits: trace ids are random (a root span) unless the trace-context stage sets them. No
//! `http.route` (HTTP/1 bytes carry none), so the span name is just the method. `url.scheme`
//! is `https` for exchanges rebuilt from TLS plaintext ([`HttpExchange::is_tls`]), else
//! `http`. Pure code, no IO.
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

pub mod grpc;
pub mod link;
pub mod route;
pub mod sampling;
pub mod threads;
pub mod url;

use crate::attr::AttrSink;
use crate::clock::Clock;
use crate::config::ReceiverConfig;
use crate::kernel::spans::ConnTiming;
use crate::protocol::{ExchangeError, HttpExchange, Side};
use otel_ebpf_semconv::{attribute as attr, value};
use std::fmt;
use std::net::SocketAddr;
use url::{FullUrl, Host, Target, redact_query, split_host_port};

pub use url::Host as ServerHost;

/// W3C trace context of one span (W3C Trace Context §3: 16-byte trace id, 8-byte span id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// Non-zero trace id.
    pub trace_id: [u8; 16],
    /// Non-zero span id of this span.
    pub span_id: [u8; 8],
    /// The parent's span id; `None` for a root span.
    pub parent_span_id: Option<[u8; 8]>,
    /// The parent was observed in another process (OTLP `SPAN_FLAGS_CONTEXT_IS_REMOTE`).
    pub parent_remote: bool,
    /// W3C `sampled` trace flag.
    pub sampled: bool,
}

impl TraceContext {
    /// A new root context with random non-zero ids, sampled.
    pub fn root() -> Self {
        Self {
            trace_id: random_nonzero(),
            span_id: random_nonzero(),
            parent_span_id: None,
            parent_remote: false,
            sampled: true,
        }
    }

    /// OTLP `Span.flags`: the W3C trace flags (bit 0 sampled) plus
    /// `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` (0x100) and, for a remote parent,
    /// `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK` (0x200) (OTLP trace.proto `SpanFlags`).
    pub fn otlp_flags(&self) -> u32 {
        u32::from(self.sampled) | 0x100 | if self.parent_remote { 0x200 } else { 0 }
    }
}

/// One span: an exchange seen from one process, with its trace context and kernel time.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
    /// The exchange (its `pid` is the observed process; `side` the span kind).
    pub exchange: HttpExchange,
    /// Trace and span ids.
    pub trace: TraceContext,
    /// W3C `tracestate` carried with the trace, if any (kept as received).
    pub trace_state: Option<Box<str>>,
    /// Start, Unix-epoch ns (first byte of the request).
    pub start_unix_ns: u64,
    /// End, Unix-epoch ns (last byte of the response), never before the start.
    pub end_unix_ns: u64,
    /// Kernel time of the span's connection, when its skbs were timed.
    pub timing: Option<ConnTiming>,
    /// Record `url.query` ([`SpanOptions::capture_url_query`]).
    pub capture_url_query: bool,
    /// CLIENT spans: the server connection (same process, stream key) whose request the
    /// sending thread was serving ([`threads`]); the trace linker's evidence for rule 2.
    pub cause_conn: Option<u64>,
    /// HTTP route and span name ([`route`]), when one was derived or declared.
    pub route: Option<route::Route>,
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

/// Builds the span of one exchange: a root trace context with random non-zero ids,
/// sampled; start/end = `clock.to_unix_nanos(ex.start_ns / ex.end_ns)` (end clamped to start).
pub fn build_span(ex: HttpExchange, clock: &Clock, opts: &SpanOptions) -> SpanRecord {
    let start_unix_ns = clock.to_unix_nanos(ex.start_ns);
    let end_unix_ns = clock.to_unix_nanos(ex.end_ns.max(ex.start_ns));
    SpanRecord {
        exchange: ex,
        trace: TraceContext::root(),
        trace_state: None,
        start_unix_ns,
        end_unix_ns,
        timing: None,
        capture_url_query: opts.capture_url_query,
        cause_conn: None,
        route: None,
    }
}

/// `error.type` of a span (see the module docs); formats without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorType {
    /// A fixed name (`timeout`, an RFC 9113 error name, a gRPC status name).
    Named(&'static str),
    /// An HTTP status code, or a gRPC status outside 0–16.
    Code(u32),
    /// An RFC 9113 error code without a name (`0x…`).
    Hex(u32),
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorType::Named(n) => f.write_str(n),
            ErrorType::Code(c) => write!(f, "{c}"),
            ErrorType::Hex(c) => write!(f, "{c:#x}"),
        }
    }
}

impl SpanRecord {
    /// The observed process (host pid namespace).
    pub fn pid(&self) -> u32 {
        self.exchange.pid
    }

    /// SERVER or CLIENT.
    pub fn side(&self) -> Side {
        self.exchange.side
    }

    /// Duration (ns).
    pub fn duration_ns(&self) -> u64 {
        self.end_unix_ns - self.start_unix_ns
    }

    /// The span name: `{method} {route}` when a route is known ([`route`]), else `{method}`
    /// (or `HTTP` for unknown methods); gRPC: `{rpc.method}` or `grpc`.
    pub fn name(&self) -> &str {
        if self.exchange.grpc.is_some() {
            return grpc::span_name(&self.exchange);
        }
        if let Some(r) = &self.route {
            return &r.span_name;
        }
        match self.method() {
            Some(m) if m != value::METHOD_OTHER => m,
            _ => value::SPAN_NAME_OTHER,
        }
    }

    /// `http.request.method`: the method if known to the semantic conventions, `_OTHER`
    /// otherwise, `None` when it was not decoded (HTTP/2 header lost).
    pub fn method(&self) -> Option<&'static str> {
        let m = self.exchange.method.as_str();
        if m.is_empty() {
            return None;
        }
        if m == "GET" {
            return Some("GET"); // most requests: no search
        }
        Some(match value::KNOWN_HTTP_METHODS.binary_search(&m) {
            Ok(i) => value::KNOWN_HTTP_METHODS[i],
            Err(_) => value::METHOD_OTHER,
        })
    }

    /// `url.scheme`: `https` for TLS plaintext, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.exchange.is_tls() {
            value::SCHEME_HTTPS
        } else {
            value::SCHEME_HTTP
        }
    }

    /// `network.protocol.version` (`1.0`, `1.1`, `2`), when known.
    pub fn protocol_version(&self) -> Option<&'static str> {
        match self.exchange.version.as_str() {
            "1.0" => Some("1.0"),
            "1.1" => Some("1.1"),
            "2" => Some("2"),
            _ => None,
        }
    }

    /// `error.type`, per the module docs (gRPC: see [`grpc`]); `None` when it succeeded.
    pub fn error_type(&self) -> Option<ErrorType> {
        let ex = &self.exchange;
        if let Some(e) = ex.error {
            return Some(exchange_error_type(e));
        }
        if let Some(call) = &ex.grpc {
            return grpc::error_type(ex, call);
        }
        let code = ex.status?;
        let threshold = match ex.side {
            Side::Server => 500,
            Side::Client => 400,
        };
        (code < 100 || code >= threshold).then_some(ErrorType::Code(code.into()))
    }

    /// Span status: ERROR iff [`Self::error_type`] is set; the message describes an exchange
    /// error (empty otherwise).
    pub fn status(&self) -> (bool, &'static str) {
        (
            self.error_type().is_some(),
            self.exchange.error.map(describe).unwrap_or_default(),
        )
    }

    /// The route attribute of the span: `http.route` for a declared route, `otel_ebpf.http.route`
    /// for a derived one, none on overflow (see [`route`]).
    pub fn route_attribute(&self) -> Option<(&'static str, &str)> {
        let r = self.route.as_ref()?;
        match r.source {
            route::RouteSource::Declared => Some((attr::HTTP_ROUTE, &r.route)),
            route::RouteSource::Derived => Some((attr::OTEL_EBPF_HTTP_ROUTE, &r.route)),
            route::RouteSource::Overflow => None,
        }
    }

    /// `server.address` / `server.port`: client spans take the authority the request names
    /// (Host header / `:authority`, else an absolute-form target's), else the remote end;
    /// server spans the authority's host and the local port.
    pub fn server_endpoint(&self) -> (Option<Host<'_>>, Option<u16>) {
        server_endpoint(&self.exchange, &Target::parse(&self.exchange.target))
    }

    /// Hands every attribute of the span, in the documented order, to `sink`: HTTP (or RPC)
    /// attributes, then `error.type`, then the kernel time of the connection.
    pub fn attributes(&self, sink: &mut dyn AttrSink) {
        let ex = &self.exchange;
        if let Some(call) = &ex.grpc {
            grpc::attributes(ex, call, sink);
        } else {
            self.http_attributes(sink);
        }
        if let Some(et) = self.error_type() {
            sink.display(attr::ERROR_TYPE, &et);
        }
        if let Some(t) = &self.timing {
            crate::kernel::spans::attributes(t, ex.side == Side::Client, sink);
        }
    }

    fn http_attributes(&self, sink: &mut dyn AttrSink) {
        let ex = &self.exchange;
        if let Some(method) = self.method() {
            sink.str(attr::HTTP_REQUEST_METHOD, method);
            if method == value::METHOD_OTHER {
                sink.str(attr::HTTP_REQUEST_METHOD_ORIGINAL, &ex.method);
            }
        }
        let target = Target::parse(&ex.target);
        if let Some(path) = target.path {
            sink.str(attr::URL_PATH, path);
        }
        let query = target
            .query
            .filter(|q| self.capture_url_query && !q.is_empty())
            .map(redact_query);
        if let Some(q) = &query {
            sink.str(attr::URL_QUERY, q);
        }
        let scheme = self.scheme();
        sink.str(attr::URL_SCHEME, scheme);
        if let Some(code) = ex.status {
            sink.int(attr::HTTP_RESPONSE_STATUS_CODE, code.into());
        }
        if let Some((key, route)) = self.route_attribute() {
            sink.str(key, route);
        }
        let (host, port) = server_endpoint(ex, &target);
        push_server(sink, host, port);
        if ex.side == Side::Client
            && let (Some(host), Some(path)) = (host, target.path)
            && path.starts_with('/')
        {
            let url = FullUrl {
                scheme,
                host,
                port,
                path,
                query: query.as_deref(),
            };
            sink.display(attr::URL_FULL, &url);
        }
        push_network(ex, sink);
    }
}

fn server_endpoint<'a>(
    ex: &'a HttpExchange,
    target: &Target<'a>,
) -> (Option<Host<'a>>, Option<u16>) {
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
                .map(|a| Host::Name(a.0))
                .or(remote.map(|r| Host::Ip(r.ip()))),
            authority
                .and_then(|a| a.1)
                .or(remote.map(|r| r.port()))
                .or(authority.map(|_| if ex.is_tls() { 443 } else { 80 })),
        ),
        Side::Server => (
            authority
                .map(|a| Host::Name(a.0))
                .or(local.map(|l| Host::Ip(l.ip()))),
            local.map(|l| l.port()).or(authority.and_then(|a| a.1)),
        ),
    }
}

/// `server.address` and `server.port`.
fn push_server(sink: &mut dyn AttrSink, host: Option<Host<'_>>, port: Option<u16>) {
    match host {
        Some(Host::Name(n)) => sink.str(attr::SERVER_ADDRESS, n),
        Some(Host::Ip(ip)) => sink.display(attr::SERVER_ADDRESS, &ip),
        None => {}
    }
    if let Some(p) = port {
        sink.int(attr::SERVER_PORT, p.into());
    }
}

/// `client.*` (server spans), `network.peer.*`, `network.protocol.*`, `user_agent.original`
/// and the HTTP/2 incomplete-headers marker.
fn push_network(ex: &HttpExchange, sink: &mut dyn AttrSink) {
    let remote = ex.tuple.map(|t| t.remote);
    if let (Side::Server, Some(r)) = (ex.side, remote) {
        push_addr(sink, attr::CLIENT_ADDRESS, attr::CLIENT_PORT, r);
    }
    if let Some(r) = remote {
        push_addr(sink, attr::NETWORK_PEER_ADDRESS, attr::NETWORK_PEER_PORT, r);
    }
    sink.str(attr::NETWORK_PROTOCOL_NAME, value::PROTOCOL_HTTP);
    if !ex.version.is_empty() {
        sink.str(attr::NETWORK_PROTOCOL_VERSION, &ex.version);
    }
    if let Some(ua) = &ex.user_agent {
        sink.str(attr::USER_AGENT_ORIGINAL, ua);
    }
    if ex.headers_incomplete {
        sink.bool(attr::HTTP2_HEADERS_INCOMPLETE, true);
    }
}

fn push_addr(sink: &mut dyn AttrSink, addr_key: &str, port_key: &str, a: SocketAddr) {
    sink.ip(addr_key, a.ip());
    sink.int(port_key, a.port().into());
}

/// `error.type` of an exchange error: `timeout`, `connection_closed`, `process_exited`, or the
/// RFC 9113 §7 name of a stream reset's error code (`0x…` for codes it does not name).
pub(crate) fn exchange_error_type(e: ExchangeError) -> ErrorType {
    match e {
        ExchangeError::Timeout => ErrorType::Named(value::ERROR_TIMEOUT),
        ExchangeError::ConnectionClosed => ErrorType::Named(value::ERROR_CONNECTION_CLOSED),
        ExchangeError::ProcessExited => ErrorType::Named(value::ERROR_PROCESS_EXITED),
        ExchangeError::StreamReset(code) => value::HTTP2_ERROR_NAMES
            .get(code as usize)
            .map_or(ErrorType::Hex(code), |n| ErrorType::Named(n)),
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

thread_local! {
    /// Id generator of this thread: a small fast generator seeded once from the OS-seeded
    /// thread generator, as the OpenTelemetry Rust SDK's `RandomIdGenerator` does (ids must
    /// be unique and unpredictable enough to not collide, not secret; the ChaCha thread
    /// generator cost ≈ 1.5% of the receiver's CPU at saturation).
    static ID_RNG: std::cell::RefCell<rand::rngs::SmallRng> =
        std::cell::RefCell::new(rand::SeedableRng::from_rng(&mut rand::rng()));
}

/// `N` random bytes, not all zero (W3C Trace Context: all-zero ids are invalid).
pub fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let b: [u8; N] = ID_RNG.with(|r| rand::Rng::random(&mut *r.borrow_mut()));
        if b != [0; N] {
            return b;
        }
    }
}

#[cfg(test)]
mod tests;

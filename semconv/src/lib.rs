//! Every attribute and metric name otel-ebpf-receiver emits: re-exports of the OpenTelemetry
//! semantic conventions plus this project's own names, each documented with type and unit.
//!
//! Stage: none (shared names). Input: nothing. Output: `&'static str` names, value constants and
//! the HTTP duration bucket boundaries.
//!
//! Names that upstream defines are spelled out here as literals and a unit test checks them
//! against [`otel`] (`opentelemetry-semantic-conventions` 0.33, semconv schema
//! [`otel::SCHEMA_URL`]): what goes on the wire is pinned by this crate, and a semconv upgrade
//! that renames anything fails the test instead of silently changing our output. Upstream's
//! full catalogue stays reachable as [`otel`].
//!
//! Modules: [`attribute`] (span and metric-point attributes), [`resource`] (resource
//! attributes), [`value`] (fixed attribute values we emit), [`metric`] (OTLP metric names, units
//! and buckets), [`self_metric`] (the receiver's own Prometheus counters), [`anomaly`] (TCP
//! health anomaly log records), [`k8s`] (Kubernetes workload identity).
pub use opentelemetry_semantic_conventions as otel;

pub mod anomaly;
pub mod collector;
pub mod k8s;
pub mod kernel;
pub mod prometheus;

#[cfg(test)]
mod dashboards_tests;

/// Span and metric-point attributes (stable HTTP semantic conventions; RPC ones, release
/// candidate, for gRPC).
pub mod attribute {
    /// `http.request.method` — string; the request method, or `_OTHER` when it is not one of
    /// [`crate::value::KNOWN_HTTP_METHODS`]. Spans and both duration metrics.
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    /// `http.request.method_original` — string; the method as sent, set only when
    /// `http.request.method` is `_OTHER`. Spans only.
    pub const HTTP_REQUEST_METHOD_ORIGINAL: &str = "http.request.method_original";
    /// `http.response.status_code` — int; final (non-1xx) status code, when a response was seen.
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    /// `http.route` — string; low-cardinality route template. Not emitted today: HTTP/1 bytes
    /// carry no route. Declared so that filters and tests can name it.
    pub const HTTP_ROUTE: &str = "http.route";
    /// `url.path` — string; request-target path without the query (absolute-form targets are
    /// reduced to their path).
    pub const URL_PATH: &str = "url.path";
    /// `url.query` — string; request-target query without the leading `?`. Only when the
    /// receiver config sets `capture_url_query` (queries often carry secrets); values of
    /// [`crate::value::SENSITIVE_QUERY_KEYS`] are replaced by `REDACTED`.
    pub const URL_QUERY: &str = "url.query";
    /// `url.full` — string; client spans only: `http://{server.address}[:{server.port}]{path}`
    /// (port left out when 80), plus `?{query}` only when `capture_url_query` is on. Never
    /// contains userinfo.
    pub const URL_FULL: &str = "url.full";
    /// `url.scheme` — string; always `http` (plaintext sockets).
    pub const URL_SCHEME: &str = "url.scheme";
    /// `server.address` — string; host name or IP address of the HTTP server.
    pub const SERVER_ADDRESS: &str = "server.address";
    /// `server.port` — int; TCP port of the HTTP server.
    pub const SERVER_PORT: &str = "server.port";
    /// `client.address` — string; IP address of the peer that sent the request (server spans).
    pub const CLIENT_ADDRESS: &str = "client.address";
    /// `client.port` — int; TCP port of the peer that sent the request (server spans).
    pub const CLIENT_PORT: &str = "client.port";
    /// `network.peer.address` — string; IP address of the socket's remote end.
    pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
    /// `network.peer.port` — int; TCP port of the socket's remote end.
    pub const NETWORK_PEER_PORT: &str = "network.peer.port";
    /// `network.protocol.name` — string; always `http`.
    pub const NETWORK_PROTOCOL_NAME: &str = "network.protocol.name";
    /// `network.protocol.version` — string; `1.0` or `1.1` from the request line, `2` for
    /// HTTP/2 (and gRPC).
    pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
    /// `user_agent.original` — string; the `User-Agent` request header as sent.
    pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
    /// `error.type` — string; the HTTP status code as a string for error statuses, the gRPC
    /// status code name for gRPC error statuses, the RFC 9113 §7 error code name
    /// (`CANCEL`, `REFUSED_STREAM`, …) for an HTTP/2 stream reset, or one of
    /// [`crate::value::ERROR_TIMEOUT`], [`crate::value::ERROR_CONNECTION_CLOSED`],
    /// [`crate::value::ERROR_PROCESS_EXITED`].
    pub const ERROR_TYPE: &str = "error.type";
    /// `rpc.system.name` — string; always [`crate::value::RPC_SYSTEM_GRPC`] on gRPC spans and
    /// the RPC duration metrics (semconv RPC, release candidate).
    pub const RPC_SYSTEM_NAME: &str = "rpc.system.name";
    /// `rpc.method` — string; fully-qualified gRPC method `package.Service/Method` (the
    /// `:path` without its leading `/`), or [`crate::value::METHOD_OTHER`] when `:path` is not
    /// of the form `/service/method`. Absent when `:path` could not be decoded. Span name of
    /// gRPC spans.
    pub const RPC_METHOD: &str = "rpc.method";
    /// `rpc.method_original` — string; the `:path` without its leading `/`, set only when
    /// `rpc.method` is `_OTHER`.
    pub const RPC_METHOD_ORIGINAL: &str = "rpc.method_original";
    /// `rpc.response.status_code` — string; the gRPC status code name from `grpc-status`
    /// (`OK`, `NOT_FOUND`, …; the number for codes outside 0–16). Absent when no
    /// `grpc-status` was seen.
    pub const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
    /// `otel_ebpf.http2.headers_incomplete` — bool `true`; this project's own (not semconv):
    /// some HTTP/2 header fields of the exchange could not be decoded (HPACK dynamic table
    /// entries from before capture began, or a header block lost to capture), so an attribute
    /// absent from the span (method, path, status, …) may have been sent. Attributes present
    /// are right. Spans only.
    pub const HTTP2_HEADERS_INCOMPLETE: &str = "otel_ebpf.http2.headers_incomplete";
    /// `otel_ebpf.http.route` — string; this project's own (not semconv): the route the
    /// receiver derived from the request path (built-in heuristic and per-service cardinality
    /// guard: `/users/{id}`, `/posts/*`), or [`crate::value::ROUTE_OVERFLOW`] on the metrics of
    /// a service past its span-name limit. Set instead of `http.route`, which semconv reserves
    /// for the template the application's framework matched (a route declared in
    /// `receiver.routes.patterns` is that template and goes in `http.route`). Spans and the
    /// HTTP duration metrics.
    pub const OTEL_EBPF_HTTP_ROUTE: &str = "otel_ebpf.http.route";
    /// `otel.metric.overflow` — bool `true`; marks the synthetic series that aggregates
    /// measurements past the cardinality limit (OTel metrics SDK spec). Metrics only. Upstream
    /// semconv does not define it.
    pub const OTEL_METRIC_OVERFLOW: &str = "otel.metric.overflow";
}

/// Resource attributes (one resource per observed process).
pub mod resource {
    /// `service.name` — string; the process's own `OTEL_SERVICE_NAME` (or `service.name` in its
    /// `OTEL_RESOURCE_ATTRIBUTES`), else its executable name, else `unknown_service`.
    pub const SERVICE_NAME: &str = "service.name";
    /// `process.pid` — int; process id (host pid namespace).
    pub const PROCESS_PID: &str = "process.pid";
    /// `process.executable.name` — string; basename of `/proc/PID/exe` (fallback: `comm`).
    pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
    /// `process.executable.path` — string; target of `/proc/PID/exe`.
    pub const PROCESS_EXECUTABLE_PATH: &str = "process.executable.path";
    /// `process.command_line` — string; `/proc/PID/cmdline` arguments joined by spaces.
    pub const PROCESS_COMMAND_LINE: &str = "process.command_line";
    /// `process.command_args` — string array; the unredacted `/proc/PID/cmdline` arguments,
    /// only when `receiver.full_command_line` is on (then instead of `process.command_line`).
    pub const PROCESS_COMMAND_ARGS: &str = "process.command_args";
    /// `host.name` — string; hostname of the machine the receiver runs on.
    pub const HOST_NAME: &str = "host.name";
    /// `container.id` — string; 64-hex container id from `/proc/PID/cgroup`, when in a container.
    pub const CONTAINER_ID: &str = "container.id";
    /// `telemetry.sdk.name` — string; always [`crate::value::SDK_NAME`].
    pub const TELEMETRY_SDK_NAME: &str = "telemetry.sdk.name";
    /// `telemetry.sdk.language` — string; always [`crate::value::SDK_LANGUAGE`].
    pub const TELEMETRY_SDK_LANGUAGE: &str = "telemetry.sdk.language";
    /// `telemetry.sdk.version` — string; the receiver's crate version.
    pub const TELEMETRY_SDK_VERSION: &str = "telemetry.sdk.version";
}

/// Fixed attribute values we emit.
pub mod value {
    /// Methods that are "known" per semconv (RFC 9110, PATCH from RFC 5789, QUERY);
    /// case-sensitive. Any other method is reported as [`METHOD_OTHER`].
    pub const KNOWN_HTTP_METHODS: [&str; 10] = [
        "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE",
    ];
    /// `http.request.method` value for methods not in [`KNOWN_HTTP_METHODS`].
    pub const METHOD_OTHER: &str = "_OTHER";
    /// Span name used when the method is not known (semconv: `HTTP`).
    pub const SPAN_NAME_OTHER: &str = "HTTP";
    /// `url.scheme` value: plaintext HTTP.
    pub const SCHEME_HTTP: &str = "http";
    /// `url.scheme` of requests rebuilt from TLS plaintext.
    pub const SCHEME_HTTPS: &str = "https";
    /// `network.protocol.name` value.
    pub const PROTOCOL_HTTP: &str = "http";
    /// Query keys (case-sensitive) whose values semconv says to redact in `url.query` and
    /// `url.full`.
    pub const SENSITIVE_QUERY_KEYS: [&str; 5] = [
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "sig",
        "X-Goog-Signature",
    ];
    /// Replacement for redacted query values.
    pub const REDACTED: &str = "REDACTED";
    /// `error.type` when no response arrived within the configured request timeout.
    pub const ERROR_TIMEOUT: &str = "timeout";
    /// `error.type` when the connection closed before the response completed.
    pub const ERROR_CONNECTION_CLOSED: &str = "connection_closed";
    /// `error.type` when the process exited before the response completed.
    pub const ERROR_PROCESS_EXITED: &str = "process_exited";
    /// `rpc.system.name` value for gRPC.
    pub const RPC_SYSTEM_GRPC: &str = "grpc";
    /// gRPC status code names by code 0..=16 (gRPC `doc/statuscodes.md`), the values of
    /// `rpc.response.status_code`.
    pub const GRPC_STATUS_NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    /// gRPC codes that make a SERVER span an error (semconv gRPC): UNKNOWN, DEADLINE_EXCEEDED,
    /// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. On CLIENT spans every code but OK is
    /// an error.
    pub const GRPC_SERVER_ERROR_CODES: [u32; 6] = [2, 4, 12, 13, 14, 15];
    /// HTTP/2 error code names by code 0x0..=0xd (RFC 9113 §7), the `error.type` of a reset
    /// stream.
    pub const HTTP2_ERROR_NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    /// Route of the exchanges of a service past its span-name (or the receiver past its
    /// service) limit, in `otel_ebpf.http.route` on metrics; such spans are named `{method}`.
    /// The semconv spelling of "other" values (`_OTHER`, as for `http.request.method`).
    pub const ROUTE_OVERFLOW: &str = "_OTHER";
    /// `service.name` when nothing better is known (OTel resource SDK spec).
    pub const UNKNOWN_SERVICE: &str = "unknown_service";
    /// `telemetry.sdk.name` value and the instrumentation scope name of spans and metrics.
    pub const SDK_NAME: &str = "otel-ebpf-receiver";
    /// `telemetry.sdk.language` value.
    pub const SDK_LANGUAGE: &str = "rust";
}

/// OTLP metric names, units and histogram buckets.
pub mod metric {
    /// `http.server.request.duration` — histogram, unit `s` ([`DURATION_UNIT`]); duration of
    /// requests served by the observed process, buckets [`HTTP_DURATION_BUCKETS`].
    pub const HTTP_SERVER_REQUEST_DURATION: &str = "http.server.request.duration";
    /// `http.client.request.duration` — histogram, unit `s` ([`DURATION_UNIT`]); duration of
    /// requests sent by the observed process, buckets [`HTTP_DURATION_BUCKETS`].
    pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http.client.request.duration";
    /// `rpc.server.call.duration` — histogram, unit `s`; duration of gRPC calls served by the
    /// observed process (span duration), buckets [`HTTP_DURATION_BUCKETS`] (semconv RPC
    /// metrics advise no buckets; the HTTP ones are used).
    pub const RPC_SERVER_CALL_DURATION: &str = "rpc.server.call.duration";
    /// `rpc.client.call.duration` — histogram, unit `s`; duration of gRPC calls made by the
    /// observed process, buckets [`HTTP_DURATION_BUCKETS`].
    pub const RPC_CLIENT_CALL_DURATION: &str = "rpc.client.call.duration";
    /// UCUM unit of every duration histogram: seconds.
    pub const DURATION_UNIT: &str = "s";
    /// Explicit bucket upper bounds (seconds, inclusive) advised by semconv for the HTTP
    /// duration histograms; 14 bounds, 15 buckets.
    pub const HTTP_DURATION_BUCKETS: [f64; 14] = [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];
}

/// Service-graph metrics, named and labelled as the OpenTelemetry Collector's
/// `servicegraph` connector (and Tempo's metrics-generator) emit them, so their dashboards
/// work unchanged.
pub mod service_graph {
    /// Counter: requests from `client` to `server`.
    pub const REQUEST_TOTAL: &str = "traces_service_graph_request_total";
    /// Counter: failed requests (either side's span is an error).
    pub const REQUEST_FAILED_TOTAL: &str = "traces_service_graph_request_failed_total";
    /// Histogram (seconds): the server span's duration.
    pub const REQUEST_SERVER: &str = "traces_service_graph_request_server";
    /// Histogram (seconds): the client span's duration.
    pub const REQUEST_CLIENT: &str = "traces_service_graph_request_client";
    /// Label: the client node's name (`service.name`, or the peer).
    pub const CLIENT: &str = "client";
    /// Label: the server node's name.
    pub const SERVER: &str = "server";
    /// Label: `virtual_node` when one side was not observed, else empty.
    pub const CONNECTION_TYPE: &str = "connection_type";
    /// [`CONNECTION_TYPE`] value for an edge with an unobserved side.
    pub const VIRTUAL_NODE: &str = "virtual_node";
    /// The connector's default latency buckets (seconds).
    pub const BUCKETS: [f64; 16] = [
        0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
    ];
}

/// The receiver's own counters, as named in its Prometheus text endpoint (`/metrics`).
///
/// All are Prometheus `counter`s (monotonic totals since start-up, `_total` suffix), unit
/// noted per item; those in `ALL` have no labels, those in `LABELLED` have.
pub mod self_metric {
    /// Counter, unit `{record}`: BPF ring buffer records read.
    pub const EVENTS_READ_TOTAL: &str = "otel_ebpf_events_read_total";
    /// Counter, unit `{event}`: events the probes could not submit (ring buffer full), summed
    /// over the probes' drop counters.
    pub const EVENTS_LOST_KERNEL_TOTAL: &str = "otel_ebpf_events_lost_kernel_total";
    /// Counter, unit `{record}`: ring buffer records that could not be decoded.
    pub const DECODE_ERRORS_TOTAL: &str = "otel_ebpf_decode_errors_total";
    /// Counter, unit `{error}`: HTTP parse errors on connections that looked like HTTP.
    pub const PARSE_ERRORS_TOTAL: &str = "otel_ebpf_parse_errors_total";
    /// Counter, unit `{error}`: malformed HTTP/2 frames and losses of frame sync.
    pub const HTTP2_FRAME_ERRORS_TOTAL: &str = "otel_ebpf_http2_frame_errors_total";
    /// Counter, unit `{block}`: HTTP/2 header blocks HPACK could not decode whole (limits,
    /// malformed blocks).
    pub const HPACK_ERRORS_TOTAL: &str = "otel_ebpf_hpack_errors_total";
    /// Counter, unit `{block}`: HTTP/2 header blocks lost to capture (bytes not captured) or
    /// too large to assemble; the connection's HPACK table is unknown afterwards.
    pub const HTTP2_HEADER_BLOCKS_LOST_TOTAL: &str = "otel_ebpf_http2_header_blocks_lost_total";
    /// Counter, unit `{stream}`: HTTP/2 streams not tracked because a connection had too many
    /// open.
    pub const HTTP2_STREAMS_DROPPED_TOTAL: &str = "otel_ebpf_http2_streams_dropped_total";
    /// Counter, unit `{span}`: spans built from HTTP exchanges.
    pub const SPANS_PRODUCED_TOTAL: &str = "otel_ebpf_spans_produced_total";
    /// Counter, unit `{span}`: spans accepted by the backend or written to the console.
    pub const SPANS_EXPORTED_TOTAL: &str = "otel_ebpf_spans_exported_total";
    /// Counter, unit `{span}`: spans dropped (queue full, or rejected after retries).
    pub const SPANS_DROPPED_TOTAL: &str = "otel_ebpf_spans_dropped_total";
    /// Counter, unit `{request}`: failed export requests (each retry counts).
    pub const EXPORT_FAILURES_TOTAL: &str = "otel_ebpf_export_failures_total";
    /// Counter, unit `{span}`: spans removed by the configured filters.
    pub const SPANS_FILTERED_TOTAL: &str = "otel_ebpf_spans_filtered_total";
    /// Counter, unit `{span}`: SERVER spans paired with the CLIENT span of the same request
    /// on this host.
    pub const SPANS_PAIRED_TOTAL: &str = "otel_ebpf_spans_paired_total";
    /// Counter, unit `{span}`: SERVER spans whose local client was not found within the join
    /// wait.
    pub const SPANS_UNPAIRED_TOTAL: &str = "otel_ebpf_spans_unpaired_total";
    /// Counter, unit `{span}`: CLIENT spans given a parent.
    pub const CLIENT_SPANS_LINKED_TOTAL: &str = "otel_ebpf_client_spans_linked_total";
    /// Counter, unit `{span}`: CLIENT spans without a parent.
    pub const CLIENT_SPANS_UNLINKED_TOTAL: &str = "otel_ebpf_client_spans_unlinked_total";
    /// Counter, unit `{log_record}`: log records accepted by the backend or written to the
    /// console.
    pub const LOG_RECORDS_EXPORTED_TOTAL: &str = "otel_ebpf_log_records_exported_total";
    /// Counter, unit `{log_record}`: log records dropped (rejected, or the export failed).
    pub const LOG_RECORDS_DROPPED_TOTAL: &str = "otel_ebpf_log_records_dropped_total";
    /// Counter, unit `{exchange}`: exchanges whose route overflowed (a service past
    /// `receiver.routes.max_span_names`, or past `max_services`).
    pub const ROUTES_OVERFLOWED_TOTAL: &str = "otel_ebpf_routes_overflowed_total";
    /// Counter, unit `{span}`: spans not exported because sampling dropped them (their
    /// exchanges are in the metrics).
    pub const SPANS_SAMPLED_OUT_TOTAL: &str = "otel_ebpf_spans_sampled_out_total";
    /// Counter, unit `{connection}`: connections the receiver stopped tracking to stay within
    /// its bound (least recently used first); their unfinished exchanges are lost.
    pub const CONNECTIONS_EVICTED_TOTAL: &str = "otel_ebpf_connections_evicted_total";
    /// Counter, unit `{sample}`: kernel metric samples recorded without their
    /// `network.peer.address` (a peer never seen in an exchange, or the peer budget spent).
    pub const KERNEL_METRIC_PEERS_OVERFLOWED_TOTAL: &str =
        "otel_ebpf_kernel_metric_peers_overflowed_total";
    /// Every name above, in declaration order.
    pub const ALL: [&str; 23] = [
        EVENTS_READ_TOTAL,
        EVENTS_LOST_KERNEL_TOTAL,
        DECODE_ERRORS_TOTAL,
        PARSE_ERRORS_TOTAL,
        HTTP2_FRAME_ERRORS_TOTAL,
        HPACK_ERRORS_TOTAL,
        HTTP2_HEADER_BLOCKS_LOST_TOTAL,
        HTTP2_STREAMS_DROPPED_TOTAL,
        SPANS_PRODUCED_TOTAL,
        SPANS_EXPORTED_TOTAL,
        SPANS_DROPPED_TOTAL,
        EXPORT_FAILURES_TOTAL,
        SPANS_FILTERED_TOTAL,
        SPANS_PAIRED_TOTAL,
        SPANS_UNPAIRED_TOTAL,
        CLIENT_SPANS_LINKED_TOTAL,
        CLIENT_SPANS_UNLINKED_TOTAL,
        LOG_RECORDS_EXPORTED_TOTAL,
        LOG_RECORDS_DROPPED_TOTAL,
        ROUTES_OVERFLOWED_TOTAL,
        SPANS_SAMPLED_OUT_TOTAL,
        CONNECTIONS_EVICTED_TOTAL,
        KERNEL_METRIC_PEERS_OVERFLOWED_TOTAL,
    ];
    /// Counter `otel_ebpf_kernel_events_total{counter}`: the probes' own counters.
    pub const KERNEL_EVENTS_TOTAL: &str = "otel_ebpf_kernel_events_total";
    /// Counter `otel_ebpf_tls_skipped_total{reason,file}`: files with TLS code not traced
    /// (`reason="attach_failed"`: a uprobe could not be attached).
    pub const TLS_SKIPPED_TOTAL: &str = "otel_ebpf_tls_skipped_total";
    /// Gauge `otel_ebpf_tls_attached_files`: files with TLS uprobes attached now.
    pub const TLS_ATTACHED_FILES: &str = "otel_ebpf_tls_attached_files";
    /// Gauge `otel_ebpf_kernel_timing_hook{point,hook}`: 1 hooked, 0 not.
    pub const KERNEL_TIMING_HOOK: &str = "otel_ebpf_kernel_timing_hook";
    /// Counter `otel_ebpf_tls_exec_holds_total{outcome}`: processes that exec'd, by what the
    /// exec gate did (`released`: held until its TLS probes were attached; `timed_out`: let go
    /// at the hold limit; `not_needed`, `already_traced`, `gone`, `seize_failed`, `too_many`:
    /// not held).
    pub const TLS_EXEC_HOLDS_TOTAL: &str = "otel_ebpf_tls_exec_holds_total";
    /// Counter `otel_ebpf_tls_analysis_cache_total{outcome}`: on-disk analysis cache lookups
    /// and writes (`hit`, `miss`, `rejected`, `stored`, `write_error`).
    pub const TLS_ANALYSIS_CACHE_TOTAL: &str = "otel_ebpf_tls_analysis_cache_total";
    /// Gauge `otel_ebpf_tls_lingering_files`: files whose TLS uprobes stay attached without a
    /// process using them (kept for their next run).
    pub const TLS_LINGERING_FILES: &str = "otel_ebpf_tls_lingering_files";
    /// Gauge `otel_ebpf_tls_exec_timing_microseconds{what,stat}`: `what="attach"`: exec →
    /// TLS uprobes attached, over execs that attached a file; `what="hold"`: time processes
    /// were held by the exec gate; `stat` = `count`, `sum`, `max`, `last` (µs).
    pub const TLS_EXEC_TIMING_MICROSECONDS: &str = "otel_ebpf_tls_exec_timing_microseconds";
    /// The labelled families above (rendered beside [`ALL`]).
    pub const LABELLED: [&str; 8] = [
        KERNEL_EVENTS_TOTAL,
        TLS_SKIPPED_TOTAL,
        TLS_ATTACHED_FILES,
        KERNEL_TIMING_HOOK,
        TLS_EXEC_HOLDS_TOTAL,
        TLS_ANALYSIS_CACHE_TOTAL,
        TLS_LINGERING_FILES,
        TLS_EXEC_TIMING_MICROSECONDS,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use otel::{attribute as up, metric as upm};

    #[test]
    fn attributes_match_upstream() {
        use attribute::*;
        let pairs = [
            (HTTP_REQUEST_METHOD, up::HTTP_REQUEST_METHOD),
            (
                HTTP_REQUEST_METHOD_ORIGINAL,
                up::HTTP_REQUEST_METHOD_ORIGINAL,
            ),
            (HTTP_RESPONSE_STATUS_CODE, up::HTTP_RESPONSE_STATUS_CODE),
            (HTTP_ROUTE, up::HTTP_ROUTE),
            (URL_PATH, up::URL_PATH),
            (URL_QUERY, up::URL_QUERY),
            (URL_FULL, up::URL_FULL),
            (URL_SCHEME, up::URL_SCHEME),
            (SERVER_ADDRESS, up::SERVER_ADDRESS),
            (SERVER_PORT, up::SERVER_PORT),
            (CLIENT_ADDRESS, up::CLIENT_ADDRESS),
            (CLIENT_PORT, up::CLIENT_PORT),
            (NETWORK_PEER_ADDRESS, up::NETWORK_PEER_ADDRESS),
            (NETWORK_PEER_PORT, up::NETWORK_PEER_PORT),
            (NETWORK_PROTOCOL_NAME, up::NETWORK_PROTOCOL_NAME),
            (NETWORK_PROTOCOL_VERSION, up::NETWORK_PROTOCOL_VERSION),
            (USER_AGENT_ORIGINAL, up::USER_AGENT_ORIGINAL),
            (ERROR_TYPE, up::ERROR_TYPE),
            (RPC_SYSTEM_NAME, up::RPC_SYSTEM_NAME),
            (RPC_METHOD, up::RPC_METHOD),
            (RPC_METHOD_ORIGINAL, up::RPC_METHOD_ORIGINAL),
            (RPC_RESPONSE_STATUS_CODE, up::RPC_RESPONSE_STATUS_CODE),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn resource_attributes_match_upstream() {
        use resource::*;
        let pairs = [
            (SERVICE_NAME, up::SERVICE_NAME),
            (PROCESS_PID, up::PROCESS_PID),
            (PROCESS_EXECUTABLE_NAME, up::PROCESS_EXECUTABLE_NAME),
            (PROCESS_EXECUTABLE_PATH, up::PROCESS_EXECUTABLE_PATH),
            (PROCESS_COMMAND_LINE, up::PROCESS_COMMAND_LINE),
            (PROCESS_COMMAND_ARGS, up::PROCESS_COMMAND_ARGS),
            (HOST_NAME, up::HOST_NAME),
            (CONTAINER_ID, up::CONTAINER_ID),
            (TELEMETRY_SDK_NAME, up::TELEMETRY_SDK_NAME),
            (TELEMETRY_SDK_LANGUAGE, up::TELEMETRY_SDK_LANGUAGE),
            (TELEMETRY_SDK_VERSION, up::TELEMETRY_SDK_VERSION),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours, theirs);
        }
        // The stable ones are also listed among upstream's resource attributes.
        assert_eq!(SERVICE_NAME, otel::resource::SERVICE_NAME);
        assert_eq!(CONTAINER_ID, otel::resource::CONTAINER_ID);
    }

    #[test]
    fn metrics_match_upstream() {
        assert_eq!(
            metric::HTTP_SERVER_REQUEST_DURATION,
            upm::HTTP_SERVER_REQUEST_DURATION
        );
        assert_eq!(
            metric::HTTP_CLIENT_REQUEST_DURATION,
            upm::HTTP_CLIENT_REQUEST_DURATION
        );
        assert_eq!(
            metric::RPC_SERVER_CALL_DURATION,
            upm::RPC_SERVER_CALL_DURATION
        );
        assert_eq!(
            metric::RPC_CLIENT_CALL_DURATION,
            upm::RPC_CLIENT_CALL_DURATION
        );
    }

    #[test]
    fn buckets_are_strictly_increasing() {
        let b = metric::HTTP_DURATION_BUCKETS;
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((b[0], b[13]), (0.005, 10.0));
    }

    #[test]
    fn self_metric_names_are_prometheus_counters() {
        for name in self_metric::ALL {
            assert!(
                name.starts_with("otel_ebpf_") && name.ends_with("_total"),
                "{name}"
            );
            assert!(
                name.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
                "{name}"
            );
        }
        let mut sorted = self_metric::ALL.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), self_metric::ALL.len());
    }

    #[test]
    fn known_methods_are_sorted_and_unique() {
        let m = value::KNOWN_HTTP_METHODS;
        assert!(m.windows(2).all(|w| w[0] < w[1]));
    }
}

//! Protocol detection, the HTTP/1 and HTTP/2 parsers and request/response pairing.
//!
//! Stage: conn → **protocol** → span. Input: ordered byte chunks of one connection, per
//! direction, with kernel timestamps and the syscall's full byte count (captured bytes may be
//! fewer). Output: [`HttpExchange`] values, one per request/response pair (or per request that
//! timed out / whose connection closed). Parsers do no IO; they return complete / need-more /
//! error.
//!
//! Submodules: [`detect`] (is this HTTP/1, where does a message start), [`http1`] (stream
//! parser per direction), [`pairing`] (request FIFO → exchanges), [`connection`] (both parsers
//! and the pairing of one connection), [`parser`] (the interface the connection tracker drives), [`http2`] (HTTP/2 frames, HPACK, streams and gRPC).

pub mod connection;
pub mod detect;
pub mod http1;
pub mod http2;
pub mod pairing;
pub mod parser;
pub mod propagation;

pub use connection::Http1Connection;

/// Bit set in the stream key (and the exchanges' `conn_id`) of TLS plaintext streams; the
/// low 48 bits are the session pointer. Probe connection ids never reach bit 63.
pub const TLS_STREAM: u64 = 1 << 63;

/// Detectors in the order they are tried on a stream not recognised yet: HTTP/1 (a
/// request-line), then HTTP/2 (preface, server SETTINGS, or a run of valid frames).
pub const DETECTORS: &[parser::Detector] = &[connection::detect_http1, http2::parser::detect_http2];

use crate::events::Tuple;
use otel_ebpf_common::SockRole;

/// Which side of the exchange the observed process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Side {
    /// The process sent the request (span kind CLIENT).
    Client,
    /// The process received the request (span kind SERVER).
    Server,
}

impl Side {
    /// Side implied by how the socket was obtained, if the probes saw it.
    pub fn from_role(role: SockRole) -> Option<Self> {
        match role {
            SockRole::Client => Some(Self::Client),
            SockRole::Server => Some(Self::Server),
            SockRole::Unknown => None,
        }
    }
}

/// Why an exchange ended without a complete response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExchangeError {
    /// No response within the configured request timeout (`error.type=timeout`).
    Timeout,
    /// The connection closed before the response completed (`error.type=connection_closed`).
    ConnectionClosed,
    /// The process exited before the response completed (`error.type=process_exited`).
    ProcessExited,
    /// HTTP/2: the stream was reset by RST_STREAM with this error code (RFC 9113 §7), or
    /// refused by a GOAWAY whose last-stream-id is below it (reported as REFUSED_STREAM, 0x7).
    StreamReset(u32),
}

/// gRPC details of an exchange whose content-type is `application/grpc*` (gRPC over HTTP/2
/// protocol spec) or whose response carries `grpc-status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GrpcCall {
    /// `grpc-status` from the trailers (or from the headers of a trailers-only response);
    /// None when not seen.
    pub status: Option<u32>,
}

impl HttpExchange {
    /// True when the exchange was rebuilt from TLS plaintext (uprobes on a TLS library):
    /// the request went over `https`.
    pub fn is_tls(&self) -> bool {
        self.conn_id & TLS_STREAM != 0
    }
}

/// One HTTP request and its response (if any), as observed on one connection.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpExchange {
    /// Process (tgid) that owns the connection.
    pub pid: u32,
    /// Connection id from the probes (unique per socket lifetime); for TLS plaintext streams
    /// the stream key: [`TLS_STREAM`] | session pointer (see [`Self::is_tls`]).
    pub conn_id: u64,
    /// Whether the process sent (Client) or received (Server) the request.
    pub side: Side,
    /// Endpoints, from the first data event of the connection that carried them.
    pub tuple: Option<Tuple>,
    /// e.g. "GET"; empty when unknown (HTTP/2 header fields that could not be decoded).
    pub method: String,
    /// Request target as sent (origin-form path + query, or absolute-form; HTTP/2: `:path`);
    /// empty when unknown.
    pub target: String,
    /// "1.0", "1.1" or "2".
    pub version: String,
    /// `Host` header (HTTP/2: `:authority`, else `host`), if present.
    pub host: Option<String>,
    /// `User-Agent` header, if present.
    pub user_agent: Option<String>,
    /// Final (non-1xx) status code; None when no response was seen.
    pub status: Option<u16>,
    /// CLOCK_MONOTONIC ns of the syscall that carried the request's first byte.
    pub start_ns: u64,
    /// CLOCK_MONOTONIC ns of the syscall that carried the response's last byte (or the time the
    /// exchange was closed out).
    pub end_ns: u64,
    /// Request body size (bytes), from Content-Length or the chunked decoding.
    pub request_body_bytes: u64,
    /// Response body size (bytes).
    pub response_body_bytes: u64,
    /// Why the exchange ended without a complete response; None when it completed.
    pub error: Option<ExchangeError>,
    /// gRPC call details (HTTP/2 only); None for plain HTTP.
    pub grpc: Option<GrpcCall>,
    /// HTTP/2: some header fields of this exchange could not be known (they referenced HPACK
    /// dynamic table entries from before capture began, or their header block was lost), so a
    /// field absent here (method, target, host, status…) may have been sent. Fields present
    /// are always right. Always false for HTTP/1.
    pub headers_incomplete: bool,
    /// Where the exchange sits among others (thread, order on the connection, stream id,
    /// propagated trace context): what trace linking needs.
    pub context: ExchangeContext,
}

/// What trace linking needs to know of an exchange beyond its content.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExchangeContext {
    /// Thread (tid, host pid namespace) whose syscall carried the request's first byte: the
    /// sender on a client, the reader on a server; 0 when unknown.
    pub tid: u32,
    /// HTTP/1: order of the request on its connection (0, 1, …), only when the connection was
    /// seen from its start (so both ends count alike); HTTP/2: `None`.
    pub seq: Option<u64>,
    /// HTTP/2 stream id (RFC 9113 §5.1.1); 0 for HTTP/1.
    pub stream_id: u32,
    /// Trace context the request carried in its headers (W3C `traceparent`, B3), if valid.
    pub propagated: Option<Box<propagation::Propagated>>,
    /// A propagation header was present but malformed (counted, ignored).
    pub propagation_error: bool,
}

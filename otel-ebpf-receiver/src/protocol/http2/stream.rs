//! One HTTP/2 stream: what its request and response header blocks and DATA frames said.
//!
//! Stage: protocol::http2::connection → **stream** → span. Input: decoded header lists (or
//! `None` for a header block that was lost), DATA content sizes (bytes) and END_STREAM /
//! RST_STREAM / GOAWAY events of one stream. Output: one [`HttpExchange`] when the stream ends.
//! Pseudo-header fields follow RFC 9113 §8.3; gRPC fields follow the gRPC over HTTP/2 protocol
//! spec (`content-type: application/grpc*`, `grpc-status` in trailers or in a trailers-only
//! response). Limits: kept strings are truncated like HTTP/1's (`MAX_TARGET_BYTES`,
//! `MAX_FIELD_BYTES`).

use super::hpack::HeaderList;
use crate::events::Tuple;
use crate::protocol::http1::head::{MAX_FIELD_BYTES, MAX_TARGET_BYTES};
use crate::protocol::propagation::{self, Propagated};
use crate::protocol::{ExchangeContext, ExchangeError, GrpcCall, HttpExchange, Side};

/// Identity of the connection, copied into every exchange.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    /// Process owning the connection.
    pub pid: u32,
    /// Connection id from the probes.
    pub conn_id: u64,
    /// Endpoints, when known.
    pub tuple: Option<Tuple>,
}

/// The request part of a stream, as known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `:method`.
    pub method: Option<String>,
    /// `:path`.
    pub path: Option<String>,
    /// `:authority`, else `host`.
    pub authority: Option<String>,
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// `content-type` starts with `application/grpc` (not `application/grpc-web`).
    pub grpc: bool,
    /// Some field could not be known.
    pub incomplete: bool,
    /// Trace context from `traceparent`/`tracestate`/`b3`/`x-b3-*`.
    pub propagated: Option<Box<Propagated>>,
    /// A propagation header was malformed.
    pub propagation_error: bool,
}

impl Request {
    /// Reads a request header list (`None`: the block was lost).
    pub fn from_list(list: Option<&HeaderList>) -> Self {
        let Some(l) = list else {
            return Self {
                incomplete: true,
                ..Self::default()
            };
        };
        let text = |name: &str, max: usize| l.get(name).map(|v| truncated(v, max));
        let mut ctx = propagation::Collector::default();
        for (name, value) in &l.fields {
            ctx.header(name, value);
        }
        let (propagated, propagation_error) = match ctx.finish() {
            Ok(p) => (p.map(Box::new), false),
            Err(_) => (None, true),
        };
        Self {
            method: text(":method", MAX_FIELD_BYTES),
            path: text(":path", MAX_TARGET_BYTES),
            authority: text(":authority", MAX_FIELD_BYTES)
                .or_else(|| text("host", MAX_FIELD_BYTES)),
            user_agent: text("user-agent", MAX_FIELD_BYTES),
            grpc: l.get("content-type").is_some_and(is_grpc_content_type),
            incomplete: l.incomplete(),
            propagated,
            propagation_error,
        }
    }
}

/// State of one open stream.
#[derive(Clone, Debug)]
pub struct Stream {
    /// Stream id (RFC 9113 §5.1.1).
    pub id: u32,
    /// The request's header fields.
    pub request: Request,
    /// ts of the syscall carrying the request HEADERS frame's first byte (ns).
    pub start_ns: u64,
    /// ts of the latest frame of this stream (ns).
    pub last_ns: u64,
    /// The request side ended (END_STREAM).
    pub request_ended: bool,
    /// Request DATA content (bytes).
    pub request_body_bytes: u64,
    /// The response header block arrived (its `:status` may still be unknown).
    pub response_headers_seen: bool,
    /// Final `:status`.
    pub status: Option<u16>,
    /// Response DATA content (bytes).
    pub response_body_bytes: u64,
    /// `grpc-status`.
    pub grpc_status: Option<u32>,
    /// The response says gRPC (content-type or grpc-status).
    pub response_grpc: bool,
    /// Some response field could not be known.
    pub response_incomplete: bool,
    /// The response direction lost frame sync while this stream was open: its END_STREAM may
    /// have gone by unseen.
    pub end_lost: bool,
    /// Thread whose syscall carried the request's first byte (0 = unknown).
    pub tid: u32,
}

impl Stream {
    /// A stream opened by a request header block at `start_ns`.
    pub fn new(id: u32, request: Request, start_ns: u64, request_ended: bool) -> Self {
        Self {
            id,
            request,
            start_ns,
            last_ns: start_ns,
            request_ended,
            request_body_bytes: 0,
            response_headers_seen: false,
            status: None,
            response_body_bytes: 0,
            grpc_status: None,
            response_grpc: false,
            response_incomplete: false,
            end_lost: false,
            tid: 0,
        }
    }

    /// A response header block (headers, informational headers or trailers; `None`: lost).
    pub fn on_response_block(&mut self, list: Option<&HeaderList>) {
        let Some(l) = list else {
            self.response_incomplete = true;
            self.response_headers_seen = true;
            return;
        };
        self.response_incomplete |= l.incomplete();
        if !self.response_headers_seen {
            let status = l
                .get(":status")
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u16>().ok());
            // 1xx are informational; the final response follows (RFC 9113 §8.1).
            if status.is_some_and(|s| (100..200).contains(&s)) {
                return;
            }
            self.status = status;
            self.response_headers_seen = true;
            self.response_grpc |= l.get("content-type").is_some_and(is_grpc_content_type);
        }
        if let Some(v) = l.get("grpc-status") {
            self.grpc_status = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
            self.response_grpc = true;
        }
    }

    /// The exchange of a stream still open when its connection closed or it timed out at
    /// `ts_ns`: ended with `error` — unless its end may have been lost to capture
    /// ([`Stream::end_lost`]): then it ends at its last frame seen, without error, marked
    /// incomplete (we cannot tell a failure from a lost END_STREAM).
    pub fn closed_out(
        mut self,
        conn: &ConnInfo,
        side: Side,
        ts_ns: u64,
        error: ExchangeError,
    ) -> HttpExchange {
        if self.end_lost {
            self.response_incomplete = true;
            let end = self.last_ns;
            return self.into_exchange(conn, side, end, None);
        }
        self.into_exchange(conn, side, ts_ns, Some(error))
    }

    /// The exchange of this stream, ended at `end_ns` (with `error` unless it completed).
    pub fn into_exchange(
        self,
        conn: &ConnInfo,
        side: Side,
        end_ns: u64,
        error: Option<ExchangeError>,
    ) -> HttpExchange {
        let grpc = (self.request.grpc || self.response_grpc).then_some(GrpcCall {
            status: self.grpc_status,
        });
        HttpExchange {
            pid: conn.pid,
            conn_id: conn.conn_id,
            side,
            tuple: conn.tuple,
            method: self.request.method.unwrap_or_default(),
            target: self.request.path.unwrap_or_default(),
            version: "2".into(),
            host: self.request.authority,
            user_agent: self.request.user_agent,
            status: self.status,
            start_ns: self.start_ns,
            end_ns: end_ns.max(self.start_ns),
            request_body_bytes: self.request_body_bytes,
            response_body_bytes: self.response_body_bytes,
            error,
            grpc,
            headers_incomplete: self.request.incomplete || self.response_incomplete,
            context: ExchangeContext {
                tid: self.tid,
                seq: None,
                stream_id: self.id,
                propagated: self.request.propagated,
                propagation_error: self.request.propagation_error,
            },
        }
    }
}

/// `application/grpc`, `application/grpc+proto`, `application/grpc;…` (not `grpc-web`).
pub fn is_grpc_content_type(v: &[u8]) -> bool {
    v.strip_prefix(b"application/grpc")
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
}

fn truncated(v: &[u8], max: usize) -> String {
    let v = &v[..v.len().min(max)];
    String::from_utf8_lossy(v).into_owned()
}

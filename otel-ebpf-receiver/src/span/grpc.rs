//! gRPC spans (OTel RPC and gRPC semantic conventions, release candidate).
//!
//! Stage: span (inner step). Input: an [`HttpExchange`] with [`GrpcCall`] details. Output: the
//! span name `{rpc.method}` (or `grpc` when the method is unknown), `error.type`, and the
//! attributes `rpc.system.name=grpc`, `rpc.method` (`package.Service/Method`),
//! `rpc.response.status_code` (status name from `grpc-status`), `server.*`, `client.*`,
//! `network.*`, into an [`AttrSink`].
//!
//! Status: ERROR on an exchange error (timeout, closed, reset: `error.type` as for HTTP); on a
//! server span for UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
//! DATA_LOSS; on a client span for every code but OK (`error.type` = the code name); and, when
//! no `grpc-status` was seen, on a final `:status` other than 200 (`error.type` = that status).

use super::{ErrorType, Target, push_network, push_server, server_endpoint};
use crate::attr::AttrSink;
use crate::protocol::{GrpcCall, HttpExchange, Side};
use otel_ebpf_semconv::{attribute as attr, value};

/// The span name of a gRPC call: `{rpc.method}` when the path is `/service/method`, else
/// `grpc`.
pub(super) fn span_name(ex: &HttpExchange) -> &str {
    match rpc_method(&ex.target) {
        Some(RpcMethod::Known(m)) => m,
        _ => value::RPC_SYSTEM_GRPC,
    }
}

/// The attributes of one gRPC call, in order (without `error.type`).
pub(super) fn attributes(ex: &HttpExchange, call: &GrpcCall, sink: &mut dyn AttrSink) {
    sink.str(attr::RPC_SYSTEM_NAME, value::RPC_SYSTEM_GRPC);
    match rpc_method(&ex.target) {
        Some(RpcMethod::Known(m)) => sink.str(attr::RPC_METHOD, m),
        Some(RpcMethod::Other(original)) => {
            sink.str(attr::RPC_METHOD, value::METHOD_OTHER);
            sink.str(attr::RPC_METHOD_ORIGINAL, original);
        }
        None => {}
    }
    if let Some(code) = call.status {
        sink.display(attr::RPC_RESPONSE_STATUS_CODE, &status_name(code));
    }
    let target = Target::parse(&ex.target);
    let (host, port) = server_endpoint(ex, &target);
    push_server(sink, host, port);
    push_network(ex, sink);
}

/// `rpc.method` of a call: `package.Service/Method`, `_OTHER` for other paths, `None` when
/// the path is unknown.
pub fn rpc_method_name(ex: &HttpExchange) -> Option<&str> {
    match rpc_method(&ex.target)? {
        RpcMethod::Known(m) => Some(m),
        RpcMethod::Other(_) => Some(value::METHOD_OTHER),
    }
}

/// `rpc.method` from `:path`.
#[derive(Debug, PartialEq, Eq)]
enum RpcMethod<'a> {
    /// `/service/method`: `service/method`.
    Known(&'a str),
    /// Any other non-empty path, without its leading `/`.
    Other(&'a str),
}

fn rpc_method(path: &str) -> Option<RpcMethod<'_>> {
    if path.is_empty() {
        return None;
    }
    let p = path.strip_prefix('/').unwrap_or(path);
    let valid = match p.split_once('/') {
        Some((svc, m)) => !svc.is_empty() && !m.is_empty() && !m.contains(['/', '?']),
        None => false,
    };
    Some(if valid {
        RpcMethod::Known(p)
    } else {
        RpcMethod::Other(p)
    })
}

/// Name of a gRPC status code (`OK`, …), or its number outside 0–16.
pub fn status_name(code: u32) -> ErrorType {
    value::GRPC_STATUS_NAMES
        .get(code as usize)
        .map_or(ErrorType::Code(code), |n| ErrorType::Named(n))
}

/// `error.type` of a call without an exchange error.
pub(super) fn error_type(ex: &HttpExchange, call: &GrpcCall) -> Option<ErrorType> {
    match call.status {
        Some(code) => {
            let error = match ex.side {
                Side::Server => value::GRPC_SERVER_ERROR_CODES.contains(&code),
                Side::Client => code != 0,
            };
            error.then(|| status_name(code))
        }
        None => ex
            .status
            .filter(|&s| s != 200)
            .map(|s| ErrorType::Code(s.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::Attributes;
    use crate::clock::Clock;
    use crate::events::Tuple;
    use crate::protocol::ExchangeError;
    use crate::span::SpanOptions;
    use crate::span::SpanRecord;

    fn call(side: Side, grpc_status: Option<u32>) -> HttpExchange {
        HttpExchange {
            pid: 1,
            conn_id: 2,
            side,
            tuple: Some(Tuple {
                local: "10.0.0.1:50051".parse().unwrap(),
                remote: "10.0.0.2:40000".parse().unwrap(),
            }),
            method: "POST".into(),
            target: "/helloworld.Greeter/SayHello".into(),
            version: "2".into(),
            host: Some("greeter:50051".into()),
            user_agent: Some("grpc-python/1.70".into()),
            status: Some(200),
            start_ns: 10,
            end_ns: 2_000_010,
            request_body_bytes: 12,
            response_body_bytes: 20,
            error: None,
            grpc: Some(GrpcCall {
                status: grpc_status,
            }),
            headers_incomplete: false,
            context: Default::default(),
        }
    }

    fn build(ex: &HttpExchange) -> SpanRecord {
        crate::span::build_span(ex.clone(), &Clock::with_offset(0), &SpanOptions::default())
    }

    fn attrs(s: &SpanRecord) -> Vec<String> {
        let mut a = Attributes::new();
        s.attributes(&mut a);
        a.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    fn is_error(s: &SpanRecord) -> bool {
        s.status().0
    }

    #[test]
    fn server_span_attributes_in_order() {
        let s = build(&call(Side::Server, Some(0)));
        assert_eq!(s.name(), "helloworld.Greeter/SayHello");
        assert_eq!(
            attrs(&s),
            [
                "rpc.system.name=grpc",
                "rpc.method=helloworld.Greeter/SayHello",
                "rpc.response.status_code=OK",
                "server.address=greeter",
                "server.port=50051",
                "client.address=10.0.0.2",
                "client.port=40000",
                "network.peer.address=10.0.0.2",
                "network.peer.port=40000",
                "network.protocol.name=http",
                "network.protocol.version=2",
                "user_agent.original=grpc-python/1.70",
            ]
        );
        assert!(!is_error(&s));
    }

    #[test]
    fn status_rules_differ_by_kind() {
        // NOT_FOUND: error on the client only; UNAVAILABLE: both.
        for (side, code, error) in [
            (Side::Server, 5, false),
            (Side::Client, 5, true),
            (Side::Server, 14, true),
            (Side::Client, 14, true),
            (Side::Server, 0, false),
            (Side::Client, 0, false),
            (Side::Server, 2, true),
            (Side::Server, 15, true),
            (Side::Server, 16, false),
        ] {
            let s = build(&call(side, Some(code)));
            assert_eq!(is_error(&s), error, "{side:?} {code}");
            let et = attrs(&s).into_iter().find(|a| a.starts_with("error.type="));
            assert_eq!(et.is_some(), error, "{side:?} {code}");
            if error {
                assert_eq!(et.unwrap(), format!("error.type={}", status_name(code)));
            }
        }
    }

    #[test]
    fn missing_status_and_resets() {
        // No grpc-status, :status 503 from a proxy: an error with the HTTP status.
        let mut ex = call(Side::Client, None);
        ex.status = Some(503);
        let s = build(&ex);
        assert!(is_error(&s));
        assert!(attrs(&s).contains(&"error.type=503".to_string()));
        assert!(
            !attrs(&s)
                .iter()
                .any(|a| a.starts_with("rpc.response.status_code"))
        );
        // Cancelled by RST_STREAM(CANCEL).
        let mut ex = call(Side::Server, None);
        ex.error = Some(ExchangeError::StreamReset(8));
        let s = build(&ex);
        assert!(is_error(&s));
        assert!(attrs(&s).contains(&"error.type=CANCEL".to_string()));
        // Unknown path (headers joined mid-way): no rpc.method, name is the system.
        let mut ex = call(Side::Server, Some(0));
        ex.target.clear();
        ex.headers_incomplete = true;
        let s = build(&ex);
        assert_eq!(s.name(), "grpc");
        assert!(!attrs(&s).iter().any(|a| a.starts_with("rpc.method")));
        assert!(attrs(&s).contains(&"otel_ebpf.http2.headers_incomplete=true".to_string()));
        // A path that is not /service/method.
        let mut ex = call(Side::Server, Some(0));
        ex.target = "/health".into();
        let a = attrs(&build(&ex));
        assert!(a.contains(&"rpc.method=_OTHER".to_string()));
        assert!(a.contains(&"rpc.method_original=health".to_string()));
    }

    #[test]
    fn http2_span_without_method_leaves_it_out() {
        let mut ex = call(Side::Client, None);
        ex.grpc = None;
        ex.method.clear();
        ex.headers_incomplete = true;
        let s = build(&ex);
        assert_eq!(s.name(), "HTTP");
        let a = attrs(&s);
        assert!(!a.iter().any(|a| a.starts_with("http.request.method")));
        assert!(a.contains(&"network.protocol.version=2".to_string()));
        assert!(a.contains(&"otel_ebpf.http2.headers_incomplete=true".to_string()));
        assert!(a.contains(&"url.path=/helloworld.Greeter/SayHello".to_string()));
    }

    #[test]
    fn rpc_method_forms() {
        assert_eq!(
            rpc_method("/helloworld.Greeter/SayHello"),
            Some(RpcMethod::Known("helloworld.Greeter/SayHello"))
        );
        assert_eq!(rpc_method("/a"), Some(RpcMethod::Other("a")));
        assert_eq!(rpc_method("/a/b/c"), Some(RpcMethod::Other("a/b/c")));
        assert_eq!(rpc_method("//m"), Some(RpcMethod::Other("/m")));
        assert_eq!(rpc_method(""), None);
    }

    #[test]
    fn status_names() {
        assert_eq!(status_name(0).to_string(), "OK");
        assert_eq!(status_name(5).to_string(), "NOT_FOUND");
        assert_eq!(status_name(16).to_string(), "UNAUTHENTICATED");
        assert_eq!(status_name(42).to_string(), "42");
    }
}

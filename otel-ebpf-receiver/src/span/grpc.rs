//! gRPC spans (OTel RPC and gRPC semantic conventions, release candidate).
//!
//! Stage: span (inner step). Input: an [`HttpExchange`] with [`GrpcCall`] details. Output: an
//! [`ObservedSpan`] named `{rpc.method}` (or `grpc` when the method is unknown), kind SERVER or
//! CLIENT, with `rpc.system.name=grpc`, `rpc.method` (`package.Service/Method`),
//! `rpc.response.status_code` (status name from `grpc-status`), `server.*`, `client.*`,
//! `network.*` and `error.type`.
//!
//! Status: ERROR on an exchange error (timeout, closed, reset: `error.type` as for HTTP); on a
//! server span for UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
//! DATA_LOSS; on a client span for every code but OK (`error.type` = the code name); and, when
//! no `grpc-status` was seen, on a final `:status` other than 200 (`error.type` = that status).

use super::{
    Target, exchange_error_type, finish, kv_str, push_network, server_endpoint, ObservedSpan,
};
use crate::clock::Clock;
use crate::protocol::{GrpcCall, HttpExchange, Side};
use otel_ebpf_semconv::{attribute as attr, value};

/// Builds the span of one gRPC call.
pub(super) fn build_span(ex: &HttpExchange, call: &GrpcCall, clock: &Clock) -> ObservedSpan {
    let mut attrs = Vec::with_capacity(14);
    attrs.push(kv_str(attr::RPC_SYSTEM_NAME, value::RPC_SYSTEM_GRPC));
    let method = rpc_method(&ex.target);
    let name = match method {
        Some(RpcMethod::Known(m)) => {
            attrs.push(kv_str(attr::RPC_METHOD, m));
            m.to_string()
        }
        Some(RpcMethod::Other(original)) => {
            attrs.push(kv_str(attr::RPC_METHOD, value::METHOD_OTHER));
            attrs.push(kv_str(attr::RPC_METHOD_ORIGINAL, original));
            value::RPC_SYSTEM_GRPC.to_string()
        }
        None => value::RPC_SYSTEM_GRPC.to_string(),
    };
    if let Some(code) = call.status {
        attrs.push(kv_str(attr::RPC_RESPONSE_STATUS_CODE, &status_name(code)));
    }
    let target = Target::parse(&ex.target);
    let (server_addr, server_port) = server_endpoint(ex, &target);
    if let Some(a) = &server_addr {
        attrs.push(kv_str(attr::SERVER_ADDRESS, a));
    }
    if let Some(p) = server_port {
        attrs.push(super::kv_int(attr::SERVER_PORT, p.into()));
    }
    push_network(ex, &mut attrs);
    let error_type = error_type(ex, call);
    finish(ex, clock, name, attrs, error_type)
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
pub(crate) fn status_name(code: u32) -> String {
    value::GRPC_STATUS_NAMES
        .get(code as usize)
        .map_or_else(|| code.to_string(), |n| (*n).to_string())
}

fn error_type(ex: &HttpExchange, call: &GrpcCall) -> Option<String> {
    if let Some(e) = ex.error {
        return Some(exchange_error_type(e));
    }
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
            .map(|s| s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(status_name(0), "OK");
        assert_eq!(status_name(5), "NOT_FOUND");
        assert_eq!(status_name(16), "UNAUTHENTICATED");
        assert_eq!(status_name(42), "42");
    }
}

//! End-to-end tests of the export stage against in-test OTLP backends (tonic gRPC and hyper
//! HTTP collectors on 127.0.0.1) for spans, metrics and log records, plus shared test support.
//! All assertions are exact counts; waits are bounded hang guards, never performance
//! assertions.

pub(crate) mod support;

mod grpc_e2e;
mod http_e2e;
mod logs_e2e;
mod pipeline_e2e;
mod resilience;

//! Kernel network timing and TCP health (issue 6).
//!
//! Stage: events → **kernel** → spans (attributes) and metrics/logs. Input: [`event::NetSample`]s
//! decoded from the probes' skb/net/tcp tracepoints. Output: per-span kernel time per layer
//! ([`spans`]), OTLP metrics ([`metrics`]), and the probe plan ([`plan`]).

pub mod event;
pub mod metrics;
pub mod plan;
pub mod spans;

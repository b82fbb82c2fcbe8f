//! Kernel network timing and TCP health (issue 6).
//!
//! Stage: events → **kernel** → spans (attributes), metrics and logs. Input: [`event::NetSample`]s
//! decoded from the probes' skb/net/tcp tracepoints. Output: per-span kernel time per layer
//! ([`spans`]), OTLP metrics ([`metrics`]), TCP anomaly log records ([`anomaly`]), and the
//! probe plan ([`plan`]).

pub mod anomaly;
pub mod event;
pub mod metrics;
pub mod plan;
pub mod spans;

//! otel-ebpf-receiver: rebuilds HTTP request/response pairs of every process on a Linux host
//! from eBPF-captured socket bytes and exports them as OTLP spans and metrics.
//!
//! Modules follow the data flow:
//! [`probes`] (load/attach) → [`events`] (ring buffer decode) → [`conn`] (per-connection
//! reassembly) → [`protocol`] (detection, HTTP/1 parser, pairing) → [`span`] → [`enrich`] →
//! [`export`]. [`pipeline`] wires them; [`config`] and [`telemetry`] serve all stages.
pub mod attr;
pub mod clock;
pub mod config;
pub mod conn;
pub mod enrich;
pub mod events;
pub mod export;
pub mod filter;
pub mod hash;
pub mod kernel;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod probes;
pub mod protocol;
pub mod span;
pub mod telemetry;
pub mod tls;

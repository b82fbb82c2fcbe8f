//! The `receiver.tls` section: how processes whose TLS code is in their own executable (Go,
//! Node.js, static OpenSSL) are traced from their first exchange.
//!
//! Stage: configuration, read at start-up. Input: YAML under `receiver.tls`. Output:
//! [`TlsConfig`], read by the TLS attacher (`probes::uprobes`) and its exec gate.
//! Limits: ranges are checked in `validate.rs`.

use serde::{Deserialize, Serialize};

/// `receiver.tls:` (see `docs/tls.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Hold a process that has just exec'd a never-seen executable (ptrace, invisible to it
    /// and its parent) until its TLS probes are attached, at most `hold_exec_max_seconds`
    /// (default on; needs `CAP_SYS_PTRACE`).
    pub hold_exec: bool,
    /// Longest hold of one process (seconds, 0.001..=1; default 0.05).
    pub hold_exec_max_seconds: f64,
    /// Files with TLS probes kept attached after their last process exited, so the next run
    /// is traced from its first instruction (files, 0..=1024; default 64; least recently used
    /// detached first).
    pub linger_files: usize,
    /// Directory of the on-disk analysis cache (a path; `null`: no cache). Created if missing
    /// (mode 0700).
    pub state_dir: Option<String>,
    /// Largest on-disk analysis cache (entries, 1..=100000; default 4096).
    pub cache_entries: usize,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            hold_exec: true,
            hold_exec_max_seconds: 0.05,
            linger_files: 64,
            state_dir: Some("/var/lib/otel-ebpf-receiver".into()),
            cache_entries: 4096,
        }
    }
}

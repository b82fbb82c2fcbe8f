//! The `receiver.traces` section: trace linking and the service graph.
//!
//! Stage: configuration, read at start-up. Input: YAML under `receiver.traces`. Output:
//! [`TracesConfig`]: how long a span may wait in the join buffer for its parent
//! ([`crate::span::link`]) and the names of peers that are not observed (service-graph
//! virtual nodes). Limits: `join_wait_seconds` in 0..=10 (0 exports at once: links are made
//! only when the parent finished first); peer keys are an IP address or `ip:port`
//! (checked in `validate.rs`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Trace linking and service graph (`receiver.traces:`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesConfig {
    /// Longest time a span waits for its parent to be known before export (seconds, 0..=10,
    /// default 1). The Collector's servicegraph connector waits about 2 s for the other half.
    pub join_wait_seconds: f64,
    /// Names of peers that are not observed on this host, by `ip` or `ip:port` (the port
    /// form wins): the service-graph `server`/`client` node and `peer.service`. Other
    /// unobserved peers are named by their address.
    pub peer_service: BTreeMap<String, String>,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            join_wait_seconds: 1.0,
            peer_service: BTreeMap::new(),
        }
    }
}

impl TracesConfig {
    /// The configured name of a peer, if any (`ip:port` first, then `ip`; IPv6 as
    /// `[v6]:port` and bare `v6`).
    pub fn peer_name(&self, addr: std::net::SocketAddr) -> Option<&str> {
        self.peer_service
            .get(&addr.to_string())
            .or_else(|| self.peer_service.get(&addr.ip().to_string()))
            .map(String::as_str)
    }
}

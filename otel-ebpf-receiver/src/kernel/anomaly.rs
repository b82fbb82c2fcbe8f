//! TCP anomaly detector: turns per-connection TCP signals into windowed health anomalies.
//!
//! Stage: kernel events (decoded TCP resets and state changes) → **anomaly detection** →
//! export as log records ([`Anomaly::to_log_record`], [`logs_batch`]). Pure code, no IO.
//! Input: [`TcpSignal`]s with their CLOCK_MONOTONIC time (ns), from the tracepoints
//! `tcp:tcp_send_reset`, `tcp:tcp_receive_reset` and `sock:inet_sock_set_state`; thresholds
//! from [`AnomalyConfig`] (`receiver.kernel_timing.anomalies`).
//! Output: [`Anomaly`]s of the windows that ended, from [`AnomalyDetector::poll`], and totals
//! per kind ([`AnomalyDetector::counts`]).
//!
//! Rules, per tumbling window of `window_seconds` (aligned to multiples of the window on the
//! monotonic clock), each firing when its value is at or above the threshold:
//! - reset storm: resets sent + received ≥ `reset_storm_threshold`; reports the peer with
//!   the most resets;
//! - connect failures: failed / attempted outgoing connects ≥ `connect_failure_ratio`, with
//!   attempts ≥ `connect_failure_min_attempts`; reports the peer with the most failures;
//! - peer connection spike: connections accepted from one peer ≥ `peer_connection_spike`;
//!   one anomaly per spiking peer, the [`MAX_SPIKES`] largest per window.
//!
//! Limits (memory is bounded whatever the input): per window at most [`MAX_PEERS`] peers are
//! tracked per rule (further peers still count in the window totals, not per peer), at most
//! [`MAX_PIDS`] pids per anomaly, at most [`MAX_PENDING`] anomalies wait for `poll` (the
//! oldest are dropped and counted in [`AnomalyDetector::dropped`]). A signal timestamped
//! before the current window (events from other CPUs arrive slightly out of order) counts in
//! the current window, or in the next one when its own window was already closed. Thresholds
//! of an unvalidated config are clamped (≥ 1, ratio in (0, 1], window 0.1..=3600 s).

mod log;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

pub use log::{logs_batch, receiver_resource};

use crate::config::AnomalyConfig;
use otel_ebpf_semconv::anomaly as names;

/// Most peers tracked per rule and window; further peers count only in the window totals.
pub const MAX_PEERS: usize = 4096;
/// Most pids reported per anomaly (first seen first).
pub const MAX_PIDS: usize = 8;
/// Most peer connection spikes reported per window (the largest).
pub const MAX_SPIKES: usize = 16;
/// Most anomalies kept between two polls; the oldest are dropped past it.
pub const MAX_PENDING: usize = 256;

/// One TCP event the detector counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpSignal {
    /// A RST was sent or received (tracepoints tcp:tcp_send_reset / tcp:tcp_receive_reset).
    Reset {
        /// Remote address of the connection.
        peer: IpAddr,
        /// Process (tgid) current when the tracepoint fired; 0 when unknown (softirq).
        pid: u32,
        /// True for a RST this host sent, false for one it received.
        sent: bool,
    },
    /// An outgoing connect finished (sock:inet_sock_set_state SYN_SENT → ESTABLISHED, or →
    /// CLOSE = failed).
    Connect {
        /// Address connected to.
        peer: IpAddr,
        /// Connecting process (tgid); 0 when unknown.
        pid: u32,
        /// True when the connection was established.
        ok: bool,
    },
    /// A connection was accepted from `peer` (SYN_RECV → ESTABLISHED).
    Accepted {
        /// Address the connection came from.
        peer: IpAddr,
        /// Process (tgid) current when the state changed; 0 when unknown.
        pid: u32,
    },
}

/// What kind of anomaly a window showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// Too many TCP resets.
    ResetStorm,
    /// Too large a share of outgoing connects failed.
    ConnectFailures,
    /// Too many connections accepted from one peer.
    PeerConnectionSpike,
}

impl AnomalyKind {
    /// Every kind, in the order of [`AnomalyDetector::counts`].
    pub const ALL: [AnomalyKind; 3] = [
        AnomalyKind::ResetStorm,
        AnomalyKind::ConnectFailures,
        AnomalyKind::PeerConnectionSpike,
    ];

    /// Event name of the log record: `tcp.reset_storm`, `tcp.connect_failures` or
    /// `tcp.peer_connection_spike` (from `otel_ebpf_semconv::anomaly`).
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::ResetStorm => names::EVENT_RESET_STORM,
            AnomalyKind::ConnectFailures => names::EVENT_CONNECT_FAILURES,
            AnomalyKind::PeerConnectionSpike => names::EVENT_PEER_CONNECTION_SPIKE,
        }
    }
}

/// One anomaly of one window.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    /// Which rule fired.
    pub kind: AnomalyKind,
    /// Start of the window (CLOCK_MONOTONIC ns).
    pub window_start_ns: u64,
    /// Length of the window (ns).
    pub window_ns: u64,
    /// Resets (reset storm), failed connects (connect failures) or connections accepted from
    /// `peer` (spike) in the window.
    pub count: u64,
    /// Outgoing connects that finished in the window (connect failures; 0 otherwise).
    pub attempts: u64,
    /// `count / attempts` (connect failures; 0 otherwise).
    pub ratio: f64,
    /// The peer with the most resets or failed connects, or the spiking peer; `None` when no
    /// peer was tracked.
    pub peer: Option<IpAddr>,
    /// Processes involved, first seen first, at most [`MAX_PIDS`] (0 = unknown is left out).
    pub pids: Vec<u32>,
}

/// Up to [`MAX_PIDS`] distinct pids, inline (no allocation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PidSet {
    pids: [u32; MAX_PIDS],
    len: usize,
}

impl PidSet {
    fn insert(&mut self, pid: u32) {
        if pid != 0 && self.len < MAX_PIDS && !self.pids[..self.len].contains(&pid) {
            self.pids[self.len] = pid;
            self.len += 1;
        }
    }
    fn to_vec(self) -> Vec<u32> {
        self.pids[..self.len].to_vec()
    }
}

/// Count and pids of one peer.
#[derive(Clone, Copy, Debug, Default)]
struct PeerEntry {
    count: u64,
    pids: PidSet,
}

/// Per-peer counters, bounded to [`MAX_PEERS`] peers.
#[derive(Debug, Default)]
struct PeerCounts {
    map: HashMap<IpAddr, PeerEntry>,
    /// Signals from peers that found the map full.
    overflow: u64,
}

impl PeerCounts {
    fn add(&mut self, peer: IpAddr, pid: u32) {
        let len = self.map.len();
        match self.map.get_mut(&peer) {
            Some(e) => {
                e.count += 1;
                e.pids.insert(pid);
            }
            None if len < MAX_PEERS => {
                let mut e = PeerEntry {
                    count: 1,
                    ..PeerEntry::default()
                };
                e.pids.insert(pid);
                self.map.insert(peer, e);
            }
            None => self.overflow += 1,
        }
    }

    /// The peer with the highest count (ties: the lowest address, so the choice is stable).
    fn top(&self) -> Option<IpAddr> {
        self.map
            .iter()
            .max_by(|a, b| a.1.count.cmp(&b.1.count).then(b.0.cmp(a.0)))
            .map(|(p, _)| *p)
    }

    /// Peers with a count ≥ `threshold`, largest first (ties by address), at most `limit`.
    fn at_least(&self, threshold: u64, limit: usize) -> Vec<(IpAddr, PeerEntry)> {
        let mut v: Vec<(IpAddr, PeerEntry)> = self
            .map
            .iter()
            .filter(|(_, e)| e.count >= threshold)
            .map(|(p, e)| (*p, *e))
            .collect();
        v.sort_unstable_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
        v.truncate(limit);
        v
    }

    fn clear(&mut self) {
        self.map.clear();
        self.overflow = 0;
    }
}

/// Counters of the current window.
#[derive(Debug, Default)]
struct Window {
    start_ns: u64,
    resets: u64,
    reset_peers: PeerCounts,
    reset_pids: PidSet,
    connects_ok: u64,
    connects_failed: u64,
    failed_peers: PeerCounts,
    failed_pids: PidSet,
    accepted: PeerCounts,
}

impl Window {
    fn reset(&mut self, start_ns: u64) {
        self.start_ns = start_ns;
        self.resets = 0;
        self.reset_peers.clear();
        self.reset_pids = PidSet::default();
        self.connects_ok = 0;
        self.connects_failed = 0;
        self.failed_peers.clear();
        self.failed_pids = PidSet::default();
        self.accepted.clear();
    }
}

/// Counts [`TcpSignal`]s per tumbling window and reports the windows that broke a rule.
#[derive(Debug)]
pub struct AnomalyDetector {
    window_ns: u64,
    reset_threshold: u64,
    ratio: f64,
    min_attempts: u64,
    spike: u64,
    window: Window,
    /// False until the first signal (and after a window was closed by `poll`).
    open: bool,
    /// End of the last closed window: later signals never reopen a closed window.
    min_start: u64,
    pending: VecDeque<Anomaly>,
    dropped: u64,
    totals: [u64; 3],
}

impl AnomalyDetector {
    /// A detector with `cfg`'s thresholds (clamped to their valid ranges).
    pub fn new(cfg: AnomalyConfig) -> Self {
        let ratio = cfg.connect_failure_ratio;
        Self {
            window_ns: (cfg.window().as_nanos() as u64).max(1),
            reset_threshold: cfg.reset_storm_threshold.max(1),
            ratio: if ratio.is_nan() {
                AnomalyConfig::default().connect_failure_ratio
            } else {
                ratio.clamp(f64::MIN_POSITIVE, 1.0)
            },
            min_attempts: cfg.connect_failure_min_attempts.max(1),
            spike: cfg.peer_connection_spike.max(1),
            window: Window::default(),
            open: false,
            min_start: 0,
            pending: VecDeque::new(),
            dropped: 0,
            totals: [0; 3],
        }
    }

    /// Counts one signal observed at `now_ns` (CLOCK_MONOTONIC ns). A signal in a later
    /// window first closes the current one.
    pub fn observe(&mut self, now_ns: u64, s: &TcpSignal) {
        let start = (now_ns - now_ns % self.window_ns).max(self.min_start);
        if !self.open {
            self.window.reset(start);
            self.open = true;
        } else if start > self.window.start_ns {
            self.close();
            self.window.reset(start);
        }
        let w = &mut self.window;
        match *s {
            TcpSignal::Reset { peer, pid, .. } => {
                w.resets += 1;
                w.reset_peers.add(peer, pid);
                w.reset_pids.insert(pid);
            }
            TcpSignal::Connect { ok: true, .. } => w.connects_ok += 1,
            TcpSignal::Connect {
                peer,
                pid,
                ok: false,
            } => {
                w.connects_failed += 1;
                w.failed_peers.add(peer, pid);
                w.failed_pids.insert(pid);
            }
            TcpSignal::Accepted { peer, pid } => w.accepted.add(peer, pid),
        }
    }

    /// Anomalies of windows that ended by `now_ns` (CLOCK_MONOTONIC ns), oldest first.
    pub fn poll(&mut self, now_ns: u64) -> Vec<Anomaly> {
        if self.open && now_ns >= self.window.start_ns.saturating_add(self.window_ns) {
            self.close();
            self.open = false;
        }
        self.pending.drain(..).collect()
    }

    /// Totals per anomaly kind so far (for a counter metric), in [`AnomalyKind::ALL`] order.
    pub fn counts(&self) -> [(AnomalyKind, u64); 3] {
        AnomalyKind::ALL.map(|k| (k, self.totals[k as usize]))
    }

    /// Anomalies dropped because more than [`MAX_PENDING`] waited for [`Self::poll`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Length of a window (ns).
    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    /// Evaluates the rules on the current window and queues its anomalies.
    fn close(&mut self) {
        self.min_start = self.window.start_ns.saturating_add(self.window_ns);
        let w = &self.window;
        let base = |kind, count| Anomaly {
            kind,
            window_start_ns: w.start_ns,
            window_ns: self.window_ns,
            count,
            attempts: 0,
            ratio: 0.0,
            peer: None,
            pids: Vec::new(),
        };
        let mut found = Vec::new();
        if w.resets >= self.reset_threshold {
            found.push(Anomaly {
                peer: w.reset_peers.top(),
                pids: w.reset_pids.to_vec(),
                ..base(AnomalyKind::ResetStorm, w.resets)
            });
        }
        let attempts = w.connects_ok.saturating_add(w.connects_failed);
        if attempts >= self.min_attempts {
            let ratio = w.connects_failed as f64 / attempts as f64;
            if ratio >= self.ratio {
                found.push(Anomaly {
                    attempts,
                    ratio,
                    peer: w.failed_peers.top(),
                    pids: w.failed_pids.to_vec(),
                    ..base(AnomalyKind::ConnectFailures, w.connects_failed)
                });
            }
        }
        for (peer, e) in w.accepted.at_least(self.spike, MAX_SPIKES) {
            found.push(Anomaly {
                peer: Some(peer),
                pids: e.pids.to_vec(),
                ..base(AnomalyKind::PeerConnectionSpike, e.count)
            });
        }
        for a in found {
            self.totals[a.kind as usize] += 1;
            if self.pending.len() >= MAX_PENDING {
                self.pending.pop_front();
                self.dropped += 1;
            }
            self.pending.push_back(a);
        }
    }
}

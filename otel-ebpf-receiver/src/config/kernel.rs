//! The `receiver.kernel_timing` section: per-layer kernel network timing and TCP health
//! and their anomaly rules.
//!
//! Stage: configuration, read at start-up. Input: YAML under `receiver.kernel_timing`.
//! Output: [`KernelTimingConfig`] (whether the skb/net/tcp tracepoints are attached) and the
//! [`AnomalyConfig`] thresholds used by [`crate::kernel::anomaly::AnomalyDetector`].
//! Limits: ranges are checked in `validate.rs` (window 0.1..=3600 s, thresholds ≥ 1,
//! ratio in (0, 1]); values built in code are not validated until [`super::Config::validate`].

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::null_as_default;

/// Per-layer kernel network timing and TCP health (`receiver.kernel_timing:`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelTimingConfig {
    /// Attach the TCP health tracepoints (default on): retransmits, resets, drops (`kfree_skb`),
    /// connect / accept / close. They fire on rare events, so they cost little. Off: no kernel
    /// network hook is attached and no TCP anomaly is reported.
    pub enabled: bool,
    /// Also time data-carrying skbs through the kernel's layers (default on; needs `enabled`):
    /// `net_dev_queue`, `net_dev_start_xmit`, `net_dev_xmit`, `netif_receive_skb`,
    /// `tcp_probe`, `skb_copy_datagram_iovec` — per-layer histograms, RTT and the span
    /// attributes, for the skbs chosen by [`Self::sampling`].
    pub layers: bool,
    /// Which skbs `layers` times (`receiver.kernel_timing.sampling:`).
    #[serde(deserialize_with = "null_as_default")]
    pub sampling: LayerSampling,
    /// TCP health anomaly rules (`receiver.kernel_timing.anomalies:`).
    #[serde(deserialize_with = "null_as_default")]
    pub anomalies: AnomalyConfig,
}

impl Default for KernelTimingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            layers: true,
            sampling: LayerSampling::default(),
            anomalies: AnomalyConfig::default(),
        }
    }
}

/// Layer-timing sampling (docs/kernel-timing.md, "Sampling"): the per-packet hooks are
/// attached only during a window of `window_seconds` in every `period_seconds` (aligned to
/// the wall clock, so hosts with synchronised clocks sample the same windows) or while a
/// connection over a threshold exists; in a window, connections chosen by a hash of their
/// tuple (the same on both ends) have one data skb in `skb_interval` timed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LayerSampling {
    /// Share of connections timed in a window, chosen by an order-independent hash of the
    /// tuple (0 < r ≤ 1; default 1).
    pub connection_rate: f64,
    /// Time one data skb in this many per connection (≥ 1; default 1 = every skb).
    pub skb_interval: u32,
    /// Length of each sampling window (seconds, > 0; default 1). `window_seconds` ≥
    /// `period_seconds` keeps the hooks attached all the time.
    pub window_seconds: f64,
    /// One window starts every `period_seconds` (seconds, > 0; default 60), at wall-clock
    /// multiples of it.
    pub period_seconds: f64,
    /// A connection whose smoothed RTT reaches this at a write is timed for 10 s, window or
    /// not (milliseconds, ≥ 0; 0 = off; default 200).
    pub srtt_threshold_ms: f64,
    /// A connection with this many retransmitted segments is timed for 10 s the same way
    /// (segments, 0..=255; 0 = off; default 3).
    pub retransmit_threshold: u32,
}

impl Default for LayerSampling {
    fn default() -> Self {
        Self {
            connection_rate: 1.0,
            skb_interval: 1,
            window_seconds: 1.0,
            period_seconds: 60.0,
            srtt_threshold_ms: 200.0,
            retransmit_threshold: 3,
        }
    }
}

impl LayerSampling {
    /// Every data skb of every connection, hooks always attached (tests, debugging).
    pub fn always() -> Self {
        Self {
            connection_rate: 1.0,
            skb_interval: 1,
            window_seconds: 1.0,
            period_seconds: 1.0,
            ..Self::default()
        }
    }

    /// Whether the hooks stay attached all the time.
    pub fn continuous(&self) -> bool {
        self.window_seconds >= self.period_seconds
    }

    /// Expected share of data skbs timed outside threshold crossings (0..=1): the window's
    /// share of the period × connection rate ÷ skb interval.
    pub fn expected_rate(&self) -> f64 {
        let w = (self.window_seconds / self.period_seconds).min(1.0);
        w * self.connection_rate / self.skb_interval.max(1) as f64
    }
}

/// Thresholds of the TCP anomaly rules, evaluated per tumbling window of
/// [`Self::window_seconds`]. Each rule fires when its value is at or above the threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Length of each tumbling window (seconds, 0.1..=3600; default 10).
    pub window_seconds: f64,
    /// Resets (RST sent + received, tracepoints `tcp:tcp_send_reset` /
    /// `tcp:tcp_receive_reset`) in one window that make a reset storm (resets, ≥ 1; default
    /// 100).
    pub reset_storm_threshold: u64,
    /// Failed / attempted outgoing connects in one window that make a connect-failure anomaly
    /// (ratio, 0 < r ≤ 1; default 0.5).
    pub connect_failure_ratio: f64,
    /// Fewest outgoing connect attempts in a window for the ratio to count (attempts, ≥ 1;
    /// default 10).
    pub connect_failure_min_attempts: u64,
    /// Connections accepted from one peer in one window that make a connection spike
    /// (connections, ≥ 1; default 1000).
    pub peer_connection_spike: u64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            window_seconds: 10.0,
            reset_storm_threshold: 100,
            connect_failure_ratio: 0.5,
            connect_failure_min_attempts: 10,
            peer_connection_spike: 1000,
        }
    }
}

impl AnomalyConfig {
    /// Smallest accepted `window_seconds` (seconds).
    pub const MIN_WINDOW_SECONDS: f64 = 0.1;
    /// Largest accepted `window_seconds` (seconds; one hour).
    pub const MAX_WINDOW_SECONDS: f64 = 3600.0;

    /// [`Self::window_seconds`] as a [`Duration`], clamped to the accepted range (10 s when
    /// not a number), so an unvalidated value still gives a usable window.
    pub fn window(&self) -> Duration {
        let s = self.window_seconds;
        if s.is_nan() {
            return Duration::from_secs(10);
        }
        Duration::from_secs_f64(s.clamp(Self::MIN_WINDOW_SECONDS, Self::MAX_WINDOW_SECONDS))
    }
}

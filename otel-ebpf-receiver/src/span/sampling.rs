//! Span sampling: which exchanges' spans are exported.
//!
//! Stage: span → **sampling** → export, after the metrics took every exchange (RED and service
//! graph metrics stay exact; only spans are sampled). Input: one [`SampleInput`] per span (trace
//! id, the incoming W3C `sampled` flag if the request carried one, whether the exchange is an
//! error, its duration in ns) and the [`SamplingConfig`]. Output: a [`Decision`] (keep or drop,
//! and the rule that decided), counted by [`SamplingCounts`].
//!
//! Rules, in order: errors are kept (`keep_errors`); exchanges that took at least
//! `keep_slower_than_ms` are kept; an incoming `sampled` flag is honoured (1 keeps, 0 drops:
//! the caller upstream decided for the whole trace); otherwise the consistent trace-id ratio:
//! the randomness R is the lowest 56 bits of the trace id (bytes 9..16, big-endian; random per
//! W3C Trace Context Level 2) and the span is kept when R ≥ T, T = (1 − p) × 2^56 with
//! p = `sampling_percentage` / 100 (the OpenTelemetry probability sampling specification's
//! threshold), so every span of a trace, on any host or process, gets the same decision at the
//! same percentage, and a trace kept at p is kept at every p' > p.
//!
//! Pairs: the CLIENT and SERVER spans of one exchange observed on the same host share a trace
//! id, so the ratio keeps or drops both; the keep rules must see the same inputs for both ends
//! to agree (pass `is_error` true for both when either end is an error, and one duration).
//!
//! Limits: no explicit randomness (`ot=rv:` in `tracestate`) is read; the threshold for an
//! outgoing `tracestate` is given by [`Sampler::threshold_th`]. Pure code, no IO, no state
//! besides the config. Our own code: the OTel SDK samplers decide at span start inside an
//! application and take its parent context; this decides after the exchange, over observed
//! spans, with keep rules that need the outcome.

use crate::config::SamplingConfig;

/// 2^56: the range of the randomness and of the threshold.
pub const RANDOMNESS_RANGE: u64 = 1 << 56;

/// What the sampler needs to know about one span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleInput {
    /// The span's trace id (16 bytes, W3C/OTLP byte order).
    pub trace_id: [u8; 16],
    /// The `sampled` flag of an incoming `traceparent`, when the request carried one.
    pub parent_sampled: Option<bool>,
    /// The exchange is an error (span status ERROR).
    pub is_error: bool,
    /// The exchange's duration (ns).
    pub duration_ns: u64,
}

/// Which rule decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `keep_errors`.
    Error,
    /// `keep_slower_than_ms`.
    Slow,
    /// The incoming `sampled` flag.
    Parent,
    /// The trace-id ratio (`sampling_percentage`).
    Ratio,
}

impl Rule {
    /// Label value (`reason` of the sampling self-metric).
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Error => "error",
            Rule::Slow => "slow",
            Rule::Parent => "parent",
            Rule::Ratio => "ratio",
        }
    }
}

/// A sampling decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Export the span.
    Keep(Rule),
    /// Do not export the span (its metrics were already counted).
    Drop(Rule),
}

impl Decision {
    /// True for [`Decision::Keep`].
    pub fn keep(self) -> bool {
        matches!(self, Decision::Keep(_))
    }
}

/// The sampler for one configuration. `Copy`, so every stage may hold one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampler {
    /// Keep when randomness ≥ this (0: keep all; [`RANDOMNESS_RANGE`]: keep none).
    threshold: u64,
    keep_errors: bool,
    /// Keep when the duration is at least this (ns).
    slow_ns: Option<u64>,
}

impl Sampler {
    /// A sampler for `cfg`; a percentage outside 0..=100 (or NaN) is clamped to it.
    pub fn new(cfg: &SamplingConfig) -> Self {
        let p = if cfg.sampling_percentage.is_nan() {
            100.0
        } else {
            cfg.sampling_percentage.clamp(0.0, 100.0)
        };
        // (1 − p) × 2^56, exact at 0 and 100 %; f64 carries 53 bits, enough below 2^56.
        let threshold = if p >= 100.0 {
            0
        } else if p <= 0.0 {
            RANDOMNESS_RANGE
        } else {
            (((100.0 - p) / 100.0) * RANDOMNESS_RANGE as f64).round() as u64
        };
        Self {
            threshold: threshold.min(RANDOMNESS_RANGE),
            keep_errors: cfg.keep_errors,
            slow_ns: cfg
                .keep_slower_than_ms
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
                .map(|ms| (ms * 1e6) as u64),
        }
    }

    /// The decision for one span (see the module docs for the order of the rules).
    pub fn decide(&self, s: &SampleInput) -> Decision {
        if self.keep_errors && s.is_error {
            return Decision::Keep(Rule::Error);
        }
        if self.slow_ns.is_some_and(|t| s.duration_ns >= t) {
            return Decision::Keep(Rule::Slow);
        }
        match s.parent_sampled {
            Some(true) => return Decision::Keep(Rule::Parent),
            Some(false) => return Decision::Drop(Rule::Parent),
            None => {}
        }
        if randomness(&s.trace_id) >= self.threshold {
            Decision::Keep(Rule::Ratio)
        } else {
            Decision::Drop(Rule::Ratio)
        }
    }

    /// True when the ratio keeps every span (100 %). An incoming `sampled = 0` flag still
    /// drops a span then (see [`Self::decide`]).
    pub fn keeps_all_ratio(&self) -> bool {
        self.threshold == 0
    }

    /// The threshold T (0..=2^56).
    pub fn threshold(&self) -> u64 {
        self.threshold
    }

    /// The `th` value for an outgoing `tracestate` `ot=th:…` entry: T as 14 hex digits with
    /// trailing zeros removed; `None` at 100 % (the specification omits it then).
    pub fn threshold_th(&self) -> Option<String> {
        if self.threshold == 0 {
            return None;
        }
        if self.threshold >= RANDOMNESS_RANGE {
            // Never sampled: no threshold value exists (T would need 57 bits).
            return None;
        }
        let hex = format!("{:014x}", self.threshold);
        Some(hex.trim_end_matches('0').to_string()).filter(|h| !h.is_empty())
    }
}

/// The randomness of a trace id: its lowest 56 bits (bytes 9..16, big-endian).
pub fn randomness(trace_id: &[u8; 16]) -> u64 {
    let mut b = [0u8; 8];
    b[1..].copy_from_slice(&trace_id[9..16]);
    u64::from_be_bytes(b)
}

/// Counts of decisions, by outcome and rule (add them to self-metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SamplingCounts {
    /// Spans kept, by rule: error, slow, parent, ratio.
    pub kept: [u64; 4],
    /// Spans dropped, by rule: parent (flag 0), ratio.
    pub dropped_parent: u64,
    /// Spans dropped by the ratio.
    pub dropped_ratio: u64,
}

impl SamplingCounts {
    /// Counts one decision.
    pub fn record(&mut self, d: Decision) {
        match d {
            Decision::Keep(r) => self.kept[r as usize] += 1,
            Decision::Drop(Rule::Parent) => self.dropped_parent += 1,
            Decision::Drop(_) => self.dropped_ratio += 1,
        }
    }

    /// Spans kept, all rules.
    pub fn kept_total(&self) -> u64 {
        self.kept.iter().sum()
    }

    /// Spans dropped, all rules.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_parent + self.dropped_ratio
    }
}

#[cfg(test)]
mod tests;

//! Our own metrics and log-record model: what the aggregators produce and `export/` encodes.
//!
//! Stage: the vocabulary between **metrics** (HTTP/RPC durations, kernel timing, service
//! graph), **anomaly log records** and **export**. Input: none. Output: [`MetricsBatch`] and
//! [`LogsBatch`], handed to the exporter through `export::MetricsSource` /
//! `export::LogsSource`; `export/` alone turns them into OTLP protobuf messages.
//!
//! The shapes follow the OTel data model (<https://opentelemetry.io/docs/specs/otel/metrics/data-model/>,
//! <https://opentelemetry.io/docs/specs/otel/logs/data-model/>) but only as far as this
//! receiver uses it: every metric is CUMULATIVE; histograms have explicit buckets; sums are
//! monotonic integer counters; log records carry a string body. Names, units and bucket bounds
//! are `&'static` (from `semconv/`), so a collection allocates only attribute values and
//! point vectors.

use crate::attr::Attributes;
use std::borrow::Cow;

/// A cumulative snapshot of metrics, one entry per resource (process, host or the receiver).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsBatch {
    /// In export order.
    pub resource_metrics: Vec<ResourceMetrics>,
}

/// The metrics of one resource (scope: this receiver).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceMetrics {
    /// Resource attributes (`service.name`, `process.pid`, …); empty: no resource.
    pub resource: Attributes,
    /// In export order.
    pub metrics: Vec<Metric>,
}

/// One instrument's points.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Semantic-convention name, e.g. `http.server.request.duration`.
    pub name: &'static str,
    /// Human description (may state a sampling rate).
    pub description: Cow<'static, str>,
    /// UCUM unit, e.g. `s`, `{packet}`.
    pub unit: &'static str,
    /// The points.
    pub data: MetricData,
}

/// The points of a metric; all CUMULATIVE.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricData {
    /// Explicit-bucket histogram.
    Histogram(Vec<HistogramDataPoint>),
    /// Monotonic integer sum (a counter).
    Sum(Vec<NumberDataPoint>),
}

impl MetricData {
    /// Number of points.
    pub fn len(&self) -> usize {
        match self {
            MetricData::Histogram(p) => p.len(),
            MetricData::Sum(p) => p.len(),
        }
    }

    /// True without points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The histogram points (empty for a sum).
    pub fn histogram(&self) -> &[HistogramDataPoint] {
        match self {
            MetricData::Histogram(p) => p,
            MetricData::Sum(_) => &[],
        }
    }

    /// The sum points (empty for a histogram).
    pub fn sum(&self) -> &[NumberDataPoint] {
        match self {
            MetricData::Sum(p) => p,
            MetricData::Histogram(_) => &[],
        }
    }
}

/// One histogram series at collection time.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramDataPoint {
    /// Series attributes.
    pub attributes: Attributes,
    /// Unix ns of the series' first measurement.
    pub start_time_unix_nano: u64,
    /// Unix ns of the collection (≥ start).
    pub time_unix_nano: u64,
    /// Measurements.
    pub count: u64,
    /// Sum of the measurements, in the metric's unit.
    pub sum: f64,
    /// `explicit_bounds.len() + 1` counts; bucket `i` holds `(bounds[i-1], bounds[i]]`.
    pub bucket_counts: Vec<u64>,
    /// Upper bounds, ascending, in the metric's unit.
    pub explicit_bounds: &'static [f64],
    /// Smallest measurement (`None`: not tracked).
    pub min: Option<f64>,
    /// Largest measurement (`None`: not tracked).
    pub max: Option<f64>,
}

/// One counter series at collection time.
#[derive(Clone, Debug, PartialEq)]
pub struct NumberDataPoint {
    /// Series attributes.
    pub attributes: Attributes,
    /// Unix ns of the series' first measurement.
    pub start_time_unix_nano: u64,
    /// Unix ns of the collection (≥ start).
    pub time_unix_nano: u64,
    /// Cumulative count.
    pub value: i64,
}

/// Log records under one resource (scope: this receiver).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogsBatch {
    /// Resource attributes.
    pub resource: Attributes,
    /// In order.
    pub log_records: Vec<LogRecord>,
}

/// Log severity (OTel `SeverityNumber` ranges; anomalies are WARN, 13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// SeverityNumber 13, text `WARN`.
    Warn,
}

impl Severity {
    /// The OTel `SeverityNumber`.
    pub fn number(self) -> i32 {
        match self {
            Severity::Warn => 13,
        }
    }

    /// The severity text.
    pub fn text(self) -> &'static str {
        match self {
            Severity::Warn => "WARN",
        }
    }
}

/// One event as a log record.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// Unix ns of the event (also used as the observed time).
    pub time_unix_nano: u64,
    /// Severity.
    pub severity: Severity,
    /// One human line.
    pub body: String,
    /// Record attributes.
    pub attributes: Attributes,
    /// The event's name (`event_name`), e.g. an anomaly type.
    pub event_name: &'static str,
}

//! Reading OTLP metrics the [`crate::sink::OtlpSink`] received: the newest cumulative export
//! of a metric, counter sums (each series at its newest value over all exports) and histogram
//! points filtered by attributes or by the process (`process.pid` resource attribute). Test
//! support only.

use crate::sink::OtlpSink;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    HistogramDataPoint, Metric, ResourceMetrics, metric::Data, number_data_point,
};
use std::time::{Duration, Instant};

pub fn attr<'a>(a: &'a [KeyValue], k: &str) -> Option<&'a Value> {
    a.iter()
        .find(|x| x.key == k)
        .and_then(|x| x.value.as_ref()?.value.as_ref())
}

pub fn attr_is(a: &[KeyValue], k: &str, v: &str) -> bool {
    matches!(attr(a, k), Some(Value::StringValue(s)) if s == v)
}

/// The newest export that has metric `name` (cumulative: the newest has the totals).
pub fn latest(sink: &OtlpSink, name: &str) -> Option<ExportMetricsServiceRequest> {
    sink.metrics().into_iter().rev().find(|r| {
        r.resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .any(|s| s.metrics.iter().any(|m| m.name == name))
    })
}

/// The metrics named `name` under the resources `keep` accepts, from the newest export that
/// has the metric.
fn metrics_where(
    sink: &OtlpSink,
    name: &str,
    keep: impl Fn(&ResourceMetrics) -> bool,
) -> Vec<Metric> {
    latest(sink, name)
        .into_iter()
        .flat_map(|req| req.resource_metrics)
        .filter(keep)
        .flat_map(|rm| rm.scope_metrics)
        .flat_map(|s| s.metrics)
        .filter(|m| m.name == name)
        .collect()
}

/// The metrics named `name` in the newest export that has them.
pub fn metrics_named(sink: &OtlpSink, name: &str) -> Vec<Metric> {
    metrics_where(sink, name, |_| true)
}

/// The metrics named `name` under the resource of process `pid` (`process.pid`), from the
/// newest export that has the metric.
pub fn metrics_of_pid(sink: &OtlpSink, name: &str, pid: u32) -> Vec<Metric> {
    metrics_where(sink, name, |rm| {
        let a = rm
            .resource
            .as_ref()
            .map(|r| &r.attributes[..])
            .unwrap_or(&[]);
        matches!(attr(a, "process.pid"), Some(Value::IntValue(p)) if *p == pid as i64)
    })
}

/// Sum of counter `name` over the points whose attributes satisfy `pred`: each series (its
/// resource and attributes) counts with its newest value in any export, since the receiver
/// exports the series of an exited process once more and then forgets it.
pub fn counter(sink: &OtlpSink, name: &str, pred: impl Fn(&[KeyValue]) -> bool) -> i64 {
    let mut last: std::collections::BTreeMap<String, i64> = Default::default();
    for req in sink.metrics() {
        for rm in &req.resource_metrics {
            let res = format!("{:?}", rm.resource);
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let Some(Data::Sum(sum)) = m.data.as_ref().filter(|_| m.name == name) else {
                    continue;
                };
                for p in sum.data_points.iter().filter(|p| pred(&p.attributes)) {
                    if let Some(number_data_point::Value::AsInt(v)) = p.value {
                        last.insert(format!("{res}|{:?}", p.attributes), v);
                    }
                }
            }
        }
    }
    last.values().sum()
}

/// Sum of counter `name` under the resource of process `pid`, over the points whose
/// attributes satisfy `pred`.
pub fn counter_of_pid(
    sink: &OtlpSink,
    name: &str,
    pid: u32,
    pred: impl Fn(&[KeyValue]) -> bool,
) -> i64 {
    sum_points(metrics_of_pid(sink, name, pid), pred)
}

/// Histogram points of `name` whose attributes satisfy `pred`.
pub fn hist(
    sink: &OtlpSink,
    name: &str,
    pred: impl Fn(&[KeyValue]) -> bool,
) -> Vec<HistogramDataPoint> {
    hist_points(metrics_named(sink, name))
        .filter(|p| pred(&p.attributes))
        .collect()
}

/// Histogram points of `name` under the resource of process `pid`.
pub fn hist_of_pid(sink: &OtlpSink, name: &str, pid: u32) -> Vec<HistogramDataPoint> {
    hist_points(metrics_of_pid(sink, name, pid)).collect()
}

fn hist_points(metrics: Vec<Metric>) -> impl Iterator<Item = HistogramDataPoint> {
    metrics
        .into_iter()
        .filter_map(|m| match m.data {
            Some(Data::Histogram(h)) => Some(h.data_points),
            _ => None,
        })
        .flatten()
}

fn sum_points(metrics: Vec<Metric>, pred: impl Fn(&[KeyValue]) -> bool) -> i64 {
    metrics
        .into_iter()
        .filter_map(|m| match m.data {
            Some(Data::Sum(s)) => Some(s.data_points),
            _ => None,
        })
        .flatten()
        .filter(|p| pred(&p.attributes))
        .map(|p| match p.value {
            Some(number_data_point::Value::AsInt(v)) => v,
            _ => 0,
        })
        .sum()
}

/// Polls until `cond` holds (metrics arrive every second) or panics with `what`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

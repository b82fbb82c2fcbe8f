//! Splitting metrics requests: every piece within the budget, nothing lost, nothing repeated.

use super::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, NumberDataPoint, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

fn kv(k: &str, v: String) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v)),
        }),
        ..Default::default()
    }
}

fn hist_point(i: usize) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: vec![kv("url.path", format!("/p/{i}"))],
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        count: i as u64,
        bucket_counts: vec![i as u64; 16],
        explicit_bounds: vec![0.5; 15],
        ..Default::default()
    }
}

/// `procs` resources, each with one histogram of `points` points and one gauge of 3 points.
fn request(procs: usize, points: usize) -> ExportMetricsServiceRequest {
    let resource_metrics = (0..procs)
        .map(|p| ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", format!("svc{p}"))],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "http.server.request.duration".into(),
                        unit: "s".into(),
                        data: Some(Data::Histogram(Histogram {
                            data_points: (0..points).map(hist_point).collect(),
                            aggregation_temporality: 2,
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "g".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: (0..3)
                                .map(|i| NumberDataPoint {
                                    value: Some(number_data_point::Value::AsInt(i)),
                                    ..Default::default()
                                })
                                .collect(),
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// Every data point with its resource, scope and metric description, in order.
fn flatten(reqs: &[ExportMetricsServiceRequest]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for req in reqs {
        for rm in &req.resource_metrics {
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    let head = (
                        rm.resource
                            .as_ref()
                            .map(Message::encode_to_vec)
                            .unwrap_or_default(),
                        sm.scope
                            .as_ref()
                            .map(Message::encode_to_vec)
                            .unwrap_or_default(),
                    );
                    let mut push = |p: Vec<u8>| {
                        let mut v = head.0.clone();
                        v.extend(&head.1);
                        v.extend(m.name.as_bytes());
                        v.extend(m.unit.as_bytes());
                        v.extend(p);
                        out.push(v);
                    };
                    match &m.data {
                        Some(Data::Histogram(h)) => {
                            assert_eq!(h.aggregation_temporality, 2);
                            h.data_points.iter().for_each(|p| push(p.encode_to_vec()))
                        }
                        Some(Data::Gauge(g)) => {
                            g.data_points.iter().for_each(|p| push(p.encode_to_vec()))
                        }
                        _ => panic!("unexpected data"),
                    }
                }
            }
        }
    }
    out
}

fn check(req: ExportMetricsServiceRequest, max: usize) -> Vec<ExportMetricsServiceRequest> {
    let want = flatten(std::slice::from_ref(&req));
    let parts = split_metrics(req, max);
    for p in &parts {
        assert!(p.encoded_len() <= max, "{} > {max} bytes", p.encoded_len());
        assert!(!p.resource_metrics.is_empty());
    }
    assert_eq!(flatten(&parts), want, "same points, same order");
    parts
}

#[test]
fn small_request_is_kept_whole() {
    let req = request(3, 4);
    assert_eq!(split_metrics(req.clone(), 1 << 20), vec![req]);
    let empty = ExportMetricsServiceRequest::default();
    assert_eq!(split_metrics(empty.clone(), 100), vec![empty]);
}

#[test]
fn many_processes_over_4_mib_go_out_under_the_default_budget() {
    // ~5,000 processes × 20 series: one request of several MiB before splitting.
    let req = request(5_000, 20);
    let total = req.encoded_len();
    assert!(total > 4 << 20, "{total}");
    let parts = check(req, DEFAULT_MAX_METRICS_REQUEST_BYTES);
    // Greedy packing wastes at most one resource per request.
    assert!(
        parts.len() <= total / DEFAULT_MAX_METRICS_REQUEST_BYTES + 2,
        "{}",
        parts.len()
    );
}

#[test]
fn one_resource_too_large_is_split_by_metric_and_by_point() {
    let req = request(2, 400);
    let one = req.resource_metrics[0].encoded_len();
    for max in [one / 2, one / 7, 2_000, 700] {
        let parts = check(req.clone(), max);
        assert!(parts.len() >= 2);
    }
}

#[test]
fn a_point_larger_than_the_budget_goes_alone() {
    let req = request(1, 3);
    let parts = split_metrics(req.clone(), 10);
    assert_eq!(flatten(&parts), flatten(std::slice::from_ref(&req)));
    // 3 histogram points + 3 gauge points, one per request.
    assert_eq!(parts.len(), 6);
}

//! Conversions from the receiver's own models to OTLP protobuf objects.
//!
//! Stage: inside **export** (OTLP types live here only). Input: [`MetricsBatch`] and
//! [`LogsBatch`] (`crate::model`) with their [`Attributes`]. Output: the
//! `ExportMetricsServiceRequest` / `ExportLogsServiceRequest` sent as built (metrics split by
//! size first, `split`); spans are encoded without objects (`encode`).

use crate::attr::{AttrValue, Attributes};
use crate::model::{self, LogsBatch, MetricData, MetricsBatch};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// The OTLP request of a metrics batch: one `ResourceMetrics` per entry (no resource when its
/// attributes are empty), scope `otel-ebpf-receiver`, CUMULATIVE, sums monotonic.
pub(crate) fn metrics_request(batch: &MetricsBatch) -> ExportMetricsServiceRequest {
    let resource_metrics = batch
        .resource_metrics
        .iter()
        .map(|r| ResourceMetrics {
            resource: (!r.resource.is_empty()).then(|| resource(&r.resource)),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(super::batch::scope()),
                metrics: r.metrics.iter().map(metric).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

fn metric(m: &model::Metric) -> Metric {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let data = match &m.data {
        MetricData::Histogram(points) => metric::Data::Histogram(Histogram {
            data_points: points
                .iter()
                .map(|p| HistogramDataPoint {
                    attributes: key_values(&p.attributes),
                    start_time_unix_nano: p.start_time_unix_nano,
                    time_unix_nano: p.time_unix_nano,
                    count: p.count,
                    sum: Some(p.sum),
                    bucket_counts: p.bucket_counts.clone(),
                    explicit_bounds: p.explicit_bounds.to_vec(),
                    min: p.min,
                    max: p.max,
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: cumulative,
        }),
        MetricData::Sum(points) => metric::Data::Sum(Sum {
            data_points: points
                .iter()
                .map(|p| NumberDataPoint {
                    attributes: key_values(&p.attributes),
                    start_time_unix_nano: p.start_time_unix_nano,
                    time_unix_nano: p.time_unix_nano,
                    value: Some(number_data_point::Value::AsInt(p.value)),
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: cumulative,
            is_monotonic: true,
        }),
    };
    Metric {
        name: m.name.into(),
        description: m.description.to_string(),
        unit: m.unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

/// The OTLP request of a logs batch: one `ResourceLogs`, scope `otel-ebpf-receiver` with the
/// semantic-conventions schema URL.
pub(crate) fn logs_request(batch: &LogsBatch) -> ExportLogsServiceRequest {
    let log_records = batch
        .log_records
        .iter()
        .map(|r| LogRecord {
            time_unix_nano: r.time_unix_nano,
            observed_time_unix_nano: r.time_unix_nano,
            severity_number: r.severity.number(),
            severity_text: r.severity.text().into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(r.body.clone())),
            }),
            attributes: key_values(&r.attributes),
            event_name: r.event_name.into(),
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource(&batch.resource)),
            scope_logs: vec![ScopeLogs {
                scope: Some(super::batch::scope()),
                log_records,
                schema_url: otel_ebpf_semconv::otel::SCHEMA_URL.into(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// An OTLP attribute.
pub(crate) fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// The OTLP value of one of our values.
pub(crate) fn value(v: &AttrValue) -> Value {
    match v {
        AttrValue::Str(s) => Value::StringValue(s.to_string()),
        AttrValue::Int(i) => Value::IntValue(*i),
        AttrValue::Double(d) => Value::DoubleValue(*d),
        AttrValue::Bool(b) => Value::BoolValue(*b),
        AttrValue::StrArray(v) => Value::ArrayValue(ArrayValue {
            values: v
                .iter()
                .map(|s| AnyValue {
                    value: Some(Value::StringValue(s.clone())),
                })
                .collect(),
        }),
        AttrValue::IntArray(v) => Value::ArrayValue(ArrayValue {
            values: v
                .iter()
                .map(|i| AnyValue {
                    value: Some(Value::IntValue(*i)),
                })
                .collect(),
        }),
    }
}

/// The OTLP attributes of a list, in order.
pub(crate) fn key_values(a: &Attributes) -> Vec<KeyValue> {
    a.iter().map(|(k, v)| kv(k, value(v))).collect()
}

/// An OTLP resource with these attributes.
pub(crate) fn resource(a: &Attributes) -> Resource {
    Resource {
        attributes: key_values(a),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        self, HistogramDataPoint as Hp, LogsBatch, NumberDataPoint as Np, ResourceMetrics as Rm,
        Severity,
    };

    fn attrs(k: &'static str, v: &'static str) -> Attributes {
        let mut a = Attributes::new();
        a.push(k, v);
        a
    }

    #[test]
    fn metrics_batch_becomes_cumulative_otlp_with_our_scope() {
        let batch = MetricsBatch {
            resource_metrics: vec![
                Rm {
                    resource: attrs("service.name", "web"),
                    metrics: vec![
                        model::Metric {
                            name: "http.server.request.duration",
                            description: "d".into(),
                            unit: "s",
                            data: MetricData::Histogram(vec![Hp {
                                attributes: attrs("http.request.method", "GET"),
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                count: 3,
                                sum: 0.5,
                                bucket_counts: vec![1, 2, 0],
                                explicit_bounds: &[0.1, 1.0],
                                min: Some(0.05),
                                max: None,
                            }]),
                        },
                        model::Metric {
                            name: "otel_ebpf.tcp.retransmits",
                            description: "r".into(),
                            unit: "{packet}",
                            data: MetricData::Sum(vec![Np {
                                attributes: Attributes::new(),
                                start_time_unix_nano: 4,
                                time_unix_nano: 5,
                                value: 6,
                            }]),
                        },
                    ],
                },
                Rm::default(),
            ],
        };
        let req = metrics_request(&batch);
        let points: usize = req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| match &m.data {
                Some(metric::Data::Histogram(h)) => h.data_points.len(),
                Some(metric::Data::Sum(s)) => s.data_points.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(points, 2);
        assert_eq!(req.resource_metrics.len(), 2);
        let rm = &req.resource_metrics[0];
        assert_eq!(rm.resource, Some(resource(&attrs("service.name", "web"))));
        assert_eq!(req.resource_metrics[1].resource, None, "empty: no resource");
        let sm = &rm.scope_metrics[0];
        assert_eq!(sm.scope, Some(super::super::batch::scope()));
        let Some(metric::Data::Histogram(h)) = &sm.metrics[0].data else {
            panic!("not a histogram")
        };
        assert_eq!(
            h.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let p = &h.data_points[0];
        assert_eq!(
            (p.count, p.sum, p.min, p.max),
            (3, Some(0.5), Some(0.05), None)
        );
        assert_eq!(p.explicit_bounds, vec![0.1, 1.0]);
        assert_eq!(p.bucket_counts, vec![1, 2, 0]);
        assert_eq!(
            p.attributes,
            key_values(&attrs("http.request.method", "GET"))
        );
        let Some(metric::Data::Sum(s)) = &sm.metrics[1].data else {
            panic!("not a sum")
        };
        assert!(s.is_monotonic);
        assert_eq!(
            s.data_points[0].value,
            Some(number_data_point::Value::AsInt(6))
        );
        assert_eq!(sm.metrics[1].unit, "{packet}");
    }

    #[test]
    fn logs_batch_becomes_one_resource_with_warn_records() {
        let mut a = Attributes::new();
        a.push("otel_ebpf.anomaly.pids", AttrValue::IntArray(vec![7, 8]));
        let batch = LogsBatch {
            resource: attrs("service.name", "otel-ebpf-receiver"),
            log_records: vec![model::LogRecord {
                time_unix_nano: 9,
                severity: Severity::Warn,
                body: "250 resets in 10s".into(),
                attributes: a,
                event_name: "tcp.reset_storm",
            }],
        };
        let req = logs_request(&batch);
        let sl = &req.resource_logs[0].scope_logs[0];
        assert_eq!(sl.schema_url, otel_ebpf_semconv::otel::SCHEMA_URL);
        let r = &sl.log_records[0];
        assert_eq!(
            (
                r.time_unix_nano,
                r.observed_time_unix_nano,
                r.severity_number
            ),
            (9, 9, 13)
        );
        assert_eq!(
            (r.severity_text.as_str(), r.event_name.as_str()),
            ("WARN", "tcp.reset_storm")
        );
        let int = |i| AnyValue {
            value: Some(Value::IntValue(i)),
        };
        assert_eq!(
            r.attributes[0].value,
            Some(AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![int(7), int(8)]
                }))
            })
        );
    }
}

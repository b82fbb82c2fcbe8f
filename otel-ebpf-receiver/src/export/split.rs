//! Splitting of metrics export requests by encoded size.
//!
//! Stage: **export** (metrics). Input: one `ExportMetricsServiceRequest` as collected (every
//! process's series in one request) and a byte budget. Output: requests whose protobuf
//! encoding is at most that many bytes each, together carrying exactly the same data points
//! under the same resources, scopes and metric descriptions. A collector refuses larger
//! messages (the OTel Collector's gRPC receiver defaults to 4 MiB), so without splitting a host
//! with many processes or series would lose every metric at once.
//!
//! How: resources are packed greedily into requests; a resource too large for one request is
//! split by scope, a scope by metric, and a metric by data point (each piece repeats the
//! resource, scope and metric description). Sizes are exact protobuf lengths (`prost`'s
//! `encoded_len`, computed once per item). Limits: a single data point larger than the budget
//! cannot be split and goes alone in its request (its size is the collector's to judge).
//! Pure code, no IO.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Metric, ResourceMetrics, ScopeMetrics, metric::Data,
};
use prost::Message;
use prost::encoding::encoded_len_varint;

/// Default budget of one metrics export request (bytes): 3.5 MiB, under the 4 MiB a collector
/// accepts by default, with room for gRPC/HTTP framing.
pub const DEFAULT_MAX_METRICS_REQUEST_BYTES: usize = 3_670_016;

/// Most bytes a length-delimited field adds around its body: a one-byte key (every field here
/// has a number < 16) and a length varint of up to 5 bytes.
const FIELD_OVERHEAD: usize = 6;

/// Splits `req` into requests of at most `max_bytes` encoded bytes each (see the module docs).
/// A request within the budget (an empty one too) is returned as is.
pub fn split_metrics(
    req: ExportMetricsServiceRequest,
    max_bytes: usize,
) -> Vec<ExportMetricsServiceRequest> {
    if req.encoded_len() <= max_bytes {
        return vec![req];
    }
    let mut items = Vec::new();
    for rm in req.resource_metrics {
        if field_len(&rm) <= max_bytes {
            items.push(rm);
        } else {
            items.extend(split_resource(rm, max_bytes.saturating_sub(FIELD_OVERHEAD)));
        }
    }
    pack(items, max_bytes)
        .into_iter()
        .map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
        .collect()
}

/// Encoded length of `m` as a length-delimited field of its parent (key, length, body).
fn field_len<M: Message>(m: &M) -> usize {
    let n = m.encoded_len();
    1 + encoded_len_varint(n as u64) + n
}

/// Greedy packing of items into groups whose field lengths add up to at most `budget` (an item
/// larger than the budget alone in its group). Order is kept.
fn pack<T: Message>(items: Vec<T>, budget: usize) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut used = 0;
    for item in items {
        let n = field_len(&item);
        match groups.last_mut() {
            Some(g) if used + n <= budget => {
                g.push(item);
                used += n;
            }
            _ => {
                groups.push(vec![item]);
                used = n;
            }
        }
    }
    groups
}

/// Splits one resource's body (budget `body`) into several, each with the same resource.
fn split_resource(mut rm: ResourceMetrics, body: usize) -> Vec<ResourceMetrics> {
    let scopes = std::mem::take(&mut rm.scope_metrics);
    let inner = body.saturating_sub(rm.encoded_len());
    let mut items = Vec::new();
    for sm in scopes {
        if field_len(&sm) <= inner {
            items.push(sm);
        } else {
            items.extend(split_scope(sm, inner.saturating_sub(FIELD_OVERHEAD)));
        }
    }
    pack(items, inner)
        .into_iter()
        .map(|scope_metrics| ResourceMetrics {
            scope_metrics,
            ..rm.clone()
        })
        .collect()
}

/// Splits one scope's body (budget `body`) into several, each with the same scope.
fn split_scope(mut sm: ScopeMetrics, body: usize) -> Vec<ScopeMetrics> {
    let metrics = std::mem::take(&mut sm.metrics);
    let inner = body.saturating_sub(sm.encoded_len());
    let mut items = Vec::new();
    for m in metrics {
        if field_len(&m) <= inner {
            items.push(m);
        } else {
            items.extend(split_metric(m, inner.saturating_sub(FIELD_OVERHEAD)));
        }
    }
    pack(items, inner)
        .into_iter()
        .map(|metrics| ScopeMetrics {
            metrics,
            ..sm.clone()
        })
        .collect()
}

/// Splits one metric's body (budget `body`) by data point, each piece with the same name,
/// description, unit and temporality.
fn split_metric(m: Metric, body: usize) -> Vec<Metric> {
    macro_rules! by_points {
        ($m:ident, $data:ident, $variant:ident) => {{
            let mut shell = $m.clone();
            let points = std::mem::take(&mut $data.data_points);
            shell.data = Some(Data::$variant($data.clone()));
            // The data message's own length varint may grow by up to 4 bytes.
            let inner = body.saturating_sub(shell.encoded_len() + 4);
            pack(points, inner)
                .into_iter()
                .map(|data_points| {
                    let mut piece = shell.clone();
                    if let Some(Data::$variant(d)) = piece.data.as_mut() {
                        d.data_points = data_points;
                    }
                    piece
                })
                .collect()
        }};
    }
    let mut m = m;
    match m.data.take() {
        Some(Data::Gauge(mut d)) => by_points!(m, d, Gauge),
        Some(Data::Sum(mut d)) => by_points!(m, d, Sum),
        Some(Data::Histogram(mut d)) => by_points!(m, d, Histogram),
        Some(Data::ExponentialHistogram(mut d)) => by_points!(m, d, ExponentialHistogram),
        Some(Data::Summary(mut d)) => by_points!(m, d, Summary),
        None => vec![m],
    }
}

#[cfg(test)]
mod tests;

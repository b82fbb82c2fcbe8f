//! Batch building: groups queued spans by their process resource.
//!
//! Stage: inside **export**, between the queue and a transport. Input: a batch of
//! `(Arc<ProcessResource>, Span)`. Output: one `ExportTraceServiceRequest` with one
//! `ResourceSpans` per distinct process resource (first-seen order), each holding one
//! `ScopeSpans` whose scope is `otel-ebpf-receiver` at this crate's version.
//! Sources: OTLP trace data model (`opentelemetry/proto/trace/v1/trace.proto`).
//! Limits: resources compare by pointer first, then by value, so a process whose resource was
//! rebuilt (new `Arc`, same content) still gets one `ResourceSpans`.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

use super::Item;
use crate::enrich::ProcessResource;

/// Instrumentation scope name on every exported span.
pub(crate) const SCOPE_NAME: &str = "otel-ebpf-receiver";
/// Instrumentation scope version (this crate's version).
pub(crate) const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The instrumentation scope of everything this receiver exports (spans, metrics, logs).
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.into(),
        version: SCOPE_VERSION.into(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

/// Builds one export request from a batch, grouping spans by process resource.
pub fn trace_request(items: Vec<Item>) -> ExportTraceServiceRequest {
    let mut groups: Vec<(Arc<ProcessResource>, ResourceSpans)> = Vec::new();
    // pid → indexes into `groups` (usually exactly one).
    let mut by_pid: HashMap<u32, Vec<usize>> = HashMap::new();
    for (resource, span) in items {
        let candidates = by_pid.entry(resource.pid).or_default();
        let found = candidates
            .iter()
            .copied()
            .find(|&i| Arc::ptr_eq(&groups[i].0, &resource) || *groups[i].0 == *resource);
        let idx = match found {
            Some(i) => i,
            None => {
                candidates.push(groups.len());
                let rs = ResourceSpans {
                    resource: Some(resource.resource.clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(scope()),
                        spans: Vec::new(),
                        schema_url: otel_ebpf_semconv::otel::SCHEMA_URL.into(),
                    }],
                    schema_url: String::new(),
                };
                groups.push((resource, rs));
                groups.len() - 1
            }
        };
        groups[idx].1.scope_spans[0].spans.push(span);
    }
    ExportTraceServiceRequest {
        resource_spans: groups.into_iter().map(|(_, rs)| rs).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::support::{resource, span};

    fn names(rs: &ResourceSpans) -> Vec<String> {
        rs.scope_spans[0]
            .spans
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    #[test]
    fn groups_spans_by_process_in_first_seen_order() {
        let nginx = resource(10, "nginx");
        let redis = resource(20, "redis");
        let items = vec![
            (nginx.clone(), span("a")),
            (redis.clone(), span("b")),
            (nginx.clone(), span("c")),
            (redis.clone(), span("d")),
            (nginx.clone(), span("e")),
        ];
        let req = trace_request(items);
        assert_eq!(req.resource_spans.len(), 2);
        assert_eq!(
            req.resource_spans[0].resource.as_ref(),
            Some(&nginx.resource)
        );
        assert_eq!(
            req.resource_spans[1].resource.as_ref(),
            Some(&redis.resource)
        );
        assert_eq!(names(&req.resource_spans[0]), vec!["a", "c", "e"]);
        assert_eq!(names(&req.resource_spans[1]), vec!["b", "d"]);
        for rs in &req.resource_spans {
            assert_eq!(rs.scope_spans.len(), 1);
            let scope = rs.scope_spans[0].scope.as_ref().unwrap();
            assert_eq!(scope.name, "otel-ebpf-receiver");
            assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
        }
    }

    #[test]
    fn equal_resources_in_different_arcs_share_a_group() {
        let a = resource(10, "nginx");
        let b = Arc::new((*a).clone());
        let req = trace_request(vec![(a, span("x")), (b, span("y"))]);
        assert_eq!(req.resource_spans.len(), 1);
        assert_eq!(names(&req.resource_spans[0]), vec!["x", "y"]);
    }

    #[test]
    fn same_pid_with_a_different_resource_gets_its_own_group() {
        // pid reuse: a new process with the old pid.
        let old = resource(10, "old");
        let new = resource(10, "new");
        let req = trace_request(vec![
            (old, span("x")),
            (new, span("y")),
            (resource(10, "old"), span("z")),
        ]);
        assert_eq!(req.resource_spans.len(), 2);
        assert_eq!(names(&req.resource_spans[0]), vec!["x", "z"]);
        assert_eq!(names(&req.resource_spans[1]), vec!["y"]);
    }

    #[test]
    fn empty_batch_gives_empty_request() {
        assert_eq!(trace_request(Vec::new()).resource_spans.len(), 0);
    }
}

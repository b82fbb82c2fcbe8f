//! The span encoder's bytes decode (with opentelemetry-proto's prost types) to exactly the
//! span the receiver describes through its attribute sink, grouped by resource.

use super::*;
use crate::export::otlp;
use crate::export::tests::support::{exchange, record, resource, span};
use crate::kernel::spans::ConnTiming;
use crate::protocol::{ExchangeError, GrpcCall};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span::SpanKind, status::StatusCode};
use prost::Message;

/// The OTLP object the encoding must equal, built the slow way.
fn expected(s: &SpanRecord) -> Span {
    let mut a = Attributes::new();
    s.attributes(&mut a);
    let (error, message) = s.status();
    Span {
        trace_id: s.trace.trace_id.to_vec(),
        span_id: s.trace.span_id.to_vec(),
        trace_state: s.trace_state.as_deref().unwrap_or("").to_string(),
        parent_span_id: s
            .trace
            .parent_span_id
            .map(|p| p.to_vec())
            .unwrap_or_default(),
        flags: s.trace.otlp_flags(),
        name: s.name().to_string(),
        kind: match s.side() {
            Side::Server => SpanKind::Server,
            Side::Client => SpanKind::Client,
        } as i32,
        start_time_unix_nano: s.start_unix_ns,
        end_time_unix_nano: s.end_unix_ns,
        attributes: otlp::key_values(&a),
        status: (error || !message.is_empty()).then(|| Status {
            message: message.to_string(),
            code: if error {
                StatusCode::Error
            } else {
                StatusCode::Unset
            } as i32,
        }),
        ..Default::default()
    }
}

fn decode(bytes: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(bytes).expect("valid protobuf")
}

#[test]
fn every_field_of_varied_spans_round_trips() {
    let mut spans = Vec::new();
    // Server span, HTTP/1.1, no error.
    spans.push(record(
        exchange(Side::Server, "10.0.0.1:8080", "10.0.0.2:51000", Some(200)),
        1_795_255_200_123_000_000,
        1_234_567,
    ));
    // Client span over IPv6 with a timeout, a parent, a tracestate and kernel time.
    let mut ex = exchange(Side::Client, "[::1]:40000", "[2001:db8::1]:443", None);
    ex.error = Some(ExchangeError::Timeout);
    ex.host = Some("api.example".into());
    ex.user_agent = Some("curl/8 \u{e9}".into());
    let mut s = record(ex, 5, 30_000_000_000);
    s.trace.parent_span_id = Some([7; 8]);
    s.trace.parent_remote = true;
    s.trace_state = Some("vendor=x".into());
    s.timing = Some(ConnTiming {
        send: [1, 2, 3, u64::MAX / 2],
        recv: [4, 5],
        send_skbs: 2,
        recv_skbs: 1,
        retransmits: 3,
        srtt_us: Some(120),
    });
    spans.push(s);
    // gRPC server call with a status, HTTP/2, unknown method string.
    let mut ex = exchange(Side::Server, "10.0.0.1:50051", "10.0.0.3:1", Some(200));
    ex.version = "2".into();
    ex.target = "/helloworld.Greeter/SayHello".into();
    ex.grpc = Some(GrpcCall { status: Some(14) });
    ex.headers_incomplete = true;
    spans.push(record(ex, 9, 10));
    let mut ex = exchange(Side::Server, "10.0.0.1:80", "10.0.0.3:1", Some(500));
    ex.method = "PROPFIND".into();
    spans.push(record(ex, 9, 10));

    let r = resource(10, "svc");
    let items: Vec<Item> = spans.iter().map(|s| (r.clone(), s.clone())).collect();
    let req = decode(&TraceEncoder::default().request(&items));
    assert_eq!(req.resource_spans.len(), 1);
    let rs = &req.resource_spans[0];
    assert_eq!(rs.resource, Some(otlp::resource(&r.attributes)));
    assert_eq!(rs.scope_spans.len(), 1);
    let ss = &rs.scope_spans[0];
    assert_eq!(ss.scope, Some(crate::export::batch::scope()));
    assert_eq!(ss.schema_url, otel_ebpf_semconv::otel::SCHEMA_URL);
    let want: Vec<Span> = spans.iter().map(expected).collect();
    assert_eq!(ss.spans, want);
    // Spot checks that do not go through the reference path.
    assert_eq!(ss.spans[1].flags, 0x301);
    assert_eq!(ss.spans[0].flags, 0x101);
    assert_eq!(ss.spans[2].name, "helloworld.Greeter/SayHello");
    assert_eq!(ss.spans[3].name, "HTTP");
}

fn labels(rs: &opentelemetry_proto::tonic::trace::v1::ResourceSpans) -> Vec<String> {
    rs.scope_spans[0]
        .spans
        .iter()
        .map(crate::export::tests::support::label)
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
    let req = decode(&TraceEncoder::default().request(&items));
    assert_eq!(req.resource_spans.len(), 2);
    assert_eq!(
        req.resource_spans[0].resource,
        Some(otlp::resource(&nginx.attributes))
    );
    assert_eq!(labels(&req.resource_spans[0]), ["a", "c", "e"]);
    assert_eq!(labels(&req.resource_spans[1]), ["b", "d"]);
}

#[test]
fn equal_resources_share_a_group_and_pid_reuse_does_not() {
    let a = resource(10, "nginx");
    let b = Arc::new((*a).clone());
    let req = decode(&TraceEncoder::default().request(&[(a, span("x")), (b, span("y"))]));
    assert_eq!(req.resource_spans.len(), 1);
    assert_eq!(labels(&req.resource_spans[0]), ["x", "y"]);
    let old = resource(10, "old");
    let new = resource(10, "new");
    let items = [
        (old, span("x")),
        (new, span("y")),
        (resource(10, "old"), span("z")),
    ];
    let req = decode(&TraceEncoder::default().request(&items));
    assert_eq!(req.resource_spans.len(), 2);
    assert_eq!(labels(&req.resource_spans[0]), ["x", "z"]);
    assert_eq!(labels(&req.resource_spans[1]), ["y"]);
}

#[test]
fn a_reused_encoder_writes_what_a_fresh_one_writes() {
    // Its per-resource buffers come back from earlier requests: nothing of those may leak.
    let (nginx, redis, curl) = (
        resource(10, "nginx"),
        resource(20, "redis"),
        resource(30, "curl"),
    );
    let batches = [
        vec![
            (nginx.clone(), span("a")),
            (redis.clone(), span("b")),
            (nginx.clone(), span("c")),
        ],
        vec![(curl.clone(), span("d"))],
        vec![],
        vec![
            (redis.clone(), span("e")),
            (curl.clone(), span("f")),
            (nginx.clone(), span("g")),
        ],
    ];
    let mut reused = TraceEncoder::default();
    for items in &batches {
        assert_eq!(
            reused.request(items),
            TraceEncoder::default().request(items)
        );
    }
}

#[test]
fn empty_batch_is_an_empty_request() {
    assert!(TraceEncoder::default().request(&[]).is_empty());
    assert_eq!(decode(&[]).resource_spans.len(), 0);
}

#[test]
fn every_kept_attribute_kind_round_trips_in_a_resource() {
    let mut r = (*resource(10, "svc")).clone();
    r.attributes.push("flag", true);
    r.attributes
        .0
        .push(("ratio".into(), crate::attr::AttrValue::Double(0.25)));
    r.attributes.push(
        "process.command_args",
        crate::attr::AttrValue::StrArray(vec!["nginx".into(), "-g".into()]),
    );
    r.attributes.push(
        "pids",
        crate::attr::AttrValue::IntArray(vec![7, -1, i64::MAX]),
    );
    let r = Arc::new(r);
    let req = decode(&TraceEncoder::default().request(&[(r.clone(), span("a"))]));
    assert_eq!(
        req.resource_spans[0].resource,
        Some(otlp::resource(&r.attributes))
    );
}

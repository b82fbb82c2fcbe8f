//! Connected traces end to end, as root: the real receiver, real processes on loopback.
//!
//! - A three-tier chain: curl → a thread-per-request Python frontend (`ThreadingHTTPServer`,
//!   calling the backend on the handling thread) → a hyper backend (this test process), 10
//!   chains at once. Every CLIENT→SERVER and SERVER→CLIENT link must be exact, each chain one
//!   trace, and the service graph — computed from the received spans by the servicegraph
//!   connector's rule, and the receiver's own `traces_service_graph_request_total` — must
//!   have exactly the chains' edges.
//! - A W3C `traceparent` sent by curl is continued; a malformed one is ignored.

use otel_ebpf_integration::{
    OtlpSink, Receiver, Span, free_port, python_http_server, serial, terminate, wait_listening,
    workload,
};
use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

const FRONTEND: &str = r#"
import sys, urllib.request
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
port, backend = int(sys.argv[1]), int(sys.argv[2])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = urllib.request.urlopen(f"http://127.0.0.1:{backend}/").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Edges by the servicegraph connector's rule: a SERVER span whose parent is a CLIENT span of
/// the same trace; nodes are the resources' `service.name`.
fn connector_edges(spans: &[Span]) -> BTreeMap<(String, String), usize> {
    let by_id: BTreeMap<(&[u8], &[u8]), &Span> = spans
        .iter()
        .map(|s| ((&s.trace_id[..], &s.span_id[..]), s))
        .collect();
    let mut edges = BTreeMap::new();
    for s in spans.iter().filter(|s| s.is_server()) {
        if let Some(p) = by_id.get(&(&s.trace_id[..], &s.parent_span_id[..]))
            && p.is_client()
        {
            let key = (
                p.resource["service.name"].clone(),
                s.resource["service.name"].clone(),
            );
            *edges.entry(key).or_default() += 1;
        }
    }
    edges
}

/// The receiver's `traces_service_graph_request_total` by (client, server), latest values.
fn receiver_edges(sink: &OtlpSink) -> BTreeMap<(String, String), i64> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
    let mut out = BTreeMap::new();
    for req in sink.metrics() {
        for rm in &req.resource_metrics {
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let (Some(metric::Data::Sum(sum)), "traces_service_graph_request_total") =
                    (&m.data, m.name.as_str())
                else {
                    continue;
                };
                for p in &sum.data_points {
                    let label = |k: &str| {
                        p.attributes
                            .iter()
                            .find(|kv| kv.key == k)
                            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                                Value::StringValue(s) => Some(s.clone()),
                                _ => None,
                            })
                            .unwrap_or_default()
                    };
                    if let Some(number_data_point::Value::AsInt(v)) = p.value {
                        out.insert((label("client"), label("server")), v);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn three_tier_chain_is_one_trace_per_request() {
    let _g = serial();
    let sink = OtlpSink::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (front, back) = (free_port(), free_port());
    workload::spawn_server(&rt, back);
    let mut rx = Receiver::start(
        &format!("  filters:\n    include_ports: [{front}, {back}]"),
        Some(&sink.endpoint()),
        &[],
    );
    let mut py = Command::new("python3")
        .args(["-c", FRONTEND, &front.to_string(), &back.to_string()])
        .env("OTEL_SERVICE_NAME", "frontend")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(front);
    let curls: Vec<_> = (0..10)
        .map(|i| {
            Command::new("curl")
                .args(["-s", "-o", "/dev/null"])
                .arg(format!("http://127.0.0.1:{front}/chain-{i}"))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in curls {
        assert!(c.wait().unwrap().success());
    }
    let spans = sink.wait_spans(40, WAIT, |s| {
        let port = s.attr("server.port").unwrap_or("");
        port == front.to_string() || port == back.to_string()
    });
    terminate(&mut py);
    assert_eq!(spans.len(), 40, "{spans:#?}");
    let svc = |s: &Span| s.resource["service.name"].clone();
    let backend_name = spans
        .iter()
        .find(|s| s.is_server() && s.attr("server.port") == Some(&back.to_string()))
        .map(svc)
        .unwrap();
    // Per chain: curl CLIENT, frontend SERVER (same path), frontend CLIENT and backend SERVER.
    let mut traces = HashSet::new();
    let by_span: BTreeMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();
    for i in 0..10 {
        let path = format!("/chain-{i}");
        let one = |client: bool, name: &str| -> &Span {
            let found: Vec<&Span> = spans
                .iter()
                .filter(|s| {
                    s.is_client() == client && svc(s) == name && s.attr("url.path") == Some(&path)
                })
                .collect();
            assert_eq!(found.len(), 1, "{name} {client} {path}: {spans:#?}");
            found[0]
        };
        let c1 = one(true, "curl");
        let s1 = one(false, "frontend");
        assert_eq!(
            s1.parent_span_id, c1.span_id,
            "frontend SERVER ← curl CLIENT"
        );
        assert_eq!(s1.trace_id, c1.trace_id);
        assert!(c1.parent_span_id.is_empty(), "curl's span is the root");
        // The frontend CLIENT span whose parent is this SERVER span.
        let c2: Vec<&Span> = spans
            .iter()
            .filter(|s| s.is_client() && svc(s) == "frontend" && s.parent_span_id == s1.span_id)
            .collect();
        assert_eq!(
            c2.len(),
            1,
            "one backend call per frontend request: {spans:#?}"
        );
        let c2 = c2[0];
        assert_eq!(c2.trace_id, c1.trace_id);
        let s2: Vec<&Span> = spans
            .iter()
            .filter(|s| s.is_server() && svc(s) == backend_name && s.parent_span_id == c2.span_id)
            .collect();
        assert_eq!(s2.len(), 1, "backend SERVER ← frontend CLIENT: {spans:#?}");
        assert_eq!(s2[0].trace_id, c1.trace_id);
        traces.insert(hex(&c1.trace_id));
    }
    assert_eq!(traces.len(), 10, "one trace per chain");
    // No span has a parent outside its own trace.
    for s in &spans {
        if !s.parent_span_id.is_empty() {
            let p = by_span[&s.parent_span_id];
            assert_eq!(p.trace_id, s.trace_id, "{s:?}");
        }
    }
    let want: BTreeMap<(String, String), usize> = [
        (("curl".to_string(), "frontend".to_string()), 10),
        (("frontend".to_string(), backend_name.clone()), 10),
    ]
    .into();
    assert_eq!(connector_edges(&spans), want);
    // The receiver's own service-graph counters, once a metrics export holds them all.
    let deadline = std::time::Instant::now() + WAIT;
    let mut got = BTreeMap::new();
    while std::time::Instant::now() < deadline {
        got = receiver_edges(&sink);
        if got.get(&("frontend".into(), backend_name.clone())) == Some(&10)
            && got.get(&("curl".into(), "frontend".into())) == Some(&10)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let local: BTreeMap<_, _> = got
        .into_iter()
        .filter(|((c, s), _)| {
            (c == "curl" || c == "frontend") && (s == "frontend" || *s == backend_name)
        })
        .collect();
    assert_eq!(
        local,
        BTreeMap::from([
            (("curl".to_string(), "frontend".to_string()), 10),
            (("frontend".to_string(), backend_name), 10),
        ])
    );
    let m = rx.self_metrics();
    assert!(m.contains("otel_ebpf_spans_paired_total 20"), "{m}");
    rx.stop();
}

#[test]
fn w3c_traceparent_is_continued_and_a_bad_one_ignored() {
    let _g = serial();
    let sink = OtlpSink::start();
    let port = free_port();
    let mut py = python_http_server(port);
    let mut rx = Receiver::start(
        &format!("  filters:\n    include_ports: [{port}]"),
        Some(&sink.endpoint()),
        &[],
    );
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (path, header) in [("/Cargo.toml", tp), ("/src/", "00-zz-bad-01")] {
        let st = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-H"])
            .arg(format!("traceparent: {header}"))
            .arg("-H")
            .arg("tracestate: vendor=1")
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let spans = sink.wait_spans(4, WAIT, |s| {
        s.attr("server.port") == Some(&port.to_string())
    });
    terminate(&mut py);
    rx.stop();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let by = |path: &str, client: bool| {
        spans
            .iter()
            .find(|s| s.attr("url.path") == Some(path) && s.is_client() == client)
            .unwrap()
    };
    let (c, s) = (by("/Cargo.toml", true), by("/Cargo.toml", false));
    assert_eq!(hex(&c.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        hex(&c.parent_span_id),
        "00f067aa0ba902b7",
        "curl's span continues it"
    );
    assert_eq!(c.trace_state, "vendor=1");
    assert_eq!(s.trace_id, c.trace_id);
    assert_eq!(
        s.parent_span_id, c.span_id,
        "the observed client wins over the header"
    );
    let (c, s) = (by("/src/", true), by("/src/", false));
    assert!(
        c.parent_span_id.is_empty(),
        "a malformed traceparent is ignored"
    );
    assert_eq!(s.parent_span_id, c.span_id);
}

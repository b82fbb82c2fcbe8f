//! Join buffer tests: server first, client first, one side missing, expiry, a three-tier
//! chain, propagated contexts, and the cases where no parent may be taken.

use super::*;
use crate::clock::Clock;
use crate::events::Tuple;
use crate::protocol::propagation::Propagated;
use crate::protocol::{ExchangeContext, HttpExchange};
use crate::span::{SpanOptions, build_span};

const MS: u64 = 1_000_000;

fn res(pid: u32, name: &str, netns: u64) -> Arc<ProcessResource> {
    let mut r = (*crate::enrich::test_resource(pid, name)).clone();
    r.netns = netns;
    Arc::new(r)
}

/// A span of `pid` on `local` ↔ `remote`, request number `seq`, from `start` to `end` (ms).
#[allow(clippy::too_many_arguments)]
fn span(
    pid: u32,
    side: Side,
    local: &str,
    remote: &str,
    seq: u64,
    start: u64,
    end: u64,
    conn: u64,
) -> SpanRecord {
    let ex = HttpExchange {
        pid,
        conn_id: conn,
        side,
        tuple: Some(Tuple {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }),
        method: "GET".into(),
        target: "/".into(),
        version: "1.1".into(),
        host: None,
        user_agent: None,
        status: Some(200),
        start_ns: start * MS,
        end_ns: end * MS,
        request_body_bytes: 0,
        response_body_bytes: 0,
        error: None,
        grpc: None,
        headers_incomplete: false,
        context: ExchangeContext {
            seq: Some(seq),
            ..Default::default()
        },
    };
    build_span(ex, &Clock::with_offset(0), &SpanOptions::default())
}

struct Run {
    l: Linker,
    out: Vec<(Arc<ProcessResource>, SpanRecord)>,
}

impl Run {
    fn new() -> Self {
        Self {
            l: Linker::new(LinkConfig {
                wait_ns: 1000 * MS,
                max_waiting: 1000,
            }),
            out: Vec::new(),
        }
    }
    fn push(&mut self, r: &Arc<ProcessResource>, s: SpanRecord, now_ms: u64) {
        self.l.push(r.clone(), s, now_ms * MS, &mut self.out);
    }
    /// The released span whose own span id is `id`.
    fn get(&self, id: [u8; 8]) -> &SpanRecord {
        &self
            .out
            .iter()
            .find(|(_, s)| s.trace.span_id == id)
            .unwrap()
            .1
    }
}

fn server_client_pair() -> (SpanRecord, SpanRecord) {
    let c = span(
        1,
        Side::Client,
        "127.0.0.1:40000",
        "127.0.0.1:8080",
        0,
        10,
        20,
        5,
    );
    let s = span(
        2,
        Side::Server,
        "127.0.0.1:8080",
        "127.0.0.1:40000",
        0,
        11,
        19,
        6,
    );
    (c, s)
}

fn assert_child(child: &SpanRecord, parent: &SpanRecord) {
    assert_eq!(child.trace.trace_id, parent.trace.trace_id);
    assert_eq!(child.trace.parent_span_id, Some(parent.trace.span_id));
}

#[test]
fn server_first_then_client_pairs() {
    let mut r = Run::new();
    let (cu, be) = (res(1, "curl", 9), res(2, "backend", 9));
    let (c, s) = server_client_pair();
    let (cid, sid) = (c.trace.span_id, s.trace.span_id);
    r.push(&be, s, 19);
    assert!(r.out.is_empty(), "the server waits for its client");
    r.push(&cu, c, 20);
    assert_eq!(r.out.len(), 2);
    assert_child(r.get(sid), r.get(cid));
    assert!(r.get(sid).trace.parent_remote);
    assert_eq!(r.get(cid).trace.parent_span_id, None);
    assert_eq!(r.l.stats.paired, 1);
    let edges = r.l.take_edges();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0].client, Node::Process(cu));
    assert_eq!(edges[0].server, Node::Process(be));
    assert_eq!(
        (edges[0].client_ns, edges[0].server_ns),
        (Some(10 * MS), Some(8 * MS))
    );
}

#[test]
fn client_first_then_server_pairs_the_same_way() {
    let mut r = Run::new();
    let (cu, be) = (res(1, "curl", 9), res(2, "backend", 9));
    let (c, s) = server_client_pair();
    let (cid, sid) = (c.trace.span_id, s.trace.span_id);
    // The client has no parent to wait for: it is released at once and remembered for its
    // server.
    r.push(&cu, c, 20);
    assert_eq!(r.out.len(), 1);
    r.push(&be, s, 21);
    assert_eq!(r.out.len(), 2);
    assert_child(r.get(sid), r.get(cid));
    assert_eq!(r.l.take_edges().len(), 1);
}

#[test]
fn one_side_missing_expires_unpaired() {
    let mut r = Run::new();
    let be = res(2, "backend", 9);
    // The backend's own address is local (seen as a local end), so it waits for a client.
    let (_, s) = server_client_pair();
    r.l.local_ips.insert("127.0.0.1".parse().unwrap());
    r.push(&be, s, 19);
    assert!(r.out.is_empty());
    r.l.expire(19 * MS + 999 * MS, &mut r.out);
    assert!(r.out.is_empty(), "still within the wait");
    r.l.expire(19 * MS + 1000 * MS, &mut r.out);
    assert_eq!(r.out.len(), 1);
    assert_eq!(r.out[0].1.trace.parent_span_id, None);
    assert_eq!(r.l.stats.expired_unpaired, 1);
    // The edge names the unobserved client by its address.
    let edges = r.l.take_edges();
    assert_eq!(edges.len(), 1);
    assert_eq!(
        edges[0].client,
        Node::Peer("127.0.0.1:40000".parse().unwrap())
    );
    // A client whose server never shows up: a virtual server edge when its entry expires.
    let cu = res(1, "curl", 9);
    let (c, _) = server_client_pair();
    r.push(&cu, c, 3000);
    r.l.expire(5000 * MS, &mut r.out);
    let edges = r.l.take_edges();
    assert_eq!(edges.len(), 1);
    assert_eq!(
        edges[0].server,
        Node::Peer("127.0.0.1:8080".parse().unwrap())
    );
}

#[test]
fn no_pairing_across_namespaces_requests_or_times() {
    let (c, s) = server_client_pair();
    // Another network namespace.
    let mut r = Run::new();
    r.push(&res(1, "curl", 9), c.clone(), 20);
    r.push(&res(2, "backend", 10), s.clone(), 21);
    r.l.flush(&mut r.out);
    assert!(r.out.iter().all(|(_, s)| s.trace.parent_span_id.is_none()));
    // Another request number on the same connection.
    let mut r = Run::new();
    let mut s1 = s.clone();
    s1.exchange.context.seq = Some(1);
    r.push(&res(1, "curl", 9), c.clone(), 20);
    r.push(&res(2, "backend", 9), s1, 21);
    r.l.flush(&mut r.out);
    assert!(r.out.iter().all(|(_, s)| s.trace.parent_span_id.is_none()));
    // A server interval outside the client's.
    let mut r = Run::new();
    let mut late = s;
    late.start_unix_ns += 50 * MS;
    late.end_unix_ns += 50 * MS;
    r.push(&res(1, "curl", 9), c, 20);
    r.push(&res(2, "backend", 9), late, 80);
    r.l.flush(&mut r.out);
    assert!(r.out.iter().all(|(_, s)| s.trace.parent_span_id.is_none()));
    assert_eq!(r.l.stats.paired, 0);
}

/// curl → frontend (thread-per-request) → backend, events in the order a host produces them:
/// backend server, frontend client, frontend server, curl client.
#[test]
fn three_tier_chain_is_one_trace() {
    let mut r = Run::new();
    let (cu, fe, be) = (
        res(1, "curl", 9),
        res(2, "frontend", 9),
        res(3, "backend", 9),
    );
    let c1 = span(
        1,
        Side::Client,
        "127.0.0.1:40000",
        "127.0.0.1:8000",
        0,
        10,
        50,
        11,
    );
    let s1 = span(
        2,
        Side::Server,
        "127.0.0.1:8000",
        "127.0.0.1:40000",
        0,
        11,
        49,
        21,
    );
    let mut c2 = span(
        2,
        Side::Client,
        "127.0.0.1:40001",
        "127.0.0.1:9000",
        0,
        20,
        40,
        22,
    );
    c2.cause_conn = Some(21);
    let s2 = span(
        3,
        Side::Server,
        "127.0.0.1:9000",
        "127.0.0.1:40001",
        0,
        21,
        39,
        31,
    );
    let ids = [
        c1.trace.span_id,
        s1.trace.span_id,
        c2.trace.span_id,
        s2.trace.span_id,
    ];
    r.push(&be, s2, 39);
    r.push(&fe, c2, 40);
    r.push(&fe, s1, 49);
    assert!(r.out.is_empty(), "the chain waits for its root");
    r.push(&cu, c1, 50);
    assert_eq!(r.out.len(), 4);
    let [c1, s1, c2, s2] = ids.map(|id| r.get(id).clone());
    assert_eq!(c1.trace.parent_span_id, None);
    assert_child(&s1, &c1);
    assert_child(&c2, &s1);
    assert!(!c2.trace.parent_remote, "the same process");
    assert_child(&s2, &c2);
    assert_eq!(r.l.stats.paired, 2);
    assert_eq!((r.l.stats.client_linked, r.l.stats.client_unlinked), (1, 1));
    assert_eq!(r.l.take_edges().len(), 2);
    assert_eq!(r.l.waiting(), 0);
}

#[test]
fn a_chain_longer_than_the_wait_is_cut_never_wrong() {
    let mut r = Run::new();
    let (fe, be) = (res(2, "frontend", 9), res(3, "backend", 9));
    let mut c2 = span(
        2,
        Side::Client,
        "127.0.0.1:40001",
        "127.0.0.1:9000",
        0,
        20,
        40,
        22,
    );
    c2.cause_conn = Some(21);
    let s2 = span(
        3,
        Side::Server,
        "127.0.0.1:9000",
        "127.0.0.1:40001",
        0,
        21,
        39,
        31,
    );
    let (c2id, s2id) = (c2.trace.span_id, s2.trace.span_id);
    r.push(&be, s2, 39);
    r.push(&fe, c2, 40);
    assert!(r.out.is_empty());
    // The frontend's server span never arrives within the wait: c2 becomes a root and s2
    // stays its child.
    r.l.expire(39 * MS + 1000 * MS, &mut r.out);
    assert_eq!(r.out.len(), 2);
    assert_eq!(r.get(c2id).trace.parent_span_id, None);
    assert_child(r.get(s2id), r.get(c2id));
}

#[test]
fn propagated_context_rules() {
    let tp = Propagated {
        trace_id: [7; 16],
        span_id: [8; 8],
        sampled: Some(false),
        trace_state: Some("k=v".into()),
    };
    // A server whose client is remote continues the propagated trace.
    let mut r = Run::new();
    let mut s = span(
        2,
        Side::Server,
        "10.0.0.1:8080",
        "192.0.2.9:5000",
        0,
        1,
        2,
        6,
    );
    s.exchange.context.propagated = Some(Box::new(tp.clone()));
    r.push(&res(2, "backend", 9), s, 2);
    let got = &r.out[0].1;
    assert_eq!(got.trace.trace_id, [7; 16]);
    assert_eq!(got.trace.parent_span_id, Some([8; 8]));
    assert!(!got.trace.sampled);
    assert_eq!(got.trace_state.as_deref(), Some("k=v"));
    // A client carrying its own context (an instrumented app) takes it as parent.
    let mut r = Run::new();
    let mut c = span(1, Side::Client, "10.0.0.1:4000", "192.0.2.9:80", 0, 1, 2, 5);
    c.exchange.context.propagated = Some(Box::new(tp.clone()));
    r.push(&res(1, "app", 9), c, 2);
    assert_eq!(r.out[0].1.trace.parent_span_id, Some([8; 8]));
    assert_eq!(r.l.stats.client_linked, 1);
    // A client that forwards what its server span received is parented by rule 2.
    let mut r = Run::new();
    let fe = res(2, "frontend", 9);
    let mut s1 = span(
        2,
        Side::Server,
        "10.0.0.1:8000",
        "192.0.2.9:5000",
        0,
        10,
        50,
        21,
    );
    s1.exchange.context.propagated = Some(Box::new(tp.clone()));
    let mut c2 = span(
        2,
        Side::Client,
        "10.0.0.1:40001",
        "192.0.2.10:9000",
        0,
        20,
        40,
        22,
    );
    c2.exchange.context.propagated = Some(Box::new(tp));
    c2.cause_conn = Some(21);
    let (s1id, c2id) = (s1.trace.span_id, c2.trace.span_id);
    r.push(&fe, c2, 40);
    r.push(&fe, s1, 50);
    assert_child(r.get(c2id), r.get(s1id));
    assert_eq!(r.get(s1id).trace.trace_id, [7; 16]);
}

#[test]
fn http2_server_connections_give_no_in_process_parent() {
    let mut r = Run::new();
    let fe = res(2, "frontend", 9);
    let mut s1 = span(
        2,
        Side::Server,
        "10.0.0.1:8000",
        "192.0.2.9:5000",
        0,
        10,
        50,
        21,
    );
    s1.exchange.context.seq = None;
    s1.exchange.context.stream_id = 1;
    let mut c2 = span(
        2,
        Side::Client,
        "10.0.0.1:40001",
        "192.0.2.10:9000",
        0,
        20,
        40,
        22,
    );
    c2.cause_conn = Some(21);
    r.push(&fe, c2, 40);
    r.push(&fe, s1, 50);
    assert_eq!(r.out.len(), 2);
    assert!(r.out.iter().all(|(_, s)| s.trace.parent_span_id.is_none()));
    assert_eq!(r.l.stats.client_unlinked, 1);
}

#[test]
fn a_full_buffer_releases_the_oldest() {
    let mut r = Run {
        l: Linker::new(LinkConfig {
            wait_ns: 1000 * MS,
            max_waiting: 2,
        }),
        out: Vec::new(),
    };
    r.l.local_ips.insert("127.0.0.1".parse().unwrap());
    let be = res(2, "backend", 9);
    for i in 0..5 {
        let s = span(
            2,
            Side::Server,
            "127.0.0.1:8080",
            "127.0.0.1:40000",
            i,
            1,
            2,
            6,
        );
        r.push(&be, s, 2);
    }
    assert_eq!(r.l.waiting(), 2);
    assert_eq!(r.out.len(), 3);
    assert_eq!(r.l.stats.overflow, 3);
}

//! Connection scenarios: exact exchanges from realistic frame sequences.

use super::enc::*;
use crate::protocol::http2::frame::{flag, kind};
use crate::protocol::http2::{Http2Connection, Http2Stats, PREFACE};
use crate::protocol::{ExchangeError, GrpcCall, HttpExchange, Side};
use otel_ebpf_common::Direction;

pub const PID: u32 = 10;
pub const CONN: u64 = 20;

/// A connection under test; the traced process is the client (requests are Egress) unless
/// built with [`Harness::server`].
pub struct Harness {
    pub c: Http2Connection,
    pub out: Vec<HttpExchange>,
    pub t: u64,
    pub req_dir: Direction,
    /// Keep the exchanges' linking context (stream ids); cleared otherwise, so expectations
    /// built with [`ex`] compare.
    pub keep_context: bool,
}

impl Harness {
    pub fn client() -> Self {
        Self::with(Direction::Egress, true)
    }

    pub fn server() -> Self {
        Self::with(Direction::Ingress, true)
    }

    pub fn with(req_dir: Direction, from_start: bool) -> Self {
        let c = Http2Connection::new(PID, CONN, None, Some(req_dir), from_start);
        Self {
            c,
            out: Vec::new(),
            t: 1000,
            req_dir,
            keep_context: false,
        }
    }

    fn other(&self) -> Direction {
        match self.req_dir {
            Direction::Egress => Direction::Ingress,
            Direction::Ingress => Direction::Egress,
        }
    }

    /// Client → server bytes, one syscall, at the next tick.
    pub fn req(&mut self, b: &[u8]) {
        self.t += 10;
        let d = self.req_dir;
        self.c.feed(d, self.t, b, b.len() as u64, &mut self.out);
        self.clear_context();
    }

    fn clear_context(&mut self) {
        if !self.keep_context {
            for e in &mut self.out {
                e.context = Default::default();
            }
        }
    }

    /// Server → client bytes, one syscall, at the next tick.
    pub fn resp(&mut self, b: &[u8]) {
        self.t += 10;
        let d = self.other();
        self.c.feed(d, self.t, b, b.len() as u64, &mut self.out);
        self.clear_context();
    }

    pub fn stats(&mut self) -> Http2Stats {
        self.c.take_stats()
    }
}

/// The exchange a [`get_block`] request and a `status` response make.
pub fn ex(side: Side, path: &str, status: Option<u16>, start: u64, end: u64) -> HttpExchange {
    HttpExchange {
        pid: PID,
        conn_id: CONN,
        side,
        tuple: None,
        method: "GET".into(),
        target: path.into(),
        version: "2".into(),
        host: Some("example.com".into()),
        user_agent: Some("test/1".into()),
        status,
        start_ns: start,
        end_ns: end,
        request_body_bytes: 0,
        response_body_bytes: 0,
        error: None,
        grpc: None,
        headers_incomplete: false,
        context: Default::default(),
    }
}

fn opening(h: &mut Harness) {
    let mut b = PREFACE.to_vec();
    b.extend(settings(&[(1, 4096), (3, 100)]));
    h.req(&b);
    h.resp(&settings(&[]));
}

#[test]
fn prior_knowledge_get_and_data() {
    let mut h = Harness::client();
    opening(&mut h); // t = 1010, 1020
    h.req(&headers(1, flag::END_STREAM, &get_block("/a"))); // 1030
    let mut r = headers(1, 0, &status_block(200));
    r.extend(data(1, false, b"hello "));
    h.resp(&r); // 1040
    h.resp(&data(1, true, b"world")); // 1050
    let mut want = ex(Side::Client, "/a", Some(200), 1030, 1050);
    want.response_body_bytes = 11;
    assert_eq!(h.out, [want]);
    assert_eq!(h.stats(), Http2Stats::default());
    assert_eq!(h.c.pending_len(), 0);
}

#[test]
fn multiplexed_streams_pair_by_id_in_any_order() {
    let mut h = Harness::server();
    h.keep_context = true;
    opening(&mut h);
    // Three requests in one syscall; the second reuses dynamic-table entries.
    let mut b = headers(1, flag::END_STREAM, &get_block("/one"));
    b.extend(headers(
        3,
        flag::END_STREAM,
        &[idx(2), idx(6), idx(63), idx(62)].concat(),
    ));
    let mut post = idx(3);
    post.extend(idx(6));
    post.extend(lit_name(4, "/up"));
    post.extend(idx(62));
    b.extend(headers(5, 0, &post));
    b.extend(data(5, true, b"12345"));
    h.req(&b); // 1030
    // Responses 5, 1, 3 (404).
    let mut r = headers(5, flag::END_STREAM, &status_block(204));
    r.extend(headers(3, 0, &status_block(404)));
    h.resp(&r); // 1040
    h.resp(&headers(1, flag::END_STREAM, &status_block(200))); // 1050
    h.resp(&data(3, true, b"nope")); // 1060
    let mut s5 = ex(Side::Server, "/up", Some(204), 1030, 1040);
    s5.method = "POST".into();
    s5.user_agent = None;
    s5.request_body_bytes = 5;
    let mut s1 = ex(Side::Server, "/one", Some(200), 1030, 1050);
    let mut s3 = ex(Side::Server, "/one", Some(404), 1030, 1060);
    s3.user_agent = None;
    s3.response_body_bytes = 4;
    for (e, id) in [(&mut s5, 5), (&mut s1, 1), (&mut s3, 3)] {
        e.context.stream_id = id;
    }
    assert_eq!(h.out, [s5, s1, s3]);
}

#[test]
fn continuation_frames_carry_large_header_blocks() {
    let mut h = Harness::client();
    opening(&mut h);
    let mut block = get_block("/big");
    block.extend(lit("x-large", &"v".repeat(20_000)));
    // HEADERS without END_HEADERS, then three CONTINUATION frames, split across syscalls.
    let parts: Vec<&[u8]> = block.chunks(7_000).collect();
    let mut b = frame(kind::HEADERS, flag::END_STREAM, 1, parts[0]);
    for (i, p) in parts[1..].iter().enumerate() {
        let last = i + 2 == parts.len();
        let f = if last { flag::END_HEADERS } else { 0 };
        b.extend(frame(kind::CONTINUATION, f, 1, p));
    }
    for chunk in b.chunks(4096) {
        h.req(chunk);
    }
    h.resp(&headers(1, flag::END_STREAM, &status_block(200)));
    let end = h.t;
    assert_eq!(h.out, [ex(Side::Client, "/big", Some(200), 1030, end)]);
}

#[test]
fn rst_stream_and_goaway_end_streams_with_errors() {
    let mut h = Harness::client();
    opening(&mut h);
    for id in [1, 3, 5] {
        h.req(&headers(id, flag::END_STREAM, &get_block("/x"))); // 1030, 1040, 1050
    }
    // Response headers on 1, then the server resets it; the client cancels 3.
    h.resp(&headers(1, 0, &status_block(200))); // 1060
    h.resp(&rst(1, 0x2)); // 1070
    h.req(&rst(3, 0x8)); // 1080
    // GOAWAY with last-stream-id 3: stream 5 was not processed.
    let mut g = 3u32.to_be_bytes().to_vec();
    g.extend(0u32.to_be_bytes());
    h.resp(&frame(kind::GOAWAY, 0, 0, &g)); // 1090
    let mut s1 = ex(Side::Client, "/x", Some(200), 1030, 1070);
    s1.error = Some(ExchangeError::StreamReset(2));
    let mut s3 = ex(Side::Client, "/x", None, 1040, 1080);
    s3.error = Some(ExchangeError::StreamReset(8));
    let mut s5 = ex(Side::Client, "/x", None, 1050, 1090);
    s5.error = Some(ExchangeError::StreamReset(7));
    assert_eq!(h.out, [s1, s3, s5]);
}

/// A gRPC request block for `path`.
pub fn grpc_block(path: &str) -> Vec<u8> {
    let mut b = idx(3); // POST
    b.extend(idx(6));
    b.extend(lit_name(4, path));
    b.extend(lit_idx_name(1, "example.com"));
    b.extend(lit_idx_name(31, "application/grpc"));
    b.extend(lit_idx("te", "trailers"));
    b
}

#[test]
fn grpc_status_from_trailers_and_trailers_only() {
    let mut h = Harness::server();
    opening(&mut h);
    let msg = [0u8, 0, 0, 0, 3, 1, 2, 3]; // one length-prefixed message
    let mut b = headers(1, 0, &grpc_block("/pkg.Svc/Get"));
    b.extend(data(1, true, &msg));
    h.req(&b); // 1030
    let mut r = headers(
        1,
        0,
        &[status_block(200), lit_idx_name(31, "application/grpc")].concat(),
    );
    r.extend(data(1, false, &msg));
    r.extend(headers(1, flag::END_STREAM, &lit_idx("grpc-status", "0")));
    h.resp(&r); // 1040
    // Trailers-only response: :status, content-type and grpc-status in one HEADERS with
    // END_STREAM; the response table holds grpc-status: 0 (62) and content-type (63).
    h.req(
        &[
            headers(3, 0, &grpc_block("/pkg.Svc/Again")),
            data(3, true, &msg),
        ]
        .concat(),
    );
    let block = [status_block(200), idx(63), idx(62)].concat();
    h.resp(&headers(3, flag::END_STREAM, &block)); // 1060
    let got: Vec<_> = h
        .out
        .iter()
        .map(|e| {
            (
                e.target.as_str(),
                e.status,
                e.grpc,
                e.request_body_bytes,
                e.end_ns,
            )
        })
        .collect();
    let ok = Some(GrpcCall { status: Some(0) });
    assert_eq!(
        got,
        [
            ("/pkg.Svc/Get", Some(200), ok, 8, 1040),
            ("/pkg.Svc/Again", Some(200), ok, 8, 1060)
        ]
    );
    assert!(
        h.out
            .iter()
            .all(|e| e.method == "POST" && !e.headers_incomplete)
    );
}

#[test]
fn trailers_only_error_status() {
    let mut h = Harness::client();
    opening(&mut h);
    h.req(
        &[
            headers(1, 0, &grpc_block("/pkg.Svc/Fail")),
            data(1, true, b"\0\0\0\0\0"),
        ]
        .concat(),
    );
    let block = [
        status_block(200),
        lit("content-type", "application/grpc"),
        lit("grpc-status", "5"),
    ]
    .concat();
    h.resp(&headers(1, flag::END_STREAM, &block));
    assert_eq!(h.out.len(), 1);
    assert_eq!(h.out[0].grpc, Some(GrpcCall { status: Some(5) }));
    assert_eq!(h.out[0].method, "POST");
}

#[test]
fn informational_responses_are_skipped_and_push_promises_paired() {
    let mut h = Harness::client();
    opening(&mut h);
    h.req(&headers(1, flag::END_STREAM, &get_block("/page")));
    // 103 Early Hints, then PUSH_PROMISE of /style.css on stream 2, then the responses.
    let mut r = headers(1, 0, &lit_name(8, "103"));
    let mut pp = 2u32.to_be_bytes().to_vec();
    pp.extend(get_block("/style.css"));
    r.extend(frame(kind::PUSH_PROMISE, flag::END_HEADERS, 1, &pp));
    r.extend(headers(1, flag::END_STREAM, &status_block(200)));
    r.extend(headers(2, flag::END_STREAM, &status_block(200)));
    h.resp(&r);
    let paths: Vec<_> = h
        .out
        .iter()
        .map(|e| (e.target.as_str(), e.status))
        .collect();
    assert_eq!(paths, [("/page", Some(200)), ("/style.css", Some(200))]);
}

#[test]
fn padded_and_prioritised_headers() {
    let mut h = Harness::client();
    opening(&mut h);
    let block = get_block("/p");
    let mut p = vec![4u8]; // pad length
    p.extend([0, 0, 0, 0, 16]); // priority: dependency 0, weight 16
    p.extend(&block);
    p.extend([0; 4]);
    h.req(&frame(
        kind::HEADERS,
        flag::END_STREAM | flag::END_HEADERS | flag::PADDED | flag::PRIORITY,
        1,
        &p,
    ));
    h.resp(&headers(1, flag::END_STREAM, &status_block(200)));
    assert_eq!(h.out[0].target, "/p");
    // Padding longer than the payload: a frame error, the block is lost.
    h.req(&frame(
        kind::HEADERS,
        flag::END_HEADERS | flag::PADDED,
        3,
        &[200, 1, 2],
    ));
    let s = h.stats();
    assert_eq!((s.frame_errors, s.header_blocks_lost), (1, 1));
}

#[test]
fn too_many_streams_are_dropped_and_counted() {
    let mut h = Harness::client();
    opening(&mut h);
    let n = crate::protocol::http2::connection::MAX_STREAMS as u32 + 10;
    for i in 0..n {
        h.req(&headers(2 * i + 1, flag::END_STREAM, &get_block("/s")));
    }
    assert_eq!(h.c.pending_len(), n as usize - 10);
    assert_eq!(h.stats().streams_dropped, 10);
}

#[test]
fn close_and_timeout_end_open_streams() {
    let mut h = Harness::client();
    opening(&mut h);
    h.req(&headers(1, flag::END_STREAM, &get_block("/slow"))); // 1030
    h.req(&headers(3, flag::END_STREAM, &get_block("/later"))); // 1040
    h.resp(&headers(3, 0, &status_block(200))); // 1050
    let mut out = Vec::new();
    h.c.expire(1045 + 100, 100, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].target.as_str(), out[0].error),
        ("/slow", Some(ExchangeError::Timeout))
    );
    h.c.close(ExchangeError::ConnectionClosed, 2000, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].status, Some(200));
    assert_eq!(out[1].error, Some(ExchangeError::ConnectionClosed));
    assert_eq!(out[1].end_ns, 2000);
}

#[test]
fn hpack_table_size_follows_settings() {
    let mut h = Harness::client();
    // The server allows a 8192-byte table: the client's size update to 8192 is fine.
    h.req(PREFACE);
    h.resp(&settings(&[(1, 8192)]));
    let mut b = int(5, 0x20, 8192);
    b.extend(get_block("/t"));
    h.req(&headers(1, flag::END_STREAM, &b));
    h.resp(&headers(1, flag::END_STREAM, &status_block(200)));
    assert_eq!(h.out.len(), 1);
    assert_eq!(h.stats().hpack_errors, 0);
    // Above it: counted.
    let mut b = int(5, 0x20, 20_000);
    b.extend(get_block("/u"));
    h.req(&headers(3, flag::END_STREAM, &b));
    assert_eq!(h.stats().hpack_errors, 1);
}

/// A Huffman-coded `traceparent` (RFC 7541 §5.2) reaches the exchange's propagated context;
/// a malformed one is counted on the exchange and ignored.
#[test]
fn huffman_coded_traceparent_is_read() {
    use crate::protocol::http2::hpack::huffman;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let coded = huffman::encode(tp.as_bytes());
    let mut field = vec![0x00]; // literal without indexing, new name
    field.extend(int(7, 0, "traceparent".len()));
    field.extend(b"traceparent");
    field.extend(int(7, 0x80, coded.len())); // H bit: Huffman
    field.extend(&coded);
    let mut h = Harness::client();
    h.keep_context = true;
    opening(&mut h);
    let mut block = get_block("/a");
    block.extend(&field);
    h.req(&headers(1, flag::END_STREAM, &block));
    h.resp(&headers(1, flag::END_STREAM, &status_block(200)));
    let mut bad = get_block("/b");
    bad.extend(lit("traceparent", "00-nothex-01"));
    h.req(&headers(3, flag::END_STREAM, &bad));
    h.resp(&headers(3, flag::END_STREAM, &status_block(200)));
    assert_eq!(h.out.len(), 2);
    let p = h.out[0].context.propagated.as_ref().expect("context");
    assert_eq!(p.trace_id[..2], [0x4b, 0xf9]);
    assert_eq!(p.span_id[7], 0xb7);
    assert_eq!(p.sampled, Some(true));
    assert_eq!(h.out[0].context.stream_id, 1);
    assert!(h.out[1].context.propagated.is_none() && h.out[1].context.propagation_error);
}

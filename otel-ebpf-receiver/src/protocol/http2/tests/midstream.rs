//! Connections joined mid-way: what can be known is emitted, nothing is guessed.

use super::connection::{Harness, grpc_block};
use super::enc::*;
use crate::protocol::Side;
use crate::protocol::http2::frame::flag;
use otel_ebpf_common::Direction;

#[test]
fn unknown_dynamic_entries_leave_fields_out_never_wrong() {
    let mut h = Harness::with(Direction::Egress, false);
    // Request 7: static :method GET, unknown index 70 (the :path we never saw), a literal
    // :authority with indexing (now index 62), user-agent literal.
    let mut b = idx(2);
    b.extend(idx(70));
    b.extend(lit_idx_name(1, "api.example"));
    b.extend(lit_name(58, "cli/2"));
    h.req(&headers(7, flag::END_STREAM, &b)); // 1010
    // Response: :status from an unknown entry; then stream 9 references 62 (known) and 63
    // (unknown).
    h.resp(&headers(7, flag::END_STREAM, &idx(64))); // 1020
    h.req(&headers(
        9,
        flag::END_STREAM,
        &[idx(63), idx(62), lit_name(4, "/nine")].concat(),
    ));
    h.resp(&headers(9, flag::END_STREAM, &status_block(404))); // 1040
    assert_eq!(h.out.len(), 2);
    let a = &h.out[0];
    assert_eq!(
        (
            a.method.as_str(),
            a.target.as_str(),
            a.host.as_deref(),
            a.status
        ),
        ("GET", "", Some("api.example"), None)
    );
    assert!(a.headers_incomplete);
    let b = &h.out[1];
    assert_eq!(
        (
            b.method.as_str(),
            b.target.as_str(),
            b.host.as_deref(),
            b.status
        ),
        ("", "/nine", Some("api.example"), Some(404))
    );
    assert!(b.headers_incomplete);
    assert_eq!(b.side, Side::Client);
}

#[test]
fn joined_mid_data_resyncs_and_direction_comes_from_pseudo_headers() {
    let mut h = Harness::with(Direction::Egress, false);
    let mut c = Harness::with(Direction::Egress, false);
    // Build a connection with unknown request direction.
    h.c = crate::protocol::http2::Http2Connection::new(10, 20, None, None, false);
    c.c = crate::protocol::http2::Http2Connection::new(10, 20, None, None, false);
    // The middle of a DATA frame: skipped.
    h.req(b"\x01\x02 half of some body");
    // A syscall of whole frames: a gRPC request on stream 11 (all literals known).
    h.req(
        &[
            headers(11, 0, &grpc_block("/pkg.Svc/Stream")),
            data(11, true, b"\0\0\0\0\0"),
        ]
        .concat(),
    );
    let trailers = [lit("grpc-status", "14")].concat();
    h.resp(
        &[
            headers(11, 0, &status_block(200)),
            headers(11, flag::END_STREAM, &trailers),
        ]
        .concat(),
    );
    assert_eq!(h.out.len(), 1);
    let e = &h.out[0];
    assert_eq!(e.side, Side::Client);
    assert_eq!(e.target, "/pkg.Svc/Stream");
    assert_eq!(e.grpc.and_then(|g| g.status), Some(14));
    assert!(!e.headers_incomplete);
    // A response seen first (its request predates capture) is ignored; the server-side view
    // works the same way.
    c.resp(&headers(5, flag::END_STREAM, &status_block(200)));
    assert!(c.out.is_empty());
}

#[test]
fn lost_header_block_keeps_the_stream_with_fields_unknown() {
    let mut h = Harness::client();
    h.req(crate::protocol::http2::PREFACE);
    // The request HEADERS frame is cut by the capture limit: the stream still opens.
    let block = get_block("/lost");
    let f = headers(1, flag::END_STREAM, &block);
    h.t += 10;
    h.c.feed(Direction::Egress, h.t, &f[..12], f.len() as u64, &mut h.out);
    // Later requests: the table is unknown now, static and literal fields still decode.
    h.req(&headers(
        3,
        flag::END_STREAM,
        &[idx(2), idx(62), lit_name(4, "/ok")].concat(),
    ));
    h.resp(&headers(1, flag::END_STREAM, &status_block(500)));
    h.resp(&headers(3, flag::END_STREAM, &status_block(200)));
    let got: Vec<_> = h
        .out
        .iter()
        .map(|e| {
            (
                e.method.as_str(),
                e.target.as_str(),
                e.status,
                e.headers_incomplete,
            )
        })
        .collect();
    assert_eq!(
        got,
        [("", "", Some(500), true), ("GET", "/ok", Some(200), true)]
    );
    assert_eq!(h.stats().header_blocks_lost, 1);
}

#[test]
fn response_end_lost_to_capture_is_not_reported_as_an_error() {
    let mut h = Harness::client();
    h.req(crate::protocol::http2::PREFACE);
    h.req(&headers(1, flag::END_STREAM, &get_block("/a"))); // 1020
    // Response headers captured, then the DATA+END_STREAM frames go by uncaptured past a frame
    // boundary (more than 8 iovecs in one sendmsg, say): sync is lost.
    let mut r = headers(1, 0, &status_block(200));
    let cut = r.len();
    r.extend(data(1, true, b"body"));
    h.t += 10; // 1030
    h.c.feed(
        Direction::Ingress,
        h.t,
        &r[..cut],
        r.len() as u64 + 9,
        &mut h.out,
    );
    assert!(h.out.is_empty());
    let mut out = Vec::new();
    h.c.close(
        crate::protocol::ExchangeError::ConnectionClosed,
        5000,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let e = &out[0];
    assert_eq!((e.status, e.error, e.end_ns), (Some(200), None, 1030));
    assert!(e.headers_incomplete);
    assert_eq!(h.stats().frame_errors, 1);
}

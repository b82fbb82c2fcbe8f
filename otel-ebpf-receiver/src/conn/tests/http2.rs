//! HTTP/2 through the tracker: detection (preface, server SETTINGS first, h2c upgrade,
//! frames on a connection joined mid-way) and exchanges out.

use super::*;
use crate::protocol::http2::PREFACE;
use crate::protocol::http2::frame::flag;
use crate::protocol::http2::tests_enc as enc;

fn request(path: &str) -> Vec<u8> {
    enc::headers(1, flag::END_STREAM, &enc::get_block(path))
}

fn response() -> Vec<u8> {
    let mut r = enc::headers(1, 0, &enc::status_block(200));
    r.extend(enc::data(1, true, b"ok"));
    r
}

fn h2(side: Side, path: &str, start: u64, end: u64) -> HttpExchange {
    HttpExchange {
        version: "2".into(),
        user_agent: Some("test/1".into()),
        start_ns: start,
        end_ns: end,
        response_body_bytes: 2,
        ..exchange(side, "GET", path, Some(200))
    }
}

#[test]
fn client_preface_client_side() {
    let mut s = Sim::new(SockRole::Client);
    let mut b = PREFACE.to_vec();
    b.extend(enc::settings(&[]));
    s.send(10, &b);
    s.recv(20, &enc::settings(&[]));
    s.send(30, &request("/a"));
    s.recv(40, &response());
    assert_eq!(s.take(), [h2(Side::Client, "/a", 30, 40)]);
    assert_eq!(s.t.stats, ConnStats::default());
}

#[test]
fn server_settings_first_server_side() {
    let mut s = Sim::new(SockRole::Server);
    s.send(10, &enc::settings(&[(3, 100)]));
    let mut b = PREFACE.to_vec();
    b.extend(enc::settings(&[]));
    b.extend(request("/b"));
    s.recv(20, &b);
    s.send(30, &response());
    assert_eq!(s.take(), [h2(Side::Server, "/b", 20, 30)]);
}

#[test]
fn h2c_upgrade_makes_the_request_stream_one() {
    let mut s = Sim::new(SockRole::Client);
    s.send(
        10,
        b"GET /up HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\n\
          Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    );
    // 101, the server preface and the response on stream 1, all in one read.
    let mut r =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    r.extend(enc::settings(&[]));
    r.extend(response());
    s.recv(20, &r);
    let mut b = PREFACE.to_vec();
    b.extend(enc::settings(&[]));
    s.send(30, &b);
    // A second request on the upgraded connection.
    s.send(
        40,
        &enc::headers(3, flag::END_STREAM, &enc::get_block("/next")),
    );
    s.recv(
        50,
        &[
            enc::headers(3, 0, &enc::status_block(200)),
            enc::data(3, true, b"ok"),
        ]
        .concat(),
    );
    let first = HttpExchange {
        version: "2".into(),
        start_ns: 10,
        end_ns: 20,
        response_body_bytes: 2,
        ..exchange(Side::Client, "GET", "/up", Some(200))
    };
    assert_eq!(s.take(), [first, h2(Side::Client, "/next", 40, 50)]);
    assert_eq!(s.t.stats, ConnStats::default());
}

#[test]
fn plain_101_upgrade_is_still_a_tunnel() {
    let mut s = Sim::new(SockRole::Client);
    s.send(
        10,
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
    );
    s.recv(
        20,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    );
    s.send(30, &request("/not-h2"));
    let out = s.take();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, Some(101));
}

#[test]
fn joined_mid_way_detects_frames_and_keeps_static_fields() {
    let mut s = Sim::new(SockRole::Unknown);
    // Bytes that are not frames: still probing.
    s.recv(5, b"\x00\x00 random middle of a body");
    // A write of two whole frames (HEADERS + DATA): detected; :path comes from an unknown
    // dynamic entry, :method and :authority are static / literal.
    let mut block = enc::idx(3);
    block.extend(enc::idx(75));
    block.extend(enc::lit_name(1, "svc.local"));
    let mut w = enc::headers(13, 0, &block);
    w.extend(enc::data(13, true, b"payload"));
    s.send(10, &w);
    s.recv(
        20,
        &enc::headers(13, flag::END_STREAM, &enc::status_block(500)),
    );
    let out = s.take();
    assert_eq!(out.len(), 1);
    let e = &out[0];
    assert_eq!(
        (e.side, e.method.as_str(), e.target.as_str(), e.status),
        (Side::Client, "POST", "", Some(500))
    );
    assert_eq!(e.host.as_deref(), Some("svc.local"));
    assert!(e.headers_incomplete);
    assert_eq!(e.request_body_bytes, 7);
}

#[test]
fn fresh_connection_of_other_protocol_is_not_http2() {
    let mut s = Sim::new(SockRole::Client);
    s.send(10, b"\x00\x00\x00\x05hello"); // length-prefixed, not frames
    s.send(20, &request("/x"));
    assert!(s.take().is_empty());
    assert_eq!(s.t.pending_requests(), 0);
}

//! Body framing (RFC 9112 §6.3) through the whole conn + protocol path.

use super::*;

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
    4;ext=1\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nChecksum: abc\r\n\r\n";
const CHUNKED_DATA: u64 = 4 + 6 + 14;

#[test]
fn chunked_response_split_at_every_byte_boundary() {
    for split in 1..CHUNKED.len() {
        let mut s = Sim::new(SockRole::Client);
        s.send(10, &get("/wiki"));
        s.recv(20, &CHUNKED[..split]);
        assert_eq!(s.take(), vec![], "split {split}");
        s.recv(30, &CHUNKED[split..]);
        s.send(40, &get("/after"));
        s.recv(50, &ok(b"ok"));
        let want = vec![
            HttpExchange {
                start_ns: 10,
                end_ns: 30,
                response_body_bytes: CHUNKED_DATA,
                ..exchange(Side::Client, "GET", "/wiki", Some(200))
            },
            HttpExchange {
                start_ns: 40,
                end_ns: 50,
                response_body_bytes: 2,
                ..exchange(Side::Client, "GET", "/after", Some(200))
            },
        ];
        assert_eq!(s.take(), want, "split {split}");
        assert_eq!(s.t.stats.parsers.parse_errors, 0, "split {split}");
    }
}

#[test]
fn chunked_request_body_on_server_side() {
    let mut s = Sim::new(SockRole::Server);
    let mut req = b"PUT /up HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\n\
                    Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    s.recv(10, &req);
    req = b"5\r\nhello\r\n".to_vec();
    s.recv(11, &req);
    s.recv(12, b"0\r\n\r\n");
    s.send(20, b"HTTP/1.1 204 No Content\r\n\r\n");
    let want = HttpExchange {
        start_ns: 10,
        end_ns: 20,
        request_body_bytes: 5,
        ..exchange(Side::Server, "PUT", "/up", Some(204))
    };
    assert_eq!(s.take(), vec![want]);
}

/// Writes `bytes` in syscalls of `step` bytes, each captured only up to [`CAPTURE`].
fn capped_stream(s: &mut Sim, dir: Direction, ts: &mut u64, bytes: &[u8], step: usize) {
    for part in bytes.chunks(step) {
        *ts += 1;
        s.capped(dir, *ts, part);
    }
}

#[test]
fn one_mib_bodies_with_4096_byte_capture_keep_pairing() {
    const MIB: usize = 1 << 20;
    let body: Vec<u8> = (0..MIB).map(|i| b'a' + (i % 26) as u8).collect();
    let mut s = Sim::new(SockRole::Client);
    let mut ts = 0;
    capped_stream(
        &mut s,
        Direction::Egress,
        &mut ts,
        &with_body("POST", "/upload", &body),
        65_536,
    );
    let req_end = ts;
    capped_stream(&mut s, Direction::Ingress, &mut ts, &ok(&body), 65_536);
    let resp_end = ts;
    s.send(5_000, &get("/next"));
    s.recv(
        5_001,
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
    );
    assert!(req_end > 1 && resp_end > req_end + 16);
    let want = vec![
        HttpExchange {
            start_ns: 1,
            end_ns: resp_end,
            request_body_bytes: MIB as u64,
            response_body_bytes: MIB as u64,
            ..exchange(Side::Client, "POST", "/upload", Some(200))
        },
        HttpExchange {
            start_ns: 5_000,
            end_ns: 5_001,
            ..exchange(Side::Client, "GET", "/next", Some(304))
        },
    ];
    assert_eq!(s.take(), want);
    assert_eq!(s.t.stats.parsers.parse_errors, 0);
}

#[test]
fn one_mib_chunked_response_one_chunk_per_syscall_with_4096_byte_capture() {
    let mut s = Sim::new(SockRole::Client);
    s.send(1, &get("/stream"));
    s.recv(2, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    let data = vec![b'z'; 32_768];
    for i in 0..32u64 {
        let mut chunk = b"8000\r\n".to_vec();
        chunk.extend_from_slice(&data);
        chunk.extend_from_slice(b"\r\n");
        s.capped(Direction::Ingress, 3 + i, &chunk);
    }
    s.recv(100, b"0\r\n\r\n");
    s.send(200, &get("/next"));
    s.recv(201, &ok(b"."));
    let want = vec![
        HttpExchange {
            start_ns: 1,
            end_ns: 100,
            response_body_bytes: 1 << 20,
            ..exchange(Side::Client, "GET", "/stream", Some(200))
        },
        HttpExchange {
            start_ns: 200,
            end_ns: 201,
            response_body_bytes: 1,
            ..exchange(Side::Client, "GET", "/next", Some(200))
        },
    ];
    assert_eq!(s.take(), want);
    assert_eq!(s.t.stats.parsers.parse_errors, 0);
}

#[test]
fn expect_100_continue_pairs_the_final_status() {
    let mut s = Sim::new(SockRole::Client);
    let head = b"POST /form HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\n\
                 Expect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    s.send(10, head);
    s.recv(20, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(s.take(), vec![]);
    s.send(30, b"hello");
    s.recv(40, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    let want = HttpExchange {
        start_ns: 10,
        end_ns: 40,
        request_body_bytes: 5,
        ..exchange(Side::Client, "POST", "/form", Some(201))
    };
    assert_eq!(s.take(), vec![want]);
}

#[test]
fn early_hints_and_processing_are_interim() {
    let mut s = Sim::new(SockRole::Server);
    s.recv(10, &get("/page"));
    s.send(11, b"HTTP/1.1 102 Processing\r\n\r\n");
    s.send(
        12,
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n",
    );
    s.send(13, b"Content-Length: 2\r\n\r\nhi");
    let want = HttpExchange {
        start_ns: 10,
        end_ns: 13,
        response_body_bytes: 2,
        ..exchange(Side::Server, "GET", "/page", Some(200))
    };
    assert_eq!(s.take(), vec![want]);
}

#[test]
fn head_response_has_no_body_despite_content_length() {
    let mut s = Sim::new(SockRole::Client);
    s.send(
        10,
        b"HEAD /file HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\n\r\n",
    );
    s.recv(20, b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    s.send(30, &get("/next"));
    s.recv(40, &ok(b"body"));
    let want = vec![
        HttpExchange {
            start_ns: 10,
            end_ns: 20,
            ..exchange(Side::Client, "HEAD", "/file", Some(200))
        },
        HttpExchange {
            start_ns: 30,
            end_ns: 40,
            response_body_bytes: 4,
            ..exchange(Side::Client, "GET", "/next", Some(200))
        },
    ];
    assert_eq!(s.take(), want);
}

#[test]
fn no_content_and_not_modified_have_no_body() {
    let mut s = Sim::new(SockRole::Client);
    s.send(10, &with_body("DELETE", "/x", b""));
    // 204 and 304 in one read: neither has content, even with Content-Length on the 304.
    s.send(11, &get("/y"));
    s.recv(
        20,
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    );
    s.send(30, &get("/z"));
    s.recv(40, &ok(b"zz"));
    let want = vec![
        HttpExchange {
            start_ns: 10,
            end_ns: 20,
            ..exchange(Side::Client, "DELETE", "/x", Some(204))
        },
        HttpExchange {
            start_ns: 11,
            end_ns: 20,
            ..exchange(Side::Client, "GET", "/y", Some(304))
        },
        HttpExchange {
            start_ns: 30,
            end_ns: 40,
            response_body_bytes: 2,
            ..exchange(Side::Client, "GET", "/z", Some(200))
        },
    ];
    assert_eq!(s.take(), want);
}

#[test]
fn close_delimited_response_completes_at_close() {
    let mut s = Sim::new(SockRole::Client);
    s.send(
        10,
        b"GET /old HTTP/1.0\r\nHost: example.com\r\nUser-Agent: test/1\r\n\r\n",
    );
    s.recv(
        20,
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part ",
    );
    s.recv(30, b"second part");
    assert_eq!(s.take(), vec![]);
    s.close(40);
    let want = HttpExchange {
        version: "1.0".into(),
        start_ns: 10,
        end_ns: 30,
        response_body_bytes: 22,
        ..exchange(Side::Client, "GET", "/old", Some(200))
    };
    assert_eq!(s.take(), vec![want]);
    assert_eq!(s.t.len(), 0);
}

#[test]
fn connection_close_with_content_length_completes_without_waiting() {
    let mut s = Sim::new(SockRole::Server);
    s.recv(10, b"GET /bye HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\nConnection: close\r\n\r\n");
    s.send(
        20,
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye",
    );
    let want = HttpExchange {
        start_ns: 10,
        end_ns: 20,
        response_body_bytes: 3,
        ..exchange(Side::Server, "GET", "/bye", Some(200))
    };
    assert_eq!(s.take(), vec![want]);
    s.close(30);
    assert_eq!(s.take(), vec![]);
}

#[test]
fn upgrade_and_connect_end_http_parsing() {
    let mut s = Sim::new(SockRole::Client);
    s.send(10, b"GET /ws HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\nUpgrade: websocket\r\n\r\n");
    s.recv(
        20,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
    );
    s.send(30, b"\x81\x85\x00\x00\x00\x00hello");
    s.send(31, &get("/looks-like-http-but-is-a-frame"));
    s.close(40);
    let want = HttpExchange {
        start_ns: 10,
        end_ns: 20,
        ..exchange(Side::Client, "GET", "/ws", Some(101))
    };
    assert_eq!(s.take(), vec![want]);

    let mut s = Sim::new(SockRole::Client);
    s.send(
        10,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\n\r\n",
    );
    s.recv(20, b"HTTP/1.1 200 Connection Established\r\n\r\n");
    s.send(30, &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
    s.recv(31, &[0x16, 0x03, 0x03, 0x00, 0x01, 9]);
    let want = HttpExchange {
        start_ns: 10,
        end_ns: 20,
        ..exchange(Side::Client, "CONNECT", "example.com:443", Some(200))
    };
    assert_eq!(s.take(), vec![want]);
    assert_eq!(s.t.stats.parsers.parse_errors, 0);
}

//! Detection, garbage and resynchronisation.

use super::*;

#[test]
fn fresh_non_http_connections_are_dropped_at_once() {
    for first in [
        &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"[..], // Redis
        &[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00][..],   // TLS ClientHello
        &[0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f][..], // Postgres SSLRequest
    ] {
        let mut s = Sim::new(SockRole::Client);
        s.send(10, first);
        // Later bytes that look like HTTP are not parsed: the connection is marked.
        s.send(20, &get("/"));
        s.recv(30, &ok(b""));
        assert_eq!(s.take(), vec![]);
        assert_eq!(s.t.stats, ConnStats::default());
        assert_eq!(s.t.len(), 1);
    }
}

#[test]
fn unknown_connection_gives_up_after_the_probe_window() {
    let mut s = Sim::new(SockRole::Unknown);
    for i in 0..u64::from(PROBE_WINDOW_SYSCALLS) {
        s.recv(i, b"+OK\r\n");
    }
    s.recv(1000, &get("/late"));
    s.send(1001, &ok(b""));
    assert_eq!(s.take(), vec![]);

    // One syscall less and the request is still found.
    let mut s = Sim::new(SockRole::Unknown);
    for i in 0..u64::from(PROBE_WINDOW_SYSCALLS) - 1 {
        s.recv(i, b"+OK\r\n");
    }
    s.recv(1000, &get("/late"));
    s.send(1001, &ok(b""));
    let want = HttpExchange {
        start_ns: 1000,
        end_ns: 1001,
        ..exchange(Side::Server, "GET", "/late", Some(200))
    };
    assert_eq!(s.take(), vec![want]);
}

#[test]
fn joined_mid_body_resynchronises_at_next_request() {
    // Capture started while the server was reading a request body and writing the answer.
    let mut s = Sim::new(SockRole::Unknown);
    s.recv(1, b"rest of an upload body \x00\x01\x02");
    s.send(
        2,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\npartial",
    );
    s.send(3, b" tail of that response body");
    s.recv(4, &get("/next"));
    s.send(5, b"more of the old body, still not a status line");
    s.send(6, &ok(b"fresh"));
    let want = HttpExchange {
        start_ns: 4,
        end_ns: 6,
        response_body_bytes: 5,
        ..exchange(Side::Server, "GET", "/next", Some(200))
    };
    assert_eq!(s.take(), vec![want]);
    assert_eq!(s.t.stats.parsers.parse_errors, 0);
}

#[test]
fn response_older_than_every_pending_request_is_dropped() {
    // Client joined mid-way: a response read (ts 9) before the first request we saw was
    // written (ts 10) answers an earlier, unseen request and must not take its place.
    let mut s = Sim::new(SockRole::Unknown);
    s.send(10, &get("/a"));
    s.recv(9, &ok(b"old"));
    s.recv(20, &ok(b"new"));
    let want = HttpExchange {
        start_ns: 10,
        end_ns: 20,
        response_body_bytes: 3,
        ..exchange(Side::Client, "GET", "/a", Some(200))
    };
    assert_eq!(s.take(), vec![want]);
}

#[test]
fn garbage_inside_an_http_connection_counts_and_resynchronises() {
    let mut s = Sim::new(SockRole::Server);
    s.recv(10, &get("/one"));
    s.send(11, &ok(b"1"));
    s.recv(20, b"\x00\xff\xfe garbage \r\n\r\n");
    s.recv(21, b"\x13\x37 more garbage, no request line");
    s.recv(30, &get("/two"));
    s.send(31, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n2");
    s.send(32, b"2");
    // Response garbage: a bad header line.
    s.recv(40, &get("/three"));
    s.send(41, b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n");
    s.recv(50, &get("/four"));
    s.send(51, &ok(b""));
    let ex = |t, start, end, body| HttpExchange {
        start_ns: start,
        end_ns: end,
        response_body_bytes: body,
        ..exchange(Side::Server, "GET", t, Some(200))
    };
    // The status-line of the unparseable response is still valid: it answers "/three".
    assert_eq!(
        s.take(),
        vec![
            ex("/one", 10, 11, 1),
            ex("/two", 30, 32, 2),
            ex("/three", 40, 41, 0),
            ex("/four", 50, 51, 0)
        ]
    );
    assert_eq!(s.t.stats.parsers.parse_errors, 2);
    s.close(60);
    assert_eq!(s.take(), vec![]);
}

#[test]
fn head_larger_than_the_buffer_is_an_error_then_resync() {
    let limits = ConnLimits {
        max_buffer_bytes: 256,
        ..ConnLimits::default()
    };
    let mut s = Sim::with_limits(SockRole::Client, limits);
    let mut big = b"GET /big HTTP/1.1\r\nHost: example.com\r\nX-Pad: ".to_vec();
    big.resize(300, b'p');
    s.send(10, &big[..150]);
    s.send(11, &big[150..]);
    s.send(12, b"\r\n\r\n");
    s.recv(
        13,
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n",
    );
    s.send(20, &get("/small"));
    s.recv(30, &ok(b"s"));
    // The start-line and Host of the oversized head are kept, so the 431 pairs with it.
    let want = vec![
        HttpExchange {
            start_ns: 10,
            end_ns: 13,
            user_agent: None,
            ..exchange(Side::Client, "GET", "/big", Some(431))
        },
        HttpExchange {
            start_ns: 20,
            end_ns: 30,
            response_body_bytes: 1,
            ..exchange(Side::Client, "GET", "/small", Some(200))
        },
    ];
    assert_eq!(s.take(), want);
    assert_eq!(s.t.stats.parsers.parse_errors, 1);
}

#[test]
fn head_cut_by_the_capture_is_salvaged_and_pairs() {
    let mut s = Sim::new(SockRole::Client);
    let mut req =
        b"GET /cookie HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\nCookie: ".to_vec();
    req.resize(6000, b'c');
    req.extend_from_slice(b"\r\n\r\n");
    s.capped(Direction::Egress, 10, &req);
    s.recv(20, &ok(b"hi"));
    s.send(30, &get("/after"));
    s.recv(40, b"HTTP/1.1 200 OK\r\nSet-Cookie: ");
    s.capped(Direction::Ingress, 41, &vec![b's'; 5000]);
    s.send(50, &get("/last"));
    s.recv(60, &ok(b""));
    let ex = |t, start, end, body| HttpExchange {
        start_ns: start,
        end_ns: end,
        response_body_bytes: body,
        ..exchange(Side::Client, "GET", t, Some(200))
    };
    assert_eq!(
        s.take(),
        vec![
            ex("/cookie", 10, 20, 2),
            ex("/after", 30, 41, 0),
            ex("/last", 50, 60, 0)
        ]
    );
    assert_eq!(s.t.stats.parsers.parse_errors, 2);
}

#[test]
fn uncaptured_bytes_in_chunk_framing_resynchronise() {
    let mut s = Sim::new(SockRole::Client);
    s.send(10, &get("/c"));
    // The chunk-size line of the second chunk was not captured.
    s.syscall(
        Direction::Ingress,
        20,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        70,
    );
    s.recv(21, b"more bytes of that body\r\n0\r\n\r\n");
    s.send(30, &get("/d"));
    s.recv(40, &ok(b"d"));
    let want = vec![
        HttpExchange {
            start_ns: 10,
            end_ns: 20,
            response_body_bytes: 3,
            ..exchange(Side::Client, "GET", "/c", Some(200))
        },
        HttpExchange {
            start_ns: 30,
            end_ns: 40,
            response_body_bytes: 1,
            ..exchange(Side::Client, "GET", "/d", Some(200))
        },
    ];
    assert_eq!(s.take(), want);
    assert_eq!(s.t.stats.parsers.parse_errors, 1);
}

#[test]
fn fresh_connection_with_a_request_line_longer_than_the_capture_stays_http() {
    let mut s = Sim::new(SockRole::Client);
    let mut long = b"GET /".to_vec();
    long.resize(6000, b'q');
    long.extend_from_slice(b" HTTP/1.1\r\nHost: example.com\r\n\r\n");
    s.capped(Direction::Egress, 10, &long); // lost: its start-line was not captured whole
    s.recv(20, &ok(b"")); // answers the lost request: nothing waits, dropped
    s.send(30, &get("/next"));
    s.recv(40, &ok(b"n"));
    let want = HttpExchange {
        start_ns: 30,
        end_ns: 40,
        response_body_bytes: 1,
        ..exchange(Side::Client, "GET", "/next", Some(200))
    };
    assert_eq!(s.take(), vec![want]);
    assert_eq!(s.t.stats.parsers.parse_errors, 1);
}

#[test]
fn lost_first_syscall_of_a_response_does_not_shift_later_pairs() {
    // The ring buffer dropped the read carrying "/a"'s status-line: the next read is mid-body.
    for warm_up in [false, true] {
        let mut s = Sim::new(SockRole::Client);
        let mut want = Vec::new();
        if warm_up {
            s.send(1, &get("/warm"));
            s.recv(2, &ok(b"w"));
            want.push(HttpExchange {
                start_ns: 1,
                end_ns: 2,
                response_body_bytes: 1,
                ..exchange(Side::Client, "GET", "/warm", Some(200))
            });
        }
        s.send(10, &get("/a"));
        s.recv(21, b"...second read of the body of /a's response");
        s.recv(22, b"...third read");
        s.send(30, &get("/b"));
        s.recv(40, &ok(b"b"));
        want.push(HttpExchange {
            start_ns: 30,
            end_ns: 40,
            response_body_bytes: 1,
            ..exchange(Side::Client, "GET", "/b", Some(200))
        });
        assert_eq!(s.take(), want, "warm_up {warm_up}");
        assert_eq!(s.t.stats.parsers.parse_errors, 1);
        assert_eq!(s.t.pending_requests(), 0);
    }
}

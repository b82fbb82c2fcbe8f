//! Close, process exit, timeouts and the connection bound.

use super::*;

const SEC: u64 = 1_000_000_000;

#[test]
fn timeout_closes_out_waiting_requests() {
    let mut s = Sim::new(SockRole::Client);
    s.send(10, &get("/slow"));
    s.send(20, &get("/slower"));
    let limit = ConnLimits::default().request_timeout_ns;
    s.t.expire(10 + limit, &mut s.out);
    assert_eq!(s.take(), vec![]);
    s.t.expire(10 + limit + 1, &mut s.out);
    let timed_out = |t, start| HttpExchange {
        start_ns: start,
        end_ns: 10 + limit + 1,
        error: Some(ExchangeError::Timeout),
        ..exchange(Side::Client, "GET", t, None)
    };
    assert_eq!(s.take(), vec![timed_out("/slow", 10)]);
    s.t.expire(20 + limit + 1, &mut s.out);
    assert_eq!(
        s.take(),
        vec![HttpExchange {
            end_ns: 20 + limit + 1,
            ..timed_out("/slower", 20)
        }]
    );
    // Nothing left to close.
    s.close(40 * SEC);
    assert_eq!(s.take(), vec![]);
}

#[test]
fn slow_response_body_times_out_only_when_idle() {
    let limits = ConnLimits {
        request_timeout_ns: 10 * SEC,
        ..ConnLimits::default()
    };
    let mut s = Sim::with_limits(SockRole::Client, limits);
    s.send(0, &get("/download"));
    s.recv(SEC, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    for i in 1..=20 {
        s.recv(i * SEC, b"x");
        s.t.expire(i * SEC, &mut s.out);
    }
    assert_eq!(s.take(), vec![]);
    s.t.expire(31 * SEC, &mut s.out);
    let want = HttpExchange {
        end_ns: 31 * SEC,
        response_body_bytes: 20,
        error: Some(ExchangeError::Timeout),
        ..exchange(Side::Client, "GET", "/download", Some(200))
    };
    assert_eq!(s.take(), vec![want]);
}

#[test]
fn close_ends_waiting_and_unfinished_exchanges() {
    let mut s = Sim::new(SockRole::Server);
    let mut reqs = get("/a");
    reqs.extend(get("/b"));
    s.recv(10, &reqs);
    s.send(
        20,
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly ten b",
    );
    s.close(30);
    let closed = |t, st| HttpExchange {
        start_ns: 10,
        end_ns: 30,
        error: Some(ExchangeError::ConnectionClosed),
        ..exchange(Side::Server, "GET", t, st)
    };
    assert_eq!(
        s.take(),
        vec![
            HttpExchange {
                response_body_bytes: 10,
                ..closed("/a", Some(200))
            },
            closed("/b", None)
        ]
    );
    assert_eq!(s.t.len(), 0);
    // A request body cut by the close is counted as far as it went.
    let req = with_body("POST", "/up", b"12345");
    s.recv(40, &req[..req.len() - 2]);
    s.close(50);
    let cut = HttpExchange {
        start_ns: 40,
        end_ns: 50,
        request_body_bytes: 3,
        error: Some(ExchangeError::ConnectionClosed),
        ..exchange(Side::Server, "POST", "/up", None)
    };
    assert_eq!(s.take(), vec![cut]);
}

#[test]
fn process_exit_ends_every_connection_of_that_process_only() {
    let mut s = Sim::new(SockRole::Client);
    s.send(10, &get("/one"));
    s.conn_id = 8;
    s.send(11, &get("/two"));
    s.pid = 99;
    s.send(12, &get("/other-process"));
    s.t.on_event(
        Event::ProcessExit {
            pid: PID,
            ts_ns: 50,
        },
        &mut s.out,
    );
    let gone = |conn_id, t, start| HttpExchange {
        conn_id,
        start_ns: start,
        end_ns: 50,
        error: Some(ExchangeError::ProcessExited),
        ..exchange(Side::Client, "GET", t, None)
    };
    assert_eq!(s.take(), vec![gone(CONN, "/one", 10), gone(8, "/two", 11)]);
    assert_eq!(s.t.len(), 1);
    s.recv(60, &ok(b""));
    let other = HttpExchange {
        pid: 99,
        conn_id: 8,
        start_ns: 12,
        end_ns: 60,
        ..exchange(Side::Client, "GET", "/other-process", Some(200))
    };
    assert_eq!(s.take(), vec![other]);
}

#[test]
fn tcp_state_and_unknown_close_are_ignored() {
    let mut s = Sim::new(SockRole::Client);
    s.send(10, &get("/x"));
    s.t.on_event(
        Event::TcpState {
            old: 1,
            new: 7,
            tuple: Some(tuple()),
            ts_ns: 11,
        },
        &mut s.out,
    );
    s.t.on_event(
        Event::Close {
            pid: PID,
            fd: 9,
            conn_id: 12345,
            ts_ns: 12,
        },
        &mut s.out,
    );
    s.recv(20, &ok(b""));
    let want = HttpExchange {
        start_ns: 10,
        end_ns: 20,
        ..exchange(Side::Client, "GET", "/x", Some(200))
    };
    assert_eq!(s.take(), vec![want]);
}

#[test]
fn least_recently_used_connection_is_evicted_at_the_bound() {
    let limits = ConnLimits {
        max_connections: 2,
        ..ConnLimits::default()
    };
    let mut s = Sim::with_limits(SockRole::Client, limits);
    for (conn, ts) in [(1, 10), (2, 11)] {
        s.conn_id = conn;
        s.send(ts, &get(&format!("/c{conn}")));
    }
    s.conn_id = 1;
    s.send(12, b""); // zero bytes: no event effect, no touch
    s.recv(13, b"HTTP/1.1 100 Continue\r\n\r\n"); // touches conn 1
    s.conn_id = 3;
    s.send(14, &get("/c3")); // evicts conn 2
    assert_eq!((s.t.len(), s.t.stats.connections_evicted), (2, 1));
    for conn in [3, 1, 2] {
        s.conn_id = conn;
        s.recv(20 + conn, &ok(b""));
    }
    let done = |conn: u64, start| HttpExchange {
        conn_id: conn,
        start_ns: start,
        end_ns: 20 + conn,
        ..exchange(Side::Client, "GET", &format!("/c{conn}"), Some(200))
    };
    // Conn 2 came back as a new connection whose first bytes are a response (not HTTP), and
    // its arrival evicted conn 3, then the least recently used.
    assert_eq!(s.take(), vec![done(3, 14), done(1, 10)]);
    assert_eq!((s.t.len(), s.t.stats.connections_evicted), (2, 2));
}

#[test]
fn many_connections_stay_within_the_bound() {
    let limits = ConnLimits {
        max_connections: 100,
        ..ConnLimits::default()
    };
    let mut s = Sim::with_limits(SockRole::Server, limits);
    for conn in 0..10_000u64 {
        s.conn_id = conn;
        s.recv(conn, &get("/"));
        assert!(s.t.len() <= 100);
    }
    assert_eq!(s.t.stats.connections_evicted, 9_900);
    assert_eq!(s.t.by_pid.len(), 100);
    s.t.on_event(
        Event::ProcessExit {
            pid: PID,
            ts_ns: 20_000,
        },
        &mut s.out,
    );
    assert_eq!(s.take().len(), 100);
    assert!(s.t.is_empty() && s.t.by_pid.is_empty());
}

#[test]
fn head_cut_by_close_keeps_its_start_line() {
    let mut s = Sim::new(SockRole::Client);
    s.send(10, b"GET /half HTTP/1.1\r\nHost: example.com\r\n");
    s.close(20);
    let want = HttpExchange {
        start_ns: 10,
        end_ns: 20,
        user_agent: None,
        error: Some(ExchangeError::ConnectionClosed),
        ..exchange(Side::Client, "GET", "/half", None)
    };
    assert_eq!(s.take(), vec![want]);
}

#[test]
fn waiting_requests_are_bounded_per_connection() {
    use crate::protocol::pairing::MAX_PENDING;
    let mut s = Sim::new(SockRole::Server);
    let burst: Vec<u8> = (0..MAX_PENDING + 6)
        .flat_map(|i| get(&format!("/{i}")))
        .collect();
    s.recv(10, &burst);
    assert_eq!(s.t.pending_requests(), MAX_PENDING);
    assert_eq!(s.t.stats.parsers.parse_errors, 6);
    s.close(20);
    let out = s.take();
    let targets: Vec<String> = (0..MAX_PENDING).map(|i| format!("/{i}")).collect();
    assert_eq!(
        out.iter().map(|x| x.target.clone()).collect::<Vec<_>>(),
        targets
    );
    assert!(
        out.iter()
            .all(|x| x.error == Some(ExchangeError::ConnectionClosed) && x.status.is_none())
    );
}

//! TLS plaintext streams: keyed by session, separate from the socket's ciphertext, closed
//! with their socket, restarted when the session pointer moves to another socket.

use super::*;
use crate::events::TlsInfo;
use otel_ebpf_common::TlsSource;

const PID: u32 = 7;
const SESSION: u64 = 0x5555_0000_1000;

fn tls(conn_id: u64, dir: Direction, ts: u64, bytes: &'static [u8]) -> Event {
    Event::Data(DataEvent {
        pid: PID,
        tid: PID,
        fd: -1,
        conn_id,
        ts_ns: ts,
        direction: dir,
        role: if conn_id == 0 {
            SockRole::Unknown
        } else {
            SockRole::Client
        },
        syscall: Syscall::Write,
        total_len: bytes.len() as u64,
        tuple: (conn_id != 0).then(tuple),
        payload: Bytes::from_static(bytes),
        tls: Some(TlsInfo {
            source: TlsSource::OpenSsl,
            session: SESSION,
        }),
    })
}

fn cipher(conn_id: u64, ts: u64) -> Event {
    Event::Data(DataEvent {
        pid: PID,
        tid: PID,
        fd: 3,
        conn_id,
        ts_ns: ts,
        direction: Direction::Egress,
        role: SockRole::Client,
        syscall: Syscall::Write,
        total_len: 6,
        tuple: Some(tuple()),
        payload: Bytes::from_static(&[0x16, 0x03, 0x01, 0x00, 0x01, 0x00]),
        tls: None,
    })
}

const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

#[test]
fn plaintext_is_parsed_beside_ignored_ciphertext_and_marked_tls() {
    let mut t = ConnTracker::new(ConnLimits::default());
    let mut out = Vec::new();
    t.on_event(cipher(9, 1), &mut out); // handshake: the socket's stream is not HTTP
    t.on_event(tls(9, Direction::Egress, 2, REQ), &mut out);
    t.on_event(tls(9, Direction::Ingress, 3, RESP), &mut out);
    assert_eq!(out.len(), 1);
    let ex = &out[0];
    assert!(ex.is_tls());
    assert_eq!(ex.conn_id, TLS_STREAM | SESSION);
    assert_eq!(
        (ex.side, ex.status, ex.tuple),
        (Side::Client, Some(200), Some(tuple()))
    );
}

#[test]
fn closing_the_socket_ends_the_tls_stream() {
    let mut t = ConnTracker::new(ConnLimits::default());
    let mut out = Vec::new();
    t.on_event(tls(9, Direction::Egress, 2, REQ), &mut out);
    t.on_event(
        Event::Close {
            pid: PID,
            fd: -1,
            conn_id: 9,
            ts_ns: 5,
        },
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].error, Some(ExchangeError::ConnectionClosed));
    assert!(t.is_empty());
}

#[test]
fn a_session_pointer_on_another_socket_starts_a_new_stream() {
    let mut t = ConnTracker::new(ConnLimits::default());
    let mut out = Vec::new();
    t.on_event(tls(9, Direction::Egress, 2, REQ), &mut out);
    // The library freed the session and reused its address for a connection on socket 10.
    t.on_event(tls(10, Direction::Egress, 4, REQ), &mut out);
    assert_eq!(out.len(), 1, "the old stream is closed out");
    assert_eq!(out[0].error, Some(ExchangeError::ConnectionClosed));
    t.on_event(tls(10, Direction::Ingress, 5, RESP), &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!((out[1].status, out[1].start_ns), (Some(200), 4));
}

//! End-to-end tests of the capture path itself, as root: bodies sent with sendfile(2),
//! MSG_PEEK reads, and the pid/port filters applied inside the kernel. Exact counts only.

use otel_ebpf_integration::bench::nginx::{BIG_LEN, Nginx};
use otel_ebpf_integration::{OtlpSink, Receiver, Span, free_port, prom_value, serial};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn on_port(port: u16) -> impl Fn(&Span) -> bool {
    move |s: &Span| s.attr("server.port") == Some(&port.to_string())
}

/// Reads one HTTP/1.1 response with a Content-Length body from `s`; returns (status, body
/// length).
fn read_response(s: &mut TcpStream) -> (u16, usize) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, len)
}

#[test]
fn nginx_sendfile_bodies_keep_keepalive_framing() {
    let _g = serial();
    let sink = OtlpSink::start();
    let nginx = Nginx::start(0).unwrap();
    let port = nginx.port;
    let rx = Receiver::start(
        &format!("  filters:\n    include_ports: [{port}]"),
        Some(&sink.endpoint()),
        &[],
    );
    // One keep-alive connection: big (sendfile, 300,000 bytes), small, big, small, ... If the
    // sendfile bytes were not counted, the parser would take the next response head for body.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for i in 0..10 {
        let path = if i % 2 == 0 {
            "/big.bin"
        } else {
            "/index.html"
        };
        write!(s, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").unwrap();
        let (status, len) = read_response(&mut s);
        assert_eq!(status, 200);
        assert_eq!(len, if i % 2 == 0 { BIG_LEN } else { 13 });
    }
    drop(s);
    let spans = sink.wait_spans(20, WAIT, on_port(port));
    let server: Vec<&Span> = spans.iter().filter(|s| s.is_server()).collect();
    let client: Vec<&Span> = spans.iter().filter(|s| s.is_client()).collect();
    assert_eq!((client.len(), server.len()), (10, 10), "{spans:#?}");
    for s in &spans {
        assert_eq!(s.attr("http.response.status_code"), Some("200"), "{s:?}");
        assert_eq!(s.attr("error.type"), None, "{s:?}");
    }
    let big = server
        .iter()
        .filter(|s| s.attr("url.path") == Some("/big.bin"))
        .count();
    assert_eq!(big, 5);
    let m = rx.self_metrics();
    assert_eq!(
        prom_value(&m, "otel_ebpf_parse_errors_total"),
        Some(0.0),
        "{m}"
    );
    // The kernel counters reach self-telemetry: at least one data event per socket call of
    // the 10 exchanges on both sides (request write/read, response write(s)/read(s)).
    let data = prom_value(&m, "otel_ebpf_kernel_events_total{counter=\"data_events\"}");
    assert!(data.unwrap_or(0.0) >= 40.0, "{m}");
}

#[test]
fn msg_peek_reads_are_not_seen_twice() {
    let _g = serial();
    let sink = OtlpSink::start();
    let port = free_port();
    let rx = Receiver::start(
        &format!("  filters:\n    include_ports: [{port}]"),
        Some(&sink.endpoint()),
        &[],
    );
    // A server that peeks at each request before reading it (as protocol sniffers do).
    let srv = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = srv.accept().unwrap();
        for _ in 0..3 {
            let mut buf = [0u8; 512];
            // SAFETY: recv into a buffer we own.
            let n = unsafe {
                libc::recv(
                    std::os::fd::AsRawFd::as_raw_fd(&c),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_PEEK,
                )
            };
            assert!(n > 0);
            let n = c.read(&mut buf).unwrap();
            assert!(buf[..n].ends_with(b"\r\n\r\n"));
            c.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        }
    });
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /peek HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
    }
    server.join().unwrap();
    drop(s);
    let spans = sink.wait_spans(6, WAIT, on_port(port));
    let servers = spans.iter().filter(|s| s.is_server()).count();
    let clients = spans.iter().filter(|s| s.is_client()).count();
    assert_eq!((clients, servers), (3, 3), "{spans:#?}");
    assert!(
        spans
            .iter()
            .all(|s| s.attr("http.response.status_code") == Some("204"))
    );
    let m = rx.self_metrics();
    assert_eq!(
        prom_value(&m, "otel_ebpf_parse_errors_total"),
        Some(0.0),
        "{m}"
    );
}

#[test]
fn port_filter_is_applied_in_the_kernel() {
    let _g = serial();
    let sink = OtlpSink::start();
    let nginx = Nginx::start(0).unwrap();
    // Port 1 (tcpmux): nothing here listens on it, and it is outside the ephemeral range, so
    // no client socket can get it either.
    let wanted = 1;
    let rx = Receiver::start(
        &format!("  filters:\n    include_ports: [{wanted}]\n    exclude_pids: [1]"),
        Some(&sink.endpoint()),
        &[],
    );
    let mut s = TcpStream::connect(("127.0.0.1", nginx.port)).unwrap();
    for _ in 0..20 {
        write!(s, "GET /index.html HTTP/1.1\r\nHost: bench\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s).0, 200);
    }
    drop(s);
    std::thread::sleep(Duration::from_millis(1500));
    let m = rx.self_metrics();
    // No connection on this host has port `wanted`: not one data event may reach user space.
    assert_eq!(
        prom_value(&m, "otel_ebpf_kernel_events_total{counter=\"data_events\"}"),
        Some(0.0),
        "{m}"
    );
    assert!(sink.spans(|_| true).is_empty());
}

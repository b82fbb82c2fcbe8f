//! Accepted connections, end to end: the server-side handshake time
//! (`otel_ebpf.tcp.accept.duration`, SYN-ACK → final ACK) and the listening process the
//! accepts are attributed to, for a server started before the receiver (found in /proc at
//! start-up) and one started after it (seen at `inet_sock_set_state` → LISTEN). Real traffic
//! between two network namespaces; a `tbf` queue on the server's veth delays the handshake's
//! SYN-ACK behind a download.
//!
//! Run as root: `cargo test -p otel-ebpf-integration --test kernel_accept -- --test-threads=1`.

use opentelemetry_proto::tonic::metrics::v1::HistogramDataPoint;
use otel_ebpf_integration::metrics::{attr_is, counter_of_pid, hist_of_pid, wait_for};
use otel_ebpf_integration::netns::{self, NetPair, Side};
use otel_ebpf_integration::{OtlpSink, Receiver, serial};
use std::time::{Duration, Instant};

const EARLY_PORT: u16 = 18_490;
const LATE_PORT: u16 = 18_491;
const NAME: &str = "otel_ebpf.tcp.accept.duration";

/// The accept-duration points of `pid` once their count reaches `n` (metrics arrive every
/// second), or panics after 15 s.
fn wait_accepts(sink: &OtlpSink, pid: u32, n: u64) -> Vec<HistogramDataPoint> {
    let count = || -> u64 { hist_of_pid(sink, NAME, pid).iter().map(|p| p.count).sum() };
    wait_for(
        &format!("{n} {NAME} samples of pid {pid}"),
        Duration::from_secs(15),
        || count() >= n,
    );
    hist_of_pid(sink, NAME, pid)
}

fn get(pair: &NetPair, port: u16, path: &str) {
    let url = format!("http://{}:{port}{path}", pair.server_ip());
    let out = netns::curl_in(pair.client_ns(), &["-s", "-o", "/dev/null", &url]);
    assert!(out.status.success(), "{url}: {out:?}");
}

#[test]
fn accepts_time_the_handshake_under_the_listening_process() {
    let _g = serial();
    let pair = NetPair::new("kt-acc");
    let sink = OtlpSink::start();
    // Listening before the receiver starts: known from /proc.
    let early = netns::spawn_http_server(pair.server_ns(), pair.server_ip(), EARLY_PORT, 0);
    let _rx = Receiver::start(
        "  capture_bytes: 1024\n  kernel_timing:\n    enabled: true\n",
        Some(&sink.endpoint()),
        &[],
    );
    // Listening after: seen at listen().
    let late = netns::spawn_http_server(pair.server_ns(), pair.server_ip(), LATE_PORT, 0);
    for _ in 0..3 {
        get(&pair, EARLY_PORT, "/bytes/10");
        get(&pair, LATE_PORT, "/bytes/10");
    }
    // 3 curls each (the late server's readiness poll adds a connection).
    let e = wait_accepts(&sink, early.pid(), 3);
    let l = wait_accepts(&sink, late.pid(), 3);
    for (who, pts) in [("early", &e), ("late", &l)] {
        let max = pts.iter().filter_map(|p| p.max).fold(0.0, f64::max);
        eprintln!(
            "{who} listener: {} handshakes, max {:.3} ms",
            pts.iter().map(|p| p.count).sum::<u64>(),
            max * 1e3
        );
        // An unloaded veth: the SYN-ACK → ACK round trip is µs.
        assert!(max > 0.0 && max < 0.005, "{who}: handshake max {max} s");
    }

    // The late server's readiness poll connected and closed without a byte: still its
    // connection (closed by the peer's FIN: LAST_ACK → CLOSE), found through the listener.
    let closed = |pid| {
        counter_of_pid(&sink, "otel_ebpf.tcp.connections.closed", pid, |a| {
            attr_is(a, "otel_ebpf.tcp.role", "server")
        })
    };
    let opened = |pid| {
        counter_of_pid(&sink, "otel_ebpf.tcp.connections.opened", pid, |a| {
            attr_is(a, "otel_ebpf.tcp.role", "server")
        })
    };
    let t0 = Instant::now();
    while closed(late.pid()) < 4 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "server connections: early opened {} closed {}, late opened {} closed {}",
        opened(early.pid()),
        closed(early.pid()),
        opened(late.pid()),
        closed(late.pid())
    );
    assert_eq!((opened(early.pid()), closed(early.pid())), (3, 3));
    assert_eq!((opened(late.pid()), closed(late.pid())), (4, 4));

    // A SYN-ACK queued behind a download in a 4 Mbit/s tbf on the server's veth (stamped
    // before the qdisc): the server sees the handshake take about the queue's delay.
    pair.rate_limit(Side::Server, 4000, 16_000, 400);
    let before: u64 = l.iter().map(|p| p.count).sum();
    let url = format!("http://{}:{LATE_PORT}/bytes/1500000", pair.server_ip());
    let download = {
        let ns = pair.client_ns().to_string();
        std::thread::spawn(move || netns::curl_in(&ns, &["-s", "-o", "/dev/null", &url]))
    };
    std::thread::sleep(Duration::from_millis(1000));
    let t0 = Instant::now();
    get(&pair, LATE_PORT, "/bytes/10");
    let took = t0.elapsed();
    assert!(download.join().unwrap().status.success());
    let l = wait_accepts(&sink, late.pid(), before + 2);
    let max = l.iter().filter_map(|p| p.max).fold(0.0, f64::max);
    eprintln!(
        "behind the download: handshake max {:.1} ms (request took {took:?})",
        max * 1e3
    );
    assert!(
        max > 0.05 && max < took.as_secs_f64(),
        "queued handshake {max} s, request {took:?}"
    );
}

//! Robustness under load, outages and churn, end to end (as root, real probes):
//!
//! - the OTLP backend is down while `wrk` loads nginx: RSS stays bounded, every span that was
//!   not delivered is counted (`spans_produced = spans_exported + spans_dropped` once the
//!   queue is empty, and the backend received exactly `spans_exported`), and every span of a
//!   request made after the backend is back is delivered;
//! - churn: thousands of short-lived `curl` processes (four copies of the binary), one request
//!   each: every request is captured (a CLIENT and a SERVER span each) and RSS is flat after
//!   warm-up (series, resources and tables of exited processes are forgotten);
//! - the kernel connection map (`CONNS`, 65,536 sockets, LRU) overflows: every connected socket
//!   closed while the map no longer held it is counted (`conn_close_untracked`).
//!
//! Durations are scaled for CI (`OER_SOAK_SECONDS` scales the first two; the issue's full runs
//! are 60 s down at 20,000 requests/s and 10 minutes of churn).
//!
//! Run as root: `cargo test -p otel-ebpf-integration --test soak -- --test-threads=1`
//! (needs nginx, wrk, curl: scripts/setup.sh).

use otel_ebpf_integration::bench::nginx::Nginx;
use otel_ebpf_integration::{
    OtlpSink, Receiver, free_port, prom_value, python_http_server, serial, terminate,
};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Seconds of the load / churn phase (default `default`, `OER_SOAK_SECONDS` overrides).
fn soak_seconds(default: u64) -> u64 {
    std::env::var("OER_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of `pid` (bytes).
fn rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

fn metric(rx: &Receiver, name: &str) -> u64 {
    prom_value(&rx.self_metrics(), name).unwrap_or(0.0) as u64
}

const MB: u64 = 1 << 20;

/// A server process stopped when the test ends, passed or failed (a leftover would keep the
/// test run's descriptors, the eBPF lock among them).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

#[test]
fn backend_down_under_load_counts_every_lost_span_and_delivers_after_it_returns() {
    let _g = serial();
    let secs = soak_seconds(30);
    let backend_port = free_port();
    let nginx = Nginx::start(0).unwrap();
    let port = nginx.port;
    let mut rx = Receiver::start(
        &format!("  filters:\n    include_ports: [{port}]"),
        Some(&format!("http://127.0.0.1:{backend_port}")),
        &[],
    );
    let pid = rx.pid();
    let idle = rss(pid);
    let mut wrk = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{secs}s")])
        .arg(format!("http://127.0.0.1:{port}/index.html"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("wrk (scripts/setup.sh installs it)");
    let t0 = Instant::now();
    let mut samples = Vec::new();
    while wrk.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(secs + 30) {
        samples.push(rss(pid));
        std::thread::sleep(Duration::from_millis(500));
    }
    let peak = samples.iter().copied().max().unwrap_or(idle);
    let half = samples.len() / 2;
    let first_half = samples[..half].iter().copied().max().unwrap_or(idle);
    let out = wrk.wait_with_output().unwrap();
    let wrk_out = String::from_utf8_lossy(&out.stdout).to_string();
    let produced = metric(&rx, "otel_ebpf_spans_produced_total");
    let dropped_down = metric(&rx, "otel_ebpf_spans_dropped_total");
    assert_eq!(metric(&rx, "otel_ebpf_spans_exported_total"), 0);
    assert!(metric(&rx, "otel_ebpf_export_failures_total") > 0);
    eprintln!(
        "backend down {secs} s under load: {produced} spans, {dropped_down} dropped, {} events lost in the kernel, RSS idle {} MB, peak {} MB (first half {} MB); wrk: {}",
        metric(&rx, "otel_ebpf_events_lost_kernel_total"),
        idle / MB,
        peak / MB,
        first_half / MB,
        wrk_out
            .lines()
            .filter(|l| l.contains("Requests/sec"))
            .collect::<String>()
    );
    // The queue (32,768 spans) bounds what the outage costs. Debug build, 30 s at ~10,600
    // requests/s: 60 → 254 MB measured (the queue, batches in retry, allocator arenas).
    assert!(
        peak <= idle + 256 * MB,
        "RSS {} MB → {} MB",
        idle / MB,
        peak / MB
    );
    eprintln!(
        "RSS samples (MB, every 0.5 s): {:?}",
        samples.iter().map(|r| r / MB).collect::<Vec<_>>()
    );
    // The backend comes back where it was.
    let sink = OtlpSink::start_at(backend_port);
    let t1 = Instant::now();
    let dropped_outage = loop {
        let (p, e, d) = (
            metric(&rx, "otel_ebpf_spans_produced_total"),
            metric(&rx, "otel_ebpf_spans_exported_total"),
            metric(&rx, "otel_ebpf_spans_dropped_total"),
        );
        if p == e + d {
            break d;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(60),
            "spans neither exported nor counted as dropped: {p} != {e} + {d}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // Requests made now: every span is delivered.
    for i in 0..100 {
        let st = Command::new("curl")
            .args(["-s", "-o", "/dev/null"])
            .arg(format!("http://127.0.0.1:{port}/after-{i}"))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let t2 = Instant::now();
    let want = produced + 200;
    while metric(&rx, "otel_ebpf_spans_produced_total") < want
        && t2.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let t3 = Instant::now();
    loop {
        let (p, e, d) = (
            metric(&rx, "otel_ebpf_spans_produced_total"),
            metric(&rx, "otel_ebpf_spans_exported_total"),
            metric(&rx, "otel_ebpf_spans_dropped_total"),
        );
        if p >= want && p == e + d {
            // Batches whose retry budget ran out before the backend came back are the outage's.
            assert_eq!(
                d, dropped_outage,
                "nothing dropped once the backend is back"
            );
            let received = sink.spans(|_| true).len() as u64;
            assert_eq!(
                received, e,
                "the backend received exactly the spans counted exported"
            );
            eprintln!(
                "after the backend returned: {e} exported, {d} dropped (all during the outage; {dropped_down} when the load ended)"
            );
            break;
        }
        assert!(t3.elapsed() < Duration::from_secs(30), "{p} {e} {d}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let after = |s: &otel_ebpf_integration::Span| {
        s.attr("url.path").is_some_and(|p| p.starts_with("/after-"))
    };
    let clients = sink.spans(|s| s.is_client() && after(s)).len();
    let servers = sink.spans(|s| s.is_server() && after(s)).len();
    assert_eq!(
        (clients, servers),
        (100, 100),
        "every span of the requests after the outage"
    );
    drop(nginx);
    rx.stop();
}

#[test]
fn churn_of_short_lived_processes_keeps_rss_flat_and_captures_every_request() {
    let _g = serial();
    let secs = soak_seconds(60);
    let warmup = secs / 4;
    let sink = OtlpSink::start_counting();
    let port = free_port();
    let _server = Server(python_http_server(port));
    let rx = Receiver::start(
        &format!("  filters:\n    include_ports: [{port}]"),
        Some(&sink.endpoint()),
        &[],
    );
    let pid = rx.pid();
    // Several binaries: four copies of curl (different files, inodes and executable names).
    let dir = std::env::temp_dir().join(format!("oer-churn-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let bins: Vec<_> = (0..4)
        .map(|i| {
            let p = dir.join(format!("curl{i}"));
            std::fs::copy("/usr/bin/curl", &p).unwrap();
            p
        })
        .collect();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = bins
        .iter()
        .cloned()
        .map(|bin| {
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let st = Command::new(&bin)
                        .args(["-s", "-o", "/dev/null", "--max-time", "5"])
                        .arg(format!("http://127.0.0.1:{port}/Cargo.toml"))
                        .status();
                    match st {
                        Ok(s) if s.success() => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(warmup));
    // RSS floor over 5 s: file analysis buffers come and go (returned to the system); what
    // stays is the floor.
    let floor = || {
        let t = Instant::now();
        let mut m = u64::MAX;
        while t.elapsed() < Duration::from_secs(5) {
            m = m.min(rss(pid));
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    };
    let (warm_rss, warm_n) = (floor(), ok.load(Ordering::Relaxed));
    let mut samples = vec![(warm_n, warm_rss)];
    while t0.elapsed() + Duration::from_secs(5) < Duration::from_secs(secs) {
        samples.push((ok.load(Ordering::Relaxed), floor()));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let n = ok.load(Ordering::Relaxed);
    let end_rss = samples.last().map_or(warm_rss, |s| s.1);
    let rate = n as f64 * 60.0 / t0.elapsed().as_secs_f64();
    eprintln!(
        "churn: {n} processes in {:.0} s ({rate:.0}/min), {} failed; RSS floor after warm-up ({warm_n} processes) {:.1} MB, at the end {:.1} MB; floors (processes, MB): {:?}",
        t0.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed),
        warm_rss as f64 / MB as f64,
        end_rss as f64 / MB as f64,
        samples
            .iter()
            .map(|(n, r)| (*n, r / MB))
            .collect::<Vec<_>>()
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    // Every request captured: one CLIENT span (curl) and one SERVER span (python) each.
    let t1 = Instant::now();
    while (sink.count(3, port) < n || sink.count(2, port) < n)
        && t1.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!((sink.count(3, port), sink.count(2, port)), (n, n));
    // Flat: what was ~9.5 KB per exited process (≥ 20 MB here) is now bounded.
    let grown = end_rss.saturating_sub(warm_rss);
    assert!(
        grown <= 4 * MB,
        "RSS grew {:.1} MB over {} processes after warm-up",
        grown as f64 / MB as f64,
        n - warm_n
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Holds `pairs` loopback connections (both ends, in one Python process: the open-file limit
/// here is 20,000 per process) until its stdin closes.
const HOLD_PAIRS: &str = r#"
import socket, sys
n = int(sys.argv[1])
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(4096)
keep = []
for _ in range(n):
    c = socket.create_connection(l.getsockname())
    s, _ = l.accept()
    keep += [c, s]
print("ready", flush=True)
sys.stdin.read()
"#;

#[test]
fn conns_lru_evictions_are_counted_when_their_sockets_close() {
    use std::io::BufRead;
    let _g = serial();
    let rx = Receiver::start("  capture_bytes: 256\n", None, &[]);
    const LABEL: &str = "otel_ebpf_kernel_events_total{counter=\"conn_close_untracked\"}";
    // 5 processes × 8,000 pairs = 80,000 connected sockets > CONNS' 65,536.
    let mut holders: Vec<_> = (0..5)
        .map(|_| {
            Command::new("python3")
                .args(["-c", HOLD_PAIRS, "8000"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for h in &mut holders {
        let mut line = String::new();
        std::io::BufReader::new(h.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    std::thread::sleep(Duration::from_secs(2));
    let before = metric(&rx, LABEL);
    for mut h in holders {
        drop(h.stdin.take());
        h.wait().unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    let lost = metric(&rx, LABEL) - before;
    eprintln!("80,000 connected sockets closed: {lost} closes the connection map no longer held");
    assert!(
        lost >= 80_000 - 65_536,
        "at least the sockets beyond the map's size were evicted: {lost}"
    );
    assert!(lost <= 80_000, "{lost}");
}

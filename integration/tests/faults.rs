//! Faults, end to end: SIGTERM while the OTLP backend is down and HTTP load runs must end the
//! receiver within 5 s (drain, flush with a deadline, detach), and after SIGTERM or SIGKILL no
//! BPF program the receiver loaded is left in the kernel (`bpftool prog show`).
//!
//! Load: `wrk` against a Python HTTP server on loopback (a few thousand requests per second
//! here, each one a span that cannot be exported). Backend: a loopback port nobody listens on
//! (every export attempt is refused and retried).
//!
//! Run as root: `cargo test -p otel-ebpf-integration --test faults -- --test-threads=1`
//! (needs `bpftool` and `wrk`: scripts/setup.sh).

use otel_ebpf_integration::{Receiver, free_port, python_http_server, serial, terminate};
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ids of the loaded BPF programs (`bpftool prog show -j`).
fn loaded_programs() -> HashSet<u64> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .expect("bpftool (scripts/setup.sh installs it)");
    assert!(out.status.success(), "bpftool: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect()
}

/// Ids of the BPF programs `pid` holds a descriptor of (`prog_id:` in `/proc/PID/fdinfo/*`;
/// Debian's bpftool cannot show the holding pids).
fn programs_of(pid: u32) -> HashSet<u64> {
    let mut ids = HashSet::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        ids.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("prog_id:"))
                .filter_map(|v| v.trim().parse::<u64>().ok()),
        );
    }
    let loaded = loaded_programs();
    assert!(
        ids.iter().all(|id| loaded.contains(id)),
        "bpftool lists every program the receiver holds: {ids:?} vs {loaded:?}"
    );
    ids
}

/// Waits (up to 5 s: the kernel frees programs after the last reference goes) until none of
/// `ids` is loaded; returns those still loaded.
fn left_over(ids: &HashSet<u64>) -> Vec<u64> {
    let t0 = Instant::now();
    loop {
        let now = loaded_programs();
        let left: Vec<u64> = ids.intersection(&now).copied().collect();
        if left.is_empty() || t0.elapsed() > Duration::from_secs(5) {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Load {
    server: Child,
    wrk: Child,
}

impl Drop for Load {
    fn drop(&mut self) {
        terminate(&mut self.wrk);
        terminate(&mut self.server);
    }
}

/// A Python HTTP server on `port` and `wrk` hammering it for 60 s.
fn load(port: u16) -> Load {
    let server = python_http_server(port);
    let wrk = Command::new("wrk")
        .args([
            "-t2",
            "-c16",
            "-d60s",
            &format!("http://127.0.0.1:{port}/Cargo.toml"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wrk (scripts/setup.sh installs it)");
    Load { server, wrk }
}

/// A receiver exporting to a port nobody listens on.
fn receiver_with_backend_down() -> Receiver {
    let down = free_port();
    Receiver::start(
        "  capture_bytes: 4096\n",
        Some(&format!("http://127.0.0.1:{down}")),
        &[],
    )
}

#[test]
fn sigterm_with_backend_down_and_under_load_exits_within_5s_and_detaches() {
    let _g = serial();
    let mut rx = receiver_with_backend_down();
    let _load = load(free_port());
    // Spans pile up and every export attempt fails for a while.
    std::thread::sleep(Duration::from_secs(5));
    let metrics = rx.self_metrics();
    assert!(
        otel_ebpf_integration::prom_value(&metrics, "otel_ebpf_export_failures_total")
            .is_some_and(|v| v > 0.0),
        "the backend is down, exports must fail: {metrics}"
    );
    let ids = programs_of(rx.pid());
    assert!(
        !ids.is_empty(),
        "bpftool shows no program held by the receiver"
    );
    let (code, took) = rx.stop_with(libc::SIGTERM, Duration::from_secs(30));
    assert!(
        took <= Duration::from_secs(5),
        "SIGTERM took {took:?}; stdout: {}",
        rx.stdout()
    );
    assert_eq!(code, Some(0), "stdout: {}", rx.stdout());
    assert_eq!(
        left_over(&ids),
        Vec::<u64>::new(),
        "programs left after SIGTERM"
    );
}

#[test]
fn sigkill_leaves_no_program() {
    let _g = serial();
    let mut rx = receiver_with_backend_down();
    let ids = programs_of(rx.pid());
    assert!(
        !ids.is_empty(),
        "bpftool shows no program held by the receiver"
    );
    let (code, _) = rx.stop_with(libc::SIGKILL, Duration::from_secs(5));
    assert_eq!(code, None, "killed by a signal");
    assert_eq!(
        left_over(&ids),
        Vec::<u64>::new(),
        "programs left after SIGKILL"
    );
}

//! Syscall tax: what loaded syscall tracepoints cost every task on the host.
//!
//! Attaching any `syscalls:*` tracepoint sets TIF_SYSCALL_TRACEPOINT on every task, so every
//! syscall of every process takes the slow entry/exit path, traced or not. Measured with
//! `perf bench syscall basic` (getppid, not one of our hooks: the pure slow-path cost) and a
//! `write(2)` of 1 byte to /dev/null (a hooked syscall: our enter and exit programs run and
//! drop it because it is not a socket). Output: ns per call.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::process::Command;
use std::time::Instant;

/// ns per `getppid` from `perf bench syscall basic --loop {loops}` (perf from linux-perf).
pub fn getppid_ns(loops: u64) -> Result<f64> {
    let out = Command::new("perf")
        .args(["bench", "syscall", "basic", "--loop", &loops.to_string()])
        .output()
        .context("run perf bench (apt-get install linux-perf)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "perf bench failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let us: f64 = text
        .lines()
        .find_map(|l| l.trim().strip_suffix("usecs/op")?.trim().parse().ok())
        .with_context(|| format!("no usecs/op in: {text}"))?;
    Ok(us * 1000.0)
}

/// ns per 1-byte `write` to /dev/null, best of 3 rounds of `loops` calls.
pub fn devnull_write_ns(loops: u64) -> Result<f64> {
    let mut f = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        for _ in 0..loops {
            f.write_all(b"x")?;
        }
        best = best.min(t0.elapsed().as_nanos() as f64 / loops as f64);
    }
    Ok(best)
}

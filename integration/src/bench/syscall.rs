//! Syscall tax: what loaded syscall tracepoints cost every task on the host.
//!
//! Attaching any `syscalls:*` tracepoint sets TIF_SYSCALL_TRACEPOINT on every task, so every
//! syscall of every process takes the slow entry/exit path, traced or not. Measured with
//! `perf bench syscall basic` (getppid) and `dd` copying /dev/zero to /dev/null one byte at a
//! time (read and write: the syscalls socket tracers hook; ours does not, as it hooks the
//! socket layer). Both run as separate processes. Output: ns per call.

use anyhow::{Context, Result, bail};
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

/// ns per syscall of `dd if=/dev/zero of=/dev/null bs=1 count={loops}` (one read and one
/// write per byte, so 2 × `loops` syscalls of a separate process; best of 3 runs).
pub fn devnull_write_ns(loops: u64) -> Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        let st = Command::new("dd")
            .args([
                "if=/dev/zero",
                "of=/dev/null",
                "bs=1",
                &format!("count={loops}"),
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .context("run dd")?;
        if !st.success() {
            bail!("dd failed: {st}");
        }
        best = best.min(t0.elapsed().as_nanos() as f64 / (2 * loops) as f64);
    }
    Ok(best)
}

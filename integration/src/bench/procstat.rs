//! What a process costs, read from /proc: CPU time, memory, and its BPF programs' run time and
//! maps' memory.
//!
//! Sources: `/proc/PID/stat` (utime, stime in clock ticks, all threads), `/proc/PID/status`
//! (`VmHWM`, `VmRSS` in kB), `/proc/PID/fdinfo/FD` of BPF program fds (`run_time_ns`,
//! `run_cnt`; counted only while `kernel.bpf_stats_enabled=1`) and BPF map fds (`memlock`,
//! bytes). Linux only; errors name the file.

use anyhow::{Context, Result};

/// user + system CPU time of `pid` (all its threads), seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    // Fields after the ")" that ends comm: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

/// A `kB` line of /proc/PID/status (e.g. `VmHWM`), in bytes.
pub fn status_bytes(pid: u32, key: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let v = s
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .with_context(|| format!("{key} in /proc/{pid}/status"))?;
    let kb: u64 = v.trim().trim_end_matches("kB").trim().parse()?;
    Ok(kb * 1024)
}

/// Sums of the BPF objects a process holds open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfUsage {
    /// Total run time of its programs (ns) since load (while stats are enabled).
    pub run_time_ns: u64,
    /// Total program runs.
    pub run_cnt: u64,
    /// Programs found.
    pub programs: u32,
    /// Memory charged to its maps (bytes).
    pub map_bytes: u64,
}

/// Reads every fdinfo of `pid` and sums its BPF programs and maps (each fd once; a program
/// or map held through two fds would count twice — the receiver holds one of each).
pub fn bpf_usage(pid: u32) -> Result<BpfUsage> {
    let mut u = BpfUsage::default();
    let dir = format!("/proc/{pid}/fdinfo");
    for e in std::fs::read_dir(&dir).with_context(|| dir.clone())? {
        let Ok(text) = std::fs::read_to_string(e?.path()) else {
            continue; // fd closed meanwhile
        };
        add_fdinfo(&mut u, &text);
    }
    Ok(u)
}

fn add_fdinfo(u: &mut BpfUsage, text: &str) {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
    };
    if text.contains("prog_type:") {
        u.programs += 1;
        u.run_time_ns += field("run_time_ns:").unwrap_or(0);
        u.run_cnt += field("run_cnt:").unwrap_or(0);
    } else if text.contains("map_type:") {
        u.map_bytes += field("memlock:").unwrap_or(0);
    }
}

/// Turns `kernel.bpf_stats_enabled` on (returns the previous value).
pub fn enable_bpf_stats() -> Result<String> {
    let p = "/proc/sys/kernel/bpf_stats_enabled";
    let old = std::fs::read_to_string(p).context(p)?;
    std::fs::write(p, "1").context(p)?;
    Ok(old.trim().to_string())
}

/// Restores `kernel.bpf_stats_enabled`.
pub fn restore_bpf_stats(old: &str) {
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", old);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_sums() {
        let mut u = BpfUsage::default();
        add_fdinfo(
            &mut u,
            "pos:\t0\nflags:\t02000002\nprog_type:\t5\nprog_jited:\t1\nrun_time_ns:\t1500\nrun_cnt:\t3\n",
        );
        add_fdinfo(&mut u, "pos:\t0\nmap_type:\t27\nmemlock:\t8400896\n");
        add_fdinfo(&mut u, "pos:\t0\nflags:\t0100002\n");
        assert_eq!(
            u,
            BpfUsage {
                run_time_ns: 1500,
                run_cnt: 3,
                programs: 1,
                map_bytes: 8400896
            }
        );
    }

    #[test]
    fn own_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(status_bytes(pid, "VmHWM").unwrap() > 0);
        assert!(status_bytes(pid, "NoSuchKey").is_err());
    }
}

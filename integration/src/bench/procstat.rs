//! What a process costs, read from /proc: CPU time, memory, and its BPF programs' run time and
//! maps' memory.
//!
//! Sources: `/proc/PID/stat` (utime, stime in clock ticks, all threads), `/proc/PID/status`
//! (`VmHWM`, `VmRSS` in kB), `/proc/PID/fdinfo/FD` of BPF program fds (`run_time_ns`,
//! `run_cnt`, `prog_id`; counted only while `kernel.bpf_stats_enabled=1`) and BPF map fds
//! (`memlock`, bytes). Program names (to split the kernel timing hooks from the capture
//! programs) come from the `bpf(2)` syscall (`BPF_PROG_GET_FD_BY_ID`, `BPF_OBJ_GET_INFO_BY_FD`).
//! Linux only; errors name the file.

use anyhow::{Context, Result};
use otel_ebpf_receiver::probes::NET_TRACEPOINTS;
use std::collections::BTreeMap;

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

/// The kernel keeps at most this many bytes of a program's name (`BPF_OBJ_NAME_LEN` − 1).
const KERNEL_NAME_LEN: usize = 15;

/// Whether a program name as the kernel reports it (truncated to 15 bytes) is one of the
/// receiver's kernel network timing / TCP health programs (`receiver.kernel_timing`: its
/// `probes::NET_TRACEPOINTS`, program name = tracepoint name). Every other program of the
/// receiver is a capture program (socket calls, connection state, processes, TLS uprobes).
pub fn is_kernel_timing(kernel_name: &str) -> bool {
    NET_TRACEPOINTS
        .iter()
        .any(|(n, _, _)| &n[..n.len().min(KERNEL_NAME_LEN)] == kernel_name)
}

/// Run time and runs of a group of BPF programs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgSum {
    /// Total run time (ns) since load (while stats are enabled).
    pub run_time_ns: u64,
    /// Total runs.
    pub run_cnt: u64,
    /// Programs in the group.
    pub programs: u32,
}

impl ProgSum {
    fn add(&mut self, run_time_ns: u64, run_cnt: u64) {
        self.run_time_ns += run_time_ns;
        self.run_cnt += run_cnt;
        self.programs += 1;
    }

    /// `self` − `before` (runs and run time since `before`; programs of `self`).
    pub fn since(&self, before: &ProgSum) -> ProgSum {
        ProgSum {
            run_time_ns: self.run_time_ns - before.run_time_ns,
            run_cnt: self.run_cnt - before.run_cnt,
            programs: self.programs,
        }
    }
}

/// Sums of the BPF objects a process holds open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BpfUsage {
    /// Total run time of its programs (ns) since load (while stats are enabled).
    pub run_time_ns: u64,
    /// Total program runs.
    pub run_cnt: u64,
    /// Programs found.
    pub programs: u32,
    /// The kernel timing programs among them ([`is_kernel_timing`]).
    pub kernel_timing: ProgSum,
    /// Per program name (as the kernel keeps it, ≤ 15 bytes; "?" if unreadable).
    pub by_name: BTreeMap<String, ProgSum>,
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
        add_fdinfo(&mut u, &text, prog_name);
    }
    Ok(u)
}

fn add_fdinfo(u: &mut BpfUsage, text: &str, name_of: impl Fn(u32) -> Option<String>) {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
    };
    if text.contains("prog_type:") {
        let (ns, cnt) = (
            field("run_time_ns:").unwrap_or(0),
            field("run_cnt:").unwrap_or(0),
        );
        u.programs += 1;
        u.run_time_ns += ns;
        u.run_cnt += cnt;
        let name = field("prog_id:")
            .and_then(|id| name_of(u32::try_from(id).ok()?))
            .unwrap_or_else(|| "?".into());
        if is_kernel_timing(&name) {
            u.kernel_timing.add(ns, cnt);
        }
        u.by_name.entry(name).or_default().add(ns, cnt);
    } else if text.contains("map_type:") {
        u.map_bytes += field("memlock:").unwrap_or(0);
    }
}

/// The name of BPF program `id` as the kernel keeps it (at most 15 bytes); `None` if the
/// program is gone or `bpf(2)` refuses (needs root).
pub fn prog_name(id: u32) -> Option<String> {
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    /// Offset of `name[16]` in `struct bpf_prog_info` (stable UAPI).
    const NAME_OFFSET: usize = 64;
    /// `union bpf_attr` for `BPF_PROG_GET_FD_BY_ID`.
    #[repr(C)]
    struct GetFd {
        prog_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    /// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
    #[repr(C)]
    struct GetInfo {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let attr = GetFd {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: bpf(2) reads `size` bytes of `attr`, which is that long; it returns a new fd or
    // -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            &attr as *const GetFd,
            std::mem::size_of::<GetFd>(),
        )
    };
    if fd < 0 {
        return None;
    }
    let fd = fd as libc::c_int;
    // 256 zeroed bytes: more than this kernel's bpf_prog_info (the kernel accepts a longer
    // buffer if its tail is zero, and writes back the length it filled).
    let mut info = [0u8; 256];
    let mut attr = GetInfo {
        bpf_fd: fd as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: as above; the kernel writes at most `info_len` bytes to `info`, which lives
    // across the call; `fd` is ours and closed once.
    let rc = unsafe {
        let rc = libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut GetInfo,
            std::mem::size_of::<GetInfo>(),
        );
        libc::close(fd);
        rc
    };
    if rc != 0 || (attr.info_len as usize) < NAME_OFFSET + 16 {
        return None;
    }
    let name = &info[NAME_OFFSET..NAME_OFFSET + 16];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some(String::from_utf8_lossy(&name[..end]).into_owned())
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
        let names = |id: u32| Some(["sock_send_lengt", "netif_receive_s"][id as usize].into());
        add_fdinfo(
            &mut u,
            "pos:\t0\nflags:\t02000002\nprog_type:\t5\nprog_jited:\t1\nprog_id:\t0\nrun_time_ns:\t1500\nrun_cnt:\t3\n",
            names,
        );
        add_fdinfo(
            &mut u,
            "pos:\t0\nprog_type:\t17\nprog_id:\t1\nrun_time_ns:\t200\nrun_cnt:\t2\n",
            names,
        );
        add_fdinfo(&mut u, "pos:\t0\nmap_type:\t27\nmemlock:\t8400896\n", names);
        add_fdinfo(&mut u, "pos:\t0\nflags:\t0100002\n", names);
        assert_eq!(
            u,
            BpfUsage {
                run_time_ns: 1700,
                run_cnt: 5,
                programs: 2,
                kernel_timing: ProgSum {
                    run_time_ns: 200,
                    run_cnt: 2,
                    programs: 1
                },
                by_name: [
                    (
                        "netif_receive_s".to_string(),
                        ProgSum {
                            run_time_ns: 200,
                            run_cnt: 2,
                            programs: 1
                        }
                    ),
                    (
                        "sock_send_lengt".to_string(),
                        ProgSum {
                            run_time_ns: 1500,
                            run_cnt: 3,
                            programs: 1
                        }
                    ),
                ]
                .into(),
                map_bytes: 8400896
            }
        );
    }

    #[test]
    fn kernel_timing_names() {
        // Kernel-truncated names match; capture programs and other prefixes do not.
        assert!(is_kernel_timing("skb_copy_datagr"));
        assert!(is_kernel_timing("tcp_probe"));
        assert!(is_kernel_timing("net_dev_start_x"));
        assert!(!is_kernel_timing("sock_send_lengt"));
        assert!(!is_kernel_timing("inet_sock_set_s"));
        assert!(!is_kernel_timing("tcp_probe2"));
        assert!(!is_kernel_timing("net_dev"));
    }

    /// The names of this process's programs (none) and of a missing id.
    #[test]
    fn missing_program() {
        assert_eq!(prog_name(u32::MAX), None);
    }

    #[test]
    fn own_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(status_bytes(pid, "VmHWM").unwrap() > 0);
        assert!(status_bytes(pid, "NoSuchKey").is_err());
    }
}

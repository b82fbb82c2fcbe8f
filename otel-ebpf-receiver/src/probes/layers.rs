//! Layer-timing sampling windows (user side of `receiver.kernel_timing.sampling`).
//!
//! Stage: probes. Input: the loaded per-packet layer programs (`net_dev_queue` …
//! `skb_copy_datagram_iovec`), the `SAMPLING` array map and [`LayerSampling`]. Output: the
//! programs attached only while a sampling window is open or a connection over a threshold
//! exists, and `SAMPLING[0]` flags telling the probes which connections to time (the
//! per-connection hash, interval and threshold rules are in the probes' `sample.rs`).
//!
//! Why windows and not only an early exit in each program: on the VMs this was measured on, a
//! raw tracepoint run costs ≈ 0.15–1 µs whatever the program does, and the six hooks fire ≈ 20
//! times per HTTP request (docs/overhead.md) — an early exit inside them still costs several µs
//! per request. Detached, they cost nothing; the cost of layer timing then scales with the
//! window's share of the period. Windows are aligned to wall-clock multiples of the period so
//! hosts with synchronised clocks sample the same windows.
//!
//! The attach is one `BPF_RAW_TRACEPOINT_OPEN` syscall per program with a clone of its fd,
//! made here rather than through aya because the `Ebpf` object belongs to the TLS attacher
//! thread; closing the returned link fd detaches. Threshold crossings outside windows keep the
//! hooks attached for at most `window_seconds` more per period (bounded cost on a host where
//! many connections cross). Limits: ticks every 50 ms, so a window
//! opens and closes within 50 ms of its edges; a connection crossing a threshold while the
//! hooks are detached is timed from the next tick.

use crate::config::LayerSampling;
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{ProgramFd, RawTracePoint},
};
use otel_ebpf_common::{SAMPLE_HOT, SAMPLE_HOT_HOLD_NS, SAMPLE_WINDOW};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the window state is re-evaluated.
const TICK: Duration = Duration::from_millis(50);

/// Counters of the sampler (read by the self-metrics and the benchmark).
#[derive(Debug, Default)]
pub struct SamplerStats {
    /// Times the per-packet hooks were attached.
    pub attaches: AtomicU64,
    /// Ticks (of [`TICK`]) with the hooks attached.
    pub attached_ticks: AtomicU64,
    /// Attach failures (the hook stays detached until the next window).
    pub attach_errors: AtomicU64,
}

/// Opens and closes the layer-timing windows. Dropping it detaches the hooks.
pub struct LayerSampler {
    progs: Vec<(&'static str, CString, ProgramFd)>,
    links: Vec<OwnedFd>,
    flags: Array<MapData, u64>,
    window_ns: u64,
    period_ns: u64,
    continuous: bool,
    /// Period index and hook time spent on threshold crossings outside windows in it (ns).
    hot_period: u64,
    hot_used_ns: u64,
    pub stats: Arc<SamplerStats>,
}

/// `BPF_RAW_TRACEPOINT_OPEN`'s part of `union bpf_attr`.
#[repr(C)]
struct RawTpOpen {
    name: u64,
    prog_fd: u32,
    _pad: u32,
    cookie: u64,
}

const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;

fn raw_tp_open(name: &CString, prog: &ProgramFd) -> std::io::Result<OwnedFd> {
    let attr = RawTpOpen {
        name: name.as_ptr() as u64,
        prog_fd: prog.as_fd_raw(),
        _pad: 0,
        cookie: 0,
    };
    // SAFETY: attr is a valid, zero-padded bpf_attr prefix of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_RAW_TRACEPOINT_OPEN,
            &attr as *const RawTpOpen,
            std::mem::size_of::<RawTpOpen>() as u32,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

trait RawFdOf {
    fn as_fd_raw(&self) -> u32;
}

impl RawFdOf for ProgramFd {
    fn as_fd_raw(&self) -> u32 {
        use std::os::fd::AsFd;
        self.as_fd().as_raw_fd() as u32
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether wall-clock time `now_ns` lies in a window of `window_ns` opening every `period_ns`.
pub fn in_window(now_ns: u64, window_ns: u64, period_ns: u64) -> bool {
    period_ns == 0 || window_ns >= period_ns || now_ns % period_ns < window_ns
}

impl LayerSampler {
    /// Loads `names` (raw tracepoint programs of the same name) and checks each attaches
    /// once; returns the sampler and the names that attach. Takes `SAMPLING` from `ebpf`.
    pub fn new(
        ebpf: &mut Ebpf,
        names: &[&'static str],
        cfg: &LayerSampling,
    ) -> Result<(Self, Vec<&'static str>), String> {
        let map = ebpf.take_map("SAMPLING").ok_or("SAMPLING map missing")?;
        let flags = Array::try_from(map).map_err(|e| format!("SAMPLING: {e}"))?;
        let mut progs = Vec::new();
        for name in names {
            let res = (|| -> Result<(CString, ProgramFd), String> {
                let prog: &mut RawTracePoint = ebpf
                    .program_mut(name)
                    .ok_or("program missing from object")?
                    .try_into()
                    .map_err(|e| format!("{e}"))?;
                prog.load().map_err(|e| format!("{e:#}"))?;
                let fd = prog
                    .fd()
                    .map_err(|e| format!("{e}"))?
                    .try_clone()
                    .map_err(|e| format!("{e}"))?;
                let c = CString::new(*name).map_err(|e| e.to_string())?;
                // Checked once now: a hook this kernel refuses is reported at start-up.
                drop(raw_tp_open(&c, &fd).map_err(|e| format!("attach: {e}"))?);
                Ok((c, fd))
            })();
            match res {
                Ok((c, fd)) => progs.push((*name, c, fd)),
                Err(e) => log::warn!(
                    "kernel network timing: raw tracepoint {name} not attached, its layer is not measured: {e}"
                ),
            }
        }
        let ok = progs.iter().map(|p| p.0).collect();
        let mut s = Self {
            progs,
            links: Vec::new(),
            flags,
            window_ns: (cfg.window_seconds * 1e9) as u64,
            period_ns: (cfg.period_seconds * 1e9) as u64,
            continuous: cfg.continuous(),
            hot_period: 0,
            hot_used_ns: 0,
            stats: Arc::default(),
        };
        s.tick();
        Ok((s, ok))
    }

    /// Re-evaluates the window and the thresholds: attaches or detaches the hooks and writes
    /// the flags. Returns whether the hooks are attached.
    pub fn tick(&mut self) -> bool {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let window = self.continuous || in_window(wall, self.window_ns, self.period_ns);
        let last_hot = self.flags.get(&1, 0).unwrap_or(0);
        let mut hot = last_hot != 0 && monotonic_ns().saturating_sub(last_hot) < SAMPLE_HOT_HOLD_NS;
        // Threshold crossings outside a window keep the hooks attached for at most one more
        // window's length per period: on a host where many connections cross (an overloaded
        // one, where every RTT is long), the cost stays bounded at twice the window share.
        if hot && !window {
            let period = wall / self.period_ns.max(1);
            if period != self.hot_period {
                self.hot_period = period;
                self.hot_used_ns = 0;
            }
            if self.hot_used_ns >= self.window_ns {
                hot = false;
            } else {
                self.hot_used_ns += TICK.as_nanos() as u64;
            }
        }
        let f = if window { SAMPLE_WINDOW } else { 0 } | if hot { SAMPLE_HOT } else { 0 };
        if f != 0 {
            let _ = self.flags.set(0, f, 0);
            if self.links.is_empty() {
                self.attach();
            }
            self.stats.attached_ticks.fetch_add(1, Ordering::Relaxed);
        } else {
            // Detach first: a program never runs with flags that no longer hold.
            self.links.clear();
            let _ = self.flags.set(0, 0, 0);
        }
        !self.links.is_empty()
    }

    fn attach(&mut self) {
        for (name, c, fd) in &self.progs {
            match raw_tp_open(c, fd) {
                Ok(l) => self.links.push(l),
                Err(e) => {
                    self.stats.attach_errors.fetch_add(1, Ordering::Relaxed);
                    log::debug!("kernel network timing: {name} attach failed: {e}");
                }
            }
        }
        self.stats.attaches.fetch_add(1, Ordering::Relaxed);
    }

    /// Ticks on a thread of its own until `stop` is set; the hooks are detached at the end.
    pub fn spawn(mut self, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("layer-sampler".into())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    self.tick();
                    std::thread::sleep(TICK);
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_to_the_period() {
        let s = 1_000_000_000;
        assert!(in_window(120 * s, s, 60 * s));
        assert!(in_window(120 * s + s / 2, s, 60 * s));
        assert!(!in_window(121 * s, s, 60 * s));
        assert!(!in_window(179 * s, s, 60 * s));
        assert!(in_window(180 * s, s, 60 * s));
        // A window as long as the period never closes.
        assert!(in_window(7, 5 * s, 5 * s));
    }

    #[test]
    fn expected_share_of_time_in_window() {
        let s = 1_000_000_000u64;
        let on = (0..600).filter(|i| in_window(i * s / 10, s, 6 * s)).count();
        assert_eq!(on, 100);
    }
}

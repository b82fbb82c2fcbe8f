//! The exec gate: holds a process that has just exec'd a never-seen executable until its TLS
//! probes are attached, so its first TLS call is already traced.
//!
//! Stage: beside **probes**, fed by the pipeline with exec events (before anything else is
//! done with them) and by the attacher thread ([`super::TlsAttacher`]) when it has handled a
//! process. Input: [`GateMsg`]s. Output: processes held for at most [`GateConfig::max_hold`],
//! [`GateStats`] (self-metric `otel_ebpf_tls_exec_holds_total{outcome}`).
//!
//! How a process is held: `ptrace(PTRACE_SEIZE)` on every thread listed in
//! `/proc/PID/task` (with `PTRACE_O_TRACECLONE`, so a thread created meanwhile is attached and
//! stopped by the kernel), then `PTRACE_INTERRUPT` on each; the threads stop in a
//! ptrace-stop, which is reported only to the tracer (this thread): the process's parent sees
//! no stop (`waitpid(WUNTRACED)` returns nothing, a shell's job control sees nothing), no
//! signal is sent to it, and its exit status is unchanged. When the attacher reports the
//! process handled, or [`GateConfig::max_hold`] after the seize, every thread is detached
//! (`PTRACE_DETACH`), re-injecting the signal of a signal-delivery-stop that happened
//! during the hold. A held thread that exits is reaped here (the tracer must reap a traced
//! thread before its real parent is told). If the receiver dies, the kernel detaches its
//! tracees. ptrace requests must come from the tracing thread, so all of this runs on one
//! dedicated thread, off the event loop.
//!
//! Not held: a process whose executable is already settled ([`Settled`]: analysed with no
//! TLS, attached, or failed: counted `not_needed`), a process already traced by a debugger
//! (`TracerPid` ≠ 0: counted `already_traced`), a process gone before the seize (`gone`), a
//! seize refused (`seize_failed`: e.g. Yama `ptrace_scope` 3, or no `CAP_SYS_PTRACE`).
//!
//! Costs per exec of a never-seen executable: ≈ 3 system calls per thread plus polling
//! `waitpid(WNOHANG)` every [`POLL`] while held; the process's run is delayed by the
//! attacher's time for it (analysis + attach, or a cache hit), at most `max_hold`. An exec of
//! a settled executable costs one `stat` of `/proc/PID/exe`.
//!
//! Limits: a held process is still delayed by up to `max_hold` when the attacher is busy
//! (start-up scan, a backlog of execs); at most [`MAX_HELD`] processes are held at once (more
//! are counted `too_many`); the stop does not reach the process, but it is visible to a
//! process that watches its own scheduling (`/proc/self/status` `TracerPid` during the hold).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::tls::maps::FileKey;

/// Most processes held at once.
pub const MAX_HELD: usize = 64;
/// Polling interval of `waitpid(WNOHANG)` while a process is held.
pub const POLL: Duration = Duration::from_micros(250);
/// Polling interval while nothing is held but a thread may still be traced (see
/// `poll_tracees`).
const STRAY_POLL: Duration = Duration::from_millis(5);
/// A process being released whose remaining threads have not stopped after this long is
/// forgotten; the stray poll still detaches or reaps them as they report.
const RELEASE_GIVE_UP: Duration = Duration::from_secs(1);
/// Most executables remembered as settled (the set is cleared when full).
pub const MAX_SETTLED: usize = 65_536;

/// Gate settings (`receiver.tls.exec_gate`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateConfig {
    /// Hold processes at all.
    pub enabled: bool,
    /// Longest hold of one process.
    pub max_hold: Duration,
}

/// Work for the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMsg {
    /// `pid` exec'd (kernel timestamp, CLOCK_MONOTONIC ns).
    Exec { pid: u32, ts_ns: u64 },
    /// The attacher has handled `pid`'s exec: release it.
    Done { pid: u32 },
}

/// Executables whose next exec needs no hold (shared by the attacher, which fills it, and
/// the gate, which reads it). Cleared when any file is detached (a lingering file evicted):
/// an executable using it would need its attach again.
#[derive(Debug, Default)]
pub struct Settled(Mutex<HashSet<FileKey>>);

impl Settled {
    /// Whether `key` is settled.
    pub fn contains(&self, key: &FileKey) -> bool {
        self.0.lock().is_ok_and(|s| s.contains(key))
    }

    /// Marks `key` settled.
    pub fn insert(&self, key: FileKey) {
        if let Ok(mut s) = self.0.lock() {
            if s.len() >= MAX_SETTLED {
                s.clear();
            }
            s.insert(key);
        }
    }

    /// Forgets every executable.
    pub fn clear(&self) {
        if let Ok(mut s) = self.0.lock() {
            s.clear();
        }
    }
}

/// Outcomes of the gate, by label of `otel_ebpf_tls_exec_holds_total{outcome}`.
#[derive(Debug, Default)]
pub struct GateStats {
    /// Held and released when the attacher was done.
    pub released: AtomicU64,
    /// Held and released at `max_hold` (the attacher was not done).
    pub timed_out: AtomicU64,
    /// Not held: executable already settled.
    pub not_needed: AtomicU64,
    /// Not held: traced by another tracer.
    pub already_traced: AtomicU64,
    /// Not held: gone before or during the seize.
    pub gone: AtomicU64,
    /// Not held: `PTRACE_SEIZE` refused.
    pub seize_failed: AtomicU64,
    /// Not held: [`MAX_HELD`] processes held already.
    pub too_many: AtomicU64,
    /// Sum of hold times (µs).
    pub hold_us_sum: AtomicU64,
    /// Longest hold (µs).
    pub hold_us_max: AtomicU64,
    /// Latest hold (µs).
    pub hold_us_last: AtomicU64,
}

impl GateStats {
    /// `(outcome label, count)` rows for the self-metric.
    pub fn rows(&self) -> [(&'static str, u64); 7] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("released", g(&self.released)),
            ("timed_out", g(&self.timed_out)),
            ("not_needed", g(&self.not_needed)),
            ("already_traced", g(&self.already_traced)),
            ("gone", g(&self.gone)),
            ("seize_failed", g(&self.seize_failed)),
            ("too_many", g(&self.too_many)),
        ]
    }

    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// One thread of a held process.
#[derive(Debug, Default)]
struct HeldThread {
    /// Reported its stop.
    stopped: bool,
    /// Signal to re-inject at detach (a signal-delivery-stop during the hold).
    signal: i32,
}

/// A held process.
#[derive(Debug)]
struct Held {
    since: Instant,
    threads: HashMap<i32, HeldThread>,
    /// The attacher is done (release once every thread is stopped).
    done: bool,
    /// Being released since then (threads detached as they stop).
    releasing: Option<Instant>,
}

/// Runs the gate on its own thread until `rx` is closed.
pub fn spawn(
    cfg: GateConfig,
    rx: Receiver<GateMsg>,
    settled: Arc<Settled>,
    stats: Arc<GateStats>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tls-exec-gate".into())
        .spawn(move || gate_loop(cfg, rx, &settled, &stats))
}

fn gate_loop(cfg: GateConfig, rx: Receiver<GateMsg>, settled: &Settled, stats: &GateStats) {
    let mut held: HashMap<u32, Held> = HashMap::new();
    // Some thread may still be traced by this thread (a thread created by `clone` while its
    // process was being released, one that died in its stop): polled until `waitpid` says
    // there is none, so no tracee is left stopped and no exited thread is left unreaped
    // (its parent's `wait` would block until then).
    let mut tracees = false;
    loop {
        let msg = if held.is_empty() && !tracees {
            match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            }
        } else {
            let wait = if held.is_empty() { STRAY_POLL } else { POLL };
            match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        };
        match msg {
            Some(GateMsg::Exec { pid, .. }) if cfg.enabled => {
                if held.contains_key(&pid) {
                    continue;
                }
                if exe_key(pid).is_some_and(|k| settled.contains(&k)) {
                    GateStats::add(&stats.not_needed);
                    continue;
                }
                if held.len() >= MAX_HELD {
                    GateStats::add(&stats.too_many);
                    continue;
                }
                match seize(pid) {
                    Ok(h) => {
                        held.insert(pid, h);
                    }
                    Err(SeizeError::Traced) => GateStats::add(&stats.already_traced),
                    Err(SeizeError::Gone) => GateStats::add(&stats.gone),
                    Err(SeizeError::Refused(e)) => {
                        log::debug!("tls gate: cannot seize {pid}: {e}");
                        GateStats::add(&stats.seize_failed);
                    }
                }
            }
            Some(GateMsg::Exec { .. }) => {}
            // The pipeline queues an exec here before it tells the attacher, so a process's
            // Done always follows its Exec; a Done for a process not held is ignored.
            Some(GateMsg::Done { pid }) => {
                if let Some(h) = held.get_mut(&pid) {
                    h.done = true;
                }
            }
            None => {}
        }
        // Drain without blocking before polling the tracees.
        tracees = poll_tracees(&mut held);
        let now = Instant::now();
        held.retain(|pid, h| {
            if h.releasing.is_none() {
                let all_stopped = h.threads.values().all(|t| t.stopped);
                let expired = now.duration_since(h.since) >= cfg.max_hold;
                if h.threads.is_empty() {
                    GateStats::add(&stats.gone);
                    return false;
                }
                if !((h.done && all_stopped) || expired) {
                    return true;
                }
                let us = now.duration_since(h.since).as_micros() as u64;
                stats.hold_us_sum.fetch_add(us, Ordering::Relaxed);
                stats.hold_us_max.fetch_max(us, Ordering::Relaxed);
                stats.hold_us_last.store(us, Ordering::Relaxed);
                if h.done && all_stopped {
                    GateStats::add(&stats.released);
                } else {
                    log::debug!("tls gate: pid {pid} released after {us} µs (attacher not done)");
                    GateStats::add(&stats.timed_out);
                }
                h.releasing = Some(now);
            }
            // Detach what is stopped; a thread whose stop is still to come stays until it
            // stops (PTRACE_DETACH needs a stopped tracee). Past `RELEASE_GIVE_UP` the rest
            // is left to the stray poll (`poll_tracees` detaches or reaps whatever reports).
            detach_stopped(h);
            let stuck = h
                .releasing
                .is_some_and(|r| now.duration_since(r) >= RELEASE_GIVE_UP);
            !h.threads.is_empty() && !stuck
        });
    }
    // Closing: let everything go (the kernel detaches the rest when this thread ends).
    let deadline = Instant::now() + Duration::from_millis(50);
    while (!held.is_empty() || tracees) && Instant::now() < deadline {
        tracees = poll_tracees(&mut held);
        for h in held.values_mut() {
            detach_stopped(h);
        }
        held.retain(|_, h| !h.threads.is_empty());
        std::thread::sleep(POLL);
    }
}

/// Device and inode of `/proc/PID/exe`.
fn exe_key(pid: u32) -> Option<FileKey> {
    std::fs::metadata(format!("/proc/{pid}/exe"))
        .ok()
        .map(|m| FileKey::from_metadata(&m))
}

enum SeizeError {
    Traced,
    Gone,
    Refused(std::io::Error),
}

/// `TracerPid` of `/proc/PID/status` (None: unreadable).
fn tracer_pid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

fn tids(pid: u32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Seizes and interrupts every thread of `pid`.
fn seize(pid: u32) -> Result<Held, SeizeError> {
    match tracer_pid(pid) {
        None => return Err(SeizeError::Gone),
        Some(0) => {}
        Some(_) => return Err(SeizeError::Traced),
    }
    let mut h = Held {
        since: Instant::now(),
        threads: HashMap::new(),
        done: false,
        releasing: None,
    };
    // Threads may be created while we seize: list again until no new one appears (threads
    // created by an already seized thread are attached by the kernel: TRACECLONE).
    for _ in 0..8 {
        let mut new = 0;
        for tid in tids(pid) {
            if h.threads.contains_key(&tid) {
                continue;
            }
            // SAFETY: plain ptrace requests on a thread id; results are checked.
            let r = unsafe {
                libc::ptrace(
                    libc::PTRACE_SEIZE,
                    tid,
                    0,
                    libc::PTRACE_O_TRACECLONE as libc::c_long,
                )
            };
            if r != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ESRCH) {
                    continue; // this thread exited
                }
                if h.threads.is_empty() {
                    return Err(
                        if e.raw_os_error() == Some(libc::EPERM)
                            && tracer_pid(pid).is_some_and(|t| t != 0)
                        {
                            SeizeError::Traced
                        } else {
                            SeizeError::Refused(e)
                        },
                    );
                }
                continue;
            }
            // SAFETY: as above.
            unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) };
            h.threads.insert(tid, HeldThread::default());
            new += 1;
        }
        if new == 0 {
            break;
        }
    }
    if h.threads.is_empty() {
        return Err(SeizeError::Gone);
    }
    Ok(h)
}

/// Collects every pending stop and exit of this thread's tracees without blocking
/// (`waitpid(-1, __WALL | WNOHANG | __WNOTHREAD)`): a held thread's stop is recorded, a
/// thread created by `clone` in a held process joins it, an exited thread is reaped and
/// forgotten, and a stop of a thread no held process owns is detached at once. Returns
/// whether this thread may still have tracees (false once `waitpid` says `ECHILD`).
fn poll_tracees(held: &mut HashMap<u32, Held>) -> bool {
    loop {
        let mut status = 0;
        // SAFETY: non-blocking wait for this thread's own tracees.
        let r = unsafe {
            libc::waitpid(
                -1,
                &mut status,
                libc::__WALL | libc::WNOHANG | libc::__WNOTHREAD,
            )
        };
        if r == 0 {
            return true;
        }
        if r < 0 {
            return std::io::Error::last_os_error().raw_os_error() != Some(libc::ECHILD);
        }
        on_wait_status(held, r, status);
    }
}

/// The thread group of thread `tid` (`Tgid:` of `/proc/TID/status`).
fn tgid_of(tid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// Applies one `waitpid` result of tracee `tid` (see [`poll_tracees`]).
fn on_wait_status(held: &mut HashMap<u32, Held>, tid: i32, status: i32) {
    let exited = libc::WIFEXITED(status) || libc::WIFSIGNALED(status);
    let owner = match held.values_mut().find(|h| h.threads.contains_key(&tid)) {
        Some(h) => Some(h),
        // A thread created by `clone` may report before its creator's clone event.
        None if !exited => tgid_of(tid).and_then(|pid| held.get_mut(&pid)),
        None => None,
    };
    if exited {
        if let Some(h) = owner {
            h.threads.remove(&tid);
        }
        return;
    }
    if !libc::WIFSTOPPED(status) {
        return;
    }
    let sig = libc::WSTOPSIG(status);
    let event = (status >> 16) & 0xff;
    let Some(h) = owner.filter(|h| h.releasing.is_none()) else {
        // Not held (any more): let it go, with the signal of a signal-delivery-stop.
        let data = if event == 0 { sig } else { 0 };
        // SAFETY: detaching a stopped tracee of this thread.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0, data as libc::c_long) };
        return;
    };
    if event == libc::PTRACE_EVENT_CLONE {
        // The new thread is attached (TRACECLONE) and reports its own stop.
        let mut msg: libc::c_ulong = 0;
        // SAFETY: the thread is in a ptrace-stop; `msg` receives the new tid.
        if unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, tid, 0, &mut msg) } == 0 {
            h.threads.entry(msg as i32).or_default();
        }
    }
    let t = h.threads.entry(tid).or_default();
    t.stopped = true;
    if event == 0 {
        // A signal-delivery-stop: the signal is delivered at detach.
        t.signal = sig;
    }
}

/// Detaches every stopped thread of `h` (re-injecting its pending signal) and forgets it. A
/// thread that cannot be detached (woken from its stop by `SIGKILL` or its process's exit)
/// stays until the poll reaps it.
fn detach_stopped(h: &mut Held) {
    h.threads.retain(|&tid, t| {
        if !t.stopped {
            return true;
        }
        // SAFETY: detaching our stopped tracee; data is the signal to deliver (0: none).
        let r = unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0, t.signal as libc::c_long) };
        if r != 0 {
            t.stopped = false;
            return true;
        }
        false
    });
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;

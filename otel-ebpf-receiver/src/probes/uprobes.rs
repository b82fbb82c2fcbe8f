//! TLS uprobe attachment: follows processes and attaches the TLS programs to the files that
//! hold TLS functions, once per file.
//!
//! Stage: beside **probes**, fed by the pipeline with process events. Input: [`TlsCmd`]s
//! (exec, fork, exit, rescan), this host's `/proc`, the loaded uprobe programs
//! ([`super::UPROBE_PROGRAMS`]). Output: uprobes attached system-wide (no pid filter: one
//! attachment of a file serves every process that maps it, now or later, in any mount
//! namespace) and [`TlsStats`] (skipped files, attach timings).
//!
//! How files are chosen:
//! - At start-up: the TLS libraries of this host's `/etc/ld.so.cache` ([`PINNED_LIBRARIES`])
//!   are attached and never released, so a process that starts later (even one that
//!   `dlopen`s libssl, like Python's `_ssl`) is traced from its first call, whatever our
//!   latency; then every running process is scanned once.
//! - On exec: [`crate::tls::candidates`] (the executable, its `DT_NEEDED` closure resolved in
//!   its own root, its current maps) → [`Registry::on_process`] (each distinct file analysed
//!   once) → attach. Fork: the child is counted as a user of its parent's files. Exit: a
//!   file whose last user exited is detached (pinned files excepted).
//! - dlopen: the pipeline sends [`TlsCmd::Rescan`] when a process that never produced TLS
//!   plaintext sends or receives a TLS record (ciphertext) — at most once per
//!   [`RESCAN_INTERVAL`] per process — and its `/proc/PID/maps` is read again.
//!
//! Safety: a file is analysed through one descriptor whose device + inode must be the
//! candidate's, and attached through another whose identity is checked again and passed to
//! the kernel as `/proc/self/fd/N` (never a path that can be swapped in between); a file gets
//! at most [`crate::tls::elf::MAX_PROBES_PER_FILE`] probes.
//!
//! - From the first exchange: a file stays attached after its last user exits (at most
//!   [`TlsOptions::linger_files`], least recently used detached first); analyses are cached on
//!   disk ([`crate::tls::cache`]); a process that exec'd a never-seen executable is held by
//!   the [`gate`] until its exec is handled here (at most 50 ms).
//!
//! Limits: the first requests of a process whose TLS code is in a file not yet attached
//! still race with our attach when analysis + attach exceed the hold (see docs/tls.md for
//! the measured figures). A file that cannot be traced is logged once and counted in
//! `otel_ebpf_tls_skipped_total{reason,file}`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aya::Ebpf;
use aya::programs::UProbe;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope};
use otel_ebpf_common::tls_fn;

use crate::tls::elf::{ProbeKind, TlsFunction};
use crate::tls::maps::FileKey;
use crate::tls::registry::{Action, ProcessFile, Registry, RegistryLimits};
use crate::tls::{self, elf::FileAnalysis};

pub mod gate;
mod thread;
pub use thread::{analyze_guarded, spawn};

/// Attacher settings beyond the loaded object (from `receiver.tls`).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Attached files kept after their last user exited.
    pub linger_files: usize,
    /// On-disk analysis cache directory (None: no cache).
    pub state_dir: Option<PathBuf>,
    /// Most cache entries.
    pub cache_entries: usize,
    /// The exec gate, told when an exec is handled (None: no gate).
    pub gate: Option<std::sync::mpsc::Sender<gate::GateMsg>>,
    /// Executables settled (shared with the gate).
    pub settled: Arc<gate::Settled>,
}

/// Library names attached at start-up when this host's ld.so.cache has them (OpenSSL 3 and
/// 1.1, GnuTLS 3).
pub const PINNED_LIBRARIES: &[&str] = &["libssl.so.3", "libssl.so.1.1", "libgnutls.so.30"];

/// Smallest interval between two dlopen rescans of one process.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(2);

/// Work for the attacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsCmd {
    /// `pid` exec'd (kernel timestamp, CLOCK_MONOTONIC ns, for the latency figure).
    Exec { pid: u32, ts_ns: u64 },
    /// `parent` forked `child`.
    Fork { parent: u32, child: u32 },
    /// `pid` exited.
    Exit { pid: u32 },
    /// Read `pid`'s maps again (a library may have been `dlopen`ed).
    Rescan { pid: u32 },
}

/// What the attacher reports to self-telemetry.
#[derive(Debug, Default)]
pub struct TlsStats {
    /// (reason label, file path) → files skipped. Bounded to [`MAX_SKIP_LABELS`] pairs (more
    /// are counted under file `other`).
    pub skipped: Mutex<HashMap<(String, String), u64>>,
    /// Files with probes attached now.
    pub attached_files: std::sync::atomic::AtomicU64,
    /// Exec → probes attached, for execs that attached a new file: (count, sum µs, max µs,
    /// last µs).
    pub exec_attach_us: Mutex<(u64, u64, u64, u64)>,
    /// Why the attacher thread died (health answers 503 with it).
    pub failure: Mutex<Option<String>>,
    /// On-disk analysis cache outcomes.
    pub cache: Arc<tls::cache::CacheStats>,
    /// Exec gate outcomes.
    pub gate: Arc<gate::GateStats>,
    /// Attached files kept without users now (gauge).
    pub lingering_files: std::sync::atomic::AtomicU64,
}

/// Most distinct (reason, file) label pairs kept in [`TlsStats::skipped`].
pub const MAX_SKIP_LABELS: usize = 256;

impl TlsStats {
    /// Records why the attacher stopped working (the first reason is kept).
    pub fn set_failure(&self, reason: &str) {
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            log::error!("{reason}");
            *f = Some(reason.to_string());
        }
    }

    /// Why the attacher thread died, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    fn skip(&self, reason: &str, file: &Path) {
        let Ok(mut m) = self.skipped.lock() else {
            return;
        };
        let mut key = (reason.to_string(), file.display().to_string());
        if !m.contains_key(&key) && m.len() >= MAX_SKIP_LABELS {
            key.1 = "other".into();
        }
        *m.entry(key).or_default() += 1;
    }
}

/// Program name and attach cookie for one probe of an analysis.
fn program_for(function: TlsFunction, kind: ProbeKind) -> (&'static str, Option<u64>) {
    let cookie = match function {
        TlsFunction::SslRead => tls_fn::SSL_READ,
        TlsFunction::SslWrite => tls_fn::SSL_WRITE,
        TlsFunction::SslReadEx => tls_fn::SSL_READ_EX,
        TlsFunction::SslWriteEx => tls_fn::SSL_WRITE_EX,
        TlsFunction::GnutlsRecordRecv => tls_fn::GNUTLS_RECV,
        TlsFunction::GnutlsRecordSend => tls_fn::GNUTLS_SEND,
        TlsFunction::GoConnRead => tls_fn::GO_READ,
        TlsFunction::GoConnWrite => tls_fn::GO_WRITE,
        TlsFunction::RustlsReadTls => tls_fn::RUSTLS_READ_TLS,
        TlsFunction::RustlsWriteTls => tls_fn::RUSTLS_WRITE_TLS,
        TlsFunction::RustlsReader => tls_fn::RUSTLS_READER,
        TlsFunction::RustlsReaderSret => tls_fn::RUSTLS_READER_SRET,
        TlsFunction::RustlsWrite => tls_fn::RUSTLS_WRITE,
        TlsFunction::RustlsWriteVectored => tls_fn::RUSTLS_WRITE_VECTORED,
        TlsFunction::RustlsRead => tls_fn::RUSTLS_READ,
        TlsFunction::RustlsFirstChunk => tls_fn::RUSTLS_FIRST_CHUNK,
        TlsFunction::RustlsConsume => tls_fn::RUSTLS_CONSUME,
    };
    if cookie >= tls_fn::RUSTLS_READ_TLS {
        return match kind {
            ProbeKind::Entry if function == TlsFunction::RustlsConsume => {
                ("rustls_consume", Some(cookie))
            }
            ProbeKind::Entry => ("rustls_entry", Some(cookie)),
            _ if matches!(
                function,
                TlsFunction::RustlsReadTls | TlsFunction::RustlsWriteTls
            ) =>
            {
                ("rustls_io_ret", None)
            }
            _ => ("rustls_ret", None),
        };
    }
    let go = matches!(function, TlsFunction::GoConnRead | TlsFunction::GoConnWrite);
    match (go, kind) {
        (false, ProbeKind::Entry) => ("tls_entry", Some(cookie)),
        (false, _) => ("tls_return", None),
        (true, ProbeKind::Entry) => ("go_tls_entry", Some(cookie)),
        (true, _) => ("go_tls_ret", None),
    }
}

/// Owns the loaded BPF object (and so every attachment) and the registry.
pub struct TlsAttacher {
    ebpf: Ebpf,
    registry: Registry,
    links: HashMap<FileKey, Vec<(&'static str, UProbeLinkId)>>,
    pinned: HashSet<FileKey>,
    stats: Arc<TlsStats>,
    /// The receiver's own pid (never scanned).
    own_pid: u32,
    cache: Option<tls::cache::AnalysisCache>,
    gate: Option<std::sync::mpsc::Sender<gate::GateMsg>>,
    settled: Arc<gate::Settled>,
}

impl TlsAttacher {
    /// Takes over the loaded object (its uprobe programs must be loaded).
    pub fn new(ebpf: Ebpf, stats: Arc<TlsStats>, opts: TlsOptions) -> Self {
        let cache = opts.state_dir.as_deref().and_then(|d| {
            tls::cache::AnalysisCache::open(d, opts.cache_entries, stats.cache.clone())
                .map_err(|e| log::warn!("tls: no analysis cache in {}: {e}", d.display()))
                .ok()
        });
        Self {
            ebpf,
            registry: Registry::new(RegistryLimits {
                max_lingering: opts.linger_files,
                ..RegistryLimits::default()
            }),
            links: HashMap::new(),
            pinned: HashSet::new(),
            stats,
            own_pid: std::process::id(),
            cache,
            gate: opts.gate,
            settled: opts.settled,
        }
    }

    /// Attaches every probe of `analysis` to `path`; on any failure, detaches what was
    /// attached and returns the error.
    fn attach(&mut self, key: FileKey, path: &Path, analysis: &FileAnalysis) -> Result<(), String> {
        if self.links.contains_key(&key) {
            return Ok(());
        }
        let host = host_path(path, key);
        let path = host.as_deref().unwrap_or(path);
        // Open once and check the identity on the descriptor; the kernel resolves the uprobe
        // target through `/proc/self/fd/N` to that very inode, so a file swapped in between
        // the analysis and here never receives the analysis's offsets.
        let file = tls::fileio::OpenedFile::open(path, u64::MAX).map_err(|e| e.to_string())?;
        file.check_key(key).map_err(|e| e.to_string())?;
        let fd_path = file.proc_path();
        let mut links = Vec::new();
        let mut result = Ok(());
        'outer: for target in &analysis.targets {
            for probe in &target.probes {
                let (name, cookie) = program_for(probe.function, probe.kind);
                let prog: &mut UProbe = match self.ebpf.program_mut(name).map(TryInto::try_into) {
                    Some(Ok(p)) => p,
                    _ => {
                        result = Err(format!("program {name} missing"));
                        break 'outer;
                    }
                };
                if prog.fd().is_err() {
                    // Its family was refused at start-up (logged then); the file's other
                    // families, if any, are not attached either.
                    result = Err(format!("program {name} not loaded on this kernel"));
                    break 'outer;
                }
                let point = UProbeAttachPoint {
                    location: UProbeAttachLocation::AbsoluteOffset(probe.offset),
                    cookie,
                };
                match prog.attach(point, &fd_path, UProbeScope::AllProcesses) {
                    Ok(id) => links.push((name, id)),
                    Err(e) => {
                        result = Err(format!(
                            "{} {:?} at {:#x}: {e:#}",
                            probe.function.symbol(),
                            probe.kind,
                            probe.offset
                        ));
                        break 'outer;
                    }
                }
            }
        }
        if result.is_err() {
            self.detach_links(links);
            return result;
        }
        log::debug!(
            "tls: attached {} probes to {} ({})",
            links.len(),
            path.display(),
            describe(analysis)
        );
        self.links.insert(key, links);
        self.stats.attached_files.store(
            self.links.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }

    fn detach_links(&mut self, links: Vec<(&'static str, UProbeLinkId)>) {
        for (name, id) in links {
            if let Some(Ok(p)) = self
                .ebpf
                .program_mut(name)
                .map(TryInto::<&mut UProbe>::try_into)
            {
                let _ = p.detach(id);
            }
        }
    }

    fn detach(&mut self, key: FileKey) {
        if self.pinned.contains(&key) {
            return;
        }
        if let Some(links) = self.links.remove(&key) {
            self.detach_links(links);
        }
        self.stats.attached_files.store(
            self.links.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Runs registry actions; returns how many files were newly attached.
    fn apply(&mut self, actions: Vec<Action>) -> usize {
        let mut attached = 0;
        for a in actions {
            match a {
                Action::Attach {
                    key,
                    path,
                    analysis,
                } => {
                    if self.links.contains_key(&key) {
                        continue;
                    }
                    match self.attach(key, &path, &analysis) {
                        Ok(()) => attached += 1,
                        Err(e) => {
                            log::warn!("tls: cannot attach to {}: {e}", path.display());
                            self.stats.skip("attach_failed", &path);
                        }
                    }
                }
                Action::Detach { key } => {
                    self.detach(key);
                    // An executable using this file would need its attach again.
                    self.settled.clear();
                }
                Action::Skip {
                    path,
                    label,
                    reason,
                    ..
                } => {
                    log::info!("tls: skipping {} [{label}]: {reason}", path.display());
                    self.stats.skip(label, &path);
                }
            }
        }
        attached
    }

    /// Attaches [`PINNED_LIBRARIES`] found through this host's `/etc/ld.so.cache`; returns
    /// the paths attached.
    pub fn pin_system_libraries(&mut self) -> Vec<PathBuf> {
        let Ok(data) = tls::fileio::OpenedFile::open(
            Path::new("/etc/ld.so.cache"),
            tls::fileio::MAX_LDCACHE_BYTES,
        )
        .and_then(|f| f.read_all()) else {
            return Vec::new();
        };
        let Ok(cache) = tls::ldcache::LdCache::parse(&data) else {
            return Vec::new();
        };
        let mut done = Vec::new();
        for name in PINNED_LIBRARIES {
            let Some(path) = cache.lookup(name).cloned() else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let key = FileKey::from_metadata(&meta);
            let file = ProcessFile {
                key,
                path: path.clone(),
            };
            match tls::elf::analyze_process_file(&file) {
                Ok(a) if a.is_tls() => match self.attach(key, &path, &a) {
                    Ok(()) => {
                        self.pinned.insert(key);
                        done.push(path);
                    }
                    Err(e) => {
                        log::warn!("tls: cannot attach to {}: {e}", path.display());
                        self.stats.skip("attach_failed", &path);
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    log::info!("tls: skipping {}: {e}", path.display());
                    self.stats.skip(e.reason.label(), &path);
                }
            }
        }
        done
    }

    /// Discovers `pid`'s files and attaches what is new; returns files newly attached and
    /// the executable's identity.
    fn on_process(&mut self, pid: u32) -> (usize, Option<FileKey>) {
        if pid == self.own_pid {
            return (0, None);
        }
        let t0 = std::time::Instant::now();
        let Ok(c) = tls::candidates(pid) else {
            return (0, None); // gone already, or a kernel thread
        };
        let t_candidates = t0.elapsed();
        let files: Vec<ProcessFile> = c.files.into_iter().map(|f| f.file).collect();
        let exe = files.first().map(|f| f.key);
        let cache = &mut self.cache;
        let actions = self.registry.on_process(pid, &files, |f| {
            if let Some(a) = cache.as_ref().and_then(|c| c.lookup(f)) {
                return Ok(a);
            }
            let out = analyze_guarded(f);
            if let (Some(c), Ok(a)) = (cache.as_mut(), &out) {
                c.store(f, a);
            }
            out
        });
        let t_analysis = t0.elapsed() - t_candidates;
        let n = self.apply(actions);
        if n > 0 {
            log::debug!(
                "tls: pid {pid}: candidates {:.1} ms, analysis {:.1} ms, attach {:.1} ms",
                t_candidates.as_secs_f64() * 1e3,
                t_analysis.as_secs_f64() * 1e3,
                (t0.elapsed() - t_candidates - t_analysis).as_secs_f64() * 1e3
            );
        }
        self.stats.lingering_files.store(
            self.registry.stats().lingering as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        (n, exe)
    }

    /// Scans every process of the host once (start-up); stops early when `stop` is set.
    pub fn scan_all(&mut self, stop: &AtomicBool) -> usize {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return 0;
        };
        let pids: Vec<u32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let mut attached = 0;
        for pid in pids {
            if stop.load(Ordering::Acquire) {
                break;
            }
            attached += self.on_process(pid).0;
        }
        attached
    }

    /// Handles one command.
    pub fn handle(&mut self, cmd: TlsCmd) {
        match cmd {
            TlsCmd::Exec { pid, ts_ns } => {
                let (n, exe) = self.on_process(pid);
                if let Some(exe) = exe {
                    self.settled.insert(exe);
                }
                if let Some(g) = &self.gate {
                    let _ = g.send(gate::GateMsg::Done { pid });
                }
                if n > 0 {
                    let now = crate::clock::Clock::monotonic_now_ns();
                    let us = now.saturating_sub(ts_ns) / 1000;
                    log::info!(
                        "tls: pid {pid}: {n} new file(s) attached {:.1} ms after exec",
                        us as f64 / 1000.0
                    );
                    if let Ok(mut s) = self.stats.exec_attach_us.lock() {
                        s.0 += 1;
                        s.1 += us;
                        s.2 = s.2.max(us);
                        s.3 = us;
                    }
                }
            }
            TlsCmd::Fork { parent, child } => self.registry.on_fork(parent, child),
            TlsCmd::Exit { pid } => {
                let actions = self.registry.on_exit(pid);
                self.apply(actions);
                self.stats.lingering_files.store(
                    self.registry.stats().lingering as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            TlsCmd::Rescan { pid } => {
                let (n, _) = self.on_process(pid);
                if n > 0 {
                    log::info!("tls: pid {pid}: {n} file(s) attached after a rescan (dlopen)");
                }
            }
        }
    }

    /// Files attached now.
    pub fn attached(&self) -> usize {
        self.links.len()
    }
}

/// The same file through this host's root when `path` is `/proc/PID/root/X` and `/X` here
/// is the same file (device and inode): that path outlives process PID (the kernel resolves
/// the path when the uprobe is created).
fn host_path(path: &Path, key: FileKey) -> Option<PathBuf> {
    let rest = path.strip_prefix("/proc").ok()?;
    let mut parts = rest.components();
    parts.next()?; // PID
    let root = parts.next()?;
    if root.as_os_str() != "root" {
        return None;
    }
    let host = Path::new("/").join(parts.as_path());
    let meta = std::fs::metadata(&host).ok()?;
    (FileKey::from_metadata(&meta) == key).then_some(host)
}

/// One line about what an analysis found.
fn describe(a: &FileAnalysis) -> String {
    a.targets
        .iter()
        .map(|t| format!("{:?}", t.library))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;

//! TLS discovery: for a live process, which files hold TLS functions and at which
//! file offsets uprobes go. Pure user space: no eBPF here; the attach code consumes
//! [`registry::Action`]s.
//!
//! Stages, in data-flow order:
//! [`maps`] (`/proc/PID/maps` → mapped files) and [`needed`] (`DT_NEEDED` closure for a
//! process that has just exec'd, via [`ldcache`]) → [`candidates`] (files keyed by
//! device+inode, with a path openable from here) → [`elf::analyze_process_file`] (per file: OpenSSL,
//! BoringSSL, GnuTLS, Go `crypto/tls`, rustls ([`rustls`]); offsets from [`image`], Go tables from [`golang`] and
//! [`godwarf`]; result types in [`target`]) → [`registry`] (attach once per file, detach
//! after the last user). [`discover`] runs the first three for one pid.
//!
//! Inputs: a pid and read access to `/proc/PID/{exe,maps,root,environ}` (root or
//! `CAP_SYS_PTRACE` for other users' processes). Outputs: [`ProcessTls`].
//! Limits: x86-64; see each module.

pub mod cache;
pub mod dynread;
pub mod elf;
pub mod fileio;
pub mod godwarf;
pub mod golang;
#[cfg(test)]
mod hostile_tests;
pub mod image;
pub mod ldcache;
pub mod maps;
pub mod needed;
pub mod registry;
pub mod rustls;
pub mod sparse;
pub mod target;
#[cfg(test)]
mod testutil;

use std::path::PathBuf;

use elf::{AnalyzeError, FileAnalysis, tls_library_name};
use maps::{Candidate, CandidateReason, FileKey};
use registry::ProcessFile;

/// A process that cannot be inspected.
#[derive(Debug, thiserror::Error)]
#[error("process {pid}: cannot read {what}: {source}")]
pub struct DiscoverError {
    /// The process.
    pub pid: u32,
    /// Which `/proc` entry.
    pub what: &'static str,
    /// The I/O error (`NotFound` once the process is gone, `PermissionDenied` without
    /// privileges).
    pub source: std::io::Error,
}

/// A candidate file of a process, ready for analysis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateFile {
    /// Why it was picked and its path inside the process's namespace.
    pub candidate: Candidate,
    /// Identity (`stat` of the host path) and host path to open and attach through.
    pub file: ProcessFile,
}

/// Candidate files of a process: from `/proc/PID/maps` and from `DT_NEEDED` resolution.
#[derive(Debug, Clone, Default)]
pub struct ProcessCandidates {
    /// The process.
    pub pid: u32,
    /// Executable path inside the process's namespace.
    pub exe: PathBuf,
    /// Distinct files (by device+inode), the executable first.
    pub files: Vec<CandidateFile>,
    /// Candidates that cannot be opened: `(path inside the namespace, reason)` (deleted
    /// after mapping, vanished).
    pub unreachable: Vec<(PathBuf, String)>,
    /// `DT_NEEDED` names found nowhere, or why resolution failed.
    pub unresolved: Vec<String>,
}

/// Candidates of live process `pid`. Errors: `/proc/PID/exe` or `/proc/PID/maps` unreadable
/// (process gone, kernel thread, no privilege).
pub fn candidates(pid: u32) -> Result<ProcessCandidates, DiscoverError> {
    let err = |what| move |source| DiscoverError { pid, what, source };
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let exe_link = proc.join("exe");
    let exe_meta = std::fs::metadata(&exe_link).map_err(err("exe"))?;
    let exe_key = FileKey::from_metadata(&exe_meta);
    let exe = std::fs::read_link(&exe_link).map_err(err("exe"))?;
    let exe = match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(s) => PathBuf::from(s),
        None => exe,
    };
    let mapped = maps::read_mapped_files(pid).map_err(err("maps"))?;
    let root = proc.join("root");
    let mut out = ProcessCandidates {
        pid,
        exe: exe.clone(),
        ..Default::default()
    };

    // The executable: through the namespace root when that reaches the same file, else
    // through the /proc/PID/exe magic link (deleted or unreachable path).
    let exe_host = needed::resolve_in_root(&root, &exe)
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| FileKey::from_metadata(&m) == exe_key))
        .unwrap_or(exe_link);
    out.files.push(CandidateFile {
        candidate: Candidate {
            path: exe.clone(),
            reason: CandidateReason::Executable,
            deleted: false,
        },
        file: ProcessFile {
            key: exe_key,
            path: exe_host,
        },
    });

    let mut wanted: Vec<Candidate> = maps::candidates(&mapped, Some(&exe))
        .into_iter()
        .filter(|c| c.reason != CandidateReason::Executable)
        .collect();
    // A static executable (a Go binary) needs no resolution: skip reading the process's
    // environment and ld.so.cache (a few KB read by `pread` tell).
    let is_static = fileio::OpenedFile::open(&out.files[0].file.path, fileio::MAX_IMAGE_BYTES)
        .ok()
        .and_then(|f| dynread::read_dynamic_strings(&f).ok())
        .is_some_and(|d| d.needed.is_empty());
    let resolved = if is_static {
        Ok(needed::Needed::default())
    } else {
        needed::ResolveContext::for_pid(pid)
            .map_err(|e| e.to_string())
            .and_then(|ctx| needed::resolve_needed(&exe, &ctx))
    };
    match resolved {
        Ok(n) => {
            out.unresolved
                .extend(n.unresolved.into_iter().map(|(name, _)| name));
            wanted.extend(n.libraries.into_iter().map(|l| {
                let name = l.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let reason = if tls_library_name(name) || tls_library_name(&l.name) {
                    CandidateReason::TlsLibraryName
                } else {
                    CandidateReason::ExecutableMapping
                };
                Candidate {
                    path: l.path,
                    reason,
                    deleted: false,
                }
            }));
        }
        Err(e) => out
            .unresolved
            .push(format!("DT_NEEDED of {}: {e}", exe.display())),
    }
    for c in wanted {
        if c.deleted {
            out.unreachable
                .push((c.path, "deleted after mapping".into()));
            continue;
        }
        let Some(host) = needed::resolve_in_root(&root, &c.path) else {
            out.unreachable
                .push((c.path, "not found under /proc/PID/root".into()));
            continue;
        };
        let key = match std::fs::metadata(&host) {
            Ok(m) => FileKey::from_metadata(&m),
            Err(e) => {
                out.unreachable.push((c.path, e.to_string()));
                continue;
            }
        };
        if out.files.iter().any(|f| f.file.key == key) {
            continue;
        }
        out.files.push(CandidateFile {
            candidate: c,
            file: ProcessFile { key, path: host },
        });
    }
    Ok(out)
}

/// Analysis of every candidate of a process.
#[derive(Debug)]
pub struct ProcessTls {
    /// Candidates (executable path, unreachable and unresolved entries).
    pub candidates: ProcessCandidates,
    /// One outcome per `candidates.files` entry, same order.
    pub outcomes: Vec<Result<FileAnalysis, AnalyzeError>>,
}

impl ProcessTls {
    /// Files with at least one TLS target.
    pub fn targets(&self) -> impl Iterator<Item = (&CandidateFile, &FileAnalysis)> {
        self.candidates
            .files
            .iter()
            .zip(&self.outcomes)
            .filter_map(|(c, o)| o.as_ref().ok().filter(|a| a.is_tls()).map(|a| (c, a)))
    }

    /// Files that cannot be traced.
    pub fn errors(&self) -> impl Iterator<Item = (&CandidateFile, &AnalyzeError)> {
        self.candidates
            .files
            .iter()
            .zip(&self.outcomes)
            .filter_map(|(c, o)| o.as_ref().err().map(|e| (c, e)))
    }
}

/// Candidates of `pid` and the analysis of each ([`candidates`] + [`elf::analyze_process_file`]). For
/// many processes, feed [`candidates`] to a [`registry::Registry`] instead, which analyses
/// each distinct file once.
pub fn discover(pid: u32) -> Result<ProcessTls, DiscoverError> {
    let candidates = candidates(pid)?;
    let outcomes = candidates
        .files
        .iter()
        .map(|c| elf::analyze_process_file(&c.file))
        .collect();
    Ok(ProcessTls {
        candidates,
        outcomes,
    })
}

#[cfg(test)]
#[path = "discover_tests.rs"]
mod discover_tests;

//! Attach-once-per-file bookkeeping: a pure state machine over (process, files) events.
//!
//! Stage: between discovery ([`super::discover`] / [`super::candidates`]) and the
//! kernel-side attach code, which executes the [`Action`]s.
//! Inputs: [`Registry::on_process`] with the complete current set of a process's candidate
//! files (each keyed by [`FileKey`] = device + inode, so the same library seen under
//! different paths in different containers is one file) and an `analyze` function that is
//! called only for files never seen before; [`Registry::on_exit`] when a process exits.
//! Outputs: [`Action::Attach`] the first time a file with TLS targets is used,
//! [`Action::Detach`] when its last user exits (or stops mapping it) and it is the least
//! recently used of more than [`RegistryLimits::max_lingering`] attached files without
//! users, [`Action::Skip`] once
//! per file that cannot be traced (path, metric label, reason: one log line and one
//! self-metric increment).
//! Lingering: a file whose last user exited stays attached (uprobes live on the inode, so
//! the next run of the same binary is traced from its first instruction, 0 ms after exec);
//! at most [`RegistryLimits::max_lingering`] such files, the least recently used detached
//! first ([`RegistryStats::lingering`], [`RegistryStats::lingering_detached`]). The cost of
//! a lingering file: its probes (nothing runs while no process executes it) and, for a
//! deleted file, its inode is kept until detached.
//! Limits: at most [`RegistryLimits::max_files`] remembered files (the least recently used
//! file without users is forgotten first, and is analysed again if seen again), at most
//! [`RegistryLimits::max_attached`] attached files (more are skipped with label
//! `attach_limit` and not retried while remembered), at most [`RegistryLimits::max_pids`]
//! tracked processes (more are counted in [`RegistryStats::processes_ignored`]). Files in
//! use by a tracked process are never forgotten, so the file bound can be exceeded by them.
//! A file whose analysis failed is not retried while remembered, even by another process.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::elf::{AnalyzeError, FileAnalysis};
use super::maps::FileKey;

/// A file a process uses: identity and the path to open and attach through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessFile {
    /// Device and inode (from `stat` of `path`).
    pub key: FileKey,
    /// Path openable from here (e.g. `/proc/PID/root/usr/lib/.../libssl.so.3`).
    pub path: PathBuf,
}

/// What the attach layer must do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Attach every probe of `analysis` to the file at `path`.
    Attach {
        /// File identity.
        key: FileKey,
        /// Path to attach through (the path of the process that triggered the attach).
        path: PathBuf,
        /// Targets and offsets.
        analysis: Arc<FileAnalysis>,
    },
    /// Detach everything attached to `key`.
    Detach {
        /// File identity.
        key: FileKey,
    },
    /// The file cannot be traced (reported once per remembered file).
    Skip {
        /// File identity.
        key: FileKey,
        /// Path it was seen under.
        path: PathBuf,
        /// Stable metric label ([`super::elf::AnalyzeReason::label`] or `attach_limit`).
        label: &'static str,
        /// Human-readable reason.
        reason: String,
    },
}

/// Size bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Files remembered (attached, analysed-but-idle, no-TLS, failed). Must exceed
    /// `max_attached`.
    pub max_files: usize,
    /// Files attached at once.
    pub max_attached: usize,
    /// Processes tracked.
    pub max_pids: usize,
    /// Attached files kept attached without any user (0: detach at the last user's exit).
    pub max_lingering: usize,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            max_files: 16_384,
            max_attached: 1_024,
            max_pids: 65_536,
            max_lingering: 64,
        }
    }
}

/// Counters for self-telemetry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Calls to `analyze`.
    pub analyses: u64,
    /// Files currently attached.
    pub attached: usize,
    /// Files remembered.
    pub files: usize,
    /// Processes tracked.
    pub pids: usize,
    /// Processes not tracked because of `max_pids`.
    pub processes_ignored: u64,
    /// Files forgotten because of `max_files`.
    pub files_evicted: u64,
    /// Attached files without users now (kept for their next run).
    pub lingering: usize,
    /// Lingering files detached because of `max_lingering` or `max_attached`.
    pub lingering_detached: u64,
}

#[derive(Debug)]
enum State {
    /// Probes attached; `users` processes use it.
    Attached(Arc<FileAnalysis>),
    /// Analysed with targets, detached (no user); re-attached without re-analysis.
    Idle(Arc<FileAnalysis>),
    /// No TLS in it.
    NoTls,
    /// Cannot be traced; reported once.
    Failed,
}

#[derive(Debug)]
struct Entry {
    path: PathBuf,
    state: State,
    users: u32,
    last_used: u64,
}

/// The registry. See the module documentation.
#[derive(Debug, Default)]
pub struct Registry {
    limits: RegistryLimits,
    files: HashMap<FileKey, Entry>,
    pids: HashMap<u32, Vec<FileKey>>,
    tick: u64,
    stats: RegistryStats,
}

impl Registry {
    /// An empty registry. `max_files` is raised above `max_attached` if needed.
    pub fn new(mut limits: RegistryLimits) -> Registry {
        limits.max_files = limits.max_files.max(limits.max_attached + 1);
        Registry {
            limits,
            ..Registry::default()
        }
    }

    /// `pid` now uses exactly `files` (replacing what it used before: an exec'd image, or
    /// a later, fuller view from `/proc/PID/maps`). `analyze` runs only for files never seen
    /// (or forgotten). Returns the actions in order: detaches first, then attaches/skips.
    pub fn on_process<F>(&mut self, pid: u32, files: &[ProcessFile], mut analyze: F) -> Vec<Action>
    where
        F: FnMut(&ProcessFile) -> Result<FileAnalysis, AnalyzeError>,
    {
        if !self.pids.contains_key(&pid) && self.pids.len() >= self.limits.max_pids {
            self.stats.processes_ignored += 1;
            return Vec::new();
        }
        let mut keys: Vec<FileKey> = files.iter().map(|f| f.key).collect();
        keys.sort_unstable();
        keys.dedup();
        let old = self.pids.insert(pid, keys.clone()).unwrap_or_default();
        let mut actions = Vec::new();
        for key in old.iter().filter(|k| keys.binary_search(k).is_err()) {
            self.release(*key, &mut actions);
        }
        let mut done: Vec<FileKey> = Vec::with_capacity(keys.len());
        for file in files {
            if old.contains(&file.key) || done.contains(&file.key) {
                continue; // still used (already counted), or the same file under another path
            }
            done.push(file.key);
            if !self.files.contains_key(&file.key) {
                self.stats.analyses += 1;
                let outcome = analyze(file);
                self.insert(file, outcome, &mut actions);
            }
            self.tick += 1;
            let Some(entry) = self.files.get_mut(&file.key) else {
                continue;
            };
            entry.users += 1;
            entry.last_used = self.tick;
            if entry.users == 1 && matches!(entry.state, State::Attached(_)) {
                self.stats.lingering -= 1; // a lingering file in use again: nothing to do
            }
            if let State::Idle(analysis) = &entry.state {
                let analysis = analysis.clone();
                if self.stats.attached >= self.limits.max_attached {
                    self.detach_lingering(&mut actions); // make room if one lingers
                }
                let Some(entry) = self.files.get_mut(&file.key) else {
                    continue;
                };
                if self.stats.attached < self.limits.max_attached {
                    // Attach through the current user's path: the first one may be gone
                    // (`/proc/<exited pid>/root/...`).
                    entry.path = file.path.clone();
                    entry.state = State::Attached(analysis.clone());
                    self.stats.attached += 1;
                    actions.push(Action::Attach {
                        key: file.key,
                        path: entry.path.clone(),
                        analysis,
                    });
                } else {
                    entry.state = State::Failed;
                    actions.push(limit_skip(file.key, &entry.path));
                }
            }
        }
        self.refresh_stats();
        actions
    }

    /// `parent` forked `child`: the child uses the parent's files until it execs (then
    /// [`Registry::on_process`] replaces them). No action: the files are attached already.
    /// Nothing happens for an untracked parent, a tracked child, or at `max_pids`.
    pub fn on_fork(&mut self, parent: u32, child: u32) {
        if self.pids.contains_key(&child) || self.pids.len() >= self.limits.max_pids {
            return;
        }
        let Some(keys) = self.pids.get(&parent).cloned() else {
            return;
        };
        for k in &keys {
            if let Some(e) = self.files.get_mut(k) {
                e.users += 1;
            }
        }
        self.pids.insert(child, keys);
        self.refresh_stats();
    }

    /// `pid` exited: releases its files; a file whose last user this was is detached.
    pub fn on_exit(&mut self, pid: u32) -> Vec<Action> {
        let mut actions = Vec::new();
        for key in self.pids.remove(&pid).unwrap_or_default() {
            self.release(key, &mut actions);
        }
        self.refresh_stats();
        actions
    }

    /// Analysis of an attached or idle file.
    pub fn analysis(&self, key: &FileKey) -> Option<&Arc<FileAnalysis>> {
        match &self.files.get(key)?.state {
            State::Attached(a) | State::Idle(a) => Some(a),
            _ => None,
        }
    }

    /// Current counters.
    pub fn stats(&self) -> RegistryStats {
        self.stats
    }

    /// Records a fresh analysis as an idle/no-TLS/failed entry (attach happens in the
    /// caller's user accounting), evicting if full.
    fn insert(
        &mut self,
        file: &ProcessFile,
        outcome: Result<FileAnalysis, AnalyzeError>,
        actions: &mut Vec<Action>,
    ) {
        if self.files.len() >= self.limits.max_files {
            self.evict_one();
        }
        let state = match outcome {
            Ok(a) if a.is_tls() => State::Idle(Arc::new(a)),
            Ok(_) => State::NoTls,
            // Not found: the path went away with its process (`/proc/PID/root/...` of a
            // process that exited meanwhile): not remembered, analysed again when seen again.
            Err(e)
                if matches!(&e.reason, super::elf::AnalyzeReason::Image(
                    super::image::ImageError::Io(io)
                ) if io.kind() == std::io::ErrorKind::NotFound) =>
            {
                return;
            }
            Err(e) => {
                actions.push(Action::Skip {
                    key: file.key,
                    path: file.path.clone(),
                    label: e.reason.label(),
                    reason: e.reason.to_string(),
                });
                State::Failed
            }
        };
        self.files.insert(
            file.key,
            Entry {
                path: file.path.clone(),
                state,
                users: 0,
                last_used: self.tick,
            },
        );
    }

    fn release(&mut self, key: FileKey, actions: &mut Vec<Action>) {
        let Some(entry) = self.files.get_mut(&key) else {
            return;
        };
        let was = entry.users;
        entry.users = entry.users.saturating_sub(1);
        if was == 1 && matches!(entry.state, State::Attached(_)) {
            self.stats.lingering += 1;
            while self.stats.lingering > self.limits.max_lingering {
                if !self.detach_lingering(actions) {
                    break;
                }
            }
        }
    }

    /// Detaches the least recently used attached file without users; false if none.
    fn detach_lingering(&mut self, actions: &mut Vec<Action>) -> bool {
        let victim = self
            .files
            .iter()
            .filter(|(_, e)| e.users == 0 && matches!(e.state, State::Attached(_)))
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| *k);
        let Some(key) = victim else { return false };
        let Some(entry) = self.files.get_mut(&key) else {
            return false;
        };
        if let State::Attached(a) = &entry.state {
            entry.state = State::Idle(a.clone());
        }
        self.stats.attached -= 1;
        self.stats.lingering -= 1;
        self.stats.lingering_detached += 1;
        actions.push(Action::Detach { key });
        true
    }

    /// Forgets the least recently used entry that has no user.
    fn evict_one(&mut self) {
        let victim = self
            .files
            .iter()
            .filter(|(_, e)| e.users == 0 && !matches!(e.state, State::Attached(_)))
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            self.files.remove(&k);
            self.stats.files_evicted += 1;
        }
    }

    fn refresh_stats(&mut self) {
        self.stats.files = self.files.len();
        self.stats.pids = self.pids.len();
    }
}

fn limit_skip(key: FileKey, path: &std::path::Path) -> Action {
    Action::Skip {
        key,
        path: path.to_path_buf(),
        label: "attach_limit",
        reason: "too many files attached".into(),
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;

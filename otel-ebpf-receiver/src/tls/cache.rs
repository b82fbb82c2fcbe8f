//! On-disk cache of file analyses, so a binary seen before (even before a restart) is attached
//! without being analysed again.
//!
//! Stage: around [`super::elf::analyze_process_file`], called by the attacher for files the
//! in-memory registry does not know. Input: a [`ProcessFile`] (device + inode + path), the
//! directory `receiver.tls.state_dir`. Output: a [`FileAnalysis`] (hit) or nothing (miss);
//! [`CacheStats`].
//!
//! Key: device + inode + size + mtime (ns) of the file, plus its path inside the process's
//! mount namespace (`/proc/PID/root` stripped: the pid changes from run to run): an entry is used only when all of them equal the file's `stat` now, so a
//! rebuilt binary (new mtime or size, usually a new inode) is analysed again. One JSON file
//! per entry, `tls-cache/<major>-<minor>-<inode>.json`, written to a temporary name and
//! renamed (a reader never sees half a file); at most `max_entries` files (the oldest by
//! mtime removed when more). Errors (analysis failures) are not cached; "no TLS" is.
//!
//! Hostile or corrupt entries: read through [`super::fileio`] (regular file, at most
//! [`MAX_ENTRY_BYTES`], never mapped), parsed by `serde_json` into a closed record, and
//! trusted only to the extent of its key: a record whose key differs, whose format version is
//! unknown, with more probes than [`super::elf::MAX_PROBES_PER_FILE`], an offset beyond the
//! file's size or an unknown function, is ignored, counted ([`CacheStats::rejected`]) and
//! replaced by a fresh analysis. The directory is created with mode 0700.
//!
//! Why JSON and own record types: `serde_json` is already a dependency, the records are
//! small (< 4 KB), and the analysis types stay free of serialisation concerns (a new library
//! kind that the record does not know is simply not cached).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::elf::{
    FileAnalysis, GoSymbolSource, Linkage, MAX_PROBES_PER_FILE, OpenSslFlavour, Probe, ProbeKind,
    TlsFunction, TlsLibrary, TlsTarget,
};
use super::fileio::OpenedFile;
use super::godwarf::{GoTlsOffsets, OffsetSource};
use super::golang::{GoVersion, PclntabFormat};
use super::maps::FileKey;
use super::registry::ProcessFile;

/// Largest cache entry read (bytes).
pub const MAX_ENTRY_BYTES: u64 = 64 << 10;
/// Record format version; another version is ignored.
const FORMAT: u32 = 1;

/// Functions a record may name (by symbol).
const FUNCTIONS: [TlsFunction; 8] = [
    TlsFunction::SslRead,
    TlsFunction::SslWrite,
    TlsFunction::SslReadEx,
    TlsFunction::SslWriteEx,
    TlsFunction::GnutlsRecordRecv,
    TlsFunction::GnutlsRecordSend,
    TlsFunction::GoConnRead,
    TlsFunction::GoConnWrite,
];

/// Cache counters (self-metric `otel_ebpf_tls_analysis_cache_total{outcome}`).
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Entries used.
    pub hits: AtomicU64,
    /// No entry (or a stale one: the file changed).
    pub misses: AtomicU64,
    /// Entries ignored as corrupt, hostile or of another format.
    pub rejected: AtomicU64,
    /// Entries written.
    pub stored: AtomicU64,
    /// Writes that failed (full disk, read-only directory).
    pub write_errors: AtomicU64,
}

impl CacheStats {
    /// `(outcome label, count)` rows.
    pub fn rows(&self) -> [(&'static str, u64); 5] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("hit", g(&self.hits)),
            ("miss", g(&self.misses)),
            ("rejected", g(&self.rejected)),
            ("stored", g(&self.stored)),
            ("write_error", g(&self.write_errors)),
        ]
    }
}

/// The identity a record must match: key, size, mtime, path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    key: FileKey,
    size: u64,
    mtime_ns: i128,
    path: String,
}

impl Identity {
    fn of(file: &ProcessFile) -> Option<Identity> {
        let m = std::fs::metadata(&file.path).ok()?;
        let key = FileKey::from_metadata(&m);
        (key == file.key).then(|| Identity {
            key,
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            path: namespace_path(&file.path),
        })
    }
}

/// The path without its `/proc/PID/root` prefix (the pid changes from run to run; the path
/// inside the process's mount namespace does not).
fn namespace_path(path: &Path) -> String {
    let mut parts = path.components();
    let prefixed = parts.next() == Some(std::path::Component::RootDir)
        && parts.next().is_some_and(|c| c.as_os_str() == "proc")
        && parts
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_some_and(|c| c.as_os_str() == "root");
    if prefixed {
        Path::new("/").join(parts.as_path()).display().to_string()
    } else {
        path.display().to_string()
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    format: u32,
    major: u32,
    minor: u32,
    inode: u64,
    size: u64,
    mtime_ns: String,
    path: String,
    build_id: Option<String>,
    targets: Vec<RecTarget>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecTarget {
    library: RecLibrary,
    /// (symbol, kind 0 entry / 1 return / 2 RET instruction, file offset).
    probes: Vec<(String, u8, u64)>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum RecLibrary {
    OpenSsl {
        flavour: u8,
        version: Option<String>,
        shared: bool,
        has_get_fd: bool,
        has_get_rfd: bool,
    },
    GnuTls {
        version: Option<String>,
    },
    Go {
        version: String,
        offsets: [u64; 4],
        dwarf: bool,
        /// None: `.symtab`; else the pclntab format (116, 118, 120).
        pclntab: Option<u32>,
    },
}

/// The on-disk cache. See the module documentation.
#[derive(Debug)]
pub struct AnalysisCache {
    dir: PathBuf,
    max_entries: usize,
    stats: std::sync::Arc<CacheStats>,
    writes: u64,
}

impl AnalysisCache {
    /// The cache under `state_dir/tls-cache` (created, mode 0700). Errors: the directory
    /// cannot be created.
    pub fn open(
        state_dir: &Path,
        max_entries: usize,
        stats: std::sync::Arc<CacheStats>,
    ) -> std::io::Result<AnalysisCache> {
        let dir = state_dir.join("tls-cache");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(AnalysisCache {
            dir,
            max_entries: max_entries.max(1),
            stats,
            writes: 0,
        })
    }

    fn entry_path(&self, key: FileKey) -> PathBuf {
        self.dir
            .join(format!("{}-{}-{}.json", key.major, key.minor, key.inode))
    }

    /// The cached analysis of `file`, if a valid entry matches it now.
    pub fn lookup(&self, file: &ProcessFile) -> Option<FileAnalysis> {
        let Some(id) = Identity::of(file) else {
            CacheStats::bump(&self.stats.misses);
            return None;
        };
        let bytes = match OpenedFile::open(&self.entry_path(file.key), MAX_ENTRY_BYTES)
            .and_then(|f| f.read_all())
        {
            Ok(b) => b,
            Err(super::fileio::FileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                CacheStats::bump(&self.stats.misses);
                return None;
            }
            Err(_) => {
                CacheStats::bump(&self.stats.rejected);
                return None;
            }
        };
        match decode(&bytes, &id, &file.path) {
            Ok(Some(a)) => {
                CacheStats::bump(&self.stats.hits);
                Some(a)
            }
            Ok(None) => {
                CacheStats::bump(&self.stats.misses);
                None
            }
            Err(why) => {
                log::debug!(
                    "tls cache: entry for {} ignored: {why}",
                    file.path.display()
                );
                CacheStats::bump(&self.stats.rejected);
                None
            }
        }
    }

    /// Stores `analysis` of `file` (best effort: failures are counted).
    pub fn store(&mut self, file: &ProcessFile, analysis: &FileAnalysis) {
        let Some(id) = Identity::of(file) else {
            return;
        };
        let Some(text) = encode(&id, analysis) else {
            return; // a library kind the record does not know: not cached
        };
        let path = self.entry_path(file.key);
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}-{}",
            std::process::id(),
            file.key.inode,
            self.writes
        ));
        self.writes += 1;
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, &path));
        match written {
            Ok(()) => {
                CacheStats::bump(&self.stats.stored);
                if self.writes % 64 == 1 {
                    self.trim();
                }
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                log::debug!("tls cache: cannot write {}: {e}", path.display());
                CacheStats::bump(&self.stats.write_errors);
            }
        }
    }

    /// Removes the oldest entries beyond `max_entries` (and stale temporary files).
    pub fn trim(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = dir
            .filter_map(|e| {
                let e = e.ok()?;
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, e.path()))
            })
            .collect();
        if entries.len() <= self.max_entries {
            return;
        }
        entries.sort();
        let excess = entries.len() - self.max_entries;
        for (_, p) in entries.into_iter().take(excess) {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl CacheStats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

fn encode(id: &Identity, a: &FileAnalysis) -> Option<String> {
    let mut targets = Vec::new();
    for t in &a.targets {
        let library = match &t.library {
            TlsLibrary::OpenSsl {
                flavour,
                version,
                linkage,
                has_get_fd,
                has_get_rfd,
            } => RecLibrary::OpenSsl {
                flavour: match flavour {
                    OpenSslFlavour::OpenSsl1_0 => 10,
                    OpenSslFlavour::OpenSsl1_1 => 11,
                    OpenSslFlavour::OpenSsl3 => 30,
                    OpenSslFlavour::BoringSsl => 1,
                    OpenSslFlavour::Unknown => 0,
                },
                version: version.clone(),
                shared: *linkage == Linkage::Shared,
                has_get_fd: *has_get_fd,
                has_get_rfd: *has_get_rfd,
            },
            TlsLibrary::GnuTls { version } => RecLibrary::GnuTls {
                version: version.clone(),
            },
            TlsLibrary::Go {
                version,
                offsets,
                symbols,
            } => RecLibrary::Go {
                version: version.raw.clone(),
                offsets: [
                    offsets.conn_conn,
                    offsets.net_conn_fd,
                    offsets.netfd_pfd,
                    offsets.poll_fd_sysfd,
                ],
                dwarf: offsets.source == OffsetSource::Dwarf,
                pclntab: match symbols {
                    GoSymbolSource::Symtab => None,
                    GoSymbolSource::Pclntab(PclntabFormat::Go12) => Some(12),
                    GoSymbolSource::Pclntab(PclntabFormat::Go116) => Some(116),
                    GoSymbolSource::Pclntab(PclntabFormat::Go118) => Some(118),
                    GoSymbolSource::Pclntab(PclntabFormat::Go120) => Some(120),
                },
            },
            #[allow(unreachable_patterns)]
            _ => return None,
        };
        let mut probes = Vec::new();
        for p in &t.probes {
            if !FUNCTIONS.contains(&p.function) {
                return None;
            }
            let kind = match p.kind {
                ProbeKind::Entry => 0,
                ProbeKind::Return => 1,
                ProbeKind::ReturnInstruction => 2,
            };
            probes.push((p.function.symbol().to_string(), kind, p.offset));
        }
        targets.push(RecTarget { library, probes });
    }
    serde_json::to_string(&Record {
        format: FORMAT,
        major: id.key.major,
        minor: id.key.minor,
        inode: id.key.inode,
        size: id.size,
        mtime_ns: id.mtime_ns.to_string(),
        path: id.path.clone(),
        build_id: a.build_id.clone(),
        targets,
    })
    .ok()
}

/// `Ok(None)`: a well-formed record for another state of the file (stale); `Err`: a record
/// not to be trusted.
fn decode(bytes: &[u8], id: &Identity, path: &Path) -> Result<Option<FileAnalysis>, String> {
    let r: Record = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if r.format != FORMAT {
        return Err(format!("format {}", r.format));
    }
    if (r.major, r.minor, r.inode) != (id.key.major, id.key.minor, id.key.inode) {
        return Err("entry names another file".into());
    }
    if r.size != id.size || r.mtime_ns != id.mtime_ns.to_string() || r.path != id.path {
        return Ok(None);
    }
    let count: usize = r.targets.iter().map(|t| t.probes.len()).sum();
    if count > MAX_PROBES_PER_FILE {
        return Err(format!("{count} probes"));
    }
    if r.build_id.as_ref().is_some_and(|b| b.len() > 128) {
        return Err("build id too long".into());
    }
    let mut targets = Vec::new();
    for t in r.targets {
        let library = match t.library {
            RecLibrary::OpenSsl {
                flavour,
                version,
                shared,
                has_get_fd,
                has_get_rfd,
            } => TlsLibrary::OpenSsl {
                flavour: match flavour {
                    10 => OpenSslFlavour::OpenSsl1_0,
                    11 => OpenSslFlavour::OpenSsl1_1,
                    30 => OpenSslFlavour::OpenSsl3,
                    1 => OpenSslFlavour::BoringSsl,
                    0 => OpenSslFlavour::Unknown,
                    f => return Err(format!("flavour {f}")),
                },
                version,
                linkage: if shared {
                    Linkage::Shared
                } else {
                    Linkage::Static
                },
                has_get_fd,
                has_get_rfd,
            },
            RecLibrary::GnuTls { version } => TlsLibrary::GnuTls { version },
            RecLibrary::Go {
                version,
                offsets,
                dwarf,
                pclntab,
            } => TlsLibrary::Go {
                version: GoVersion::parse(&version)
                    .filter(GoVersion::has_register_abi)
                    .ok_or("Go version")?,
                offsets: GoTlsOffsets {
                    conn_conn: offsets[0],
                    net_conn_fd: offsets[1],
                    netfd_pfd: offsets[2],
                    poll_fd_sysfd: offsets[3],
                    source: if dwarf {
                        OffsetSource::Dwarf
                    } else {
                        OffsetSource::Table
                    },
                },
                symbols: match pclntab {
                    None => GoSymbolSource::Symtab,
                    Some(116) => GoSymbolSource::Pclntab(PclntabFormat::Go116),
                    Some(118) => GoSymbolSource::Pclntab(PclntabFormat::Go118),
                    Some(120) => GoSymbolSource::Pclntab(PclntabFormat::Go120),
                    Some(f) => return Err(format!("pclntab format {f}")),
                },
            },
        };
        let mut probes = Vec::new();
        for (symbol, kind, offset) in t.probes {
            let function = *FUNCTIONS
                .iter()
                .find(|f| f.symbol() == symbol)
                .ok_or("unknown function")?;
            let kind = match kind {
                0 => ProbeKind::Entry,
                1 => ProbeKind::Return,
                2 => ProbeKind::ReturnInstruction,
                k => return Err(format!("probe kind {k}")),
            };
            if offset >= id.size {
                return Err(format!("offset {offset:#x} beyond the file"));
            }
            probes.push(Probe {
                function,
                kind,
                offset,
            });
        }
        if probes.is_empty() {
            return Err("target without probes".into());
        }
        targets.push(TlsTarget { library, probes });
    }
    Ok(Some(FileAnalysis {
        path: path.to_path_buf(),
        build_id: r.build_id,
        targets,
    }))
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;

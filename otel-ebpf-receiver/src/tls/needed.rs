//! `DT_NEEDED` resolution for a process that has just exec'd (before `ld.so` mapped its
//! libraries), the way `ld.so` would, inside the process's own mount namespace.
//!
//! Stage: second source of candidates in [`super::discover`] (the first is `/proc/PID/maps`).
//! Inputs: the executable's path inside the process's namespace, the namespace root
//! (`/proc/PID/root`, or `/`), `LD_LIBRARY_PATH` from `/proc/PID/environ`, and the
//! namespace's `/etc/ld.so.cache`.
//! Output: [`Needed`]: every library reached, recursively (`curl` → `libcurl.so.4` →
//! `libssl.so.3`), with its path inside the namespace, the host path to open, its depth and
//! who needed it; plus names that resolved nowhere.
//! Search order per needed name (glibc `dl-load.c`): a name with `/` as is; `DT_RPATH` of
//! the requesting object then of the executable (only when the object has no `DT_RUNPATH`);
//! `LD_LIBRARY_PATH`; `DT_RUNPATH` of the requesting object; `ld.so.cache`
//! ([`super::ldcache`]); the default directories [`DEFAULT_DIRS`]. `$ORIGIN`, `$PLATFORM`
//! (`x86_64`) and `$LIB` (`lib/x86_64-linux-gnu`, then `lib64`) are expanded. A file found
//! must be an x86-64 ELF file, else the search goes on (as `ld.so` skips wrong-class files).
//! Symlinks are resolved inside the namespace root (absolute targets restart at the root);
//! files are opened through [`super::fileio`] (inside the root, no FIFO, device or file above
//! its size cap: such a library is skipped as if absent, such an `ld.so.cache` ignored).
//! Limits: [`MAX_DEPTH`] levels, [`MAX_LIBRARIES`] libraries; intermediate loaders' `DT_RPATH`
//! beyond the executable's, `LD_PRELOAD`, `/etc/ld.so.preload`, hwcaps subdirectories and
//! relative names with `/` are not followed.

use std::collections::{HashSet, VecDeque};
use std::path::{Component, Path, PathBuf};

use super::fileio::{MAX_IMAGE_BYTES, MAX_LDCACHE_BYTES, OpenedFile};
use super::image::{DynamicStrings, check_header};
use super::ldcache::LdCache;

/// Deepest `DT_NEEDED` chain followed (the executable's own entries are depth 1).
pub const MAX_DEPTH: u32 = 16;
/// Most libraries resolved for one executable.
pub const MAX_LIBRARIES: usize = 512;
/// Directories searched last, in order (Debian multiarch first, then the FHS ones).
pub const DEFAULT_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Where and how to resolve.
#[derive(Debug, Clone)]
pub struct ResolveContext {
    /// Root of the process's mount namespace as seen from here (`/proc/PID/root`, or `/`).
    pub root: PathBuf,
    /// `LD_LIBRARY_PATH` directories of the process.
    pub ld_library_path: Vec<String>,
    /// The namespace's `ld.so.cache`, when readable.
    pub cache: Option<LdCache>,
    /// Deepest level followed ([`MAX_DEPTH`] from [`ResolveContext::for_pid`]).
    pub max_depth: u32,
    /// Most libraries resolved ([`MAX_LIBRARIES`] from [`ResolveContext::for_pid`]).
    pub max_libraries: usize,
}

impl ResolveContext {
    /// Context of live process `pid`: `/proc/PID/root`, its environment's
    /// `LD_LIBRARY_PATH`, and its `/etc/ld.so.cache` (absent or unreadable → `None`).
    pub fn for_pid(pid: u32) -> std::io::Result<ResolveContext> {
        let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
        Ok(Self::for_root(
            PathBuf::from(format!("/proc/{pid}/root")),
            &environ,
        ))
    }

    /// Context of a namespace root (`/proc/PID/root`) and the process's environment
    /// (`/proc/PID/environ` bytes).
    pub fn for_root(root: PathBuf, environ: &[u8]) -> ResolveContext {
        let cache =
            OpenedFile::open_in_root(&root, Path::new("/etc/ld.so.cache"), MAX_LDCACHE_BYTES)
                .and_then(|f| f.read_all())
                .map_err(|e| log::debug!("{}/etc/ld.so.cache: {e}", root.display()))
                .ok()
                .and_then(|d| LdCache::parse(&d).ok());
        ResolveContext {
            root,
            ld_library_path: ld_library_path(environ),
            cache,
            max_depth: MAX_DEPTH,
            max_libraries: MAX_LIBRARIES,
        }
    }
}

/// `LD_LIBRARY_PATH` entries from `/proc/PID/environ` bytes (NUL-separated `K=V`). Both `:`
/// and `;` separate entries, as in `ld.so`; empty entries are dropped.
pub fn ld_library_path(environ: &[u8]) -> Vec<String> {
    environ
        .split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"LD_LIBRARY_PATH="))
        .map(|v| {
            String::from_utf8_lossy(v)
                .split([':', ';'])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A library reached through `DT_NEEDED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLibrary {
    /// The `DT_NEEDED` string (`libssl.so.3`).
    pub name: String,
    /// Path inside the process's namespace (`/lib/x86_64-linux-gnu/libssl.so.3`).
    pub path: PathBuf,
    /// Path to open from here (symlinks resolved under the namespace root).
    pub host_path: PathBuf,
    /// 1 for the executable's own entries.
    pub depth: u32,
    /// Path (inside the namespace) of the object that needed it.
    pub needed_by: PathBuf,
}

/// Result of a resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needed {
    /// Libraries found, breadth-first.
    pub libraries: Vec<ResolvedLibrary>,
    /// `(name, needed_by)` that resolved nowhere.
    pub unresolved: Vec<(String, PathBuf)>,
    /// Files that could not be read or parsed: `(path, reason)`.
    pub unreadable: Vec<(PathBuf, String)>,
    /// A bound ([`MAX_DEPTH`], [`MAX_LIBRARIES`]) stopped the walk.
    pub truncated: bool,
}

/// Search paths of one object.
struct Paths {
    rpath: Option<String>,
    runpath: Option<String>,
}

/// Resolves the `DT_NEEDED` closure of `exe` (a path inside the namespace).
/// Errors: the executable itself cannot be read or parsed (its message).
pub fn resolve_needed(exe: &Path, ctx: &ResolveContext) -> Result<Needed, String> {
    let host = resolve_in_root(&ctx.root, exe).ok_or("executable not found under root")?;
    let exe_dyn = read_dynamic(&host)?;
    let exe_paths = Paths {
        rpath: exe_dyn.rpath.clone(),
        runpath: exe_dyn.runpath.clone(),
    };
    let mut out = Needed::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<(PathBuf, Vec<String>, Paths, u32)> = VecDeque::new();
    queue.push_back((exe.to_path_buf(), exe_dyn.needed, exe_paths, 1));
    let exe_rpath = if exe_dyn.runpath.is_none() {
        exe_dyn.rpath
    } else {
        None
    };
    while let Some((obj, needed, paths, depth)) = queue.pop_front() {
        for name in needed {
            if !seen.insert(name.clone()) {
                continue;
            }
            if depth > ctx.max_depth || out.libraries.len() >= ctx.max_libraries {
                out.truncated = true;
                continue;
            }
            let origin = obj.parent().unwrap_or(Path::new("/"));
            let Some((path, host_path)) =
                search(&name, origin, &paths, exe_rpath.as_deref(), exe, ctx)
            else {
                out.unresolved.push((name, obj.clone()));
                continue;
            };
            match read_dynamic(&host_path) {
                Ok(d) => {
                    let p = Paths {
                        rpath: d.rpath,
                        runpath: d.runpath,
                    };
                    queue.push_back((path.clone(), d.needed, p, depth + 1));
                }
                Err(e) => out.unreadable.push((path.clone(), e)),
            }
            out.libraries.push(ResolvedLibrary {
                name,
                path,
                host_path,
                depth,
                needed_by: obj.clone(),
            });
        }
    }
    Ok(out)
}

/// Bounded reads of the headers and dynamic section only ([`super::dynread`]), not the
/// whole file: this runs for every exec's executable and libraries.
fn read_dynamic(host: &Path) -> Result<DynamicStrings, String> {
    let file = OpenedFile::open(host, MAX_IMAGE_BYTES).map_err(|e| e.to_string())?;
    super::dynread::read_dynamic_strings(&file).map_err(|e| e.to_string())
}

/// Finds `name` for an object in directory `origin`; returns (namespace path, host path).
fn search(
    name: &str,
    origin: &Path,
    paths: &Paths,
    exe_rpath: Option<&str>,
    exe: &Path,
    ctx: &ResolveContext,
) -> Option<(PathBuf, PathBuf)> {
    let try_file = |p: PathBuf| -> Option<(PathBuf, PathBuf)> {
        // Opened inside the root (no FIFO, device, huge file or link out of it), then the
        // host path for later stages.
        let file = OpenedFile::open_in_root(&ctx.root, &p, MAX_IMAGE_BYTES).ok()?;
        let mut head = [0u8; 64];
        let n = file.read_head(&mut head).ok()?;
        check_header(&head[..n]).ok()?;
        let host = resolve_in_root(&ctx.root, &p)?;
        Some((p, host))
    };
    if name.contains('/') {
        return name
            .starts_with('/')
            .then(|| try_file(PathBuf::from(name)))
            .flatten();
    }
    let in_dirs = |list: &str, origin: &Path| {
        list.split(':')
            .filter(|d| !d.is_empty())
            .flat_map(|d| expand(d, origin))
            .find_map(|d| try_file(d.join(name)))
    };
    let exe_origin = exe.parent().unwrap_or(Path::new("/"));
    if paths.runpath.is_none() {
        if let Some(found) = paths.rpath.as_deref().and_then(|r| in_dirs(r, origin)) {
            return Some(found);
        }
        if let Some(found) = exe_rpath.and_then(|r| in_dirs(r, exe_origin)) {
            return Some(found);
        }
    }
    if let Some(found) = ctx.ld_library_path.iter().find_map(|d| in_dirs(d, origin)) {
        return Some(found);
    }
    if let Some(found) = paths.runpath.as_deref().and_then(|r| in_dirs(r, origin)) {
        return Some(found);
    }
    if let Some(found) = ctx
        .cache
        .as_ref()
        .and_then(|c| c.lookup(name))
        .and_then(|p| try_file(p.clone()))
    {
        return Some(found);
    }
    DEFAULT_DIRS
        .iter()
        .find_map(|d| try_file(Path::new(d).join(name)))
}

/// Expands `$ORIGIN`, `$PLATFORM`, `$LIB` (and `${…}` forms) in one search directory.
/// Relative directories (relative to the process's cwd) are dropped.
pub fn expand(dir: &str, origin: &Path) -> Vec<PathBuf> {
    let origin = origin.to_string_lossy();
    let base = dir
        .replace("${ORIGIN}", &origin)
        .replace("$ORIGIN", &origin)
        .replace("${PLATFORM}", "x86_64")
        .replace("$PLATFORM", "x86_64");
    let dirs = if base.contains("$LIB") || base.contains("${LIB}") {
        ["lib/x86_64-linux-gnu", "lib64"]
            .iter()
            .map(|l| base.replace("${LIB}", l).replace("$LIB", l))
            .collect()
    } else {
        vec![base]
    };
    dirs.into_iter()
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// Resolves `path` (absolute, inside the namespace) under `root`, following symlinks
/// component by component so that absolute link targets restart at `root` (not at our own
/// `/`). `None` when a component is missing or more than 40 links are followed.
pub fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut inside = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            inside.pop();
            continue;
        }
        let candidate = inside.join(&part);
        let host = root.join(candidate.strip_prefix("/").ok()?);
        let meta = std::fs::symlink_metadata(&host).ok()?;
        if !meta.file_type().is_symlink() {
            inside = candidate;
            continue;
        }
        links += 1;
        if links > 40 {
            return None;
        }
        let target = std::fs::read_link(&host).ok()?;
        if target.is_absolute() {
            inside = PathBuf::from("/");
        }
        pending.extend(target.components().rev().filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        }));
    }
    Some(root.join(inside.strip_prefix("/").ok()?))
}

#[cfg(test)]
#[path = "needed_tests.rs"]
mod tests;

//! `/proc/PID/maps` → the files a process maps, and which of them may hold TLS functions.
//!
//! Stage: first step of [`super::discover`] for a process that has loaded its libraries.
//! Input: the text of `/proc/PID/maps` ([`parse_maps`] is a pure function over `&str`;
//! [`read_mapped_files`] is the thin reader).
//! Output: [`MappedFile`]s (device major:minor, inode, path as the process sees it, whether
//! any mapping is executable, whether the file was deleted), one per distinct (dev, inode);
//! then [`Candidate`]s: the executable, libraries named like a TLS library (`libssl.so*`,
//! `libgnutls.so*`), and every other executable file mapping (a library may link a TLS
//! library statically, like `libnode.so`).
//! Limits: anonymous, `[vdso]`-style and `memfd:` mappings are not files; deleted files are
//! kept with `deleted = true` so callers can report them (their path no longer resolves).
//! The dev/inode in maps is the one of the file backing the mapping; on overlayfs it can
//! differ from `stat` through the overlay, so [`super::discover`] keys files by `stat`.

use std::path::{Path, PathBuf};

use super::elf::tls_library_name;

/// A file identity across mount namespaces: device (major, minor) and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Inode number.
    pub inode: u64,
}

impl FileKey {
    /// From `stat` data (`st_dev` decoded the glibc way, `st_ino`).
    pub fn from_metadata(meta: &std::fs::Metadata) -> FileKey {
        use std::os::unix::fs::MetadataExt;
        let dev = meta.dev();
        FileKey {
            major: (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)) as u32,
            minor: ((dev & 0xff) | ((dev >> 12) & !0xff)) as u32,
            inode: meta.ino(),
        }
    }
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsLine<'a> {
    /// Start virtual address.
    pub start: u64,
    /// End virtual address (exclusive).
    pub end: u64,
    /// `r`, `w`, `x`, `p`/`s` flags as written (4 characters).
    pub perms: &'a str,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// Device and inode (inode 0 for anonymous mappings).
    pub key: FileKey,
    /// Path or pseudo-name (`[heap]`), possibly with a ` (deleted)` suffix; empty when
    /// anonymous.
    pub path: &'a str,
}

/// Parses one maps line; `None` when it is malformed.
pub fn parse_maps_line(line: &str) -> Option<MapsLine<'_>> {
    let mut rest = line;
    let mut field = || -> Option<&str> {
        let s = rest.trim_start_matches(' ');
        let end = s.find(' ').unwrap_or(s.len());
        let (f, r) = s.split_at(end);
        rest = r;
        (!f.is_empty()).then_some(f)
    };
    let range = field()?;
    let perms = field()?;
    let offset = field()?;
    let dev = field()?;
    let inode = field()?;
    let path = rest.trim_start_matches(' ');
    let (start, end) = range.split_once('-')?;
    let (major, minor) = dev.split_once(':')?;
    if perms.len() != 4 {
        return None;
    }
    Some(MapsLine {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        perms,
        offset: u64::from_str_radix(offset, 16).ok()?,
        key: FileKey {
            major: u32::from_str_radix(major, 16).ok()?,
            minor: u32::from_str_radix(minor, 16).ok()?,
            inode: inode.parse().ok()?,
        },
        path,
    })
}

/// A file mapped by a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedFile {
    /// Device and inode from maps.
    pub key: FileKey,
    /// Path inside the process's mount namespace (without ` (deleted)`).
    pub path: PathBuf,
    /// At least one mapping of it is executable.
    pub executable: bool,
    /// The path was unlinked after mapping (`(deleted)` suffix).
    pub deleted: bool,
}

const DELETED: &str = " (deleted)";

/// All files mapped in `maps` text, one per (dev, inode), in first-seen order. Malformed
/// lines are skipped.
pub fn parse_maps(maps: &str) -> Vec<MappedFile> {
    let mut out: Vec<MappedFile> = Vec::new();
    for line in maps.lines().filter_map(parse_maps_line) {
        if line.key.inode == 0 || !line.path.starts_with('/') || line.path.starts_with("/memfd:") {
            continue;
        }
        let executable = line.perms.as_bytes()[2] == b'x';
        if let Some(f) = out.iter_mut().find(|f| f.key == line.key) {
            f.executable |= executable;
            continue;
        }
        let (path, deleted) = match line.path.strip_suffix(DELETED) {
            Some(p) => (p, true),
            None => (line.path, false),
        };
        out.push(MappedFile {
            key: line.key,
            path: PathBuf::from(path),
            executable,
            deleted,
        });
    }
    out
}

/// Reads and parses `/proc/PID/maps`. Errors: the process is gone or not readable.
pub fn read_mapped_files(pid: u32) -> std::io::Result<Vec<MappedFile>> {
    Ok(parse_maps(&std::fs::read_to_string(format!(
        "/proc/{pid}/maps"
    ))?))
}

/// Why a file is worth analysing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidateReason {
    /// The process's executable (static OpenSSL in `node`, Go binaries).
    Executable,
    /// A library named `libssl.so*` / `libgnutls.so*`: it must hold TLS functions.
    TlsLibraryName,
    /// Another executable file mapping (or `DT_NEEDED` library): may link TLS statically.
    ExecutableMapping,
}

/// A file to analyse, as the process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Path inside the process's mount namespace.
    pub path: PathBuf,
    /// Why it was picked.
    pub reason: CandidateReason,
    /// The file was deleted after mapping (cannot be opened by path).
    pub deleted: bool,
}

/// Picks candidates among `files`: `exe` (the process's executable path as it appears in
/// maps) first, then executable mappings, TLS-named ones marked as such. Non-executable
/// mappings (data files, locale archives) are left out.
pub fn candidates(files: &[MappedFile], exe: Option<&Path>) -> Vec<Candidate> {
    let mut out = Vec::new();
    for f in files {
        let is_exe = exe == Some(f.path.as_path());
        let name = f.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let reason = if is_exe {
            CandidateReason::Executable
        } else if tls_library_name(name) {
            CandidateReason::TlsLibraryName
        } else if f.executable {
            CandidateReason::ExecutableMapping
        } else {
            continue;
        };
        out.push(Candidate {
            path: f.path.clone(),
            reason,
            deleted: f.deleted,
        });
    }
    out.sort_by_key(|c| c.reason != CandidateReason::Executable);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
55d0c0a00000-55d0c0a0c000 r--p 00000000 fe:00 247101                     /usr/bin/curl
55d0c0a0c000-55d0c0a23000 r-xp 0000c000 fe:00 247101                     /usr/bin/curl
55d0c1b5e000-55d0c1b7f000 rw-p 00000000 00:00 0                          [heap]
7f2a3c000000-7f2a3c021000 rw-p 00000000 00:00 0 
7f2a40a00000-7f2a40a1f000 r--p 00000000 fe:00 262211                     /usr/lib/x86_64-linux-gnu/libssl.so.3
7f2a40a1f000-7f2a40a7b000 r-xp 0001f000 fe:00 262211                     /usr/lib/x86_64-linux-gnu/libssl.so.3
7f2a40c00000-7f2a40c28000 r--p 00000000 fe:00 262100                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f2a40c28000-7f2a40d9d000 r-xp 00028000 fe:00 262100                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f2a41000000-7f2a41200000 r--p 00000000 fe:00 131000                     /usr/lib/locale/locale-archive
7f2a41400000-7f2a41401000 r-xp 00000000 103:02 99                        /opt/my app/lib with space.so
7f2a41600000-7f2a41601000 r-xp 00000000 00:1a 77                         /tmp/libgnutls.so.30 (deleted)
7f2a41800000-7f2a41801000 r-xp 00000000 00:01 5                          /memfd:jit (deleted)
7ffd5a1f0000-7ffd5a211000 rw-p 00000000 00:00 0                          [stack]
7ffd5a3e2000-7ffd5a3e4000 r-xp 00000000 00:00 0                          [vdso]
garbage line
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";

    #[test]
    fn parses_lines_with_hex_fields() {
        let l = parse_maps_line(
            "7f2a40a1f000-7f2a40a7b000 r-xp 0001f000 fe:00 262211   /usr/lib/libssl.so.3",
        )
        .unwrap();
        assert_eq!(
            (l.start, l.end, l.offset),
            (0x7f2a40a1f000, 0x7f2a40a7b000, 0x1f000)
        );
        assert_eq!(
            l.key,
            FileKey {
                major: 0xfe,
                minor: 0,
                inode: 262211
            }
        );
        assert_eq!((l.perms, l.path), ("r-xp", "/usr/lib/libssl.so.3"));
        let anon = parse_maps_line("7f2a3c000000-7f2a3c021000 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!((anon.key.inode, anon.path), (0, ""));
        assert_eq!(parse_maps_line("garbage line"), None);
        assert_eq!(parse_maps_line("1-2 rwxpp 0 0:0 1 /x"), None);
        assert_eq!(parse_maps_line(""), None);
    }

    #[test]
    fn merges_files_and_keeps_odd_paths() {
        let files = parse_maps(SAMPLE);
        let paths: Vec<_> = files.iter().map(|f| f.path.to_str().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "/usr/bin/curl",
                "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/locale/locale-archive",
                "/opt/my app/lib with space.so",
                "/tmp/libgnutls.so.30",
            ]
        );
        assert!(files[0].executable && files[1].executable && !files[3].executable);
        assert_eq!(
            files[4].key,
            FileKey {
                major: 0x103,
                minor: 2,
                inode: 99
            }
        );
        assert!(files[5].deleted && !files[1].deleted);
    }

    #[test]
    fn picks_executable_tls_names_and_code_mappings() {
        let files = parse_maps(SAMPLE);
        let c = candidates(&files, Some(Path::new("/usr/bin/curl")));
        let got: Vec<_> = c
            .iter()
            .map(|c| (c.path.to_str().unwrap(), c.reason))
            .collect();
        use CandidateReason::*;
        assert_eq!(
            got,
            [
                ("/usr/bin/curl", Executable),
                ("/usr/lib/x86_64-linux-gnu/libssl.so.3", TlsLibraryName),
                ("/usr/lib/x86_64-linux-gnu/libc.so.6", ExecutableMapping),
                ("/opt/my app/lib with space.so", ExecutableMapping),
                ("/tmp/libgnutls.so.30", TlsLibraryName),
            ]
        );
        assert!(c[4].deleted);
    }

    #[test]
    fn own_maps_and_stat_agree_on_keys() {
        let files = read_mapped_files(std::process::id()).unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let me = files
            .iter()
            .find(|f| f.path == exe)
            .expect("own executable mapped");
        assert!(me.executable);
        let meta = std::fs::metadata(&exe).unwrap();
        assert_eq!(me.key, FileKey::from_metadata(&meta));
    }
}

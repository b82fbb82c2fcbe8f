//! Opening and reading files that other processes control (executables, libraries,
//! `ld.so.cache` of any container) so that none of them can hang, kill or misdirect us.
//!
//! Stage: under every TLS discovery step that reads a file ([`super::image`],
//! [`super::needed`], [`super::elf`]) and under the uprobe attach (`probes::uprobes`).
//! Input: a root directory (`/proc/PID/root`, or `/`) and a path inside it, or a host path.
//! Output: an [`OpenedFile`] (descriptor, device + inode, size) and bounded reads of it.
//!
//! Defences, each against a file a local user can place where we look:
//! - opened with `O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC`: a FIFO or a device never
//!   blocks the open and never becomes our controlling terminal; then `fstat` on the
//!   descriptor: anything but a regular file (FIFO, `/dev/zero`, socket, directory) is
//!   [`FileError::NotRegular`];
//! - a size cap per use ([`MAX_IMAGE_BYTES`], [`MAX_LDCACHE_BYTES`]): a larger file (a 2 GiB
//!   sparse file) is [`FileError::TooLarge`] after one `fstat`, before any read;
//! - read, never mapped: the bytes are copied into a buffer of at most the cap, so a file
//!   truncated or grown while we read it is a counted error ([`FileError::Changed`]), never a
//!   SIGBUS (a truncated `mmap` kills the process). The cost: the file being analysed is held
//!   in memory during its analysis (freed after);
//! - resolved inside the process's root: `openat2(2)` with `RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS` on a descriptor of the root, so absolute symlinks and `..`
//!   restart at and stop at that root, and `/proc/…` magic links are refused. Kernels
//!   without `openat2` (before 5.6: `ENOSYS`) fall back to a component-by-component walk
//!   ([`super::needed::resolve_in_root`]) and an `O_NOFOLLOW` open of its result, which a
//!   concurrent rename can race (the device + inode check at attach time still holds);
//! - identity from the descriptor ([`OpenedFile::key`]), so what is analysed and what is
//!   attached to can be checked to be the same inode ([`OpenedFile::check_key`]), and the
//!   attach goes through [`OpenedFile::proc_path`] (`/proc/self/fd/N`), not a path that can
//!   be swapped between the check and the attach.
//!
//! Not defended: a file on a FUSE file system whose reads never return (the read blocks the
//! attacher thread, not the capture).
//!
//! Why own code: `std` has no `openat2`, and the `libc` crate gives the system call and its
//! structure; a wrapper crate would add a dependency for one call.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::maps::FileKey;

/// Largest ELF file analysed (bytes): `node` is ~120 MB, a large Go binary ~200 MB.
pub const MAX_IMAGE_BYTES: u64 = 512 << 20;
/// Largest `ld.so.cache` read (bytes): a full distribution's is ~100 KB.
pub const MAX_LDCACHE_BYTES: u64 = 16 << 20;

/// Why a file was not read. Carries no path: callers add it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Missing, permission denied, a symlink where none is allowed, I/O error.
    #[error("cannot open: {0}")]
    Io(#[from] std::io::Error),
    /// Not a regular file (FIFO, character or block device, socket, directory).
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    /// Larger than the cap for its use.
    #[error("{size} bytes, above the {cap}-byte cap")]
    TooLarge {
        /// `st_size` (bytes).
        size: u64,
        /// The cap (bytes).
        cap: u64,
    },
    /// Truncated, grown or replaced while read or between analysis and attach.
    #[error("file changed while in use: {0}")]
    Changed(&'static str),
}

/// An open regular file: descriptor, identity and size at open time.
#[derive(Debug)]
pub struct OpenedFile {
    file: File,
    key: FileKey,
    size: u64,
}

/// Open flags for files of other processes.
const FLAGS: libc::c_int = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

impl OpenedFile {
    /// Opens host path `path` (following symlinks: for `/proc/PID/exe`, `/proc/PID/map_files`
    /// and this host's own files) and checks it is a regular file of at most `cap` bytes.
    pub fn open(path: &Path, cap: u64) -> Result<OpenedFile, FileError> {
        let c = cstring(path.as_os_str().as_bytes())?;
        // SAFETY: `c` is a NUL-terminated path; the result is checked.
        let fd = unsafe { libc::open(c.as_ptr(), FLAGS) };
        Self::from_fd(fd, cap)
    }

    /// Opens `path` (absolute or relative, inside the namespace) under `root` without leaving
    /// it: see the module docs. Same checks as [`OpenedFile::open`].
    pub fn open_in_root(root: &Path, path: &Path, cap: u64) -> Result<OpenedFile, FileError> {
        match openat2_in_root(root, path) {
            Ok(fd) => Self::from_fd(fd, cap),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                let host = super::needed::resolve_in_root(root, path).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "not found under root")
                })?;
                let c = cstring(host.as_os_str().as_bytes())?;
                // SAFETY: as in `open`.
                let fd = unsafe { libc::open(c.as_ptr(), FLAGS | libc::O_NOFOLLOW) };
                Self::from_fd(fd, cap)
            }
            Err(e) => Err(FileError::Io(e)),
        }
    }

    fn from_fd(fd: libc::c_int, cap: u64) -> Result<OpenedFile, FileError> {
        if fd < 0 {
            return Err(FileError::Io(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a descriptor we just opened and own.
        let file = unsafe { File::from_raw_fd(fd) };
        let meta = file.metadata()?;
        let ft = meta.file_type();
        if !ft.is_file() {
            let kind = if ft.is_fifo() {
                "fifo"
            } else if ft.is_char_device() {
                "character device"
            } else if ft.is_block_device() {
                "block device"
            } else if ft.is_socket() {
                "socket"
            } else if ft.is_dir() {
                "directory"
            } else {
                "other"
            };
            return Err(FileError::NotRegular(kind));
        }
        if meta.size() > cap {
            return Err(FileError::TooLarge {
                size: meta.size(),
                cap,
            });
        }
        Ok(OpenedFile {
            key: FileKey::from_metadata(&meta),
            size: meta.size(),
            file,
        })
    }

    /// The descriptor (for positioned reads).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Device and inode of the open file.
    pub fn key(&self) -> FileKey {
        self.key
    }

    /// Size at open time (bytes).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// [`FileError::Changed`] unless the open file is `expected` (device + inode).
    pub fn check_key(&self, expected: FileKey) -> Result<(), FileError> {
        if self.key == expected {
            Ok(())
        } else {
            Err(FileError::Changed("another file is now at that path"))
        }
    }

    /// A path that names this open file and nothing else, for APIs that take a path (the
    /// kernel resolves it to the descriptor's file): `/proc/self/fd/N`. Valid while `self`
    /// lives.
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// The whole file, read (not mapped) into memory: exactly the size seen at open time.
    /// [`FileError::Changed`] when the file is now shorter or longer.
    pub fn read_all(&self) -> Result<Vec<u8>, FileError> {
        let want = usize::try_from(self.size).map_err(|_| FileError::TooLarge {
            size: self.size,
            cap: usize::MAX as u64,
        })?;
        let mut buf = Vec::with_capacity(want);
        // One byte more than expected tells a grown file from an exact one.
        (&self.file).take(self.size + 1).read_to_end(&mut buf)?;
        match buf.len().cmp(&want) {
            std::cmp::Ordering::Equal => Ok(buf),
            std::cmp::Ordering::Less => Err(FileError::Changed("truncated while read")),
            std::cmp::Ordering::Greater => Err(FileError::Changed("grew while read")),
        }
    }

    /// Exactly `len` bytes at file offset `off` (bounded reads of headers and tables, no
    /// mapping). [`FileError::Changed`] when the file ends before (truncated since opened, or
    /// an offset beyond the end), [`FileError::TooLarge`] for `len` above `cap`.
    pub fn read_exact_at(&self, off: u64, len: usize, cap: usize) -> Result<Vec<u8>, FileError> {
        use std::os::unix::fs::FileExt;
        if len > cap {
            return Err(FileError::TooLarge {
                size: len as u64,
                cap: cap as u64,
            });
        }
        if off
            .checked_add(len as u64)
            .is_none_or(|end| end > self.size)
        {
            return Err(FileError::Changed("range beyond the end of the file"));
        }
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, off).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                FileError::Changed("truncated while read")
            } else {
                FileError::Io(e)
            }
        })?;
        Ok(buf)
    }

    /// Up to `buf.len()` bytes from the start (for header checks).
    pub fn read_head(&self, buf: &mut [u8]) -> Result<usize, FileError> {
        use std::os::unix::fs::FileExt;
        Ok(self.file.read_at(buf, 0)?)
    }
}

fn cstring(bytes: &[u8]) -> Result<std::ffi::CString, FileError> {
    std::ffi::CString::new(bytes).map_err(|_| {
        FileError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "path with a NUL byte",
        ))
    })
}

/// `openat2(root_fd, path, {FLAGS, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS})`; the raw
/// descriptor, or the error (`ENOSYS` on kernels before 5.6).
fn openat2_in_root(root: &Path, path: &Path) -> std::io::Result<libc::c_int> {
    let root_c = std::ffi::CString::new(root.as_os_str().as_bytes())?;
    // The root itself may be a magic link (`/proc/PID/root`): open it as a path, following.
    // SAFETY: NUL-terminated path; the result is checked.
    let root_fd = unsafe {
        libc::open(
            root_c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if root_fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: we own `root_fd`; closed when `_root` drops.
    let _root = unsafe { std::os::fd::OwnedFd::from_raw_fd(root_fd) };
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = std::ffi::CString::new(rel.as_os_str().as_bytes())?;
    // SAFETY: zeroed is a valid `open_how` (all integers).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = FLAGS as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid descriptor, NUL-terminated path, `how` of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root_fd,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd as libc::c_int)
}

#[cfg(test)]
#[path = "fileio_tests.rs"]
mod tests;

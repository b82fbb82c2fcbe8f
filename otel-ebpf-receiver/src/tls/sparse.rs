//! A sparse in-memory copy of an ELF file: only the parts TLS analysis reads, fetched with
//! bounded `pread`s, the rest left as zeros.
//!
//! Stage: first step of [`super::elf::analyze_process_file`] (the attacher's path: the first
//! analysis of a never-seen binary is on the exec → attached critical path).
//! Input: an [`OpenedFile`] ([`super::fileio`]: regular file, size-capped, never mapped).
//! Output: a [`SparseFile`] the size of the file in which the ELF header, program and section
//! headers, `.shstrtab` and the sections named in [`SECTIONS`] are the file's bytes (and, on
//! request, any other range: a Go function body for its RET scan); everything else reads as
//! zeros. The existing parsers ([`super::image::Image`]) run on it unchanged.
//! Why: reading `node` (94 MB) whole took 205 ms here and a 7 MB Go binary 15–24 ms; the
//! analysis itself needs < 1 MB of them. The buffer is allocated zeroed (`calloc`: anonymous
//! pages that are never touched cost no memory), so its resident size is what was read.
//! Limits: `.rodata` is read only up to [`MAX_RODATA_BYTES`] (version strings; `node`'s is
//! 47 MB: its OpenSSL version then comes from `OpenSSL_version_num`'s code); DWARF is never
//! read (the Go struct offsets come from the table, see [`super::godwarf`]); a section
//! header table of more than [`MAX_SECTIONS`] entries is malformed.

use super::fileio::{FileError, OpenedFile};
use super::image::{ImageError, check_header};

/// Sections read whole (when present, not `SHT_NOBITS`).
pub const SECTIONS: [&str; 12] = [
    ".dynsym",
    ".dynstr",
    ".dynamic",
    ".symtab",
    ".strtab",
    ".gopclntab",
    ".data.rel.ro.gopclntab",
    ".go.buildinfo",
    ".note.gnu.build-id",
    ".note.go.buildid",
    ".rodata",
    ".noptrdata",
];
/// Largest `.rodata` read (bytes).
pub const MAX_RODATA_BYTES: u64 = 8 << 20;
/// Most section headers.
pub const MAX_SECTIONS: usize = 65_535;

const SHT_NOBITS: u32 = 8;

/// See the module documentation.
pub struct SparseFile {
    data: Vec<u8>,
    /// Bytes read from the file so far.
    read: u64,
    /// Sections of [`LAZY_SECTIONS`] not read yet: (name, offset, size).
    lazy: Vec<(&'static str, u64, u64)>,
}

/// Sections of [`SECTIONS`] read only on request ([`SparseFile::fill_lazy`]): `.symtab` and
/// its strings are 10 MB in `node`, which exports its TLS functions in `.dynsym`.
pub const LAZY_SECTIONS: [&str; 2] = [".symtab", ".strtab"];

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn malformed(what: &str) -> ImageError {
    ImageError::Malformed(what.to_string())
}

impl SparseFile {
    /// Reads the headers and the [`SECTIONS`] of `file`. Errors: [`ImageError::NotElf`],
    /// [`ImageError::UnsupportedArch`], [`ImageError::Malformed`] (tables beyond the file),
    /// [`ImageError::File`] (changed while read).
    pub fn load(file: &OpenedFile) -> Result<SparseFile, ImageError> {
        let size = usize::try_from(file.size()).map_err(|_| malformed("size"))?;
        if size == 0 {
            return Err(ImageError::NotElf);
        }
        let mut s = SparseFile {
            data: vec![0u8; size],
            read: 0,
            lazy: Vec::new(),
        };
        let mut head = [0u8; 64];
        let n = file.read_head(&mut head).map_err(ImageError::from)?;
        check_header(&head[..n])?;
        if n < 64 {
            return Err(malformed("truncated ELF header"));
        }
        s.fill(file, 0, 64)?;
        let (phoff, phentsize, phnum) = (
            u64_at(&head, 0x20),
            u64::from(u16_at(&head, 0x36)),
            u64::from(u16_at(&head, 0x38)),
        );
        s.fill(file, phoff, phentsize * phnum)?;
        let (shoff, shentsize, shnum, shstrndx) = (
            u64_at(&head, 0x28),
            u16_at(&head, 0x3a) as usize,
            u16_at(&head, 0x3c) as usize,
            u16_at(&head, 0x3e) as usize,
        );
        if shnum == 0 || shoff == 0 {
            return Ok(s); // no section headers: the parsers find nothing, as on the full file
        }
        if shentsize != 64 || shnum > MAX_SECTIONS || shstrndx >= shnum {
            return Err(malformed("section header table"));
        }
        s.fill(file, shoff, (shentsize * shnum) as u64)?;
        let shdr = |i: usize| -> &[u8] {
            let at = shoff as usize + i * 64;
            &s.data[at..at + 64]
        };
        let section = |h: &[u8]| (u32_at(h, 4), u64_at(h, 24), u64_at(h, 32));
        let (_, str_off, str_size) = section(shdr(shstrndx));
        let mut wanted = Vec::new();
        let mut lazy = Vec::new();
        {
            let names = file
                .read_exact_at(str_off, str_size as usize, 1 << 20)
                .map_err(|_| malformed(".shstrtab"))?;
            for i in 0..shnum {
                let h = shdr(i);
                let name_at = u32_at(h, 0) as usize;
                let Some(name) = names
                    .get(name_at..)
                    .and_then(|r| r.split(|&b| b == 0).next())
                else {
                    continue;
                };
                let (ty, off, size) = section(h);
                if ty == SHT_NOBITS || !SECTIONS.iter().any(|w| w.as_bytes() == name) {
                    continue;
                }
                if name == b".rodata" && size > MAX_RODATA_BYTES {
                    continue;
                }
                if let Some(l) = LAZY_SECTIONS.iter().find(|l| l.as_bytes() == name) {
                    lazy.push((*l, off, size));
                    continue;
                }
                wanted.push((off, size));
            }
            wanted.push((str_off, str_size));
        }
        for (off, size) in wanted {
            s.fill(file, off, size)?;
        }
        s.lazy = lazy;
        Ok(s)
    }

    /// Reads the [`LAZY_SECTIONS`] not read yet.
    pub fn fill_lazy(&mut self, file: &OpenedFile) -> Result<(), ImageError> {
        for (_, off, size) in std::mem::take(&mut self.lazy) {
            self.fill(file, off, size)?;
        }
        Ok(())
    }

    /// Reads `len` bytes at file offset `off` into the copy. Errors: a range beyond the file
    /// ([`ImageError::Malformed`]), the file changed ([`ImageError::File`]).
    pub fn fill(&mut self, file: &OpenedFile, off: u64, len: u64) -> Result<(), ImageError> {
        use std::os::unix::fs::FileExt;
        let end = off
            .checked_add(len)
            .filter(|&e| e <= self.data.len() as u64)
            .ok_or_else(|| malformed("range beyond the end of the file"))?;
        let buf = &mut self.data[off as usize..end as usize];
        file.file()
            .read_exact_at(buf, off)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    ImageError::File(FileError::Changed("truncated while read"))
                }
                _ => ImageError::Io(e),
            })?;
        self.read += len;
        Ok(())
    }

    /// The copy (file-sized).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Bytes read from the file.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::elf::{TlsLibrary, analyze_file, analyze_process_file};
    use crate::tls::godwarf::GoTlsOffsets;
    use crate::tls::maps::FileKey;
    use crate::tls::registry::ProcessFile;
    use std::path::Path;

    /// The attacher's sparse analysis finds what the whole-file analysis finds (Go struct
    /// offsets from the table instead of DWARF) and reads a fraction of the file.
    #[test]
    fn same_targets_as_the_whole_file() {
        for p in [
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/usr/lib/x86_64-linux-gnu/libgnutls.so.30",
            "/usr/bin/curl",
            "/usr/bin/node",
            "/tmp/oer-tls/go/gotls",
        ] {
            let path = Path::new(p);
            if !path.exists() {
                continue;
            }
            let file = ProcessFile {
                key: FileKey::from_metadata(&std::fs::metadata(path).unwrap()),
                path: path.into(),
            };
            let mut whole = analyze_file(path).unwrap();
            let sparse = analyze_process_file(&file).unwrap();
            for t in &mut whole.targets {
                if let TlsLibrary::Go { offsets, .. } = &mut t.library {
                    *offsets = GoTlsOffsets::TABLE;
                }
            }
            assert_eq!(sparse, whole, "{p}");
            let f = OpenedFile::open(path, u64::MAX).unwrap();
            let s = SparseFile::load(&f).unwrap();
            assert!(s.bytes_read() <= f.size(), "{p}");
        }
    }

    #[test]
    fn truncated_and_garbage_files_are_errors_not_panics() {
        let data = std::fs::read("/usr/lib/x86_64-linux-gnu/libssl.so.3").unwrap();
        let dir = std::env::temp_dir().join(format!("tls-sparse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let tail = data.len() - 4096;
        let cuts = [0, 1, 63, 64, 100, 4096, tail, data.len() - 1];
        for cut in cuts {
            std::fs::write(&path, &data[..cut]).unwrap();
            let f = OpenedFile::open(&path, u64::MAX).unwrap();
            let _ = SparseFile::load(&f);
        }
        let shoff = u64::from_le_bytes(data[0x28..0x30].try_into().unwrap()) as usize;
        for at in (0..64).chain(shoff..shoff + 512) {
            let mut d = data.clone();
            d[at] ^= 0xff;
            std::fs::write(&path, &d).unwrap();
            let f = OpenedFile::open(&path, u64::MAX).unwrap();
            if let Ok(s) = SparseFile::load(&f) {
                let _ = crate::tls::image::Image::parse(s.bytes());
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

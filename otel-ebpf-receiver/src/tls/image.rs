//! ELF image access shared by the TLS discovery stages (no TLS knowledge here).
//!
//! Stage: first step of file analysis ([`super::elf`], [`super::needed`]).
//! Input: a file path or an open file ([`super::fileio`]: read into memory under a size cap,
//! never mapped), or a byte slice.
//! Output: an [`Image`]: the parsed 64-bit little-endian ELF with helpers to turn a virtual
//! address into a file offset (through the `PT_LOAD` segment containing it), look symbols up
//! (`.dynsym` first, then `.symtab`), read sections and the dynamic section's strings.
//! Limits: only ELF64 little-endian x86-64 files are accepted ([`ImageError::UnsupportedArch`]
//! names anything else, e.g. `aarch64`); every read is bounds-checked, so malformed input gives
//! an error, never a panic. Files are read, not mapped, so one truncated by another process
//! while we analyse it cannot raise SIGBUS. A compressed section that declares more than
//! [`MAX_SECTION_BYTES`] is not inflated (DWARF decompression bombs).

use std::path::Path;

use object::elf::{FileHeader64, PT_LOAD};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{CompressionFormat, Endianness, Object, ObjectSection, ObjectSymbol, SymbolKind};

use super::fileio::{FileError, MAX_IMAGE_BYTES, OpenedFile};

/// Largest inflated size of a compressed section (bytes): DWARF sections of large Go binaries
/// are tens of MB.
pub const MAX_SECTION_BYTES: u64 = 128 << 20;

/// Why bytes are not an analysable ELF image. Carries no path: callers add it.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be opened, stat'ed or read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// Not a regular file, too large, or changed while read ([`super::fileio`]).
    #[error(transparent)]
    File(FileError),
    /// The first bytes are not `\x7fELF` (script, data file, empty file).
    #[error("not an ELF file")]
    NotElf,
    /// An ELF file for another machine or class (`aarch64`, `i386`, big-endian, ...).
    #[error("unsupported architecture {0} (only x86_64 is supported)")]
    UnsupportedArch(String),
    /// The ELF structures are inconsistent (truncated file, bad offsets).
    #[error("malformed ELF: {0}")]
    Malformed(String),
}

/// Owned bytes of a file, read into memory (at most [`MAX_IMAGE_BYTES`]).
pub struct FileBytes {
    data: Vec<u8>,
}

impl FileBytes {
    /// Opens and reads `path` ([`OpenedFile::open`]: no blocking open, regular files only, at
    /// most [`MAX_IMAGE_BYTES`]). Errors: [`ImageError::File`] (not regular, too large,
    /// changed while read), [`ImageError::Io`] (missing, permission), [`ImageError::NotElf`]
    /// for an empty file.
    pub fn open(path: &Path) -> Result<FileBytes, ImageError> {
        Self::read(&OpenedFile::open(path, MAX_IMAGE_BYTES).map_err(ImageError::from)?)
    }

    /// Reads an open file whole.
    pub fn read(file: &OpenedFile) -> Result<FileBytes, ImageError> {
        if file.size() == 0 {
            return Err(ImageError::NotElf);
        }
        Ok(FileBytes {
            data: file.read_all().map_err(ImageError::from)?,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

impl From<FileError> for ImageError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Io(e) => ImageError::Io(e),
            other => ImageError::File(other),
        }
    }
}

/// A symbol found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolInfo {
    /// Virtual address (`st_value`).
    pub address: u64,
    /// Size in bytes (`st_size`, 0 when the producer did not record it).
    pub size: u64,
    /// True when found in `.dynsym` (exported), false for `.symtab`.
    pub dynamic: bool,
}

/// Which machine an ELF header names: `Ok(())` for x86-64, else the reason.
/// Looks only at `e_ident` and `e_machine`, so it works on a 64-byte prefix.
pub fn check_header(data: &[u8]) -> Result<(), ImageError> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(ImageError::NotElf);
    }
    if data.len() < 20 {
        return Err(ImageError::Malformed("truncated ELF header".into()));
    }
    let class = data[4];
    let little = data[5] == 1;
    let machine = if little {
        u16::from_le_bytes([data[18], data[19]])
    } else {
        u16::from_be_bytes([data[18], data[19]])
    };
    let name = match machine {
        object::elf::EM_X86_64 => "x86_64",
        object::elf::EM_AARCH64 => "aarch64",
        object::elf::EM_386 => "i386",
        object::elf::EM_ARM => "arm",
        object::elf::EM_RISCV => "riscv",
        object::elf::EM_PPC64 => "ppc64",
        object::elf::EM_S390 => "s390",
        _ => "unknown",
    };
    if machine != object::elf::EM_X86_64 {
        return Err(ImageError::UnsupportedArch(format!(
            "{name} (e_machine {machine})"
        )));
    }
    if class != object::elf::ELFCLASS64 || !little {
        return Err(ImageError::UnsupportedArch(format!(
            "x86_64 with ELF class {class}, data encoding {}",
            data[5]
        )));
    }
    Ok(())
}

/// A parsed x86-64 ELF image borrowing its bytes.
pub struct Image<'a> {
    data: &'a [u8],
    elf: ElfFile64<'a, Endianness>,
}

impl<'a> Image<'a> {
    /// Parses `data`. Errors: [`ImageError::NotElf`], [`ImageError::UnsupportedArch`],
    /// [`ImageError::Malformed`].
    pub fn parse(data: &'a [u8]) -> Result<Image<'a>, ImageError> {
        check_header(data)?;
        let elf = ElfFile64::<Endianness>::parse(data)
            .map_err(|e| ImageError::Malformed(e.to_string()))?;
        Ok(Image { data, elf })
    }

    /// The whole file's bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The `object` view, for callers that need more.
    pub fn object(&self) -> &ElfFile64<'a, Endianness> {
        &self.elf
    }

    /// File offset of virtual address `addr`: `addr - p_vaddr + p_offset` of the `PT_LOAD`
    /// segment whose file-backed range `[p_vaddr, p_vaddr + p_filesz)` contains it.
    /// `None` when no segment does (address in `.bss` or outside the image).
    pub fn vaddr_to_offset(&self, addr: u64) -> Option<u64> {
        let endian = self.elf.endian();
        self.elf.elf_program_headers().iter().find_map(|ph| {
            if ph.p_type(endian) != PT_LOAD {
                return None;
            }
            let vaddr = ph.p_vaddr(endian);
            let filesz = ph.p_filesz(endian);
            if addr >= vaddr && addr - vaddr < filesz {
                ph.p_offset(endian).checked_add(addr - vaddr)
            } else {
                None
            }
        })
    }

    /// `len` bytes at virtual address `addr`, when they are all file-backed.
    pub fn bytes_at_vaddr(&self, addr: u64, len: u64) -> Option<&'a [u8]> {
        let start = self.vaddr_to_offset(addr)?;
        // The last byte must lie in the same segment as the first.
        if len > 0 {
            let last = self.vaddr_to_offset(addr.checked_add(len - 1)?)?;
            if last != start.checked_add(len - 1)? {
                return None;
            }
        }
        let start = usize::try_from(start).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.data.get(start..end)
    }

    /// Looks up each name among defined function (or untyped) symbols: `.dynsym` first, then
    /// `.symtab` for the names still missing. Returns one entry per name, in order.
    pub fn find_symbols(&self, names: &[&str]) -> Vec<Option<SymbolInfo>> {
        let mut found = vec![None; names.len()];
        self.find_symbols_in(names, &mut found, &[true, false]);
        found
    }

    /// Fills the `None` slots of `found` (one per name) from the symbol tables listed in
    /// `tables` (`true` = `.dynsym`, `false` = `.symtab`), in that order.
    pub fn find_symbols_in(
        &self,
        names: &[&str],
        found: &mut [Option<SymbolInfo>],
        tables: &[bool],
    ) {
        // Cheap pre-filter on the first byte and length (`node` exports 20k symbols).
        let mut first = [false; 256];
        let (mut min, mut max) = (usize::MAX, 0);
        for n in names {
            if let Some(&b) = n.as_bytes().first() {
                first[usize::from(b)] = true;
            }
            min = min.min(n.len());
            max = max.max(n.len());
        }
        for &dynamic in tables {
            if found.iter().all(Option::is_some) {
                break;
            }
            let iter = if dynamic {
                self.elf.dynamic_symbols()
            } else {
                self.elf.symbols()
            };
            for sym in iter {
                let Ok(name) = sym.name_bytes() else { continue };
                if name.len() < min
                    || name.len() > max
                    || !name.first().is_some_and(|&b| first[usize::from(b)])
                {
                    continue;
                }
                if sym.is_undefined()
                    || sym.address() == 0
                    || !matches!(sym.kind(), SymbolKind::Text | SymbolKind::Unknown)
                {
                    continue;
                }
                if let Some(i) = names.iter().position(|n| n.as_bytes() == name)
                    && found[i].is_none()
                {
                    found[i] = Some(SymbolInfo {
                        address: sym.address(),
                        size: sym.size(),
                        dynamic,
                    });
                }
            }
        }
    }

    /// Whether the file has a non-empty `.symtab`.
    pub fn has_symtab(&self) -> bool {
        self.elf.symbols().next().is_some()
    }

    /// Uncompressed data of the section named `name` (`None` if absent or unreadable;
    /// compressed `.debug_*`/`.zdebug_*` sections are inflated when they declare at most
    /// [`MAX_SECTION_BYTES`], else `None`).
    pub fn section_data(&self, name: &str) -> Option<std::borrow::Cow<'a, [u8]>> {
        let section = self.elf.section_by_name(name)?;
        let compressed = section.compressed_data().ok()?;
        if compressed.format != CompressionFormat::None
            && compressed.uncompressed_size > MAX_SECTION_BYTES
        {
            log::debug!(
                "section {name}: declares {} bytes inflated, above the {MAX_SECTION_BYTES}-byte cap",
                compressed.uncompressed_size
            );
            return None;
        }
        compressed.decompress().ok()
    }

    /// Whether a section named `name` exists.
    pub fn object_has_section(&self, name: &str) -> bool {
        self.elf.section_by_name(name).is_some()
    }

    /// Virtual address of section `name`.
    pub fn section_address(&self, name: &str) -> Option<u64> {
        Some(self.elf.section_by_name(name)?.address())
    }

    /// Virtual address and raw file bytes of section `name`, when it occupies file space.
    pub fn section_raw(&self, name: &str) -> Option<(u64, &'a [u8])> {
        let section = self.elf.section_by_name(name)?;
        let (off, size) = section.file_range()?;
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        Some((section.address(), self.data.get(start..end)?))
    }

    /// File offset and size (bytes) of section `name`; `None` when absent or `SHT_NOBITS`.
    pub fn section_file_range(&self, name: &str) -> Option<(u64, u64)> {
        self.elf.section_by_name(name)?.file_range()
    }

    /// The GNU build-id note, lower-case hex.
    pub fn build_id(&self) -> Option<String> {
        let id = self.elf.build_id().ok()??;
        Some(id.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// String values of the dynamic section: `(DT_SONAME, DT_NEEDED..., DT_RPATH, DT_RUNPATH)`.
    /// Empty for a static executable. Errors: [`ImageError::Malformed`].
    pub fn dynamic_strings(&self) -> Result<DynamicStrings, ImageError> {
        let endian = self.elf.endian();
        let table = self
            .elf
            .elf_section_table()
            .dynamic_table(endian, self.data)
            .map_err(|e| ImageError::Malformed(e.to_string()))?;
        let mut out = DynamicStrings::default();
        for d in table.iter() {
            let slot = match d.tag {
                object::elf::DT_SONAME => 0,
                object::elf::DT_NEEDED => 1,
                object::elf::DT_RPATH => 2,
                object::elf::DT_RUNPATH => 3,
                _ => continue,
            };
            let s = table
                .string(d)
                .map_err(|e| ImageError::Malformed(e.to_string()))?;
            let s = String::from_utf8_lossy(s).into_owned();
            match slot {
                0 => out.soname = Some(s),
                1 => out.needed.push(s),
                2 => out.rpath = Some(s),
                _ => out.runpath = Some(s),
            }
        }
        Ok(out)
    }

    /// `e_type == ET_DYN` (shared object or PIE).
    pub fn is_dyn(&self) -> bool {
        let header: &FileHeader64<Endianness> = self.elf.elf_header();
        header.e_type(self.elf.endian()) == object::elf::ET_DYN
    }
}

/// Strings of an image's dynamic section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicStrings {
    /// `DT_SONAME`, e.g. `libssl.so.3`.
    pub soname: Option<String>,
    /// `DT_NEEDED` names in file order.
    pub needed: Vec<String>,
    /// `DT_RPATH` (colon-separated, may contain `$ORIGIN`).
    pub rpath: Option<String>,
    /// `DT_RUNPATH` (colon-separated, may contain `$ORIGIN`).
    pub runpath: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

    #[test]
    fn header_check_names_machine() {
        assert!(matches!(
            check_header(b"#!/bin/sh\n"),
            Err(ImageError::NotElf)
        ));
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18..20].copy_from_slice(&object::elf::EM_AARCH64.to_le_bytes());
        let err = check_header(&h).unwrap_err();
        assert!(err.to_string().contains("aarch64"), "{err}");
        h[18..20].copy_from_slice(&object::elf::EM_X86_64.to_le_bytes());
        assert!(check_header(&h).is_ok());
        h[4] = 1;
        assert!(matches!(
            check_header(&h),
            Err(ImageError::UnsupportedArch(_))
        ));
    }

    #[test]
    fn vaddr_to_offset_follows_load_segments() {
        let bytes =
            FileBytes::open(Path::new(LIBSSL)).expect("libssl3 installed (scripts/setup.sh)");
        let img = Image::parse(bytes.bytes()).unwrap();
        let endian = img.object().endian();
        let mut checked = 0;
        for ph in img.object().elf_program_headers() {
            if ph.p_type(endian) != PT_LOAD || ph.p_filesz(endian) == 0 {
                continue;
            }
            let (v, o, f) = (ph.p_vaddr(endian), ph.p_offset(endian), ph.p_filesz(endian));
            assert_eq!(img.vaddr_to_offset(v), Some(o));
            assert_eq!(img.vaddr_to_offset(v + f - 1), Some(o + f - 1));
            checked += 1;
        }
        assert!(checked >= 2, "libssl has text and data segments");
        // The symbol's bytes through the offset equal the section's bytes at that address.
        let sym = img.find_symbols(&["SSL_read"])[0].clone().unwrap();
        let off = img.vaddr_to_offset(sym.address).unwrap() as usize;
        let text = img.object().section_by_name(".text").unwrap();
        let in_section = &text.data().unwrap()[(sym.address - text.address()) as usize..][..16];
        assert_eq!(&img.data()[off..off + 16], in_section);
        assert_eq!(img.vaddr_to_offset(u64::MAX), None);
    }

    #[test]
    fn dynamic_strings_of_libssl() {
        let bytes = FileBytes::open(Path::new(LIBSSL)).unwrap();
        let img = Image::parse(bytes.bytes()).unwrap();
        let d = img.dynamic_strings().unwrap();
        assert_eq!(d.soname.as_deref(), Some("libssl.so.3"));
        assert!(d.needed.iter().any(|n| n == "libcrypto.so.3"), "{d:?}");
        assert!(img.is_dyn());
        assert!(img.build_id().is_some_and(|id| id.len() == 40));
    }

    #[test]
    fn empty_and_directory_are_errors() {
        let dir = std::env::temp_dir().join(format!("tls-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(FileBytes::open(&empty), Err(ImageError::NotElf)));
        assert!(matches!(
            FileBytes::open(&dir),
            Err(ImageError::File(FileError::NotRegular("directory")))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The dynamic section's strings of an ELF file read with a few bounded `pread`s, not by
//! reading the whole file: what `DT_NEEDED` resolution needs on every exec.
//!
//! Stage: under [`super::needed`] (each exec's executable and its libraries).
//! Input: an [`OpenedFile`] ([`super::fileio`]: regular file, size-capped, never mapped).
//! Output: [`DynamicStrings`] (`DT_SONAME`, `DT_NEEDED`, `DT_RPATH`, `DT_RUNPATH`), empty for a
//! file without `PT_DYNAMIC` (static executable).
//! How: ELF header (64 bytes) → program headers (at most [`MAX_PHNUM`]) → `PT_DYNAMIC`
//! entries (at most [`MAX_DYNAMIC_BYTES`]) → each string in `DT_STRTAB` (a virtual address,
//! turned into a file offset through the `PT_LOAD` segment holding it; at most
//! [`MAX_NAME_BYTES`] per string), as
//! `ld.so` does (segments, not section headers). Reads about 10 KB of a 100 MB `node`
//! instead of all of it.
//! Limits: ELF64 little-endian x86-64 only ([`check_header`]); every offset and size is
//! bounds-checked, malformed input is [`ImageError::Malformed`], never a panic.
//! Why own code: the `object` crate parses a whole in-memory image; this needs three reads.

use super::fileio::OpenedFile;
use super::image::{DynamicStrings, ImageError, check_header};

/// Most program headers read.
pub const MAX_PHNUM: usize = 512;
/// Largest `PT_DYNAMIC` read (bytes).
pub const MAX_DYNAMIC_BYTES: usize = 64 << 10;
/// Longest dynamic string read (bytes): a library name or a search path list.
pub const MAX_NAME_BYTES: usize = 4096;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

fn malformed(what: &str) -> ImageError {
    ImageError::Malformed(what.to_string())
}

fn io(e: super::fileio::FileError) -> ImageError {
    ImageError::from(e)
}

/// The dynamic strings of `file`. Errors: [`ImageError::NotElf`],
/// [`ImageError::UnsupportedArch`], [`ImageError::Malformed`], [`ImageError::File`].
pub fn read_dynamic_strings(file: &OpenedFile) -> Result<DynamicStrings, ImageError> {
    let mut head = [0u8; 64];
    let n = file.read_head(&mut head).map_err(io)?;
    check_header(&head[..n])?;
    if n < 64 {
        return Err(malformed("truncated ELF header"));
    }
    let phoff = u64_at(&head, 0x20);
    let phentsize = usize::from(u16_at(&head, 0x36));
    let phnum = usize::from(u16_at(&head, 0x38));
    if phnum == 0 {
        return Ok(DynamicStrings::default());
    }
    if phentsize != 56 || phnum > MAX_PHNUM {
        return Err(malformed("program header table"));
    }
    let ph = file
        .read_exact_at(phoff, phentsize * phnum, phentsize * MAX_PHNUM)
        .map_err(|_| malformed("program headers beyond the file"))?;
    // (p_vaddr, p_offset, p_filesz) of PT_LOAD; (p_offset, p_filesz) of PT_DYNAMIC.
    let mut loads = Vec::new();
    let mut dynamic = None;
    for i in 0..phnum {
        let p = &ph[i * 56..(i + 1) * 56];
        let (ty, offset, vaddr, filesz) =
            (u32_at(p, 0), u64_at(p, 8), u64_at(p, 16), u64_at(p, 32));
        match ty {
            PT_LOAD => loads.push((vaddr, offset, filesz)),
            PT_DYNAMIC => dynamic = Some((offset, filesz)),
            _ => {}
        }
    }
    let Some((dyn_off, dyn_size)) = dynamic else {
        return Ok(DynamicStrings::default());
    };
    let dyn_size = usize::try_from(dyn_size).map_err(|_| malformed("PT_DYNAMIC size"))?;
    let dyn_size = dyn_size - dyn_size % 16;
    let dynamic = file
        .read_exact_at(dyn_off, dyn_size, MAX_DYNAMIC_BYTES)
        .map_err(|_| malformed("PT_DYNAMIC beyond the file or too large"))?;
    let mut strtab = None;
    let mut strsz = None;
    let mut entries = Vec::new();
    for e in dynamic.chunks_exact(16) {
        let (tag, val) = (u64_at(e, 0), u64_at(e, 8));
        match tag {
            0 => break, // DT_NULL
            5 => strtab = Some(val),
            10 => strsz = Some(val),
            1 | 14 | 15 | 29 => entries.push((tag, val)),
            _ => {}
        }
    }
    let mut out = DynamicStrings::default();
    if entries.is_empty() {
        return Ok(out);
    }
    let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
        return Err(malformed("DT_STRTAB or DT_STRSZ missing"));
    };
    let str_off = loads
        .iter()
        .find(|(v, _, f)| strtab >= *v && strtab - v < *f)
        .and_then(|(v, o, _)| o.checked_add(strtab - v))
        .ok_or_else(|| malformed("DT_STRTAB not in a PT_LOAD segment"))?;
    // One small read per string (a name is at most [`MAX_NAME_BYTES`]), not the whole table
    // (5 MB in `node`).
    for (tag, val) in entries {
        if val >= strsz {
            return Err(malformed("dynamic string out of DT_STRTAB"));
        }
        let len = (strsz - val).min(MAX_NAME_BYTES as u64) as usize;
        let at = str_off
            .checked_add(val)
            .ok_or_else(|| malformed("DT_STRTAB offset"))?;
        let bytes = file
            .read_exact_at(at, len, MAX_NAME_BYTES)
            .map_err(|_| malformed("DT_STRTAB beyond the file"))?;
        let end = bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed("dynamic string without NUL"))?;
        let s = String::from_utf8_lossy(&bytes[..end]).into_owned();
        match tag {
            14 => out.soname = Some(s),
            1 => out.needed.push(s),
            15 => out.rpath = Some(s),
            _ => out.runpath = Some(s),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::fileio::MAX_IMAGE_BYTES;
    use crate::tls::image::{FileBytes, Image};
    use std::path::Path;

    fn both(path: &str) -> (DynamicStrings, DynamicStrings) {
        let file = OpenedFile::open(Path::new(path), MAX_IMAGE_BYTES).unwrap();
        let fast = read_dynamic_strings(&file).unwrap();
        let bytes = FileBytes::open(Path::new(path)).unwrap();
        let full = Image::parse(bytes.bytes())
            .unwrap()
            .dynamic_strings()
            .unwrap();
        (fast, full)
    }

    #[test]
    fn same_as_the_whole_image_parse() {
        for p in [
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/usr/bin/curl",
            "/usr/bin/node",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ] {
            if !Path::new(p).exists() {
                continue;
            }
            let (fast, full) = both(p);
            assert_eq!(fast, full, "{p}");
        }
        let (fast, _) = both("/usr/lib/x86_64-linux-gnu/libssl.so.3");
        assert!(fast.needed.iter().any(|n| n == "libcrypto.so.3"));
    }

    #[test]
    fn truncations_and_garbage_are_errors_not_panics() {
        let data = std::fs::read("/usr/lib/x86_64-linux-gnu/libssl.so.3").unwrap();
        let dir = std::env::temp_dir().join(format!("tls-dynread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cut");
        for cut in [0, 10, 63, 64, 100, 1000, 4096, 100_000] {
            std::fs::write(&path, &data[..cut.min(data.len())]).unwrap();
            let f = OpenedFile::open(&path, MAX_IMAGE_BYTES).unwrap();
            let _ = read_dynamic_strings(&f);
        }
        // Flipped bytes in the headers.
        for at in (0..4096).step_by(7) {
            let mut d = data.clone();
            d[at] ^= 0xff;
            std::fs::write(&path, &d).unwrap();
            let f = OpenedFile::open(&path, MAX_IMAGE_BYTES).unwrap();
            let _ = read_dynamic_strings(&f);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

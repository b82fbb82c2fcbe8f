//! Go binaries: version from `.go.buildinfo`, functions from `.symtab` or `.gopclntab`, and
//! the RET instructions of a function.
//!
//! Stage: part of file analysis ([`super::elf::analyze_bytes`]).
//! Inputs: an [`Image`] of an x86-64 ELF file.
//! Outputs: [`GoVersion`] (e.g. `go1.19.8`), [`GoFunction`]s (entry virtual address and size,
//! found even in binaries stripped with `-ldflags=-s -w`), and RET offsets found by decoding
//! the function's machine code with `iced-x86`.
//! Sources: `.go.buildinfo` layout from Go's `debug/buildinfo` (inline strings since Go 1.18,
//! pointers before); pclntab layouts from Go's `debug/gosym/pclntab.go` and
//! `runtime/symtab.go` (magics `0xfffffffa` Go 1.16–1.17, `0xfffffff0` Go 1.18–1.19,
//! `0xfffffff1` Go 1.20+; `0xfffffffb` Go 1.2–1.15 is recognised and refused).
//! Limits: little-endian 64-bit tables only (x86-64); a function longer than
//! [`MAX_FUNCTION_BYTES`] is not decoded.

use super::image::Image;

/// Longest function body decoded for RET instructions (bytes).
pub const MAX_FUNCTION_BYTES: u64 = 1 << 20;

const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// A Go toolchain version as written by the linker, e.g. `go1.19.8`, `go1.21rc2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoVersion {
    /// The string from `.go.buildinfo` (`go1.19.8`, `devel go1.22-abc…`).
    pub raw: String,
    /// Major version (1).
    pub major: u32,
    /// Minor version (19 for go1.19.8).
    pub minor: u32,
    /// Patch version (8 for go1.19.8; 0 when absent or a pre-release).
    pub patch: u32,
}

impl GoVersion {
    /// Parses `go1.19.8`, `go1.21rc2`, `go1.22.0 X:…`, `devel go1.22-abc`. `None` if no
    /// `goMAJOR.MINOR` is found.
    pub fn parse(raw: &str) -> Option<GoVersion> {
        let start = raw.find("go")? + 2;
        let rest = &raw[start..];
        let mut nums = [0u32; 3];
        let mut parts = 0;
        for (i, piece) in rest.split('.').take(3).enumerate() {
            let digits: String = piece.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() {
                break;
            }
            nums[i] = digits.parse().ok()?;
            parts = i + 1;
            if digits.len() != piece.len() {
                break; // "21rc2": stop after the number
            }
        }
        (parts >= 2).then(|| GoVersion {
            raw: raw.to_string(),
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
        })
    }

    /// True from Go 1.17 on (register-based calling convention on amd64).
    pub fn has_register_abi(&self) -> bool {
        (self.major, self.minor) >= (1, 17)
    }
}

/// Whether the image looks like a Go binary (has a Go section or note).
pub fn is_go(img: &Image) -> bool {
    [
        ".go.buildinfo",
        ".gopclntab",
        ".data.rel.ro.gopclntab",
        ".note.go.buildid",
    ]
    .iter()
    .any(|s| img.object_has_section(s))
}

/// The Go version from `.go.buildinfo`. `None` when the section is absent or unreadable
/// (Go < 1.13 has none).
pub fn go_version(img: &Image) -> Option<GoVersion> {
    let (_, sect) = img.section_raw(".go.buildinfo")?;
    let at = memchr::memmem::find(sect, BUILDINFO_MAGIC)?;
    let hdr = sect.get(at..at + 32)?;
    let ptr_size = hdr[14] as usize;
    let flags = hdr[15];
    if flags & 1 != 0 {
        return None; // big-endian
    }
    let raw = if flags & 2 != 0 {
        // Go 1.18+: varint length + bytes, right after the 32-byte header.
        let (len, n) = read_uvarint(sect.get(at + 32..)?)?;
        let start = at + 32 + n;
        sect.get(start..start.checked_add(usize::try_from(len).ok()?)?)?
    } else {
        // Go 1.13–1.17: pointer to a Go string header {data, len}.
        if ptr_size != 8 {
            return None;
        }
        let str_hdr_addr = u64::from_le_bytes(hdr[16..24].try_into().ok()?);
        let str_hdr = img.bytes_at_vaddr(str_hdr_addr, 16)?;
        let data = u64::from_le_bytes(str_hdr[..8].try_into().ok()?);
        let len = u64::from_le_bytes(str_hdr[8..16].try_into().ok()?);
        if len > 256 {
            return None;
        }
        img.bytes_at_vaddr(data, len)?
    };
    GoVersion::parse(std::str::from_utf8(raw).ok()?)
}

fn read_uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// A function found in a Go binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoFunction {
    /// Entry virtual address.
    pub entry: u64,
    /// Size in bytes (from `st_size`, or up to the next pclntab entry, which includes the
    /// INT3 padding between functions).
    pub size: u64,
}

/// Which pclntab layout a magic number announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PclntabFormat {
    /// Go 1.2–1.15 (`0xfffffffb`): recognised, not parsed (such binaries are refused anyway).
    Go12,
    /// Go 1.16–1.17 (`0xfffffffa`).
    Go116,
    /// Go 1.18–1.19 (`0xfffffff0`).
    Go118,
    /// Go 1.20+ (`0xfffffff1`).
    Go120,
}

/// Why a pclntab could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PclntabError {
    /// No `.gopclntab` / `.data.rel.ro.gopclntab` section.
    #[error("no .gopclntab section")]
    Missing,
    /// Unknown magic, bad header or offsets out of range.
    #[error("unreadable .gopclntab: {0}")]
    Malformed(&'static str),
    /// A pre-1.16 table.
    #[error("pclntab format of Go < 1.16")]
    TooOld,
}

/// Looks `names` up in the pclntab function table. Returns one entry per name (in order)
/// with its entry address and size (to the next function).
pub fn pclntab_lookup(
    img: &Image,
    names: &[&str],
) -> Result<(PclntabFormat, Vec<Option<GoFunction>>), PclntabError> {
    let (_, tab) = img
        .section_raw(".gopclntab")
        .or_else(|| img.section_raw(".data.rel.ro.gopclntab"))
        .ok_or(PclntabError::Missing)?;
    let text_fallback = img.section_address(".text");
    parse_pclntab(tab, text_fallback, names)
}

/// Pure pclntab reader over the table's bytes; `text_fallback` is the `.text` address used
/// when the header's `textStart` is 0 (unrelocated PIE).
pub fn parse_pclntab(
    tab: &[u8],
    text_fallback: Option<u64>,
    names: &[&str],
) -> Result<(PclntabFormat, Vec<Option<GoFunction>>), PclntabError> {
    use PclntabError::Malformed;
    if tab.len() < 16 || tab[4] != 0 || tab[5] != 0 || !matches!(tab[6], 1 | 2 | 4) {
        return Err(Malformed("bad header"));
    }
    if tab[7] != 8 {
        return Err(Malformed("pointer size is not 8"));
    }
    let format = match u32::from_le_bytes(tab[..4].try_into().unwrap()) {
        0xffff_fffb => return Err(PclntabError::TooOld),
        0xffff_fffa => PclntabFormat::Go116,
        0xffff_fff0 => PclntabFormat::Go118,
        0xffff_fff1 => PclntabFormat::Go120,
        _ => return Err(Malformed("unknown magic")),
    };
    let word = |i: usize| -> Result<u64, PclntabError> {
        let at = 8 + i * 8;
        tab.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .ok_or(Malformed("truncated header"))
    };
    let nfunc = usize::try_from(word(0)?).map_err(|_| Malformed("nfunc"))?;
    let (text_start, funcname_off, pcln_off) = match format {
        PclntabFormat::Go116 => (0, word(2)?, word(6)?),
        _ => {
            let t = word(2)?;
            let t = if t == 0 {
                text_fallback.unwrap_or(0)
            } else {
                t
            };
            (t, word(3)?, word(7)?)
        }
    };
    let sub = |off: u64| -> Result<&[u8], PclntabError> {
        usize::try_from(off)
            .ok()
            .and_then(|o| tab.get(o..))
            .ok_or(Malformed("offset out of range"))
    };
    let funcnames = sub(funcname_off)?;
    let funcdata = sub(pcln_off)?;
    // functab: nfunc+1 (entry, funcoff) pairs; 8-byte fields before 1.18, 4-byte after.
    let field = if format == PclntabFormat::Go116 { 8 } else { 4 };
    let functab_len = nfunc
        .checked_mul(2)
        .and_then(|n| n.checked_add(1))
        .and_then(|n| n.checked_mul(field))
        .ok_or(Malformed("nfunc"))?;
    let functab = funcdata
        .get(..functab_len)
        .ok_or(Malformed("functab truncated"))?;
    let read = |b: &[u8], at: usize, width: usize| -> Option<u64> {
        let s = b.get(at..at.checked_add(width)?)?;
        Some(if width == 8 {
            u64::from_le_bytes(s.try_into().ok()?)
        } else {
            u64::from(u32::from_le_bytes(s.try_into().ok()?))
        })
    };
    let entry_pc = |i: usize| -> Option<u64> {
        let v = read(functab, i * 2 * field, field)?;
        if format == PclntabFormat::Go116 {
            Some(v)
        } else {
            text_start.checked_add(v)
        }
    };
    let mut out = vec![None; names.len()];
    let mut remaining = names.len();
    for i in 0..nfunc {
        let funcoff = read(functab, i * 2 * field + field, field).ok_or(Malformed("functab"))?;
        let funcoff = usize::try_from(funcoff).map_err(|_| Malformed("funcoff"))?;
        // _func: entry (uintptr before 1.18, u32 offset after), then nameoff int32.
        let nameoff = read(funcdata, funcoff.saturating_add(field), 4).ok_or(Malformed("_func"))?;
        let name = funcnames
            .get(nameoff as usize..)
            .and_then(|s| s.split(|&b| b == 0).next())
            .ok_or(Malformed("nameoff"))?;
        let Some(k) = names.iter().position(|n| n.as_bytes() == name) else {
            continue;
        };
        if out[k].is_some() {
            continue;
        }
        let (Some(entry), Some(end)) = (entry_pc(i), entry_pc(i + 1)) else {
            return Err(Malformed("functab entry"));
        };
        if end <= entry {
            return Err(Malformed("functab not sorted"));
        }
        out[k] = Some(GoFunction {
            entry,
            size: end - entry,
        });
        remaining -= 1;
        if remaining == 0 {
            break;
        }
    }
    Ok((format, out))
}

/// Offsets, relative to `code`'s start, of every RET (`C3`, `C2 iw`) instruction found by
/// decoding `code` linearly as 64-bit x86 from its first byte. Undecodable bytes are skipped
/// one instruction at a time (the decoder resynchronises).
pub fn ret_offsets(code: &[u8]) -> Vec<u64> {
    use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut instr = Instruction::default();
    let mut out = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instr);
        if instr.mnemonic() == Mnemonic::Ret {
            out.push(instr.ip());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_strings() {
        let v = GoVersion::parse("go1.19.8").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 19, 8));
        assert!(v.has_register_abi());
        let v = GoVersion::parse("go1.21rc2").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 21, 0));
        let v = GoVersion::parse("devel go1.22-abcdef Tue").unwrap();
        assert_eq!((v.major, v.minor), (1, 22));
        assert!(!GoVersion::parse("go1.16.15").unwrap().has_register_abi());
        assert!(GoVersion::parse("go1.17").unwrap().has_register_abi());
        assert_eq!(GoVersion::parse("gox"), None);
        assert_eq!(GoVersion::parse(""), None);
    }

    #[test]
    fn uvarint() {
        assert_eq!(read_uvarint(&[0x08]), Some((8, 1)));
        assert_eq!(read_uvarint(&[0xe5, 0x01]), Some((229, 2)));
        assert_eq!(read_uvarint(&[0x80; 11]), None);
    }

    #[test]
    fn rets_found_in_hand_assembled_code() {
        // push rbp; mov rbp,rsp; test eax,eax; je +2; pop rbp; ret; xor eax,eax; pop rbp;
        // ret 8; int3
        let code = [
            0x55, 0x48, 0x89, 0xe5, 0x85, 0xc0, 0x74, 0x02, 0x5d, 0xc3, 0x31, 0xc0, 0x5d, 0xc2,
            0x08, 0x00, 0xcc,
        ];
        assert_eq!(ret_offsets(&code), vec![9, 13]);
        // A C3 byte inside an immediate is not a RET: mov eax, 0xc3c3c3c3.
        assert_eq!(
            ret_offsets(&[0xb8, 0xc3, 0xc3, 0xc3, 0xc3]),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn pclntab_rejects_garbage() {
        assert!(matches!(
            parse_pclntab(&[], None, &["x"]),
            Err(PclntabError::Malformed(_))
        ));
        let mut t = vec![0u8; 64];
        t[..4].copy_from_slice(&0xffff_fffbu32.to_le_bytes());
        t[6] = 1;
        t[7] = 8;
        assert_eq!(parse_pclntab(&t, None, &["x"]), Err(PclntabError::TooOld));
        t[..4].copy_from_slice(&0xffff_fff1u32.to_le_bytes());
        t[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // absurd nfunc
        assert!(matches!(
            parse_pclntab(&t, None, &["x"]),
            Err(PclntabError::Malformed(_))
        ));
    }

    #[test]
    fn pclntab_synthetic_go120_table() {
        // Header (8 words) | funcnames | functab (2 funcs + end) | _func records.
        let mut t = Vec::new();
        t.extend_from_slice(&0xffff_fff1u32.to_le_bytes());
        t.extend_from_slice(&[0, 0, 1, 8]);
        let names = b"main.a\0main.b\0";
        let funcname_off = 8 + 8 * 8;
        let pcln_off = funcname_off + names.len() as u64;
        for w in [2u64, 0, 0x40_1000, funcname_off, 0, 0, 0, pcln_off] {
            t.extend_from_slice(&w.to_le_bytes());
        }
        t.extend_from_slice(names);
        // functab: (entryoff, funcoff) x2, then end entryoff.
        let func0 = 5 * 4u32;
        for v in [0u32, func0, 0x30, func0 + 8, 0x70] {
            t.extend_from_slice(&v.to_le_bytes());
        }
        for (entryoff, nameoff) in [(0u32, 0u32), (0x30, 7)] {
            t.extend_from_slice(&entryoff.to_le_bytes());
            t.extend_from_slice(&nameoff.to_le_bytes());
        }
        let (fmt, found) = parse_pclntab(&t, None, &["main.b", "main.a", "main.c"]).unwrap();
        assert_eq!(fmt, PclntabFormat::Go120);
        assert_eq!(
            found[0],
            Some(GoFunction {
                entry: 0x40_1030,
                size: 0x40
            })
        );
        assert_eq!(
            found[1],
            Some(GoFunction {
                entry: 0x40_1000,
                size: 0x30
            })
        );
        assert_eq!(found[2], None);
        // Every truncation is an error or a partial answer, never a panic.
        for cut in 0..t.len() {
            let _ = parse_pclntab(&t[..cut], None, &["main.b"]);
        }
    }
}

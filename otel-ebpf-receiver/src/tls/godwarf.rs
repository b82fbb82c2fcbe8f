//! Go struct field offsets on the path `*crypto/tls.Conn` → socket fd, for the kernel side.
//!
//! Stage: part of Go file analysis ([`super::elf::analyze_bytes`]).
//! Input: an [`Image`] of a Go binary.
//! Output: [`GoTlsOffsets`] (bytes), read from DWARF (`.debug_info`, compressed or not, via
//! `gimli`) when the binary keeps it, else from [`GoTlsOffsets::TABLE`].
//! The BPF program walks: `tls.Conn` + `conn_conn` is a `net.Conn` interface (16 bytes:
//! itab pointer, then data pointer at +8) whose data points to a `net.conn` (for TCP, a
//! `*net.TCPConn` embeds it at 0); `net.conn` + `net_conn_fd` is a `*net.netFD`;
//! `netFD` + `netfd_pfd` is an `internal/poll.FD`; `FD` + `poll_fd_sysfd` is the `int` fd.
//! Limits: only these four fields; a binary without DWARF gets the table, which holds for
//! every Go release with the register ABI so far (see [`GoTlsOffsets::TABLE`]).

use std::borrow::Cow;

use super::image::Image;

/// Where offsets came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSource {
    /// The binary's own DWARF.
    Dwarf,
    /// [`GoTlsOffsets::TABLE`] (binary stripped with `-w`, or a field missing from DWARF).
    Table,
}

/// Byte offsets of the fields the kernel side follows from a `*tls.Conn` to the fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoTlsOffsets {
    /// `crypto/tls.Conn.conn` (a `net.Conn` interface value).
    pub conn_conn: u64,
    /// `net.conn.fd` (a `*net.netFD`).
    pub net_conn_fd: u64,
    /// `net.netFD.pfd` (an `internal/poll.FD`).
    pub netfd_pfd: u64,
    /// `internal/poll.FD.Sysfd` (an `int`, 8 bytes on amd64).
    pub poll_fd_sysfd: u64,
    /// DWARF or table.
    pub source: OffsetSource,
}

/// (struct, field) pairs looked up in DWARF, in [`GoTlsOffsets`] field order.
const FIELDS: [(&str, &str); 4] = [
    ("crypto/tls.Conn", "conn"),
    ("net.conn", "fd"),
    ("net.netFD", "pfd"),
    ("internal/poll.FD", "Sysfd"),
];

impl GoTlsOffsets {
    /// Offsets for Go 1.17 and later on amd64. Source: the Go standard library:
    /// `crypto/tls/conn.go` (`type Conn struct { conn net.Conn; ...}` — first field),
    /// `net/net.go` (`type conn struct { fd *netFD }`), `net/fd_posix.go`
    /// (`type netFD struct { pfd poll.FD; ...}` — first field),
    /// `internal/poll/fd_unix.go` (`type FD struct { fdmu fdMutex; Sysfd int; ...}`, where
    /// `fdMutex` is `{state uint64; rsema, wsema uint32}` = 16 bytes). Read in go1.19's sources
    /// and checked against the DWARF of a go1.19 binary in this module's tests; the same
    /// layouts are what other eBPF Go-TLS tracers rely on for later releases.
    pub const TABLE: GoTlsOffsets = GoTlsOffsets {
        conn_conn: 0,
        net_conn_fd: 0,
        netfd_pfd: 0,
        poll_fd_sysfd: 16,
        source: OffsetSource::Table,
    };

    /// DWARF offsets when all four fields are found, else [`Self::TABLE`].
    pub fn for_image(img: &Image) -> GoTlsOffsets {
        match dwarf_field_offsets(img) {
            Ok([Some(a), Some(b), Some(c), Some(d)]) => GoTlsOffsets {
                conn_conn: a,
                net_conn_fd: b,
                netfd_pfd: c,
                poll_fd_sysfd: d,
                source: OffsetSource::Dwarf,
            },
            _ => Self::TABLE,
        }
    }
}

/// Offsets of [`FIELDS`] from `.debug_info`; `Ok([None; 4])` without DWARF. Errors: a
/// malformed DWARF section (gimli's error).
pub fn dwarf_field_offsets(img: &Image) -> Result<[Option<u64>; 4], gimli::Error> {
    use gimli::{SectionId, constants};
    let mut found = [None; 4];
    if !img.object_has_section(".debug_info") && !img.object_has_section(".zdebug_info") {
        return Ok(found);
    }
    // Only the sections a type walk needs are inflated (not line tables or locations).
    let load = |id: SectionId| -> Result<Cow<'_, [u8]>, gimli::Error> {
        Ok(match id {
            SectionId::DebugInfo | SectionId::DebugAbbrev | SectionId::DebugStr => {
                img.section_data(id.name()).unwrap_or(Cow::Borrowed(&[]))
            }
            _ => Cow::Borrowed(&[]),
        })
    };
    let sections = gimli::DwarfSections::load(load)?;
    let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, gimli::LittleEndian));
    // The Go linker puts every type in the `runtime` unit: walk it first, the others only
    // if a field is still missing.
    let mut headers = Vec::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let abbrevs = dwarf.abbreviations(&header)?;
        let mut cursor = header.entries(&abbrevs);
        let is_runtime = match cursor.next_dfs()? {
            Some((_, root)) => {
                matches!(root.attr_value(constants::DW_AT_name)?, Some(gimli::AttributeValue::String(s)) if s.slice() == b"runtime")
            }
            None => false,
        };
        headers.push((!is_runtime, header));
    }
    headers.sort_by_key(|(not_runtime, _)| *not_runtime);
    for (_, header) in headers {
        // Not `dwarf.unit()`: it would also parse the line program we did not load.
        let abbrevs = dwarf.abbreviations(&header)?;
        let mut cursor = header.entries(&abbrevs);
        let mut depth: isize = 0;
        // (index into FIELDS of structs with this name, depth of the struct DIE)
        let mut open: Option<(&str, isize)> = None;
        while let Some((delta, entry)) = cursor.next_dfs()? {
            depth += delta;
            if let Some((_, d)) = open
                && depth <= d
            {
                open = None;
            }
            let tag = entry.tag();
            if tag != constants::DW_TAG_structure_type && tag != constants::DW_TAG_member {
                continue;
            }
            let Some(name) = entry.attr_value(constants::DW_AT_name)? else {
                continue;
            };
            let name = match name {
                gimli::AttributeValue::String(s) => s.slice(),
                gimli::AttributeValue::DebugStrRef(o) => dwarf.debug_str.get_str(o)?.slice(),
                _ => continue,
            };
            if tag == constants::DW_TAG_structure_type {
                open = FIELDS
                    .iter()
                    .find(|(s, _)| s.as_bytes() == name)
                    .map(|(s, _)| (*s, depth));
                continue;
            }
            let Some((struct_name, d)) = open else {
                continue;
            };
            if depth != d + 1 {
                continue;
            }
            for (i, (s, f)) in FIELDS.iter().enumerate() {
                if *s == struct_name && f.as_bytes() == name && found[i].is_none() {
                    found[i] = entry
                        .attr(constants::DW_AT_data_member_location)?
                        .and_then(|a| a.udata_value());
                }
            }
            if found.iter().all(Option::is_some) {
                return Ok(found);
            }
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_dwarf_gives_table() {
        // libssl has no .debug_info in Debian's package.
        let bytes =
            super::super::image::FileBytes::open("/usr/lib/x86_64-linux-gnu/libssl.so.3".as_ref())
                .unwrap();
        let img = Image::parse(bytes.bytes()).unwrap();
        assert_eq!(dwarf_field_offsets(&img).unwrap(), [None; 4]);
        assert_eq!(GoTlsOffsets::for_image(&img), GoTlsOffsets::TABLE);
    }
}

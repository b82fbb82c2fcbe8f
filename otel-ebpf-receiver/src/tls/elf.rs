//! Per-file analysis: which TLS functions a file holds and the file offsets to probe.
//!
//! Stage: the last step of discovery, run once per distinct file (see [`super::registry`]).
//! Input: a path or an open file (read through [`super::fileio`]: bounded, never mapped) or
//! the file's bytes.
//! Output: a [`FileAnalysis`] listing [`TlsTarget`]s: the library found (OpenSSL 1.1/3.x or
//! BoringSSL, shared or linked into an executable such as `node`; GnuTLS; Go `crypto/tls`;
//! rustls, see [`super::rustls`])
//! and its [`Probe`]s as offsets in the file (what a uprobe attach takes). OpenSSL and GnuTLS
//! get entry probes and uretprobes; Go gets an entry probe and one probe per RET instruction
//! (Go moves goroutine stacks, so uretprobes would corrupt them).
//! Sources: symbols from `.dynsym` then `.symtab`; for Go, `.symtab` or the `.gopclntab`
//! function table ([`super::golang`]); OpenSSL/GnuTLS versions from version strings in the
//! file, else from `DT_SONAME`.
//! Limits: x86-64 only; a file with none of the symbols yields an empty analysis, except
//! files named like a TLS library (`libssl.so*`, `libgnutls.so*`), which yield
//! [`AnalyzeReason::NoTlsSymbols`] (stripped or unknown layout). Errors never panic.

use std::path::Path;

use super::fileio::{MAX_IMAGE_BYTES, OpenedFile};
use super::godwarf::GoTlsOffsets;
use super::golang;
use super::image::{FileBytes, Image, ImageError};
use super::registry::ProcessFile;
pub use super::target::*;

/// Which TLS library a file name announces: `libssl.so*` / `libgnutls.so*` (not NSS's
/// `libssl3.so`, whose API is different).
pub fn tls_library_name(file_name: &str) -> bool {
    file_name.starts_with("libssl.so") || file_name.starts_with("libgnutls.so")
}

/// Most uprobes attached to one file (entry, return and RET-instruction probes together): a
/// hostile binary cannot make us plant thousands of breakpoints.
pub const MAX_PROBES_PER_FILE: usize = 128;
/// Most RET-instruction probes for one Go function.
pub const MAX_RETURN_PROBES: usize = 48;

/// [`AnalyzeReason::TooManyProbes`] when `a` has more than [`MAX_PROBES_PER_FILE`] probes.
pub fn check_probe_cap(a: &FileAnalysis) -> Result<(), AnalyzeReason> {
    let count: usize = a.targets.iter().map(|t| t.probes.len()).sum();
    if count > MAX_PROBES_PER_FILE {
        return Err(AnalyzeReason::TooManyProbes {
            count,
            max: MAX_PROBES_PER_FILE,
        });
    }
    Ok(())
}

/// Analyses a candidate file of a process: opens `file.path` once, checks that the open file
/// is `file.key` (device + inode; else [`AnalyzeReason::Image`] with `file_changed`: the file
/// was replaced since it was found), reads the parts analysis needs through that descriptor
/// ([`super::sparse`]: headers, symbol tables, Go tables, then the Go functions' bodies) and
/// analyses them ([`analyze_file`]'s rules, except: Go struct offsets from
/// [`GoTlsOffsets::TABLE`], not DWARF). Only rustls programs (rustls's marker string in
/// `.rodata`, searched piecewise) are read whole, as [`analyze_file`] does.
pub fn analyze_process_file(file: &ProcessFile) -> Result<FileAnalysis, AnalyzeError> {
    let err = |reason: AnalyzeReason| AnalyzeError {
        path: file.path.clone(),
        reason,
    };
    let opened = OpenedFile::open(&file.path, MAX_IMAGE_BYTES)
        .map_err(|e| err(ImageError::from(e).into()))?;
    opened
        .check_key(file.key)
        .map_err(|e| err(ImageError::from(e).into()))?;
    let mut sparse = super::sparse::SparseFile::load(&opened).map_err(|e| err(e.into()))?;
    // `.symtab` only when the exports hold neither API (as in `analyze_bytes`).
    let exported = {
        let img = Image::parse(sparse.bytes()).map_err(|e| err(e.into()))?;
        let mut found = vec![None; SYMBOLS.len()];
        img.find_symbols_in(&SYMBOLS, &mut found, &[true]);
        has_api(&found)
    };
    if !exported {
        sparse.fill_lazy(&opened).map_err(|e| err(e.into()))?;
        let img = Image::parse(sparse.bytes()).map_err(|e| err(e.into()))?;
        let rustls = !golang::is_go(&img)
            && super::rustls::has_marker(&opened, &img)
                .map_err(|e| err(ImageError::from(e).into()))?;
        if rustls {
            // A rustls program: its analysis decodes function bodies and searches all of
            // `.rodata`, so it is read whole, as before the sparse path existed. Any other
            // file (a static OpenSSL or GnuTLS found in `.symtab`, or no TLS at all: most
            // large programs) is analysed from the sparse copy.
            drop(sparse);
            let bytes = FileBytes::read(&opened).map_err(|e| err(e.into()))?;
            return analyze_named(&file.path, bytes.bytes());
        }
    }
    // The code the analysis decodes: Go functions (RET scan), `OpenSSL_version_num`.
    let ranges = {
        let img = Image::parse(sparse.bytes()).map_err(|e| err(e.into()))?;
        code_ranges(&img)
    };
    for (off, len) in ranges {
        sparse.fill(&opened, off, len).map_err(|e| err(e.into()))?;
    }
    analyze_opts(&file.path, sparse.bytes(), false)
}

/// File ranges `(offset, length)` of the functions whose code analysis reads.
fn code_ranges(img: &Image) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut push = |entry: u64, size: u64| {
        if let Some(off) = img.vaddr_to_offset(entry) {
            let end = img.data().len() as u64;
            out.push((
                off,
                size.min(golang::MAX_FUNCTION_BYTES)
                    .min(end.saturating_sub(off)),
            ));
        }
    };
    if let Some(Some(s)) = img.find_symbols(&["OpenSSL_version_num"]).first() {
        push(s.address, 16);
    }
    if golang::is_go(img) {
        let names = [TlsFunction::GoConnRead, TlsFunction::GoConnWrite].map(TlsFunction::symbol);
        let mut found: Vec<Option<golang::GoFunction>> = img
            .find_symbols(&names)
            .into_iter()
            .map(|s| {
                s.map(|s| golang::GoFunction {
                    entry: s.address,
                    size: s.size,
                })
            })
            .collect();
        if found.iter().any(|f| f.as_ref().is_none_or(|f| f.size == 0))
            && let Ok((_, f)) = golang::pclntab_lookup(img, &names)
        {
            found = f;
        }
        for f in found.into_iter().flatten() {
            push(f.entry, f.size);
        }
    }
    out
}

/// Analyses the file at `path` (read whole, see [`super::fileio`]). A file named like a TLS library
/// ([`tls_library_name`]) with no target is an error ([`AnalyzeReason::NoTlsSymbols`]).
pub fn analyze_file(path: &Path) -> Result<FileAnalysis, AnalyzeError> {
    let err = |reason: AnalyzeReason| AnalyzeError {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = FileBytes::open(path).map_err(|e| err(e.into()))?;
    analyze_named(path, bytes.bytes())
}

/// [`analyze_bytes`], plus: a file named like a TLS library with no target is an error.
fn analyze_named(path: &Path, data: &[u8]) -> Result<FileAnalysis, AnalyzeError> {
    analyze_opts(path, data, true)
}

/// [`analyze_named`] with or without DWARF for the Go struct offsets.
fn analyze_opts(path: &Path, data: &[u8], dwarf: bool) -> Result<FileAnalysis, AnalyzeError> {
    let err = |reason: AnalyzeReason| AnalyzeError {
        path: path.to_path_buf(),
        reason,
    };
    let analysis = analyze_bytes_opts(path, data, dwarf)?;
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(tls_library_name);
    if named && !analysis.is_tls() {
        return Err(err(AnalyzeReason::NoTlsSymbols));
    }
    Ok(analysis)
}

const SYMBOLS: [&str; 9] = [
    "SSL_read",
    "SSL_write",
    "SSL_read_ex",
    "SSL_write_ex",
    "SSL_get_fd",
    "SSL_get_rfd",
    "gnutls_record_recv",
    "gnutls_record_send",
    "OpenSSL_version_num",
];

/// Whether `found` (slots of [`SYMBOLS`]) holds the OpenSSL or the GnuTLS read/write pair.
fn has_api<T>(f: &[Option<T>]) -> bool {
    (f[0].is_some() && f[1].is_some()) || (f[6].is_some() && f[7].is_some())
}

/// Analyses `data`, the bytes of the file `path` (used in results and errors only).
pub fn analyze_bytes(path: &Path, data: &[u8]) -> Result<FileAnalysis, AnalyzeError> {
    analyze_bytes_opts(path, data, true)
}

/// [`analyze_bytes`]; `dwarf` false: Go struct offsets from the table without reading DWARF.
fn analyze_bytes_opts(path: &Path, data: &[u8], dwarf: bool) -> Result<FileAnalysis, AnalyzeError> {
    let err = |reason: AnalyzeReason| AnalyzeError {
        path: path.to_path_buf(),
        reason,
    };
    let img = Image::parse(data).map_err(|e| err(e.into()))?;
    let soname = img.dynamic_strings().ok().and_then(|d| d.soname);
    // Exported symbols first; `.symtab` (a bigger table: 110k entries in `node`) only when
    // the exports hold neither API.
    let mut found = vec![None; SYMBOLS.len()];
    img.find_symbols_in(&SYMBOLS, &mut found, &[true]);
    if !has_api(&found) {
        img.find_symbols_in(&SYMBOLS, &mut found, &[false]);
    }
    let mut targets = Vec::new();

    let entry_and_return = |fns: &[(TlsFunction, usize)]| -> Result<Vec<Probe>, AnalyzeError> {
        let mut probes = Vec::new();
        for &(function, i) in fns {
            let Some(sym) = &found[i] else { continue };
            let offset = img.vaddr_to_offset(sym.address).ok_or_else(|| {
                err(AnalyzeReason::AddressNotInFile {
                    symbol: function.symbol(),
                    address: sym.address,
                })
            })?;
            for kind in [ProbeKind::Entry, ProbeKind::Return] {
                probes.push(Probe {
                    function,
                    kind,
                    offset,
                });
            }
        }
        probes.sort_by_key(|p| p.kind != ProbeKind::Entry);
        Ok(probes)
    };

    if found[0].is_some() && found[1].is_some() {
        use TlsFunction::*;
        let probes =
            entry_and_return(&[(SslRead, 0), (SslWrite, 1), (SslReadEx, 2), (SslWriteEx, 3)])?;
        let (flavour, version) = openssl_version(&img, soname.as_deref(), found[8].as_ref());
        let linkage = if soname.as_deref().is_some_and(|s| s.starts_with("libssl")) {
            Linkage::Shared
        } else {
            Linkage::Static
        };
        targets.push(TlsTarget {
            library: TlsLibrary::OpenSsl {
                flavour,
                version,
                linkage,
                has_get_fd: found[4].is_some(),
                has_get_rfd: found[5].is_some(),
            },
            probes,
        });
    }
    if found[6].is_some() && found[7].is_some() {
        use TlsFunction::*;
        let probes = entry_and_return(&[(GnutlsRecordRecv, 6), (GnutlsRecordSend, 7)])?;
        let version = find_version_after(&img, b"Enabled GnuTLS ").or_else(|| {
            soname
                .as_deref()
                .and_then(|s| s.strip_prefix("libgnutls.so."))
                .map(str::to_string)
        });
        targets.push(TlsTarget {
            library: TlsLibrary::GnuTls { version },
            probes,
        });
    }
    if golang::is_go(&img)
        && let Some(target) = go_target(&img, dwarf).map_err(err)?
    {
        targets.push(target);
    }
    match super::rustls::rustls_target(&img) {
        Ok(Some(target)) => targets.push(target),
        Ok(None) => {}
        // A stripped rustls beside a traceable library: trace that one.
        Err(_) if !targets.is_empty() => {}
        Err(reason) => return Err(err(reason)),
    }
    let analysis = FileAnalysis {
        path: path.to_path_buf(),
        build_id: img.build_id(),
        targets,
    };
    check_probe_cap(&analysis).map_err(err)?;
    Ok(analysis)
}

/// Flavour and version: version strings in the file first, then the number
/// `OpenSSL_version_num` returns, then the SONAME.
fn openssl_version(
    img: &Image,
    soname: Option<&str>,
    version_num: Option<&super::image::SymbolInfo>,
) -> (OpenSslFlavour, Option<String>) {
    let from_string = find_version_after(img, b"OpenSSL ").or_else(|| {
        version_num
            .and_then(|s| img.bytes_at_vaddr(s.address, 9))
            .and_then(openssl_version_from_code)
    });
    let from_soname = soname
        .and_then(|s| s.strip_prefix("libssl.so."))
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let version = from_string.or(from_soname);
    let flavour = match version.as_deref() {
        Some(v) if v.starts_with("3") => OpenSslFlavour::OpenSsl3,
        Some(v) if v.starts_with("1.1") => OpenSslFlavour::OpenSsl1_1,
        Some(v) if v.starts_with("1.0") => OpenSslFlavour::OpenSsl1_0,
        _ if rodata_contains(img, b"BoringSSL") => OpenSslFlavour::BoringSsl,
        _ => OpenSslFlavour::Unknown,
    };
    (flavour, version)
}

/// The version in the code of `OpenSSL_version_num` (`[endbr64;] mov eax, imm32; ret`):
/// `0xMNN00PP0` for 3.x (`3.0.19`), `0xMNNFFPPS` before (`1.1.1w`). None for other code.
pub fn openssl_version_from_code(code: &[u8]) -> Option<String> {
    let code = code.strip_prefix(&[0xf3, 0x0f, 0x1e, 0xfa]).unwrap_or(code);
    let (&[0xb8, a, b, c, d], rest) = code.split_first_chunk::<5>()? else {
        return None;
    };
    if rest.first() != Some(&0xc3) {
        return None;
    }
    let n = u32::from_le_bytes([a, b, c, d]);
    let major = n >> 28;
    let minor = (n >> 20) & 0xff;
    Some(if major >= 3 {
        format!("{major}.{minor}.{}", (n >> 4) & 0xff)
    } else {
        let fix = (n >> 12) & 0xff;
        let patch = (n >> 4) & 0xff;
        let letter = if patch == 0 {
            String::new()
        } else {
            char::from(b'a' + (patch as u8).saturating_sub(1)).to_string()
        };
        format!("{major}.{minor}.{fix}{letter}")
    })
}

/// `.rodata` when at most [`super::sparse::MAX_RODATA_BYTES`] (the attacher's sparse copy
/// holds no more; `node`'s is 47 MB: its version then comes from `OpenSSL_version_num`).
fn rodata<'a>(img: &Image<'a>) -> &'a [u8] {
    img.section_raw(".rodata")
        .map(|(_, b)| b)
        .filter(|b| b.len() as u64 <= super::sparse::MAX_RODATA_BYTES)
        .unwrap_or_default()
}

fn rodata_contains(img: &Image, needle: &[u8]) -> bool {
    memchr::memmem::find(rodata(img), needle).is_some()
}

/// The most precise version following `prefix` in `.rodata`: among the tokens that look like
/// `D.D…` (digits, dots, letters, `+`, `-`), the one with the most dot-separated parts, first
/// on ties. `OpenSSL 3.0 legacy provider` and `OpenSSL 3.0.19 27 Jan 2026` → `3.0.19`.
fn find_version_after(img: &Image, prefix: &[u8]) -> Option<String> {
    let mut best: Option<&str> = None;
    for t in versions_after(rodata(img), prefix) {
        if best.is_none_or(|b| t.split('.').count() > b.split('.').count()) {
            best = Some(t);
        }
    }
    best.map(str::to_string)
}

/// Version-looking tokens after each `prefix` in `data`, in file order.
fn versions_after<'a>(data: &'a [u8], prefix: &'a [u8]) -> impl Iterator<Item = &'a str> + 'a {
    memchr::memmem::find_iter(data, prefix).filter_map(move |at| {
        let rest = &data[at + prefix.len()..];
        let len = rest
            .iter()
            .take(32)
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
            .count();
        let token = &rest[..len];
        let ok =
            len >= 3 && token[0].is_ascii_digit() && token[1] == b'.' && token[2].is_ascii_digit();
        ok.then(|| std::str::from_utf8(token).ok()).flatten()
    })
}

/// Go `crypto/tls` target, `Ok(None)` when the binary does not contain `crypto/tls`.
fn go_target(img: &Image, dwarf: bool) -> Result<Option<TlsTarget>, AnalyzeReason> {
    let fns = [TlsFunction::GoConnRead, TlsFunction::GoConnWrite];
    let names = fns.map(TlsFunction::symbol);
    let from_symtab = img.find_symbols(&names);
    let (mut funcs, mut source): (Vec<Option<golang::GoFunction>>, GoSymbolSource) = (
        from_symtab
            .iter()
            .map(|s| {
                s.as_ref().map(|s| golang::GoFunction {
                    entry: s.address,
                    size: s.size,
                })
            })
            .collect(),
        GoSymbolSource::Symtab,
    );
    if funcs.iter().any(|f| f.as_ref().is_none_or(|f| f.size == 0)) {
        if img.has_symtab() && funcs.iter().all(Option::is_none) {
            return Ok(None); // symbols kept and no crypto/tls in them
        }
        let (format, found) = match golang::pclntab_lookup(img, &names) {
            Err(golang::PclntabError::TooOld) => {
                let v = golang::go_version(img).map_or_else(|| "< 1.16".to_string(), |v| v.raw);
                return Err(AnalyzeReason::GoTooOld(v));
            }
            other => other?,
        };
        funcs = found;
        source = GoSymbolSource::Pclntab(format);
    }
    if funcs.iter().all(Option::is_none) {
        return Ok(None);
    }
    let version = golang::go_version(img).ok_or(AnalyzeReason::GoVersionUnknown)?;
    if !version.has_register_abi() {
        return Err(AnalyzeReason::GoTooOld(version.raw));
    }
    let mut probes = Vec::new();
    let mut rets = Vec::new();
    for (function, f) in fns.into_iter().zip(funcs) {
        let Some(f) = f else { continue };
        let symbol = function.symbol();
        let bad = |what| AnalyzeReason::BadFunction { symbol, what };
        if f.size == 0 || f.size > golang::MAX_FUNCTION_BYTES {
            return Err(bad("size is 0 or above the decode limit"));
        }
        let entry = img
            .vaddr_to_offset(f.entry)
            .ok_or(AnalyzeReason::AddressNotInFile {
                symbol,
                address: f.entry,
            })?;
        let code = img
            .bytes_at_vaddr(f.entry, f.size)
            .ok_or(bad("body not in the file"))?;
        let offsets = golang::ret_offsets(code);
        if offsets.is_empty() {
            return Err(bad("no RET instruction found"));
        }
        if offsets.len() > MAX_RETURN_PROBES {
            return Err(AnalyzeReason::TooManyProbes {
                count: offsets.len(),
                max: MAX_RETURN_PROBES,
            });
        }
        probes.push(Probe {
            function,
            kind: ProbeKind::Entry,
            offset: entry,
        });
        rets.extend(offsets.into_iter().map(|r| Probe {
            function,
            kind: ProbeKind::ReturnInstruction,
            offset: entry + r,
        }));
    }
    probes.extend(rets);
    let offsets = if dwarf {
        GoTlsOffsets::for_image(img)
    } else {
        GoTlsOffsets::TABLE
    };
    Ok(Some(TlsTarget {
        library: TlsLibrary::Go {
            version,
            offsets,
            symbols: source,
        },
        probes,
    }))
}

#[cfg(test)]
#[path = "elf_tests.rs"]
mod tests;

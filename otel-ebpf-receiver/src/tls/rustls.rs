//! rustls discovery: the functions of a Rust program's statically linked rustls (0.21–0.23)
//! that expose its plaintext, found by demangled symbol name.
//!
//! Stage: part of per-file analysis ([`super::elf::analyze_bytes`]). Input: a parsed
//! [`Image`]. Output: a [`TlsTarget`] with [`TlsLibrary::Rustls`] and its probes (file
//! offsets), `Ok(None)` when the file has no rustls, or an [`AnalyzeReason`] when it has rustls
//! that cannot be traced (stripped: [`AnalyzeReason::NoTlsSymbols`]; some functions inlined
//! away: [`AnalyzeReason::RustlsIncomplete`]).
//!
//! Functions (every monomorphised copy; `CC` = `rustls::conn::ConnectionCommon<Data>`, its
//! address is the session key):
//! - `CC::read_tls(&mut self, &mut dyn Read)` / `CC::write_tls(&mut self, &mut dyn Write)`:
//!   entry + uretprobe. They do the connection's socket IO, so the socket raw tracepoints
//!   learn which socket the session uses (as for OpenSSL's `SSL_read`).
//! - `CC::reader(&mut self)`: entry only, names the session of the thread's next plaintext
//!   read (a `Reader` only points into the connection).
//! - `<CC as PlaintextSink>::write(&mut self, &[u8])` and `write_vectored(&mut self,
//!   &[IoSlice])`: entry + uretprobe (plaintext written; called by `Writer::write`).
//! - `<Reader as io::Read>::read(&mut self, &mut [u8])`: entry + uretprobe (sync users:
//!   `rustls::Stream`); `Reader::into_first_chunk(self)`: entry + uretprobe (the chunk's slice) and
//!   `<Reader as BufRead>::consume(&mut self, usize)`: entry (how much of it the caller took;
//!   tokio-rustls reads this way).
//!
//! Names are demangled with `rustc-demangle` (the compiler team's crate, both manglings) and
//! normalised: hash and generic arguments dropped, `<T>::f` read as `T::f`. Module paths are
//! not compared (they moved between 0.21 and 0.23): the crate (`rustls::…`), the type's last
//! segment, the trait's last segment and the method must match.
//! Limits: needs `.symtab` (or exported symbols); a release build may inline some functions
//! into their callers (then the file is reported incomplete, never half-traced); x86-64 Rust
//! ABI as checked on rustc 1.95 debug builds (see docs/tls.md).

use super::elf::{AnalyzeReason, Probe, ProbeKind, TlsFunction, TlsLibrary, TlsTarget};
use super::fileio::{FileError, OpenedFile};
use super::image::Image;
use object::{Object, ObjectSymbol, SymbolKind};

/// Most rustls probes in one file (each function may have a copy per `Data` type and per
/// codegen unit).
pub const MAX_RUSTLS_PROBES: usize = 64;

/// A string rustls 0.21–0.23 keeps in `.rodata` (its unexpected-EOF error), found in stripped
/// binaries too.
const RUSTLS_MARKER: &[u8] = b"peer closed connection without sending TLS close_notify";

/// Whether `.rodata` of `file` holds rustls's marker string. `img` is the file's bytes or
/// its sparse copy ([`super::sparse`]), which holds a `.rodata` of up to
/// [`MAX_RODATA_BYTES`](super::sparse::MAX_RODATA_BYTES) whole: such a section is searched
/// in memory. A larger one (the sparse copy skips it) is read by `pread` in pieces of
/// [`MARKER_PIECE_BYTES`], so a file is never held whole to learn that it has no rustls.
/// Errors: the file's ([`FileError`]: truncated or changed while read, IO).
pub fn has_marker(file: &OpenedFile, img: &Image) -> Result<bool, FileError> {
    let Some((off, size)) = img.section_file_range(".rodata") else {
        return Ok(false);
    };
    if size <= super::sparse::MAX_RODATA_BYTES {
        return Ok(marker_in(img));
    }
    marker_by_pread(file, off, size)
}

/// Whether rustls's marker string is in `img`'s `.rodata` (as held in memory).
fn marker_in(img: &Image) -> bool {
    img.section_raw(".rodata")
        .is_some_and(|(_, b)| memchr::memmem::find(b, RUSTLS_MARKER).is_some())
}

/// Whether rustls's marker string is in the `size` bytes of `file` at `off`, read piecewise.
fn marker_by_pread(file: &OpenedFile, off: u64, size: u64) -> Result<bool, FileError> {
    find_in_pieces(RUSTLS_MARKER, size, MARKER_PIECE_BYTES, |at, len| {
        file.read_exact_at(off + at, len as usize, MARKER_PIECE_BYTES as usize)
    })
}

/// Whether `needle` occurs in the `size` bytes that `read(at, len)` returns, read `piece`
/// bytes at a time (consecutive pieces overlap by `needle.len() - 1` bytes, so an occurrence
/// across a boundary is found). `piece` must exceed `needle.len()`.
fn find_in_pieces<E>(
    needle: &[u8],
    size: u64,
    piece: u64,
    mut read: impl FnMut(u64, u64) -> Result<Vec<u8>, E>,
) -> Result<bool, E> {
    let overlap = needle.len() as u64 - 1;
    debug_assert!(piece > overlap);
    let mut at = 0;
    while at < size {
        let len = piece.min(size - at);
        if memchr::memmem::find(&read(at, len)?, needle).is_some() {
            return Ok(true);
        }
        if at + len >= size {
            break;
        }
        at += len - overlap;
    }
    Ok(false)
}

/// Bytes of `.rodata` read at a time by [`has_marker`].
pub const MARKER_PIECE_BYTES: u64 = 1 << 20;

/// Which rustls function a demangled, normalised symbol name is, if any.
pub fn classify(demangled: &str) -> Option<TlsFunction> {
    let name = normalise(demangled)?;
    let (self_ty, trait_, method) = split_path(&name)?;
    if !self_ty.starts_with("rustls::") {
        return None;
    }
    let ty = self_ty.rsplit("::").next()?;
    let tr = trait_.map(|t| t.rsplit("::").next().unwrap_or(t));
    use TlsFunction::*;
    Some(match (ty, tr, method) {
        ("ConnectionCommon", None, "read_tls") => RustlsReadTls,
        ("ConnectionCommon", None, "write_tls") => RustlsWriteTls,
        ("ConnectionCommon", None, "reader") => RustlsReader,
        ("ConnectionCommon", Some("PlaintextSink"), "write") => RustlsWrite,
        ("ConnectionCommon", Some("PlaintextSink"), "write_vectored") => RustlsWriteVectored,
        ("Reader", Some("Read"), "read") if trait_ == Some("std::io::Read") => RustlsRead,
        ("Reader", None, "into_first_chunk") => RustlsFirstChunk,
        ("Reader", Some("BufRead"), "consume") if trait_ == Some("std::io::BufRead") => {
            RustlsConsume
        }
        _ => return None,
    })
}

/// Drops generic arguments (`Foo<Bar>` → `Foo`) and unwraps `<T>::f` to `T::f`. `None` for
/// unbalanced brackets.
fn normalise(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize; // inside generic arguments being dropped
    let mut prev = ' ';
    for c in s.chars() {
        if depth > 0 {
            match c {
                '<' => depth += 1,
                '>' if prev != '-' => depth -= 1,
                _ => {}
            }
        } else if c == '<' && (prev.is_alphanumeric() || prev == '_') {
            depth = 1;
        } else {
            out.push(c);
        }
        prev = c;
    }
    if depth != 0 {
        return None;
    }
    if let Some(rest) = out.strip_prefix('<')
        && let Some((inner, tail)) = rest.split_once('>')
        && !inner.contains(" as ")
        && !inner.contains('<')
    {
        return Some(format!("{inner}{tail}"));
    }
    Some(out)
}

/// `(self type path, trait path, method)` of a normalised name: `<A as B>::m` or `a::T::m`.
fn split_path(s: &str) -> Option<(&str, Option<&str>, &str)> {
    if let Some(rest) = s.strip_prefix('<') {
        let (inner, tail) = rest.split_once('>')?;
        let method = tail.strip_prefix("::")?;
        if method.contains("::") {
            return None; // a closure or nested item inside the method
        }
        let (ty, tr) = inner.split_once(" as ")?;
        return Some((ty, Some(tr), method));
    }
    let (ty, method) = s.rsplit_once("::")?;
    Some((ty, None, method))
}

/// The probes each rustls function gets.
fn kinds(f: TlsFunction) -> &'static [ProbeKind] {
    match f {
        TlsFunction::RustlsReader | TlsFunction::RustlsReaderSret | TlsFunction::RustlsConsume => {
            &[ProbeKind::Entry]
        }
        _ => &[ProbeKind::Entry, ProbeKind::Return],
    }
}

/// Functions found, by symbol address (one entry per distinct copy).
fn find(img: &Image) -> Vec<(TlsFunction, u64)> {
    let mut found: Vec<(TlsFunction, u64)> = Vec::new();
    let obj = img.object();
    for sym in obj.symbols().chain(obj.dynamic_symbols()) {
        if sym.is_undefined() || sym.address() == 0 || sym.kind() != SymbolKind::Text {
            continue;
        }
        let Ok(raw) = sym.name_bytes() else { continue };
        // Cheap filter before demangling: the crate name appears in every mangled path.
        if !(raw.starts_with(b"_ZN") || raw.starts_with(b"_R"))
            || memchr::memmem::find(raw, b"rustls").is_none()
        {
            continue;
        }
        let Ok(raw) = std::str::from_utf8(raw) else {
            continue;
        };
        let Ok(d) = rustc_demangle::try_demangle(raw) else {
            continue;
        };
        if let Some(mut f) = classify(&format!("{d:#}")) {
            if f == TlsFunction::RustlsReader
                && img
                    .bytes_at_vaddr(sym.address(), sym.size().clamp(1, 256))
                    .is_some_and(returns_through_rdi)
            {
                f = TlsFunction::RustlsReaderSret;
            }
            if found.contains(&(f, sym.address())) {
                continue;
            }
            found.push((f, sym.address()));
        }
    }
    found.sort_by_key(|&(f, a)| (f.symbol(), a));
    found
}

/// Whether the code (a function's start) stores through RDI's incoming value — a hidden
/// result pointer (`sret`): `reader()` then gets `&mut self` in RSI. Decodes up to 32
/// instructions, following copies of RDI into other registers, until RET.
pub fn returns_through_rdi(code: &[u8]) -> bool {
    use iced_x86::{Code, Decoder, DecoderOptions, Instruction, OpKind, Register};
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut alias = vec![Register::RDI];
    let mut ins = Instruction::default();
    for _ in 0..32 {
        if !decoder.can_decode() {
            break;
        }
        decoder.decode_out(&mut ins);
        if ins.is_invalid() || ins.code() == Code::Retnq {
            break;
        }
        if ins.op_count() > 0
            && ins.op0_kind() == OpKind::Memory
            && alias.contains(&ins.memory_base())
        {
            return true;
        }
        if ins.op_count() == 2 && ins.op0_kind() == OpKind::Register {
            let dst = full(ins.op0_register());
            let copy = ins.mnemonic() == iced_x86::Mnemonic::Mov
                && ins.op1_kind() == OpKind::Register
                && alias.contains(&full(ins.op1_register()));
            if copy {
                alias.push(dst);
            } else {
                alias.retain(|&r| r != dst);
            }
        }
    }
    false
}

/// The 64-bit register a 32-bit general register writes (writing EDI clears RDI's top half).
fn full(r: iced_x86::Register) -> iced_x86::Register {
    use iced_x86::Register::*;
    match r {
        EAX => RAX,
        ECX => RCX,
        EDX => RDX,
        EBX => RBX,
        ESI => RSI,
        EDI => RDI,
        R8D => R8,
        R9D => R9,
        R10D => R10,
        R11D => R11,
        other => other,
    }
}

/// The rustls target of `img`: see the module doc.
/// Files without rustls's marker string are not searched (no pass over their symbols).
pub fn rustls_target(img: &Image) -> Result<Option<TlsTarget>, AnalyzeReason> {
    if !marker_in(img) {
        return Ok(None);
    }
    let found = find(img);
    if found.is_empty() {
        return Err(AnalyzeReason::NoTlsSymbols);
    }
    let has = |f: TlsFunction| found.iter().any(|&(g, _)| g == f);
    use TlsFunction::*;
    let mut missing: Vec<&'static str> = [RustlsReadTls, RustlsWriteTls]
        .into_iter()
        .filter(|&f| !has(f))
        .map(TlsFunction::symbol)
        .collect();
    if !has(RustlsReader) && !has(RustlsReaderSret) {
        missing.push(RustlsReader.symbol());
    }
    if !has(RustlsWrite) && !has(RustlsWriteVectored) {
        missing.push(RustlsWrite.symbol());
    }
    let can_read = has(RustlsRead) || (has(RustlsFirstChunk) && has(RustlsConsume));
    if !can_read {
        missing.push(RustlsRead.symbol());
    }
    if !missing.is_empty() {
        return Err(AnalyzeReason::RustlsIncomplete(missing.join(", ")));
    }
    let mut probes = Vec::new();
    for &(function, address) in &found {
        let offset = img
            .vaddr_to_offset(address)
            .ok_or(AnalyzeReason::AddressNotInFile {
                symbol: function.symbol(),
                address,
            })?;
        for &kind in kinds(function) {
            probes.push(Probe {
                function,
                kind,
                offset,
            });
        }
    }
    if probes.len() > MAX_RUSTLS_PROBES {
        return Err(AnalyzeReason::TooManyProbes {
            count: probes.len(),
            max: MAX_RUSTLS_PROBES,
        });
    }
    probes.sort_by_key(|p| p.kind != ProbeKind::Entry);
    let version = rustls_version(img);
    Ok(Some(TlsTarget {
        library: TlsLibrary::Rustls { version },
        probes,
    }))
}

/// rustls version from the panic-location paths in `.rodata` (`…/rustls-0.23.46/src/…`),
/// `None` when absent (a vendored or path dependency).
fn rustls_version(img: &Image) -> Option<String> {
    let rodata = img.section_raw(".rodata").map(|(_, b)| b)?;
    let at = memchr::memmem::find(rodata, b"/rustls-0.")?;
    let rest = &rodata[at + b"/rustls-".len()..];
    let len = rest
        .iter()
        .take(24)
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    std::str::from_utf8(&rest[..len])
        .ok()
        .map(|s| s.trim_end_matches('.').to_string())
}

#[cfg(test)]
#[path = "rustls_tests.rs"]
mod tests;

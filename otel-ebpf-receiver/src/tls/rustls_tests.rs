//! Tests of [`super`]: name classification (both manglings) and discovery on this test
//! binary, which links rustls 0.23 through the receiver's HTTPS clients.

use super::*;
use crate::tls::fileio::MAX_IMAGE_BYTES;
use crate::tls::image::FileBytes;

fn demangled(raw: &str) -> String {
    format!(
        "{:#}",
        rustc_demangle::try_demangle(raw).expect("a Rust symbol")
    )
}

#[test]
fn demangled_names_of_both_manglings_are_classified() {
    use TlsFunction::*;
    let cases = [
        // Legacy mangling (rustc's default): generic parameters appear by name.
        (
            "rustls::conn::ConnectionCommon<Data>::read_tls",
            Some(RustlsReadTls),
        ),
        (
            "rustls::conn::ConnectionCommon<Data>::write_tls",
            Some(RustlsWriteTls),
        ),
        (
            "rustls::conn::ConnectionCommon<Data>::reader",
            Some(RustlsReader),
        ),
        (
            "<rustls::conn::ConnectionCommon<T> as rustls::conn::connection::PlaintextSink>::write",
            Some(RustlsWrite),
        ),
        (
            "<rustls::conn::ConnectionCommon<T> as rustls::conn::connection::PlaintextSink>::write_vectored",
            Some(RustlsWriteVectored),
        ),
        (
            "<rustls::conn::connection::Reader as std::io::Read>::read",
            Some(RustlsRead),
        ),
        (
            "rustls::conn::connection::Reader::into_first_chunk",
            Some(RustlsFirstChunk),
        ),
        (
            "<rustls::conn::connection::Reader as std::io::BufRead>::consume",
            Some(RustlsConsume),
        ),
        // v0 mangling: concrete generic arguments, inherent impls in brackets.
        (
            "<rustls::conn::ConnectionCommon<rustls::client::client_conn::ClientConnectionData>>::read_tls",
            Some(RustlsReadTls),
        ),
        (
            "<rustls::conn::ConnectionCommon<rustls::server::server_conn::ServerConnectionData> as rustls::conn::connection::PlaintextSink>::write",
            Some(RustlsWrite),
        ),
        // rustls 0.21 paths (no `connection` module).
        (
            "<rustls::conn::Reader as std::io::Read>::read",
            Some(RustlsRead),
        ),
        // Not ours: other types, traits, crates, closures inside the functions.
        ("<rustls::conn::Writer as std::io::Write>::write", None),
        ("rustls::conn::connection::Connection::read_tls", None),
        (
            "<rustls::conn::connection::Reader as std::io::BufRead>::fill_buf",
            None,
        ),
        ("<foo::Reader as std::io::Read>::read", None),
        (
            "<rustls::conn::connection::Reader as futures::io::Read>::read",
            None,
        ),
        (
            "rustls::conn::ConnectionCommon<Data>::read_tls::{{closure}}",
            None,
        ),
        ("tokio_rustls::common::Stream<IO,C>::read_io", None),
        ("rustls::conn::ConnectionCommon<Data", None),
    ];
    for (name, want) in cases {
        assert_eq!(classify(name), want, "{name}");
    }
}

#[test]
fn legacy_symbols_demangle_to_classified_names() {
    // `_ZN` symbol of ConnectionCommon<Data>::read_tls as rustc 1.95 emits it.
    let raw = "_ZN6rustls4conn28ConnectionCommon$LT$Data$GT$8read_tls17h0d26e1ad3be892e9E";
    assert_eq!(classify(&demangled(raw)), Some(TlsFunction::RustlsReadTls));
}

#[test]
fn a_hidden_result_pointer_is_told_from_a_self_argument() {
    // `ConnectionCommon::reader` as rustc 1.95 (debug) emits it: RDI is the result slot
    // (`mov [rdi], rsi` stores the Reader), RSI is `&mut self`.
    let sret = [
        0x48, 0x89, 0xf1, 0x48, 0x89, 0xf8, 0x48, 0x89, 0x4c, 0x24, 0xf0, 0x48, 0x89, 0x4c, 0x24,
        0xf8, 0x48, 0x89, 0xce, 0x48, 0x83, 0xc6, 0x50, 0x8a, 0x91, 0x3b, 0x03, 0x00, 0x00, 0x8a,
        0x89, 0x3c, 0x03, 0x00, 0x00, 0x48, 0x89, 0x37, 0x80, 0xe2, 0x01, 0x88, 0x57, 0x08, 0x80,
        0xe1, 0x01, 0x88, 0x4f, 0x09, 0xc3,
    ];
    assert!(returns_through_rdi(&sret));
    // `PlaintextSink::write` (self in RDI, only spilled to the stack and read through).
    let self_in_rdi = [
        0x48, 0x83, 0xec, 0x78, 0x48, 0x89, 0x3c, 0x24, 0x48, 0x89, 0x74, 0x24, 0x08, 0x48, 0x89,
        0x54, 0x24, 0x10, 0x48, 0x89, 0x7c, 0x24, 0x50, 0xc3,
    ];
    assert!(!returns_through_rdi(&self_in_rdi));
    // A copy of RDI stored through (`mov rax, rdi; mov [rax], rsi; ret`); RDI overwritten
    // first (`xor edi, edi; mov [rdi], rsi`) is not the incoming pointer.
    assert!(returns_through_rdi(&[
        0x48, 0x89, 0xf8, 0x48, 0x89, 0x30, 0xc3
    ]));
    assert!(!returns_through_rdi(&[0x31, 0xff, 0x48, 0x89, 0x37, 0xc3]));
    assert!(!returns_through_rdi(&[]));
}

#[test]
fn this_test_binary_has_every_rustls_function() {
    let exe = std::fs::canonicalize("/proc/self/exe").unwrap();
    let bytes = FileBytes::open(&exe).unwrap();
    let img = Image::parse(bytes.bytes()).unwrap();
    let Some(t) = rustls_target(&img).unwrap() else {
        panic!("no rustls found in {}", exe.display());
    };
    assert_eq!(
        t.library,
        TlsLibrary::Rustls {
            version: Some("0.23.46".into())
        }
    );
    use TlsFunction::*;
    // rustc 1.95 returns `Reader` through a hidden pointer: `reader()` is the sret form.
    for f in [
        RustlsReadTls,
        RustlsWriteTls,
        RustlsReaderSret,
        RustlsWrite,
        RustlsFirstChunk,
        RustlsConsume,
    ] {
        assert!(t.probes.iter().any(|p| p.function == f), "{f:?} missing");
    }
    // Entry probes first; uretprobes only where a result is read.
    let first_ret = t
        .probes
        .iter()
        .position(|p| p.kind == ProbeKind::Return)
        .unwrap();
    assert!(
        t.probes[..first_ret]
            .iter()
            .all(|p| p.kind == ProbeKind::Entry)
    );
    assert!(
        t.probes
            .iter()
            .all(|p| !(p.function == RustlsConsume && p.kind == ProbeKind::Return))
    );
    // Every offset is a function start in the file: identical to its symbol's.
    assert!(
        t.probes
            .iter()
            .all(|p| p.offset > 0 && p.offset < bytes.bytes().len() as u64)
    );
}

#[test]
fn a_file_without_the_marker_is_not_searched_and_a_stripped_one_is_reported() {
    // The marker in .rodata without any symbol: stripped.
    let exe = std::fs::canonicalize("/proc/self/exe").unwrap();
    let stripped = std::env::temp_dir().join(format!("rustls-stripped-{}", std::process::id()));
    let ok = std::process::Command::new("objcopy")
        .arg("--strip-all")
        .arg(&exe)
        .arg(&stripped)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let bytes = FileBytes::open(&stripped).unwrap();
        let img = Image::parse(bytes.bytes()).unwrap();
        let r = rustls_target(&img);
        let _ = std::fs::remove_file(&stripped);
        assert!(matches!(r, Err(AnalyzeReason::NoTlsSymbols)), "{r:?}");
        assert_eq!(r.unwrap_err().label(), "stripped");
    } else {
        let _ = std::fs::remove_file(&stripped);
        panic!("objcopy (binutils) is needed for this test");
    }
    // A C program (the shell) has no rustls.
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    let bytes = FileBytes::open(&sh).unwrap();
    let img = Image::parse(bytes.bytes()).unwrap();
    assert!(rustls_target(&img).unwrap().is_none());
}

#[test]
fn the_marker_is_found_in_any_piece_and_across_piece_boundaries() {
    let needle = b"close_notify";
    for size in [0u64, 5, 64, 200, 1000] {
        for pos in 0..size.saturating_sub(needle.len() as u64 - 1) {
            let mut data = vec![b'x'; size as usize];
            data[pos as usize..pos as usize + needle.len()].copy_from_slice(needle);
            let mut reads = 0u64;
            let found = find_in_pieces::<()>(needle, size, 64, |at, len| {
                reads += len;
                Ok(data[at as usize..(at + len) as usize].to_vec())
            })
            .unwrap();
            assert!(found, "size {size} at {pos}");
            // Each 64-byte piece advances by 64 - 11 bytes (the overlap).
            assert!(reads <= size * 64 / 53 + 64, "read {reads} of {size}");
        }
        let data = vec![b'x'; size as usize];
        let found = find_in_pieces::<()>(needle, size, 64, |at, len| {
            Ok(data[at as usize..(at + len) as usize].to_vec())
        })
        .unwrap();
        assert!(!found, "size {size} without the needle");
    }
    // A read error is the answer.
    assert_eq!(find_in_pieces(needle, 100, 64, |_, _| Err("io")), Err("io"));
}

#[test]
fn the_marker_is_found_in_memory_and_by_pread() {
    let exe = std::fs::canonicalize("/proc/self/exe").unwrap();
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    for (path, rustls) in [(exe, true), (sh, false)] {
        let opened = OpenedFile::open(&path, MAX_IMAGE_BYTES).unwrap();
        let bytes = FileBytes::open(&path).unwrap();
        let img = Image::parse(bytes.bytes()).unwrap();
        // The path a `.rodata` of any size takes (this one is small enough for memory), and
        // the one beyond the sparse copy's limit (pieces read from the file).
        assert_eq!(
            has_marker(&opened, &img).unwrap(),
            rustls,
            "{}",
            path.display()
        );
        let (off, size) = img.section_file_range(".rodata").unwrap();
        assert_eq!(
            marker_by_pread(&opened, off, size).unwrap(),
            rustls,
            "{}",
            path.display()
        );
    }
}

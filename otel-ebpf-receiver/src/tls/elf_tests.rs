//! Tests of [`super`] against the real files of this machine (libssl, libgnutls, node, curl,
//! Go binaries built here) and against broken input.

use super::*;
use crate::tls::godwarf::OffsetSource;
use crate::tls::golang::PclntabFormat;
use crate::tls::testutil::go_clients;
use object::{Object, ObjectSection, ObjectSymbol};
use std::process::Command;

const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
const LIBGNUTLS: &str = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30";

/// File offset of `symbol` computed through its section header (independent of the
/// segment-based conversion under test): `st_value - sh_addr + sh_offset`.
fn offset_via_section(path: &str, symbol: &str) -> u64 {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let sym = file
        .dynamic_symbols()
        .chain(file.symbols())
        .find(|s| s.name() == Ok(symbol) && !s.is_undefined())
        .unwrap_or_else(|| panic!("{symbol} not in {path}"));
    let section = file.section_by_index(sym.section_index().unwrap()).unwrap();
    sym.address() - section.address() + section.file_range().unwrap().0
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is needed by this test (scripts/setup.sh): {e}"));
    assert!(out.status.success(), "{cmd} {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn entry_offset(a: &FileAnalysis, f: TlsFunction) -> Option<u64> {
    a.targets
        .iter()
        .flat_map(|t| &t.probes)
        .find(|p| p.function == f && p.kind == ProbeKind::Entry)
        .map(|p| p.offset)
}

#[test]
fn system_libssl_is_openssl3_shared() {
    let a = analyze_file(Path::new(LIBSSL)).expect("libssl3 installed (scripts/setup.sh)");
    assert_eq!(a.targets.len(), 1);
    let TlsLibrary::OpenSsl {
        flavour,
        version,
        linkage,
        has_get_fd,
        ..
    } = &a.targets[0].library
    else {
        panic!("{a:?}")
    };
    assert_eq!(*flavour, OpenSslFlavour::OpenSsl3);
    assert_eq!(
        version.as_deref(),
        Some("3"),
        "libssl has no version string: SONAME"
    );
    assert_eq!(*linkage, Linkage::Shared);
    assert!(*has_get_fd);
    // 4 functions × (entry, uretprobe), entries first, offsets through the section headers.
    assert_eq!(a.targets[0].probes.len(), 8);
    assert!(
        a.targets[0].probes[..4]
            .iter()
            .all(|p| p.kind == ProbeKind::Entry)
    );
    for f in [
        TlsFunction::SslRead,
        TlsFunction::SslWrite,
        TlsFunction::SslReadEx,
        TlsFunction::SslWriteEx,
    ] {
        assert_eq!(
            entry_offset(&a, f),
            Some(offset_via_section(LIBSSL, f.symbol())),
            "{f:?}"
        );
    }
    assert!(a.build_id.is_some());
}

#[test]
fn system_gnutls_version_matches_package() {
    let a = analyze_file(Path::new(LIBGNUTLS)).expect("libgnutls30 installed (scripts/setup.sh)");
    let TlsLibrary::GnuTls { version } = &a.targets[0].library else {
        panic!("{a:?}")
    };
    let pkg = command_output("dpkg-query", &["-W", "-f=${Version}", "libgnutls30"]);
    let version = version.as_deref().unwrap();
    assert!(pkg.starts_with(version), "package {pkg}, found {version}");
    for f in [TlsFunction::GnutlsRecordRecv, TlsFunction::GnutlsRecordSend] {
        assert_eq!(
            entry_offset(&a, f),
            Some(offset_via_section(LIBGNUTLS, f.symbol()))
        );
    }
}

#[test]
fn node_bundles_openssl_statically() {
    let node = command_output("sh", &["-c", "command -v node"]);
    let a = analyze_file(Path::new(&node)).unwrap();
    let dynamic_libssl = command_output("ldd", &[&node]).contains("libssl");
    if dynamic_libssl {
        // A distribution node linking libssl: the executable itself holds no target, the
        // library (found by maps/needed) does.
        assert!(!a.is_tls(), "{a:?}");
        return;
    }
    let TlsLibrary::OpenSsl {
        flavour,
        version,
        linkage,
        ..
    } = &a.targets[0].library
    else {
        panic!("{a:?}")
    };
    let reported = command_output(&node, &["-p", "process.versions.openssl"]);
    let version = version.as_deref().unwrap();
    let plain = |v: &str| v.split('+').next().unwrap().to_string();
    assert_eq!(plain(&reported), plain(version), "node says {reported}");
    assert_eq!(*linkage, Linkage::Static);
    let expected = if reported.starts_with('3') {
        OpenSslFlavour::OpenSsl3
    } else {
        OpenSslFlavour::OpenSsl1_1
    };
    assert_eq!(*flavour, expected);
    assert_eq!(
        entry_offset(&a, TlsFunction::SslRead),
        Some(offset_via_section(&node, "SSL_read"))
    );
}

#[test]
fn curl_executable_has_no_tls_itself() {
    let a = analyze_file(Path::new("/usr/bin/curl")).expect("curl installed");
    assert!(!a.is_tls(), "curl reaches libssl through libcurl: {a:?}");
}

fn check_go(path: &Path, reference: Option<&FileAnalysis>) -> FileAnalysis {
    let a = analyze_file(path).unwrap();
    assert_eq!(a.targets.len(), 1, "{a:?}");
    let TlsLibrary::Go { version, .. } = &a.targets[0].library else {
        panic!("{a:?}")
    };
    // Version equals what the toolchain says of itself ("go version go1.19.8 linux/amd64").
    let go = command_output("go", &["version"]);
    assert_eq!(go.split_whitespace().nth(2), Some(version.raw.as_str()));
    let data = std::fs::read(path).unwrap();
    for f in [TlsFunction::GoConnRead, TlsFunction::GoConnWrite] {
        let entry = entry_offset(&a, f).unwrap();
        let rets: Vec<u64> = a.targets[0]
            .probes
            .iter()
            .filter(|p| p.function == f && p.kind == ProbeKind::ReturnInstruction)
            .map(|p| p.offset)
            .collect();
        assert!(!rets.is_empty());
        for r in &rets {
            assert!(*r > entry && *r < entry + golang::MAX_FUNCTION_BYTES);
            assert_eq!(data[*r as usize], 0xc3, "{f:?} RET at {r:#x}");
        }
        if let Some(reference) = reference {
            // Same program, stripped: the same code bytes at both entries, same RET layout.
            let r_entry = entry_offset(reference, f).unwrap();
            let r_data = std::fs::read(&reference.path).unwrap();
            let len = 64;
            assert_eq!(
                &data[entry as usize..][..len],
                &r_data[r_entry as usize..][..len]
            );
            let r_rets = reference.targets[0]
                .probes
                .iter()
                .filter(|p| p.function == f && p.kind == ProbeKind::ReturnInstruction)
                .map(|p| p.offset - r_entry);
            assert!(
                r_rets.eq(rets.iter().map(|r| r - entry)),
                "{f:?} RET layout differs"
            );
        }
    }
    a
}

#[test]
fn go_binary_with_symbols() {
    let (normal, _) = go_clients();
    let a = check_go(normal, None);
    let TlsLibrary::Go {
        symbols, offsets, ..
    } = &a.targets[0].library
    else {
        unreachable!()
    };
    assert_eq!(*symbols, GoSymbolSource::Symtab);
    let path = normal.to_str().unwrap();
    for f in [TlsFunction::GoConnRead, TlsFunction::GoConnWrite] {
        assert_eq!(
            entry_offset(&a, f),
            Some(offset_via_section(path, f.symbol()))
        );
    }
    // DWARF present: offsets come from it, and they equal the documented table.
    assert_eq!(offsets.source, OffsetSource::Dwarf);
    assert_eq!(
        GoTlsOffsets {
            source: OffsetSource::Table,
            ..*offsets
        },
        GoTlsOffsets::TABLE
    );
    // The pclntab agrees with .symtab on entries (the stripped path's source of truth).
    let bytes = std::fs::read(normal).unwrap();
    let img = Image::parse(&bytes).unwrap();
    let names = ["crypto/tls.(*Conn).Read", "crypto/tls.(*Conn).Write"];
    let (_, from_pcln) = golang::pclntab_lookup(&img, &names).unwrap();
    let from_sym = img.find_symbols(&names);
    for (p, s) in from_pcln.iter().zip(&from_sym) {
        let (p, s) = (p.as_ref().unwrap(), s.as_ref().unwrap());
        assert_eq!(p.entry, s.address);
        assert!(
            p.size >= s.size && p.size < s.size + 64,
            "pclntab size includes padding only"
        );
    }
}

#[test]
fn go_binary_stripped_uses_pclntab() {
    let (normal, stripped) = go_clients();
    let reference = analyze_file(normal).unwrap();
    let a = check_go(stripped, Some(&reference));
    let TlsLibrary::Go {
        symbols, offsets, ..
    } = &a.targets[0].library
    else {
        unreachable!()
    };
    assert!(
        matches!(symbols, GoSymbolSource::Pclntab(PclntabFormat::Go118)),
        "{symbols:?}"
    );
    assert_eq!(*offsets, GoTlsOffsets::TABLE, "no DWARF after -w");
}

#[test]
fn untraceable_files_are_typed_errors() {
    let dir = std::env::temp_dir().join(format!("tls-elf-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A script.
    let script = dir.join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let e = analyze_file(&script).unwrap_err();
    assert_eq!(e.reason.label(), "not_elf");
    assert!(e.to_string().starts_with(script.to_str().unwrap()), "{e}");
    // A file named like libssl without its symbols ("stripped").
    let fake = dir.join("libssl.so.3");
    std::fs::copy("/usr/bin/true", &fake).unwrap();
    let e = analyze_file(&fake).unwrap_err();
    assert!(matches!(e.reason, AnalyzeReason::NoTlsSymbols), "{e}");
    // aarch64.
    let mut arm = std::fs::read(LIBSSL).unwrap();
    arm[18..20].copy_from_slice(&object::elf::EM_AARCH64.to_le_bytes());
    let e = analyze_bytes(Path::new("arm"), &arm).unwrap_err();
    assert_eq!(e.reason.label(), "unsupported_arch");
    assert!(e.to_string().contains("aarch64"));
    // Missing file.
    let e = analyze_file(&dir.join("missing")).unwrap_err();
    assert_eq!(e.reason.label(), "unreadable");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Truncated and randomly corrupted ELF files: an error or an answer, never a panic.
#[test]
fn corrupted_elf_never_panics() {
    let mut seeds = vec![std::fs::read(LIBSSL).unwrap()];
    let (normal, stripped) = go_clients();
    seeds.push(std::fs::read(stripped).unwrap());
    seeds.push(std::fs::read(normal).unwrap());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut errors = 0;
    for seed in &seeds {
        for cut in [
            0,
            1,
            4,
            16,
            63,
            64,
            100,
            4096,
            seed.len() / 2,
            seed.len() - 1,
        ] {
            errors += analyze_bytes(Path::new("cut"), &seed[..cut]).is_err() as u32;
        }
        for _ in 0..60 {
            let mut data = seed.clone();
            // Corrupt headers and tables, where parsing decisions are made.
            for _ in 0..(1 + next() % 16) {
                let region = if next() % 2 == 0 { 4096 } else { data.len() };
                let i = (next() as usize) % region;
                data[i] = next() as u8;
            }
            let _ = analyze_bytes(Path::new("fuzz"), &data);
        }
    }
    assert!(
        errors >= 3 * 8,
        "truncations must mostly fail, got {errors} errors"
    );
}

#[test]
fn version_tokens_prefer_the_most_precise() {
    let data = b"enable OpenSSL 3.0 legacy provider\0OpenSSL 3.0.19+quic 27 Jan 2026\0OpenSSL x\0OpenSSL 9.9\0";
    let found: Vec<_> = super::versions_after(data, b"OpenSSL ").collect();
    assert_eq!(found, ["3.0", "3.0.19+quic", "9.9"]);
    assert!(
        super::versions_after(b"OpenSSL ", b"OpenSSL ")
            .next()
            .is_none()
    );
}

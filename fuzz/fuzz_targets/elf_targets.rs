//! Fuzz target: TLS discovery's file parsers.
//!
//! Stage: tls (per-file analysis). Input: arbitrary bytes, used as an ELF file for
//! `analyze_bytes` (symbols, segments, Go buildinfo/pclntab/DWARF, RET decoding), as a
//! `.gopclntab` for `parse_pclntab`, as `OpenSSL_version_num`'s code, as an `ld.so.cache`, and (when UTF-8) as
//! `/proc/PID/maps` text. Checks: none of them panics; every probe offset returned lies inside
//! the input.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use otel_ebpf_receiver::tls::{elf, golang, ldcache, maps};

fuzz_target!(|data: &[u8]| {
    if let Ok(analysis) = elf::analyze_bytes(Path::new("fuzz"), data) {
        for t in &analysis.targets {
            for p in &t.probes {
                assert!((p.offset as usize) < data.len(), "probe offset outside the file");
            }
        }
    }
    let _ = golang::parse_pclntab(data, Some(0x40_1000), &["crypto/tls.(*Conn).Read"]);
    let _ = elf::openssl_version_from_code(data);
    let _ = ldcache::LdCache::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let files = maps::parse_maps(text);
        let _ = maps::candidates(&files, files.first().map(|f| f.path.as_path()));
    }
});

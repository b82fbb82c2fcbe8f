//! Times each stage of the TLS analysis of files (the first analysis of a never-seen binary).
//!
//! `cargo run --release --example tls_stages -- FILE [FILE...]`: per file, the time to read
//! it, parse the ELF headers, look the TLS symbols up (`.dynsym`, then `.symtab`), read
//! `.gopclntab`, read DWARF field offsets, scan the RETs of the Go functions, and the whole
//! [`analyze_file`](otel_ebpf_receiver::tls::elf::analyze_file); then the attacher's path:
//! the sparse load (headers and needed sections by `pread`), the whole
//! `analyze_process_file`, and the `DT_NEEDED` read done on every exec (best of 3 runs each,
//! warm page cache).
use std::path::Path;
use std::time::{Duration, Instant};

use otel_ebpf_receiver::tls::maps::FileKey;
use otel_ebpf_receiver::tls::registry::ProcessFile;
use otel_ebpf_receiver::tls::{dynread, elf, fileio, godwarf, golang, image, sparse};

fn best<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..3 {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (best, out.unwrap())
}

fn main() {
    for arg in std::env::args().skip(1) {
        let path = Path::new(&arg);
        let (t_read, bytes) = best(|| image::FileBytes::open(path).expect("readable ELF"));
        let (t_parse, _) = best(|| image::Image::parse(bytes.bytes()).map(|_| ()));
        let img = image::Image::parse(bytes.bytes()).expect("ELF");
        let names = ["SSL_read", "SSL_write", "crypto/tls.(*Conn).Read"];
        let (t_dyn, _) = best(|| {
            let mut f = vec![None; names.len()];
            img.find_symbols_in(&names, &mut f, &[true]);
        });
        let (t_sym, _) = best(|| {
            let mut f = vec![None; names.len()];
            img.find_symbols_in(&names, &mut f, &[false]);
            f
        });
        let go = golang::is_go(&img);
        let (t_pcln, funcs) = best(|| {
            golang::pclntab_lookup(
                &img,
                &["crypto/tls.(*Conn).Read", "crypto/tls.(*Conn).Write"],
            )
        });
        let (t_dwarf, _) = best(|| godwarf::dwarf_field_offsets(&img).ok());
        let (t_ret, _) = best(|| {
            let mut n = 0;
            if let Ok((_, funcs)) = &funcs {
                for f in funcs.iter().flatten() {
                    if let Some(code) = img.bytes_at_vaddr(f.entry, f.size) {
                        n += golang::ret_offsets(code).len();
                    }
                }
            }
            n
        });
        let (t_all, a) = best(|| elf::analyze_file(path));
        let file = ProcessFile {
            key: FileKey::from_metadata(&std::fs::metadata(path).unwrap()),
            path: path.to_path_buf(),
        };
        let (t_sparse_load, read) = best(|| {
            let f = fileio::OpenedFile::open(path, fileio::MAX_IMAGE_BYTES).unwrap();
            sparse::SparseFile::load(&f)
                .map(|s| s.bytes_read())
                .unwrap_or(0)
        });
        let (t_fast, fast) = best(|| elf::analyze_process_file(&file));
        let (t_dynread, _) = best(|| {
            let f = fileio::OpenedFile::open(path, fileio::MAX_IMAGE_BYTES).unwrap();
            dynread::read_dynamic_strings(&f).map(|d| d.needed.len())
        });
        println!(
            "{arg}: {} MB go={go}\n  whole file: read {t_read:?} parse {t_parse:?} dynsym {t_dyn:?} \
             symtab {t_sym:?} gopclntab {t_pcln:?} dwarf {t_dwarf:?} rets {t_ret:?} | analyze_file \
             {t_all:?} targets={}\n  attacher path: sparse load {t_sparse_load:?} ({} KB read) | \
             analyze_process_file {t_fast:?} targets={} | DT_NEEDED by pread {t_dynread:?}",
            bytes.bytes().len() >> 20,
            a.map(|a| a.targets.len()).unwrap_or(0),
            read >> 10,
            fast.map(|a| a.targets.len()).unwrap_or(0),
        );
    }
}

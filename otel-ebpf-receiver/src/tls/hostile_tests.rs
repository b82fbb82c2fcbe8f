//! Hostile files where TLS discovery looks: FIFOs, devices, huge sparse files, files truncated
//! while analysed, DWARF decompression bombs, symlinks out of a process's root. Each must give
//! a prompt, labelled error (never a hang, a crash or an unbounded allocation). Real files in
//! a temporary directory; device nodes need root (the test suite runs as root).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use super::elf::analyze_file;
use super::image::{FileBytes, Image};
use super::needed::{ResolveContext, resolve_needed};

const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

/// A fresh temporary directory for one test.
fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tls-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// A character device node like `/dev/zero` (1, 5) at `p`.
fn mknod_zero(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: NUL-terminated path.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) };
    assert_eq!(
        r,
        0,
        "mknod needs root: {}",
        std::io::Error::last_os_error()
    );
}

/// Runs `f` on a thread; panics if it does not return within 10 s (a hang).
fn within_10s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what}: still blocked after 10 s"))
}

#[test]
fn fifo_device_and_huge_sparse_file_are_refused_at_once() {
    let d = tmpdir("kinds");
    let fifo = d.join("libssl.so.3");
    mkfifo(&fifo);
    let zero = d.join("zero");
    mknod_zero(&zero);
    let sparse = d.join("huge");
    {
        let f = std::fs::File::create(&sparse).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"\x7fELF\x02\x01\x01", 0).unwrap();
        f.set_len(2 << 30).unwrap(); // 2 GiB, no blocks
    }
    let cases = [
        (fifo, "not_regular_file"),
        (zero, "not_regular_file"),
        (sparse, "too_large"),
    ];
    for (path, label) in cases {
        let p = path.clone();
        let r = within_10s("analyze_file", move || analyze_file(&p).map(|_| ()));
        let e = r.expect_err("hostile file analysed");
        assert_eq!(e.reason.label(), label, "{}: {e}", path.display());
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn file_truncated_after_open_gives_no_sigbus() {
    let d = tmpdir("trunc");
    let copy = d.join("libssl.so.3");
    std::fs::copy(LIBSSL, &copy).expect("libssl3 installed (scripts/setup.sh)");
    let bytes = FileBytes::open(&copy).unwrap();
    // Another process truncates the library while we analyse it: with a mapping, touching
    // its pages now raises SIGBUS and kills the receiver.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_len(0)
        .unwrap();
    let img = Image::parse(bytes.bytes()).unwrap();
    assert!(img.find_symbols(&["SSL_read"])[0].is_some());
    std::fs::remove_dir_all(&d).unwrap();
}

/// `ld.so.cache` and a needed library replaced by a FIFO, a device or a huge file inside a
/// container root: resolution returns (the library counted unreadable), never blocks.
#[test]
fn needed_resolution_in_a_hostile_root_returns() {
    let root = tmpdir("root");
    for dir in ["bin", "etc", "lib/x86_64-linux-gnu"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy("/usr/bin/true", root.join("bin/true")).unwrap();
    for (cache_kind, lib_kind) in [("fifo", "fifo"), ("zero", "zero"), ("huge", "fifo")] {
        let cache = root.join("etc/ld.so.cache");
        let lib = root.join("lib/x86_64-linux-gnu/libc.so.6");
        let _ = std::fs::remove_file(&cache);
        let _ = std::fs::remove_file(&lib);
        for (path, kind) in [(&cache, cache_kind), (&lib, lib_kind)] {
            match kind {
                "fifo" => mkfifo(path),
                "zero" => mknod_zero(path),
                _ => std::fs::File::create(path)
                    .unwrap()
                    .set_len(4 << 30)
                    .unwrap(),
            }
        }
        let r = root.clone();
        let (ctx_cache, needed) = within_10s("resolve_needed", move || {
            let ctx = ResolveContext::for_root(r, b"");
            let n = resolve_needed(Path::new("/bin/true"), &ctx);
            (ctx.cache.is_some(), n)
        });
        assert!(!ctx_cache, "{cache_kind} ld.so.cache parsed");
        let needed = needed.unwrap();
        assert!(
            needed.libraries.is_empty(),
            "{lib_kind}: {:?}",
            needed.libraries
        );
        assert_eq!(needed.unresolved.len(), 1, "{needed:?}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// A needed library that is a symlink out of the container root (absolute and `..`) resolves
/// inside the root (where it does not exist), never to the host's file.
#[test]
fn symlinks_do_not_leave_the_root() {
    let root = tmpdir("escape");
    for dir in ["bin", "lib/x86_64-linux-gnu"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy("/usr/bin/true", root.join("bin/true")).unwrap();
    let lib = root.join("lib/x86_64-linux-gnu/libc.so.6");
    for target in [
        "/usr/lib/x86_64-linux-gnu/libc.so.6".to_string(),
        format!(
            "../../../../../../..{}",
            "/usr/lib/x86_64-linux-gnu/libc.so.6"
        ),
    ] {
        let _ = std::fs::remove_file(&lib);
        std::os::unix::fs::symlink(&target, &lib).unwrap();
        let ctx = ResolveContext::for_root(root.clone(), b"");
        let needed = resolve_needed(Path::new("/bin/true"), &ctx).unwrap();
        assert!(needed.libraries.is_empty(), "{target}: {needed:?}");
        let opened = super::fileio::OpenedFile::open_in_root(
            &root,
            Path::new("/lib/x86_64-linux-gnu/libc.so.6"),
            super::fileio::MAX_IMAGE_BYTES,
        );
        assert!(
            matches!(&opened, Err(super::fileio::FileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound),
            "{target}: {opened:?}"
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// A minimal ELF64 x86-64 relocatable file whose only section, `.debug_info`, is
/// zlib-compressed (`SHF_COMPRESSED`) and inflates to `inflated` zero bytes.
fn dwarf_bomb(inflated: u64) -> Vec<u8> {
    // Deflate, one fixed-Huffman block: literal 0, then (length 258, distance 1) copies.
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, v: u64, n: u32) {
            self.acc |= v << self.n;
            self.n += n;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code (most significant bit first).
        fn code(&mut self, code: u64, n: u32) {
            let rev = (0..n).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
            self.put(rev, n);
        }
    }
    let mut b = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        n: 0,
    };
    b.put(1, 1); // BFINAL
    b.put(1, 2); // fixed Huffman
    b.code(0x30, 8); // literal 0
    let copies = (inflated - 1) / 258;
    for _ in 0..copies {
        b.code(0xc5, 8); // length code 285: 258
        b.code(0, 5); // distance code 0: 1
    }
    let rest = inflated - 1 - copies * 258;
    for _ in 0..rest {
        b.code(0x30, 8);
    }
    b.code(0, 7); // end of block
    if b.n > 0 {
        b.put(0, 8 - b.n);
    }
    let adler = ((inflated % 65521) << 16) | 1; // zeros: a = 1, b = n
    b.out.extend((adler as u32).to_be_bytes());

    let mut section = Vec::new();
    section.extend(1u32.to_le_bytes()); // ELFCOMPRESS_ZLIB
    section.extend(0u32.to_le_bytes());
    section.extend(inflated.to_le_bytes());
    section.extend(1u64.to_le_bytes());
    section.extend(&b.out);
    let shstrtab = b"\0.debug_info\0.shstrtab\0";
    let data_off = 64u64;
    let str_off = data_off + section.len() as u64;
    let sh_off = (str_off + shstrtab.len() as u64).next_multiple_of(8);
    let mut f = Vec::new();
    f.extend(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend(1u16.to_le_bytes()); // ET_REL
    f.extend(62u16.to_le_bytes()); // EM_X86_64
    f.extend(1u32.to_le_bytes());
    f.extend(0u64.to_le_bytes()); // entry
    f.extend(0u64.to_le_bytes()); // phoff
    f.extend(sh_off.to_le_bytes());
    f.extend(0u32.to_le_bytes()); // flags
    f.extend(64u16.to_le_bytes()); // ehsize
    f.extend(0u16.to_le_bytes()); // phentsize
    f.extend(0u16.to_le_bytes()); // phnum
    f.extend(64u16.to_le_bytes()); // shentsize
    f.extend(3u16.to_le_bytes()); // shnum
    f.extend(2u16.to_le_bytes()); // shstrndx
    f.extend(&section);
    f.extend(shstrtab);
    f.resize(sh_off as usize, 0);
    let sh = |f: &mut Vec<u8>, name: u32, ty: u32, flags: u64, off: u64, size: u64| {
        f.extend(name.to_le_bytes());
        f.extend(ty.to_le_bytes());
        f.extend(flags.to_le_bytes());
        f.extend(0u64.to_le_bytes()); // addr
        f.extend(off.to_le_bytes());
        f.extend(size.to_le_bytes());
        f.extend(0u32.to_le_bytes()); // link
        f.extend(0u32.to_le_bytes()); // info
        f.extend(1u64.to_le_bytes()); // addralign
        f.extend(0u64.to_le_bytes()); // entsize
    };
    sh(&mut f, 0, 0, 0, 0, 0);
    sh(&mut f, 1, 1, 0x800, data_off, section.len() as u64); // PROGBITS, SHF_COMPRESSED
    sh(&mut f, 13, 3, 0, str_off, shstrtab.len() as u64); // STRTAB
    f
}

#[test]
fn dwarf_bomb_is_not_inflated() {
    // Sanity: a small bomb is a valid section that inflates to what it declares.
    let small = dwarf_bomb(10_000);
    let img = Image::parse(&small).unwrap();
    let data = img
        .section_data(".debug_info")
        .expect("valid compressed section");
    assert_eq!(data.len(), 10_000);
    assert!(data.iter().all(|&b| b == 0));
    // 2 MB of file that would inflate to 300 MiB.
    let bomb = dwarf_bomb(300 << 20);
    assert!(bomb.len() < 3 << 20, "{}", bomb.len());
    let img = Image::parse(&bomb).unwrap();
    assert!(img.section_data(".debug_info").is_none());
    let offsets = super::godwarf::GoTlsOffsets::for_image(&img);
    assert_eq!(offsets.source, super::godwarf::OffsetSource::Table);
}

/// A file replaced (rename over its path) after the candidate was stat'ed: the analysis reads
/// the descriptor it opened, sees another inode and refuses ("file_changed"), so offsets found
/// in one binary are never attached to another.
#[test]
fn file_swapped_after_stat_is_not_analysed() {
    let d = tmpdir("swap");
    let lib = d.join("libssl.so.3");
    std::fs::copy(LIBSSL, &lib).expect("libssl3 installed (scripts/setup.sh)");
    let key = super::maps::FileKey::from_metadata(&std::fs::metadata(&lib).unwrap());
    let file = super::registry::ProcessFile {
        key,
        path: lib.clone(),
    };
    let ok = super::elf::analyze_process_file(&file).expect("same file analysed");
    assert!(ok.is_tls());
    std::fs::copy("/usr/bin/true", d.join("other")).unwrap();
    std::fs::rename(d.join("other"), &lib).unwrap();
    let e = super::elf::analyze_process_file(&file).expect_err("swapped file analysed");
    assert_eq!(e.reason.label(), "file_changed", "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// An analysis with more probes than a file may get (a hostile Go binary with thousands of
/// RET instructions in `crypto/tls.(*Conn).Read`) is refused as a whole.
#[test]
fn probe_count_is_capped_per_file() {
    use super::elf::{MAX_PROBES_PER_FILE, check_probe_cap};
    use super::target::{Probe, ProbeKind, TlsFunction, TlsLibrary, TlsTarget};
    let probes = |n: usize| TlsTarget {
        library: TlsLibrary::GnuTls { version: None },
        probes: (0..n as u64)
            .map(|i| Probe {
                function: TlsFunction::GnutlsRecordRecv,
                kind: ProbeKind::ReturnInstruction,
                offset: i,
            })
            .collect(),
    };
    let mut a = super::target::FileAnalysis {
        path: PathBuf::from("/x"),
        build_id: None,
        targets: vec![probes(MAX_PROBES_PER_FILE)],
    };
    check_probe_cap(&a).unwrap();
    a.targets.push(probes(1));
    let e = check_probe_cap(&a).unwrap_err();
    assert_eq!(e.label(), "too_many_probes");
}

//! Tests of [`super`]: program table, host paths, skip label bounds, panic guards.

use super::thread::catch_analysis;
use super::*;

#[test]
fn every_function_and_kind_has_a_program() {
    use TlsFunction::*;
    for f in [
        SslRead,
        SslWrite,
        SslReadEx,
        SslWriteEx,
        GnutlsRecordRecv,
        GnutlsRecordSend,
        GoConnRead,
        GoConnWrite,
        RustlsReadTls,
        RustlsWriteTls,
        RustlsReader,
        RustlsReaderSret,
        RustlsWrite,
        RustlsWriteVectored,
        RustlsRead,
        RustlsFirstChunk,
        RustlsConsume,
    ] {
        let (entry, cookie) = program_for(f, ProbeKind::Entry);
        assert!(cookie.is_some());
        assert!(
            super::super::UPROBE_PROGRAMS
                .iter()
                .any(|(n, _)| *n == entry)
        );
        let (ret, c) = program_for(f, ProbeKind::Return);
        assert!(c.is_none());
        assert!(super::super::UPROBE_PROGRAMS.iter().any(|(n, _)| *n == ret));
    }
    assert_eq!(
        program_for(GoConnWrite, ProbeKind::ReturnInstruction),
        ("go_tls_ret", None)
    );
    assert_eq!(
        program_for(RustlsWriteTls, ProbeKind::Return),
        ("rustls_io_ret", None)
    );
    assert_eq!(
        program_for(RustlsConsume, ProbeKind::Entry),
        ("rustls_consume", Some(tls_fn::RUSTLS_CONSUME))
    );
    assert_eq!(
        program_for(SslWriteEx, ProbeKind::Entry),
        ("tls_entry", Some(tls_fn::SSL_WRITE_EX))
    );
}

#[test]
fn proc_root_paths_become_host_paths_for_the_same_file() {
    let exe = std::fs::canonicalize("/proc/self/exe").unwrap();
    let key = FileKey::from_metadata(&std::fs::metadata(&exe).unwrap());
    let via_proc = Path::new("/proc/self/root").join(exe.strip_prefix("/").unwrap());
    // "self" is not a pid but resolves the same way; the host path is kept as is.
    assert_eq!(host_path(&via_proc, key), Some(exe.clone()));
    let other = FileKey {
        inode: key.inode + 1,
        ..key
    };
    assert_eq!(host_path(&via_proc, other), None);
    assert_eq!(host_path(&exe, key), None);
}

#[test]
fn a_panicking_analysis_is_a_counted_skip() {
    let f = ProcessFile {
        key: FileKey {
            major: 0,
            minor: 0,
            inode: 1,
        },
        path: PathBuf::from("/x/libssl.so.3"),
    };
    let e = catch_analysis(&f, |_| panic!("index out of bounds")).unwrap_err();
    assert_eq!(e.reason.label(), "analysis_panic");
    assert!(e.to_string().contains("index out of bounds"), "{e}");
    let stats = TlsStats::default();
    assert_eq!(stats.failure(), None);
    stats.set_failure("first");
    stats.set_failure("second");
    assert_eq!(stats.failure().as_deref(), Some("first"));
}

#[test]
fn skipped_labels_are_bounded() {
    let s = TlsStats::default();
    for i in 0..(MAX_SKIP_LABELS + 10) {
        s.skip("stripped", Path::new(&format!("/x/{i}")));
    }
    let m = s.skipped.lock().unwrap();
    assert_eq!(m.len(), MAX_SKIP_LABELS + 1);
    assert_eq!(m[&("stripped".to_string(), "other".to_string())], 10);
}

#[test]
fn every_uprobe_program_belongs_to_exactly_one_tls_family() {
    for (name, _) in super::super::UPROBE_PROGRAMS {
        let n = super::super::TLS_FAMILIES
            .iter()
            .filter(|f| f.programs.contains(name))
            .count();
        assert_eq!(n, 1, "{name} is in {n} families");
    }
    let listed: usize = super::super::TLS_FAMILIES
        .iter()
        .map(|f| f.programs.len())
        .sum();
    assert_eq!(listed, super::super::UPROBE_PROGRAMS.len());
}

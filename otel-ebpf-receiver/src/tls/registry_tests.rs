//! State-machine tests of [`super::Registry`] with a fake analyser: files whose path
//! contains `tls` have a target, `bad` fails, anything else has no TLS.

use super::*;
use crate::tls::elf::{AnalyzeReason, TlsLibrary, TlsTarget};
use std::cell::Cell;
use std::path::Path;

fn key(inode: u64) -> FileKey {
    FileKey {
        major: 254,
        minor: 0,
        inode,
    }
}

fn file(inode: u64, path: &str) -> ProcessFile {
    ProcessFile {
        key: key(inode),
        path: PathBuf::from(path),
    }
}

/// A fake analyser counting its calls.
fn analyzer(
    calls: &Cell<u32>,
) -> impl FnMut(&ProcessFile) -> Result<FileAnalysis, AnalyzeError> + '_ {
    move |f| {
        calls.set(calls.get() + 1);
        let p = f.path.to_str().unwrap();
        if p.contains("bad") {
            return Err(AnalyzeError {
                path: f.path.clone(),
                reason: AnalyzeReason::NoTlsSymbols,
            });
        }
        let targets = if p.contains("tls") {
            vec![TlsTarget {
                library: TlsLibrary::GnuTls { version: None },
                probes: vec![],
            }]
        } else {
            vec![]
        };
        Ok(FileAnalysis {
            path: f.path.clone(),
            build_id: None,
            targets,
        })
    }
}

/// Default limits, detaching at the last user's exit.
fn no_linger() -> RegistryLimits {
    RegistryLimits {
        max_lingering: 0,
        ..RegistryLimits::default()
    }
}

fn summary(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Attach { key, path, .. } => format!("attach {} {}", key.inode, path.display()),
            Action::Detach { key } => format!("detach {}", key.inode),
            Action::Skip { key, label, .. } => format!("skip {} {label}", key.inode),
        })
        .collect()
}

#[test]
fn one_attach_per_file_across_processes_and_paths() {
    let calls = Cell::new(0);
    let mut r = Registry::new(no_linger());
    let a = r.on_process(
        10,
        &[file(1, "/usr/bin/curl"), file(2, "/lib/libtls.so")],
        analyzer(&calls),
    );
    assert_eq!(summary(&a), ["attach 2 /lib/libtls.so"]);
    // Same library in a container under another path: same key, nothing new.
    let a = r.on_process(
        11,
        &[
            file(1, "/usr/bin/curl"),
            file(2, "/proc/11/root/usr/lib/libtls.so"),
        ],
        analyzer(&calls),
    );
    assert!(a.is_empty());
    assert_eq!(calls.get(), 2, "each file analysed once");
    assert!(r.on_exit(10).is_empty(), "pid 11 still uses it");
    assert_eq!(summary(&r.on_exit(11)), ["detach 2"]);
    assert_eq!(r.stats().attached, 0);
    // Seen again: re-attached from the remembered analysis, no new analysis.
    let a = r.on_process(12, &[file(2, "/lib/libtls.so")], analyzer(&calls));
    assert_eq!(summary(&a), ["attach 2 /lib/libtls.so"]);
    assert_eq!(calls.get(), 2);
    assert!(r.analysis(&key(2)).is_some_and(|a| a.is_tls()));
}

#[test]
fn failures_are_reported_once_and_not_retried() {
    let calls = Cell::new(0);
    let mut r = Registry::new(no_linger());
    let a = r.on_process(1, &[file(7, "/opt/bad/libssl.so.3")], analyzer(&calls));
    let [
        Action::Skip {
            path,
            label,
            reason,
            ..
        },
    ] = a.as_slice()
    else {
        panic!("{a:?}")
    };
    assert_eq!(
        (path.to_str().unwrap(), *label),
        ("/opt/bad/libssl.so.3", "stripped")
    );
    assert!(reason.contains("stripped"));
    assert!(
        r.on_process(2, &[file(7, "/opt/bad/libssl.so.3")], analyzer(&calls))
            .is_empty()
    );
    assert!(r.on_exit(1).is_empty() && r.on_exit(2).is_empty());
    assert!(
        r.on_process(3, &[file(7, "/x/bad")], analyzer(&calls))
            .is_empty()
    );
    assert_eq!(calls.get(), 1);
}

#[test]
fn exec_replaces_the_file_set_and_duplicates_count_once() {
    let calls = Cell::new(0);
    let mut r = Registry::new(no_linger());
    // The same file twice in one list (two paths to one inode) is one use.
    let a = r.on_process(
        5,
        &[file(3, "/a/tls1"), file(3, "/b/tls1"), file(4, "/tls2")],
        analyzer(&calls),
    );
    assert_eq!(summary(&a), ["attach 3 /a/tls1", "attach 4 /tls2"]);
    // A fuller view later (maps after ld.so ran) keeps what is still used.
    let a = r.on_process(
        5,
        &[file(3, "/a/tls1"), file(4, "/tls2"), file(6, "/tls3")],
        analyzer(&calls),
    );
    assert_eq!(summary(&a), ["attach 6 /tls3"]);
    // exec of another image: the old files are released.
    let a = r.on_process(5, &[file(9, "/bin/static")], analyzer(&calls));
    assert_eq!(summary(&a), ["detach 3", "detach 4", "detach 6"]);
    assert!(r.on_exit(5).is_empty());
    assert_eq!(r.stats().pids, 0);
}

#[test]
fn attach_limit_skips_and_is_counted() {
    let calls = Cell::new(0);
    let mut r = Registry::new(RegistryLimits {
        max_files: 10,
        max_attached: 2,
        max_pids: 10,
        max_lingering: 0,
    });
    let files: Vec<_> = (1..=3).map(|i| file(i, &format!("/tls{i}"))).collect();
    let a = r.on_process(1, &files, analyzer(&calls));
    assert_eq!(
        summary(&a),
        ["attach 1 /tls1", "attach 2 /tls2", "skip 3 attach_limit"]
    );
    assert_eq!(r.stats().attached, 2);
    assert!(
        r.on_process(2, &files, analyzer(&calls)).is_empty(),
        "skip reported once"
    );
}

#[test]
fn remembered_files_and_pids_are_bounded() {
    let calls = Cell::new(0);
    let mut r = Registry::new(RegistryLimits {
        max_files: 3,
        max_attached: 1,
        max_pids: 2,
        max_lingering: 0,
    });
    for i in 0..10u64 {
        r.on_process(1, &[file(100 + i, "/bin/plain")], analyzer(&calls));
        r.on_exit(1);
        assert!(r.stats().files <= 3, "{:?}", r.stats());
    }
    assert_eq!(r.stats().files_evicted, 7);
    // The oldest was forgotten: seeing it again analyses it again.
    let before = calls.get();
    r.on_process(1, &[file(100, "/bin/plain")], analyzer(&calls));
    assert_eq!(calls.get(), before + 1);
    // Process bound.
    r.on_process(2, &[], analyzer(&calls));
    assert!(
        r.on_process(3, &[file(1, "/tls")], analyzer(&calls))
            .is_empty()
    );
    assert_eq!(r.stats().processes_ignored, 1);
    assert_eq!(r.stats().pids, 2);
}

#[test]
fn real_files_through_the_real_analyser() {
    use crate::tls::elf::analyze_file;
    let mut r = Registry::new(no_linger());
    let libssl = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
    let files: Vec<ProcessFile> = ["/usr/bin/curl", libssl]
        .iter()
        .map(|p| ProcessFile {
            key: FileKey::from_metadata(&std::fs::metadata(p).unwrap()),
            path: p.into(),
        })
        .collect();
    let a = r.on_process(1, &files, |f| analyze_file(&f.path));
    let [Action::Attach { path, analysis, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert_eq!(path, Path::new(libssl));
    assert_eq!(analysis.targets[0].probes.len(), 8);
}

#[test]
fn a_forked_child_keeps_the_parents_files_attached() {
    let calls = Cell::new(0);
    let mut r = Registry::new(no_linger());
    let a = r.on_process(1, &[file(10, "/lib/libtls.so")], analyzer(&calls));
    assert_eq!(summary(&a), ["attach 10 /lib/libtls.so"]);
    r.on_fork(1, 2);
    r.on_fork(99, 3); // untracked parent: nothing
    assert_eq!(r.stats().pids, 2);
    // The parent exits: the child still maps the library.
    assert!(r.on_exit(1).is_empty());
    // The child execs something without TLS: now the library has no user.
    let a = r.on_process(2, &[file(11, "/bin/plain")], analyzer(&calls));
    assert_eq!(summary(&a), ["detach 10"]);
    assert!(r.on_exit(2).is_empty());
}

#[test]
fn files_linger_after_their_last_user_lru_bounded() {
    let calls = Cell::new(0);
    let mut r = Registry::new(RegistryLimits {
        max_files: 100,
        max_attached: 3,
        max_pids: 100,
        max_lingering: 2,
    });
    // Three binaries run and exit one after the other: the first two stay attached.
    for i in 1..=2u64 {
        let a = r.on_process(i as u32, &[file(i, &format!("/tls{i}"))], analyzer(&calls));
        assert_eq!(summary(&a), [format!("attach {i} /tls{i}")]);
        assert!(r.on_exit(i as u32).is_empty(), "kept attached");
    }
    assert_eq!((r.stats().attached, r.stats().lingering), (2, 2));
    // Run again: no action at all (0 ms: its probes are there).
    assert!(
        r.on_process(10, &[file(1, "/tls1")], analyzer(&calls))
            .is_empty()
    );
    assert_eq!(r.stats().lingering, 1);
    assert!(r.on_exit(10).is_empty());
    // A third one: the least recently used lingering file (2) is detached.
    r.on_process(3, &[file(3, "/tls3")], analyzer(&calls));
    assert_eq!(summary(&r.on_exit(3)), ["detach 2"]);
    assert_eq!(r.stats().lingering_detached, 1);
    assert_eq!((r.stats().attached, r.stats().lingering), (2, 2));
    // The attach limit takes room from lingering files before refusing.
    let files: Vec<_> = (4..=6).map(|i| file(i, &format!("/tls{i}"))).collect();
    let a = r.on_process(4, &files, analyzer(&calls));
    assert_eq!(
        summary(&a),
        [
            "attach 4 /tls4",
            "detach 1",
            "attach 5 /tls5",
            "detach 3",
            "attach 6 /tls6"
        ]
    );
    assert_eq!(r.stats().lingering, 0);
    // Remembered-file eviction never forgets a lingering (attached) file.
    assert!(r.analysis(&key(4)).is_some());
    assert_eq!(calls.get(), 6, "each file analysed once");
}

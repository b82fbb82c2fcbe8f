//! Tests of [`super::AnalysisCache`]: round trip, staleness, hostile entries.

use super::*;
use std::sync::Arc;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tls-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A private copy of libssl (its own inode and mtime) and its [`ProcessFile`].
fn libssl_copy(dir: &Path) -> ProcessFile {
    let path = dir.join("libssl.so.3");
    std::fs::copy("/usr/lib/x86_64-linux-gnu/libssl.so.3", &path).unwrap();
    ProcessFile {
        key: FileKey::from_metadata(&std::fs::metadata(&path).unwrap()),
        path,
    }
}

#[test]
fn round_trip_and_staleness() {
    let dir = temp("rt");
    let file = libssl_copy(&dir);
    let stats = Arc::new(CacheStats::default());
    let mut cache = AnalysisCache::open(&dir.join("state"), 8, stats.clone()).unwrap();
    assert!(cache.lookup(&file).is_none());
    let analysis = crate::tls::elf::analyze_process_file(&file).unwrap();
    assert!(analysis.is_tls());
    cache.store(&file, &analysis);
    assert_eq!(cache.lookup(&file), Some(analysis.clone()));
    // No TLS is cached too.
    let plain = FileAnalysis {
        path: file.path.clone(),
        build_id: None,
        targets: vec![],
    };
    cache.store(&file, &plain);
    assert_eq!(cache.lookup(&file), Some(plain));
    // A new mtime: the entry is stale (miss, not rejected).
    cache.store(&file, &analysis);
    let f = std::fs::File::options()
        .write(true)
        .open(&file.path)
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    assert!(cache.lookup(&file).is_none());
    let rows = stats.rows();
    assert_eq!(rows[0], ("hit", 2));
    assert_eq!(rows[1], ("miss", 2));
    assert_eq!(rows[2], ("rejected", 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hostile_entries_are_ignored_and_counted() {
    let dir = temp("hostile");
    let file = libssl_copy(&dir);
    let stats = Arc::new(CacheStats::default());
    let mut cache = AnalysisCache::open(&dir.join("state"), 8, stats.clone()).unwrap();
    let analysis = crate::tls::elf::analyze_process_file(&file).unwrap();
    cache.store(&file, &analysis);
    let entry = cache.entry_path(file.key);
    let good = std::fs::read_to_string(&entry).unwrap();
    let size = std::fs::metadata(&file.path).unwrap().size();
    let first_offset = analysis.targets[0].probes[0].offset.to_string();
    let bad: Vec<String> = vec![
        "garbage".into(),
        String::new(),
        good.replace("\"format\":1", "\"format\":2"),
        good.replace(&format!("\"inode\":{}", file.key.inode), "\"inode\":1"),
        good.replacen(&first_offset, &(size + 10).to_string(), 1),
        good.replace("SSL_read", "evil_fn"),
        good.replace("\"targets\":[", "\"extra\":1,\"targets\":["),
        "[".repeat(100_000),
    ];
    for (i, text) in bad.iter().enumerate() {
        std::fs::write(&entry, text).unwrap();
        assert!(cache.lookup(&file).is_none(), "case {i}");
        assert_eq!(
            stats.rejected.load(Ordering::Relaxed),
            i as u64 + 1,
            "case {i}"
        );
    }
    // A FIFO or a directory where the entry should be: rejected, no hang.
    std::fs::remove_file(&entry).unwrap();
    std::fs::create_dir(&entry).unwrap();
    assert!(cache.lookup(&file).is_none());
    std::fs::remove_dir(&entry).unwrap();
    let c = std::ffi::CString::new(entry.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(cache.lookup(&file).is_none());
    assert_eq!(stats.rejected.load(Ordering::Relaxed), bad.len() as u64 + 2);
    // Rewritten by a fresh store: trusted again.
    std::fs::remove_file(&entry).unwrap();
    cache.store(&file, &analysis);
    assert_eq!(cache.lookup(&file), Some(analysis));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn entries_are_bounded() {
    let dir = temp("bound");
    let stats = Arc::new(CacheStats::default());
    let mut cache = AnalysisCache::open(&dir.join("state"), 3, stats).unwrap();
    for i in 0..10 {
        let path = dir.join(format!("f{i}"));
        std::fs::write(&path, b"x").unwrap();
        let file = ProcessFile {
            key: FileKey::from_metadata(&std::fs::metadata(&path).unwrap()),
            path,
        };
        cache.store(
            &file,
            &FileAnalysis {
                path: file.path.clone(),
                build_id: None,
                targets: vec![],
            },
        );
    }
    cache.trim();
    assert_eq!(std::fs::read_dir(&cache.dir).unwrap().count(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pid_root_prefix_is_not_part_of_the_key() {
    assert_eq!(
        namespace_path(Path::new("/proc/123/root/usr/bin/x")),
        "/usr/bin/x"
    );
    assert_eq!(
        namespace_path(Path::new("/proc/self/root/usr/bin/x")),
        "/proc/self/root/usr/bin/x"
    );
    assert_eq!(namespace_path(Path::new("/usr/bin/x")), "/usr/bin/x");
    assert_eq!(
        namespace_path(Path::new("/proc/1/rootx/a")),
        "/proc/1/rootx/a"
    );
}

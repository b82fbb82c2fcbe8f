//! Tests of [`super`] on real files: kinds, caps, truncation, growth, identity, root
//! confinement.

use super::*;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tls-fileio-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn reads_exactly_the_file_and_names_it_by_descriptor() {
    let d = tmpdir("read");
    let p = d.join("f");
    std::fs::write(&p, b"hello").unwrap();
    let f = OpenedFile::open(&p, 5).unwrap();
    assert_eq!(f.read_all().unwrap(), b"hello");
    let meta = std::fs::metadata(&p).unwrap();
    assert_eq!(f.key(), FileKey::from_metadata(&meta));
    f.check_key(FileKey::from_metadata(&meta)).unwrap();
    // The descriptor's path names the same inode even after the path is replaced.
    std::fs::rename(&p, d.join("old")).unwrap();
    std::fs::write(&p, b"other").unwrap();
    let via_fd = std::fs::metadata(f.proc_path()).unwrap();
    assert_eq!(FileKey::from_metadata(&via_fd), f.key());
    let now = OpenedFile::open(&p, 5).unwrap();
    assert!(matches!(now.check_key(f.key()), Err(FileError::Changed(_))));
    assert!(matches!(
        OpenedFile::open(&p, 4),
        Err(FileError::TooLarge { size: 5, cap: 4 })
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn truncated_or_grown_while_open_is_a_change() {
    let d = tmpdir("change");
    let p = d.join("f");
    std::fs::write(&p, vec![7u8; 4096]).unwrap();
    let f = OpenedFile::open(&p, 1 << 20).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(100)
        .unwrap();
    assert!(matches!(
        f.read_all(),
        Err(FileError::Changed("truncated while read"))
    ));
    let g = OpenedFile::open(&p, 1 << 20).unwrap();
    std::fs::write(&p, vec![1u8; 200]).unwrap();
    assert!(matches!(
        g.read_all(),
        Err(FileError::Changed("grew while read"))
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn directories_are_refused_and_roots_confine() {
    let d = tmpdir("root");
    assert!(matches!(
        OpenedFile::open(&d, 1 << 20),
        Err(FileError::NotRegular("directory"))
    ));
    std::fs::create_dir_all(d.join("etc")).unwrap();
    std::fs::write(d.join("etc/inside"), b"in").unwrap();
    std::os::unix::fs::symlink("/etc/inside", d.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../etc/inside", d.join("etc/rel")).unwrap();
    for p in ["/abs", "/etc/rel", "etc/inside", "/../../etc/inside"] {
        let f = OpenedFile::open_in_root(&d, Path::new(p), 16).unwrap();
        assert_eq!(f.read_all().unwrap(), b"in", "{p}");
    }
    // A link to a host file that is not in the root: not found, not the host's file.
    std::os::unix::fs::symlink("/etc/hostname", d.join("host")).unwrap();
    assert!(OpenedFile::open_in_root(&d, Path::new("/host"), 1 << 20).is_err());
    std::fs::remove_dir_all(&d).unwrap();
}

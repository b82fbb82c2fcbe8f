//! Tests of [`super`]: the real `curl` closure against `ldd`, and a fake namespace root with
//! `$ORIGIN` run paths, absolute symlinks and `LD_LIBRARY_PATH`, built with the C compiler.

use super::*;
use std::collections::HashMap;
use std::process::Command;

fn host_context() -> ResolveContext {
    ResolveContext {
        root: PathBuf::from("/"),
        ld_library_path: Vec::new(),
        cache: Some(LdCache::parse(&std::fs::read("/etc/ld.so.cache").unwrap()).unwrap()),
        max_depth: MAX_DEPTH,
        max_libraries: MAX_LIBRARIES,
    }
}

/// `ldd`'s `name => path` lines.
fn ldd(path: &str) -> HashMap<String, PathBuf> {
    let out = Command::new("ldd")
        .arg(path)
        .output()
        .expect("ldd (libc-bin) is needed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(" => ")?;
            let path = rest.split(" (").next()?;
            Some((name.to_string(), PathBuf::from(path)))
        })
        .collect()
}

#[test]
fn curl_closure_matches_ldd_and_reaches_libssl_through_libcurl() {
    let got = resolve_needed(Path::new("/usr/bin/curl"), &host_context()).unwrap();
    assert!(
        got.unresolved.is_empty() && got.unreadable.is_empty() && !got.truncated,
        "{got:?}"
    );
    let mut expected = ldd("/usr/bin/curl");
    assert!(expected.len() > 10, "{expected:?}");
    // ldd prints the dynamic loader (needed by libc) without `=>`.
    expected.insert(
        "ld-linux-x86-64.so.2".into(),
        "/lib64/ld-linux-x86-64.so.2".into(),
    );
    assert_eq!(
        got.libraries.len(),
        expected.len(),
        "{got:#?}\n{expected:#?}"
    );
    for lib in &got.libraries {
        let want = expected
            .get(&lib.name)
            .unwrap_or_else(|| panic!("ldd lacks {}", lib.name));
        assert_eq!(
            std::fs::canonicalize(&lib.host_path).unwrap(),
            std::fs::canonicalize(want).unwrap(),
            "{}",
            lib.name
        );
    }
    let libcurl = got
        .libraries
        .iter()
        .find(|l| l.name == "libcurl.so.4")
        .unwrap();
    assert_eq!(libcurl.depth, 1);
    let libssl = got
        .libraries
        .iter()
        .find(|l| l.name == "libssl.so.3")
        .unwrap();
    assert_eq!(
        (libssl.depth, libssl.needed_by.clone()),
        (2, libcurl.path.clone())
    );
}

#[test]
fn bounds_stop_the_walk() {
    let ctx = ResolveContext {
        max_depth: 1,
        ..host_context()
    };
    let got = resolve_needed(Path::new("/usr/bin/curl"), &ctx).unwrap();
    assert!(got.truncated);
    assert!(got.libraries.iter().all(|l| l.depth == 1));
    assert!(!got.libraries.iter().any(|l| l.name == "libssl.so.3"));
    let ctx = ResolveContext {
        max_libraries: 3,
        ..host_context()
    };
    let got = resolve_needed(Path::new("/usr/bin/curl"), &ctx).unwrap();
    assert!(got.truncated && got.libraries.len() == 3);
}

#[test]
fn own_process_context() {
    let ctx = ResolveContext::for_pid(std::process::id()).unwrap();
    assert!(ctx.cache.as_ref().is_some_and(|c| !c.is_empty()));
    assert!(ctx.root.ends_with("root"));
}

#[test]
fn environ_and_expansion() {
    let env = b"PATH=/bin\0LD_LIBRARY_PATH=/opt/a::/opt/b;/opt/c\0HOME=/root\0";
    assert_eq!(ld_library_path(env), ["/opt/a", "/opt/b", "/opt/c"]);
    assert!(ld_library_path(b"PATH=/bin\0").is_empty());
    let o = Path::new("/opt/app/bin");
    assert_eq!(
        expand("$ORIGIN/../lib", o),
        [PathBuf::from("/opt/app/bin/../lib")]
    );
    assert_eq!(
        expand("${ORIGIN}/x/$PLATFORM", o),
        [PathBuf::from("/opt/app/bin/x/x86_64")]
    );
    assert_eq!(
        expand("/usr/$LIB", o),
        [
            PathBuf::from("/usr/lib/x86_64-linux-gnu"),
            PathBuf::from("/usr/lib64")
        ]
    );
    assert!(expand("relative/dir", o).is_empty());
}

fn cc(args: &[&str]) {
    let status = Command::new("cc")
        .args(args)
        .status()
        .expect("a C compiler (cc) is needed for this test; Rust's linker needs it anyway");
    assert!(status.success(), "cc {args:?}");
}

/// A container-like root: `/opt/app/bin/prog` needs `libfoo.so.1` via `RUNPATH
/// $ORIGIN/../lib`, where `libfoo.so.1` is an absolute symlink (valid only inside the root) to
/// `/opt/app/lib/real/libfoo.so.1`, which needs `libbar.so` (found through
/// `LD_LIBRARY_PATH`) and `libssl.so.3` (found in a default directory, `/usr/lib64`).
#[test]
fn fake_root_runpath_origin_symlinks_and_ld_library_path() {
    let root = std::env::temp_dir().join(format!("tls-needed-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for d in [
        "opt/app/bin",
        "opt/app/lib/real",
        "srv/extra",
        "usr/lib64",
        "build",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let b = root.join("build");
    std::fs::write(b.join("bar.c"), "int bar(void){return 1;}\n").unwrap();
    std::fs::write(
        b.join("foo.c"),
        "int bar(void); int foo(void){return bar();}\n",
    )
    .unwrap();
    std::fs::write(
        b.join("main.c"),
        "int foo(void); int main(void){return foo();}\n",
    )
    .unwrap();
    let p = |s: &str| root.join(s).to_str().unwrap().to_string();
    cc(&[
        "-shared",
        "-fPIC",
        "-o",
        &p("srv/extra/libbar.so"),
        &p("build/bar.c"),
        "-Wl,-soname,libbar.so",
    ]);
    cc(&[
        "-shared",
        "-fPIC",
        "-o",
        &p("opt/app/lib/real/libfoo.so.1"),
        &p("build/foo.c"),
        "-Wl,-soname,libfoo.so.1",
        &format!("-L{}", p("srv/extra")),
        "-lbar",
        "-Wl,--no-as-needed",
        "-lssl",
    ]);
    std::os::unix::fs::symlink(
        "/opt/app/lib/real/libfoo.so.1",
        root.join("opt/app/lib/libfoo.so.1"),
    )
    .unwrap();
    cc(&[
        "-o",
        &p("opt/app/bin/prog"),
        &p("build/main.c"),
        &format!("-L{}", p("opt/app/lib/real")),
        "-l:libfoo.so.1",
        &format!("-Wl,-rpath-link,{}", p("srv/extra")),
        "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib",
    ]);
    std::fs::copy(
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        root.join("usr/lib64/libssl.so.3"),
    )
    .unwrap();
    // A wrong-architecture file earlier in the search is skipped, as ld.so does.
    std::fs::write(root.join("srv/extra/libssl.so.3"), b"\x7fELF\x01\x01").unwrap();

    let ctx = ResolveContext {
        root: root.clone(),
        ld_library_path: vec!["/srv/extra".into()],
        cache: None,
        max_depth: MAX_DEPTH,
        max_libraries: MAX_LIBRARIES,
    };
    let got = resolve_needed(Path::new("/opt/app/bin/prog"), &ctx).unwrap();
    let by_name: HashMap<_, _> = got.libraries.iter().map(|l| (l.name.as_str(), l)).collect();
    let foo = by_name["libfoo.so.1"];
    assert_eq!(foo.path, Path::new("/opt/app/bin/../lib/libfoo.so.1"));
    assert_eq!(
        foo.host_path,
        root.join("opt/app/lib/real/libfoo.so.1"),
        "symlink resolved in root"
    );
    assert_eq!(
        by_name["libbar.so"].host_path,
        root.join("srv/extra/libbar.so")
    );
    assert_eq!(
        by_name["libssl.so.3"].path,
        Path::new("/usr/lib64/libssl.so.3")
    );
    assert_eq!(by_name["libssl.so.3"].depth, 2);
    // libc and libcrypto are not in this root.
    let unresolved: Vec<_> = got.unresolved.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        unresolved.contains(&"libc.so.6") && unresolved.contains(&"libcrypto.so.3"),
        "{unresolved:?}"
    );
    // Outside the root, the absolute symlink points nowhere.
    assert_eq!(
        resolve_in_root(&root, Path::new("/opt/app/lib/missing")),
        None
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn symlink_loops_end() {
    let root = std::env::temp_dir().join(format!("tls-needed-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink("/b", root.join("a")).unwrap();
    std::os::unix::fs::symlink("/a", root.join("b")).unwrap();
    assert_eq!(resolve_in_root(&root, Path::new("/a")), None);
    let e = resolve_needed(
        Path::new("/a"),
        &ResolveContext {
            root: root.clone(),
            ..host_context()
        },
    );
    assert!(e.is_err());
    std::fs::remove_dir_all(&root).unwrap();
}

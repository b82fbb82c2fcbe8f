//! Live-process tests of [`super::discover`] / [`super::candidates`]: curl (libssl through
//! libcurl, mapped or only exec'd), a Go client, a process that is gone; with timings.

use super::*;
use crate::tls::elf::{TlsLibrary, TlsTarget};
use crate::tls::registry::{Action, Registry, RegistryLimits};
use crate::tls::testutil::{go_clients, spawn, wait_for_mapping};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

/// A TLS server that never answers: curl blocks in its handshake with libssl loaded.
fn silent_listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn curl(port: u16) -> Command {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "--max-time",
        "60",
        &format!("https://127.0.0.1:{port}/"),
    ]);
    c
}

/// Median and minimum of `n` timed runs of `f`.
fn time<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut d: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    d.sort();
    (d[n / 2], d[0])
}

fn openssl_target(p: &ProcessTls) -> (&CandidateFile, &TlsTarget) {
    p.targets()
        .find_map(|(c, a)| {
            a.targets
                .iter()
                .find(|t| matches!(t.library, TlsLibrary::OpenSsl { .. }))
                .map(|t| (c, t))
        })
        .expect("an OpenSSL target")
}

#[test]
fn live_curl_finds_libssl_and_gnutls() {
    let (_listener, port) = silent_listener();
    let child = spawn(&mut curl(port));
    let pid = child.0.id();
    wait_for_mapping(pid, "libssl.so");
    let p = discover(pid).unwrap();
    assert_eq!(p.candidates.exe, Path::new("/usr/bin/curl"));
    assert!(
        p.candidates.unresolved.is_empty(),
        "{:?}",
        p.candidates.unresolved
    );
    let (c, t) = openssl_target(&p);
    assert_eq!(c.candidate.reason, CandidateReason::TlsLibraryName);
    assert_eq!(
        c.file.key,
        FileKey::from_metadata(&std::fs::metadata(LIBSSL).unwrap())
    );
    assert_eq!(t.probes.len(), 8);
    // libgnutls arrives through librtmp (see `ldd /usr/bin/curl`).
    let gnutls = p.targets().any(|(_, a)| {
        a.targets
            .iter()
            .any(|t| matches!(t.library, TlsLibrary::GnuTls { .. }))
    });
    assert!(gnutls);
    assert_eq!(
        p.errors().count(),
        0,
        "{:?}",
        p.errors().collect::<Vec<_>>()
    );
    let (median, min) = time(5, || discover(pid).unwrap());
    let (cmedian, _) = time(5, || candidates(pid).unwrap());
    eprintln!(
        "MEASURE discover(curl pid): median {median:?} (min {min:?}), of which candidates {cmedian:?}; {} files",
        p.candidates.files.len()
    );
    assert!(median < Duration::from_secs(2));
}

/// Stopped right after exec (ptrace TRACEME), before ld.so maps anything: libssl is not in
/// maps yet and is found through DT_NEEDED (curl → libcurl → libssl).
#[test]
fn exec_stopped_curl_resolves_libssl_from_dt_needed() {
    let (_listener, port) = silent_listener();
    let mut cmd = curl(port);
    // SAFETY: async-signal-safe ptrace call between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = spawn(&mut cmd);
    let pid = child.0.id() as i32;
    let mut status = 0;
    // SAFETY: waiting for our own child's exec stop.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        r == pid && libc::WIFSTOPPED(status),
        "child did not stop at exec"
    );
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(
        !maps.contains("libssl"),
        "libraries already mapped:\n{maps}"
    );
    let t = Instant::now();
    let p = discover(pid as u32).unwrap();
    let elapsed = t.elapsed();
    let (c, _) = openssl_target(&p);
    assert_eq!(c.candidate.reason, CandidateReason::TlsLibraryName);
    assert_eq!(
        c.file.key,
        FileKey::from_metadata(&std::fs::metadata(LIBSSL).unwrap())
    );
    eprintln!(
        "MEASURE discover(curl stopped at exec): {elapsed:?}, {} files",
        p.candidates.files.len()
    );
}

#[test]
fn live_go_client_is_found_in_the_executable() {
    for (binary, stripped) in [(&go_clients().0, false), (&go_clients().1, true)] {
        let child = spawn(Command::new(binary).arg("sleep"));
        let pid = child.0.id();
        wait_for_mapping(pid, binary.file_name().unwrap().to_str().unwrap());
        let p = discover(pid).unwrap();
        let (c, a) = p.targets().next().expect("Go target");
        assert_eq!(c.candidate.reason, CandidateReason::Executable);
        assert!(matches!(a.targets[0].library, TlsLibrary::Go { .. }));
        let (median, min) = time(5, || discover(pid).unwrap());
        eprintln!("MEASURE discover(Go pid, stripped={stripped}): median {median:?} (min {min:?})");
    }
}

#[test]
fn registry_over_live_processes_analyses_each_file_once() {
    let (_listener, port) = silent_listener();
    let a = spawn(&mut curl(port));
    let b = spawn(&mut curl(port));
    let mut r = Registry::new(RegistryLimits {
        max_lingering: 0,
        ..RegistryLimits::default()
    });
    let mut attached = Vec::new();
    for child in [&a, &b] {
        let pid = child.0.id();
        wait_for_mapping(pid, "libssl.so");
        let files: Vec<_> = candidates(pid)
            .unwrap()
            .files
            .into_iter()
            .map(|c| c.file)
            .collect();
        for action in r.on_process(pid, &files, elf::analyze_process_file) {
            if let Action::Attach { path, .. } = action {
                attached.push(path);
            }
        }
    }
    let names: Vec<_> = attached
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("libssl.so")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("libgnutls.so")),
        "{names:?}"
    );
    assert_eq!(names.len(), 2, "second curl adds no attachment: {names:?}");
    let analyses = r.stats().analyses;
    assert!(r.on_exit(a.0.id()).is_empty());
    assert_eq!(r.on_exit(b.0.id()).len(), 2);
    assert_eq!(analyses as usize, r.stats().files);
}

#[test]
fn gone_process_and_kernel_thread_are_errors() {
    let mut child = spawn(&mut Command::new("true"));
    let pid = child.0.id();
    child.0.wait().unwrap();
    let e = discover(pid).unwrap_err();
    assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains(&pid.to_string()));
    // kthreadd (pid 2) has no executable.
    assert!(discover(2).is_err());
}

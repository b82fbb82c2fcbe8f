//! Tests of the exec gate on real processes (root or `CAP_SYS_PTRACE`): a held process is
//! stopped for the tracer only, released when the attacher is done or at the limit, and its
//! parent sees its normal exit status.

use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

/// State letter of `/proc/PID/stat` (`t`: tracing stop).
fn state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(") ")?.1.chars().next()
}

/// A shell (our child) that starts `sleep` (its child, the process we hold), waits for it and
/// prints its pid and exit status.
fn shell() -> (
    std::process::Child,
    u32,
    BufReader<std::process::ChildStdout>,
) {
    let mut sh = Command::new("sh")
        .args(["-c", "sleep 0.3 & echo $!; wait $!; echo status=$?"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(sh.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    (sh, line.trim().parse().unwrap(), out)
}

fn ptrace_allowed() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn held_until_done_then_released_with_its_status() {
    if !ptrace_allowed() {
        eprintln!("skipped: needs root");
        return;
    }
    let (tx, rx) = mpsc::channel();
    let stats = Arc::new(GateStats::default());
    let settled = Arc::new(Settled::default());
    let cfg = GateConfig {
        enabled: true,
        max_hold: Duration::from_secs(1),
    };
    let gate = spawn(cfg, rx, settled.clone(), stats.clone()).unwrap();
    let (mut sh, pid, mut out) = shell();
    tx.send(GateMsg::Exec { pid, ts_ns: 0 }).unwrap();
    let t = Instant::now();
    while state(pid) != Some('t') && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(state(pid), Some('t'), "held in a tracing stop");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(state(pid), Some('t'), "still held while the attacher works");
    tx.send(GateMsg::Done { pid }).unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "status=0", "the parent sees a normal exit");
    assert!(sh.wait().unwrap().success());
    assert_eq!(stats.released.load(Ordering::Relaxed), 1);
    // Settled executables are not held.
    // (By path: the pid printed may not have exec'd `sleep` yet.)
    let sleep = std::fs::metadata("/usr/bin/sleep").unwrap();
    settled.insert(FileKey::from_metadata(&sleep));
    let (mut sh, pid, mut out) = shell();
    std::thread::sleep(Duration::from_millis(20));
    tx.send(GateMsg::Exec { pid, ts_ns: 0 }).unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "status=0");
    sh.wait().unwrap();
    assert_eq!(stats.not_needed.load(Ordering::Relaxed), 1);
    drop(tx);
    gate.join().unwrap();
}

#[test]
fn released_at_the_limit_and_signals_are_kept() {
    if !ptrace_allowed() {
        eprintln!("skipped: needs root");
        return;
    }
    let (tx, rx) = mpsc::channel();
    let stats = Arc::new(GateStats::default());
    let cfg = GateConfig {
        enabled: true,
        max_hold: Duration::from_millis(100),
    };
    let gate = spawn(cfg, rx, Arc::new(Settled::default()), stats.clone()).unwrap();
    let (mut sh, pid, mut out) = shell();
    tx.send(GateMsg::Exec { pid, ts_ns: 0 }).unwrap();
    let t = Instant::now();
    while state(pid) != Some('t') && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // A signal sent during the hold is delivered after it: SIGTERM kills `sleep`.
    // SAFETY: signalling our grandchild.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "status=143",
        "killed by the re-injected SIGTERM"
    );
    sh.wait().unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(90),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(stats.timed_out.load(Ordering::Relaxed), 1);
    drop(tx);
    gate.join().unwrap();
}

/// A process creating threads while it is seized, held and released, then exiting: no thread
/// is left traced or unreaped, so its parent's `wait` returns with its status. (Before the
/// gate polled all its tracees, a thread created during the release stayed a traced zombie
/// and the parent waited forever.)
#[test]
fn threads_created_during_the_hold_never_block_the_parent() {
    if !ptrace_allowed() {
        eprintln!("skipped: needs root");
        return;
    }
    let (tx, rx) = mpsc::channel();
    let stats = Arc::new(GateStats::default());
    let cfg = GateConfig {
        enabled: true,
        max_hold: Duration::from_millis(200),
    };
    let gate = spawn(cfg, rx, Arc::new(Settled::default()), stats.clone()).unwrap();
    let script = "import threading, time, sys\n\
        end = time.time() + 0.3\n\
        while time.time() < end:\n\
        \x20   ts = [threading.Thread(target=time.sleep, args=(0.001,)) for _ in range(4)]\n\
        \x20   [t.start() for t in ts]\n\
        \x20   [t.join() for t in ts]\n\
        sys.exit(3)\n";
    for round in 0..10 {
        let mut child = Command::new("python3")
            .args(["-c", script])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(30 + 7 * round));
        let pid = child.id();
        tx.send(GateMsg::Exec { pid, ts_ns: 0 }).unwrap();
        std::thread::sleep(Duration::from_millis(5 * round));
        tx.send(GateMsg::Done { pid }).unwrap();
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if t.elapsed() > Duration::from_secs(5) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let Some(status) = status else {
            let _ = child.kill();
            panic!("round {round}: the parent's wait did not return");
        };
        assert_eq!(status.code(), Some(3), "round {round}");
    }
    drop(tx);
    gate.join().unwrap();
}

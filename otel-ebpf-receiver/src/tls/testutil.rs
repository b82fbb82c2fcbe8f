//! Test helpers: real binaries built or started for the tests (Go client, curl).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// A Go HTTPS client that links `crypto/tls`; with argument `sleep` it waits 60 s first
/// (so tests can inspect a live Go process), then exits.
const GO_CLIENT: &str = r#"package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sleep" {
		time.Sleep(60 * time.Second)
	}
	resp, err := http.Get("https://127.0.0.1:1/")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	resp.Body.Close()
}
"#;

/// Paths of the Go client built normally and with `-ldflags=-s -w` (stripped: no `.symtab`,
/// no DWARF), built once per test process into one fixed temporary directory (reused by
/// later runs, so test runs do not leave a copy each). Each build writes a file named after
/// the process and renames it into place, so concurrent test processes never see half a
/// binary. Panics with a clear message when `go` is missing (scripts/setup.sh installs
/// golang-go).
pub fn go_clients() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = std::env::temp_dir().join("otel-ebpf-tls-go");
        std::fs::create_dir_all(&dir).unwrap();
        let pid = std::process::id();
        let src = dir.join(format!("main-{pid}.go"));
        std::fs::write(&src, GO_CLIENT).unwrap();
        let build = |out: &Path, extra: &[&str]| {
            let tmp = out.with_extension(pid.to_string());
            let status = Command::new("go")
                .arg("build")
                .args(extra)
                .arg("-o")
                .arg(&tmp)
                .arg(&src)
                .current_dir(&dir)
                .env("GO111MODULE", "off")
                .env("GOTOOLCHAIN", "local")
                .status()
                .unwrap_or_else(|e| {
                    panic!("`go` is needed for the Go TLS tests (apt-get install golang-go, see scripts/setup.sh): {e}")
                });
            assert!(status.success(), "go build {extra:?} failed");
            std::fs::rename(&tmp, out).unwrap();
        };
        let normal = dir.join("client");
        let stripped = dir.join("client-stripped");
        build(&normal, &[]);
        build(&stripped, &["-ldflags=-s -w"]);
        let _ = std::fs::remove_file(&src);
        (normal, stripped)
    })
}

/// Kills and reaps a child on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` with null stdio.
pub fn spawn(cmd: &mut Command) -> ChildGuard {
    ChildGuard(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
    )
}

/// Waits (up to 5 s) until `/proc/PID/maps` of `pid` mentions `needle`.
pub fn wait_for_mapping(pid: u32, needle: &str) {
    for _ in 0..500 {
        if std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains(needle)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("pid {pid} never mapped {needle}");
}

//! Kernel matrix: Debian's own cloud kernels (6.1 without the `sock_send_length` /
//! `sock_recv_length` tracepoints, 6.12 with them) booted under QEMU with the receiver and a
//! real workload inside (`scripts/kernel-vm.sh`: busybox httpd serving, busybox wget
//! fetching, each wget a short-lived process; openssl s_server and s_client through the
//! system libssl). Every kernel, and every hook family of the socket data path forced in turn
//! (`receiver.capture_hooks`), must give the same spans: the same count, methods, paths,
//! status codes, server addresses and errors. Two guests run at a time. The host's own kernel
//! is covered by the other integration tests (raw tracepoints).
//!
//! Needs root, qemu-system-x86_64, busybox-static and apt sources with Debian's kernel
//! packages (scripts/setup.sh); kernels are cached outside target/ (see the script).

use otel_ebpf_integration::{serial, workspace_bin};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("scripts/kernel-vm.sh")
}

fn run(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("run scripts/kernel-vm.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kernel-vm.sh {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The lines between `KMATRIX-<name>-BEGIN` and `KMATRIX-<name>-END` of the console.
fn section<'a>(console: &'a str, name: &str) -> Vec<&'a str> {
    let begin = format!("KMATRIX-{name}-BEGIN");
    let end = format!("KMATRIX-{name}-END");
    console
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .skip_while(|l| !l.contains(&begin))
        .skip(1)
        .take_while(|l| !l.contains(&end))
        .collect()
}

/// One console span line, reduced to what must be equal on every kernel: "kind method path
/// status server error" (`-` without error).
fn span_key(line: &str) -> Option<String> {
    // <ts> <KIND> <method> <path> <status> <duration> <client> -> <server> <service>[<pid>]
    // trace=<id> span=<id> parent=<id> [error=<error.type>]
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || !matches!(f[1], "SERVER" | "CLIENT") || f[7] != "->" {
        return None;
    }
    let error = f[10..]
        .iter()
        .find_map(|e| e.strip_prefix("error="))
        .unwrap_or("-");
    Some(format!(
        "{} {} {} {} {} {error}",
        f[1], f[2], f[3], f[4], f[8]
    ))
}

struct Boot {
    console: String,
    seconds: f64,
}

fn boot(vmlinuz: &str, initrd: &Path, hooks: &str, check: bool) -> Boot {
    let t = Instant::now();
    let check = if check { "1" } else { "0" };
    let console = run(&[
        "boot",
        vmlinuz,
        initrd.to_str().unwrap(),
        hooks,
        "400",
        check,
    ]);
    Boot {
        console,
        seconds: t.elapsed().as_secs_f64(),
    }
}

/// The spans of a boot, sorted.
fn spans(b: &Boot) -> Vec<String> {
    let mut v: Vec<_> = section(&b.console, "OUT")
        .into_iter()
        .filter_map(span_key)
        .collect();
    v.sort();
    v
}

/// Three fetches of a file (busybox httpd sends it with `sendfile`), one of a missing page
/// (an error page written with `write`; a client span is an error on 4xx), and one HTTPS
/// request from `openssl s_client` (libssl uprobes) to `openssl s_server -www`.
fn expected() -> Vec<String> {
    let mut v = Vec::new();
    for kind in ["CLIENT", "SERVER"] {
        for _ in 0..3 {
            v.push(format!("{kind} GET /index.html 200 127.0.0.1:8080 -"));
        }
        let error = if kind == "CLIENT" { "404" } else { "-" };
        v.push(format!(
            "{kind} GET /missing.html 404 127.0.0.1:8080 {error}"
        ));
    }
    // `openssl s_server -www` reads and writes through an SSL BIO, which calls libssl's
    // internal read/write and not the exported SSL_read/SSL_write the uprobes are on: only
    // the client's side of the HTTPS exchange is a span, on every kernel.
    v.push("CLIENT GET / 200 127.0.0.1:4433 -".to_string());
    v.sort();
    v
}

#[test]
fn distribution_kernels_capture_the_same_spans_with_every_hook_family() {
    let _g = serial();
    let receiver = workspace_bin("otel-ebpf-receiver");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kernel-matrix");
    std::fs::create_dir_all(&dir).unwrap();
    let initrd = dir.join("initramfs.cpio");
    run(&[
        "initramfs",
        initrd.to_str().unwrap(),
        receiver.to_str().unwrap(),
    ]);

    // (series, hook family, the hook the socket send point must get (None = no hook: the
    // receiver must refuse to start and say why), run `check` first). `auto` is fentry on
    // both kernels, so fentry is not forced separately.
    let matrix: &[(&str, &str, Option<&str>, bool)] = &[
        ("6.1", "auto", Some("fexit:tcp_sendmsg"), true),
        ("6.12", "auto", Some("fexit:tcp_sendmsg"), false),
        ("6.1", "kprobe", Some("kprobe+kretprobe:tcp_sendmsg"), false),
        (
            "6.12",
            "kprobe",
            Some("kprobe+kretprobe:tcp_sendmsg"),
            false,
        ),
        ("6.1", "tracepoint", None, true),
        ("6.12", "tracepoint", Some("raw_tp:sock_send_length"), false),
    ];
    let kernels: Vec<(&str, String)> = ["6.1", "6.12"]
        .iter()
        .map(|s| (*s, run(&["fetch", s]).trim().to_string()))
        .collect();
    let vmlinuz = |series: &str| kernels.iter().find(|k| k.0 == series).unwrap().1.clone();
    // Two guests at a time: software emulation keeps about one host core busy per guest.
    let boots: Vec<Boot> = matrix
        .chunks(2)
        .flat_map(|pair| {
            std::thread::scope(|s| {
                let handles: Vec<_> = pair
                    .iter()
                    .map(|(series, hooks, _, with_check)| {
                        let k = vmlinuz(series);
                        let initrd = &initrd;
                        s.spawn(move || boot(&k, initrd, hooks, *with_check))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut report = Vec::new();
    for ((series, hooks, hook, with_check), b) in matrix.iter().zip(&boots) {
        let ctx = format!("Linux {series}, capture_hooks {hooks}");
        assert!(
            b.console.contains("KMATRIX-DONE"),
            "{ctx}: the guest did not finish:\n{}",
            b.console
        );
        let check = section(&b.console, "CHECK").join("\n");
        let err = section(&b.console, "ERR").join("\n");
        let got = spans(b);
        match hook {
            Some(hook) => {
                // The plan as the receiver logged it at start-up (and `check` printed it).
                let plan = if *with_check { &check } else { &err };
                let send_line = plan
                    .lines()
                    .find(|l| l.trim_start().starts_with("socket send "))
                    .unwrap_or_else(|| panic!("{ctx}: no capture plan:\n{plan}"));
                assert!(
                    send_line.contains(hook),
                    "{ctx}: socket send hook is not {hook}:\n{plan}"
                );
                if *with_check {
                    let check_rc = b
                        .console
                        .lines()
                        .find_map(|l| l.trim_end().split("KMATRIX-CHECK-END rc=").nth(1));
                    assert_eq!(check_rc, Some("0"), "{ctx}: check failed:\n{check}");
                }
                assert_eq!(
                    got,
                    expected(),
                    "{ctx}: spans differ\ncheck:\n{check}\nreceiver log:\n{err}\nconsole:\n{}",
                    section(&b.console, "OUT").join("\n")
                );
            }
            None => {
                assert!(
                    err.contains("no hook for the socket data path"),
                    "{ctx}: the receiver must refuse to start and say why:\n{err}"
                );
                assert!(
                    check.contains("not offered") && check.contains("sock_send_length"),
                    "{ctx}: check must say why the tracepoint is not offered:\n{check}"
                );
                assert!(got.is_empty(), "{ctx}: spans without a hook: {got:?}");
            }
        }
        let accel = b
            .console
            .lines()
            .find_map(|l| l.strip_prefix("KMATRIX-ACCEL "))
            .unwrap_or("?")
            .trim()
            .to_string();
        report.push(format!(
            "Linux {series:<5} {hooks:<10} spans {:>2}  {:>5.1} s ({accel})",
            got.len(),
            b.seconds
        ));
    }
    eprintln!("kernel matrix:\n{}", report.join("\n"));
}

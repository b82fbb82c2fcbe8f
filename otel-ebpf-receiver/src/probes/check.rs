//! `otel-ebpf-receiver check`: what this kernel and this process allow, and the probe plan.
//!
//! Input: tracefs, /sys/kernel/btf/vmlinux, /proc/self/status, the kernel's answers to BPF
//! feature probes, `receiver.capture_hooks`. Output: a report (one line per item, with the
//! reason for anything missing). The socket data path's hooks are loaded and attached for a
//! moment, exactly as at start-up, so the capture plan says what this kernel really accepts
//! (a refused hook shows the verifier's or the attach error); everything is detached before
//! the report is printed.

use super::{RAW_TRACEPOINTS, UPROBE_PROGRAMS, btf, capture, tracefs, uprobes};
use crate::config::CaptureHooks;
use aya::maps::MapType;
use aya::programs::ProgramType;
use aya::sys::{is_map_supported, is_program_supported};
use std::fmt::Write as _;
use std::path::Path;

/// Linux capability numbers (include/uapi/linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability bitmask of this process (CapEff in /proc/self/status).
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// What privilege is missing to load and attach the probes, if any.
pub fn missing_privilege() -> Option<String> {
    let caps = effective_caps();
    if has(caps, CAP_SYS_ADMIN) || (has(caps, CAP_BPF) && has(caps, CAP_PERFMON)) {
        None
    } else {
        Some("this process has neither CAP_SYS_ADMIN nor CAP_BPF+CAP_PERFMON".into())
    }
}

fn line(out: &mut String, ok: bool, what: &str, detail: &str) {
    let _ = writeln!(
        out,
        "[{}] {what:<28} {detail}",
        if ok { " ok " } else { "MISS" }
    );
}

/// An optional item: absent is not a failure.
fn optional(out: &mut String, ok: bool, what: &str, detail: &str) {
    let _ = writeln!(
        out,
        "[{}] {what:<28} {detail}",
        if ok { " ok " } else { " -- " }
    );
}

/// Builds the report for `receiver.capture_hooks` = `mode`; returns it and whether every
/// required item is present.
pub fn report(mode: CaptureHooks) -> (String, bool) {
    let mut out = String::new();
    let mut all = true;
    let _ = writeln!(
        out,
        "otel-ebpf-receiver {} — kernel capabilities",
        env!("CARGO_PKG_VERSION")
    );
    let uname = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let _ = writeln!(out, "kernel {}", uname.trim());

    let caps = effective_caps();
    let priv_ok = missing_privilege().is_none();
    all &= priv_ok;
    line(
        &mut out,
        priv_ok,
        "capabilities",
        &format!(
            "CapEff={caps:#x} (CAP_SYS_ADMIN={} CAP_BPF={} CAP_PERFMON={}){}",
            has(caps, CAP_SYS_ADMIN),
            has(caps, CAP_BPF),
            has(caps, CAP_PERFMON),
            if priv_ok {
                ""
            } else {
                " — run as root or grant CAP_BPF+CAP_PERFMON"
            }
        ),
    );

    let root = tracefs::root();
    optional(
        &mut out,
        root.is_some(),
        "tracefs",
        &match &root {
            Some(r) => format!("{} (not needed by raw tracepoints)", r.display()),
            None => "not mounted (not needed by raw tracepoints; mount -t tracefs nodev /sys/kernel/tracing for tools)".into(),
        },
    );

    let kbtf = btf::KernelBtf::open(btf::VMLINUX);
    let btf_res = kbtf.as_ref().map_err(|e| e.to_string()).and_then(|b| {
        let sk = btf::SockOffsets::resolve(b).map_err(|e| e.to_string())?;
        let regs = btf::RegsOffsets::resolve(b).map_err(|e| e.to_string())?;
        Ok((sk, regs))
    });
    all &= btf_res.is_ok();
    line(
        &mut out,
        btf_res.is_ok(),
        "BTF",
        &match &btf_res {
            Ok((sk, regs)) => format!(
                "{} (struct sock: skc_dport@{} skc_num@{} sk_protocol@{}; struct pt_regs: nr@{} arg0@{})",
                btf::VMLINUX,
                sk.skc_dport,
                sk.skc_num,
                sk.sk_protocol,
                regs.nr,
                regs.arg0
            ),
            Err(e) => e.clone(),
        },
    );

    let rb = is_map_supported(MapType::RingBuf);
    let rb_ok = matches!(rb, Ok(true));
    all &= rb_ok;
    line(
        &mut out,
        rb_ok,
        "ring buffer",
        &format!("BPF_MAP_TYPE_RINGBUF: {rb:?} (Linux ≥ 5.8)"),
    );

    let tp = is_program_supported(ProgramType::RawTracePoint);
    line(
        &mut out,
        matches!(tp, Ok(true)),
        "raw tracepoint programs",
        &format!("{tp:?}"),
    );
    all &= matches!(tp, Ok(true));

    let kprobes = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    optional(
        &mut out,
        kprobes,
        "kprobes",
        if kprobes {
            "available (capture plan and kernel network timing plan)"
        } else {
            "absent (CONFIG_KPROBES off) — optional, fentry or tracepoints are used instead"
        },
    );
    let uprobes = Path::new("/sys/bus/event_source/devices/uprobe").exists();
    optional(
        &mut out,
        uprobes,
        "uprobes",
        if uprobes {
            "available (TLS plaintext capture)"
        } else {
            "absent (CONFIG_UPROBES off) — optional: TLS plaintext is not captured"
        },
    );
    let fentry = is_program_supported(ProgramType::Tracing);
    optional(
        &mut out,
        matches!(fentry, Ok(true)),
        "fentry/fexit",
        &format!("program type {fentry:?} (optional; attach may still be refused by lockdown/LSM)"),
    );

    let send = capture_plan(&mut out, mode);
    all &= send.is_some();
    let _ = writeln!(out, "probe plan (all required):");
    for (name, args, since) in RAW_TRACEPOINTS {
        let res = match &kbtf {
            Ok(b) => b
                .expect_raw_tracepoint(name, args)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        all &= res.is_ok();
        line(
            &mut out,
            res.is_ok(),
            &format!("raw_tp:{name}"),
            &match res {
                Ok(()) => format!("raw tracepoint ({}) (Linux ≥ {since})", args.join(", ")),
                Err(e) => e,
            },
        );
    }
    net_plan(&mut out, kbtf.as_ref().ok(), send.as_ref());
    tls_plan(&mut out, uprobes);
    (out, all)
}

/// The socket data path: the hook each point gets here (by a real load and attach), and why
/// not the others. Returns the socket send point's choice when every point has a hook.
fn capture_plan(out: &mut String, mode: CaptureHooks) -> Option<capture::CaptureChoice> {
    let _ = writeln!(
        out,
        "capture plan (required; receiver.capture_hooks: {}; auto order fentry > tracepoint > kprobe):",
        capture::mode_name(mode)
    );
    match super::capture_trial(mode) {
        Ok(plan) => {
            out.push_str(&capture::render(&plan));
            plan.into_iter().next()
        }
        Err(e) => {
            line(out, false, "socket data path", &e.to_string());
            None
        }
    }
}

/// The kernel network timing part of the plan (optional: `receiver.kernel_timing`): which hook
/// serves each measurement point on this kernel (fentry > kprobe > tracepoint > none), and
/// whether the struct offsets resolve.
fn net_plan(
    out: &mut String,
    kbtf: Option<&btf::KernelBtf>,
    send: Option<&capture::CaptureChoice>,
) {
    let _ = writeln!(
        out,
        "kernel network timing plan (optional, receiver.kernel_timing; fentry > kprobe > tracepoint > none):"
    );
    let Some(b) = kbtf else {
        optional(out, false, "network timing", "no kernel BTF: off");
        return;
    };
    match super::netbtf::NetOffsets::resolve(b) {
        Ok(o) => optional(
            out,
            true,
            "sk_buff/tcp_sock offsets",
            &format!(
                "sk_buff: sk@{} tstamp@{} len@{}; tcp_sock: srtt_us@{} write_seq@{}",
                o.skb_sk, o.skb_tstamp, o.skb_len, o.tcp_srtt_us, o.tcp_write_seq
            ),
        ),
        Err(e) => optional(
            out,
            false,
            "sk_buff/tcp_sock offsets",
            &format!("{e}: network timing off"),
        ),
    }
    let mut plan = crate::kernel::plan::plan(&super::net_offers(b));
    if let Some(send) = send {
        for h in plan.iter_mut() {
            capture::serve_send_point(h, send);
        }
    }
    out.push_str(&crate::kernel::plan::render(&plan));
}

/// The TLS part of the plan: uprobe programs, what they go on, and the system libraries
/// attached at start-up (optional: without uprobes, TLS plaintext is not captured).
fn tls_plan(out: &mut String, uprobes: bool) {
    let _ = writeln!(out, "TLS plan (optional, needs uprobes):");
    for (name, what) in UPROBE_PROGRAMS {
        optional(out, uprobes, &format!("uprobe:{name}"), what);
    }
    let cache = std::fs::read("/etc/ld.so.cache")
        .ok()
        .and_then(|d| crate::tls::ldcache::LdCache::parse(&d).ok());
    for lib in uprobes::PINNED_LIBRARIES {
        let path = cache.as_ref().and_then(|c| c.lookup(lib)).cloned();
        let analysis = path.as_ref().map(|p| crate::tls::elf::analyze_file(p));
        let (ok, detail) = match (&path, analysis) {
            (Some(p), Some(Ok(a))) if a.is_tls() => (
                uprobes,
                format!(
                    "{}: {} probes, attached at start-up",
                    p.display(),
                    a.targets.iter().map(|t| t.probes.len()).sum::<usize>()
                ),
            ),
            (Some(p), Some(Err(e))) => (false, format!("{}: skipped ({e})", p.display())),
            (Some(p), _) => (false, format!("{}: no TLS functions", p.display())),
            (None, _) => (false, "not in /etc/ld.so.cache".into()),
        };
        optional(out, ok, lib, &detail);
    }
    let _ = writeln!(
        out,
        "  other files (Go binaries, node, static OpenSSL, libraries outside ld.so.cache) are attached when a process using them execs or is found at start-up"
    );
}

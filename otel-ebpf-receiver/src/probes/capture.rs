//! The capture plan of the socket data path: which hook serves each point (socket send,
//! socket receive) on this kernel, chosen at start-up and shown by `check`.
//!
//! Stage: probes (start-up) and `check`. Input: what the running kernel offers
//! ([`CaptureOffers`]: the raw tracepoints and functions in its BTF, kallsyms, kprobe and
//! fentry support), `receiver.capture_hooks`, and the loaded object. Output: per point the
//! hook attached and, for every other family, why it was not used (not offered, refused with
//! the kernel's verifier or attach error, not tried because a preferred one attached, or
//! excluded by `capture_hooks`).
//!
//! Order (`auto`): fentry/fexit on `tcp_sendmsg`/`tcp_recvmsg` > the `sock_send_length` /
//! `sock_recv_length` raw tracepoints > kprobe+kretprobe on the same functions. fexit comes
//! first because it runs for TCP sockets only (the raw tracepoints run for every socket call,
//! UNIX and UDP included) at about a raw tracepoint's cost per hit (BPF selftest benches:
//! raw tracepoint ≈ 5 ns, fentry ≈ 7.5 ns); kprobe+kretprobe is last because it is two
//! traps (≈ 18 + 45 ns) and a map update per call, so a raw tracepoint beats it wherever it
//! exists. All variants send the same records (see `ebpf/otel-ebpf-probes/src/probes/sockfn.rs`).
//! A host where fentry is refused (lockdown, LSM, a kernel without trampolines) and kprobes
//! are compiled out keeps the raw tracepoints: its cost per socket call is unchanged.

use super::ProbeError;
use crate::config::CaptureHooks;
use crate::kernel::plan::Mechanism;
use aya::Ebpf;
use aya::programs::{FExit, KProbe, RawTracePoint};
use std::fmt::Write as _;

/// One point of the socket data path and its hooks.
#[derive(Clone, Copy, Debug)]
pub struct DataPoint {
    /// What it captures (`socket send`).
    pub what: &'static str,
    /// Raw tracepoint (= program name; `None`: no tracepoint serves the point), its argument
    /// types, minimum Linux version.
    pub tracepoint: Option<&'static str>,
    pub tracepoint_args: &'static [&'static str],
    pub tracepoint_since: &'static str,
    /// Kernel function of the fexit and kprobe variants.
    pub function: &'static str,
    /// Program names of the variants (`fexit_nonblock`: the fexit program for the prototype
    /// with `nonblock`, Linux < 5.19, where it differs).
    pub fexit: &'static str,
    pub fexit_nonblock: &'static str,
    pub kprobe: &'static str,
    pub kretprobe: &'static str,
    /// `Some(why)`: a point only some kernels have; without a hook the receiver still starts.
    pub optional: Option<&'static str>,
}

/// Socket send, socket receive, and `sendfile` where it bypasses `tcp_sendmsg` (Linux < 6.5),
/// in that order.
pub const DATA_POINTS: [DataPoint; 3] = [
    DataPoint {
        what: "socket send",
        tracepoint: Some("sock_send_length"),
        tracepoint_args: &["struct sock *", "int", "int"],
        tracepoint_since: "6.3",
        function: "tcp_sendmsg",
        fexit: "tcp_sendmsg_fexit",
        fexit_nonblock: "tcp_sendmsg_fexit",
        kprobe: "tcp_sendmsg_kprobe",
        kretprobe: "tcp_sendmsg_kretprobe",
        optional: None,
    },
    DataPoint {
        what: "socket receive",
        tracepoint: Some("sock_recv_length"),
        tracepoint_args: &["struct sock *", "int", "int"],
        tracepoint_since: "6.3",
        function: "tcp_recvmsg",
        fexit: "tcp_recvmsg_fexit",
        fexit_nonblock: "tcp_recvmsg_fexit_nonblock",
        kprobe: "tcp_recvmsg_kprobe",
        kretprobe: "tcp_recvmsg_kretprobe",
        optional: None,
    },
    DataPoint {
        what: "socket sendfile",
        tracepoint: None,
        tracepoint_args: &[],
        tracepoint_since: "",
        function: "tcp_sendpage",
        fexit: "tcp_sendpage_fexit",
        fexit_nonblock: "tcp_sendpage_fexit",
        kprobe: "tcp_sendpage_kprobe",
        kretprobe: "tcp_sendpage_kretprobe",
        optional: Some("sendfile goes through tcp_sendmsg from Linux 6.5"),
    },
];

/// What the running kernel offers for the data path.
#[derive(Clone, Debug, Default)]
pub struct CaptureOffers {
    /// BPF_PROG_TYPE_TRACING programs load (fentry/fexit may still be refused at load or
    /// attach: that is found out by trying).
    pub fentry: bool,
    /// The kernel's answer when they do not (e.g. `Operation not permitted`).
    pub fentry_refusal: String,
    /// kprobes are built in (`/sys/bus/event_source/devices/kprobe`).
    pub kprobe: bool,
    /// Functions of [`DATA_POINTS`] in BTF: the fentry and kprobe targets (BTF lists the
    /// kernel's non-inlined functions, the ones kallsyms has; one kprobes may not touch is
    /// found out at attach). /proc/kallsyms is not read: formatting its ~150k lines takes
    /// the kernel ~0.1 s, and tens of seconds under software emulation.
    pub btf_funcs: Vec<&'static str>,
    /// Raw tracepoints of [`DATA_POINTS`] present with the expected arguments; the others
    /// with the reason.
    pub tracepoints: Vec<&'static str>,
    pub tracepoint_errors: Vec<(&'static str, String)>,
    /// `tcp_recvmsg`'s (flags, return value) argument positions from BTF (`None`: not in BTF).
    pub recv_args: Option<(u32, u32)>,
}

impl CaptureOffers {
    /// Reads them from the kernel (BTF, sysfs, a BPF feature probe).
    pub fn probe(kbtf: &super::btf::KernelBtf) -> Self {
        let funcs: Vec<&'static str> = DATA_POINTS.iter().map(|p| p.function).collect();
        let tracing = aya::sys::is_program_supported(aya::programs::ProgramType::Tracing);
        let mut o = Self {
            fentry: matches!(tracing, Ok(true)),
            fentry_refusal: match tracing {
                Ok(true) => String::new(),
                Ok(false) => "not supported".into(),
                Err(e) => match e {
                    aya::programs::ProgramError::SyscallError(s) => s.io_error.to_string(),
                    other => other.to_string(),
                },
            },
            kprobe: std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists(),
            btf_funcs: funcs.iter().copied().filter(|f| kbtf.has_func(f)).collect(),
            recv_args: kbtf
                .func_param_names("tcp_recvmsg")
                .and_then(|names| recv_arg_positions(&names)),
            ..Self::default()
        };
        for p in DATA_POINTS {
            let Some(tp) = p.tracepoint else { continue };
            match kbtf.expect_raw_tracepoint(tp, p.tracepoint_args) {
                Ok(()) => o.tracepoints.push(tp),
                Err(e) => o.tracepoint_errors.push((tp, e.to_string())),
            }
        }
        o
    }
}

/// (flags, return value) argument positions of `tcp_recvmsg` from its parameter names:
/// (3, 5) on Linux ≥ 5.19, (4, 6) with the older `nonblock` argument; `None` for any other
/// shape (then the fexit/kprobe receive hooks are not offered).
pub fn recv_arg_positions(names: &[String]) -> Option<(u32, u32)> {
    let flags = names.iter().position(|n| n == "flags")?;
    match (flags, names.len()) {
        (3, 5) | (4, 6) if names[0] == "sk" => Some((flags as u32, names.len() as u32)),
        _ => None,
    }
}

/// The families `mode` allows, in order of preference.
pub fn order(mode: CaptureHooks) -> &'static [Mechanism] {
    match mode {
        CaptureHooks::Auto => &[Mechanism::Fentry, Mechanism::Tracepoint, Mechanism::Kprobe],
        CaptureHooks::Fentry => &[Mechanism::Fentry],
        CaptureHooks::Tracepoint => &[Mechanism::Tracepoint],
        CaptureHooks::Kprobe => &[Mechanism::Kprobe],
    }
}

/// Why `m` is not offered for `p` on this kernel (`None`: it is).
pub fn not_offered(p: &DataPoint, m: Mechanism, o: &CaptureOffers) -> Option<String> {
    let recv = p.function == "tcp_recvmsg";
    match m {
        Mechanism::Fentry if !o.fentry => Some(format!(
            "BPF tracing programs refused by this kernel ({})",
            o.fentry_refusal
        )),
        Mechanism::Fentry if !o.btf_funcs.contains(&p.function) => {
            Some(format!("{} not in BTF", p.function))
        }
        Mechanism::Kprobe if !o.kprobe => Some("kprobes absent (CONFIG_KPROBES off)".into()),
        Mechanism::Kprobe if !o.btf_funcs.contains(&p.function) => {
            Some(format!("{} not in BTF", p.function))
        }
        Mechanism::Fentry | Mechanism::Kprobe if recv && o.recv_args.is_none() => Some(
            "tcp_recvmsg's arguments in BTF are not (sk, msg, len, [nonblock,] flags, addr_len)"
                .into(),
        ),
        Mechanism::Tracepoint => match p.tracepoint {
            None => Some("no tracepoint for this point".into()),
            Some(tp) if !o.tracepoints.contains(&tp) => Some(
                o.tracepoint_errors
                    .iter()
                    .find(|(t, _)| *t == tp)
                    .map(|(_, e)| format!("{e} (Linux ≥ {})", p.tracepoint_since))
                    .unwrap_or_else(|| format!("{tp} absent")),
            ),
            Some(_) => None,
        },
        Mechanism::None => Some("not a hook".into()),
        _ => None,
    }
}

/// The hook serving one point, and why the others do not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureChoice {
    pub what: &'static str,
    /// `None` when nothing serves the point (start-up then fails).
    pub chosen: Mechanism,
    /// `fexit tcp_sendmsg`, `raw_tp:sock_send_length`, `kprobe+kretprobe tcp_sendmsg`.
    pub hook: String,
    /// One line per other family: `kprobe: not tried (fentry attached)`, `fentry: refused:
    /// <error and verifier log>`, ...
    pub others: Vec<String>,
}

/// The hook text of `m` at `p`.
pub fn hook_name(p: &DataPoint, m: Mechanism) -> String {
    match m {
        Mechanism::Fentry => format!("fexit:{}", p.function),
        Mechanism::Kprobe => format!("kprobe+kretprobe:{}", p.function),
        Mechanism::Tracepoint => format!("raw_tp:{}", p.tracepoint.unwrap_or("?")),
        Mechanism::None => "none".into(),
    }
}

/// Loads and attaches `m`'s programs for `p`; on error nothing of it stays attached.
fn try_attach(
    ebpf: &mut Ebpf,
    p: &DataPoint,
    m: Mechanism,
    offers: &CaptureOffers,
    btf: &mut Option<Result<aya::Btf, String>>,
) -> Result<(), String> {
    let prog = |ebpf: &mut Ebpf, name: &str| -> Result<(), String> {
        if ebpf.program(name).is_none() {
            Err(format!("program {name} missing from the object"))
        } else {
            Ok(())
        }
    };
    match m {
        Mechanism::Tracepoint => {
            let name = p.tracepoint.ok_or("no tracepoint for this point")?;
            prog(ebpf, name)?;
            let tp: &mut RawTracePoint = ebpf
                .program_mut(name)
                .expect("checked")
                .try_into()
                .map_err(|e| format!("{e}"))?;
            tp.load().map_err(|e| format!("load: {e}"))?;
            if let Err(e) = tp.attach(name) {
                let _ = tp.unload();
                return Err(format!("attach: {e}"));
            }
            Ok(())
        }
        Mechanism::Fentry => {
            let name = match offers.recv_args {
                Some((_, 6)) => p.fexit_nonblock,
                _ => p.fexit,
            };
            prog(ebpf, name)?;
            let btf = btf
                .get_or_insert_with(|| aya::Btf::from_sys_fs().map_err(|e| format!("BTF: {e}")))
                .as_ref()
                .map_err(Clone::clone)?;
            let f: &mut FExit = ebpf
                .program_mut(name)
                .expect("checked")
                .try_into()
                .map_err(|e| format!("{e}"))?;
            f.load(p.function, btf).map_err(|e| format!("load: {e}"))?;
            if let Err(e) = f.attach() {
                let _ = f.unload();
                return Err(format!("attach: {e}"));
            }
            Ok(())
        }
        Mechanism::Kprobe => {
            prog(ebpf, p.kprobe)?;
            prog(ebpf, p.kretprobe)?;
            for name in [p.kretprobe, p.kprobe] {
                let k: &mut KProbe = ebpf
                    .program_mut(name)
                    .expect("checked")
                    .try_into()
                    .map_err(|e| format!("{e}"))?;
                let res = k
                    .load()
                    .map_err(|e| format!("load {name}: {e}"))
                    .and_then(|()| {
                        k.attach(p.function, 0)
                            .map(|_| ())
                            .map_err(|e| format!("attach {name}: {e}"))
                    });
                if let Err(e) = res {
                    // Whatever of the pair attached is detached (unload detaches its links).
                    for n in [p.kretprobe, p.kprobe] {
                        if let Some(Ok(k)) = ebpf.program_mut(n).map(<&mut KProbe>::try_from) {
                            let _ = k.unload();
                        }
                    }
                    return Err(e);
                }
            }
            Ok(())
        }
        Mechanism::None => Err("not a hook".into()),
    }
}

/// Attaches one hook per point of [`DATA_POINTS`] in the order `mode` allows; a family not
/// offered is skipped, one refused falls back to the next. Errors when a point has no hook.
pub fn attach(
    ebpf: &mut Ebpf,
    offers: &CaptureOffers,
    mode: CaptureHooks,
) -> Result<Vec<CaptureChoice>, ProbeError> {
    let mut btf = None;
    let mut out = Vec::new();
    for p in &DATA_POINTS {
        let mut others = Vec::new();
        let mut chosen = Mechanism::None;
        for &m in order(mode) {
            if chosen != Mechanism::None {
                others.push(format!(
                    "{}: not tried ({} attached first)",
                    m.name(),
                    chosen.name()
                ));
                continue;
            }
            if let Some(why) = not_offered(p, m, offers) {
                others.push(format!("{}: not offered: {why}", m.name()));
                continue;
            }
            match try_attach(ebpf, p, m, offers, &mut btf) {
                Ok(()) => chosen = m,
                Err(e) => {
                    log::warn!(
                        "capture: {} refused for {}, trying the next hook: {e}",
                        hook_name(p, m),
                        p.what
                    );
                    others.push(format!("{}: refused: {e}", m.name()));
                }
            }
        }
        for m in [Mechanism::Fentry, Mechanism::Tracepoint, Mechanism::Kprobe] {
            if !order(mode).contains(&m) {
                others.push(format!(
                    "{}: excluded by receiver.capture_hooks: {}",
                    m.name(),
                    mode_name(mode)
                ));
            }
        }
        let choice = CaptureChoice {
            what: p.what,
            chosen,
            hook: hook_name(p, chosen),
            others,
        };
        if chosen == Mechanism::None
            && let Some(why) = p.optional
        {
            let mut choice = choice;
            choice.hook = format!("none ({why})");
            out.push(choice);
            continue;
        }
        if chosen == Mechanism::None {
            return Err(ProbeError::Attach {
                tp: p.what.into(),
                msg: format!(
                    "no hook for the socket data path on this kernel:\n{}",
                    render(&[choice])
                ),
            });
        }
        out.push(choice);
    }
    Ok(out)
}

/// If `h` is the kernel timing plan's send socket layer point (timed by whichever hook serves
/// socket sends), sets it to `send`'s hook and returns true.
pub fn serve_send_point(h: &mut crate::kernel::plan::HookPlan, send: &CaptureChoice) -> bool {
    let p = &DATA_POINTS[0];
    if h.what != crate::kernel::plan::SEND_SOCKET_POINT {
        return false;
    }
    h.chosen = send.chosen;
    h.target = Some(match send.chosen {
        Mechanism::Tracepoint => p.tracepoint.unwrap_or(p.function),
        _ => p.function,
    });
    h.note = "the socket send hook of the capture plan".into();
    true
}

/// The config spelling of `mode`.
pub fn mode_name(mode: CaptureHooks) -> &'static str {
    match mode {
        CaptureHooks::Auto => "auto",
        CaptureHooks::Fentry => "fentry",
        CaptureHooks::Kprobe => "kprobe",
        CaptureHooks::Tracepoint => "tracepoint",
    }
}

/// At most this many trailing lines of a verifier log are shown per refused hook.
const LOG_TAIL_LINES: usize = 6;

/// The plan as text: one line per point, then one indented line per other family (a long
/// error, such as a verifier log, shortened to its last lines).
pub fn render(plan: &[CaptureChoice]) -> String {
    let mut out = String::new();
    for c in plan {
        let _ = writeln!(out, "  {:<30} {}", c.what, c.hook);
        for o in &c.others {
            let lines: Vec<&str> = o.lines().filter(|l| !l.trim().is_empty()).collect();
            let shown = if lines.len() > LOG_TAIL_LINES + 1 {
                let mut v = vec![lines[0].to_string(), "…".into()];
                v.extend(
                    lines[lines.len() - LOG_TAIL_LINES..]
                        .iter()
                        .map(|l| l.to_string()),
                );
                v
            } else {
                lines.iter().map(|l| l.to_string()).collect()
            };
            for (i, l) in shown.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "  {:<30} {}{l}",
                    "",
                    if i == 0 { "- " } else { "    " }
                );
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "capture_tests.rs"]
mod tests;

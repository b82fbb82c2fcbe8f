//! Probe loading and attaching.
//!
//! Stage: **probes** → events. Input: the BPF object embedded at build time
//! (`ebpf/otel-ebpf-probes`), this kernel's BTF (struct offsets, raw tracepoint prototypes),
//! the kernel-side filters, `receiver.capture_hooks`. Output: attached programs, the ring
//! buffer to read, and the kernel-side counters. The socket data path takes one hook per
//! point from [`capture`] (fentry, raw tracepoint or kprobe, by what this kernel offers and
//! loads); every raw tracepoint in [`RAW_TRACEPOINTS`] is required; a missing one, or one whose
//! arguments differ from what the probes read, is an error that names it. No syscall
//! tracepoint is attached (see `ebpf/otel-ebpf-probes` for why).

pub mod btf;
pub mod capture;
pub mod check;
pub mod layers;
pub mod listeners;
pub mod netbtf;
pub mod tracefs;
pub mod uprobes;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{RawTracePoint, UProbe};
use aya::{Ebpf, EbpfLoader};
use otel_ebpf_common::{
    COUNTER_COUNT, FILTER_EXCLUDE, FILTER_INCLUDE, FILTER_PIDS_EXCLUDE, FILTER_PIDS_INCLUDE,
    FILTER_PORTS_EXCLUDE, FILTER_PORTS_INCLUDE, MAX_CAPTURE, NET_HEALTH, NET_LAYERS, ProbeConfig,
    SYSCALL_COUNT,
};

/// The BPF object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/otel-ebpf-probes"));

/// (raw tracepoint = program name, the argument types the program reads after the context,
/// as [`btf::KernelBtf::raw_tracepoint_params`] spells them, minimum Linux version).
pub const RAW_TRACEPOINTS: &[(&str, &[&str], &str)] = &[
    (
        "inet_sock_set_state",
        &["struct sock *", "int", "int"],
        "4.16",
    ),
    ("sched_process_exit", &["struct task_struct *"], "4.17"),
    (
        "sched_process_exec",
        &["struct task_struct *", "pid_t", "struct linux_binprm *"],
        "4.17",
    ),
    (
        "sched_process_fork",
        &["struct task_struct *", "struct task_struct *"],
        "4.17",
    ),
];

/// Network timing and TCP health raw tracepoints (each optional: attached only with
/// `receiver.kernel_timing.enabled`, the per-packet ones in [`LAYER_TRACEPOINTS`] only with
/// `receiver.kernel_timing.layers` too; a missing one is logged once and degrades the
/// breakdown, see [`crate::kernel::plan`]): (name, argument types read, minimum Linux version).
pub const NET_TRACEPOINTS: &[(&str, &[&str], &str)] = &[
    ("net_dev_queue", &["struct sk_buff *"], "3.9"),
    (
        "net_dev_start_xmit",
        &["struct sk_buff *", "struct net_device *"],
        "4.7",
    ),
    (
        "net_dev_xmit",
        &[
            "struct sk_buff *",
            "int",
            "struct net_device *",
            "unsigned int",
        ],
        "3.9",
    ),
    ("netif_receive_skb", &["struct sk_buff *"], "3.9"),
    ("tcp_probe", &["struct sock *", "struct sk_buff *"], "4.16"),
    (
        "skb_copy_datagram_iovec",
        &["struct sk_buff *", "int"],
        "3.9",
    ),
    (
        "kfree_skb",
        &[
            "struct sk_buff *",
            "void *",
            "enum skb_drop_reason",
            "struct sock *",
        ],
        "6.11",
    ),
    (
        "tcp_retransmit_skb",
        &["struct sock *", "struct sk_buff *"],
        "4.15",
    ),
    (
        "tcp_send_reset",
        &["struct sock *", "struct sk_buff *", "enum sk_rst_reason"],
        "6.10",
    ),
    ("tcp_receive_reset", &["struct sock *"], "4.15"),
];

/// The per-packet hooks of [`NET_TRACEPOINTS`] (layer timing, `receiver.kernel_timing.layers`).
pub const LAYER_TRACEPOINTS: [&str; 6] = [
    "net_dev_queue",
    "net_dev_start_xmit",
    "net_dev_xmit",
    "netif_receive_skb",
    "tcp_probe",
    "skb_copy_datagram_iovec",
];

/// The uprobe programs of one TLS library family: loaded together, off together.
pub struct TlsFamily {
    /// As logged: "C libraries (OpenSSL, GnuTLS)", "Go crypto/tls", "rustls".
    pub name: &'static str,
    /// Program names (each in [`UPROBE_PROGRAMS`]).
    pub programs: &'static [&'static str],
}

/// Every TLS family, in load order.
pub const TLS_FAMILIES: &[TlsFamily] = &[
    TlsFamily {
        name: "C libraries (OpenSSL, GnuTLS)",
        programs: &["tls_entry", "tls_return"],
    },
    TlsFamily {
        name: "Go crypto/tls",
        programs: &["go_tls_entry", "go_tls_ret"],
    },
    TlsFamily {
        name: "rustls",
        programs: &[
            "rustls_entry",
            "rustls_consume",
            "rustls_io_ret",
            "rustls_ret",
        ],
    },
];

/// Uprobe programs of the object (loaded at start-up, attached per file by
/// [`uprobes::TlsAttacher`]): (program name, what it is attached to).
pub const UPROBE_PROGRAMS: &[(&str, &str)] = &[
    (
        "tls_entry",
        "uprobe: SSL_read/SSL_write/SSL_read_ex/SSL_write_ex, gnutls_record_recv/send",
    ),
    ("tls_return", "uretprobe: the same functions"),
    ("go_tls_entry", "uprobe: Go crypto/tls.(*Conn).Read/Write"),
    (
        "go_tls_ret",
        "uprobe: each RET instruction of those Go functions",
    ),
    (
        "rustls_entry",
        "uprobe: rustls ConnectionCommon read_tls/write_tls/reader, PlaintextSink::write(_vectored), Reader read/into_first_chunk",
    ),
    (
        "rustls_consume",
        "uprobe: rustls <Reader as BufRead>::consume",
    ),
    ("rustls_io_ret", "uretprobe: rustls read_tls/write_tls"),
    (
        "rustls_ret",
        "uretprobe: rustls PlaintextSink::write(_vectored), Reader read/into_first_chunk",
    ),
];

/// Syscall numbers of this architecture, in [`otel_ebpf_common::Syscall`] order.
const SYSCALL_NRS: [i64; SYSCALL_COUNT] = [
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendfile,
];

/// Why the probes could not be loaded or attached.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "not permitted to load eBPF programs: run as root or grant CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE ({0})"
    )]
    Permission(String),
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error("capture_bytes {0} is outside 1..={MAX_CAPTURE}")]
    Capture(u32),
    #[error("loading the BPF object failed: {0}")]
    Load(String),
    #[error("attaching tracepoint {tp} failed: {msg}")]
    Attach { tp: String, msg: String },
    #[error("BPF map {0} missing from the object")]
    Map(&'static str),
}

/// Load-time settings.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Payload bytes copied per syscall (bytes, 1..=[`MAX_CAPTURE`]).
    pub capture_bytes: u32,
    /// Ring buffer size (bytes, power of two multiple of the page size).
    pub ring_buffer_bytes: u32,
    /// Filters applied in the kernel (what is filtered never reaches the ring buffer).
    pub filters: KernelFilters,
    /// Attach the TCP health hooks ([`NET_TRACEPOINTS`] but [`LAYER_TRACEPOINTS`]).
    pub net_timing: bool,
    /// Attach the per-packet layer timing hooks ([`LAYER_TRACEPOINTS`]) too.
    pub net_layers: bool,
    /// Hook family of the socket data path (`receiver.capture_hooks`).
    pub capture_hooks: crate::config::CaptureHooks,
    /// Which skbs the layer hooks time (`receiver.kernel_timing.sampling`).
    pub sampling: crate::config::LayerSampling,
}

/// The part of `receiver.filters` the probes can apply themselves: pids and ports.
/// (Executables are matched in user space; with `include_executables` set, `include_pids`
/// is applied in user space too, because the two include lists are alternatives.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelFilters {
    pub include_pids: Vec<u32>,
    pub exclude_pids: Vec<u32>,
    pub include_ports: Vec<u16>,
    pub exclude_ports: Vec<u16>,
}

impl KernelFilters {
    /// The kernel-side subset of the configured filters.
    pub fn from_config(f: &crate::config::Filters) -> Self {
        Self {
            include_pids: if f.include_executables.is_empty() {
                f.include_pids.clone()
            } else {
                Vec::new()
            },
            exclude_pids: f.exclude_pids.clone(),
            include_ports: f.include_ports.clone(),
            exclude_ports: f.exclude_ports.clone(),
        }
    }

    /// `ProbeConfig::filter_flags` for these filters.
    pub fn flags(&self) -> u32 {
        let mut f = 0;
        if !self.include_pids.is_empty() {
            f |= FILTER_PIDS_INCLUDE;
        }
        if !self.exclude_pids.is_empty() {
            f |= FILTER_PIDS_EXCLUDE;
        }
        if !self.include_ports.is_empty() {
            f |= FILTER_PORTS_INCLUDE;
        }
        if !self.exclude_ports.is_empty() {
            f |= FILTER_PORTS_EXCLUDE;
        }
        f
    }
}

/// Bytes waiting in the ring buffer from which the probes wake the consumer: 1/16 of the ring
/// (256 KiB of the default 4 MiB), so a burst never comes near filling it before the
/// consumer runs; below that the consumer finds the records on its poll timer
/// (`pipeline::RING_POLL_INTERVAL`).
pub fn wakeup_bytes(ring_buffer_bytes: u32) -> u32 {
    (ring_buffer_bytes / 16).max(4096)
}

/// Everything read from the kernel at start-up to fill [`ProbeConfig`].
pub fn probe_config(
    capture_bytes: u32,
    ring_buffer_bytes: u32,
    filters: &KernelFilters,
) -> Result<ProbeConfig, ProbeError> {
    probe_config_with(
        capture_bytes,
        ring_buffer_bytes,
        filters,
        &btf::KernelBtf::open(btf::VMLINUX)?,
    )
}

fn probe_config_with(
    capture_bytes: u32,
    ring_buffer_bytes: u32,
    filters: &KernelFilters,
    kbtf: &btf::KernelBtf,
) -> Result<ProbeConfig, ProbeError> {
    if capture_bytes == 0 || capture_bytes as usize > MAX_CAPTURE {
        return Err(ProbeError::Capture(capture_bytes));
    }
    for (name, args, _) in RAW_TRACEPOINTS {
        kbtf.expect_raw_tracepoint(name, args)?;
    }
    let sk = btf::SockOffsets::resolve(kbtf)?;
    let regs = btf::RegsOffsets::resolve(kbtf)?;
    let task = btf::TaskOffsets::resolve(kbtf)?;
    let go = crate::tls::godwarf::GoTlsOffsets::TABLE;
    // Only read by the tcp_recvmsg hooks, which are not offered when this is `None`.
    let (recv_flags_arg, _) = kbtf
        .func_param_names("tcp_recvmsg")
        .and_then(|n| capture::recv_arg_positions(&n))
        .unwrap_or((3, 5));
    Ok(ProbeConfig {
        own_tgid: std::process::id(),
        capture_bytes,
        off_skc_daddr: sk.skc_daddr,
        off_skc_rcv_saddr: sk.skc_rcv_saddr,
        off_skc_dport: sk.skc_dport,
        off_skc_num: sk.skc_num,
        off_skc_family: sk.skc_family,
        off_skc_v6_daddr: sk.skc_v6_daddr,
        off_skc_v6_rcv_saddr: sk.skc_v6_rcv_saddr,
        off_sk_protocol: sk.sk_protocol,
        off_regs_nr: regs.nr,
        off_regs_arg0: regs.arg0,
        off_regs_arg1: regs.arg1,
        off_regs_arg2: regs.arg2,
        nr: SYSCALL_NRS.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        filter_flags: filters.flags(),
        off_task_pid: task.pid,
        off_task_tgid: task.tgid,
        go_conn_conn: go.conn_conn as u32,
        go_net_conn_fd: go.net_conn_fd as u32,
        go_netfd_pfd: go.netfd_pfd as u32,
        go_pfd_sysfd: go.poll_fd_sysfd as u32,
        off_task_files: task.files,
        off_files_fdt: task.fdt,
        off_fdt_fd: task.fdt_fd,
        off_fdt_max_fds: task.fdt_max_fds,
        off_file_private_data: task.file_private_data,
        off_socket_sk: task.socket_sk,
        wakeup_bytes: wakeup_bytes(ring_buffer_bytes),
        drop_not_dropped_yet: u32::MAX,
        drop_consumed: u32::MAX,
        recv_flags_arg,
        ..ProbeConfig::default()
    })
}

/// Sets the network timing part of `cfg` (offsets, drop reasons); `Err` says why network
/// timing cannot run on this kernel.
fn net_config(
    cfg: &mut ProbeConfig,
    kbtf: &btf::KernelBtf,
    reasons: &netbtf::ReasonNames,
    layers: bool,
    sampling: &crate::config::LayerSampling,
) -> Result<(), btf::BtfError> {
    let o = netbtf::NetOffsets::resolve(kbtf)?;
    cfg.net_timing = NET_HEALTH | if layers { NET_LAYERS } else { 0 };
    cfg.sample_hash_max = (sampling.connection_rate.clamp(0.0, 1.0) * u32::MAX as f64) as u32;
    cfg.sample_skb_interval = sampling.skb_interval.max(1);
    cfg.sample_hot_srtt_us = (sampling.srtt_threshold_ms * 1000.0).min(u32::MAX as f64) as u32;
    cfg.sample_hot_retransmits = sampling.retransmit_threshold.min(255);
    cfg.off_skb_sk = o.skb_sk;
    cfg.off_skb_tstamp = o.skb_tstamp;
    cfg.off_skb_len = o.skb_len;
    cfg.off_skb_head = o.skb_head;
    cfg.off_skb_data = o.skb_data;
    cfg.off_skb_protocol = o.skb_protocol;
    cfg.off_skb_network_header = o.skb_network_header;
    cfg.off_skb_transport_header = o.skb_transport_header;
    cfg.off_tcp_srtt_us = o.tcp_srtt_us;
    cfg.off_tcp_snd_cwnd = o.tcp_snd_cwnd;
    cfg.off_tcp_write_seq = o.tcp_write_seq;
    cfg.off_tcp_snd_nxt = o.tcp_snd_nxt;
    cfg.off_sk_net = o.sk_net;
    cfg.off_net_ns_inum = o.net_ns_inum;
    cfg.drop_not_dropped_yet = reasons.drop_value("NOT_DROPPED_YET").unwrap_or(u32::MAX);
    cfg.drop_consumed = reasons.drop_value("CONSUMED").unwrap_or(u32::MAX);
    Ok(())
}

/// What network timing got at start-up.
#[derive(Clone, Debug, Default)]
pub struct NetStatus {
    /// Whether the hooks run (config on, offsets resolved, at least one attached).
    pub enabled: bool,
    /// Raw tracepoints attached (names).
    pub attached: Vec<&'static str>,
    /// The plan for this kernel (see [`crate::kernel::plan`]).
    pub plan: Vec<crate::kernel::plan::HookPlan>,
    /// Drop/reset reason names of this kernel.
    pub reasons: netbtf::ReasonNames,
}

/// What this kernel offers for the network timing plan (BTF, kprobe and fentry support).
/// The kprobe targets are the plan's functions in BTF when kprobes exist (BTF lists the
/// non-inlined functions, the ones kallsyms has): /proc/kallsyms (~150k lines) is not read,
/// it costs ~0.1 s of kernel time natively and tens of seconds under software emulation.
pub fn net_offers(kbtf: &btf::KernelBtf) -> crate::kernel::plan::KernelOffers {
    use crate::kernel::plan::{KernelOffers, POINTS};
    let funcs: Vec<&'static str> = POINTS.iter().filter_map(|p| p.function).collect();
    let kprobe = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    let btf_funcs: Vec<&'static str> = funcs.iter().copied().filter(|f| kbtf.has_func(f)).collect();
    let mut tracepoints: Vec<&'static str> = Vec::new();
    for (name, args, _) in RAW_TRACEPOINTS.iter().chain(NET_TRACEPOINTS) {
        if kbtf.expect_raw_tracepoint(name, args).is_ok() {
            tracepoints.push(name);
        }
    }
    for p in &capture::DATA_POINTS {
        if let Some(tp) = p.tracepoint
            && kbtf.expect_raw_tracepoint(tp, p.tracepoint_args).is_ok()
        {
            tracepoints.push(tp);
        }
    }
    KernelOffers {
        fentry: matches!(
            aya::sys::is_program_supported(aya::programs::ProgramType::Tracing),
            Ok(true)
        ),
        kprobe,
        kallsyms: if kprobe {
            btf_funcs.clone()
        } else {
            Vec::new()
        },
        btf_funcs,
        tracepoints,
    }
}

/// Loads and attaches each raw tracepoint of `list` that this kernel has; one that fails is
/// logged once and skipped (the receiver runs without it). Returns the names attached.
fn attach_optional(ebpf: &mut Ebpf, list: &[(&'static str, &[&str], &str)]) -> Vec<&'static str> {
    let mut ok = Vec::new();
    for (name, _, since) in list {
        let res = (|| -> Result<(), String> {
            let prog: &mut RawTracePoint = ebpf
                .program_mut(name)
                .ok_or("program missing from object")?
                .try_into()
                .map_err(|e| format!("{e}"))?;
            prog.load().map_err(|e| format!("{e:#}"))?;
            prog.attach(name).map_err(|e| format!("{e:#}"))?;
            Ok(())
        })();
        match res {
            Ok(()) => ok.push(*name),
            Err(e) => log::warn!(
                "kernel network timing: raw tracepoint {name} (Linux ≥ {since}) not attached, its layer is not measured: {e}"
            ),
        }
    }
    ok
}

/// Loaded and attached probes. Dropping this detaches everything.
pub struct Probes {
    ebpf: Ebpf,
    /// Tracepoints attached, as `category:name`.
    pub attached: Vec<String>,
    /// Why the TLS uprobe programs could not be loaded (TLS capture off); `None` when they
    /// are loaded and ready to attach.
    pub tls_unavailable: Option<String>,
    /// Network timing at start-up.
    pub net: NetStatus,
    /// The hook serving each point of the socket data path, and why not the others.
    pub capture: Vec<capture::CaptureChoice>,
    /// The layer-timing windows (`None` without `layers`); run it with
    /// [`layers::LayerSampler::spawn`].
    pub layers: Option<layers::LayerSampler>,
}

/// Writes the pid and port filters into `FILTER_PIDS` / `FILTER_PORTS`.
fn fill_filters(ebpf: &mut Ebpf, f: &KernelFilters) -> Result<(), ProbeError> {
    let mut pids: BpfHashMap<_, u32, u8> = ebpf
        .map_mut("FILTER_PIDS")
        .ok_or(ProbeError::Map("FILTER_PIDS"))?
        .try_into()
        .map_err(|_| ProbeError::Map("FILTER_PIDS"))?;
    let lists = [
        (&f.include_pids, FILTER_INCLUDE),
        (&f.exclude_pids, FILTER_EXCLUDE),
    ];
    for (list, v) in lists {
        for pid in list.iter() {
            pids.insert(pid, v, 0)
                .map_err(|e| ProbeError::Load(format!("FILTER_PIDS: {e}")))?;
        }
    }
    let mut ports: BpfHashMap<_, u16, u8> = ebpf
        .map_mut("FILTER_PORTS")
        .ok_or(ProbeError::Map("FILTER_PORTS"))?
        .try_into()
        .map_err(|_| ProbeError::Map("FILTER_PORTS"))?;
    let lists = [
        (&f.include_ports, FILTER_INCLUDE),
        (&f.exclude_ports, FILTER_EXCLUDE),
    ];
    for (list, v) in lists {
        for port in list.iter() {
            ports
                .insert(port, v, 0)
                .map_err(|e| ProbeError::Load(format!("FILTER_PORTS: {e}")))?;
        }
    }
    Ok(())
}

fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer; failure only matters on kernels < 5.11,
    // where the load error that follows says so.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
}

/// Loads the object and attaches the socket data path's hooks as start-up would, then
/// detaches everything (for `check`: which hook actually loads and attaches here, with the
/// verifier's answer for those refused). Nothing else is attached.
pub fn capture_trial(
    mode: crate::config::CaptureHooks,
) -> Result<Vec<capture::CaptureChoice>, ProbeError> {
    if let Some(missing) = check::missing_privilege() {
        return Err(ProbeError::Permission(missing));
    }
    let kbtf = btf::KernelBtf::open(btf::VMLINUX)?;
    let cfg = probe_config_with(
        otel_ebpf_common::DEFAULT_CAPTURE,
        4096 * 16,
        &KernelFilters::default(),
        &kbtf,
    )?;
    let offers = capture::CaptureOffers::probe(&kbtf);
    drop(kbtf);
    raise_memlock();
    let mut ebpf = EbpfLoader::new()
        .btf(None)
        .override_global("CONFIG", &cfg, true)
        .map_max_entries("EVENTS", 4096 * 16)
        .load(OBJECT)
        .map_err(|e| ProbeError::Load(format!("{e:#}")))?;
    capture::attach(&mut ebpf, &offers, mode)
}

impl Probes {
    /// Loads the object with this kernel's offsets and attaches every tracepoint.
    pub fn load(opts: LoadOptions) -> Result<Self, ProbeError> {
        if let Some(missing) = check::missing_privilege() {
            return Err(ProbeError::Permission(missing));
        }
        let kbtf = btf::KernelBtf::open(btf::VMLINUX)?;
        let mut cfg = probe_config_with(
            opts.capture_bytes,
            opts.ring_buffer_bytes,
            &opts.filters,
            &kbtf,
        )?;
        let capture_offers = capture::CaptureOffers::probe(&kbtf);
        let mut net = NetStatus::default();
        let mut offered = Vec::new();
        if opts.net_timing {
            net.reasons = netbtf::ReasonNames::from_btf(&kbtf);
            let offers = net_offers(&kbtf);
            net.plan = crate::kernel::plan::plan(&offers);
            for tp in NET_TRACEPOINTS {
                if LAYER_TRACEPOINTS.contains(&tp.0) && !opts.net_layers {
                    continue;
                }
                if offers.tracepoints.contains(&tp.0) {
                    offered.push(*tp);
                } else {
                    log::warn!(
                        "kernel network timing: raw tracepoint {} (Linux ≥ {}) missing or with other arguments on this kernel; its layer is not measured",
                        tp.0,
                        tp.2
                    );
                }
            }
            if let Err(e) = net_config(
                &mut cfg,
                &kbtf,
                &net.reasons,
                opts.net_layers,
                &opts.sampling,
            ) {
                log::warn!("kernel network timing off: {e}");
            }
        }
        drop(kbtf);
        raise_memlock();
        // No CO-RE relocations in the probes (offsets come from `probe_config`), so aya need not
        // parse the kernel's BTF a second time (~25 MB of heap at start-up).
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .override_global("CONFIG", &cfg, true)
            .map_max_entries("EVENTS", opts.ring_buffer_bytes)
            .load(OBJECT)
            .map_err(|e| {
                let msg = format!("{e:#}");
                if msg.contains("EPERM") || msg.contains("Operation not permitted") {
                    ProbeError::Permission(msg)
                } else {
                    ProbeError::Load(msg)
                }
            })?;
        fill_filters(&mut ebpf, &opts.filters)?;
        let capture = capture::attach(&mut ebpf, &capture_offers, opts.capture_hooks)?;
        log::info!(
            "capture plan (receiver.capture_hooks: {}):\n{}",
            capture::mode_name(opts.capture_hooks),
            capture::render(&capture)
        );
        let mut attached: Vec<String> = capture
            .iter()
            .filter(|c| c.chosen != crate::kernel::plan::Mechanism::None)
            .map(|c| c.hook.clone())
            .collect();
        for (name, _, _) in RAW_TRACEPOINTS {
            let tp = format!("raw_tp:{name}");
            let err = |msg: String| ProbeError::Attach {
                tp: tp.clone(),
                msg,
            };
            let prog: &mut RawTracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| err("program missing from object".into()))?
                .try_into()
                .map_err(|e| err(format!("{e}")))?;
            prog.load().map_err(|e| err(format!("{e:#}")))?;
            prog.attach(name).map_err(|e| err(format!("{e:#}")))?;
            attached.push(tp);
        }
        let mut layers = None;
        if cfg.net_timing != 0 {
            let (per_packet, health): (Vec<_>, Vec<_>) = offered
                .iter()
                .copied()
                .partition(|tp| LAYER_TRACEPOINTS.contains(&tp.0));
            net.attached = attach_optional(&mut ebpf, &health);
            if !per_packet.is_empty() {
                let names: Vec<&'static str> = per_packet.iter().map(|t| t.0).collect();
                match layers::LayerSampler::new(&mut ebpf, &names, &opts.sampling) {
                    Ok((s, ok)) => {
                        net.attached.extend(ok);
                        layers = Some(s);
                    }
                    Err(e) => log::warn!("kernel network timing: layers off: {e}"),
                }
            }
            net.enabled = !net.attached.is_empty();
            // What is not attached is not in use, whatever the kernel offers.
            for h in net.plan.iter_mut() {
                if capture::serve_send_point(h, &capture[0]) {
                    continue;
                }
                let used = match h.target {
                    Some(t) if h.chosen == crate::kernel::plan::Mechanism::Tracepoint => {
                        net.attached.contains(&t) || RAW_TRACEPOINTS.iter().any(|r| r.0 == t)
                    }
                    _ => true,
                };
                if !used {
                    h.note = if opts.net_layers {
                        format!("{} not attached", h.target.unwrap_or("?"))
                    } else {
                        "off (receiver.kernel_timing.layers: false)".into()
                    };
                    h.chosen = crate::kernel::plan::Mechanism::None;
                    h.target = None;
                }
            }
            match listeners::seed(&mut ebpf, std::process::id()) {
                Ok(n) => log::info!("kernel network timing: {n} existing listening sockets"),
                Err(e) => log::warn!(
                    "kernel network timing: existing listeners not read ({e}); accepts of servers started before the receiver have no process"
                ),
            }
            log::info!(
                "kernel network timing: {} of {} hooks attached; plan:\n{}",
                net.attached.len(),
                NET_TRACEPOINTS.len(),
                crate::kernel::plan::render(&net.plan)
            );
        }
        // The uprobe programs are loaded now (a verifier failure shows at start-up) and
        // attached per file later. Each library family loads on its own: a family whose
        // program a kernel's verifier refuses (rustls's on Linux 6.1: too many instructions
        // to verify) is off, the others stay; TLS capture is off only when none loads.
        let mut tls_families_off = Vec::new();
        for family in TLS_FAMILIES {
            for name in family.programs {
                let res = match ebpf.program_mut(name) {
                    Some(p) => match TryInto::<&mut UProbe>::try_into(p) {
                        Ok(p) => p.load().map_err(|e| format!("{e:#}")),
                        Err(e) => Err(format!("{e}")),
                    },
                    None => Err("program missing from object".into()),
                };
                if let Err(e) = res {
                    log::warn!(
                        "TLS capture of {} off: loading uprobe program {name} failed: {e}",
                        family.name
                    );
                    tls_families_off.push((family.name, format!("{name}: {e}")));
                    break;
                }
            }
        }
        let tls_unavailable = (tls_families_off.len() == TLS_FAMILIES.len()).then(|| {
            tls_families_off
                .iter()
                .map(|(f, e)| format!("{f}: {e}"))
                .collect::<Vec<_>>()
                .join("; ")
        });
        Ok(Self {
            ebpf,
            attached,
            tls_unavailable,
            net,
            capture,
            layers,
        })
    }

    /// Hands the loaded object over (for [`uprobes::spawn`], which then owns every
    /// attachment); call after taking the ring buffer and counters.
    pub fn into_ebpf(self) -> Ebpf {
        self.ebpf
    }

    /// Takes the ring buffer (call once).
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>, ProbeError> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or(ProbeError::Map("EVENTS"))?;
        RingBuf::try_from(map).map_err(|_| ProbeError::Map("EVENTS"))
    }

    /// Takes the kernel-side counters (call once).
    pub fn take_counters(&mut self) -> Result<KernelCounters, ProbeError> {
        let map = self
            .ebpf
            .take_map("COUNTERS")
            .ok_or(ProbeError::Map("COUNTERS"))?;
        let arr = PerCpuArray::try_from(map).map_err(|_| ProbeError::Map("COUNTERS"))?;
        Ok(KernelCounters { arr })
    }
}

/// The probes' per-CPU counters (indexes: [`otel_ebpf_common::Counter`]).
pub struct KernelCounters {
    arr: PerCpuArray<MapData, u64>,
}

impl KernelCounters {
    /// Current totals summed over CPUs, indexed by `Counter as usize`.
    pub fn read(&self) -> [u64; COUNTER_COUNT as usize] {
        let mut out = [0u64; COUNTER_COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(v) = self.arr.get(&(i as u32), 0) {
                *slot = v.iter().sum();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_filters_follow_the_config_rules() {
        let mut f = crate::config::Filters {
            include_pids: vec![10],
            exclude_pids: vec![11],
            include_ports: vec![8080],
            ..Default::default()
        };
        let k = KernelFilters::from_config(&f);
        assert_eq!(k.include_pids, [10]);
        assert_eq!(
            k.flags(),
            FILTER_PIDS_INCLUDE | FILTER_PIDS_EXCLUDE | FILTER_PORTS_INCLUDE
        );
        // include_pids and include_executables are alternatives: a process matching only the
        // executable must not be dropped by the kernel, so include_pids moves to user space.
        f.include_executables = vec!["nginx".into()];
        let k = KernelFilters::from_config(&f);
        assert!(k.include_pids.is_empty());
        assert_eq!(k.flags(), FILTER_PIDS_EXCLUDE | FILTER_PORTS_INCLUDE);
        assert_eq!(KernelFilters::default().flags(), 0);
    }

    #[test]
    fn syscall_numbers_are_this_architectures() {
        // x86-64 ABI numbers (arch/x86/entry/syscalls/syscall_64.tbl).
        #[cfg(target_arch = "x86_64")]
        assert_eq!(SYSCALL_NRS, [0, 1, 19, 20, 44, 45, 46, 47, 40]);
        assert!(SYSCALL_NRS.iter().all(|n| u32::try_from(*n).is_ok()));
    }
}

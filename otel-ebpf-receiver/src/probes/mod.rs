//! Probe loading and attaching.
//!
//! Stage: **probes** → events. Input: the BPF object embedded at build time
//! (`ebpf/otel-ebpf-probes`), this kernel's BTF (struct offsets) and tracefs (tracepoint record
//! layouts). Output: attached tracepoints, the ring buffer to read, and the kernel-side
//! counters. Every tracepoint listed in [`TRACEPOINTS`] is required; a missing one is an error
//! that names it (the receiver cannot see sockets without them).

pub mod btf;
pub mod check;
pub mod tracefs;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::TracePoint;
use aya::{Ebpf, EbpfLoader};
use otel_ebpf_common::{COUNTER_COUNT, MAX_CAPTURE, ProbeConfig};

/// The BPF object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/otel-ebpf-probes"));

/// (program, tracepoint category, tracepoint name). Program names equal the event names.
pub const TRACEPOINTS: &[(&str, &str)] = &[
    ("syscalls", "sys_enter_read"),
    ("syscalls", "sys_exit_read"),
    ("syscalls", "sys_enter_write"),
    ("syscalls", "sys_exit_write"),
    ("syscalls", "sys_enter_readv"),
    ("syscalls", "sys_exit_readv"),
    ("syscalls", "sys_enter_writev"),
    ("syscalls", "sys_exit_writev"),
    ("syscalls", "sys_enter_sendto"),
    ("syscalls", "sys_exit_sendto"),
    ("syscalls", "sys_enter_recvfrom"),
    ("syscalls", "sys_exit_recvfrom"),
    ("syscalls", "sys_enter_sendmsg"),
    ("syscalls", "sys_exit_sendmsg"),
    ("syscalls", "sys_enter_recvmsg"),
    ("syscalls", "sys_exit_recvmsg"),
    ("syscalls", "sys_enter_sendfile64"),
    ("syscalls", "sys_exit_sendfile64"),
    ("syscalls", "sys_enter_connect"),
    ("syscalls", "sys_exit_connect"),
    ("syscalls", "sys_enter_accept"),
    ("syscalls", "sys_exit_accept"),
    ("syscalls", "sys_enter_accept4"),
    ("syscalls", "sys_exit_accept4"),
    ("syscalls", "sys_enter_close"),
    ("sock", "sock_send_length"),
    ("sock", "sock_recv_length"),
    ("sock", "inet_sock_set_state"),
    ("sched", "sched_process_exit"),
];

/// Why the probes could not be loaded or attached.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "not permitted to load eBPF programs: run as root or grant CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE ({0})"
    )]
    Permission(String),
    #[error(transparent)]
    Tracefs(#[from] tracefs::FormatError),
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
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Payload bytes copied per syscall (bytes, 1..=[`MAX_CAPTURE`]).
    pub capture_bytes: u32,
    /// Ring buffer size (bytes, power of two multiple of the page size).
    pub ring_buffer_bytes: u32,
}

/// Everything read from the kernel at start-up to fill [`ProbeConfig`].
pub fn probe_config(capture_bytes: u32) -> Result<ProbeConfig, ProbeError> {
    if capture_bytes == 0 || capture_bytes as usize > MAX_CAPTURE {
        return Err(ProbeError::Capture(capture_bytes));
    }
    let root = tracefs::root().ok_or(tracefs::FormatError::NotMounted)?;
    let kbtf = btf::KernelBtf::open(btf::VMLINUX)?;
    let sk = btf::SockOffsets::resolve(&kbtf)?;
    let socklen = tracefs::Tracepoint::read(&root, "sock", "sock_send_length")?;
    let recvlen = tracefs::Tracepoint::read(&root, "sock", "sock_recv_length")?;
    let state = tracefs::Tracepoint::read(&root, "sock", "inet_sock_set_state")?;
    let enter = tracefs::Tracepoint::read(&root, "syscalls", "sys_enter_read")?;
    let exit = tracefs::Tracepoint::read(&root, "syscalls", "sys_exit_read")?;
    // One set of offsets serves both sock:*_length tracepoints; make sure they agree.
    for f in ["sk", "family", "protocol"] {
        if socklen.offset(f)? != recvlen.offset(f)? {
            return Err(ProbeError::Load(format!(
                "sock_send_length/sock_recv_length disagree on {f}"
            )));
        }
    }
    Ok(ProbeConfig {
        own_tgid: std::process::id(),
        capture_bytes,
        off_skc_daddr: sk.skc_daddr,
        off_skc_rcv_saddr: sk.skc_rcv_saddr,
        off_skc_dport: sk.skc_dport,
        off_skc_num: sk.skc_num,
        off_skc_v6_daddr: sk.skc_v6_daddr,
        off_skc_v6_rcv_saddr: sk.skc_v6_rcv_saddr,
        tp_socklen_sk: socklen.offset("sk")?,
        tp_socklen_family: socklen.offset("family")?,
        tp_socklen_protocol: socklen.offset("protocol")?,
        tp_state_oldstate: state.offset("oldstate")?,
        tp_state_newstate: state.offset("newstate")?,
        tp_state_sport: state.offset("sport")?,
        tp_state_dport: state.offset("dport")?,
        tp_state_family: state.offset("family")?,
        tp_state_protocol: state.offset("protocol")?,
        tp_state_saddr_v6: state.offset("saddr_v6")?,
        tp_state_daddr_v6: state.offset("daddr_v6")?,
        tp_sys_args: enter.offset("fd")?,
        tp_sys_ret: exit.offset("ret")?,
        _pad: 0,
    })
}

/// Loaded and attached probes. Dropping this detaches everything.
pub struct Probes {
    ebpf: Ebpf,
    /// Tracepoints attached, as `category:name`.
    pub attached: Vec<String>,
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

impl Probes {
    /// Loads the object with this kernel's offsets and attaches every tracepoint.
    pub fn load(opts: LoadOptions) -> Result<Self, ProbeError> {
        if let Some(missing) = check::missing_privilege() {
            return Err(ProbeError::Permission(missing));
        }
        let cfg = probe_config(opts.capture_bytes)?;
        raise_memlock();
        let mut ebpf = EbpfLoader::new()
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
        let mut attached = Vec::new();
        for (category, name) in TRACEPOINTS {
            let tp = format!("{category}:{name}");
            let prog: &mut TracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| ProbeError::Attach {
                    tp: tp.clone(),
                    msg: "program missing from object".into(),
                })?
                .try_into()
                .map_err(|e| ProbeError::Attach {
                    tp: tp.clone(),
                    msg: format!("{e}"),
                })?;
            prog.load().map_err(|e| ProbeError::Attach {
                tp: tp.clone(),
                msg: format!("{e:#}"),
            })?;
            prog.attach(category, name)
                .map_err(|e| ProbeError::Attach {
                    tp: tp.clone(),
                    msg: format!("{e:#}"),
                })?;
            attached.push(tp);
        }
        Ok(Self { ebpf, attached })
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

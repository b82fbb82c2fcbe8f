//! Kernel-side probes: socket raw tracepoints that copy TCP payload bytes and metadata into one
//! BPF ring buffer. No syscall tracepoint is attached, so untraced syscalls keep the kernel's
//! fast path (attaching any `syscalls:*` tracepoint would put every task on the slow path).
//!
//! Hooks (raw tracepoints: the cheapest hook that works without kprobes):
//! - `sock_send_length(sk, ret, flags)` / `sock_recv_length(sk, ret, flags)` (Linux ≥ 6.3):
//!   fire in `sock_sendmsg_nosec` / `sock_recvmsg_nosec` after the bytes moved, in the
//!   context of the syscall. The syscall number and arguments (fd, buffer or iovec/msghdr,
//!   length) are read from the task's saved user registers (`bpf_task_pt_regs`), so
//!   `read`, `write`, `readv`, `writev`, `sendto`, `recvfrom`, `sendmsg`, `recvmsg` on TCP
//!   sockets are captured (up to `capture_bytes`) and `sendfile` is counted (bytes from a
//!   file). MSG_PEEK reads are skipped. Socket IO from other paths (io_uring, splice,
//!   sendmmsg, kernel threads) is counted as `UntracedSyscall`.
//! - `inet_sock_set_state(sk, oldstate, newstate)` (Linux ≥ 4.16): SYN_SENT → ESTABLISHED
//!   starts a client connection, SYN_RECV → ESTABLISHED a server one (new connection id,
//!   role, tuple); → CLOSE ends it (close event).
//! - `sched_process_exit(task)`: process exit event.
//!
//! Connections are keyed by their `struct sock` address (LRU map): the id survives fd
//! passing and dup, and is dropped at TCP_CLOSE. Every `struct sock` and `struct pt_regs`
//! field is read at an offset resolved by user space from this kernel's BTF (`CONFIG`).

use aya_ebpf::{
    bindings::task_struct,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_get_smp_processor_id,
        bpf_ktime_get_ns,
        generated::{bpf_probe_read_kernel, bpf_probe_read_user, bpf_task_pt_regs},
    },
    macros::{map, raw_tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::RawTracePointContext,
};
use core::ffi::c_void;
use otel_ebpf_common::{
    AF_INET, AF_INET6, Counter, Direction, EventHeader, EventKind, FILTER_EXCLUDE, FILTER_INCLUDE,
    FILTER_PIDS_EXCLUDE, FILTER_PIDS_INCLUDE, FILTER_PORTS_EXCLUDE, FILTER_PORTS_INCLUDE,
    HEADER_LEN, IPPROTO_TCP, MAX_CAPTURE, MAX_IOVECS, ProbeConfig, SYSCALL_COUNT, SockRole,
    Syscall,
};

/// Start-up configuration; user space rewrites it (`.rodata`) before load.
#[unsafe(no_mangle)]
static CONFIG: ProbeConfig = ProbeConfig {
    own_tgid: 0,
    capture_bytes: 0,
    off_skc_daddr: 0,
    off_skc_rcv_saddr: 0,
    off_skc_dport: 0,
    off_skc_num: 0,
    off_skc_family: 0,
    off_skc_v6_daddr: 0,
    off_skc_v6_rcv_saddr: 0,
    off_sk_protocol: 0,
    off_regs_nr: 0,
    off_regs_arg0: 0,
    off_regs_arg1: 0,
    off_regs_arg2: 0,
    nr: [u32::MAX; SYSCALL_COUNT],
    filter_flags: 0,
    wakeup_bytes: 0,
};

/// Volatile read of one config field (so the loader's rewrite of `.rodata` is seen).
#[inline(always)]
fn rd<T: Copy>(p: &T) -> T {
    // SAFETY: `p` points into the CONFIG static.
    unsafe { core::ptr::read_volatile(p) }
}

macro_rules! conf {
    ($f:ident) => {
        rd(&CONFIG.$f)
    };
}

/// The one ring buffer every event goes through (size set by user space at load).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Tracked connections (key: `struct sock` address). LRU bounds memory if a CLOSE is missed.
#[map]
static CONNS: LruHashMap<u64, ConnState> = LruHashMap::with_max_entries(65536, 0);

/// Process filter (key: tgid; value FILTER_INCLUDE / FILTER_EXCLUDE), filled by user space.
#[map]
static FILTER_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(4096, 0);

/// Port filter (key: port, host order; value FILTER_INCLUDE / FILTER_EXCLUDE).
#[map]
static FILTER_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(1024, 0);

/// Drop and event counters, indexed by `Counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(8, 0);

/// Per-CPU sequence for connection ids.
#[map]
static CONN_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_CLOSE: i32 = 7;
const MSG_PEEK: i32 = 2;

/// What is known about one socket. The tuple is read from `struct sock` once.
#[repr(C)]
#[derive(Clone, Copy)]
struct ConnState {
    conn_id: u64,
    /// Process that moved data on it first (owner of its close event); 0 = none yet.
    tgid: u32,
    role: u8,
    /// Set once a data event was sent (close events only then).
    confirmed: u8,
    family: u16,
    lport: u16,
    rport: u16,
    _pad: u32,
    laddr: [u8; 16],
    raddr: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct IoVec {
    base: u64,
    len: u64,
}

#[inline(always)]
fn count(c: Counter) {
    if let Some(p) = COUNTERS.get_ptr_mut(c as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn next_conn_id() -> u64 {
    let cpu = unsafe { bpf_get_smp_processor_id() } as u64;
    match CONN_SEQ.get_ptr_mut(0) {
        Some(p) => unsafe {
            *p += 1;
            (*p << 12) | (cpu & 0xfff)
        },
        None => 0,
    }
}

/// Reads a `T` at kernel address `base + off`.
#[inline(always)]
fn read_k<T: Copy>(base: u64, off: u32) -> Option<T> {
    let mut v = core::mem::MaybeUninit::<T>::uninit();
    let r = unsafe {
        bpf_probe_read_kernel(
            v.as_mut_ptr() as *mut c_void,
            core::mem::size_of::<T>() as u32,
            (base + off as u64) as *const c_void,
        )
    };
    if r == 0 {
        Some(unsafe { v.assume_init() })
    } else {
        None
    }
}

/// Reads a `T` at user address `addr`.
#[inline(always)]
fn read_u<T: Copy>(addr: u64) -> Option<T> {
    unsafe { aya_ebpf::helpers::bpf_probe_read_user(addr as *const T) }.ok()
}

/// True for an IPv4/IPv6 TCP socket.
#[inline(always)]
fn is_tcp(sk: u64) -> bool {
    let family = read_k::<u16>(sk, conf!(off_skc_family)).unwrap_or(0);
    (family == AF_INET || family == AF_INET6)
        && read_k::<u16>(sk, conf!(off_sk_protocol)) == Some(IPPROTO_TCP)
}

/// A fresh connection state with the socket's tuple (`struct sock_common`, BTF offsets).
#[inline(always)]
fn new_state(sk: u64, role: SockRole) -> ConnState {
    let family = read_k::<u16>(sk, conf!(off_skc_family)).unwrap_or(0);
    let mut c = ConnState {
        conn_id: next_conn_id(),
        tgid: 0,
        role: role as u8,
        confirmed: 0,
        family,
        lport: read_k::<u16>(sk, conf!(off_skc_num)).unwrap_or(0),
        rport: u16::from_be(read_k::<u16>(sk, conf!(off_skc_dport)).unwrap_or(0)),
        _pad: 0,
        laddr: [0; 16],
        raddr: [0; 16],
    };
    if family == AF_INET {
        if let Some(a) = read_k::<[u8; 4]>(sk, conf!(off_skc_rcv_saddr)) {
            c.laddr[..4].copy_from_slice(&a);
        }
        if let Some(a) = read_k::<[u8; 4]>(sk, conf!(off_skc_daddr)) {
            c.raddr[..4].copy_from_slice(&a);
        }
    } else {
        if let Some(a) = read_k::<[u8; 16]>(sk, conf!(off_skc_v6_rcv_saddr)) {
            c.laddr = a;
        }
        if let Some(a) = read_k::<[u8; 16]>(sk, conf!(off_skc_v6_daddr)) {
            c.raddr = a;
        }
    }
    c
}

/// Whether the process filter lets `tgid` through (no map lookup when no filter is set).
#[inline(always)]
fn pid_allowed(tgid: u32) -> bool {
    let flags = conf!(filter_flags);
    if flags & (FILTER_PIDS_INCLUDE | FILTER_PIDS_EXCLUDE) == 0 {
        return true;
    }
    match unsafe { FILTER_PIDS.get(&tgid) } {
        Some(v) if *v == FILTER_EXCLUDE => false,
        Some(v) if *v == FILTER_INCLUDE => true,
        _ => flags & FILTER_PIDS_INCLUDE == 0,
    }
}

/// Whether the port filter lets a connection with these ports through.
#[inline(always)]
fn ports_allowed(lport: u16, rport: u16) -> bool {
    let flags = conf!(filter_flags);
    if flags & (FILTER_PORTS_INCLUDE | FILTER_PORTS_EXCLUDE) == 0 {
        return true;
    }
    let l = unsafe { FILTER_PORTS.get(&lport) }.copied().unwrap_or(0);
    let r = unsafe { FILTER_PORTS.get(&rport) }.copied().unwrap_or(0);
    if l == FILTER_EXCLUDE || r == FILTER_EXCLUDE {
        return false;
    }
    flags & FILTER_PORTS_INCLUDE == 0 || l == FILTER_INCLUDE || r == FILTER_INCLUDE
}

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// Submit flags implementing wake-up batching (see `ProbeConfig::wakeup_bytes`): every
/// wake-up of the consumer is an interrupt (an IPI, a VM exit under virtualisation), so the
/// consumer is only woken once a batch has accumulated; it polls on a timer as well.
#[inline(always)]
fn wakeup_flags() -> u64 {
    let threshold = conf!(wakeup_bytes) as u64;
    if threshold == 0 {
        0
    } else if EVENTS.query(BPF_RB_AVAIL_DATA) >= threshold {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

#[inline(always)]
fn submit_header(h: &EventHeader, lost: Counter) {
    match EVENTS.reserve::<EventHeader>(0) {
        Some(mut e) => {
            e.write(*h);
            e.submit(wakeup_flags());
        }
        None => count(lost),
    }
}

// ---------------------------------------------------------------- data: socket IO

/// The syscall behind a socket call, from the saved user registers.
struct Call {
    op: u8,
    fd: i32,
    /// Buffer, iovec array or msghdr (user pointer).
    buf: u64,
    /// Count or iovcnt.
    len: u64,
}

/// Maps the syscall number to a [`Syscall`] (`None`: not one we trace).
#[inline(always)]
fn syscall_of(nr: u64) -> Option<u8> {
    let mut i = 0usize;
    while i < SYSCALL_COUNT {
        if nr == rd(&CONFIG.nr[i]) as u64 {
            return Some(i as u8);
        }
        i += 1;
    }
    None
}

/// The saved user registers from `orig_ax`'s offset down to `dx`'s: on x86-64 `dx`, `si`,
/// `di`, `orig_ax` are adjacent, so one read of 32 bytes gets the syscall number and its
/// first three arguments. User space checks the offsets fit (`RegsOffsets::window`).
const REGS_WINDOW: usize = 4;

#[inline(always)]
fn current_call() -> Option<Call> {
    // SAFETY: BTF task pointer of the current task; pt_regs of its user-mode entry.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf() as *mut task_struct) } as u64;
    if regs == 0 {
        return None;
    }
    let base = conf!(off_regs_arg2);
    let w = read_k::<[u64; REGS_WINDOW]>(regs, base)?;
    let at = |off: u32| w[((off - base) / 8) as usize & (REGS_WINDOW - 1)];
    let op = syscall_of(at(conf!(off_regs_nr)))?;
    Some(Call {
        op,
        fd: at(conf!(off_regs_arg0)) as i32,
        buf: at(conf!(off_regs_arg1)),
        len: w[0],
    })
}

#[inline(always)]
fn is_egress(op: u8) -> bool {
    op == Syscall::Write as u8
        || op == Syscall::Writev as u8
        || op == Syscall::Sendto as u8
        || op == Syscall::Sendmsg as u8
        || op == Syscall::Sendfile as u8
}

/// Copies `len` bytes from user `src` into `dst + off`. `C` is a power of two; callers keep
/// `off < C` (masked here so the verifier sees it) and `len` is clamped to `C`, so
/// `off + len < 2C` (vectored records reserve 2C payload bytes, flat ones pass `off` = 0).
#[inline(always)]
fn copy_user<const C: usize>(dst: *mut u8, off: u64, len: u64, src: u64) -> bool {
    const { assert!(C.is_power_of_two()) };
    // The volatile read hides `off`'s range from LLVM so the mask is kept for the verifier.
    // SAFETY: reads a local.
    let off = unsafe { core::ptr::read_volatile(&off) } & (C as u64 - 1);
    let len = if len > C as u64 { C as u64 } else { len };
    if len == 0 {
        return true;
    }
    unsafe {
        bpf_probe_read_user(
            dst.add(off as usize) as *mut c_void,
            len as u32,
            src as *const c_void,
        ) == 0
    }
}

/// A data event about to be written.
struct Pending {
    h: EventHeader,
    call: Call,
    /// Bytes to copy: min(ret, capture_bytes), 0 for sendfile.
    cap: u64,
}

/// Reserves a record of `R` = header + C (flat) or header + 2C (vectored) bytes, copies the
/// payload straight from user memory into it and submits it.
#[inline(always)]
fn emit<const C: usize, const R: usize>(p: &mut Pending, vectored: bool) {
    let Some(mut rec) = EVENTS.reserve_bytes(R, 0) else {
        count(Counter::DataLostRingbufFull);
        return;
    };
    let base = rec.as_mut_ptr();
    let payload = unsafe { base.add(HEADER_LEN) };
    let cap = if p.cap > C as u64 { C as u64 } else { p.cap };
    let mut got: u64 = 0;
    if !vectored {
        if copy_user::<C>(payload, 0, cap, p.call.buf) {
            got = cap;
        } else {
            count(Counter::PayloadReadFailed);
        }
    } else {
        let (iov, iovcnt) =
            if p.call.op == Syscall::Sendmsg as u8 || p.call.op == Syscall::Recvmsg as u8 {
                // struct msghdr (LP64 user ABI): msg_iov at 16, msg_iovlen at 24.
                (
                    read_u::<u64>(p.call.buf + 16).unwrap_or(0),
                    read_u::<u64>(p.call.buf + 24).unwrap_or(0),
                )
            } else {
                (p.call.buf, p.call.len)
            };
        let mut i = 0u32;
        while i < MAX_IOVECS {
            if (i as u64) >= iovcnt || got >= cap {
                break;
            }
            let Some(v) = read_u::<IoVec>(iov + i as u64 * 16) else {
                break;
            };
            let n = if v.len > cap - got { cap - got } else { v.len };
            if !copy_user::<C>(payload, got, n, v.base) {
                count(Counter::PayloadReadFailed);
                break;
            }
            got += n;
            i += 1;
        }
    }
    p.h.captured_len = got as u32;
    unsafe { core::ptr::write_unaligned(base as *mut EventHeader, p.h) };
    rec.submit(wakeup_flags());
    count(Counter::DataEvents);
}

/// One socket send or receive of `ret` bytes on `sk`.
#[inline(always)]
fn on_sock_io(ctx: &RawTracePointContext, egress: bool) {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == conf!(own_tgid) || tgid == 0 {
        return;
    }
    let sk: u64 = ctx.arg(0);
    let ret = ctx.arg::<u64>(1) as i32;
    let flags = ctx.arg::<u64>(2) as i32;
    if ret <= 0 || sk == 0 || (!egress && flags & MSG_PEEK != 0) || !pid_allowed(tgid) {
        return;
    }
    // A confirmed connection is a TCP socket already: only unknown sockets are checked.
    let known = unsafe { CONNS.get(&sk) }.copied();
    if !known.is_some_and(|c| c.confirmed != 0) && !is_tcp(sk) {
        return;
    }
    let Some(call) = current_call() else {
        count(Counter::UntracedSyscall);
        return;
    };
    if is_egress(call.op) != egress {
        count(Counter::UntracedSyscall);
        return;
    }
    let conn = match known {
        Some(c) if c.confirmed != 0 => c,
        other => {
            let mut c = match other {
                Some(c) => c,
                None => new_state(sk, SockRole::Unknown),
            };
            if !ports_allowed(c.lport, c.rport) {
                return;
            }
            c.confirmed = 1;
            c.tgid = tgid;
            if CONNS.insert(&sk, &c, 0).is_err() {
                count(Counter::ConnMapFull);
            }
            c
        }
    };
    let mut cap = conf!(capture_bytes) as u64;
    if cap > MAX_CAPTURE as u64 {
        cap = MAX_CAPTURE as u64;
    }
    if (ret as u64) < cap {
        cap = ret as u64;
    }
    if call.op == Syscall::Sendfile as u8 {
        cap = 0; // the bytes come from a file: count only
    }
    let vectored = call.op == Syscall::Readv as u8
        || call.op == Syscall::Writev as u8
        || call.op == Syscall::Sendmsg as u8
        || call.op == Syscall::Recvmsg as u8;
    let mut p = Pending {
        h: EventHeader {
            kind: EventKind::Data as u8,
            direction: if egress {
                Direction::Egress as u8
            } else {
                Direction::Ingress as u8
            },
            role: conn.role,
            syscall: call.op,
            pid: tgid,
            tid: id as u32,
            fd: call.fd,
            conn_id: conn.conn_id,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            total_len: ret as u64,
            family: conn.family,
            lport: conn.lport,
            rport: conn.rport,
            laddr: conn.laddr,
            raddr: conn.raddr,
            ..EventHeader::default()
        },
        call,
        cap,
    };
    // The smallest size class that holds the capture (classes bound ring buffer waste).
    if vectored {
        match p.cap {
            0..=256 => emit::<256, { HEADER_LEN + 512 }>(&mut p, true),
            257..=1024 => emit::<1024, { HEADER_LEN + 2048 }>(&mut p, true),
            1025..=4096 => emit::<4096, { HEADER_LEN + 8192 }>(&mut p, true),
            _ => emit::<MAX_CAPTURE, { HEADER_LEN + 2 * MAX_CAPTURE }>(&mut p, true),
        }
    } else {
        match p.cap {
            0..=128 => emit::<128, { HEADER_LEN + 128 }>(&mut p, false),
            129..=512 => emit::<512, { HEADER_LEN + 512 }>(&mut p, false),
            513..=2048 => emit::<2048, { HEADER_LEN + 2048 }>(&mut p, false),
            2049..=8192 => emit::<8192, { HEADER_LEN + 8192 }>(&mut p, false),
            _ => emit::<MAX_CAPTURE, { HEADER_LEN + MAX_CAPTURE }>(&mut p, false),
        }
    }
}

#[raw_tracepoint(tracepoint = "sock_send_length")]
pub fn sock_send_length(ctx: RawTracePointContext) -> i32 {
    on_sock_io(&ctx, true);
    0
}

#[raw_tracepoint(tracepoint = "sock_recv_length")]
pub fn sock_recv_length(ctx: RawTracePointContext) -> i32 {
    on_sock_io(&ctx, false);
    0
}

// ---------------------------------------------------------------- TCP state, process exit

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: RawTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let old = ctx.arg::<u64>(1) as i32;
    let new = ctx.arg::<u64>(2) as i32;
    if sk == 0 || (new != TCP_ESTABLISHED && new != TCP_CLOSE) || !is_tcp(sk) {
        return 0;
    }
    if new == TCP_ESTABLISHED {
        let role = match old {
            TCP_SYN_SENT => SockRole::Client,
            TCP_SYN_RECV => SockRole::Server,
            _ => return 0,
        };
        let c = new_state(sk, role);
        if CONNS.insert(&sk, &c, 0).is_err() {
            count(Counter::ConnMapFull);
        }
        return 0;
    }
    // TCP_CLOSE: the connection is over (whatever process or softirq closes it).
    let Some(c) = (unsafe { CONNS.get(&sk) }).copied() else {
        return 0;
    };
    let _ = CONNS.remove(&sk);
    if c.confirmed == 0 {
        return 0;
    }
    let h = EventHeader {
        kind: EventKind::Close as u8,
        role: c.role,
        pid: c.tgid,
        fd: -1,
        conn_id: c.conn_id,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        family: c.family,
        lport: c.lport,
        rport: c.rport,
        laddr: c.laddr,
        raddr: c.raddr,
        ..EventHeader::default()
    };
    submit_header(&h, Counter::ControlLostRingbufFull);
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid != id as u32 || tgid == conf!(own_tgid) || !pid_allowed(tgid) {
        return 0;
    }
    let h = EventHeader {
        kind: EventKind::ProcessExit as u8,
        pid: tgid,
        tid: id as u32,
        fd: -1,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        ..EventHeader::default()
    };
    submit_header(&h, Counter::ControlLostRingbufFull);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

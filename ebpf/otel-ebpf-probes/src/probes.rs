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
//! - `sched_process_exit(task)`: process exit event; `sched_process_exec(task, old_pid, bprm)`:
//!   exec event (user space then finds the TLS libraries of the new image and attaches);
//!   `sched_process_fork(parent, child)`: fork event for new processes (threads are skipped),
//!   so user space counts the child as a user of the parent's libraries.
//!
//! TLS plaintext (uprobes; attached per file by user space, one attachment serves every
//! process mapping the file):
//! - `tls_entry` (uprobe at `SSL_read`/`SSL_write`/`SSL_read_ex`/`SSL_write_ex`/
//!   `gnutls_record_recv`/`gnutls_record_send`; the attach cookie says which, see
//!   `otel_ebpf_common::tls_fn`): saves (session, buffer, length, out-pointer) in
//!   `TLS_CALLS` keyed by pid_tgid (C libraries run a call on one thread). `tls_return`
//!   (uretprobe) takes it back, reads the result and emits a `TlsData` event with the
//!   plaintext (same size classes as socket data).
//! - Socket association: while a call is saved for the thread, `sock_send_length` /
//!   `sock_recv_length` on that thread are the library's own IO: the socket is recorded in
//!   the call and in `TLS_SK` (per (tgid, session), for later calls served from the library's
//!   buffer without a syscall), the connection is marked TLS in `CONNS`, and no ciphertext
//!   event is sent for it from then on.
//! - Go (`go_tls_entry` at `crypto/tls.(*Conn).Read`/`Write`, `go_tls_ret` at each RET of
//!   them; Go ≥ 1.17 register ABI: receiver RAX, buffer RBX, length RCX, result n in RAX,
//!   goroutine in R14): the call is keyed by (tgid, goroutine), so a goroutine that parks and
//!   resumes on another thread still finds it, and two goroutines that share a thread do
//!   not mix. `Write` is emitted at entry (Go writes all of `b` unless the connection fails;
//!   emitting at the RET could order a request after its response, read by another
//!   goroutine on another thread). The socket comes from the `*tls.Conn` itself: `Conn.conn` → `net.conn.fd` →
//!   `netFD.pfd.Sysfd` (user memory) → `task->files->fdt->fd[fd]->private_data->sk`.
//!   Limits: a library using memory BIOs (Node.js) does its socket IO outside the call, so
//!   its events carry no socket (conn_id 0; user space keys them by session).
//!
//! Connections are keyed by their `struct sock` address (LRU map): the id survives fd
//! passing and dup, and is dropped at TCP_CLOSE. Every `struct sock` and `struct pt_regs`
//! field is read at an offset resolved by user space from this kernel's BTF (`CONFIG`).

use aya_ebpf::{
    EbpfContext,
    bindings::task_struct,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_get_smp_processor_id,
        bpf_ktime_get_ns,
        generated::{
            bpf_get_attach_cookie, bpf_probe_read_kernel, bpf_probe_read_user, bpf_task_pt_regs,
        },
    },
    macros::{map, raw_tracepoint, uprobe, uretprobe},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{ProbeContext, RawTracePointContext, RetProbeContext},
};
use core::ffi::c_void;
use otel_ebpf_common::{
    AF_INET, AF_INET6, Counter, Direction, EventHeader, EventKind, FILTER_EXCLUDE, FILTER_INCLUDE,
    FILTER_PIDS_EXCLUDE, FILTER_PIDS_INCLUDE, FILTER_PORTS_EXCLUDE, FILTER_PORTS_INCLUDE,
    HEADER_LEN, IPPROTO_TCP, MAX_CAPTURE, MAX_IOVECS, ProbeConfig, SYSCALL_COUNT, SockRole,
    Syscall, TlsSource, tls_fn,
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
    off_task_pid: 0,
    off_task_tgid: 0,
    go_conn_conn: 0,
    go_net_conn_fd: 0,
    go_netfd_pfd: 0,
    go_pfd_sysfd: 0,
    off_task_files: 0,
    off_files_fdt: 0,
    off_fdt_fd: 0,
    off_fdt_max_fds: 0,
    off_file_private_data: 0,
    off_socket_sk: 0,
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
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(16, 0);

/// TLS calls in progress in C libraries (key: pid_tgid). Bounded; a full map is counted.
#[map]
static TLS_CALLS: HashMap<u64, TlsCall> = HashMap::with_max_entries(16384, 0);

/// Go TLS calls in progress (key: [tgid, goroutine pointer]).
#[map]
static GO_CALLS: HashMap<[u64; 2], TlsCall> = HashMap::with_max_entries(16384, 0);

/// Last socket seen inside a call of a C-library TLS session (key: [tgid, session pointer];
/// value: [`struct sock` address, its conn_id]): the socket of later calls served from the
/// library's buffer without a syscall. The conn_id is checked against `CONNS` on use, so a
/// closed socket (or its address reused by another socket) is never taken.
#[map]
static TLS_SK: LruHashMap<[u64; 2], [u64; 2]> = LruHashMap::with_max_entries(65536, 0);

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
    /// 1 once a TLS library call did IO on it: its ciphertext is no longer sent.
    tls: u8,
    _pad: [u8; 3],
    laddr: [u8; 16],
    raddr: [u8; 16],
}

/// A TLS library call between entry and return.
#[repr(C)]
#[derive(Clone, Copy)]
struct TlsCall {
    /// Session: `SSL *`, `gnutls_session_t`, Go `*tls.Conn`.
    ctx: u64,
    /// Plaintext buffer (user address) and its length (bytes).
    buf: u64,
    len: u64,
    /// `size_t *` result of the `_ex` functions.
    out: u64,
    /// Socket (`struct sock *`) the call did IO on; 0 = not known (yet).
    sk: u64,
    /// `tls_fn` value.
    func: u64,
    /// Non-zero: the call has returned (at this CLOCK_MONOTONIC ns) without a socket; the
    /// entry waits for the thread's next socket send (memory-BIO libraries such as Node.js
    /// write the ciphertext right after the call) to learn the session's socket.
    orphan_ns: u64,
}

/// How long after an unassociated TLS write the thread's next socket send is taken as its
/// ciphertext (ns).
const ORPHAN_WINDOW_NS: u64 = 2_000_000;

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
        tls: 0,
        _pad: [0; 3],
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
    // The IO of a TLS library call in progress on this thread: ciphertext of that session.
    // An orphan (a finished write without socket) waits for the thread's next send.
    if let Some(tc) = TLS_CALLS.get_ptr_mut(&id) {
        // SAFETY: map value pointer, valid for this program run.
        let (ctx, orphan) = unsafe { ((*tc).ctx, (*tc).orphan_ns) };
        if orphan == 0 {
            unsafe { (*tc).sk = sk };
        } else if egress {
            let _ = TLS_CALLS.remove(&id);
        }
        let fresh = orphan != 0
            && egress
            && unsafe { bpf_ktime_get_ns() }.saturating_sub(orphan) < ORPHAN_WINDOW_NS;
        if orphan == 0 || fresh {
            remember_sk(tgid, ctx, sk);
            return;
        }
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
        Some(c) if c.tls != 0 => {
            count(Counter::TlsCiphertextSkipped);
            return;
        }
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
    emit_classes(&mut p, vectored);
}

/// Emits `p` in the smallest size class that holds its capture (classes bound ring buffer
/// waste).
#[inline(always)]
fn emit_classes(p: &mut Pending, vectored: bool) {
    if vectored {
        match p.cap {
            0..=256 => emit::<256, { HEADER_LEN + 512 }>(p, true),
            257..=1024 => emit::<1024, { HEADER_LEN + 2048 }>(p, true),
            1025..=4096 => emit::<4096, { HEADER_LEN + 8192 }>(p, true),
            _ => emit::<MAX_CAPTURE, { HEADER_LEN + 2 * MAX_CAPTURE }>(p, true),
        }
    } else {
        match p.cap {
            0..=128 => emit::<128, { HEADER_LEN + 128 }>(p, false),
            129..=512 => emit::<512, { HEADER_LEN + 512 }>(p, false),
            513..=2048 => emit::<2048, { HEADER_LEN + 2048 }>(p, false),
            2049..=8192 => emit::<8192, { HEADER_LEN + 8192 }>(p, false),
            _ => emit::<MAX_CAPTURE, { HEADER_LEN + MAX_CAPTURE }>(p, false),
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

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(_ctx: RawTracePointContext) -> i32 {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == conf!(own_tgid) || !pid_allowed(tgid) {
        return 0;
    }
    let h = EventHeader {
        kind: EventKind::ProcessExec as u8,
        pid: tgid,
        tid: id as u32,
        fd: -1,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        ..EventHeader::default()
    };
    submit_header(&h, Counter::ControlLostRingbufFull);
    0
}

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let child: u64 = ctx.arg(1);
    let (Some(pid), Some(ctgid)) = (
        read_k::<i32>(child, conf!(off_task_pid)),
        read_k::<i32>(child, conf!(off_task_tgid)),
    ) else {
        return 0;
    };
    if pid != ctgid {
        return 0; // a new thread, not a new process
    }
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == conf!(own_tgid) || !pid_allowed(tgid) {
        return 0;
    }
    let h = EventHeader {
        kind: EventKind::ProcessFork as u8,
        pid: tgid,
        tid: id as u32,
        fd: -1,
        total_len: pid as u64,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        ..EventHeader::default()
    };
    submit_header(&h, Counter::ControlLostRingbufFull);
    0
}

// ---------------------------------------------------------------- TLS plaintext (uprobes)

/// `sk` carries TLS session `ctx` of `tgid`: remembered, marked TLS, its ciphertext skipped.
#[inline(always)]
fn remember_sk(tgid: u32, ctx: u64, sk: u64) {
    mark_tls(sk, tgid);
    if let Some(c) = unsafe { CONNS.get(&sk) } {
        let _ = TLS_SK.insert(&[tgid as u64, ctx], &[sk, c.conn_id], 0);
    }
    count(Counter::TlsCiphertextSkipped);
}

/// The socket remembered for a session, if it is still the same connection.
#[inline(always)]
fn remembered_sk(tgid: u32, ctx: u64) -> u64 {
    let Some(v) = (unsafe { TLS_SK.get(&[tgid as u64, ctx]) }) else {
        return 0;
    };
    let (sk, id) = (v[0], v[1]);
    match unsafe { CONNS.get(&sk) } {
        Some(c) if c.conn_id == id => sk,
        _ => 0,
    }
}

/// Marks the connection on `sk` as TLS (creating its state if the handshake was not seen).
#[inline(always)]
fn mark_tls(sk: u64, tgid: u32) {
    match CONNS.get_ptr_mut(&sk) {
        // SAFETY: map value pointer, valid for this program run.
        Some(c) => unsafe {
            if (*c).tls == 0 {
                (*c).tls = 1;
                (*c).confirmed = 1;
                if (*c).tgid == 0 {
                    (*c).tgid = tgid;
                }
            }
        },
        None => {
            let mut c = new_state(sk, SockRole::Unknown);
            c.tls = 1;
            c.confirmed = 1;
            c.tgid = tgid;
            if CONNS.insert(&sk, &c, 0).is_err() {
                count(Counter::ConnMapFull);
            }
        }
    }
}

/// The `struct sock` behind file descriptor `fd` of the current task, if it is a TCP socket.
#[inline(always)]
fn sk_of_fd(fd: u64) -> Option<u64> {
    let task = unsafe { bpf_get_current_task_btf() } as u64;
    let files = read_k::<u64>(task, conf!(off_task_files))?;
    let fdt = read_k::<u64>(files, conf!(off_files_fdt))?;
    let max = read_k::<u32>(fdt, conf!(off_fdt_max_fds))?;
    if fd >= max as u64 {
        return None;
    }
    let fds = read_k::<u64>(fdt, conf!(off_fdt_fd))?;
    let file = read_k::<u64>(fds + fd * 8, 0)?;
    let sock = read_k::<u64>(file, conf!(off_file_private_data))?;
    let sk = read_k::<u64>(sock, conf!(off_socket_sk))?;
    if sk != 0 && is_tcp(sk) {
        Some(sk)
    } else {
        None
    }
}

/// Go: the socket of a `*crypto/tls.Conn` (`Conn.conn` interface data → `net.conn.fd` →
/// `netFD.pfd.Sysfd`, then the fd table).
#[inline(always)]
fn go_conn_sk(conn: u64) -> Option<u64> {
    let data = read_u::<u64>(conn + conf!(go_conn_conn) as u64 + 8)?;
    let netfd = read_u::<u64>(data + conf!(go_net_conn_fd) as u64)?;
    let fd = read_u::<i64>(netfd + conf!(go_netfd_pfd) as u64 + conf!(go_pfd_sysfd) as u64)?;
    if !(0..=1 << 20).contains(&fd) {
        return None;
    }
    sk_of_fd(fd as u64)
}

#[inline(always)]
fn is_write_fn(f: u64) -> bool {
    f == tls_fn::SSL_WRITE
        || f == tls_fn::SSL_WRITE_EX
        || f == tls_fn::GNUTLS_SEND
        || f == tls_fn::GO_WRITE
}

/// Emits the plaintext of a finished TLS call (`n` bytes at `c.buf`).
#[inline(always)]
fn emit_tls(c: &TlsCall, n: u64, id: u64) {
    let tgid = (id >> 32) as u32;
    let mut cap = conf!(capture_bytes) as u64;
    if cap > MAX_CAPTURE as u64 {
        cap = MAX_CAPTURE as u64;
    }
    if n < cap {
        cap = n;
    }
    let ctx = c.ctx.to_le_bytes();
    let mut p = Pending {
        h: EventHeader {
            kind: EventKind::TlsData as u8,
            direction: if is_write_fn(c.func) {
                Direction::Egress as u8
            } else {
                Direction::Ingress as u8
            },
            syscall: if c.func >= tls_fn::GO_READ {
                TlsSource::Go
            } else if c.func >= tls_fn::GNUTLS_RECV {
                TlsSource::GnuTls
            } else {
                TlsSource::OpenSsl
            } as u8,
            pid: tgid,
            tid: id as u32,
            fd: -1,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            total_len: n,
            tls_ctx: [ctx[0], ctx[1], ctx[2], ctx[3], ctx[4], ctx[5]],
            ..EventHeader::default()
        },
        call: Call {
            op: 0,
            fd: -1,
            buf: c.buf,
            len: n,
        },
        cap,
    };
    match if c.sk != 0 {
        unsafe { CONNS.get(&c.sk) }
    } else {
        None
    } {
        Some(k) => {
            if !ports_allowed(k.lport, k.rport) {
                return;
            }
            p.h.role = k.role;
            p.h.conn_id = k.conn_id;
            p.h.family = k.family;
            p.h.lport = k.lport;
            p.h.rport = k.rport;
            p.h.laddr = k.laddr;
            p.h.raddr = k.raddr;
        }
        None => count(Counter::TlsNoSocket),
    }
    emit_classes(&mut p, false);
    count(Counter::TlsEvents);
}

/// Whether TLS events of the current process are wanted (not ours, pid filter).
#[inline(always)]
fn tls_wanted(id: u64) -> bool {
    let tgid = (id >> 32) as u32;
    tgid != 0 && tgid != conf!(own_tgid) && pid_allowed(tgid)
}

/// Entry of a C-library TLS function (the attach cookie is its `tls_fn` value).
#[uprobe]
pub fn tls_entry(ctx: ProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if !tls_wanted(id) {
        return 0;
    }
    // SAFETY: helper on this program's context.
    let func = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let session: u64 = ctx.arg(0).unwrap_or(0);
    let buf: u64 = ctx.arg(1).unwrap_or(0);
    let len: u64 = ctx.arg(2).unwrap_or(0);
    let out: u64 = ctx.arg(3).unwrap_or(0);
    let sk = remembered_sk((id >> 32) as u32, session);
    let call = TlsCall {
        ctx: session,
        buf,
        len,
        out,
        sk,
        func,
        orphan_ns: 0,
    };
    if TLS_CALLS.insert(&id, &call, 0).is_err() {
        count(Counter::TlsCallMapFull);
    }
    0
}

/// Return of a C-library TLS function: emits the plaintext moved.
#[uretprobe]
pub fn tls_return(ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(c) = (unsafe { TLS_CALLS.get(&id) }) else {
        return 0;
    };
    if c.orphan_ns != 0 {
        return 0; // a stale orphan: this return belongs to an untracked call
    }
    let rax: u64 = ctx.ret();
    let moved = tls_finish(c, rax);
    if moved && c.sk == 0 && is_write_fn(c.func) {
        if let Some(p) = TLS_CALLS.get_ptr_mut(&id) {
            // SAFETY: map value pointer, valid for this program run.
            unsafe { (*p).orphan_ns = bpf_ktime_get_ns() };
        }
    } else {
        let _ = TLS_CALLS.remove(&id);
    }
    0
}

/// Result of a C-library TLS call: emits its plaintext when it moved bytes (returns true).
#[inline(always)]
fn tls_finish(c: &TlsCall, rax: u64) -> bool {
    let id = bpf_get_current_pid_tgid();
    let n = match c.func {
        tls_fn::SSL_READ | tls_fn::SSL_WRITE => {
            let r = rax as i32;
            if r <= 0 {
                return false;
            }
            r as u64
        }
        tls_fn::SSL_READ_EX | tls_fn::SSL_WRITE_EX => {
            if rax as i32 != 1 {
                return false;
            }
            if c.out == 0 {
                if c.func == tls_fn::SSL_WRITE_EX {
                    c.len
                } else {
                    return false;
                }
            } else {
                match read_u::<u64>(c.out) {
                    Some(v) => v,
                    None => return false,
                }
            }
        }
        _ => {
            let r = rax as i64;
            if r <= 0 {
                return false;
            }
            r as u64
        }
    };
    if n > c.len {
        return false;
    }
    emit_tls(c, n, id);
    true
}

/// Entry of Go `crypto/tls.(*Conn).Read` / `Write` (cookie `GO_READ` / `GO_WRITE`).
#[uprobe]
pub fn go_tls_entry(ctx: ProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if !tls_wanted(id) {
        return 0;
    }
    let func = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    // SAFETY: the context is the user pt_regs of the probed task.
    let (conn, buf, len, g) = unsafe {
        let r = &*ctx.regs;
        (r.rax, r.rbx, r.rcx, r.r14)
    };
    let tgid = (id >> 32) as u32;
    let sk = go_conn_sk(conn).unwrap_or(0);
    if sk != 0 {
        mark_tls(sk, tgid);
    }
    let call = TlsCall {
        ctx: conn,
        buf,
        len,
        out: 0,
        sk,
        func,
        orphan_ns: 0,
    };
    if func == tls_fn::GO_WRITE {
        // Emitted at entry: Go writes all of `b` unless it fails, and another goroutine may
        // read the peer's answer (and reach its RET probe) before this one returns, which
        // would put the response ahead of its request in the ring buffer.
        if len > 0 && len <= 1 << 30 {
            emit_tls(&call, len, id);
        }
        return 0;
    }
    if GO_CALLS.insert(&[tgid as u64, g], &call, 0).is_err() {
        count(Counter::TlsCallMapFull);
    }
    0
}

/// A RET instruction of Go `crypto/tls.(*Conn).Read` / `Write`: emits the plaintext moved.
#[uprobe]
pub fn go_tls_ret(ctx: ProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let (n, g) = unsafe {
        let r = &*ctx.regs;
        (r.rax as i64, r.r14)
    };
    let key = [id >> 32, g];
    let Some(c) = (unsafe { GO_CALLS.get(&key) }) else {
        return 0;
    };
    if n > 0 && n as u64 <= c.len {
        emit_tls(c, n as u64, id);
    }
    let _ = GO_CALLS.remove(&key);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

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
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_get_smp_processor_id,
        bpf_ktime_get_ns,
        generated::{
            bpf_get_attach_cookie, bpf_probe_read_kernel, bpf_probe_read_user, bpf_task_pt_regs,
        },
    },
    macros::{fexit, kprobe, kretprobe, map, raw_tracepoint, uprobe, uretprobe},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{FExitContext, ProbeContext, RawTracePointContext, RetProbeContext},
};
use core::ffi::c_void;
use otel_ebpf_common::{
    AF_INET, AF_INET6, CONNECT_FAILED, CONNECT_OK, CONNECT_REFUSED, Counter, Direction,
    EventHeader, EventKind, FILTER_EXCLUDE, FILTER_INCLUDE, FILTER_PIDS_EXCLUDE,
    FILTER_PIDS_INCLUDE, FILTER_PORTS_EXCLUDE, FILTER_PORTS_INCLUDE, HEADER_LEN, IPPROTO_TCP,
    MAX_CAPTURE, MAX_IOVECS, NET_HEALTH, NET_LAYERS, NOT_MEASURED, NetEvent, NetKind, ProbeConfig,
    SYSCALL_COUNT, SockRole, Syscall, TlsSource, listener_key, tls_fn,
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
    net_timing: 0,
    off_skb_sk: 0,
    off_skb_tstamp: 0,
    off_skb_len: 0,
    off_skb_head: 0,
    off_skb_data: 0,
    off_skb_protocol: 0,
    off_skb_network_header: 0,
    off_skb_transport_header: 0,
    off_tcp_srtt_us: 0,
    off_tcp_snd_cwnd: 0,
    off_tcp_write_seq: 0,
    off_tcp_snd_nxt: 0,
    off_sk_net: 0,
    off_net_ns_inum: 0,
    drop_not_dropped_yet: u32::MAX,
    drop_consumed: u32::MAX,
    recv_flags_arg: 3,
    sample_hash_max: u32::MAX,
    sample_skb_interval: 1,
    sample_hot_srtt_us: 0,
    sample_hot_retransmits: 0,
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

/// TLS calls in progress in C libraries (key: pid_tgid). LRU: calls that never return (a
/// thread killed inside `SSL_read`) cannot fill it and stop TLS capture host-wide; an exiting
/// thread's entry is removed (`sched_process_exit`), a thread's next call replaces its stale
/// one; both counted as `TlsCallStale`.
#[map]
static TLS_CALLS: LruHashMap<u64, TlsCall> = LruHashMap::with_max_entries(16384, 0);

/// Go TLS calls in progress (key: [tgid, goroutine pointer]). LRU for the same reason
/// (goroutines cannot be enumerated at exit; their stale entries age out).
#[map]
static GO_CALLS: LruHashMap<[u64; 2], TlsCall> = LruHashMap::with_max_entries(16384, 0);

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
const TCP_LISTEN: i32 = 10;
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
    /// Retransmits seen (saturating), for the dynamic sampling threshold.
    retrans: u8,
    /// Data skbs seen since the last timed one (fixed-interval sampling).
    skb_n: u16,
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
        retrans: 0,
        skb_n: 0,
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
    match unsafe { FILTER_PIDS.get(tgid) } {
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
    let l = unsafe { FILTER_PORTS.get(lport) }.copied().unwrap_or(0);
    let r = unsafe { FILTER_PORTS.get(rport) }.copied().unwrap_or(0);
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
    submit_header_flags(h, lost, wakeup_flags());
}

/// [`submit_header`] with explicit ring buffer submit flags (e.g. BPF_RB_FORCE_WAKEUP).
#[inline(always)]
fn submit_header_flags(h: &EventHeader, lost: Counter, flags: u64) {
    match EVENTS.reserve::<EventHeader>(0) {
        Some(mut e) => {
            e.write(*h);
            e.submit(flags);
        }
        None => count(lost),
    }
}

mod health;
mod net;
mod rustls;
mod sample;
mod sched;
mod sock;
mod sockfn;
mod tls;

use sock::*;
use tls::*;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

//! Kernel-side probes: syscall and socket tracepoints that copy socket bytes and metadata into
//! one BPF ring buffer.
//!
//! Hooks (all classic tracepoints, so they work without kprobes):
//! - `syscalls:sys_{enter,exit}_{read,write,readv,writev,sendto,recvfrom,sendmsg,recvmsg}`:
//!   enter remembers the arguments per thread, exit copies up to `capture_bytes` of the bytes
//!   actually moved and submits a data event.
//! - `sock:sock_send_length` / `sock:sock_recv_length` (Linux ≥ 6.3): fire inside the syscall
//!   with the `sk` pointer, family and protocol; they mark the pending syscall as a TCP socket
//!   call. Without them a syscall is not reported (so files and pipes are filtered here).
//! - `syscalls:sys_{enter,exit}_sendfile64`: the byte count of a file sent to a socket (no
//!   payload: the bytes never pass through user memory), so bodies sent by sendfile (nginx
//!   `sendfile on`) keep HTTP/1 framing right.
//! - `syscalls:sys_{enter,exit}_{connect,accept,accept4}`: a new connection id and role.
//! - `syscalls:sys_enter_close`: close event for tracked sockets.
//! - `sched:sched_process_exit`: process exit event.
//! - `sock:inet_sock_set_state` (Linux ≥ 4.16): TCP ESTABLISHED/CLOSE transitions with tuple.
//!
//! `struct sock` fields are read only at offsets resolved by user space from this kernel's BTF
//! (`CONFIG`); tracepoint record offsets come from the tracefs format files.

use aya_ebpf::{
    EbpfContext,
    bindings::BPF_F_NO_PREALLOC,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        generated::{bpf_probe_read_kernel, bpf_probe_read_user},
    },
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
};
use core::ffi::c_void;
use otel_ebpf_common::{
    AF_INET, AF_INET6, Counter, Direction, EventHeader, EventKind, HEADER_LEN, IPPROTO_TCP,
    MAX_CAPTURE, MAX_IOVECS, ProbeConfig, SockRole, Syscall,
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
    off_skc_v6_daddr: 0,
    off_skc_v6_rcv_saddr: 0,
    tp_socklen_sk: 0,
    tp_socklen_family: 0,
    tp_socklen_protocol: 0,
    tp_state_oldstate: 0,
    tp_state_newstate: 0,
    tp_state_sport: 0,
    tp_state_dport: 0,
    tp_state_family: 0,
    tp_state_protocol: 0,
    tp_state_saddr_v6: 0,
    tp_state_daddr_v6: 0,
    tp_sys_args: 0,
    tp_sys_ret: 0,
    _pad: 0,
};

/// Reads one `CONFIG` field (volatile, so the loader's rewrite of `.rodata` is seen).
#[inline(always)]
fn conf() -> &'static ProbeConfig {
    // SAFETY: CONFIG is a plain static that is never written after load.
    unsafe { &*core::ptr::read_volatile(&(&raw const CONFIG)) }
}

/// Volatile read of one config field.
#[inline(always)]
fn rd<T: Copy>(p: &T) -> T {
    // SAFETY: `p` points into the CONFIG static.
    unsafe { core::ptr::read_volatile(p) }
}

macro_rules! conf {
    ($f:ident) => {
        rd(&conf().$f)
    };
}

/// The one ring buffer every event goes through (size set by user space at load).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Pending syscall per thread (key: pid_tgid).
#[map]
static ACTIVE: HashMap<u64, Active> = HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);

/// Tracked sockets (key: tgid << 32 | fd). LRU bounds memory if closes are missed.
#[map]
static CONNS: LruHashMap<u64, ConnState> = LruHashMap::with_max_entries(65536, 0);

/// Drop and event counters, indexed by `Counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(8, 0);

/// Per-CPU sequence for connection ids.
#[map]
static CONN_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

const OP_CONNECT: u8 = 100;
const OP_ACCEPT: u8 = 101;
const EINPROGRESS: i64 = 115;
const TCP_ESTABLISHED: i32 = 1;
const TCP_CLOSE: i32 = 7;

#[repr(C)]
#[derive(Clone, Copy)]
struct Active {
    /// Syscall as u8, or OP_CONNECT / OP_ACCEPT.
    op: u8,
    is_tcp: u8,
    family: u16,
    fd: i32,
    /// Buffer, iovec array or msghdr (user pointer).
    buf: u64,
    /// Count or iovcnt.
    len: u64,
    sk: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ConnState {
    conn_id: u64,
    role: u8,
    /// Set once a TCP data event confirmed the fd is a TCP socket (close events only then).
    confirmed: u8,
    _pad: [u8; 6],
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

#[inline(always)]
fn arg(ctx: &TracePointContext, n: u32) -> u64 {
    let off = conf!(tp_sys_args) + n * 8;
    unsafe { ctx.read_at::<u64>(off as usize) }.unwrap_or(0)
}

#[inline(always)]
fn ret(ctx: &TracePointContext) -> i64 {
    unsafe { ctx.read_at::<i64>(conf!(tp_sys_ret) as usize) }.unwrap_or(-1)
}

#[inline(always)]
fn own(pid_tgid: u64) -> bool {
    (pid_tgid >> 32) as u32 == conf!(own_tgid)
}

#[inline(always)]
fn remember(ctx: &TracePointContext, op: u8, with_buf: bool) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if own(id) {
        return 0;
    }
    let a = Active {
        op,
        is_tcp: 0,
        family: 0,
        fd: arg(ctx, 0) as i32,
        buf: if with_buf { arg(ctx, 1) } else { 0 },
        len: if with_buf { arg(ctx, 2) } else { 0 },
        sk: 0,
    };
    if ACTIVE.insert(&id, &a, 0).is_err() {
        count(Counter::ActiveMapFull);
    }
    0
}

/// Takes the pending syscall of this thread.
#[inline(always)]
fn take() -> Option<Active> {
    let id = bpf_get_current_pid_tgid();
    let a = unsafe { ACTIVE.get(&id) }.copied();
    if a.is_some() {
        let _ = ACTIVE.remove(&id);
    }
    a
}

#[inline(always)]
fn read_sk<T: Copy>(sk: u64, off: u32) -> Option<T> {
    let mut v = core::mem::MaybeUninit::<T>::uninit();
    let r = unsafe {
        bpf_probe_read_kernel(
            v.as_mut_ptr() as *mut c_void,
            core::mem::size_of::<T>() as u32,
            (sk + off as u64) as *const c_void,
        )
    };
    if r == 0 {
        Some(unsafe { v.assume_init() })
    } else {
        None
    }
}

/// Fills the tuple of `h` from `struct sock_common` at BTF-resolved offsets.
#[inline(always)]
fn fill_tuple(h: &mut EventHeader, sk: u64, family: u16) {
    h.family = family;
    h.lport = read_sk::<u16>(sk, conf!(off_skc_num)).unwrap_or(0);
    h.rport = u16::from_be(read_sk::<u16>(sk, conf!(off_skc_dport)).unwrap_or(0));
    if family == AF_INET {
        if let Some(a) = read_sk::<[u8; 4]>(sk, conf!(off_skc_rcv_saddr)) {
            h.laddr[..4].copy_from_slice(&a);
        }
        if let Some(a) = read_sk::<[u8; 4]>(sk, conf!(off_skc_daddr)) {
            h.raddr[..4].copy_from_slice(&a);
        }
    } else {
        if let Some(a) = read_sk::<[u8; 16]>(sk, conf!(off_skc_v6_rcv_saddr)) {
            h.laddr = a;
        }
        if let Some(a) = read_sk::<[u8; 16]>(sk, conf!(off_skc_v6_daddr)) {
            h.raddr = a;
        }
    }
}

#[inline(always)]
fn submit_header(h: &EventHeader, lost: Counter) {
    match EVENTS.reserve::<EventHeader>(0) {
        Some(mut e) => {
            e.write(*h);
            e.submit(0);
        }
        None => count(lost),
    }
}

// ---------------------------------------------------------------- data syscalls: enter

macro_rules! enter_io {
    ($name:ident, $sys:expr) => {
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            remember(&ctx, $sys as u8, true)
        }
    };
}

enter_io!(sys_enter_read, Syscall::Read);
enter_io!(sys_enter_write, Syscall::Write);
enter_io!(sys_enter_readv, Syscall::Readv);
enter_io!(sys_enter_writev, Syscall::Writev);
enter_io!(sys_enter_sendto, Syscall::Sendto);
enter_io!(sys_enter_recvfrom, Syscall::Recvfrom);
enter_io!(sys_enter_sendmsg, Syscall::Sendmsg);
enter_io!(sys_enter_recvmsg, Syscall::Recvmsg);

/// `sendfile64(out_fd, in_fd, offset, count)`: remembered like a write to `out_fd`; no buffer.
#[tracepoint]
pub fn sys_enter_sendfile64(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if own(id) {
        return 0;
    }
    let a = Active {
        op: Syscall::Sendfile as u8,
        is_tcp: 0,
        family: 0,
        fd: arg(&ctx, 0) as i32,
        buf: 0,
        len: arg(&ctx, 3),
        sk: 0,
    };
    if ACTIVE.insert(&id, &a, 0).is_err() {
        count(Counter::ActiveMapFull);
    }
    0
}

// ---------------------------------------------------------------- socket marks

#[inline(always)]
fn mark_socket(ctx: &TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if let Some(a) = ACTIVE.get_ptr_mut(&id) {
        let sk = unsafe { ctx.read_at::<u64>(conf!(tp_socklen_sk) as usize) }.unwrap_or(0);
        let family = unsafe { ctx.read_at::<u16>(conf!(tp_socklen_family) as usize) }.unwrap_or(0);
        let proto = unsafe { ctx.read_at::<u16>(conf!(tp_socklen_protocol) as usize) }.unwrap_or(0);
        // SAFETY: map value pointer valid for this program's run.
        unsafe {
            (*a).sk = sk;
            (*a).family = family;
            (*a).is_tcp = ((family == AF_INET || family == AF_INET6) && proto == IPPROTO_TCP) as u8;
        }
    }
    0
}

#[tracepoint]
pub fn sock_send_length(ctx: TracePointContext) -> u32 {
    mark_socket(&ctx)
}

#[tracepoint]
pub fn sock_recv_length(ctx: TracePointContext) -> u32 {
    mark_socket(&ctx)
}

// ---------------------------------------------------------------- data syscalls: exit

/// Copies `len` bytes from user `src` into `dst + off`; `off` and `len` are clamped to `C`
/// so the verifier can prove `off + len ≤ 2C` (vectored records reserve 2C payload bytes).
#[inline(always)]
fn copy_user<const C: usize>(dst: *mut u8, off: u64, len: u64, src: u64) -> bool {
    let off = if off > C as u64 { C as u64 } else { off };
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

/// What the exit handler learnt before the payload copy.
struct Pending {
    h: EventHeader,
    a: Active,
    /// Bytes to copy: min(ret, capture_bytes).
    cap: u64,
}

/// Common part of every data syscall's exit: pairs with the enter, filters non-TCP, finds or
/// creates the connection, builds the header.
#[inline(always)]
fn exit_prelude(ctx: &TracePointContext) -> Option<Pending> {
    let a = take()?;
    if a.is_tcp == 0 || a.op > Syscall::Sendfile as u8 {
        return None;
    }
    let r = ret(ctx);
    if r <= 0 {
        return None;
    }
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    let key = ((tgid as u64) << 32) | (a.fd as u32 as u64);
    let conn = match unsafe { CONNS.get(&key) } {
        Some(c) if c.confirmed != 0 => *c,
        other => {
            let c = ConnState {
                conn_id: match other {
                    Some(c) => c.conn_id,
                    None => next_conn_id(),
                },
                role: match other {
                    Some(c) => c.role,
                    None => SockRole::Unknown as u8,
                },
                confirmed: 1,
                _pad: [0; 6],
            };
            if CONNS.insert(&key, &c, 0).is_err() {
                count(Counter::ConnMapFull);
            }
            c
        }
    };
    let egress = a.op == Syscall::Write as u8
        || a.op == Syscall::Writev as u8
        || a.op == Syscall::Sendto as u8
        || a.op == Syscall::Sendmsg as u8
        || a.op == Syscall::Sendfile as u8;
    let mut h = EventHeader {
        kind: EventKind::Data as u8,
        direction: if egress {
            Direction::Egress as u8
        } else {
            Direction::Ingress as u8
        },
        role: conn.role,
        syscall: a.op,
        pid: tgid,
        tid: id as u32,
        fd: a.fd,
        conn_id: conn.conn_id,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        total_len: r as u64,
        ..EventHeader::default()
    };
    fill_tuple(&mut h, a.sk, a.family);
    let mut cap = conf!(capture_bytes) as u64;
    if cap > MAX_CAPTURE as u64 {
        cap = MAX_CAPTURE as u64;
    }
    if (r as u64) < cap {
        cap = r as u64;
    }
    if a.op == Syscall::Sendfile as u8 {
        cap = 0; // the bytes come from a file: count only
    }
    Some(Pending { h, a, cap })
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
        if copy_user::<C>(payload, 0, cap, p.a.buf) {
            got = cap;
        } else {
            count(Counter::PayloadReadFailed);
        }
    } else {
        let (iov, iovcnt) = if p.a.op == Syscall::Sendmsg as u8 || p.a.op == Syscall::Recvmsg as u8
        {
            // struct msghdr (LP64 user ABI): msg_iov at 16, msg_iovlen at 24.
            let iov =
                unsafe { aya_ebpf::helpers::bpf_probe_read_user((p.a.buf + 16) as *const u64) }
                    .unwrap_or(0);
            let n = unsafe { aya_ebpf::helpers::bpf_probe_read_user((p.a.buf + 24) as *const u64) }
                .unwrap_or(0);
            (iov, n)
        } else {
            (p.a.buf, p.a.len)
        };
        let mut i = 0u32;
        while i < MAX_IOVECS {
            if (i as u64) >= iovcnt || got >= cap {
                break;
            }
            let v = match unsafe {
                aya_ebpf::helpers::bpf_probe_read_user((iov + i as u64 * 16) as *const IoVec)
            } {
                Ok(v) => v,
                Err(_) => break,
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
    rec.submit(0);
    count(Counter::DataEvents);
}

/// Picks the smallest size class that holds the capture (classes bound ring buffer waste).
#[inline(always)]
fn exit_io(ctx: &TracePointContext, vectored: bool) -> u32 {
    let Some(mut p) = exit_prelude(ctx) else {
        return 0;
    };
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
    0
}

macro_rules! exit_io {
    ($name:ident, $vectored:expr) => {
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            exit_io(&ctx, $vectored)
        }
    };
}

exit_io!(sys_exit_read, false);
exit_io!(sys_exit_write, false);
exit_io!(sys_exit_sendto, false);
exit_io!(sys_exit_recvfrom, false);
exit_io!(sys_exit_readv, true);
exit_io!(sys_exit_writev, true);
exit_io!(sys_exit_sendmsg, true);
exit_io!(sys_exit_recvmsg, true);
exit_io!(sys_exit_sendfile64, false);

// ---------------------------------------------------------------- connect / accept / close

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    // Only AF_INET/AF_INET6 destinations (sa_family is the sockaddr's first u16).
    let sa = arg(&ctx, 1);
    let family = unsafe { aya_ebpf::helpers::bpf_probe_read_user(sa as *const u16) }.unwrap_or(0);
    if family != AF_INET && family != AF_INET6 {
        return 0;
    }
    remember(&ctx, OP_CONNECT, false)
}

#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    let Some(a) = take() else { return 0 };
    let r = ret(&ctx);
    if a.op != OP_CONNECT || (r != 0 && r != -EINPROGRESS) {
        return 0;
    }
    new_conn(a.fd, SockRole::Client)
}

#[tracepoint]
pub fn sys_enter_accept(ctx: TracePointContext) -> u32 {
    remember(&ctx, OP_ACCEPT, false)
}

#[tracepoint]
pub fn sys_enter_accept4(ctx: TracePointContext) -> u32 {
    remember(&ctx, OP_ACCEPT, false)
}

#[inline(always)]
fn exit_accept(ctx: &TracePointContext) -> u32 {
    let Some(a) = take() else { return 0 };
    let r = ret(ctx);
    if a.op != OP_ACCEPT || r < 0 {
        return 0;
    }
    new_conn(r as i32, SockRole::Server)
}

#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    exit_accept(&ctx)
}

#[tracepoint]
pub fn sys_exit_accept4(ctx: TracePointContext) -> u32 {
    exit_accept(&ctx)
}

#[inline(always)]
fn new_conn(fd: i32, role: SockRole) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let key = ((tgid as u64) << 32) | (fd as u32 as u64);
    let c = ConnState {
        conn_id: next_conn_id(),
        role: role as u8,
        confirmed: 0,
        _pad: [0; 6],
    };
    if CONNS.insert(&key, &c, 0).is_err() {
        count(Counter::ConnMapFull);
    }
    0
}

#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if own(id) {
        return 0;
    }
    let tgid = (id >> 32) as u32;
    let fd = arg(&ctx, 0) as i32;
    let key = ((tgid as u64) << 32) | (fd as u32 as u64);
    let Some(c) = (unsafe { CONNS.get(&key) }).copied() else {
        return 0;
    };
    let _ = CONNS.remove(&key);
    if c.confirmed == 0 {
        return 0;
    }
    let h = EventHeader {
        kind: EventKind::Close as u8,
        pid: tgid,
        tid: id as u32,
        fd,
        conn_id: c.conn_id,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        ..EventHeader::default()
    };
    submit_header(&h, Counter::ControlLostRingbufFull);
    0
}

// ---------------------------------------------------------------- process exit, TCP state

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if (id >> 32) as u32 != id as u32 || own(id) {
        return 0;
    }
    let h = EventHeader {
        kind: EventKind::ProcessExit as u8,
        pid: (id >> 32) as u32,
        tid: id as u32,
        fd: -1,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        ..EventHeader::default()
    };
    submit_header(&h, Counter::ControlLostRingbufFull);
    0
}

#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let rd16 = |off: u32| unsafe { ctx.read_at::<u16>(off as usize) }.unwrap_or(0);
    let rd32 = |off: u32| unsafe { ctx.read_at::<i32>(off as usize) }.unwrap_or(0);
    if rd16(conf!(tp_state_protocol)) != IPPROTO_TCP {
        return 0;
    }
    let new = rd32(conf!(tp_state_newstate));
    if new != TCP_ESTABLISHED && new != TCP_CLOSE {
        return 0;
    }
    let id = bpf_get_current_pid_tgid();
    let mut h = EventHeader {
        kind: EventKind::TcpState as u8,
        syscall: rd32(conf!(tp_state_oldstate)) as u8,
        total_len: new as u64,
        pid: (id >> 32) as u32,
        tid: id as u32,
        fd: -1,
        family: AF_INET6,
        lport: rd16(conf!(tp_state_sport)),
        rport: rd16(conf!(tp_state_dport)),
        ts_ns: unsafe { bpf_ktime_get_ns() },
        ..EventHeader::default()
    };
    // The v6 fields hold v4-mapped addresses for AF_INET sockets.
    h.laddr =
        unsafe { ctx.read_at::<[u8; 16]>(conf!(tp_state_saddr_v6) as usize) }.unwrap_or([0; 16]);
    h.raddr =
        unsafe { ctx.read_at::<[u8; 16]>(conf!(tp_state_daddr_v6) as usize) }.unwrap_or([0; 16]);
    let _ = ctx.as_ptr();
    submit_header(&h, Counter::ControlLostRingbufFull);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

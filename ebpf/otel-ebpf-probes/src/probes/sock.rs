//! Socket data path: `sock_send_length` / `sock_recv_length` raw tracepoints → data events
//! (payload copied from the user buffer of the syscall in progress, size classes).
//! [`on_sock_io`] is the one body of every socket data hook: the fentry/fexit and
//! kprobe/kretprobe variants for kernels without these tracepoints (`sockfn.rs`) call it with
//! the same (socket, bytes moved, flags) the tracepoints carry.

// Map keys and values stay borrowed here, and `on_sock_io`'s first test keeps its form
// (clippy's needless_borrows_for_generic_args, nonminimal_bool): with clippy's rewrites LLVM
// spills a register that holds no defined value in `sock_send_length` and the verifier refuses
// the program ("R7 !read_ok", measured on Linux 6.18).
#![allow(clippy::needless_borrows_for_generic_args, clippy::nonminimal_bool)]

use super::*;

// ---------------------------------------------------------------- data: socket IO

/// The syscall behind a socket call, from the saved user registers.
pub(super) struct Call {
    pub(super) op: u8,
    pub(super) fd: i32,
    /// Buffer, iovec array or msghdr (user pointer).
    pub(super) buf: u64,
    /// Count or iovcnt.
    pub(super) len: u64,
}

/// Maps the syscall number to a [`Syscall`] (`None`: not one we trace).
#[inline(always)]
pub(super) fn syscall_of(nr: u64) -> Option<u8> {
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
pub(super) const REGS_WINDOW: usize = 4;

#[inline(always)]
pub(super) fn current_call() -> Option<Call> {
    // SAFETY: BTF task pointer of the current task; pt_regs of its user-mode entry.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as u64;
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
pub(super) fn is_egress(op: u8) -> bool {
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
pub(super) fn copy_user<const C: usize>(dst: *mut u8, off: u64, len: u64, src: u64) -> bool {
    const { assert!(C.is_power_of_two()) };
    // The volatile read hides `off`'s range from LLVM so the mask is kept for the verifier.
    // SAFETY: reads a local.
    let off = unsafe { core::ptr::read_volatile(&off) } & (C as u64 - 1);
    let len = if len > C as u64 { C as u64 } else { len };
    if len == 0 {
        return true;
    }
    // The 6.1 verifier loses the clamp above on some paths (Go TLS: "invalid access to
    // memory, off=88 size=16383"). `((len - 1) & (C - 1)) + 1` is `len` for 1 ≤ len ≤ C and
    // bounds it for every verifier; the volatile read keeps LLVM from folding it away.
    // SAFETY: reads a local.
    let len = unsafe { core::ptr::read_volatile(&len) };
    let len = ((len - 1) & (C as u64 - 1)) + 1;
    unsafe {
        bpf_probe_read_user(
            dst.add(off as usize) as *mut c_void,
            len as u32,
            src as *const c_void,
        ) == 0
    }
}

/// A data event about to be written.
pub(super) struct Pending {
    pub(super) h: EventHeader,
    pub(super) call: Call,
    /// Bytes to copy: min(ret, capture_bytes), 0 for sendfile.
    pub(super) cap: u64,
}

/// Reserves a record of `R` = header + C (flat) or header + 2C (vectored) bytes, copies the
/// payload straight from user memory into it and submits it.
#[inline(always)]
pub(super) fn emit<const C: usize, const R: usize>(p: &mut Pending, vectored: bool) {
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
    // Ring buffer records are 8-byte aligned (the kernel rounds every record with its 8-byte
    // header up to 8 bytes), so the header is written with an aligned store: LLVM then emits
    // one store per field instead of 88 single-byte stores and shifts (fewer instructions per
    // record, and fewer for the verifier to walk in every size class).
    // SAFETY: `base` is the start of a reserved record of at least HEADER_LEN bytes.
    unsafe { core::ptr::write(base as *mut EventHeader, p.h) };
    rec.submit(wakeup_flags());
    count(Counter::DataEvents);
}

/// One socket send or receive of `ret` bytes on `sk` (`flags`: the receive's MSG_* flags).
#[inline(always)]
pub(super) fn on_sock_io(sk: u64, ret: i32, flags: i32, egress: bool) {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == conf!(own_tgid) || tgid == 0 {
        return;
    }
    if ret <= 0 || sk == 0 || (!egress && flags & MSG_PEEK != 0) || !pid_allowed(tgid) {
        return;
    }
    // A confirmed connection is a TCP socket already: only unknown sockets are checked.
    let known = unsafe { CONNS.get(&sk) }.copied();
    if !known.is_some_and(|c| c.confirmed != 0) && !is_tcp(sk) {
        return;
    }
    if egress
        && let Some(c) = known
        && c.confirmed != 0
    {
        net::note_write(sk, &c);
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
pub(super) fn emit_classes(p: &mut Pending, vectored: bool) {
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

/// requires: Linux ≥ 6.3, `sock_send_length(struct sock *sk, int ret, int flags)`.
#[raw_tracepoint(tracepoint = "sock_send_length")]
pub fn sock_send_length(ctx: RawTracePointContext) -> i32 {
    on_sock_io(
        ctx.arg(0),
        ctx.arg::<u64>(1) as i32,
        ctx.arg::<u64>(2) as i32,
        true,
    );
    0
}

/// requires: Linux ≥ 6.3, `sock_recv_length(struct sock *sk, int ret, int flags)`.
#[raw_tracepoint(tracepoint = "sock_recv_length")]
pub fn sock_recv_length(ctx: RawTracePointContext) -> i32 {
    on_sock_io(
        ctx.arg(0),
        ctx.arg::<u64>(1) as i32,
        ctx.arg::<u64>(2) as i32,
        false,
    );
    0
}

//! Socket data path on kernels without the `sock_send_length` / `sock_recv_length` raw
//! tracepoints (Linux < 6.3): the same data events from `tcp_sendmsg` / `tcp_recvmsg`, by
//! fexit (where BPF trampolines load) or kprobe + kretprobe (where kprobes exist). User space
//! attaches one family per hook point (`receiver.capture_hooks`, see the receiver's
//! `probes::capture`); every variant calls [`on_sock_io`] with the (socket, bytes moved,
//! flags) the tracepoints carry, so the records and the user side are the same whatever the
//! hook.
//!
//! Why `tcp_*msg` and not `sock_sendmsg` / `sock_recvmsg`: since Linux 6.6 `write`, `sendto`
//! and `sendmsg` call the static `__sock_sendmsg` and no longer pass through `sock_sendmsg`,
//! while `tcp_sendmsg(sk, msg, size)` has had one prototype since 4.1 and is reached through
//! `sk->sk_prot->sendmsg` (never inlined). `tcp_recvmsg` lost its `nonblock` argument in 5.19,
//! so the positions of `flags` and of the return value come from the kernel's BTF: user space
//! loads the fexit program built for that prototype, and the kprobe reads `flags` from the
//! register `ProbeConfig::recv_flags_arg` names.
//! These hooks fire for TCP sockets only (the raw tracepoints fire for every socket).
//! `sendfile` before Linux 6.5 goes through `tcp_sendpage` instead (hooked the same way,
//! counted only, as on the tracepoint path). Not seen: kTLS records.
//!
//! Program types and helpers stay within what Linux 5.15 offers (fexit and kprobe programs,
//! `bpf_task_pt_regs`, `bpf_get_current_task_btf`); the one loop in the path
//! (`MAX_IOVECS`) is bounded.

use super::*;

/// Socket receive / send in progress on a thread between kprobe and kretprobe (key:
/// pid_tgid; value: [`struct sock` address, receive flags]). LRU: an entry whose kretprobe
/// never ran (maxactive exceeded) is overwritten by the thread's next call or evicted.
#[map]
static SOCK_CALLS: LruHashMap<u64, [u64; 2]> = LruHashMap::with_max_entries(16384, 0);

/// requires: fexit (Linux ≥ 5.5 x86-64, BTF); `int tcp_sendmsg(struct sock *sk, struct
/// msghdr *msg, size_t size)` (Linux ≥ 4.1).
#[fexit(function = "tcp_sendmsg")]
pub fn tcp_sendmsg_fexit(ctx: FExitContext) -> i32 {
    // Arguments 0 (sk) and 3 (return value) of tcp_sendmsg.
    on_sock_io(ctx.arg::<u64>(0), ctx.arg::<u64>(3) as i32, 0, true);
    0
}

/// `tcp_recvmsg` at fexit with `flags` at argument `F` and the return value at `R`. Two
/// programs, not one branching on the positions: LLVM merges such branches into one load at
/// a computed context offset, which the verifier refuses, and an fexit program may not even
/// name an argument slot its target lacks.
#[inline(always)]
fn recv_fexit<const F: usize, const R: usize>(ctx: &FExitContext) {
    on_sock_io(
        ctx.arg::<u64>(0),
        ctx.arg::<u64>(R) as i32,
        ctx.arg::<u64>(F) as i32,
        false,
    );
}

/// requires: fexit (Linux ≥ 5.5 x86-64, BTF); `int tcp_recvmsg(struct sock *sk, struct
/// msghdr *msg, size_t len, int flags, int *addr_len)` (Linux ≥ 5.19).
#[fexit(function = "tcp_recvmsg")]
pub fn tcp_recvmsg_fexit(ctx: FExitContext) -> i32 {
    recv_fexit::<3, 5>(&ctx);
    0
}

/// requires: fexit (Linux 5.5–5.18 x86-64, BTF); `int tcp_recvmsg(struct sock *sk, struct
/// msghdr *msg, size_t len, int nonblock, int flags, int *addr_len)`.
#[fexit(function = "tcp_recvmsg")]
pub fn tcp_recvmsg_fexit_nonblock(ctx: FExitContext) -> i32 {
    recv_fexit::<4, 6>(&ctx);
    0
}

/// Saves the socket (and receive flags) of the thread's call for the kretprobe.
#[inline(always)]
fn save_call(sk: u64, flags: u64) {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == conf!(own_tgid) || tgid == 0 || sk == 0 {
        return;
    }
    let _ = SOCK_CALLS.insert(id, [sk, flags], 0);
}

/// Takes back the thread's saved call and handles it as the tracepoints would.
#[inline(always)]
fn finish_call(ret: i32, egress: bool) {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: map value, copied out before the remove.
    let Some(v) = (unsafe { SOCK_CALLS.get(id) }).copied() else {
        return;
    };
    let _ = SOCK_CALLS.remove(id);
    on_sock_io(v[0], ret, v[1] as i32, egress);
}

/// requires: kprobes (CONFIG_KPROBES); `tcp_sendmsg` in kallsyms.
#[kprobe(function = "tcp_sendmsg")]
pub fn tcp_sendmsg_kprobe(ctx: ProbeContext) -> u32 {
    save_call(ctx.arg::<u64>(0).unwrap_or(0), 0);
    0
}

/// requires: kretprobes (CONFIG_KPROBES); pairs with [`tcp_sendmsg_kprobe`].
#[kretprobe(function = "tcp_sendmsg")]
pub fn tcp_sendmsg_kretprobe(ctx: RetProbeContext) -> u32 {
    finish_call(ctx.ret::<u64>() as i32, true);
    0
}

/// requires: kprobes (CONFIG_KPROBES); `tcp_recvmsg` in kallsyms (flags position from BTF).
#[kprobe(function = "tcp_recvmsg")]
pub fn tcp_recvmsg_kprobe(ctx: ProbeContext) -> u32 {
    // Both candidate registers (x86-64 arguments 3 and 4: rcx, r8) are read at constant
    // offsets, volatile so LLVM cannot turn the choice into one load at a computed context
    // offset (refused by the verifier); the value is chosen afterwards.
    let regs = ctx.regs;
    // SAFETY: the probe's saved registers, valid for this program run.
    let (a3, a4) = unsafe {
        (
            core::ptr::read_volatile(&(*regs).rcx),
            core::ptr::read_volatile(&(*regs).r8),
        )
    };
    let flags = if conf!(recv_flags_arg) == 4 { a4 } else { a3 };
    save_call(ctx.arg::<u64>(0).unwrap_or(0), flags);
    0
}

/// requires: kretprobes (CONFIG_KPROBES); pairs with [`tcp_recvmsg_kprobe`].
#[kretprobe(function = "tcp_recvmsg")]
pub fn tcp_recvmsg_kretprobe(ctx: RetProbeContext) -> u32 {
    finish_call(ctx.ret::<u64>() as i32, false);
    0
}

/// requires: fexit (Linux ≥ 5.5 x86-64, BTF); `int tcp_sendpage(struct sock *sk, struct page
/// *page, int offset, size_t size, int flags)` (Linux < 6.5: `sendfile` to a TCP socket comes
/// here, not through `tcp_sendmsg`; from 6.5 it is a `tcp_sendmsg` with MSG_SPLICE_PAGES).
#[fexit(function = "tcp_sendpage")]
pub fn tcp_sendpage_fexit(ctx: FExitContext) -> i32 {
    on_sock_io(ctx.arg::<u64>(0), ctx.arg::<u64>(5) as i32, 0, true);
    0
}

/// requires: kprobes (CONFIG_KPROBES); `tcp_sendpage` (Linux < 6.5).
#[kprobe(function = "tcp_sendpage")]
pub fn tcp_sendpage_kprobe(ctx: ProbeContext) -> u32 {
    save_call(ctx.arg::<u64>(0).unwrap_or(0), 0);
    0
}

/// requires: kretprobes (CONFIG_KPROBES); pairs with [`tcp_sendpage_kprobe`].
#[kretprobe(function = "tcp_sendpage")]
pub fn tcp_sendpage_kretprobe(ctx: RetProbeContext) -> u32 {
    finish_call(ctx.ret::<u64>() as i32, true);
    0
}

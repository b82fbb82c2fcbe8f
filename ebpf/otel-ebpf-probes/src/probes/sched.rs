//! TCP state and process lifecycle: `inet_sock_set_state` (connection role, id, close) and
//! `sched_process_{exec,fork,exit}`.

use super::*;

// ---------------------------------------------------------------- TCP state, process exit

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: RawTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let old = ctx.arg::<u64>(1) as i32;
    let new = ctx.arg::<u64>(2) as i32;
    if sk == 0
        || (new != TCP_ESTABLISHED && new != TCP_CLOSE && new != TCP_SYN_SENT && new != TCP_LISTEN)
        || !is_tcp(sk)
    {
        return 0;
    }
    if new == TCP_SYN_SENT || new == TCP_LISTEN {
        health::on_state(sk, old, new, None);
        return 0;
    }
    if new == TCP_ESTABLISHED {
        let role = match old {
            TCP_SYN_SENT => SockRole::Client,
            TCP_SYN_RECV => SockRole::Server,
            _ => return 0,
        };
        let mut c = new_state(sk, role);
        // The connecting process owns a client connection from its start (net timing).
        c.tgid = health::on_state(sk, old, new, Some(&c));
        if CONNS.insert(sk, c, 0).is_err() {
            count(Counter::ConnMapFull);
        }
        return 0;
    }
    // TCP_CLOSE: the connection is over (whatever process or softirq closes it).
    let Some(c) = (unsafe { CONNS.get(sk) }).copied() else {
        // Every socket reaching ESTABLISHED is inserted: a connected one missing here was
        // evicted by the LRU (or predates the probes), and its close is lost. Counted.
        if old != TCP_SYN_SENT && old != TCP_SYN_RECV && old != TCP_LISTEN {
            count(Counter::ConnCloseUntracked);
        }
        health::on_state(sk, old, new, None);
        return 0;
    };
    let _ = CONNS.remove(sk);
    health::on_state(sk, old, new, Some(&c));
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

/// A process event (`kind`) for the current task `id` (pid_tgid), stamped now. An exec wakes
/// the reader at once (not after wake-up batching's poll delay): user space reads the new
/// image's /proc entry then, and a short-lived process may be gone 10 ms later.
#[inline(always)]
fn submit_process_event(kind: EventKind, id: u64) {
    let h = EventHeader {
        kind: kind as u8,
        pid: (id >> 32) as u32,
        tid: id as u32,
        fd: -1,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        ..EventHeader::default()
    };
    let flags = if kind == EventKind::ProcessExec {
        BPF_RB_FORCE_WAKEUP
    } else {
        wakeup_flags()
    };
    submit_header_flags(&h, Counter::ControlLostRingbufFull, flags);
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    let id = bpf_get_current_pid_tgid();
    // Every exiting thread: its TLS call in flight (if any) will never return.
    // SAFETY: read-only lookup.
    if let Some(c) = unsafe { TLS_CALLS.get(id) } {
        if c.orphan_ns == 0 {
            count(Counter::TlsCallStale);
        }
        let _ = TLS_CALLS.remove(id);
    }
    let tgid = (id >> 32) as u32;
    if tgid != id as u32 || tgid == conf!(own_tgid) || !pid_allowed(tgid) {
        return 0;
    }
    submit_process_event(EventKind::ProcessExit, id);
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(_ctx: RawTracePointContext) -> i32 {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == conf!(own_tgid) || !pid_allowed(tgid) {
        return 0;
    }
    submit_process_event(EventKind::ProcessExec, id);
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

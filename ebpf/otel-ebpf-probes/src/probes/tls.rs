//! TLS plaintext: uprobes on OpenSSL/BoringSSL/GnuTLS and Go crypto/tls, the association of
//! each TLS call with its socket, and the plaintext data events.

use super::*;

// ---------------------------------------------------------------- TLS plaintext (uprobes)

/// `sk` carries TLS session `ctx` of `tgid`: remembered, marked TLS, its ciphertext skipped.
#[inline(always)]
pub(super) fn remember_sk(tgid: u32, ctx: u64, sk: u64) {
    mark_tls(sk, tgid);
    if let Some(c) = unsafe { CONNS.get(sk) } {
        let _ = TLS_SK.insert([tgid as u64, ctx], [sk, c.conn_id], 0);
    }
    count(Counter::TlsCiphertextSkipped);
}

/// The socket remembered for a session, if it is still the same connection.
#[inline(always)]
pub(super) fn remembered_sk(tgid: u32, ctx: u64) -> u64 {
    let Some(v) = (unsafe { TLS_SK.get([tgid as u64, ctx]) }) else {
        return 0;
    };
    let (sk, id) = (v[0], v[1]);
    match unsafe { CONNS.get(sk) } {
        Some(c) if c.conn_id == id => sk,
        _ => 0,
    }
}

/// Marks the connection on `sk` as TLS (creating its state if the handshake was not seen).
#[inline(always)]
pub(super) fn mark_tls(sk: u64, tgid: u32) {
    match CONNS.get_ptr_mut(sk) {
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
            if CONNS.insert(sk, c, 0).is_err() {
                count(Counter::ConnMapFull);
            }
        }
    }
}

/// The `struct sock` behind file descriptor `fd` of the current task, if it is a TCP socket.
#[inline(always)]
pub(super) fn sk_of_fd(fd: u64) -> Option<u64> {
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
pub(super) fn go_conn_sk(conn: u64) -> Option<u64> {
    let data = read_u::<u64>(conn + conf!(go_conn_conn) as u64 + 8)?;
    let netfd = read_u::<u64>(data + conf!(go_net_conn_fd) as u64)?;
    let fd = read_u::<i64>(netfd + conf!(go_netfd_pfd) as u64 + conf!(go_pfd_sysfd) as u64)?;
    if !(0..=1 << 20).contains(&fd) {
        return None;
    }
    sk_of_fd(fd as u64)
}

#[inline(always)]
pub(super) fn is_write_fn(f: u64) -> bool {
    f == tls_fn::SSL_WRITE
        || f == tls_fn::SSL_WRITE_EX
        || f == tls_fn::GNUTLS_SEND
        || f == tls_fn::GO_WRITE
        || f == tls_fn::RUSTLS_WRITE
        || f == tls_fn::RUSTLS_WRITE_VECTORED
}

/// Emits the plaintext of a finished TLS call (`n` bytes at `c.buf`).
#[inline(always)]
pub(super) fn emit_tls(c: &TlsCall, n: u64, id: u64) {
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
            syscall: if c.func >= tls_fn::RUSTLS_READ_TLS {
                TlsSource::Rustls
            } else if c.func >= tls_fn::GO_READ {
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
        unsafe { CONNS.get(c.sk) }
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
pub(super) fn tls_wanted(id: u64) -> bool {
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
    // SAFETY: read-only lookup of a value this program type may access.
    if unsafe { TLS_CALLS.get(id) }.is_some_and(|old| old.orphan_ns == 0) {
        count(Counter::TlsCallStale); // the thread's previous call never returned
    }
    if TLS_CALLS.insert(id, call, 0).is_err() {
        count(Counter::TlsCallMapFull);
    }
    0
}

/// Return of a C-library TLS function: emits the plaintext moved.
#[uretprobe]
pub fn tls_return(ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(c) = (unsafe { TLS_CALLS.get(id) }) else {
        return 0;
    };
    if c.orphan_ns != 0 {
        return 0; // a stale orphan: this return belongs to an untracked call
    }
    let rax: u64 = ctx.ret();
    let moved = tls_finish(c, rax);
    if moved && c.sk == 0 && is_write_fn(c.func) {
        if let Some(p) = TLS_CALLS.get_ptr_mut(id) {
            // SAFETY: map value pointer, valid for this program run.
            unsafe { (*p).orphan_ns = bpf_ktime_get_ns() };
        }
    } else {
        let _ = TLS_CALLS.remove(id);
    }
    0
}

/// Result of a C-library TLS call: emits its plaintext when it moved bytes (returns true).
#[inline(always)]
pub(super) fn tls_finish(c: &TlsCall, rax: u64) -> bool {
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
    if GO_CALLS.insert([tgid as u64, g], call, 0).is_err() {
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
    let Some(c) = (unsafe { GO_CALLS.get(key) }) else {
        return 0;
    };
    if n > 0 && n as u64 <= c.len {
        emit_tls(c, n as u64, id);
    }
    let _ = GO_CALLS.remove(key);
    0
}

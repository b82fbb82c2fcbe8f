//! rustls plaintext (uprobes on a Rust program's statically linked rustls; user space finds
//! the functions by demangled name, the attach cookie is their `tls_fn` value).
//!
//! Session key: the `ConnectionCommon` address (`&mut self` in RDI of `read_tls`,
//! `write_tls`, `reader` and `PlaintextSink::write`/`write_vectored`), the same for reads and
//! writes of one connection. Rust ABI (x86-64, checked by disassembly on rustc 1.95): slices
//! are (pointer, length) in two registers; `io::Result<usize>` comes back in RAX (0 = `Ok`)
//! and RDX (the count); `io::Result<&[u8]>` and `Reader` (16 bytes) come back through a hidden
//! result pointer in RDI (then `&mut self` is RSI; user space tells `reader()`'s two forms
//! apart by its code, and `into_first_chunk`'s return checks RAX against the RDI it got).
//!
//! Socket: rustls does its socket IO only inside `read_tls` / `write_tls`, which are tracked
//! like a C library's `SSL_read` (a `TLS_CALLS` entry while they run: the socket raw
//! tracepoints record the socket in `TLS_SK` per (tgid, session) and mark it TLS). A
//! plaintext write whose session has no socket yet (its first write, typically) is held per
//! thread and emitted when the thread's next `write_tls` of that session returns (its socket
//! known by then; callers such as tokio-rustls flush right after writing, with the buffer
//! still alive). Reads: `reader()` names the session, then either `Read::read` (entry saves
//! the buffer, the return emits) or `into_first_chunk` (return saves the chunk) + `consume`
//! (entry emits the part taken).

use super::*;

/// Per-thread rustls state (key: pid_tgid).
#[repr(C)]
#[derive(Clone, Copy)]
struct RustlsThread {
    /// Session of the thread's last `reader()` call.
    reader_cc: u64,
    /// Plaintext call in flight (`func` 0 = none).
    call: TlsCall,
    /// A finished write waiting for its socket (`func` 0 = none; `out` = bytes written).
    pending: TlsCall,
    /// Last `into_first_chunk` result not yet consumed.
    chunk_buf: u64,
    chunk_len: u64,
}

/// rustls per-thread state. LRU: threads that exit are not enumerated.
#[map]
static RUSTLS_THREADS: LruHashMap<u64, RustlsThread> = LruHashMap::with_max_entries(16384, 0);

const NO_CALL: TlsCall = TlsCall {
    ctx: 0,
    buf: 0,
    len: 0,
    out: 0,
    sk: 0,
    func: 0,
    orphan_ns: 0,
};

#[inline(always)]
fn thread_state(id: u64) -> Option<*mut RustlsThread> {
    if let Some(p) = RUSTLS_THREADS.get_ptr_mut(&id) {
        return Some(p);
    }
    let fresh = RustlsThread {
        reader_cc: 0,
        call: NO_CALL,
        pending: NO_CALL,
        chunk_buf: 0,
        chunk_len: 0,
    };
    if RUSTLS_THREADS.insert(&id, &fresh, 0).is_err() {
        count(Counter::TlsCallMapFull);
        return None;
    }
    RUSTLS_THREADS.get_ptr_mut(&id)
}

/// [`emit_tls`] as a BPF subprogram: one copy of the event code for all rustls programs (each
/// inlined copy would need its own stack, past the 512-byte limit).
#[inline(never)]
fn rustls_emit(c: &TlsCall, n: u64, id: u64) {
    emit_tls(c, n, id);
}

/// Most `IoSlice`s of one `write_vectored` emitted (one event each).
const MAX_RUSTLS_IOVECS: u64 = 8;

/// Emits a finished plaintext write (`c.out` bytes) with its socket when known; a vectored
/// write (`c.buf`: `c.len` `struct iovec`) as one event per slice.
#[inline(always)]
fn emit_write(c: &TlsCall, id: u64) {
    let n = c.out;
    if c.func != tls_fn::RUSTLS_WRITE_VECTORED {
        if n <= c.len {
            rustls_emit(c, n, id);
        }
        return;
    }
    let mut left = n;
    let mut seg = *c;
    for i in 0..MAX_RUSTLS_IOVECS {
        if i >= c.len || left == 0 {
            break;
        }
        let Some(v) = read_u::<[u64; 2]>(c.buf + i * 16) else {
            break;
        };
        let len = if v[1] < left { v[1] } else { left };
        if len == 0 {
            continue;
        }
        seg.buf = v[0];
        seg.len = len;
        rustls_emit(&seg, len, id);
        left -= len;
    }
}

/// Entry of every rustls function (cookie: its `tls_fn` value).
#[uprobe]
pub fn rustls_entry(ctx: ProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if !tls_wanted(id) {
        return 0;
    }
    let tgid = (id >> 32) as u32;
    // SAFETY: helper on this program's context.
    let func = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let a0: u64 = ctx.arg(0).unwrap_or(0);
    let a1: u64 = ctx.arg(1).unwrap_or(0);
    let a2: u64 = ctx.arg(2).unwrap_or(0);
    if func == tls_fn::RUSTLS_READ_TLS || func == tls_fn::RUSTLS_WRITE_TLS {
        // The connection's socket IO: tracked like a C library call.
        let call = TlsCall {
            ctx: a0,
            sk: remembered_sk(tgid, a0),
            func,
            ..NO_CALL
        };
        if TLS_CALLS.insert(&id, &call, 0).is_err() {
            count(Counter::TlsCallMapFull);
        }
        return 0;
    }
    let Some(st) = thread_state(id) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for this program run.
    let st = unsafe { &mut *st };
    match func {
        tls_fn::RUSTLS_READER => st.reader_cc = a0,
        tls_fn::RUSTLS_READER_SRET => st.reader_cc = a1,
        tls_fn::RUSTLS_WRITE | tls_fn::RUSTLS_WRITE_VECTORED => {
            st.call = TlsCall {
                ctx: a0,
                buf: a1,
                len: a2,
                func,
                ..NO_CALL
            };
        }
        tls_fn::RUSTLS_READ => {
            st.call = TlsCall {
                ctx: st.reader_cc,
                buf: a1,
                len: a2,
                func,
                ..NO_CALL
            };
        }
        tls_fn::RUSTLS_FIRST_CHUNK => {
            // `out`: RDI, the hidden result pointer if the result comes back in memory.
            st.call = TlsCall {
                ctx: st.reader_cc,
                out: a0,
                func,
                ..NO_CALL
            };
        }
        tls_fn::RUSTLS_CONSUME => {
            let (buf, len) = (st.chunk_buf, st.chunk_len);
            st.chunk_len = 0;
            let n = if a1 < len { a1 } else { len };
            if n > 0 && buf != 0 {
                let cc = st.reader_cc;
                let call = TlsCall {
                    ctx: cc,
                    buf,
                    len: n,
                    sk: remembered_sk(tgid, cc),
                    func,
                    ..NO_CALL
                };
                rustls_emit(&call, n, id);
            }
        }
        _ => {}
    }
    0
}

/// Return of `read_tls` / `write_tls`: ends the socket association window; after a
/// `write_tls`, emits the thread's held write of that session.
#[uretprobe]
pub fn rustls_io_ret(_ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: read-only lookup.
    let Some(c) = (unsafe { TLS_CALLS.get(&id) }).copied() else {
        return 0;
    };
    let _ = TLS_CALLS.remove(&id);
    if c.func != tls_fn::RUSTLS_WRITE_TLS {
        return 0;
    }
    let Some(st) = RUSTLS_THREADS.get_ptr_mut(&id) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for this program run.
    let st = unsafe { &mut *st };
    if st.pending.func == 0 || st.pending.ctx != c.ctx {
        return 0;
    }
    let mut p = st.pending;
    st.pending.func = 0;
    p.sk = if c.sk != 0 {
        c.sk
    } else {
        remembered_sk((id >> 32) as u32, c.ctx)
    };
    emit_write(&p, id);
    0
}

/// Return of the plaintext functions (`write`, `write_vectored`, `Read::read`,
/// `into_first_chunk`).
#[uretprobe]
pub fn rustls_ret(ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(st) = RUSTLS_THREADS.get_ptr_mut(&id) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for this program run.
    let st = unsafe { &mut *st };
    let mut c = st.call;
    if c.func == 0 {
        return 0;
    }
    st.call.func = 0;
    // SAFETY: the context is the user pt_regs of the probed task.
    let (rax, rdx) = unsafe {
        let r = &*ctx.regs;
        (r.rax, r.rdx)
    };
    let tgid = (id >> 32) as u32;
    match c.func {
        tls_fn::RUSTLS_FIRST_CHUNK => {
            // `io::Result<&[u8]>` = (pointer, 0 for `Err`; length). Returned in memory when
            // RAX is the hidden result pointer the call got in RDI, else in RAX:RDX.
            let (ptr, len) = if rax != 0 && rax == c.out {
                match read_u::<[u64; 2]>(rax) {
                    Some(v) => (v[0], v[1]),
                    None => (0, 0),
                }
            } else {
                (rax, rdx)
            };
            st.chunk_buf = ptr;
            st.chunk_len = if ptr == 0 { 0 } else { len };
        }
        tls_fn::RUSTLS_READ => {
            if rax == 0 && rdx > 0 && rdx <= c.len {
                c.sk = remembered_sk(tgid, c.ctx);
                rustls_emit(&c, rdx, id);
            }
        }
        _ => {
            // write / write_vectored: Ok(n) with n > 0.
            if rax != 0 || rdx == 0 || rdx > 1 << 30 {
                return 0;
            }
            c.out = rdx;
            c.sk = remembered_sk(tgid, c.ctx);
            // One emission site (program size): this write when its socket is known, else
            // the held write it replaces (never flushed on this thread: without socket).
            let emit = if c.sk != 0 {
                c
            } else {
                let old = st.pending;
                st.pending = c;
                old
            };
            if emit.func != 0 {
                emit_write(&emit, id);
            }
        }
    }
    0
}

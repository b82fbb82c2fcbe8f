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
//! (entry, its own program, emits the part taken).

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
    if let Some(p) = RUSTLS_THREADS.get_ptr_mut(id) {
        return Some(p);
    }
    let fresh = RustlsThread {
        reader_cc: 0,
        call: NO_CALL,
        pending: NO_CALL,
        chunk_buf: 0,
        chunk_len: 0,
    };
    if RUSTLS_THREADS.insert(id, fresh, 0).is_err() {
        count(Counter::TlsCallMapFull);
        return None;
    }
    RUSTLS_THREADS.get_ptr_mut(id)
}

/// [`emit_tls`] as a BPF subprogram taking scalars: one copy of the event code for all
/// rustls programs, and callers keep small frames (caller + callee stacks share 512 bytes).
/// The call record is built in [`RUSTLS_SCRATCH`], not on the stack (56 bytes more would
/// not fit beside `rustls_ret`'s frame).
#[inline(never)]
fn rustls_emit(ctx: u64, buf: u64, sk: u64, func: u64, n: u64) {
    let Some(c) = RUSTLS_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU map value pointer, valid for this program run.
    let c = unsafe { &mut *c };
    c.ctx = ctx;
    c.buf = buf;
    c.len = n;
    c.out = 0;
    c.sk = sk;
    c.func = func;
    c.orphan_ns = 0;
    emit_tls(c, n, bpf_get_current_pid_tgid());
}

/// One call record per CPU for [`rustls_emit`].
#[map]
static RUSTLS_SCRATCH: PerCpuArray<TlsCall> = PerCpuArray::with_max_entries(1, 0);

/// Most `IoSlice`s of one `write_vectored` emitted (one event each).
const MAX_RUSTLS_IOVECS: u64 = 8;

/// Emits a finished plaintext write of `n` bytes (`buf`, `len`: the slice, or for
/// `write_vectored` the `struct iovec` array and its count, one event per slice).
#[inline(always)]
fn emit_write(func: u64, ctx: u64, buf: u64, len: u64, n: u64, sk: u64) {
    if func != tls_fn::RUSTLS_WRITE_VECTORED {
        if n <= len {
            rustls_emit(ctx, buf, sk, func, n);
        }
        return;
    }
    let mut left = n;
    for i in 0..MAX_RUSTLS_IOVECS {
        if i >= len || left == 0 {
            break;
        }
        let Some(v) = read_u::<[u64; 2]>(buf + i * 16) else {
            break;
        };
        let seg = if v[1] < left { v[1] } else { left };
        if seg == 0 {
            continue;
        }
        rustls_emit(ctx, v[0], sk, func, seg);
        left -= seg;
    }
}

/// Entry of every rustls function but `consume` (cookie: its `tls_fn` value).
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
        if TLS_CALLS.insert(id, call, 0).is_err() {
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
            st.call.ctx = a0;
            st.call.buf = a1;
            st.call.len = a2;
            st.call.func = func;
        }
        tls_fn::RUSTLS_READ => {
            st.call.ctx = st.reader_cc;
            st.call.buf = a1;
            st.call.len = a2;
            st.call.func = func;
        }
        tls_fn::RUSTLS_FIRST_CHUNK => {
            // `out`: RDI, the hidden result pointer if the result comes back in memory.
            st.call.ctx = st.reader_cc;
            st.call.out = a0;
            st.call.func = func;
        }
        _ => {}
    }
    0
}

/// Entry of `<Reader as BufRead>::consume(&mut self, amt)`: emits the part of the thread's
/// last `into_first_chunk` the caller took. Its own program: no map insert here, so its
/// frame and `rustls_emit`'s fit the 512-byte stack together.
#[uprobe]
pub fn rustls_consume(ctx: ProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(st) = RUSTLS_THREADS.get_ptr_mut(id) else {
        return 0;
    };
    let amt: u64 = ctx.arg(1).unwrap_or(0);
    // SAFETY: map value pointer, valid for this program run.
    let st = unsafe { &mut *st };
    let (buf, len, cc) = (st.chunk_buf, st.chunk_len, st.reader_cc);
    st.chunk_len = 0;
    let n = if amt < len { amt } else { len };
    if n > 0 && buf != 0 {
        let sk = remembered_sk((id >> 32) as u32, cc);
        rustls_emit(cc, buf, sk, tls_fn::RUSTLS_CONSUME, n);
    }
    0
}

/// Return of `read_tls` / `write_tls`: ends the socket association window; after a
/// `write_tls`, emits the thread's held write of that session.
#[uretprobe]
pub fn rustls_io_ret(_ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: read-only lookup.
    let Some(c) = (unsafe { TLS_CALLS.get(id) }) else {
        return 0;
    };
    let (func, cc, sk) = (c.func, c.ctx, c.sk);
    let _ = TLS_CALLS.remove(id);
    if func != tls_fn::RUSTLS_WRITE_TLS {
        return 0;
    }
    let Some(st) = RUSTLS_THREADS.get_ptr_mut(id) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for this program run.
    let st = unsafe { &mut *st };
    let p = &mut st.pending;
    if p.func == 0 || p.ctx != cc {
        return 0;
    }
    let pf = p.func;
    p.func = 0;
    let sk = if sk != 0 {
        sk
    } else {
        remembered_sk((id >> 32) as u32, cc)
    };
    emit_write(pf, cc, p.buf, p.len, p.out, sk);
    0
}

/// Return of the plaintext functions (`write`, `write_vectored`, `Read::read`,
/// `into_first_chunk`).
#[uretprobe]
pub fn rustls_ret(ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(st) = RUSTLS_THREADS.get_ptr_mut(id) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for this program run.
    let st = unsafe { &mut *st };
    let func = st.call.func;
    if func == 0 {
        return 0;
    }
    st.call.func = 0;
    let (cc, buf, len, out) = (st.call.ctx, st.call.buf, st.call.len, st.call.out);
    // SAFETY: the context is the user pt_regs of the probed task.
    let (rax, rdx) = unsafe {
        let r = &*ctx.regs;
        (r.rax, r.rdx)
    };
    let tgid = (id >> 32) as u32;
    match func {
        tls_fn::RUSTLS_FIRST_CHUNK => {
            // `io::Result<&[u8]>` = (pointer, 0 for `Err`; length). Returned in memory when
            // RAX is the hidden result pointer the call got in RDI, else in RAX:RDX.
            let (ptr, n) = if rax != 0 && rax == out {
                match read_u::<[u64; 2]>(rax) {
                    Some(v) => (v[0], v[1]),
                    None => (0, 0),
                }
            } else {
                (rax, rdx)
            };
            st.chunk_buf = ptr;
            st.chunk_len = if ptr == 0 { 0 } else { n };
        }
        tls_fn::RUSTLS_READ => {
            if rax == 0 && rdx > 0 && rdx <= len {
                rustls_emit(cc, buf, remembered_sk(tgid, cc), func, rdx);
            }
        }
        _ => {
            // write / write_vectored: Ok(n) with n > 0.
            if rax != 0 || rdx == 0 || rdx > 1 << 30 {
                return 0;
            }
            let sk = remembered_sk(tgid, cc);
            if sk != 0 {
                emit_write(func, cc, buf, len, rdx, sk);
                return 0;
            }
            // No socket yet: hold this write for the thread's next `write_tls`; a held
            // write it replaces was never flushed on this thread: emitted without socket.
            let p = &mut st.pending;
            let (of, oc, ob, ol, on) = (p.func, p.ctx, p.buf, p.len, p.out);
            p.func = func;
            p.ctx = cc;
            p.buf = buf;
            p.len = len;
            p.out = rdx;
            if of != 0 {
                emit_write(of, oc, ob, ol, on, 0);
            }
        }
    }
    0
}

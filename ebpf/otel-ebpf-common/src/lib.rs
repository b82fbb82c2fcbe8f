//! Event and configuration types shared by the kernel probes and user space.
//!
//! Stage: the boundary between `ebpf/otel-ebpf-probes` (producer, BPF ring buffer) and
//! `otel-ebpf-receiver::events` (consumer). Every type is `#[repr(C)]` with explicit padding so
//! both sides agree on the layout byte for byte; user space decodes records by these layouts.
//!
//! A ring buffer record is one [`EventHeader`] followed, for [`EventKind::Data`], by
//! `captured_len` payload bytes (at most [`MAX_CAPTURE`]).
//! Limits: payload capture is bounded by [`ProbeConfig::capture_bytes`] (≤ [`MAX_CAPTURE`]);
//! the syscall's full byte count is always in [`EventHeader::total_len`].
#![no_std]

/// Compile-time ceiling for captured payload bytes per data event (bytes). Power of two so the
/// verifier can bound masked lengths.
pub const MAX_CAPTURE: usize = 16384;
/// Default for [`ProbeConfig::capture_bytes`] (bytes).
pub const DEFAULT_CAPTURE: u32 = 4096;
/// Most iovec entries copied from one `readv`/`writev`/`sendmsg`/`recvmsg` call.
pub const MAX_IOVECS: u32 = 8;

/// Address families as in `<sys/socket.h>`.
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u16 = 6;

/// What a ring buffer record describes. Values are stable (they are the wire format).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Bytes read or written by a syscall on a TCP socket; payload follows the header.
    Data = 1,
    /// `close(fd)` of a tracked socket (syscalls:sys_enter_close).
    Close = 2,
    /// The whole process exited (sched:sched_process_exit with pid == tgid).
    ProcessExit = 3,
    /// A TCP state change (sock:inet_sock_set_state, Linux ≥ 4.16): `state_old`/`state_new`
    /// in `syscall`'s place, tuple filled.
    TcpState = 4,
}

impl EventKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Data),
            2 => Some(Self::Close),
            3 => Some(Self::ProcessExit),
            4 => Some(Self::TcpState),
            _ => None,
        }
    }
}

/// Which way the bytes went, seen from the traced process.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// write/writev/sendto/sendmsg: the process sent these bytes.
    Egress = 0,
    /// read/readv/recvfrom/recvmsg: the process received these bytes.
    Ingress = 1,
}

/// How the process obtained the socket, when the probes saw it happen.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockRole {
    /// Opened before capture started (or by a call we do not trace).
    Unknown = 0,
    /// `connect(2)` returned it: this process is the client.
    Client = 1,
    /// `accept(2)`/`accept4(2)` returned it: this process is the server.
    Server = 2,
}

/// Syscall that produced a data event.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    Read = 0,
    Write = 1,
    Readv = 2,
    Writev = 3,
    Sendto = 4,
    Recvfrom = 5,
    Sendmsg = 6,
    Recvmsg = 7,
    /// `sendfile(2)` to a socket: byte count only, the bytes come from a file and are not
    /// captured (`captured_len` = 0).
    Sendfile = 8,
}

/// Index of each counter in the `COUNTERS` per-CPU array (values are summed over CPUs).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Data events submitted to the ring buffer.
    DataEvents = 0,
    /// Data events lost because the ring buffer was full.
    DataLostRingbufFull = 1,
    /// Control events (close, exit, state) lost because the ring buffer was full.
    ControlLostRingbufFull = 2,
    /// A syscall's enter could not be remembered (per-thread map full).
    ActiveMapFull = 3,
    /// A socket could not be tracked (connection map full, LRU eviction pressure).
    ConnMapFull = 4,
    /// Reading user memory for the payload failed (payload sent empty, counted).
    PayloadReadFailed = 5,
}
/// Number of entries in the `COUNTERS` array.
pub const COUNTER_COUNT: u32 = 6;

/// Header of every ring buffer record. 80 bytes, 8-byte aligned.
///
/// Source of each field: `pid`/`tid` from `bpf_get_current_pid_tgid` (tgid, tid), `ts_ns` from
/// `bpf_ktime_get_ns` (CLOCK_MONOTONIC, ns), tuple from the socket (`struct sock_common` fields
/// resolved from BTF at start-up) or from the tracepoint's own fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// [`EventKind`] as u8.
    pub kind: u8,
    /// [`Direction`] as u8 (data events).
    pub direction: u8,
    /// [`SockRole`] as u8.
    pub role: u8,
    /// [`Syscall`] as u8 (data events); old TCP state (TcpState events).
    pub syscall: u8,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// File descriptor in `pid` (data, close); -1 when not known.
    pub fd: i32,
    /// Connection id: unique per (pid, fd) lifetime, so it survives fd reuse. 0 = none.
    pub conn_id: u64,
    /// CLOCK_MONOTONIC timestamp (ns) of the syscall's exit (data) or the event.
    pub ts_ns: u64,
    /// Syscall's full byte count (data events); new TCP state (TcpState events).
    pub total_len: u64,
    /// Payload bytes following this header (≤ capture_bytes).
    pub captured_len: u32,
    /// AF_INET or AF_INET6; 0 when unknown.
    pub family: u16,
    /// Local port, host byte order.
    pub lport: u16,
    /// Remote port, host byte order.
    pub rport: u16,
    pub _pad: [u8; 6],
    /// Local address: 4 bytes (IPv4) or 16 bytes (IPv6), network byte order.
    pub laddr: [u8; 16],
    /// Remote address, as `laddr`.
    pub raddr: [u8; 16],
}

/// Size of [`EventHeader`] in bytes.
pub const HEADER_LEN: usize = core::mem::size_of::<EventHeader>();
const _: () = assert!(HEADER_LEN == 88);

/// Start-up configuration of the probes, written into the object's `.rodata` (global
/// `CONFIG`) before load. Offsets come from this kernel's BTF and tracefs format files.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {
    /// The receiver's own tgid: its syscalls are never reported.
    pub own_tgid: u32,
    /// Payload bytes to copy per data event (≤ [`MAX_CAPTURE`]).
    pub capture_bytes: u32,
    /// Offsets (bytes) inside `struct sock` of `__sk_common.skc_*` fields (BTF).
    pub off_skc_daddr: u32,
    pub off_skc_rcv_saddr: u32,
    pub off_skc_dport: u32,
    pub off_skc_num: u32,
    pub off_skc_v6_daddr: u32,
    pub off_skc_v6_rcv_saddr: u32,
    /// Offsets (bytes) of fields in the sock:sock_send_length / sock:sock_recv_length record
    /// (tracefs format file): `sk`, `family`, `protocol`.
    pub tp_socklen_sk: u32,
    pub tp_socklen_family: u32,
    pub tp_socklen_protocol: u32,
    /// Offsets in the sock:inet_sock_set_state record: `oldstate`, `newstate`, `sport`,
    /// `dport`, `family`, `protocol`, `saddr_v6`, `daddr_v6`.
    pub tp_state_oldstate: u32,
    pub tp_state_newstate: u32,
    pub tp_state_sport: u32,
    pub tp_state_dport: u32,
    pub tp_state_family: u32,
    pub tp_state_protocol: u32,
    pub tp_state_saddr_v6: u32,
    pub tp_state_daddr_v6: u32,
    /// Offset of the first syscall argument in syscalls:sys_enter_* records, and of `ret` in
    /// syscalls:sys_exit_* records (tracefs format files; 16 on every current kernel).
    pub tp_sys_args: u32,
    pub tp_sys_ret: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for ProbeConfig {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for EventHeader {}

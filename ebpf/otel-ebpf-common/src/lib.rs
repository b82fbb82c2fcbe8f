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
pub const MAX_IOVECS: u32 = 32;

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
    /// Plaintext handed to or returned by a TLS library call (uprobes on `SSL_read`/
    /// `SSL_write`/`_ex`, `gnutls_record_recv`/`_send`, Go `crypto/tls.(*Conn).Read`/`Write`);
    /// payload follows as for [`EventKind::Data`]. `syscall` holds the [`TlsSource`],
    /// `tls_ctx` the library's session pointer, `conn_id`/tuple/role/`fd` the socket's when it
    /// was associated (else `conn_id` 0, `fd` -1).
    TlsData = 5,
    /// A process called `execve` (sched:sched_process_exec): `pid` runs a new image.
    ProcessExec = 6,
    /// A process forked a new process (sched:sched_process_fork, threads excluded): `pid` is
    /// the parent, `total_len` the child's pid.
    ProcessFork = 7,
    /// Kernel network timing or TCP health ([`NetEvent`], not an [`EventHeader`]): skb/net/tcp
    /// tracepoints, only when [`ProbeConfig::net_timing`] is set.
    Net = 8,
}

impl EventKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Data),
            2 => Some(Self::Close),
            3 => Some(Self::ProcessExit),
            4 => Some(Self::TcpState),
            5 => Some(Self::TlsData),
            6 => Some(Self::ProcessExec),
            7 => Some(Self::ProcessFork),
            8 => Some(Self::Net),
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

/// Which TLS implementation produced a [`EventKind::TlsData`] event (in `syscall`'s place).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// OpenSSL or BoringSSL (`SSL_read`, `SSL_write`, `SSL_read_ex`, `SSL_write_ex`).
    OpenSsl = 0,
    /// GnuTLS (`gnutls_record_recv`, `gnutls_record_send`).
    GnuTls = 1,
    /// Go `crypto/tls` (`(*Conn).Read`, `(*Conn).Write`).
    Go = 2,
    /// rustls (`ConnectionCommon`'s plaintext writer, `Reader`), session = the
    /// `ConnectionCommon` address.
    Rustls = 3,
}

impl TlsSource {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::OpenSsl),
            1 => Some(Self::GnuTls),
            2 => Some(Self::Go),
            3 => Some(Self::Rustls),
            _ => None,
        }
    }
}

/// Attach cookie of the TLS entry uprobe (`bpf_get_attach_cookie`): which function it is on.
/// Values are stable (user space sets them per attachment).
pub mod tls_fn {
    /// `int SSL_read(SSL *, void *buf, int num)`.
    pub const SSL_READ: u64 = 0;
    /// `int SSL_write(SSL *, const void *buf, int num)`.
    pub const SSL_WRITE: u64 = 1;
    /// `int SSL_read_ex(SSL *, void *buf, size_t num, size_t *readbytes)`.
    pub const SSL_READ_EX: u64 = 2;
    /// `int SSL_write_ex(SSL *, const void *buf, size_t num, size_t *written)`.
    pub const SSL_WRITE_EX: u64 = 3;
    /// `ssize_t gnutls_record_recv(gnutls_session_t, void *data, size_t size)`.
    pub const GNUTLS_RECV: u64 = 4;
    /// `ssize_t gnutls_record_send(gnutls_session_t, const void *data, size_t size)`.
    pub const GNUTLS_SEND: u64 = 5;
    /// Go `func (c *crypto/tls.Conn) Read(b []byte) (int, error)`.
    pub const GO_READ: u64 = 6;
    /// Go `func (c *crypto/tls.Conn) Write(b []byte) (int, error)`.
    pub const GO_WRITE: u64 = 7;
    /// rustls `ConnectionCommon::read_tls(&mut self, &mut dyn Read)`: socket reads.
    pub const RUSTLS_READ_TLS: u64 = 8;
    /// rustls `ConnectionCommon::write_tls(&mut self, &mut dyn Write)`: socket writes.
    pub const RUSTLS_WRITE_TLS: u64 = 9;
    /// rustls `ConnectionCommon::reader(&mut self)`: names the session of the next read.
    pub const RUSTLS_READER: u64 = 10;
    /// rustls `<ConnectionCommon as PlaintextSink>::write(&mut self, &[u8])`.
    pub const RUSTLS_WRITE: u64 = 11;
    /// rustls `<ConnectionCommon as PlaintextSink>::write_vectored(&mut self, &[IoSlice])`.
    pub const RUSTLS_WRITE_VECTORED: u64 = 12;
    /// rustls `<Reader as std::io::Read>::read(&mut self, &mut [u8])`.
    pub const RUSTLS_READ: u64 = 13;
    /// rustls `Reader::into_first_chunk(self) -> io::Result<&[u8]>` (result in RAX:RDX, or
    /// through the hidden result pointer passed in RDI and returned in RAX).
    pub const RUSTLS_FIRST_CHUNK: u64 = 14;
    /// rustls `<Reader as std::io::BufRead>::consume(&mut self, usize)`.
    pub const RUSTLS_CONSUME: u64 = 15;
    /// rustls `ConnectionCommon::reader` returning its `Reader` through a hidden result
    /// pointer (RDI): `&mut self` is the second argument (RSI).
    pub const RUSTLS_READER_SRET: u64 = 16;
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
    /// TCP socket IO that did not come from a traced syscall (io_uring, splice, sendmmsg,
    /// recvmmsg, kernel threads): not captured, counted.
    UntracedSyscall = 3,
    /// A socket could not be tracked (connection map full, LRU eviction pressure).
    ConnMapFull = 4,
    /// Reading user memory for the payload failed (payload sent empty, counted).
    PayloadReadFailed = 5,
    /// TLS plaintext events submitted (also counted in `DataEvents`).
    TlsEvents = 6,
    /// TLS calls whose socket could not be found (no syscall inside the call and none
    /// remembered for the session): plaintext sent without tuple.
    TlsNoSocket = 7,
    /// TLS calls not tracked because the in-flight call map was full.
    TlsCallMapFull = 8,
    /// Ciphertext socket IO not sent because the connection is known to carry TLS (its
    /// plaintext comes from the uprobes).
    TlsCiphertextSkipped = 9,
    /// Kernel network timing / TCP health records lost because the ring buffer was full.
    NetLostRingbufFull = 10,
    /// TLS calls in flight that never returned, found when their thread started another call
    /// or exited (the entry is then replaced or removed): their plaintext is lost. Silent LRU
    /// evictions of the in-flight call maps are not visible to the probes.
    TlsCallStale = 11,
    /// A socket left a connected state (ESTABLISHED, FIN_WAIT, CLOSE_WAIT, …) for CLOSE while
    /// the connection map did not hold it: evicted by the map's LRU under pressure, never
    /// inserted (`ConnMapFull`), or connected before the probes were attached. Its close event
    /// is not sent (user space ends its open exchange by the request timeout).
    ConnCloseUntracked = 12,
}
/// Number of entries in the `COUNTERS` array.
pub const COUNTER_COUNT: u32 = 13;

/// Header of every ring buffer record. 88 bytes, 8-byte aligned.
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
    /// Connection id: unique per socket (`struct sock`) lifetime, from the TCP handshake (or
    /// the first data seen) to TCP_CLOSE. 0 = none.
    pub conn_id: u64,
    /// CLOCK_MONOTONIC timestamp (ns) of the socket call inside the syscall, after the bytes
    /// moved (data), or of the event.
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
    /// [`EventKind::TlsData`]: the TLS session pointer in the process (`SSL *`,
    /// `gnutls_session_t`, Go `*tls.Conn`), low 48 bits, little endian (x86-64 user
    /// addresses fit). It identifies the TLS stream when no socket was associated. 0 otherwise.
    pub tls_ctx: [u8; 6],
    /// Local address: 4 bytes (IPv4) or 16 bytes (IPv6), network byte order.
    pub laddr: [u8; 16],
    /// Remote address, as `laddr`.
    pub raddr: [u8; 16],
}

/// Size of [`EventHeader`] in bytes.
pub const HEADER_LEN: usize = core::mem::size_of::<EventHeader>();
const _: () = assert!(HEADER_LEN == 88);

/// Start-up configuration of the probes, written into the object's `.rodata` (global
/// `CONFIG`) before load. Struct offsets come from this kernel's BTF; syscall numbers from the
/// C library's `SYS_*` constants for this architecture.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {
    /// The receiver's own tgid: its sockets are never reported.
    pub own_tgid: u32,
    /// Payload bytes to copy per data event (≤ [`MAX_CAPTURE`]).
    pub capture_bytes: u32,
    /// Offsets (bytes) inside `struct sock` of `__sk_common.skc_*` fields and of
    /// `sk_protocol` (BTF).
    pub off_skc_daddr: u32,
    pub off_skc_rcv_saddr: u32,
    pub off_skc_dport: u32,
    pub off_skc_num: u32,
    pub off_skc_family: u32,
    pub off_skc_v6_daddr: u32,
    pub off_skc_v6_rcv_saddr: u32,
    pub off_sk_protocol: u32,
    /// Offsets (bytes) inside `struct pt_regs` (the user registers saved at syscall entry) of
    /// the syscall number and its first three arguments (x86-64: `orig_ax`, `di`, `si`, `dx`).
    pub off_regs_nr: u32,
    pub off_regs_arg0: u32,
    pub off_regs_arg1: u32,
    pub off_regs_arg2: u32,
    /// Syscall numbers, indexed by [`Syscall`] (read, write, readv, writev, sendto, recvfrom,
    /// sendmsg, recvmsg, sendfile); `u32::MAX` for a syscall this architecture lacks.
    pub nr: [u32; SYSCALL_COUNT],
    /// [`FILTER_PIDS_INCLUDE`] | [`FILTER_PIDS_EXCLUDE`] | [`FILTER_PORTS_INCLUDE`] |
    /// [`FILTER_PORTS_EXCLUDE`]: which filter maps hold entries.
    pub filter_flags: u32,
    /// Offsets (bytes) of `task_struct.pid` and `task_struct.tgid` (fork events of new
    /// processes only, not threads).
    pub off_task_pid: u32,
    pub off_task_tgid: u32,
    /// Path from a Go `*tls.Conn` to the socket fd (bytes; the receiver's `GoTlsOffsets::TABLE`, Go ≥
    /// 1.17 amd64): `Conn.conn` (interface; data pointer at +8), `net.conn.fd`,
    /// `netFD.pfd`, `poll.FD.Sysfd`.
    pub go_conn_conn: u32,
    pub go_net_conn_fd: u32,
    pub go_netfd_pfd: u32,
    pub go_pfd_sysfd: u32,
    /// Offsets (bytes) to go from an fd to its `struct sock`: `task_struct.files`,
    /// `files_struct.fdt`, `fdtable.fd`, `fdtable.max_fds`, `file.private_data`,
    /// `socket.sk` (BTF).
    pub off_task_files: u32,
    pub off_files_fdt: u32,
    pub off_fdt_fd: u32,
    pub off_fdt_max_fds: u32,
    pub off_file_private_data: u32,
    pub off_socket_sk: u32,
    /// Consumer wake-up batching: a record is submitted with BPF_RB_NO_WAKEUP while less than
    /// this many bytes wait in the ring buffer, with BPF_RB_FORCE_WAKEUP from then on (the
    /// consumer also polls on a timer). 0 = the kernel's default (wake when caught up).
    pub wakeup_bytes: u32,
    /// [`NET_HEALTH`] | [`NET_LAYERS`]: which network hooks run ([`NetEvent`]s are sent).
    pub net_timing: u32,
    /// Offsets (bytes) in `struct sk_buff` (BTF): `sk`, `tstamp`, `len`, `head`, `data`,
    /// `protocol`, `network_header`, `transport_header`.
    pub off_skb_sk: u32,
    pub off_skb_tstamp: u32,
    pub off_skb_len: u32,
    pub off_skb_head: u32,
    pub off_skb_data: u32,
    pub off_skb_protocol: u32,
    pub off_skb_network_header: u32,
    pub off_skb_transport_header: u32,
    /// Offsets (bytes) in `struct tcp_sock` (BTF): `srtt_us` (smoothed RTT in µs << 3),
    /// `snd_cwnd` (segments), `write_seq`, `snd_nxt`.
    pub off_tcp_srtt_us: u32,
    pub off_tcp_snd_cwnd: u32,
    pub off_tcp_write_seq: u32,
    pub off_tcp_snd_nxt: u32,
    /// Offset (bytes) of the `struct net *` in `struct sock` (`__sk_common.skc_net.net`) and
    /// of the network namespace's inode number in `struct net` (`ns.inum`), BTF: the key of
    /// [`listener_key`].
    pub off_sk_net: u32,
    pub off_net_ns_inum: u32,
    /// Values of `enum skb_drop_reason` (BTF) that are not drops: `SKB_NOT_DROPPED_YET`,
    /// `SKB_CONSUMED` (`u32::MAX` when this kernel lacks one).
    pub drop_not_dropped_yet: u32,
    pub drop_consumed: u32,
    /// Position (0-based) of `flags` among the arguments of `tcp_recvmsg` (BTF): 3 on Linux
    /// ≥ 5.19 (`tcp_recvmsg(sk, msg, len, flags, addr_len)`), 4 before (a `nonblock`
    /// argument precedes it). Read only by the kprobe on `tcp_recvmsg`.
    pub recv_flags_arg: u32,
    /// Layer-timing sampling, consistent random: a connection is timed during a sampling
    /// window when the top 32 bits of its order-independent tuple hash are ≤ this
    /// (`u32::MAX` = every connection; `receiver.kernel_timing.sampling.connection_rate`).
    pub sample_hash_max: u32,
    /// Fixed interval: time one data skb in this many per connection (≥ 1; 1 = every skb).
    pub sample_skb_interval: u32,
    /// Dynamic threshold: a connection whose smoothed RTT reaches this (µs) at a write is
    /// timed for [`SAMPLE_HOT_HOLD_NS`] whatever the window; 0 = off.
    pub sample_hot_srtt_us: u32,
    /// Dynamic threshold: retransmitted segments on a connection that make it timed the same
    /// way; 0 = off.
    pub sample_hot_retransmits: u32,
}

/// `SAMPLING[0]` bit (written by user space): a sampling window is open, connections chosen
/// by hash are timed.
pub const SAMPLE_WINDOW: u64 = 1;
/// `SAMPLING[0]` bit: connections over a threshold exist (`HOT` is looked up).
pub const SAMPLE_HOT: u64 = 2;
/// How long a connection stays timed after it crossed a threshold (ns).
pub const SAMPLE_HOT_HOLD_NS: u64 = 10_000_000_000;

/// `net_timing`: TCP health (retransmits, resets, drops, connect/accept/close).
pub const NET_HEALTH: u32 = 1;
/// `net_timing`: per-skb layer timing (the six per-packet hooks, the send socket layer).
pub const NET_LAYERS: u32 = 2;

/// Number of [`Syscall`] values.
pub const SYSCALL_COUNT: usize = 9;
/// `filter_flags`: only pids in `FILTER_PIDS` with value [`FILTER_INCLUDE`] are captured.
pub const FILTER_PIDS_INCLUDE: u32 = 1;
/// `filter_flags`: pids in `FILTER_PIDS` with value [`FILTER_EXCLUDE`] are not captured.
pub const FILTER_PIDS_EXCLUDE: u32 = 2;
/// `filter_flags`: only connections with a port in `FILTER_PORTS` ([`FILTER_INCLUDE`]) at
/// either end are captured.
pub const FILTER_PORTS_INCLUDE: u32 = 4;
/// `filter_flags`: connections with a port in `FILTER_PORTS` ([`FILTER_EXCLUDE`]) at either
/// end are not captured.
pub const FILTER_PORTS_EXCLUDE: u32 = 8;
/// Value in a filter map: include.
pub const FILTER_INCLUDE: u8 = 1;
/// Value in a filter map: exclude.
pub const FILTER_EXCLUDE: u8 = 2;

/// What a [`NetEvent`] reports (`net` field). Values are stable (wire format).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetKind {
    /// One transmitted skb, at `net:net_dev_xmit`: `d` = [socket, ip, qdisc, driver] ns
    /// (see [`NetEvent::d`]), `len` its bytes.
    Tx = 1,
    /// One received skb, at its first copy to user (`skb:skb_copy_datagram_iovec`): `d` =
    /// [ip, socket, 0, 0] ns, `aux` smoothed RTT (µs), `aux2` congestion window (segments),
    /// both read at `tcp:tcp_probe`.
    Rx = 2,
    /// A retransmitted segment (`tcp:tcp_retransmit_skb`), `len` its bytes.
    Retransmit = 3,
    /// A RST sent (`tcp:tcp_send_reset`, Linux ≥ 4.19; also without a socket, e.g. to a
    /// closed port: then the tuple comes from the packet that caused it), `aux` = `enum
    /// sk_rst_reason` (Linux ≥ 6.10, else 0).
    ResetSent = 4,
    /// A RST received (`tcp:tcp_receive_reset`, Linux ≥ 4.19).
    ResetReceived = 5,
    /// An skb of a TCP flow dropped (`skb:kfree_skb` with a drop reason, Linux ≥ 5.17), `aux`
    /// = `enum skb_drop_reason`, `len` its bytes.
    Drop = 6,
    /// An outgoing connect ended (`sock:inet_sock_set_state` SYN_SENT → ESTABLISHED or
    /// CLOSE): `d[0]` = duration from SYN_SENT (ns), `aux` = [`CONNECT_OK`] /
    /// [`CONNECT_FAILED`] / [`CONNECT_REFUSED`].
    Connect = 7,
    /// A connection was accepted (SYN_RECV → ESTABLISHED, in softirq): `pid` = the process
    /// that listens on its port in its network namespace (the `LISTENERS` map; 0 = not
    /// known), `d[0]` = the handshake's SYN-ACK → final ACK time (ns, the kernel's first RTT
    /// sample of the connection, `tcp_sock.srtt_us`; [`NOT_MEASURED`] when the kernel took no
    /// sample, e.g. a syncookie handshake).
    Accepted = 8,
    /// A tracked connection reached TCP_CLOSE; `aux` = the state it left (`TCP_*` value).
    Closed = 9,
}

impl NetKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Tx,
            2 => Self::Rx,
            3 => Self::Retransmit,
            4 => Self::ResetSent,
            5 => Self::ResetReceived,
            6 => Self::Drop,
            7 => Self::Connect,
            8 => Self::Accepted,
            9 => Self::Closed,
            _ => return None,
        })
    }
}

/// Key of the probes' `LISTENERS` map (listening port → listening process): the network
/// namespace's inode number (`/proc/<pid>/ns/net`, `net.ns.inum`) in the high 32 bits, the
/// local port in the low 16.
pub const fn listener_key(netns_inum: u32, port: u16) -> u64 {
    ((netns_inum as u64) << 32) | port as u64
}

/// [`NetKind::Connect`] results (`aux`).
pub const CONNECT_OK: u32 = 0;
/// The connect failed (SYN_SENT → CLOSE: timeout, unreachable, aborted).
pub const CONNECT_FAILED: u32 = 1;
/// The peer answered the SYN with a RST (connection refused).
pub const CONNECT_REFUSED: u32 = 2;

/// A kernel network timing / TCP health record ([`EventKind::Net`]). 112 bytes.
///
/// Tuple, `conn_id`, `pid`, `role` come from the connection's `struct sock` (tracked in the
/// probes' connection map), so events in softirq context (retransmits, delayed transmits)
/// belong to the connection, not to whatever task was running; for packets without a tracked
/// socket (RST to a closed port, drops before socket lookup) from the packet's IP/TCP headers
/// (`conn_id` 0, `pid` 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetEvent {
    /// [`EventKind::Net`].
    pub kind: u8,
    /// [`NetKind`] as u8.
    pub net: u8,
    /// AF_INET or AF_INET6; 0 when unknown.
    pub family: u16,
    /// Process (tgid) owning the connection; 0 = not known.
    pub pid: u32,
    /// Connection id (as [`EventHeader::conn_id`]); 0 = no tracked connection.
    pub conn_id: u64,
    /// CLOCK_MONOTONIC ns of the event.
    pub ts_ns: u64,
    /// Durations (ns), meaning per [`NetKind`]. For `Tx`: [socket (written by the
    /// application → TCP transmit; 0 when sent within the write), ip (TCP transmit →
    /// `net_dev_queue`: IP, netfilter, neighbour), qdisc (`net_dev_queue` →
    /// `net_dev_start_xmit`), driver (`net_dev_start_xmit` → `net_dev_xmit`)]. For `Rx`:
    /// [ip (`netif_receive_skb` → `tcp_probe`: IP, netfilter, TCP demux), socket
    /// (`tcp_probe` → `skb_copy_datagram_iovec`: waiting in the socket receive queue)].
    /// `u64::MAX` = not measured.
    pub d: [u64; 4],
    /// Bytes (`skb->len`).
    pub len: u32,
    /// Kind-specific value (see [`NetKind`]).
    pub aux: u32,
    /// Kind-specific value (see [`NetKind`]).
    pub aux2: u32,
    /// [`SockRole`] as u8.
    pub role: u8,
    pub _pad: u8,
    /// Local and remote port, host byte order.
    pub lport: u16,
    pub rport: u16,
    pub _pad2: u16,
    /// Local and remote address: 4 bytes (IPv4) or 16 (IPv6), network byte order.
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
    pub _pad3: [u8; 4],
}

/// Size of [`NetEvent`] in bytes.
pub const NET_EVENT_LEN: usize = core::mem::size_of::<NetEvent>();
const _: () = assert!(NET_EVENT_LEN == 112);
/// [`NetEvent::d`] value for a layer that was not measured.
pub const NOT_MEASURED: u64 = u64::MAX;

#[cfg(feature = "user")]
unsafe impl aya::Pod for ProbeConfig {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for NetEvent {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for EventHeader {}

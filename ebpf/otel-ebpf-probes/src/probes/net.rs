//! Kernel network timing and TCP health (only while `CONFIG.net_timing` is set; user space
//! attaches these raw tracepoints only then, each one optional).
//!
//! Transmit, per skb of a tracked connection (`skb->sk` in `CONNS`, so softirq-time
//! transmits belong to their connection): TCP transmit time (`skb->tstamp`, set by
//! `tcp_transmit_skb` on CLOCK_MONOTONIC) → `net_dev_queue` (qdisc enqueue) →
//! `net_dev_start_xmit` (driver) → `net_dev_xmit` (done): one [`NetKind::Tx`] record. Data
//! left unsent by a write (`tcp_sock.write_seq` ≠ `snd_nxt` at `sock_send_length`) is timed
//! from that write to its TCP transmit (the socket layer), matched by TCP sequence number.
//!
//! Receive, per TCP skb: `netif_receive_skb` → `tcp_probe` (the established socket, its
//! smoothed RTT and cwnd) → first `skb_copy_datagram_iovec` (copied to the user): one
//! [`NetKind::Rx`] record.
//!
//! TCP health (retransmits, resets, drops, connect/accept/close) is in `health.rs`.
//!
//! Only the skbs `sample.rs` chooses are timed (user space attaches these hooks only during
//! sampling windows or while a connection is over a threshold).
//!
//! Pure ACKs (no payload, no SYN/FIN/RST) are not timed: that halves the per-packet work and
//! keeps the timing to the packets that carry requests and responses.
//!
//! Limits: per-skb state lives in LRU maps (bounded; a state evicted under pressure loses one
//! sample). Skbs merged into another in the receive queue (TCP coalescing) report with the
//! skb they were merged into. Segments a qdisc cuts from a GSO skb (tbf) take its queue time.

// Map keys and values stay borrowed here (clippy's needless_borrows_for_generic_args): with
// them passed by value, LLVM spills a register that holds no defined value in
// `sock_send_length` (where `note_write` is inlined) and the verifier refuses the program
// ("R8 !read_ok", measured on Linux 6.18).
#![allow(clippy::needless_borrows_for_generic_args)]

use super::sample;
use super::*;

/// Transmit state of one skb between `net_dev_queue` and `net_dev_xmit`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct TxSkb {
    sk: u64,
    /// TCP transmit time (`skb->tstamp`), 0 = unusable.
    t_tcp: u64,
    t_queue: u64,
    /// `net_dev_start_xmit` time, 0 = not yet.
    t_start: u64,
    /// Socket-layer wait (ns) of its data, see [`send_queue_wait`].
    socket: u64,
}

/// Receive state of one TCP skb between `netif_receive_skb` and its first copy to the user.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct RxSkb {
    t_nic: u64,
    /// `tcp_probe` time, 0 = not yet (or not a tracked connection).
    t_tcp: u64,
    sk: u64,
    srtt_us: u32,
    cwnd: u32,
}

/// An outgoing connect in progress (SYN_SENT).
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct Connecting {
    pub(super) ts: u64,
    pub(super) tgid: u32,
    /// 1 once a RST was received for it.
    pub(super) refused: u32,
}

#[map]
pub(super) static TX_SKB: LruHashMap<u64, TxSkb> = LruHashMap::with_max_entries(16384, 0);
/// Last skb queued per socket: [sk] → [tstamp, queue time, socket wait]. Segments a qdisc
/// cuts from a GSO skb are new skbs with its tstamp.
#[map]
static TX_SK: LruHashMap<u64, [u64; 3]> = LruHashMap::with_max_entries(16384, 0);
#[map]
pub(super) static RX_SKB: LruHashMap<u64, RxSkb> = LruHashMap::with_max_entries(16384, 0);
/// Key: `struct sock` address.
#[map]
pub(super) static CONNECTING: LruHashMap<u64, Connecting> = LruHashMap::with_max_entries(16384, 0);
/// Listening port → listening process (tgid), key [`listener_key`]: written at →LISTEN (the
/// `listen()` call runs in the owner's context) and seeded by user space at start-up with the
/// listeners that already exist; read when a connection is accepted in softirq.
#[map]
pub(super) static LISTENERS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(8192, 0);
/// Data left unsent by the latest write, per socket: [sk] → [end sequence (`write_seq`),
/// time of the write (ns)].
#[map]
static SEND_Q: LruHashMap<u64, [u64; 2]> = LruHashMap::with_max_entries(65536, 0);

/// Longest a `skb->tstamp` may lie in the past to be taken as this transmit's TCP time (ns);
/// anything else (0, a wall-clock stamp, a stale one) is not used.
const MAX_TSTAMP_AGE_NS: u64 = 10_000_000_000;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// Per-skb layer timing is on (`NET_LAYERS`).
#[inline(always)]
pub(super) fn net_on() -> bool {
    conf!(net_timing) & NET_LAYERS != 0
}

/// TCP health is on (`NET_HEALTH`).
#[inline(always)]
pub(super) fn health_on() -> bool {
    conf!(net_timing) & NET_HEALTH != 0
}

#[inline(always)]
pub(super) fn now() -> u64 {
    unsafe { bpf_ktime_get_ns() }
}

/// The tracked connection of `sk` when it passes the filters: a data event was sent for it,
/// or it is a client whose connecting process passed the pid filter (its first request is
/// sent before any data event confirms it).
#[inline(always)]
pub(super) fn tracked(sk: u64) -> Option<ConnState> {
    if sk == 0 {
        return None;
    }
    let c = unsafe { CONNS.get(&sk) }.copied()?;
    if c.confirmed != 0 || (c.tgid != 0 && ports_allowed(c.lport, c.rport)) {
        Some(c)
    } else {
        None
    }
}

/// [`tracked`], or else a connection not yet confirmed read by the current process (the
/// first copy of a server's first request happens before its data event): owned by it when
/// it passes the filters.
#[inline(always)]
fn tracked_or_reader(sk: u64) -> Option<ConnState> {
    if let Some(c) = tracked(sk) {
        return Some(c);
    }
    let mut c = unsafe { CONNS.get(&sk) }.copied()?;
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == 0
        || tgid == conf!(own_tgid)
        || !pid_allowed(tgid)
        || !ports_allowed(c.lport, c.rport)
    {
        return None;
    }
    c.tgid = tgid;
    Some(c)
}

/// A record for connection `c`, stamped `ts`.
#[inline(always)]
pub(super) fn conn_event(kind: NetKind, c: &ConnState, ts: u64) -> NetEvent {
    NetEvent {
        kind: EventKind::Net as u8,
        net: kind as u8,
        family: c.family,
        pid: c.tgid,
        conn_id: c.conn_id,
        ts_ns: ts,
        d: [NOT_MEASURED; 4],
        role: c.role,
        lport: c.lport,
        rport: c.rport,
        laddr: c.laddr,
        raddr: c.raddr,
        ..NetEvent::default()
    }
}

#[inline(always)]
pub(super) fn submit_net(e: &NetEvent) {
    match EVENTS.reserve::<NetEvent>(0) {
        Some(mut r) => {
            r.write(*e);
            r.submit(wakeup_flags());
        }
        None => count(Counter::NetLostRingbufFull),
    }
}

#[inline(always)]
pub(super) fn skb_field<T: Copy + Default>(skb: u64, off: u32) -> T {
    read_k::<T>(skb, off).unwrap_or_default()
}

/// `skb->tstamp` when it is this transmit's TCP time (see [`MAX_TSTAMP_AGE_NS`]), else 0.
#[inline(always)]
fn tcp_tstamp(skb: u64, now: u64) -> u64 {
    let t: u64 = skb_field(skb, conf!(off_skb_tstamp));
    if t != 0 && t <= now && now - t < MAX_TSTAMP_AGE_NS {
        t
    } else {
        0
    }
}

/// A TCP packet's tuple from its IP and TCP headers (`head + network_header`,
/// `head + transport_header`), oriented so `laddr`/`lport` is the source when `src_local`.
#[inline(always)]
pub(super) fn packet_event(kind: NetKind, skb: u64, src_local: bool, ts: u64) -> Option<NetEvent> {
    let head: u64 = skb_field(skb, conf!(off_skb_head));
    let proto = u16::from_be(skb_field(skb, conf!(off_skb_protocol)));
    let nh: u16 = skb_field(skb, conf!(off_skb_network_header));
    let th: u16 = skb_field(skb, conf!(off_skb_transport_header));
    if head == 0 || nh == 0xffff {
        return None;
    }
    let ip = head + nh as u64;
    let mut e = NetEvent {
        kind: EventKind::Net as u8,
        net: kind as u8,
        ts_ns: ts,
        d: [NOT_MEASURED; 4],
        ..NetEvent::default()
    };
    let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
    let tcp = if proto == ETH_P_IP {
        let h = read_k::<[u8; 20]>(ip, 0)?;
        if h[9] != IPPROTO_TCP as u8 {
            return None;
        }
        e.family = AF_INET;
        src[..4].copy_from_slice(&h[12..16]);
        dst[..4].copy_from_slice(&h[16..20]);
        ip + ((h[0] & 0xf) as u64) * 4
    } else if proto == ETH_P_IPV6 {
        if read_k::<u8>(ip, 6)? != IPPROTO_TCP as u8 {
            return None;
        }
        e.family = AF_INET6;
        src = read_k::<[u8; 16]>(ip, 8)?;
        dst = read_k::<[u8; 16]>(ip, 24)?;
        ip + 40
    } else {
        return None;
    };
    let tcp = if th != 0xffff && th > nh {
        head + th as u64
    } else {
        tcp
    };
    let ports = read_k::<[u8; 4]>(tcp, 0)?;
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    if src_local {
        (e.laddr, e.raddr, e.lport, e.rport) = (src, dst, sport, dport);
    } else {
        (e.laddr, e.raddr, e.lport, e.rport) = (dst, src, dport, sport);
    }
    if !ports_allowed(e.lport, e.rport) {
        return None;
    }
    Some(e)
}

const TCP_FLAGS_SYN_FIN_RST: u8 = 0x07;

/// Whether an outgoing TCP skb carries no payload and no SYN/FIN/RST (a pure ACK: not timed,
/// which keeps the per-packet cost to packets that carry requests and responses). At
/// `net_dev_queue` `skb->data` is the MAC header and `skb->len` counts from it.
#[inline(always)]
fn is_pure_ack(skb: u64) -> bool {
    let len: u32 = skb_field(skb, conf!(off_skb_len));
    let head: u64 = skb_field(skb, conf!(off_skb_head));
    let data: u64 = skb_field(skb, conf!(off_skb_data));
    let th: u16 = skb_field(skb, conf!(off_skb_transport_header));
    let tcp = head + th as u64;
    if th == 0xffff || tcp < data {
        return false;
    }
    let Some(h) = read_k::<[u8; 2]>(tcp, 12) else {
        return false;
    };
    let headers = (tcp - data) + ((h[0] >> 4) as u64) * 4;
    len as u64 <= headers && h[1] & TCP_FLAGS_SYN_FIN_RST == 0
}

/// [`is_pure_ack`] for an incoming IPv4 packet whose IP header is at `ip`.
#[inline(always)]
fn is_pure_ack_ipv4(ip: u64) -> bool {
    let Some(h) = read_k::<[u8; 4]>(ip, 0) else {
        return false;
    };
    let ihl = ((h[0] & 0xf) as u64) * 4;
    let total = u16::from_be_bytes([h[2], h[3]]) as u64;
    let Some(t) = read_k::<[u8; 2]>(ip + ihl, 12) else {
        return false;
    };
    total <= ihl + ((t[0] >> 4) as u64) * 4 && t[1] & TCP_FLAGS_SYN_FIN_RST == 0
}

/// Called by the data path for a write on a tracked socket: checks the smoothed-RTT sampling
/// threshold and, when the connection is sampled now, remembers data the write left in the
/// socket's send queue (sent later, when cwnd/rwnd/pacing allow).
#[inline(always)]
pub(super) fn note_write(sk: u64, c: &ConnState) {
    if !net_on() {
        return;
    }
    sample::check_srtt(sk, c);
    let f = sample::flags();
    if f == 0 || !sample::chosen(sample::conn_hash(c), f) {
        return;
    }
    let write_seq: u32 = skb_field(sk, conf!(off_tcp_write_seq));
    let snd_nxt: u32 = skb_field(sk, conf!(off_tcp_snd_nxt));
    if write_seq != snd_nxt {
        let _ = SEND_Q.insert(&sk, &[write_seq as u64, now()], 0);
    } else if unsafe { SEND_Q.get(&sk) }.is_some() {
        let _ = SEND_Q.remove(&sk);
    }
}

/// Socket-layer wait (ns) of the data in `skb`: from the write that left it unsent to its TCP
/// transmit `t_tcp`; 0 when it went out within its write.
#[inline(always)]
fn send_queue_wait(sk: u64, skb: u64, t_tcp: u64) -> u64 {
    let Some(q) = (unsafe { SEND_Q.get(&sk) }).copied() else {
        return 0;
    };
    let head: u64 = skb_field(skb, conf!(off_skb_head));
    let th: u16 = skb_field(skb, conf!(off_skb_transport_header));
    let Some(seq) = read_k::<[u8; 4]>(head + th as u64, 4) else {
        return 0;
    };
    let seq = u32::from_be_bytes(seq);
    if (seq.wrapping_sub(q[0] as u32) as i32) >= 0 {
        // Everything the write left is out: forget it.
        let _ = SEND_Q.remove(&sk);
        return 0;
    }
    t_tcp.saturating_sub(q[1])
}

#[raw_tracepoint(tracepoint = "net_dev_queue")]
pub fn net_dev_queue(ctx: RawTracePointContext) -> i32 {
    if !net_on() {
        return 0;
    }
    let skb: u64 = ctx.arg(0);
    let sk: u64 = skb_field(skb, conf!(off_skb_sk));
    let Some(c) = tracked(sk) else {
        return 0;
    };
    if is_pure_ack(skb) || !sample::take_skb(sk, &c) {
        return 0;
    }
    let t = now();
    let t_tcp = tcp_tstamp(skb, t);
    let socket = send_queue_wait(sk, skb, t_tcp);
    let st = TxSkb {
        sk,
        t_tcp,
        t_queue: t,
        t_start: 0,
        socket,
    };
    let _ = TX_SKB.insert(&skb, &st, 0);
    let _ = TX_SK.insert(&sk, &[t_tcp, t, socket], 0);
    0
}

#[raw_tracepoint(tracepoint = "net_dev_start_xmit")]
pub fn net_dev_start_xmit(ctx: RawTracePointContext) -> i32 {
    if !net_on() {
        return 0;
    }
    let skb: u64 = ctx.arg(0);
    let t = now();
    if let Some(p) = TX_SKB.get_ptr_mut(&skb) {
        // SAFETY: map value pointer, valid for this program run.
        unsafe { (*p).t_start = t };
        return 0;
    }
    // A segment cut by the qdisc from a GSO skb: same socket, same TCP transmit time.
    let sk: u64 = skb_field(skb, conf!(off_skb_sk));
    if sk == 0 {
        return 0;
    }
    let Some(q) = (unsafe { TX_SK.get(&sk) }).copied() else {
        return 0;
    };
    let t_tcp = tcp_tstamp(skb, t);
    if t_tcp == 0 || t_tcp != q[0] {
        return 0;
    }
    let st = TxSkb {
        sk,
        t_tcp,
        t_queue: q[1],
        t_start: t,
        socket: q[2],
    };
    let _ = TX_SKB.insert(&skb, &st, 0);
    0
}

#[raw_tracepoint(tracepoint = "net_dev_xmit")]
pub fn net_dev_xmit(ctx: RawTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let rc = ctx.arg::<u64>(1) as i32;
    let Some(st) = (unsafe { TX_SKB.get(&skb) }).copied() else {
        return 0;
    };
    if rc != 0 {
        return 0; // NETDEV_TX_BUSY: requeued, started again later
    }
    let _ = TX_SKB.remove(&skb);
    let Some(c) = tracked(st.sk) else {
        return 0;
    };
    let t = now();
    let mut e = conn_event(NetKind::Tx, &c, t);
    e.d[0] = st.socket;
    if st.t_tcp != 0 && st.t_queue >= st.t_tcp {
        e.d[1] = st.t_queue - st.t_tcp;
    }
    if st.t_start != 0 && t >= st.t_start && st.t_start >= st.t_queue {
        e.d[2] = st.t_start - st.t_queue;
        e.d[3] = t - st.t_start;
    } else if st.t_start == 0 && t >= st.t_queue {
        // `net_dev_start_xmit` not attached (or missed): qdisc and driver as one.
        e.d[2] = t - st.t_queue;
    }
    e.len = ctx.arg::<u64>(3) as u32;
    submit_net(&e);
    0
}

/// The sampling hash ([`sample::tuple_hash`]) of an incoming TCP packet whose IP header is at
/// `ip` (IPv4 when `v4`, else IPv6 without extension headers).
#[inline(always)]
fn packet_hash(ip: u64, v4: bool) -> Option<u64> {
    let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
    let tcp = if v4 {
        let h = read_k::<[u8; 20]>(ip, 0)?;
        src[..4].copy_from_slice(&h[12..16]);
        dst[..4].copy_from_slice(&h[16..20]);
        ip + ((h[0] & 0xf) as u64) * 4
    } else {
        src = read_k::<[u8; 16]>(ip, 8)?;
        dst = read_k::<[u8; 16]>(ip, 24)?;
        ip + 40
    };
    let p = read_k::<[u8; 4]>(tcp, 0)?;
    let (sport, dport) = (
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    );
    Some(sample::tuple_hash(&dst, dport, &src, sport))
}

#[raw_tracepoint(tracepoint = "netif_receive_skb")]
pub fn netif_receive_skb(ctx: RawTracePointContext) -> i32 {
    if !net_on() {
        return 0;
    }
    let skb: u64 = ctx.arg(0);
    // The MAC header is pulled: `skb->data` is the IP header here (`network_header` is only
    // reset after this tracepoint).
    let data: u64 = skb_field(skb, conf!(off_skb_data));
    let proto = u16::from_be(skb_field(skb, conf!(off_skb_protocol)));
    let l4 = if proto == ETH_P_IP {
        read_k::<u8>(data, 9)
    } else if proto == ETH_P_IPV6 {
        read_k::<u8>(data, 6)
    } else {
        None
    };
    if l4 != Some(IPPROTO_TCP as u8) || (proto == ETH_P_IP && is_pure_ack_ipv4(data)) {
        return 0;
    }
    let f = sample::flags();
    if f == 0 || !packet_hash(data, proto == ETH_P_IP).is_some_and(|h| sample::chosen(h, f)) {
        return 0;
    }
    let st = RxSkb {
        t_nic: now(),
        t_tcp: 0,
        sk: 0,
        srtt_us: 0,
        cwnd: 0,
    };
    let _ = RX_SKB.insert(&skb, &st, 0);
    0
}

#[raw_tracepoint(tracepoint = "tcp_probe")]
pub fn tcp_probe(ctx: RawTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let skb: u64 = ctx.arg(1);
    let Some(p) = RX_SKB.get_ptr_mut(&skb) else {
        return 0;
    };
    if unsafe { CONNS.get(&sk) }.is_none() || !sample::interval(sk) {
        let _ = RX_SKB.remove(&skb);
        return 0;
    }
    let srtt: u32 = skb_field(sk, conf!(off_tcp_srtt_us));
    let cwnd: u32 = skb_field(sk, conf!(off_tcp_snd_cwnd));
    // SAFETY: map value pointer, valid for this program run.
    unsafe {
        (*p).t_tcp = now();
        (*p).sk = sk;
        (*p).srtt_us = srtt >> 3;
        (*p).cwnd = cwnd;
    }
    0
}

#[raw_tracepoint(tracepoint = "skb_copy_datagram_iovec")]
pub fn skb_copy_datagram_iovec(ctx: RawTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let Some(st) = (unsafe { RX_SKB.get(&skb) }).copied() else {
        return 0;
    };
    if st.t_tcp == 0 {
        return 0;
    }
    let _ = RX_SKB.remove(&skb);
    // A stale entry of a freed skb whose memory now holds another socket's data: not ours.
    if skb_field::<u64>(skb, conf!(off_skb_sk)) != st.sk {
        return 0;
    }
    let Some(c) = tracked_or_reader(st.sk) else {
        return 0;
    };
    let t = now();
    let mut e = conn_event(NetKind::Rx, &c, t);
    if st.t_tcp >= st.t_nic && t >= st.t_tcp {
        e.d[0] = st.t_tcp - st.t_nic;
        e.d[1] = t - st.t_tcp;
    }
    e.aux = st.srtt_us;
    e.aux2 = st.cwnd;
    e.len = skb_field(skb, conf!(off_skb_len));
    submit_net(&e);
    0
}

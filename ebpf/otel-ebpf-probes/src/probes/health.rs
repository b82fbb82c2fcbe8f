//! TCP health (only while `CONFIG.net_timing` is set): `tcp_retransmit_skb`,
//! `tcp_send_reset` (also without a socket: a RST to a closed port, its tuple from the packet
//! that caused it), `tcp_receive_reset`, `kfree_skb` with its drop reason (TCP packets only),
//! and connect / listen / accept / close from `inet_sock_set_state` (called from `sched.rs`).

use super::net::*;
use super::*;

#[raw_tracepoint(tracepoint = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb(ctx: RawTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let skb: u64 = ctx.arg(1);
    let Some(c) = tracked(sk) else {
        return 0;
    };
    if net_on() {
        super::sample::on_retransmit(sk, &c);
    }
    let mut e = conn_event(NetKind::Retransmit, &c, now());
    e.len = skb_field(skb, conf!(off_skb_len));
    submit_net(&e);
    0
}

#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: RawTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let skb: u64 = ctx.arg(1);
    let reason = ctx.arg::<u64>(2) as u32;
    let t = now();
    let e = match tracked(sk) {
        Some(c) => Some(conn_event(NetKind::ResetSent, &c, t)),
        // The packet that caused the RST (e.g. a SYN to a closed port): its source is the peer.
        None if skb != 0 => packet_event(NetKind::ResetSent, skb, false, t),
        None => None,
    };
    if let Some(mut e) = e {
        e.aux = reason;
        submit_net(&e);
    }
    0
}

#[raw_tracepoint(tracepoint = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: RawTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let t = now();
    if let Some(c) = tracked(sk) {
        submit_net(&conn_event(NetKind::ResetReceived, &c, t));
        return 0;
    }
    // A connect in progress answered with RST: refused.
    let Some(p) = CONNECTING.get_ptr_mut(sk) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for this program run.
    let tgid = unsafe {
        (*p).refused = 1;
        (*p).tgid
    };
    let mut c = new_state(sk, SockRole::Client);
    c.tgid = tgid;
    c.conn_id = 0;
    submit_net(&conn_event(NetKind::ResetReceived, &c, t));
    0
}

#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb(ctx: RawTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let reason = ctx.arg::<u64>(2) as u32;
    if reason == conf!(drop_not_dropped_yet) || reason == conf!(drop_consumed) {
        return 0;
    }
    let owner: u64 = skb_field(skb, conf!(off_skb_sk));
    // rx_sk (Linux ≥ 6.11): the socket a received packet was for.
    let sk: u64 = if owner != 0 { owner } else { ctx.arg(3) };
    let t = now();
    let e = match tracked(sk) {
        Some(c) => Some(conn_event(NetKind::Drop, &c, t)),
        // Owned by a local socket: outgoing (its source is local); else incoming.
        None => packet_event(NetKind::Drop, skb, owner != 0, t),
    };
    let Some(mut e) = e else {
        return 0;
    };
    let _ = TX_SKB.remove(skb);
    let _ = RX_SKB.remove(skb);
    e.aux = reason;
    e.len = skb_field(skb, conf!(off_skb_len));
    submit_net(&e);
    0
}

/// `inet_sock_set_state` part of net timing: connect start (CLOSE → SYN_SENT) and end, listens
/// (→ LISTEN, LISTEN → CLOSE), accepts and closes. Returns the connecting process for
/// SYN_SENT → ESTABLISHED (so the connection is owned from its start), else 0.
#[inline(always)]
pub(super) fn on_state(sk: u64, old: i32, new: i32, c: Option<&ConnState>) -> u32 {
    if !health_on() {
        return 0;
    }
    if new == TCP_LISTEN || old == TCP_LISTEN {
        on_listen(sk, new == TCP_LISTEN);
        return 0;
    }
    let t = now();
    if new == TCP_SYN_SENT {
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        if tgid != conf!(own_tgid) && pid_allowed(tgid) {
            let p = Connecting {
                ts: t,
                tgid,
                refused: 0,
            };
            let _ = CONNECTING.insert(sk, p, 0);
        }
        return 0;
    }
    if old == TCP_SYN_SENT {
        let Some(p) = (unsafe { CONNECTING.get(sk) }).copied() else {
            return 0;
        };
        let _ = CONNECTING.remove(sk);
        let mut st = match c {
            Some(c) => *c,
            None => new_state(sk, SockRole::Client),
        };
        if !ports_allowed(st.lport, st.rport) {
            return 0;
        }
        st.tgid = p.tgid;
        if new != TCP_ESTABLISHED {
            st.conn_id = 0;
        }
        let mut e = conn_event(NetKind::Connect, &st, t);
        e.d[0] = t.saturating_sub(p.ts);
        e.aux = if new == TCP_ESTABLISHED {
            CONNECT_OK
        } else if p.refused != 0 {
            CONNECT_REFUSED
        } else {
            CONNECT_FAILED
        };
        submit_net(&e);
        return p.tgid;
    }
    let Some(c) = c else {
        return 0;
    };
    if !ports_allowed(c.lport, c.rport) {
        return 0;
    }
    if new == TCP_ESTABLISHED && old == TCP_SYN_RECV {
        let Ok(pid) = listener(sk, c.lport) else {
            return 0;
        };
        let mut e = conn_event(NetKind::Accepted, c, t);
        e.pid = pid;
        // The first RTT sample, taken from the request's SYN-ACK time just before this
        // transition (`tcp_synack_rtt_meas`): the handshake as the server saw it.
        let srtt: u32 = skb_field(sk, conf!(off_tcp_srtt_us));
        if srtt != 0 {
            e.d[0] = (srtt >> 3) as u64 * 1000;
        }
        submit_net(&e);
    } else if new == TCP_CLOSE {
        let mut e = conn_event(NetKind::Closed, c, t);
        if c.confirmed == 0 && c.tgid == 0 {
            // Accepted, closed before any data: the listening process's connection.
            match listener(sk, c.lport) {
                Ok(pid) if pid != 0 && c.role == SockRole::Server as u8 => e.pid = pid,
                _ => return 0,
            }
        }
        e.aux = old as u32;
        submit_net(&e);
    }
    0
}

/// The process listening on `port` in `sk`'s network namespace (`LISTENERS`): `Ok(tgid)`,
/// `Ok(0)` when not known, `Err(())` when it is filtered out or is the receiver itself.
#[inline(always)]
fn listener(sk: u64, port: u16) -> Result<u32, ()> {
    match unsafe { LISTENERS.get(listener_key(netns_inum(sk), port)) } {
        Some(t) if !pid_allowed(*t) || *t == conf!(own_tgid) => Err(()),
        Some(t) => Ok(*t),
        None => Ok(0),
    }
}

/// The network namespace (inode number) of `sk`; 0 when unreadable.
#[inline(always)]
fn netns_inum(sk: u64) -> u32 {
    let net: u64 = skb_field(sk, conf!(off_sk_net));
    if net == 0 {
        return 0;
    }
    skb_field(net, conf!(off_net_ns_inum))
}

/// → LISTEN (`listen()`, in the owner's context): the current process listens on the port
/// (with SO_REUSEPORT listeners in several processes, the last to listen owns the port).
/// LISTEN → CLOSE: forgotten only when the closing process is the recorded owner.
#[inline(always)]
fn on_listen(sk: u64, listening: bool) {
    let port = read_k::<u16>(sk, conf!(off_skc_num)).unwrap_or(0);
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if port == 0 || tgid == 0 {
        return;
    }
    let key = listener_key(netns_inum(sk), port);
    if listening {
        let _ = LISTENERS.insert(key, tgid, 0);
    } else if unsafe { LISTENERS.get(key) }.is_some_and(|t| *t == tgid) {
        let _ = LISTENERS.remove(key);
    }
}

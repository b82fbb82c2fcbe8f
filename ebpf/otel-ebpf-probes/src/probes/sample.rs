//! Layer-timing sampling (kernel side): which data skbs the per-packet hooks of `net.rs` time.
//!
//! Three rules, combined (see docs/kernel-timing.md, "Sampling"):
//! - consistent random: a connection is chosen when the top 32 bits of a hash of its tuple are
//!   ≤ `CONFIG.sample_hash_max`. The hash is order-independent (the two endpoints are hashed
//!   separately and added), and IPv4-mapped IPv6 addresses hash as IPv4, so both ends of a
//!   connection — two hosts, or client and server on one — choose the same connections;
//! - fixed interval: of a chosen connection, one data skb in `CONFIG.sample_skb_interval` is
//!   timed (per connection, both directions counted together);
//! - dynamic threshold: a connection whose smoothed RTT (at a write) or retransmit count
//!   crosses `CONFIG.sample_hot_*` is timed for [`SAMPLE_HOT_HOLD_NS`], whatever its hash
//!   (`HOT`, keyed by the same hash).
//!
//! User space writes `SAMPLING[0]` ([`SAMPLE_WINDOW`]: a sampling window is open — it attaches
//! the per-packet hooks only then, or while connections are hot — and [`SAMPLE_HOT`]: `HOT` is
//! not empty); the probes write `SAMPLING[1]` = the last time (ns, CLOCK_MONOTONIC) a
//! connection crossed a threshold, so user space keeps the hooks attached for it.

use super::net::now;
use super::*;
use aya_ebpf::maps::Array;
use otel_ebpf_common::{SAMPLE_HOT, SAMPLE_HOT_HOLD_NS, SAMPLE_WINDOW};

/// `[0]` = flags written by user space, `[1]` = last threshold crossing (ns).
#[map]
pub(super) static SAMPLING: Array<u64> = Array::with_max_entries(2, 0);

/// Connections over a threshold: tuple hash → timed until (ns).
#[map]
static HOT: LruHashMap<u64, u64> = LruHashMap::with_max_entries(4096, 0);

/// The sampling flags (0 = nothing is timed).
#[inline(always)]
pub(super) fn flags() -> u64 {
    SAMPLING.get(0).copied().unwrap_or(0)
}

#[inline(always)]
fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser.
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[inline(always)]
fn endpoint(addr: &[u8; 16], port: u16) -> u64 {
    // SAFETY: 16 readable bytes.
    let (mut a, mut b) = unsafe {
        (
            core::ptr::read_unaligned(addr.as_ptr() as *const u64),
            core::ptr::read_unaligned(addr.as_ptr().add(8) as *const u64),
        )
    };
    // ::ffff:a.b.c.d hashes as a.b.c.d (first 4 bytes, rest zero).
    if a == 0 && b & 0xffff_ffff == 0xffff_0000 {
        a = b >> 32;
        b = 0;
    }
    mix(a ^ mix(b ^ port as u64))
}

/// Order-independent hash of a TCP tuple.
#[inline(always)]
pub(super) fn tuple_hash(laddr: &[u8; 16], lport: u16, raddr: &[u8; 16], rport: u16) -> u64 {
    mix(endpoint(laddr, lport).wrapping_add(endpoint(raddr, rport)))
}

#[inline(always)]
pub(super) fn conn_hash(c: &ConnState) -> u64 {
    tuple_hash(&c.laddr, c.lport, &c.raddr, c.rport)
}

#[inline(always)]
fn is_hot(h: u64) -> bool {
    unsafe { HOT.get(h) }.is_some_and(|t| *t > now())
}

/// Whether the connection of hash `h` is timed under `flags` (hash rule or threshold).
#[inline(always)]
pub(super) fn chosen(h: u64, flags: u64) -> bool {
    (flags & SAMPLE_WINDOW != 0 && (h >> 32) as u32 <= conf!(sample_hash_max))
        || (flags & SAMPLE_HOT != 0 && is_hot(h))
}

/// The fixed-interval rule for one data skb of socket `sk`: true for one skb in
/// `sample_skb_interval`.
#[inline(always)]
pub(super) fn interval(sk: u64) -> bool {
    let n = conf!(sample_skb_interval);
    if n <= 1 {
        return true;
    }
    let Some(p) = CONNS.get_ptr_mut(sk) else {
        return false;
    };
    // SAFETY: map value pointer, valid for this program run.
    unsafe {
        let k = (*p).skb_n;
        (*p).skb_n = if k as u32 + 1 >= n { 0 } else { k + 1 };
        k == 0
    }
}

/// Whether this data skb of connection `c` (socket `sk`) is timed.
#[inline(always)]
pub(super) fn take_skb(sk: u64, c: &ConnState) -> bool {
    let f = flags();
    f != 0 && chosen(conn_hash(c), f) && interval(sk)
}

/// Marks connection `c` as over a threshold (timed for [`SAMPLE_HOT_HOLD_NS`]).
#[inline(always)]
fn mark_hot(h: u64) {
    let t = now();
    let _ = HOT.insert(h, t + SAMPLE_HOT_HOLD_NS, 0);
    if let Some(p) = SAMPLING.get_ptr_mut(1) {
        // SAFETY: array value pointer, valid for this program run.
        unsafe { *p = t };
    }
}

/// Dynamic threshold at a write on `sk`: its smoothed RTT.
#[inline(always)]
pub(super) fn check_srtt(sk: u64, c: &ConnState) {
    let limit = conf!(sample_hot_srtt_us);
    if limit == 0 {
        return;
    }
    let srtt: u32 = read_k::<u32>(sk, conf!(off_tcp_srtt_us)).unwrap_or(0) >> 3;
    if srtt >= limit {
        let h = conn_hash(c);
        if !is_hot(h) {
            mark_hot(h);
        }
    }
}

/// Dynamic threshold at a retransmit on `sk`.
#[inline(always)]
pub(super) fn on_retransmit(sk: u64, c: &ConnState) {
    let limit = conf!(sample_hot_retransmits);
    if limit == 0 {
        return;
    }
    let Some(p) = CONNS.get_ptr_mut(sk) else {
        return;
    };
    // SAFETY: map value pointer, valid for this program run.
    let n = unsafe {
        (*p).retrans = (*p).retrans.saturating_add(1);
        (*p).retrans
    };
    if n as u32 >= limit {
        mark_hot(conn_hash(c));
    }
}

//! Kernel time per layer on each HTTP span.
//!
//! Stage: kernel → **span attributes**. Input: [`NetSample`]s of kinds Tx, Rx and Retransmit
//! (per connection id), then, when a span is emitted, its socket's connection id and side.
//! Output: span attributes `otel_ebpf.kernel.{request,response}.<layer>_duration` (s: the
//! longest time one skb of that direction spent in the layer — per-skb times overlap, so a sum
//! would exceed the wall clock; the slowest skb bounds what the layer added),
//! `otel_ebpf.kernel.{request,response}.skbs`, `otel_ebpf.tcp.retransmits`, `otel_ebpf.tcp.srtt`,
//! and `otel_ebpf.kernel.sampled` = true on a span some of whose skbs were timed (layer timing
//! is sampled: a span without it had none timed, and carries no layer attribute).
//!
//! Attribution: everything the kernel did on the connection since the previous span on it
//! ended (or the connection began) up to this span's end. A client sends the request (send
//! layers) and receives the response (receive layers); a server the other way round. Limits:
//! transmit work finishing after the span ended (a qdisc still draining a server's response)
//! goes to the next span on the connection; HTTP/2 streams multiplexed on one connection share
//! it (the first span to end takes it). At most [`MAX_CONNS`] connections are tracked; past
//! that the table is cleared and the loss counted.

use crate::attr::AttrSink;
use crate::events::net::NetSample;
use crate::hash::HashMap;
use otel_ebpf_common::NetKind;
use otel_ebpf_semconv::kernel::attribute as attr;

/// Most connections with pending kernel time.
pub const MAX_CONNS: usize = 65_536;

/// Kernel time accumulated on one connection (ns, the longest per skb and layer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnTiming {
    /// Per send layer ([`otel_ebpf_semconv::kernel::layer::SEND`] order).
    pub send: [u64; 4],
    /// Per receive layer ([`otel_ebpf_semconv::kernel::layer::RECEIVE`] order).
    pub recv: [u64; 2],
    pub send_skbs: u32,
    pub recv_skbs: u32,
    pub retransmits: u32,
    /// Last smoothed RTT sample (µs).
    pub srtt_us: Option<u32>,
}

impl ConnTiming {
    fn is_empty(&self) -> bool {
        self.send_skbs == 0 && self.recv_skbs == 0 && self.retransmits == 0
    }
}

/// Pending kernel time per connection id.
#[derive(Debug, Default)]
pub struct SpanTiming {
    by_conn: HashMap<u64, ConnTiming>,
    /// Times the table was full and cleared.
    pub overflows: u64,
}

impl SpanTiming {
    /// Adds a sample (kinds other than Tx/Rx/Retransmit, or without a connection, are ignored).
    pub fn record(&mut self, s: &NetSample) {
        if s.conn_id == 0 || !matches!(s.kind, NetKind::Tx | NetKind::Rx | NetKind::Retransmit) {
            return;
        }
        if self.by_conn.len() >= MAX_CONNS && !self.by_conn.contains_key(&s.conn_id) {
            self.by_conn.clear();
            self.overflows += 1;
        }
        let t = self.by_conn.entry(s.conn_id).or_default();
        match s.kind {
            NetKind::Tx => {
                t.send_skbs += 1;
                for (max, d) in t.send.iter_mut().zip(s.d) {
                    *max = (*max).max(d.unwrap_or(0));
                }
            }
            NetKind::Rx => {
                t.recv_skbs += 1;
                for (max, d) in t.recv.iter_mut().zip(s.d) {
                    *max = (*max).max(d.unwrap_or(0));
                }
                if s.aux != 0 {
                    t.srtt_us = Some(s.aux);
                }
            }
            _ => t.retransmits += 1,
        }
    }

    /// Takes what accumulated on `conn_id` (reset to nothing).
    pub fn take(&mut self, conn_id: u64) -> Option<ConnTiming> {
        self.by_conn.remove(&conn_id).filter(|t| !t.is_empty())
    }

    /// Forgets a closed connection.
    pub fn forget(&mut self, conn_id: u64) {
        self.by_conn.remove(&conn_id);
    }

    /// Connections with pending time.
    pub fn len(&self) -> usize {
        self.by_conn.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_conn.is_empty()
    }
}

/// Hands the span attributes for `t` to `sink`, on a span whose process was the `client`
/// (else the server): per direction that had skbs, `…skbs` then one `…_duration` per layer
/// (s), then `otel_ebpf.tcp.retransmits` and `otel_ebpf.tcp.srtt` (s) when sampled.
pub fn attributes(t: &ConnTiming, client: bool, sink: &mut dyn AttrSink) {
    // Index 0 = request, 1 = response ([`attr::LAYER_DURATION`]).
    let (send_dir, recv_dir) = if client { (0, 1) } else { (1, 0) };
    let secs = |ns: u64| ns as f64 / 1e9;
    if t.send_skbs > 0 || t.recv_skbs > 0 {
        sink.bool(attr::SAMPLED, true);
    }
    if t.send_skbs > 0 {
        sink.int(attr::SKBS[send_dir], t.send_skbs.into());
        for (i, ns) in t.send.iter().enumerate() {
            sink.double(attr::LAYER_DURATION[send_dir][SEND_LAYER[i]], secs(*ns));
        }
    }
    if t.recv_skbs > 0 {
        sink.int(attr::SKBS[recv_dir], t.recv_skbs.into());
        for (i, ns) in t.recv.iter().enumerate() {
            sink.double(attr::LAYER_DURATION[recv_dir][RECV_LAYER[i]], secs(*ns));
        }
    }
    sink.int(attr::SPAN_RETRANSMITS, t.retransmits.into());
    if let Some(us) = t.srtt_us {
        sink.double(attr::SPAN_SRTT, us as f64 / 1e6);
    }
}

/// Column of [`attr::LAYER_DURATION`] for each send layer ([`otel_ebpf_semconv::kernel::layer::SEND`] order).
const SEND_LAYER: [usize; 4] = [0, 1, 2, 3];
/// Column of [`attr::LAYER_DURATION`] for each receive layer ([`otel_ebpf_semconv::kernel::layer::RECEIVE`]: ip, socket).
const RECV_LAYER: [usize; 2] = [1, 0];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{AttrValue, Attributes};
    use otel_ebpf_common::SockRole;
    use otel_ebpf_semconv::kernel::layer;

    fn s(kind: NetKind, conn_id: u64, d: [Option<u64>; 4], aux: u32) -> NetSample {
        NetSample {
            kind,
            pid: 1,
            conn_id,
            ts_ns: 0,
            d,
            len: 100,
            aux,
            aux2: 0,
            role: SockRole::Client,
            tuple: None,
        }
    }

    fn attrs(t: &ConnTiming, client: bool) -> Attributes {
        let mut a = Attributes::new();
        attributes(t, client, &mut a);
        a
    }

    fn get(a: &Attributes, k: &str) -> Option<AttrValue> {
        a.get(k).cloned()
    }

    #[test]
    fn attribute_tables_match_the_documented_names() {
        for (dir, prefix) in [(0, attr::REQUEST_PREFIX), (1, attr::RESPONSE_PREFIX)] {
            assert_eq!(attr::SKBS[dir], format!("{prefix}skbs"));
            for (i, name) in layer::SEND.iter().enumerate() {
                let want = format!("{prefix}{name}{}", attr::DURATION_SUFFIX);
                assert_eq!(attr::LAYER_DURATION[dir][SEND_LAYER[i]], want);
            }
            for (i, name) in layer::RECEIVE.iter().enumerate() {
                let want = format!("{prefix}{name}{}", attr::DURATION_SUFFIX);
                assert_eq!(attr::LAYER_DURATION[dir][RECV_LAYER[i]], want);
            }
        }
    }

    #[test]
    fn sums_per_layer_and_maps_directions_by_side() {
        let mut t = SpanTiming::default();
        t.record(&s(
            NetKind::Tx,
            7,
            [Some(0), Some(1000), Some(5_000_000), Some(500)],
            0,
        ));
        t.record(&s(NetKind::Tx, 7, [Some(10), Some(1000), None, None], 0));
        t.record(&s(
            NetKind::Rx,
            7,
            [Some(2000), Some(30_000), None, None],
            120,
        ));
        t.record(&s(NetKind::Retransmit, 7, [None; 4], 0));
        t.record(&s(NetKind::Tx, 8, [Some(1); 4], 0)); // another connection
        t.record(&s(NetKind::Drop, 7, [Some(1); 4], 0)); // not span time
        let c = t.take(7).unwrap();
        assert_eq!(c.send, [10, 1000, 5_000_000, 500]);
        assert_eq!((c.send_skbs, c.recv_skbs, c.retransmits), (2, 1, 1));
        let client = attrs(&c, true);
        assert_eq!(
            get(&client, "otel_ebpf.kernel.sampled"),
            Some(AttrValue::Bool(true))
        );
        // Only a retransmit (no skb timed): not sampled, no layer attribute.
        let mut r = SpanTiming::default();
        r.record(&s(NetKind::Retransmit, 9, [None; 4], 0));
        let only = attrs(&r.take(9).unwrap(), true);
        assert_eq!(get(&only, "otel_ebpf.kernel.sampled"), None);
        assert_eq!(get(&only, "otel_ebpf.kernel.request.skbs"), None);
        assert_eq!(
            get(&client, "otel_ebpf.kernel.request.qdisc_duration"),
            Some(AttrValue::Double(0.005))
        );
        assert_eq!(
            get(&client, "otel_ebpf.kernel.response.socket_duration"),
            Some(AttrValue::Double(0.00003))
        );
        assert_eq!(
            get(&client, "otel_ebpf.tcp.retransmits"),
            Some(AttrValue::Int(1))
        );
        assert_eq!(
            get(&client, "otel_ebpf.tcp.srtt"),
            Some(AttrValue::Double(0.00012))
        );
        let server = attrs(&c, false);
        assert_eq!(
            get(&server, "otel_ebpf.kernel.response.qdisc_duration"),
            Some(AttrValue::Double(0.005))
        );
        assert_eq!(
            get(&server, "otel_ebpf.kernel.request.ip_duration"),
            Some(AttrValue::Double(0.000002))
        );
        // Taken: the next span on the connection starts from nothing.
        assert_eq!(t.take(7), None);
        assert!(t.take(8).is_some());
    }

    #[test]
    fn samples_without_connection_are_ignored_and_memory_is_bounded() {
        let mut t = SpanTiming::default();
        t.record(&s(NetKind::Tx, 0, [Some(1); 4], 0));
        assert!(t.is_empty());
        for id in 1..=(MAX_CONNS as u64 + 10) {
            t.record(&s(NetKind::Rx, id, [Some(1), Some(1), None, None], 0));
        }
        assert!(t.len() <= MAX_CONNS);
        assert_eq!(t.overflows, 1);
        t.forget(MAX_CONNS as u64 + 10);
        assert_eq!(t.take(MAX_CONNS as u64 + 10), None);
    }
}

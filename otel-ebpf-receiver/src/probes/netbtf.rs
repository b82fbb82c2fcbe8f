//! BTF facts the network timing probes need: `struct sk_buff` and `struct tcp_sock` offsets,
//! and the names of `enum skb_drop_reason` / `enum sk_rst_reason` values.
//!
//! Input: the running kernel's BTF. Output: [`NetOffsets`] (bytes) and [`ReasonNames`].
//! Nothing is hard-coded: a kernel whose structs lack a field gives an error naming it, and
//! network timing is then off (the rest of the receiver runs).

use super::btf::{BtfError, KernelBtf};
use std::collections::HashMap;

/// Offsets (bytes) of the fields the network timing probes read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetOffsets {
    /// `sk_buff.sk`, `.tstamp` (ktime_t), `.len`, `.head`, `.data`, `.protocol` (__be16),
    /// `.network_header`, `.transport_header` (u16 offsets from `head`).
    pub skb_sk: u32,
    pub skb_tstamp: u32,
    pub skb_len: u32,
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_protocol: u32,
    pub skb_network_header: u32,
    pub skb_transport_header: u32,
    /// `tcp_sock.srtt_us` (µs << 3), `.snd_cwnd`, `.write_seq`, `.snd_nxt`.
    pub tcp_srtt_us: u32,
    pub tcp_snd_cwnd: u32,
    pub tcp_write_seq: u32,
    pub tcp_snd_nxt: u32,
    /// `sock.__sk_common.skc_net.net` (`struct net *`) and `net.ns.inum` (the network
    /// namespace's inode number, as in `/proc/<pid>/ns/net`).
    pub sk_net: u32,
    pub net_ns_inum: u32,
}

impl NetOffsets {
    /// Resolves every offset from `btf`.
    pub fn resolve(btf: &KernelBtf) -> Result<Self, BtfError> {
        let skb = |m: &str| btf.offset("sk_buff", &[m]);
        let tcp = |m: &str| btf.offset("tcp_sock", &[m]);
        Ok(Self {
            skb_sk: skb("sk")?,
            skb_tstamp: skb("tstamp")?,
            skb_len: skb("len")?,
            skb_head: skb("head")?,
            skb_data: skb("data")?,
            skb_protocol: skb("protocol")?,
            skb_network_header: skb("network_header")?,
            skb_transport_header: skb("transport_header")?,
            tcp_srtt_us: tcp("srtt_us")?,
            tcp_snd_cwnd: tcp("snd_cwnd")?,
            tcp_write_seq: tcp("write_seq")?,
            tcp_snd_nxt: tcp("snd_nxt")?,
            sk_net: btf.offset("sock", &["__sk_common", "skc_net", "net"])?,
            net_ns_inum: btf.offset("net", &["ns", "inum"])?,
        })
    }
}

/// Value → name of the kernel's drop and reset reasons, prefixes removed
/// (`SKB_DROP_REASON_NETFILTER_DROP` → `NETFILTER_DROP`, `SK_RST_REASON_NO_SOCKET` →
/// `NO_SOCKET`), read from BTF so they follow the running kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReasonNames {
    drop: HashMap<u32, String>,
    reset: HashMap<u32, String>,
}

impl ReasonNames {
    /// Reads `enum skb_drop_reason` and `enum sk_rst_reason`.
    pub fn from_btf(btf: &KernelBtf) -> Self {
        // `SKB_NOT_DROPPED_YET` and `SKB_CONSUMED` carry the shorter prefix.
        let table = |name: &str, prefixes: &[&str]| {
            btf.enum_values(name)
                .into_iter()
                .map(|(n, v)| {
                    let short = prefixes
                        .iter()
                        .find_map(|p| n.strip_prefix(p))
                        .unwrap_or(&n);
                    (v, short.to_string())
                })
                .collect()
        };
        Self {
            drop: table("skb_drop_reason", &["SKB_DROP_REASON_", "SKB_"]),
            reset: table("sk_rst_reason", &["SK_RST_REASON_"]),
        }
    }

    /// Builds a table from (value, name) pairs (tests).
    pub fn from_pairs(drop: &[(u32, &str)], reset: &[(u32, &str)]) -> Self {
        let m = |p: &[(u32, &str)]| p.iter().map(|(v, n)| (*v, n.to_string())).collect();
        Self {
            drop: m(drop),
            reset: m(reset),
        }
    }

    /// Name of drop reason `v` (`"UNKNOWN_<v>"` when this kernel's BTF lacks it).
    pub fn drop(&self, v: u32) -> String {
        self.drop
            .get(&v)
            .cloned()
            .unwrap_or_else(|| format!("UNKNOWN_{v}"))
    }

    /// Name of reset reason `v`.
    pub fn reset(&self, v: u32) -> String {
        self.reset
            .get(&v)
            .cloned()
            .unwrap_or_else(|| format!("UNKNOWN_{v}"))
    }

    /// Value of a drop reason by its short name (`"CONSUMED"`), if this kernel has it.
    pub fn drop_value(&self, name: &str) -> Option<u32> {
        self.drop.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::btf::VMLINUX;

    #[test]
    fn resolves_from_running_kernel() {
        if !std::path::Path::new(VMLINUX).exists() {
            eprintln!("no {VMLINUX}; skipped");
            return;
        }
        let btf = KernelBtf::open(VMLINUX).unwrap();
        let o = NetOffsets::resolve(&btf).unwrap();
        // `struct sk_buff` keeps len before head/data, and the two header offsets adjacent.
        assert_eq!(o.skb_network_header, o.skb_transport_header + 2);
        assert!(o.skb_head > o.skb_len && o.skb_data == o.skb_head + 8);
        assert!(o.tcp_snd_nxt != o.tcp_write_seq && o.tcp_srtt_us > 0);
        let r = ReasonNames::from_btf(&btf);
        assert_eq!(r.drop_value("NOT_DROPPED_YET"), Some(0));
        assert_eq!(r.drop_value("CONSUMED"), Some(1));
        assert!(r.drop_value("NETFILTER_DROP").is_some());
        assert_eq!(
            r.drop(r.drop_value("NETFILTER_DROP").unwrap()),
            "NETFILTER_DROP"
        );
        assert_eq!(r.drop(1_000_000), "UNKNOWN_1000000");
        assert!(btf.has_func("tcp_sendmsg"));
        assert!(!btf.has_func("no_such_function_xyz"));
    }
}

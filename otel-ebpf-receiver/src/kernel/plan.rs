//! The probe plan for kernel network timing: which hook serves each measurement point on
//! this kernel.
//!
//! Stage: probes (start-up) and `check`. Input: what the running kernel offers
//! ([`KernelOffers`]: raw tracepoints in BTF, functions in BTF and whether fentry loads,
//! kprobe support and kallsyms). Output: one [`HookPlan`] per point, the mechanism picked in
//! the order fentry > kprobe > tracepoint > none among those the project implements for it,
//! and what a missing point costs the breakdown. Pure code: the offers are gathered by
//! [`KernelOffers::probe`].
//!
//! Limits: the probes implement raw tracepoint programs only, but for the send socket layer
//! (the capture plan's socket send hook, see `probes::capture`). The L3 split points (IP output,
//! netfilter, neighbour, IP input) exist as fentry/kprobe targets only; no program is built for
//! them yet, so they are reported as `none` with the reason, and the L3 time stays one `ip`
//! layer (TCP transmit → qdisc, NIC → TCP).

use std::fmt::Write as _;

/// A hook mechanism, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    Fentry,
    Kprobe,
    Tracepoint,
    None,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
            Self::Tracepoint => "tracepoint",
            Self::None => "none",
        }
    }
}

/// One measurement point: its kernel targets per mechanism (`None` = not a target there),
/// and which mechanisms the probes implement for it.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    /// What it measures (e.g. `send: qdisc enqueue`).
    pub what: &'static str,
    /// Kernel function (fentry/kprobe target).
    pub function: Option<&'static str>,
    /// Raw tracepoint name.
    pub tracepoint: Option<&'static str>,
    /// Mechanisms with a program in the probes.
    pub implemented: &'static [Mechanism],
    /// What the breakdown loses without it.
    pub without: &'static str,
}

const TP: &[Mechanism] = &[Mechanism::Tracepoint];

/// The send socket layer point: served by the capture plan's socket send hook
/// (`probes::capture`), whatever its family.
pub const SEND_SOCKET_POINT: &str = "send: write left data queued";

/// Every point of the breakdown, send path first.
pub const POINTS: &[Point] = &[
    Point {
        what: SEND_SOCKET_POINT,
        function: Some("tcp_sendmsg"),
        tracepoint: Some("sock_send_length"),
        implemented: &[Mechanism::Fentry, Mechanism::Kprobe, Mechanism::Tracepoint],
        without: "no socket layer on send",
    },
    Point {
        what: "send: IP output",
        function: Some("__ip_queue_xmit"),
        tracepoint: None,
        implemented: &[],
        without: "IP output time is part of the ip layer",
    },
    Point {
        what: "send: netfilter",
        function: Some("nf_hook_slow"),
        tracepoint: None,
        implemented: &[],
        without: "netfilter time is part of the ip layer",
    },
    Point {
        what: "send: neighbour",
        function: Some("neigh_resolve_output"),
        tracepoint: None,
        implemented: &[],
        without: "neighbour resolution is part of the ip layer",
    },
    Point {
        what: "send: qdisc enqueue",
        function: Some("__dev_queue_xmit"),
        tracepoint: Some("net_dev_queue"),
        implemented: TP,
        without: "no send layers",
    },
    Point {
        what: "send: driver start",
        function: None,
        tracepoint: Some("net_dev_start_xmit"),
        implemented: TP,
        without: "qdisc and driver merged",
    },
    Point {
        what: "send: driver done",
        function: None,
        tracepoint: Some("net_dev_xmit"),
        implemented: TP,
        without: "no send layers",
    },
    Point {
        what: "receive: NIC",
        function: None,
        tracepoint: Some("netif_receive_skb"),
        implemented: TP,
        without: "no receive layers",
    },
    Point {
        what: "receive: IP input",
        function: Some("ip_rcv"),
        tracepoint: None,
        implemented: &[],
        without: "IP input time is part of the ip layer",
    },
    Point {
        what: "receive: TCP",
        function: Some("tcp_v4_rcv"),
        tracepoint: Some("tcp_probe"),
        implemented: TP,
        without: "no receive layers, no RTT",
    },
    Point {
        what: "receive: copied to user",
        function: None,
        tracepoint: Some("skb_copy_datagram_iovec"),
        implemented: TP,
        without: "no receive layers",
    },
    Point {
        what: "drops",
        function: None,
        tracepoint: Some("kfree_skb"),
        implemented: TP,
        without: "no drop counts",
    },
    Point {
        what: "retransmits",
        function: None,
        tracepoint: Some("tcp_retransmit_skb"),
        implemented: TP,
        without: "no retransmit counts",
    },
    Point {
        what: "resets sent",
        function: None,
        tracepoint: Some("tcp_send_reset"),
        implemented: TP,
        without: "no sent-reset counts",
    },
    Point {
        what: "resets received",
        function: None,
        tracepoint: Some("tcp_receive_reset"),
        implemented: TP,
        without: "no received-reset counts, refused connects count as failed",
    },
    Point {
        what: "connect/listen/accept/close",
        function: None,
        tracepoint: Some("inet_sock_set_state"),
        implemented: TP,
        without: "no connection metrics",
    },
    Point {
        what: "accept() returned",
        function: Some("inet_csk_accept"),
        tracepoint: None,
        implemented: &[],
        without: "accept-queue wait (ESTABLISHED → accept()) not measured",
    },
];

/// What the running kernel offers.
#[derive(Clone, Debug, Default)]
pub struct KernelOffers {
    /// fentry programs load (BPF_PROG_TYPE_TRACING is allowed).
    pub fentry: bool,
    /// kprobes are built in (`CONFIG_KPROBES`: tracefs `kprobe_events` exists).
    pub kprobe: bool,
    /// Functions in BTF (fentry targets) / that kprobes can target (`probes::net_offers`:
    /// the functions in BTF when kprobes exist).
    pub btf_funcs: Vec<&'static str>,
    pub kallsyms: Vec<&'static str>,
    /// Raw tracepoints present (with the argument types the probes read).
    pub tracepoints: Vec<&'static str>,
}

/// The plan for one point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookPlan {
    pub what: &'static str,
    /// The hook used (`tracepoint net_dev_queue`, or `none`).
    pub chosen: Mechanism,
    pub target: Option<&'static str>,
    /// Why `none` (or a better mechanism was not taken).
    pub note: String,
}

/// Picks a mechanism per point.
pub fn plan(offers: &KernelOffers) -> Vec<HookPlan> {
    POINTS.iter().map(|p| plan_point(p, offers)).collect()
}

fn plan_point(p: &Point, o: &KernelOffers) -> HookPlan {
    let has_fn = |f: &str, list: &[&str]| list.contains(&f);
    let mut skipped = Vec::new();
    for m in [Mechanism::Fentry, Mechanism::Kprobe, Mechanism::Tracepoint] {
        let (offered, target) = match m {
            Mechanism::Fentry => (
                p.function
                    .is_some_and(|f| o.fentry && has_fn(f, &o.btf_funcs)),
                p.function,
            ),
            Mechanism::Kprobe => (
                p.function
                    .is_some_and(|f| o.kprobe && has_fn(f, &o.kallsyms)),
                p.function,
            ),
            Mechanism::Tracepoint => (
                p.tracepoint.is_some_and(|t| o.tracepoints.contains(&t)),
                p.tracepoint,
            ),
            Mechanism::None => (false, None),
        };
        let built = p.implemented.contains(&m);
        if offered && built {
            return HookPlan {
                what: p.what,
                chosen: m,
                target,
                note: skipped.join("; "),
            };
        }
        if target.is_some() {
            skipped.push(match (offered, built) {
                (true, false) => format!("{} offered, no program built for it", m.name()),
                _ => format!("{} not offered by this kernel", m.name()),
            });
        }
    }
    HookPlan {
        what: p.what,
        chosen: Mechanism::None,
        target: None,
        note: format!("{} ({})", p.without, skipped.join("; ")),
    }
}

/// The plan as text, one line per point (`check`, start-up log).
pub fn render(plan: &[HookPlan]) -> String {
    let mut out = String::new();
    for h in plan {
        let hook = match h.target {
            Some(t) => format!("{} {t}", h.chosen.name()),
            None => "none".into(),
        };
        let _ = write!(out, "  {:<30} {hook:<36}", h.what);
        if !h.note.is_empty() {
            let _ = write!(out, " [{}]", h.note);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_tracepoints() -> Vec<&'static str> {
        POINTS.iter().filter_map(|p| p.tracepoint).collect()
    }

    #[test]
    fn tracepoint_only_kernel_uses_tracepoints_and_reports_the_split_as_none() {
        let o = KernelOffers {
            tracepoints: all_tracepoints(),
            btf_funcs: vec!["nf_hook_slow", "tcp_sendmsg"],
            ..Default::default()
        };
        let p = plan(&o);
        let q = p.iter().find(|h| h.what == "send: qdisc enqueue").unwrap();
        assert_eq!(
            (q.chosen, q.target),
            (Mechanism::Tracepoint, Some("net_dev_queue"))
        );
        let nf = p.iter().find(|h| h.what == "send: netfilter").unwrap();
        assert_eq!(nf.chosen, Mechanism::None);
        assert!(nf.note.contains("fentry not offered"), "{}", nf.note);
        assert!(nf.note.contains("part of the ip layer"));
    }

    #[test]
    fn offered_but_unbuilt_mechanisms_are_said_so() {
        let o = KernelOffers {
            fentry: true,
            kprobe: true,
            btf_funcs: vec!["nf_hook_slow", "__dev_queue_xmit"],
            kallsyms: vec!["nf_hook_slow"],
            tracepoints: all_tracepoints(),
        };
        let p = plan(&o);
        let nf = p.iter().find(|h| h.what == "send: netfilter").unwrap();
        assert_eq!(nf.chosen, Mechanism::None);
        assert!(nf.note.contains("fentry offered, no program built"));
        let q = p.iter().find(|h| h.what == "send: qdisc enqueue").unwrap();
        assert_eq!(q.chosen, Mechanism::Tracepoint);
        assert!(q.note.contains("fentry offered"), "{}", q.note);
    }

    #[test]
    fn missing_tracepoint_degrades_to_none() {
        let mut tps = all_tracepoints();
        tps.retain(|t| *t != "net_dev_start_xmit");
        let p = plan(&KernelOffers {
            tracepoints: tps,
            ..Default::default()
        });
        let d = p.iter().find(|h| h.what == "send: driver start").unwrap();
        assert_eq!(d.chosen, Mechanism::None);
        assert!(d.note.starts_with("qdisc and driver merged"));
        assert!(render(&p).contains("send: driver start"));
        assert_eq!(p.len(), POINTS.len());
    }
}

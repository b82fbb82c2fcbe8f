//! Unit tests of kernel metrics: exact counts, buckets, attributes, series bound.

use super::*;
use crate::attr::AttrValue;
use crate::enrich::test_resource;
use crate::events::Tuple;

fn sample(kind: NetKind, pid: u32, d: [Option<u64>; 4], aux: u32, peer: &str) -> NetSample {
    NetSample {
        kind,
        pid,
        conn_id: 1,
        ts_ns: 0,
        d,
        len: 100,
        aux,
        aux2: 0,
        role: SockRole::Client,
        tuple: Some(Tuple {
            local: "10.0.0.1:40000".parse().unwrap(),
            remote: format!("{peer}:80").parse().unwrap(),
        }),
    }
}

fn reasons() -> ReasonNames {
    ReasonNames::from_pairs(
        &[(3, "NO_SOCKET"), (12, "NETFILTER_DROP")],
        &[(1, "NO_SOCKET")],
    )
}

fn find<'a>(req: &'a MetricsBatch, name: &str) -> Vec<&'a Metric> {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.metrics)
        .filter(|m| m.name == name)
        .collect()
}

fn attr_of(a: &Attributes, k: &str) -> Option<String> {
    a.get(k).and_then(AttrValue::as_str).map(str::to_string)
}

#[test]
fn layer_histograms_have_one_series_per_layer_with_exact_buckets() {
    let mut km = KernelMetrics::new(100, reasons());
    let res = test_resource(10, "svc");
    // qdisc 5 ms → bucket (0.0025, 0.005]; driver 500 ns → first bucket.
    let tx = sample(
        NetKind::Tx,
        10,
        [Some(0), Some(2_000), Some(5_000_000), Some(500)],
        0,
        "10.0.0.2",
    );
    km.record(&res, &tx, 1_000);
    km.record(&res, &tx, 2_000);
    let req = km.collect(3_000).unwrap();
    let send = find(&req, "otel_ebpf.kernel.send.duration");
    assert_eq!(send.len(), 1);
    let MetricData::Histogram(h) = &send[0].data else {
        panic!("not a histogram")
    };
    assert_eq!(h.len(), 4);
    let qdisc = h
        .iter()
        .find(|p| attr_of(&p.attributes, "otel_ebpf.kernel.layer").as_deref() == Some("qdisc"))
        .unwrap();
    assert_eq!(qdisc.count, 2);
    assert_eq!(
        attr_of(&qdisc.attributes, "network.peer.address").as_deref(),
        Some("10.0.0.2")
    );
    let i = m::LAYER_BUCKETS.iter().position(|b| *b == 0.005).unwrap();
    assert_eq!(qdisc.bucket_counts[i], 2);
    assert_eq!(qdisc.bucket_counts.iter().sum::<u64>(), 2);
    assert!((qdisc.sum - 0.01).abs() < 1e-12);
    assert_eq!(send[0].unit, "s");
    assert!(!req.resource_metrics[0].resource.is_empty());
}

#[test]
fn health_counters_carry_reason_direction_state_and_role() {
    let mut km = KernelMetrics::new(100, reasons());
    let res = test_resource(0, "unknown_service");
    // 10.0.0.3 sent data: a real peer whose address stays on its series.
    km.record(
        &res,
        &sample(
            NetKind::Rx,
            0,
            [Some(1_000), None, None, None],
            0,
            "10.0.0.3",
        ),
        1,
    );
    km.record(
        &res,
        &sample(NetKind::Drop, 0, [None; 4], 12, "10.0.0.2"),
        1,
    );
    km.record(
        &res,
        &sample(NetKind::Drop, 0, [None; 4], 12, "10.0.0.2"),
        1,
    );
    km.record(
        &res,
        &sample(NetKind::ResetSent, 0, [None; 4], 1, "10.0.0.3"),
        1,
    );
    km.record(
        &res,
        &sample(NetKind::ResetReceived, 0, [None; 4], 0, "10.0.0.3"),
        1,
    );
    km.record(
        &res,
        &sample(NetKind::Retransmit, 0, [None; 4], 0, "10.0.0.3"),
        1,
    );
    km.record(
        &res,
        &sample(
            NetKind::Connect,
            0,
            [Some(3_000_000), None, None, None],
            2,
            "10.0.0.4",
        ),
        1,
    );
    km.record(
        &res,
        &sample(
            NetKind::Connect,
            0,
            [Some(1_000), None, None, None],
            0,
            "10.0.0.4",
        ),
        1,
    );
    km.record(
        &res,
        &sample(NetKind::Closed, 0, [None; 4], 1, "10.0.0.4"),
        1,
    );
    for _ in 0..3 {
        km.record_anomaly(&res, "tcp.reset_storm", 1);
    }
    let req = km.collect(2).unwrap();
    let count = |name: &str, key: &str, val: &str| -> i64 {
        find(&req, name)
            .iter()
            .flat_map(|m| m.data.sum())
            .filter(|p| attr_of(&p.attributes, key).as_deref() == Some(val))
            .map(|p| p.value)
            .sum()
    };
    assert_eq!(
        count(
            "otel_ebpf.kernel.drops",
            "otel_ebpf.kernel.drop_reason",
            "NETFILTER_DROP"
        ),
        2
    );
    assert_eq!(
        count("otel_ebpf.tcp.resets", "network.io.direction", "transmit"),
        1
    );
    assert_eq!(
        count(
            "otel_ebpf.tcp.resets",
            "otel_ebpf.tcp.reset_reason",
            "NO_SOCKET"
        ),
        1
    );
    assert_eq!(
        count("otel_ebpf.tcp.resets", "network.io.direction", "receive"),
        1
    );
    assert_eq!(
        count(
            "otel_ebpf.tcp.retransmits",
            "network.peer.address",
            "10.0.0.3"
        ),
        1
    );
    assert_eq!(
        count(
            "otel_ebpf.tcp.connections.opened",
            "otel_ebpf.tcp.role",
            "client"
        ),
        1
    );
    assert_eq!(
        count(
            "otel_ebpf.tcp.connections.closed",
            "otel_ebpf.tcp.state",
            "ESTABLISHED"
        ),
        1
    );
    assert_eq!(
        count(
            "otel_ebpf.tcp.anomalies",
            "otel_ebpf.anomaly.type",
            "tcp.reset_storm"
        ),
        3
    );
    let connect = find(&req, "otel_ebpf.tcp.connect.duration");
    let MetricData::Histogram(h) = &connect[0].data else {
        panic!()
    };
    let refused = h
        .iter()
        .find(|p| attr_of(&p.attributes, "error.type").as_deref() == Some("connection_refused"))
        .unwrap();
    assert_eq!(refused.count, 1);
    assert!(
        h.iter()
            .any(|p| attr_of(&p.attributes, "error.type").is_none())
    );
}

#[test]
fn series_are_bounded_with_an_overflow_series() {
    let mut km = KernelMetrics::new(10, reasons());
    let res = test_resource(1, "svc");
    for i in 0..1000u32 {
        let peer = format!("10.1.{}.{}", i / 256, i % 256);
        // An accepted connection: the peer is real, its address kept while series allow.
        km.record(&res, &sample(NetKind::Accepted, 1, [None; 4], 0, &peer), 1);
        km.record(
            &res,
            &sample(NetKind::Retransmit, 1, [None; 4], 0, &peer),
            1,
        );
    }
    assert_eq!(km.series_count(), 10);
    let req = km.collect(2).unwrap();
    let total: i64 = find(&req, "otel_ebpf.tcp.retransmits")
        .iter()
        .flat_map(|m| m.data.sum())
        .map(|p| p.value)
        .sum();
    assert_eq!(
        total, 1000,
        "nothing is lost, the rest is in the overflow series"
    );
    assert!(KernelMetrics::new(5, reasons()).collect(1).is_none());
}

#[test]
fn accepts_count_as_server_opens_and_time_the_handshake_when_measured() {
    let mut km = KernelMetrics::new(100, reasons());
    let res = test_resource(42, "web");
    // A 2 ms handshake, a 30 µs one, and a syncookie one (no RTT sample): 3 opens, 2 times.
    for d in [Some(2_000_000), Some(30_000), None] {
        let mut s = sample(NetKind::Accepted, 42, [d, None, None, None], 0, "10.0.0.9");
        s.role = SockRole::Server;
        km.record(&res, &s, 1);
    }
    let req = km.collect(2).unwrap();
    let h = find(&req, "otel_ebpf.tcp.accept.duration");
    assert_eq!(h.len(), 1);
    let MetricData::Histogram(h) = &h[0].data else {
        panic!("not a histogram: {:?}", h[0]);
    };
    let p = &h[0];
    assert_eq!(p.count, 2);
    assert!((p.sum - 0.00203).abs() < 1e-12, "{:?}", p.sum);
    assert_eq!(p.max, Some(0.002));
    assert_eq!(
        attr_of(&p.attributes, "network.peer.address").as_deref(),
        Some("10.0.0.9")
    );
    let opened: Vec<_> = find(&req, "otel_ebpf.tcp.connections.opened")
        .iter()
        .flat_map(|m| m.data.sum().to_vec())
        .collect();
    assert_eq!(opened.len(), 1);
    assert_eq!(
        attr_of(&opened[0].attributes, "otel_ebpf.tcp.role").as_deref(),
        Some("server")
    );
    assert_eq!(opened[0].value, 3);
}

#[test]
fn exited_process_series_go_after_their_last_export() {
    let mut km = KernelMetrics::new(100, reasons());
    let tx = |pid| {
        sample(
            NetKind::Tx,
            pid,
            [Some(0), Some(2_000), Some(5_000), Some(500)],
            0,
            "10.0.0.2",
        )
    };
    km.record(&test_resource(10, "a"), &tx(10), 1_000);
    km.record(&test_resource(11, "b"), &tx(11), 1_000);
    let per_process = km.series_count() / 2;
    assert!(per_process > 0);
    km.process_exited(10);
    // The exited process's final values are still exported once...
    let req = km.collect(2_000).unwrap();
    assert_eq!(req.resource_metrics.len(), 2);
    assert_eq!(km.prune_exited(), per_process);
    // ...then its series and resource are gone: memory does not grow with exited processes.
    assert_eq!(km.series_count(), per_process);
    let req = km.collect(3_000).unwrap();
    assert_eq!(req.resource_metrics.len(), 1);
    assert_eq!(km.prune_exited(), 0);
    // Churn: 1,000 short-lived processes leave nothing behind.
    for pid in 1_000..2_000 {
        km.record(&test_resource(pid, "c"), &tx(pid), 4_000);
        km.process_exited(pid);
    }
    let _ = km.collect(5_000);
    km.prune_exited();
    assert_eq!(km.series_count(), per_process);
}

/// Forged SYNs from 100,000 source addresses (resets sent, drops, SYN-ACK retransmits): one
/// series per reason without the peer, marked as overflow, every sample counted; a peer that
/// exchanged data keeps its address; the series bound is never reached.
#[test]
fn spoofed_peers_cannot_fill_the_series_bound() {
    let mut km = KernelMetrics::new(20_000, reasons());
    let res = test_resource(0, "unknown_service");
    km.record(
        &res,
        &sample(
            NetKind::Rx,
            0,
            [Some(1_000), None, None, None],
            0,
            "10.9.9.9",
        ),
        1,
    );
    km.record(
        &res,
        &sample(NetKind::Retransmit, 0, [None; 4], 0, "10.9.9.9"),
        1,
    );
    let before = km.series_count();
    for i in 0..100_000u32 {
        let peer = format!("172.{}.{}.{}", 16 + i / 65_536, (i / 256) % 256, i % 256);
        let kind = [NetKind::ResetSent, NetKind::Drop, NetKind::Retransmit][i as usize % 3];
        km.record(&res, &sample(kind, 0, [None; 4], 3, &peer), 1);
    }
    // reset (NO_SOCKET), drop (NO_SOCKET), retransmit: three overflow-marked series.
    assert_eq!(km.series_count(), before + 3);
    assert_eq!(km.peers_overflowed(), 100_000);
    assert_eq!(km.peer_count(), 1);
    let req = km.collect(2).unwrap();
    let sums: Vec<(Option<String>, bool, i64)> = find(&req, "otel_ebpf.tcp.retransmits")
        .iter()
        .flat_map(|m| m.data.sum())
        .map(|p| {
            let overflow = p.attributes.get("otel.metric.overflow").is_some();
            let v = p.value;
            (attr_of(&p.attributes, "network.peer.address"), overflow, v)
        })
        .collect();
    assert_eq!(
        sums,
        vec![(None, true, 33_333), (Some("10.9.9.9".into()), false, 1)]
    );
}

/// The peer budget: past `max_peers` real peers, new ones are recorded without their address;
/// a pruned process releases its peers.
#[test]
fn peer_budget_is_bounded_and_released_with_the_series() {
    let mut km = KernelMetrics::new(20_000, reasons()).with_max_peers(10);
    for i in 0..20u32 {
        let res = test_resource(100 + i, "c");
        let peer = format!("10.2.0.{i}");
        km.record(
            &res,
            &sample(
                NetKind::Rx,
                100 + i,
                [Some(1_000), None, None, None],
                0,
                &peer,
            ),
            1,
        );
    }
    assert_eq!((km.peer_count(), km.peers_overflowed()), (10, 10));
    for i in 0..20u32 {
        km.process_exited(100 + i);
    }
    let _ = km.collect(2);
    km.prune_exited();
    assert_eq!((km.peer_count(), km.series_count()), (0, 0));
}

#[test]
fn sampled_histograms_state_their_rate() {
    use crate::config::LayerSampling;
    assert_eq!(sampling_note(&LayerSampling::always()), "");
    let note = sampling_note(&LayerSampling::default());
    assert!(note.contains("expected rate 0.016667"), "{note}");
    let mut km = KernelMetrics::new(100, reasons());
    km.set_sampling(note.clone());
    let res = test_resource(10, "svc");
    let tx = sample(
        NetKind::Tx,
        10,
        [Some(1), Some(2), Some(3), Some(4)],
        0,
        "10.0.0.2",
    );
    km.record(&res, &tx, 1_000);
    let req = km.collect(3_000).unwrap();
    let send = find(&req, "otel_ebpf.kernel.send.duration");
    assert!(send[0].description.ends_with(&note));
}

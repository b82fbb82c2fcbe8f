//! Tests of the anomaly rules (each exactly at its threshold and one below), window roll-over,
//! memory bounds and ratio math. The log record tests are in `log.rs`.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

const S: u64 = 1_000_000_000;
/// Window of the test config: 10 s.
const W: u64 = 10 * S;

fn cfg() -> AnomalyConfig {
    AnomalyConfig {
        window_seconds: 10.0,
        reset_storm_threshold: 5,
        connect_failure_ratio: 0.5,
        connect_failure_min_attempts: 10,
        peer_connection_spike: 3,
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn ip_n(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
}

fn reset(peer: IpAddr, pid: u32, sent: bool) -> TcpSignal {
    TcpSignal::Reset { peer, pid, sent }
}

fn connect(peer: IpAddr, pid: u32, ok: bool) -> TcpSignal {
    TcpSignal::Connect { peer, pid, ok }
}

fn accepted(peer: IpAddr, pid: u32) -> TcpSignal {
    TcpSignal::Accepted { peer, pid }
}

/// Feeds `signals` at `t` and polls once the window ended.
fn run(d: &mut AnomalyDetector, t: u64, signals: &[TcpSignal]) -> Vec<Anomaly> {
    for s in signals {
        d.observe(t, s);
    }
    d.poll(t - t % W + W)
}

fn resets(n: u32) -> Vec<TcpSignal> {
    (0..n).map(|i| reset(ip(2), 100, i % 2 == 0)).collect()
}

#[test]
fn reset_storm_fires_exactly_at_the_threshold() {
    let mut d = AnomalyDetector::new(cfg());
    assert_eq!(run(&mut d, 3 * S, &resets(4)), vec![]);
    let got = run(&mut d, W + 3 * S, &resets(5));
    assert_eq!(
        got,
        vec![Anomaly {
            kind: AnomalyKind::ResetStorm,
            window_start_ns: W,
            window_ns: W,
            count: 5,
            attempts: 0,
            ratio: 0.0,
            peer: Some(ip(2)),
            pids: vec![100],
        }]
    );
    assert_eq!(d.counts()[0], (AnomalyKind::ResetStorm, 1));
}

#[test]
fn reset_storm_counts_sent_and_received_and_names_the_top_peer() {
    let mut d = AnomalyDetector::new(cfg());
    let mut sig = vec![
        reset(ip(1), 7, true),
        reset(ip(3), 8, false),
        reset(ip(3), 0, true),
        reset(ip(9), 9, false),
        reset(ip(3), 7, false),
    ];
    // Many pids: at most MAX_PIDS are reported, first seen first, 0 (unknown) left out.
    sig.extend((0..20).map(|i| reset(ip(9), 1000 + i, true)));
    let got = run(&mut d, 0, &sig);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].count, 25);
    assert_eq!(got[0].peer, Some(ip(9)));
    assert_eq!(got[0].pids, vec![7, 8, 9, 1000, 1001, 1002, 1003, 1004]);
    // A tie between peers picks the lowest address.
    let got = run(
        &mut d,
        W,
        &[reset(ip(4), 1, true), reset(ip(3), 1, true)].repeat(3),
    );
    assert_eq!(got[0].peer, Some(ip(3)));
}

#[test]
fn connect_failures_fire_at_the_ratio_with_enough_attempts() {
    let mut d = AnomalyDetector::new(cfg());
    let mix = |failed: usize, ok: usize| -> Vec<TcpSignal> {
        let mut v = vec![connect(ip(5), 42, false); failed];
        v.extend(vec![connect(ip(6), 43, true); ok]);
        v
    };
    // 5 of 10 = 0.5: fires.
    let got = run(&mut d, 0, &mix(5, 5));
    assert_eq!(got.len(), 1);
    let a = &got[0];
    assert_eq!(a.kind, AnomalyKind::ConnectFailures);
    assert_eq!((a.count, a.attempts, a.ratio), (5, 10, 0.5));
    assert_eq!((a.peer, a.pids.clone()), (Some(ip(5)), vec![42]));
    // 4 of 10 = 0.4: below the ratio.
    assert_eq!(run(&mut d, W, &mix(4, 6)), vec![]);
    // 9 of 9: above the ratio but one attempt short.
    assert_eq!(run(&mut d, 2 * W, &mix(9, 0)), vec![]);
    // 10 of 10 = 1.0.
    let got = run(&mut d, 3 * W, &mix(10, 0));
    assert_eq!((got[0].count, got[0].attempts, got[0].ratio), (10, 10, 1.0));
    // No failure at all never fires, whatever the attempts.
    assert_eq!(run(&mut d, 4 * W, &mix(0, 50)), vec![]);
    assert_eq!(d.counts()[1], (AnomalyKind::ConnectFailures, 2));
}

#[test]
fn ratio_math_is_exact_at_decimal_thresholds() {
    for (ratio, failed, attempts, fires) in [
        (0.3, 3, 10, true),
        (0.3, 2, 10, false),
        (0.7, 7, 10, true),
        (0.1, 1, 10, true),
        (1.0, 9, 10, false),
        (0.25, 25, 100, true),
        (0.25, 24, 100, false),
    ] {
        let mut d = AnomalyDetector::new(AnomalyConfig {
            connect_failure_ratio: ratio,
            ..cfg()
        });
        let mut sig = vec![connect(ip(1), 1, false); failed];
        sig.extend(vec![connect(ip(1), 1, true); attempts - failed]);
        let got = run(&mut d, 0, &sig);
        assert_eq!(got.len(), usize::from(fires), "{ratio} {failed}/{attempts}");
        if fires {
            assert_eq!(got[0].ratio, failed as f64 / attempts as f64);
        }
    }
}

#[test]
fn peer_spike_fires_per_peer_at_the_threshold() {
    let mut d = AnomalyDetector::new(cfg());
    let mut sig = vec![accepted(ip(1), 80); 2];
    sig.extend(vec![accepted(ip(2), 81); 3]);
    sig.extend(vec![accepted(ip(3), 82); 4]);
    let got = run(&mut d, 0, &sig);
    let peers: Vec<(Option<IpAddr>, u64, Vec<u32>)> = got
        .iter()
        .map(|a| (a.peer, a.count, a.pids.clone()))
        .collect();
    assert_eq!(
        peers,
        vec![(Some(ip(3)), 4, vec![82]), (Some(ip(2)), 3, vec![81])]
    );
    assert!(
        got.iter()
            .all(|a| a.kind == AnomalyKind::PeerConnectionSpike)
    );
    assert_eq!(d.counts()[2], (AnomalyKind::PeerConnectionSpike, 2));
}

#[test]
fn at_most_max_spikes_per_window_the_largest_first() {
    let mut d = AnomalyDetector::new(cfg());
    let mut sig = Vec::new();
    for n in 0..40u32 {
        sig.extend(vec![accepted(ip_n(n), 1); 3 + n as usize]);
    }
    let got = run(&mut d, 0, &sig);
    assert_eq!(got.len(), MAX_SPIKES);
    let counts: Vec<u64> = got.iter().map(|a| a.count).collect();
    let want: Vec<u64> = (0..MAX_SPIKES as u64).map(|i| 42 - i).collect();
    assert_eq!(counts, want);
    assert_eq!(got[0].peer, Some(ip_n(39)));
}

#[test]
fn windows_are_tumbling_and_roll_over() {
    let mut d = AnomalyDetector::new(cfg());
    // 4 + 4 resets straddling a window boundary: neither window reaches 5.
    for _ in 0..4 {
        d.observe(W - 1, &reset(ip(1), 1, true));
    }
    assert_eq!(d.poll(W - 1), vec![], "window not over yet");
    for _ in 0..4 {
        d.observe(W, &reset(ip(1), 1, true));
    }
    assert_eq!(d.poll(2 * W), vec![]);
    // A signal in a later window closes the current one; its anomaly waits for poll.
    for _ in 0..5 {
        d.observe(2 * W + 1, &reset(ip(1), 1, true));
    }
    d.observe(3 * W, &reset(ip(1), 1, true));
    assert_eq!(d.poll(3 * W).len(), 1);
    // A long gap produces nothing for the empty windows in between.
    d.observe(1000 * W + 5, &reset(ip(1), 1, true));
    assert_eq!(d.poll(1001 * W), vec![]);
    assert_eq!(d.counts()[0].1, 1);
}

#[test]
fn late_signals_count_in_the_current_or_next_window() {
    let mut d = AnomalyDetector::new(cfg());
    d.observe(5 * W, &reset(ip(1), 1, true));
    // Out of order by a window: counts in the current window, no panic.
    for _ in 0..4 {
        d.observe(4 * W + 1, &reset(ip(1), 1, true));
    }
    let got = d.poll(6 * W);
    assert_eq!((got.len(), got[0].window_start_ns), (1, 5 * W));
    // The window was closed: a late signal for it goes to the next window.
    for _ in 0..5 {
        d.observe(5 * W + 1, &reset(ip(1), 1, true));
    }
    let got = d.poll(7 * W);
    assert_eq!((got.len(), got[0].window_start_ns), (1, 6 * W));
}

#[test]
fn memory_is_bounded_with_100k_distinct_peers() {
    let mut d = AnomalyDetector::new(AnomalyConfig {
        reset_storm_threshold: 100_000,
        ..cfg()
    });
    for n in 0..100_000u32 {
        let peer = ip_n(n);
        d.observe(1, &reset(peer, n + 1, true));
        d.observe(1, &connect(peer, n + 1, false));
        d.observe(1, &accepted(peer, n + 1));
    }
    let w = &d.window;
    for pc in [&w.reset_peers, &w.failed_peers, &w.accepted] {
        assert_eq!(pc.map.len(), MAX_PEERS);
        assert_eq!(pc.overflow, 100_000 - MAX_PEERS as u64);
    }
    // Totals still count every signal; the reported peer is one that was tracked.
    let got = d.poll(W);
    let kinds: Vec<AnomalyKind> = got.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        vec![AnomalyKind::ResetStorm, AnomalyKind::ConnectFailures]
    );
    assert_eq!(got[0].count, 100_000);
    assert_eq!(got[0].peer, Some(ip_n(0)));
    assert_eq!(got[0].pids.len(), MAX_PIDS);
    assert_eq!((got[1].count, got[1].attempts), (100_000, 100_000));
    // The maps are emptied for the next window.
    d.observe(W, &accepted(ip(1), 1));
    assert_eq!(d.window.accepted.map.len(), 1);
    assert_eq!(d.window.accepted.overflow, 0);
}

#[test]
fn pending_anomalies_are_bounded_without_polls() {
    let mut d = AnomalyDetector::new(cfg());
    let windows = MAX_PENDING as u64 + 44;
    for i in 0..windows {
        for _ in 0..5 {
            d.observe(i * W, &reset(ip(1), 1, true));
        }
    }
    let got = d.poll(windows * W);
    assert_eq!(got.len(), MAX_PENDING);
    assert_eq!(d.dropped(), 44);
    assert_eq!(d.counts()[0].1, windows);
    // The newest are kept.
    assert_eq!(got.last().unwrap().window_start_ns, (windows - 1) * W);
    assert_eq!(d.poll(windows * W), vec![]);
}

#[test]
fn unvalidated_configs_are_clamped_and_never_panic() {
    let mut d = AnomalyDetector::new(AnomalyConfig {
        window_seconds: 0.0,
        reset_storm_threshold: 0,
        connect_failure_ratio: f64::NAN,
        connect_failure_min_attempts: 0,
        peer_connection_spike: 0,
    });
    assert_eq!(d.window_ns(), S / 10);
    // Thresholds of 0 behave as 1: an empty window reports nothing.
    assert_eq!(d.poll(u64::MAX), vec![]);
    d.observe(u64::MAX, &accepted(ip(1), 1));
    d.observe(0, &connect(ip(1), 1, false));
    let got = d.poll(u64::MAX);
    let kinds: Vec<AnomalyKind> = got.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        vec![
            AnomalyKind::ConnectFailures,
            AnomalyKind::PeerConnectionSpike
        ]
    );
    let d = AnomalyDetector::new(AnomalyConfig {
        window_seconds: 1e12,
        connect_failure_ratio: -3.0,
        ..cfg()
    });
    assert_eq!(d.window_ns(), 3600 * S);
    assert_eq!(d.ratio, f64::MIN_POSITIVE);
}

#[test]
fn kind_names_are_the_semconv_events() {
    let names: Vec<&str> = AnomalyKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        vec![
            "tcp.reset_storm",
            "tcp.connect_failures",
            "tcp.peer_connection_spike"
        ]
    );
    assert_eq!(names, otel_ebpf_semconv::anomaly::EVENTS);
}

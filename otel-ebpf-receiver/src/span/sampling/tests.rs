//! Tests of the sampler: thresholds, rules, consistency and statistical bounds.

use super::*;
use rand::{Rng, SeedableRng, rngs::StdRng};

fn sampler(p: f64) -> Sampler {
    Sampler::new(&SamplingConfig {
        sampling_percentage: p,
        ..Default::default()
    })
}

fn input(trace_id: [u8; 16]) -> SampleInput {
    SampleInput {
        trace_id,
        parent_sampled: None,
        is_error: false,
        duration_ns: 1_000_000,
    }
}

#[test]
fn randomness_is_the_lowest_56_bits() {
    let mut id = [0xffu8; 16];
    id[9..].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(randomness(&id), 0x01_0203_0405_0607);
    assert_eq!(randomness(&[0xff; 16]), RANDOMNESS_RANGE - 1);
    assert_eq!(randomness(&[0; 16]), 0);
}

#[test]
fn thresholds() {
    assert_eq!(sampler(100.0).threshold(), 0);
    assert_eq!(sampler(0.0).threshold(), RANDOMNESS_RANGE);
    assert_eq!(sampler(50.0).threshold(), 1 << 55);
    assert_eq!(sampler(25.0).threshold(), 3 << 54);
    assert_eq!(sampler(50.0).threshold_th().as_deref(), Some("8"));
    assert_eq!(sampler(25.0).threshold_th().as_deref(), Some("c"));
    assert_eq!(sampler(100.0).threshold_th(), None);
    // Out-of-range values are clamped (config validation rejects them first).
    assert_eq!(sampler(250.0).threshold(), 0);
    assert_eq!(sampler(-1.0).threshold(), RANDOMNESS_RANGE);
    // The edges: R = 2^56 - 1 is kept at any p > 0, R = 0 only at 100 %.
    let (hi, lo) = (input([0xff; 16]), input([0; 16]));
    assert!(sampler(0.0001).decide(&hi).keep());
    assert!(!sampler(99.9999).decide(&lo).keep());
    assert!(sampler(100.0).decide(&lo).keep());
    assert!(!sampler(0.0).decide(&hi).keep());
}

#[test]
fn ten_percent_is_within_statistical_bounds() {
    let s = sampler(10.0);
    let mut rng = StdRng::seed_from_u64(0x0_7e1e);
    let n = 200_000u64;
    let mut counts = SamplingCounts::default();
    for _ in 0..n {
        counts.record(s.decide(&input(rng.random())));
    }
    // Binomial(n, 0.1): mean 20,000, standard deviation ≈ 134; accept ±5σ.
    let kept = counts.kept_total() as f64;
    let (mean, sd) = (n as f64 * 0.1, (n as f64 * 0.1 * 0.9).sqrt());
    assert!((kept - mean).abs() < 5.0 * sd, "kept {kept} of {n}");
    assert_eq!(counts.kept_total() + counts.dropped_total(), n);
    assert_eq!(counts.kept[Rule::Ratio as usize], counts.kept_total());
}

#[test]
fn decisions_are_consistent_and_nested() {
    let mut rng = StdRng::seed_from_u64(7);
    let (s10, s20) = (sampler(10.0), sampler(20.0));
    for _ in 0..20_000 {
        let id: [u8; 16] = rng.random();
        // Same trace id, other inputs the same: same decision (both ends of a pair).
        assert_eq!(s10.decide(&input(id)), s10.decide(&input(id)));
        // Kept at 10 % ⇒ kept at 20 %.
        if s10.decide(&input(id)).keep() {
            assert!(s20.decide(&input(id)).keep());
        }
        // The high 9 bytes do not matter.
        let mut other = id;
        other[..9].copy_from_slice(&[0xaa; 9]);
        assert_eq!(s10.decide(&input(id)), s10.decide(&input(other)));
    }
}

#[test]
fn errors_slow_and_parent_flags() {
    let never = Sampler::new(&SamplingConfig {
        sampling_percentage: 0.0,
        keep_errors: true,
        keep_slower_than_ms: Some(250.0),
    });
    let id = [0xff; 16];
    let mut e = input(id);
    e.is_error = true;
    assert_eq!(never.decide(&e), Decision::Keep(Rule::Error));
    let mut slow = input(id);
    slow.duration_ns = 250_000_000;
    assert_eq!(never.decide(&slow), Decision::Keep(Rule::Slow));
    slow.duration_ns = 249_999_999;
    assert_eq!(never.decide(&slow), Decision::Drop(Rule::Ratio));
    let mut p = input(id);
    p.parent_sampled = Some(true);
    assert_eq!(never.decide(&p), Decision::Keep(Rule::Parent));
    // A parent's "not sampled" drops even at 100 %, but not an error.
    let all = sampler(100.0);
    p.parent_sampled = Some(false);
    assert_eq!(all.decide(&p), Decision::Drop(Rule::Parent));
    p.is_error = true;
    assert_eq!(all.decide(&p), Decision::Keep(Rule::Error));
    // keep_errors off: errors take the ratio like the rest.
    let no_err = Sampler::new(&SamplingConfig {
        sampling_percentage: 0.0,
        keep_errors: false,
        keep_slower_than_ms: None,
    });
    assert_eq!(no_err.decide(&e), Decision::Drop(Rule::Ratio));
    let mut c = SamplingCounts::default();
    for d in [
        Decision::Keep(Rule::Error),
        Decision::Keep(Rule::Slow),
        Decision::Drop(Rule::Parent),
        Decision::Drop(Rule::Ratio),
    ] {
        c.record(d);
    }
    assert_eq!(
        (c.kept_total(), c.dropped_parent, c.dropped_ratio),
        (2, 1, 1)
    );
    assert_eq!(Rule::Slow.as_str(), "slow");
}

/// 10 % of 1,000 exchanges with 50 errors and 20 slow ones: every error and slow span is
/// kept, and the rest stays within bounds.
#[test]
fn keep_rules_under_sampling() {
    let s = Sampler::new(&SamplingConfig {
        sampling_percentage: 10.0,
        keep_errors: true,
        keep_slower_than_ms: Some(100.0),
    });
    let mut rng = StdRng::seed_from_u64(99);
    let mut counts = SamplingCounts::default();
    for i in 0..1000 {
        let mut x = input(rng.random());
        x.is_error = i % 20 == 0;
        x.duration_ns = if i % 50 == 1 { 150_000_000 } else { 2_000_000 };
        let d = s.decide(&x);
        if x.is_error || x.duration_ns >= 100_000_000 {
            assert!(d.keep(), "{i}");
        }
        counts.record(d);
    }
    assert_eq!(counts.kept[Rule::Error as usize], 50);
    assert_eq!(counts.kept[Rule::Slow as usize], 20);
    let ratio_kept = counts.kept[Rule::Ratio as usize] as f64;
    // 930 others at 10 %: mean 93, σ ≈ 9.1.
    assert!((ratio_kept - 93.0).abs() < 5.0 * 9.15, "{ratio_kept}");
}

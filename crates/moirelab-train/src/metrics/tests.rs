//! Unit tests of `metrics.rs` (kept apart so the module reads as its code).

use super::*;

#[test]
fn next_up_steps_one_ulp_in_both_signs() {
    assert!(next_up(0.5) > 0.5 && (next_up(0.5) - 0.5) < 1e-15);
    assert!(next_up(-0.5) > -0.5 && (next_up(-0.5) + 0.5) < 1e-15);
    assert_eq!(next_up(0.0), f64::from_bits(1));
    assert_eq!(next_up(-0.0), f64::from_bits(1));
    assert_eq!(next_up(f64::INFINITY), f64::INFINITY);
    assert_eq!(next_up(f64::NEG_INFINITY), f64::MIN);
}

#[test]
fn sweep_lists_each_tie_group_once_and_ends_above_the_max() {
    let (p, na, nb) = sweep(&[0.2, 0.5, 0.5, 0.9], &[false, true, false, true]);
    assert_eq!((na, nb), (2, 2));
    let got: Vec<(f64, u64, u64)> = p
        .iter()
        .map(|q| (q.threshold, q.missed, q.false_alarms))
        .collect();
    assert_eq!(
        got,
        vec![(0.2, 0, 2), (0.5, 0, 1), (0.9, 1, 0), (next_up(0.9), 2, 0)]
    );
}

#[test]
fn argmax_takes_the_first_maximum_and_nan_like_torch() {
    assert_eq!(argmax(&[0.5, 0.5]), 0);
    assert_eq!(argmax(&[0.2, 0.7, 0.1]), 1);
    assert_eq!(argmax(&[0.2, f64::NAN, 0.9]), 1);
    assert_eq!(argmax(&[f64::NAN, 0.9]), 0);
}

#[test]
fn nan_scores_are_decided_bona_fide_everywhere() {
    assert!(!decide_attack(f64::NAN, f64::NEG_INFINITY));
    let (apcer, bpcer) = error_rates_at(&[f64::NAN, 0.9], &[true, false], 0.5);
    assert_eq!((apcer, bpcer), (1.0, 1.0));
}

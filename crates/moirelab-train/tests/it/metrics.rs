//! PAD and classification metrics against hand-computed cases (docs/METRICS.md).

use moirelab_core::rng::Rng;
use moirelab_core::run::EpochMetrics;
use moirelab_train::metrics::{
    auc, eer_threshold, error_rates_at, pad_metrics, threshold_at_bpcer, threshold_for_bona_fide,
    ClassificationAccumulator, GroupTag, MetricsError, ThresholdFrom, ThresholdRule,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// Attack scores first, then bona fide scores.
fn split(attack: &[f64], bona: &[f64]) -> (Vec<f64>, Vec<bool>) {
    let mut s = attack.to_vec();
    s.extend_from_slice(bona);
    let mut a = vec![true; attack.len()];
    a.extend(std::iter::repeat_n(false, bona.len()));
    (s, a)
}

#[test]
fn perfect_separation_has_zero_errors_and_unit_auc() {
    let (s, a) = split(&[0.8, 0.9], &[0.1, 0.2]);
    let m = pad_metrics(&s, &a, 0.5).unwrap();
    assert_eq!((m.apcer, m.bpcer, m.acer_non_iso), (0.0, 0.0, 0.0));
    assert_eq!((m.eer, m.auc), (0.0, 1.0));
    assert_eq!((m.bpcer20, m.bpcer100), (Some(0.0), Some(0.0)));
    assert_eq!(m.threshold, 0.5);
    // The first threshold reaching APCER = BPCER = 0 is the lowest attack score.
    assert_eq!(eer_threshold(&s, &a), Some((0.0, 0.8)));
}

#[test]
fn fully_inverted_scores_have_unit_eer_and_zero_auc() {
    let (s, a) = split(&[0.1, 0.2], &[0.8, 0.9]);
    let m = pad_metrics(&s, &a, 0.5).unwrap();
    assert_eq!((m.apcer, m.bpcer, m.acer_non_iso), (1.0, 1.0, 1.0));
    assert_eq!(m.auc, 0.0);
    // τ=0.8: both attacks missed and both bona fide flagged: APCER = BPCER = 1.
    assert_eq!(eer_threshold(&s, &a), Some((1.0, 0.8)));
}

#[test]
fn eer_is_interpolated_between_adjacent_thresholds() {
    // τ=0.7: APCER 1/3, BPCER 1/2; τ=0.8: APCER 1/3, BPCER 0. APCER−BPCER goes −1/6 → 1/3,
    // zero at t = 1/3: EER = 1/3, τ = 0.7 + 0.1/3.
    let (s, a) = split(&[0.6, 0.8, 0.9], &[0.3, 0.7]);
    let (eer, tau) = eer_threshold(&s, &a).unwrap();
    assert!(close(eer, 1.0 / 3.0), "{eer}");
    assert!(close(tau, 0.7 + 0.1 / 3.0), "{tau}");
    assert!(close(pad_metrics(&s, &a, tau).unwrap().eer, 1.0 / 3.0));
}

#[test]
fn eer_at_an_exact_crossing_takes_that_threshold() {
    // τ=0.7: APCER 1/2 (0.6 < 0.7), BPCER 1/2 (0.7 >= 0.7).
    let (s, a) = split(&[0.6, 0.9], &[0.3, 0.7]);
    assert_eq!(eer_threshold(&s, &a), Some((0.5, 0.7)));
}

#[test]
fn ties_count_half_in_auc_and_score_equal_to_threshold_is_an_attack() {
    let (s, a) = split(&[0.5, 0.7], &[0.5, 0.2]);
    // Pairs (attack, bona fide): (.5,.5) tie ½, (.5,.2) 1, (.7,.5) 1, (.7,.2) 1 → 3.5/4.
    assert_eq!(auc(&s, &a), Some(0.875));
    // τ=0.5 flags both 0.5 scores.
    assert_eq!(error_rates_at(&s, &a, 0.5), (0.0, 0.5));
    // Points: τ=.2 (0, 1), τ=.5 (0, ½), τ=.7 (½, 0): crossing at t = ½ → EER ¼, τ 0.6.
    let (eer, tau) = eer_threshold(&s, &a).unwrap();
    assert!(close(eer, 0.25) && close(tau, 0.6), "{eer} {tau}");
}

#[test]
fn all_tied_scores_give_chance_auc_and_half_eer() {
    let (s, a) = split(&[0.5, 0.5], &[0.5, 0.5, 0.5]);
    let m = pad_metrics(&s, &a, 0.5).unwrap();
    assert_eq!((m.auc, m.apcer, m.bpcer), (0.5, 0.0, 1.0));
    assert!(close(m.eer, 0.5));
    // Only "flag everything" reaches APCER <= 5 %.
    assert_eq!(m.bpcer20, Some(1.0));
}

#[test]
fn bpcer20_allows_exactly_five_percent_apcer() {
    // 20 attacks: 19 at 0.9, one at 0.1. Missing that one is APCER 1/20 = 5 % exactly.
    let mut attack = vec![0.9; 19];
    attack.push(0.1);
    let bona = [0.2, 0.2, 0.2, 0.2, 0.2, 0.5, 0.5, 0.5, 0.5, 0.5];
    let (s, a) = split(&attack, &bona);
    let m = pad_metrics(&s, &a, 0.5).unwrap();
    assert_eq!(m.bpcer20, Some(0.0));
    // APCER <= 1 % means missing none: τ must be <= 0.1, which flags all bona fide.
    assert_eq!(m.bpcer100, Some(1.0));
    assert_eq!((m.apcer, m.bpcer), (0.05, 0.5));
    assert!(close(m.acer_non_iso, 0.275));
    // 1 missed attack and 5 false alarms among 30 presentations.
    assert!(close(m.accuracy_at_threshold.unwrap(), 0.8));
}

#[test]
fn one_class_only_leaves_pad_metrics_undefined() {
    let (s, a) = split(&[0.2, 0.9], &[]);
    assert_eq!(pad_metrics(&s, &a, 0.5), None);
    assert_eq!(eer_threshold(&s, &a), None);
    assert_eq!(auc(&s, &a), None);
    assert_eq!(threshold_at_bpcer(&s, &a, 0.1), None);
    let (s, a) = split(&[], &[0.2]);
    assert_eq!(pad_metrics(&s, &a, 0.5), None);
    assert_eq!(pad_metrics(&[], &[], 0.5), None);
    // Error rates at a fixed τ stay defined: 0 over an empty class.
    assert_eq!(error_rates_at(&[0.2, 0.9], &[true, true], 0.5), (0.5, 0.0));
    assert_eq!(error_rates_at(&[], &[], 0.5), (0.0, 0.0));
}

#[test]
fn auc_matches_brute_force_pair_counting_with_ties() {
    let mut rng = Rng::new(7);
    for round in 0..20 {
        let n = 5 + rng.below(40) as usize;
        // Quantised scores force many ties.
        let s: Vec<f64> = (0..n).map(|_| (rng.below(8) as f64) / 8.0).collect();
        let mut a: Vec<bool> = (0..n).map(|_| rng.bernoulli(0.4)).collect();
        a[0] = true;
        a[1] = false;
        let mut pairs = 0.0;
        let (mut na, mut nb) = (0.0, 0.0);
        for i in 0..n {
            if !a[i] {
                nb += 1.0;
                continue;
            }
            na += 1.0;
            for j in 0..n {
                if !a[j] {
                    pairs += match s[i].partial_cmp(&s[j]).unwrap() {
                        std::cmp::Ordering::Greater => 1.0,
                        std::cmp::Ordering::Equal => 0.5,
                        std::cmp::Ordering::Less => 0.0,
                    };
                }
            }
        }
        let want = pairs / (na * nb);
        let got = auc(&s, &a).unwrap();
        assert!(close(got, want), "round {round}: {got} vs {want}");
        // The EER lies between the error rates of the operating points around it.
        let (eer, tau) = eer_threshold(&s, &a).unwrap();
        assert!((0.0..=1.0).contains(&eer) && tau.is_finite());
    }
}

#[test]
fn threshold_at_bpcer_flags_the_most_attacks_within_the_target() {
    let (s, a) = split(&[0.3, 0.6, 0.9], &[0.1, 0.4, 0.5, 0.7]);
    // BPCER(τ): τ=.1 → 1, .3 → .75, .4 → .75, .5 → .5, .6 → .25, .7 → .25, .9 → 0.
    assert_eq!(threshold_at_bpcer(&s, &a, 0.25), Some(0.6));
    assert_eq!(threshold_at_bpcer(&s, &a, 0.5), Some(0.5));
    assert_eq!(threshold_at_bpcer(&s, &a, 0.0), Some(0.9));
    assert_eq!(threshold_at_bpcer(&s, &a, 1.0), Some(0.1));
}

#[test]
fn nan_scores_rank_lowest_and_keep_metrics_finite() {
    let (s, a) = split(&[f64::NAN, 0.9], &[0.1, 0.2]);
    let m = pad_metrics(&s, &a, 0.5).unwrap();
    assert_eq!(m.apcer, 0.5);
    assert_eq!(m.auc, 0.5);
    let (eer, tau) = eer_threshold(&s, &a).unwrap();
    assert!(eer.is_finite() && tau.is_finite(), "{eer} {tau}");
}

/// Two-class rows `[p(direct), p(screen)]` from attack scores.
fn probs(scores: &[f64]) -> Vec<f64> {
    scores.iter().flat_map(|&s| [1.0 - s, s]).collect()
}

fn tag(name: &str, aligned: Option<bool>) -> GroupTag {
    GroupTag {
        name: name.into(),
        aligned,
    }
}

fn hand_epoch() -> ClassificationAccumulator {
    // Classes: 0 = direct, 1 = screen (attack). Two batches.
    let mut acc = ClassificationAccumulator::new(2, Some(1)).unwrap();
    acc.update(
        2.0,
        &[1, 1, 0],
        &probs(&[0.9, 0.4, 0.2]),
        Some(&[
            tag("screen|flag=A", Some(true)),
            tag("screen|flag=B", Some(false)),
            tag("direct|flag=B", Some(true)),
        ]),
    )
    .unwrap();
    acc.update(
        1.0,
        &[0, 1],
        &probs(&[0.7, 0.8]),
        Some(&[
            tag("direct|flag=A", Some(false)),
            tag("screen|flag=A", Some(true)),
        ]),
    )
    .unwrap();
    acc
}

#[test]
fn accumulator_computes_hand_checked_epoch_metrics() {
    let m = hand_epoch().compute(3, "val", None);
    assert_eq!((m.epoch, m.split.as_str(), m.n), (3, "val", 5));
    assert!(close(m.loss, 3.0 / 5.0));
    // Predictions (argmax): screen, direct, direct, screen, screen.
    assert_eq!(m.confusion, vec![vec![1, 1], vec![1, 2]]);
    assert!(close(m.accuracy, 3.0 / 5.0));
    assert!(close(m.balanced_accuracy, (0.5 + 2.0 / 3.0) / 2.0));

    let g = &m.groups;
    assert_eq!(g.len(), 4);
    assert_eq!((g["screen|flag=A"].n, g["screen|flag=A"].correct), (2, 2));
    assert_eq!(g["screen|flag=B"].accuracy, 0.0);
    assert_eq!(g["direct|flag=A"].aligned, Some(false));
    assert_eq!(m.worst_group_accuracy, Some(0.0));
    // Aligned: screen|A (2/2) + direct|B (1/1); conflicting: screen|B (0/1) + direct|A (0/1).
    assert_eq!(m.aligned_accuracy, Some(1.0));
    assert_eq!(m.conflicting_accuracy, Some(0.0));

    // Attack scores 0.9, 0.4, 0.8 vs bona fide 0.2, 0.7; val fixes τ at its own EER point.
    let pad = m.pad.clone().unwrap();
    let (eer, tau) = eer_threshold(
        &[0.9, 0.4, 0.8, 0.2, 0.7],
        &[true, true, true, false, false],
    )
    .unwrap();
    assert_eq!((pad.eer, pad.threshold), (eer, tau));
    assert!(close(pad.auc, 5.0 / 6.0));
}

#[test]
fn a_bpcer_target_fixes_val_threshold_at_the_lowest_apcer_within_it() {
    // Attack scores 0.9, 0.4, 0.8 vs bona fide 0.2, 0.7 (hand_epoch).
    let acc = hand_epoch();
    // No genuine photo rejected: τ above 0.7, so the 0.4 screen is missed.
    let pad = acc
        .compute_with(3, "val", ThresholdFrom::Split(ThresholdRule::Bpcer(0.0)))
        .pad
        .unwrap();
    assert_eq!((pad.threshold, pad.bpcer), (0.8, 0.0));
    assert!(close(pad.apcer, 1.0 / 3.0));
    // Half of them may go: τ = 0.4 flags every screen and the 0.7 genuine photo.
    let pad = acc
        .compute_with(3, "val", ThresholdFrom::Split(ThresholdRule::Bpcer(0.5)))
        .pad
        .unwrap();
    assert_eq!((pad.threshold, pad.apcer, pad.bpcer), (0.4, 0.0, 0.5));
    // A given τ is applied as it is.
    let given = acc.compute_with(3, "test", ThresholdFrom::Given(0.75));
    assert_eq!(given.pad.unwrap().threshold, 0.75);
    // The default rule is the EER point, as `compute` has it.
    assert_eq!(
        acc.compute_with(3, "val", ThresholdFrom::Split(ThresholdRule::default())),
        acc.compute(3, "val", None)
    );
}

#[test]
fn a_given_threshold_is_applied_instead_of_the_eer_point() {
    let pad = hand_epoch().compute(3, "test", Some(0.75)).pad.unwrap();
    assert_eq!(pad.threshold, 0.75);
    // Attacks 0.9, 0.4, 0.8 → one below 0.75; bona fide 0.2, 0.7 → none flagged.
    assert!(close(pad.apcer, 1.0 / 3.0));
    assert_eq!(pad.bpcer, 0.0);
    assert!(close(pad.acer_non_iso, 1.0 / 6.0));
}

#[test]
fn a_split_of_one_class_gets_its_own_error_rate_at_a_given_threshold() {
    // Genuine photos only: scores 0.2, 0.7, 0.9 against τ 0.75 → one false reject in three.
    let mut acc = ClassificationAccumulator::new(2, Some(1)).unwrap();
    acc.update(1.0, &[0, 0, 0], &probs(&[0.2, 0.7, 0.9]), None)
        .unwrap();
    let m = acc.compute(0, "test", Some(0.75));
    assert_eq!(m.pad, None);
    let o = m.one_class.clone().unwrap();
    assert_eq!((o.threshold, o.apcer), (0.75, None));
    assert!(close(o.bpcer.unwrap(), 1.0 / 3.0));
    // argmax accuracy is another number: 0.7 and 0.9 are both above 0.5
    assert!(close(m.accuracy, 1.0 / 3.0));
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<EpochMetrics>(&json).unwrap(), m);
    // without a given τ (val fixes its own at the EER point) there is nothing to report
    assert_eq!(acc.compute(0, "val", None).one_class, None);
    // attacks only: APCER
    let mut acc = ClassificationAccumulator::new(2, Some(1)).unwrap();
    acc.update(1.0, &[1, 1], &probs(&[0.2, 0.9]), None).unwrap();
    let o = acc.compute(0, "test", Some(0.5)).one_class.unwrap();
    assert_eq!((o.apcer, o.bpcer), (Some(0.5), None));
    // both classes: the PAD metrics, not this
    assert_eq!(hand_epoch().compute(3, "test", Some(0.75)).one_class, None);
}

#[test]
fn empty_epoch_is_nan_free_and_round_trips_through_json() {
    let acc = ClassificationAccumulator::new(2, Some(1)).unwrap();
    let m = acc.compute(0, "val", None);
    assert_eq!(
        (m.n, m.loss, m.accuracy, m.balanced_accuracy),
        (0, 0.0, 0.0, 0.0)
    );
    assert_eq!(m.pad, None);
    assert_eq!(m.worst_group_accuracy, None);
    assert_eq!(m.aligned_accuracy, None);
    // serde_json writes NaN as null, which would not parse back into an f64.
    let s = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<EpochMetrics>(&s).unwrap(), m);
}

#[test]
fn one_class_epoch_has_no_pad_block_but_class_metrics() {
    let mut acc = ClassificationAccumulator::new(2, Some(1)).unwrap();
    acc.update(0.5, &[1, 1], &probs(&[0.9, 0.3]), None).unwrap();
    let m = acc.compute(1, "val", Some(0.5));
    assert_eq!(m.pad, None);
    assert_eq!((m.accuracy, m.balanced_accuracy, m.loss), (0.5, 0.5, 0.25));
    assert!(m.groups.is_empty() && m.worst_group_accuracy.is_none());
    let s = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<EpochMetrics>(&s).unwrap(), m);
}

#[test]
fn without_an_attack_class_there_is_no_pad_block() {
    let mut acc = ClassificationAccumulator::new(3, None).unwrap();
    // A tie goes to the first class, like torch.argmax.
    acc.update(0.0, &[2, 0], &[0.1, 0.2, 0.7, 0.5, 0.5, 0.0], None)
        .unwrap();
    let m = acc.compute(1, "train", None);
    assert_eq!(m.pad, None);
    assert_eq!(m.confusion, vec![vec![1, 0, 0], vec![0; 3], vec![0, 0, 1]]);
    // Class 1 never occurs as a target: balanced accuracy averages classes 0 and 2.
    assert_eq!(m.balanced_accuracy, 1.0);
}

#[test]
fn reset_forgets_everything() {
    let mut acc = hand_epoch();
    acc.reset();
    assert_eq!(acc.n(), 0);
    let m = acc.compute(4, "val", None);
    assert_eq!(m.confusion, vec![vec![0, 0], vec![0, 0]]);
    assert_eq!(m.loss, 0.0);
    assert!(m.groups.is_empty() && m.pad.is_none());
    assert!(acc.attack_scores().0.is_empty());
}

#[test]
fn bad_batches_are_rejected_and_leave_the_accumulator_unchanged() {
    let mut acc = hand_epoch();
    let before = acc.compute(3, "val", None);
    let err = acc
        .update(1.0, &[0, 2], &probs(&[0.1, 0.2]), None)
        .unwrap_err();
    assert_eq!(
        err,
        MetricsError::TargetOutOfRange {
            row: 1,
            target: 2,
            classes: 2
        }
    );
    let err = acc.update(1.0, &[0, 1], &[0.5; 3], None).unwrap_err();
    assert!(
        err.to_string().contains("3 values for 2 rows x 2 classes"),
        "{err}"
    );
    let err = acc
        .update(1.0, &[0], &probs(&[0.1]), Some(&[]))
        .unwrap_err();
    assert_eq!(err, MetricsError::GroupsLen { got: 0, rows: 1 });
    // screen|flag=A was tagged aligned earlier.
    let err = acc
        .update(
            1.0,
            &[1],
            &probs(&[0.9]),
            Some(&[tag("screen|flag=A", Some(false))]),
        )
        .unwrap_err();
    assert!(err.to_string().contains("'screen|flag=A'"), "{err}");
    // …and within one batch.
    let err = acc
        .update(
            1.0,
            &[1, 1],
            &probs(&[0.9, 0.9]),
            Some(&[tag("new", Some(true)), tag("new", None)]),
        )
        .unwrap_err();
    assert!(
        matches!(err, MetricsError::GroupAlignment { row: 1, .. }),
        "{err}"
    );
    assert_eq!(acc.compute(3, "val", None), before);
}

#[test]
fn constructor_rejects_bad_class_layouts() {
    assert_eq!(
        ClassificationAccumulator::new(0, None).unwrap_err(),
        MetricsError::NoClasses
    );
    assert_eq!(
        ClassificationAccumulator::new(2, Some(2)).unwrap_err(),
        MetricsError::AttackClassOutOfRange {
            attack: 2,
            classes: 2
        }
    );
}

#[test]
fn threshold_for_bona_fide_rejects_at_most_the_target_share() {
    let s: Vec<f64> = (0..20).map(|i| f64::from(i) / 20.0).collect();
    let bona = vec![false; s.len()];
    for (rate, rejected) in [(0.0, 0), (0.05, 1), (0.1, 2), (0.12, 2), (0.5, 10)] {
        let t = threshold_for_bona_fide(&s, rate).unwrap();
        let (_, bpcer) = error_rates_at(&s, &bona, t);
        assert_eq!(bpcer, rejected as f64 / 20.0, "rate {rate}");
        // The smallest such threshold: one step lower rejects one more.
        let (_, lower) = error_rates_at(&s, &bona, t.next_down());
        assert_eq!(lower, (rejected + 1) as f64 / 20.0, "rate {rate}");
    }
    // Ties stay on one side: two images at 0.9 cannot be split, so neither is rejected.
    let tied = [0.1, 0.2, 0.9, 0.9];
    let t = threshold_for_bona_fide(&tied, 0.25).unwrap();
    assert_eq!(error_rates_at(&tied, &[false; 4], t).1, 0.0);
    // NaN scores are never rejected; they count in the total (2 of 4 may be: 0.8 and 0.6).
    let t = threshold_for_bona_fide(&[f64::NAN, 0.3, 0.6, 0.8], 0.5).unwrap();
    assert_eq!(t, 0.3f64.next_up());
    assert_eq!(threshold_for_bona_fide(&[], 0.05), None);
    assert_eq!(threshold_for_bona_fide(&[0.5], 1.0), None);
    assert_eq!(threshold_for_bona_fide(&[0.5], -0.1), None);
}

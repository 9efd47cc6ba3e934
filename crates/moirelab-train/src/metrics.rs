//! Classification and presentation-attack-detection (PAD) metrics, as in
//! `docs/METRICS.md` (ISO/IEC 30107-3 vocabulary).
//!
//! * score `s` = the model's probability of the attack class ("screen"); the decision is
//!   *attack iff `s >= τ`*;
//! * APCER(τ) = share of attack presentations decided bona fide (an error rate over attacks,
//!   not a precision-type ratio); BPCER(τ) = share of bona fide presentations decided attack;
//! * ACER = (APCER + BPCER) / 2 is reported as `acer_non_iso`: common in papers, not
//!   ISO-conformant;
//! * EER: where APCER = BPCER, linearly interpolated between adjacent thresholds;
//! * BPCER20 / BPCER100: smallest BPCER with APCER <= 5 % / 1 %;
//! * AUC: area under the ROC (TPR = 1 − APCER, FPR = BPCER), ties counted half
//!   (the Mann–Whitney U statistic; Hanley & McNeil, Radiology 1982).
//!
//! Everything is computed in `f64` and never panics on empty input. Quantities that are
//! undefined for the data are `None`, never NaN: PAD metrics need at least one attack and
//! one bona fide presentation (`pad_metrics` returns `None` otherwise); pooled aligned /
//! conflicting accuracies are `None` when no sample has that flag, the worst group is `None`
//! without group tags. Ratios over an empty set (`accuracy` of an empty epoch) are 0.
//!
//! NaN scores (a diverged model) rank below every other score: they are decided bona fide
//! at every finite threshold, in the threshold sweep and at a fixed τ alike.

use moirelab_core::run::{EpochMetrics, GroupStat, OneClassRates, PadMetrics};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Errors of [`ClassificationAccumulator`]; each names the offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("classification metrics need at least 1 class, got 0")]
    NoClasses,
    #[error("attack class {attack} is out of range for {classes} classes")]
    AttackClassOutOfRange { attack: usize, classes: usize },
    #[error("batch row {row}: target class {target} is out of range for {classes} classes")]
    TargetOutOfRange {
        row: usize,
        target: usize,
        classes: usize,
    },
    #[error(
        "probabilities: got {got} values for {rows} rows x {classes} classes (row-major [B, C])"
    )]
    ProbsShape {
        got: usize,
        rows: usize,
        classes: usize,
    },
    #[error("group tags: got {got} for {rows} rows")]
    GroupsLen { got: usize, rows: usize },
    #[error(
        "group '{name}': tagged aligned={before:?} earlier and aligned={now:?} at batch row {row}"
    )]
    GroupAlignment {
        name: String,
        before: Option<bool>,
        now: Option<bool>,
        row: usize,
    },
}

/// Sort key of a score: NaN ranks below everything (see the module docs), and -0.0 becomes
/// 0.0 so that `total_cmp` ties are exactly the scores no threshold can separate.
fn key(s: f64) -> f64 {
    if s.is_nan() {
        f64::NEG_INFINITY
    } else {
        s + 0.0
    }
}

/// The decision rule: attack iff `s >= τ`.
fn decide_attack(s: f64, threshold: f64) -> bool {
    // A NaN score is below every finite threshold; `-inf >= -inf` would flag it, so the
    // comparison excludes NaN explicitly instead of going through `key`.
    !s.is_nan() && s >= threshold
}

/// Smallest `f64` strictly greater than `x` (`f64::next_up` needs Rust 1.86; the workspace
/// supports 1.85).
fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let bits = x.to_bits();
    if x > 0.0 {
        f64::from_bits(bits + 1)
    } else {
        f64::from_bits(bits - 1)
    }
}

/// One operating point of the threshold sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OpPoint {
    threshold: f64,
    /// Attack presentations with `s < τ`.
    missed: u64,
    /// Bona fide presentations with `s >= τ`.
    false_alarms: u64,
}

/// Every distinct operating point, thresholds ascending: one per distinct score, then one
/// just above the largest score (nothing flagged). Also returns (#attack, #bona fide).
///
/// The first point flags everything (APCER = 0, BPCER = 1), the last flags nothing
/// (APCER = 1, BPCER = 0); APCER is non-decreasing and BPCER non-increasing along the list.
fn sweep(scores: &[f64], is_attack: &[bool]) -> (Vec<OpPoint>, u64, u64) {
    debug_assert_eq!(scores.len(), is_attack.len(), "one label per score");
    let mut pairs: Vec<(f64, bool)> = scores
        .iter()
        .zip(is_attack)
        .map(|(&s, &a)| (key(s), a))
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n_attack = pairs.iter().filter(|p| p.1).count() as u64;
    let n_bona = pairs.len() as u64 - n_attack;
    let mut points = Vec::with_capacity(pairs.len() + 1);
    let (mut attack_below, mut bona_below) = (0u64, 0u64);
    let mut i = 0;
    while i < pairs.len() {
        let tau = pairs[i].0;
        points.push(OpPoint {
            threshold: tau,
            missed: attack_below,
            false_alarms: n_bona - bona_below,
        });
        // Consume the whole tie group: they all sit on the same side of any threshold.
        while i < pairs.len() && pairs[i].0.total_cmp(&tau) == Ordering::Equal {
            if pairs[i].1 {
                attack_below += 1;
            } else {
                bona_below += 1;
            }
            i += 1;
        }
    }
    let top = pairs.last().map_or(0.0, |p| next_up(p.0));
    points.push(OpPoint {
        threshold: top,
        missed: n_attack,
        false_alarms: 0,
    });
    (points, n_attack, n_bona)
}

/// Mean recall over the classes that occur as targets of `confusion[true][pred]` (0 when
/// none does).
pub(crate) fn balanced_accuracy(confusion: &[Vec<u64>]) -> f64 {
    let recalls: Vec<f64> = confusion
        .iter()
        .enumerate()
        .filter_map(|(c, row)| {
            let support: u64 = row.iter().sum();
            (support > 0).then(|| rate(row[c], support))
        })
        .collect();
    if recalls.is_empty() {
        0.0
    } else {
        recalls.iter().sum::<f64>() / recalls.len() as f64
    }
}

fn rate(count: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// Interpolated threshold between two adjacent sweep thresholds; falls back to a finite end
/// when one end is infinite (scores of ±inf), so the result is NaN-free.
fn lerp_threshold(lo: f64, hi: f64, t: f64) -> f64 {
    if lo.is_finite() && hi.is_finite() {
        lo + t * (hi - lo)
    } else if hi.is_finite() {
        hi
    } else {
        lo
    }
}

/// Equal error rate and its threshold: `(eer, τ_eer)`.
///
/// Walks the operating points in threshold order to the first one with APCER >= BPCER. If
/// they are equal there, that point is the EER. Otherwise APCER and BPCER are linearly
/// interpolated between it and the previous point, and the EER is where the two segments
/// cross; τ is interpolated with the same weight. Applied to data, that τ realises one of the
/// two neighbouring operating points (the error rates are step functions of τ).
///
/// `None` unless there is at least one attack and one bona fide presentation.
pub fn eer_threshold(scores: &[f64], is_attack: &[bool]) -> Option<(f64, f64)> {
    let (points, n_attack, n_bona) = sweep(scores, is_attack);
    eer_from_points(&points, n_attack, n_bona)
}

fn eer_from_points(points: &[OpPoint], n_attack: u64, n_bona: u64) -> Option<(f64, f64)> {
    if n_attack == 0 || n_bona == 0 {
        return None;
    }
    let apcer = |p: &OpPoint| rate(p.missed, n_attack);
    let bpcer = |p: &OpPoint| rate(p.false_alarms, n_bona);
    // The first point has APCER - BPCER = -1 and the last +1, so the crossing exists and
    // `i >= 1`.
    let i = points.iter().position(|p| apcer(p) >= bpcer(p))?;
    let cur = &points[i];
    let d_cur = apcer(cur) - bpcer(cur);
    if d_cur == 0.0 || i == 0 {
        return Some((apcer(cur), cur.threshold));
    }
    let prev = &points[i - 1];
    let d_prev = apcer(prev) - bpcer(prev);
    let t = -d_prev / (d_cur - d_prev);
    let eer = apcer(prev) + t * (apcer(cur) - apcer(prev));
    Some((eer, lerp_threshold(prev.threshold, cur.threshold, t)))
}

/// Area under the ROC with ties counted half:
/// `AUC = P(s_attack > s_bona) + ½ P(s_attack = s_bona)`.
///
/// `None` unless both classes are present.
pub fn auc(scores: &[f64], is_attack: &[bool]) -> Option<f64> {
    let (points, n_attack, n_bona) = sweep(scores, is_attack);
    auc_from_points(&points, n_attack, n_bona)
}

fn auc_from_points(points: &[OpPoint], n_attack: u64, n_bona: u64) -> Option<f64> {
    if n_attack == 0 || n_bona == 0 {
        return None;
    }
    // Between consecutive points, the tie group at points[k].threshold holds
    // a = Δmissed attacks and b = Δfalse_alarms bona fide; it contributes a·(bona fide
    // strictly below) + ½·a·b pairs. Doubled to stay in exact integers.
    let mut twice_pairs: u128 = 0;
    for w in points.windows(2) {
        let a = u128::from(w[1].missed - w[0].missed);
        let b = u128::from(w[0].false_alarms - w[1].false_alarms);
        let bona_below = u128::from(n_bona) - u128::from(w[0].false_alarms);
        twice_pairs += 2 * a * bona_below + a * b;
    }
    Some(twice_pairs as f64 / (2.0 * n_attack as f64 * n_bona as f64))
}

/// Smallest BPCER over operating points with APCER <= `percent` % (compared in exact
/// integers, so APCER = 1/20 counts as 5 %).
fn bpcer_at_apcer(points: &[OpPoint], n_attack: u64, n_bona: u64, percent: u64) -> Option<f64> {
    points
        .iter()
        .filter(|p| u128::from(p.missed) * 100 <= u128::from(percent) * u128::from(n_attack))
        .map(|p| p.false_alarms)
        .min()
        .map(|fa| rate(fa, n_bona))
}

/// APCER and BPCER at a fixed threshold: `(apcer, bpcer)`. A class with no presentations
/// has error rate 0.
pub fn error_rates_at(scores: &[f64], is_attack: &[bool], threshold: f64) -> (f64, f64) {
    decisions_at(scores, is_attack, threshold).error_rates()
}

/// The counts behind [`error_rates_at`].
pub(crate) struct Decisions {
    pub(crate) n_attack: u64,
    pub(crate) n_bona: u64,
    pub(crate) missed: u64,
    pub(crate) false_alarms: u64,
}

impl Decisions {
    /// `(apcer, bpcer)`; a class with no presentations has error rate 0.
    fn error_rates(&self) -> (f64, f64) {
        (
            rate(self.missed, self.n_attack),
            rate(self.false_alarms, self.n_bona),
        )
    }

    /// Share of presentations decided right.
    pub(crate) fn accuracy(&self) -> f64 {
        1.0 - rate(self.missed + self.false_alarms, self.n_attack + self.n_bona)
    }
}

pub(crate) fn decisions_at(scores: &[f64], is_attack: &[bool], threshold: f64) -> Decisions {
    debug_assert_eq!(scores.len(), is_attack.len(), "one label per score");
    let (mut n_attack, mut n_bona, mut missed, mut false_alarms) = (0u64, 0u64, 0u64, 0u64);
    for (&s, &attack) in scores.iter().zip(is_attack) {
        let flagged = decide_attack(s, threshold);
        if attack {
            n_attack += 1;
            missed += u64::from(!flagged);
        } else {
            n_bona += 1;
            false_alarms += u64::from(flagged);
        }
    }
    Decisions {
        n_attack,
        n_bona,
        missed,
        false_alarms,
    }
}

/// PAD metrics at threshold `threshold` (attack iff score >= threshold), plus the
/// threshold-free EER, AUC, BPCER20 and BPCER100.
///
/// `scores[i]` is P(attack) of presentation `i`, `is_attack[i]` its ground truth (the two
/// slices have equal length). `None` unless both classes are present: EER and AUC are
/// undefined otherwise. `threshold` should be finite (it is written to JSON).
pub fn pad_metrics(scores: &[f64], is_attack: &[bool], threshold: f64) -> Option<PadMetrics> {
    let (points, n_attack, n_bona) = sweep(scores, is_attack);
    let (eer, _) = eer_from_points(&points, n_attack, n_bona)?;
    let auc = auc_from_points(&points, n_attack, n_bona)?;
    let decisions = decisions_at(scores, is_attack, threshold);
    let (apcer, bpcer) = decisions.error_rates();
    Some(PadMetrics {
        threshold,
        apcer,
        bpcer,
        acer_non_iso: (apcer + bpcer) / 2.0,
        eer,
        auc,
        bpcer20: bpcer_at_apcer(&points, n_attack, n_bona, 5),
        bpcer100: bpcer_at_apcer(&points, n_attack, n_bona, 1),
        accuracy_at_threshold: Some(decisions.accuracy()),
    })
}

/// The smallest threshold at which at most `max_bpcer` of these bona fide scores are decided
/// attack (`floor(max_bpcer · n)` of them), to fix τ on a set of genuine images only: the
/// next float above the score that would be one rejection too many. NaN scores are never
/// rejected. `None` for an empty set or a rate outside `[0, 1)`.
pub fn threshold_for_bona_fide(scores: &[f64], max_bpcer: f64) -> Option<f64> {
    if scores.is_empty() || !(0.0..1.0).contains(&max_bpcer) {
        return None;
    }
    let allowed = (max_bpcer * scores.len() as f64).floor() as usize;
    let mut desc: Vec<f64> = scores.iter().copied().filter(|s| !s.is_nan()).collect();
    desc.sort_by(|a, b| b.total_cmp(a));
    // With fewer usable scores than `allowed + 1` (NaNs), every one of them may be rejected:
    // scores are probabilities, so 0 flags them all.
    Some(desc.get(allowed).map_or(0.0, |&s| s.next_up()))
}

/// How a split fixes its own threshold τ from its scores (val fixes the run's).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ThresholdRule {
    /// Where APCER = BPCER ([`eer_threshold`]).
    #[default]
    Eer,
    /// The lowest APCER with BPCER at most this share ([`threshold_at_bpcer`];
    /// `train.threshold-bpcer`).
    Bpcer(f64),
}

/// Where an evaluation's threshold τ comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdFrom {
    /// Applied as it is: test gets val's τ, an extra data set the epoch's, a user's
    /// `--threshold`.
    Given(f64),
    /// Fixed on the evaluated split's own scores by this rule (val fixes the run's).
    Split(ThresholdRule),
}

impl ThresholdFrom {
    /// `Given(t)` for `Some(t)`, else fixed on the split by `rule`.
    pub fn given_or(threshold: Option<f64>, rule: ThresholdRule) -> ThresholdFrom {
        threshold.map_or(ThresholdFrom::Split(rule), ThresholdFrom::Given)
    }

    /// The given τ, if any.
    pub fn given(self) -> Option<f64> {
        match self {
            ThresholdFrom::Given(t) => Some(t),
            ThresholdFrom::Split(_) => None,
        }
    }
}

impl ThresholdRule {
    /// τ of these scores; `None` unless both classes are present.
    pub fn fix(self, scores: &[f64], is_attack: &[bool]) -> Option<f64> {
        match self {
            ThresholdRule::Eer => eer_threshold(scores, is_attack).map(|(_, t)| t),
            ThresholdRule::Bpcer(b) => threshold_at_bpcer(scores, is_attack, b),
        }
    }
}

/// The lowest-APCER threshold whose BPCER is at most `max_bpcer` (for a config that fixes τ
/// on val by a BPCER target instead of the EER point: `train.threshold-bpcer`). Among the
/// operating points with BPCER <= `max_bpcer` it returns the smallest threshold, i.e. the one
/// that flags the most attacks. `None` unless both classes are present.
pub fn threshold_at_bpcer(scores: &[f64], is_attack: &[bool], max_bpcer: f64) -> Option<f64> {
    let (points, n_attack, n_bona) = sweep(scores, is_attack);
    if n_attack == 0 || n_bona == 0 {
        return None;
    }
    // The last point (nothing flagged) has BPCER 0, so one always qualifies for a
    // non-negative target.
    points
        .iter()
        .find(|p| rate(p.false_alarms, n_bona) <= max_bpcer)
        .map(|p| p.threshold)
}

/// The shortcut group of one sample, e.g. `screen|flag=A`, and whether it follows the
/// train-set correlation (`Some(true)` aligned, `Some(false)` conflicting, `None` unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTag {
    pub name: String,
    pub aligned: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct GroupCount {
    n: u64,
    correct: u64,
    aligned: Option<bool>,
}

/// Accumulates one epoch of one split batch by batch, then [`compute`](Self::compute)s
/// its [`EpochMetrics`]: mean loss, accuracy, balanced accuracy, confusion matrix, PAD
/// metrics, per-group accuracy, worst-group accuracy and aligned vs conflicting accuracy.
///
/// Predictions are the argmax of the probabilities (first maximum wins, NaN counts as the
/// maximum, like `torch.argmax`); accuracy, confusion and groups use them. PAD metrics use
/// the attack score and a threshold instead (see [`compute`](Self::compute)).
#[derive(Debug, Clone)]
pub struct ClassificationAccumulator {
    classes: usize,
    attack_class: Option<usize>,
    loss_sum: f64,
    n: u64,
    /// confusion[true][pred]
    confusion: Vec<Vec<u64>>,
    scores: Vec<f64>,
    is_attack: Vec<bool>,
    groups: BTreeMap<String, GroupCount>,
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (c, &p) in row.iter().enumerate().skip(1) {
        let b = row[best];
        if !b.is_nan() && (p.is_nan() || p > b) {
            best = c;
        }
    }
    best
}

impl ClassificationAccumulator {
    /// `classes` output classes; `attack_class` is the class whose probability is the PAD
    /// attack score (`None`: no PAD metrics).
    pub fn new(classes: usize, attack_class: Option<usize>) -> Result<Self, MetricsError> {
        if classes == 0 {
            return Err(MetricsError::NoClasses);
        }
        if let Some(attack) = attack_class.filter(|&a| a >= classes) {
            return Err(MetricsError::AttackClassOutOfRange { attack, classes });
        }
        Ok(Self {
            classes,
            attack_class,
            loss_sum: 0.0,
            n: 0,
            confusion: vec![vec![0; classes]; classes],
            scores: Vec::new(),
            is_attack: Vec::new(),
            groups: BTreeMap::new(),
        })
    }

    /// Adds one batch. Validates everything first, so a rejected batch leaves the
    /// accumulator unchanged.
    ///
    /// * `loss_sum`: the *sum* of per-sample losses over the batch (mean loss × batch size);
    /// * `targets`: true class per row;
    /// * `probs`: class probabilities, row-major;
    /// * `groups`: one tag per row, or `None` when the data set has no shortcut groups.
    ///
    /// # Shapes
    /// `targets: [B]`, `probs: [B * C]` (a `[B, C]` tensor flattened), `groups: [B]`.
    pub fn update(
        &mut self,
        loss_sum: f64,
        targets: &[usize],
        probs: &[f64],
        groups: Option<&[GroupTag]>,
    ) -> Result<(), MetricsError> {
        let rows = targets.len();
        let classes = self.classes;
        if probs.len() != rows * classes {
            return Err(MetricsError::ProbsShape {
                got: probs.len(),
                rows,
                classes,
            });
        }
        if let Some((row, &target)) = targets.iter().enumerate().find(|(_, &t)| t >= classes) {
            return Err(MetricsError::TargetOutOfRange {
                row,
                target,
                classes,
            });
        }
        if let Some(tags) = groups {
            if tags.len() != rows {
                return Err(MetricsError::GroupsLen {
                    got: tags.len(),
                    rows,
                });
            }
            // Alignment must be consistent with earlier batches and within this one.
            let mut seen: BTreeMap<&str, Option<bool>> = BTreeMap::new();
            for (row, tag) in tags.iter().enumerate() {
                let before = self
                    .groups
                    .get(&tag.name)
                    .map(|g| g.aligned)
                    .or_else(|| seen.get(tag.name.as_str()).copied());
                match before {
                    Some(b) if b != tag.aligned => {
                        return Err(MetricsError::GroupAlignment {
                            name: tag.name.clone(),
                            before: b,
                            now: tag.aligned,
                            row,
                        });
                    }
                    _ => {
                        seen.insert(&tag.name, tag.aligned);
                    }
                }
            }
        }

        self.loss_sum += loss_sum;
        self.n += rows as u64;
        for (row, &target) in targets.iter().enumerate() {
            let p = &probs[row * classes..(row + 1) * classes];
            let pred = argmax(p);
            self.confusion[target][pred] += 1;
            if let Some(attack) = self.attack_class {
                self.scores.push(p[attack]);
                self.is_attack.push(target == attack);
            }
            if let Some(tags) = groups {
                let g = self
                    .groups
                    .entry(tags[row].name.clone())
                    .or_insert_with(|| GroupCount {
                        aligned: tags[row].aligned,
                        ..GroupCount::default()
                    });
                g.n += 1;
                g.correct += u64::from(pred == target);
            }
        }
        Ok(())
    }

    /// Samples seen since the last reset.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Attack scores and ground truth collected so far (empty without an attack class), e.g.
    /// to fix a threshold by a [`ThresholdRule`].
    pub fn attack_scores(&self) -> (&[f64], &[bool]) {
        (&self.scores, &self.is_attack)
    }

    /// Metrics of everything since the last reset.
    ///
    /// `threshold`: `None` fixes τ at this split's own EER point (validation); `Some(τ)`
    /// applies a τ fixed elsewhere (test gets val's τ). [`Self::compute_with`] fixes τ by
    /// another [`ThresholdRule`]. `pad` is `None` without an attack class or unless both
    /// attack and bona fide samples were seen. Balanced accuracy is the mean recall over
    /// classes that occur as targets. Groups with `aligned = None` count only in `groups` and the
    /// worst group. `step`, `lr`, `images_per_sec` and `wall_s` are left at their defaults
    /// for the trainer to fill in.
    pub fn compute(&self, epoch: u32, split: &str, threshold: Option<f64>) -> EpochMetrics {
        self.compute_with(
            epoch,
            split,
            ThresholdFrom::given_or(threshold, ThresholdRule::Eer),
        )
    }

    /// [`Self::compute`] with τ given, or fixed on this split by any [`ThresholdRule`].
    pub fn compute_with(&self, epoch: u32, split: &str, from: ThresholdFrom) -> EpochMetrics {
        let correct: u64 = (0..self.classes).map(|c| self.confusion[c][c]).sum();
        let balanced_accuracy = balanced_accuracy(&self.confusion);
        let threshold = from.given();
        let tau = match from {
            ThresholdFrom::Given(t) => Some(t),
            ThresholdFrom::Split(rule) => rule.fix(&self.scores, &self.is_attack),
        };
        let pad = self
            .attack_class
            .and(tau)
            .and_then(|t| pad_metrics(&self.scores, &self.is_attack, t));
        // One class only (a folder of genuine photos): its own error rate at a given τ.
        let one_class = match (pad.is_none(), self.attack_class, threshold) {
            (true, Some(_), Some(t)) if self.n > 0 => {
                let (apcer, bpcer) = error_rates_at(&self.scores, &self.is_attack, t);
                let attacks = self.is_attack.iter().any(|&a| a);
                let bona = self.is_attack.iter().any(|&a| !a);
                Some(OneClassRates {
                    threshold: t,
                    apcer: attacks.then_some(apcer),
                    bpcer: bona.then_some(bpcer),
                })
            }
            _ => None,
        };

        let groups: BTreeMap<String, GroupStat> = self
            .groups
            .iter()
            .map(|(name, g)| {
                let stat = GroupStat {
                    n: g.n,
                    correct: g.correct,
                    accuracy: rate(g.correct, g.n),
                    aligned: g.aligned,
                };
                (name.clone(), stat)
            })
            .collect();
        let worst_group_accuracy = groups
            .values()
            .map(|g| g.accuracy)
            .min_by(|a, b| a.total_cmp(b));
        let pooled = |want: bool| {
            let (n, c) = self
                .groups
                .values()
                .filter(|g| g.aligned == Some(want))
                .fold((0, 0), |(n, c), g| (n + g.n, c + g.correct));
            (n > 0).then(|| rate(c, n))
        };

        EpochMetrics {
            epoch,
            split: split.to_string(),
            n: self.n,
            loss: if self.n == 0 {
                0.0
            } else {
                self.loss_sum / self.n as f64
            },
            accuracy: rate(correct, self.n),
            balanced_accuracy,
            confusion: self.confusion.clone(),
            pad,
            one_class,
            groups,
            worst_group_accuracy,
            aligned_accuracy: pooled(true),
            conflicting_accuracy: pooled(false),
            ..EpochMetrics::default()
        }
    }

    /// Forgets every sample (keeps the class layout).
    pub fn reset(&mut self) {
        self.loss_sum = 0.0;
        self.n = 0;
        self.confusion.iter_mut().for_each(|r| r.fill(0));
        self.scores.clear();
        self.is_attack.clear();
        self.groups.clear();
    }
}

#[cfg(test)]
mod tests;

//! The data-set plan: labels (exactly balanced), stratified splits and the planted shortcut
//! groups of every sample, before anything is rendered.

use crate::card::{FlagFamily, Hair};
use crate::config::GenConfig;
use crate::pipeline::SampleSpec;
use crate::SynthError;
use moirelab_core::rng::Rng;

/// The plan of one sample: label, split and group attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanEntry {
    pub screen: bool,
    /// `train`, `val` or `test`.
    pub split: &'static str,
    pub family: FlagFamily,
    pub hair: Hair,
}

impl PlanEntry {
    pub fn label(&self) -> &'static str {
        if self.screen {
            "screen"
        } else {
            "direct"
        }
    }
}

pub(super) const SPLITS: [&str; 3] = ["train", "val", "test"];
/// Stream ids of the plan (far from sample indices).
const PLAN_STREAM: u64 = u64::MAX - 7;

/// Labels (exactly balanced), stratified splits and shortcut groups for the whole data set.
/// Within every (split, label) cell exactly `round(rho·n)` samples are aligned, so the
/// planted correlation is exact rather than a sampling accident.
pub fn plan(cfg: &GenConfig) -> Result<Vec<PlanEntry>, SynthError> {
    cfg.validate()?;
    let n = cfg.count;
    let k = &cfg.knobs;
    let mut rng = Rng::derive(cfg.seed, &[PLAN_STREAM]);
    let mut screen = vec![false; n];
    screen[..n / 2].iter_mut().for_each(|s| *s = true);
    rng.shuffle(&mut screen);
    let mut split = vec!["test"; n];
    for label in [true, false] {
        let mut idx: Vec<usize> = (0..n).filter(|&i| screen[i] == label).collect();
        rng.shuffle(&mut idx);
        let m = idx.len();
        let n_train = ((m as f64 * k.train_frac).round() as usize).min(m);
        let n_val = ((m as f64 * k.val_frac).round() as usize).min(m - n_train);
        for (j, &i) in idx.iter().enumerate() {
            split[i] = if j < n_train {
                "train"
            } else if j < n_train + n_val {
                "val"
            } else {
                "test"
            };
        }
    }
    let mut flag_aligned = vec![false; n];
    let mut hair_aligned = vec![false; n];
    for s in SPLITS {
        let (rf, rh) = if s == "test" {
            (k.test_rho_flag, k.test_rho_face)
        } else {
            (k.rho_flag, k.rho_face)
        };
        for label in [true, false] {
            let mut idx: Vec<usize> = (0..n)
                .filter(|&i| screen[i] == label && split[i] == s)
                .collect();
            for (rho, aligned) in [(rf, &mut flag_aligned), (rh, &mut hair_aligned)] {
                rng.shuffle(&mut idx);
                let na = (idx.len() as f64 * rho).round() as usize;
                for &i in &idx[..na.min(idx.len())] {
                    aligned[i] = true;
                }
            }
        }
    }
    Ok((0..n)
        .map(|i| {
            let s = screen[i];
            let family = if flag_aligned[i] == s {
                FlagFamily::A
            } else {
                FlagFamily::B
            };
            let hair = if hair_aligned[i] == s {
                Hair::Dark
            } else {
                Hair::Light
            };
            PlanEntry {
                screen: s,
                split: split[i],
                family,
                hair,
            }
        })
        .collect())
}

/// What the renderer needs to know of sample `index`'s plan.
pub(super) fn spec_of(index: usize, e: &PlanEntry) -> SampleSpec {
    SampleSpec {
        index,
        screen: e.screen,
        family: e.family,
        hair: e.hair,
        test: e.split == "test",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_balanced_stratified_and_plants_exact_rho() {
        let mut cfg = GenConfig::preset("flag-shortcut").unwrap();
        cfg.count = 1000;
        let p = plan(&cfg).unwrap();
        assert_eq!(p.iter().filter(|e| e.screen).count(), 500);
        for split in SPLITS {
            let cell: Vec<_> = p.iter().filter(|e| e.split == split).collect();
            let s = cell.iter().filter(|e| e.screen).count();
            let d = cell.len() - s;
            assert!(s.abs_diff(d) <= 1, "{split}: {s} vs {d}");
            let aligned = cell
                .iter()
                .filter(|e| (e.family == FlagFamily::A) == e.screen)
                .count() as f64
                / cell.len() as f64;
            let want = if split == "test" { 0.5 } else { 0.95 };
            assert!((aligned - want).abs() < 0.01, "{split}: {aligned}");
        }
        let train = p.iter().filter(|e| e.split == "train").count();
        assert_eq!(train, 700);
    }
}

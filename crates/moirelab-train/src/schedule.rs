//! Learning-rate schedules as pure functions of the step: `lr_at(base_lr, step, total)`.
//!
//! Being stateless, a schedule needs nothing in a checkpoint: a resumed run recomputes the
//! same LR from the step counter. Each schedule may start with a linear warm-up.
//!
//! ```toml
//! schedule = { kind = "cosine", min-lr = 1e-5, warmup-steps = 200 }
//! schedule = { kind = "step", step-size = 30, gamma = 0.1 }
//! schedule = { kind = "constant" }
//! ```

use crate::optim::OptimError;
use serde::{Deserialize, Serialize};

/// A learning-rate schedule. `step` below is the 0-based index of the optimizer step about
/// to be taken (or of the epoch, if the trainer updates the LR once per epoch) and `total`
/// the number of such steps in the run.
///
/// Warm-up (`warmup-steps = w`, default 0): for `step < w`,
/// `lr = base · (step + 1) / (w + 1)`, which is PyTorch's
/// `LinearLR(start_factor = 1/(w+1), total_iters = w)`; afterwards the schedule below runs on
/// `step − w` out of `total − w` steps (as `SequentialLR(milestones=[w])` does), so it starts
/// at `base` right after the warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    deny_unknown_fields
)]
pub enum Schedule {
    /// `lr = base`.
    Constant {
        #[serde(default)]
        warmup_steps: u64,
    },
    /// `lr = base · gamma^⌊step / step_size⌋` (PyTorch `StepLR`, closed form).
    Step {
        step_size: u64,
        gamma: f64,
        #[serde(default)]
        warmup_steps: u64,
    },
    /// `lr = min + (base − min) · (1 + cos(π · step / total)) / 2`, reaching `min_lr` at
    /// `step = total` and staying there (PyTorch `CosineAnnealingLR` closed form with
    /// `T_max = total`, `eta_min = min_lr`; PyTorch's would rise again after `T_max`).
    /// Loshchilov & Hutter, "SGDR", ICLR 2017.
    Cosine {
        #[serde(default)]
        min_lr: f64,
        #[serde(default)]
        warmup_steps: u64,
    },
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::Constant { warmup_steps: 0 }
    }
}

impl Schedule {
    /// Warm-up steps of any variant.
    pub fn warmup_steps(&self) -> u64 {
        match *self {
            Schedule::Constant { warmup_steps }
            | Schedule::Step { warmup_steps, .. }
            | Schedule::Cosine { warmup_steps, .. } => warmup_steps,
        }
    }

    /// Builds a schedule from epoch-based settings (`kind` = `constant`, `step` or
    /// `cosine`), for a trainer that updates the LR every optimizer step:
    /// warm-up = `round(warmup_epochs · batches_per_epoch)` steps, step size =
    /// `step_epochs · batches_per_epoch` steps. Pass `epochs · batches_per_epoch` as `total`
    /// to [`lr_at`](Self::lr_at). The result is validated.
    pub fn from_epochs(
        kind: &str,
        warmup_epochs: f64,
        step_epochs: u64,
        gamma: f64,
        min_lr: f64,
        batches_per_epoch: u64,
    ) -> Result<Self, OptimError> {
        if !(warmup_epochs.is_finite() && warmup_epochs >= 0.0) {
            return Err(OptimError::Schedule {
                field: "warmup-epochs",
                value: warmup_epochs.to_string(),
                reason: "must be finite and >= 0",
            });
        }
        let warmup_steps = (warmup_epochs * batches_per_epoch as f64).round() as u64;
        let schedule = match kind {
            "constant" => Schedule::Constant { warmup_steps },
            "step" => Schedule::Step {
                step_size: step_epochs.saturating_mul(batches_per_epoch),
                gamma,
                warmup_steps,
            },
            "cosine" => Schedule::Cosine {
                min_lr,
                warmup_steps,
            },
            other => {
                return Err(OptimError::Schedule {
                    field: "kind",
                    value: format!("\"{other}\""),
                    reason: "valid kinds: constant, step, cosine",
                })
            }
        };
        schedule.validate()?;
        Ok(schedule)
    }

    /// Rejects values for which the schedule is meaningless: `step-size` 0, a `gamma` that
    /// is not finite and positive, a `min-lr` that is not finite and non-negative.
    pub fn validate(&self) -> Result<(), OptimError> {
        let bad = |field: &'static str, value: String, reason: &'static str| {
            Err(OptimError::Schedule {
                field,
                value,
                reason,
            })
        };
        match *self {
            Schedule::Constant { .. } => Ok(()),
            Schedule::Step {
                step_size, gamma, ..
            } => {
                if step_size == 0 {
                    bad("step-size", "0".into(), "must be at least 1")
                } else if !(gamma.is_finite() && gamma > 0.0) {
                    bad("gamma", gamma.to_string(), "must be finite and > 0")
                } else {
                    Ok(())
                }
            }
            Schedule::Cosine { min_lr, .. } => {
                if !(min_lr.is_finite() && min_lr >= 0.0) {
                    bad("min-lr", min_lr.to_string(), "must be finite and >= 0")
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The learning rate for step `step` of `total` (see the type docs). Steps at or past
    /// `total` keep the final value.
    pub fn lr_at(&self, base_lr: f64, step: u64, total: u64) -> f64 {
        let w = self.warmup_steps();
        if step < w {
            return base_lr * (step + 1) as f64 / (w + 1) as f64;
        }
        let s = step - w;
        let t = total.saturating_sub(w);
        match *self {
            Schedule::Constant { .. } => base_lr,
            Schedule::Step {
                step_size, gamma, ..
            } => {
                // `powf` of an integral exponent, like Python's `gamma ** k` in StepLR's
                // closed form (a running product would round differently).
                let k = s / step_size.max(1);
                base_lr * gamma.powf(k as f64)
            }
            Schedule::Cosine { min_lr, .. } => {
                if s >= t {
                    min_lr
                } else {
                    // Same operation order as torch's `_get_closed_form_lr`.
                    min_lr
                        + (base_lr - min_lr)
                            * (1.0 + (std::f64::consts::PI * s as f64 / t as f64).cos())
                            / 2.0
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Schedule, toml::de::Error> {
        #[derive(Deserialize)]
        struct W {
            schedule: Schedule,
        }
        toml::from_str::<W>(s).map(|w| w.schedule)
    }

    #[test]
    fn toml_uses_kebab_case_kinds_and_fields_with_defaults() {
        assert_eq!(
            parse("schedule = { kind = \"cosine\", min-lr = 1e-5, warmup-steps = 3 }").unwrap(),
            Schedule::Cosine {
                min_lr: 1e-5,
                warmup_steps: 3
            }
        );
        assert_eq!(
            parse("schedule = { kind = \"step\", step-size = 30, gamma = 0.1 }").unwrap(),
            Schedule::Step {
                step_size: 30,
                gamma: 0.1,
                warmup_steps: 0
            }
        );
        assert_eq!(
            parse("schedule = { kind = \"constant\" }").unwrap(),
            Schedule::default()
        );
    }

    #[test]
    fn toml_rejects_unknown_fields_and_kinds() {
        let e = parse("schedule = { kind = \"cosine\", min_lr = 1e-5 }").unwrap_err();
        assert!(e.to_string().contains("min_lr"), "{e}");
        let e = parse("schedule = { kind = \"exp\" }").unwrap_err();
        assert!(e.to_string().contains("exp"), "{e}");
        assert!(parse("schedule = { kind = \"step\", gamma = 0.1 }").is_err());
    }

    #[test]
    fn validate_names_the_bad_field() {
        let e = Schedule::Step {
            step_size: 0,
            gamma: 0.1,
            warmup_steps: 0,
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("step-size"), "{e}");
        let e = Schedule::Step {
            step_size: 2,
            gamma: f64::NAN,
            warmup_steps: 0,
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("gamma"), "{e}");
        let e = Schedule::Cosine {
            min_lr: -1.0,
            warmup_steps: 0,
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("min-lr"), "{e}");
        assert!(Schedule::default().validate().is_ok());
    }

    #[test]
    fn from_epochs_converts_epochs_to_optimizer_steps() {
        assert_eq!(
            Schedule::from_epochs("step", 0.5, 3, 0.1, 0.0, 10).unwrap(),
            Schedule::Step {
                step_size: 30,
                gamma: 0.1,
                warmup_steps: 5
            }
        );
        assert_eq!(
            Schedule::from_epochs("cosine", 0.0, 1, 0.1, 1e-4, 7).unwrap(),
            Schedule::Cosine {
                min_lr: 1e-4,
                warmup_steps: 0
            }
        );
        let e = Schedule::from_epochs("linear", 0.0, 1, 0.1, 0.0, 7).unwrap_err();
        assert!(e.to_string().contains("\"linear\""), "{e}");
        let e = Schedule::from_epochs("constant", -1.0, 1, 0.1, 0.0, 7).unwrap_err();
        assert!(e.to_string().contains("warmup-epochs"), "{e}");
        // Validation applies: zero batches per epoch makes a zero step size.
        let e = Schedule::from_epochs("step", 0.0, 1, 0.1, 0.0, 0).unwrap_err();
        assert!(e.to_string().contains("step-size"), "{e}");
    }

    #[test]
    fn constant_is_flat_after_warmup() {
        let s = Schedule::Constant { warmup_steps: 3 };
        let got: Vec<f64> = (0..6).map(|i| s.lr_at(0.4, i, 10)).collect();
        assert_eq!(got, vec![0.1, 0.2, 0.30000000000000004, 0.4, 0.4, 0.4]);
        assert_eq!(Schedule::default().lr_at(0.4, 0, 0), 0.4);
    }

    #[test]
    fn step_decays_by_gamma_every_step_size_steps() {
        let s = Schedule::Step {
            step_size: 2,
            gamma: 0.5,
            warmup_steps: 0,
        };
        let got: Vec<f64> = (0..7).map(|i| s.lr_at(1.0, i, 7)).collect();
        assert_eq!(got, vec![1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]);
    }

    #[test]
    fn step_counts_from_the_end_of_warmup() {
        let s = Schedule::Step {
            step_size: 2,
            gamma: 0.1,
            warmup_steps: 1,
        };
        let got: Vec<f64> = (0..4).map(|i| s.lr_at(1.0, i, 7)).collect();
        assert_eq!(got[0], 0.5);
        assert_eq!(got[1..], [1.0, 1.0, 0.1]);
    }

    #[test]
    fn cosine_matches_torch_closed_form_and_hand_values() {
        let s = Schedule::Cosine {
            min_lr: 0.0,
            warmup_steps: 0,
        };
        // Hand values: T = 4 → factors 1, (1+√½)/2, ½, (1−√½)/2, 0.
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let want = [1.0, (1.0 + h) / 2.0, 0.5, (1.0 - h) / 2.0, 0.0, 0.0];
        for (i, w) in want.iter().enumerate() {
            let got = s.lr_at(1.0, i as u64, 4);
            assert!((got - w).abs() < 1e-15, "step {i}: {got} vs {w}");
        }
        // torch.optim.lr_scheduler.CosineAnnealingLR(T_max=10, eta_min=1e-3), base 0.1,
        // closed form evaluated in Python: eta_min + (base-eta_min)*(1+cos(pi*t/T))/2.
        let s = Schedule::Cosine {
            min_lr: 1e-3,
            warmup_steps: 0,
        };
        let torch = [
            0.1,
            0.09757729755661011,
            0.0905463412215599,
            0.07959536998847742,
            0.0657963412215599,
            0.0505,
            0.03520365877844011,
            0.021404630011522586,
            0.010453658778440109,
            0.0034227024433899004,
            0.001,
        ];
        for (i, w) in torch.iter().enumerate() {
            assert_eq!(s.lr_at(0.1, i as u64, 10), *w, "step {i}");
        }
    }

    #[test]
    fn cosine_warmup_ramps_then_anneals_over_the_remaining_steps() {
        let s = Schedule::Cosine {
            min_lr: 0.0,
            warmup_steps: 4,
        };
        let got: Vec<f64> = (0..7).map(|i| s.lr_at(1.0, i, 6)).collect();
        assert_eq!(got[..4], [0.2, 0.4, 0.6, 0.8]);
        assert_eq!(got[4], 1.0);
        assert!((got[5] - 0.5).abs() < 1e-15);
        assert_eq!(got[6], 0.0);
    }

    #[test]
    fn warmup_longer_than_the_run_never_reaches_base() {
        let s = Schedule::Cosine {
            min_lr: 0.0,
            warmup_steps: 10,
        };
        assert_eq!(s.lr_at(1.0, 4, 5), 5.0 / 11.0);
    }
}

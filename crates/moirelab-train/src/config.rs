//! `[train]` of the config file (burn-style: the trainer's config lives beside the trainer).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A `[train]` or `[eval]` value that is out of range or unknown. The message names the key
/// as it is written in the file; [`TrainError::Config`](crate::TrainError::Config) carries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Which device to train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when available, else CPU.
    Auto,
    Cpu,
    Cuda,
}

/// Class weighting of the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassWeights {
    /// `"none"` or `"balanced"` (inverse class frequency in train).
    Named(String),
    /// One weight per class.
    Explicit(Vec<f64>),
}

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TrainConfig {
    pub epochs: u32,
    pub batch_size: usize,
    /// `sgd`, `adam` or `adamw`.
    pub optimizer: String,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    /// `constant`, `step`, `cosine`.
    pub schedule: String,
    /// Epochs of linear warm-up (0 = none); composes with the schedule.
    pub warmup_epochs: f64,
    /// `step` schedule: multiply by `gamma` every `step-epochs` epochs.
    pub step_epochs: u32,
    pub gamma: f64,
    /// `cosine` schedule: final learning rate.
    pub min_lr: f64,
    pub label_smoothing: f64,
    pub class_weights: ClassWeights,
    /// Sample batches class-balanced (with replacement) instead of shuffling.
    pub balanced_sampling: bool,
    /// Clip the global gradient 2-norm (0 = off).
    pub grad_clip: f64,
    /// Metric that selects `best.safetensors` and drives early stopping, e.g.
    /// `val.balanced-accuracy`, `val.loss`, `val.eer`, `val.auc`, `val.worst-group-accuracy`.
    pub monitor: String,
    /// Stop after this many epochs without improvement of `monitor` (0 = never).
    pub early_stop_patience: u32,
    pub seed: u64,
    pub device: DeviceChoice,
    /// Intra-op threads (0 = all cores).
    pub threads: usize,
    /// Plain progress line every N batches (0 = once per epoch).
    pub log_every: usize,
    /// Evaluate on the test split at the end (with the best checkpoint).
    pub test: bool,
    /// Fix the run's threshold on val where at most this share of the bona fide images is
    /// rejected (the lowest APCER with BPCER <= the target) instead of at val's EER point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_bpcer: Option<f64>,
    /// Keep an exponential moving average of the weights with this decay (per optimizer
    /// step) and evaluate, explain and keep as best that average instead of the weights of
    /// the last step. Absent: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 8,
            batch_size: 32,
            optimizer: "adam".into(),
            lr: 1e-3,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            betas: [0.9, 0.999],
            eps: 1e-8,
            schedule: "constant".into(),
            warmup_epochs: 0.0,
            step_epochs: 10,
            gamma: 0.1,
            min_lr: 0.0,
            label_smoothing: 0.0,
            class_weights: ClassWeights::Named("none".into()),
            balanced_sampling: false,
            grad_clip: 0.0,
            monitor: "val.balanced-accuracy".into(),
            early_stop_patience: 0,
            seed: 42,
            device: DeviceChoice::Auto,
            threads: 0,
            log_every: 0,
            test: true,
            threshold_bpcer: None,
            ema_decay: None,
        }
    }
}

/// One data set of `[eval] extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExtraDataConfig {
    /// Short name: the split is recorded as `extra/<name>` (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Data-set folder (any layout) or CSV/JSONL manifest file; a relative path resolves
    /// against the working directory.
    pub root: PathBuf,
    /// The split evaluated; a folder or manifest without splits is evaluated whole.
    #[serde(default = "default_extra_split")]
    pub split: String,
    /// `"scale"` or `"all"`: evaluate with the model's BatchNorm statistics re-estimated on
    /// this data set's own images, unlabelled (as `moirelab eval --adapt-bn`), then put the
    /// trained ones back. Absent: the trained statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapt_bn: Option<String>,
}

impl ExtraDataConfig {
    /// The parsed `adapt-bn` (validated by [`EvalConfig::validate`]).
    pub fn adapt(&self) -> Result<Option<moirelab_models::BnAdapt>, ConfigError> {
        self.adapt_bn
            .as_deref()
            .map(|v| {
                v.parse().map_err(|_| {
                    ConfigError(format!(
                        "eval.extra '{}': adapt-bn = \"{v}\" is unknown; valid: scale, all",
                        self.name
                    ))
                })
            })
            .transpose()
    }
}

fn default_extra_split() -> String {
    "test".into()
}

/// `[eval]`: data sets evaluated after every epoch besides val, with the model's current
/// weights and that epoch's val threshold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct EvalConfig {
    pub extra: Vec<ExtraDataConfig>,
}

impl EvalConfig {
    pub fn is_empty(&self) -> bool {
        self.extra.is_empty()
    }

    /// Names, splits and roots; messages name the key as it is written in the file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.extra {
            let ok = !e.name.is_empty()
                && e.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return Err(ConfigError(format!(
                    "eval.extra: name '{}' must be non-empty letters, digits, '-', '_' or '.'",
                    e.name
                )));
            }
            if !seen.insert(e.name.as_str()) {
                return Err(ConfigError(format!(
                    "eval.extra: name '{}' is used twice",
                    e.name
                )));
            }
            if !["train", "val", "test"].contains(&e.split.as_str()) {
                return Err(ConfigError(format!(
                    "eval.extra '{}': split = \"{}\" is unknown; valid: train, val, test",
                    e.name, e.split
                )));
            }
            if e.root.as_os_str().is_empty() {
                return Err(ConfigError(format!(
                    "eval.extra '{}': root is empty",
                    e.name
                )));
            }
            e.adapt()?;
        }
        Ok(())
    }
}

/// Metrics `monitor` may name, with whether higher is better (shared with the report, which
/// finds the best epoch of a run without `summary.json` by the same rule).
pub use moirelab_core::run::MONITORS;

impl TrainConfig {
    /// Range and enum checks; messages name the key as it is written in the file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.epochs == 0 || self.epochs > 100_000 {
            return err(format!(
                "train.epochs = {} is out of range 1..=100000",
                self.epochs
            ));
        }
        if self.batch_size == 0 || self.batch_size > 65_536 {
            return err(format!(
                "train.batch-size = {} is out of range 1..=65536",
                self.batch_size
            ));
        }
        if !["sgd", "adam", "adamw"].contains(&self.optimizer.as_str()) {
            return err(format!(
                "train.optimizer = \"{}\" is unknown; valid: sgd, adam, adamw",
                self.optimizer
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && self.lr <= 10.0) {
            return err(format!("train.lr = {} is out of range (0, 10]", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return err(format!(
                "train.momentum = {} is out of range [0, 1)",
                self.momentum
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return err(format!(
                "train.weight-decay = {} must be >= 0",
                self.weight_decay
            ));
        }
        if !self.betas.iter().all(|b| (0.0..1.0).contains(b)) {
            return err(format!(
                "train.betas = {:?}: each must be in [0, 1)",
                self.betas
            ));
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            return err(format!("train.eps = {} must be > 0", self.eps));
        }
        if !["constant", "step", "cosine"].contains(&self.schedule.as_str()) {
            return err(format!(
                "train.schedule = \"{}\" is unknown; valid: constant, step, cosine",
                self.schedule
            ));
        }
        if !(self.warmup_epochs >= 0.0 && self.warmup_epochs.is_finite()) {
            return err(format!(
                "train.warmup-epochs = {} must be >= 0",
                self.warmup_epochs
            ));
        }
        // A warm-up as long as the run never reaches train.lr, and the schedule after it
        // never starts: a typo (or epochs cut short), not a plan.
        if self.warmup_epochs >= f64::from(self.epochs) {
            return err(format!(
                "train.warmup-epochs = {} must be below train.epochs = {} (the learning rate \
                 would never reach train.lr)",
                self.warmup_epochs, self.epochs
            ));
        }
        if self.step_epochs == 0 {
            return err("train.step-epochs must be >= 1".into());
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return err(format!(
                "train.gamma = {} is out of range (0, 1]",
                self.gamma
            ));
        }
        if !(self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return err(format!("train.min-lr = {} must be in [0, lr]", self.min_lr));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return err(format!(
                "train.label-smoothing = {} is out of range [0, 1)",
                self.label_smoothing
            ));
        }
        match &self.class_weights {
            ClassWeights::Named(n) if n != "none" && n != "balanced" => {
                return err(format!(
                    "train.class-weights = \"{n}\" is unknown; valid: \"none\", \"balanced\", or a list of numbers"
                ))
            }
            ClassWeights::Explicit(w)
                if w.iter().any(|x| !(*x >= 0.0 && *x <= MAX_CLASS_WEIGHT)) =>
            {
                return err(format!(
                    "train.class-weights = {w:?}: every weight must be a number in [0, 1e6]"
                ))
            }
            // All zero: the loss is 0/0 (NaN) from the first batch.
            ClassWeights::Explicit(w) if !w.iter().any(|x| *x > 0.0) => {
                return err(format!(
                    "train.class-weights = {w:?}: at least one weight must be above 0"
                ))
            }
            _ => {}
        }
        if let Some(b) = self.threshold_bpcer {
            if !(0.0..1.0).contains(&b) {
                return err(format!(
                    "train.threshold-bpcer = {b} is out of range [0, 1) (a share of val's bona fide images)"
                ));
            }
        }
        if let Some(d) = self.ema_decay {
            if !(d > 0.0 && d < 1.0) {
                return err(format!(
                    "train.ema-decay = {d} is out of range (0, 1) (e.g. 0.998: an average over about 500 steps)"
                ));
            }
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return err(format!("train.grad-clip = {} must be >= 0", self.grad_clip));
        }
        if !MONITORS.iter().any(|(m, _)| *m == self.monitor) {
            let valid: Vec<&str> = MONITORS.iter().map(|(m, _)| *m).collect();
            return err(format!(
                "train.monitor = \"{}\" is unknown; valid: {}",
                self.monitor,
                valid.join(", ")
            ));
        }
        if self.threads > 1024 {
            return err(format!(
                "train.threads = {} is out of range 0..=1024",
                self.threads
            ));
        }
        Ok(())
    }

    /// How val fixes the run's threshold.
    pub fn threshold_rule(&self) -> crate::metrics::ThresholdRule {
        match self.threshold_bpcer {
            Some(b) => crate::metrics::ThresholdRule::Bpcer(b),
            None => crate::metrics::ThresholdRule::Eer,
        }
    }
}

/// The largest `train.class-weights` entry: weights are relative, and larger ones overflow
/// the weighted loss to infinity or NaN.
pub const MAX_CLASS_WEIGHT: f64 = 1e6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_weights_must_be_in_range_and_not_all_zero() {
        for ok in ["[1, 3]", "[0, 1]", "[1e6, 0.5]"] {
            let c: TrainConfig = toml::from_str(&format!("class-weights = {ok}")).unwrap();
            c.validate().unwrap();
        }
        for (bad, why) in [
            ("[0, 0]", "at least one weight must be above 0"),
            ("[]", "at least one weight must be above 0"),
            ("[1e308, 1e308]", "in [0, 1e6]"),
            ("[-1, 2]", "in [0, 1e6]"),
            ("[nan, 2]", "in [0, 1e6]"),
            ("[inf, 2]", "in [0, 1e6]"),
        ] {
            let c: TrainConfig = toml::from_str(&format!("class-weights = {bad}")).unwrap();
            let e = c.validate().unwrap_err().0;
            assert!(e.starts_with("train.class-weights = "), "{bad}: {e}");
            assert!(e.contains(why) && !e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn defaults_validate_and_bad_values_name_the_key() {
        TrainConfig::default().validate().unwrap();
        let cfg = TrainConfig {
            optimizer: "rmsprop".into(),
            ..Default::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("train.optimizer") && e.contains("adamw"), "{e}");
        let cfg = TrainConfig {
            lr: 0.0,
            ..Default::default()
        };
        assert!(cfg.validate().unwrap_err().0.contains("train.lr"));
        let cfg = TrainConfig {
            monitor: "val.f1".into(),
            ..Default::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .0
            .contains("val.balanced-accuracy"));
    }

    #[test]
    fn a_warm_up_must_end_before_the_last_epoch() {
        let c: TrainConfig = toml::from_str("epochs = 12\nwarmup-epochs = 11.5").unwrap();
        c.validate().unwrap();
        for bad in ["12", "100"] {
            let c: TrainConfig =
                toml::from_str(&format!("epochs = 12\nwarmup-epochs = {bad}")).unwrap();
            let e = c.validate().unwrap_err().0;
            assert!(
                e.starts_with(&format!("train.warmup-epochs = {bad} must be below")),
                "{e}"
            );
            assert!(e.contains("train.epochs = 12"), "{e}");
        }
    }

    #[test]
    fn threshold_bpcer_picks_the_rule_and_names_a_bad_value() {
        assert_eq!(
            TrainConfig::default().threshold_rule(),
            crate::metrics::ThresholdRule::Eer
        );
        let c: TrainConfig = toml::from_str("threshold-bpcer = 0.1").unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.threshold_rule(),
            crate::metrics::ThresholdRule::Bpcer(0.1)
        );
        for bad in ["1.0", "-0.1", "nan"] {
            let c: TrainConfig = toml::from_str(&format!("threshold-bpcer = {bad}")).unwrap();
            let e = c.validate().unwrap_err().0;
            assert!(
                e.starts_with("train.threshold-bpcer = ") && e.contains("[0, 1)"),
                "{e}"
            );
        }
        // Absent, it is not written into a run's resolved config.
        let text = toml::to_string(&TrainConfig::default()).unwrap();
        assert!(!text.contains("threshold-bpcer"), "{text}");
    }

    #[test]
    fn ema_decay_is_optional_and_names_a_bad_value() {
        let c: TrainConfig = toml::from_str("ema-decay = 0.998").unwrap();
        c.validate().unwrap();
        assert_eq!(c.ema_decay, Some(0.998));
        for bad in ["1.0", "0.0", "-0.5", "nan"] {
            let c: TrainConfig = toml::from_str(&format!("ema-decay = {bad}")).unwrap();
            let e = c.validate().unwrap_err().0;
            assert!(
                e.starts_with("train.ema-decay = ") && e.contains("(0, 1)"),
                "{e}"
            );
        }
        let text = toml::to_string(&TrainConfig::default()).unwrap();
        assert!(!text.contains("ema-decay"), "{text}");
    }

    #[test]
    fn eval_extra_parses_and_names_its_errors() {
        let c: EvalConfig =
            toml::from_str("extra = [{ name = \"indep\", root = \"data/indep\" }]").unwrap();
        assert_eq!(c.extra[0].split, "test");
        assert_eq!(c.extra[0].adapt(), Ok(None));
        let c: EvalConfig =
            toml::from_str("extra = [{ name = \"a\", root = \"x\", adapt-bn = \"scale\" }]")
                .unwrap();
        assert_eq!(
            c.extra[0].adapt(),
            Ok(Some(moirelab_models::BnAdapt::Scale))
        );
        let bad: EvalConfig =
            toml::from_str("extra = [{ name = \"a\", root = \"x\", adapt-bn = \"mean\" }]")
                .unwrap();
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.contains("eval.extra 'a': adapt-bn = \"mean\"") && e.contains("scale, all"),
            "{e}"
        );
        c.validate().unwrap();
        let twice: EvalConfig = toml::from_str(
            "[[extra]]\nname = \"a\"\nroot = \"x\"\n[[extra]]\nname = \"a\"\nroot = \"y\"\n",
        )
        .unwrap();
        assert!(twice
            .validate()
            .unwrap_err()
            .0
            .contains("'a' is used twice"));
        let bad: EvalConfig = toml::from_str("extra = [{ name = \"a/b\", root = \"x\" }]").unwrap();
        assert!(bad.validate().unwrap_err().0.contains("'a/b'"));
        let split: EvalConfig =
            toml::from_str("extra = [{ name = \"a\", root = \"x\", split = \"dev\" }]").unwrap();
        assert!(split.validate().unwrap_err().0.contains("dev"));
        assert!(toml::from_str::<EvalConfig>("extra = [{ name = \"a\", path = \"x\" }]").is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = toml::from_str::<TrainConfig>("epochz = 3").unwrap_err();
        assert!(e.to_string().contains("epochz"), "{e}");
    }
}

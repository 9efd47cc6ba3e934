//! `[eval] extra`: named data sets evaluated after every epoch, besides val — an independent
//! test set, another capture device, the conflicting-flag subset. Each becomes an ordinary
//! `kind: "epoch"` line of `metrics.jsonl` with split `extra/<name>`, so curves, TensorBoard
//! and `summary.json` pick it up like val and test.
//!
//! A data set with `adapt-bn` is evaluated with the model's BatchNorm statistics re-estimated
//! on its own images (unlabelled, [`crate::adapt_batch_norm`]); the trained statistics are put
//! back before the hook returns, so training goes on bit for bit as without it. Configure
//! the same folder twice, with and without, to watch both curves.

use crate::config::EvalConfig;
use crate::eval::{adapt_batch_norm, evaluate, EvalOptions};
use crate::events::{EpochContext, EpochHook, HookError};
use crate::metrics::ThresholdFrom;
use crate::TrainError;
use moirelab_core::run::{extra_split, EpochMetrics, MetricsLine};
use moirelab_data::{DataConfig, Dataset, EvalSpec};
use moirelab_models::{BnAdapt, BnSnapshot};
use std::path::Path;

/// The threshold of an epoch without a val split (the same default as the final summary).
const NO_VAL_THRESHOLD: f64 = 0.5;

/// One opened extra data set.
#[derive(Debug)]
struct Extra {
    name: String,
    split: String,
    dataset: Dataset,
    adapt: Option<BnAdapt>,
}

/// The epoch hook that evaluates the `[eval] extra` data sets. Register it before hooks that
/// read the epoch's lines (the report's TensorBoard writer sees them that way).
#[derive(Debug, Default)]
pub struct ExtraEval {
    sets: Vec<Extra>,
    batch_size: usize,
}

impl ExtraEval {
    /// Open every extra data set of `cfg` with the training data's settings (`data`: image
    /// size, mode, cache) for a model with `classes` (attack class `classes[attack]`).
    /// Relative roots resolve against `base_dir`. Fails on the first unusable one, naming it.
    pub fn open(
        cfg: &EvalConfig,
        data: &DataConfig,
        base_dir: &Path,
        classes: &[String],
        attack: usize,
        batch_size: usize,
    ) -> Result<ExtraEval, TrainError> {
        cfg.validate()?;
        let mut sets = Vec::with_capacity(cfg.extra.len());
        for e in &cfg.extra {
            let root = if e.root.is_absolute() {
                e.root.clone()
            } else {
                base_dir.join(&e.root)
            };
            if !root.exists() {
                return Err(TrainError::Config(format!(
                    "eval.extra '{}': {} does not exist",
                    e.name,
                    e.root.display()
                )));
            }
            let spec = EvalSpec {
                split: e.split.clone(),
                classes: classes.to_vec(),
                attack_class: classes.get(attack).cloned(),
            };
            let dataset = Dataset::open_eval(&data.for_eval_source(&root), base_dir, &spec)
                .map_err(|err| TrainError::Config(format!("eval.extra '{}': {err}", e.name)))?;
            let adapt = e.adapt()?;
            let n = dataset.split(&e.split).len();
            if adapt.is_some() && n < 2 {
                // A single image has no spread to re-estimate.
                return Err(TrainError::Config(format!(
                    "eval.extra '{}': adapt-bn needs at least 2 images, the data set has {n}",
                    e.name
                )));
            }
            sets.push(Extra {
                name: e.name.clone(),
                split: e.split.clone(),
                adapt,
                dataset,
            });
        }
        Ok(ExtraEval {
            sets,
            batch_size: batch_size.max(64),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// `(name, split, data set)` of each extra data set, in config order.
    pub fn datasets(&self) -> impl Iterator<Item = (&str, &str, &Dataset)> {
        self.sets
            .iter()
            .map(|s| (s.name.as_str(), s.split.as_str(), &s.dataset))
    }

    /// Names and image counts of the data sets, in config order.
    pub fn sizes(&self) -> Vec<(String, usize)> {
        self.sets
            .iter()
            .map(|s| (s.name.clone(), s.dataset.split(&s.split).len()))
            .collect()
    }

    /// `(name, statistics)` of the data sets evaluated with re-estimated BatchNorm
    /// statistics, in config order.
    pub fn adapted(&self) -> Vec<(&str, BnAdapt)> {
        self.sets
            .iter()
            .filter_map(|s| s.adapt.map(|a| (s.name.as_str(), a)))
            .collect()
    }
}

/// The val threshold among an epoch's lines (`None` without val).
fn val_threshold(lines: &[MetricsLine]) -> Option<f64> {
    lines.iter().find_map(|l| match l {
        MetricsLine::Epoch(m) if m.split == "val" => m.pad.as_ref().map(|p| p.threshold),
        _ => None,
    })
}

impl EpochHook for ExtraEval {
    fn name(&self) -> &str {
        "eval-extra"
    }

    fn on_epoch_end(&mut self, ctx: &EpochContext<'_>) -> Result<Vec<MetricsLine>, HookError> {
        let threshold = val_threshold(ctx.metrics).unwrap_or(NO_VAL_THRESHOLD);
        let mut out = Vec::with_capacity(self.sets.len());
        for s in &self.sets {
            let opts = EvalOptions {
                batch_size: self.batch_size,
                device: ctx.device,
                epoch: ctx.epoch,
                split: extra_split(&s.name),
                threshold: ThresholdFrom::Given(threshold),
                perturbation: None,
            };
            let indices = s.dataset.split(&s.split);
            let m: Result<EpochMetrics, TrainError> = match s.adapt {
                None => evaluate(ctx.net, &s.dataset, indices, &opts),
                Some(adapt) => {
                    // Whatever happens, the trained statistics go back before training
                    // resumes.
                    let trained = BnSnapshot::take(ctx.vs);
                    let m = adapt_batch_norm(ctx.vs, ctx.net, adapt, &s.dataset, indices, &opts)
                        .and_then(|_| evaluate(ctx.net, &s.dataset, indices, &opts));
                    trained.restore();
                    m
                }
            };
            let m =
                m.map_err(|e| HookError::from(e).context(format!("extra data set '{}'", s.name)))?;
            out.push(MetricsLine::Epoch(m));
        }
        Ok(out)
    }
}

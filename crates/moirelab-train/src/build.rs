//! What a run is built from before its first epoch: [`TrainSetup`] (the config sections),
//! the model (seeded, `model.init`, `model.freeze`), the optimizer and LR schedule `[train]`
//! describes, the class weights of the loss, and what `meta.json` records when it starts.

use crate::config::{ClassWeights, TrainConfig};
use crate::device::device_name;
use crate::ema::WeightAverage;
use crate::optim::{OptimConfig, Optimizer, OptimizerKind};
use crate::schedule::Schedule;
use crate::TrainError;
use moirelab_core::run::RunMeta;
use moirelab_data::{DataConfig, Dataset};
use moirelab_models::{CamNet, ModelConfig};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

/// Everything needed to build a run: the nested config sections the trainer consumes.
#[derive(Debug, Clone)]
pub struct TrainSetup {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// Folder that relative paths in the config resolve against (the config file's folder or
    /// the working directory).
    pub base_dir: PathBuf,
}

/// A built model and what building it did.
pub(crate) struct BuiltModel {
    pub vs: nn::VarStore,
    pub net: Box<dyn CamNet>,
    /// `train.ema-decay`: the average of `vs`'s weights, equal to them at first.
    pub ema: Option<WeightAverage>,
    /// What `model.init`, `model.freeze` and `train.ema-decay` did, reported when `run` starts.
    pub notes: Vec<String>,
}

/// The model of a run, its initialisation seeded from `train.seed` (same config + seed, same
/// initial weights), `model.init` loaded into a fresh run and `model.freeze` applied (also on
/// resume, before the optimizer collects the trainable parameters), and its weight average
/// when `train.ema-decay` is set (a resume then loads it from the checkpoint).
pub(crate) fn build_model(
    setup: &TrainSetup,
    device: Device,
    fresh: bool,
) -> Result<BuiltModel, TrainError> {
    tch::manual_seed(setup.train.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let net = moirelab_models::build(&vs.root(), &setup.model)?;
    let mut notes = Vec::new();
    if let (true, Some(init)) = (fresh, &setup.model.init) {
        let path = setup.base_dir.join(init);
        let r = moirelab_models::load_pretrained(&mut vs, &setup.model, &path)?;
        notes.push(format!("model.init {}: {r}", init.display()));
    }
    let frozen = moirelab_models::apply_freeze(&vs, &setup.model)?;
    if frozen > 0 {
        notes.push(format!(
            "model.freeze = {}: {frozen} tensors frozen",
            setup.model.freeze.as_deref().unwrap_or_default()
        ));
    }
    let ema = setup.train.ema_decay.map(|d| {
        notes.push(format!(
            "weights averaged (train.ema-decay = {d}): val, the hooks and best.safetensors use the average"
        ));
        WeightAverage::new(d, &vs)
    });
    Ok(BuiltModel {
        vs,
        net,
        ema,
        notes,
    })
}

/// The optimizer `[train]` describes over the trainable parameters of `vs`, by name
/// (BatchNorm running statistics do not require grad).
pub(crate) fn build_optimizer(t: &TrainConfig, vs: &nn::VarStore) -> Result<Optimizer, TrainError> {
    let mut params: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let kind = match t.optimizer.as_str() {
        "sgd" => OptimizerKind::Sgd,
        "adamw" => OptimizerKind::Adamw,
        _ => OptimizerKind::Adam,
    };
    Ok(Optimizer::new(
        &OptimConfig {
            kind,
            lr: t.lr,
            momentum: t.momentum,
            nesterov: t.nesterov,
            weight_decay: t.weight_decay,
            betas: (t.betas[0], t.betas[1]),
            eps: t.eps,
        },
        params,
    )?)
}

/// The LR schedule the `[train]` keys describe, in optimizer steps.
pub(crate) fn schedule_for(t: &TrainConfig, batches_per_epoch: u64) -> Schedule {
    let warmup_steps = (t.warmup_epochs * batches_per_epoch as f64).round() as u64;
    match t.schedule.as_str() {
        "step" => Schedule::Step {
            step_size: t.step_epochs as u64 * batches_per_epoch.max(1),
            gamma: t.gamma,
            warmup_steps,
        },
        "cosine" => Schedule::Cosine {
            min_lr: t.min_lr,
            warmup_steps,
        },
        _ => Schedule::Constant { warmup_steps },
    }
}

/// Per-class loss weights from `train.class-weights` (`None`: unweighted).
pub(crate) fn class_weight_tensor(
    cw: &ClassWeights,
    ds: &Dataset,
    device: Device,
) -> Result<Option<Tensor>, TrainError> {
    let k = ds.classes().len();
    let w: Vec<f64> = match cw {
        ClassWeights::Named(n) if n == "balanced" => {
            let mut counts = vec![0usize; k];
            for &i in ds.split("train") {
                counts[ds.label(i)] += 1;
            }
            let total: usize = counts.iter().sum();
            counts
                .iter()
                .map(|&c| {
                    if c == 0 {
                        0.0
                    } else {
                        total as f64 / (k * c) as f64
                    }
                })
                .collect()
        }
        ClassWeights::Named(_) => return Ok(None),
        ClassWeights::Explicit(w) => {
            if w.len() != k {
                return Err(TrainError::Config(format!(
                    "train.class-weights has {} values but the data set has {k} classes ({})",
                    w.len(),
                    ds.classes().join(", ")
                )));
            }
            w.clone()
        }
    };
    let w: Vec<f32> = w.iter().map(|&x| x as f32).collect();
    Ok(Some(Tensor::from_slice(&w).to_device(device)))
}

/// What `meta.json` records of a run that starts (or resumes) training: its folder's name,
/// the device, threads and seed it runs with, the data set's classes and attack class, and
/// status `running`.
pub(crate) fn record_start(
    meta: &mut RunMeta,
    run_dir: &Path,
    dataset: &Dataset,
    device: Device,
    threads: usize,
    seed: u64,
) {
    meta.device = device_name(device);
    meta.threads = threads;
    meta.seed = seed;
    meta.classes = dataset.classes().to_vec();
    meta.attack_class = dataset.classes().get(dataset.attack_index()).cloned();
    meta.skipped_files = dataset.report().skipped.clone();
    meta.status = "running".into();
    meta.name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
}

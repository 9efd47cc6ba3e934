//! Evaluation outside the training step: [`evaluate`] a model on data-set indices (val, test,
//! `[eval] extra`, the CLI's `eval`) and [`load_run`] a finished or interrupted run's model.

use crate::checkpoint::{ckpt_err, load_weights, TrainState, CKPT_DIR, STATE};
use crate::metrics::{ClassificationAccumulator, GroupTag};
use crate::TrainError;
use moirelab_core::fsio;
use moirelab_core::run::{self as runfmt, EpochMetrics, RunSummary};
use moirelab_data::Dataset;
use moirelab_models::{CamNet, ModelConfig};
use std::path::Path;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// A model built from a run's config with its weights loaded (eval, predict, explain).
pub struct LoadedRun {
    pub vs: nn::VarStore,
    pub net: Box<dyn CamNet>,
    pub device: Device,
    /// Threshold fixed on val (from `summary.json` or `state.json`), if the run has one yet:
    /// a run in progress fixes it only when it finishes.
    pub threshold: Option<f64>,
}

/// The largest threshold a run may store: the float just above 1, where val's threshold
/// sweep puts its "nothing flagged" point when a score is exactly 1 (`metrics::sweep`).
/// Scores are probabilities, so anything above it, or below 0, decides every image alike.
const MAX_THRESHOLD: f64 = 1.0 + f64::EPSILON;

/// Build the model of a run and load `checkpoints/<which>.safetensors` (`best` or `last`)
/// with the checks of [`crate::checkpoint::load_weights`] (names, shapes, kinds, finite
/// values), and read the run's threshold ([`run_threshold`]).
pub fn load_run(
    run_dir: &Path,
    model: &ModelConfig,
    device: Device,
    which: &str,
) -> Result<LoadedRun, TrainError> {
    let path = run_dir.join(CKPT_DIR).join(format!("{which}.safetensors"));
    if !path.is_file() {
        return Err(ckpt_err(
            &path,
            "no such checkpoint (has the run finished an epoch?)",
        ));
    }
    let mut vs = nn::VarStore::new(device);
    let net = moirelab_models::build(&vs.root(), model)?;
    load_weights(&mut vs, &path)?;
    let threshold = run_threshold(run_dir)?;
    Ok(LoadedRun {
        vs,
        net,
        device,
        threshold,
    })
}

/// The decision threshold of a run: `summary.json`'s when it exists (a finished run), else
/// `checkpoints/state.json`'s, which is `null` until the run finishes; `None` when neither
/// file exists or the state has none yet. Both files are written atomically, so one that
/// exists but cannot be read or parsed, or a threshold outside `[0, 1]`, is damage: an
/// error naming the file, never a silent fallback.
fn run_threshold(run_dir: &Path) -> Result<Option<f64>, TrainError> {
    let summary = run_dir.join(runfmt::SUMMARY_JSON);
    let state = run_dir.join(CKPT_DIR).join(STATE);
    let (path, threshold) = if summary.exists() {
        let t = fsio::read_json::<RunSummary>(&summary)?.threshold;
        (summary, Some(t))
    } else if state.exists() {
        let t = fsio::read_json::<TrainState>(&state)?.threshold;
        (state, t)
    } else {
        return Ok(None);
    };
    match threshold {
        Some(t) if !(0.0..=MAX_THRESHOLD).contains(&t) => Err(ckpt_err(
            &path,
            format!("threshold = {t:?} is out of range [0, 1] (scores are probabilities; edited by hand?)"),
        )),
        t => Ok(t),
    }
}

/// How [`evaluate`] runs and labels its result.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub batch_size: usize,
    pub device: Device,
    /// Epoch recorded in the metrics.
    pub epoch: u32,
    /// Split name recorded in the metrics.
    pub split: String,
    /// A τ to apply (test: val's), or the rule that fixes one on this split (val: the run's
    /// `train.threshold-bpcer`, else the EER point).
    pub threshold: crate::metrics::ThresholdFrom,
    /// Perturb every eval view first (`moirelab eval --perturb`).
    pub perturbation: Option<moirelab_data::Perturbation>,
}

/// Re-estimate the BatchNorm statistics (those `adapt` names) of a model (`vs`, `net`: a
/// loaded run's, or the one in training) on a list of data-set indices (their eval views,
/// perturbed as `opts` says; labels are not read), in a fixed shuffled order and batches of
/// `opts.batch_size` (the last one joined to its neighbour when it would hold a single
/// image). Returns the number of BatchNorm layers re-estimated. Later forward passes of `net`
/// use the new statistics; reload the run, or restore a
/// [`BnSnapshot`](moirelab_models::BnSnapshot) taken before, to get the trained ones back.
pub fn adapt_batch_norm(
    vs: &tch::nn::VarStore,
    net: &dyn CamNet,
    adapt: moirelab_models::BnAdapt,
    dataset: &Dataset,
    indices: &[usize],
    opts: &EvalOptions,
) -> Result<usize, TrainError> {
    if indices.len() < 2 {
        return Err(TrainError::Adapt(format!(
            "need at least 2 images, the data set has {}",
            indices.len()
        )));
    }
    // Data sets are listed class by class: batches of one class would each be normalised
    // by that class's statistics, and later layers would see features no mixed set gives.
    let mut order = indices.to_vec();
    moirelab_core::rng::Rng::new(ADAPT_ORDER_SEED).shuffle(&mut order);
    let mut chunks: Vec<&[usize]> = order.chunks(opts.batch_size.max(2)).collect();
    if chunks.len() > 1 && chunks.last().is_some_and(|c| c.len() < 2) {
        let n = chunks.len();
        let joined = order.len() - chunks[n - 2].len() - 1;
        chunks.truncate(n - 2);
        chunks.push(&order[joined..]);
    }
    let mut r = moirelab_models::BnReestimate::start(vs, net, adapt)?;
    for chunk in chunks {
        let xs = dataset
            .eval_batch_perturbed(chunk, opts.perturbation.as_ref())?
            .to_device(opts.device);
        r.update(&xs)?;
    }
    Ok(r.finish())
}

/// Seed of [`adapt_batch_norm`]'s image order (any fixed value: the order only decides which
/// images share a batch).
const ADAPT_ORDER_SEED: u64 = 0x000A_DAB4;

/// Evaluate `net` on a list of data-set indices (eval mode, no augmentation, no grad).
pub fn evaluate(
    net: &dyn CamNet,
    dataset: &Dataset,
    indices: &[usize],
    opts: &EvalOptions,
) -> Result<EpochMetrics, TrainError> {
    evaluate_scored(net, dataset, indices, opts).map(|(m, _)| m)
}

/// [`evaluate`], also returning each image's attack score in the order of `indices` (empty
/// when the data set has no attack class), e.g. for error rates by slice
/// ([`crate::slices`]).
pub fn evaluate_scored(
    net: &dyn CamNet,
    dataset: &Dataset,
    indices: &[usize],
    opts: &EvalOptions,
) -> Result<(EpochMetrics, Vec<f64>), TrainError> {
    let start = Instant::now();
    let (batch_size, device) = (opts.batch_size, opts.device);
    let mut acc =
        ClassificationAccumulator::new(dataset.classes().len(), Some(dataset.attack_index()))
            .map_err(|e| TrainError::Config(e.to_string()))?;
    let has_groups = indices
        .iter()
        .any(|&i| !dataset.record(i).groups.is_empty());
    for chunk in indices.chunks(batch_size.max(1)) {
        let xs = dataset
            .eval_batch_perturbed(chunk, opts.perturbation.as_ref())?
            .to_device(device);
        let labels: Vec<i64> = chunk.iter().map(|&i| dataset.label(i) as i64).collect();
        let ys = Tensor::from_slice(&labels).to_device(device);
        let (loss, probs) = tch::no_grad(|| -> Result<(Tensor, Tensor), TrainError> {
            let logits = net.forward_t(&xs, false)?;
            let loss = logits.cross_entropy_for_logits(&ys) * chunk.len() as f64;
            Ok((loss, logits.softmax(-1, Kind::Float)))
        })?;
        let probs = probs.to_device(Device::Cpu).to_kind(Kind::Double);
        let probs: Vec<f64> = Vec::<f64>::try_from(probs.flatten(0, -1))?;
        check_finite(dataset, chunk, &probs)?;
        let targets: Vec<usize> = chunk.iter().map(|&i| dataset.label(i)).collect();
        let tags: Vec<GroupTag> = chunk
            .iter()
            .map(|&i| GroupTag {
                name: dataset.group_key(i),
                aligned: dataset.alignment(i),
            })
            .collect();
        acc.update(
            f64::try_from(loss)?,
            &targets,
            &probs,
            has_groups.then_some(tags.as_slice()),
        )
        .map_err(|e| TrainError::Config(e.to_string()))?;
    }
    let mut m = acc.compute_with(opts.epoch, &opts.split, opts.threshold);
    m.wall_s = start.elapsed().as_secs_f64();
    Ok((m, acc.attack_scores().0.to_vec()))
}

/// Every image's class probabilities (`probs`, row by row for `chunk`) must be finite: a NaN
/// attack score is below every threshold, so it would count as bona fide, the unsafe side for
/// an attack detector. The first image with one is an error naming it.
fn check_finite(dataset: &Dataset, chunk: &[usize], probs: &[f64]) -> Result<(), TrainError> {
    let k = (probs.len() / chunk.len().max(1)).max(1);
    for (row, &i) in probs.chunks(k).zip(chunk) {
        if let Some(&value) = row.iter().find(|p| !p.is_finite()) {
            return Err(TrainError::NonFiniteScore {
                image: dataset.root().join(&dataset.record(i).path),
                value,
            });
        }
    }
    Ok(())
}

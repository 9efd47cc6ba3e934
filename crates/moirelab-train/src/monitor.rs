//! The train split's metrics from the running sums of an epoch, and the number
//! `train.monitor` watches for the best checkpoint and early stopping, and the best epoch
//! it selects ([`record_best`]) or the stop it calls for ([`early_stop_reason`]).

use crate::checkpoint::{RunningTrain, TrainState};
use crate::config::TrainConfig;
use crate::metrics::balanced_accuracy;
use moirelab_core::run::{monitor_improves, monitor_value, EpochMetrics};

impl RunningTrain {
    /// Add one training batch: its labels, the argmax predictions and the batch's mean loss.
    pub(crate) fn add_batch(&mut self, labels: &[i64], preds: &[i64], mean_loss: f64) {
        for (y, p) in labels.iter().zip(preds) {
            self.confusion[*y as usize][*p as usize] += 1;
        }
        self.loss_sum += mean_loss * labels.len() as f64;
        self.n += labels.len() as u64;
    }
}

/// Train-split metrics from an epoch's running sums.
pub(crate) fn running_metrics(
    r: &RunningTrain,
    epoch: u32,
    step: u64,
    images: u64,
) -> EpochMetrics {
    let n = r.n.max(1);
    let correct: u64 = (0..r.confusion.len()).map(|i| r.confusion[i][i]).sum();
    EpochMetrics {
        epoch,
        split: "train".into(),
        step,
        n: r.n,
        loss: r.loss_sum / n as f64,
        accuracy: correct as f64 / n as f64,
        balanced_accuracy: balanced_accuracy(&r.confusion),
        confusion: r.confusion.clone(),
        images_per_sec: Some(images as f64 / r.seconds.max(1e-9)),
        wall_s: r.seconds,
        ..Default::default()
    }
}

/// Compare an epoch's monitor value with the best so far in `state`; on improvement the epoch
/// becomes the best one (with its val threshold). Returns whether it improved.
pub(crate) fn record_best(
    state: &mut TrainState,
    cfg: &TrainConfig,
    epoch: u32,
    train_m: &EpochMetrics,
    val_m: Option<&EpochMetrics>,
) -> bool {
    // Without a val split the train numbers stand in (documented in the README).
    let monitor = monitor_value(&cfg.monitor, val_m.unwrap_or(train_m));
    let improved = monitor_improves(&cfg.monitor, monitor, state.best_value);
    if improved {
        state.best_value = monitor.or(state.best_value);
        state.best_epoch = epoch;
        state.epochs_since_best = 0;
        state.threshold = val_m.and_then(|m| m.pad.as_ref()).map(|p| p.threshold);
    } else {
        state.epochs_since_best += 1;
    }
    improved
}

/// Why the run stops after `epoch`: `train.early-stop-patience` epochs passed without
/// improvement (never after the last epoch). `None`: it goes on.
pub(crate) fn early_stop_reason(
    state: &TrainState,
    cfg: &TrainConfig,
    epoch: u32,
) -> Option<String> {
    let patience = cfg.early_stop_patience;
    (patience > 0 && state.epochs_since_best >= patience && epoch < cfg.epochs).then(|| {
        format!(
            "early stop: {} did not improve for {patience} epochs (best {:.4} at epoch {})",
            cfg.monitor,
            state.best_value.unwrap_or(f64::NAN),
            state.best_epoch
        )
    })
}

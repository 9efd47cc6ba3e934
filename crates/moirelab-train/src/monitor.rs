//! The train split's metrics from the running sums of an epoch, and the number
//! `train.monitor` watches for the best checkpoint and early stopping.

use crate::checkpoint::RunningTrain;
use crate::metrics::balanced_accuracy;
use moirelab_core::run::EpochMetrics;

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

/// The value of `train.monitor` (val metrics, else train), `None` when absent or not finite.
pub(crate) fn monitor_value(
    monitor: &str,
    val: Option<&EpochMetrics>,
    train: &EpochMetrics,
) -> Option<f64> {
    // Without a val split the train numbers stand in (documented in the README).
    let m = val.unwrap_or(train);
    match monitor {
        "val.loss" => Some(m.loss),
        "val.accuracy" => Some(m.accuracy),
        "val.balanced-accuracy" => Some(m.balanced_accuracy),
        "val.eer" => m.pad.as_ref().map(|p| p.eer),
        "val.auc" => m.pad.as_ref().map(|p| p.auc),
        "val.worst-group-accuracy" => m.worst_group_accuracy,
        _ => None,
    }
    .filter(|v| v.is_finite())
}

//! What the trainer tells the outside world and how the outside world plugs in: progress
//! [`Event`]s for a [`Reporter`], per-epoch [`EpochHook`]s with their [`EpochContext`], and
//! the [`Outcome`] of a run. Nothing here touches the run folder.

use moirelab_core::run::{EpochMetrics, MetricsLine, RunSummary};
use moirelab_data::Dataset;
use moirelab_models::CamNet;
use std::path::{Path, PathBuf};
use tch::Device;

/// Progress events. The CLI turns them into bars or plain lines; `plain_line` is what goes to
/// `train.log` (and to stderr when it is not a terminal).
#[derive(Debug, Clone)]
pub enum Event {
    RunStart {
        run_dir: PathBuf,
        device: String,
        epochs: u32,
        start_epoch: u32,
        batches_per_epoch: usize,
        train_images: usize,
    },
    EpochStart {
        epoch: u32,
        epochs: u32,
        batches: usize,
        skip: usize,
    },
    Batch {
        epoch: u32,
        batch: usize,
        batches: usize,
        loss: f64,
        lr: f64,
        images_per_sec: f64,
    },
    EpochEnd {
        epoch: u32,
        epochs: u32,
        train: Box<EpochMetrics>,
        val: Option<Box<EpochMetrics>>,
        improved: bool,
    },
    Hook {
        epoch: u32,
        hook: String,
        seconds: f64,
    },
    Message(String),
}

impl Event {
    /// One `key=value` line, or `None` for events that only feed bars.
    pub fn plain_line(&self, log_every: usize) -> Option<String> {
        match self {
            Event::RunStart {
                run_dir,
                device,
                epochs,
                start_epoch,
                batches_per_epoch,
                train_images,
            } => Some(format!(
                "event=start run={} device={device} epochs={epochs} start-epoch={start_epoch} batches-per-epoch={batches_per_epoch} train-images={train_images}",
                run_dir.display()
            )),
            Event::EpochStart { .. } => None,
            Event::Batch {
                epoch,
                batch,
                batches,
                loss,
                lr,
                images_per_sec,
            } => (log_every > 0 && (batch + 1) % log_every == 0).then(|| {
                format!(
                    "event=batch epoch={epoch} batch={}/{batches} loss={loss:.4} lr={lr:.3e} img/s={images_per_sec:.0}",
                    batch + 1
                )
            }),
            Event::EpochEnd {
                epoch,
                epochs,
                train,
                val,
                improved,
            } => {
                let mut s = format!(
                    "event=epoch epoch={epoch}/{epochs} train.loss={:.4} train.acc={:.4} img/s={:.0}",
                    train.loss,
                    train.accuracy,
                    train.images_per_sec.unwrap_or(0.0)
                );
                if let Some(v) = val {
                    s.push_str(&format!(
                        " val.loss={:.4} val.acc={:.4} val.bacc={:.4}",
                        v.loss, v.accuracy, v.balanced_accuracy
                    ));
                    if let Some(p) = &v.pad {
                        s.push_str(&format!(" val.eer={:.4} val.auc={:.4}", p.eer, p.auc));
                    }
                    if let (Some(a), Some(c)) = (v.aligned_accuracy, v.conflicting_accuracy) {
                        s.push_str(&format!(" val.aligned-acc={a:.4} val.conflicting-acc={c:.4}"));
                    }
                }
                if *improved {
                    s.push_str(" best=yes");
                }
                s.push_str(&format!(" wall={:.1}s", train.wall_s));
                Some(s)
            }
            Event::Hook {
                epoch,
                hook,
                seconds,
            } => Some(format!("event=hook epoch={epoch} hook={hook} seconds={seconds:.2}")),
            Event::Message(m) => Some(format!("event=message text={m:?}")),
        }
    }
}

/// Receives progress. Implemented by the CLI (bars on a terminal, plain lines otherwise).
pub trait Reporter {
    fn event(&mut self, event: &Event);
}

/// What a hook sees at the end of an epoch.
pub struct EpochContext<'a> {
    pub epoch: u32,
    pub epochs: u32,
    pub run_dir: &'a Path,
    pub net: &'a dyn CamNet,
    pub dataset: &'a Dataset,
    pub device: Device,
    /// The metrics lines written for this epoch so far.
    pub metrics: &'a [MetricsLine],
}

/// Per-epoch extension point (Grad-CAM dumps, reports, TensorBoard). The trainer knows
/// nothing about them; lines a hook returns are appended to `metrics.jsonl`.
pub trait EpochHook {
    fn name(&self) -> &str;
    fn on_epoch_end(&mut self, ctx: &EpochContext<'_>) -> Result<Vec<MetricsLine>, String>;
    /// Called once after the final test evaluation (summary.json exists).
    fn on_run_end(&mut self, _run_dir: &Path) -> Result<(), String> {
        Ok(())
    }
}

/// How a call to [`Trainer::run`](crate::Trainer::run) ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Finished(RunSummary),
    EarlyStopped(RunSummary),
    /// Stopped on request after a batch; resumable.
    Interrupted {
        epoch: u32,
        next_batch: usize,
    },
}

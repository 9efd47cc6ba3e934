//! What the trainer tells the outside world and how the outside world plugs in: progress
//! [`Event`]s for a [`Reporter`], per-epoch [`EpochHook`]s with their [`EpochContext`], and
//! the [`Outcome`] of a run, and [`HookError`], what a failing hook returns. Nothing here
//! touches the run folder.

use moirelab_core::run::{EpochMetrics, MetricsLine, RunSummary};
use moirelab_data::Dataset;
use moirelab_models::CamNet;
use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};
use tch::{nn, Device};

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
    /// Something a hook could not do that does not change the run ([`EpochHook::take_warnings`]):
    /// one line, naming the file.
    Warning {
        hook: String,
        text: String,
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
            Event::Warning { hook, text } => Some(format!("event=warning hook={hook} text={text:?}")),
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
    /// The model's variables (a hook that changes any must put them back before it returns).
    pub vs: &'a nn::VarStore,
    pub dataset: &'a Dataset,
    pub device: Device,
    /// The metrics lines written for this epoch so far.
    pub metrics: &'a [MetricsLine],
}

/// Per-epoch extension point (Grad-CAM dumps, reports, TensorBoard). The trainer knows
/// nothing about them; lines a hook returns are appended to `metrics.jsonl`. An error stops
/// the run as [`TrainError::Hook`](crate::TrainError::Hook) (from `on_run_end`,
/// [`TrainError::RunEndHook`](crate::TrainError::RunEndHook)), named by [`EpochHook::name`].
/// A hook whose failures do not matter to the training (a report page) keeps them as
/// warnings instead ([`EpochHook::take_warnings`]).
pub trait EpochHook {
    /// Short name, used in `train.log` and in error messages.
    fn name(&self) -> &str;
    fn on_epoch_end(&mut self, ctx: &EpochContext<'_>) -> Result<Vec<MetricsLine>, HookError>;
    /// Called once after the final test evaluation (summary.json exists).
    fn on_run_end(&mut self, _run_dir: &Path) -> Result<(), HookError> {
        Ok(())
    }
    /// Warnings since the last call, one line each naming the file: what the hook could not do
    /// that changes neither the run's outcome nor its status. The trainer takes them after
    /// every `on_epoch_end` and `on_run_end` and sends each as an [`Event::Warning`] (which
    /// `train.log` keeps too).
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Why an [`EpochHook`] failed. Any `std::error::Error + Send + Sync` converts into it, so a
/// hook uses `?` on its own errors; [`HookError::msg`] makes one from text and
/// [`HookError::context`] says what the hook was doing. The trainer stops the run with
/// [`TrainError::Hook`](crate::TrainError::Hook), which adds the hook's name and the epoch;
/// the error itself stays reachable as that error's `source()`.
///
/// Like `anyhow::Error` it does not implement `std::error::Error` itself (that would clash
/// with the blanket `From`); it converts into `Box<dyn Error + Send + Sync>`.
pub struct HookError(Box<dyn Error + Send + Sync + 'static>);

impl HookError {
    /// A hook error that is only a message.
    pub fn msg(msg: impl fmt::Display) -> HookError {
        HookError(Box::new(Message(msg.to_string())))
    }

    /// Put `what` in front of this error: `"{what}: {self}"`, with `self` as its source.
    pub fn context(self, what: impl fmt::Display) -> HookError {
        HookError(Box::new(Context {
            what: what.to_string(),
            source: self.0,
        }))
    }

    /// The underlying error (to downcast it).
    pub fn into_inner(self) -> Box<dyn Error + Send + Sync + 'static> {
        self.0
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for HookError {
    fn from(e: E) -> HookError {
        HookError(Box::new(e))
    }
}

impl From<HookError> for Box<dyn Error + Send + Sync + 'static> {
    fn from(e: HookError) -> Self {
        e.0
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// [`HookError::msg`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

/// [`HookError::context`]: prints its source too, so one line carries the whole story.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
struct Context {
    what: String,
    source: Box<dyn Error + Send + Sync + 'static>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn failing_io() -> Result<(), HookError> {
        std::fs::read("/nonexistent/moirelab-hook-test")?;
        Ok(())
    }

    #[test]
    fn hook_errors_convert_with_question_mark_and_keep_their_source() {
        let e = failing_io().unwrap_err();
        assert!(e.into_inner().downcast_ref::<std::io::Error>().is_some());
        let e = HookError::from(std::io::Error::other("disk full")).context("writing x.png");
        assert_eq!(e.to_string(), "writing x.png: disk full");
        let inner = e.into_inner();
        assert_eq!(inner.source().unwrap().to_string(), "disk full");
        assert_eq!(HookError::msg("no probes").to_string(), "no probes");
    }
}

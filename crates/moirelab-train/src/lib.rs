//! The training loop of moirelab and everything a run needs to be impossible to lose:
//! optimizers with saveable state ([`optim`]), LR schedules ([`schedule`]), PAD and group
//! metrics ([`metrics`]), the epoch loop over a run folder ([`trainer`]) with its checkpoints
//! and exact resume (`checkpoint.rs`), evaluation ([`eval`]) and `summary.json`
//! (`summary.rs`).
//!
//! It does not own the data pipeline (moirelab-data), the architectures (moirelab-models),
//! Grad-CAM or reports: those plug in through [`EpochHook`] ([`events`]). It never prints:
//! progress goes to a [`Reporter`] (the CLI draws bars or plain lines) and, as plain lines, to
//! `train.log`.

mod build;
mod checkpoint;
pub mod config;
pub mod device;
mod ema;
pub mod eval;
pub mod events;
pub mod extra;
pub mod metrics;
mod monitor;
pub mod optim;
pub mod schedule;
pub mod slices;
mod summary;
pub mod trainer;

pub use config::{ConfigError, DeviceChoice, EvalConfig, ExtraDataConfig, TrainConfig};
pub use device::choose_device;
pub use eval::{adapt_batch_norm, evaluate, evaluate_scored, load_run, EvalOptions, LoadedRun};
pub use events::{EpochContext, EpochHook, Event, HookError, Outcome, Reporter};
pub use extra::ExtraEval;
pub use summary::now_rfc3339;
pub use trainer::{TrainSetup, Trainer};

/// What a run that stopped on a non-finite loss in `epoch` keeps: the checkpoint of the
/// epoch before, or none when that was the first.
fn kept_after_non_finite(epoch: u32) -> String {
    match epoch {
        0 | 1 => "before the first epoch finished, so no epoch's checkpoint is kept (check \
                  model.init and train.lr)"
            .into(),
        e => format!("the checkpoint of epoch {} is kept", e - 1),
    }
}

/// Errors of training, resuming and evaluating. Each names the file, key or epoch concerned.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad config value (see [`ConfigError`]) or a config that does not fit the data set.
    #[error("config: {0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] moirelab_data::DataError),
    #[error(transparent)]
    Model(#[from] moirelab_models::ModelError),
    #[error(transparent)]
    Core(#[from] moirelab_core::CoreError),
    #[error(transparent)]
    Optim(#[from] optim::OptimError),
    #[error("{path}: {msg}")]
    Checkpoint {
        path: std::path::PathBuf,
        msg: String,
    },
    #[error("epoch {epoch}, batch {batch}: loss is {value} (not finite); stopped, {}", kept_after_non_finite(*epoch))]
    NonFinite {
        epoch: u32,
        batch: usize,
        value: f64,
    },
    /// A model output that is not a probability (NaN or infinite) for one image: it can be
    /// neither flagged nor passed.
    #[error("{}: the model's output is not finite (probability {value}), so the image can be neither flagged nor passed (weights that overflow on it?)", image.display())]
    NonFiniteScore {
        image: std::path::PathBuf,
        value: f64,
    },
    #[error("device: {0}")]
    Device(String),
    /// The stop flag was set while the run was starting (data scan, model build): nothing
    /// was trained and no run folder is left.
    #[error("interrupted before training started; no run folder was made")]
    Stopped,
    /// Data that cannot adapt the BatchNorm statistics ([`eval::adapt_batch_norm`]).
    #[error("BatchNorm statistics: {0}")]
    Adapt(String),
    /// A hook's [`HookError`] from `on_epoch_end`, with the hook's name and the epoch; the
    /// hook's error is the `source()`.
    #[error("epoch hook '{hook}' at epoch {epoch}: {source}")]
    Hook {
        hook: String,
        epoch: u32,
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A hook's [`HookError`] from `on_run_end`: every epoch and `summary.json` were written
    /// before it.
    #[error("end-of-run hook '{hook}' (after summary.json was written): {source}")]
    RunEndHook {
        hook: String,
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl From<ConfigError> for TrainError {
    fn from(e: ConfigError) -> Self {
        TrainError::Config(e.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_models_idea_of_the_loader_normalisation_is_the_loaders() {
        // `model.normalize` undoes the loader's normalisation inside the model.
        for c in 0..3 {
            assert_eq!(
                moirelab_models::LOADER_MEAN[c] as f32,
                moirelab_data::MEAN[c]
            );
            assert_eq!(moirelab_models::LOADER_STD[c] as f32, moirelab_data::STD[c]);
        }
    }
}

//! Class-activation maps for moirelab models and everything that turns them into evidence:
//! the CAM methods themselves (Grad-CAM and six relatives, batched, one target per image), the
//! per-epoch probe dump of a training run (grid PNG, tiles, raw maps as safetensors,
//! `probes.json`), colormaps and overlays, attention-in-region metrics against the data set's
//! region masks, the `explain` command's per-image output, and sanity checks (cascading
//! parameter randomisation, deletion/insertion faithfulness).
//!
//! It does not own the models (it reaches their layers through
//! [`moirelab_models::CamNet`]), data loading or preprocessing (the caller hands over
//! [`ProbeInput`]s with the model input tensor and the display image), the training loop (the
//! trainer calls [`Dumper::dump`] from its epoch hook), or the run-folder record types, which
//! live in `moirelab_core::run` so writer and reader cannot drift apart.
//!
//! Semantics follow `docs/GRADCAM.md` and match pytorch-grad-cam 1.5.7 where it is right: maps
//! are computed in eval mode from `d(score)/d(activation)` obtained with
//! `Tensor::run_backward` (parameter gradients are never touched), min-max normalised per
//! image at feature resolution, then bilinearly upsampled with half-pixel centres.

pub mod cam;
pub mod colormap;
pub mod config;
mod dump;
mod explain;
pub mod grid;
pub mod metrics;
pub mod overlay;
mod probes;
pub mod sanity;

pub use cam::{compute, CamBatch, CamMap, Method, Targets};
pub use colormap::Colormap;
pub use config::{GradcamConfig, KeepPolicy, Scale};
pub use dump::{prune_epochs, Dumper};
pub use explain::{explain, ExplainInput, ExplainOptions, ExplainRecord};
pub use probes::{select_probes, ProbeInput};

use std::path::PathBuf;

/// Errors of CAM computation, dumps and rendering. Every variant says which value, file,
/// probe or key it is about.
#[derive(Debug, thiserror::Error)]
pub enum GradcamError {
    #[error("unknown CAM method '{name}'; valid methods: {}", cam::Method::NAMES.join(", "))]
    UnknownMethod { name: String },
    #[error("unknown colormap '{name}'; valid colormaps: {}", colormap::Colormap::NAMES.join(", "))]
    UnknownColormap { name: String },
    #[error(transparent)]
    Model(#[from] moirelab_models::ModelError),
    #[error(
        "targets: {got} class indices for a batch of {batch} images (one per image is required)"
    )]
    TargetCount { got: usize, batch: usize },
    #[error("target class {class} for image {image} is out of range 0..{classes}")]
    TargetRange {
        image: usize,
        class: i64,
        classes: i64,
    },
    #[error("input shape {got:?}: {expected}")]
    Shape { got: Vec<i64>, expected: String },
    #[error("no CAM methods requested")]
    NoMethods,
    #[error("gradcam config: {0}")]
    Config(String),
    #[error("probe {index} ('{id}'): {msg}")]
    Probe {
        index: usize,
        id: String,
        msg: String,
    },
    #[error("{path}: {msg}")]
    Write { path: PathBuf, msg: String },
    /// [`explain`]: the model's output for input `index` is not finite, so it can be neither
    /// flagged nor passed; nothing is written for its batch.
    #[error("input {index}: the model's output is not finite (probability {value})")]
    NonFiniteScore { index: usize, value: f64 },
    #[error(transparent)]
    Core(#[from] moirelab_core::CoreError),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = GradcamError> = std::result::Result<T, E>;

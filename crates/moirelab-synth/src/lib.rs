//! Procedural ID cards and a screen-recapture simulator with ground-truth region masks.
//!
//! This crate owns the synthetic data set of moirelab (spec: `docs/SYNTH.md`): stage A renders
//! an ID-1 card (guilloche, flag, portrait, text, ICAO 9303 MRZ, signature) with label masks;
//! stage B shows recaptures on a display simulated as physics (a sub-pixel grid sampled by the
//! camera, so moiré emerges; panel tone; a PWM backlight read by a rolling shutter; the
//! attacker's JPEG); stages C/D (perspective, background, lighting, glare, a lens, a Bayer
//! sensor, demosaicing, sharpening, JPEG and the resize to the output size) are drawn from
//! identical distributions for both classes. It plants the
//! flag/hair shortcuts on request and writes data sets in the `moirelab-core` format
//! (`dataset.json`, `manifest.jsonl`, PNG images, 16-bit bit-field mask PNGs, splits,
//! counterfactual flag twins). It does not read data sets for training, does not depend on
//! libtorch, and never prints.
//!
//! Every sample is a pure function of `(config, seed, index)`: per-sample RNG streams are
//! derived with `moirelab_core::rng::Rng::derive`, so bytes do not depend on thread count.

// Pixel code indexes several parallel RGB arrays by channel `k`; iterator rewrites of those
// loops obscure the arithmetic.
#![allow(clippy::needless_range_loop)]

mod camera;
mod card;
mod config;
mod dataset;
mod display;
mod draws;
mod geom;
mod mrz;
mod pipeline;
mod raster;
mod sampling;
mod scene;
mod viewing;

pub use camera::{Demosaic, Resize};
pub use card::{FlagFamily, Hair, CARD_ASPECT};
pub use config::{
    knob_value, preset_names, Artifact, Bezel, GenConfig, Holdout, Knobs, Overrides, KNOB_NAMES,
    MAX_COUNT, MAX_SIZE, MIN_SIZE,
};
pub use dataset::{
    dataset_meta, encode_mask_png, generate, generate_locked, generate_reusing, plan,
    read_mask_png, render_sample, write_preview, Donor, GenSummary, PlanEntry, Sample, WriteLock,
    SHORTCUT_FLAG, SHORTCUT_HAIR,
};
pub use display::Layout;
pub use geom::Homography;
pub use mrz::{check_digit, Td1};

/// Generator name recorded in `dataset.json`.
pub const GENERATOR_NAME: &str = "moirelab-synth";
/// Generator version recorded in `dataset.json` (bumped whenever output bytes change).
pub const GENERATOR_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+synth.6");

/// Region names in bit order: bit i of a mask pixel is `REGIONS[i]`.
pub const REGIONS: [&str; 11] = [
    "card",
    "flag",
    "photo",
    "face",
    "mrz",
    "text",
    "guilloche",
    "signature",
    "moire",
    "bands",
    "glare",
];

/// Bit of a region name; 0 for a name not in [`REGIONS`] (an internal constant, never user
/// input).
pub(crate) fn region_bit(name: &str) -> u16 {
    REGIONS
        .iter()
        .position(|r| *r == name)
        .map_or(0, |i| 1u16 << i)
}

/// Errors of the generator. Messages are one line and name the offending key, file or value.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("unknown preset `{name}`; valid presets: {valid}")]
    UnknownPreset { name: String, valid: String },
    #[error("unknown knob `{key}`; valid knobs: {valid}")]
    UnknownKnob { key: String, valid: String },
    #[error("knob `{key}`: bad value `{value}`: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("`{spec}`: expected knob=value")]
    NotKnobValue { spec: String },
    #[error("knob `{key}`: value {value} is out of range {range}")]
    OutOfRange {
        key: String,
        value: String,
        range: String,
    },
    #[error("invalid config: {what}: {msg}")]
    Invalid { what: String, msg: String },
    #[error("sample index {index} is out of range (count {count})")]
    IndexOutOfRange { index: usize, count: usize },
    #[error("{path}: output folder exists and is not empty (use force to replace it)")]
    OutputNotEmpty { path: std::path::PathBuf },
    #[error("{path}: stopped waiting for {} to finish writing it", moirelab_core::dirlock::process_text(*.holder))]
    StoppedWaiting {
        path: std::path::PathBuf,
        holder: Option<u32>,
    },
    /// Generation was stopped (see `generate_locked`) before every sample was written.
    #[error("{path}: stopped; the data set was not written (nothing of it was kept)")]
    Stopped { path: std::path::PathBuf },
    /// An existing data set that `force` would replace is being read; `readers` names them.
    #[error("{path}: not replaced: {readers} is reading this data set (stop it first, or write the new one into another folder)")]
    InUse {
        path: std::path::PathBuf,
        readers: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: image encode/decode failed: {msg}")]
    Image {
        path: std::path::PathBuf,
        msg: String,
    },
    #[error("sample {index}: render failed: {msg}")]
    Render { index: usize, msg: String },
    #[error(transparent)]
    Core(#[from] moirelab_core::CoreError),
}

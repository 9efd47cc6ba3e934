//! Generator configuration: presets, knobs and their checks. Overrides of a preset (the
//! `[data.knobs]` table of a config file, `gen-data --set knob=value`) are deserialized into
//! [`Overrides`] (`overrides.rs`) and applied with [`GenConfig::apply`].

mod holdout;
mod overrides;

pub use holdout::Holdout;
pub use overrides::{knob_value, Overrides};

use crate::display::Layout;
use crate::draws::STREAM_SIZE;
use crate::SynthError;
use moirelab_core::rng::Rng;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Accepted range of the probabilities and fractions.
const UNIT: (f64, f64) = (0.0, 1.0);
/// Accepted range of `artifact-gain`.
const GAIN: (f64, f64) = (0.0, 25.0);
/// Accepted range of the display pitch knobs (output pixels per display pixel).
const PITCH: (f64, f64) = (0.05, 8.0);
/// Accepted range of the sensor-scale knobs.
const SCALE: (f64, f64) = (1.0, 8.0);
/// Accepted range of the sensor noise knobs (`a`, variance per unit of linear signal): from a
/// clean base ISO to a dim room on a small sensor.
const NOISE: (f64, f64) = (1e-5, 0.05);
/// Accepted range of the lens blur knobs (Gaussian σ in sensor pixels): from a lens sharper
/// than any phone's to one that smears two pixels.
const LENS: (f64, f64) = (0.1, 3.0);
/// Accepted range of the upload JPEG quality knobs.
const JPEG_Q: (u8, u8) = (10, 100);
/// Defocus of an out-of-focus photo (`defocus-prob`): Gaussian σ in output pixels, uniform.
/// From a softening just visible at the output size to text strokes that merge; the shipped
/// transfer reference without defocus in training calls most genuine photos blurred this
/// much screens (docs/SYNTH.md, "Defocus").
pub const DEFOCUS: (f64, f64) = (0.3, 1.2);

/// Smallest and largest output size in pixels (square images).
pub const MIN_SIZE: u32 = 64;
pub const MAX_SIZE: u32 = 512;
/// Most sides in `sizes`.
pub const MAX_SIZES: usize = 16;
/// Largest accepted `count` (a guard against typos such as an extra zero or two).
pub const MAX_COUNT: usize = 10_000_000;

/// Stage-B screen artifacts that can be switched on and off for ablations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Artifact {
    /// The display's sub-pixel grid: the emitting apertures the camera samples (moiré, colour
    /// fringes and the pixel structure emerge from it). Off: a uniformly emitting surface.
    Moire,
    /// A PWM-dimmed backlight read by the rolling shutter (bands emerge along sensor rows).
    Bands,
    /// The panel's tone curve, white point, black level and gamut.
    Tone,
    /// Uniform veil of the cover glass (the glare blob itself is a shared nuisance).
    Veil,
    /// The viewer's resampling of the card file to the display's pixels.
    Blur,
    /// The attacker's file was a JPEG (on half of the recaptures): double compression.
    DoubleJpeg,
    /// The panel seen off its axis: tone gradients across the card by panel technology
    /// (`viewing.rs`). Off by default.
    Angle,
}

impl Artifact {
    pub const ALL: [Artifact; 7] = [
        Artifact::Moire,
        Artifact::Bands,
        Artifact::Tone,
        Artifact::Veil,
        Artifact::Blur,
        Artifact::DoubleJpeg,
        Artifact::Angle,
    ];
    /// The default set (docs/SYNTH.md): every display effect but the glass veil and the
    /// off-axis view.
    pub const DEFAULT: [Artifact; 5] = [
        Artifact::Moire,
        Artifact::Bands,
        Artifact::Tone,
        Artifact::Blur,
        Artifact::DoubleJpeg,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Artifact::Moire => "moire",
            Artifact::Bands => "bands",
            Artifact::Tone => "tone",
            Artifact::Veil => "veil",
            Artifact::Blur => "blur",
            Artifact::DoubleJpeg => "double-jpeg",
            Artifact::Angle => "angle",
        }
    }

    pub fn parse(s: &str) -> Option<Artifact> {
        Artifact::ALL.into_iter().find(|a| a.name() == s)
    }

    /// An effect of the display itself (what `cue-dropout` may switch off), as opposed to the
    /// attacker's file and viewer (blur, double JPEG).
    pub fn is_display(self) -> bool {
        !matches!(self, Artifact::Blur | Artifact::DoubleJpeg)
    }
}

/// Where a monitor bezel / viewer canvas appears (a notorious shortcut when only attacks have it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bezel {
    /// No canvas: the screen shows exactly the card.
    Off,
    /// Screen recordings show the viewer canvas and a dark bezel; direct captures do not.
    AttackOnly,
    /// Both classes show a dark frame around the card (direct: a card on a framed mat).
    Both,
    /// The card is rectified to fill the whole frame (a document detector's crop).
    RectifiedCrop,
}

impl Bezel {
    pub const ALL: [Bezel; 4] = [
        Bezel::Off,
        Bezel::AttackOnly,
        Bezel::Both,
        Bezel::RectifiedCrop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bezel::Off => "off",
            Bezel::AttackOnly => "attack-only",
            Bezel::Both => "both",
            Bezel::RectifiedCrop => "rectified-crop",
        }
    }
}

/// Every tunable of the generator. Field names are the kebab-case knob names of
/// [`Overrides`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Knobs {
    /// P(flag A | screen) = P(flag B | direct) in train and val.
    pub rho_flag: f64,
    /// The same in test.
    pub test_rho_flag: f64,
    /// P(dark hair | screen) = P(light hair | direct) in train and val.
    pub rho_face: f64,
    /// The same in test.
    pub test_rho_face: f64,
    /// Multiplies every display effect: the sub-pixel grid's modulation, band depth, veil and
    /// tone deviations (0: a perfect display; > 1: exaggerated, for smoke tests).
    pub artifact_gain: f64,
    /// Stage-B artifacts that are on.
    pub artifacts: Vec<Artifact>,
    pub bezel: Bezel,
    /// Probability of a specular glare blob (glass for screens, lamination for cards: same
    /// distribution for both classes so glare is not a class cue).
    pub glare_prob: f64,
    /// Probability that the guilloche is drawn aliased (accidental moiré on genuine cards too;
    /// drawn for both classes, so it is a hard negative and not a label cue).
    pub aliased_guilloche: f64,
    /// Probability that a card carries a diffractive foil (a hologram: a rainbow-coloured
    /// patch with a line relief), for both classes alike. Left out of the serialized config
    /// at 0, so data sets made before the knob existed keep matching their configs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hologram_prob: f64,
    /// Probability that a card gets a design other than the template (paper and ink of any
    /// hue, a header band, the portrait on either side, lighter lettering) and, drawn apart,
    /// that the desk is any colour from flat to textured; both classes alike. Left out of the
    /// serialized config at 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub design_variety: f64,
    /// Probability that a train or val recapture loses each of the display's own effects in
    /// `artifacts` (grid, bands, tone, veil, view; independently, one always stays on), so
    /// that no single cue is needed to call a screen a screen. Test samples show every effect.
    /// Left out of the serialized config at 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cue_dropout: f64,
    /// Probability that a photo, of either class, is out of focus: a Gaussian defocus of
    /// [`DEFOCUS`] output pixels added to the lens blur, so that a soft image is not a screen
    /// cue. Left out of the serialized config at 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub defocus_prob: f64,
    /// Probability that a photo's camera JPEG, and independently its upload JPEG, subsample
    /// chroma 4:2:0 (as phone cameras, libjpeg's defaults and browsers do) instead of 4:4:4,
    /// both classes alike. Left out of the serialized config at 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jpeg_420_prob: f64,
    /// Display pixel pitch in output pixels (log-uniform range): how large one display pixel
    /// appears in the final image. Together with the sensor scale it sets the pitch on the
    /// sensor, and so whether and where moiré forms.
    pub pitch_min: f64,
    pub pitch_max: f64,
    /// The sub-pixel layouts a panel is drawn from, uniformly (in [`Layout::ALL`]'s order,
    /// without repeats). Left out of the serialized config at the default, the classic four
    /// ([`Layout::CLASSIC`]).
    #[serde(
        default = "classic_layouts",
        skip_serializing_if = "is_classic_layouts"
    )]
    pub layouts: Vec<Layout>,
    /// How far each panel's sub-pixel sizes and spacing stray from its layout's plain
    /// geometry, 0 to 1 (see [`crate::display::SubpixelShape`]). Left out of the serialized
    /// config at 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subpixel_jitter: f64,
    /// Sensor pixels per output pixel (log-uniform range): the camera's resolution relative to
    /// the data set's size (1: the sensor grid is the output grid).
    pub sensor_scale_min: f64,
    pub sensor_scale_max: f64,
    /// Probability that a panel is PWM-dimmed (the rest are flicker-free).
    pub pwm_prob: f64,
    /// Sensor noise: the signal-dependent variance `a` per raw sample (log-uniform range),
    /// both classes. Left out of the serialized config at the defaults.
    #[serde(default = "noise_min", skip_serializing_if = "is_noise_min")]
    pub noise_min: f64,
    #[serde(default = "noise_max", skip_serializing_if = "is_noise_max")]
    pub noise_max: f64,
    /// Lens blur: Gaussian σ in sensor pixels (uniform range), both classes. Left out of the
    /// serialized config at the defaults.
    #[serde(default = "lens_sigma_min", skip_serializing_if = "is_lens_sigma_min")]
    pub lens_sigma_min: f64,
    #[serde(default = "lens_sigma_max", skip_serializing_if = "is_lens_sigma_max")]
    pub lens_sigma_max: f64,
    /// Probability that a photo, of either class, is JPEG'd again at the output size (an
    /// upload), and that JPEG's quality range. Left out of the serialized config at the
    /// defaults.
    #[serde(default = "upload_prob", skip_serializing_if = "is_upload_prob")]
    pub upload_prob: f64,
    #[serde(default = "upload_q_min", skip_serializing_if = "is_upload_q_min")]
    pub upload_q_min: u8,
    #[serde(default = "upload_q_max", skip_serializing_if = "is_upload_q_max")]
    pub upload_q_max: u8,
    /// One factor held out of train/val and forced in test (the transfer protocol).
    pub holdout: Holdout,
    /// Fraction of samples in train and val (test gets the rest).
    pub train_frac: f64,
    pub val_frac: f64,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            rho_flag: 0.5,
            test_rho_flag: 0.5,
            rho_face: 0.5,
            test_rho_face: 0.5,
            artifact_gain: 1.0,
            artifacts: Artifact::DEFAULT.to_vec(),
            bezel: Bezel::Off,
            glare_prob: 0.4,
            aliased_guilloche: 0.0,
            hologram_prob: 0.0,
            design_variety: 0.0,
            cue_dropout: 0.0,
            defocus_prob: 0.0,
            jpeg_420_prob: 0.0,
            // Calibrated so that about 7 recaptures in 8 carry a visible grid or bands (the
            // rest are the physically invisible cases: display pixels far below the sensor's
            // resolution, or a long exposure over a fast PWM); with 0.25–1.5 and 1–3 fewer
            // than 2 in 3 did, and the shallow CNN stalled near 0.65 balanced accuracy.
            pitch_min: 0.45,
            pitch_max: 1.8,
            layouts: classic_layouts(),
            subpixel_jitter: 0.0,
            sensor_scale_min: 1.25,
            sensor_scale_max: 3.0,
            pwm_prob: 0.5,
            noise_min: NOISE_DEFAULT.0,
            noise_max: NOISE_DEFAULT.1,
            lens_sigma_min: LENS_DEFAULT.0,
            lens_sigma_max: LENS_DEFAULT.1,
            upload_prob: UPLOAD_PROB_DEFAULT,
            upload_q_min: UPLOAD_Q_DEFAULT.0,
            upload_q_max: UPLOAD_Q_DEFAULT.1,
            holdout: Holdout::None,
            train_frac: 0.70,
            val_frac: 0.15,
        }
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn classic_layouts() -> Vec<Layout> {
    Layout::CLASSIC.to_vec()
}
fn is_classic_layouts(v: &[Layout]) -> bool {
    v == Layout::CLASSIC
}

/// Defaults of the camera knobs added after data sets were first recorded: records without
/// them read back as these, and the defaults are left out of new records.
const NOISE_DEFAULT: (f64, f64) = (1e-4, 3e-3);
const LENS_DEFAULT: (f64, f64) = (0.3, 0.8);
fn lens_sigma_min() -> f64 {
    LENS_DEFAULT.0
}
fn lens_sigma_max() -> f64 {
    LENS_DEFAULT.1
}
fn is_lens_sigma_min(v: &f64) -> bool {
    *v == LENS_DEFAULT.0
}
fn is_lens_sigma_max(v: &f64) -> bool {
    *v == LENS_DEFAULT.1
}
const UPLOAD_PROB_DEFAULT: f64 = 0.25;
const UPLOAD_Q_DEFAULT: (u8, u8) = (70, 95);
fn noise_min() -> f64 {
    NOISE_DEFAULT.0
}
fn noise_max() -> f64 {
    NOISE_DEFAULT.1
}
fn upload_prob() -> f64 {
    UPLOAD_PROB_DEFAULT
}
fn upload_q_min() -> u8 {
    UPLOAD_Q_DEFAULT.0
}
fn upload_q_max() -> u8 {
    UPLOAD_Q_DEFAULT.1
}
fn is_noise_min(v: &f64) -> bool {
    *v == NOISE_DEFAULT.0
}
fn is_noise_max(v: &f64) -> bool {
    *v == NOISE_DEFAULT.1
}
fn is_upload_prob(v: &f64) -> bool {
    *v == UPLOAD_PROB_DEFAULT
}
fn is_upload_q_min(v: &u8) -> bool {
    *v == UPLOAD_Q_DEFAULT.0
}
fn is_upload_q_max(v: &u8) -> bool {
    *v == UPLOAD_Q_DEFAULT.1
}

/// Knob names: the fields of [`Overrides`] (kebab-case), in the order errors list them.
pub const KNOB_NAMES: &[&str] = &[
    "rho-flag",
    "test-rho-flag",
    "rho-face",
    "test-rho-face",
    "artifact-gain",
    "artifacts",
    "bezel",
    "glare-prob",
    "aliased-guilloche",
    "hologram-prob",
    "design-variety",
    "cue-dropout",
    "defocus-prob",
    "jpeg-420-prob",
    "pitch-min",
    "pitch-max",
    "layouts",
    "subpixel-jitter",
    "sensor-scale-min",
    "sensor-scale-max",
    "pwm-prob",
    "noise-min",
    "noise-max",
    "lens-sigma-min",
    "lens-sigma-max",
    "upload-prob",
    "upload-q-min",
    "upload-q-max",
    "holdout",
    "train-frac",
    "val-frac",
    "count",
    "size",
    "sizes",
    "seed",
    "twins",
];

const PRESETS: &[&str] = &["clean", "flag-shortcut", "face-shortcut", "obvious", "tiny"];

/// Names of the built-in presets.
pub fn preset_names() -> &'static [&'static str] {
    PRESETS
}

/// A full generator configuration (preset + overrides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GenConfig {
    pub preset: String,
    pub count: usize,
    /// Output side in pixels (square), `MIN_SIZE..=MAX_SIZE`; with `sizes`, the largest of
    /// them.
    pub size: u32,
    /// Photos of several sides in one data set: each sample's side is drawn uniformly from
    /// these (sorted, distinct, at least two; see [`GenConfig::photo_size`]). `None`: every
    /// photo is `size` pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizes: Option<Vec<u32>>,
    pub seed: u64,
    pub knobs: Knobs,
    /// Also write flag-swapped counterfactual twins under `twins/`.
    pub twins: bool,
}

impl GenConfig {
    /// A built-in preset; unknown names are an error listing the presets.
    pub fn preset(name: &str) -> Result<GenConfig, SynthError> {
        let mut cfg = GenConfig {
            preset: name.to_string(),
            count: 2400,
            size: 128,
            sizes: None,
            seed: 1,
            knobs: Knobs::default(),
            twins: false,
        };
        match name {
            "clean" => {}
            "flag-shortcut" => cfg.knobs.rho_flag = 0.95,
            "face-shortcut" => cfg.knobs.rho_face = 0.95,
            "obvious" => {
                cfg.knobs.artifact_gain = 4.0;
                cfg.count = 400;
            }
            "tiny" => {
                cfg.count = 32;
                cfg.size = 64;
            }
            _ => {
                return Err(SynthError::UnknownPreset {
                    name: name.to_string(),
                    valid: PRESETS.join(", "),
                })
            }
        }
        Ok(cfg)
    }

    /// The side of sample `index`: `size`, or with `sizes` one of them, drawn from the
    /// sample's own RNG stream (so it does not depend on the count, the plan or the thread
    /// that renders it, and a donor data set with the same `sizes` agrees on it).
    pub fn photo_size(&self, index: usize) -> u32 {
        match &self.sizes {
            Some(sizes) if !sizes.is_empty() => {
                let mut rng = Rng::derive(self.seed, &[index as u64, STREAM_SIZE]);
                sizes[rng.below(sizes.len() as u64) as usize]
            }
            _ => self.size,
        }
    }

    /// The photo side(s) as a message shows them: `256`, or `128/256` with `sizes`.
    pub fn sides_text(&self) -> String {
        match &self.sizes {
            Some(sizes) => sizes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("/"),
            None => self.size.to_string(),
        }
    }

    /// The smallest photo side this config renders.
    pub fn min_photo_size(&self) -> u32 {
        self.sizes
            .as_ref()
            .and_then(|s| s.first().copied())
            .unwrap_or(self.size)
    }

    /// The config that renders sample `index` at its own side, `sizes` resolved.
    pub(crate) fn for_sample(&self, index: usize) -> Cow<'_, GenConfig> {
        if self.sizes.is_none() {
            return Cow::Borrowed(self);
        }
        let mut c = self.clone();
        c.size = self.photo_size(index);
        c.sizes = None;
        Cow::Owned(c)
    }

    /// Check ranges and cross-field constraints (a hand-built config may bypass
    /// [`GenConfig::apply`]).
    pub fn validate(&self) -> Result<(), SynthError> {
        let inv = |what: &str, msg: String| {
            Err(SynthError::Invalid {
                what: what.to_string(),
                msg,
            })
        };
        if self.count == 0 || self.count > MAX_COUNT {
            return inv(
                "count",
                format!("{} is outside 1..={MAX_COUNT}", self.count),
            );
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return inv(
                "size",
                format!("{} is outside {MIN_SIZE}..={MAX_SIZE}", self.size),
            );
        }
        if let Some(sizes) = &self.sizes {
            let sorted = sizes.windows(2).all(|w| w[0] < w[1]);
            let in_range = sizes.iter().all(|s| (MIN_SIZE..=MAX_SIZE).contains(s));
            if sizes.len() < 2 || sizes.len() > MAX_SIZES || !sorted || !in_range {
                return inv(
                    "sizes",
                    format!(
                        "{sizes:?} must be 2 to {MAX_SIZES} distinct sides in \
                         {MIN_SIZE}..={MAX_SIZE}, ascending"
                    ),
                );
            }
            if sizes.last() != Some(&self.size) {
                return inv(
                    "sizes",
                    format!("size {} is not the largest of {sizes:?}", self.size),
                );
            }
        }
        let k = &self.knobs;
        let unit = [
            ("rho-flag", k.rho_flag),
            ("test-rho-flag", k.test_rho_flag),
            ("rho-face", k.rho_face),
            ("test-rho-face", k.test_rho_face),
            ("glare-prob", k.glare_prob),
            ("pwm-prob", k.pwm_prob),
            ("upload-prob", k.upload_prob),
            ("aliased-guilloche", k.aliased_guilloche),
            ("hologram-prob", k.hologram_prob),
            ("design-variety", k.design_variety),
            ("cue-dropout", k.cue_dropout),
            ("defocus-prob", k.defocus_prob),
            ("jpeg-420-prob", k.jpeg_420_prob),
            ("subpixel-jitter", k.subpixel_jitter),
            ("train-frac", k.train_frac),
            ("val-frac", k.val_frac),
        ];
        for (name, v) in unit {
            if !(UNIT.0..=UNIT.1).contains(&v) {
                return inv(name, format!("{v} is outside [{}, {}]", UNIT.0, UNIT.1));
            }
        }
        if !(GAIN.0..=GAIN.1).contains(&k.artifact_gain) {
            return inv(
                "artifact-gain",
                format!("{} is outside [{}, {}]", k.artifact_gain, GAIN.0, GAIN.1),
            );
        }
        let pairs = [
            ("pitch", k.pitch_min, k.pitch_max, PITCH.0, PITCH.1),
            (
                "sensor-scale",
                k.sensor_scale_min,
                k.sensor_scale_max,
                SCALE.0,
                SCALE.1,
            ),
            ("noise", k.noise_min, k.noise_max, NOISE.0, NOISE.1),
            (
                "lens-sigma",
                k.lens_sigma_min,
                k.lens_sigma_max,
                LENS.0,
                LENS.1,
            ),
            (
                "upload-q",
                k.upload_q_min as f64,
                k.upload_q_max as f64,
                JPEG_Q.0 as f64,
                JPEG_Q.1 as f64,
            ),
        ];
        for (name, lo, hi, min, max) in pairs {
            if !(lo >= min && hi <= max && lo <= hi) {
                return inv(
                    name,
                    format!("min {lo} / max {hi} must satisfy {min} <= min <= max <= {max}"),
                );
            }
        }
        let ordered = k.layouts.windows(2).all(|w| w[0] < w[1]);
        if k.layouts.is_empty() || !ordered {
            return inv(
                "layouts",
                format!(
                    "[{}] must list at least one layout (none: no screen to draw), each once, \
                     in the order {}",
                    Layout::list(&k.layouts),
                    Layout::list(&Layout::ALL)
                ),
            );
        }
        if let Err(msg) = k.holdout.check(k) {
            return inv("holdout", msg);
        }
        if k.train_frac + k.val_frac > 1.0 + 1e-9 {
            return inv(
                "train-frac",
                format!(
                    "train-frac {} + val-frac {} exceeds 1",
                    k.train_frac, k.val_frac
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

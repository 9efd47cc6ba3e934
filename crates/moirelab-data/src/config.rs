//! The `[data]` config section. Keys are kebab-case; unknown keys are rejected by serde with
//! the key's name, and [`DataConfig::validate`] names the key of any out-of-range value.

use crate::DataError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Layout of the data-set folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `dataset.json` present → moirelab; `manifest` set → CSV/JSONL by extension;
    /// otherwise ImageFolder.
    #[default]
    Auto,
    Moirelab,
    Imagefolder,
    Csv,
    Jsonl,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Moirelab => "moirelab",
            Format::Imagefolder => "imagefolder",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// How an image becomes an `S×S` network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The whole image is resized to `S×S` (aspect ignored, so no corner of the card is cut
    /// off); training crops come from that view.
    #[default]
    Resize,
    /// Crops of `S×S` at native resolution: screen artifacts (moiré, sub-pixel stripes) die
    /// when a photo is shrunk, so the network sees the original pixels.
    Patch,
}

/// What to do with files that fail validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBad {
    /// Refuse to open the data set, listing up to 20 files with reasons.
    #[default]
    Error,
    /// Drop the bad files (they are listed in the report).
    Skip,
}

/// Where decoded pixels live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// A memory-mapped cache file when the cache folder is writable (reused by later runs),
    /// else memory.
    #[default]
    Auto,
    /// Decode into RAM on every open.
    Memory,
    /// Memory-mapped cache file; an error when the cache folder is not writable.
    Disk,
}

/// Which symbolic links a folder walk (and a manifest path) may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FollowLinks {
    /// Links whose target lies inside the data-set root; links leading out of it are not
    /// followed (reported).
    #[default]
    Inside,
    /// Every link, wherever it points.
    All,
    /// No link at all.
    None,
}

impl FollowLinks {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowLinks::Inside => "inside",
            FollowLinks::All => "all",
            FollowLinks::None => "none",
        }
    }
}

/// Seeded training augmentation (never applied to eval or probe images).
///
/// The defaults are *artifact-preserving*, not ImageNet's: recapture cues are the
/// high-frequency structure of the pixels themselves (moiré, sub-pixel stripes, PWM bands,
/// the display's tone curve). A random *resized* crop resamples every pixel and smears
/// moiré, a JPEG re-compression removes exactly the fine chroma fringes that give a screen
/// away, and saturation jitter hides the display's colour cast. On the synthetic `clean`
/// preset the ImageNet-style recipe (scale 0.6–1, JPEG p = 0.2, saturation ±0.1) cost the
/// shallow model several points of balanced accuracy. So by default: flips and a mild
/// brightness/contrast change only; crops, JPEG and saturation are opt-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct AugmentConfig {
    /// Master switch.
    pub enabled: bool,
    /// Random-resized-crop area fraction range (resize mode only).
    pub scale: [f64; 2],
    /// Random-resized-crop aspect-ratio range (resize mode only).
    pub ratio: [f64; 2],
    /// Probability of a horizontal flip.
    pub hflip: f64,
    /// Probability of a vertical flip.
    pub vflip: f64,
    /// Probability of swapping rows and columns (a transpose, i.e. a 90° turn plus a flip):
    /// a screen turned by 90° relative to the camera, so that RGB stripes become stacked
    /// ones. With `hflip` and `vflip` it reaches all eight orientations of the square view.
    /// The camera model is symmetric under it (Bayer RGGB, 8×8 JPEG blocks, separable
    /// filters); the card itself turns to portrait. 0 draws nothing, so the other
    /// augmentation draws stay as they were.
    #[serde(skip_serializing_if = "is_zero")]
    pub transpose: f64,
    /// Brightness factor drawn from `[1 - b, 1 + b]`.
    pub brightness: f64,
    /// Contrast factor drawn from `[1 - c, 1 + c]`.
    pub contrast: f64,
    /// Saturation factor drawn from `[1 - s, 1 + s]`.
    pub saturation: f64,
    /// Sharpness factor drawn from `[1 - s, 1 + s]` (torchvision `adjust_sharpness`: 0 is
    /// the 3×3 smoothed image, 1 the image, 2 twice as far from the smoothed one), both
    /// classes alike: the energy near the sampling limit then varies as it does between
    /// cameras and their sharpening, so that a detector has to read how it is structured
    /// rather than how much there is. 0 draws nothing, so the other draws stay as they were.
    #[serde(skip_serializing_if = "is_zero")]
    pub sharpness: f64,
    /// Probability of a JPEG re-compression.
    pub jpeg_prob: f64,
    /// JPEG quality range (inclusive).
    pub jpeg_quality: [u8; 2],
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            enabled: true,
            scale: [1.0, 1.0],
            ratio: [1.0, 1.0],
            hflip: 0.5,
            vflip: 0.0,
            transpose: 0.0,
            brightness: 0.1,
            contrast: 0.1,
            saturation: 0.0,
            sharpness: 0.0,
            jpeg_prob: 0.0,
            jpeg_quality: [70, 95],
        }
    }
}

/// Zero-valued knobs added after run folders existed stay out of their `config.toml`.
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Default `max-pixels`: 50 megapixels, above any ID-card photo from a phone.
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

/// The `[data]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DataConfig {
    /// Data-set folder; a relative path resolves against the config file's folder.
    pub root: PathBuf,
    pub format: Format,
    /// CSV or JSONL manifest; a relative path resolves against `root`.
    pub manifest: Option<PathBuf>,
    /// Network input side `S` in pixels.
    pub image_size: u32,
    pub mode: Mode,
    pub on_bad_image: OnBad,
    /// Fraction of train carved out as val when the data set has no val split (0 = none).
    pub val_fraction: f64,
    /// Seed of the val carve-out (independent of the training seed so runs share a split).
    pub split_seed: u64,
    /// Class order (index = class id); default: `dataset.json` order, else sorted names.
    pub classes: Vec<String>,
    /// Attack class for PAD metrics; default: `dataset.json`'s, else the last class.
    pub attack_class: Option<String>,
    pub augment: AugmentConfig,
    /// Loader threads preparing batches ahead of the trainer (0 = on the training thread).
    pub workers: usize,
    pub cache: CacheMode,
    /// Cache folder; default `<cache>/decode/<data set>` under the moirelab cache folder
    /// (`$MOIRELAB_CACHE`, else `$XDG_CACHE_HOME/moirelab`, else `~/.cache/moirelab`), never
    /// inside the data set. A relative path resolves against the same base folder as `root`
    /// (not against `root`: the cache would land inside the data set).
    pub cache_dir: Option<PathBuf>,
    /// Images with a side below this are errors.
    pub min_image_size: u32,
    /// Patch mode: images whose long side exceeds this are downscaled once (0 = never), so a
    /// folder of 12-megapixel phone photos does not need hundreds of GB of cache.
    pub patch_max_side: u32,
    /// Warn when the largest/smallest class ratio in train exceeds this.
    pub max_imbalance: f64,
    /// Images whose header declares more pixels than this are errors, refused before any
    /// pixel is decoded (a 68-byte PNG can claim 100000x100000).
    pub max_pixels: u64,
    /// Symbolic links: `inside` (default) follows links that stay in the root, `all`, `none`.
    pub follow_links: FollowLinks,
    /// A val or test split lacking a class is an error unless this is set (then a warning).
    pub allow_missing_class: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            root: PathBuf::new(),
            format: Format::Auto,
            manifest: None,
            image_size: 128,
            mode: Mode::Resize,
            on_bad_image: OnBad::Error,
            val_fraction: 0.1,
            split_seed: 0,
            classes: Vec::new(),
            attack_class: None,
            augment: AugmentConfig::default(),
            workers: 2,
            cache: CacheMode::Auto,
            cache_dir: None,
            min_image_size: 16,
            patch_max_side: 1024,
            max_imbalance: 3.0,
            max_pixels: DEFAULT_MAX_PIXELS,
            follow_links: FollowLinks::Inside,
            allow_missing_class: false,
        }
    }
}

fn prob(key: &str, v: f64) -> Result<(), DataError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(DataError::config(
            key,
            format!("{v} is not a probability in [0, 1]"),
        ))
    }
}

fn jitter(key: &str, v: f64) -> Result<(), DataError> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(DataError::config(key, format!("{v} must be in [0, 1)")))
    }
}

impl DataConfig {
    /// A config for a folder with every other key at its default.
    pub fn for_root(root: impl Into<PathBuf>) -> Self {
        DataConfig {
            root: root.into(),
            ..DataConfig::default()
        }
    }

    /// These settings (image size, mode, cache, …) pointed at another data set, to evaluate
    /// a model on it: `path` is a data-set folder (layout detected as usual) or a CSV/JSONL
    /// manifest file (its folder is the root). The class list and attack class are left to
    /// the model (see `Dataset::open_eval`).
    pub fn for_eval_source(&self, path: &std::path::Path) -> DataConfig {
        let mut c = self.clone();
        c.format = Format::Auto;
        c.classes.clear();
        c.attack_class = None;
        if path.is_file() {
            c.root = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            // A moirelab `dataset.json` names its folder; anything else is a manifest.
            c.manifest = path
                .file_name()
                .filter(|n| *n != moirelab_core::dataset_format::DATASET_JSON)
                .map(PathBuf::from);
        } else {
            c.root = path.to_path_buf();
            c.manifest = None;
        }
        c
    }

    /// Check value ranges; the error names the offending key.
    pub fn validate(&self) -> Result<(), DataError> {
        if self.root.as_os_str().is_empty() {
            return Err(DataError::config(
                "root",
                "missing: set the data-set folder",
            ));
        }
        if !(8..=4096).contains(&self.image_size) {
            return Err(DataError::config(
                "image-size",
                format!("{} is outside 8..=4096", self.image_size),
            ));
        }
        if !(0.0..=0.5).contains(&self.val_fraction) {
            return Err(DataError::config(
                "val-fraction",
                format!("{} is outside [0, 0.5]", self.val_fraction),
            ));
        }
        match (self.format, &self.manifest) {
            (Format::Csv | Format::Jsonl, None) => {
                return Err(DataError::config(
                    "manifest",
                    format!(
                        "format = \"{}\" needs a manifest file",
                        self.format.as_str()
                    ),
                ))
            }
            (Format::Moirelab | Format::Imagefolder, Some(m)) => {
                return Err(DataError::config(
                    "manifest",
                    format!(
                        "{} given, but format = \"{}\" does not read a manifest (use csv or jsonl)",
                        m.display(),
                        self.format.as_str()
                    ),
                ))
            }
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.classes {
            if c.is_empty() || !seen.insert(c) {
                return Err(DataError::config(
                    "classes",
                    format!("class name '{c}' is empty or repeated"),
                ));
            }
        }
        if let Some(a) = &self.attack_class {
            if !self.classes.is_empty() && !self.classes.contains(a) {
                return Err(DataError::config(
                    "attack-class",
                    format!("'{a}' is not one of classes [{}]", self.classes.join(", ")),
                ));
            }
        }
        if self.workers > 64 {
            return Err(DataError::config(
                "workers",
                format!("{} > 64", self.workers),
            ));
        }
        if self.min_image_size == 0 {
            return Err(DataError::config("min-image-size", "must be at least 1"));
        }
        if self.patch_max_side != 0 && self.patch_max_side < self.image_size {
            return Err(DataError::config(
                "patch-max-side",
                format!(
                    "{} is smaller than image-size {} (0 disables the cap)",
                    self.patch_max_side, self.image_size
                ),
            ));
        }
        if self.max_pixels == 0 {
            return Err(DataError::config("max-pixels", "must be at least 1"));
        }
        if self.max_imbalance.is_nan() || self.max_imbalance < 1.0 {
            return Err(DataError::config(
                "max-imbalance",
                format!("{} must be >= 1", self.max_imbalance),
            ));
        }
        let a = &self.augment;
        let [s0, s1] = a.scale;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return Err(DataError::config(
                "augment.scale",
                format!("[{s0}, {s1}] must satisfy 0 < lo <= hi <= 1"),
            ));
        }
        let [r0, r1] = a.ratio;
        if !(r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
            return Err(DataError::config(
                "augment.ratio",
                format!("[{r0}, {r1}] must satisfy 0 < lo <= hi"),
            ));
        }
        prob("augment.hflip", a.hflip)?;
        prob("augment.vflip", a.vflip)?;
        prob("augment.transpose", a.transpose)?;
        prob("augment.jpeg-prob", a.jpeg_prob)?;
        jitter("augment.brightness", a.brightness)?;
        jitter("augment.contrast", a.contrast)?;
        jitter("augment.saturation", a.saturation)?;
        jitter("augment.sharpness", a.sharpness)?;
        let [q0, q1] = a.jpeg_quality;
        if !(1 <= q0 && q0 <= q1 && q1 <= 100) {
            return Err(DataError::config(
                "augment.jpeg-quality",
                format!("[{q0}, {q1}] must satisfy 1 <= lo <= hi <= 100"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_once_root_is_set() {
        assert!(DataConfig::default().validate().is_err());
        DataConfig::for_root("data/x").validate().unwrap();
    }

    #[test]
    fn transpose_and_sharpness_stay_out_of_written_configs_until_they_are_used() {
        let mut c = AugmentConfig::default();
        let text = serde_json::to_string(&c).unwrap();
        assert!(!text.contains("transpose") && !text.contains("sharpness"));
        c.transpose = 0.5;
        c.sharpness = 0.25;
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains("\"transpose\":0.5"), "{text}");
        assert!(text.contains("\"sharpness\":0.25"), "{text}");
        assert_eq!(serde_json::from_str::<AugmentConfig>(&text).unwrap(), c);
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let mut c = DataConfig::for_root("d");
        c.augment.hflip = 1.5;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("augment.hflip") && e.contains("1.5"), "{e}");
        let mut c = DataConfig::for_root("d");
        c.augment.sharpness = 1.0;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("augment.sharpness") && e.contains("[0, 1)"),
            "{e}"
        );
        let mut c = DataConfig::for_root("d");
        c.augment.transpose = -0.25;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("augment.transpose") && e.contains("-0.25"),
            "{e}"
        );
        let mut c = DataConfig::for_root("d");
        c.format = Format::Csv;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("[data] manifest:"), "{e}");
        let mut c = DataConfig::for_root("d");
        c.classes = vec!["a".into(), "b".into()];
        c.attack_class = Some("screen".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("attack-class"));
    }

    #[test]
    fn kebab_case_keys_parse_and_unknown_keys_are_rejected() {
        let c: DataConfig = serde_json::from_str(
            r#"{"root":"d","image-size":64,"mode":"patch","on-bad-image":"skip","augment":{"jpeg-prob":0.5}}"#,
        )
        .unwrap();
        assert_eq!(c.image_size, 64);
        assert_eq!(c.mode, Mode::Patch);
        assert_eq!(c.on_bad_image, OnBad::Skip);
        assert_eq!(c.augment.jpeg_prob, 0.5);
        assert_eq!(c.augment.hflip, 0.5);
        let e = serde_json::from_str::<DataConfig>(r#"{"root":"d","imagesize":64}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("imagesize"), "{e}");
    }
}

//! `[gradcam]` of the config file.

use crate::{Colormap, GradcamError, Method, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How heatmap colours map to values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Each image's map normalised to its own min/max (pytorch-grad-cam's look).
    PerImage,
    /// One scale per grid and method: raw maps divided by the largest raw value in the grid.
    Grid,
    /// One scale for the whole run: the largest raw value of the first dump, per method, kept
    /// (in `probes/scales.json`) for every later epoch; larger values saturate.
    Run,
}

impl Scale {
    pub const NAMES: [&'static str; 3] = ["per-image", "grid", "run"];
    pub fn as_str(self) -> &'static str {
        match self {
            Scale::PerImage => "per-image",
            Scale::Grid => "grid",
            Scale::Run => "run",
        }
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scale {
    type Err = GradcamError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "per-image" => Ok(Scale::PerImage),
            "grid" => Ok(Scale::Grid),
            "run" => Ok(Scale::Run),
            _ => Err(GradcamError::Config(format!(
                "gradcam.scale = '{s}' is not one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

/// The `[gradcam]` section. Kebab-case keys; unknown keys are rejected by serde.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct GradcamConfig {
    /// Method names (see [`Method::NAMES`]); the dump renders them in this order.
    pub methods: Vec<String>,
    /// CAM layer names; empty = the model's default (its last conv block). Several layers are
    /// averaged into one map named `a+b`.
    pub layers: Vec<String>,
    /// Number of fixed probe images (balanced over classes and groups).
    pub probes: usize,
    /// Dump every this many epochs (the first and last epochs are always dumped).
    pub every: u32,
    /// `jet`, `turbo` or `viridis`.
    pub colormap: String,
    /// Overlay weight of the image: `out = (1 − w)·heat + w·image`.
    pub image_weight: f64,
    /// `per-image`, `grid` or `run` (see [`Scale`]).
    pub scale: String,
    /// Probe images per forward pass (also Score-CAM's masked inputs per pass).
    pub batch_size: usize,
    /// Pointing-game tolerance in pixels at the model input size (docs/GRADCAM.md: ≈ 4 at 256).
    pub pointing_tolerance: u32,
    /// Seed of the probe selection.
    pub seed: u64,
    /// Also write per-probe overlay PNGs (`tiles/NN-<method>-overlay.png`); the pages, GIF
    /// strips and TensorBoard draw overlays from the map strips, so this is off by default.
    pub tiles: bool,
    /// Which epoch dumps to keep once the run ends; absent = all of them.
    pub keep: Option<KeepPolicy>,
}

/// `gradcam.keep = { first = 10, every = 5 }`: keep the dumps of epochs `1..=first` and of
/// every `every`-th epoch after that, plus the best and the last epoch; delete the others'
/// epoch folders when the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeepPolicy {
    pub first: u32,
    pub every: u32,
}

impl KeepPolicy {
    /// Whether the dump of `epoch` survives, given the run's best and last epochs.
    pub fn keeps(&self, epoch: u32, best: Option<u32>, last: u32) -> bool {
        epoch <= self.first
            || epoch.is_multiple_of(self.every)
            || Some(epoch) == best
            || epoch == last
    }
}

impl Default for GradcamConfig {
    fn default() -> Self {
        GradcamConfig {
            methods: vec!["gradcam".into()],
            layers: Vec::new(),
            probes: 16,
            every: 1,
            colormap: "jet".into(),
            image_weight: 0.5,
            scale: "per-image".into(),
            batch_size: 32,
            pointing_tolerance: 2,
            seed: 0,
            tiles: false,
            keep: None,
        }
    }
}

impl GradcamConfig {
    /// Check every key; messages name the key and the valid range or values.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(GradcamError::Config(m));
        if self.methods.is_empty() {
            return bad(format!(
                "gradcam.methods is empty; choose from {}",
                Method::NAMES.join(", ")
            ));
        }
        let methods = self.parsed_methods()?;
        for (i, m) in methods.iter().enumerate() {
            if methods[..i].contains(m) {
                return bad(format!("gradcam.methods lists '{m}' twice"));
            }
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.trim().is_empty() {
                return bad(format!("gradcam.layers[{i}] is empty"));
            }
            if self.layers[..i].contains(l) {
                return bad(format!("gradcam.layers lists '{l}' twice"));
            }
        }
        if !(1..=256).contains(&self.probes) {
            return bad(format!(
                "gradcam.probes = {} is out of range 1..=256",
                self.probes
            ));
        }
        if self.every == 0 {
            return bad("gradcam.every = 0: must be at least 1".into());
        }
        self.colormap.parse::<Colormap>()?;
        if !(0.0..=1.0).contains(&self.image_weight) {
            return bad(format!(
                "gradcam.image-weight = {} is out of range [0, 1]",
                self.image_weight
            ));
        }
        self.scale.parse::<Scale>()?;
        if !(1..=4096).contains(&self.batch_size) {
            return bad(format!(
                "gradcam.batch-size = {} is out of range 1..=4096",
                self.batch_size
            ));
        }
        if let Some(k) = &self.keep {
            if k.every == 0 {
                return bad("gradcam.keep.every = 0: must be at least 1".into());
            }
        }
        if self.pointing_tolerance > 64 {
            return bad(format!(
                "gradcam.pointing-tolerance = {} px is out of range 0..=64",
                self.pointing_tolerance
            ));
        }
        Ok(())
    }

    /// The methods as enums (error names the bad entry and lists the valid ones).
    pub fn parsed_methods(&self) -> Result<Vec<Method>> {
        self.methods.iter().map(|m| m.parse()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_kebab_keys_parse() {
        GradcamConfig::default().validate().unwrap();
        let c: GradcamConfig = serde_json::from_str(
            r#"{"methods":["gradcam","scorecam"],"image-weight":0.3,"pointing-tolerance":4,
                "batch-size":8,"scale":"grid","colormap":"viridis"}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.probes, 16);
        assert_eq!(
            c.parsed_methods().unwrap(),
            vec![Method::GradCam, Method::ScoreCam]
        );
    }

    #[test]
    fn keep_policy_keeps_the_first_every_nth_best_and_last() {
        let c: GradcamConfig = serde_json::from_str(r#"{"keep":{"first":3,"every":5}}"#).unwrap();
        c.validate().unwrap();
        let k = c.keep.unwrap();
        let kept: Vec<u32> = (1..=23).filter(|&e| k.keeps(e, Some(12), 23)).collect();
        assert_eq!(kept, [1, 2, 3, 5, 10, 12, 15, 20, 23]);
        assert!(serde_json::from_str::<GradcamConfig>(r#"{"keep":{"first":3}}"#).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_with_the_key_name() {
        let e = serde_json::from_str::<GradcamConfig>(r#"{"method":["gradcam"]}"#).unwrap_err();
        assert!(e.to_string().contains("method"), "{e}");
        let cases: [(&str, GradcamConfig); 7] = [
            (
                "gradcam.keep.every",
                GradcamConfig {
                    keep: Some(KeepPolicy { first: 3, every: 0 }),
                    ..Default::default()
                },
            ),
            (
                "scorecam",
                GradcamConfig {
                    methods: vec!["gradkam".into()],
                    ..Default::default()
                },
            ),
            (
                "gradcam.every",
                GradcamConfig {
                    every: 0,
                    ..Default::default()
                },
            ),
            (
                "viridis",
                GradcamConfig {
                    colormap: "rainbow".into(),
                    ..Default::default()
                },
            ),
            (
                "gradcam.image-weight",
                GradcamConfig {
                    image_weight: 1.5,
                    ..Default::default()
                },
            ),
            (
                "per-image",
                GradcamConfig {
                    scale: "global".into(),
                    ..Default::default()
                },
            ),
            (
                "twice",
                GradcamConfig {
                    methods: vec!["gradcam".into(), "GradCAM".into()],
                    ..Default::default()
                },
            ),
        ];
        for (needle, cfg) in cases {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}

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
    /// Write the per-probe tile PNGs beside the grid.
    pub tiles: bool,
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
            tiles: true,
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
    fn unknown_keys_and_bad_values_are_rejected_with_the_key_name() {
        let e = serde_json::from_str::<GradcamConfig>(r#"{"method":["gradcam"]}"#).unwrap_err();
        assert!(e.to_string().contains("method"), "{e}");
        let cases: [(&str, GradcamConfig); 6] = [
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

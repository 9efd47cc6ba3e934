//! The moirelab data-set format (see `data/README.md`).
//!
//! ```text
//! <root>/dataset.json      DatasetMeta
//! <root>/manifest.jsonl    one ManifestRecord per line
//! <root>/images/…          RGB PNG or JPEG
//! <root>/masks/…           region masks: 16-bit grayscale PNG, bit i set <=> pixel in regions[i]
//! ```
//!
//! Region masks are a *bit field* rather than a label map because regions overlap (the face
//! lies inside the photo, which lies inside the card; moiré covers all of them). A 16-bit
//! PNG holds up to [`MAX_REGIONS`] regions.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of `dataset.json` / `manifest.jsonl` this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bits in a region-mask pixel.
pub const MAX_REGIONS: usize = 16;
/// Regions that are evidence of a screen: where the display's grid shows (moiré, fringes)
/// and where PWM bands do. A recapture with neither carries only weaker cues (panel tone,
/// the attacker's JPEG).
pub const ARTIFACT_REGIONS: &[&str] = &["moire", "bands"];
/// Longest region name `dataset.json` may declare, in characters. Region names are
/// identifiers (`flag`, `moire`): keys of `metrics.jsonl` and `summary.json`, panel titles and
/// chart legends on the report pages.
pub const MAX_REGION_NAME: usize = 64;
/// File names inside a data-set root.
pub const DATASET_JSON: &str = "dataset.json";
pub const MANIFEST_JSONL: &str = "manifest.jsonl";

/// `dataset.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DatasetMeta {
    pub format_version: u32,
    /// Class names; index = class id. For PAD, by convention `["direct", "screen"]` with the
    /// attack ("screen") class last.
    pub classes: Vec<String>,
    /// Region names; bit i of a mask pixel = `regions[i]`. Empty when there are no masks.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Name of the attack class for PAD metrics (default: the last class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_class: Option<String>,
    /// Shortcut attributes planted in the training split: attribute -> (label -> value that
    /// co-occurs with that label in train). A record is *aligned* for the attribute when
    /// `groups[attr] == shortcuts[attr][label]`, otherwise *conflicting*.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shortcuts: BTreeMap<String, BTreeMap<String, String>>,
    /// Region that shows a shortcut attribute, when its name differs from the attribute's:
    /// e.g. `{"hair": "face"}` (hair colour is seen in the portrait region).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shortcut_regions: BTreeMap<String, String>,
    /// Present for generated data sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorInfo>,
    /// Nominal output size in pixels (square), when all images share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u32>,
}

/// Provenance of a synthetic data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GeneratorInfo {
    pub name: String,
    pub version: String,
    pub preset: String,
    pub seed: u64,
    /// Every knob value used, after preset and overrides.
    #[serde(default)]
    pub knobs: serde_json::Value,
}

/// One line of `manifest.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRecord {
    /// Image path relative to the data-set root (must stay inside it).
    pub path: String,
    /// Class name (one of `DatasetMeta::classes`).
    pub label: String,
    /// `train`, `val` or `test`.
    pub split: String,
    /// Group attributes, e.g. `{"flag": "A", "hair": "dark"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, String>,
    /// Region-mask path relative to the root (16-bit bit-field PNG), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// Axis-aligned boxes `[x0, y0, x1, y1]` in output pixels (x1, y1 exclusive).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub boxes: BTreeMap<String, [u32; 4]>,
    /// Counterfactual twin with only the flag swapped (relative path), if generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_twin: Option<String>,
    /// Generator parameters of this sample (free-form).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
}

impl ManifestRecord {
    /// The record's group key, `label|attr=value|…` over its groups in sorted order (e.g.
    /// `screen|flag=A|hair=dark`): the stratum of splits and probes and the key of
    /// `metrics.jsonl` group tables, which [`crate::run::shortcut_accuracy`] reads back.
    pub fn group_key(&self) -> String {
        let mut s = self.label.clone();
        for (k, v) in &self.groups {
            s.push('|');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s
    }
}

impl DatasetMeta {
    /// The first region name that is not an identifier ([`MAX_REGION_NAME`] characters at
    /// most, no control characters), with why, as a phrase naming it (cut to 40 characters).
    pub fn check_region_names(&self) -> Result<(), String> {
        for name in &self.regions {
            let n = name.chars().count();
            let why = if n > MAX_REGION_NAME {
                format!("has {n} characters, more than {MAX_REGION_NAME}")
            } else if name.chars().any(char::is_control) {
                "contains a control character (a newline, a tab, …)".to_string()
            } else {
                continue;
            };
            let shown: String = name.chars().take(40).collect();
            let cut = if n > 40 { "…" } else { "" };
            return Err(format!("region name {shown:?}{cut} {why}"));
        }
        Ok(())
    }

    /// Index of the attack class (explicit `attack-class`, else the last class).
    pub fn attack_index(&self) -> Option<usize> {
        match &self.attack_class {
            Some(name) => self.classes.iter().position(|c| c == name),
            None => self.classes.len().checked_sub(1),
        }
    }

    /// Aligned (`Some(true)`), conflicting (`Some(false)`) or not applicable (`None`) for one
    /// shortcut attribute.
    pub fn alignment(&self, attr: &str, rec: &ManifestRecord) -> Option<bool> {
        let want = self.shortcuts.get(attr)?.get(&rec.label)?;
        let have = rec.groups.get(attr)?;
        Some(have == want)
    }

    /// The mask region in which shortcut attribute `attr` is visible: the declared
    /// `shortcut-regions` entry, else a region of the same name, else `None`.
    pub fn shortcut_region(&self, attr: &str) -> Option<&str> {
        match self.shortcut_regions.get(attr) {
            Some(r) => Some(r.as_str()),
            None => self
                .regions
                .iter()
                .find(|r| r.as_str() == attr)
                .map(String::as_str),
        }
    }

    /// Bit of a region in mask pixels.
    pub fn region_bit(&self, name: &str) -> Option<u16> {
        self.regions
            .iter()
            .position(|r| r == name)
            .filter(|&i| i < MAX_REGIONS)
            .map(|i| 1u16 << i)
    }
}

/// Region masks of one image at some resolution, decoded from the bit-field PNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionMasks {
    pub width: u32,
    pub height: u32,
    /// Region names; bit i of `bits[p]` = `names[i]`.
    pub names: Vec<String>,
    /// Row-major, `width * height` entries.
    pub bits: Vec<u16>,
}

impl RegionMasks {
    /// Binary mask of one region (row-major), `None` for an unknown name.
    pub fn mask(&self, name: &str) -> Option<Vec<bool>> {
        let i = self.names.iter().position(|n| n == name)?;
        let bit = 1u16 << i;
        Some(self.bits.iter().map(|b| b & bit != 0).collect())
    }

    /// Pixels of a region.
    pub fn area(&self, name: &str) -> Option<usize> {
        self.mask(name).map(|m| m.iter().filter(|&&b| b).count())
    }

    /// Nearest-neighbour resize (labels must never be interpolated).
    pub fn resize_nearest(&self, width: u32, height: u32) -> RegionMasks {
        let mut bits = Vec::with_capacity((width * height) as usize);
        for y in 0..height {
            let sy = ((y as u64 * 2 + 1) * self.height as u64 / (2 * height as u64)) as u32;
            for x in 0..width {
                let sx = ((x as u64 * 2 + 1) * self.width as u64 / (2 * width as u64)) as u32;
                bits.push(
                    self.bits
                        [(sy.min(self.height - 1) * self.width + sx.min(self.width - 1)) as usize],
                );
            }
        }
        RegionMasks {
            width,
            height,
            names: self.names.clone(),
            bits,
        }
    }
}

/// True when a relative path is safe: not absolute, no `..`, no root or prefix components.
pub fn is_safe_relative(path: &str) -> bool {
    use std::path::Component;
    let p = std::path::Path::new(path);
    !path.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_follows_the_declared_shortcut() {
        let meta = DatasetMeta {
            format_version: FORMAT_VERSION,
            classes: vec!["direct".into(), "screen".into()],
            regions: vec!["card".into(), "flag".into()],
            attack_class: None,
            shortcuts: [(
                "flag".to_string(),
                [
                    ("screen".to_string(), "A".to_string()),
                    ("direct".into(), "B".into()),
                ]
                .into_iter()
                .collect(),
            )]
            .into_iter()
            .collect(),
            shortcut_regions: Default::default(),
            generator: None,
            image_size: Some(128),
        };
        let mut rec = ManifestRecord {
            path: "images/0.png".into(),
            label: "screen".into(),
            split: "train".into(),
            groups: [("flag".to_string(), "A".to_string())]
                .into_iter()
                .collect(),
            mask: None,
            boxes: BTreeMap::new(),
            flag_twin: None,
            params: serde_json::Value::Null,
        };
        assert_eq!(meta.alignment("flag", &rec), Some(true));
        rec.label = "direct".into();
        assert_eq!(meta.alignment("flag", &rec), Some(false));
        assert_eq!(meta.alignment("hair", &rec), None);
        // A shortcut's region: declared, else the region of the same name.
        assert_eq!(meta.shortcut_region("flag"), Some("flag"));
        assert_eq!(meta.shortcut_region("hair"), None);
        let mut meta = meta;
        meta.shortcut_regions.insert("hair".into(), "face".into());
        assert_eq!(meta.shortcut_region("hair"), Some("face"));
        assert_eq!(meta.attack_index(), Some(1));
        assert_eq!(meta.region_bit("flag"), Some(2));
        let line = serde_json::to_string(&rec).unwrap();
        let back: ManifestRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn region_masks_decode_bits_and_resize_nearest() {
        let m = RegionMasks {
            width: 2,
            height: 2,
            names: vec!["card".into(), "flag".into()],
            bits: vec![1, 3, 0, 1],
        };
        assert_eq!(m.mask("flag").unwrap(), vec![false, true, false, false]);
        assert_eq!(m.area("card"), Some(3));
        let r = m.resize_nearest(4, 4);
        assert_eq!(r.area("flag"), Some(4));
        assert_eq!(r.bits[0..4], [1, 1, 3, 3]);
        assert!(m.mask("face").is_none());
    }

    #[test]
    fn unsafe_paths_are_rejected() {
        assert!(is_safe_relative("images/a.png"));
        assert!(!is_safe_relative("../a.png"));
        assert!(!is_safe_relative("images/../../a.png"));
        assert!(!is_safe_relative("/etc/passwd"));
        assert!(!is_safe_relative(""));
    }
}

//! Donors: existing data sets whose samples a generation copies instead of rendering them
//! again, and the test of which configs render the same bytes.

use super::plan::PlanEntry;
use super::{SHORTCUT_FLAG, SHORTCUT_HAIR};
use crate::config::GenConfig;
use crate::{SynthError, GENERATOR_NAME, GENERATOR_VERSION};
use moirelab_core::dataset_format::{DatasetMeta, ManifestRecord, DATASET_JSON, MANIFEST_JSONL};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An existing data set whose samples can stand in for ones this config would render.
///
/// A shortcut-strength sweep (ρ = 0.5, 0.8, 0.95, … on one seed) renders mostly the same
/// samples again: with the same generator version, seed, size, twins setting and every knob
/// that reaches the renderer, sample `i` is byte-identical whenever its label and groups
/// (screen, flag family, hair) agree. Those are copied instead of rendered; everything else
/// is rendered as usual, so the result is byte-identical to a fresh generation (tested).
#[derive(Debug)]
pub struct Donor {
    pub(super) root: PathBuf,
    /// The donor's manifest records by sample index.
    records: BTreeMap<usize, ManifestRecord>,
}

impl Donor {
    /// `Ok(None)` when `dir` holds no data set compatible with `cfg` (no `dataset.json`,
    /// another generator or version, another seed, size, twins setting or rendering knob).
    /// A compatible data set whose manifest cannot be read is an error.
    pub fn open(cfg: &GenConfig, dir: &Path) -> Result<Option<Donor>, SynthError> {
        let meta_path = dir.join(DATASET_JSON);
        let Ok(meta) = moirelab_core::fsio::read_json::<DatasetMeta>(&meta_path) else {
            return Ok(None);
        };
        let Some(g) = meta.generator else {
            return Ok(None);
        };
        if g.name != GENERATOR_NAME || g.version != GENERATOR_VERSION || g.seed != cfg.seed {
            return Ok(None);
        }
        // `knobs` holds the donor's whole config; one this version cannot read renders
        // differently anyway.
        let Ok(theirs) = serde_json::from_value::<GenConfig>(g.knobs) else {
            return Ok(None);
        };
        if render_inputs(cfg) != render_inputs(&theirs) {
            return Ok(None);
        }
        let records =
            moirelab_core::fsio::read_jsonl_strict::<ManifestRecord>(&dir.join(MANIFEST_JSONL))?
                .into_iter()
                .filter_map(|r| {
                    let index = r
                        .path
                        .strip_prefix("images/")
                        .and_then(|p| p.strip_suffix(".png"))
                        .and_then(|p| p.parse::<usize>().ok());
                    index.map(|i| (i, r))
                })
                .collect();
        Ok(Some(Donor {
            root: dir.to_path_buf(),
            records,
        }))
    }

    /// The donor's record for sample `index` when it is the same sample: same label and
    /// groups, on the same side of the test split (a held-out factor and cue dropout render
    /// test samples differently), with a mask (and a twin when `twins`).
    pub(super) fn matching(
        &self,
        index: usize,
        e: &PlanEntry,
        twins: bool,
    ) -> Option<&ManifestRecord> {
        let r = self.records.get(&index)?;
        let same = r.label == e.label()
            && r.groups.get(SHORTCUT_FLAG).map(String::as_str) == Some(e.family.name())
            && r.groups.get(SHORTCUT_HAIR).map(String::as_str) == Some(e.hair.name())
            && (r.split == "test") == (e.split == "test")
            && r.mask.is_some()
            && (r.flag_twin.is_some() == twins);
        same.then_some(r)
    }
}

/// The parts of a [`GenConfig`] that reach the renderer: everything but the preset name,
/// the count and the knobs that only steer the plan (labels, splits, shortcut groups). Two
/// configs with equal render inputs render identical bytes for the same sample spec.
fn render_inputs(cfg: &GenConfig) -> GenConfig {
    let mut c = cfg.clone();
    c.preset = String::new();
    c.count = 0;
    let k = &mut c.knobs;
    (k.rho_flag, k.test_rho_flag, k.rho_face, k.test_rho_face) = (0.0, 0.0, 0.0, 0.0);
    (k.train_frac, k.val_frac) = (0.0, 0.0);
    c
}

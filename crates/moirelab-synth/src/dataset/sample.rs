//! One sample as the data set holds it: the image, its region masks (and their PNG codec)
//! and its manifest record.

use super::plan::{plan, spec_of, PlanEntry};
use super::{SHORTCUT_FLAG, SHORTCUT_HAIR};
use crate::config::GenConfig;
use crate::pipeline::{render, Rendered};
use crate::{SynthError, REGIONS};
use moirelab_core::dataset_format::{ManifestRecord, RegionMasks};
use std::collections::BTreeMap;
use std::path::Path;

/// One rendered sample with its masks and manifest record.
#[derive(Debug, Clone)]
pub struct Sample {
    pub image: image::RgbImage,
    pub masks: RegionMasks,
    pub record: ManifestRecord,
}

/// File stem of sample `index` (`images/<stem>.png`, `masks/<stem>.png`, `twins/<stem>.png`).
pub(super) fn stem(index: usize) -> String {
    format!("{index:06}")
}

fn record(index: usize, e: &PlanEntry, r: &Rendered, twins: bool) -> ManifestRecord {
    record_with(
        index,
        e,
        r.boxes.iter().cloned().collect(),
        r.params.clone(),
        twins,
    )
}

/// The manifest record of sample `index`: paths from its stem, label, split and groups from
/// the plan, boxes and parameters from its render (or from a donor's record of it).
pub(super) fn record_with(
    index: usize,
    e: &PlanEntry,
    boxes: BTreeMap<String, [u32; 4]>,
    params: serde_json::Value,
    twins: bool,
) -> ManifestRecord {
    let s = stem(index);
    ManifestRecord {
        path: format!("images/{s}.png"),
        label: e.label().to_string(),
        split: e.split.to_string(),
        groups: [
            (SHORTCUT_FLAG.to_string(), e.family.name().to_string()),
            (SHORTCUT_HAIR.to_string(), e.hair.name().to_string()),
        ]
        .into_iter()
        .collect(),
        mask: Some(format!("masks/{s}.png")),
        boxes,
        flag_twin: twins.then(|| format!("twins/{s}.png")),
        params,
    }
}

fn masks_of(size: u32, bits: Vec<u16>) -> RegionMasks {
    RegionMasks {
        width: size,
        height: size,
        names: REGIONS.iter().map(|s| s.to_string()).collect(),
        bits,
    }
}

/// Render sample `index` of the data set `cfg` describes (the same bytes
/// [`generate`](super::generate) writes).
pub fn render_sample(cfg: &GenConfig, index: usize) -> Result<Sample, SynthError> {
    let p = plan(cfg)?;
    let e = p.get(index).ok_or(SynthError::IndexOutOfRange {
        index,
        count: cfg.count,
    })?;
    let r = render(cfg, &spec_of(index, e), false, true)?;
    sample_from(cfg, index, e, r)
}

/// The sample of a render: the image buffer as an image, the bits as masks, the record.
pub(super) fn sample_from(
    cfg: &GenConfig,
    index: usize,
    e: &PlanEntry,
    r: Rendered,
) -> Result<Sample, SynthError> {
    let record = record(index, e, &r, cfg.twins);
    let size = r.size;
    let image =
        image::RgbImage::from_raw(size, size, r.rgb8).ok_or_else(|| SynthError::Render {
            index,
            msg: "image buffer has the wrong length".into(),
        })?;
    Ok(Sample {
        image,
        masks: masks_of(size, r.bits),
        record,
    })
}

/// Encode a bit-field mask as a PNG (`moirelab_core::mask`, the one mask codec).
pub fn encode_mask_png(m: &RegionMasks) -> Result<Vec<u8>, String> {
    moirelab_core::mask::encode_png(m)
}

/// Decode a mask PNG with the given region names (`moirelab_core::mask`, the one codec).
pub fn read_mask_png(path: &Path, names: &[String]) -> Result<RegionMasks, SynthError> {
    let err = |msg: String| SynthError::Image {
        path: path.to_path_buf(),
        msg,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let (width, height, bits) = moirelab_core::mask::decode_png(&bytes, u64::MAX).map_err(err)?;
    Ok(RegionMasks {
        width,
        height,
        names: names.to_vec(),
        bits,
    })
}

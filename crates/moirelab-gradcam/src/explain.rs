//! `moirelab explain`: CAMs of arbitrary images, written as overlays, heatmaps, raw maps and
//! one JSON file per image.
//!
//! ```text
//! <out>/<name>-<method>-overlay.png   heat over the image (image weight from the options)
//! <out>/<name>-<method>-heat.png      heat only (per-image normalised)
//! <out>/<name>.safetensors            raw maps, "<method>/<layer>/<target>" -> [H, W]
//! <out>/<name>.json                   ExplainRecord
//! ```

use crate::cam::{compute_multi, Method, Targets};
use crate::metrics::region_table;
use crate::overlay::{fit, heatmap, overlay, save_png, Map2};
use crate::{Colormap, GradcamError, Result};
use moirelab_core::dataset_format::RegionMasks;
use moirelab_core::fsio;
use moirelab_core::run::RegionStats;
use moirelab_models::CamNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tch::{Kind, Tensor};

/// One image to explain, prepared by the caller (decode + the model's preprocessing).
#[derive(Debug)]
pub struct ExplainInput {
    /// Output file stem; must be unique and file-name safe (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Display image (resized to the input size if it differs).
    pub image: image::RgbImage,
    /// `[C, H, W]` normalised model input.
    pub input: Tensor,
    /// Region masks for attention metrics, if known.
    pub masks: Option<RegionMasks>,
}

/// What to compute and how to draw it.
#[derive(Debug, Clone)]
pub struct ExplainOptions {
    pub methods: Vec<Method>,
    /// Empty = the model's default CAM layer; several are averaged.
    pub layers: Vec<String>,
    /// `None` explains the predicted class.
    pub target: Option<i64>,
    pub classes: Vec<String>,
    pub colormap: Colormap,
    pub image_weight: f64,
    pub pointing_tolerance: u32,
    pub batch_size: usize,
}

/// `<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainRecord {
    pub name: String,
    pub classes: Vec<String>,
    pub probs: Vec<f64>,
    pub pred_class: usize,
    pub target_class: usize,
    pub layer: String,
    /// Per method: file names written and region stats (empty without masks).
    pub methods: BTreeMap<String, ExplainMethod>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainMethod {
    pub overlay: String,
    pub heat: String,
    /// Largest value of the raw map (to compare images on one scale).
    pub raw_max: f64,
    pub regions: BTreeMap<String, RegionStats>,
}

fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Explain every input and write the files above into `out_dir` (created if needed).
pub fn explain(
    net: &dyn CamNet,
    inputs: &[ExplainInput],
    opts: &ExplainOptions,
    out_dir: &Path,
) -> Result<Vec<ExplainRecord>> {
    let mut seen = BTreeSet::new();
    for (i, inp) in inputs.iter().enumerate() {
        if !safe_name(&inp.name) || !seen.insert(inp.name.as_str()) {
            return Err(GradcamError::Probe {
                index: i,
                id: inp.name.clone(),
                msg: "output name is empty, unsafe for a file name, or used twice".into(),
            });
        }
    }
    let refs: Vec<&str> = opts.layers.iter().map(String::as_str).collect();
    let layer = if refs.is_empty() {
        net.default_cam_layer()
    } else {
        refs.join("+")
    };
    let targets = match opts.target {
        Some(c) => Targets::Class(c),
        None => Targets::Pred,
    };
    let bs = opts.batch_size.max(1);
    let mut records = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(bs) {
        let xs = Tensor::f_stack(
            &chunk
                .iter()
                .map(|c| c.input.to_kind(Kind::Float))
                .collect::<Vec<_>>(),
            0,
        )?;
        let (_, _, h, w) = xs.size4()?;
        let mut batch = compute_multi(
            net,
            &xs,
            std::slice::from_ref(&targets),
            &refs,
            &opts.methods,
            bs as i64,
        )?
        .remove(0);
        // Before any file of the batch is written: a NaN score is no explanation.
        for (i, p) in batch.probs.iter().enumerate() {
            if let Some(&value) = p.iter().find(|v| !v.is_finite()) {
                let index = records.len() + i;
                return Err(GradcamError::NonFiniteScore { index, value });
            }
        }
        let pred: Vec<i64> = batch
            .probs
            .iter()
            .map(|p| {
                (0..p.len())
                    .max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)))
                    .unwrap_or(0) as i64
            })
            .collect();
        let mut raws = Vec::new();
        let mut norms = Vec::new();
        for m in batch.maps.iter_mut() {
            raws.push(Map2::batch_from_tensor(&m.raw)?);
            norms.push(Map2::batch_from_tensor(&m.normalized)?);
        }
        for (i, inp) in chunk.iter().enumerate() {
            let image = fit(&inp.image, w as u32, h as u32);
            let mut methods = BTreeMap::new();
            let mut named = Vec::new();
            let target_word = if opts.target.is_some() {
                "class"
            } else {
                "pred"
            };
            for (mi, m) in batch.maps.iter().enumerate() {
                let heat = heatmap(&norms[mi][i], 1.0, opts.colormap);
                let over = overlay(&image, &heat, opts.image_weight)?;
                let overlay_name = format!("{}-{}-overlay.png", inp.name, m.method.file_stem());
                let heat_name = format!("{}-{}-heat.png", inp.name, m.method.file_stem());
                save_png(&over, &out_dir.join(&overlay_name))?;
                save_png(&heat, &out_dir.join(&heat_name))?;
                let regions = inp
                    .masks
                    .as_ref()
                    .map(|mk| region_table(&raws[mi][i], mk, opts.pointing_tolerance))
                    .unwrap_or_default();
                methods.insert(
                    m.method.to_string(),
                    ExplainMethod {
                        overlay: overlay_name,
                        heat: heat_name,
                        raw_max: raws[mi][i].max() as f64,
                        regions,
                    },
                );
                named.push((
                    format!("{}/{}/{target_word}", m.method, m.layer),
                    m.raw.get(i as i64),
                ));
            }
            let st = out_dir.join(format!("{}.safetensors", inp.name));
            fsio::write_atomic_with(&st, |tmp| Tensor::write_safetensors(&named, tmp)).map_err(
                |e| GradcamError::Write {
                    path: st.clone(),
                    msg: e.to_string(),
                },
            )?;
            let rec = ExplainRecord {
                name: inp.name.clone(),
                classes: opts.classes.clone(),
                probs: batch.probs[i].clone(),
                pred_class: pred[i] as usize,
                target_class: batch.targets[i] as usize,
                layer: layer.clone(),
                methods,
            };
            fsio::write_json_atomic(&out_dir.join(format!("{}.json", inp.name)), &rec)?;
            records.push(rec);
        }
    }
    Ok(records)
}

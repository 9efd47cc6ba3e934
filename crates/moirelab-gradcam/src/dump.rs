//! The per-epoch CAM dump of a fixed probe set into the run folder (layout in
//! `moirelab_core::run`):
//!
//! ```text
//! probes/NN.png                      probe inputs (write_probe_inputs, once)
//! probes/scales.json                 per-method colour scale when scale = "run"
//! epochs/NNNN/grid.png               rows = probes; per method: pred, true (inputs: probes/)
//! epochs/NNNN/maps/<method>-<pred|true>.png   raw maps as 8-bit strips (MapsFile)
//! epochs/NNNN/maps.json              MapsFile: value range of every map
//! epochs/NNNN/probes.json            ProbesFile
//! epochs/NNNN/tiles/NN-<method>-overlay.png    pred-class overlay, only with `tiles = true`
//! ```
//!
//! Every file is written atomically; the same weights and probes give the same bytes.

use crate::cam::{compute_multi, Method, Targets};
use crate::config::Scale;
use crate::grid::{compose, ColorBar, GridRow};
use crate::metrics::{region_table, RegionMean};
use crate::overlay::{fit, heatmap, overlay, save_png, Map2};
use crate::{Colormap, GradcamConfig, GradcamError, ProbeInput, Result};
use image::GrayImage;
use moirelab_core::dataset_format::RegionMasks;
use moirelab_core::fsio;
use moirelab_core::run::{
    self, CamMetrics, CamTarget, MapStrip, MapsFile, ProbeRecord, ProbesFile, RegionStats,
};
use moirelab_models::CamNet;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

const SCALES_JSON: &str = "scales.json";
const TARGETS: [CamTarget; 2] = [CamTarget::Pred, CamTarget::True];

/// Dumps CAMs of a fixed probe set; built once per run, called from the epoch hook.
#[derive(Debug)]
pub struct Dumper {
    cfg: GradcamConfig,
    methods: Vec<Method>,
    layers: Vec<String>,
    colormap: Colormap,
    scale: Scale,
    classes: Vec<String>,
    probes: Vec<ProbeInput>,
    /// Region masks resized to the input size, per probe.
    masks: Vec<Option<RegionMasks>>,
    /// `[P, C, H, W]` on the probes' device.
    inputs: Tensor,
    height: u32,
    width: u32,
    run_scales: Option<BTreeMap<String, f64>>,
}

/// Maps of one dump on the CPU: `[target][method][probe]`.
struct DumpMaps {
    raw: Vec<Vec<Vec<Map2>>>,
    normalized: Vec<Vec<Vec<Map2>>>,
    probs: Vec<Vec<f64>>,
    pred: Vec<i64>,
}

/// Region stats summed over the probes of one dump, keyed by (method, target) indices.
#[derive(Default)]
struct RegionTotals {
    /// All probes, aligned ones, conflicting ones.
    means: BTreeMap<(usize, usize), [RegionMean; 3]>,
    /// Probes with a region table.
    counts: BTreeMap<(usize, usize), u64>,
    /// By the class the map explains (predicted or true).
    per_class: BTreeMap<(usize, usize, usize), RegionMean>,
}

impl RegionTotals {
    fn add(
        &mut self,
        mi: usize,
        ti: usize,
        class: usize,
        aligned: Option<bool>,
        table: &BTreeMap<String, RegionStats>,
    ) {
        let acc = self.means.entry((mi, ti)).or_default();
        acc[0].update(table);
        match aligned {
            Some(true) => acc[1].update(table),
            Some(false) => acc[2].update(table),
            None => {}
        }
        self.per_class
            .entry((mi, ti, class))
            .or_default()
            .update(table);
        *self.counts.entry((mi, ti)).or_default() += 1;
    }
}

impl Dumper {
    /// Validate the config against the model and the probes: layers must exist, every probe
    /// input must be `[in_channels, H, W]` with one shared size, classes must match the model.
    pub fn new(
        cfg: &GradcamConfig,
        classes: Vec<String>,
        probes: Vec<ProbeInput>,
        net: &dyn CamNet,
    ) -> Result<Self> {
        cfg.validate()?;
        let methods = cfg.parsed_methods()?;
        let colormap: Colormap = cfg.colormap.parse()?;
        let scale: Scale = cfg.scale.parse()?;
        let layers: Vec<String> = if cfg.layers.is_empty() {
            vec![net.default_cam_layer()]
        } else {
            cfg.layers.clone()
        };
        let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
        moirelab_models::check_layers(net, &refs)?;
        let model_classes = net.config().classes;
        if classes.len() as i64 != model_classes {
            return Err(GradcamError::Config(format!(
                "{} class names ({}) for a model with {model_classes} outputs",
                classes.len(),
                classes.join(", ")
            )));
        }
        let Some(first) = probes.first() else {
            return Err(GradcamError::Config("no probe images".into()));
        };
        let size = first.input.size();
        let channels = net.config().in_channels;
        if size.len() != 3 || size[0] != channels {
            return Err(GradcamError::Probe {
                index: 0,
                id: first.id.clone(),
                msg: format!("input shape {size:?}, expected [{channels}, H, W]"),
            });
        }
        let (height, width) = (size[1] as u32, size[2] as u32);
        let mut probes = probes;
        let mut masks = Vec::with_capacity(probes.len());
        for (index, p) in probes.iter_mut().enumerate() {
            let err = |msg: String| GradcamError::Probe {
                index,
                id: p.id.clone(),
                msg,
            };
            if p.input.size() != size {
                return Err(err(format!(
                    "input shape {:?} differs from the first probe's {size:?}",
                    p.input.size()
                )));
            }
            if p.true_class >= classes.len() {
                return Err(err(format!(
                    "true class {} is out of range 0..{}",
                    p.true_class,
                    classes.len()
                )));
            }
            p.image = fit(&p.image, width, height);
            masks.push(p.masks.as_ref().map(|m| {
                if (m.width, m.height) == (width, height) {
                    m.clone()
                } else {
                    m.resize_nearest(width, height)
                }
            }));
        }
        let inputs = Tensor::f_stack(
            &probes
                .iter()
                .map(|p| p.input.to_kind(Kind::Float))
                .collect::<Vec<_>>(),
            0,
        )?;
        Ok(Dumper {
            cfg: cfg.clone(),
            methods,
            layers,
            colormap,
            scale,
            classes,
            probes,
            masks,
            inputs,
            height,
            width,
            run_scales: None,
        })
    }

    /// The layer names maps are computed on (the config's, or the model's default).
    pub fn layers(&self) -> &[String] {
        &self.layers
    }

    /// Whether epoch `epoch` (1-based) of a run of `last_epoch` epochs gets a dump: the first,
    /// every `every`-th, and the last.
    pub fn due(&self, epoch: u32, last_epoch: u32) -> bool {
        epoch == 1 || epoch == last_epoch || epoch.is_multiple_of(self.cfg.every)
    }

    /// Move the probe inputs to the model's device (they start where the caller made them).
    pub fn to_device(&mut self, device: Device) {
        self.inputs = self.inputs.to_device(device);
    }

    /// `probes/NN.png`, the inputs as the model sees them (written once per run).
    pub fn write_probe_inputs(&self, run_dir: &Path) -> Result<()> {
        for (i, p) in self.probes.iter().enumerate() {
            save_png(&p.image, &run::probe_input_png(run_dir, i))?;
        }
        Ok(())
    }

    /// Compute, render and write the maps of epoch `epoch`; returns the mean region stats per
    /// (method, target) — `probes` counts the probes with masks and a non-empty map, and the
    /// region tables are empty without masks — with `dump_s` set.
    pub fn dump(
        &mut self,
        net: &dyn CamNet,
        run_dir: &Path,
        epoch: u32,
    ) -> Result<Vec<CamMetrics>> {
        let started = Instant::now();
        let maps = self.compute_maps(net)?;
        let dir = run::epoch_dir(run_dir, epoch);
        let layer = self.layers.join("+");
        self.write_map_strips(&maps, &dir, epoch, &layer)?;
        let (records, totals) = self.region_records(&maps);
        let probes_file = ProbesFile {
            epoch,
            classes: self.classes.clone(),
            methods: self.methods.iter().map(|m| m.to_string()).collect(),
            layers: self.layers.clone(),
            image_size: [self.width, self.height],
            colormap: self.colormap.to_string(),
            probes: records,
        };
        fsio::write_json_atomic(&dir.join(run::PROBES_JSON), &probes_file)?;
        self.write_pictures(&maps, run_dir, epoch)?;
        let dump_s = started.elapsed().as_secs_f64();
        Ok(self.cam_metrics(totals, epoch, &layer, dump_s))
    }

    /// The raw maps in compact form: one 8-bit strip per (method, target) under `maps/`, and
    /// their ranges in `maps.json`.
    fn write_map_strips(&self, maps: &DumpMaps, dir: &Path, epoch: u32, layer: &str) -> Result<()> {
        let mut strips = BTreeMap::new();
        for (ti, t) in TARGETS.iter().enumerate() {
            for (mi, m) in self.methods.iter().enumerate() {
                let file = format!("maps/{}-{}.png", m.file_stem(), t.as_str());
                let (img, strip) = map_strip(&maps.raw[ti][mi], self.width, self.height, file);
                save_gray_png(&img, &dir.join(&strip.file))?;
                strips.insert(format!("{m}/{}", t.as_str()), strip);
            }
        }
        let maps_file = MapsFile {
            epoch,
            width: self.width,
            height: self.height,
            layer: layer.to_string(),
            maps: strips,
        };
        fsio::write_json_atomic(&dir.join(run::MAPS_JSON), &maps_file)?;
        Ok(())
    }

    /// Each probe's record for `probes.json` (with its region table per method and target,
    /// where it has masks), and the region stats summed over the probes.
    fn region_records(&self, maps: &DumpMaps) -> (Vec<ProbeRecord>, RegionTotals) {
        let mut records = Vec::with_capacity(self.probes.len());
        let mut totals = RegionTotals::default();
        for (pi, probe) in self.probes.iter().enumerate() {
            let mut regions: BTreeMap<String, BTreeMap<String, RegionStats>> = BTreeMap::new();
            if let Some(masks) = &self.masks[pi] {
                for (ti, t) in TARGETS.iter().enumerate() {
                    for (mi, m) in self.methods.iter().enumerate() {
                        let table =
                            region_table(&maps.raw[ti][mi][pi], masks, self.cfg.pointing_tolerance);
                        if table.is_empty() {
                            continue;
                        }
                        let class = match t {
                            CamTarget::Pred => maps.pred[pi] as usize,
                            CamTarget::True => probe.true_class,
                        };
                        totals.add(mi, ti, class, probe.aligned, &table);
                        regions.insert(format!("{m}/{}", t.as_str()), table);
                    }
                }
            }
            records.push(ProbeRecord {
                index: pi,
                id: probe.id.clone(),
                image_hash: probe.image_hash.map(|h| format!("{h:016x}")),
                true_class: probe.true_class,
                pred_class: maps.pred[pi] as usize,
                probs: maps.probs[pi].clone(),
                groups: probe.groups.clone(),
                aligned: probe.aligned,
                regions,
            });
        }
        (records, totals)
    }

    /// The epoch's grid (maps only, with a colour bar) and, with `tiles`, one overlay per
    /// probe and method.
    fn write_pictures(&mut self, maps: &DumpMaps, run_dir: &Path, epoch: u32) -> Result<()> {
        let scales = self.scales(run_dir, maps)?;
        let mut rows = Vec::with_capacity(self.probes.len());
        for (pi, probe) in self.probes.iter().enumerate() {
            // Maps only: the inputs never change (probes/NN.png), and repeating their noisy
            // pixels every epoch made the grid the largest file of a dump.
            let mut tiles = Vec::with_capacity(2 * self.methods.len());
            for (mi, m) in self.methods.iter().enumerate() {
                let draw = |ti: usize| match scales[mi] {
                    None => heatmap(&maps.normalized[ti][mi][pi], 1.0, self.colormap),
                    Some(s) => heatmap(&maps.raw[ti][mi][pi], s, self.colormap),
                };
                let pred = draw(0);
                let truth = draw(1);
                if self.cfg.tiles {
                    let over = overlay(&probe.image, &pred, self.cfg.image_weight)?;
                    let path = run::tile_png(run_dir, epoch, pi, m.file_stem(), "overlay");
                    save_png(&over, &path)?;
                }
                tiles.extend([pred, truth]);
            }
            rows.push(GridRow {
                tiles,
                label: self.label(pi, maps, epoch),
            });
        }
        let mut headers = Vec::new();
        for m in &self.methods {
            headers.extend([format!("{m} pred"), format!("{m} true")]);
        }
        let bar = ColorBar {
            colormap: self.colormap,
            low: "0".into(),
            high: if scales.iter().all(Option::is_none) {
                "1".into()
            } else {
                "max".into()
            },
            caption: self.scale_caption(&scales),
        };
        let grid = compose(&headers, &rows, Some(&bar));
        save_png(&grid, &run::epoch_dir(run_dir, epoch).join(run::GRID_PNG))
    }

    /// The mean region stats per (method, target), overall, on aligned and conflicting probes,
    /// and per class.
    fn cam_metrics(
        &self,
        mut totals: RegionTotals,
        epoch: u32,
        layer: &str,
        dump_s: f64,
    ) -> Vec<CamMetrics> {
        let mut out = Vec::new();
        for (mi, m) in self.methods.iter().enumerate() {
            for (ti, t) in TARGETS.iter().enumerate() {
                let acc = totals.means.remove(&(mi, ti)).unwrap_or_default();
                let by_class = totals
                    .per_class
                    .iter()
                    .filter(|((m2, t2, _), _)| (*m2, *t2) == (mi, ti))
                    .map(|((_, _, c), mean)| {
                        let name = self
                            .classes
                            .get(*c)
                            .cloned()
                            .unwrap_or_else(|| c.to_string());
                        (name, mean.compute())
                    })
                    .collect();
                out.push(CamMetrics {
                    epoch,
                    method: m.to_string(),
                    layer: layer.to_string(),
                    target: *t,
                    probes: totals.counts.get(&(mi, ti)).copied().unwrap_or(0),
                    regions: acc[0].compute(),
                    aligned: acc[1].compute(),
                    conflicting: acc[2].compute(),
                    per_class: by_class,
                    dump_s,
                });
            }
        }
        out
    }

    /// Maps of every probe, chunked by `batch-size`, moved to the CPU.
    fn compute_maps(&self, net: &dyn CamNet) -> Result<DumpMaps> {
        let p = self.probes.len() as i64;
        let bs = self.cfg.batch_size as i64;
        let refs: Vec<&str> = self.layers.iter().map(String::as_str).collect();
        let nm = self.methods.len();
        let empty = || -> Vec<Vec<Vec<Tensor>>> {
            (0..2)
                .map(|_| (0..nm).map(|_| Vec::new()).collect())
                .collect()
        };
        let mut raw_chunks = empty();
        let mut norm_chunks = empty();
        let mut probs = Vec::with_capacity(p as usize);
        let mut pred = Vec::with_capacity(p as usize);
        let mut start = 0;
        while start < p {
            let len = bs.min(p - start);
            let xs = self.inputs.narrow(0, start, len);
            let truth: Vec<i64> = self.probes[start as usize..(start + len) as usize]
                .iter()
                .map(|q| q.true_class as i64)
                .collect();
            let batches = compute_multi(
                net,
                &xs,
                &[Targets::Pred, Targets::Classes(truth)],
                &refs,
                &self.methods,
                bs,
            )?;
            probs.extend(batches[0].probs.iter().cloned());
            pred.extend(batches[0].targets.iter().copied());
            for (ti, b) in batches.into_iter().enumerate() {
                for (mi, map) in b.maps.into_iter().enumerate() {
                    raw_chunks[ti][mi].push(map.raw.to_device(Device::Cpu));
                    norm_chunks[ti][mi].push(map.normalized.to_device(Device::Cpu));
                }
            }
            start += len;
        }
        let mut raw = Vec::new();
        let mut normalized = Vec::new();
        for ti in 0..2 {
            let mut r_m = Vec::new();
            let mut n_m = Vec::new();
            for mi in 0..nm {
                let r = Tensor::f_cat(&raw_chunks[ti][mi], 0)?.contiguous();
                let n = Tensor::f_cat(&norm_chunks[ti][mi], 0)?;
                r_m.push(Map2::batch_from_tensor(&r)?);
                n_m.push(Map2::batch_from_tensor(&n)?);
            }
            raw.push(r_m);
            normalized.push(n_m);
        }
        Ok(DumpMaps {
            raw,
            normalized,
            probs,
            pred,
        })
    }

    /// Per method: `None` = per-image normalised maps, `Some(s)` = raw maps divided by `s`.
    fn scales(&mut self, run_dir: &Path, maps: &DumpMaps) -> Result<Vec<Option<f32>>> {
        let max_of = |mi: usize| -> f64 {
            maps.raw
                .iter()
                .flat_map(|t| t[mi].iter())
                .map(|m| m.max() as f64)
                .fold(0.0, f64::max)
        };
        match self.scale {
            Scale::PerImage => Ok(vec![None; self.methods.len()]),
            Scale::Grid => Ok((0..self.methods.len())
                .map(|mi| Some(max_of(mi) as f32))
                .collect()),
            Scale::Run => {
                let path = run_dir.join("probes").join(SCALES_JSON);
                if self.run_scales.is_none() && path.exists() {
                    self.run_scales = Some(fsio::read_json(&path)?);
                }
                let scales = self.run_scales.get_or_insert_with(BTreeMap::new);
                let mut changed = false;
                for (mi, m) in self.methods.iter().enumerate() {
                    scales.entry(m.to_string()).or_insert_with(|| {
                        changed = true;
                        max_of(mi)
                    });
                }
                if changed {
                    fsio::write_json_atomic(&path, scales)?;
                }
                Ok(self
                    .methods
                    .iter()
                    .map(|m| scales.get(m.as_str()).map(|&s| s as f32))
                    .collect())
            }
        }
    }

    fn scale_caption(&self, scales: &[Option<f32>]) -> String {
        match self.scale {
            Scale::PerImage => "per image".into(),
            s => {
                let parts: Vec<String> = self
                    .methods
                    .iter()
                    .zip(scales)
                    .map(|(m, v)| format!("{m}={:.3}", v.unwrap_or(0.0)))
                    .collect();
                format!("{s} max {}", parts.join(" "))
            }
        }
    }

    fn label(&self, pi: usize, maps: &DumpMaps, epoch: u32) -> String {
        let p = &self.probes[pi];
        let pred = maps.pred[pi] as usize;
        let name = |c: usize| self.classes.get(c).map(String::as_str).unwrap_or("?");
        let prob = maps.probs[pi].get(pred).copied().unwrap_or(0.0);
        let mut s = format!(
            "{pi:02} true={} pred={} p={prob:.2}",
            name(p.true_class),
            name(pred)
        );
        for (k, v) in &p.groups {
            s.push_str(&format!(" {k}={v}"));
        }
        match p.aligned {
            Some(true) => s.push_str(" aligned"),
            Some(false) => s.push_str(" conflicting"),
            None => {}
        }
        s.push_str(&format!(" ep{epoch}"));
        s
    }
}

/// Quantise maps of one (method, target) into an 8-bit strip, each map against its own range.
fn map_strip(maps: &[Map2], width: u32, height: u32, file: String) -> (GrayImage, MapStrip) {
    let mut img = GrayImage::new(width, height * maps.len() as u32);
    let mut strip = MapStrip {
        file,
        min: Vec::with_capacity(maps.len()),
        max: Vec::with_capacity(maps.len()),
    };
    for (i, m) in maps.iter().enumerate() {
        let finite = m.data.iter().copied().filter(|v| v.is_finite());
        let lo = finite.clone().fold(f32::INFINITY, f32::min);
        let hi = finite.fold(f32::NEG_INFINITY, f32::max);
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 0.0) };
        let span = hi - lo;
        let row0 = i as u32 * height;
        for (k, &v) in m.data.iter().enumerate().take((width * height) as usize) {
            let q = if span > 0.0 && v.is_finite() {
                (255.0 * (v - lo) / span).round().clamp(0.0, 255.0) as u8
            } else {
                0
            };
            img.put_pixel(k as u32 % width, row0 + k as u32 / width, image::Luma([q]));
        }
        strip.min.push(f64::from(lo));
        strip.max.push(f64::from(hi));
    }
    (img, strip)
}

/// Write an 8-bit grayscale PNG atomically (best compression: strips are kept per epoch).
fn save_gray_png(img: &GrayImage, path: &Path) -> Result<()> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, CompressionType::Best, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::L8,
        )
        .map_err(|e| GradcamError::Write {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    fsio::write_atomic(path, &bytes)?;
    Ok(())
}

/// Apply a [`crate::KeepPolicy`]: delete `epochs/NNNN/` folders whose epoch the policy does not
/// keep. `last` is the run's last epoch; returns the deleted epochs, ascending.
pub fn prune_epochs(
    run_dir: &Path,
    policy: &crate::KeepPolicy,
    best: Option<u32>,
    last: u32,
) -> Result<Vec<u32>> {
    let dir = run_dir.join("epochs");
    let io = |path: &Path, e: std::io::Error| GradcamError::Write {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir, e)),
    };
    let mut epochs = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io(&dir, e))?.path();
        let epoch = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(e) = epoch.filter(|&e| run::epoch_dir(run_dir, e) == path) {
            epochs.push(e);
        }
    }
    epochs.sort_unstable();
    let mut deleted = Vec::new();
    for e in epochs {
        if !policy.keeps(e, best, last) {
            let path = run::epoch_dir(run_dir, e);
            std::fs::remove_dir_all(&path).map_err(|err| io(&path, err))?;
            deleted.push(e);
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_policy_epochs_best_and_last_and_other_folders() {
        let tmp = tempfile::tempdir().unwrap();
        for e in 1..=12 {
            std::fs::create_dir_all(run::epoch_dir(tmp.path(), e).join("maps")).unwrap();
        }
        std::fs::create_dir_all(tmp.path().join("epochs/notes")).unwrap();
        let policy = crate::KeepPolicy { first: 2, every: 5 };
        let deleted = prune_epochs(tmp.path(), &policy, Some(7), 12).unwrap();
        assert_eq!(deleted, [3, 4, 6, 8, 9, 11]);
        for e in [1, 2, 5, 7, 10, 12] {
            assert!(run::epoch_dir(tmp.path(), e).is_dir(), "epoch {e}");
        }
        assert!(tmp.path().join("epochs/notes").is_dir());
        assert!(prune_epochs(&tmp.path().join("none"), &policy, None, 3)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn map_strips_quantise_each_map_against_its_own_range() {
        let maps = [
            Map2 {
                width: 2,
                height: 1,
                data: vec![1.0, 3.0],
            },
            Map2 {
                width: 2,
                height: 1,
                data: vec![0.5, 0.5],
            },
        ];
        let (img, strip) = map_strip(&maps, 2, 1, "maps/x.png".into());
        assert_eq!((img.width(), img.height()), (2, 2));
        assert_eq!(img.as_raw(), &vec![0, 255, 0, 0]);
        assert_eq!((strip.min, strip.max), (vec![1.0, 0.5], vec![3.0, 0.5]));
    }
}

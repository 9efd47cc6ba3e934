//! Data-set plan (labels, stratified splits, planted shortcuts), parallel generation into the
//! `moirelab-core` format, and the preview contact sheet.

use crate::card::{FlagFamily, Hair};
use crate::config::GenConfig;
use crate::pipeline::{render, Rendered, SampleSpec};
use crate::{SynthError, GENERATOR_NAME, GENERATOR_VERSION, REGIONS};
use font8x8::UnicodeFonts;
use image::ImageEncoder;
use moirelab_core::dataset_format::{
    DatasetMeta, GeneratorInfo, ManifestRecord, RegionMasks, DATASET_JSON, FORMAT_VERSION,
    MANIFEST_JSONL,
};
use moirelab_core::rng::Rng;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Shortcut attribute names (keys of `DatasetMeta::shortcuts` and `ManifestRecord::groups`).
pub const SHORTCUT_FLAG: &str = "flag";
pub const SHORTCUT_HAIR: &str = "hair";

/// The plan of one sample: label, split and group attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanEntry {
    pub screen: bool,
    /// `train`, `val` or `test`.
    pub split: &'static str,
    pub family: FlagFamily,
    pub hair: Hair,
}

impl PlanEntry {
    pub fn label(&self) -> &'static str {
        if self.screen {
            "screen"
        } else {
            "direct"
        }
    }
}

/// One rendered sample with its masks and manifest record.
#[derive(Debug, Clone)]
pub struct Sample {
    pub image: image::RgbImage,
    pub masks: RegionMasks,
    pub record: ManifestRecord,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenSummary {
    pub out: PathBuf,
    pub count: usize,
    /// split -> label -> count.
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    /// split -> number of flag-aligned samples.
    pub flag_aligned: BTreeMap<String, usize>,
    pub twins: usize,
    /// Samples copied from a donor data set instead of rendered (see [`Donor`]).
    pub reused: usize,
}

const SPLITS: [&str; 3] = ["train", "val", "test"];
/// Stream ids of the plan (far from sample indices).
const PLAN_STREAM: u64 = u64::MAX - 7;

/// Labels (exactly balanced), stratified splits and shortcut groups for the whole data set.
/// Within every (split, label) cell exactly `round(rho·n)` samples are aligned, so the
/// planted correlation is exact rather than a sampling accident.
pub fn plan(cfg: &GenConfig) -> Result<Vec<PlanEntry>, SynthError> {
    cfg.validate()?;
    let n = cfg.count;
    let k = &cfg.knobs;
    let mut rng = Rng::derive(cfg.seed, &[PLAN_STREAM]);
    let mut screen = vec![false; n];
    screen[..n / 2].iter_mut().for_each(|s| *s = true);
    rng.shuffle(&mut screen);
    let mut split = vec!["test"; n];
    for label in [true, false] {
        let mut idx: Vec<usize> = (0..n).filter(|&i| screen[i] == label).collect();
        rng.shuffle(&mut idx);
        let m = idx.len();
        let n_train = ((m as f64 * k.train_frac).round() as usize).min(m);
        let n_val = ((m as f64 * k.val_frac).round() as usize).min(m - n_train);
        for (j, &i) in idx.iter().enumerate() {
            split[i] = if j < n_train {
                "train"
            } else if j < n_train + n_val {
                "val"
            } else {
                "test"
            };
        }
    }
    let mut flag_aligned = vec![false; n];
    let mut hair_aligned = vec![false; n];
    for s in SPLITS {
        let (rf, rh) = if s == "test" {
            (k.test_rho_flag, k.test_rho_face)
        } else {
            (k.rho_flag, k.rho_face)
        };
        for label in [true, false] {
            let mut idx: Vec<usize> = (0..n)
                .filter(|&i| screen[i] == label && split[i] == s)
                .collect();
            for (rho, aligned) in [(rf, &mut flag_aligned), (rh, &mut hair_aligned)] {
                rng.shuffle(&mut idx);
                let na = (idx.len() as f64 * rho).round() as usize;
                for &i in &idx[..na.min(idx.len())] {
                    aligned[i] = true;
                }
            }
        }
    }
    Ok((0..n)
        .map(|i| {
            let s = screen[i];
            let family = if flag_aligned[i] == s {
                FlagFamily::A
            } else {
                FlagFamily::B
            };
            let hair = if hair_aligned[i] == s {
                Hair::Dark
            } else {
                Hair::Light
            };
            PlanEntry {
                screen: s,
                split: split[i],
                family,
                hair,
            }
        })
        .collect())
}

fn stem(index: usize) -> String {
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
fn record_with(
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

fn spec_of(index: usize, e: &PlanEntry) -> SampleSpec {
    SampleSpec {
        index,
        screen: e.screen,
        family: e.family,
        hair: e.hair,
        test: e.split == "test",
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

/// Render sample `index` of the data set `cfg` describes (the same bytes [`generate`] writes).
pub fn render_sample(cfg: &GenConfig, index: usize) -> Result<Sample, SynthError> {
    let p = plan(cfg)?;
    let e = p.get(index).ok_or(SynthError::IndexOutOfRange {
        index,
        count: cfg.count,
    })?;
    let r = render(cfg, &spec_of(index, e), false, true)?;
    sample_from(cfg, index, e, r)
}

fn sample_from(
    cfg: &GenConfig,
    index: usize,
    e: &PlanEntry,
    r: Rendered,
) -> Result<Sample, SynthError> {
    let record = record(index, e, &r, cfg.twins);
    let image = image::RgbImage::from_raw(cfg.size, cfg.size, r.rgb8).ok_or_else(|| {
        SynthError::Render {
            index,
            msg: "image buffer has the wrong length".into(),
        }
    })?;
    Ok(Sample {
        image,
        masks: masks_of(cfg.size, r.bits),
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

fn png_encoder(
    out: &mut Vec<u8>,
    filter: image::codecs::png::FilterType,
) -> image::codecs::png::PngEncoder<&mut Vec<u8>> {
    image::codecs::png::PngEncoder::new_with_quality(
        out,
        image::codecs::png::CompressionType::Fast,
        filter,
    )
}

fn encode_png(path: &Path, img: &image::RgbImage) -> Result<Vec<u8>, SynthError> {
    let mut out = Vec::new();
    // Paeth alone compresses camera images about as well as the adaptive per-row choice, at
    // a fifth of the filtering work.
    png_encoder(&mut out, image::codecs::png::FilterType::Paeth)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| SynthError::Image {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    Ok(out)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    std::fs::write(path, bytes).map_err(|source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `dataset.json` content for a config.
pub fn dataset_meta(cfg: &GenConfig) -> Result<DatasetMeta, SynthError> {
    let knobs = serde_json::to_value(cfg).map_err(|e| SynthError::Invalid {
        what: "config".into(),
        msg: e.to_string(),
    })?;
    let pair = |s: &str, d: &str| -> BTreeMap<String, String> {
        [
            ("screen".to_string(), s.to_string()),
            ("direct".to_string(), d.to_string()),
        ]
        .into_iter()
        .collect()
    };
    Ok(DatasetMeta {
        format_version: FORMAT_VERSION,
        classes: vec!["direct".into(), "screen".into()],
        regions: REGIONS.iter().map(|s| s.to_string()).collect(),
        attack_class: Some("screen".into()),
        shortcuts: [
            (SHORTCUT_FLAG.to_string(), pair("A", "B")),
            (SHORTCUT_HAIR.to_string(), pair("dark", "light")),
        ]
        .into_iter()
        .collect(),
        // Hair colour is seen in the portrait.
        shortcut_regions: [(SHORTCUT_HAIR.to_string(), "face".to_string())]
            .into_iter()
            .collect(),
        generator: Some(GeneratorInfo {
            name: GENERATOR_NAME.into(),
            version: GENERATOR_VERSION.into(),
            preset: cfg.preset.clone(),
            seed: cfg.seed,
            knobs,
        }),
        image_size: Some(cfg.size),
    })
}

/// An existing data set whose samples can stand in for ones this config would render.
///
/// A shortcut-strength sweep (ρ = 0.5, 0.8, 0.95, … on one seed) renders mostly the same
/// samples again: with the same generator version, seed, size, twins setting and every knob
/// that reaches the renderer, sample `i` is byte-identical whenever its label and groups
/// (screen, flag family, hair) agree. Those are copied instead of rendered; everything else
/// is rendered as usual, so the result is byte-identical to a fresh generation (tested).
#[derive(Debug)]
pub struct Donor {
    root: PathBuf,
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
        let records = moirelab_core::fsio::read_jsonl::<ManifestRecord>(&dir.join(MANIFEST_JSONL))?
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
    /// groups, with a mask (and a twin when `twins`).
    fn matching(&self, index: usize, e: &PlanEntry, twins: bool) -> Option<&ManifestRecord> {
        let r = self.records.get(&index)?;
        let same = r.label == e.label()
            && r.groups.get(SHORTCUT_FLAG).map(String::as_str) == Some(e.family.name())
            && r.groups.get(SHORTCUT_HAIR).map(String::as_str) == Some(e.hair.name())
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

/// Generate the data set into `out`. An existing non-empty `out` is an error unless `force`;
/// everything is written into a hidden sibling folder first and renamed into place at the
/// end, so a failure leaves nothing half-written. `progress(done, total)` is called from
/// worker threads.
pub fn generate(
    cfg: &GenConfig,
    out: &Path,
    force: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<GenSummary, SynthError> {
    generate_reusing(cfg, out, force, progress, &[])
}

/// [`generate`], copying every sample that one of `donors` already holds (first match wins;
/// see [`Donor`]) instead of rendering it.
pub fn generate_reusing(
    cfg: &GenConfig,
    out: &Path,
    force: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
    donors: &[Donor],
) -> Result<GenSummary, SynthError> {
    let entries = plan(cfg)?;
    let exists = out.exists();
    if exists {
        if !out.is_dir() {
            return Err(SynthError::Io {
                path: out.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not a folder",
                ),
            });
        }
        let non_empty = std::fs::read_dir(out).map_err(io(out))?.next().is_some();
        if non_empty && !force {
            return Err(SynthError::OutputNotEmpty {
                path: out.to_path_buf(),
            });
        }
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| SynthError::Invalid {
            what: "out".into(),
            msg: format!("{} has no folder name", out.display()),
        })?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    let result = write_all(cfg, &entries, &tmp, progress, donors);
    let result = result.and_then(|summary| {
        if exists {
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(out, &old).map_err(io(out))?;
            std::fs::rename(&tmp, out).map_err(io(out))?;
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        } else {
            std::fs::rename(&tmp, out).map_err(io(out))?;
        }
        Ok(GenSummary {
            out: out.to_path_buf(),
            ..summary
        })
    });
    if result.is_err() && tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Copy sample `i` from `donor` into `root`: its image, mask and twin files, and its record
/// with the donor's boxes and parameters.
fn copy_sample(
    cfg: &GenConfig,
    i: usize,
    e: &PlanEntry,
    donor: &Donor,
    d: &ManifestRecord,
    root: &Path,
) -> Result<ManifestRecord, SynthError> {
    let rec = record_with(i, e, d.boxes.clone(), d.params.clone(), cfg.twins);
    let files = [Some(&rec.path), rec.mask.as_ref(), rec.flag_twin.as_ref()];
    for rel in files.into_iter().flatten() {
        let (from, to) = (donor.root.join(rel), root.join(rel));
        std::fs::copy(&from, &to).map_err(io(&from))?;
    }
    Ok(rec)
}

fn write_all(
    cfg: &GenConfig,
    entries: &[PlanEntry],
    root: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
    donors: &[Donor],
) -> Result<GenSummary, SynthError> {
    for d in ["images", "masks"]
        .into_iter()
        .chain(cfg.twins.then_some("twins"))
    {
        let p = root.join(d);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let done = AtomicUsize::new(0);
    let reused = AtomicUsize::new(0);
    let total = entries.len();
    let records: Vec<ManifestRecord> = entries
        .par_iter()
        .enumerate()
        .map(|(i, e)| {
            let donor = donors
                .iter()
                .find_map(|d| d.matching(i, e, cfg.twins).map(|r| (d, r)));
            // A donor file that cannot be copied (deleted since) is rendered instead; the
            // render overwrites whatever part of the copy got through.
            if let Some(Ok(rec)) = donor.map(|(donor, d)| copy_sample(cfg, i, e, donor, d, root)) {
                reused.fetch_add(1, Ordering::Relaxed);
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                return Ok(rec);
            }
            let r = render(cfg, &spec_of(i, e), false, true)?;
            let twin = if cfg.twins {
                Some(render(cfg, &spec_of(i, e), true, false)?)
            } else {
                None
            };
            let sample = sample_from(cfg, i, e, r)?;
            let ip = root.join(&sample.record.path);
            write_file(&ip, &encode_png(&ip, &sample.image)?)?;
            let mp = root.join(format!("masks/{}.png", stem(i)));
            let mask = encode_mask_png(&sample.masks).map_err(|msg| SynthError::Image {
                path: mp.clone(),
                msg,
            })?;
            write_file(&mp, &mask)?;
            if let Some(t) = twin {
                let tp = root.join(format!("twins/{}.png", stem(i)));
                let img =
                    image::RgbImage::from_raw(cfg.size, cfg.size, t.rgb8).ok_or_else(|| {
                        SynthError::Render {
                            index: i,
                            msg: "twin buffer has the wrong length".into(),
                        }
                    })?;
                write_file(&tp, &encode_png(&tp, &img)?)?;
            }
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            Ok(sample.record)
        })
        .collect::<Result<_, SynthError>>()?;
    let mut manifest = Vec::new();
    for r in &records {
        serde_json::to_writer(&mut manifest, r).map_err(|e| SynthError::Invalid {
            what: "manifest".into(),
            msg: e.to_string(),
        })?;
        manifest.push(b'\n');
    }
    moirelab_core::fsio::write_atomic(&root.join(MANIFEST_JSONL), &manifest)?;
    moirelab_core::fsio::write_json_atomic(&root.join(DATASET_JSON), &dataset_meta(cfg)?)?;
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut flag_aligned: BTreeMap<String, usize> = BTreeMap::new();
    for e in entries {
        *counts
            .entry(e.split.to_string())
            .or_default()
            .entry(e.label().to_string())
            .or_default() += 1;
        let aligned = (e.family == FlagFamily::A) == e.screen;
        *flag_aligned.entry(e.split.to_string()).or_default() += usize::from(aligned);
    }
    Ok(GenSummary {
        out: root.to_path_buf(),
        count: total,
        counts,
        flag_aligned,
        twins: if cfg.twins { total } else { 0 },
        reused: reused.into_inner(),
    })
}

/// Outline colours of the preview (sRGB).
const OUTLINES: [(&str, [u8; 3]); 7] = [
    ("card", [255, 255, 255]),
    ("flag", [255, 220, 0]),
    ("face", [255, 0, 200]),
    ("mrz", [0, 220, 255]),
    ("moire", [255, 40, 40]),
    ("bands", [255, 140, 0]),
    ("glare", [160, 255, 160]),
];

/// Contact sheet of `n` samples (alternating screen and direct, from the data set's plan):
/// each sample as the image at ×2 and the same with region outlines, captioned with
/// label, flag family and hair.
pub fn write_preview(cfg: &GenConfig, out_png: &Path, n: usize) -> Result<(), SynthError> {
    let entries = plan(cfg)?;
    let screens = entries.iter().enumerate().filter(|(_, e)| e.screen);
    let directs = entries.iter().enumerate().filter(|(_, e)| !e.screen);
    let mut picked: Vec<usize> = Vec::new();
    for (s, d) in screens.zip(directs) {
        picked.push(s.0);
        picked.push(d.0);
        if picked.len() >= n.max(1) {
            break;
        }
    }
    picked.truncate(n.max(1));
    let samples: Vec<Sample> = picked
        .par_iter()
        .map(|&i| {
            let r = render(cfg, &spec_of(i, &entries[i]), false, true)?;
            sample_from(cfg, i, &entries[i], r)
        })
        .collect::<Result<_, _>>()?;
    let s = cfg.size;
    let z = 2;
    let tile_w = 2 * s * z + 8;
    let tile_h = s * z + 14;
    let cols = 3u32;
    let rows = (samples.len() as u32).div_ceil(cols);
    let mut sheet =
        image::RgbImage::from_pixel(tile_w * cols, tile_h * rows, image::Rgb([40, 40, 40]));
    for (t, smp) in samples.iter().enumerate() {
        let (ox, oy) = ((t as u32 % cols) * tile_w, (t as u32 / cols) * tile_h);
        let caption = format!(
            "#{} {} flag {} {}",
            smp.record
                .path
                .trim_start_matches("images/")
                .trim_end_matches(".png"),
            smp.record.label,
            smp.record.groups[SHORTCUT_FLAG],
            smp.record.groups[SHORTCUT_HAIR]
        );
        draw_text(&mut sheet, ox + 2, oy + 3, &caption, [230, 230, 230]);
        for y in 0..s * z {
            for x in 0..s * z {
                let p = *smp.image.get_pixel(x / z, y / z);
                sheet.put_pixel(ox + x, oy + 12 + y, p);
                sheet.put_pixel(ox + s * z + 4 + x, oy + 12 + y, p);
            }
        }
        for (name, colour) in OUTLINES {
            let Some(m) = smp.masks.mask(name) else {
                continue;
            };
            let at = |x: i64, y: i64| {
                x >= 0
                    && y >= 0
                    && x < s as i64
                    && y < s as i64
                    && m[(y as u32 * s + x as u32) as usize]
            };
            for y in 0..s as i64 {
                for x in 0..s as i64 {
                    if at(x, y) && !(at(x - 1, y) && at(x + 1, y) && at(x, y - 1) && at(x, y + 1)) {
                        for dy in 0..z {
                            for dx in 0..z {
                                sheet.put_pixel(
                                    ox + s * z + 4 + x as u32 * z + dx,
                                    oy + 12 + y as u32 * z + dy,
                                    image::Rgb(colour),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    let bytes = encode_png(out_png, &sheet)?;
    moirelab_core::fsio::write_atomic(out_png, &bytes)?;
    Ok(())
}

fn draw_text(img: &mut image::RgbImage, x: u32, y: u32, s: &str, c: [u8; 3]) {
    for (i, ch) in s.chars().enumerate() {
        let Some(g) = font8x8::BASIC_FONTS.get(ch) else {
            continue;
        };
        for (row, bits) in g.iter().enumerate() {
            for col in 0..8u32 {
                let (px, py) = (x + i as u32 * 8 + col, y + row as u32);
                if bits & (1 << col) != 0 && px < img.width() && py < img.height() {
                    img.put_pixel(px, py, image::Rgb(c));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_balanced_stratified_and_plants_exact_rho() {
        let mut cfg = GenConfig::preset("flag-shortcut").unwrap();
        cfg.count = 1000;
        let p = plan(&cfg).unwrap();
        assert_eq!(p.iter().filter(|e| e.screen).count(), 500);
        for split in SPLITS {
            let cell: Vec<_> = p.iter().filter(|e| e.split == split).collect();
            let s = cell.iter().filter(|e| e.screen).count();
            let d = cell.len() - s;
            assert!(s.abs_diff(d) <= 1, "{split}: {s} vs {d}");
            let aligned = cell
                .iter()
                .filter(|e| (e.family == FlagFamily::A) == e.screen)
                .count() as f64
                / cell.len() as f64;
            let want = if split == "test" { 0.5 } else { 0.95 };
            assert!((aligned - want).abs() < 0.01, "{split}: {aligned}");
        }
        let train = p.iter().filter(|e| e.split == "train").count();
        assert_eq!(train, 700);
    }
}

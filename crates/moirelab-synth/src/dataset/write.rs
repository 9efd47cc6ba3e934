//! Writing a data set: the folder swap that leaves nothing half-written, the parallel
//! render-or-copy of every sample, the manifest and `dataset.json`, and the PNG helpers.

use super::donor::Donor;
use super::lock::{parent_and_name, WriteLock};
use super::plan::{plan, spec_of, PlanEntry};
use super::sample::{encode_mask_png, record_with, sample_from, stem};
use super::{SHORTCUT_FLAG, SHORTCUT_HAIR};
use crate::card::FlagFamily;
use crate::config::GenConfig;
use crate::pipeline::render;
use crate::{SynthError, GENERATOR_NAME, GENERATOR_VERSION, REGIONS};
use image::ImageEncoder;
use moirelab_core::dataset_format::{
    DatasetMeta, GeneratorInfo, ManifestRecord, DATASET_JSON, FORMAT_VERSION, MANIFEST_JSONL,
};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenSummary {
    pub out: PathBuf,
    pub count: usize,
    /// split -> label -> count.
    pub counts: LabelCounts,
    /// split -> number of flag-aligned samples.
    pub flag_aligned: BTreeMap<String, usize>,
    pub twins: usize,
    /// Samples copied from a donor data set instead of rendered (see [`Donor`]).
    pub reused: usize,
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

/// An RGB image as PNG bytes (`path` only names the file in errors).
pub(super) fn encode_png(path: &Path, img: &image::RgbImage) -> Result<Vec<u8>, SynthError> {
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
        // Photos of several sides have no one nominal size.
        image_size: cfg.sizes.is_none().then_some(cfg.size),
    })
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
/// see [`Donor`]) instead of rendering it. Waits while another process writes the same data
/// set ([`WriteLock`]).
pub fn generate_reusing(
    cfg: &GenConfig,
    out: &Path,
    force: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
    donors: &[Donor],
) -> Result<GenSummary, SynthError> {
    let lock = WriteLock::acquire(out, &mut |_| true)?;
    generate_locked(&lock, cfg, force, progress, donors, None)
}

/// [`generate_reusing`] into the folder `lock` is for, for a caller that took the lock itself
/// (to look again, once it holds it, at whether the data set is still missing). Once `stop`
/// is set, no further sample is started: the partial folder is deleted, any existing data set
/// is left as it was, and the result is [`SynthError::Stopped`].
pub fn generate_locked(
    lock: &WriteLock,
    cfg: &GenConfig,
    force: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
    donors: &[Donor],
    stop: Option<&AtomicBool>,
) -> Result<GenSummary, SynthError> {
    let out = lock.out();
    let entries = plan(cfg)?;
    let exists = check_output(out, force)?;
    // Before minutes of rendering: a data set that a running train or eval reads is not
    // replaced under it. Held until the old folder is gone.
    let _replacing = if exists {
        moirelab_core::dirlock::exclusive_guard(out).map_err(|busy| SynthError::InUse {
            path: out.to_path_buf(),
            readers: busy.holders_text(),
        })?
    } else {
        None
    };
    let (parent, name) = parent_and_name(out)?;
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    moirelab_core::fsio::remove_abandoned_dirs(parent, &name);
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    let result = write_all(cfg, &entries, &tmp, progress, donors, stop).map_err(|e| match e {
        // The user knows the data set by its own name, not by the hidden folder's.
        SynthError::Stopped { .. } => SynthError::Stopped {
            path: out.to_path_buf(),
        },
        e => e,
    });
    let result = result.and_then(|summary| {
        moirelab_core::fsio::replace_dir(&tmp, out)?;
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

/// Whether `out` exists; an error when it is not a folder, or a non-empty one without
/// `force`.
fn check_output(out: &Path, force: bool) -> Result<bool, SynthError> {
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
    Ok(exists)
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

/// Render sample `i` (and its flag-swapped twin when `cfg.twins`) and write its image, mask
/// and twin files under `root`; returns its record.
fn render_and_write(
    cfg: &GenConfig,
    i: usize,
    e: &PlanEntry,
    root: &Path,
) -> Result<ManifestRecord, SynthError> {
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
        let img = image::RgbImage::from_raw(t.size, t.size, t.rgb8).ok_or_else(|| {
            SynthError::Render {
                index: i,
                msg: "twin buffer has the wrong length".into(),
            }
        })?;
        write_file(&tp, &encode_png(&tp, &img)?)?;
    }
    Ok(sample.record)
}

/// Write every sample (copied from a donor where one holds it, rendered otherwise), the
/// manifest and `dataset.json` into `root`; [`SynthError::Stopped`] once `stop` is set.
fn write_all(
    cfg: &GenConfig,
    entries: &[PlanEntry],
    root: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
    donors: &[Donor],
    stop: Option<&AtomicBool>,
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
            // Checked before each sample: a failed sample ends the collect early, so a stop
            // takes effect within one sample per worker.
            if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                return Err(SynthError::Stopped {
                    path: root.to_path_buf(),
                });
            }
            let donor = donors
                .iter()
                .find_map(|d| d.matching(i, e, cfg.twins).map(|r| (d, r)));
            // A donor file that cannot be copied (deleted since) is rendered instead; the
            // render overwrites whatever part of the copy got through.
            let copied = donor.and_then(|(donor, d)| copy_sample(cfg, i, e, donor, d, root).ok());
            let rec = match copied {
                Some(rec) => {
                    reused.fetch_add(1, Ordering::Relaxed);
                    rec
                }
                None => render_and_write(cfg, i, e, root)?,
            };
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            Ok(rec)
        })
        .collect::<Result<_, SynthError>>()?;
    write_manifest(root, &records)?;
    moirelab_core::fsio::write_json_atomic(&root.join(DATASET_JSON), &dataset_meta(cfg)?)?;
    let (counts, flag_aligned) = tally(entries);
    Ok(GenSummary {
        out: root.to_path_buf(),
        count: total,
        counts,
        flag_aligned,
        twins: if cfg.twins { total } else { 0 },
        reused: reused.into_inner(),
    })
}

/// `manifest.jsonl`: one record per line, in sample order.
fn write_manifest(root: &Path, records: &[ManifestRecord]) -> Result<(), SynthError> {
    let mut manifest = Vec::new();
    for r in records {
        serde_json::to_writer(&mut manifest, r).map_err(|e| SynthError::Invalid {
            what: "manifest".into(),
            msg: e.to_string(),
        })?;
        manifest.push(b'\n');
    }
    moirelab_core::fsio::write_atomic(&root.join(MANIFEST_JSONL), &manifest)?;
    Ok(())
}

/// Split -> label -> count.
type LabelCounts = BTreeMap<String, BTreeMap<String, usize>>;

/// Split -> label -> count, and split -> number of flag-aligned samples.
fn tally(entries: &[PlanEntry]) -> (LabelCounts, BTreeMap<String, usize>) {
    let mut counts: LabelCounts = BTreeMap::new();
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
    (counts, flag_aligned)
}

//! `Dataset`: the validated, decoded, cached data set the trainer and Grad-CAM read from.

use crate::augment::{self, Geom, AUG_STREAM};
use crate::cache::{self, Store};
use crate::cache_tidy;
use crate::check::{CheckReport, Problem, ProblemKind};
use crate::config::{CacheMode, DataConfig, OnBad};
use crate::similar::{HashList, HashedImage, PerceptualHash};
use crate::source::{self, EvalSpec};
use crate::validate::assemble_report;
use crate::{normalize_into, DataError, Perturbation};
use image::RgbImage;
use moirelab_core::dataset_format::{DatasetMeta, ManifestRecord, RegionMasks};
use moirelab_core::dirlock::{self, ReadGuard};
use moirelab_core::rng::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// How many bad files a `BadImages` error lists.
const LIST_MAX: usize = 20;

/// A validated data set with every image decoded once (memory or memory-mapped cache).
#[derive(Debug)]
pub struct Dataset {
    root: PathBuf,
    cfg: DataConfig,
    meta: DatasetMeta,
    records: Vec<ManifestRecord>,
    labels: Vec<usize>,
    /// Dataset index → cache slot (the record's position in the source list).
    slots: Vec<usize>,
    mask_ok: Vec<bool>,
    /// Perceptual hash per image (`similar.rs`), `None` for a flat one.
    phash: Vec<Option<PerceptualHash>>,
    /// Content hash per image (`ImageInfo::hash`).
    content: Vec<u64>,
    store: Store,
    splits: BTreeMap<String, Vec<usize>>,
    report: CheckReport,
    /// The shortcut attribute aligned/conflicting accuracy is keyed to (see
    /// [`Dataset::primary_shortcut`]).
    primary: Option<String>,
    /// A shared lock on the data-set folder while this value lives, so that no writer
    /// replaces the folder under a reader (`moirelab_core::dirlock`).
    _reading: Option<ReadGuard>,
}

/// See [`Dataset::primary_shortcut`].
fn strongest_shortcut<'a>(
    meta: &'a DatasetMeta,
    train: impl Iterator<Item = &'a ManifestRecord> + Clone,
) -> Option<&'a str> {
    let strength = |attr: &str| {
        let (n, aligned) = train
            .clone()
            .filter_map(|r| meta.alignment(attr, r))
            .fold((0u64, 0u64), |(n, a), al| (n + 1, a + al as u64));
        if n == 0 {
            0.0
        } else {
            (aligned as f64 / n as f64 - 0.5).abs()
        }
    };
    let mut best: Option<(&str, f64)> = None;
    for attr in meta.shortcuts.keys() {
        let s = strength(attr);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((attr, s));
        }
    }
    // On debiased data every share is one half up to sampling noise; the noise must not
    // pick the attribute, so below a 60/40 split the first declared one stays.
    match best {
        Some((a, s)) if s >= MIN_PLANTED => Some(a),
        _ => meta.shortcuts.keys().next().map(String::as_str),
    }
}

/// Smallest |aligned share − ½| in train that counts as a planted shortcut.
const MIN_PLANTED: f64 = 0.1;

pub(crate) fn resolve_root(cfg: &DataConfig, base_dir: &Path) -> PathBuf {
    if cfg.root.is_absolute() {
        cfg.root.clone()
    } else {
        base_dir.join(&cfg.root)
    }
}

impl Dataset {
    /// Read, validate and decode the data set `cfg` describes. A relative `cfg.root` or
    /// `cfg.cache_dir` resolves against `base_dir` (the CLI passes the working folder).
    ///
    /// With `on-bad-image = "error"` any error-level finding fails with a list of up to 20
    /// files and reasons; with `"skip"` bad files are dropped and listed in
    /// [`Dataset::report`]. Warnings never fail.
    pub fn open(cfg: &DataConfig, base_dir: &Path) -> Result<Dataset, DataError> {
        Self::open_for(cfg, base_dir, None)
    }

    /// Open a data set to evaluate a trained model on: only `spec.split` is needed, so a
    /// folder holding just that split (`test/<class>/…`) or no split at all (`<class>/…`, a
    /// manifest without a split column: every image is in `spec.split`) is fine, and no
    /// class needs training images. The data set's classes must be the model's (any order;
    /// labels are mapped to the model's indices); an empty `spec.split` is an error.
    pub fn open_eval(
        cfg: &DataConfig,
        base_dir: &Path,
        spec: &EvalSpec,
    ) -> Result<Dataset, DataError> {
        let ds = Self::open_for(cfg, base_dir, Some(spec))?;
        if ds.split(&spec.split).is_empty() {
            let found: Vec<String> = ds
                .splits
                .iter()
                .map(|(s, v)| format!("{s} {}", v.len()))
                .collect();
            return Err(DataError::Layout {
                root: ds.root,
                msg: format!(
                    "split '{}' has no usable images (found: {})",
                    spec.split,
                    if found.is_empty() {
                        "none".to_string()
                    } else {
                        found.join(", ")
                    }
                ),
            });
        }
        Ok(ds)
    }

    fn open_for(
        cfg: &DataConfig,
        base_dir: &Path,
        eval: Option<&EvalSpec>,
    ) -> Result<Dataset, DataError> {
        cfg.validate()?;
        let root = resolve_root(cfg, base_dir);
        let reading = dirlock::read_guard(&root).map_err(|busy| DataError::Layout {
            root: root.clone(),
            msg: format!(
                "{} is replacing this data set right now; run again once it has finished",
                busy.holders_text()
            ),
        })?;
        let src = source::read_source_for(cfg, &root, eval)?;
        // Against the same base as the root: a cache resolved against the root was written
        // into the data folder (where an ImageFolder then saw a stray class folder).
        let dir = match &cfg.cache_dir {
            Some(d) => Some(base_dir.join(d)),
            None => cache::default_dir(&root),
        };
        // A disk-backed cache needs a writable folder: probed once, never for memory.
        let disk = dir
            .as_deref()
            .filter(|d| cfg.cache != CacheMode::Memory && cache::dir_writable(d));
        // The shared default folder is tidied (cache_tidy.rs); a folder the user set is not.
        if let (Some(d), None) = (disk, &cfg.cache_dir) {
            cache_tidy::opening(d, &root)?;
        }
        let where_ = |d: &Option<PathBuf>| match d {
            Some(d) => format!("{} is not writable", d.display()),
            None => "no cache folder ($MOIRELAB_CACHE, $XDG_CACHE_HOME and $HOME unset)".into(),
        };
        // A cache kept in memory for want of a folder, or a damaged cache file rebuilt.
        let mut cache_note = None;
        let (items, store) = match (cfg.cache, disk) {
            (CacheMode::Memory, _) => cache::build_memory(&src, &root, cfg)?,
            (CacheMode::Disk | CacheMode::Auto, Some(d)) => {
                let (items, store, rebuilt) = cache::open_disk(&src, &root, cfg, d)?;
                cache_note = rebuilt;
                (items, store)
            }
            (CacheMode::Disk, None) => {
                return Err(DataError::config(
                    "cache",
                    format!(
                        "cache = \"disk\" but {} (set [data] cache-dir, or cache = \"memory\")",
                        where_(&dir)
                    ),
                ));
            }
            (CacheMode::Auto, None) => {
                cache_note = Some(Problem::new(
                    ProblemKind::CacheFallback,
                    None,
                    format!(
                        "{}; decoded images kept in memory (set [data] cache-dir to reuse them across runs)",
                        where_(&dir)
                    ),
                ));
                cache::build_memory(&src, &root, cfg)?
            }
        };
        let mut report = assemble_report(&src, &items, &root, cfg, eval);
        report.problems.extend(cache_note);
        if eval.is_some() {
            // Evaluation trains nothing: classes without training images are fine.
            report.for_evaluation();
        }
        let file_errors = report
            .errors()
            .filter(|p| p.kind.disqualifies_file())
            .count();
        if file_errors > 0 && cfg.on_bad_image == OnBad::Error {
            return Err(DataError::BadImages {
                root,
                count: report.errors().count(),
                listing: report.error_listing(LIST_MAX),
            });
        }
        // Errors that skipping files cannot fix (e.g. a class left without training images).
        let fatal: Vec<String> = report
            .errors()
            .filter(|p| !p.kind.disqualifies_file())
            .map(|p| p.to_string())
            .collect();
        if !fatal.is_empty() {
            return Err(DataError::Layout {
                root,
                msg: fatal.join("; "),
            });
        }
        let mut ds = Dataset {
            root,
            cfg: cfg.clone(),
            meta: src.meta.clone(),
            records: Vec::new(),
            labels: Vec::new(),
            slots: Vec::new(),
            mask_ok: Vec::new(),
            phash: Vec::new(),
            content: Vec::new(),
            store,
            splits: BTreeMap::new(),
            report,
            primary: None,
            _reading: reading,
        };
        // The report lists what was skipped; those records are left out here.
        for (i, (rec, it)) in src.records.into_iter().zip(items).enumerate() {
            if src.bad[i] || it.info.is_none() {
                continue;
            }
            let label = ds
                .meta
                .classes
                .iter()
                .position(|c| *c == rec.label)
                .unwrap_or_else(|| unreachable!("unknown labels are marked bad"));
            let idx = ds.records.len();
            ds.splits.entry(rec.split.clone()).or_default().push(idx);
            ds.records.push(rec);
            ds.labels.push(label);
            ds.slots.push(i);
            ds.mask_ok.push(it.mask.is_some());
            ds.phash.push(it.info.as_ref().and_then(|info| info.phash));
            ds.content
                .push(it.info.as_ref().map_or(0, |info| info.hash));
        }
        ds.primary =
            strongest_shortcut(&ds.meta, ds.split("train").iter().map(|&i| &ds.records[i]))
                .map(str::to_string);
        Ok(ds)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `(index, perceptual hash)` of every image of `split` that has one (a flat image has
    /// none), for [`crate::near_copies`].
    pub fn perceptual_hashes(&self, split: &str) -> Vec<(usize, PerceptualHash)> {
        self.split(split)
            .iter()
            .filter_map(|&i| Some((i, self.phash[i]?)))
            .collect()
    }

    /// The hashes of `splits`' images with their paths, as a run folder keeps them.
    pub fn hash_list(&self, splits: &[&str]) -> HashList {
        let images = splits
            .iter()
            .flat_map(|s| self.perceptual_hashes(s))
            .map(|(i, h)| HashedImage {
                split: self.records[i].split.clone(),
                path: self.records[i].path.clone(),
                phash: h.to_hex(),
            })
            .collect();
        HashList {
            version: HashList::VERSION,
            images,
        }
    }

    /// Content hash of image `i`'s decoded pixels at their native size
    /// ([`crate::content_hash`]): equal for the same picture whatever its file's name or
    /// format and whatever the data settings, different for another picture.
    pub fn content_hash(&self, i: usize) -> Result<u64, DataError> {
        self.check_index(i)?;
        Ok(self.content[i])
    }

    pub fn config(&self) -> &DataConfig {
        &self.cfg
    }

    /// `dataset.json`, or one synthesised for ImageFolder/CSV (classes, no regions).
    pub fn meta(&self) -> &DatasetMeta {
        &self.meta
    }

    pub fn classes(&self) -> &[String] {
        &self.meta.classes
    }

    /// Index of the attack class (`attack-class`, `dataset.json`'s, else the last class).
    pub fn attack_index(&self) -> usize {
        self.meta
            .attack_index()
            .unwrap_or(self.meta.classes.len() - 1)
    }

    /// Usable images (all splits).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Side `S` of network inputs.
    pub fn image_size(&self) -> u32 {
        self.cfg.image_size
    }

    /// Indices of a split (`train`, `val`, `test`); empty when absent.
    pub fn split(&self, name: &str) -> &[usize] {
        self.splits.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn record(&self, i: usize) -> &ManifestRecord {
        &self.records[i]
    }

    pub fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    /// The shortcut the training split plants most strongly: of the attributes in
    /// `meta.shortcuts`, the one whose aligned share among the train images is furthest from
    /// one half (the first declared when none is planted at least 60/40, on ties, and without
    /// train images). `None` when
    /// the data set declares no shortcut.
    pub fn primary_shortcut(&self) -> Option<&str> {
        self.primary.as_deref()
    }

    /// Aligned/conflicting for the primary shortcut, `None` if n/a.
    pub fn alignment(&self, i: usize) -> Option<bool> {
        let attr = self.primary_shortcut()?;
        self.meta.alignment(attr, &self.records[i])
    }

    /// `label|attr=value|…` (groups sorted), e.g. `screen|flag=A`, for group metrics.
    pub fn group_key(&self, i: usize) -> String {
        self.records[i].group_key()
    }

    /// What validation found.
    pub fn report(&self) -> &CheckReport {
        &self.report
    }

    /// The decode-cache file, when disk-backed.
    pub fn cache_file(&self) -> Option<&Path> {
        self.store.file()
    }

    fn check_index(&self, i: usize) -> Result<(), DataError> {
        if i >= self.records.len() {
            return Err(DataError::Request(format!(
                "image index {i} out of range (data set has {})",
                self.records.len()
            )));
        }
        Ok(())
    }

    /// Un-normalised eval view `S×S`: resize mode = the whole image resized to `S×S`
    /// (triangle filter, aspect ignored); patch mode = the centre `S×S` crop at native
    /// resolution. Never augmented.
    pub fn eval_image(&self, i: usize) -> Result<RgbImage, DataError> {
        self.check_index(i)?;
        let (w, h, px) = self.store.pixels(self.slots[i]);
        let s = self.cfg.image_size;
        Ok(augment::render(
            w,
            h,
            px,
            &Geom::eval(w, h, s, self.cfg.mode),
            s,
        ))
    }

    /// Normalised eval batch.
    ///
    /// # Shapes
    /// `idx: [N]` → `[N, 3, S, S]` f32 on the CPU.
    pub fn eval_batch(&self, idx: &[usize]) -> Result<Tensor, DataError> {
        self.eval_batch_perturbed(idx, None)
    }

    /// [`Dataset::eval_batch`] with a perturbation of each eval view (robustness tables).
    ///
    /// # Shapes
    /// `idx: [N]` → `[N, 3, S, S]` f32 on the CPU.
    pub fn eval_batch_perturbed(
        &self,
        idx: &[usize],
        perturbation: Option<&Perturbation>,
    ) -> Result<Tensor, DataError> {
        let s = self.cfg.image_size as usize;
        let mut buf = vec![0f32; idx.len() * 3 * s * s];
        for (k, &i) in idx.iter().enumerate() {
            let mut img = self.eval_image(i)?;
            if let Some(p) = perturbation {
                p.apply(&mut img, i);
            }
            normalize_into(&img, &mut buf[k * 3 * s * s..(k + 1) * 3 * s * s]);
        }
        Ok(Tensor::f_from_slice(&buf)?.f_view([idx.len() as i64, 3, s as i64, s as i64])?)
    }

    /// The training view of sample position `position` of `epoch` under `seed` — exactly
    /// what the [`crate::Loader`] feeds the network (before normalisation) — with the region
    /// masks put through the same geometry. For "show me what the model sees" previews and
    /// tests.
    pub fn train_view(
        &self,
        i: usize,
        seed: u64,
        epoch: u32,
        position: usize,
    ) -> Result<(RgbImage, Option<RegionMasks>), DataError> {
        self.check_index(i)?;
        let (img, geom, (w, h)) = self.augmented(i, seed, epoch, position);
        let masks = self.load_mask(i)?.map(|(mw, mh, bits)| RegionMasks {
            width: self.cfg.image_size,
            height: self.cfg.image_size,
            names: self.meta.regions.clone(),
            bits: augment::render_mask(mw, mh, &bits, w, h, &geom, self.cfg.image_size),
        });
        Ok((img, masks))
    }

    /// Augmented `S×S` view (internal: no bounds check, no masks).
    pub(crate) fn augmented(
        &self,
        i: usize,
        seed: u64,
        epoch: u32,
        position: usize,
    ) -> (RgbImage, Geom, (u32, u32)) {
        let (w, h, px) = self.store.pixels(self.slots[i]);
        let s = self.cfg.image_size;
        let a = &self.cfg.augment;
        if !a.enabled {
            let g = Geom::eval(w, h, s, self.cfg.mode);
            return (augment::render(w, h, px, &g, s), g, (w, h));
        }
        let mut rng = Rng::derive(seed, &[epoch as u64, position as u64, AUG_STREAM]);
        let g = Geom::sample(w, h, s, self.cfg.mode, a, &mut rng);
        let mut img = augment::render(w, h, px, &g, s);
        augment::photometric(&mut img, a, &mut rng);
        (img, g, (w, h))
    }

    fn load_mask(&self, i: usize) -> Result<Option<(u32, u32, Vec<u16>)>, DataError> {
        let Some(m) = self.records[i].mask.as_ref().filter(|_| self.mask_ok[i]) else {
            return Ok(None);
        };
        let path = self.root.join(m);
        crate::masks::read_mask_bits(&path, self.cfg.max_pixels)
            .map(Some)
            .map_err(|msg| DataError::Decode { path, msg })
    }

    /// Region masks aligned with [`Dataset::eval_image`] (`S×S`); `None` when the data set
    /// has no regions or this image's mask was found unusable by validation.
    pub fn region_masks(&self, i: usize) -> Result<Option<RegionMasks>, DataError> {
        self.check_index(i)?;
        let Some((mw, mh, bits)) = self.load_mask(i)? else {
            return Ok(None);
        };
        let (w, h, _) = self.store.pixels(self.slots[i]);
        let s = self.cfg.image_size;
        let g = Geom::eval(w, h, s, self.cfg.mode);
        Ok(Some(RegionMasks {
            width: s,
            height: s,
            names: self.meta.regions.clone(),
            bits: augment::render_mask(mw, mh, &bits, w, h, &g, s),
        }))
    }

    /// Distinct group keys of a split, sorted.
    pub fn group_keys(&self, split: &str) -> BTreeSet<String> {
        self.split(split)
            .iter()
            .map(|&i| self.group_key(i))
            .collect()
    }
}

/// The classes of the data set `cfg` describes, in class-index order, and the index of its
/// attack class, from its manifest or folder names alone (no image is opened).
pub fn peek_classes(cfg: &DataConfig, base_dir: &Path) -> Result<(Vec<String>, usize), DataError> {
    cfg.validate()?;
    let root = resolve_root(cfg, base_dir);
    let src = source::read_source(cfg, &root)?;
    let attack = src
        .meta
        .attack_index()
        .unwrap_or(src.meta.classes.len() - 1);
    Ok((src.meta.classes, attack))
}

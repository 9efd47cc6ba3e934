//! Readers of the three layouts: moirelab (`dataset.json` + `manifest.jsonl`), ImageFolder
//! (`<root>/<split>/<class>/*`), and a user CSV or JSONL manifest. All produce the same
//! `ManifestRecord`s plus manifest-level problems; nothing here opens an image.

mod folder;
mod manifest;
#[cfg(test)]
mod tests;

use folder::read_imagefolder;
use manifest::{read_csv, read_user_jsonl};

use crate::check::{Problem, ProblemKind};
use crate::config::{DataConfig, FollowLinks, Format};
use crate::DataError;
use moirelab_core::dataset_format::{
    is_safe_relative, DatasetMeta, ManifestRecord, DATASET_JSON, FORMAT_VERSION, MANIFEST_JSONL,
};
use moirelab_core::rng::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// File extensions ImageFolder picks up (lower-case).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "bmp"];

/// Whether `path` ends in one of [`IMAGE_EXTENSIONS`] (any case).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Split names; `valid`/`validation` are read as `val`.
pub const SPLITS: &[&str] = &["train", "val", "test"];

/// Opening a data set to evaluate a trained model on (see `Dataset::open_eval`).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSpec {
    /// The split to evaluate (`train`, `val` or `test`). Images of a folder or manifest
    /// without splits belong to it.
    pub split: String,
    /// The model's classes in its order; the data set's classes must be among them (a set
    /// with only some of them is evaluated on those). Empty: the data set's own classes
    /// (`data check --eval`, no model).
    pub classes: Vec<String>,
    /// The model's attack class for PAD metrics (`None`: the last class).
    pub attack_class: Option<String>,
}

/// Records read from a data-set folder.
#[derive(Debug)]
pub(crate) struct Source {
    pub format: Format,
    pub meta: DatasetMeta,
    pub records: Vec<ManifestRecord>,
    /// Per record: a manifest-level problem that disqualifies it (never opened).
    pub bad: Vec<bool>,
    pub problems: Vec<Problem>,
    pub val_carved: usize,
    /// Evaluation: the one split it reads (other splits' records are dropped unread); its
    /// decode cache is kept apart from a training open's.
    pub only_split: Option<String>,
}

impl Source {
    /// Files the folder walk found but could not list as records (a name that is not UTF-8):
    /// under `on-bad-image = "skip"` they are skipped like a corrupt image, and counted so.
    pub fn unlisted_unreadable(&self) -> Vec<String> {
        let listed: std::collections::HashSet<&str> =
            self.records.iter().map(|r| r.path.as_str()).collect();
        self.problems
            .iter()
            .filter(|p| p.kind == ProblemKind::Unreadable)
            .filter_map(|p| p.path.clone())
            .filter(|p| !listed.contains(p.as_str()))
            .collect()
    }
}

fn normalize_split(s: &str) -> Option<&'static str> {
    match s.to_ascii_lowercase().as_str() {
        "" | "train" | "training" => Some("train"),
        "val" | "valid" | "validation" | "dev" => Some("val"),
        "test" | "testing" => Some("test"),
        _ => None,
    }
}

pub(crate) fn resolve_format(cfg: &DataConfig, root: &Path) -> Format {
    match cfg.format {
        Format::Auto => match &cfg.manifest {
            Some(m) => {
                let ext = m
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase);
                if matches!(ext.as_deref(), Some("jsonl" | "ndjson" | "json")) {
                    Format::Jsonl
                } else {
                    Format::Csv
                }
            }
            None if root.join(DATASET_JSON).is_file() => Format::Moirelab,
            None => Format::Imagefolder,
        },
        f => f,
    }
}

/// Read the records of `root` as `cfg` describes.
pub(crate) fn read_source(cfg: &DataConfig, root: &Path) -> Result<Source, DataError> {
    read_source_for(cfg, root, None)
}

/// [`read_source`], for training (`eval = None`: records without a split are train) or for
/// evaluating a model (records without a split belong to the evaluated split, and the class
/// list is the model's, which must hold the data set's own).
pub(crate) fn read_source_for(
    cfg: &DataConfig,
    root: &Path,
    eval: Option<&EvalSpec>,
) -> Result<Source, DataError> {
    if !root.is_dir() {
        return Err(DataError::Layout {
            root: root.to_path_buf(),
            msg: "not a folder ([data] root)".into(),
        });
    }
    let format = resolve_format(cfg, root);
    let mut problems = Vec::new();
    let file_meta = read_meta_file(root)?;
    if format == Format::Moirelab && file_meta.is_none() {
        return Err(DataError::Layout {
            root: root.to_path_buf(),
            msg: format!("format = \"moirelab\" but there is no {DATASET_JSON}"),
        });
    }
    let records = read_records(format, cfg, root, eval, &mut problems)?;
    if records.is_empty() {
        return Err(DataError::Layout {
            root: root.to_path_buf(),
            msg: format!("no images found (read as {})", format.as_str()),
        });
    }
    let meta = resolve_classes(file_meta, &records, cfg, root, eval)?;
    let mut src = Source {
        format,
        meta,
        bad: vec![false; records.len()],
        records,
        problems,
        val_carved: 0,
        only_split: None,
    };
    // Evaluating a folder or manifest without splits means every image: nothing is carved.
    let splitless = src.records.iter().any(|r| r.split.is_empty());
    check_records(&mut src, eval.map_or("train", |e| e.split.as_str()));
    check_files(&mut src, root, cfg.follow_links);
    if !(eval.is_some() && splitless) {
        src.val_carved = carve_val(&mut src.records, &src.bad, cfg.val_fraction, cfg.split_seed);
    }
    if let Some(spec) = eval {
        keep_split(&mut src, &spec.split, root)?;
    }
    Ok(src)
}

/// `root`'s `dataset.json`, if it has one (a newer format version than this build reads, or
/// a region name that is not an identifier, is an error).
fn read_meta_file(root: &Path) -> Result<Option<DatasetMeta>, DataError> {
    let meta_path = root.join(DATASET_JSON);
    if !meta_path.is_file() {
        return Ok(None);
    }
    let m: DatasetMeta = moirelab_core::fsio::read_json(&meta_path)?;
    if let Err(msg) = m.check_region_names() {
        return Err(DataError::Layout {
            root: meta_path,
            msg,
        });
    }
    if m.format_version > FORMAT_VERSION {
        return Err(DataError::Layout {
            root: root.to_path_buf(),
            msg: format!(
                "{DATASET_JSON} has format-version {}, this build reads up to {FORMAT_VERSION}",
                m.format_version
            ),
        });
    }
    Ok(Some(m))
}

/// The records of `root` in `format` (a manifest, or an ImageFolder walk that enters only the
/// evaluated split's folder).
fn read_records(
    format: Format,
    cfg: &DataConfig,
    root: &Path,
    eval: Option<&EvalSpec>,
    problems: &mut Vec<Problem>,
) -> Result<Vec<ManifestRecord>, DataError> {
    match format {
        Format::Moirelab => moirelab_core::fsio::read_jsonl_strict(&root.join(MANIFEST_JSONL))
            .map_err(DataError::from),
        Format::Imagefolder => read_imagefolder(
            root,
            cfg.follow_links,
            eval.map(|e| e.split.as_str()),
            problems,
        ),
        Format::Csv | Format::Jsonl => {
            let m = cfg.manifest.as_deref().unwrap_or(Path::new(MANIFEST_JSONL));
            let path = if m.is_absolute() {
                m.to_path_buf()
            } else {
                root.join(m)
            };
            if format == Format::Csv {
                read_csv(&path, problems)
            } else {
                read_user_jsonl(&path)
            }
        }
        Format::Auto => unreachable!("resolve_format never returns Auto"),
    }
}

/// The data set's classes and attack class: `[data] classes`, else `dataset.json`'s, else
/// the labels sorted (as torchvision's ImageFolder does); for evaluation the model's (which
/// must hold every class of the data set); `[data] attack-class` last.
fn resolve_classes(
    file_meta: Option<DatasetMeta>,
    records: &[ManifestRecord],
    cfg: &DataConfig,
    root: &Path,
    eval: Option<&EvalSpec>,
) -> Result<DatasetMeta, DataError> {
    let mut meta = file_meta.unwrap_or_else(|| DatasetMeta {
        format_version: FORMAT_VERSION,
        classes: Vec::new(),
        regions: Vec::new(),
        attack_class: None,
        shortcuts: BTreeMap::new(),
        shortcut_regions: BTreeMap::new(),
        generator: None,
        image_size: None,
    });
    if !cfg.classes.is_empty() {
        meta.classes = cfg.classes.clone();
    } else if meta.classes.is_empty() {
        let set: BTreeSet<&str> = records.iter().map(|r| r.label.as_str()).collect();
        meta.classes = set.into_iter().map(str::to_string).collect();
    }
    if let Some(spec) = eval {
        // A data set may hold only some of the model's classes (a folder of genuine photos
        // measures false rejects), never one the model does not know.
        // No model classes (`data check --eval`): the data set's own are the model's.
        let model = if spec.classes.is_empty() {
            &meta.classes
        } else {
            &spec.classes
        };
        let unknown: Vec<&String> = meta.classes.iter().filter(|c| !model.contains(c)).collect();
        if !unknown.is_empty() {
            return Err(DataError::Layout {
                root: root.to_path_buf(),
                msg: format!(
                    "classes [{}] differ from the model's [{}]: {} not among them",
                    meta.classes.join(", "),
                    spec.classes.join(", "),
                    unknown
                        .iter()
                        .map(|c| format!("'{c}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        meta.classes = model.clone();
        meta.attack_class = spec.attack_class.clone().or(meta.attack_class);
    }
    if let Some(a) = &cfg.attack_class {
        if !meta.classes.contains(a) {
            return Err(DataError::config(
                "attack-class",
                format!("'{a}' is not one of classes [{}]", meta.classes.join(", ")),
            ));
        }
        meta.attack_class = Some(a.clone());
    } else if let Some(a) = meta
        .attack_class
        .as_ref()
        .filter(|a| !meta.classes.contains(a))
    {
        // dataset.json's value (a model's is among its classes): a typo must not quietly
        // make the last class the attack class.
        return Err(DataError::Layout {
            root: root.join(DATASET_JSON),
            msg: format!(
                "attack-class '{a}' is not one of classes [{}] (fix it, or set [data] attack-class)",
                meta.classes.join(", ")
            ),
        });
    }
    // A model has at least two classes; an evaluation set may show one of them.
    if meta.classes.len() < 2 && eval.is_none() {
        return Err(DataError::Layout {
            root: root.to_path_buf(),
            msg: format!(
                "need at least 2 classes, found [{}]",
                meta.classes.join(", ")
            ),
        });
    }
    Ok(meta)
}

/// Evaluation reads one split: the other splits' records are dropped before any image is
/// decoded, and so are the findings about their files (a corrupt training image does not
/// stop the evaluation of the test split). Findings about no file, or about a file the split
/// lists too, stay. An ImageFolder walk
/// never entered the other splits' folders (`read_imagefolder`'s `only`). A data set without
/// a record of the split is an error naming the splits it has.
fn keep_split(src: &mut Source, split: &str, root: &Path) -> Result<(), DataError> {
    if !src.records.iter().any(|r| r.split == split) {
        let mut found: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &src.records {
            *found.entry(r.split.as_str()).or_default() += 1;
        }
        let found: Vec<String> = found.iter().map(|(s, n)| format!("{s} {n}")).collect();
        return Err(DataError::Layout {
            root: root.to_path_buf(),
            msg: format!(
                "split '{split}' has no images (found: {})",
                found.join(", ")
            ),
        });
    }
    // A path listed in the evaluated split too keeps its findings: a test image that the
    // set also lists in train (or with another label) is an error here as in training.
    let kept: BTreeSet<&str> = src
        .records
        .iter()
        .filter(|r| r.split == split)
        .map(|r| r.path.as_str())
        .collect();
    let dropped: BTreeSet<String> = src
        .records
        .iter()
        .filter(|r| r.split != split && !kept.contains(r.path.as_str()))
        .map(|r| r.path.clone())
        .collect();
    src.only_split = Some(split.to_string());
    if dropped.is_empty() {
        return Ok(());
    }
    src.problems.retain(|p| match &p.path {
        None => true,
        Some(path) => !dropped.contains(path),
    });
    let (records, bad): (Vec<_>, Vec<_>) = std::mem::take(&mut src.records)
        .into_iter()
        .zip(std::mem::take(&mut src.bad))
        .filter(|(r, _)| r.split == split)
        .unzip();
    src.records = records;
    src.bad = bad;
    Ok(())
}

/// Manifest-level checks: paths inside the root, known labels and splits, masks usable.
/// Records without a split (empty) go to `default_split`.
fn check_records(src: &mut Source, default_split: &str) {
    let has_regions = !src.meta.regions.is_empty();
    let mut masks_without_regions = 0usize;
    for (i, r) in src.records.iter_mut().enumerate() {
        let rel = r.path.clone();
        if !is_safe_relative(&r.path) {
            src.problems.push(Problem::new(
                ProblemKind::PathEscapesRoot,
                Some(&rel),
                "path is absolute or contains '..'; manifest paths must stay inside the data-set root",
            ));
            src.bad[i] = true;
            continue;
        }
        if !src.meta.classes.contains(&r.label) {
            src.problems.push(Problem::new(
                ProblemKind::UnknownLabel,
                Some(&rel),
                format!(
                    "label '{}' is not one of classes [{}]",
                    r.label,
                    src.meta.classes.join(", ")
                ),
            ));
            src.bad[i] = true;
        }
        if r.split.is_empty() {
            r.split = default_split.to_string();
        }
        match normalize_split(&r.split) {
            Some(s) => r.split = s.to_string(),
            None => {
                src.problems.push(Problem::new(
                    ProblemKind::UnknownSplit,
                    Some(&rel),
                    format!("split '{}' is not one of train, val, test", r.split),
                ));
                src.bad[i] = true;
            }
        }
        if let Some(m) = &r.mask {
            if !is_safe_relative(m) {
                src.problems.push(Problem::new(
                    ProblemKind::BadMask,
                    Some(&rel),
                    format!("mask path '{m}' leaves the data-set root; mask ignored"),
                ));
                r.mask = None;
            } else if !has_regions {
                masks_without_regions += 1;
                r.mask = None;
            }
        }
    }
    if masks_without_regions > 0 {
        src.problems.push(Problem::new(
            ProblemKind::BadMask,
            None,
            format!(
                "{masks_without_regions} mask path(s) ignored: no region names (add \"regions\" to {DATASET_JSON})"
            ),
        ));
    }
}

/// File-level checks before anything is decoded: a path that resolves through a link out of
/// the root (unless `follow-links = "all"`), and the same file listed twice — by the same
/// path, another spelling of it, or a link to it. The copy in the earliest split (train <
/// val < test), else the first listed, is kept; a copy in the same split is dropped with a
/// warning, a copy in another split is an error (it is both trained and tested on). A copy
/// with another label is an error whatever the splits, and disqualifies both listings.
fn check_files(src: &mut Source, root: &Path, follow: FollowLinks) {
    let canon_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let rank = |s: &str| SPLITS.iter().position(|x| *x == s).unwrap_or(SPLITS.len());
    let mut order: Vec<usize> = (0..src.records.len()).filter(|&i| !src.bad[i]).collect();
    order.sort_by_key(|&i| (rank(&src.records[i].split), i));
    let mut first: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for i in order {
        let rec = &src.records[i];
        let joined = root.join(&rec.path);
        let key = match std::fs::canonicalize(&joined) {
            Ok(c) => {
                let escapes = !c.starts_with(&canon_root);
                let linked = c != canon_root.join(normalize_rel(&rec.path));
                let refusal = match follow {
                    FollowLinks::All => None,
                    FollowLinks::Inside if escapes => Some(format!(
                        "resolves through a symbolic link to {}, outside the data-set root (set [data] follow-links = \"all\" to allow it)",
                        c.display()
                    )),
                    FollowLinks::None if linked => Some(
                        "reached through a symbolic link ([data] follow-links = \"none\")"
                            .to_string(),
                    ),
                    _ => None,
                };
                if let Some(msg) = refusal {
                    src.problems.push(Problem::new(
                        ProblemKind::PathEscapesRoot,
                        Some(&rec.path),
                        msg,
                    ));
                    src.bad[i] = true;
                    continue;
                }
                c
            }
            // Missing files are reported when opened; compare their spelled paths.
            Err(_) => canon_root.join(normalize_rel(&rec.path)),
        };
        match first.get(&key) {
            None => {
                first.insert(key, i);
            }
            Some(&f) => {
                let (a, b) = (&src.records[f], &src.records[i]);
                let same = if a.path == b.path {
                    "listed again".to_string()
                } else {
                    format!("the same file as {}", a.path)
                };
                let p = if a.label != b.label {
                    // An image cannot be both genuine and an attack: neither listing is used.
                    let splits = if a.split == b.split {
                        format!("in {}", b.split)
                    } else {
                        format!("in {} and in {}", a.split, b.split)
                    };
                    src.bad[f] = true;
                    Problem::new(
                        ProblemKind::ConflictingLabels,
                        Some(&b.path),
                        format!(
                            "{same} {splits} with label '{}' (first as '{}'); an image has one label",
                            b.label, a.label
                        ),
                    )
                } else if a.split == b.split {
                    Problem::new(
                        ProblemKind::DuplicatePathWithinSplit,
                        Some(&b.path),
                        format!("{same} in {}; used once", b.split),
                    )
                } else {
                    Problem::new(
                        ProblemKind::DuplicatePathAcrossSplits,
                        Some(&b.path),
                        format!(
                            "{same} in {} and in {}: {} metrics would be measured on a training image",
                            a.split, b.split, b.split
                        ),
                    )
                };
                src.problems.push(p);
                src.bad[i] = true;
            }
        }
    }
}

/// A safe relative path with `.` components and repeated separators removed.
fn normalize_rel(p: &str) -> PathBuf {
    Path::new(p)
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

/// Carve `fraction` of train into val when no record is in val. Stratified by (label,
/// groups) with largest-remainder rounding so the total is `round(fraction · train)`.
/// Returns the number of records moved.
pub(crate) fn carve_val(
    records: &mut [ManifestRecord],
    bad: &[bool],
    fraction: f64,
    seed: u64,
) -> usize {
    if fraction <= 0.0 || records.iter().any(|r| r.split == "val") {
        return 0;
    }
    let mut strata: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if r.split == "train" && !bad[i] {
            strata.entry(r.group_key()).or_default().push(i);
        }
    }
    let total: usize = strata.values().map(Vec::len).sum();
    let target = (total as f64 * fraction).round() as usize;
    let mut take: BTreeMap<&String, usize> = BTreeMap::new();
    let mut rema: Vec<(f64, &String)> = Vec::new();
    for (k, v) in &strata {
        let exact = v.len() as f64 * fraction;
        take.insert(k, exact.floor() as usize);
        rema.push((exact - exact.floor(), k));
    }
    let mut left = target.saturating_sub(take.values().sum());
    rema.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    for (_, k) in rema {
        if left == 0 {
            break;
        }
        if let Some(t) = take.get_mut(k) {
            *t += 1;
            left -= 1;
        }
    }
    // Every class with at least two training images gets one in val: a val split without a
    // class fixes the threshold on the other class alone (and is refused by validation).
    let mut per_label: BTreeMap<String, (usize, usize, Option<&String>)> = BTreeMap::new();
    for (k, v) in &strata {
        let label = records[v[0]].label.clone();
        let e = per_label.entry(label).or_insert((0, 0, None));
        e.0 += v.len();
        e.1 += take.get(k).copied().unwrap_or(0);
        if e.2.is_none_or(|b| strata[b].len() < v.len()) {
            e.2 = Some(k);
        }
    }
    for (total, taken, biggest) in per_label.values() {
        if *total >= 2 && *taken == 0 {
            if let Some(t) = biggest.and_then(|b| take.get_mut(b)) {
                *t = 1;
            }
        }
    }
    let mut moved = 0;
    for (k, idx) in &strata {
        let mut idx = idx.clone();
        let id = crate::decode::content_hash(0, 0, k.as_bytes());
        Rng::derive(seed, &[id, 0x5e11]).shuffle(&mut idx);
        let n = take.get(k).copied().unwrap_or(0).min(idx.len());
        for &i in &idx[..n] {
            records[i].split = "val".into();
            moved += 1;
        }
    }
    moved
}

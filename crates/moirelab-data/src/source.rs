//! Readers of the three layouts: moirelab (`dataset.json` + `manifest.jsonl`), ImageFolder
//! (`<root>/<split>/<class>/*`), and a user CSV or JSONL manifest. All produce the same
//! `ManifestRecord`s plus manifest-level problems; nothing here opens an image.

use crate::check::{Problem, ProblemKind};
use crate::config::{DataConfig, FollowLinks, Format};
use crate::DataError;
use moirelab_core::dataset_format::{
    is_safe_relative, DatasetMeta, ManifestRecord, DATASET_JSON, FORMAT_VERSION, MANIFEST_JSONL,
};
use moirelab_core::rng::Rng;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// File extensions ImageFolder picks up (lower-case).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "bmp"];

/// Split names; `valid`/`validation` are read as `val`.
pub const SPLITS: &[&str] = &["train", "val", "test"];

/// Opening a data set to evaluate a trained model on (see `Dataset::open_eval`).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSpec {
    /// The split to evaluate (`train`, `val` or `test`). Images of a folder or manifest
    /// without splits belong to it.
    pub split: String,
    /// The model's classes in its order; the data set's classes must be the same set.
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
/// list is the model's, which the data set's own must equal).
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
    let meta_path = root.join(DATASET_JSON);
    let file_meta: Option<DatasetMeta> = if meta_path.is_file() {
        let m: DatasetMeta = moirelab_core::fsio::read_json(&meta_path)?;
        if m.format_version > FORMAT_VERSION {
            return Err(DataError::Layout {
                root: root.to_path_buf(),
                msg: format!(
                    "{DATASET_JSON} has format-version {}, this build reads up to {FORMAT_VERSION}",
                    m.format_version
                ),
            });
        }
        Some(m)
    } else {
        None
    };
    let records = match format {
        Format::Moirelab => {
            if file_meta.is_none() {
                return Err(DataError::Layout {
                    root: root.to_path_buf(),
                    msg: format!("format = \"moirelab\" but there is no {DATASET_JSON}"),
                });
            }
            moirelab_core::fsio::read_jsonl(&root.join(MANIFEST_JSONL))?
        }
        Format::Imagefolder => read_imagefolder(root, cfg.follow_links, &mut problems)?,
        Format::Csv | Format::Jsonl => {
            let m = cfg.manifest.as_deref().unwrap_or(Path::new(MANIFEST_JSONL));
            let path = if m.is_absolute() {
                m.to_path_buf()
            } else {
                root.join(m)
            };
            if format == Format::Csv {
                read_csv(&path, &mut problems)?
            } else {
                read_user_jsonl(&path)?
            }
        }
        Format::Auto => unreachable!("resolve_format never returns Auto"),
    };
    if records.is_empty() {
        return Err(DataError::Layout {
            root: root.to_path_buf(),
            msg: format!("no images found (read as {})", format.as_str()),
        });
    }
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
        // Like torchvision's ImageFolder: sorted class names.
        let set: BTreeSet<&str> = records.iter().map(|r| r.label.as_str()).collect();
        meta.classes = set.into_iter().map(str::to_string).collect();
    }
    if let Some(spec) = eval {
        let ours: BTreeSet<&String> = meta.classes.iter().collect();
        let model: BTreeSet<&String> = spec.classes.iter().collect();
        if ours != model {
            return Err(DataError::Layout {
                root: root.to_path_buf(),
                msg: format!(
                    "classes [{}] differ from the model's [{}]",
                    meta.classes.join(", "),
                    spec.classes.join(", ")
                ),
            });
        }
        meta.classes = spec.classes.clone();
        meta.attack_class = spec.attack_class.clone();
    }
    if let Some(a) = &cfg.attack_class {
        if !meta.classes.contains(a) {
            return Err(DataError::config(
                "attack-class",
                format!("'{a}' is not one of classes [{}]", meta.classes.join(", ")),
            ));
        }
        meta.attack_class = Some(a.clone());
    } else if meta.attack_index().is_none() {
        meta.attack_class = None;
    }
    if meta.classes.len() < 2 {
        return Err(DataError::Layout {
            root: root.to_path_buf(),
            msg: format!(
                "need at least 2 classes, found [{}]",
                meta.classes.join(", ")
            ),
        });
    }
    let mut src = Source {
        format,
        meta,
        bad: vec![false; records.len()],
        records,
        problems,
        val_carved: 0,
    };
    // Evaluating a folder or manifest without splits means every image: nothing is carved.
    let splitless = src.records.iter().any(|r| r.split.is_empty());
    check_records(&mut src, eval.map_or("train", |e| e.split.as_str()));
    check_files(&mut src, root, cfg.follow_links);
    if !(eval.is_some() && splitless) {
        src.val_carved = carve_val(&mut src.records, &src.bad, cfg.val_fraction, cfg.split_seed);
    }
    Ok(src)
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
/// warning, a copy in another split is an error (it is both trained and tested on).
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
                let p = if a.split == b.split {
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

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

fn has_image_extension(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// One folder entry, after the link policy: `dir` is whether it leads to a folder, `link`
/// whether it is a symbolic link (followed).
struct Entry {
    name: String,
    path: PathBuf,
    dir: bool,
    link: bool,
}

/// A folder walk that follows links only as `follow-links` allows and never walks a folder
/// twice: every folder is identified by its canonical path, so a link back to an ancestor
/// (a loop) or to another folder of the tree (an alias) is reported and not descended.
struct Walk<'a> {
    root: &'a Path,
    canon_root: PathBuf,
    follow: FollowLinks,
    /// canonical folder -> path (relative to the root) it was first walked as
    seen: BTreeMap<PathBuf, String>,
    problems: &'a mut Vec<Problem>,
}

impl Walk<'_> {
    fn link_refusal(&self, path: &Path) -> Option<String> {
        let target = std::fs::canonicalize(path);
        match (self.follow, target) {
            (FollowLinks::None, _) => Some(
                "symbolic link, not followed ([data] follow-links = \"none\")".to_string(),
            ),
            (_, Err(e)) => Some(format!("symbolic link that cannot be resolved ({e}); skipped")),
            (FollowLinks::Inside, Ok(t)) if !t.starts_with(&self.canon_root) => Some(format!(
                "symbolic link to {}, outside the data-set root; not followed (set [data] follow-links = \"all\" to follow it)",
                t.display()
            )),
            _ => None,
        }
    }

    /// Sorted, non-hidden entries of `dir`; refused links are reported and left out.
    fn entries(&mut self, dir: &Path) -> Result<Vec<Entry>, DataError> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).map_err(DataError::io(dir))? {
            let e = e.map_err(DataError::io(dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if is_hidden(&name) {
                continue;
            }
            let path = e.path();
            let link = e.file_type().map_err(DataError::io(&path))?.is_symlink();
            if link {
                if let Some(why) = self.link_refusal(&path) {
                    let rel = rel_of(self.root, &path);
                    self.problems
                        .push(Problem::new(ProblemKind::LinkNotFollowed, Some(&rel), why));
                    continue;
                }
            }
            let dir = match std::fs::metadata(&path) {
                Ok(m) => m.is_dir(),
                Err(e) if link => {
                    let rel = rel_of(self.root, &path);
                    self.problems.push(Problem::new(
                        ProblemKind::LinkNotFollowed,
                        Some(&rel),
                        format!("symbolic link that cannot be followed ({e}); skipped"),
                    ));
                    continue;
                }
                Err(e) => return Err(DataError::io(&path)(e)),
            };
            out.push(Entry {
                name,
                path,
                dir,
                link,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether `dir` is walked for the first time; a repeat is reported.
    fn first_visit(&mut self, dir: &Path) -> bool {
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let rel = rel_of(self.root, dir);
        if let Some(first) = self.seen.get(&key) {
            let first = if first.is_empty() {
                "the data-set root".to_string()
            } else {
                first.clone()
            };
            self.problems.push(Problem::new(
                ProblemKind::LinkLoop,
                Some(&rel),
                format!("leads to the same folder as {first} (a link loop or alias); walked once"),
            ));
            return false;
        }
        self.seen.insert(key, rel);
        true
    }
}

/// `<root>/<split>/<class>/**` when a split folder exists, else `<root>/<class>/**` (no
/// split: train, or the evaluated split). Class folders are walked recursively, in sorted order; folders reached through
/// links are walked after every real folder, so a link never takes a folder from its own
/// class, and each folder is walked once.
fn read_imagefolder(
    root: &Path,
    follow: FollowLinks,
    problems: &mut Vec<Problem>,
) -> Result<Vec<ManifestRecord>, DataError> {
    let canon_root = std::fs::canonicalize(root).map_err(DataError::io(root))?;
    let mut walk = Walk {
        root,
        canon_root,
        follow,
        seen: BTreeMap::new(),
        problems,
    };
    walk.first_visit(root);
    let top = walk.entries(root)?;
    let split_dirs: Vec<(&'static str, PathBuf)> = top
        .iter()
        .filter(|e| e.dir)
        .filter_map(|e| {
            let s = normalize_split(&e.name)?;
            // "" never names a folder; only real split names count
            (!e.name.is_empty()).then(|| (s, e.path.clone()))
        })
        .collect();
    let mut ignored: Vec<String> = Vec::new();
    let mut records = Vec::new();
    let layout: Vec<(&'static str, PathBuf)> = if split_dirs.is_empty() {
        vec![("", root.to_path_buf())]
    } else {
        for e in &top {
            if normalize_split(&e.name).is_none() {
                ignored.push(e.name.clone());
            }
        }
        split_dirs
    };
    // (split, class, folder) reached through a link, walked after all real folders.
    let mut deferred: Vec<(&'static str, String, PathBuf)> = Vec::new();
    let walk_class = |walk: &mut Walk<'_>,
                      split: &'static str,
                      class: &str,
                      start: PathBuf,
                      deferred: &mut Vec<(&'static str, String, PathBuf)>,
                      records: &mut Vec<ManifestRecord>,
                      ignored: &mut Vec<String>|
     -> Result<(), DataError> {
        let mut stack = vec![start];
        while let Some(d) = stack.pop() {
            if !walk.first_visit(&d) {
                continue;
            }
            let entries = walk.entries(&d)?;
            // depth-first but sorted: push sub-folders in reverse
            for e in entries.iter().rev() {
                if e.dir && e.link {
                    deferred.push((split, class.to_string(), e.path.clone()));
                } else if e.dir {
                    stack.push(e.path.clone());
                } else if !has_image_extension(&e.name) {
                    ignored.push(rel_of(walk.root, &e.path));
                }
            }
            for e in entries {
                if !e.dir && has_image_extension(&e.name) {
                    records.push(ManifestRecord {
                        path: rel_of(walk.root, &e.path),
                        label: class.to_string(),
                        split: split.to_string(),
                        groups: BTreeMap::new(),
                        mask: None,
                        boxes: BTreeMap::new(),
                        flag_twin: None,
                        params: serde_json::Value::Null,
                    });
                }
            }
        }
        Ok(())
    };
    for (split, dir) in layout {
        if dir != root && !walk.first_visit(&dir) {
            continue;
        }
        for e in walk.entries(&dir)? {
            if !e.dir {
                ignored.push(rel_of(root, &e.path));
                continue;
            }
            walk_class(
                &mut walk,
                split,
                &e.name,
                e.path,
                &mut deferred,
                &mut records,
                &mut ignored,
            )?;
        }
    }
    let mut k = 0;
    while k < deferred.len() {
        let (split, class, dir) = deferred[k].clone();
        walk_class(
            &mut walk,
            split,
            &class,
            dir,
            &mut deferred,
            &mut records,
            &mut ignored,
        )?;
        k += 1;
    }
    if !ignored.is_empty() {
        let shown: Vec<&str> = ignored.iter().take(5).map(String::as_str).collect();
        walk.problems.push(Problem::new(
            ProblemKind::Ignored,
            None,
            format!(
                "{} entries without an image extension ({}) or outside <split>/<class>/ ignored: {}{}",
                ignored.len(),
                IMAGE_EXTENSIONS.join(", "),
                shown.join(", "),
                if ignored.len() > 5 { ", …" } else { "" }
            ),
        ));
    }
    Ok(records)
}

fn rel_of(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap_or(p);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A line of a user JSONL manifest: like `ManifestRecord`, with `split` optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRecord {
    path: String,
    label: String,
    #[serde(default)]
    split: Option<String>,
    #[serde(default)]
    groups: BTreeMap<String, String>,
    #[serde(default)]
    mask: Option<String>,
    #[serde(default)]
    boxes: BTreeMap<String, [u32; 4]>,
    #[serde(default)]
    flag_twin: Option<String>,
    #[serde(default)]
    params: serde_json::Value,
}

fn read_user_jsonl(path: &Path) -> Result<Vec<ManifestRecord>, DataError> {
    let text = std::fs::read_to_string(path).map_err(DataError::io(path))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let u: UserRecord = serde_json::from_str(line).map_err(|e| DataError::Manifest {
            path: path.to_path_buf(),
            line: i + 1,
            msg: e.to_string(),
        })?;
        out.push(ManifestRecord {
            path: u.path,
            label: u.label,
            split: u.split.unwrap_or_default(),
            groups: u.groups,
            mask: u.mask,
            boxes: u.boxes,
            flag_twin: u.flag_twin,
            params: u.params,
        });
    }
    Ok(out)
}

/// A CSV row: (line number where it starts, fields).
pub(crate) type CsvRow = (usize, Vec<String>);

/// RFC 4180 CSV: quoted fields, `""` escapes, CRLF or LF, newlines inside quotes, a UTF-8
/// BOM. Returns (line number of the row's start, fields).
pub(crate) fn parse_csv(text: &str) -> Result<Vec<CsvRow>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut row_line = 1usize;
    let mut chars = text.chars().peekable();
    let mut field_started_quoted = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !field_started_quoted => {
                in_quotes = true;
                field_started_quoted = true;
            }
            '"' => return Err((line, "stray quote inside an unquoted field".into())),
            ',' => {
                row.push(std::mem::take(&mut field));
                field_started_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                field_started_quoted = false;
                if !(row.len() == 1 && row[0].is_empty()) {
                    rows.push((row_line, std::mem::take(&mut row)));
                } else {
                    row.clear();
                }
                line += 1;
                row_line = line;
            }
            _ => {
                if field_started_quoted {
                    return Err((line, "text after a closing quote".into()));
                }
                field.push(c)
            }
        }
    }
    if in_quotes {
        return Err((row_line, "unterminated quoted field".into()));
    }
    if !field.is_empty() || !row.is_empty() || field_started_quoted {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

fn parse_box(s: &str) -> Option<[u32; 4]> {
    let v: Vec<u32> = s
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    <[u32; 4]>::try_from(v).ok()
}

/// CSV with a header row. Columns: `path` (or `file`, `filename`, `image`), `label` (or
/// `class`), optional `split`, `mask`, `group:<attr>` / `group.<attr>`, and `box:<region>`
/// holding `x0 y0 x1 y1`. Other columns are reported and ignored.
fn read_csv(path: &Path, problems: &mut Vec<Problem>) -> Result<Vec<ManifestRecord>, DataError> {
    let text = std::fs::read_to_string(path).map_err(DataError::io(path))?;
    let bad = |line: usize, msg: String| DataError::Manifest {
        path: path.to_path_buf(),
        line,
        msg,
    };
    let rows = parse_csv(&text).map_err(|(l, m)| bad(l, m))?;
    let Some(((_, header), body)) = rows.split_first() else {
        return Err(bad(1, "empty CSV: expected a header row".into()));
    };
    enum Col {
        Path,
        Label,
        Split,
        Mask,
        Group(String),
        Box(String),
        Ignore,
    }
    let mut cols = Vec::new();
    let mut ignored = Vec::new();
    for h in header {
        let name = h.trim();
        let lower = name.to_ascii_lowercase();
        let col = match lower.as_str() {
            "path" | "file" | "filename" | "image" => Col::Path,
            "label" | "class" => Col::Label,
            "split" => Col::Split,
            "mask" => Col::Mask,
            _ => {
                if let Some(g) = name.strip_prefix("group:").or(name.strip_prefix("group.")) {
                    Col::Group(g.to_string())
                } else if let Some(b) = name.strip_prefix("box:").or(name.strip_prefix("box.")) {
                    Col::Box(b.to_string())
                } else {
                    ignored.push(name.to_string());
                    Col::Ignore
                }
            }
        };
        cols.push(col);
    }
    if !cols.iter().any(|c| matches!(c, Col::Path)) || !cols.iter().any(|c| matches!(c, Col::Label))
    {
        return Err(bad(
            1,
            format!(
                "header [{}] needs a 'path' and a 'label' column",
                header.join(", ")
            ),
        ));
    }
    if !ignored.is_empty() {
        problems.push(Problem::new(
            ProblemKind::Ignored,
            None,
            format!(
                "CSV columns ignored: {} (known: path, label, split, mask, group:<attr>, box:<region>)",
                ignored.join(", ")
            ),
        ));
    }
    let mut out = Vec::new();
    for (line, row) in body {
        if row.len() != header.len() {
            return Err(bad(
                *line,
                format!("{} fields, header has {}", row.len(), header.len()),
            ));
        }
        let mut rec = ManifestRecord {
            path: String::new(),
            label: String::new(),
            split: String::new(),
            groups: BTreeMap::new(),
            mask: None,
            boxes: BTreeMap::new(),
            flag_twin: None,
            params: serde_json::Value::Null,
        };
        for (col, v) in cols.iter().zip(row) {
            let v = v.trim();
            match col {
                Col::Path => rec.path = v.to_string(),
                Col::Label => rec.label = v.to_string(),
                Col::Split => rec.split = v.to_string(),
                Col::Mask if !v.is_empty() => rec.mask = Some(v.to_string()),
                Col::Group(g) if !v.is_empty() => {
                    rec.groups.insert(g.clone(), v.to_string());
                }
                Col::Box(b) if !v.is_empty() => {
                    let bx = parse_box(v).ok_or_else(|| {
                        bad(
                            *line,
                            format!("box:{b} '{v}' is not four integers x0 y0 x1 y1"),
                        )
                    })?;
                    rec.boxes.insert(b.clone(), bx);
                }
                _ => {}
            }
        }
        if rec.path.is_empty() || rec.label.is_empty() {
            return Err(bad(*line, "empty path or label".into()));
        }
        out.push(rec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_parser_handles_quotes_crlf_bom_and_embedded_newlines() {
        let rows = parse_csv(
            "\u{feff}path,label\r\n\"a,b.png\",screen\r\n\"say \"\"hi\"\"\nx\",direct\n\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1], (2, vec!["a,b.png".to_string(), "screen".into()]));
        assert_eq!(rows[2].1[0], "say \"hi\"\nx");
        assert_eq!(parse_csv("a,\"b").unwrap_err().0, 1);
        assert!(parse_csv("a,b\"c\n").is_err());
    }

    fn rec(label: &str, flag: &str) -> ManifestRecord {
        ManifestRecord {
            path: "x.png".into(),
            label: label.into(),
            split: "train".into(),
            groups: [("flag".to_string(), flag.to_string())].into(),
            mask: None,
            boxes: BTreeMap::new(),
            flag_twin: None,
            params: serde_json::Value::Null,
        }
    }

    #[test]
    fn val_carve_is_stratified_seeded_and_hits_the_fraction() {
        let mut recs: Vec<ManifestRecord> = (0..100)
            .map(|i| {
                rec(
                    if i % 4 == 0 { "screen" } else { "direct" },
                    if i % 2 == 0 { "A" } else { "B" },
                )
            })
            .collect();
        let bad = vec![false; recs.len()];
        let mut again = recs.clone();
        assert_eq!(carve_val(&mut recs, &bad, 0.2, 7), 20);
        carve_val(&mut again, &bad, 0.2, 7);
        assert_eq!(recs, again);
        let val_screen = recs
            .iter()
            .filter(|r| r.split == "val" && r.label == "screen")
            .count();
        assert_eq!(val_screen, 5); // 25 screen (all flag A) × 0.2
        let mut other = (0..100).map(|_| rec("direct", "A")).collect::<Vec<_>>();
        carve_val(&mut other, &bad, 0.2, 8);
        let mut other7 = (0..100).map(|_| rec("direct", "A")).collect::<Vec<_>>();
        carve_val(&mut other7, &bad, 0.2, 7);
        let pos = |v: &[ManifestRecord]| {
            v.iter()
                .enumerate()
                .filter(|(_, r)| r.split == "val")
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        assert_ne!(pos(&other), pos(&other7), "seed must change the carve");
        // an existing val split is respected
        assert_eq!(carve_val(&mut recs, &bad, 0.2, 7), 0);
    }

    #[test]
    fn boxes_parse_with_any_separator() {
        assert_eq!(parse_box("1 2 3 4"), Some([1, 2, 3, 4]));
        assert_eq!(parse_box("1,2;3 4"), Some([1, 2, 3, 4]));
        assert_eq!(parse_box("1 2 3"), None);
    }
}

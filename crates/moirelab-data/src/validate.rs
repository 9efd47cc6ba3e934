//! Validation: the report of what opening a data set found (counts, sizes, formats, region
//! presence, duplicates and near-duplicates across splits, classes missing from a split,
//! imbalance), and the check-only passes behind `moirelab data check`.

use crate::cache::{self, ScanItem};
use crate::check::{count_size, CheckReport, Problem, ProblemKind};
use crate::config::{DataConfig, OnBad};
use crate::dataset::resolve_root;
use crate::source::{self, EvalSpec, Source};
use crate::DataError;
use moirelab_core::dataset_format::{ManifestRecord, ARTIFACT_REGIONS, MAX_REGIONS};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Add one masked image's present regions to the report's split x class table;
/// `artifacts` has the bits of the artifact regions (0 when the data set has none).
fn count_presence(
    r: &mut CheckReport,
    regions: &[String],
    artifacts: u16,
    rec: &ManifestRecord,
    present: u16,
) {
    let p = r
        .presence
        .entry(rec.split.clone())
        .or_default()
        .entry(rec.label.clone())
        .or_default();
    p.masked += 1;
    for (i, name) in regions.iter().enumerate().take(MAX_REGIONS) {
        *p.regions.entry(name.clone()).or_default() += (present >> i & 1) as usize;
    }
    if artifacts != 0 {
        *p.no_artifact.get_or_insert(0) += (present & artifacts == 0) as usize;
    }
}

/// Report every val or test image (not already reported as an identical copy) whose picture
/// is nearly that of an image in an earlier split (`similar.rs`), naming the closest one.
fn near_duplicates(
    src: &Source,
    items: &[ScanItem],
    copied: &BTreeSet<usize>,
    problems: &mut Vec<Problem>,
) {
    let mut by_rank: [Vec<(usize, crate::similar::PerceptualHash)>; 3] = Default::default();
    for (i, (rec, it)) in src.records.iter().zip(items).enumerate() {
        let Some(h) = it.info.as_ref().and_then(|info| info.phash) else {
            continue;
        };
        let rank = crate::source::SPLITS.iter().position(|x| *x == rec.split);
        if let Some(rank) = rank.filter(|_| !src.bad[i]) {
            by_rank[rank].push((i, h));
        }
    }
    let mut earlier = by_rank[0].clone();
    for later in &by_rank[1..] {
        let fresh: Vec<_> = later
            .iter()
            .filter(|(j, _)| !copied.contains(j))
            .copied()
            .collect();
        for (j, i, d) in crate::similar::near_copies(&fresh, &earlier) {
            let (a, b) = (&src.records[i], &src.records[j]);
            let relabel = if a.label != b.label {
                format!(" with a different label ({} vs {})", a.label, b.label)
            } else {
                String::new()
            };
            problems.push(Problem::new(
                ProblemKind::NearDuplicateAcrossSplits,
                Some(&b.path),
                format!(
                    "nearly the same picture as {} ({} vs {}; {d} of {} hash bits differ){relabel}: a re-encoded, resized or retouched copy inflates {} metrics",
                    a.path,
                    a.split,
                    b.split,
                    crate::similar::HASH_BITS,
                    b.split
                ),
            ));
        }
        earlier.extend_from_slice(later);
    }
}

/// Merge source- and scan-level findings into a report (stats over usable images).
pub(crate) fn assemble_report(
    src: &Source,
    items: &[ScanItem],
    root: &Path,
    cfg: &DataConfig,
    eval: Option<&EvalSpec>,
) -> CheckReport {
    let mut r = CheckReport {
        root: root.to_path_buf(),
        format: src.format.as_str().to_string(),
        files: src.records.len(),
        classes: src.meta.classes.clone(),
        val_carved: src.val_carved,
        problems: src.problems.clone(),
        ..Default::default()
    };
    let mut by_hash = tally_usable(&mut r, src, items);
    let copied = exact_duplicates(src, &mut by_hash, &mut r.problems);
    near_duplicates(src, items, &copied, &mut r.problems);
    let extremes = train_class_counts(&mut r, src);
    missing_classes(&mut r, src, cfg, eval);
    if let Some(problem) = imbalance(extremes, cfg) {
        r.problems.push(problem);
    }
    r.skipped = skipped_files(src, items, cfg);
    r
}

/// Counts the usable images into `r` (sizes, colour types, formats, masks and the regions
/// present, splits, classes and groups) and collects the scan's problems; returns the usable
/// images' indices by pixel hash.
fn tally_usable(
    r: &mut CheckReport,
    src: &Source,
    items: &[ScanItem],
) -> BTreeMap<u64, Vec<usize>> {
    let artifacts = src
        .meta
        .regions
        .iter()
        .take(MAX_REGIONS)
        .enumerate()
        .filter(|(_, name)| ARTIFACT_REGIONS.contains(&name.as_str()))
        .fold(0u16, |m, (i, _)| m | 1 << i);
    let mut by_hash: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, (rec, it)) in src.records.iter().zip(items).enumerate() {
        r.problems.extend(it.problems.iter().cloned());
        let Some(info) = &it.info else { continue };
        if src.bad[i] {
            continue;
        }
        count_size(&mut r.sizes, info.width, info.height);
        *r.color_types.entry(info.color.clone()).or_default() += 1;
        *r.file_formats.entry(info.format.clone()).or_default() += 1;
        r.exif_rotated += info.exif_rotated as usize;
        if let Some(present) = it.mask {
            r.with_masks += 1;
            count_presence(r, &src.meta.regions, artifacts, rec, present);
        }
        r.usable += 1;
        let s = r.splits.entry(rec.split.clone()).or_default();
        s.images += 1;
        *s.classes.entry(rec.label.clone()).or_default() += 1;
        for (k, v) in &rec.groups {
            *s.groups.entry(format!("{k}={v}")).or_default() += 1;
        }
        by_hash.entry(info.hash).or_default().push(i);
    }
    by_hash
}

/// A problem for every image with the same pixels as another, on the copy in the later split
/// (train < val < test: that is the leaked one); returns the images copied across splits.
fn exact_duplicates(
    src: &Source,
    by_hash: &mut BTreeMap<u64, Vec<usize>>,
    problems: &mut Vec<Problem>,
) -> BTreeSet<usize> {
    let rank = |s: &str| crate::source::SPLITS.iter().position(|x| *x == s);
    let mut copied = BTreeSet::new();
    for dup in by_hash.values_mut().filter(|v| v.len() > 1) {
        dup.sort_by_key(|&i| (rank(&src.records[i].split), i));
        let first = &src.records[dup[0]];
        for &j in &dup[1..] {
            let other = &src.records[j];
            let relabel = if other.label != first.label {
                format!(
                    " with a different label ({} vs {})",
                    first.label, other.label
                )
            } else {
                String::new()
            };
            let (kind, msg) = if other.split != first.split {
                copied.insert(j);
                (
                    ProblemKind::DuplicateAcrossSplits,
                    format!(
                        "same pixels as {} ({} vs {}){relabel}; {} metrics are inflated",
                        first.path, first.split, other.split, other.split
                    ),
                )
            } else {
                (
                    ProblemKind::DuplicateWithinSplit,
                    format!(
                        "same pixels as {} (both {}){relabel}",
                        first.path, first.split
                    ),
                )
            };
            problems.push(Problem::new(kind, Some(&other.path), msg));
        }
    }
    copied
}

/// The smallest and the largest class in train, by usable images.
type Extremes<'a> = Option<((&'a String, usize), (&'a String, usize))>;

/// A problem for each class without usable training images; returns the smallest and the
/// largest of the others.
fn train_class_counts<'a>(r: &mut CheckReport, src: &'a Source) -> Extremes<'a> {
    let train = r.splits.get("train").cloned().unwrap_or_default();
    let mut min: Option<(&String, usize)> = None;
    let mut max: Option<(&String, usize)> = None;
    for c in &src.meta.classes {
        let n = train.classes.get(c).copied().unwrap_or(0);
        if n == 0 {
            r.problems.push(Problem::new(
                ProblemKind::EmptyClass,
                None,
                format!("class '{c}' has no usable training images"),
            ));
            continue;
        }
        if min.is_none_or(|m| n < m.1) {
            min = Some((c, n));
        }
        if max.is_none_or(|m| n > m.1) {
            max = Some((c, n));
        }
    }
    min.zip(max)
}

/// A problem when train's largest class outnumbers its smallest by more than
/// `max-imbalance`.
fn imbalance(extremes: Extremes, cfg: &DataConfig) -> Option<Problem> {
    let ((cmin, nmin), (cmax, nmax)) = extremes?;
    let ratio = nmax as f64 / nmin as f64;
    (ratio > cfg.max_imbalance).then(|| {
        Problem::new(
            ProblemKind::ClassImbalance,
            None,
            format!(
                "train has {nmax} '{cmax}' vs {nmin} '{cmin}' ({ratio:.1}:1 > max-imbalance {}); consider a balanced loader",
                cfg.max_imbalance
            ),
        )
    })
}

/// A problem for each checked split that lacks a class: val and test for training (an
/// error unless `allow-missing-class`), the evaluated split for evaluation (a note).
fn missing_classes(r: &mut CheckReport, src: &Source, cfg: &DataConfig, eval: Option<&EvalSpec>) {
    let checked: Vec<&str> = match eval {
        Some(spec) => vec![spec.split.as_str()],
        None => vec!["val", "test"],
    };
    for split in checked {
        let Some(st) = r.splits.get(split).filter(|s| s.images > 0) else {
            continue;
        };
        let missing: Vec<&String> = src
            .meta
            .classes
            .iter()
            .filter(|c| st.classes.get(*c).copied().unwrap_or(0) == 0)
            .collect();
        if missing.is_empty() {
            continue;
        }
        let names = missing
            .iter()
            .map(|c| format!("'{c}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let why = if eval.is_some() {
            "evaluated as it is; the missing class's error rate, AUC and EER are not measured"
        } else if split == "val" {
            "val accuracy, the best checkpoint and the decision threshold fixed on val would ignore it"
        } else {
            "test metrics would say nothing about it"
        };
        let (kind, hint) = if eval.is_some() {
            (
                ProblemKind::MissingClassAllowed,
                "a data set may hold only some of the model's classes",
            )
        } else if cfg.allow_missing_class {
            (
                ProblemKind::MissingClassAllowed,
                "allowed by [data] allow-missing-class",
            )
        } else {
            (
                ProblemKind::MissingClass,
                "add images of it, or set [data] allow-missing-class = true",
            )
        };
        let images = st.images;
        r.problems.push(Problem::new(
            kind,
            None,
            format!(
                "split '{split}' ({images} images) has no image of class {names}: {why} ({hint})"
            ),
        ));
    }
}

/// The files `on-bad-image = "skip"` drops: entries the walk could not list (a name that is
/// not UTF-8), records disqualified before decoding, and records that did not decode. None
/// under `"error"`, where such files refuse the data set instead.
fn skipped_files(src: &Source, items: &[ScanItem], cfg: &DataConfig) -> Vec<String> {
    if cfg.on_bad_image == OnBad::Error {
        return Vec::new();
    }
    let mut skipped = src.unlisted_unreadable();
    // A file listed twice (with two labels, say) is one file skipped.
    let mut seen = BTreeSet::new();
    for (i, (rec, it)) in src.records.iter().zip(items).enumerate() {
        if (src.bad[i] || it.info.is_none()) && seen.insert(rec.path.as_str()) {
            skipped.push(rec.path.clone());
        }
    }
    skipped
}

/// One validation pass (opens every file, caches nothing). The report's errors are what
/// `Dataset::open` would refuse under `on-bad-image = "error"`.
pub fn check(cfg: &DataConfig, base_dir: &Path) -> Result<CheckReport, DataError> {
    check_for(cfg, base_dir, None)
}

/// Validate a data set the way [`Dataset::open_eval`] opens it for `split`, without a model:
/// only that split is read, one class is enough, and findings about training (classes
/// without training images, class imbalance) are left out.
pub fn check_eval(
    cfg: &DataConfig,
    base_dir: &Path,
    split: &str,
) -> Result<CheckReport, DataError> {
    let spec = EvalSpec {
        split: split.to_string(),
        classes: Vec::new(),
        attack_class: None,
    };
    let mut r = check_for(cfg, base_dir, Some(&spec))?;
    r.for_evaluation();
    Ok(r)
}

fn check_for(
    cfg: &DataConfig,
    base_dir: &Path,
    eval: Option<&EvalSpec>,
) -> Result<CheckReport, DataError> {
    cfg.validate()?;
    let root = resolve_root(cfg, base_dir);
    let src = source::read_source_for(cfg, &root, eval)?;
    let items = cache::scan_only(&src, &root, cfg)?;
    Ok(assemble_report(&src, &items, &root, cfg, eval))
}

/// [`check`] of a folder with default settings (format auto-detected).
pub fn check_root(root: &Path) -> Result<CheckReport, DataError> {
    check(&DataConfig::for_root(root), Path::new("."))
}

//! `summary.json`: assembling the [`RunSummary`] of a finished run from the final val/test
//! metrics, the checkpoint state and what the hooks wrote to `metrics.jsonl` (CAM region
//! stats, `[eval] extra` lines); plus the RFC 3339 time stamps of `meta.json`.

use crate::checkpoint::TrainState;
use crate::TrainError;
use moirelab_core::fsio;
use moirelab_core::run::{self as runfmt, EpochMetrics, MetricsLine, RunSummary};
use moirelab_data::Dataset;
use std::collections::BTreeMap;
use std::path::Path;

/// The final numbers of a run that `summary.json` is made of, besides what it reads from
/// the data set and `metrics.jsonl`.
pub(crate) struct FinalEval {
    /// The run's name (`meta.json`).
    pub name: String,
    /// `train.monitor`.
    pub monitor: String,
    /// Val threshold (EER point) the test metrics were computed at.
    pub threshold: f64,
    /// How val fixed it (or did not).
    pub threshold_source: runfmt::ThresholdSource,
    pub val: Option<EpochMetrics>,
    pub test: Option<EpochMetrics>,
}

/// The summary of a finished run. Reads `metrics.jsonl` of `run_dir` (the test line, if any,
/// already appended); writes nothing.
pub(crate) fn run_summary(
    run_dir: &Path,
    dataset: &Dataset,
    state: &TrainState,
    fin: FinalEval,
) -> Result<RunSummary, TrainError> {
    let shortcuts = shortcut_stats(dataset, fin.test.as_ref());
    let metrics = run_dir.join(runfmt::METRICS_JSONL);
    Ok(RunSummary {
        shortcut: dataset.primary_shortcut().map(str::to_string),
        shortcuts,
        name: fin.name,
        epochs: state.epochs_done,
        best_metric: fin.monitor,
        best_epoch: state.best_epoch,
        best_value: state.best_value.unwrap_or(f64::NAN),
        threshold: fin.threshold,
        threshold_source: Some(fin.threshold_source),
        val: fin.val,
        test: fin.test,
        attention: attention_at(&metrics, state.best_epoch)?,
        extra: extra_at(&metrics, state.best_epoch)?,
        wall_s: state.wall_s,
    })
}

/// Aligned and conflicting test accuracy for each shortcut attribute the data set plants.
fn shortcut_stats(
    dataset: &Dataset,
    test: Option<&EpochMetrics>,
) -> BTreeMap<String, runfmt::ShortcutStats> {
    let meta = dataset.meta();
    meta.shortcuts
        .iter()
        .map(|(attr, pairs)| {
            let (aligned, conflicting) = test
                .map(|t| runfmt::shortcut_accuracy(&t.groups, attr, pairs))
                .unwrap_or_default();
            let stats = runfmt::ShortcutStats {
                region: meta.shortcut_region(attr).map(str::to_string),
                aligned_accuracy: aligned,
                conflicting_accuracy: conflicting,
            };
            (attr.clone(), stats)
        })
        .collect()
}

/// Current UTC time as RFC 3339 (no external time crate: civil-from-days, Hinnant).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Region stats of the CAM dump of epoch `at` (the best epoch, whose weights the test
/// metrics come from; the last dump when that epoch has none) in `metrics.jsonl` (written by
/// a hook), keyed `method/target` and, split by the class each map explains,
/// `method/target/class`.
fn attention_at(
    metrics: &Path,
    at: u32,
) -> Result<BTreeMap<String, BTreeMap<String, runfmt::RegionStats>>, TrainError> {
    let lines: Vec<MetricsLine> = if metrics.is_file() {
        fsio::read_jsonl(metrics)?
    } else {
        Vec::new()
    };
    let cams: Vec<&runfmt::CamMetrics> = lines
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Cam(c) => Some(c),
            MetricsLine::Epoch(_) => None,
        })
        .collect();
    let last = if cams.iter().any(|c| c.epoch == at) {
        at
    } else {
        match cams.iter().map(|c| c.epoch).max() {
            Some(e) => e,
            None => return Ok(BTreeMap::new()),
        }
    };
    let mut out = BTreeMap::new();
    for c in cams.into_iter().filter(|c| c.epoch == last) {
        let key = format!("{}/{}", c.method, c.target.as_str());
        for (class, regions) in &c.per_class {
            out.insert(format!("{key}/{class}"), regions.clone());
        }
        out.insert(key, c.regions.clone());
    }
    Ok(out)
}

/// The `[eval] extra` lines (split `extra/<name>`) of epoch `at` in `metrics.jsonl`, by name.
fn extra_at(metrics: &Path, at: u32) -> Result<BTreeMap<String, EpochMetrics>, TrainError> {
    if !metrics.is_file() {
        return Ok(BTreeMap::new());
    }
    let lines: Vec<MetricsLine> = fsio::read_jsonl(metrics)?;
    Ok(lines
        .into_iter()
        .filter_map(|l| match l {
            MetricsLine::Epoch(m) if m.epoch == at => m
                .split
                .strip_prefix(runfmt::EXTRA_PREFIX)
                .map(|name| (name.to_string(), m.clone())),
            _ => None,
        })
        .collect())
}

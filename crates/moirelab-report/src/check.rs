//! What a loaded run's files say against each other. Map strips and probe inputs are checked
//! against the sizes `maps.json` records (from their PNG headers only, so a page refresh stays
//! cheap): an image that does not read, or whose size does not fit, becomes one warning naming
//! the file ([`RunData::warnings`]) and is dropped from the [`RunData`], so the pages say
//! "not available" instead of showing a broken or stretched picture. `metrics.jsonl` keeps the
//! last of duplicate lines, in epoch order; a `summary.json` whose best epoch the run does not
//! have is said to be inconsistent.

use crate::load::RunData;
use moirelab_core::run::{MapsFile, MetricsLine, SUMMARY_JSON};
use std::collections::BTreeMap;
use std::path::Path;

/// Width and height from a PNG's header.
fn dims(path: &Path) -> Result<(u32, u32), String> {
    image::image_dimensions(path).map_err(|e| e.to_string().replace('\n', " "))
}

/// Whether an image of `w`x`h` has the shape of maps of `mw`x`mh`, to within about a pixel
/// (inputs may be stored at another size than the maps, not in another shape).
fn same_shape((w, h): (u32, u32), (mw, mh): (u32, u32)) -> bool {
    let (w, h, mw, mh) = (u64::from(w), u64::from(h), u64::from(mw), u64::from(mh));
    w > 0 && h > 0 && (w * mh).abs_diff(h * mw) <= w.max(h).max(mw).max(mh)
}

/// Drop map strips and probe inputs that do not read or do not fit `maps.json`, with a
/// warning each.
pub(crate) fn check_images(run: &mut RunData) {
    let mut warnings = Vec::new();
    for e in &mut run.epochs {
        let Some(mf) = &e.maps else {
            continue;
        };
        e.strips
            .retain(|key, path| match strip_problem(mf, key, path) {
                None => true,
                Some(why) => {
                    warnings.push(format!("{}: {why}; its maps are not shown", path.display()));
                    false
                }
            });
    }
    // The newest dump's map size is what the inputs are shown under.
    let map_size = run
        .epochs
        .iter()
        .rev()
        .find_map(|e| e.maps.as_ref().map(|m| (m.width, m.height)));
    run.probe_inputs.retain(|_, path| {
        let why = match dims(path) {
            Err(e) => format!("probe input does not read ({e})"),
            Ok(d) => match map_size {
                Some(m) if !same_shape(d, m) => format!(
                    "probe input is {}x{}, the maps over it are {}x{} (another shape)",
                    d.0, d.1, m.0, m.1
                ),
                _ => return true,
            },
        };
        warnings.push(format!("{}: {why}; not shown", path.display()));
        false
    });
    run.warnings.extend(warnings);
}

/// Why the strip `key` of `mf` at `path` cannot be shown, if it cannot.
fn strip_problem(mf: &MapsFile, key: &str, path: &Path) -> Option<String> {
    let n = mf.maps.get(key).map_or(0, |s| s.max.len());
    let (w, h) = match dims(path) {
        Ok(d) => d,
        Err(e) => return Some(format!("map strip does not read ({e})")),
    };
    let want_h = u64::from(mf.height) * n as u64;
    (u64::from(w) != u64::from(mf.width) || u64::from(h) != want_h).then(|| {
        format!(
            "map strip is {w}x{h}, maps.json says {n} map(s) of {}x{} ({}x{want_h})",
            mf.width, mf.height, mf.width
        )
    })
}

/// What identifies a line of `metrics.jsonl`: its epoch and split, or its epoch, method,
/// layer and target. A series is all lines of one key but the epoch.
fn line_key(l: &MetricsLine) -> (u32, String) {
    match l {
        MetricsLine::Epoch(e) => (e.epoch, e.split.clone()),
        MetricsLine::Cam(c) => (
            c.epoch,
            format!("cam {} {} {}", c.method, c.layer, c.target.as_str()),
        ),
    }
}

/// `metrics.jsonl`'s lines with one line per key (the last one written: a run resumed after a
/// crash between writing an epoch's lines and committing its checkpoint repeats that epoch),
/// in epoch order (stable), and a warning naming `path` for duplicates and for a series
/// whose epochs go backwards. The final test line, which carries the best epoch after later
/// epochs of the other splits, is in order.
pub(crate) fn tidy_metrics(
    path: &Path,
    lines: Vec<MetricsLine>,
) -> (Vec<MetricsLine>, Vec<String>) {
    let mut warnings = Vec::new();
    let keys: Vec<(u32, String)> = lines.iter().map(line_key).collect();
    let mut last: BTreeMap<&(u32, String), usize> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        last.insert(k, i);
    }
    let mut dups: Vec<String> = Vec::new();
    let mut newest: BTreeMap<&str, u32> = BTreeMap::new();
    let mut backwards: Option<String> = None;
    for (i, k) in keys.iter().enumerate() {
        if last.get(k) != Some(&i) {
            dups.push(format!("epoch {} {}", k.0, k.1));
        }
        let seen = newest.entry(k.1.as_str()).or_insert(k.0);
        if k.0 < *seen && backwards.is_none() {
            backwards = Some(format!("epoch {} {} after epoch {seen}", k.0, k.1));
        }
        *seen = (*seen).max(k.0);
    }
    if !dups.is_empty() {
        let more = match dups.len() {
            n if n > 3 => format!(" and {} more", n - 3),
            _ => String::new(),
        };
        dups.truncate(3);
        warnings.push(format!(
            "{}: duplicate lines ({}{more}): the last of each is used",
            path.display(),
            dups.join(", ")
        ));
    }
    if let Some(b) = backwards {
        warnings.push(format!(
            "{}: lines out of epoch order ({b}): read in epoch order",
            path.display()
        ));
    }
    let mut kept: Vec<MetricsLine> = lines
        .into_iter()
        .enumerate()
        .filter(|(i, _)| last.get(&keys[*i]) == Some(i))
        .map(|(_, l)| l)
        .collect();
    kept.sort_by_key(|l| line_key(l).0);
    (kept, warnings)
}

/// Epochs the run has lines or a dump of.
pub(crate) fn known_epochs(run: &RunData) -> std::collections::BTreeSet<u32> {
    let mut set: std::collections::BTreeSet<u32> = run.epochs.iter().map(|e| e.epoch).collect();
    set.extend(run.epoch_metrics().map(|e| e.epoch));
    set
}

/// Whether `summary.json`'s best epoch is one the run has (nothing contradicts it when the
/// run has none at all).
pub(crate) fn summary_best_is_known(run: &RunData) -> bool {
    let known = known_epochs(run);
    run.summary
        .as_ref()
        .is_none_or(|s| known.is_empty() || known.contains(&s.best_epoch))
}

/// A warning for a `summary.json` whose best epoch is not one of the run's.
pub(crate) fn check_summary(run: &mut RunData) {
    if summary_best_is_known(run) {
        return;
    }
    let known = known_epochs(run);
    let (Some(s), Some(first), Some(last)) = (&run.summary, known.first(), known.last()) else {
        return;
    };
    run.warnings.push(format!(
        "{}: best_epoch {} is not an epoch of this run (it has epochs {first}–{last}): \
         inconsistent, no best epoch is marked",
        run.dir.join(SUMMARY_JSON).display(),
        s.best_epoch
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use moirelab_core::run::EpochMetrics;

    fn ep(epoch: u32, split: &str, loss: f64) -> MetricsLine {
        MetricsLine::Epoch(EpochMetrics {
            epoch,
            split: split.into(),
            loss,
            ..Default::default()
        })
    }

    #[test]
    fn duplicate_lines_keep_the_last_and_lines_are_sorted_by_epoch_with_warnings() {
        let p = Path::new("/r/metrics.jsonl");
        let lines = vec![
            ep(1, "train", 1.0),
            ep(1, "val", 1.0),
            ep(2, "train", 2.0),
            ep(1, "train", 9.0),
            ep(1, "val", 9.0),
            ep(2, "val", 2.0),
        ];
        let (kept, w) = tidy_metrics(p, lines);
        let got: Vec<(u32, String, f64)> = kept
            .iter()
            .map(|l| match l {
                MetricsLine::Epoch(e) => (e.epoch, e.split.clone(), e.loss),
                MetricsLine::Cam(_) => unreachable!(),
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, "train".into(), 9.0),
                (1, "val".into(), 9.0),
                (2, "train".into(), 2.0),
                (2, "val".into(), 2.0)
            ]
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            w[0],
            "/r/metrics.jsonl: duplicate lines (epoch 1 train, epoch 1 val): the last of each is used"
        );
        assert!(
            w[1].contains("out of epoch order (epoch 1 train after epoch 2)"),
            "{}",
            w[1]
        );
    }

    #[test]
    fn a_run_as_the_trainer_writes_it_is_in_order_with_its_final_test_line() {
        let lines = vec![
            ep(1, "train", 1.0),
            ep(1, "val", 1.0),
            ep(2, "train", 1.0),
            ep(2, "val", 1.0),
            ep(1, "test", 1.0),
        ];
        let (kept, w) = tidy_metrics(Path::new("m"), lines);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(kept.len(), 5);
    }

    #[test]
    fn shapes_match_at_any_scale_and_to_within_a_pixel() {
        assert!(same_shape((64, 64), (64, 64)));
        assert!(same_shape((128, 128), (64, 64)));
        assert!(same_shape((65, 64), (64, 64)));
        assert!(same_shape((96, 64), (48, 32)));
        assert!(!same_shape((1, 64), (64, 64)));
        assert!(!same_shape((64, 32), (64, 64)));
        assert!(!same_shape((0, 64), (64, 64)));
    }
}

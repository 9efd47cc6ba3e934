//! One module per subcommand: parse the arguments, call the libraries, print. What several
//! commands share (opening a run folder, its model, classes and attack class, the metric
//! rows) lives here.

mod compare;
mod data_check;
mod data_plan;
mod eval;
mod eval_scores;
mod explain;
mod gen_data;
mod model_summary;
mod predict;
mod report;
mod sanity;
mod train;

pub use compare::compare;
pub use data_check::data_check;
pub use data_plan::data_plan;
pub use eval::eval;
pub use explain::explain;
pub use gen_data::{data_state, ensure_data, gen_data, DataState};
pub use model_summary::model_summary;
pub use predict::predict;
pub use report::report;
pub use sanity::sanity;
pub use train::{
    report_outcome, resume_run, stop_flag, train, train_from_config, EXIT_INTERRUPTED,
};

use crate::config::{self, Loaded};
use anyhow::{bail, Result};
use moirelab_core::run::{EpochMetrics, RunMeta, META_JSON};
use moirelab_data::Dataset;
use std::path::{Path, PathBuf};

/// An output folder given by `flag`: an error, before any work, when it or a folder above it
/// is a file (the libraries would only say "File exists" once they came to write it).
pub(crate) fn check_out_folder(flag: &str, path: &Path) -> Result<()> {
    let Some(file) = path.ancestors().find(|p| p.exists() && !p.is_dir()) else {
        return Ok(());
    };
    if file == path {
        bail!("{flag} {}: exists and is not a folder", path.display());
    }
    bail!(
        "{flag} {}: {} is a file, not a folder",
        path.display(),
        file.display()
    )
}

/// What a data set's validation tolerated (duplicates, links, conversions …): one line per
/// kind with its first example and a count, `warning: <what>: …`, so that no command hides
/// them; kinds in `expected` are left out.
fn warning_lines(
    r: &moirelab_data::CheckReport,
    what: &str,
    expected: &[moirelab_data::ProblemKind],
) -> Vec<String> {
    let mut by_kind: std::collections::BTreeMap<_, Vec<&moirelab_data::Problem>> =
        std::collections::BTreeMap::new();
    for p in r.warnings().filter(|p| !expected.contains(&p.kind)) {
        by_kind.entry(p.kind).or_default().push(p);
    }
    by_kind
        .values()
        .map(|ps| {
            let more = match ps.len() {
                1 => String::new(),
                n => format!(" (and {} more like it)", n - 1),
            };
            format!("warning: {what}: {}{more}", ps[0])
        })
        .collect()
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into())
}

/// The rows both `train` and `eval` print.
pub fn metrics_rows(m: &EpochMetrics) -> Vec<(String, String)> {
    let mut rows = vec![
        ("images".to_string(), m.n.to_string()),
        ("loss".into(), format!("{:.4}", m.loss)),
        ("accuracy".into(), format!("{:.4}", m.accuracy)),
        (
            "balanced accuracy".into(),
            format!("{:.4}", m.balanced_accuracy),
        ),
    ];
    if let Some(p) = &m.pad {
        rows.push(("threshold".into(), format!("{:.4}", p.threshold)));
        if let Some(a) = p.accuracy_at_threshold {
            rows.push(("accuracy at threshold".into(), format!("{a:.4}")));
        }
        rows.push(("APCER".into(), format!("{:.4}", p.apcer)));
        rows.push(("BPCER".into(), format!("{:.4}", p.bpcer)));
        rows.push(("ACER (non-ISO)".into(), format!("{:.4}", p.acer_non_iso)));
        rows.push(("EER".into(), format!("{:.4}", p.eer)));
        rows.push(("AUC".into(), format!("{:.4}", p.auc)));
        rows.push(("BPCER20".into(), fmt_opt(p.bpcer20)));
    }
    if let Some(o) = &m.one_class {
        rows.push(("threshold".into(), format!("{:.4}", o.threshold)));
        if let Some(a) = o.apcer {
            rows.push(("APCER".into(), format!("{a:.4}")));
        }
        if let Some(b) = o.bpcer {
            rows.push(("BPCER".into(), format!("{b:.4}")));
        }
    }
    if m.aligned_accuracy.is_some() || m.conflicting_accuracy.is_some() {
        rows.push(("aligned-group acc".into(), fmt_opt(m.aligned_accuracy)));
        rows.push((
            "conflicting-group acc".into(),
            fmt_opt(m.conflicting_accuracy),
        ));
    }
    if m.worst_group_accuracy.is_some() {
        rows.push(("worst-group acc".into(), fmt_opt(m.worst_group_accuracy)));
    }
    rows
}

/// `config.toml` of a run folder, or the one error every command gives for a folder that is
/// not a run, or of a run a newer moirelab wrote.
fn check_run_folder(run: &Path) -> Result<PathBuf> {
    let path = run.join(moirelab_core::run::CONFIG_TOML);
    if !path.is_file() {
        bail!("{}: not a run folder (no config.toml)", run.display());
    }
    moirelab_core::run::check_run_format(run)?;
    Ok(path)
}

/// The run's own config, as it was when the run started.
fn run_config(run: &Path) -> Result<Loaded> {
    config::load(&check_run_folder(run)?, &[])
}

/// The run's config plus its data set.
fn open_run(run: &Path) -> Result<(Loaded, Dataset)> {
    let loaded = run_config(run)?;
    let ds = Dataset::open(&loaded.config.data, &std::env::current_dir()?)?;
    Ok((loaded, ds))
}

fn load_model(
    run: &Path,
    loaded: &Loaded,
    classes: usize,
    which: &str,
) -> Result<moirelab_train::LoadedRun> {
    if which != "best" && which != "last" {
        bail!("--checkpoint {which}: valid values are best, last");
    }
    let mut model = loaded.config.model.clone();
    model.classes = classes as i64;
    let device = moirelab_train::trainer::choose_device(loaded.config.train.device)?;
    Ok(moirelab_train::load_run(run, &model, device, which)?)
}

/// Class names of a run (index = logit): from `meta.json`, the first Grad-CAM dump, or its
/// data set.
fn run_classes(run: &Path, loaded: &Loaded) -> Result<Vec<String>> {
    if let Ok(m) = moirelab_core::fsio::read_json::<RunMeta>(&run.join(META_JSON)) {
        if !m.classes.is_empty() {
            return Ok(m.classes);
        }
    }
    let probes = moirelab_core::run::epoch_dir(run, 1).join(moirelab_core::run::PROBES_JSON);
    if let Ok(p) = moirelab_core::fsio::read_json::<moirelab_core::run::ProbesFile>(&probes) {
        if !p.classes.is_empty() {
            return Ok(p.classes);
        }
    }
    let ds = Dataset::open(&loaded.config.data, &std::env::current_dir()?)?;
    Ok(ds.classes().to_vec())
}

/// What a report or compare page left out or tolerated, on stderr: one line each.
pub fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// The run's attack class: `meta.json`'s, else `data.attack-class`, else the last class.
fn attack_index(run: &Path, classes: &[String], loaded: &Loaded) -> usize {
    let from_meta = moirelab_core::fsio::read_json::<RunMeta>(&run.join(META_JSON))
        .ok()
        .and_then(|m| m.attack_class)
        .and_then(|a| classes.iter().position(|c| *c == a));
    if let Some(i) = from_meta {
        return i;
    }
    loaded
        .config
        .data
        .attack_class
        .as_ref()
        .and_then(|a| classes.iter().position(|c| c == a))
        .unwrap_or(classes.len().saturating_sub(1))
}

/// The class decided for an image: the attack class when it is flagged (its score at or
/// above the threshold), else the bona fide class by name when there is one, `bona fide`
/// when several classes are (`predict`, `eval --scores`).
fn decision(classes: &[String], attack: usize, flagged: bool) -> String {
    if flagged {
        return classes[attack].clone();
    }
    match classes {
        [a, b] => if attack == 0 { b } else { a }.clone(),
        _ => "bona fide".to_string(),
    }
}

/// How many images of `ds`'s `split` are near-copies (`moirelab_data::near_copies`) of the
/// images a run trained on (`train`), and a warning line naming the first pair: evaluated
/// copies inflate that data set's metrics.
fn training_copies(
    name: &str,
    ds: &Dataset,
    split: &str,
    train: &moirelab_data::HashList,
) -> (usize, Option<String>) {
    let found = moirelab_data::near_copies(&ds.perceptual_hashes(split), &train.hashes());
    let Some(&(j, k, d)) = found.first() else {
        return (0, None);
    };
    let im = &train.images[k];
    let line = format!(
        "warning: {name}: {} of {} {split} images are near-copies of the run's training data \
         (e.g. {} ~ {} {}, {d} of 255 hash bits differ): its metrics are inflated",
        found.len(),
        ds.split(split).len(),
        ds.record(j).path,
        im.split,
        im.path,
    );
    (found.len(), Some(line))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_decision_names_the_attack_class_or_the_one_bona_fide_class() {
        let two = ["direct".to_string(), "screen".to_string()];
        assert_eq!(super::decision(&two, 1, true), "screen");
        assert_eq!(super::decision(&two, 1, false), "direct");
        assert_eq!(super::decision(&two, 0, false), "screen");
        let three = ["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(super::decision(&three, 2, true), "c");
        assert_eq!(super::decision(&three, 2, false), "bona fide");
    }
}

//! `eval`: a trained run on its own split or on other data sets, at the run's threshold (or one
//! given, or fixed on a set of genuine photos), with error rates by slice.

use super::{attack_index, load_model, metrics_rows, run_classes, run_config};
use crate::config::Loaded;
use crate::EvalArgs;
use anyhow::{bail, Context, Result};
use moirelab_core::run::EpochMetrics;
use moirelab_data::{DataError, Dataset, OnBad};
use moirelab_train::metrics::ThresholdFrom;
use moirelab_train::slices::{self, SliceSpec, SliceTable, Slicing};
use std::process::ExitCode;

/// One data set of `eval`: what was asked for, the files `--skip-bad` dropped from it, and
/// its metrics at the run's threshold.
#[derive(serde::Serialize)]
struct EvalRow {
    data: String,
    /// `kind=value` of `--perturb`; absent on the unperturbed row.
    #[serde(skip_serializing_if = "Option::is_none")]
    perturbation: Option<String>,
    skipped: usize,
    /// Images that are near-copies of the run's training images (`--data` sets of runs that
    /// keep `data-hashes.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    training_copies: Option<usize>,
    /// `--adapt-bn`: which BatchNorm statistics were re-estimated, on how many images (the
    /// row's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    adapted_bn: Option<AdaptedBn>,
    #[serde(flatten)]
    metrics: EpochMetrics,
    /// Error rates by `--by` key, at the row's threshold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    slices: Vec<SliceTable>,
}

/// The BatchNorm statistics an `eval` row was scored with (`--adapt-bn`).
#[derive(serde::Serialize)]
struct AdaptedBn {
    /// `scale` (variances) or `all` (means and variances).
    statistics: &'static str,
    images: usize,
}

/// A data set's bad-files error, pointed at the flag that drops them (the message's own hint,
/// a config key, is for training).
fn bad_files_hint(e: DataError) -> anyhow::Error {
    match e {
        DataError::BadImages {
            root,
            count,
            listing,
        } => anyhow::anyhow!(
            "{count} bad file(s) in {} (add --skip-bad to drop them): {listing}",
            root.display()
        ),
        e => e.into(),
    }
}

/// The run's `data-hashes.json`; `None` (with a warning when it is there but unreadable) for
/// runs that do not keep one.
fn read_hash_list(run: &std::path::Path) -> Option<moirelab_data::HashList> {
    let path = run.join(moirelab_core::run::DATA_HASHES_JSON);
    if !path.exists() {
        return None;
    }
    let bytes = match moirelab_core::fsio::read_capped(
        &path,
        "a hash list",
        moirelab_core::fsio::MANIFEST_MAX_BYTES,
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "warning: {e}; evaluated images are not checked for copies of the training data"
            );
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(list) => Some(list),
        Err(e) => {
            eprintln!(
                "warning: {}: {e}; evaluated images are not checked for copies of the training data",
                path.display()
            );
            None
        }
    }
}

/// The flags of `eval` that are checked before anything is opened.
struct Flags {
    perturbations: Vec<moirelab_data::Perturbation>,
    specs: Vec<SliceSpec>,
    adapt_bn: Option<moirelab_models::BnAdapt>,
    /// `--bpcer`, or its default.
    bpcer: f64,
}

/// Every flag's value and their combinations, each a one-line error naming the flag.
fn check_flags(a: &EvalArgs) -> Result<Flags> {
    if !moirelab_data::SPLITS.contains(&a.split.as_str()) {
        bail!(
            "--split {}: valid values are {}",
            a.split,
            moirelab_data::SPLITS.join(", ")
        );
    }
    let perturbations = a
        .perturb
        .iter()
        .map(|p| {
            moirelab_data::Perturbation::parse(p).map_err(|e| anyhow::anyhow!("--perturb {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let specs =
        a.by.iter()
            .map(|k| SliceSpec::parse(k).map_err(|e| anyhow::anyhow!("--by {e}")))
            .collect::<Result<Vec<_>>>()?;
    if let Some(t) = a.threshold {
        if !(0.0..=1.0).contains(&t) {
            bail!("--threshold {t}: a threshold is an attack score in [0, 1]");
        }
    }
    if a.threshold.is_some() && a.calibrate.is_some() {
        bail!("--threshold and --calibrate both set the threshold: give one");
    }
    if a.bpcer.is_some() && a.calibrate.is_none() {
        bail!(
            "--bpcer is the rejection rate of --calibrate DIR's bona fide images: add --calibrate"
        );
    }
    let adapt_bn = a
        .adapt_bn
        .as_deref()
        .map(|w| w.parse::<moirelab_models::BnAdapt>())
        .transpose()
        .map_err(|e| anyhow::anyhow!("--adapt-bn {e}"))?;
    if adapt_bn.is_some() && a.calibrate.is_some() {
        bail!(
            "--adapt-bn and --calibrate both adapt the decisions to the new photos: give one \
             (--calibrate's genuine-only set would give BatchNorm statistics no mixed set has)"
        );
    }
    let bpcer = a.bpcer.unwrap_or(0.05);
    if !(0.0..1.0).contains(&bpcer) {
        bail!("--bpcer {bpcer}: a rejection rate in [0, 1)");
    }
    Ok(Flags {
        perturbations,
        specs,
        adapt_bn,
        bpcer,
    })
}

/// What `eval` reads: the run's classes, its data set or the `--data` sets (each by name,
/// with its count of near-copies of the training images), and `--calibrate`'s set.
struct Sets<'a> {
    classes: Vec<String>,
    sets: Vec<(String, Dataset)>,
    copies: Vec<Option<usize>>,
    calibration: Option<(&'a std::path::Path, Dataset)>,
}

fn open_sets<'a>(a: &'a EvalArgs, loaded: &Loaded) -> Result<Sets<'a>> {
    let cwd = std::env::current_dir()?;
    let mut sets: Vec<(String, Dataset)> = Vec::new();
    let on_bad = |mut cfg: moirelab_data::DataConfig| {
        if a.skip_bad {
            cfg.on_bad_image = OnBad::Skip;
        }
        cfg
    };
    let classes = if a.data.is_empty() {
        let ds =
            Dataset::open(&on_bad(loaded.config.data.clone()), &cwd).map_err(bad_files_hint)?;
        if ds.split(&a.split).is_empty() {
            bail!(
                "split '{}' is empty in {} (evaluate another data set with --data DIR)",
                a.split,
                loaded.config.data.root.display()
            );
        }
        let classes = ds.classes().to_vec();
        sets.push((loaded.config.data.root.display().to_string(), ds));
        classes
    } else {
        run_classes(&a.run, loaded)?
    };
    let attack = attack_index(&a.run, &classes, loaded);
    let train_hashes = if a.data.is_empty() {
        None
    } else {
        read_hash_list(&a.run)
    };
    let mut copies = vec![None; sets.len()];
    // Another data set, named by the flag that gave it.
    let open_other = |flag: &str, d: &std::path::Path| -> Result<Dataset> {
        if !d.exists() {
            bail!("{flag} {}: no such folder or manifest file", d.display());
        }
        if d.is_file() && moirelab_data::has_image_extension(d) {
            bail!(
                "{flag} {}: an image file; {flag} takes a folder or a CSV/JSONL manifest \
                 (for single images: moirelab predict --run RUN FILE ...)",
                d.display()
            );
        }
        let spec = moirelab_data::EvalSpec {
            split: a.split.clone(),
            classes: classes.clone(),
            attack_class: classes.get(attack).cloned(),
        };
        let cfg = on_bad(loaded.config.data.for_eval_source(d));
        let ds = Dataset::open_eval(&cfg, &cwd, &spec)
            .map_err(bad_files_hint)
            .with_context(|| format!("{flag} {}", d.display()))?;
        // A set of one class (genuine photos only) is a normal thing to evaluate.
        let expected = [moirelab_data::ProblemKind::MissingClassAllowed];
        for line in super::warning_lines(ds.report(), &format!("{flag} {}", d.display()), &expected)
        {
            eprintln!("{line}");
        }
        Ok(ds)
    };
    let calibration = a
        .calibrate
        .as_deref()
        .map(|d| open_other("--calibrate", d).map(|ds| (d, ds)))
        .transpose()?;
    for d in &a.data {
        let ds = open_other("--data", d)?;
        let name = d.display().to_string();
        copies.push(train_hashes.as_ref().map(|train| {
            let (n, line) = super::training_copies(&name, &ds, &a.split, train);
            if let Some(line) = line {
                eprintln!("{line}");
            }
            n
        }));
        sets.push((name, ds));
    }
    Ok(Sets {
        classes,
        sets,
        copies,
        calibration,
    })
}

pub fn eval(a: EvalArgs) -> Result<ExitCode> {
    let flags = check_flags(&a)?;
    let mut per_image = a
        .scores
        .as_deref()
        .map(super::eval_scores::Scores::new)
        .transpose()?;
    let loaded = run_config(&a.run)?;
    let sets = open_sets(&a, &loaded)?;
    let slicings = sets
        .sets
        .iter()
        .map(|(name, ds)| set_slicings(&flags.specs, name, ds, &a.split))
        .collect::<Result<Vec<_>>>()?;
    let lr = load_model(&a.run, &loaded, sets.classes.len(), &a.checkpoint)?;
    // The run's own val split fixes its threshold; everything else applies it, unless the
    // user gives one or a set of bona fide images to fix it on.
    let calibrated = sets
        .calibration
        .as_ref()
        .map(|(dir, ds)| calibrate(&lr, ds, dir, &a.split, flags.bpcer))
        .transpose()?;
    let threshold = if let Some(t) = a.threshold.or(calibrated.as_ref().map(|c| c.0)) {
        Some(t)
    } else if a.data.is_empty() && a.split == "val" {
        None
    } else {
        lr.threshold
    };
    let scoring = Scoring {
        flags: &flags,
        lr: &lr,
        split: &a.split,
        threshold,
        // The run's val split fixes its own threshold as training did.
        val_rule: loaded.config.train.threshold_rule(),
    };
    let mut rows = Vec::with_capacity(sets.sets.len() * (1 + flags.perturbations.len()));
    for (((name, ds), copies), set_slicings) in sets.sets.iter().zip(&sets.copies).zip(&slicings) {
        rows.extend(scoring.rows(name, ds, *copies, set_slicings, per_image.as_mut())?);
    }
    if let Some(per_image) = &per_image {
        let n = per_image.write()?;
        eprintln!("{n} image scores written to {}", per_image.path().display());
    }
    if a.json {
        let text = match rows.as_slice() {
            [one] => serde_json::to_string_pretty(one)?,
            _ => serde_json::to_string_pretty(&rows)?,
        };
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let source = match (threshold, lr.threshold) {
        (Some(t), _) if a.threshold.is_some() => format!("threshold {t:.4} (--threshold)"),
        (Some(t), _) if calibrated.is_some() => {
            let line = calibrated.as_ref().map_or("", |c| c.1.as_str());
            format!("threshold {t:.4} ({line})")
        }
        (Some(t), _) => format!("threshold {t:.4} (fixed on the run's val split)"),
        (None, Some(_)) => "threshold: this split's EER point (it is the run's val)".into(),
        (None, None) => "threshold: each data set's EER point (the run has none yet)".into(),
    };
    println!("{source}");
    print_rows(&rows, &a.split, flags.adapt_bn);
    Ok(ExitCode::SUCCESS)
}

/// How every row is scored: the flags, the model, the split and the threshold.
struct Scoring<'a> {
    flags: &'a Flags,
    lr: &'a moirelab_train::LoadedRun,
    split: &'a str,
    /// `None`: the split's own point by `val_rule` (it is the run's val, or the run has none).
    threshold: Option<f64>,
    val_rule: moirelab_train::metrics::ThresholdRule,
}

impl Scoring<'_> {
    /// One data set's rows: unperturbed, then one per `--perturb`, each with its slices (and
    /// its scores added to `per_image`).
    fn rows(
        &self,
        name: &str,
        ds: &Dataset,
        copies: Option<usize>,
        slicings: &SetSlicings,
        mut per_image: Option<&mut super::eval_scores::Scores>,
    ) -> Result<Vec<EvalRow>> {
        let (lr, split) = (self.lr, self.split);
        let idx = ds.split(split);
        let mut rows = Vec::new();
        // The unperturbed row first; perturbed rows apply its threshold, so that on the run's
        // own val split they too are read at the point that val fixed.
        let mut row_threshold = self.threshold;
        for p in std::iter::once(None).chain(self.flags.perturbations.iter().map(Some)) {
            let opts = moirelab_train::trainer::EvalOptions {
                batch_size: 64,
                device: lr.device,
                epoch: 0,
                split: split.to_string(),
                threshold: ThresholdFrom::given_or(row_threshold, self.val_rule),
                perturbation: p.copied(),
            };
            if let Some(adapt) = self.flags.adapt_bn {
                moirelab_train::adapt_batch_norm(&lr.vs, lr.net.as_ref(), adapt, ds, idx, &opts)
                    .with_context(|| format!("--adapt-bn on {name}"))?;
            }
            let (m, scores) = moirelab_train::evaluate_scored(lr.net.as_ref(), ds, idx, &opts)
                .with_context(|| format!("evaluating {name}"))?;
            row_threshold = row_threshold.or(m.pad.as_ref().map(|pad| pad.threshold));
            let slices = slice_tables(slicings, name, &scores, row_threshold)?;
            if let Some(per_image) = per_image.as_deref_mut() {
                per_image.add_row(name, p.map(|p| p.name()), ds, idx, &scores, row_threshold);
            }
            rows.push(EvalRow {
                data: name.to_string(),
                perturbation: p.map(|p| p.name()),
                skipped: ds.report().skipped.len(),
                training_copies: copies,
                adapted_bn: self.flags.adapt_bn.map(|w| AdaptedBn {
                    statistics: w.as_str(),
                    images: idx.len(),
                }),
                metrics: m,
                slices,
            });
        }
        Ok(rows)
    }
}

/// The text `eval` prints below its threshold line: the `--adapt-bn` line, skipped files, the
/// one row's metrics or the table of rows, and each row's slices.
fn print_rows(rows: &[EvalRow], split: &str, adapt_bn: Option<moirelab_models::BnAdapt>) {
    match adapt_bn {
        Some(moirelab_models::BnAdapt::Scale) => println!(
            "BatchNorm variances re-estimated on each row's own images, means as trained (--adapt-bn scale)"
        ),
        Some(moirelab_models::BnAdapt::All) => println!(
            "BatchNorm means and variances re-estimated on each row's own images (--adapt-bn all)"
        ),
        None => {}
    }
    // Once per data set: its perturbed rows read the same files.
    for r in rows
        .iter()
        .filter(|r| r.skipped > 0 && r.perturbation.is_none())
    {
        println!(
            "{}: {} unusable file(s) skipped (moirelab data check --eval {} lists them)",
            r.data, r.skipped, r.data
        );
    }
    if let [one] = rows {
        println!("{:<24}{:>12}", "data", one.data);
        println!("{:<24}{:>12}", "split", split);
        for (k, v) in metrics_rows(&one.metrics) {
            println!("{k:<24}{v:>12}");
        }
        // Values stay in the column above unless a group name is too long for it.
        let gw = one
            .metrics
            .groups
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(0);
        let w = 30usize.saturating_sub(gw).max(8);
        for (g, s) in &one.metrics.groups {
            println!("group {g:<gw$}{:>w$.4}  (n={})", s.accuracy, s.n);
        }
    } else {
        print!("{}", eval_table(rows, split));
    }
    for r in rows {
        for t in &r.slices {
            print!("{}", slice_table(r, t));
        }
    }
}

/// `--calibrate`: the threshold at which at most `bpcer` of the set's bona fide images are
/// rejected, and a line saying so.
fn calibrate(
    lr: &moirelab_train::LoadedRun,
    ds: &Dataset,
    dir: &std::path::Path,
    split: &str,
    bpcer: f64,
) -> Result<(f64, String)> {
    let idx = ds.split(split);
    let (_, scores) = moirelab_train::evaluate_scored(
        lr.net.as_ref(),
        ds,
        idx,
        &moirelab_train::trainer::EvalOptions {
            batch_size: 64,
            device: lr.device,
            epoch: 0,
            split: split.to_string(),
            threshold: ThresholdFrom::Given(0.5),
            perturbation: None,
        },
    )
    .with_context(|| format!("--calibrate {}", dir.display()))?;
    let attack = ds.attack_index();
    let bona: Vec<f64> = idx
        .iter()
        .zip(&scores)
        .filter(|(&i, _)| ds.label(i) != attack)
        .map(|(_, &s)| s)
        .collect();
    let Some(t) = moirelab_train::metrics::threshold_for_bona_fide(&bona, bpcer) else {
        let bona_names: Vec<String> = ds
            .classes()
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != attack)
            .map(|(_, c)| format!("'{c}'"))
            .collect();
        bail!(
            "--calibrate {}: no bona fide ({}) images in split '{split}' to fix the threshold on",
            dir.display(),
            bona_names.join(", ")
        );
    };
    // The same decisions as every row's: BPCER over these images at t.
    let (_, rejected) = moirelab_train::metrics::error_rates_at(&bona, &vec![false; bona.len()], t);
    Ok((
        t,
        format!(
            "fixed on {}: {rejected:.4} of its {} bona fide images rejected, --bpcer {bpcer}",
            dir.display(),
            bona.len()
        ),
    ))
}

/// A data set's `--by` slicings, built from its images' values before anything is scored
/// (a bad key fails before the model runs), with each image's ground truth.
struct SetSlicings {
    slicings: Vec<Slicing>,
    is_attack: Vec<bool>,
}

fn set_slicings(specs: &[SliceSpec], name: &str, ds: &Dataset, split: &str) -> Result<SetSlicings> {
    let idx = ds.split(split);
    let attack = ds.attack_index();
    let slicings = specs
        .iter()
        .map(|spec| {
            let values: Vec<_> = idx.iter().map(|&i| spec.value(ds.record(i))).collect();
            let known = || {
                let mut keys: Vec<String> = idx
                    .iter()
                    .flat_map(|&i| slices::available_keys(ds.record(i)))
                    .collect();
                keys.sort();
                keys.dedup();
                keys
            };
            slices::slicing(spec, &values, known)
                .map_err(|e| anyhow::anyhow!("--by on {name}: {e}"))
        })
        .collect::<Result<_>>()?;
    Ok(SetSlicings {
        slicings,
        is_attack: idx.iter().map(|&i| ds.label(i) == attack).collect(),
    })
}

/// The `--by` tables of one evaluated row, at the row's threshold.
fn slice_tables(
    set: &SetSlicings,
    name: &str,
    scores: &[f64],
    threshold: Option<f64>,
) -> Result<Vec<SliceTable>> {
    if set.slicings.is_empty() {
        return Ok(Vec::new());
    }
    let Some(threshold) = threshold else {
        bail!("--by on {name}: no threshold (the run has none and this set is of one class)");
    };
    Ok(set
        .slicings
        .iter()
        .map(|s| s.table(scores, &set.is_attack, threshold))
        .collect())
}

/// One `--by` table: a row per value or bin, with the attacks missed and the bona fide
/// images rejected among its images.
fn slice_table(r: &EvalRow, t: &SliceTable) -> String {
    let dash = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
    let mut title = format!("\nby {} on {}", t.key, r.data);
    if let Some(p) = &r.perturbation {
        title.push_str(&format!(" ({p})"));
    }
    let w = t
        .rows
        .iter()
        .map(|s| s.value.len())
        .max()
        .unwrap_or(0)
        .max(5)
        + 2;
    let mut out = format!("{title}, threshold {:.4}\n", t.threshold);
    out.push_str(&format!(
        "{:<w$}{:>9}{:>8}{:>11}{:>8}{:>9}\n",
        "value", "attacks", "APCER", "bona fide", "BPCER", "acc@thr"
    ));
    for s in &t.rows {
        out.push_str(&format!(
            "{:<w$}{:>9}{:>8}{:>11}{:>8}{:>9.4}\n",
            s.value,
            s.attacks,
            dash(s.apcer),
            s.bona_fide,
            dash(s.bpcer),
            s.accuracy
        ));
    }
    out
}

/// APCER or BPCER of a row: from the PAD metrics, or on a set of one class from its rate at
/// the run's threshold; `-` where undefined.
fn rate(
    m: &EpochMetrics,
    pad: fn(&moirelab_core::run::PadMetrics) -> f64,
    one: fn(&moirelab_core::run::OneClassRates) -> Option<f64>,
) -> String {
    m.pad
        .as_ref()
        .map(pad)
        .or_else(|| m.one_class.as_ref().and_then(one))
        .map(|v| format!("{v:.4}"))
        .unwrap_or_else(|| "-".into())
}

/// Accuracy of a row's decisions at the run's threshold: from the PAD metrics, or on a set
/// of one class one minus its error rate; `-` where undefined (runs written before PAD
/// metrics recorded it).
fn accuracy_at_threshold(m: &EpochMetrics) -> String {
    m.pad
        .as_ref()
        .and_then(|p| p.accuracy_at_threshold)
        .or_else(|| {
            m.one_class
                .as_ref()
                .and_then(|o| o.apcer.or(o.bpcer))
                .map(|e| 1.0 - e)
        })
        .map(|v| format!("{v:.4}"))
        .unwrap_or_else(|| "-".into())
}

/// One row per data set (and perturbation, when there are any): n, accuracy (argmax),
/// accuracy at the threshold, balanced accuracy, AUC, EER, APCER, BPCER.
fn eval_table(rows: &[EvalRow], split: &str) -> String {
    let w = rows.iter().map(|r| r.data.len()).max().unwrap_or(0).max(4) + 2;
    let pw = rows
        .iter()
        .filter_map(|r| r.perturbation.as_ref().map(|p| p.len() + 2))
        .max()
        .map(|n| n.max(14));
    let perturbation = |r: Option<&EvalRow>| match (pw, r) {
        (None, _) => String::new(),
        (Some(pw), None) => format!("{:<pw$}", "perturbation"),
        (Some(pw), Some(r)) => format!("{:<pw$}", r.perturbation.as_deref().unwrap_or("none")),
    };
    let mut out = format!(
        "{:<w$}{}{:<7}{:>7}{:>10}{:>8}{:>10}{:>8}{:>8}{:>8}{:>8}\n",
        "data",
        perturbation(None),
        "split",
        "n",
        "accuracy",
        "acc@thr",
        "bal.acc",
        "AUC",
        "EER",
        "APCER",
        "BPCER"
    );
    for r in rows {
        let m = &r.metrics;
        let pad = |f: fn(&moirelab_core::run::PadMetrics) -> f64| {
            m.pad
                .as_ref()
                .map(|p| format!("{:.4}", f(p)))
                .unwrap_or_else(|| "-".into())
        };
        out.push_str(&format!(
            "{:<w$}{}{split:<7}{:>7}{:>10.4}{:>8}{:>10.4}{:>8}{:>8}{:>8}{:>8}\n",
            r.data,
            perturbation(Some(r)),
            m.n,
            m.accuracy,
            accuracy_at_threshold(m),
            m.balanced_accuracy,
            pad(|p| p.auc),
            pad(|p| p.eer),
            rate(m, |p| p.apcer, |o| o.apcer),
            rate(m, |p| p.bpcer, |o| o.bpcer),
        ));
    }
    out
}

//! `train`: start a run from a config or resume one, with the Grad-CAM and report hooks and
//! the `[eval] extra` data sets; how a run ended, printed.

use super::gen_data::ensure_data;
use super::{metrics_rows, run_config};
use crate::config::{self, Loaded};
use crate::hooks::{GradcamHook, ReportHook};
use crate::progress::CliReporter;
use crate::TrainArgs;
use anyhow::{anyhow, bail, Context, Result};
use moirelab_core::run::{RunMeta, RunSummary};
use moirelab_train::{EpochHook, ExtraEval, Outcome, TrainSetup, Trainer};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, the shell convention).
pub const EXIT_INTERRUPTED: u8 = 130;

fn libtorch_version() -> String {
    // The wheel ships torch/version.py; a plain libtorch zip ships build-version.
    let Some(root) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        return "unknown".into();
    };
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return v.trim().to_string();
    }
    std::fs::read_to_string(root.join("version.py"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("__version__"))
                .and_then(|l| l.split('\'').nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn git_rev() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn new_meta() -> RunMeta {
    RunMeta {
        argv: std::env::args().collect(),
        moirelab_version: env!("CARGO_PKG_VERSION").into(),
        tch_version: "0.26.0".into(),
        libtorch_version: libtorch_version(),
        git_rev: git_rev(),
        hostname: std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string()),
        started: moirelab_train::trainer::now_rfc3339(),
        status: "starting".into(),
        ..Default::default()
    }
}

/// Resolve the config's relative paths (`data.root`, `data.cache-dir`, `model.init`, the
/// extra data sets) against the working folder, so the run folder's config resumes from
/// anywhere and a resume keeps using the cache this run built.
fn absolutize_root(loaded: &mut Loaded) -> Result<()> {
    let cwd = std::env::current_dir()?;
    let absolute = |p: &mut PathBuf| {
        if p.is_relative() {
            let abs = cwd.join(&*p);
            *p = abs.canonicalize().unwrap_or(abs);
        }
    };
    let c = &mut loaded.config;
    absolute(&mut c.data.root);
    c.data.cache_dir.iter_mut().for_each(absolute);
    c.model.init.iter_mut().for_each(absolute);
    c.eval.extra.iter_mut().for_each(|e| absolute(&mut e.root));
    loaded.resolve()
}

/// A flag set by Ctrl-C (SIGINT), and by SIGTERM and SIGHUP (what a batch system such as
/// Slurm sends before it kills a job, and a closed terminal), so that each stops a training
/// after its batch with a checkpoint.
pub fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // A second Ctrl-C while saving falls through to the default handler only if this fails;
    // failing to install the handler is not fatal (the run just cannot be stopped gracefully).
    let _ = ctrlc::set_handler(move || {
        f.store(true, Ordering::SeqCst);
    });
    flag
}

/// Start a run from a config (the `train` subcommand and the demo).
pub fn train_from_config(
    path: &Path,
    sets: &[String],
    name: Option<&str>,
    runs_dir: Option<&Path>,
    stop: &AtomicBool,
) -> Result<(PathBuf, Outcome)> {
    let mut loaded = config::load(path, sets)?;
    let name = name
        .map(str::to_string)
        .or_else(|| loaded.config.name.clone())
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "run".into());
    moirelab_core::run::check_run_name(&name)
        .map_err(|e| anyhow!("{e}; pass a plain folder name with --name"))?;
    let mut reporter = CliReporter::new(loaded.config.train.log_every);
    ensure_data(&loaded, Some(&reporter), Some(stop))?;
    check_stop(stop)?;
    absolutize_root(&mut loaded)?;
    let runs_dir = runs_dir
        .map(Path::to_path_buf)
        .or_else(|| loaded.config.runs_dir.clone())
        .unwrap_or_else(|| PathBuf::from("runs"));
    super::check_out_folder("--runs-dir", &runs_dir)?;
    let setup = train_setup(&loaded.config)?;
    // Extra data sets are opened first: a missing or mismatched one fails before the run
    // folder exists.
    let extra = open_extra(&loaded.config)?;
    check_stop(stop)?;
    check_model(&loaded.config, &extra)?;
    check_stop(stop)?;
    announce_extra(&extra, &reporter);
    let new_root = !runs_dir.exists();
    let meta = new_meta();
    let trainer =
        Trainer::create_stoppable(setup, &loaded.resolved, &runs_dir, &name, meta, Some(stop))
            .inspect_err(|_| {
                // A run that fails before its first step leaves no folder; nor the runs folder
                // made for it (`remove_dir` leaves a folder that is not empty).
                if new_root {
                    let _ = std::fs::remove_dir(&runs_dir);
                }
            })?;
    run_trainer(trainer, &loaded.config, extra, &mut reporter, stop)
}

/// A Ctrl-C during startup (before the run folder exists) ends `train` with exit 130.
fn check_stop(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::SeqCst) {
        return Err(moirelab_train::TrainError::Stopped.into());
    }
    Ok(())
}

/// Open `[eval] extra` for a model of the training data's classes (read from its manifest or
/// folders; no image is decoded for that).
fn open_extra(cfg: &config::Config) -> Result<ExtraEval> {
    if cfg.eval.is_empty() {
        return Ok(ExtraEval::default());
    }
    let cwd = std::env::current_dir()?;
    let (classes, attack) = moirelab_data::peek_classes(&cfg.data, &cwd)?;
    Ok(ExtraEval::open(
        &cfg.eval,
        &cfg.data,
        &cwd,
        &classes,
        attack,
        cfg.train.batch_size,
    )?)
}

/// One line naming the `[eval] extra` data sets, their sizes and which are adapted.
fn announce_extra(extra: &ExtraEval, reporter: &CliReporter) {
    if extra.is_empty() {
        return;
    }
    let adapted = extra.adapted();
    let sizes: Vec<String> = extra
        .sizes()
        .iter()
        .map(|(n, k)| match adapted.iter().find(|(a, _)| a == n) {
            Some((_, how)) => format!(
                "{n} ({k} images, BatchNorm {} re-estimated on them)",
                match how {
                    moirelab_models::BnAdapt::Scale => "variances",
                    moirelab_models::BnAdapt::All => "statistics",
                }
            ),
            None => format!("{n} ({k} images)"),
        })
        .collect();
    reporter.line(&format!(
        "evaluated after every epoch: {}",
        sizes.join(", ")
    ));
}

/// Build the model once, on the CPU and thrown away, so that `gradcam.layers` naming a layer
/// the architecture lacks, a `model.init` that is missing or does not fit, and an extra data
/// set with `adapt-bn` for a model without BatchNorm fail before the run folder exists.
fn check_model(cfg: &config::Config, extra: &ExtraEval) -> Result<()> {
    if cfg.model.init.is_none() && !cam_layers_named(cfg) && extra.adapted().is_empty() {
        return Ok(());
    }
    let (classes, _) = moirelab_data::peek_classes(&cfg.data, &std::env::current_dir()?)?;
    check_model_for(cfg, extra, Some(classes.len()))
}

/// [`check_model`] for a model of `classes` classes; without a count (`--dry-run` before the
/// data set exists) the layers are checked on a two-class model and `model.init` is not.
fn check_model_for(cfg: &config::Config, extra: &ExtraEval, classes: Option<usize>) -> Result<()> {
    let adapted = extra.adapted();
    let mut model = cfg.model.clone();
    model.classes = classes.unwrap_or(2) as i64;
    let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let net = moirelab_models::build(&vs.root(), &model)?;
    if cam_layers_named(cfg) {
        let names: Vec<&str> = cfg.gradcam.layers.iter().map(String::as_str).collect();
        moirelab_models::check_layers(net.as_ref(), &names)?;
    }
    if let (Some(init), Some(_)) = (&cfg.model.init, classes) {
        moirelab_models::load_pretrained(&mut vs, &model, init)?;
    }
    if let Some((name, _)) = adapted.first() {
        if moirelab_models::batch_norm_layers(&vs) == 0 {
            bail!(
                "eval.extra '{name}': adapt-bn needs BatchNorm layers; model '{}' has none \
                 (model.norm = \"{}\")",
                model.arch.as_str(),
                model.norm_in_force()
            );
        }
    }
    Ok(())
}

/// Whether the config names CAM layers that its dumps will use.
fn cam_layers_named(cfg: &config::Config) -> bool {
    let g = &cfg.gradcam;
    g.probes > 0 && !g.methods.is_empty() && !g.layers.is_empty()
}

/// What training's validation tolerated, and the files it left out: one line each.
fn data_warnings(r: &moirelab_data::CheckReport) -> Vec<String> {
    let mut lines = super::warning_lines(r, "data", &[]);
    if !r.skipped.is_empty() {
        const LISTED: usize = 3;
        let more = match r.skipped.len().saturating_sub(LISTED) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        lines.push(format!(
            "warning: data: {} unusable file(s) left out (on-bad-image = \"skip\"): {}{more} \
             (all in the run's meta.json; moirelab data check says why)",
            r.skipped.len(),
            r.skipped[..r.skipped.len().min(LISTED)].join(", ")
        ));
    }
    lines
}

fn run_trainer(
    mut trainer: Trainer,
    cfg: &config::Config,
    mut extra: ExtraEval,
    reporter: &mut CliReporter,
    stop: &AtomicBool,
) -> Result<(PathBuf, Outcome)> {
    let run_dir = trainer.run_dir().to_path_buf();
    for line in data_warnings(trainer.dataset().report()) {
        reporter.line(&line);
    }
    if !extra.is_empty() {
        let train = trainer.dataset().hash_list(&["train", "val"]);
        for (name, split, ds) in extra.datasets() {
            let (_, line) =
                super::training_copies(&format!("eval.extra '{name}'"), ds, split, &train);
            if let Some(line) = line {
                reporter.line(&line);
            }
        }
    }
    let mut cam = GradcamHook::new(&cfg.gradcam, trainer.dataset(), trainer.net(), &run_dir)?;
    let mut report = ReportHook::new(&cfg.report, &run_dir)?;
    let outcome = {
        // Extra evaluation first: the report hook logs the epoch's lines, theirs included.
        let mut hooks: Vec<&mut dyn EpochHook> = vec![&mut extra, &mut cam, &mut report];
        trainer.run(reporter, &mut hooks, stop)
    };
    let outcome = outcome.with_context(|| format!("run {}", run_dir.display()))?;
    Ok((run_dir, outcome))
}

pub fn train(a: TrainArgs) -> Result<ExitCode> {
    let stop = stop_flag();
    let (run_dir, outcome) = match (&a.resume, &a.config) {
        (Some(run), _) => {
            if !a.sets.is_empty() || a.name.is_some() || a.dry_run {
                bail!(
                    "--resume takes the run's own config; --set, --name and --dry-run do not apply"
                );
            }
            resume_run(run, &stop)?
        }
        (None, Some(path)) => {
            if a.dry_run {
                let mut loaded = config::load(path, &a.sets)?;
                // The model and its CAM layers are checked too; the data set may not exist yet.
                let classes =
                    moirelab_data::peek_classes(&loaded.config.data, &std::env::current_dir()?)
                        .ok()
                        .map(|(c, _)| c.len());
                check_model_for(&loaded.config, &ExtraEval::default(), classes)?;
                absolutize_root(&mut loaded)?;
                print!("{}", loaded.resolved);
                return Ok(ExitCode::SUCCESS);
            }
            train_from_config(
                path,
                &a.sets,
                a.name.as_deref(),
                a.runs_dir.as_deref(),
                &stop,
            )?
        }
        (None, None) => bail!("train needs --config FILE or --resume RUN"),
    };
    Ok(report_outcome(&run_dir, outcome))
}

/// What the trainer needs from a config; relative paths resolve against the working folder.
fn train_setup(cfg: &config::Config) -> Result<TrainSetup> {
    Ok(TrainSetup {
        data: cfg.data.clone(),
        model: cfg.model.clone(),
        train: cfg.train.clone(),
        base_dir: std::env::current_dir()?,
    })
}

/// Continue an interrupted run folder with its own config (`train --resume`).
pub fn resume_run(run: &Path, stop: &AtomicBool) -> Result<(PathBuf, Outcome)> {
    let loaded = run_config(run)?;
    let mut reporter = CliReporter::new(loaded.config.train.log_every);
    let setup = train_setup(&loaded.config)?;
    let extra = open_extra(&loaded.config)?;
    let trainer = Trainer::resume(setup, run)?;
    announce_extra(&extra, &reporter);
    reporter.line(&format!(
        "resuming {} after epoch {}",
        run.display(),
        trainer.epochs_done()
    ));
    run_trainer(trainer, &loaded.config, extra, &mut reporter, stop)
}

/// Print how a run ended; the exit code of `train`.
pub fn report_outcome(run_dir: &Path, outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Interrupted { epoch, next_batch } => {
            eprintln!(
                "interrupted in epoch {epoch} after batch {next_batch}; checkpoint saved.\nresume with: moirelab train --resume {}",
                run_dir.display()
            );
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Outcome::Finished(s) | Outcome::EarlyStopped(s) => {
            println!("{}", summary_table(&s));
            println!("run folder: {}", run_dir.display());
            println!(
                "gallery:    {}",
                run_dir.join("report").join("index.html").display()
            );
            ExitCode::SUCCESS
        }
    }
}

/// Val, test and the `[eval] extra` data sets side by side.
pub fn summary_table(s: &RunSummary) -> String {
    let mut cols: Vec<(String, Vec<(String, String)>)> = vec![
        (
            "val".into(),
            s.val.as_ref().map(metrics_rows).unwrap_or_default(),
        ),
        (
            "test".into(),
            s.test.as_ref().map(metrics_rows).unwrap_or_default(),
        ),
    ];
    for (name, m) in &s.extra {
        cols.push((moirelab_core::run::extra_split(name), metrics_rows(m)));
    }
    let keys: Vec<String> = cols
        .iter()
        .map(|c| &c.1)
        .max_by_key(|rows| rows.len())
        .map(|rows| rows.iter().map(|r| r.0.clone()).collect())
        .unwrap_or_default();
    let get = |rows: &[(String, String)], k: &str| {
        rows.iter()
            .find(|r| r.0 == k)
            .map(|r| r.1.clone())
            .unwrap_or_else(|| "-".into())
    };
    let width = |h: &str| (h.len() + 2).max(12);
    let how = s
        .threshold_source
        .map(|src| format!(" {}", src.describe()))
        .unwrap_or_default();
    let mut out = format!(
        "best epoch {} ({} = {:.4}); threshold {:.4}{how}\n{:<24}",
        s.best_epoch, s.best_metric, s.best_value, s.threshold, "metric"
    );
    for (h, _) in &cols {
        out.push_str(&format!("{h:>w$}", w = width(h)));
    }
    out.push('\n');
    for k in keys {
        out.push_str(&format!("{k:<24}"));
        for (h, rows) in &cols {
            out.push_str(&format!("{:>w$}", get(rows, &k), w = width(h)));
        }
        out.push('\n');
    }
    out.trim_end().to_string()
}

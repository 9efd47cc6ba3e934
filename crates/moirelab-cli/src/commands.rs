//! One function per subcommand: parse, call the library, print.

use crate::config::{self, Loaded};
use crate::hooks::{GradcamHook, ReportHook};
use crate::progress::CliReporter;
use crate::{
    CompareArgs, DataCheckArgs, EvalArgs, ExplainArgs, GenDataArgs, ModelSummaryArgs, PredictArgs,
    ReportArgs, SanityArgs, TrainArgs,
};
use anyhow::{anyhow, bail, Context, Result};
use moirelab_core::run::{EpochMetrics, RunMeta, RunSummary, META_JSON};
use moirelab_data::{DataConfig, Dataset};
use moirelab_train::{EpochHook, ExtraEval, Outcome, TrainSetup, Trainer};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, the shell convention).
pub const EXIT_INTERRUPTED: u8 = 130;

pub fn gen_data(a: GenDataArgs) -> Result<ExitCode> {
    let mut cfg = moirelab_synth::GenConfig::preset(&a.preset)?;
    if let Some(c) = a.count {
        cfg.set("count", &c.to_string())?;
    }
    if let Some(s) = a.size {
        cfg.set("size", &s.to_string())?;
    }
    if let Some(s) = a.seed {
        cfg.set("seed", &s.to_string())?;
    }
    for s in &a.sets {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {s}: expected knob=value"))?;
        cfg.set(k.trim(), v.trim())?;
    }
    cfg.twins = a.twins;
    cfg.validate()?;
    if a.preview {
        let out = if a.out.extension().is_some() {
            a.out.clone()
        } else {
            a.out.join("preview.png")
        };
        moirelab_synth::write_preview(&cfg, &out, 16)?;
        println!("preview: {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut donors = Vec::new();
    for d in &a.reuse {
        if !d.is_dir() {
            bail!("--reuse {}: no such folder", d.display());
        }
        match moirelab_synth::Donor::open(&cfg, d)? {
            Some(donor) => donors.push(donor),
            None => eprintln!(
                "note: --reuse {}: not a data set this generator version renders the same way \
                 (version, seed, size or a rendering knob differ); nothing reused from it",
                d.display()
            ),
        }
    }
    let summary = generate_with_progress(&cfg, &a.out, a.force, &donors)?;
    for (split, labels) in &summary.counts {
        let per: Vec<String> = labels.iter().map(|(l, n)| format!("{l}={n}")).collect();
        let aligned = summary.flag_aligned.get(split).copied().unwrap_or(0);
        println!("{split:<6} {}  flag-aligned={aligned}", per.join(" "));
    }
    if summary.twins > 0 {
        println!("flag-swapped twins: {}", summary.twins);
    }
    println!("data set: {} ({} images)", a.out.display(), summary.count);
    Ok(ExitCode::SUCCESS)
}

/// Run the generator with a bar (terminal) or periodic plain lines.
pub fn generate_with_progress(
    cfg: &moirelab_synth::GenConfig,
    out: &Path,
    force: bool,
    donors: &[moirelab_synth::Donor],
) -> Result<moirelab_synth::GenSummary> {
    use std::io::IsTerminal;
    let total = cfg.count as u64;
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "gen-data {bar:30.cyan/blue} {pos}/{len} [{elapsed} < {eta}] {per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let step = (total / 10).max(1);
    let progress = |done: usize, n: usize| match &bar {
        Some(b) => b.set_position(done as u64),
        None => {
            if (done as u64).is_multiple_of(step) || done == n {
                eprintln!("event=gen-data done={done}/{n}");
            }
        }
    };
    let t0 = std::time::Instant::now();
    let summary = moirelab_synth::generate_reusing(cfg, out, force, &progress, donors)
        .map_err(|e| match e {
            // The library's hint names its parameter; the user's knob is the flag.
            moirelab_synth::SynthError::OutputNotEmpty { path } => anyhow!(
                "{}: output folder exists and is not empty (pass --force to replace it)",
                path.display()
            ),
            e => anyhow::Error::new(e),
        })
        .with_context(|| format!("gen-data --out {}", out.display()))?;
    let secs = t0.elapsed().as_secs_f64();
    let rate = summary.count as f64 / secs.max(1e-9);
    match bar {
        Some(b) => {
            b.finish_and_clear();
            eprintln!(
                "gen-data: {} images in {secs:.1} s ({rate:.0} images/s; {} copied from \
                 an existing data set)",
                summary.count, summary.reused
            );
        }
        None => eprintln!(
            "event=gen-data-finished images={} reused={} seconds={secs:.2} \
             images-per-sec={rate:.0}",
            summary.count, summary.reused
        ),
    }
    Ok(summary)
}

pub fn data_check(a: DataCheckArgs) -> Result<ExitCode> {
    let mut cfg = DataConfig::for_root(&a.dir);
    if let Some(m) = a.manifest {
        cfg.manifest = Some(m);
    }
    cfg.follow_links = match a.follow_links.as_str() {
        "inside" => moirelab_data::FollowLinks::Inside,
        "all" => moirelab_data::FollowLinks::All,
        "none" => moirelab_data::FollowLinks::None,
        other => bail!("--follow-links {other}: valid values are inside, all, none"),
    };
    if let Some(n) = a.max_pixels {
        cfg.max_pixels = n;
    }
    cfg.allow_missing_class = a.allow_missing_class;
    let report = moirelab_data::check(&cfg, Path::new("."))?;
    println!("{report}");
    Ok(if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub fn model_summary(a: ModelSummaryArgs) -> Result<ExitCode> {
    let loaded = config::load(&a.config, &a.sets)?;
    let size = a.size.unwrap_or(loaded.config.data.image_size as i64);
    let mut model = loaded.config.model.clone();
    if model.classes < 2 {
        model.classes = 2;
    }
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let net = moirelab_models::build(&vs.root(), &model)?;
    let s = moirelab_models::summary(net.as_ref(), &vs, [model.in_channels, size, size])?;
    println!("{s}");
    Ok(ExitCode::SUCCESS)
}

/// Make sure `data.root` exists, generating it from `data.preset` (and `[data.knobs]`) when it
/// does not.
pub fn ensure_data(loaded: &Loaded, reporter: Option<&CliReporter>) -> Result<()> {
    let root = &loaded.config.data.root;
    let meta_path = root.join(moirelab_core::dataset_format::DATASET_JSON);
    let cfg = loaded.gen_config()?;
    let mut force = false;
    if meta_path.is_file() {
        // A folder this generator made from the same preset, but with another generator
        // version (an upgrade changed the images), is regenerated: a stale preset data set
        // would silently give other numbers than the configs and docs promise. Anything else
        // (your own data, a different preset, gen-data overrides) is left alone, except that
        // a config naming knobs must get a data set made with exactly those knobs.
        let ours = match (&cfg, &loaded.preset) {
            (Some(cfg), Some(p)) => moirelab_core::fsio::read_json::<
                moirelab_core::dataset_format::DatasetMeta,
            >(&meta_path)
            .ok()
            .and_then(|m| m.generator)
            .filter(|g| g.name == moirelab_synth::GENERATOR_NAME && &g.preset == p)
            .map(|g| (g, cfg)),
            _ => None,
        };
        let Some((made, cfg)) = ours else {
            return Ok(());
        };
        if made.version == moirelab_synth::GENERATOR_VERSION {
            if !loaded.knobs.is_empty() && made.knobs != serde_json::to_value(cfg)? {
                bail!(
                    "{}: data.root = {} was generated with other knobs than [data.knobs] ({}); \
                     remove it or choose another data.root",
                    loaded.path.display(),
                    root.display(),
                    loaded.knob_list()
                );
            }
            return Ok(());
        }
        force = true;
    } else if root.is_dir() {
        return Ok(());
    }
    let (Some(preset), Some(cfg)) = (&loaded.preset, cfg) else {
        bail!(
            "{}: data.root = {} does not exist (set data.preset to generate it, or run gen-data)",
            loaded.path.display(),
            root.display()
        );
    };
    let msg = format!(
        "{} data set '{preset}'{} ({} images, {} px) into {}{}",
        if force { "regenerating" } else { "generating" },
        if loaded.knobs.is_empty() {
            String::new()
        } else {
            format!(" with {}", loaded.knob_list())
        },
        cfg.count,
        cfg.size,
        root.display(),
        if force {
            format!(
                " (made by another version than {})",
                moirelab_synth::GENERATOR_VERSION
            )
        } else {
            String::new()
        }
    );
    match reporter {
        Some(r) => r.line(&msg),
        None => eprintln!("{msg}"),
    }
    // Preset data sets live side by side (data/<preset>, data/<preset>_<knob>-<value>): the
    // demo's two presets, or the steps of a swept knob, differ only in rho, so most of the
    // next one's samples are already rendered in the others.
    let donors = sibling_donors(&cfg, root);
    generate_with_progress(&cfg, root, force, &donors)?;
    Ok(())
}

/// Data sets next to `root` that can donate samples to `cfg` (see
/// [`moirelab_synth::Donor`]); unreadable or incompatible folders are skipped.
fn sibling_donors(cfg: &moirelab_synth::GenConfig, root: &Path) -> Vec<moirelab_synth::Donor> {
    let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.as_path() != root)
        .collect();
    dirs.sort();
    dirs.iter()
        .filter_map(|d| moirelab_synth::Donor::open(cfg, d).ok().flatten())
        .collect()
}

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

/// Resolve `data.root` to an absolute path so the run folder's config resumes from anywhere.
fn absolutize_root(loaded: &mut Loaded) -> Result<()> {
    let root = &loaded.config.data.root;
    if root.is_relative() {
        let abs = std::env::current_dir()?.join(root);
        loaded.config.data.root = abs.canonicalize().unwrap_or(abs);
    }
    if let Some(init) = &loaded.config.model.init {
        if init.is_relative() {
            let abs = std::env::current_dir()?.join(init);
            loaded.config.model.init = Some(abs.canonicalize().unwrap_or(abs));
        }
    }
    for e in &mut loaded.config.eval.extra {
        if e.root.is_relative() {
            let abs = std::env::current_dir()?.join(&e.root);
            e.root = abs.canonicalize().unwrap_or(abs);
        }
    }
    loaded.resolve()
}

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
    ensure_data(&loaded, Some(&reporter))?;
    absolutize_root(&mut loaded)?;
    let runs_dir = runs_dir
        .map(Path::to_path_buf)
        .or_else(|| loaded.config.runs_dir.clone())
        .unwrap_or_else(|| PathBuf::from("runs"));
    let setup = train_setup(&loaded.config)?;
    // Extra data sets are opened first: a missing or mismatched one fails before the run
    // folder exists.
    let extra = open_extra(&loaded.config, &reporter)?;
    check_init(&loaded.config)?;
    let trainer = Trainer::create(setup, &loaded.resolved, &runs_dir, &name, new_meta())?;
    run_trainer(trainer, &loaded.config, extra, &mut reporter, stop)
}

/// Open `[eval] extra` for a model of the training data's classes (read from its manifest or
/// folders; no image is decoded for that).
fn open_extra(cfg: &config::Config, reporter: &CliReporter) -> Result<ExtraEval> {
    if cfg.eval.is_empty() {
        return Ok(ExtraEval::default());
    }
    let cwd = std::env::current_dir()?;
    let (classes, attack) = moirelab_data::peek_classes(&cfg.data, &cwd)?;
    let extra = ExtraEval::open(
        &cfg.eval,
        &cfg.data,
        &cwd,
        &classes,
        attack,
        cfg.train.batch_size,
    )?;
    let sizes: Vec<String> = extra
        .sizes()
        .iter()
        .map(|(n, k)| format!("{n} ({k} images)"))
        .collect();
    reporter.line(&format!(
        "evaluated after every epoch: {}",
        sizes.join(", ")
    ));
    Ok(extra)
}

/// Load `model.init` into a throwaway CPU model, so a missing file or a tensor that does not
/// fit fails before the run folder exists.
fn check_init(cfg: &config::Config) -> Result<()> {
    let Some(init) = &cfg.model.init else {
        return Ok(());
    };
    let (classes, _) = moirelab_data::peek_classes(&cfg.data, &std::env::current_dir()?)?;
    let mut model = cfg.model.clone();
    model.classes = classes.len() as i64;
    let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
    moirelab_models::build(&vs.root(), &model)?;
    moirelab_models::load_pretrained(&mut vs, &model, init)?;
    Ok(())
}

/// What training's validation tolerated (duplicates, links, conversions …): one line per
/// kind with its first example, so a run never hides them.
fn data_warnings(r: &moirelab_data::CheckReport) -> Vec<String> {
    let mut by_kind: std::collections::BTreeMap<_, Vec<&moirelab_data::Problem>> =
        std::collections::BTreeMap::new();
    for p in r.warnings() {
        by_kind.entry(p.kind).or_default().push(p);
    }
    by_kind
        .values()
        .map(|ps| {
            let more = match ps.len() {
                1 => String::new(),
                n => format!(" (and {} more like it)", n - 1),
            };
            format!("warning: data: {}{more}", ps[0])
        })
        .collect()
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
    let cfg_path = run.join(moirelab_core::run::CONFIG_TOML);
    if !cfg_path.is_file() {
        bail!("{}: not a run folder (no config.toml)", run.display());
    }
    let loaded = config::load(&cfg_path, &[])?;
    let mut reporter = CliReporter::new(loaded.config.train.log_every);
    let setup = train_setup(&loaded.config)?;
    let extra = open_extra(&loaded.config, &reporter)?;
    let trainer = Trainer::resume(setup, run)?;
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
        rows.push(("APCER".into(), format!("{:.4}", p.apcer)));
        rows.push(("BPCER".into(), format!("{:.4}", p.bpcer)));
        rows.push(("ACER (non-ISO)".into(), format!("{:.4}", p.acer_non_iso)));
        rows.push(("EER".into(), format!("{:.4}", p.eer)));
        rows.push(("AUC".into(), format!("{:.4}", p.auc)));
        rows.push(("BPCER20".into(), fmt_opt(p.bpcer20)));
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
    let mut out = format!(
        "best epoch {} ({} = {:.4}); threshold {:.4} fixed on val\n{:<24}",
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

/// The run's config plus its data set.
fn open_run(run: &Path) -> Result<(Loaded, Dataset)> {
    let cfg_path = run.join(moirelab_core::run::CONFIG_TOML);
    if !cfg_path.is_file() {
        bail!("{}: not a run folder (no config.toml)", run.display());
    }
    let loaded = config::load(&cfg_path, &[])?;
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

/// One data set of `eval`: what was asked for, and its metrics at the run's threshold.
#[derive(serde::Serialize)]
struct EvalRow {
    data: String,
    #[serde(flatten)]
    metrics: EpochMetrics,
}

pub fn eval(a: EvalArgs) -> Result<ExitCode> {
    if !moirelab_data::SPLITS.contains(&a.split.as_str()) {
        bail!(
            "--split {}: valid values are {}",
            a.split,
            moirelab_data::SPLITS.join(", ")
        );
    }
    let cfg_path = a.run.join(moirelab_core::run::CONFIG_TOML);
    if !cfg_path.is_file() {
        bail!("{}: not a run folder (no config.toml)", a.run.display());
    }
    let loaded = config::load(&cfg_path, &[])?;
    let cwd = std::env::current_dir()?;
    let mut sets: Vec<(String, Dataset)> = Vec::new();
    let classes = if a.data.is_empty() {
        let ds = Dataset::open(&loaded.config.data, &cwd)?;
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
        run_classes(&a.run, &loaded)?
    };
    let attack = attack_index(&a.run, &classes, &loaded);
    for d in &a.data {
        if !d.exists() {
            bail!("--data {}: no such folder or manifest file", d.display());
        }
        let spec = moirelab_data::EvalSpec {
            split: a.split.clone(),
            classes: classes.clone(),
            attack_class: classes.get(attack).cloned(),
        };
        let cfg = loaded.config.data.for_eval_source(d);
        let ds = Dataset::open_eval(&cfg, &cwd, &spec)
            .with_context(|| format!("--data {}", d.display()))?;
        sets.push((d.display().to_string(), ds));
    }
    let lr = load_model(&a.run, &loaded, classes.len(), &a.checkpoint)?;
    // The run's own val split fixes its threshold; everything else applies it.
    let threshold = if a.data.is_empty() && a.split == "val" {
        None
    } else {
        lr.threshold
    };
    let mut rows = Vec::with_capacity(sets.len());
    for (name, ds) in &sets {
        let m = moirelab_train::evaluate(
            lr.net.as_ref(),
            ds,
            ds.split(&a.split),
            &moirelab_train::trainer::EvalOptions {
                batch_size: 64,
                device: lr.device,
                epoch: 0,
                split: a.split.clone(),
                threshold,
            },
        )
        .with_context(|| format!("evaluating {name}"))?;
        rows.push(EvalRow {
            data: name.clone(),
            metrics: m,
        });
    }
    if a.json {
        let text = match rows.as_slice() {
            [one] => serde_json::to_string_pretty(one)?,
            _ => serde_json::to_string_pretty(&rows)?,
        };
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    match (threshold, lr.threshold) {
        (Some(t), _) => println!("threshold {t:.4} (fixed on the run's val split)"),
        (None, Some(_)) => println!("threshold: this split's EER point (it is the run's val)"),
        (None, None) => println!("threshold: each data set's EER point (the run has none yet)"),
    }
    if let [one] = rows.as_slice() {
        println!("{:<24}{:>12}", "data", one.data);
        println!("{:<24}{:>12}", "split", a.split);
        for (k, v) in metrics_rows(&one.metrics) {
            println!("{k:<24}{v:>12}");
        }
        for (g, s) in &one.metrics.groups {
            println!("group {g:<18}{:>12.4}  (n={})", s.accuracy, s.n);
        }
    } else {
        print!("{}", eval_table(&rows, &a.split));
    }
    Ok(ExitCode::SUCCESS)
}

/// One row per data set: n, accuracy, balanced accuracy, AUC, EER, APCER, BPCER.
fn eval_table(rows: &[EvalRow], split: &str) -> String {
    let w = rows.iter().map(|r| r.data.len()).max().unwrap_or(0).max(4) + 2;
    let mut out = format!(
        "{:<w$}{:<7}{:>7}{:>10}{:>10}{:>8}{:>8}{:>8}{:>8}\n",
        "data", "split", "n", "accuracy", "bal.acc", "AUC", "EER", "APCER", "BPCER"
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
            "{:<w$}{split:<7}{:>7}{:>10.4}{:>10.4}{:>8}{:>8}{:>8}{:>8}\n",
            r.data,
            m.n,
            m.accuracy,
            m.balanced_accuracy,
            pad(|p| p.auc),
            pad(|p| p.eer),
            pad(|p| p.apcer),
            pad(|p| p.bpcer),
        ));
    }
    out
}

pub fn predict(a: PredictArgs) -> Result<ExitCode> {
    let cfg_path = a.run.join(moirelab_core::run::CONFIG_TOML);
    if !cfg_path.is_file() {
        bail!("{}: not a run folder (no config.toml)", a.run.display());
    }
    let loaded = config::load(&cfg_path, &[])?;
    let classes = run_classes(&a.run, &loaded)?;
    let lr = load_model(&a.run, &loaded, classes.len(), &a.checkpoint)?;
    let attack = attack_index(&a.run, &classes, &loaded);
    let threshold = lr.threshold.unwrap_or(0.5);
    let mut rows = Vec::new();
    for path in &a.images {
        let (input, _) = moirelab_data::load_image_file(path, &loaded.config.data)?;
        let probs = tch::no_grad(|| -> Result<Vec<f64>> {
            let logits = lr.net.forward_t(&input.to_device(lr.device), false)?;
            let p = logits
                .softmax(-1, tch::Kind::Double)
                .to_device(tch::Device::Cpu)
                .flatten(0, -1);
            Ok(Vec::<f64>::try_from(p)?)
        })?;
        let score = probs[attack];
        rows.push(serde_json::json!({
            "image": path.display().to_string(),
            "score": score,
            "decision": if score >= threshold { classes[attack].clone() } else { "bona fide".to_string() },
            "threshold": threshold,
            "probs": classes.iter().cloned().zip(probs.iter().copied()).collect::<std::collections::BTreeMap<_, _>>(),
        }));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<48}{:>10}  decision (threshold {threshold:.4})",
            "image", "P(attack)"
        );
        for r in &rows {
            println!(
                "{:<48}{:>10.4}  {}",
                r["image"].as_str().unwrap_or(""),
                r["score"].as_f64().unwrap_or(f64::NAN),
                r["decision"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
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

pub fn explain(a: ExplainArgs) -> Result<ExitCode> {
    let cfg_path = a.run.join(moirelab_core::run::CONFIG_TOML);
    if !cfg_path.is_file() {
        bail!("{}: not a run folder (no config.toml)", a.run.display());
    }
    let loaded = config::load(&cfg_path, &[])?;
    let classes = run_classes(&a.run, &loaded)?;
    let lr = load_model(&a.run, &loaded, classes.len(), &a.checkpoint)?;
    let methods = a
        .methods
        .iter()
        .map(|m| m.parse::<moirelab_gradcam::Method>())
        .collect::<Result<Vec<_>, _>>()?;
    let target = match &a.class {
        None => None,
        Some(c) => Some(
            classes
                .iter()
                .position(|n| n == c)
                .or_else(|| c.parse::<usize>().ok().filter(|&i| i < classes.len()))
                .ok_or_else(|| {
                    anyhow!(
                        "--class {c}: unknown; valid: {} (or an index)",
                        classes.join(", ")
                    )
                })? as i64,
        ),
    };
    let mut inputs = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for p in &a.images {
        let (t, img) = moirelab_data::load_image_file(p, &loaded.config.data)?;
        // File-name-safe, unique output stem per image.
        let stem: String = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut name = stem.clone();
        let mut k = 2;
        while !used.insert(name.clone()) {
            name = format!("{stem}-{k}");
            k += 1;
        }
        inputs.push(moirelab_gradcam::ExplainInput {
            name,
            image: img,
            input: t.squeeze_dim(0).to_device(lr.device),
            masks: None,
        });
    }
    let g = &loaded.config.gradcam;
    let opts = moirelab_gradcam::ExplainOptions {
        methods,
        layers: a.layers.clone(),
        target,
        classes: classes.clone(),
        colormap: g.colormap.parse()?,
        image_weight: g.image_weight,
        pointing_tolerance: g.pointing_tolerance,
        batch_size: g.batch_size,
    };
    let records = moirelab_gradcam::explain(lr.net.as_ref(), &inputs, &opts, &a.out)?;
    println!(
        "{:<32}{:>10}  {:<10}files",
        "image", "P(attack)", "explained"
    );
    let attack = attack_index(&a.run, &classes, &loaded);
    for r in &records {
        let files: Vec<String> = r.methods.values().map(|m| m.overlay.clone()).collect();
        println!(
            "{:<32}{:>10.4}  {:<10}{}",
            r.name,
            r.probs.get(attack).copied().unwrap_or(f64::NAN),
            classes.get(r.target_class).cloned().unwrap_or_default(),
            files.join(" ")
        );
    }
    println!("written to {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn sanity(a: SanityArgs) -> Result<ExitCode> {
    let (loaded, ds) = open_run(&a.run)?;
    let lr = load_model(&a.run, &loaded, ds.classes().len(), "best")?;
    let method: moirelab_gradcam::Method = a.method.parse()?;
    // The gallery's rule and seed: with --images equal to gradcam.probes these are the
    // gallery's probes.
    let chosen = crate::hooks::choose_probes(&ds, a.images, loaded.config.gradcam.seed)?;
    let Some(split) = crate::hooks::probe_split(&ds).filter(|_| !chosen.is_empty()) else {
        bail!("{}: the data set has no images", a.run.display());
    };
    let xs = ds.eval_batch(&chosen)?.to_device(lr.device);
    let out = a.out.clone().unwrap_or_else(|| a.run.join("sanity"));
    let layers: Vec<String> = if loaded.config.gradcam.layers.is_empty() {
        vec![lr.net.default_cam_layer()]
    } else {
        loaded.config.gradcam.layers.clone()
    };
    let layer_refs: Vec<&str> = layers.iter().map(String::as_str).collect();
    let steps = moirelab_gradcam::sanity::cascading_randomization(
        &lr.vs,
        lr.net.as_ref(),
        &xs,
        &moirelab_gradcam::Targets::Pred,
        &layer_refs,
        method,
        loaded.config.train.seed,
    )?;
    println!(
        "cascading parameter randomisation (Adebayo et al. 2018), {method}, {} images from {split}",
        chosen.len()
    );
    println!(
        "{:<6}{:<36}{:>12}{:>10}",
        "step", "re-initialised", "spearman", "std"
    );
    for s in &steps {
        println!(
            "{:<6}{:<36}{:>12.4}{:>10.4}",
            s.step, s.group, s.mean, s.std
        );
    }
    let mut json = serde_json::json!({
        "method": method.to_string(),
        "layers": layers,
        "images": chosen.iter().map(|&i| ds.record(i).path.clone()).collect::<Vec<_>>(),
        "randomization": steps.iter().map(|s| serde_json::json!({
            "step": s.step, "group": s.group, "mean": s.mean, "std": s.std, "per_image": s.per_image,
        })).collect::<Vec<_>>(),
    });
    if a.faithfulness {
        let batch = moirelab_gradcam::compute(
            lr.net.as_ref(),
            &xs,
            &moirelab_gradcam::Targets::Pred,
            &layer_refs,
            &[method],
        )?;
        let map = batch
            .maps
            .first()
            .ok_or_else(|| anyhow!("no map computed for {method}"))?;
        let f = moirelab_gradcam::sanity::faithfulness(
            lr.net.as_ref(),
            &xs,
            map,
            &batch.targets,
            20,
            loaded.config.gradcam.batch_size,
        )?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        println!(
            "deletion AUC (lower is better)   {:.4}",
            mean(&f.deletion_auc)
        );
        println!(
            "insertion AUC (higher is better) {:.4}",
            mean(&f.insertion_auc)
        );
        println!("average drop %                   {:.2}", f.average_drop);
        println!(
            "increase in confidence %         {:.2}",
            f.increase_in_confidence
        );
        json["faithfulness"] = serde_json::json!({
            "deletion_auc": f.deletion_auc, "insertion_auc": f.insertion_auc,
            "deletion": f.deletion, "insertion": f.insertion,
            "average_drop": f.average_drop, "increase_in_confidence": f.increase_in_confidence,
        });
    }
    let path = out.join("sanity.json");
    moirelab_core::fsio::write_json_atomic(&path, &json)?;
    let cascade: Vec<(usize, f64, f64)> = steps.iter().map(|s| (s.step, s.mean, s.std)).collect();
    let chart = moirelab_report::plots::sanity_chart(&method.to_string(), &cascade);
    let plots = moirelab_report::plots::write_chart(&out, &chart)?;
    println!("written to {}", path.display());
    for p in plots {
        println!("plot:      {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn report(a: ReportArgs) -> Result<ExitCode> {
    if !a.run.join(moirelab_core::run::CONFIG_TOML).is_file() {
        bail!("{}: not a run folder (no config.toml)", a.run.display());
    }
    let page = moirelab_report::write_run_report_with(&a.run, a.standalone)?;
    println!("{}", page.display());
    Ok(ExitCode::SUCCESS)
}

pub fn compare(a: CompareArgs) -> Result<ExitCode> {
    for r in &a.runs {
        if !r.join(moirelab_core::run::CONFIG_TOML).is_file() {
            bail!("{}: not a run folder (no config.toml)", r.display());
        }
    }
    let page = moirelab_report::write_compare_with(&a.runs, &a.out, a.standalone)?;
    println!("{}", page.display());
    Ok(ExitCode::SUCCESS)
}

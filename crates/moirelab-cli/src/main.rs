//! `moirelab`: the command line. Argument parsing, config loading and terminal output; the work
//! itself lives in the library crates (ripgrep-style: the binary is glue).

// The binary owns the terminal: printing is its job (the lints guard the library crates).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod commands;
mod config;
mod demo;
mod hooks;
mod progress;
mod sweep;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "moirelab",
    version,
    about = "Train and debug screen-recapture detectors for ID documents, with per-epoch Grad-CAM galleries",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a synthetic recapture data set (ID cards, screen artifacts, masks)
    GenData(GenDataArgs),
    /// Inspect a data set on disk
    #[command(subcommand)]
    Data(DataCmd),
    /// Inspect model architectures
    #[command(subcommand)]
    Model(ModelCmd),
    /// Train a model from a config file (or resume an interrupted run)
    Train(TrainArgs),
    /// Evaluate a run's best checkpoint on a split of its data or of other data sets (PAD
    /// metrics at the run's threshold)
    Eval(EvalArgs),
    /// Probability of "screen recording" for image files, with the decision at the run's threshold
    Predict(PredictArgs),
    /// Grad-CAM (and friends) for arbitrary images with a run's model
    Explain(ExplainArgs),
    /// Sanity checks of the maps: cascading parameter randomisation, deletion/insertion AUC
    Sanity(SanityArgs),
    /// (Re)write a run's offline HTML gallery, plots and GIFs
    Report(ReportArgs),
    /// Compare runs side by side in one offline HTML page
    Compare(CompareArgs),
    /// The flag-shortcut story end to end: data, a shallow and a fixed run, reports, verdict
    Demo(DemoArgs),
    /// Train one run per cell of a parameter grid; one table, page and charts over all cells
    Sweep(SweepArgs),
}

#[derive(Args, Debug)]
pub struct GenDataArgs {
    /// Generator preset (clean, flag-shortcut, face-shortcut, obvious, tiny)
    #[arg(long)]
    pub preset: String,
    /// Output folder (must be empty or absent unless --force)
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub count: Option<usize>,
    /// Output size in pixels (square)
    #[arg(long)]
    pub size: Option<u32>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Knob overrides, e.g. --set rho-flag=0.9 --set artifact-gain=2
    #[arg(long = "set", value_name = "KNOB=VALUE")]
    pub sets: Vec<String>,
    /// Also write flag-swapped counterfactual twins
    #[arg(long)]
    pub twins: bool,
    /// Replace a non-empty output folder
    #[arg(long)]
    pub force: bool,
    /// Copy the samples an existing data set already holds (same generator version, seed,
    /// size and rendering knobs: e.g. the same preset at another rho) instead of rendering
    /// them; the result is byte-identical. Repeatable
    #[arg(long, value_name = "DIR")]
    pub reuse: Vec<PathBuf>,
    /// Only write a contact sheet PNG (to --out) with samples of both classes and their masks
    #[arg(long)]
    pub preview: bool,
}

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Open every file of a data set and report counts and problems (exit 1 on errors)
    Check(DataCheckArgs),
    /// The data set a config trains on: its root, whether it exists yet, and the generator's
    /// preset, count, photo sides and knobs
    Plan(DataPlanArgs),
}

#[derive(Args, Debug)]
pub struct DataPlanArgs {
    /// Config file (TOML)
    #[arg(long)]
    pub config: PathBuf,
    /// Override config values, as train's --set does
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub sets: Vec<String>,
    /// One JSON object (for scripts)
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DataCheckArgs {
    /// Data-set root (moirelab format, ImageFolder, or with --manifest a CSV/JSONL manifest)
    pub dir: PathBuf,
    /// CSV or JSONL manifest (relative to DIR or absolute)
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Symbolic links to follow: inside (the data root), all, none (like data.follow-links)
    #[arg(long, default_value = "inside")]
    pub follow_links: String,
    /// Images declaring more pixels are refused before decoding (like data.max-pixels)
    #[arg(long)]
    pub max_pixels: Option<u64>,
    /// A val or test split missing a class is a warning, not an error
    #[arg(long)]
    pub allow_missing_class: bool,
    /// Check it as `eval --data` opens it: only the test split (or every image of a folder
    /// without splits) is read, one class is enough, and classes without training images and
    /// class imbalance are not reported
    #[arg(long)]
    pub eval: bool,
}

#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Per-layer output shape, parameters, FLOPs, receptive field and stride
    Summary(ModelSummaryArgs),
}

#[derive(Args, Debug)]
pub struct ModelSummaryArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// Input size (default: data.image-size)
    #[arg(long)]
    pub size: Option<i64>,
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Config file (TOML)
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Resume an interrupted run folder
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Run name (default: config `name`, else the config file's stem)
    #[arg(long)]
    pub name: Option<String>,
    /// Override config values, e.g. --set train.lr=3e-4 --set model.arch=vgg
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub sets: Vec<String>,
    /// Print the resolved config and exit
    #[arg(long)]
    pub dry_run: bool,
    /// Folder for run folders (default: config `runs-dir`, else ./runs)
    #[arg(long)]
    pub runs_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[arg(long)]
    pub run: PathBuf,
    /// Another data set (same classes) instead of the run's: a folder in any layout
    /// (ImageFolder, moirelab, or holding only the split asked for, or no splits at all: then
    /// every image is evaluated) or a CSV/JSONL manifest file. Repeat for one table
    #[arg(long, value_name = "DIR")]
    pub data: Vec<PathBuf>,
    /// train, val or test
    #[arg(long, default_value = "test")]
    pub split: String,
    /// `best` or `last` (with `train.ema-decay`, `best` holds the averaged weights and `last`
    /// the last step's own)
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Drop files that cannot be used (corrupt, empty, over `data.max-pixels`) instead of
    /// refusing the data set; how many were dropped is printed with the metrics
    #[arg(long)]
    pub skip_bad: bool,
    /// Also score each data set with its images perturbed, one row per perturbation, at the
    /// same threshold: blur=SIGMA_PX, noise=SIGMA_LEVELS, jpeg=QUALITY, jpeg420=QUALITY
    /// (chroma subsampled 4:2:0), brightness=LEVELS,
    /// gamma=EXPONENT (applied to the model's input view). Repeat for more rows
    #[arg(long, value_name = "KIND=VALUE")]
    pub perturb: Vec<String>,
    /// Also break each row's errors down by a value of every image: a dotted path into its
    /// manifest params (screen.layout, camera.sensor-scale: the generator records its draws
    /// there) or groups.<attribute>. Numbers are binned at their quartiles, or at the edges
    /// given as KEY=E1,E2,...; two to four distinct numbers (size) get a row each. Numeric
    /// paths combine with +, * and /; a name holding one of .+*/= goes in double quotes
    /// (exif."f/number"). Repeat for more tables
    #[arg(long, value_name = "KEY[=EDGES]")]
    pub by: Vec<String>,
    /// Decide at this threshold (the attack score from which an image is called a screen)
    /// instead of the run's
    #[arg(long, value_name = "T")]
    pub threshold: Option<f64>,
    /// Fix the threshold on the bona fide images of this data set (any layout; e.g. a folder
    /// of your own genuine photos) so that at most --bpcer of them are rejected, and decide
    /// every row at it
    #[arg(long, value_name = "DIR")]
    pub calibrate: Option<PathBuf>,
    /// The share of --calibrate's bona fide images that may be rejected [default: 0.05]
    #[arg(long, value_name = "RATE")]
    pub bpcer: Option<f64>,
    /// Re-estimate the model's BatchNorm statistics on each row's own images (unlabelled)
    /// before scoring them: test-time adaptation to another camera or card population,
    /// decided at the run's threshold. `scale` (the default) re-estimates the variances and
    /// keeps the trained means, `all` both. Every image's score then depends on the rest of
    /// its set
    #[arg(long, value_name = "WHICH", num_args = 0..=1, default_missing_value = "scale")]
    pub adapt_bn: Option<String>,
    /// Also write every evaluated image's attack score to FILE, one line per image and row
    /// (data set, perturbation, path, label, score, threshold, decision, correct): CSV for a
    /// .csv name, JSON lines for .jsonl
    #[arg(long, value_name = "FILE")]
    pub scores: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[arg(long)]
    pub run: PathBuf,
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// `best` or `last` (see `eval --help`)
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[arg(long)]
    pub run: PathBuf,
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// CAM method(s): gradcam, gradcam++, hirescam, xgradcam, layercam, eigencam, scorecam
    #[arg(long = "method", default_value = "gradcam")]
    pub methods: Vec<String>,
    /// Layer name(s) (default: the model's default CAM layer)
    #[arg(long = "layer")]
    pub layers: Vec<String>,
    /// Explain this class (name or index) instead of the predicted one
    #[arg(long)]
    pub class: Option<String>,
    #[arg(long, default_value = "explain")]
    pub out: PathBuf,
    /// `best` or `last` (see `eval --help`)
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
}

#[derive(Args, Debug)]
pub struct SanityArgs {
    #[arg(long)]
    pub run: PathBuf,
    /// Number of images from the test split
    #[arg(long, default_value_t = 16)]
    pub images: usize,
    #[arg(long, default_value = "gradcam")]
    pub method: String,
    /// Also compute deletion/insertion AUC and average drop/increase
    #[arg(long)]
    pub faithfulness: bool,
    /// Output folder (default: <run>/sanity)
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    pub run: PathBuf,
    /// Copy every image the page shows into the report folder, so it opens on its own
    #[arg(long)]
    pub standalone: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Two or more run folders (one run's page is `moirelab report RUN`)
    #[arg(required = true, num_args = 1..)]
    pub runs: Vec<PathBuf>,
    #[arg(long, default_value = "runs/compare")]
    pub out: PathBuf,
    /// Copy every image the page shows into the output folder, so it opens on its own
    #[arg(long)]
    pub standalone: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder for the demo's runs and compare page
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Config of the shortcut-taking run
    #[arg(long, default_value = "configs/shallow.toml")]
    pub shallow: PathBuf,
    /// Config of the fixed run (debiased data: the baseline of both stories)
    #[arg(long, default_value = "configs/fixed.toml")]
    pub fixed: PathBuf,
    /// Config of the face-shortcut run
    #[arg(long, default_value = "configs/face.toml")]
    pub face: PathBuf,
    /// Tell the flag story only (skip the face-shortcut run)
    #[arg(long)]
    pub no_face: bool,
    /// Extra overrides applied to both runs (e.g. train.epochs=2 for a smoke test)
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Base config (TOML); a cell is this config plus --set plus its grid values
    #[arg(long, required_unless_present_any = ["collect", "cell"])]
    pub config: Option<PathBuf>,
    /// A swept key and its values, e.g. --grid data.knobs.rho-flag=0.5,0.75,0.95 (repeat for
    /// more keys: the cells are the Cartesian product)
    #[arg(long = "grid", value_name = "SECTION.KEY=V1,V2,...")]
    pub grids: Vec<String>,
    /// Overrides of every cell, as for train: --set train.epochs=10
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub sets: Vec<String>,
    /// Sweep folder (sweep.json, runs/<cell>, logs/, table.csv, index.html); rerunning the
    /// same sweep into it continues where it stopped
    #[arg(long, required_unless_present = "collect")]
    pub out: Option<PathBuf>,
    /// Cells trained at the same time (child processes)
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Allow grids of more than 1000 cells
    #[arg(long)]
    pub yes: bool,
    /// Write a job script into --out instead of training: slurm (one array task per cell)
    #[arg(long, value_parser = ["slurm"])]
    pub emit: Option<String>,
    /// Rebuild a sweep folder's table, page, charts and compare pages from its runs
    #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "grids", "sets", "out", "emit", "cell"])]
    pub collect: Option<PathBuf>,
    /// Train cell INDEX of the sweep in --out (what each local job and Slurm task runs)
    #[arg(long, value_name = "INDEX", requires = "out", conflicts_with_all = ["config", "grids", "sets", "emit"])]
    pub cell: Option<usize>,
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if e.use_stderr()
                && e.kind() != clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            eprintln!("{}", usage_error(&e.render().to_string()));
            return ExitCode::from(2);
        }
        // --help and --version (exit 0), and the help of a bare `moirelab` or `moirelab data`
        // (exit 2): clap prints them.
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::GenData(a) => commands::gen_data(a),
        Command::Data(DataCmd::Check(a)) => commands::data_check(a),
        Command::Data(DataCmd::Plan(a)) => commands::data_plan(a),
        Command::Model(ModelCmd::Summary(a)) => commands::model_summary(a),
        Command::Train(a) => commands::train(a),
        Command::Eval(a) => commands::eval(a),
        Command::Predict(a) => commands::predict(a),
        Command::Explain(a) => commands::explain(a),
        Command::Sanity(a) => commands::sanity(a),
        Command::Report(a) => commands::report(a),
        Command::Compare(a) => commands::compare(a),
        Command::Demo(a) => demo::run(a),
        Command::Sweep(a) => sweep::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            if stopped(&e) {
                ExitCode::from(commands::EXIT_INTERRUPTED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Whether `e` is a Ctrl-C that stopped a run while it started (no run folder), a data set's
/// generation (nothing was written) or the wait for another writer of it: exit 130 as for any
/// other interruption, so a script or the sweep tells it from a failure.
fn stopped(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<moirelab_train::TrainError>(),
            Some(moirelab_train::TrainError::Stopped)
        ) || matches!(
            c.downcast_ref::<moirelab_synth::SynthError>(),
            Some(
                moirelab_synth::SynthError::Stopped { .. }
                    | moirelab_synth::SynthError::StoppedWaiting { .. }
            )
        )
    })
}

/// A usage error of clap's (several lines: the error, a tip, the usage) as one line: the error
/// and its tip, and where to read the usage. Exit status 2, as clap's own.
fn usage_error(text: &str) -> String {
    let (message, usage) = text.split_once("\n\nUsage: ").unwrap_or((text, ""));
    let mut out = String::new();
    for line in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            // A line ending in ':' introduces the next one (a list of missing arguments).
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    let command: Vec<&str> = usage
        .split_whitespace()
        .take_while(|w| !w.starts_with(['[', '-', '<']))
        .collect();
    if !command.is_empty() {
        out.push_str(&format!(" (see '{} --help')", command.join(" ")));
    }
    out
}

/// Die quietly, as other command-line tools do, when stdout is a pipe whose reader has gone
/// (`moirelab eval ... | head -1`). Rust ignores SIGPIPE, so the next `println!` would panic
/// with a backtrace instead. The one `unsafe` of the workspace: std has no safe way to reset a
/// signal's disposition.
#[allow(unsafe_code)]
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// One line, the whole chain, no backtrace, and no cause twice: error types that print
/// their source (`"{path}: {source}"`) and also expose it as `source()` would otherwise
/// repeat the OS error. A libtorch message that reaches here stops before its C++ stack
/// frames ("Exception raised from …"), thousands of characters that mean nothing to a user.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        let s = moirelab_models::without_torch_frames(&s);
        if s.is_empty() || out.contains(s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(s);
    }
    out.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_stops_a_libtorch_message_before_its_stack_frames() {
        let torch = "Internal torch error: fc.weight: The size of tensor a (16) must match \
                     the size of tensor b (17)\nException raised from infer_size_impl at \
                     ExpandUtils.cpp:35 (most recent call first):\nframe #0: c10::Error::Error";
        let e = anyhow::anyhow!("{torch}").context("runs/r/checkpoints/best.safetensors");
        assert_eq!(
            super::one_line(&e),
            "runs/r/checkpoints/best.safetensors: Internal torch error: fc.weight: The size of \
             tensor a (16) must match the size of tensor b (17)"
        );
        // Other multi-line messages keep every line, joined.
        let e = anyhow::anyhow!("TOML parse error at line 1\n  |\n1 | x =");
        assert_eq!(
            super::one_line(&e),
            "TOML parse error at line 1   | 1 | x ="
        );
    }
}

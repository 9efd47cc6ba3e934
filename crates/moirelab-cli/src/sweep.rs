//! `moirelab sweep`: one training run per cell of a parameter grid (the Cartesian product of
//! the `--grid` values), each cell being the base config plus `--set` plus its grid values as
//! `train --set` overrides, then one table, page and set of charts over all cells.
//!
//! The sweep folder holds `sweep.json` (the plan: grid, base config hash, one record per cell
//! with its run folder, status and command), `base.toml` (the copy every cell trains from),
//! `runs/<cell>/` (ordinary run folders), `logs/<cell>.log`, `table.csv`, `index.html`,
//! `plots/` and `compare/<line>/`. Every cell runs as `moirelab sweep --cell I --out DIR`:
//! the local runner starts that command as a child process (`--jobs` at a time) and a Slurm
//! array task (`--emit slurm`) runs the same command, so both train a cell the same way. A
//! cell command skips a finished cell, resumes an interrupted one from its checkpoint and
//! restarts one that never saved a checkpoint, so rerunning a sweep continues it; only
//! finished cells (summary.json and status `finished`) get numbers in the table.

use crate::commands;
use crate::config;
use crate::demo;
use crate::SweepArgs;
use anyhow::{anyhow, bail, Context, Result};
use moirelab_core::fsio;
use moirelab_core::run as runfmt;
use moirelab_report::sweep::{short_key, SweepPage, SweepRow};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const SWEEP_JSON: &str = "sweep.json";
pub const BASE_TOML: &str = "base.toml";
pub const SLURM_SCRIPT: &str = "sweep.sbatch";
/// Larger grids need `--yes`.
pub const MAX_CELLS: usize = 1000;
const FORMAT_VERSION: u32 = 1;

/// One swept key and its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// One cell of `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    pub index: usize,
    pub name: String,
    /// One value per axis, in grid order.
    pub values: Vec<String>,
    /// Run folder, relative to the sweep folder.
    pub run: PathBuf,
    /// `pending`, `running`, `finished`, `unfinished` (resumable), `incomplete` (no
    /// checkpoint; restarts), `failed`: as of the last time this sweep ran or was collected.
    pub status: String,
    /// What trains this cell: the local runner's child process and the Slurm task.
    pub command: Vec<String>,
}

/// `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepFile {
    pub format_version: u32,
    /// The `--config` the sweep was planned from (cells train from its copy `base.toml`).
    pub base_config: PathBuf,
    /// SHA-256 of the base config's text.
    pub base_sha256: String,
    /// `--set` overrides of every cell.
    pub sets: Vec<String>,
    pub grid: Vec<Axis>,
    /// Working directory of the cells: relative paths in the config resolve against it.
    pub workdir: PathBuf,
    pub cells: Vec<CellRecord>,
}

impl SweepFile {
    /// `--set` overrides of one cell: the sweep's, then the cell's grid values.
    pub fn cell_sets(&self, cell: &CellRecord) -> Vec<String> {
        let mut sets = self.sets.clone();
        sets.extend(
            self.grid
                .iter()
                .zip(&cell.values)
                .map(|(a, v)| format!("{}={v}", a.key)),
        );
        sets
    }
}

/// Split `v1,v2,...` at top-level commas (not inside `[...]`, `{...}` or quotes), so TOML
/// arrays and strings with commas are single values.
fn split_values(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut cur) = (0i32, None::<char>, String::new());
    for c in raw.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out
}

/// Parse one `--grid section.key=v1,v2,...`.
pub fn parse_axis(spec: &str) -> Result<Axis> {
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| anyhow!("--grid {spec}: expected section.key=value1,value2,..."))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|p| p.trim().is_empty()) {
        bail!("--grid {spec}: expected section.key=value1,value2,...");
    }
    let values = split_values(raw);
    if values.iter().all(String::is_empty) {
        bail!("--grid {key}: no values (expected {key}=value1,value2,...)");
    }
    if values.iter().any(String::is_empty) {
        bail!("--grid {key}={raw}: an empty value");
    }
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            bail!("--grid {key}: value {v} is given twice");
        }
    }
    Ok(Axis {
        key: key.to_string(),
        values,
    })
}

/// Parse all `--grid` flags; checks that there is at least one, keys are distinct and not
/// also fixed by `--set`, and the number of cells.
pub fn parse_grid(grids: &[String], sets: &[String], yes: bool) -> Result<Vec<Axis>> {
    if grids.is_empty() {
        bail!("sweep needs at least one --grid section.key=value1,value2,...");
    }
    let axes = grids
        .iter()
        .map(|g| parse_axis(g))
        .collect::<Result<Vec<_>>>()?;
    for (i, a) in axes.iter().enumerate() {
        if axes[..i].iter().any(|b| b.key == a.key) {
            bail!("--grid {}: the key is swept twice", a.key);
        }
        let fixed = sets
            .iter()
            .any(|s| s.split_once('=').is_some_and(|(k, _)| k.trim() == a.key));
        if fixed {
            bail!("--grid {0}: the key is also fixed by --set {0}=...", a.key);
        }
    }
    let n = axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.values.len()));
    match n {
        Some(n) if n <= MAX_CELLS || yes => Ok(axes),
        Some(n) => {
            bail!("the grid has {n} cells (more than {MAX_CELLS}); pass --yes to run them all")
        }
        None => bail!("the grid has too many cells to count"),
    }
}

/// Value combinations of the grid, the first axis varying slowest.
pub fn combinations(axes: &[Axis]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for a in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                a.values.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push(v.clone());
                    c
                })
            })
            .collect();
    }
    out
}

/// Name of a cell's run folder: `003_rho-flag=0.75_arch=vgg` (the last component of each key
/// unless two keys share it, values reduced to file-name-safe characters).
pub fn cell_name(index: usize, count: usize, axes: &[Axis], values: &[String]) -> String {
    let width = (count.saturating_sub(1)).to_string().len().max(2);
    let mut name = format!("{index:0width$}");
    for (a, v) in axes.iter().zip(values) {
        let short = short_key(&a.key);
        let label = if axes.iter().filter(|b| short_key(&b.key) == short).count() > 1 {
            a.key.replace('.', "-")
        } else {
            short.to_string()
        };
        let safe: String = config::file_safe(v, ".+-").chars().take(32).collect();
        name.push_str(&format!("_{label}={safe}"));
    }
    name
}

/// The command that trains cell `index` of the sweep in `out` (absolute paths).
pub fn cell_command(exe: &Path, out: &Path, index: usize) -> Vec<String> {
    vec![
        exe.display().to_string(),
        "sweep".into(),
        "--cell".into(),
        index.to_string(),
        "--out".into(),
        out.display().to_string(),
    ]
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A checked plan: the sweep file to write and every cell's loaded config.
#[derive(Debug)]
pub struct Plan {
    pub file: SweepFile,
    /// The base config's text (written to `base.toml`).
    pub base_text: String,
    pub cells: Vec<config::Loaded>,
}

/// Check the grid and every cell's config (unknown keys and bad values are errors naming the
/// `--grid` or `--set` flag) and name the cells. `out` and `exe` must be absolute.
pub fn make_plan(
    config_path: &Path,
    grids: &[String],
    sets: &[String],
    yes: bool,
    out: &Path,
    exe: &Path,
) -> Result<Plan> {
    let axes = parse_grid(grids, sets, yes)?;
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("config file {}", config_path.display()))?;
    config::load_str(config_path, &text, sets)?;
    for a in &axes {
        for v in &a.values {
            let mut s = sets.to_vec();
            s.push(format!("{}={v}", a.key));
            config::load_str(config_path, &text, &s)
                .map_err(|e| anyhow!("--grid {}={v}: {e:#}", a.key))?;
        }
    }
    let combos = combinations(&axes);
    let count = combos.len();
    let mut file = SweepFile {
        format_version: FORMAT_VERSION,
        base_config: config_path.to_path_buf(),
        base_sha256: sha256_hex(text.as_bytes()),
        sets: sets.to_vec(),
        grid: axes,
        workdir: std::env::current_dir()?,
        cells: Vec::new(),
    };
    let mut loaded = Vec::new();
    for (index, values) in combos.into_iter().enumerate() {
        let name = cell_name(index, count, &file.grid, &values);
        let cell = CellRecord {
            index,
            run: Path::new("runs").join(&name),
            name,
            values,
            status: "pending".into(),
            command: cell_command(exe, out, index),
        };
        let l = config::load_str(config_path, &text, &file.cell_sets(&cell))
            .with_context(|| format!("cell {}", cell.name))?;
        loaded.push(l);
        file.cells.push(cell);
    }
    Ok(Plan {
        file,
        base_text: text,
        cells: loaded,
    })
}

/// Where a cell's run folder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellState {
    /// No run folder.
    Pending,
    /// `summary.json` present and `meta.json` status `finished`.
    Finished,
    /// A checkpoint to resume from.
    Resumable,
    /// A folder without a checkpoint (stopped before the first save): restarted.
    Incomplete,
}

impl CellState {
    pub fn label(self) -> &'static str {
        match self {
            CellState::Pending => "pending",
            CellState::Finished => "finished",
            CellState::Resumable => "unfinished",
            CellState::Incomplete => "incomplete",
        }
    }
}

pub fn cell_state(run_dir: &Path) -> CellState {
    if !run_dir.exists() {
        return CellState::Pending;
    }
    let finished = run_dir.join(runfmt::SUMMARY_JSON).is_file()
        && fsio::read_json::<runfmt::RunMeta>(&run_dir.join(runfmt::META_JSON))
            .is_ok_and(|m| m.status == "finished");
    if finished {
        CellState::Finished
    } else if run_dir.join("checkpoints").join("state.json").is_file() {
        CellState::Resumable
    } else {
        CellState::Incomplete
    }
}

fn read_sweep(out: &Path) -> Result<SweepFile> {
    let path = out.join(SWEEP_JSON);
    if !path.is_file() {
        bail!("{}: not a sweep folder (no {SWEEP_JSON})", out.display());
    }
    let file: SweepFile = fsio::read_json(&path)?;
    if file.format_version != FORMAT_VERSION {
        bail!(
            "{}: format version {} (this moirelab reads {FORMAT_VERSION})",
            path.display(),
            file.format_version
        );
    }
    Ok(file)
}

/// Create the sweep folder, or check that an existing one holds the same sweep (same base
/// config text, `--set` and grid) and keep its working directory; writes `base.toml` and
/// `sweep.json` with every cell's current state.
fn prepare_folder(out: &Path, plan: &mut Plan) -> Result<()> {
    if out.join(SWEEP_JSON).is_file() {
        let old = read_sweep(out)?;
        if old.base_sha256 != plan.file.base_sha256
            || old.sets != plan.file.sets
            || old.grid != plan.file.grid
        {
            bail!(
                "{}: holds another sweep (its base config, --set or --grid differ); use another --out",
                out.display()
            );
        }
        plan.file.workdir = old.workdir;
    } else if out.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{}: exists and is not a sweep folder (no {SWEEP_JSON}); use another --out",
            out.display()
        );
    }
    std::fs::create_dir_all(out.join("logs"))
        .with_context(|| format!("create {}", out.join("logs").display()))?;
    fsio::write_atomic(&out.join(BASE_TOML), plan.base_text.as_bytes())?;
    for c in &mut plan.file.cells {
        c.status = cell_state(&out.join(&c.run)).label().into();
    }
    fsio::write_json_atomic(&out.join(SWEEP_JSON), &plan.file)?;
    Ok(())
}

/// Generate every preset data set the cells use, once each, before any cell starts (cells
/// running in parallel must not generate the same folder at the same time).
fn prepare_data(cells: &[config::Loaded]) -> Result<()> {
    let mut seen: Vec<&Path> = Vec::new();
    for l in cells {
        let root = l.config.data.root.as_path();
        if !seen.contains(&root) {
            seen.push(root);
            commands::ensure_data(l, None)?;
        }
    }
    Ok(())
}

/// `moirelab sweep`.
pub fn run(a: SweepArgs) -> Result<ExitCode> {
    if let Some(dir) = &a.collect {
        let mut file = read_sweep(dir)?;
        let page = collect(dir, &mut file, &[], true)?;
        println!("{}", page.display());
        return Ok(ExitCode::SUCCESS);
    }
    let Some(out) = &a.out else {
        bail!("sweep needs --out DIR");
    };
    let out = absolute(out)?;
    if let Some(index) = a.cell {
        return run_cell(&out, index);
    }
    let Some(config_path) = &a.config else {
        bail!("sweep needs --config FILE");
    };
    if a.jobs == 0 {
        bail!("--jobs 0: at least one cell must run at a time");
    }
    let exe = std::env::current_exe().context("locate the moirelab binary")?;
    let mut plan = make_plan(config_path, &a.grids, &a.sets, a.yes, &out, &exe)?;
    prepare_folder(&out, &mut plan)?;
    std::env::set_current_dir(&plan.file.workdir)
        .with_context(|| format!("working directory {}", plan.file.workdir.display()))?;
    prepare_data(&plan.cells)?;
    let mut file = plan.file;
    if a.emit.is_some() {
        let path = out.join(SLURM_SCRIPT);
        fsio::write_atomic(&path, slurm_script(&file, &out, &exe).as_bytes())?;
        println!("{} cells; job script: {}", file.cells.len(), path.display());
        println!(
            "submit:  jobid=$(sbatch --parsable {})",
            shell_quote(&path.display().to_string())
        );
        println!(
            "table:   sbatch --dependency=afterany:$jobid --wrap {}",
            shell_quote(&collect_command(&exe, &out))
        );
        return Ok(ExitCode::SUCCESS);
    }
    let stop = commands::stop_flag();
    let threads_note = a.jobs > 1 && plan.cells.iter().any(|l| l.config.train.threads == 0);
    if threads_note {
        eprintln!(
            "note: {} cells at a time each use every core (train.threads = 0); \
             --set train.threads=N shares them",
            a.jobs
        );
    }
    let tally = run_local(&out, &mut file, a.jobs, &stop)?;
    let page = collect(&out, &mut file, &tally.failed, true)?;
    println!("table:   {}", out.join("table.csv").display());
    println!("page:    {}", page.display());
    if tally.interrupted {
        eprintln!("interrupted; run the same command again to continue the sweep");
        return Ok(ExitCode::from(commands::EXIT_INTERRUPTED));
    }
    if !tally.failed.is_empty() {
        let names: Vec<&str> = tally
            .failed
            .iter()
            .map(|&i| file.cells[i].name.as_str())
            .collect();
        bail!(
            "{} of {} cells failed: {} (see {})",
            names.len(),
            file.cells.len(),
            names.join(", "),
            out.join("logs").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `moirelab sweep --cell I --out DIR`: train one cell (skip it when finished, resume it when
/// it has a checkpoint, otherwise start it from scratch).
fn run_cell(out: &Path, index: usize) -> Result<ExitCode> {
    let file = read_sweep(out)?;
    let cell = file.cells.get(index).ok_or_else(|| {
        anyhow!(
            "--cell {index}: the sweep in {} has cells 0..{}",
            out.display(),
            file.cells.len().saturating_sub(1)
        )
    })?;
    std::env::set_current_dir(&file.workdir)
        .with_context(|| format!("working directory {}", file.workdir.display()))?;
    let run_dir = out.join(&cell.run);
    let stop_flag = commands::stop_flag();
    let stop: &AtomicBool = &stop_flag;
    let fresh = |stop: &AtomicBool| {
        commands::train_from_config(
            &out.join(BASE_TOML),
            &file.cell_sets(cell),
            Some(&cell.name),
            Some(&out.join("runs")),
            stop,
        )
    };
    let remove = |why: &str| -> Result<()> {
        eprintln!("{}: {why}; starting the cell again", run_dir.display());
        std::fs::remove_dir_all(&run_dir).with_context(|| format!("remove {}", run_dir.display()))
    };
    let (dir, outcome) = match cell_state(&run_dir) {
        CellState::Finished => {
            println!(
                "cell {index} ({}) is finished: {}",
                cell.name,
                run_dir.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        CellState::Pending => fresh(stop)?,
        CellState::Incomplete => {
            remove("stopped before its first checkpoint")?;
            fresh(stop)?
        }
        CellState::Resumable => match commands::resume_run(&run_dir, stop) {
            Ok(r) => r,
            Err(e) => {
                remove(&format!(
                    "cannot resume ({})",
                    format!("{e:#}").replace('\n', " ")
                ))?;
                fresh(stop)?
            }
        },
    };
    Ok(commands::report_outcome(&dir, outcome))
}

/// What a local run did.
#[derive(Debug, Default)]
struct Tally {
    failed: Vec<usize>,
    interrupted: bool,
}

/// Ask a child to stop like Ctrl-C does (it saves a checkpoint and exits 130).
fn interrupt(child: &Child) {
    // In a terminal Ctrl-C reaches the whole process group already; this covers a SIGINT sent
    // to the sweep alone. Failing to send it only means waiting for the cell to finish.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

/// Run every unfinished cell's command as a child process, `jobs` at a time; output goes to
/// `logs/<cell>.log`, one line per finished cell to the terminal, `sweep.json` and the table
/// are updated after each cell. Ctrl-C stops starting cells and lets the running ones save.
fn run_local(out: &Path, file: &mut SweepFile, jobs: usize, stop: &AtomicBool) -> Result<Tally> {
    let todo: Vec<usize> = file
        .cells
        .iter()
        .filter(|c| cell_state(&out.join(&c.run)) != CellState::Finished)
        .map(|c| c.index)
        .collect();
    let total = file.cells.len();
    eprintln!(
        "sweep: {total} cells, {} finished, {} to train ({jobs} at a time); logs in {}",
        total - todo.len(),
        todo.len(),
        out.join("logs").display()
    );
    let mut queue = todo.into_iter();
    let mut running: Vec<(usize, Child, Instant)> = Vec::new();
    let mut tally = Tally::default();
    let mut forwarded = false;
    loop {
        while running.len() < jobs && !stop.load(Ordering::SeqCst) {
            let Some(i) = queue.next() else { break };
            let cell = &mut file.cells[i];
            let log_path = out.join("logs").join(format!("{}.log", cell.name));
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("open {}", log_path.display()))?;
            let child = std::process::Command::new(&cell.command[0])
                .args(&cell.command[1..])
                .current_dir(&file.workdir)
                .stdin(std::process::Stdio::null())
                .stdout(
                    log.try_clone()
                        .with_context(|| log_path.display().to_string())?,
                )
                .stderr(log)
                .spawn()
                .with_context(|| format!("start {}", cell.command[0]))?;
            eprintln!("start   {}", cell.name);
            cell.status = "running".into();
            running.push((i, child, Instant::now()));
        }
        if running.is_empty() {
            break;
        }
        if stop.load(Ordering::SeqCst) && !forwarded {
            forwarded = true;
            tally.interrupted = true;
            for (_, child, _) in &running {
                interrupt(child);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut k = 0;
        while k < running.len() {
            let Some(status) = running[k].1.try_wait().context("wait for a cell")? else {
                k += 1;
                continue;
            };
            let (i, _, t0) = running.swap_remove(k);
            let cell = &mut file.cells[i];
            let state = cell_state(&out.join(&cell.run));
            let secs = t0.elapsed().as_secs_f64();
            cell.status = state.label().into();
            if state == CellState::Finished {
                eprintln!("done    {} ({secs:.0} s)", cell.name);
            } else if stop.load(Ordering::SeqCst)
                || status.code() == Some(i32::from(commands::EXIT_INTERRUPTED))
            {
                tally.interrupted = true;
                eprintln!("stopped {} (checkpoint saved)", cell.name);
            } else {
                cell.status = "failed".into();
                tally.failed.push(i);
                eprintln!(
                    "failed  {} ({status}); see {}",
                    cell.name,
                    out.join("logs")
                        .join(format!("{}.log", cell.name))
                        .display()
                );
            }
            let mut sticky = tally.failed.clone();
            sticky.extend(running.iter().map(|r| r.0));
            collect(out, file, &sticky, false)?;
        }
    }
    Ok(tally)
}

/// The shortcut aligned/conflicting accuracy is keyed to for the whole table: the one most
/// finished cells planted (the flag on a tie), so a cell with a debiased training split, such
/// as ρ = 0.5, is read against the same attribute as its neighbours.
fn sweep_story<'a>(summaries: impl Iterator<Item = &'a runfmt::RunSummary>) -> demo::Story {
    let (mut flag, mut face) = (0, 0);
    for s in summaries {
        match s.shortcut.as_deref() {
            Some(a) if a == demo::FACE.attr => face += 1,
            Some(a) if a == demo::FLAG.attr => flag += 1,
            _ => {}
        }
    }
    if face > flag {
        demo::FACE
    } else {
        demo::FLAG
    }
}

/// Build the table, page, charts (and with `compares` the compare pages) from the run
/// folders and refresh the statuses in `sweep.json`; unfinished cells in `sticky` (running or
/// failed in this invocation) keep the status they have.
fn collect(out: &Path, file: &mut SweepFile, sticky: &[usize], compares: bool) -> Result<PathBuf> {
    // Each finished cell's summary is read once: the table's story and its row come from it.
    let mut cells = Vec::with_capacity(file.cells.len());
    for c in &file.cells {
        let run_dir = out.join(&c.run);
        let state = cell_state(&run_dir);
        let summary = match state {
            CellState::Finished => Some(fsio::read_json::<runfmt::RunSummary>(
                &run_dir.join(runfmt::SUMMARY_JSON),
            )?),
            _ => None,
        };
        cells.push((state, summary));
    }
    let story = sweep_story(cells.iter().filter_map(|(_, s)| s.as_ref()));
    let mut rows = Vec::new();
    for (c, (state, summary)) in file.cells.iter_mut().zip(&cells) {
        if !(sticky.contains(&c.index) && *state != CellState::Finished) {
            c.status = state.label().into();
        }
        let mut row = SweepRow {
            name: c.name.clone(),
            values: c.values.clone(),
            status: c.status.clone(),
            run: c.run.clone(),
            ..Default::default()
        };
        if let Some(s) = summary {
            let v = demo::verdict_of(s, c.name.clone(), story);
            row.test_accuracy = v.test_accuracy;
            row.aligned_accuracy = v.aligned_accuracy;
            row.conflicting_accuracy = v.conflicting_accuracy;
            row.artifact_lift = v.artifact_lift;
            row.flag_lift = demo::verdict_of(s, c.name.clone(), demo::FLAG).lift;
            row.face_lift = demo::verdict_of(s, c.name.clone(), demo::FACE).lift;
        }
        rows.push(row);
    }
    fsio::write_json_atomic(&out.join(SWEEP_JSON), &*file)?;
    let mut page = SweepPage {
        title: format!(
            "Sweep {}",
            out.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        about: vec![
            format!(
                "base config: {} (sha256 {})",
                file.base_config.display(),
                &file.base_sha256[..12.min(file.base_sha256.len())]
            ),
            format!(
                "overrides: {}",
                if file.sets.is_empty() {
                    "none".to_string()
                } else {
                    file.sets.join(" ")
                }
            ),
        ],
        keys: file.grid.iter().map(|a| a.key.clone()).collect(),
        key_values: file.grid.iter().map(|a| a.values.clone()).collect(),
        rows,
        compares: Vec::new(),
    };
    if compares {
        page.compares = write_compares(out, file)?;
    }
    Ok(moirelab_report::sweep::write_sweep_report(out, &page)?)
}

/// One compare page per line of the charts (cells sharing the values of every key but the
/// first), over its finished cells, when it has at least two.
fn write_compares(out: &Path, file: &SweepFile) -> Result<Vec<(String, PathBuf)>> {
    let mut groups: Vec<(Vec<String>, Vec<&CellRecord>)> = Vec::new();
    for c in &file.cells {
        let rest = c.values[1..].to_vec();
        match groups.iter_mut().find(|g| g.0 == rest) {
            Some(g) => g.1.push(c),
            None => groups.push((rest, vec![c])),
        }
    }
    let first = file.grid.first().map(|a| short_key(&a.key)).unwrap_or("");
    let mut pages = Vec::new();
    for (rest, cells) in groups {
        let runs: Vec<PathBuf> = cells
            .iter()
            .map(|c| out.join(&c.run))
            .filter(|r| cell_state(r) == CellState::Finished)
            .collect();
        if runs.len() < 2 {
            continue;
        }
        let label: Vec<String> = file.grid[1..]
            .iter()
            .zip(&rest)
            .map(|(a, v)| format!("{}={v}", short_key(&a.key)))
            .collect();
        let folder = if label.is_empty() {
            "all".to_string()
        } else {
            config::file_safe(&label.join("_"), ".+-=")
        };
        let dir = out.join("compare").join(&folder);
        let page = moirelab_report::write_compare(&runs, &dir)?;
        let title = if label.is_empty() {
            format!("all cells across {first}")
        } else {
            format!("{} across {first}", label.join(" "))
        };
        pages.push((title, page.strip_prefix(out).unwrap_or(&page).to_path_buf()));
    }
    Ok(pages)
}

/// A word for a POSIX shell: single-quoted unless it is plainly safe.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=+,:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn shell_join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn collect_command(exe: &Path, out: &Path) -> String {
    shell_join(&[
        exe.display().to_string(),
        "sweep".into(),
        "--collect".into(),
        out.display().to_string(),
    ])
}

/// The task line of cell `i` in the Slurm script.
pub fn slurm_task_line(cell: &CellRecord) -> String {
    format!("  {}) exec {} ;;", cell.index, shell_join(&cell.command))
}

/// A Slurm job-array script: task `i` runs cell `i`'s command in the sweep's working
/// directory; all tasks write into the same sweep folder.
pub fn slurm_script(file: &SweepFile, out: &Path, exe: &Path) -> String {
    let n = file.cells.len();
    let grid: Vec<String> = file
        .grid
        .iter()
        .map(|a| format!("{}={}", a.key, a.values.join(",")))
        .collect();
    // Comment text on one line each, whatever the values hold.
    let one_line = |t: String| t.replace(['\n', '\r'], " ");
    let mut s = format!(
        "#!/bin/bash\n\
         # moirelab sweep: {n} cells, one per array task, of\n\
         #   {grid}\n\
         # written by `moirelab sweep --emit slurm`, which also generated the data sets. Each\n\
         # task trains one cell into {runs}/<cell>;\n\
         # a finished cell is skipped, an interrupted one resumed.\n\
         # Submit, then build the table once every task has ended:\n\
         #   jobid=$(sbatch --parsable {script})\n\
         #   sbatch --dependency=afterany:$jobid --wrap {collect}\n\
         # Add #SBATCH lines for your cluster (partition, time, cpus-per-task, gres) below.\n\
         #SBATCH --job-name=moirelab-sweep\n\
         #SBATCH --array=0-{last}\n\
         #SBATCH --output={logs}/slurm-%A_%a.log\n\
         set -euo pipefail\n\
         cd {workdir}\n\
         case \"${{SLURM_ARRAY_TASK_ID:?not a Slurm array task}}\" in\n",
        grid = one_line(grid.join(" ")),
        runs = one_line(out.join("runs").display().to_string()),
        script = one_line(shell_quote(&out.join(SLURM_SCRIPT).display().to_string())),
        collect = one_line(shell_quote(&collect_command(exe, out))),
        last = n.saturating_sub(1),
        logs = one_line(out.join("logs").display().to_string()),
        workdir = shell_quote(&file.workdir.display().to_string()),
    );
    for c in &file.cells {
        s.push_str(&slurm_task_line(c));
        s.push('\n');
    }
    s.push_str("  *) echo \"sweep.sbatch: no cell $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\nesac\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axes(specs: &[&str]) -> Vec<Axis> {
        let grids: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        parse_grid(&grids, &[], false).unwrap()
    }

    #[test]
    fn values_split_at_top_level_commas_only() {
        let a = parse_axis("gradcam.methods=[\"gradcam\",\"hirescam\"],[\"gradcam\"]").unwrap();
        assert_eq!(a.values, ["[\"gradcam\",\"hirescam\"]", "[\"gradcam\"]"]);
        let a = parse_axis("data.knobs.artifacts=\"moire,bands\", none").unwrap();
        assert_eq!(a.values, ["\"moire,bands\"", "none"]);
    }

    #[test]
    fn bad_grids_are_one_line_errors_naming_the_key() {
        let err = |grids: &[&str], sets: &[&str], yes: bool| {
            let g: Vec<String> = grids.iter().map(|s| s.to_string()).collect();
            let s: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            parse_grid(&g, &s, yes).unwrap_err().to_string()
        };
        assert!(err(&[], &[], false).contains("at least one --grid"));
        assert!(err(&["model.arch="], &[], false).contains("model.arch: no values"));
        assert!(err(&["model.arch"], &[], false).contains("expected section.key="));
        assert!(err(&["model.arch=a,,b"], &[], false).contains("empty value"));
        assert!(err(&["model.arch=a,a"], &[], false).contains("given twice"));
        assert!(err(&["model.arch=a", "model.arch=b"], &[], false).contains("swept twice"));
        assert!(err(&["model.arch=a,b"], &["model.arch=c"], false).contains("also fixed"));
        let big = [
            "train.seed=1,2,3,4,5,6,7,8,9,10",
            "train.lr=1,2,3,4,5,6,7,8,9,10",
        ];
        let e = err(
            &[big[0], big[1], "train.epochs=1,2,3,4,5,6,7,8,9,10,11"],
            &[],
            false,
        );
        assert!(e.contains("1100 cells") && e.contains("--yes"), "{e}");
        let g: Vec<String> = [big[0], big[1], "train.epochs=1,2,3,4,5,6,7,8,9,10,11"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(parse_grid(&g, &[], true).is_ok());
    }

    #[test]
    fn cells_are_the_product_with_the_first_key_slowest_and_unique_names() {
        let ax = axes(&[
            "data.knobs.rho-flag=0.5,0.95",
            "model.arch=shallow,vgg,resnet",
        ]);
        let combos = combinations(&ax);
        assert_eq!(combos.len(), 6);
        assert_eq!(combos[1], ["0.5", "vgg"]);
        assert_eq!(combos[3], ["0.95", "shallow"]);
        assert_eq!(
            cell_name(4, 6, &ax, &combos[4]),
            "04_rho-flag=0.95_arch=vgg"
        );
        // Keys sharing a last component keep their full path; odd characters are replaced.
        let ax = axes(&["train.seed=1", "data.knobs.seed=2", "data.root=a/b c"]);
        let c = &combinations(&ax)[0];
        assert_eq!(
            cell_name(0, 1, &ax, c),
            "00_train-seed=1_data-knobs-seed=2_root=a_b_c"
        );
    }

    #[test]
    fn slurm_tasks_run_the_local_commands() {
        let ax = axes(&["model.arch=shallow,vgg", "train.lr=0.1,0.01"]);
        let out = Path::new("/sw/it's here");
        let exe = Path::new("/opt/moirelab");
        let cells: Vec<CellRecord> = combinations(&ax)
            .into_iter()
            .enumerate()
            .map(|(i, v)| CellRecord {
                index: i,
                name: cell_name(i, 4, &ax, &v),
                run: PathBuf::from("runs").join(i.to_string()),
                values: v,
                status: "pending".into(),
                command: cell_command(exe, out, i),
            })
            .collect();
        let file = SweepFile {
            format_version: FORMAT_VERSION,
            base_config: "c.toml".into(),
            base_sha256: "00".into(),
            sets: vec![],
            grid: ax,
            workdir: "/work dir".into(),
            cells,
        };
        let mut file = file;
        // A line break in a value must not end the comment that lists the grid.
        file.grid[0].values[0] = "shal\nlow".into();
        let script = slurm_script(&file, out, exe);
        assert!(script.contains("#SBATCH --array=0-3\n"), "{script}");
        assert!(script.contains("model.arch=shal low,vgg"), "{script}");
        for c in &file.cells {
            assert_eq!(c.command, cell_command(exe, out, c.index));
            let line = script
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{}) ", c.index)))
                .unwrap();
            assert_eq!(line, slurm_task_line(c));
            // The shell reads the line back into exactly the command's words.
            let words = line.trim_start().split_once(") exec ").unwrap().1;
            let words = words.trim_end_matches(" ;;");
            let o = std::process::Command::new("bash")
                .args(["-c", &format!("printf '%s\\n' {words}")])
                .output()
                .unwrap();
            let got: Vec<String> = String::from_utf8(o.stdout)
                .unwrap()
                .lines()
                .map(String::from)
                .collect();
            assert_eq!(got, c.command);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sbatch");
        std::fs::write(&path, &script).unwrap();
        let o = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            file.cell_sets(&file.cells[1]),
            ["model.arch=shallow", "train.lr=0.01"]
        );
    }
}

//! The sweep's plan: the grid parsed from `--grid`/`--set`, its cells (their names, commands
//! and run folders), `sweep.json`, and where each cell's run stands.

use super::{BASE_TOML, SWEEP_JSON};
use crate::config;
use anyhow::{anyhow, bail, Context, Result};
use moirelab_core::dirlock::ExclusiveGuard;
use moirelab_core::fsio;
use moirelab_core::run as runfmt;
use moirelab_report::sweep::short_key;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Larger grids need `--yes`.
pub const MAX_CELLS: usize = 1000;

pub(super) const FORMAT_VERSION: u32 = 1;

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
    /// `pending`, `running` (also: by another process), `finished`, `unfinished` (resumable),
    /// `incomplete` (no checkpoint; restarts), `failed`, `damaged: summary.json: <why>` (no
    /// numbers; resumed by a rerun): as of the last time this sweep ran or was collected.
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

/// Split `v1,v2,...` at top-level commas: not inside a TOML string, array or inline table
/// (`"moire,bands"`, `["gradcam","hirescam"]`), so those are single values. A quote or bracket
/// opens one at the start of a value or inside another one (`it's` is a bare word); in a
/// `"..."` string a backslash escapes the next character (`"say \"hi\", twice"`). An
/// unterminated string or bracket is an error.
fn split_values(raw: &str) -> std::result::Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut escaped) = (0i32, None::<char>, false);
    let mut cur = String::new();
    for c in raw.chars() {
        let opens = depth > 0 || cur.trim().is_empty();
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some('"'), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if opens => quote = Some(c),
            (None, '[' | '{') if opens => depth += 1,
            (None, ']' | '}') if depth > 0 => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if quote.is_some() {
        return Err("a string without its closing quote");
    }
    if depth > 0 {
        return Err("a [ or { without its closing bracket");
    }
    out.push(cur.trim().to_string());
    Ok(out)
}

/// A grid value as `train --set` reads it ([`config::parse_value`]): TOML where it parses,
/// else a bare word. A value that starts like a TOML string, array or table must parse.
fn grid_value(raw: &str) -> std::result::Result<toml::Value, String> {
    if raw.starts_with(['"', '\'', '[', '{']) {
        let doc = format!("v = {raw}");
        return match toml::from_str::<toml::Table>(&doc) {
            Ok(mut t) if t.len() == 1 => t.remove("v").ok_or_else(String::new),
            Ok(_) => Err("more than one value".into()),
            Err(e) => Err(e.message().trim().replace('\n', " ")),
        };
    }
    Ok(config::parse_value(raw))
}

/// Whether two grid values give a cell the same config: TOML equality, an integer and a float
/// of the same number alike (`train.lr=0.001,1e-3` and `train.lr=1,1.0` are one value twice).
fn same_value(a: &toml::Value, b: &toml::Value) -> bool {
    use toml::Value as V;
    match (a, b) {
        (V::Integer(i), V::Float(f)) | (V::Float(f), V::Integer(i)) => *i as f64 == *f,
        (V::Float(x), V::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (V::Table(x), V::Table(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
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
    let values = split_values(raw).map_err(|why| anyhow!("--grid {spec}: {why}"))?;
    if values.iter().all(String::is_empty) {
        bail!("--grid {key}: no values (expected {key}=value1,value2,...)");
    }
    if values.iter().any(String::is_empty) {
        bail!("--grid {key}={raw}: an empty value");
    }
    let parsed = values
        .iter()
        .map(|v| grid_value(v).map_err(|why| anyhow!("--grid {key}: value {v} is not TOML: {why}")))
        .collect::<Result<Vec<_>>>()?;
    for (i, v) in parsed.iter().enumerate() {
        if let Some(j) = parsed[..i].iter().position(|w| same_value(v, w)) {
            let (a, b) = (&values[j], &values[i]);
            if a == b {
                bail!("--grid {key}: value {b} is given twice");
            }
            bail!("--grid {key}: value {b} is given twice (as {a} and {b}, the same value)");
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

pub(super) fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
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
    let text = fsio::read_text_capped(config_path, "a config", fsio::TEXT_MAX_BYTES)
        .map_err(|e| anyhow!("config file {e}"))?;
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
    /// A `summary.json` that reads as a run summary and `meta.json` status `finished`.
    Finished,
    /// A checkpoint to resume from (also a run whose summary is missing or damaged: resuming
    /// after its last epoch writes the summary again).
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

/// The run's `summary.json`: `None` when there is none, otherwise the summary or why it does
/// not read as one (one line).
pub(super) fn read_summary(run_dir: &Path) -> Option<Result<runfmt::RunSummary, String>> {
    let path = run_dir.join(runfmt::SUMMARY_JSON);
    if !path.is_file() {
        return None;
    }
    let text = match fsio::read_text_capped(&path, "a run summary", fsio::TEXT_MAX_BYTES) {
        Ok(t) => t,
        Err(e) => return Some(Err(e.to_string())),
    };
    Some(serde_json::from_str(&text).map_err(|e| e.to_string().replace('\n', " ")))
}

pub fn cell_state(run_dir: &Path) -> CellState {
    cell_state_with(run_dir, &read_summary(run_dir))
}

/// [`cell_state`] for a caller that has read the run's summary already ([`read_summary`]).
pub(super) fn cell_state_with(
    run_dir: &Path,
    summary: &Option<Result<runfmt::RunSummary, String>>,
) -> CellState {
    if !run_dir.exists() {
        return CellState::Pending;
    }
    // A damaged summary does not count: the cell has no numbers, and a rerun resumes it.
    let finished = matches!(summary, Some(Ok(_)))
        && runfmt::read_meta(run_dir).is_ok_and(|m| m.status == "finished");
    if finished {
        CellState::Finished
    } else if run_dir.join("checkpoints").join("state.json").is_file() {
        CellState::Resumable
    } else {
        CellState::Incomplete
    }
}

/// Who holds the exclusive lock of `dir` right now, where that can be told: a training holds
/// its run folder's for its whole life, a `--cell` process its cell's reservation
/// ([`reserve_cell`]). The test is the report's for a live run: a shared lock is refused only
/// while a writer holds the folder (a reader's moment does not count), and is dropped again
/// at once, so the training the caller starts next can take the folder itself.
pub(super) fn trained_by(dir: &Path) -> Option<String> {
    match moirelab_core::dirlock::read_guard(dir) {
        Ok(_) => None,
        Err(busy) => Some(busy.holders_text()),
    }
}

/// Folder of one empty folder per cell, the cells' reservations ([`reserve_cell`]).
pub const LOCKS_DIR: &str = "locks";

fn reservation(out: &Path, cell: &CellRecord) -> PathBuf {
    out.join(LOCKS_DIR).join(&cell.name)
}

/// Who trains `cell` right now: a `--cell` process that has reserved it, or a training that
/// holds its run folder (`train --resume` by hand, or a cell from before reservations).
pub(super) fn cell_trained_by(out: &Path, cell: &CellRecord) -> Option<String> {
    trained_by(&reservation(out, cell)).or_else(|| trained_by(&out.join(&cell.run)))
}

/// Whether `cell`, in `state`, is being trained right now: the live-lock test of
/// [`cell_trained_by`] (a finished cell is not asked). The cell of a killed training is not:
/// it keeps the label its folder gives it (`unfinished` or `incomplete`).
pub(super) fn is_running(out: &Path, cell: &CellRecord, state: CellState) -> bool {
    state != CellState::Finished && cell_trained_by(out, cell).is_some()
}

/// Reserve `cell` for this process until the guard is dropped: the exclusive lock of its
/// folder under [`LOCKS_DIR`], taken before the run folder is looked at, so that of two
/// `--cell` commands started together (the run folder does not exist yet, and the training
/// creates it only after reading the data set) one trains and the other is refused.
/// `Ok(Err(holders))` while another process holds it; `Ok(Ok(None))` where the file system
/// has no locks. Another process's [`trained_by`] holds it for a moment (a shared lock): that
/// is waited out for up to a second, as `train --resume` does; a `--cell` process that holds
/// it is a refusal at once.
pub(super) fn reserve_cell(
    out: &Path,
    cell: &CellRecord,
) -> Result<std::result::Result<Option<ExclusiveGuard>, String>> {
    let dir = reservation(out, cell);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let wait = std::time::Duration::from_secs(1);
    Ok(
        moirelab_core::dirlock::exclusive_guard_after_readers(&dir, wait)
            .map_err(|busy| busy.holders_text()),
    )
}

/// Refuse to train from a `base.toml` that is no longer the text the sweep was planned from
/// (its cells would mix two configs in one table).
pub(super) fn check_base(out: &Path, file: &SweepFile) -> Result<()> {
    let path = out.join(BASE_TOML);
    let text = fsio::read_capped(&path, "a config", fsio::TEXT_MAX_BYTES)?;
    if sha256_hex(&text) != file.base_sha256 {
        bail!(
            "{}: changed since the sweep was planned (its SHA-256 is not the base_sha256 in \
             {SWEEP_JSON}); undo the change, or start a new sweep from the changed config with \
             another --out",
            path.display()
        );
    }
    Ok(())
}

pub(super) fn read_sweep(out: &Path) -> Result<SweepFile> {
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

/// Check that `out` can hold this sweep, writing nothing: it is absent, empty, or holds the
/// same sweep (same base config text, `--set` and grid, and an unedited `base.toml`), whose
/// working directory the plan then keeps. A sweep that fails before [`write_folder`] (a data
/// set that cannot be made) leaves no folder behind that would refuse the corrected grid.
pub(super) fn check_folder(out: &Path, plan: &mut Plan) -> Result<()> {
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
        // An edited base.toml is refused, not silently put back: cells may have trained from it.
        if out.join(BASE_TOML).exists() {
            check_base(out, &old)?;
        }
        plan.file.workdir = old.workdir;
    } else if out.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{}: exists and is not a sweep folder (no {SWEEP_JSON}); use another --out",
            out.display()
        );
    }
    Ok(())
}

/// Create the sweep folder checked by [`check_folder`]: `logs/`, `base.toml` and `sweep.json`
/// with every cell's current state.
pub(super) fn write_folder(out: &Path, plan: &mut Plan) -> Result<()> {
    std::fs::create_dir_all(out.join("logs"))
        .with_context(|| format!("create {}", out.join("logs").display()))?;
    fsio::write_atomic(&out.join(BASE_TOML), plan.base_text.as_bytes())?;
    for c in &mut plan.file.cells {
        let state = cell_state(&out.join(&c.run));
        let running = is_running(out, c, state);
        c.status = if running { "running" } else { state.label() }.into();
    }
    fsio::write_json_atomic(&out.join(SWEEP_JSON), &plan.file)?;
    Ok(())
}

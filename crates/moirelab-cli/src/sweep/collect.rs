//! After the cells: one table (`table.csv`), page, charts and per-line compare pages over
//! the finished cells.

use super::plan::{
    cell_state_with, is_running, read_summary, sha256_hex, CellRecord, CellState, SweepFile,
};
use super::SWEEP_JSON;
use crate::{config, demo};
use anyhow::{Context, Result};
use moirelab_core::fsio;
use moirelab_core::run as runfmt;
use moirelab_report::sweep::{short_key, SweepPage, SweepRow};
use std::path::{Path, PathBuf};

/// The sweep's folder of compare pages, rebuilt whole by every collect with compares.
pub const COMPARE_DIR: &str = "compare";

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

/// What [`collect`] wrote and found.
pub(super) struct Collected {
    /// The sweep page.
    pub page: PathBuf,
    /// Cells whose `summary.json` does not read as a run summary: no numbers in the table.
    pub damaged: Vec<usize>,
    /// Finished cells whose run folder does not load for their compare page (status
    /// `damaged: <file>: <why>`).
    pub unreadable: Vec<usize>,
    /// Compare pages that could not be built for another reason: folder and why.
    pub failed_pages: Vec<(String, String)>,
}

impl Collected {
    /// The line that names the cells with a damaged summary or run folder and the compare
    /// pages that could not be built, if any.
    pub fn damaged_line(&self, out: &Path, file: &SweepFile) -> Option<String> {
        let listed = |cells: &[usize], file_name: Option<&str>| -> String {
            let paths: Vec<String> = cells
                .iter()
                .map(|&i| {
                    let c = &file.cells[i];
                    let path = match file_name {
                        Some(f) => out.join(&c.run).join(f),
                        None => out.join(&c.run),
                    };
                    format!("{} ({})", path.display(), c.status)
                })
                .collect();
            paths.join(", ")
        };
        let mut parts = Vec::new();
        if !self.damaged.is_empty() {
            parts.push(format!(
                "{} of {} cells have a damaged summary and no numbers in the table: {}; \
                 run the sweep command again to resume them from their checkpoints",
                self.damaged.len(),
                file.cells.len(),
                listed(&self.damaged, Some(runfmt::SUMMARY_JSON))
            ));
        }
        if !self.unreadable.is_empty() {
            parts.push(format!(
                "{} of {} cells have a damaged run folder and no compare page: {}; repair the \
                 file, or delete the run folder and run the sweep command again to train the \
                 cell again",
                self.unreadable.len(),
                file.cells.len(),
                listed(&self.unreadable, None)
            ));
        }
        for (folder, why) in &self.failed_pages {
            parts.push(format!("compare page {folder} could not be built: {why}"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Build the table, page, charts (and with `compares` the compare pages) from the run
/// folders and refresh the statuses in `sweep.json`; unfinished cells in `sticky` (running or
/// failed in this invocation, or trained by another process) keep the status they have.
/// Another unfinished cell that a live process trains (it holds the cell's or the run
/// folder's lock, the report's test for a live run) is `running`. A cell whose
/// `summary.json` does not read gets the status `damaged: summary.json: <why>` (unless sticky
/// or running), and a finished cell whose run folder does not load for its compare page
/// `damaged: <file>: <why>`, instead of stopping the table for every other cell.
pub(super) fn collect(
    out: &Path,
    file: &mut SweepFile,
    sticky: &[usize],
    compares: bool,
) -> Result<Collected> {
    // Each cell's summary is read once: the table's story and its row come from it.
    let mut cells = Vec::with_capacity(file.cells.len());
    let mut damaged = Vec::new();
    for c in &file.cells {
        let run_dir = out.join(&c.run);
        let read = read_summary(&run_dir);
        let state = cell_state_with(&run_dir, &read);
        let (summary, damage) = match (state, read) {
            (CellState::Finished, Some(Ok(s))) => (Some(s), None),
            (_, Some(Err(why))) => (None, Some(why)),
            _ => (None, None),
        };
        cells.push((state, summary, damage));
    }
    let compared = if compares {
        let finished: Vec<bool> = cells
            .iter()
            .map(|(s, _, _)| *s == CellState::Finished)
            .collect();
        write_compares(out, file, &finished)?
    } else {
        Compares::default()
    };
    let story = sweep_story(cells.iter().filter_map(|(_, s, _)| s.as_ref()));
    let mut rows = Vec::new();
    let mut unreadable = Vec::new();
    for (c, (state, summary, damage)) in file.cells.iter_mut().zip(&cells) {
        let broken = compared.damaged.iter().find(|d| d.0 == c.index);
        if let Some((_, why)) = broken {
            unreadable.push(c.index);
            c.status = format!("damaged: {why}");
        } else if !(sticky.contains(&c.index) && *state != CellState::Finished) {
            // A live training rewrites a damaged summary when it ends.
            c.status = match damage {
                _ if is_running(out, c, *state) => "running".into(),
                Some(why) => {
                    damaged.push(c.index);
                    format!("damaged: {}: {why}", runfmt::SUMMARY_JSON)
                }
                None => state.label().into(),
            };
        }
        let mut row = SweepRow {
            name: c.name.clone(),
            values: c.values.clone(),
            status: c.status.clone(),
            run: c.run.clone(),
            ..Default::default()
        };
        if let Some(s) = summary {
            let attack = demo::run_attack_class(&out.join(&c.run));
            let v = demo::verdict_of(s, &attack, c.name.clone(), story);
            row.test_accuracy = v.test_accuracy;
            row.aligned_accuracy = v.aligned_accuracy;
            row.conflicting_accuracy = v.conflicting_accuracy;
            row.artifact_lift = v.artifact_lift;
            row.flag_lift = demo::verdict_of(s, &attack, c.name.clone(), demo::FLAG).lift;
            row.face_lift = demo::verdict_of(s, &attack, c.name.clone(), demo::FACE).lift;
        }
        rows.push(row);
    }
    fsio::write_json_atomic(&out.join(SWEEP_JSON), &*file)?;
    let page = SweepPage {
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
        compares: compared.pages,
    };
    Ok(Collected {
        page: moirelab_report::sweep::write_sweep_report(out, &page)?,
        damaged,
        unreadable,
        failed_pages: compared.failed,
    })
}

/// Longest compare-folder name kept whole (cell names cut each value to 32 characters): the
/// label of a line of long values would pass the 255 bytes a file name may have.
const FOLDER_MAX: usize = 64;

/// One line of the charts: the cells sharing the values of every key but the first, in grid
/// order, with its label (`arch=vgg width=8`, empty for a one-key grid) and compare folder.
pub(super) struct Line<'a> {
    pub values: Vec<String>,
    pub label: String,
    pub folder: String,
    pub cells: Vec<&'a CellRecord>,
}

/// The lines of the grid ([`Line`]). A folder is the label made file-name safe (`all` for a
/// one-key grid), unless that is longer than [`FOLDER_MAX`] or another line's is the same
/// (ignoring case, as some file systems do: `dx a` and `dx_a` both become `dx_a`); then it is
/// cut to [`FOLDER_MAX`] and ends in `-` and 8 hex digits of the SHA-256 of the line's values.
/// Names depend on `sweep.json`'s grid alone, so every `--collect` picks the same ones.
pub(super) fn lines(file: &SweepFile) -> Vec<Line<'_>> {
    let mut lines: Vec<Line> = Vec::new();
    for c in &file.cells {
        let rest = c.values.get(1..).unwrap_or_default();
        match lines.iter_mut().find(|l| l.values == rest) {
            Some(l) => l.cells.push(c),
            None => lines.push(Line {
                values: rest.to_vec(),
                label: String::new(),
                folder: String::new(),
                cells: vec![c],
            }),
        }
    }
    let keys = file.grid.get(1..).unwrap_or_default();
    let mut safe = Vec::new();
    for l in &mut lines {
        let label: Vec<String> = keys
            .iter()
            .zip(&l.values)
            .map(|(a, v)| format!("{}={v}", short_key(&a.key)))
            .collect();
        l.label = label.join(" ");
        safe.push(if label.is_empty() {
            "all".to_string()
        } else {
            config::file_safe(&label.join("_"), ".+-=")
        });
    }
    let lower: Vec<String> = safe.iter().map(|s| s.to_lowercase()).collect();
    for (i, l) in lines.iter_mut().enumerate() {
        let clash = lower.iter().filter(|s| **s == lower[i]).count() > 1;
        l.folder = if safe[i].len() > FOLDER_MAX || clash {
            // ASCII (file_safe), so cut at any byte.
            let values = serde_json::to_string(&l.values).unwrap_or_default();
            let hash = sha256_hex(values.as_bytes());
            format!(
                "{}-{}",
                &safe[i][..FOLDER_MAX.min(safe[i].len())],
                &hash[..8]
            )
        } else {
            safe[i].clone()
        };
    }
    lines
}

/// What [`write_compares`] wrote and could not.
#[derive(Default)]
struct Compares {
    /// Title and path (relative to the sweep folder) of each page.
    pages: Vec<(String, PathBuf)>,
    /// Finished cells whose run folder does not load (a damaged `metrics.jsonl`, …): why.
    damaged: Vec<(usize, String)>,
    /// Pages that could not be built though every cell of theirs loads: folder and why.
    failed: Vec<(String, String)>,
}

/// Why `run_dir` does not load for a page (one line, file paths relative to the run folder),
/// or `None` when it loads.
fn load_error(run_dir: &Path) -> Option<String> {
    let e = moirelab_report::load_run(run_dir).err()?;
    let mut why = e.to_string().replace('\n', " ");
    let canon = run_dir
        .canonicalize()
        .unwrap_or_else(|_| run_dir.to_path_buf());
    for dir in [canon, run_dir.to_path_buf()] {
        why = why.replace(&format!("{}/", dir.display()), "");
    }
    Some(why)
}

/// One compare page per line of the charts over its finished cells, when it has at least two,
/// built in a staging folder that then replaces `compare/` whole: a line that lost its cells
/// (a run folder deleted) leaves no stale page. A page that cannot be built is left out with
/// a warning, and the cells that do not load are told as damaged; the other pages are built.
fn write_compares(out: &Path, file: &SweepFile, finished: &[bool]) -> Result<Compares> {
    fsio::remove_abandoned_dirs(out, COMPARE_DIR);
    let staging = out.join(format!(".{COMPARE_DIR}.partial-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("remove {}", staging.display()))?;
    }
    std::fs::create_dir_all(&staging).with_context(|| format!("create {}", staging.display()))?;
    let first = file.grid.first().map(|a| short_key(&a.key)).unwrap_or("");
    let mut done = Compares::default();
    for line in lines(file) {
        let cells: Vec<&CellRecord> = line
            .cells
            .into_iter()
            .filter(|c| finished.get(c.index).copied().unwrap_or(false))
            .collect();
        if cells.len() < 2 {
            continue;
        }
        let runs: Vec<PathBuf> = cells.iter().map(|c| out.join(&c.run)).collect();
        let rel = Path::new(COMPARE_DIR).join(&line.folder);
        let e = match moirelab_report::write_compare(&runs, &staging.join(&line.folder)) {
            Ok(written) => {
                crate::commands::print_warnings(&written.warnings);
                let title = if line.label.is_empty() {
                    format!("all cells across {first}")
                } else {
                    format!("{} across {first}", line.label)
                };
                done.pages.push((title, rel.join("index.html")));
                continue;
            }
            Err(e) => e.to_string().replace('\n', " "),
        };
        eprintln!("warning: {} skipped: {e}", out.join(&rel).display());
        // Best effort: the folder of a page left out is not linked, and the swap below goes on.
        let _ = std::fs::remove_dir_all(staging.join(&line.folder));
        let before = done.damaged.len();
        for (c, run) in cells.iter().zip(&runs) {
            if let Some(why) = load_error(run) {
                done.damaged.push((c.index, why));
            }
        }
        if done.damaged.len() == before {
            done.failed.push((out.join(&rel).display().to_string(), e));
        }
    }
    let target = out.join(COMPARE_DIR);
    if done.pages.is_empty() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("remove {}", staging.display()))?;
        if target.exists() {
            std::fs::remove_dir_all(&target)
                .with_context(|| format!("remove {}", target.display()))?;
        }
    } else {
        fsio::replace_dir(&staging, &target)?;
    }
    Ok(done)
}

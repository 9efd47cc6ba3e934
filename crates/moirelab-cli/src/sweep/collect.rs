//! After the cells: one table (`table.csv`), page, charts and per-line compare pages over
//! the finished cells.

use super::plan::{
    cell_state, cell_state_with, is_running, read_summary, CellRecord, CellState, SweepFile,
};
use super::SWEEP_JSON;
use crate::{config, demo};
use anyhow::Result;
use moirelab_core::fsio;
use moirelab_core::run as runfmt;
use moirelab_report::sweep::{short_key, SweepPage, SweepRow};
use std::path::{Path, PathBuf};

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
}

impl Collected {
    /// The line that names the cells with a damaged summary, if any.
    pub fn damaged_line(&self, out: &Path, file: &SweepFile) -> Option<String> {
        if self.damaged.is_empty() {
            return None;
        }
        let paths: Vec<String> = self
            .damaged
            .iter()
            .map(|&i| {
                let c = &file.cells[i];
                let path = out.join(&c.run).join(runfmt::SUMMARY_JSON);
                format!("{} ({})", path.display(), c.status)
            })
            .collect();
        Some(format!(
            "{} of {} cells have a damaged summary and no numbers in the table: {}; \
             run the sweep command again to resume them from their checkpoints",
            self.damaged.len(),
            file.cells.len(),
            paths.join(", ")
        ))
    }
}

/// Build the table, page, charts (and with `compares` the compare pages) from the run
/// folders and refresh the statuses in `sweep.json`; unfinished cells in `sticky` (running or
/// failed in this invocation, or trained by another process) keep the status they have.
/// Another unfinished cell that a live process trains (it holds the cell's or the run
/// folder's lock, the report's test for a live run) is `running`. A cell whose
/// `summary.json` does not read gets the status `damaged: summary.json: <why>` (unless sticky
/// or running) instead of stopping the table for every other cell.
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
    let story = sweep_story(cells.iter().filter_map(|(_, s, _)| s.as_ref()));
    let mut rows = Vec::new();
    for (c, (state, summary, damage)) in file.cells.iter_mut().zip(&cells) {
        if !(sticky.contains(&c.index) && *state != CellState::Finished) {
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
    Ok(Collected {
        page: moirelab_report::sweep::write_sweep_report(out, &page)?,
        damaged,
    })
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
        let written = moirelab_report::write_compare(&runs, &dir)?;
        crate::commands::print_warnings(&written.warnings);
        let page = written.page;
        let title = if label.is_empty() {
            format!("all cells across {first}")
        } else {
            format!("{} across {first}", label.join(" "))
        };
        pages.push((title, page.strip_prefix(out).unwrap_or(&page).to_path_buf()));
    }
    Ok(pages)
}

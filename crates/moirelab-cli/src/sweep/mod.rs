//! `moirelab sweep`: one training run per cell of a parameter grid (the Cartesian product of
//! the `--grid` values), each cell being the base config plus `--set` plus its grid values as
//! `train --set` overrides, then one table, page and set of charts over all cells.
//!
//! The sweep folder holds `sweep.json` (the plan: grid, base config hash, one record per cell
//! with its run folder, status and command), `base.toml` (the copy every cell trains from),
//! `runs/<cell>/` (ordinary run folders), `logs/<cell>.log`, `locks/<cell>/` (empty: a
//! `--cell` process holds its lock while it trains the cell), `table.csv`, `index.html`,
//! `plots/` and `compare/<line>/`. Every cell runs as `moirelab sweep --cell I --out DIR`:
//! the local runner starts that command as a child process (`--jobs` at a time) and a Slurm
//! array task (`--emit slurm`) runs the same command, so both train a cell the same way. A
//! cell command skips a finished cell, resumes an interrupted one from its checkpoint and
//! restarts one that never saved a checkpoint, so rerunning a sweep continues it; only
//! finished cells (a summary.json that reads and status `finished`) get numbers in the table.
//! A cell that another process trains (it holds the cell's or the run folder's lock) is left
//! alone, and cells train only from a `base.toml` whose hash is still the one in `sweep.json`.

mod collect;
mod plan;
mod slurm;
#[cfg(test)]
mod tests;

use collect::collect;
use plan::{
    absolute, cell_state, cell_trained_by, check_base, check_folder, make_plan, read_sweep,
    reserve_cell, trained_by, write_folder, CellState, SweepFile,
};
use slurm::{collect_command, shell_quote, slurm_script};

use crate::commands;
use crate::config;
use crate::SweepArgs;
use anyhow::{anyhow, bail, Context, Result};
use moirelab_core::fsio;
use std::path::Path;
use std::process::{Child, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const SWEEP_JSON: &str = "sweep.json";

pub const BASE_TOML: &str = "base.toml";

pub const SLURM_SCRIPT: &str = "sweep.sbatch";

/// Generate every preset data set the cells use, once each, before any cell starts (cells
/// running in parallel must not generate the same folder at the same time).
fn prepare_data(cells: &[config::Loaded]) -> Result<()> {
    let mut seen: Vec<&Path> = Vec::new();
    for l in cells {
        let root = l.config.data.root.as_path();
        if !seen.contains(&root) {
            seen.push(root);
            commands::ensure_data(l, None, None)?;
        }
    }
    Ok(())
}

/// `moirelab sweep`.
pub fn run(a: SweepArgs) -> Result<ExitCode> {
    if let Some(dir) = &a.collect {
        let mut file = read_sweep(dir)?;
        let done = collect(dir, &mut file, &[], true)?;
        println!("{}", done.page.display());
        if let Some(line) = done.damaged_line(dir, &file) {
            bail!("{line}");
        }
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
    // Everything that can fail on the grid (the folder, the data sets) before the folder is
    // written: a sweep that fails here leaves nothing that would refuse the corrected grid.
    check_folder(&out, &mut plan)?;
    std::env::set_current_dir(&plan.file.workdir)
        .with_context(|| format!("working directory {}", plan.file.workdir.display()))?;
    prepare_data(&plan.cells)?;
    write_folder(&out, &mut plan)?;
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
    let mut sticky = tally.failed.clone();
    sticky.extend(&tally.elsewhere);
    let done = collect(&out, &mut file, &sticky, true)?;
    println!("table:   {}", out.join("table.csv").display());
    println!("page:    {}", done.page.display());
    if tally.interrupted {
        eprintln!("interrupted; run the same command again to continue the sweep");
        return Ok(ExitCode::from(commands::EXIT_INTERRUPTED));
    }
    // Failed cells, cells another process trains and damaged summaries: one line for all.
    let names = |cells: &[usize]| -> String {
        let names: Vec<&str> = cells.iter().map(|&i| file.cells[i].name.as_str()).collect();
        names.join(", ")
    };
    let mut problems = Vec::new();
    if !tally.failed.is_empty() {
        problems.push(format!(
            "{} of {} cells failed: {} (see {})",
            tally.failed.len(),
            file.cells.len(),
            names(&tally.failed),
            out.join("logs").display()
        ));
    }
    if !tally.elsewhere.is_empty() {
        problems.push(format!(
            "{} of {} cells are being trained by another process and were not started: {}; \
             run the same command again once they have ended",
            tally.elsewhere.len(),
            file.cells.len(),
            names(&tally.elsewhere)
        ));
    }
    if let Some(line) = done.damaged_line(&out, &file) {
        problems.push(line);
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
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
    check_base(out, &file)?;
    std::env::set_current_dir(&file.workdir)
        .with_context(|| format!("working directory {}", file.workdir.display()))?;
    let run_dir = out.join(&cell.run);
    let refuse = |holders: String| {
        anyhow!(
            "cell {index} ({}): being trained by {holders}; not started again",
            run_dir.display()
        )
    };
    // A cell that another process trains right now (a second `--cell I`, or the child of a
    // killed sweep) is neither started, restarted nor resumed: two trainings would write one
    // folder, or two folders (the second one named `<cell>-2`, which no table reads).
    let _reserved = match reserve_cell(out, cell)? {
        Ok(guard) => guard,
        Err(_) if cell_state(&run_dir) == CellState::Finished => None,
        Err(holders) => return Err(refuse(holders)),
    };
    // A run folder locked by a training outside the sweep (`train --resume` by hand).
    let not_busy = || -> Result<()> { trained_by(&run_dir).map_or(Ok(()), |h| Err(refuse(h))) };
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
            not_busy()?;
            remove("stopped before its first checkpoint")?;
            fresh(stop)?
        }
        // The resume takes the run's lock itself; when it fails, a training that holds it is
        // why, and the folder must not be removed.
        CellState::Resumable => match commands::resume_run(&run_dir, stop) {
            Ok(r) => r,
            Err(e) => {
                not_busy()?;
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
    /// Cells not started because another process trains their run folder.
    elsewhere: Vec<usize>,
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
            if let Some(holders) = cell_trained_by(out, cell) {
                eprintln!("skip    {} (being trained by {holders})", cell.name);
                cell.status = "running".into();
                tally.elsewhere.push(i);
                continue;
            }
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
            sticky.extend(&tally.elsewhere);
            sticky.extend(running.iter().map(|r| r.0));
            collect(out, file, &sticky, false)?;
        }
    }
    Ok(tally)
}

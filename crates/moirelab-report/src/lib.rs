//! Reviewing and comparing moirelab runs without a server.
//!
//! This crate owns everything that *reads* a finished or still-running run folder (the layout
//! and record types live in `moirelab_core::run`) and turns it into something a person looks
//! at: the self-contained offline HTML gallery (`report/index.html`, epoch slider, filmstrip,
//! curves, PAD table, confusion matrix, config and meta), the multi-run compare page, PNG/SVG
//! curve plots drawn with an embedded font, animated GIF strips of each probe across epochs,
//! and TensorBoard event files written without TensorFlow or protoc. It does not train, compute
//! CAMs or metrics (it only displays what the trainer and Grad-CAM dump wrote), and it never
//! prints. Anything in a run folder may be missing (a run still training, a data set without
//! masks): pages show what exists and list what is missing; only corrupt files are errors.

mod check;
pub mod gif;
mod html;
mod load;
mod maps;
pub mod plots;
pub mod sweep;
pub mod tb;
mod util;

pub use load::{load_run, EpochData, RunData};

use std::path::{Path, PathBuf};

/// Errors of the report crate. Every variant names the file or run it is about.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Core(#[from] moirelab_core::CoreError),
    #[error("{path}: corrupt file: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error(
        "{path}: not a run folder (none of config.toml, meta.json, metrics.jsonl, epochs/ found)"
    )]
    NotARun { path: PathBuf },
    #[error(
        "{path}: not written by a moirelab standalone export (no {} inside), so it is not \
         replaced: move it away or export to another folder",
        html::EXPORT_MARKER
    )]
    ForeignFiles { path: PathBuf },
    #[error("compare needs at least one run folder")]
    NoRuns,
    /// One run folder given twice (by the same path, or by two that resolve to it).
    #[error("{}", same_run(first, second))]
    SameRun { first: PathBuf, second: PathBuf },
    /// A compare page asked for in a run folder (`run`, resolved; `itself` when `out` is
    /// that folder), where it would overwrite or mix with the run's own files
    /// (`report/index.html` is its gallery).
    #[error("{}", out_in_run(out, run, *itself))]
    OutInRun {
        out: PathBuf,
        run: PathBuf,
        itself: bool,
    },
    #[error("{path}: cannot encode {what}: {msg}")]
    Encode {
        path: PathBuf,
        what: &'static str,
        msg: String,
    },
    #[error("plot {name}: {msg}")]
    Plot { name: String, msg: String },
    #[error("TensorBoard tag {tag:?}: {msg}")]
    Tag { tag: String, msg: String },
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;

/// A page written, and what it left out or tolerated on the way: one line each, naming the
/// file (a map strip that does not decode, a GIF it could not build, duplicate lines in
/// `metrics.jsonl`, …). The page lists them too; the caller decides whether to print them.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The page's `index.html`.
    pub page: PathBuf,
    pub warnings: Vec<String>,
}

fn same_run(first: &Path, second: &Path) -> String {
    if first.as_os_str() == second.as_os_str() {
        format!(
            "{}: given twice (compare shows each run once)",
            first.display()
        )
    } else {
        format!(
            "{} and {}: the same run folder given twice (compare shows each run once)",
            first.display(),
            second.display()
        )
    }
}

fn out_in_run(out: &Path, run: &Path, itself: bool) -> String {
    let here = if itself {
        "is a run folder".to_string()
    } else {
        format!("is inside the run folder {}", run.display())
    };
    format!(
        "{}: {here}; write compare pages outside run folders, where they overwrite none of a \
         run's files",
        out.display()
    )
}

/// Write only `run_dir/report/index.html`, linking the plot files and GIF strips already on
/// disk (from [`plots::write_curves`] / [`gif::write_probe_gifs`] or an earlier
/// [`write_run_report`]) without re-encoding them; the inline curves are always current.
/// This is the cheap per-epoch refresh: GIF encoding is most of a full report's time.
pub fn write_run_page(run_dir: &Path) -> Result<Written> {
    write_run_page_with(run_dir, false)
}

/// [`write_run_page`]; `standalone` copies every image the page links under `report/files/`
/// (GIFs already live in `report/`), so the report folder opens on any machine by itself.
pub fn write_run_page_with(run_dir: &Path, standalone: bool) -> Result<Written> {
    let mut warnings = Vec::new();
    let page = write_run_page_into(run_dir, standalone, &mut warnings)?;
    Ok(Written { page, warnings })
}

/// [`write_run_page_with`] for a caller that needs the warnings even when the page then
/// fails (the training hook): they are pushed onto `warnings` as they arise.
pub fn write_run_page_into(
    run_dir: &Path,
    standalone: bool,
    warnings: &mut Vec<String>,
) -> Result<PathBuf> {
    let run = load::load_run(run_dir)?;
    warnings.extend(run.warnings.iter().cloned());
    let existing = |dir: PathBuf, ext: &str| -> Result<Vec<PathBuf>> {
        let mut v = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd {
                    let p = e
                        .map_err(|source| ReportError::Io {
                            path: dir.clone(),
                            source,
                        })?
                        .path();
                    if p.extension().is_some_and(|x| x == ext) {
                        v.push(p);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ReportError::Io { path: dir, source }),
        }
        v.sort();
        Ok(v)
    };
    let plots = existing(run.dir.join("plots"), "png")?;
    let gifs = existing(run.dir.join("report").join("gifs"), "gif")?;
    html::write_run_page(&run, &plots, &gifs, standalone)
}

/// Write `run_dir/report/index.html` (self-contained apart from relative links to the run's
/// own images), the curve plots under `run_dir/plots/` and one GIF per probe and method
/// under `run_dir/report/gifs/`. Every file is written atomically, so the trainer can call
/// this after each epoch while someone has the page open. A GIF whose frames do not decode
/// is left out with a warning (the page still needs none of them); the page lists it.
pub fn write_run_report(run_dir: &Path) -> Result<Written> {
    write_run_report_with(run_dir, false)
}

/// [`write_run_report`], optionally as a standalone export (see [`write_run_page_with`]).
pub fn write_run_report_with(run_dir: &Path, standalone: bool) -> Result<Written> {
    let mut warnings = Vec::new();
    let page = write_run_report_into(run_dir, standalone, &mut warnings)?;
    Ok(Written { page, warnings })
}

/// [`write_run_report_with`] for a caller that needs the warnings even when the plots or the
/// page then fail (the training hook): they are pushed onto `warnings` as they arise.
pub fn write_run_report_into(
    run_dir: &Path,
    standalone: bool,
    warnings: &mut Vec<String>,
) -> Result<PathBuf> {
    let mut run = load::load_run(run_dir)?;
    warnings.extend(run.warnings.iter().cloned());
    let gifs = gif::write_probe_gifs_for(&run);
    warnings.extend(gifs.skipped.iter().cloned());
    run.warnings.extend(gifs.skipped);
    let plots = plots::write_curves_for(&run)?;
    html::write_run_page(&run, &plots, &gifs.written, standalone)
}

/// Write `out_dir/index.html` comparing `runs` side by side: probes matched by probe id, one
/// global epoch slider, config table with a "differences only" toggle, overlaid curves and a
/// final-metrics table with the best value per row marked. Image links are relative from
/// `out_dir` to each run folder, so `out_dir` may live anywhere on the same file system tree
/// but inside a run folder ([`ReportError::OutInRun`]). A run given twice is
/// [`ReportError::SameRun`].
pub fn write_compare(runs: &[PathBuf], out_dir: &Path) -> Result<Written> {
    write_compare_with(runs, out_dir, false)
}

/// [`write_compare`]; `standalone` copies every linked image under `out_dir/files/`, so the
/// folder opens without the run folders.
pub fn write_compare_with(runs: &[PathBuf], out_dir: &Path, standalone: bool) -> Result<Written> {
    if runs.is_empty() {
        return Err(ReportError::NoRuns);
    }
    check_distinct(runs)?;
    let out = util::resolve(out_dir)?;
    if let Some(run) = util::enclosing_run(&out) {
        return Err(ReportError::OutInRun {
            out: out_dir.to_path_buf(),
            run: run.to_path_buf(),
            itself: run == out,
        });
    }
    let mut loaded = runs
        .iter()
        .map(|r| load::load_run(r))
        .collect::<Result<Vec<_>>>()?;
    disambiguate_names(&mut loaded);
    let page = html::write_compare_page(&loaded, out_dir, standalone)?;
    Ok(Written {
        page,
        warnings: loaded.into_iter().flat_map(|r| r.warnings).collect(),
    })
}

/// Each run once: two arguments that resolve to one folder are an error naming both.
fn check_distinct(runs: &[PathBuf]) -> Result<()> {
    let mut seen: Vec<(PathBuf, &PathBuf)> = Vec::new();
    for r in runs {
        // A path that does not resolve is load_run's to report.
        let Ok(dir) = std::fs::canonicalize(r) else {
            continue;
        };
        if let Some((_, first)) = seen.iter().find(|(d, _)| *d == dir) {
            return Err(ReportError::SameRun {
                first: first.to_path_buf(),
                second: r.clone(),
            });
        }
        seen.push((dir, r));
    }
    Ok(())
}

/// Columns must be told apart: runs sharing a name get their folder (or full path) appended.
fn disambiguate_names(runs: &mut [RunData]) {
    let count = |runs: &[RunData], n: &str| runs.iter().filter(|r| r.name == n).count();
    let dup: Vec<bool> = runs.iter().map(|r| count(runs, &r.name) > 1).collect();
    for (r, d) in runs.iter_mut().zip(&dup) {
        if *d {
            let folder = r
                .dir
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            r.name = format!("{} [{folder}]", r.name);
        }
    }
    let dup: Vec<bool> = runs.iter().map(|r| count(runs, &r.name) > 1).collect();
    for (r, d) in runs.iter_mut().zip(&dup) {
        if *d {
            r.name = format!("{} [{}]", r.name, r.dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_run_names_get_their_folder_then_their_path() {
        let mk = |name: &str, dir: &str| RunData {
            name: name.into(),
            dir: PathBuf::from(dir),
            ..Default::default()
        };
        let mut runs = vec![
            mk("a", "/x/r1"),
            mk("a", "/x/r2"),
            mk("b", "/y/s"),
            mk("b", "/z/s"),
            mk("c", "/c"),
        ];
        disambiguate_names(&mut runs);
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["a [r1]", "a [r2]", "b [s] [/y/s]", "b [s] [/z/s]", "c"]
        );
    }
}

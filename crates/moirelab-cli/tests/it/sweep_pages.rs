//! `moirelab sweep`'s table and compare pages over cells that are already trained (one cell
//! trains, the others are copies of its run folder): one page per line of the charts in a
//! folder of its own, rebuilt whole by `--collect`, and a damaged cell that costs only its own
//! page; and a sweep that fails before training leaves no folder behind.

use crate::sweep::{cells, setup};
use crate::{assert_one_line_error, moirelab, stderr, TINY};
use std::path::{Path, PathBuf};

/// `sweep --emit slurm` over `grids` in `dir/sw`, cell 0 trained and copied to every other
/// cell's run folder; returns the run folders.
fn trained_copies(dir: &Path, grids: &[&str]) -> Vec<PathBuf> {
    let mut args = vec![
        "sweep",
        "--config",
        "tiny.toml",
        "--out",
        "sw",
        "--emit",
        "slurm",
    ];
    for g in grids {
        args.extend(["--grid", g]);
    }
    let o = moirelab(dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = moirelab(dir, &["sweep", "--cell", "0", "--out", "sw"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.join("sw");
    let runs: Vec<PathBuf> = cells(&out)
        .iter()
        .map(|c| out.join(c["run"].as_str().unwrap()))
        .collect();
    for run in &runs[1..] {
        copy_dir(&runs[0], run);
    }
    runs
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The compare pages the sweep page links (in its order), and the cells (run-folder prefixes `NN_`) each
/// page shows.
fn compare_pages(out: &Path) -> Vec<(String, Vec<String>)> {
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let mut pages: Vec<String> = Vec::new();
    for link in html
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
    {
        let link = link.replace("%3D", "=");
        if link.starts_with("compare/") && !pages.contains(&link) {
            pages.push(link);
        }
    }
    pages
        .into_iter()
        .map(|p| {
            let page = std::fs::read_to_string(out.join(&p)).unwrap_or_else(|e| panic!("{p}: {e}"));
            let mut runs: Vec<String> = page
                .split("../../runs/")
                .skip(1)
                .map(|s| s[..3].to_string())
                .collect();
            runs.sort();
            runs.dedup();
            (p, runs)
        })
        .collect()
}

fn folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn each_line_gets_its_own_compare_folder_and_collect_keeps_only_current_ones() {
    let dir = setup();
    // "dx a" and "dx_a" are one file-safe label; the long value passes 255 bytes.
    let long = "x".repeat(300);
    let names = format!("name=dx a,dx_a,{long}");
    let runs = trained_copies(dir.path(), &["train.seed=5,6", &names]);
    let out = dir.path().join("sw");
    let o = moirelab(dir.path(), &["sweep", "--collect", "sw"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pages = compare_pages(&out);
    let shown: Vec<&Vec<String>> = pages.iter().map(|p| &p.1).collect();
    assert_eq!(
        shown,
        [["00_", "03_"], ["01_", "04_"], ["02_", "05_"]]
            .iter()
            .collect::<Vec<_>>(),
        "{pages:?}"
    );
    for (p, _) in &pages {
        let folder = p.split('/').nth(1).unwrap();
        assert!(folder.len() < 100, "{folder}");
    }
    assert_eq!(folders(&out.join("compare")).len(), 3);

    // A line left with one finished cell has no page: the old folder goes too.
    std::fs::remove_dir_all(&runs[3]).unwrap();
    let o = moirelab(dir.path(), &["sweep", "--collect", "sw"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let now = compare_pages(&out);
    assert_eq!(now, pages[1..].to_vec());
    let kept: Vec<String> = now
        .iter()
        .map(|p| p.0.split('/').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(folders(&out.join("compare")), kept);
    assert!(
        !folders(&out).iter().any(|f| f.starts_with('.')),
        "{:?}",
        folders(&out)
    );
}

#[test]
fn a_damaged_cell_loses_its_compare_page_not_the_table() {
    let dir = setup();
    let runs = trained_copies(dir.path(), &["train.seed=5,6", "name=a,b"]);
    let out = dir.path().join("sw");
    // A torn line in the middle of cell 1's metrics.
    let metrics = runs[1].join("metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let (head, rest) = text.split_once('\n').unwrap();
    std::fs::write(&metrics, format!("{}\n{rest}", &head[..head.len() / 2])).unwrap();

    let o = moirelab(dir.path(), &["sweep", "--collect", "sw"]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("warning: ") && lines[0].contains("compare/name=b skipped"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("error: 1 of 4 cells have a damaged run folder")
            && lines[1].contains("01_seed=5_name=b (damaged: metrics.jsonl: line 1"),
        "{err}"
    );
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[2].contains(",damaged: metrics.jsonl: line 1"), "{csv}");
    for r in [rows[1], rows[3], rows[4]] {
        assert!(r.contains(",finished,0."), "{csv}");
    }
    assert_eq!(cells(&out)[0]["status"], "finished");
    assert!(cells(&out)[1]["status"]
        .as_str()
        .unwrap()
        .starts_with("damaged: metrics.jsonl"));
    let pages = compare_pages(&out);
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert_eq!(pages[0].1, ["00_", "02_"]);
    assert_eq!(folders(&out.join("compare")), ["name=a"]);
}

#[test]
fn a_sweep_that_fails_before_training_leaves_no_folder() {
    let dir = setup();
    let no_preset = TINY.replace("preset = \"tiny\"", "root = \"nowhere\"");
    std::fs::write(dir.path().join("t.toml"), no_preset).unwrap();
    for widths in ["model.width=4,6", "model.width=4,8"] {
        let o = moirelab(
            dir.path(),
            &[
                "sweep", "--config", "t.toml", "--grid", widths, "--out", "sw",
            ],
        );
        // The second grid is refused for its data set too, not as another sweep.
        assert_one_line_error(&o, &["nowhere"]);
        assert!(!dir.path().join("sw").exists(), "{}", stderr(&o));
    }
}

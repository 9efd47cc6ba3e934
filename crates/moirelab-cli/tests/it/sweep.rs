//! `moirelab sweep`: a tiny 2×2 grid end to end, continuing after an interruption, one-line
//! errors, and the Slurm script running the same command per cell as the local runner.

use crate::{assert_one_line_error, moirelab, spawn_moirelab, stderr, TINY};
use serde_json::Value;
use std::path::Path;

pub(crate) fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    dir
}

pub(crate) fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub(crate) fn cells(out: &Path) -> Vec<Value> {
    json(&out.join("sweep.json"))["cells"]
        .as_array()
        .unwrap()
        .clone()
}

/// The run folder's `meta.json` argv: what the process that trained it was started with.
fn argv(out: &Path, cell: &Value) -> Value {
    json(&out.join(cell["run"].as_str().unwrap()).join("meta.json"))["argv"].clone()
}

const GRID: [&str; 9] = [
    "sweep",
    "--config",
    "tiny.toml",
    "--grid",
    "data.knobs.rho-flag=0.5,0.9",
    "--grid",
    "model.width=4,6",
    "--out",
    "sw",
];

#[test]
fn sweep_trains_each_cell_once_and_continues_after_an_interruption() {
    let dir = setup();
    let o = moirelab(dir.path(), &GRID);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("sw");
    let cs = cells(&out);
    assert_eq!(cs.len(), 4);
    assert_eq!(cs[1]["name"], "01_rho-flag=0.5_width=6");
    assert_eq!(cs[2]["values"], serde_json::json!(["0.9", "4"]));
    for c in &cs {
        assert_eq!(c["status"], "finished", "{c}");
        // Every cell ran exactly the command sweep.json gives it.
        assert_eq!(argv(&out, c), c["command"]);
    }
    // The swept knob made its own data set (0.5 is the tiny preset's own value).
    let made = json(&dir.path().join("data/tiny_rho-flag-0.9/dataset.json"));
    assert_eq!(made["generator"]["knobs"]["knobs"]["rho-flag"], 0.9);
    assert!(dir.path().join("data/tiny/dataset.json").is_file());
    let run3 =
        std::fs::read_to_string(out.join("runs/03_rho-flag=0.9_width=6/config.toml")).unwrap();
    assert!(
        run3.contains("width = 6") && run3.contains("tiny_rho-flag-0.9"),
        "{run3}"
    );

    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("cell,data.knobs.rho-flag,model.width,status,test_acc"));
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f[3], "finished", "{l}");
        let acc: f64 = f[4]
            .parse()
            .unwrap_or_else(|_| panic!("no test accuracy: {l}"));
        assert!((0.0..=1.0).contains(&acc), "{l}");
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("runs/00_rho-flag%3D0.5_width%3D4/report/index.html"),
        "{html}"
    );
    assert!(out.join("plots/conflicting-accuracy.svg").is_file());
    // One compare page per line of the charts: width=4 and width=6, across rho-flag.
    for w in ["width=4", "width=6"] {
        assert!(
            out.join("compare").join(w).join("index.html").is_file(),
            "{w}"
        );
    }

    // An interruption: one cell lost its summary (stopped while finishing), another never
    // saved a checkpoint. The rerun trains those two and leaves the others alone.
    let run = |i: usize| out.join(cs[i]["run"].as_str().unwrap());
    std::fs::remove_file(run(2).join("summary.json")).unwrap();
    std::fs::remove_dir_all(run(3).join("checkpoints")).unwrap();
    std::fs::remove_file(run(3).join("summary.json")).unwrap();
    let untouched: Vec<Vec<u8>> = (0..2)
        .map(|i| std::fs::read(run(i).join("meta.json")).unwrap())
        .collect();
    let o = moirelab(dir.path(), &GRID);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("2 finished, 2 to train"), "{err}");
    for (i, before) in untouched.iter().enumerate() {
        assert_eq!(&std::fs::read(run(i).join("meta.json")).unwrap(), before);
    }
    let resumed = |i: usize| {
        json(&run(i).join("meta.json"))["resumed"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(resumed(2), 1, "cell 2 continues from its checkpoint");
    assert_eq!(resumed(3), 0, "cell 3 starts again");
    assert!(run(3).join("checkpoints/state.json").is_file());
    for c in cells(&out) {
        assert_eq!(c["status"], "finished", "{c}");
    }
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert_eq!(csv.lines().filter(|l| l.contains(",finished,")).count(), 4);

    // The same folder refuses another grid.
    let mut other = GRID.to_vec();
    other[6] = "model.width=4,8";
    let o = moirelab(dir.path(), &other);
    assert_one_line_error(&o, &["holds another sweep"]);
}

#[test]
fn sweep_errors_are_one_line_and_write_nothing() {
    let dir = setup();
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["--grid", "model.nope=1,2"],
            &["--grid model.nope=1", "nope"],
        ),
        (
            &["--grid", "data.knobs.nope=1"],
            &["data.knobs.nope", "unknown knob"],
        ),
        (
            &["--grid", "model.arch=shallow,nope"],
            &["--grid model.arch=nope"],
        ),
        (&["--grid", "model.arch="], &["model.arch: no values"]),
        (&[], &["at least one --grid"]),
        (
            &["--grid", "model.width=4", "--set", "train.nope=1"],
            &["nope", "--set"],
        ),
        (
            &[
                "--grid",
                "train.seed=1,2,3,4,5,6,7,8,9,10,11",
                "--grid",
                "train.lr=1,2,3,4,5,6,7,8,9,10",
                "--grid",
                "model.width=1,2,3,4,5,6,7,8,9,10",
            ],
            &["1100 cells", "--yes"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["sweep", "--config", "tiny.toml", "--out", "sw"];
        args.extend_from_slice(extra);
        let o = moirelab(dir.path(), &args);
        assert_one_line_error(&o, needles);
        assert!(!dir.path().join("sw").exists(), "{args:?}");
        assert!(!dir.path().join("data").exists(), "{args:?}");
    }
}

#[test]
fn slurm_tasks_run_the_local_runner_command_and_collect_builds_the_table() {
    let dir = setup();
    let o = moirelab(
        dir.path(),
        &[
            "sweep",
            "--config",
            "tiny.toml",
            "--grid",
            "model.width=4,6",
            "--out",
            "sw",
            "--emit",
            "slurm",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("sw");
    let script = out.join("sweep.sbatch");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("#SBATCH --array=0-1\n"), "{text}");
    let o = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Nothing trained yet; the data set is ready for the tasks.
    assert!(!out.join("runs").exists());
    assert!(dir.path().join("data/tiny/dataset.json").is_file());

    // Task 1 as Slurm would start it, from another directory.
    let o = std::process::Command::new("bash")
        .arg(&script)
        .env("SLURM_ARRAY_TASK_ID", "1")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let cs = cells(&out);
    assert_eq!(argv(&out, &cs[1]), cs[1]["command"]);
    assert!(!out.join(cs[0]["run"].as_str().unwrap()).exists());

    let o = moirelab(dir.path(), &["sweep", "--collect", "sw"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[1].contains(",pending,"), "{csv}");
    assert!(lines[2].contains(",finished,"), "{csv}");
    let cs = cells(&out);
    assert_eq!(cs[0]["status"], "pending");
    assert_eq!(cs[1]["status"], "finished");
}

#[test]
fn ctrl_c_stops_the_sweep_with_a_checkpoint_and_counts_no_unfinished_cell() {
    let dir = setup();
    std::fs::write(
        dir.path().join("tiny.toml"),
        TINY.replace("epochs = 1", "epochs = 50"),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_moirelab"))
        .args(GRID)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // SIGINT to the sweep alone (not its process group) once the first cell has a checkpoint.
    let state = dir
        .path()
        .join("sw/runs/00_rho-flag=0.5_width=4/checkpoints/state.json");
    let t0 = std::time::Instant::now();
    while !state.exists() && t0.elapsed() < std::time::Duration::from_secs(300) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let out = dir.path().join("sw");
    let cs = cells(&out);
    assert_eq!(cs[0]["status"], "unfinished", "{}", stderr(&o));
    for c in &cs[1..] {
        assert_eq!(c["status"], "pending", "{c}");
    }
    let meta = json(&out.join("runs/00_rho-flag=0.5_width=4/meta.json"));
    assert_eq!(meta["status"], "interrupted");
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert_eq!(
        csv.lines().filter(|l| l.contains(",finished,")).count(),
        0,
        "{csv}"
    );
    assert!(
        stderr(&o).contains("run the same command again"),
        "{}",
        stderr(&o)
    );
}

/// `sweep --emit slurm` over `train.seed=5,6` in `sw`: the plan and data, nothing trained.
fn emit_seeds(dir: &Path) {
    let o = moirelab(
        dir,
        &[
            "sweep",
            "--config",
            "tiny.toml",
            "--grid",
            "train.seed=5,6",
            "--out",
            "sw",
            "--emit",
            "slurm",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

const SEEDS: [&str; 7] = [
    "sweep",
    "--config",
    "tiny.toml",
    "--grid",
    "train.seed=5,6",
    "--out",
    "sw",
];

#[test]
fn a_cell_that_another_process_trains_is_not_started_again() {
    let dir = setup();
    emit_seeds(dir.path());
    let out = dir.path().join("sw");
    // Cell 0 as a training that has not saved its first checkpoint yet leaves it, holding the
    // run folder's lock (as every training does) from this process.
    let run0 = out.join("runs/00_seed=5");
    std::fs::create_dir_all(&run0).unwrap();
    std::fs::write(run0.join("marker"), "in training").unwrap();
    let guard = moirelab_core::dirlock::exclusive_guard(&run0).unwrap();
    assert!(guard.is_some(), "this file system has no locks");

    let o = moirelab(dir.path(), &["sweep", "--cell", "0", "--out", "sw"]);
    assert_one_line_error(
        &o,
        &[
            "cell 0 (",
            "00_seed=5): being trained by",
            "not started again",
        ],
    );
    assert!(run0.join("marker").is_file(), "the folder was not touched");

    // The whole sweep trains the other cell, reports cell 0 as running elsewhere and fails.
    let o = moirelab(dir.path(), &SEEDS);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    assert!(
        last.starts_with("error: ")
            && last.contains("being trained by another process")
            && last.contains("00_seed=5"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(run0.join("marker").is_file(), "the folder was not touched");
    let cs = cells(&out);
    assert_eq!(cs[0]["status"], "running", "{err}");
    assert_eq!(cs[1]["status"], "finished", "{err}");
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().contains(",running,"), "{csv}");
    assert!(csv.lines().nth(2).unwrap().contains(",finished,"), "{csv}");

    // Once that training has ended, the cell trains as usual.
    drop(guard);
    let o = moirelab(dir.path(), &["sweep", "--cell", "0", "--out", "sw"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!run0.join("marker").exists());
}

/// The run folders of cell `name` (`name`, or `name-2` … of a second training).
fn run_folders(out: &Path, name: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(out.join("runs")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(name))
        .collect();
    names.sort();
    names
}

#[test]
fn a_cell_is_reserved_before_its_run_folder_exists() {
    let dir = setup();
    emit_seeds(dir.path());
    let out = dir.path().join("sw");
    // A `--cell 0` that has reserved the cell but not yet made its run folder (it is still
    // reading the data set), as this process.
    let reservation = out.join("locks/00_seed=5");
    std::fs::create_dir_all(&reservation).unwrap();
    let guard = moirelab_core::dirlock::exclusive_guard(&reservation).unwrap();
    assert!(guard.is_some(), "this file system has no locks");
    let o = moirelab(dir.path(), &["sweep", "--cell", "0", "--out", "sw"]);
    let me = format!("being trained by process {}", std::process::id());
    assert_one_line_error(&o, &["cell 0 (", "00_seed=5): ", &me, "not started again"]);
    assert_eq!(run_folders(&out, "00_seed=5"), Vec::<String>::new());
    drop(guard);
    let o = moirelab(dir.path(), &["sweep", "--cell", "0", "--out", "sw"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        run_folders(&out, "00_seed=5"),
        vec!["00_seed=5".to_string()]
    );
}

#[test]
fn two_cell_commands_started_together_train_the_cell_once() {
    let dir = setup();
    crate::write_endless_tiny(dir.path());
    let o = moirelab(
        dir.path(),
        &[
            "sweep",
            "--config",
            "t.toml",
            "--grid",
            "train.seed=5,6",
            "--out",
            "sw",
            "--emit",
            "slurm",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("sw");
    // Neither has a run folder to lock when it starts; one trains, the other is refused.
    let cell1 = ["sweep", "--cell", "1", "--out", "sw"];
    let (mut a, ra) = spawn_moirelab(dir.path(), &cell1);
    let (mut b, rb) = spawn_moirelab(dir.path(), &cell1);
    let t0 = std::time::Instant::now();
    let (refused, mut trains, lines) = loop {
        if let Some(st) = a.try_wait().unwrap() {
            break (st, b, ra.iter().collect::<Vec<_>>());
        }
        if let Some(st) = b.try_wait().unwrap() {
            break (st, a, rb.iter().collect::<Vec<_>>());
        }
        if t0.elapsed().as_secs() > 120 {
            let _ = (a.kill(), b.kill(), a.wait(), b.wait());
            panic!("both train the cell: {:?}", run_folders(&out, "01_seed=6"));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // The training is endless: killed once its run folder is there.
    while !out.join("runs/01_seed=6/meta.json").is_file() && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = (trains.kill(), trains.wait());
    assert!(!refused.success(), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("error: cell 1 (")
            && lines[0].contains("01_seed=6): being trained by process ")
            && lines[0].ends_with("; not started again"),
        "{lines:?}"
    );
    assert_eq!(
        run_folders(&out, "01_seed=6"),
        vec!["01_seed=6".to_string()]
    );
}

#[test]
fn collect_shows_a_cell_with_a_live_trainer_as_running_and_a_killed_one_as_unfinished() {
    let dir = setup();
    crate::write_endless_tiny(dir.path());
    let o = moirelab(
        dir.path(),
        &[
            "sweep",
            "--config",
            "t.toml",
            "--grid",
            "train.seed=5,6",
            "--out",
            "sw",
            "--emit",
            "slurm",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("sw");
    let (mut trainer, _rx) = spawn_moirelab(dir.path(), &["sweep", "--cell", "0", "--out", "sw"]);
    let state = out.join("runs/00_seed=5/checkpoints/state.json");
    let t0 = std::time::Instant::now();
    while !state.is_file() {
        if t0.elapsed().as_secs() > 120 || trainer.try_wait().unwrap().is_some() {
            let _ = (trainer.kill(), trainer.wait());
            panic!("no checkpoint");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let collected = || {
        let o = moirelab(dir.path(), &["sweep", "--collect", "sw"]);
        let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
        (o, cells(&out), csv)
    };
    let (o, cs, csv) = collected();
    let _ = (trainer.kill(), trainer.wait());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(cs[0]["status"], "running", "{csv}");
    assert_eq!(cs[1]["status"], "pending", "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains(",running,"), "{csv}");
    // Killed: its checkpoint resumes, as before.
    let (o, cs, csv) = collected();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(cs[0]["status"], "unfinished", "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().contains(",unfinished,"),
        "{csv}"
    );
}

#[test]
fn a_changed_base_toml_is_refused_before_any_cell_trains() {
    let dir = setup();
    emit_seeds(dir.path());
    let out = dir.path().join("sw");
    let base = out.join("base.toml");
    let text = std::fs::read_to_string(&base).unwrap();
    std::fs::write(&base, text.replace("width = 4", "width = 8")).unwrap();
    let o = moirelab(dir.path(), &["sweep", "--cell", "0", "--out", "sw"]);
    assert_one_line_error(
        &o,
        &["base.toml", "changed since the sweep was planned", "--out"],
    );
    // Nor does the whole sweep train from it or quietly put the old text back.
    let o = moirelab(dir.path(), &SEEDS);
    assert_one_line_error(&o, &["base.toml", "changed since the sweep was planned"]);
    assert!(!out.join("runs").exists());
    assert!(std::fs::read_to_string(&base)
        .unwrap()
        .contains("width = 8"));
}

#[test]
fn a_damaged_summary_leaves_its_cell_out_of_the_table_and_the_rerun_resumes_it() {
    let dir = setup();
    let o = moirelab(dir.path(), &SEEDS);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("sw");
    let run1 = out.join("runs/01_seed=6");
    std::fs::write(run1.join("summary.json"), "{\"broken").unwrap();
    std::fs::remove_file(out.join("table.csv")).unwrap();

    let o = moirelab(dir.path(), &["sweep", "--collect", "sw"]);
    assert_one_line_error(&o, &["01_seed=6/summary.json", "damaged", "run the sweep"]);
    // The table is rebuilt: cell 0 with its numbers, cell 1 without, saying why.
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[1].contains(",finished,0."), "{csv}");
    assert!(lines[2].contains("damaged: summary.json: "), "{csv}");
    let cs = cells(&out);
    assert!(
        cs[1]["status"]
            .as_str()
            .unwrap()
            .starts_with("damaged: summary.json: "),
        "{}",
        cs[1]
    );

    // The sweep command resumes it from its checkpoint, which writes the summary again.
    let o = moirelab(dir.path(), &SEEDS);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 finished, 1 to train"),
        "{}",
        stderr(&o)
    );
    let meta = json(&run1.join("meta.json"));
    assert_eq!(meta["resumed"].as_array().unwrap().len(), 1, "{meta}");
    json(&run1.join("summary.json"));
    for c in cells(&out) {
        assert_eq!(c["status"], "finished", "{c}");
    }
}

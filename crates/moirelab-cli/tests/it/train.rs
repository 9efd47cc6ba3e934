//! Training through the binary: the foundation's end-to-end slice, kill -9 + resume.

use crate::{moirelab, stderr, TINY};
use std::path::Path;
use std::time::{Duration, Instant};

fn write_cfg(dir: &Path, epochs: u32) {
    std::fs::write(
        dir.join("tiny.toml"),
        TINY.replace("epochs = 1", &format!("epochs = {epochs}")),
    )
    .unwrap();
}

#[test]
fn train_writes_a_run_folder_with_a_grid_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    write_cfg(dir.path(), 2);
    let o = moirelab(dir.path(), &["train", "--config", "tiny.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = dir.path().join("runs/tiny");
    for f in [
        "config.toml",
        "meta.json",
        "metrics.jsonl",
        "summary.json",
        "checkpoints/last.safetensors",
        "epochs/0001/grid.png",
        "epochs/0002/grid.png",
        "epochs/0002/probes.json",
        "epochs/0002/maps.json",
        "epochs/0002/maps/gradcam-pred.png",
        "report/index.html",
    ] {
        assert!(
            run.join(f).is_file(),
            "missing {f}; stderr:\n{}",
            stderr(&o)
        );
    }
    // Plain lines (stderr is not a terminal here), one per epoch.
    let err = stderr(&o);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("event=epoch")).count(),
        2,
        "{err}"
    );
    // The resolved config is complete and re-loadable.
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("[train]") && cfg.contains("[model]") && cfg.contains("[gradcam]"));
    // The run's summary keeps the last dump's attention, also split by explained class.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let att = summary["attention"].as_object().expect("attention");
    assert!(att.contains_key("gradcam/pred"), "{att:?}");
    assert!(
        att.keys().any(|k| k.starts_with("gradcam/true/")),
        "{att:?}"
    );
    // The follow-up commands work on the run folder: predict (one image and a batch of two).
    let images = first_images(dir.path(), 2);
    let mut args = vec!["predict", "--run", "runs/tiny", "--json"];
    args.extend(images.iter().map(String::as_str));
    let o = moirelab(dir.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("predict --json");
    let text = rows.to_string();
    assert_eq!(text.matches(&images[0]).count(), 1, "{text}");
    assert_eq!(text.matches(&images[1]).count(), 1, "{text}");
    // A second run with the same name never overwrites the first.
    let o = moirelab(
        dir.path(),
        &["train", "--config", "tiny.toml", "--set", "train.epochs=1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("runs/tiny-2/config.toml").is_file());
}

#[test]
fn killed_run_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    write_cfg(dir.path(), 3);
    let o = moirelab(
        dir.path(),
        &["train", "--config", "tiny.toml", "--name", "full"],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_moirelab"))
        .args(["train", "--config", "tiny.toml", "--name", "killed"])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill -9 once the first epoch's checkpoint exists, somewhere inside epoch 2.
    let state = dir.path().join("runs/killed/checkpoints/state.json");
    let t0 = Instant::now();
    while !state.exists() && t0.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let o = moirelab(dir.path(), &["train", "--resume", "runs/killed"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let a =
        tch::Tensor::read_safetensors(dir.path().join("runs/full/checkpoints/last.safetensors"))
            .unwrap();
    let b =
        tch::Tensor::read_safetensors(dir.path().join("runs/killed/checkpoints/last.safetensors"))
            .unwrap();
    // Sorted by name: the file's tensor order follows a hash map, not the model.
    let (mut a, mut b) = (a, b);
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a.len(), b.len());
    for ((ka, ta), (kb, tb)) in a.iter().zip(b.iter()) {
        assert_eq!(ka, kb);
        assert!(ta.equal(tb), "weights differ at {ka}");
    }
}

/// The report is the run's view, not its result: a page it cannot write and a map strip that
/// no longer decodes (damaged while it trains) are warnings naming the file; the run finishes,
/// exits 0 and says "finished" in its meta.json.
#[test]
fn report_failures_while_training_are_warnings_and_the_run_still_finishes() {
    let dir = tempfile::tempdir().unwrap();
    write_cfg(dir.path(), 3);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_moirelab"))
        .args(["train", "--config", "tiny.toml"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run = dir.path().join("runs/tiny");
    let strip = run.join("epochs/0001/maps/gradcam-pred.png");
    let t0 = Instant::now();
    while !strip.exists() && t0.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Keep the PNG header (the size still reads), cut the pixels: only decoding fails.
    let bytes = std::fs::read(&strip).unwrap();
    std::fs::write(&strip, &bytes[..bytes.len() / 2]).unwrap();
    let page = run.join("report/index.html");
    std::fs::create_dir_all(run.join("report")).unwrap();
    // The hook may be renaming a fresh page into place meanwhile: retry until the folder stands.
    while std::fs::create_dir(&page).is_err() {
        let _ = std::fs::remove_file(&page);
    }
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("event=warning hook=report text="))
        .collect();
    let page_text = page.display().to_string();
    assert!(warnings.iter().any(|w| w.contains(&page_text)), "{err}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("gradcam-pred.png") && w.contains("gif left out")),
        "{err}"
    );
    assert!(!err.lines().any(|l| l.starts_with("error")), "{err}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "finished");
    assert!(run.join("summary.json").is_file());
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("event=warning hook=report"), "{log}");
}

#[test]
fn dry_run_prints_the_resolved_config_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_cfg(dir.path(), 2);
    let o = moirelab(
        dir.path(),
        &[
            "train",
            "--config",
            "tiny.toml",
            "--dry-run",
            "--set",
            "train.lr=0.01",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("lr = 0.01"), "{out}");
    assert!(!dir.path().join("runs").exists());
}

/// Paths (relative to `root`) of the first `n` PNG images under `root/**/images/`.
fn first_images(root: &Path, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() && !p.ends_with("runs") {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "png")
                && p.parent().is_some_and(|q| q.ends_with("images"))
            {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out.truncate(n);
    assert_eq!(out.len(), n, "no images under {}", root.display());
    out
}

/// The demo with the repository's own three configs on small data: both stories are told
/// from the runs' numbers, the compare page aligns the three runs, nothing lands outside
/// the output folder and the configs' data folder.
#[test]
fn demo_tells_the_flag_and_the_face_story_from_the_shipped_configs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::create_dir(p.join("configs")).unwrap();
    for c in ["shallow", "fixed", "face"] {
        std::fs::copy(
            repo.join(format!("configs/{c}.toml")),
            p.join(format!("configs/{c}.toml")),
        )
        .unwrap();
    }
    // Small data, one epoch: the story's mechanics, not its numbers.
    let small = [
        "--set",
        "data.knobs.count=48",
        "--set",
        "data.image-size=64",
        "--set",
        "train.epochs=1",
        "--set",
        "train.threads=1",
        "--set",
        "gradcam.probes=4",
    ];
    let o = moirelab(p, &[&["demo", "--out", "out"][..], &small].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "== the flag story",
        "flag lift",
        "demo-shallow:",
        "== the face story",
        "face lift",
        "demo-face:",
        "hair-conflicting",
        "demo-compare",
    ] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
    for run in ["demo-shallow", "demo-fixed", "demo-face"] {
        let s = std::fs::read_to_string(p.join(format!("out/{run}/summary.json"))).unwrap();
        assert!(s.contains("\"shortcuts\""), "{run}: {s}");
    }
    let face = std::fs::read_to_string(p.join("out/demo-face/summary.json")).unwrap();
    assert!(face.contains("\"shortcut\": \"hair\""), "{face}");
    // The three data sets share their test cards: every probe row is one picture.
    let page = std::fs::read_to_string(p.join("out/demo-compare/index.html")).unwrap();
    assert!(
        !page.contains("id=\"probe-warning\""),
        "rows flagged as other pictures"
    );
    assert!(
        page.contains("\"cells\":[0,0,0]") || page.contains("\"cells\":[1,1,1]"),
        "no probe row of all three runs"
    );
    // --no-face tells the flag story only.
    let o = moirelab(
        p,
        &[&["demo", "--out", "out2", "--no-face"][..], &small].concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("== the flag story") && !out.contains("face story"),
        "{out}"
    );
}

/// `sanity` checks the gallery's own probes: same rule, same seed (`gradcam.seed`).
#[test]
fn sanity_runs_on_the_gallerys_probes() {
    let dir = tempfile::tempdir().unwrap();
    write_cfg(dir.path(), 1);
    let o = moirelab(
        dir.path(),
        &["train", "--config", "tiny.toml", "--name", "s"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // An output folder that cannot be made or written fails before anything is computed or
    // printed (it used to print the whole table, then fail to write it), and a failure after
    // the folder was made leaves no empty folder behind.
    #[cfg(target_os = "linux")]
    for (out, says) in [
        ("/proc/moirelab-sanity", "cannot create the output folder"),
        ("/proc/self", "the output folder is not writable"),
    ] {
        let o = moirelab(dir.path(), &["sanity", "--run", "runs/s", "--out", out]);
        crate::assert_one_line_error(&o, &[says]);
        assert!(
            o.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    let o = moirelab(
        dir.path(),
        &[
            "sanity",
            "--run",
            "runs/s",
            "--out",
            "fresh/sub",
            "--method",
            "bogus",
        ],
    );
    assert!(!o.status.success());
    assert!(!dir.path().join("fresh").exists(), "{}", stderr(&o));
    let o = moirelab(dir.path(), &["sanity", "--run", "runs/s", "--images", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sanity: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("runs/s/sanity/sanity.json")).unwrap(),
    )
    .unwrap();
    let mut images: Vec<String> = sanity["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let probes: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("runs/s/epochs/0001/probes.json")).unwrap(),
    )
    .unwrap();
    let mut ids: Vec<String> = probes["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    images.sort();
    ids.sort();
    assert_eq!(images.len(), 4);
    assert_eq!(images, ids);
}

/// Whether process `pid` catches SIGINT (its ctrlc handler is installed).
fn catches_sigint(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGINT - 1)) != 0)
}

#[test]
fn ctrl_c_while_the_data_is_scanned_stops_with_130_and_no_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Enough images that opening the data set outlasts the signal's delivery.
    crate::hostile::folder(&d.join("data"), 40);
    std::fs::write(
        d.join("t.toml"),
        crate::hostile::config("data", "").replace("image-size = 16", "image-size = 64"),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_moirelab"))
        .args(["train", "--config", "t.toml", "--runs-dir", "runs"])
        .current_dir(d)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !catches_sigint(child.id()) {
        assert!(start.elapsed().as_secs() < 60, "no SIGINT handler");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert_eq!(
        err.trim(),
        "error: interrupted before training started; no run folder was made"
    );
    assert!(!d.join("runs").exists(), "{err}");
}

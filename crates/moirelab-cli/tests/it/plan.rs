//! `data plan`: the data set a config trains on, as `train` resolves it.

use crate::{assert_one_line_error, lines_until, moirelab, spawn_moirelab, stderr, TINY};
use serde_json::Value;

fn plan(cwd: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec!["data", "plan", "--json"];
    all.extend(args);
    let o = moirelab(cwd, &all);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

#[test]
fn data_plan_says_what_train_would_generate_and_whether_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A patch config with photos of two sides and a knob.
    let patch = TINY.replace(
        "cache = \"memory\"",
        "cache = \"memory\"\nmode = \"patch\"\n[data.knobs]\nsizes = [64, 96]\ncount = 40\nglare-prob = 0.25",
    );
    std::fs::write(d.join("p.toml"), &patch).unwrap();
    let p = plan(d, &["--config", "p.toml"]);
    assert_eq!(p["preset"], "tiny");
    assert_eq!(p["count"], 40);
    assert_eq!(p["sides"], serde_json::json!([64, 96]));
    // The layouts drawn, resolved (the classic four unless `layouts` says otherwise).
    assert_eq!(
        p["layouts"],
        serde_json::json!(["rgb-stripe", "bgr-stripe", "vertical-stripe", "pentile"])
    );
    assert_eq!(
        (p["image_size"].as_u64(), p["mode"].as_str()),
        (Some(64), Some("patch"))
    );
    assert_eq!(
        p["knobs"],
        serde_json::json!(["count=40", "glare-prob=0.25", "sizes=64,96"])
    );
    assert_eq!(p["state"], "missing");
    let root = p["root"].as_str().unwrap().to_string();
    assert!(root.contains("sizes-64_96"), "{root}");

    // The root is the one train uses; a data set generated there from the plan's knobs is
    // what train accepts, and the plan then says it exists.
    let o = moirelab(d, &["train", "--config", "p.toml", "--dry-run"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&root));
    let mut args = vec!["gen-data", "--preset", "tiny", "--out", &root];
    for kv in p["knobs"].as_array().unwrap() {
        args.extend(["--set", kv.as_str().unwrap()]);
    }
    let o = moirelab(d, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(plan(d, &["--config", "p.toml"])["state"], "ready");
    // The same folder named by a config with another knob: train would refuse it.
    let other = patch
        .replace("glare-prob = 0.25", "glare-prob = 0.3")
        .replace(
            "cache = \"memory\"",
            &format!("cache = \"memory\"\nroot = \"{root}\""),
        );
    std::fs::write(d.join("other.toml"), other).unwrap();
    assert_eq!(plan(d, &["--config", "other.toml"])["state"], "other-knobs");
    let o = moirelab(d, &["train", "--config", "other.toml"]);
    assert_one_line_error(&o, &["other knobs"]);
    let o = moirelab(
        d,
        &["train", "--config", "p.toml", "--set", "train.epochs=1"],
    );
    assert!(
        o.status.success(),
        "train accepts the data set made from the plan's knobs: {}",
        stderr(&o)
    );

    // A resize config has one side, its image size; --set overrides apply.
    std::fs::write(d.join("r.toml"), TINY).unwrap();
    let r = plan(d, &["--config", "r.toml", "--set", "data.image-size=96"]);
    assert_eq!(r["sides"], serde_json::json!([96]));
    let l = plan(
        d,
        &[
            "--config",
            "r.toml",
            "--set",
            "data.knobs.layouts=rgbw,delta",
        ],
    );
    assert_eq!(l["layouts"], serde_json::json!(["delta", "rgbw"]));
    assert_eq!(
        (r["mode"].as_str(), r["knobs"].as_array().map(Vec::len)),
        (Some("resize"), Some(0))
    );

    // A data set of the user's own: no generator numbers.
    std::fs::write(
        d.join("own.toml"),
        "[data]\nroot = \"mine\"\n[train]\nepochs = 1\n",
    )
    .unwrap();
    let own = plan(d, &["--config", "own.toml"]);
    assert_eq!(
        (own["preset"].is_null(), own["count"].is_null()),
        (true, true)
    );
    assert_eq!(own["state"], "no-preset");
    let o = moirelab(d, &["data", "plan", "--config", "own.toml"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("missing: set data.preset or run gen-data"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // Bad inputs are one-line errors.
    let o = moirelab(d, &["data", "plan", "--config", "nope.toml"]);
    assert_one_line_error(&o, &["nope.toml"]);
    let o = moirelab(
        d,
        &[
            "data",
            "plan",
            "--config",
            "p.toml",
            "--set",
            "model.widht=3",
        ],
    );
    assert_one_line_error(&o, &["widht"]);
}

#[test]
fn a_data_set_from_another_generator_version_is_stale_and_train_regenerates_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.toml"), TINY).unwrap();
    let root = plan(d, &["--config", "t.toml"])["root"]
        .as_str()
        .unwrap()
        .to_string();
    let o = moirelab(d, &["gen-data", "--preset", "tiny", "--out", &root]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(plan(d, &["--config", "t.toml"])["state"], "ready");
    // As if an older moirelab had made it.
    let meta_path = d.join(&root).join("dataset.json");
    let mut meta: Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    let current = meta["generator"]["version"].as_str().unwrap().to_string();
    meta["generator"]["version"] = "0.0.1+synth.0".into();
    std::fs::write(&meta_path, serde_json::to_string(&meta).unwrap()).unwrap();
    assert_eq!(plan(d, &["--config", "t.toml"])["state"], "stale");
    let o = moirelab(d, &["data", "plan", "--config", "t.toml"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("made by generator 0.0.1+synth.0"), "{text}");

    let o = moirelab(d, &["train", "--config", "t.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("regenerating"), "{}", stderr(&o));
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["generator"]["version"], current.as_str());
    assert_eq!(plan(d, &["--config", "t.toml"])["state"], "ready");
}

/// `moirelab train --config t.toml` in `d`, its stderr lines sent down the channel.
fn spawn_train(d: &std::path::Path) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    spawn_moirelab(d, &["train", "--config", "t.toml"])
}

/// A tiny config's data set held by this test process (as another writer would), and a
/// `train` of that config started behind it, read until it says that it waits for us.
struct BehindAWriter {
    dir: tempfile::TempDir,
    lock: moirelab_synth::WriteLock,
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<String>,
    lines: Vec<String>,
}

fn train_behind_a_writer() -> BehindAWriter {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.toml"), TINY).unwrap();
    let root = d.join(plan(d, &["--config", "t.toml"])["root"].as_str().unwrap());
    let lock = moirelab_synth::WriteLock::acquire(&root, &mut |_| true).unwrap();
    let (child, rx) = spawn_train(d);
    let lines = lines_until(&rx, &format!("waiting for process {}", std::process::id()));
    BehindAWriter {
        dir,
        lock,
        child,
        rx,
        lines,
    }
}

/// A `train` started while another process writes its data set says whom it waits for,
/// waits, and then trains on what that one wrote instead of rendering it a second time (which
/// used to fail at the end: the folder was no longer empty).
#[test]
fn train_waits_for_the_writer_of_its_data_set_and_uses_what_it_wrote() {
    let mut t = train_behind_a_writer();
    let cfg = moirelab_synth::GenConfig::preset("tiny").unwrap();
    moirelab_synth::generate_locked(&t.lock, &cfg, false, &|_, _| {}, &[], None).unwrap();
    drop(t.lock);
    let status = t.child.wait().unwrap();
    t.lines.extend(t.rx.iter());
    let text = t.lines.join("\n");
    assert!(status.success(), "{text}");
    assert!(text.contains("another process has just written"), "{text}");
    assert!(!text.contains("generating data set"), "{text}");
    assert_eq!(
        plan(t.dir.path(), &["--config", "t.toml"])["state"],
        "ready"
    );
}

/// Ctrl-C while `train` waits for another writer stops it at once with one line naming that
/// writer, and no run folder: it never hangs behind a writer that does not finish.
#[cfg(unix)]
#[test]
fn ctrl_c_while_train_waits_for_a_writer_stops_it_in_one_line() {
    let mut t = train_behind_a_writer();
    let pid = std::process::id();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &t.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = t.child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = t.child.kill();
            panic!("train still waits a minute after Ctrl-C: {:?}", t.lines);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    t.lines.extend(t.rx.iter());
    assert_eq!(status.code(), Some(130), "{:?}", t.lines);
    let last = t.lines.last().unwrap();
    assert!(
        last.starts_with("error: ")
            && last.ends_with(&format!(
                "stopped waiting for process {pid} to finish writing it"
            )),
        "{:?}",
        t.lines
    );
    assert!(
        !t.lines.iter().any(|l| l.contains("panicked")),
        "{:?}",
        t.lines
    );
    assert!(!t.dir.path().join("runs").exists());
    drop(t.lock);
}

/// `gen-data --force` on the data set a running `train` reads is refused in one line that
/// names the train's process, and the data set stays as the train found it (it used to be
/// replaced under the run, which then read the new masks beside the old images).
#[cfg(target_os = "linux")]
#[test]
fn gen_data_force_does_not_replace_the_data_set_of_a_running_train() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::write_endless_tiny(d);
    let root = plan(d, &["--config", "t.toml"])["root"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut child, rx) = spawn_train(d);
    let lines = lines_until(&rx, "epoch=1 ");
    let manifest = d.join(&root).join("manifest.jsonl");
    let before = std::fs::read(&manifest).unwrap();
    let o = moirelab(
        d,
        &[
            "gen-data", "--preset", "tiny", "--out", &root, "--seed", "9", "--force",
        ],
    );
    let _ = child.kill();
    let _ = child.wait();
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "not replaced: process {} is reading this data set",
            child.id()
        )),
        "{err}\n{lines:?}"
    );
    assert_eq!(std::fs::read(&manifest).unwrap(), before);
}

/// Ctrl-C (SIGINT) to `child` at its first progress line of the generation; then its exit
/// status and every line it wrote.
#[cfg(unix)]
fn ctrl_c_during_generation(
    mut child: std::process::Child,
    rx: std::sync::mpsc::Receiver<String>,
) -> (std::process::ExitStatus, Vec<String>) {
    let mut lines = lines_until(&rx, "event=gen-data done=");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running a minute after Ctrl-C: {lines:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    lines.extend(rx.iter());
    (status, lines)
}

/// Exit 130 with one line saying that the data set `out` was not written, and nothing of it
/// left: no data set, no `.NAME.partial-PID` folder, no `.NAME.lock` file.
#[cfg(unix)]
fn assert_stopped_cleanly(
    status: std::process::ExitStatus,
    lines: &[String],
    out: &std::path::Path,
) {
    assert_eq!(status.code(), Some(130), "{lines:?}");
    let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{lines:?}");
    assert!(
        errors[0].ends_with("stopped; the data set was not written (nothing of it was kept)"),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("panicked")), "{lines:?}");
    assert!(!out.exists(), "{lines:?}");
    let left: Vec<String> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Ctrl-C while `train` generates its data set stops the generation: one line, exit 130, no
/// run folder and nothing of the data set left (it used to go on rendering, then train anyway
/// and leave a run with a batch-1 checkpoint).
#[cfg(unix)]
#[test]
fn ctrl_c_while_train_generates_its_data_stops_it_without_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("t.toml"),
        format!("{TINY}\n[data.knobs]\ncount = 7000\n"),
    )
    .unwrap();
    let root = d.join(plan(d, &["--config", "t.toml"])["root"].as_str().unwrap());
    let (child, rx) = spawn_train(d);
    let (status, lines) = ctrl_c_during_generation(child, rx);
    assert_stopped_cleanly(status, &lines, &root);
    assert!(!d.join("runs").exists(), "{lines:?}");
}

/// Ctrl-C during `gen-data` removes its partial folder and its lock file and exits 130 with
/// one line (the default handler used to kill it and leave both beside --out).
#[cfg(unix)]
#[test]
fn ctrl_c_during_gen_data_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = [
        "gen-data", "--preset", "tiny", "--count", "7000", "--out", "set",
    ];
    let (child, rx) = spawn_moirelab(d, &args);
    let (status, lines) = ctrl_c_during_generation(child, rx);
    assert_stopped_cleanly(status, &lines, &d.join("set"));
}

//! Hostile inputs through the binary: a PNG claiming 100000×100000 pixels, run names that
//! are not folder names, a batch larger than the data set, an edited state file, config
//! errors, OS errors and hints.

use crate::{assert_one_line_error, moirelab, stderr};
use std::path::Path;
use std::process::Output;

use moirelab_testkit::png::{lying_png, noise_png as png};

/// ImageFolder with `n` 20×20 PNGs per class in train, val and test.
pub fn folder(root: &Path, n: u32) {
    for (k, class) in ["direct", "screen"].iter().enumerate() {
        for (s, split) in ["train", "val", "test"].iter().enumerate() {
            let d = root.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for j in 0..n {
                let id = k as u32 * 1000 + s as u32 * 100 + j;
                std::fs::write(d.join(format!("{id}.png")), png(20, 20, id)).unwrap();
            }
        }
    }
}

/// A small, fast config over `data` (relative to the config's folder).
pub fn config(data: &str, extra_data: &str) -> String {
    format!(
        "[data]\nroot = \"{data}\"\nimage-size = 16\ncache = \"memory\"\nworkers = 0\n{extra_data}\n\
         [model]\narch = \"shallow\"\nwidth = 4\n\
         [train]\nepochs = 1\nbatch-size = 4\nseed = 1\nthreads = 1\ndevice = \"cpu\"\n\
         [gradcam]\nmethods = [\"gradcam\"]\nprobes = 2\n\
         [report]\ntensorboard = false\nevery-epoch = false\n"
    )
}

/// Not a panic, not an abort: a clean exit code.
pub fn assert_no_crash(o: &Output) {
    let err = stderr(o);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let code = o.status.code();
    assert!(
        code.is_some() && code != Some(101) && code != Some(134),
        "exit {:?}: {err}",
        code
    );
}

fn runs_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir.join("runs")) {
        Err(_) => Vec::new(),
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
    }
}

#[test]
fn a_png_claiming_100000_squared_is_refused_by_check_train_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    folder(&p.join("d"), 4);
    let bomb = lying_png(100_000, 100_000);
    assert_eq!(bomb.len(), 68);
    std::fs::write(p.join("d/train/screen/bomb.png"), &bomb).unwrap();
    // data check: the report names it, exit 1
    let o = moirelab(p, &["data", "check", "d"]);
    assert_no_crash(&o);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("bomb.png") && out.contains("100000x100000"),
        "{out}"
    );
    // train refuses it and leaves no run folder
    std::fs::write(p.join("c.toml"), config("d", "")).unwrap();
    let o = moirelab(p, &["train", "--config", "c.toml"]);
    assert_no_crash(&o);
    assert_one_line_error(&o, &["bomb.png", "100000x100000", "on-bad-image"]);
    assert!(runs_in(p).is_empty(), "{:?}", runs_in(p));
    // with skip it trains without it, and says what validation tolerated
    std::fs::write(p.join("c.toml"), config("d", "on-bad-image = \"skip\"")).unwrap();
    std::fs::copy(
        p.join("d/train/direct/0.png"),
        p.join("d/test/direct/copy.png"),
    )
    .unwrap();
    let o = moirelab(p, &["train", "--config", "c.toml", "--name", "skip"]);
    assert_no_crash(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: data: test/direct/copy.png: same pixels as train/direct/0.png"),
        "{err}"
    );
    // the file it left out is named on the terminal and kept in the run's meta.json
    assert!(
        err.contains(
            "1 unusable file(s) left out (on-bad-image = \"skip\"): train/screen/bomb.png"
        ),
        "{err}"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("runs/skip/meta.json")).unwrap())
            .unwrap();
    assert_eq!(
        meta["skipped_files"],
        serde_json::json!(["train/screen/bomb.png"])
    );
    // predict refuses the file with one line, and still predicts a good one
    let o = moirelab(
        p,
        &["predict", "--run", "runs/skip", "d/train/screen/bomb.png"],
    );
    assert_no_crash(&o);
    assert_one_line_error(&o, &["bomb.png", "100000x100000"]);
    let o = moirelab(
        p,
        &["predict", "--run", "runs/skip", "d/test/screen/1200.png"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn run_names_that_are_not_one_plain_folder_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    folder(&p.join("d"), 2);
    std::fs::write(p.join("c.toml"), config("d", "")).unwrap();
    for bad in [".", "..", ".hidden", "a/b", "../x", ""] {
        let o = moirelab(p, &["train", "--config", "c.toml", "--name", bad]);
        assert_no_crash(&o);
        assert_one_line_error(&o, &["run name", "--name"]);
        assert!(!p.join("runs").exists(), "--name {bad:?}");
        assert!(!p.join("runs-2").exists(), "--name {bad:?}");
    }
}

/// `train --set <set>` on a small folder fails with one line holding `needles` and leaves
/// no run folder.
fn refused_before_the_run_folder(set: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    folder(&p.join("d"), 2);
    std::fs::write(p.join("c.toml"), config("d", "")).unwrap();
    let o = moirelab(p, &["train", "--config", "c.toml", "--set", set]);
    assert_no_crash(&o);
    assert_one_line_error(&o, needles);
    assert!(runs_in(p).is_empty(), "{:?}", runs_in(p));
}

#[test]
fn a_batch_larger_than_the_training_set_is_an_error_and_leaves_no_run_folder() {
    refused_before_the_run_folder("train.batch-size=64", &["batch-size = 64", "4 images"]);
}

#[test]
fn an_unknown_gradcam_layer_is_an_error_and_leaves_no_run_folder() {
    refused_before_the_run_folder(
        "gradcam.layers=[\"conv2\", \"conv9\"]",
        &["unknown layer 'conv9'", "conv1, conv2"],
    );
}

#[test]
fn resume_refuses_a_state_file_that_disagrees_with_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    folder(&p.join("d"), 4);
    std::fs::write(p.join("c.toml"), config("d", "")).unwrap();
    let o = moirelab(p, &["train", "--config", "c.toml", "--name", "r"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The run now asks for 3 epochs (1 done): a true resume would train 2 more.
    let cfg = p.join("runs/r/config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("epochs = 1", "epochs = 3")).unwrap();
    let state = p.join("runs/r/checkpoints/state.json");
    let orig = std::fs::read_to_string(&state).unwrap();
    assert!(orig.contains("\"epochs_done\": 1"), "{orig}");
    std::fs::write(
        &state,
        orig.replace("\"epochs_done\": 1", "\"epochs_done\": 3"),
    )
    .unwrap();
    let o = moirelab(p, &["train", "--resume", "runs/r"]);
    assert_no_crash(&o);
    assert_one_line_error(&o, &["state.json", "epoch", "start a new run"]);
    let summary = std::fs::read_to_string(p.join("runs/r/summary.json")).unwrap();
    assert!(summary.contains("\"epochs\": 1"), "{summary}");
    // the honest state resumes and trains the two missing epochs
    std::fs::write(&state, &orig).unwrap();
    let o = moirelab(p, &["train", "--resume", "runs/r"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = std::fs::read_to_string(p.join("runs/r/summary.json")).unwrap();
    assert!(summary.contains("\"epochs\": 3"), "{summary}");
}

#[test]
fn config_errors_name_the_line_in_every_section_and_os_errors_print_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("c.toml"),
        "[data]\npreset = \"tiny\"\n[train]\nepoch = 2\n",
    )
    .unwrap();
    let o = moirelab(p, &["train", "--config", "c.toml"]);
    assert_one_line_error(&o, &["c.toml:4:", "[train]", "epoch"]);
    std::fs::create_dir(p.join("d")).unwrap();
    let o = moirelab(p, &["data", "check", "d", "--manifest", "nope.csv"]);
    assert_one_line_error(&o, &["nope.csv"]);
    let err = stderr(&o);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn the_hint_for_a_non_empty_output_folder_names_the_real_flag() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir(p.join("out")).unwrap();
    std::fs::write(p.join("out/keep.txt"), "x").unwrap();
    let o = moirelab(
        p,
        &[
            "gen-data", "--preset", "tiny", "--out", "out", "--count", "4",
        ],
    );
    assert_one_line_error(&o, &["not empty", "--force"]);
}

fn weights(run: &Path) -> Vec<(String, tch::Tensor)> {
    let mut w = tch::Tensor::read_safetensors(run.join("checkpoints/last.safetensors")).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

/// Spawn `moirelab train` on `c.toml` as run `name`, silent.
fn spawn_train(p: &Path, name: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_moirelab"))
        .args(["train", "--config", "c.toml", "--name", name])
        .current_dir(p)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Wait until the run's first checkpoint exists (`true`) or the child has exited (`false`).
fn wait_for_checkpoint(child: &mut std::process::Child, run: &Path) -> bool {
    loop {
        if run.join("checkpoints/state.json").is_file() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return run.join("checkpoints/state.json").is_file();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// kill -9 at 20 seeded random points of a run after its first checkpoint (10–90 % of the
/// measured time from there to the end, so some land in a Grad-CAM dump, a checkpoint write
/// or a report write), resume until it finishes: the weights equal an uninterrupted run's bit
/// for bit. The kill points are timed from the child's own first checkpoint, not from its
/// start, so a busy machine (a slower data-set open) does not move them all before it, and a
/// child that ends before its kill shortens the time the next kills are drawn from.
#[test]
fn kill_9_at_random_points_and_resume_gives_bitwise_equal_weights() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    folder(&p.join("d"), 8);
    std::fs::write(
        p.join("c.toml"),
        config("d", "").replace("epochs = 1", "epochs = 3"),
    )
    .unwrap();
    let mut child = spawn_train(p, "full");
    assert!(wait_for_checkpoint(&mut child, &p.join("runs/full")));
    let t0 = Instant::now();
    assert!(child.wait().unwrap().success());
    let mut rest_s = t0.elapsed().as_secs_f64();
    let want = weights(&p.join("runs/full"));
    // 20 kill points in [0.1, 0.9) of the rest from a fixed-seed LCG.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let fracs: Vec<f64> = (0..20)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            0.1 + 0.8 * ((state >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect();
    let mut killed_running = 0;
    for (k, frac) in fracs.iter().enumerate() {
        let name = format!("k{k}");
        let run = p.join("runs").join(&name);
        let mut child = spawn_train(p, &name);
        assert!(
            wait_for_checkpoint(&mut child, &run),
            "kill point {k}: no checkpoint"
        );
        let t = Instant::now();
        let deadline = Duration::from_secs_f64(rest_s * frac);
        while t.elapsed() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_some() {
            // it finished first: the machine got faster, so time the next kills by this run
            rest_s = t.elapsed().as_secs_f64();
        } else {
            killed_running += 1;
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let o = moirelab(p, &["train", "--resume", &format!("runs/{name}")]);
        assert!(o.status.success(), "kill point {k}: {}", stderr(&o));
        let got = weights(&run);
        assert_eq!(got.len(), want.len());
        for ((ka, ta), (kb, tb)) in want.iter().zip(&got) {
            assert_eq!(ka, kb);
            assert!(ta.equal(tb), "kill point {k}: weights differ at {ka}");
        }
    }
    // A child that finished before its kill tests nothing; most must still be running.
    assert!(
        killed_running >= 10,
        "only {killed_running} of 20 kills found the run still going"
    );
}

#[cfg(unix)]
#[test]
fn data_check_follows_links_out_of_the_root_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    folder(&p.join("d"), 2);
    folder(&p.join("elsewhere"), 1);
    std::os::unix::fs::symlink(
        p.join("elsewhere/train/screen"),
        p.join("d/train/screen/ext"),
    )
    .unwrap();
    let o = moirelab(p, &["data", "check", "d"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(" 12 files,") && out.contains("not followed"),
        "{out}"
    );
    let o = moirelab(p, &["data", "check", "d", "--follow-links", "all"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(" 13 files,"), "{out}");
    let o = moirelab(p, &["data", "check", "d", "--follow-links", "some"]);
    assert_one_line_error(&o, &["--follow-links some", "inside, all, none"]);
}

#[test]
fn data_check_eval_accepts_a_test_only_folder_and_still_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    folder(&p.join("full"), 2);
    std::fs::create_dir_all(p.join("d")).unwrap();
    std::fs::rename(p.join("full/test"), p.join("d/test")).unwrap();
    // As a training set it has no training images: an error, exit 1.
    let o = moirelab(p, &["data", "check", "d"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("no usable training images"), "{out}");
    // As an evaluation set it is fine: exit 0, nothing about training.
    let o = moirelab(p, &["data", "check", "--eval", "d"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains("training images"), "{out}");
    // A broken file is still an error.
    std::fs::write(p.join("d/test/screen/bad.png"), b"not a png").unwrap();
    let o = moirelab(p, &["data", "check", "--eval", "d"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("test/screen/bad.png"), "{out}");
    // A folder of one class (genuine photos only) is a valid evaluation set, as eval takes it.
    std::fs::remove_dir_all(p.join("d/test/screen")).unwrap();
    let o = moirelab(p, &["data", "check", "--eval", "d"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let row = |l: &str| l.split_whitespace().collect::<Vec<_>>() == ["test", "2", "2"];
    assert!(
        out.contains("classes [direct]") && out.lines().any(row),
        "{out}"
    );
    // In a full data set only the test split is read: a broken training file is not its
    // concern.
    folder(&p.join("full2"), 2);
    std::fs::write(p.join("full2/train/screen/bad.png"), b"not a png").unwrap();
    let o = moirelab(p, &["data", "check", "--eval", "full2"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains("bad.png"), "{out}");
}

/// `moirelab` with extra environment variables.
fn moirelab_env(cwd: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_moirelab"));
    c.args(args).current_dir(cwd).env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the moirelab binary runs")
}

#[test]
fn the_shared_decode_cache_drops_deleted_data_sets_and_checks_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    folder(&p.join("d"), 2);
    let cfg = config("d", "").replace("cache = \"memory\"", "cache = \"auto\"");
    std::fs::write(p.join("c.toml"), cfg).unwrap();
    let cache = p.join("cache");
    // What a deleted (temporary) data set leaves behind.
    let stale = cache.join("decode/gone-00ff");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("x.mlc"), vec![0u8; 4096]).unwrap();
    std::fs::write(stale.join("root.txt"), p.join("deleted").to_str().unwrap()).unwrap();
    let env = [("MOIRELAB_CACHE", cache.as_path())];
    let o = moirelab_env(p, &env, &["train", "--config", "c.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists(), "the orphan is deleted");
    let kept: Vec<_> = std::fs::read_dir(cache.join("decode"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let owner = std::fs::read_to_string(kept[0].join("root.txt")).unwrap();
    assert_eq!(Path::new(&owner), p.join("d").canonicalize().unwrap());

    let bad = Path::new("lots");
    let env = [
        ("MOIRELAB_CACHE", cache.as_path()),
        ("MOIRELAB_CACHE_MAX_GB", bad),
    ];
    let o = moirelab_env(
        p,
        &env,
        &["train", "--config", "c.toml", "--name", "capped"],
    );
    assert_no_crash(&o);
    assert_one_line_error(&o, &["MOIRELAB_CACHE_MAX_GB=lots", "gigabytes"]);
    assert!(!p.join("runs/capped").exists());
}

/// A run that a process is training is not trained by a second one (`train --resume` while it
/// runs used to append every epoch to `metrics.jsonl` twice), and SIGTERM, what a batch system
/// sends before it kills a job, stops a training as Ctrl-C does: after its batch, with a
/// checkpoint, exit 130.
#[cfg(target_os = "linux")]
#[test]
fn a_running_training_is_not_resumed_twice_and_sigterm_saves_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::write_endless_tiny(d);
    let args = ["train", "--config", "t.toml", "--name", "long"];
    let (mut child, rx) = crate::spawn_moirelab(d, &args);
    crate::lines_until(&rx, "epoch=1 ");
    let o = moirelab(d, &["train", "--resume", "runs/long"]);
    let refused = stderr(&o);
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let rest: Vec<String> = rx.iter().collect();
    let status = child.wait().unwrap();
    assert_one_line_error(
        &o,
        &[&format!(
            "runs/long: being trained by process {}; not started a second time",
            child.id()
        )],
    );
    assert_eq!(status.code(), Some(130), "{refused}\n{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("checkpoint saved")),
        "{rest:?}"
    );
    assert!(d.join("runs/long/checkpoints/state.json").is_file());
}

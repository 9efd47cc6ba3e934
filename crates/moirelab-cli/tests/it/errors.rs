use crate::{assert_one_line_error, moirelab};

#[test]
fn missing_config_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = moirelab(dir.path(), &["train", "--config", "nope.toml"]);
    assert_one_line_error(&o, &["nope.toml"]);
}

#[test]
fn toml_syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[data]\nroot = \"d\"\n[train\nepochs = 1\n",
    )
    .unwrap();
    let o = moirelab(dir.path(), &["train", "--config", "c.toml"]);
    assert_one_line_error(&o, &["c.toml:3"]);
}

#[test]
fn unknown_key_names_file_section_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[data]\nroot = \"d\"\n[train]\nepochs = 1\nlearning-rate = 0.1\n",
    )
    .unwrap();
    let o = moirelab(dir.path(), &["train", "--config", "c.toml"]);
    assert_one_line_error(&o, &["c.toml:5", "[train]", "learning-rate"]);
    let o = moirelab(
        dir.path(),
        &[
            "train",
            "--config",
            "c.toml",
            "--set",
            "model.arch=transformer",
        ],
    );
    assert!(!o.status.success());
}

#[test]
fn missing_data_root_is_a_clear_error_and_writes_no_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[data]\nroot = \"no/such/dir\"\n",
    )
    .unwrap();
    let o = moirelab(dir.path(), &["train", "--config", "c.toml"]);
    assert_one_line_error(&o, &["no/such/dir"]);
    assert!(!dir.path().join("runs").exists());
}

/// A file where the data set's folder should be: named as a file (it used to be called
/// missing, or, with a preset, written over with a generated data set that then failed).
#[test]
fn a_data_root_that_is_a_file_is_named_as_one_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("labels.csv"), "path,label\n").unwrap();
    for preset in ["", "preset = \"tiny\"\n"] {
        std::fs::write(
            dir.path().join("c.toml"),
            format!("[data]\nroot = \"labels.csv\"\n{preset}"),
        )
        .unwrap();
        for args in [
            &["train", "--config", "c.toml"][..],
            &["data", "plan", "--config", "c.toml"],
        ] {
            let o = moirelab(dir.path(), args);
            assert_one_line_error(&o, &["data.root = labels.csv is a file", "data.manifest"]);
        }
        assert!(!dir.path().join("runs").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}

#[test]
fn unknown_preset_lists_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let o = moirelab(dir.path(), &["gen-data", "--preset", "nope", "--out", "d"]);
    assert_one_line_error(&o, &["nope", "flag-shortcut"]);
    assert!(!dir.path().join("d").exists());
}

#[test]
fn report_on_a_non_run_folder_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let o = moirelab(dir.path(), &["report", "."]);
    assert_one_line_error(&o, &["not a run folder"]);
}

/// A run folder as far as `report` and `compare` look: `config.toml` and `meta.json`.
pub fn fake_run(dir: &std::path::Path, extra_meta: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.toml"), "[train]\nepochs = 1\n").unwrap();
    let meta = format!(
        r#"{{"name": "n", "argv": [], "moirelab_version": "0", "tch_version": "0",
        "libtorch_version": "0", "device": "cpu", "threads": 1, "seed": 1,
        "started": "2026-01-01T00:00:00Z", "status": "finished"{extra_meta}}}"#
    );
    std::fs::write(dir.join("meta.json"), meta).unwrap();
}

/// `compare` with one run says what to run instead (clap's "2 values required" did not); a
/// run given twice and an --out in a run folder are one line naming them.
#[test]
fn compare_refuses_one_run_a_run_twice_and_an_out_in_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fake_run(&d.join("r1"), "");
    fake_run(&d.join("r2"), "");
    let o = moirelab(d, &["compare", "r1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(
        &o,
        &["two or more run folders, got only r1", "moirelab report r1"],
    );
    let o = moirelab(d, &["compare", "r1", "r2", "r1"]);
    assert_one_line_error(&o, &["error: r1: given twice"]);
    let o = moirelab(d, &["compare", "r1", "./r1/"]);
    assert_one_line_error(&o, &["error: r1 and ./r1/: the same run folder"]);
    let o = moirelab(d, &["compare", "r1", "r2", "--out", "r2/report"]);
    assert_one_line_error(&o, &["error: r2/report: is inside the run folder"]);
    assert!(!d.join("r2/report").exists());
    let o = moirelab(d, &["compare", "r1", "r2", "--out", "cmp"]);
    assert!(o.status.success(), "{}", crate::stderr(&o));
    assert!(d.join("cmp/index.html").is_file());
}

/// Every command that opens a run refuses one a newer moirelab wrote (a higher
/// `format_version` in meta.json), in one line naming it, before reading anything else.
#[test]
fn a_run_of_a_newer_format_is_one_line_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fake_run(
        &d.join("new"),
        r#", "format_version": 9, "stages": {"v2": true}"#,
    );
    fake_run(&d.join("old"), "");
    std::fs::write(d.join("x.png"), "not read").unwrap();
    let want = "error: new: written by a newer moirelab (run format 9, this build reads up to 1)";
    for args in [
        &["report", "new"][..],
        &["compare", "old", "new", "--out", "cmp"],
        &["eval", "--run", "new"],
        &["predict", "--run", "new", "x.png"],
        &["explain", "--run", "new", "--out", "e", "x.png"],
        &["sanity", "--run", "new"],
        &["train", "--resume", "new"],
    ] {
        let o = moirelab(d, args);
        assert_one_line_error(&o, &[want]);
    }
    assert!(!d.join("cmp").exists() && !d.join("e").exists());
    assert!(!d.join("new/report").exists());
}

#[test]
fn a_closed_stdout_pipe_ends_the_command_quietly() {
    // `moirelab ... | head -1`: the reader is gone before the command prints. Rust ignores
    // SIGPIPE, so `println!` used to panic with a backtrace (exit 101); the command now dies
    // of the signal as other tools do, and says nothing.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[data]\nroot = \"d\"\nimage-size = 64\n[model]\narch = \"vgg\"\n",
    )
    .unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_moirelab"))
        .current_dir(dir.path())
        .args(["model", "summary", "--config", "c.toml"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_ne!(o.status.code(), Some(101), "{:?}", o.status);
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{:?}", o.status);
    }
}

/// An unknown table is named as one, not as a key of the table before it.
#[test]
fn an_unknown_table_is_not_blamed_on_the_section_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = "[data]\nroot = \"d\"\n[train]\nepochs = 1\n\n[bogus]\nx = 1\n";
    std::fs::write(dir.path().join("c.toml"), c).unwrap();
    let o = moirelab(dir.path(), &["train", "--config", "c.toml", "--dry-run"]);
    assert_one_line_error(&o, &["c.toml:6: unknown field `bogus`"]);
    let c = "[data]\nroot = \"d\"\n[train]\nepochs = 1\n\n[data.bogus]\nx = 1\n";
    std::fs::write(dir.path().join("c.toml"), c).unwrap();
    let o = moirelab(dir.path(), &["train", "--config", "c.toml", "--dry-run"]);
    assert_one_line_error(&o, &["c.toml:6: in [data]: unknown field `bogus`"]);
}

/// A usage error is one line that says where to read the usage, with clap's exit status 2;
/// help and version still print in full.
#[test]
fn usage_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needles) in [
        (
            &["eval"][..],
            &["--run <RUN>", "(see 'moirelab eval --help')"][..],
        ),
        (
            &["eval", "--run", "a", "--run", "b"],
            &["cannot be used multiple times"],
        ),
        (
            &["gen-data", "--count", "-5"],
            &["'-5'", "(see 'moirelab gen-data --help')"],
        ),
        (&["bogus"], &["'bogus'", "(see 'moirelab --help')"]),
    ] {
        let o = moirelab(dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_one_line_error(&o, needles);
    }
    let o = moirelab(dir.path(), &["eval", "--help"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("Usage: moirelab eval"));
}

/// An output folder that is a file is named as one before any work (it used to be "File
/// exists (os error 17)", after sanity had printed its whole table), and `sanity --images 0`
/// names the flag.
#[test]
fn an_output_folder_that_is_a_file_is_named_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("f.txt"), "x").unwrap();
    std::fs::write(d.join("t.toml"), crate::TINY).unwrap();
    for args in [
        &["explain", "--run", "r", "--out", "f.txt", "x.png"][..],
        &["compare", "r1", "r2", "--out", "f.txt"],
        &["sanity", "--run", "r", "--out", "f.txt"],
    ] {
        let o = moirelab(d, args);
        assert_one_line_error(&o, &["f.txt: exists and is not a folder"]);
    }
    // The demo names its own flag (it used to blame a --runs-dir it does not have).
    let o = moirelab(d, &["demo", "--out", "f.txt"]);
    assert_one_line_error(&o, &["error: --out f.txt: exists and is not a folder"]);
    // (train first generates its data set, and says so)
    let o = moirelab(d, &["train", "--config", "t.toml", "--runs-dir", "f.txt"]);
    assert_last_line_error(&o, "--runs-dir f.txt: exists and is not a folder");
    let o = moirelab(d, &["sanity", "--run", "r", "--out", "f.txt/sub"]);
    assert_one_line_error(&o, &["f.txt/sub: f.txt is a file, not a folder"]);
    let o = moirelab(d, &["sanity", "--run", "r", "--images", "0"]);
    assert_one_line_error(&o, &["--images 0"]);
}

/// A train that fails before its first step leaves neither its run folder nor the runs
/// folder it made for it.
#[test]
fn a_train_that_fails_at_the_start_leaves_no_empty_runs_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.toml"), crate::TINY).unwrap();
    let o = moirelab(
        d,
        &[
            "train",
            "--config",
            "t.toml",
            "--runs-dir",
            "rc",
            "--set",
            "train.class-weights=[1]",
        ],
    );
    assert_last_line_error(&o, "class-weights");
    assert!(!d.join("rc").exists());
}

/// Failed, with an error naming `needle` on the last line of stderr and no panic.
fn assert_last_line_error(o: &std::process::Output, needle: &str) {
    let err = crate::stderr(o);
    assert!(!o.status.success(), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: ") && last.contains(needle),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// `train --dry-run` checks the CAM layers against the model, as `train` does, even before
/// the data set exists.
#[test]
fn dry_run_refuses_an_unknown_cam_layer() {
    let dir = tempfile::tempdir().unwrap();
    let c = crate::TINY.replace("probes = 4", "probes = 4\nlayers = [\"nope\"]");
    std::fs::write(dir.path().join("t.toml"), c).unwrap();
    let o = moirelab(dir.path(), &["train", "--config", "t.toml", "--dry-run"]);
    assert_one_line_error(&o, &["unknown layer 'nope'", "conv1"]);
    assert!(!dir.path().join("data").exists());
}

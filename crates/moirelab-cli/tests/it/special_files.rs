//! A config or manifest named by mistake: a FIFO, `/dev/zero`, an enormous file. Each is
//! refused at once with one line naming it; none blocks or fills memory.

use crate::{assert_one_line_error, stderr};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `moirelab ARGS` in `d`, killed (and the test failed) if it runs longer than 30 s.
fn bounded(d: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moirelab"))
        .args(args)
        .current_dir(d)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!("moirelab {args:?} hung: {}", stderr(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

#[test]
fn config_that_is_a_fifo_or_a_device_or_huge_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    mkfifo(&d.join("f.png"));
    let o = bounded(d, &["train", "--config", "f.png"]);
    assert_one_line_error(&o, &["f.png: not a regular file (a FIFO)"]);
    let o = bounded(d, &["train", "--config", "/dev/zero"]);
    assert_one_line_error(&o, &["/dev/zero: not a regular file (a character device)"]);
    let f = std::fs::File::create(d.join("big.toml")).unwrap();
    f.set_len(3 << 30).unwrap(); // sparse
    let o = bounded(d, &["train", "--config", "big.toml"]);
    assert_one_line_error(&o, &["big.toml: 3.0 GB, above the 16.0 MB a config may be"]);
    let o = bounded(
        d,
        &[
            "sweep",
            "--config",
            "f.png",
            "--grid",
            "train.lr=0.1,0.2",
            "--out",
            "sw",
        ],
    );
    assert_one_line_error(&o, &["f.png: not a regular file (a FIFO)"]);
}

#[test]
fn manifest_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    mkfifo(&d.join("fifo.csv"));
    for (name, want) in [
        ("fifo.csv", "fifo.csv: not a regular file (a FIFO)"),
        (
            "/dev/zero",
            "/dev/zero: not a regular file (a character device)",
        ),
    ] {
        let o = bounded(d, &["data", "check", ".", "--manifest", name]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
        let cfg = crate::hostile::config(".", &format!("manifest = \"{name}\"\nformat = \"csv\""));
        std::fs::write(d.join("t.toml"), cfg).unwrap();
        let o = bounded(d, &["train", "--config", "t.toml", "--runs-dir", "runs"]);
        assert_one_line_error(&o, &[want]);
        assert!(!d.join("runs").exists());
    }
}

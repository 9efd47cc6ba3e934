//! The `moirelab` binary as a user runs it: exit codes, one-line errors, run folders.

mod bench;
mod errors;
mod eval;
mod eval_checks;
mod fuzz;
mod hostile;
mod plan;
mod pretrained;
mod run_files;
mod special_files;
mod sweep;
mod sweep_pages;
mod train;

use std::path::Path;
use std::process::{Command, Output};

/// A one-epoch shallow run on the tiny preset (64 px), as small as a real run gets.
pub const TINY: &str = r#"
[data]
preset = "tiny"
image-size = 64
cache = "memory"

[model]
arch = "shallow"
width = 4

[train]
epochs = 1
batch-size = 8
seed = 3
threads = 1
device = "cpu"

[gradcam]
methods = ["gradcam"]
probes = 4
"#;

pub fn moirelab(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moirelab"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("the moirelab binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An error is exactly one line on stderr starting with `error:`, and no backtrace.
pub fn assert_one_line_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    for n in needles {
        assert!(err.contains(n), "expected '{n}' in: {err}");
    }
}

/// `moirelab ARGS` started in `d`, and its stderr line by line.
pub fn spawn_moirelab(
    d: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_moirelab"))
        .args(args)
        .current_dir(d)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::io::BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Lines from `rx` until one contains `needle` (all of them, that one last).
pub fn lines_until(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains(needle)) {
        match rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("no line with '{needle}': {lines:?}"),
        }
    }
    lines
}

/// `d/t.toml`: the tiny config with epochs enough to train until the test stops it.
pub fn write_endless_tiny(d: &Path) {
    std::fs::write(
        d.join("t.toml"),
        TINY.replace("epochs = 1", "epochs = 100000"),
    )
    .unwrap();
}

//! The second half of `eval.rs`'s run: what `eval` does with the trained run once its own
//! numbers are checked. Thresholds given or fixed on a set's genuine photos, BatchNorm
//! statistics re-estimated per row, and the inputs it refuses. Kept apart so that each file
//! reads in one sitting; the run is trained once, in `eval.rs`.

use crate::eval::{close, copy, ok_json};
use crate::{assert_one_line_error, moirelab, stderr};
use serde_json::Value;
use std::path::Path;

/// `--threshold`, `--calibrate`/`--bpcer` and `--adapt-bn` on the run in `d/runs/tiny`, whose
/// summary is `summary`; `config` is the TOML it was trained from.
pub(crate) fn thresholds_and_adapted_bn(
    d: &Path,
    summary: &Value,
    classes: &[String],
    n_test: usize,
    config: &str,
) {
    // The threshold given, or fixed on a set's bona fide images at a rejection rate.
    let at_half = ok_json(
        d,
        &["eval", "--run", "runs/tiny", "--threshold", "0.5", "--json"],
    );
    assert_eq!(at_half["pad"]["threshold"], 0.5);
    let calibrated = [
        "eval",
        "--run",
        "runs/tiny",
        "--data",
        "only-test",
        "--calibrate",
        "only-test",
        "--bpcer",
        "0.25",
    ];
    let cal = ok_json(d, &[&calibrated[..], &["--json"]].concat());
    let bpcer = cal["pad"]["bpcer"].as_f64().unwrap();
    assert!(bpcer <= 0.25, "{cal}");
    assert_ne!(cal["pad"]["threshold"], summary["threshold"]);
    let o = moirelab(d, &calibrated);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        first.contains("fixed on only-test") && first.contains("bona fide images rejected"),
        "{first}"
    );
    let o = moirelab(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--threshold",
            "0.5",
            "--calibrate",
            "only-test",
        ],
    );
    assert_one_line_error(&o, &["--threshold and --calibrate"]);
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--bpcer", "0.1"]);
    assert_one_line_error(&o, &["--bpcer", "add --calibrate"]);
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--threshold", "1.5"]);
    assert_one_line_error(&o, &["--threshold 1.5", "[0, 1]"]);
    // BatchNorm statistics re-estimated per row: the same images in two layouts give the
    // same row (the second does not start from the first's statistics), the run's threshold
    // stays, and the scores move off the trained statistics' ones.
    let adapted = [
        "eval",
        "--run",
        "runs/tiny",
        "--data",
        "only-test",
        "--data",
        "tiny-test.csv",
        "--adapt-bn",
        "--json",
    ];
    let rows = ok_json(d, &adapted);
    let rows = rows.as_array().unwrap();
    let plain = ok_json(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--data",
            "only-test",
            "--json",
        ],
    );
    for r in rows {
        assert_eq!(r["adapted_bn"]["images"], n_test);
        assert_eq!(r["adapted_bn"]["statistics"], "scale");
        assert_eq!(r["pad"]["threshold"], summary["threshold"]);
        assert_eq!(r["loss"], rows[0]["loss"], "{r}");
        assert_eq!(r["pad"]["auc"], rows[0]["pad"]["auc"], "{r}");
    }
    assert!(plain.get("adapted_bn").is_none());
    assert_ne!(plain["loss"], rows[0]["loss"]);
    // The per-epoch adapted set of the best epoch: the same re-estimate.
    let best_bn = &summary["extra"]["only-bn"];
    assert!(close(&rows[0]["loss"], &best_bn["loss"]), "{best_bn}");
    assert_eq!(rows[0]["accuracy"], best_bn["accuracy"]);
    let timeless = |v: &Value| {
        let mut v = v.clone();
        v["wall_s"] = Value::Null;
        v
    };
    let again = ok_json(d, &adapted);
    for (a, b) in again.as_array().unwrap().iter().zip(rows) {
        assert_eq!(timeless(a), timeless(b));
    }
    let o = moirelab(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--data",
            "only-test",
            "--adapt-bn",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("variances re-estimated on each row's own"));
    let all = ok_json(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--data",
            "only-test",
            "--adapt-bn",
            "all",
            "--json",
        ],
    );
    assert_eq!(all["adapted_bn"]["statistics"], "all");
    assert_ne!(all["loss"], rows[0]["loss"]);
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--adapt-bn", "mean"]);
    assert_one_line_error(&o, &["--adapt-bn", "'mean'", "scale, all"]);
    let o = moirelab(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--adapt-bn",
            "--calibrate",
            "only-test",
        ],
    );
    assert_one_line_error(&o, &["--adapt-bn and --calibrate"]);
    let attack = classes
        .iter()
        .find(|c| *c == "screen")
        .unwrap_or(&classes[1]);
    for e in std::fs::read_dir(d.join("only-test/test").join(attack)).unwrap() {
        let p = e.unwrap().path();
        copy(
            &p,
            &d.join("attacks").join(attack).join(p.file_name().unwrap()),
        );
    }
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--calibrate", "attacks"]);
    assert_one_line_error(&o, &["--calibrate attacks", "no bona fide"]);
    let lone = std::fs::read_dir(d.join("attacks").join(attack))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    copy(&lone, &d.join("single").join(attack).join("one.png"));
    let o = moirelab(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--data",
            "single",
            "--adapt-bn",
        ],
    );
    assert_one_line_error(&o, &["--adapt-bn on single", "at least 2 images", "has 1"]);
    let lone_set = config.replace(
        "root = \"only-test\", adapt-bn",
        "root = \"single\", adapt-bn",
    );
    std::fs::write(d.join("lone.toml"), lone_set).unwrap();
    let o = moirelab(d, &["train", "--config", "lone.toml"]);
    assert_one_line_error(&o, &["eval.extra 'only-bn'", "at least 2 images", "has 1"]);
    assert!(!d.join("runs/lone").exists());
}

/// One-line errors for sets `eval` cannot read, and `--skip-bad` for a set with unusable
/// files; `one` is the clean `only-test` row.
pub(crate) fn refused_inputs(d: &Path, classes: &[String], n_test: usize, one: &Value) {
    // An ImageFolder has no params: the error says which set and that nothing is there.
    let o = moirelab(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--data",
            "only-test",
            "--by",
            "screen.layout",
        ],
    );
    assert_one_line_error(
        &o,
        &[
            "--by on only-test: no image has 'screen.layout'",
            "no params",
        ],
    );

    // Errors: one line each, naming the thing.
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--data", "wrong"]);
    let model = format!("[{}]", classes.join(", "));
    assert_one_line_error(&o, &["--data wrong", "[cat, dog]", &model]);
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--data", "nowhere"]);
    assert_one_line_error(&o, &["--data nowhere", "no such folder"]);
    std::fs::write(d.join("one.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--data", "one.png"]);
    assert_one_line_error(&o, &["--data one.png", "an image file", "moirelab predict"]);
    std::fs::write(d.join("binary.csv"), b"\xff\xfe\0\x01path,label").unwrap();
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--data", "binary.csv"]);
    assert_one_line_error(&o, &["--data binary.csv", "binary.csv", "not a text file"]);
    let o = moirelab(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--data",
            "only-test",
            "--split",
            "val",
        ],
    );
    assert_one_line_error(&o, &["only-test", "split 'val'", "test"]);

    // A foreign folder with unusable files: refused by default, naming them and the flag;
    // with --skip-bad the rest is evaluated and the dropped files are counted.
    let only = d.join("only-test/test");
    let class_dir = std::fs::read_dir(&only)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    std::fs::write(class_dir.join("torn.png"), b"\x89PNG\r\n\x1a\ntorn").unwrap();
    std::fs::write(class_dir.join("empty.png"), b"").unwrap();
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--data", "only-test"]);
    assert_one_line_error(
        &o,
        &[
            "--data only-test",
            "2 bad file(s)",
            "torn.png",
            "--skip-bad",
        ],
    );
    let skip_bad = [
        "eval",
        "--run",
        "runs/tiny",
        "--data",
        "only-test",
        "--skip-bad",
    ];
    let o = moirelab(d, &[&skip_bad[..], &["--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let skipped: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(skipped["skipped"], 2);
    assert_eq!(skipped["n"], n_test as u64);
    assert_eq!(skipped["accuracy"], one["accuracy"]);
    // The bad files are counted on stdout, and what validation tolerated is said on stderr,
    // not passed over: here a link that points at itself.
    let looped = d
        .join("only-test")
        .join("test")
        .join(&classes[0])
        .join("loop.png");
    #[cfg(unix)]
    std::os::unix::fs::symlink("loop.png", &looped).unwrap();
    let o = moirelab(d, &skip_bad);
    let _ = std::fs::remove_file(&looped);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("2 unusable file(s) skipped"), "{text}");
    if cfg!(unix) {
        let warned = stderr(&o)
            .lines()
            .any(|l| l.starts_with("warning: --data only-test: ") && l.contains("loop.png"));
        assert!(warned, "{}", stderr(&o));
    }
}

/// `--scores FILE`: a line per image and row, whose decisions are the row's own numbers, in
/// CSV or JSON lines by the name; other names are refused before anything is scored.
pub(crate) fn per_image_scores(d: &Path, classes: &[String], n_test: usize) {
    let rows = ok_json(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--data",
            "only-test",
            "--perturb",
            "blur=1",
            "--scores",
            "out/scores.csv",
            "--json",
        ],
    );
    let rows = rows.as_array().unwrap();
    let text = std::fs::read_to_string(d.join("out/scores.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("data,perturbation,path,label,score,threshold,decision,correct")
    );
    let fields: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(fields.len(), 2 * n_test);
    // The attack class is decided from the threshold up, the other class below it.
    let other = |c: &str| classes.iter().find(|k| *k != c).unwrap().clone();
    for (r, chunk) in rows.iter().zip(fields.chunks(n_test)) {
        let t = r["pad"]["threshold"].as_f64().unwrap();
        let perturbation = r["perturbation"].as_str().unwrap_or("");
        let mut correct = 0;
        for f in chunk {
            assert_eq!((f[0], f[1]), ("only-test", perturbation), "{f:?}");
            assert!(f[2].starts_with("test/") && classes.iter().any(|c| c == f[3]));
            assert_eq!(f[5].parse::<f64>().unwrap(), t);
            let score: f64 = f[4].parse().unwrap();
            assert!((0.0..=1.0).contains(&score));
            let decided = if score >= t {
                "screen".to_string()
            } else {
                other("screen")
            };
            assert_eq!(f[6], decided, "{f:?}");
            assert_eq!(f[7] == "true", f[6] == f[3], "{f:?}");
            correct += usize::from(f[7] == "true");
        }
        let acc = r["pad"]["accuracy_at_threshold"].as_f64().unwrap();
        assert!((correct as f64 / n_test as f64 - acc).abs() < 1e-9, "{r}");
    }
    // Blurred images score otherwise: the second row is its own.
    assert_ne!(
        fields[..n_test].iter().map(|f| f[4]).collect::<Vec<_>>(),
        fields[n_test..].iter().map(|f| f[4]).collect::<Vec<_>>()
    );

    // JSON lines, on the run's own val split, where the split fixes the threshold.
    let val = ok_json(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--split",
            "val",
            "--scores",
            "v.jsonl",
            "--json",
        ],
    );
    let lines: Vec<Value> = std::fs::read_to_string(d.join("v.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, val["n"].as_u64().unwrap());
    for l in &lines {
        assert_eq!(l["threshold"], val["pad"]["threshold"]);
        assert!(l["perturbation"].is_null() && l["correct"].is_boolean());
    }

    // Names it cannot write: refused up front, one line, nothing left behind.
    for bad in ["scores.txt", "out"] {
        let o = moirelab(d, &["eval", "--run", "runs/tiny", "--scores", bad]);
        assert_one_line_error(&o, &[&format!("--scores {bad}")]);
    }
    assert!(!d.join("scores.txt").exists());
}

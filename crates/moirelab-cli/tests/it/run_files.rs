//! Damaged run folders through `predict`, `eval` and `explain`: checkpoint tensors of another
//! kind, shape or name, non-finite weights, weights whose scores are NaN, a config that does
//! not describe its checkpoint, and `summary.json` / `state.json` that do not parse or hold
//! a threshold that is no probability. Each is one line naming the file, tensor or image.

use crate::{assert_one_line_error, moirelab, stderr, TINY};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

/// A folder holding one tiny run, `runs/t`, trained once for this file's tests, and its data
/// set, `data/tiny`.
fn trained() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            moirelab_testkit::process_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "cli-run-files-");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
        let o = moirelab(&dir, &["train", "--config", "tiny.toml", "--name", "t"]);
        assert!(o.status.success(), "{}", stderr(&o));
        dir
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A copy of the trained run in `dir/runs/r`, and one of its data set's images.
fn run_copy(dir: &Path) -> (PathBuf, String) {
    let run = dir.join("runs/r");
    copy_dir(&trained().join("runs/t"), &run);
    let image = trained().join("data/tiny/images/000008.png");
    assert!(image.is_file());
    (run, image.display().to_string())
}

fn best(run: &Path) -> PathBuf {
    run.join("checkpoints/best.safetensors")
}

/// Rewrite the run's `best.safetensors` after `f` changed its tensors.
fn edit(run: &Path, f: impl FnOnce(&mut BTreeMap<String, Tensor>)) {
    let mut t: BTreeMap<String, Tensor> = Tensor::read_safetensors(best(run))
        .unwrap()
        .into_iter()
        .collect();
    f(&mut t);
    let named: Vec<(&str, Tensor)> = t
        .iter()
        .map(|(k, v)| (k.as_str(), v.shallow_clone()))
        .collect();
    Tensor::write_safetensors(&named, best(run)).unwrap();
}

fn set(t: &mut BTreeMap<String, Tensor>, name: &str, value: Tensor) {
    t.insert(name.to_string(), value);
}

fn predict(dir: &Path, image: &str) -> Output {
    moirelab(dir, &["predict", "--run", "runs/r", image])
}

fn eval(dir: &Path) -> Output {
    moirelab(dir, &["eval", "--run", "runs/r", "--split", "test"])
}

fn explain(dir: &Path, image: &str) -> Output {
    moirelab(
        dir,
        &["explain", "--run", "runs/r", image, "--out", "explained"],
    )
}

/// The one line is short: libtorch's C++ stack frames never reach the user.
fn assert_short(o: &Output) {
    let err = stderr(o);
    assert!(
        !err.contains("Exception raised from") && !err.contains("frame #") && err.len() < 400,
        "{} characters: {err}",
        err.len()
    );
}

/// The score `predict --json` gives the image.
fn score(o: &Output) -> f64 {
    assert!(o.status.success(), "{}", stderr(o));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    rows[0]["score"].as_f64().unwrap()
}

#[test]
fn a_half_precision_checkpoint_predicts_as_its_f32_original() {
    let dir = tempfile::tempdir().unwrap();
    let (run, image) = run_copy(dir.path());
    let before = score(&moirelab(
        dir.path(),
        &["predict", "--run", "runs/r", &image, "--json"],
    ));
    edit(&run, |t| {
        let w = t["fc.weight"].to_kind(Kind::Half);
        set(t, "fc.weight", w);
    });
    let after = score(&moirelab(
        dir.path(),
        &["predict", "--run", "runs/r", &image, "--json"],
    ));
    assert!((before - after).abs() < 1e-2, "{before} vs {after}");
}

#[test]
fn an_integer_tensor_is_one_line_naming_it_in_predict_eval_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let (run, image) = run_copy(dir.path());
    edit(&run, |t| {
        let w = t["fc.weight"].to_kind(Kind::Int64);
        set(t, "fc.weight", w);
    });
    let needles = [
        "runs/r/checkpoints/best.safetensors",
        "'fc.weight'",
        "Int64",
    ];
    for o in [
        predict(dir.path(), &image),
        eval(dir.path()),
        explain(dir.path(), &image),
    ] {
        assert_one_line_error(&o, &needles);
        assert_short(&o);
    }
}

#[test]
fn a_tensor_of_another_shape_is_one_short_line_with_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let (run, image) = run_copy(dir.path());
    edit(&run, |t| {
        set(
            t,
            "fc.weight",
            Tensor::zeros([2, 17], (Kind::Float, Device::Cpu)),
        )
    });
    for o in [predict(dir.path(), &image), eval(dir.path())] {
        assert_one_line_error(
            &o,
            &["best.safetensors", "'fc.weight'", "[2, 17]", "[2, 16]"],
        );
        assert_short(&o);
    }
}

#[test]
fn a_config_toml_that_does_not_describe_the_checkpoint_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (run, image) = run_copy(dir.path());
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("width = 4"), "{cfg}");
    std::fs::write(
        run.join("config.toml"),
        cfg.replace("width = 4", "width = 8"),
    )
    .unwrap();
    let o = predict(dir.path(), &image);
    assert_one_line_error(
        &o,
        &[
            "best.safetensors",
            "'conv1.bn.bias'",
            "[4]",
            "[8]",
            "config.toml does not match",
        ],
    );
    assert_short(&o);
}

#[test]
fn non_finite_weights_are_refused_naming_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let (run, image) = run_copy(dir.path());
    edit(&run, |t| {
        let _ = t["fc.weight"].get(0).get(0).fill_(f64::NAN);
    });
    for o in [
        predict(dir.path(), &image),
        eval(dir.path()),
        explain(dir.path(), &image),
    ] {
        assert_one_line_error(&o, &["best.safetensors", "'fc.weight'", "non-finite"]);
    }
}

#[test]
fn a_nan_score_is_an_error_naming_the_image_never_bona_fide() {
    let dir = tempfile::tempdir().unwrap();
    let (run, image) = run_copy(dir.path());
    // Finite weights whose logits overflow: both are +inf, and softmax gives NaN.
    edit(&run, |t| {
        set(
            t,
            "fc.weight",
            Tensor::full([2, 16], 3e38, (Kind::Float, Device::Cpu)),
        );
        set(
            t,
            "fc.bias",
            Tensor::full([2], 3e38, (Kind::Float, Device::Cpu)),
        );
    });
    let o = predict(dir.path(), &image);
    assert_one_line_error(&o, &[&image, "not finite"]);
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_one_line_error(&eval(dir.path()), &["data/tiny/images/", "not finite"]);
    assert_one_line_error(&explain(dir.path(), &image), &[&image, "not finite"]);
    // Nothing is written for an image that cannot be explained.
    let written = std::fs::read_dir(dir.path().join("explained"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(written, 0);
}

#[test]
fn unknown_and_missing_tensors_are_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let (run, image) = run_copy(dir.path());
    edit(&run, |t| {
        set(
            t,
            "extra.weight",
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        )
    });
    assert_one_line_error(
        &predict(dir.path(), &image),
        &["best.safetensors", "extra.weight"],
    );
    edit(&run, |t| {
        t.remove("extra.weight");
        t.remove("fc.bias");
    });
    assert_one_line_error(
        &predict(dir.path(), &image),
        &["best.safetensors", "missing", "fc.bias"],
    );
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// A run records the run-folder format it was written in, and each probe's image hash (what
/// the compare page tells other pictures under one path apart by).
#[test]
fn a_new_run_records_its_format_version_and_probe_image_hashes() {
    let meta = std::fs::read_to_string(trained().join("runs/t/meta.json")).unwrap();
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(
        meta["format_version"],
        moirelab_core::run::RUN_FORMAT_VERSION,
        "{meta}"
    );
    let probes = trained().join("runs/t/epochs/0001/probes.json");
    let probes: Value = serde_json::from_str(&std::fs::read_to_string(probes).unwrap()).unwrap();
    let rows = probes["probes"].as_array().unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        let h = r["image_hash"].as_str().unwrap_or_default();
        assert!(
            h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()),
            "{r}"
        );
    }
}

#[test]
fn a_summary_or_state_json_that_does_not_parse_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (run, image) = run_copy(dir.path());
    std::fs::write(run.join("summary.json"), "garbage").unwrap();
    assert_one_line_error(&predict(dir.path(), &image), &["runs/r/summary.json"]);
    assert_one_line_error(&eval(dir.path()), &["runs/r/summary.json"]);
    std::fs::remove_file(run.join("summary.json")).unwrap();
    std::fs::write(run.join("checkpoints/state.json"), "{").unwrap();
    assert_one_line_error(&predict(dir.path(), &image), &["checkpoints/state.json"]);
}

#[test]
fn a_threshold_that_is_no_probability_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (run, image) = run_copy(dir.path());
    for t in [serde_json::json!(5.0), serde_json::json!(-1e308)] {
        edit_json(&run.join("summary.json"), |v| v["threshold"] = t.clone());
        assert_one_line_error(&predict(dir.path(), &image), &["summary.json", "[0, 1]"]);
        assert_one_line_error(&eval(dir.path()), &["summary.json", "[0, 1]"]);
    }
    std::fs::remove_file(run.join("summary.json")).unwrap();
    edit_json(&run.join("checkpoints/state.json"), |v| {
        v["threshold"] = 2.into()
    });
    assert_one_line_error(&predict(dir.path(), &image), &["state.json", "[0, 1]"]);
}

#[test]
fn predict_says_when_the_run_has_no_threshold_yet() {
    let dir = tempfile::tempdir().unwrap();
    let (run, image) = run_copy(dir.path());
    let o = moirelab(
        dir.path(),
        &["predict", "--run", "runs/r", &image, "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows[0]["threshold_source"], "run", "{rows}");
    // A run in progress: no summary.json yet, and its state has no threshold.
    std::fs::remove_file(run.join("summary.json")).unwrap();
    edit_json(&run.join("checkpoints/state.json"), |v| {
        v["threshold"] = Value::Null
    });
    let o = predict(dir.path(), &image);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("threshold 0.5000, a default: the run has fixed none yet"),
        "{out}"
    );
    let o = moirelab(
        dir.path(),
        &["predict", "--run", "runs/r", &image, "--json"],
    );
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows[0]["threshold"], 0.5, "{rows}");
    assert_eq!(rows[0]["threshold_source"], "default", "{rows}");
}

#[test]
fn predict_scores_every_readable_file_and_names_each_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, image) = run_copy(d);
    // content PNG, extension BMP: scored, with the decode warning
    std::fs::copy(&image, d.join("x.bmp")).unwrap();
    std::fs::write(d.join("one.png"), b"not a png").unwrap();
    // a name with a newline and a terminal escape
    let odd = "a\n\u{1b}[31mred.png";
    std::fs::copy(&image, d.join(odd)).unwrap();
    let args = ["predict", "--run", "runs/r", "x.bmp", "one.png", odd];
    let o = moirelab(d, &args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        !out.contains('\u{1b}') && !err.contains('\u{1b}'),
        "{out}{err}"
    );
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].starts_with("x.bmp "), "{out}");
    assert!(rows[1].starts_with("a\\n\\u{1b}[31mred.png "), "{out}");
    let err_lines: Vec<&str> = err.lines().collect();
    assert_eq!(err_lines.len(), 2, "{err}");
    assert!(
        err_lines[0].starts_with("warning: x.bmp: content is PNG but the extension says BMP"),
        "{err}"
    );
    assert!(
        err_lines[1].starts_with("error: one.png") && !err.contains("panicked"),
        "{err}"
    );
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let o = moirelab(d, &json_args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    assert!(rows[0]["score"].is_f64(), "{rows}");
    assert!(rows[0]["warnings"][0]
        .as_str()
        .unwrap()
        .contains("extension says BMP"));
    assert_eq!(rows[1]["image"], "one.png");
    assert!(
        rows[1]["error"].as_str().unwrap().starts_with("one.png"),
        "{rows}"
    );
    assert!(rows[1].get("score").is_none(), "{rows}");
    assert_eq!(rows[2]["image"], odd);
}

#[test]
fn explain_names_every_unreadable_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, image) = run_copy(d);
    std::fs::write(d.join("one.png"), b"not a png").unwrap();
    std::fs::write(d.join("two.png"), b"nor this").unwrap();
    let o = moirelab(
        d,
        &[
            "explain", "--run", "runs/r", &image, "one.png", "two.png", "--out", "ex",
        ],
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("error: one.png"), "{err}");
    assert!(lines[1].starts_with("error: two.png"), "{err}");
    assert!(
        lines[2].starts_with("error: 2 of 3 image(s) could not be read; nothing written"),
        "{err}"
    );
    assert!(!d.join("ex").exists());
}

//! Evaluation on any data: `eval --data` with split-only, split-less and manifest data sets,
//! several at once, the errors; and `[eval] extra` data sets after every epoch of a run.

use crate::{assert_one_line_error, moirelab, stderr, TINY};
use serde_json::Value;
use std::path::Path;

/// The shared tiny run, two epochs, with three extra data sets evaluated after each: the
/// test images with BatchNorm variances re-estimated on them (first, so that the plain sets
/// after it would show statistics it failed to put back), all images, the test images.
fn config() -> String {
    let run = TINY
        .replace("epochs = 1", "epochs = 2")
        .replace("probes = 4", "probes = 2");
    format!(
        r#"{run}
[eval]
extra = [
  {{ name = "only-bn", root = "only-test", adapt-bn = "scale" }},
  {{ name = "flat", root = "flat" }},
  {{ name = "only", root = "only-test", split = "test" }},
]
"#
    )
}

pub(crate) fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// From the tiny preset: `only-test/test/<class>/` (its test images), `flat/<class>/` (all
/// images, no split folders), `tiny-test.csv` (its test images, no split column) and
/// `wrong/test/{cat,dog}/`. Returns (class names, test count, total count).
fn make_sets(dir: &Path) -> (Vec<String>, usize, usize) {
    let o = moirelab(dir, &["gen-data", "--preset", "tiny", "--out", "data/tiny"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let data = dir.join("data/tiny");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("dataset.json")).unwrap()).unwrap();
    let classes: Vec<String> = meta["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let manifest = std::fs::read_to_string(data.join("manifest.jsonl")).unwrap();
    let (mut test, mut total) = (0, 0);
    let mut csv = String::from("path,label\n");
    for (k, line) in manifest
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let r: Value = serde_json::from_str(line).unwrap();
        let (path, label) = (r["path"].as_str().unwrap(), r["label"].as_str().unwrap());
        let src = data.join(path);
        let name = format!("{k:03}.png");
        copy(&src, &dir.join("flat").join(label).join(&name));
        total += 1;
        if r["split"] == "test" {
            copy(&src, &dir.join("only-test/test").join(label).join(&name));
            csv.push_str(&format!("data/tiny/{path},{label}\n"));
            let other = if label == classes[0] { "cat" } else { "dog" };
            copy(&src, &dir.join("wrong/test").join(other).join(&name));
            test += 1;
        }
    }
    std::fs::write(dir.join("tiny-test.csv"), csv).unwrap();
    assert!(test > 0 && total > test);
    (classes, test, total)
}

/// Run a command that must succeed and print JSON.
/// Two JSON numbers equal to 1e-6.
pub(crate) fn close(a: &Value, b: &Value) -> bool {
    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-6
}

pub(crate) fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let o = moirelab(dir, args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn epoch_lines(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "epoch")
        .collect()
}

#[test]
fn eval_takes_any_layout_and_extra_sets_are_evaluated_every_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (classes, n_test, n_total) = make_sets(d);
    let config = config();
    std::fs::write(d.join("tiny.toml"), &config).unwrap();

    // Extra data sets are checked before the run folder exists.
    let broken = config.replace("root = \"flat\"", "root = \"no-such-set\"");
    std::fs::write(d.join("broken.toml"), broken).unwrap();
    let o = moirelab(d, &["train", "--config", "broken.toml"]);
    assert_one_line_error(&o, &["eval.extra 'flat'", "no-such-set"]);
    assert!(!d.join("runs/broken").exists());
    let twice = config.replace("name = \"only\"", "name = \"flat\"");
    std::fs::write(d.join("twice.toml"), twice).unwrap();
    let o = moirelab(d, &["train", "--config", "twice.toml"]);
    assert_one_line_error(&o, &["twice.toml", "'flat' is used twice"]);
    let mean = config.replace("adapt-bn = \"scale\"", "adapt-bn = \"mean\"");
    std::fs::write(d.join("mean.toml"), mean).unwrap();
    let o = moirelab(d, &["train", "--config", "mean.toml"]);
    assert_one_line_error(
        &o,
        &["eval.extra 'only-bn'", "adapt-bn = \"mean\"", "scale, all"],
    );
    let o = moirelab(
        d,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--name",
            "no-bn",
            "--set",
            "model.batch-norm=false",
        ],
    );
    assert_one_line_error(&o, &["eval.extra 'only-bn'", "needs BatchNorm layers"]);
    assert!(!d.join("runs/no-bn").exists());

    let o = moirelab(d, &["train", "--config", "tiny.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("extra/flat") && out.contains("extra/only"),
        "{out}"
    );
    let run = d.join("runs/tiny");
    // 'flat' holds the training images too: the run says so before it trains; 'only' does not.
    let err = stderr(&o);
    assert!(
        err.contains("warning: eval.extra 'flat': ")
            && err.contains("near-copies of the run's training data")
            && !err.contains("eval.extra 'only'"),
        "{err}"
    );
    assert!(
        err.contains("only-bn (") && err.contains("BatchNorm variances re-estimated on them"),
        "{err}"
    );
    // The run keeps the hashes of its train and val images.
    let hashes: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("data-hashes.json")).unwrap())
            .unwrap();
    let hashed = hashes["images"].as_array().unwrap();
    assert!(!hashed.is_empty() && hashed.len() <= n_total - n_test);
    assert!(hashed
        .iter()
        .all(|h| h["split"] != "test" && h["phash"].as_str().unwrap().len() == 64));

    // metrics.jsonl: one ordinary epoch line per extra data set and epoch, with the epoch's
    // val threshold.
    let lines = epoch_lines(&run);
    for epoch in [1, 2] {
        let at = |split: &str| {
            lines
                .iter()
                .find(|v| v["epoch"] == epoch && v["split"] == split)
                .unwrap_or_else(|| panic!("no {split} line for epoch {epoch}"))
                .clone()
        };
        let flat = at("extra/flat");
        let only = at("extra/only");
        let only_bn = at("extra/only-bn");
        assert_eq!(flat["n"], n_total as u64);
        assert_eq!(only["n"], n_test as u64);
        assert_eq!(only_bn["n"], n_test as u64);
        assert_ne!(only_bn["loss"], only["loss"]);
        let val_t = at("val")["pad"]["threshold"].as_f64().unwrap();
        assert_eq!(flat["pad"]["threshold"].as_f64().unwrap(), val_t);
        assert!(flat["pad"]["auc"].is_number());
    }
    // summary.json: the best epoch's lines by name.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let best = summary["best_epoch"].clone();
    for name in ["only-bn", "flat", "only"] {
        let m = &summary["extra"][name];
        assert_eq!(m["epoch"], best, "{summary}");
        assert_eq!(m["split"], format!("extra/{name}"));
    }
    // TensorBoard: the three scalars per extra data set.
    let tb: Vec<u8> = std::fs::read_dir(run.join("tb"))
        .unwrap()
        .flat_map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let tb = String::from_utf8_lossy(&tb);
    for tag in [
        "extra/flat/accuracy",
        "extra/flat/balanced_accuracy",
        "extra/flat/auc",
        "extra/only/auc",
    ] {
        assert!(tb.contains(tag), "no TensorBoard tag {tag}");
    }

    // eval on a folder holding only the test split: every test image once.
    let o = moirelab(
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
    assert!(o.status.success(), "{}", stderr(&o));
    let one: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(one["data"], "only-test");
    assert_eq!(one["n"], n_test as u64);
    assert_eq!(one["training_copies"], 0);
    // a folder of genuine photos only: its BPCER at the run's threshold, no AUC
    let genuine = d.join("genuine").join(&classes[0]);
    std::fs::create_dir_all(&genuine).unwrap();
    for e in std::fs::read_dir(d.join("only-test/test").join(&classes[0])).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), genuine.join(e.file_name())).unwrap();
    }
    let o = moirelab(
        d,
        &["eval", "--run", "runs/tiny", "--data", "genuine", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let g: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(g.get("pad").is_none(), "{g}");
    assert_eq!(g["one_class"]["threshold"], summary["threshold"]);
    assert!(
        g["one_class"]["bpcer"].is_number() && g["one_class"]["apcer"].is_null(),
        "{g}"
    );
    // The decisions at the threshold on both classes: 1 - (APCER·attacks + BPCER·genuine) / n.
    let pad = &one["pad"];
    let n_attack = n_test as f64 - g["n"].as_f64().unwrap();
    let wrong = pad["apcer"].as_f64().unwrap() * n_attack
        + pad["bpcer"].as_f64().unwrap() * g["n"].as_f64().unwrap();
    let at = pad["accuracy_at_threshold"].as_f64().unwrap();
    assert!((at - (1.0 - wrong / n_test as f64)).abs() < 1e-9, "{one}");
    // a folder that holds the training images: each is counted, and stderr names one
    let o = moirelab(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--data",
            "flat",
            "--split",
            "test",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let flat: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        flat["training_copies"].as_u64().unwrap() >= hashed.len() as u64,
        "{flat}"
    );
    assert!(
        stderr(&o).starts_with("warning: flat: ")
            && stderr(&o).contains("0 of 255 hash bits differ"),
        "{}",
        stderr(&o)
    );
    // The run's threshold, fixed on val, is applied.
    assert_eq!(one["pad"]["threshold"], summary["threshold"]);
    // The same images through the per-epoch evaluation of the best epoch: same numbers (and
    // so the adapted set before them left the trained statistics as they were).
    assert_eq!(one["accuracy"], summary["extra"]["only"]["accuracy"]);
    assert!(
        close(&one["loss"], &summary["extra"]["only"]["loss"]),
        "{one}"
    );

    // Several data sets (split-only, split-less, a manifest file): one table, one row each.
    let o = moirelab(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--data",
            "only-test",
            "--data",
            "flat",
            "--data",
            "tiny-test.csv",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("threshold "), "{table}");
    assert!(
        rows[1].contains("balanced") || rows[1].contains("bal.acc"),
        "{table}"
    );
    for (row, (name, n)) in rows[2..].iter().zip([
        ("only-test", n_test),
        ("flat", n_total),
        ("tiny-test.csv", n_test),
    ]) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[0], name, "{table}");
        assert_eq!(cells[1], "test", "{table}");
        assert_eq!(cells[2], n.to_string(), "{table}");
        assert_eq!(cells.len(), 10, "{table}");
    }
    // acc@thr: the decisions at the run's threshold, as in the JSON.
    assert!(rows[1].contains("acc@thr"), "{table}");
    let at = one["pad"]["accuracy_at_threshold"].as_f64().unwrap();
    let cells: Vec<&str> = rows[2].split_whitespace().collect();
    assert_eq!(cells[4], format!("{at:.4}"), "{table}");
    assert_eq!(rows.len(), 5, "{table}");
    let o = moirelab(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--data",
            "only-test",
            "--data",
            "tiny-test.csv",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let many: Value = serde_json::from_slice(&o.stdout).unwrap();
    let many = many.as_array().unwrap();
    assert_eq!(many.len(), 2);
    // The manifest lists the same test images: same metrics.
    assert_eq!(many[0]["n"], many[1]["n"]);
    assert_eq!(many[0]["accuracy"], many[1]["accuracy"]);
    assert_eq!(many[0]["pad"]["auc"], many[1]["pad"]["auc"]);

    // Perturbed rows: the same images degraded, read at the same threshold, after the
    // unperturbed row.
    let perturbed = [
        "eval",
        "--run",
        "runs/tiny",
        "--data",
        "only-test",
        "--perturb",
        "blur=1.5",
        "--perturb",
        "noise=8",
        "--json",
    ];
    let o = moirelab(d, &perturbed);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].get("perturbation").is_none());
    assert_eq!(rows[0]["accuracy"], one["accuracy"]);
    assert_eq!(rows[0]["loss"], one["loss"]);
    for (r, p) in rows[1..].iter().zip(["blur=1.5", "noise=8"]) {
        assert_eq!(r["perturbation"], p);
        assert_eq!(r["n"], n_test as u64);
        assert_eq!(r["pad"]["threshold"], summary["threshold"]);
        assert_ne!(r["loss"], one["loss"], "{p} changed nothing");
    }
    // Deterministic: the noise of an image is its own, run after run.
    let again = moirelab(d, &perturbed);
    let strip = |out: &[u8]| -> Vec<Value> {
        let mut v: Vec<Value> = serde_json::from_slice(out).unwrap();
        v.iter_mut().for_each(|r| {
            r.as_object_mut().unwrap().remove("wall_s");
        });
        v
    };
    assert_eq!(strip(&again.stdout), strip(&o.stdout));
    let o = moirelab(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--data",
            "only-test",
            "--perturb",
            "jpeg=50",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    let cells: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(cells[0][1], "perturbation", "{table}");
    assert_eq!((cells[1][1], cells[2][1]), ("none", "jpeg=50"), "{table}");
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--perturb", "jpeg=0"]);
    assert_one_line_error(&o, &["--perturb", "jpeg=0", "[1, 100]"]);
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--perturb", "sharpen=1"]);
    assert_one_line_error(&o, &["--perturb", "unknown kind `sharpen`", "blur"]);

    // Error rates by slice: every test image in exactly one row of each key, the rows'
    // errors adding up to the data set's at the same threshold.
    let own = ok_json(
        d,
        &[
            "eval",
            "--run",
            "runs/tiny",
            "--by",
            "screen.layout",
            "--by",
            "camera.sensor-scale=2",
            "--by",
            "groups.flag",
            "--by",
            "camera.sensor-scale / camera.sensor-scale=1",
            "--json",
        ],
    );
    let pad = &own["pad"];
    let tables = own["slices"].as_array().unwrap();
    assert_eq!(tables.len(), 4);
    let count = |r: &Value, k: &str| r[k].as_u64().unwrap();
    let (n_attack, n_bona) = tables[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .fold((0, 0), |(a, b), r| {
            (a + count(r, "attacks"), b + count(r, "bona_fide"))
        });
    assert_eq!(n_attack + n_bona, n_test as u64);
    for t in tables {
        assert_eq!(t["threshold"], pad["threshold"]);
        let rows = t["rows"].as_array().unwrap();
        let missed: f64 = rows
            .iter()
            .filter(|r| count(r, "attacks") > 0)
            .map(|r| r["apcer"].as_f64().unwrap() * count(r, "attacks") as f64)
            .sum();
        let alarms: f64 = rows
            .iter()
            .filter(|r| count(r, "bona_fide") > 0)
            .map(|r| r["bpcer"].as_f64().unwrap() * count(r, "bona_fide") as f64)
            .sum();
        let apcer = pad["apcer"].as_f64().unwrap();
        let bpcer = pad["bpcer"].as_f64().unwrap();
        assert!((missed - apcer * n_attack as f64).abs() < 1e-6, "{t}");
        assert!((alarms - bpcer * n_bona as f64).abs() < 1e-6, "{t}");
    }
    // Screen fields: bona fide photos have none; the given edge makes two bins.
    let layout = tables[0]["rows"].as_array().unwrap();
    let none = layout.last().unwrap();
    assert_eq!(
        (none["value"].as_str(), count(none, "attacks")),
        (Some("(none)"), 0)
    );
    assert_eq!(count(none, "bona_fide"), n_bona);
    let scale: Vec<&str> = tables[1]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(scale, ["< 2", ">= 2"]);
    assert_eq!(tables[1]["edges"], serde_json::json!([2.0]));
    // A quotient of params: every image has it, and x / x is exactly 1.
    let ratio = &tables[3];
    assert_eq!(ratio["key"], "camera.sensor-scale / camera.sensor-scale");
    let rows: Vec<(&str, u64)> = ratio["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = count(r, "attacks") + count(r, "bona_fide");
            (r["value"].as_str().unwrap(), n)
        })
        .collect();
    assert_eq!(rows, [(">= 1", n_test as u64)]);
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--by", "screen.layout"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("by screen.layout on ") && text.contains("(none)"),
        "{text}"
    );
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--by", "camera.nope"]);
    assert_one_line_error(&o, &["--by", "'camera.nope'", "camera.sensor-scale"]);
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--by", "camera"]);
    assert_one_line_error(&o, &["--by", "'camera' is an object", "camera.demosaic"]);
    let o = moirelab(d, &["eval", "--run", "runs/tiny", "--by", "x=2,1"]);
    assert_one_line_error(&o, &["--by", "'x=2,1'", "increase"]);
    crate::eval_checks::thresholds_and_adapted_bn(d, &summary, &classes, n_test, &config);
    crate::eval_checks::per_image_scores(d, &classes, n_test);
    crate::eval_checks::refused_inputs(d, &classes, n_test, &one);
}

#[test]
fn a_bpcer_target_fixes_the_runs_threshold_on_val() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.toml"), TINY).unwrap();
    let o = moirelab(
        d,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--set",
            "train.threshold-bpcer=1.5",
        ],
    );
    assert_one_line_error(&o, &["train.threshold-bpcer = 1.5", "[0, 1)"]);
    assert!(!d.join("runs/tiny").exists());
    let o = moirelab(
        d,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--set",
            "train.threshold-bpcer=0",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let run = d.join("runs/tiny");
    let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(resolved.contains("threshold-bpcer = 0"), "{resolved}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    // No genuine val photo is rejected at the run's threshold, and val's line says so.
    let val = &summary["val"]["pad"];
    assert_eq!(val["bpcer"], 0.0, "{val}");
    assert_eq!(summary["threshold"], val["threshold"]);
    // Every epoch's val line was fixed by the same rule.
    let vals: Vec<Value> = epoch_lines(&run)
        .into_iter()
        .filter(|l| l["split"] == "val")
        .collect();
    assert!(!vals.is_empty());
    assert!(vals.iter().all(|l| l["pad"]["bpcer"] == 0.0), "{vals:?}");
    // `eval` on val fixes the same threshold again; on test it applies it.
    let again = ok_json(
        d,
        &["eval", "--run", "runs/tiny", "--split", "val", "--json"],
    );
    assert_eq!(again["pad"]["threshold"], summary["threshold"]);
    assert_eq!(again["pad"]["bpcer"], 0.0);
    let test = ok_json(d, &["eval", "--run", "runs/tiny", "--json"]);
    assert_eq!(test["pad"]["threshold"], summary["threshold"]);
}

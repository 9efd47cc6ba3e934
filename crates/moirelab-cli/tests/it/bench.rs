//! `scripts/bench/shift.sh`, the shift protocol, on a tiny run: the sets it renders follow the
//! run's generator knobs, and its table and JSON have one row per shift.

use crate::{moirelab, stderr, TINY};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Run `scripts/bench/<name>` with the test build of moirelab.
fn bench_script(name: &str, cwd: &Path, args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/bench")
        .join(name);
    Command::new("bash")
        .arg(script)
        .args(args)
        .current_dir(cwd)
        .env("MOIRELAB_BIN", env!("CARGO_BIN_EXE_moirelab"))
        .env("NO_COLOR", "1")
        .output()
        .expect("bash runs")
}

fn shift(cwd: &Path, args: &[&str]) -> Output {
    bench_script("shift.sh", cwd, args)
}

#[test]
fn shift_script_scores_a_run_on_its_own_knobs_shifted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.toml"), TINY).unwrap();
    let o = moirelab(d, &["train", "--config", "tiny.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = shift(d, &["--run", "runs/tiny", "--count", "16", "--out", "out"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    let rows = table_rows(&table);
    let names: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    // The tiny preset has the default effects and ranges: every shift applies.
    let want = [
        "own",
        "pitch-finer",
        "pitch-coarser",
        "sensor-larger",
        "sensor-smaller",
        "gain-half",
        "gain-double",
        "only-grid",
        "no-grid",
        "only-tone",
        "only-bands",
        "angle",
        "foils-all",
        "glare-all",
        "defocus-all",
        "noise-high",
        "upload-low",
        "jpeg-420",
    ];
    assert_eq!(names, want, "{table}");
    let json = std::fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("the table's JSON");
    let res: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(res.len(), want.len());
    for (r, name) in res.iter().zip(want) {
        assert_eq!(r["n"], 16, "{name}");
        assert!(r["pad"]["auc"].is_number(), "{name}");
    }
    // Each set is what its row says: the run's knobs with one change, all of it test.
    let set = |name: &str| -> Value {
        let data = Path::new(
            res[want.iter().position(|w| *w == name).unwrap()]["data"]
                .as_str()
                .unwrap(),
        )
        .join("dataset.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(data).unwrap()).unwrap();
        v["generator"]["knobs"]["knobs"].clone()
    };
    assert_eq!(set("own")["pitch-min"], 0.45);
    assert_eq!(set("own")["train-frac"], 0.0);
    assert_eq!(set("pitch-finer")["pitch-max"], 0.45);
    assert_eq!(set("only-grid")["artifacts"], serde_json::json!(["moire"]));
    assert_eq!(set("foils-all")["hologram-prob"], 1.0);
    assert_eq!(set("defocus-all")["defocus-prob"], 1.0);
    assert_eq!(set("noise-high")["noise-min"], 3e-3);
    assert_eq!(set("noise-high")["noise-max"], 0.03);
    assert_eq!(set("upload-low")["upload-prob"], 1.0);
    assert_eq!(set("upload-low")["upload-q-min"], 40);
    assert_eq!(set("upload-low")["upload-q-max"], 70);
    assert_eq!(set("jpeg-420")["jpeg-420-prob"], 1.0);

    // Not a run folder: one line naming it, exit 2, nothing rendered.
    let o = shift(d, &["--run", "nowhere", "--out", "out2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nowhere"), "{}", stderr(&o));
    assert!(!d.join("out2").exists());
    // A run on data the generator did not make: there are no knobs to shift.
    std::fs::create_dir_all(d.join("foreign")).unwrap();
    std::fs::write(d.join("foreign/config.toml"), "[data]\nroot = \"photos\"\n").unwrap();
    let o = shift(d, &["--run", "foreign", "--out", "out3"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a moirelab-generated data set"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("out3").exists());
}

fn transfer(cwd: &Path, args: &[&str]) -> Output {
    bench_script("transfer.sh", cwd, args)
}

/// Rows of a Markdown table printed by a bench script: (first cell, cells).
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("|---"))
        .skip(1)
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

#[test]
fn transfer_script_holds_a_factor_out_and_keeps_overridden_runs_apart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.toml"), TINY).unwrap();
    let base = [
        "--config",
        "tiny.toml",
        "--size",
        "64",
        "--count",
        "64",
        "--epochs",
        "1",
        "--factors",
        "layout:pentile",
        "--out",
        "out",
    ];
    let o = transfer(d, &base);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = table_rows(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][1], "none (reference)");
    assert_eq!(rows[1][1], "`layout:pentile`");
    // Both rows split the test screens by trace; the reference row scores its own split, so
    // its held-out and seen halves are one number.
    let header = String::from_utf8_lossy(&o.stdout);
    assert!(header.contains("screens with a trace"), "{header}");
    for r in &rows {
        assert_eq!(r.len(), rows[0].len(), "{rows:?}");
    }
    let share: f64 = rows[1][7].parse().expect("a share of screens with a trace");
    assert!((0.0..=1.0).contains(&share), "{rows:?}");
    for cell in &rows[0][8..=10] {
        let (held, seen) = cell.split_once(" / ").expect("held out / seen");
        assert_eq!(held, seen, "{rows:?}");
    }
    // The held-out set never shows PenTile in train/val and only PenTile in test.
    let data = d.join("out/data/layout-pentile-64px-n64");
    let manifest = std::fs::read_to_string(data.join("manifest.jsonl")).unwrap();
    let mut test_screens = 0;
    for line in manifest.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        if r["label"] != "screen" {
            continue;
        }
        let pentile = r["params"]["screen"]["layout"] == "pentile";
        if r["split"] == "test" {
            assert!(pentile, "{line}");
            test_screens += 1;
        } else {
            assert!(!pentile, "{line}");
        }
    }
    assert!(test_screens > 0);
    let runs = d.join("out/runs");
    assert!(runs
        .join("tiny/layout-pentile-64px-n64/seen-eval.json")
        .is_file());

    // A training override: same data sets, its own runs and table.
    let mut with_set = base.to_vec();
    with_set.extend(["--set", "data.augment.transpose=0.5"]);
    let o = transfer(d, &with_set);
    assert!(o.status.success(), "{}", stderr(&o));
    let tagged = runs.join("tiny-data-augment-transpose-0-5");
    let cfg = std::fs::read_to_string(tagged.join("layout-pentile-64px-n64/config.toml")).unwrap();
    assert!(cfg.contains("transpose = 0.5"), "{cfg}");
    assert!(
        !std::fs::read_to_string(runs.join("tiny/layout-pentile-64px-n64/config.toml"))
            .unwrap()
            .contains("transpose")
    );
    let sets = std::fs::read_dir(d.join("out/data")).unwrap().count();
    assert_eq!(sets, 2, "the override reuses the data sets");

    // The protocol's own keys cannot be overridden; a malformed override is refused.
    let mut bad = base.to_vec();
    bad.extend(["--set", "data.knobs.count=10"]);
    let o = transfer(d, &bad);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--set data.knobs.count"),
        "{}",
        stderr(&o)
    );
    let mut bad = base.to_vec();
    bad.extend(["--set", "lr"]);
    let o = transfer(d, &bad);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not KEY=VALUE"), "{}", stderr(&o));

    // Without --factors the protocol holds out each layout the config's data draw, then the
    // camera and pitch factors.
    let plan = |d: &Path| {
        let o = transfer(d, &["--config", "tiny.toml", "--plan"]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let classic = plan(d);
    assert_eq!(
        classic[..5],
        [
            "layout:rgb-stripe",
            "layout:bgr-stripe",
            "layout:vertical-stripe",
            "layout:pentile",
            "demosaic:bilinear"
        ]
    );
    std::fs::write(
        d.join("tiny.toml"),
        format!("{TINY}\n[data.knobs]\nlayouts = [\"diamond\", \"rgb-stripe\"]\n"),
    )
    .unwrap();
    let wide = plan(d);
    assert_eq!(
        wide[..3],
        ["layout:rgb-stripe", "layout:diamond", "demosaic:bilinear"]
    );
    assert_eq!(wide.len(), classic.len() - 2);
}

#[test]
fn indep_script_renders_its_own_set_once_and_scores_each_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.toml"), TINY).unwrap();
    let o = moirelab(d, &["train", "--config", "tiny.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let args = [
        "--run",
        "runs/tiny",
        "--run",
        "runs/tiny",
        "--size",
        "64",
        "--count",
        "8",
        "--out",
        "out",
    ];
    let o = bench_script("indep.sh", d, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    let rows = table_rows(&table);
    assert_eq!(rows.len(), 2, "{table}");
    for r in &rows {
        assert!(r[1].contains("runs/tiny"), "{table}");
        let acc: f64 = r[2].parse().expect("an accuracy");
        assert!((0.0..=1.0).contains(&acc), "{table}");
    }
    // An ImageFolder test split of 4 + 4 images, with the draws of every image.
    let data: Vec<_> = std::fs::read_dir(d.join("out/data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(data.len(), 1, "{data:?}");
    for class in ["direct", "screen"] {
        let n = std::fs::read_dir(data[0].join("test").join(class))
            .unwrap()
            .count();
        assert_eq!(n, 4, "{class}");
    }
    let params = std::fs::read_to_string(data[0].join("params.jsonl")).unwrap();
    assert_eq!(params.lines().count(), 8);
    // A second call reuses the rendered set: nothing in it is written again.
    let stamp = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let first = stamp(&data[0].join("params.jsonl"));
    let o = bench_script("indep.sh", d, &args[2..]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(table_rows(&String::from_utf8_lossy(&o.stdout)).len(), 1);
    assert_eq!(stamp(&data[0].join("params.jsonl")), first);

    let o = bench_script("indep.sh", d, &["--out", "out"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--run"), "{}", stderr(&o));
}

#[test]
fn bench_scripts_carry_a_configs_photo_sizes_into_their_data_sets() {
    // A patch config with photos of two sides: shift.sh's sets and transfer.sh's data sets
    // draw the same sides, and transfer.sh names its data sets by them.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mixed = TINY.replace(
        "cache = \"memory\"\n",
        "cache = \"memory\"\nmode = \"patch\"\n[data.knobs]\nsizes = [64, 96]\ncount = 48\n",
    );
    std::fs::write(d.join("mix.toml"), mixed).unwrap();
    let o = moirelab(d, &["train", "--config", "mix.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = shift(d, &["--run", "runs/mix", "--count", "16", "--out", "out"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sets: Vec<_> = std::fs::read_dir(d.join("out/data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(sets.len() > 10, "{sets:?}");
    for set in &sets {
        let meta = std::fs::read_to_string(set.join("dataset.json")).unwrap();
        let meta: Value = serde_json::from_str(&meta).unwrap();
        assert_eq!(
            meta["generator"]["knobs"]["sizes"],
            serde_json::json!([64, 96]),
            "{}",
            set.display()
        );
    }
    let tr = |extra: &[&str]| {
        let mut args = vec!["--config", "mix.toml", "--epochs", "1", "--out", "tr"];
        args.extend(["--factors", "layout:pentile"]);
        args.extend(extra);
        transfer(d, &args)
    };
    let o = tr(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let data = d.join("tr/data/layout-pentile-64-96px-n48-patch");
    let manifest = std::fs::read_to_string(data.join("manifest.jsonl")).unwrap();
    let sides: std::collections::BTreeSet<u64> = manifest
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["params"]["size"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(sides, [64, 96].into_iter().collect());
    // --size of the caller's own replaces the config's sides.
    let o = tr(&["--size", "64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let one = d.join("tr/data/layout-pentile-64px-n48-patch/dataset.json");
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(one).unwrap()).unwrap();
    assert_eq!(meta["image-size"], 64);
}

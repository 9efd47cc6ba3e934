//! `scripts/bench/shift.sh`, the shift protocol, on a tiny run: the sets it renders follow the
//! run's generator knobs, and its table and JSON have one row per shift.

use crate::{moirelab, stderr, TINY};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn shift(cwd: &Path, args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/shift.sh");
    Command::new("bash")
        .arg(script)
        .args(args)
        .current_dir(cwd)
        .env("MOIRELAB_BIN", env!("CARGO_BIN_EXE_moirelab"))
        .env("NO_COLOR", "1")
        .output()
        .expect("bash runs")
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
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| shift"))
        .collect();
    let names: Vec<&str> = rows
        .iter()
        .map(|l| l.split('|').nth(1).unwrap().trim())
        .collect();
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

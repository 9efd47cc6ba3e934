//! `data plan`: the data set a config trains on, as `train` resolves it.

use crate::{assert_one_line_error, moirelab, stderr, TINY};
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
    assert_eq!(
        (p["image_size"].as_u64(), p["mode"].as_str()),
        (Some(64), Some("patch"))
    );
    assert_eq!(
        p["knobs"],
        serde_json::json!(["count=40", "glare-prob=0.25", "sizes=64,96"])
    );
    assert_eq!(p["generated"], false);
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
    assert_eq!(plan(d, &["--config", "p.toml"])["generated"], true);
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
    assert_eq!(own["generated"], false);
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

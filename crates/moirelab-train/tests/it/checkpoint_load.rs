//! `load_run` on damaged or foreign run folders: checkpoint tensors of another kind, shape or
//! name, non-finite weights, a `summary.json` or `state.json` that does not parse or holds a
//! threshold that is no probability; and `evaluate_scored` on a model whose scores are NaN.

use crate::trainer::{tiny_data, torch_rng_lock};
use moirelab_core::fsio;
use moirelab_core::run::RunSummary;
use moirelab_models::ModelConfig;
use moirelab_train::metrics::{ThresholdFrom, ThresholdRule};
use moirelab_train::{load_run, EvalOptions, LoadedRun, TrainError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

fn model() -> ModelConfig {
    ModelConfig {
        width: 4,
        ..Default::default()
    }
}

/// A run folder holding only `checkpoints/best.safetensors`, freshly initialised weights of
/// [`model`] as the trainer saves them (`VarStore::save`).
fn run_with_checkpoint(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let _rng = torch_rng_lock();
    moirelab_models::build(&vs.root(), &model()).unwrap();
    vs.save(best(&run)).unwrap();
    run
}

fn best(run: &Path) -> PathBuf {
    run.join("checkpoints/best.safetensors")
}

fn read(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

/// Rewrite the checkpoint of `run` after `f` changed its tensors.
fn edit(run: &Path, f: impl FnOnce(&mut BTreeMap<String, Tensor>)) {
    let mut tensors = read(&best(run));
    f(&mut tensors);
    let named: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(k, v)| (k.as_str(), v.shallow_clone()))
        .collect();
    Tensor::write_safetensors(&named, best(run)).unwrap();
}

fn load(run: &Path) -> Result<LoadedRun, TrainError> {
    load_run(run, &model(), Device::Cpu, "best")
}

fn load_err(run: &Path) -> String {
    match load(run) {
        Ok(_) => panic!("{} loaded", run.display()),
        Err(e) => e.to_string(),
    }
}

/// One short line: no libtorch text beyond its first line, no C++ frames.
fn assert_short_line(e: &str) {
    assert!(!e.contains('\n'), "{e}");
    assert!(
        !e.contains("Exception raised from") && !e.contains("frame #"),
        "{e}"
    );
    assert!(e.len() < 300, "{} characters: {e}", e.len());
}

fn weight_of(vs: &nn::VarStore, name: &str) -> Tensor {
    vs.variables()[name].shallow_clone()
}

fn weight(lr: &LoadedRun, name: &str) -> Tensor {
    weight_of(&lr.vs, name)
}

#[test]
fn a_checkpoint_the_model_wrote_loads_bit_for_bit_with_its_batch_norm_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_checkpoint(dir.path());
    let file = read(&best(&run));
    // BatchNorm running statistics are variables of the model, not extra tensors.
    assert!(
        file.contains_key("conv1.bn.running_var"),
        "{:?}",
        file.keys()
    );
    let lr = load(&run).unwrap();
    assert_eq!(lr.vs.variables().len(), file.len());
    for (k, t) in &file {
        assert!(weight(&lr, k).equal(t), "{k}");
    }
    assert_eq!(lr.threshold, None);
}

#[test]
fn floating_point_tensors_of_another_precision_load_as_f32() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_checkpoint(dir.path());
    let original = read(&best(&run))["fc.weight"].shallow_clone();
    edit(&run, |t| {
        let w = t["fc.weight"].to_kind(Kind::Half);
        t.insert("fc.weight".into(), w);
        let b = t["fc.bias"].to_kind(Kind::Double);
        t.insert("fc.bias".into(), b);
    });
    let lr = load(&run).unwrap();
    let w = weight(&lr, "fc.weight");
    assert_eq!(w.kind(), Kind::Float);
    assert_eq!(weight(&lr, "fc.bias").kind(), Kind::Float);
    let diff = (&w - &original).abs().max().double_value(&[]);
    assert!(diff < 1e-3, "{diff}");
}

#[test]
fn an_integer_tensor_is_an_error_naming_file_tensor_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_checkpoint(dir.path());
    edit(&run, |t| {
        let w = t["fc.weight"].to_kind(Kind::Int64);
        t.insert("fc.weight".into(), w);
    });
    let e = load_err(&run);
    assert!(
        e.contains("best.safetensors") && e.contains("'fc.weight'") && e.contains("Int64"),
        "{e}"
    );
    assert_short_line(&e);
}

#[test]
fn a_tensor_of_another_shape_is_one_short_line_with_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_checkpoint(dir.path());
    edit(&run, |t| {
        t.insert(
            "fc.weight".into(),
            Tensor::zeros([2, 17], (Kind::Float, Device::Cpu)),
        );
    });
    let e = load_err(&run);
    assert!(
        e.contains("best.safetensors")
            && e.contains("'fc.weight'")
            && e.contains("[2, 17]")
            && e.contains("[2, 16]"),
        "{e}"
    );
    assert_short_line(&e);
}

#[test]
fn a_config_that_disagrees_with_the_checkpoint_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_checkpoint(dir.path());
    let wider = ModelConfig {
        width: 8,
        ..model()
    };
    let e = match load_run(&run, &wider, Device::Cpu, "best") {
        Ok(_) => panic!("a width-8 model loaded width-4 weights"),
        Err(e) => e.to_string(),
    };
    // The first variable by name, with the file's and the model's shape.
    assert!(
        e.contains("'conv1.bn.bias'") && e.contains("[4]") && e.contains("[8]"),
        "{e}"
    );
    assert!(e.contains("config.toml does not match"), "{e}");
    assert_short_line(&e);
}

#[test]
fn non_finite_weights_are_refused_naming_the_first_such_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_checkpoint(dir.path());
    edit(&run, |t| {
        let _ = t.get_mut("fc.bias").unwrap().fill_(f64::INFINITY);
        let _ = t["conv2.conv.weight"]
            .get(0)
            .view([-1])
            .get(0)
            .fill_(f64::NAN);
    });
    let e = load_err(&run);
    assert!(
        e.contains("best.safetensors")
            && e.contains("'conv2.conv.weight'")
            && e.contains("non-finite"),
        "{e}"
    );
    assert_short_line(&e);
    // A finite f64 beyond f32's range would be infinite once converted.
    edit(&run, |t| {
        let _ = t.get_mut("conv2.conv.weight").unwrap().fill_(0.0);
        t.insert("fc.bias".into(), Tensor::from_slice(&[1e300f64, 0.0]));
    });
    let e = load_err(&run);
    assert!(e.contains("'fc.bias'") && e.contains("non-finite"), "{e}");
}

#[test]
fn unknown_and_missing_tensors_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_checkpoint(dir.path());
    edit(&run, |t| {
        t.insert(
            "extra.weight".into(),
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        );
    });
    let e = load_err(&run);
    assert!(
        e.contains("best.safetensors") && e.contains("extra.weight"),
        "{e}"
    );
    assert_short_line(&e);
    edit(&run, |t| {
        t.remove("extra.weight");
        t.remove("fc.bias");
    });
    let e = load_err(&run);
    assert!(e.contains("missing") && e.contains("fc.bias"), "{e}");
    assert_short_line(&e);
}

/// A `state.json` as the trainer writes it, with `threshold` as given (JSON).
fn write_state(run: &Path, threshold: serde_json::Value) {
    let state = serde_json::json!({
        "epochs_done": 1, "next_batch": 0, "step": 2, "best_value": 0.5, "best_epoch": 1,
        "epochs_since_best": 0, "threshold": threshold, "running": null, "wall_s": 0.1,
        "weights_hash": "0", "optim_hash": "0", "finished": false,
    });
    fsio::write_json_atomic(&run.join("checkpoints/state.json"), &state).unwrap();
}

fn write_summary(run: &Path, threshold: f64) {
    let s = RunSummary {
        threshold,
        ..Default::default()
    };
    fsio::write_json_atomic(&run.join("summary.json"), &s).unwrap();
}

#[test]
fn the_threshold_comes_from_summary_json_else_state_json_else_none() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_checkpoint(dir.path());
    // A run in progress: its state has no threshold until it finishes.
    write_state(&run, serde_json::Value::Null);
    assert_eq!(load(&run).unwrap().threshold, None);
    write_state(&run, serde_json::json!(0.25));
    assert_eq!(load(&run).unwrap().threshold, Some(0.25));
    write_summary(&run, 0.75);
    assert_eq!(load(&run).unwrap().threshold, Some(0.75));
    // The float just above 1 is where val's sweep flags nothing when a score is exactly 1.
    write_summary(&run, 1.0 + f64::EPSILON);
    assert_eq!(load(&run).unwrap().threshold, Some(1.0 + f64::EPSILON));
}

#[test]
fn a_summary_or_state_file_that_does_not_parse_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_checkpoint(dir.path());
    write_state(&run, serde_json::json!(0.25));
    std::fs::write(run.join("summary.json"), "garbage").unwrap();
    let e = load_err(&run);
    assert!(e.contains("summary.json"), "{e}");
    std::fs::remove_file(run.join("summary.json")).unwrap();
    std::fs::write(run.join("checkpoints/state.json"), "{\"threshold\": 0.3").unwrap();
    let e = load_err(&run);
    assert!(e.contains("state.json"), "{e}");
}

#[test]
fn a_threshold_that_is_no_probability_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_checkpoint(dir.path());
    for t in [5.0, -1e308, 1.0 + 4.0 * f64::EPSILON] {
        write_summary(&run, t);
        let e = load_err(&run);
        assert!(
            e.contains("summary.json") && e.contains("[0, 1]"),
            "{t}: {e}"
        );
        assert_short_line(&e);
    }
    std::fs::remove_file(run.join("summary.json")).unwrap();
    write_state(&run, serde_json::json!(-0.5));
    let e = load_err(&run);
    assert!(e.contains("state.json") && e.contains("-0.5"), "{e}");
}

#[test]
fn a_nan_score_is_an_error_naming_the_image_not_a_bona_fide_decision() {
    let mut data = moirelab_data::DataConfig::for_root(tiny_data());
    data.image_size = 64;
    let ds = moirelab_data::Dataset::open(&data, Path::new(".")).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = {
        let _rng = torch_rng_lock();
        moirelab_models::build(&vs.root(), &model()).unwrap()
    };
    tch::no_grad(|| {
        let _ = weight_of(&vs, "fc.bias").fill_(f64::NAN);
    });
    let opts = EvalOptions {
        batch_size: 8,
        device: Device::Cpu,
        epoch: 0,
        split: "test".into(),
        threshold: ThresholdFrom::given_or(Some(0.5), ThresholdRule::Eer),
        perturbation: None,
    };
    let idx = ds.split("test");
    let e = match moirelab_train::evaluate_scored(net.as_ref(), &ds, idx, &opts) {
        Ok((m, _)) => panic!("NaN scores evaluated: {:?}", m.pad),
        Err(e) => e.to_string(),
    };
    let first = ds.root().join(&ds.record(idx[0]).path);
    assert!(e.contains(&first.display().to_string()), "{e}");
    assert!(e.contains("not finite"), "{e}");
}

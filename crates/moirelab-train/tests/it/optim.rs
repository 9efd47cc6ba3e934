//! Optimizers: parity with torch.optim (via scripts/parity/optim.py), exact resume from saved
//! state, state-file errors, gradient clipping and zero_grad semantics.

use moirelab_core::rng::Rng;
use moirelab_train::optim::{OptimConfig, OptimError, Optimizer, OptimizerKind};
use std::path::Path;
use std::process::Command;
use tch::{Kind, Tensor};

const STEPS: usize = 8;

/// Parameter names and shapes; `sometimes` gets a gradient on steps 1, 4, 7 only and `late`
/// from step 5 on, so lazily created state and skipped parameters are covered.
const SHAPES: &[(&str, &[i64])] = &[
    ("a.conv.weight", &[4, 3, 3, 3]),
    ("a.conv.bias", &[4]),
    ("b.fc.weight", &[2, 8]),
    ("c.sometimes", &[5]),
    ("d.late", &[3]),
];

fn has_grad(param: usize, step: usize) -> bool {
    match SHAPES[param].0 {
        "c.sometimes" => step % 3 == 1,
        "d.late" => step >= 5,
        _ => true,
    }
}

fn randn(rng: &mut Rng, shape: &[i64], scale: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (rng.normal() * scale) as f32).collect();
    Tensor::from_slice(&v).reshape(shape)
}

/// Initial parameters, gradients `[step][param]` and per-step learning rates.
struct Problem {
    params: Vec<Tensor>,
    grads: Vec<Vec<Option<Tensor>>>,
    lrs: Vec<f64>,
}

fn problem(base_lr: f64) -> Problem {
    let mut rng = Rng::new(2024);
    let params = SHAPES
        .iter()
        .map(|(_, s)| randn(&mut rng, s, 1.0))
        .collect();
    let grads = (0..STEPS)
        .map(|k| {
            SHAPES
                .iter()
                .enumerate()
                .map(|(i, (_, s))| has_grad(i, k).then(|| randn(&mut rng, s, 0.5)))
                .collect()
        })
        .collect();
    let lrs = (0..STEPS)
        .map(|k| base_lr * (1.0 - 0.05 * k as f64))
        .collect();
    Problem { params, grads, lrs }
}

/// Fresh leaf parameters holding copies of `values`.
fn leaves(values: &[Tensor]) -> Vec<(String, Tensor)> {
    SHAPES
        .iter()
        .zip(values)
        .map(|((name, _), v)| (name.to_string(), v.copy().set_requires_grad(true)))
        .collect()
}

/// Handles sharing storage (tch tensors are not `Clone`).
fn shallow(params: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    params
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect()
}

/// Makes `.grad` of each parameter exactly the given tensor (or leaves it undefined):
/// d/dp Σ p·g = 1·g = g bit for bit.
fn set_grads(params: &[(String, Tensor)], grads: &[Option<Tensor>]) {
    let loss = params
        .iter()
        .zip(grads)
        .filter_map(|((_, p), g)| g.as_ref().map(|g| (p * g).sum(Kind::Float)))
        .reduce(|a, b| a + b);
    if let Some(loss) = loss {
        loss.backward();
    }
}

/// Steps `range` of the problem; returns the clipping norms.
fn run(
    opt: &mut Optimizer,
    params: &[(String, Tensor)],
    prob: &Problem,
    range: std::ops::Range<usize>,
    max_norm: Option<f64>,
) -> Vec<f64> {
    let mut norms = Vec::new();
    for k in range {
        opt.zero_grad().unwrap();
        set_grads(params, &prob.grads[k]);
        if let Some(m) = max_norm {
            norms.push(opt.clip_grad_norm(m).unwrap());
        }
        opt.step(prob.lrs[k]).unwrap();
    }
    norms
}

fn config(kind: OptimizerKind, momentum: f64, nesterov: bool, weight_decay: f64) -> OptimConfig {
    OptimConfig {
        momentum,
        nesterov,
        weight_decay,
        ..OptimConfig::torch_defaults(kind)
    }
}

/// Runs torch.optim on the problem and returns its output tensors by name.
fn torch_reference(
    py: &Path,
    dir: &Path,
    json: &str,
    prob: &Problem,
) -> std::collections::BTreeMap<String, Tensor> {
    let mut input: Vec<(String, Tensor)> = Vec::new();
    for ((name, _), p) in SHAPES.iter().zip(&prob.params) {
        input.push((format!("param/{name}"), p.shallow_clone()));
    }
    for (k, gs) in prob.grads.iter().enumerate() {
        for ((name, _), g) in SHAPES.iter().zip(gs) {
            if let Some(g) = g {
                input.push((format!("grad/{k}/{name}"), g.shallow_clone()));
            }
        }
    }
    input.push(("lr".into(), Tensor::from_slice(&prob.lrs)));
    let (inp, out) = (dir.join("in.safetensors"), dir.join("out.safetensors"));
    Tensor::write_safetensors(&input, &inp).unwrap();
    let res = Command::new(py)
        .arg(moirelab_testkit::parity_script("optim.py"))
        .args(["--config", json, "--input"])
        .arg(&inp)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    assert!(
        res.status.success(),
        "scripts/parity/optim.py failed for {json}:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

#[test]
fn matches_torch_optim_for_every_optimizer_config() {
    let Some(py) = moirelab_testkit::python("the torch.optim parity checks") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    use OptimizerKind::*;
    // (label, config, base lr, clip max_norm, JSON for the script)
    let cases: Vec<(&str, OptimConfig, f64, Option<f64>)> = vec![
        ("sgd", config(Sgd, 0.0, false, 0.0), 0.1, None),
        ("sgd-momentum", config(Sgd, 0.9, false, 0.0), 0.1, None),
        ("sgd-nesterov", config(Sgd, 0.9, true, 0.0), 0.1, None),
        ("sgd-momentum-wd", config(Sgd, 0.9, false, 0.01), 0.1, None),
        (
            "sgd-nesterov-wd-clip",
            config(Sgd, 0.9, true, 5e-4),
            0.1,
            Some(2.0),
        ),
        (
            "sgd-plain-wd-noclip",
            config(Sgd, 0.0, false, 0.1),
            0.1,
            Some(1e3),
        ),
        ("adam", config(Adam, 0.0, false, 0.0), 0.01, None),
        ("adam-wd", config(Adam, 0.0, false, 0.01), 0.01, None),
        ("adam-clip", config(Adam, 0.0, false, 0.0), 0.01, Some(1.0)),
        ("adamw", config(Adamw, 0.0, false, 0.01), 0.01, None),
        (
            "adamw-strong-wd",
            config(Adamw, 0.0, false, 0.5),
            0.05,
            None,
        ),
    ];
    for (label, cfg, base_lr, max_norm) in cases {
        let prob = problem(base_lr);
        let json = format!(
            "{{\"kind\":\"{}\",\"momentum\":{},\"nesterov\":{},\"weight_decay\":{},\
             \"betas\":[{},{}],\"eps\":{:e},\"max_norm\":{}}}",
            serde_json::to_value(cfg.kind).unwrap().as_str().unwrap(),
            cfg.momentum,
            cfg.nesterov,
            cfg.weight_decay,
            cfg.betas.0,
            cfg.betas.1,
            cfg.eps,
            max_norm.map_or("null".to_string(), |m| m.to_string()),
        );
        let want = torch_reference(Path::new(&py), dir.path(), &json, &prob);

        let params = leaves(&prob.params);
        let mut opt = Optimizer::new(&cfg, shallow(&params)).unwrap();
        let norms = run(&mut opt, &params, &prob, 0..STEPS, max_norm);
        assert_eq!(opt.steps(), STEPS as u64);

        for (name, p) in &params {
            let d = max_abs_diff(p, &want[&format!("param/{name}")]);
            assert!(d <= 1e-6, "{label}: param {name} differs from torch by {d}");
        }
        // State: torch's keys are state/<field>/<name>; ours optim/<field>/<name>.
        let ours: std::collections::BTreeMap<String, Tensor> =
            opt.state_tensors().unwrap().into_iter().collect();
        let theirs: Vec<&String> = want.keys().filter(|k| k.starts_with("state/")).collect();
        assert_eq!(
            ours.len() - 1,
            theirs.len(),
            "{label}: state keys {:?} vs {theirs:?}",
            ours.keys().collect::<Vec<_>>()
        );
        for k in theirs {
            let mine = &ours[&k.replacen("state/", "optim/", 1)];
            let d = max_abs_diff(mine, &want[k]);
            assert!(d <= 1e-6, "{label}: {k} differs from torch by {d}");
        }
        if max_norm.is_some() {
            let theirs = Vec::<f64>::try_from(&want["norms"]).unwrap();
            assert_eq!(norms.len(), theirs.len());
            for (k, (a, b)) in norms.iter().zip(&theirs).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * b.max(1.0),
                    "{label}: norm {k}: {a} vs {b}"
                );
            }
        }
    }
}

fn bitwise_equal(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.kind() == b.kind() && a.equal(b)
}

#[test]
fn resuming_from_saved_state_continues_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for cfg in [
        config(OptimizerKind::Sgd, 0.9, true, 1e-3),
        config(OptimizerKind::Adam, 0.0, false, 1e-2),
        config(OptimizerKind::Adamw, 0.0, false, 1e-2),
    ] {
        let prob = problem(0.05);
        let straight = leaves(&prob.params);
        let mut opt = Optimizer::new(&cfg, shallow(&straight)).unwrap();
        run(&mut opt, &straight, &prob, 0..STEPS, Some(3.0));

        // First half, then save parameters and optimizer state to one file.
        let first = leaves(&prob.params);
        let mut opt1 = Optimizer::new(&cfg, shallow(&first)).unwrap();
        run(&mut opt1, &first, &prob, 0..4, Some(3.0));
        let mut saved: Vec<(String, Tensor)> = first
            .iter()
            .map(|(n, p)| (format!("model/{n}"), p.detach()))
            .collect();
        saved.extend(opt1.state_tensors().unwrap());
        let path = dir.path().join("state.safetensors");
        Tensor::write_safetensors(&saved, &path).unwrap();
        drop(opt1);

        // Fresh process state: parameters and optimizer rebuilt from the file.
        let loaded = Tensor::read_safetensors(&path).unwrap();
        let values: Vec<Tensor> = SHAPES
            .iter()
            .map(|(n, _)| {
                let key = format!("model/{n}");
                loaded.iter().find(|(k, _)| *k == key).unwrap().1.copy()
            })
            .collect();
        let second = leaves(&values);
        let mut opt2 = Optimizer::new(&cfg, shallow(&second)).unwrap();
        opt2.load_state_tensors(&loaded).unwrap();
        assert_eq!(opt2.steps(), 4);
        run(&mut opt2, &second, &prob, 4..STEPS, Some(3.0));

        assert_eq!(opt2.steps(), opt.steps());
        for ((name, a), (_, b)) in straight.iter().zip(&second) {
            assert!(bitwise_equal(a, b), "{:?}: param {name} diverged", cfg.kind);
        }
        let (sa, sb) = (opt.state_tensors().unwrap(), opt2.state_tensors().unwrap());
        assert_eq!(sa.len(), sb.len());
        for ((ka, a), (kb, b)) in sa.iter().zip(&sb) {
            assert_eq!(ka, kb);
            assert!(bitwise_equal(a, b), "{:?}: state {ka} diverged", cfg.kind);
        }
    }
}

fn stepped(kind: OptimizerKind, momentum: f64) -> Optimizer {
    let prob = problem(0.01);
    let params = leaves(&prob.params);
    let mut opt = Optimizer::new(&config(kind, momentum, false, 0.0), shallow(&params)).unwrap();
    run(&mut opt, &params, &prob, 0..2, None);
    opt
}

#[test]
fn state_tensors_are_named_per_field_and_parameter() {
    let keys: Vec<String> = stepped(OptimizerKind::Adam, 0.0)
        .state_tensors()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    // c.sometimes got its first gradient at step 1; d.late has none yet.
    for want in [
        "optim/steps",
        "optim/step/a.conv.weight",
        "optim/exp_avg/a.conv.weight",
        "optim/exp_avg_sq/b.fc.weight",
        "optim/exp_avg/c.sometimes",
    ] {
        assert!(
            keys.iter().any(|k| k == want),
            "{want} missing from {keys:?}"
        );
    }
    assert!(!keys.iter().any(|k| k.contains("d.late")), "{keys:?}");
    let opt = stepped(OptimizerKind::Sgd, 0.9);
    let state = opt.state_tensors().unwrap();
    assert!(state
        .iter()
        .any(|(k, _)| k == "optim/momentum_buffer/b.fc.weight"));
    let steps = &state.iter().find(|(k, _)| k == "optim/steps").unwrap().1;
    assert_eq!(
        (steps.kind(), steps.dim(), steps.int64_value(&[])),
        (Kind::Int64, 0, 2)
    );
    // Plain SGD has no state beyond the step counter.
    assert_eq!(
        stepped(OptimizerKind::Sgd, 0.0)
            .state_tensors()
            .unwrap()
            .len(),
        1
    );
}

fn without(state: &[(String, Tensor)], key: &str) -> Vec<(String, Tensor)> {
    state
        .iter()
        .filter(|(k, _)| k != key)
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect()
}

#[test]
fn loading_bad_state_names_the_key_and_changes_nothing() {
    let state = stepped(OptimizerKind::Adam, 0.0).state_tensors().unwrap();
    let mut fresh = Optimizer::new(
        &config(OptimizerKind::Adam, 0.0, false, 0.0),
        leaves(&problem(0.01).params),
    )
    .unwrap();

    let err = fresh
        .load_state_tensors(&without(&state, "optim/steps"))
        .unwrap_err();
    assert!(
        matches!(&err, OptimError::MissingStateKey(k) if k == "optim/steps"),
        "{err}"
    );

    let err = fresh
        .load_state_tensors(&without(&state, "optim/exp_avg_sq/b.fc.weight"))
        .unwrap_err();
    assert!(
        err.to_string().contains("'optim/exp_avg_sq/b.fc.weight'"),
        "{err}"
    );

    let mut reshaped = without(&state, "optim/exp_avg/a.conv.bias");
    reshaped.push((
        "optim/exp_avg/a.conv.bias".into(),
        Tensor::zeros([5], (Kind::Float, tch::Device::Cpu)),
    ));
    let err = fresh.load_state_tensors(&reshaped).unwrap_err();
    assert!(
        matches!(&err, OptimError::StateShape { key, expected, got }
            if key == "optim/exp_avg/a.conv.bias" && expected == &[4] && got == &[5]),
        "{err}"
    );

    let mut retyped = without(&state, "optim/exp_avg/a.conv.bias");
    retyped.push((
        "optim/exp_avg/a.conv.bias".into(),
        Tensor::zeros([4], (Kind::Double, tch::Device::Cpu)),
    ));
    let err = fresh.load_state_tensors(&retyped).unwrap_err();
    assert!(err.to_string().contains("dtype"), "{err}");

    // State of another optimizer kind.
    let sgd = stepped(OptimizerKind::Sgd, 0.9).state_tensors().unwrap();
    let err = fresh.load_state_tensors(&sgd).unwrap_err();
    assert!(
        err.to_string()
            .contains("unexpected key 'optim/momentum_buffer/"),
        "{err}"
    );

    // A model with a renamed parameter.
    let mut renamed = without(&state, "optim/step/c.sometimes");
    renamed.push(("optim/step/c.renamed".into(), Tensor::from(2i64)));
    assert!(fresh.load_state_tensors(&renamed).is_err());

    // Nothing above was applied; a good state still loads, and foreign keys are ignored.
    assert_eq!(fresh.steps(), 0);
    assert_eq!(fresh.state_tensors().unwrap().len(), 1);
    let mut with_model = state
        .iter()
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect::<Vec<_>>();
    with_model.push((
        "model/a.conv.bias".into(),
        Tensor::zeros([4], (Kind::Float, tch::Device::Cpu)),
    ));
    fresh.load_state_tensors(&with_model).unwrap();
    assert_eq!(fresh.steps(), 2);
}

#[test]
fn zero_grad_unsets_gradients_and_gradientless_params_are_untouched() {
    let prob = problem(0.1);
    let params = leaves(&prob.params);
    let mut opt = Optimizer::new(
        &config(OptimizerKind::Adamw, 0.0, false, 0.5),
        shallow(&params),
    )
    .unwrap();
    run(&mut opt, &params, &prob, 0..2, None);
    opt.zero_grad().unwrap();
    assert!(params.iter().all(|(_, p)| !p.grad().defined()));

    // Step 2: only some parameters get a gradient; the others must not even be decayed.
    let before: Vec<Tensor> = params.iter().map(|(_, p)| p.detach().copy()).collect();
    let mut grads: Vec<Option<Tensor>> = prob.grads[2]
        .iter()
        .map(|g| g.as_ref().map(Tensor::shallow_clone))
        .collect();
    grads[0] = None;
    set_grads(&params, &grads);
    opt.step(0.1).unwrap();
    for (i, ((name, p), b)) in params.iter().zip(&before).enumerate() {
        let moved = !p.equal(b);
        assert_eq!(moved, grads[i].is_some(), "{name}");
    }
}

#[test]
fn clip_grad_norm_scales_to_the_max_norm_and_returns_the_total() {
    let params = vec![
        (
            "x".to_string(),
            Tensor::from_slice(&[1.0f32, 1.0]).set_requires_grad(true),
        ),
        (
            "y".to_string(),
            Tensor::from_slice(&[1.0f32]).set_requires_grad(true),
        ),
        (
            "z".to_string(),
            Tensor::from_slice(&[1.0f32]).set_requires_grad(true),
        ),
    ];
    let opt = Optimizer::new(
        &config(OptimizerKind::Sgd, 0.0, false, 0.0),
        shallow(&params),
    )
    .unwrap();
    assert_eq!(opt.clip_grad_norm(1.0).unwrap(), 0.0, "no gradients yet");
    let g = [
        Some(Tensor::from_slice(&[3.0f32, 0.0])),
        Some(Tensor::from_slice(&[4.0f32])),
        None,
    ];
    set_grads(&params, &g);
    let norm = opt.clip_grad_norm(1.0).unwrap();
    assert_eq!(norm, 5.0);
    let coef = 1.0 / (5.0 + 1e-6);
    let gx = Vec::<f32>::try_from(params[0].1.grad()).unwrap();
    let gy = Vec::<f32>::try_from(params[1].1.grad()).unwrap();
    assert!((f64::from(gx[0]) - 3.0 * coef).abs() < 1e-6, "{gx:?}");
    assert!((f64::from(gy[0]) - 4.0 * coef).abs() < 1e-6, "{gy:?}");
    assert!(!params[2].1.grad().defined());
    // Below the limit the coefficient clamps to 1 and the gradients keep their value.
    let norm = opt.clip_grad_norm(10.0).unwrap();
    assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    assert_eq!(Vec::<f32>::try_from(params[0].1.grad()).unwrap(), gx);
}

#[test]
fn invalid_configs_and_learning_rates_are_rejected() {
    let p = || leaves(&problem(0.1).params);
    let err = Optimizer::new(&config(OptimizerKind::Sgd, 0.0, true, 0.0), p()).unwrap_err();
    assert!(err.to_string().contains("Nesterov"), "{err}");
    let mut bad = config(OptimizerKind::Adam, 0.0, false, 0.0);
    bad.betas = (0.9, 1.0);
    let err = Optimizer::new(&bad, p()).unwrap_err();
    assert!(err.to_string().contains("betas[1] = 1"), "{err}");
    let err = Optimizer::new(&config(OptimizerKind::Sgd, 0.0, false, -1.0), p()).unwrap_err();
    assert!(err.to_string().contains("weight_decay"), "{err}");

    let mut twice = p();
    let dup = ("a.conv.weight".to_string(), twice[0].1.copy());
    twice.push(dup);
    let err = Optimizer::new(&config(OptimizerKind::Sgd, 0.0, false, 0.0), twice).unwrap_err();
    assert!(
        matches!(&err, OptimError::DuplicateParam(n) if n == "a.conv.weight"),
        "{err}"
    );

    let sgd = config(OptimizerKind::Sgd, 0.0, false, 0.0);
    let ints = vec![("i".to_string(), Tensor::from_slice(&[1i64]))];
    let err = Optimizer::new(&sgd, ints).unwrap_err();
    assert!(
        matches!(&err, OptimError::MixedParams { name, .. } if name == "i"),
        "{err}"
    );
    let mixed = vec![
        ("a".to_string(), Tensor::from_slice(&[1.0f32])),
        ("b".to_string(), Tensor::from_slice(&[1.0f64])),
    ];
    let err = Optimizer::new(&sgd, mixed).unwrap_err();
    assert!(
        err.to_string().starts_with("parameter 'b' is Double"),
        "{err}"
    );

    let mut opt = Optimizer::new(&sgd, p()).unwrap();
    assert!(matches!(opt.step(f64::NAN), Err(OptimError::Lr(_))));
    assert_eq!(opt.steps(), 0);
}

#[test]
fn optimizer_kind_uses_lowercase_names_in_config_files() {
    assert_eq!(
        serde_json::to_string(&OptimizerKind::Adamw).unwrap(),
        "\"adamw\""
    );
    let k: OptimizerKind = serde_json::from_str("\"sgd\"").unwrap();
    assert_eq!(k, OptimizerKind::Sgd);
    assert!(serde_json::from_str::<OptimizerKind>("\"Adam\"").is_err());
}

//! Parity with the PyTorch twin in scripts/parity/moirelab_torch.py: checkpoints written by
//! `VarStore::save` load with strict=True and give the same logits and CAM activations.

use crate::{input, tiny_configs};
use moirelab_models::{CamNet, ModelConfig};
use std::path::Path;
use std::process::Command;
use tch::{nn, Device, Tensor};

/// Compares everything the Rust side saved in each case folder and prints
/// `<case> <key> <value>` lines (max abs diffs). One process for all cases: importing torch
/// is the slow part.
const CHECK: &str = r#"
import os, sys, torch
sys.path.insert(0, sys.argv[1])
import moirelab_torch as mt
torch.set_num_threads(1)
def diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()
for d in sys.argv[2:]:
    case = os.path.basename(d)
    out = lambda key, value: print(case, key, value)
    model = mt.load_model(d + "/config.toml", d + "/weights.safetensors")
    assert not model.training
    io = mt.load_safetensors(d + "/io.safetensors")
    acts = {}
    for name in model.cam_layers():
        model.cam_module(name).register_forward_hook(
            lambda m, i, o, name=name: acts.__setitem__(name, o.detach()))
    with torch.no_grad():
        logits = model(io["input"])
    out("eval", diff(logits, io["logits"]))
    out("layers", ",".join(model.cam_layers()))
    out("default", model.default_cam_layer)
    out("acts", max(diff(acts[n], io["act." + n]) / (1.0 + io["act." + n].abs().max().item())
                    for n in model.cam_layers()))
    if "logits_train" in io:
        model.train()
        with torch.no_grad():
            logits = model(io["input"])
        out("train", diff(logits, io["logits_train"]))
        after = mt.load_safetensors(d + "/after.safetensors")
        state = model.state_dict()
        assert set(after) == set(state), set(after) ^ set(state)
        out("state", max(diff(state[k], v) for k, v in after.items()))
    try:
        model.cam_module("nope")
        out("unknown", "accepted")
    except KeyError as e:
        out("unknown", str(e).replace(" ", "_"))
"#;

/// Give BatchNorm non-trivial running statistics and every norm layer non-trivial affine
/// parameters, so parity actually exercises them (fresh ones are the identity).
fn randomise_norms(vs: &nn::VarStore, net: &dyn CamNet, cfg: &ModelConfig, size: i64) {
    for seed in 0..3 {
        let _ = net
            .forward_t(&(input(cfg, 4, size, 100 + seed) * 2.0 + 0.5), true)
            .unwrap();
    }
    tch::manual_seed(77);
    let vars = vs.variables();
    // A norm layer (BatchNorm or GroupNorm) is whatever owns a 1-D weight; conv and linear
    // weights have more dimensions.
    let mut prefixes: Vec<&str> = vars
        .iter()
        .filter(|(_, t)| t.dim() == 1)
        .filter_map(|(k, _)| k.strip_suffix(".weight"))
        .collect();
    prefixes.sort();
    tch::no_grad(|| {
        for p in prefixes {
            let mut w = vars[&format!("{p}.weight")].shallow_clone();
            let mut b = vars[&format!("{p}.bias")].shallow_clone();
            w.copy_(&(w.rand_like() + 0.5));
            b.copy_(&(b.randn_like() * 0.1));
        }
    });
}

/// What the Rust side expects of one case.
struct Expected {
    name: &'static str,
    layers: Vec<String>,
    default_layer: String,
    train_parity: bool,
}

/// Build, save weights, config, input, logits and activations of one case under `d`.
fn write_case(d: &Path, name: &'static str, cfg: &ModelConfig, size: i64) -> Expected {
    std::fs::create_dir_all(d).unwrap();
    tch::manual_seed(21);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = moirelab_models::build(&vs.root(), cfg).unwrap();
    randomise_norms(&vs, net.as_ref(), cfg, size);
    vs.save(d.join("weights.safetensors")).unwrap();
    #[derive(serde::Serialize)]
    struct File<'a> {
        model: &'a ModelConfig,
    }
    std::fs::write(
        d.join("config.toml"),
        toml::to_string(&File { model: cfg }).unwrap(),
    )
    .unwrap();

    let xs = input(cfg, 3, size, 31);
    let layers = net.cam_layers();
    let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
    let out = tch::no_grad(|| net.forward_with(&xs, false, &refs)).unwrap();
    let mut named: Vec<(String, Tensor)> = vec![
        ("input".into(), xs.shallow_clone()),
        ("logits".into(), out.logits),
    ];
    for (l, a) in layers.iter().zip(out.activations) {
        // Activations may be channels-last (model.memory-format); safetensors wants NCHW.
        named.push((format!("act.{l}"), a.contiguous()));
    }
    // Train mode is only deterministic without dropout (the two RNGs differ).
    let train_parity = cfg.dropout == 0.0;
    if train_parity {
        let logits = tch::no_grad(|| net.forward_t(&xs, true)).unwrap();
        named.push(("logits_train".into(), logits));
        vs.save(d.join("after.safetensors")).unwrap();
    }
    Tensor::write_safetensors(&named, d.join("io.safetensors")).unwrap();

    // Scale check: the comparison means something only if the logits are not all ~0.
    let scale = tch::no_grad(|| net.forward_t(&xs, false))
        .unwrap()
        .abs()
        .max()
        .double_value(&[]);
    assert!(
        scale > 1e-3,
        "{name}: logits too small ({scale}) to compare"
    );
    Expected {
        name,
        default_layer: net.default_cam_layer(),
        layers,
        train_parity,
    }
}

fn check_cases(py: &str, root: &Path, cases: &[Expected]) {
    let res = Command::new(py)
        .arg("-c")
        .arg(CHECK)
        .arg(moirelab_testkit::parity_dir())
        .args(cases.iter().map(|c| root.join(c.name)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "python failed\n{stdout}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    for c in cases {
        let name = c.name;
        let get = |key: &str| -> String {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} {key} ")))
                .unwrap_or_else(|| panic!("{name}: no '{key}' in python output\n{stdout}"))
                .to_string()
        };
        let num = |key: &str| get(key).parse::<f64>().unwrap();
        assert!(
            num("eval") <= 1e-5,
            "{name}: eval logits differ by {}",
            num("eval")
        );
        assert!(
            num("acts") <= 1e-5,
            "{name}: CAM activations differ by {}",
            num("acts")
        );
        assert_eq!(get("layers"), c.layers.join(","), "{name}");
        assert_eq!(get("default"), c.default_layer, "{name}");
        assert!(
            get("unknown").contains("valid_layers:"),
            "{name}: {}",
            get("unknown")
        );
        if c.train_parity {
            assert!(
                num("train") <= 1e-5,
                "{name}: train logits differ by {}",
                num("train")
            );
            assert!(
                num("state") <= 1e-5,
                "{name}: running stats differ by {}",
                num("state")
            );
        }
    }
}

#[test]
fn pytorch_twin_loads_strict_and_matches_logits_and_cam_activations_of_every_arch() {
    let _rng = crate::rng_lock();
    let Some(py) = moirelab_testkit::python("the PyTorch twin parity test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Expected> = tiny_configs()
        .into_iter()
        .map(|(name, cfg, size)| write_case(&dir.path().join(name), name, &cfg, size))
        .collect();
    check_cases(&py, dir.path(), &cases);
}

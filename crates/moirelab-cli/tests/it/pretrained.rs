//! `model.init` and `model.freeze` through the trainer: a run starts from another run's
//! weights (the same torchvision names a PyTorch state dict has) and its frozen stem never
//! moves; a missing weights file fails before the run folder exists.

use crate::{assert_one_line_error, moirelab, stderr};
use std::collections::BTreeMap;
use std::path::Path;
use tch::Tensor;

const CONFIG: &str = r#"
[data]
preset = "tiny"
image-size = 64
cache = "memory"

[model]
arch = "mobilenet_v3_small"

[train]
epochs = 1
batch-size = 8
seed = 5
threads = 1
device = "cpu"
test = false

[gradcam]
probes = 2

[report]
every-epoch = false
tensorboard = false
"#;

fn weights(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn a_run_starts_from_init_weights_and_keeps_frozen_layers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.toml"), CONFIG).unwrap();
    let o = moirelab(d, &["train", "--config", "a.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = d.join("runs/a/checkpoints/last.safetensors");

    // A missing file: one line, no run folder.
    let missing = CONFIG.replace(
        "arch = \"mobilenet_v3_small\"",
        "arch = \"mobilenet_v3_small\"\ninit = \"nope.safetensors\"",
    );
    std::fs::write(d.join("m.toml"), missing).unwrap();
    let o = moirelab(d, &["train", "--config", "m.toml"]);
    assert_one_line_error(&o, &["model.init", "nope.safetensors", "no such file"]);
    assert!(!d.join("runs/m").exists());

    let b = CONFIG.replace(
        "arch = \"mobilenet_v3_small\"",
        "arch = \"mobilenet_v3_small\"\ninit = \"runs/a/checkpoints/last.safetensors\"\nfreeze = \"stem\"",
    );
    std::fs::write(d.join("b.toml"), b).unwrap();
    let o = moirelab(d, &["train", "--config", "b.toml", "--set", "train.seed=9"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("tensors loaded"), "{err}");
    assert!(err.contains("tensors frozen"), "{err}");
    let (wa, wb) = (
        weights(&a),
        weights(&d.join("runs/b/checkpoints/last.safetensors")),
    );
    // Frozen: the stem's parameters are exactly the init weights.
    for k in [
        "features.0.0.weight",
        "features.0.1.weight",
        "features.0.1.bias",
    ] {
        assert!(wa[k].equal(&wb[k]), "{k} moved although frozen");
    }
    // Trained: a later layer moved away from the init weights.
    assert!(!wa["features.5.block.0.0.weight"].equal(&wb["features.5.block.0.0.weight"]));
}

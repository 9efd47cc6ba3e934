//! `resnet18` and `mobilenet_v3_small` against torchvision itself: randomly initialised
//! torchvision models exported as safetensors state dicts load through `model.init` and give
//! the same eval-mode logits on the same pixels; plus the errors of `init` and `freeze`.

use crate::rng_lock;
use moirelab_models::{apply_freeze, build, load_pretrained, Arch, ModelConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use tch::{nn, Device, Kind, Tensor};

/// Per architecture: `<name>-1000.safetensors` (torchvision's 1000-class head),
/// `<name>-2.safetensors` (the head replaced by a 2-class linear layer, the fine-tuning
/// setup) and `<name>-io.safetensors` (raw pixels `u` in [0, 1] and the 2-class model's
/// eval-mode logits on ImageNet-normalised `u`). BatchNorm statistics are made non-trivial
/// first so eval mode exercises them.
const EXPORT: &str = r#"
import sys, torch, torchvision
from safetensors.torch import save_file
torch.set_num_threads(1)
out = sys.argv[1]
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
def state(m):
    return {k: v.detach().contiguous() for k, v in m.state_dict().items()}
for name in ["resnet18", "mobilenet_v3_small"]:
    torch.manual_seed(7)
    m = getattr(torchvision.models, name)(weights=None)
    m.train()
    with torch.no_grad():
        for _ in range(2):
            m(torch.randn(4, 3, 64, 64) * 1.5 + 0.3)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    m.eval()
    save_file(state(m), f"{out}/{name}-1000.safetensors")
    if name == "resnet18":
        m.fc = torch.nn.Linear(512, 2)
    else:
        m.classifier[3] = torch.nn.Linear(1024, 2)
    m.eval()
    save_file(state(m), f"{out}/{name}-2.safetensors")
    u = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        logits = m((u - mean) / std)
    save_file({"u": u, "logits": logits}, f"{out}/{name}-io.safetensors")
print(torchvision.__version__)
"#;

fn cfg(arch: Arch) -> ModelConfig {
    ModelConfig {
        arch,
        classes: 2,
        ..Default::default()
    }
}

fn read(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn torchvision_weights_load_and_give_torchvisions_logits() {
    let Some(py) =
        moirelab_testkit::python("the torchvision parity of resnet18/mobilenet_v3_small")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&py)
        .args(["-c", EXPORT])
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    assert!(
        out.status.success(),
        "torchvision export failed (scripts/test.sh installs torchvision into the venv):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _g = rng_lock();
    for (arch, name, head, cam) in [
        (Arch::Resnet18, "resnet18", "fc.", "layer4.1"),
        (
            Arch::MobilenetV3Small,
            "mobilenet_v3_small",
            "classifier.3.",
            "features.12",
        ),
    ] {
        let c = cfg(arch);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let net = build(&vs.root(), &c).unwrap();
        let n_vars = vs.variables().len();
        // The fine-tuning head (2 classes): everything loads.
        let r = load_pretrained(
            &mut vs,
            &c,
            &dir.path().join(format!("{name}-2.safetensors")),
        )
        .unwrap();
        assert_eq!(r.loaded, n_vars, "{name}: {r}");
        assert!(r.head_kept.is_empty(), "{name}: {r}");
        let io = read(&dir.path().join(format!("{name}-io.safetensors")));
        // moirelab's loader input for the same pixels: (u - 0.5) / 0.25; the model maps it
        // to ImageNet's normalisation itself (model.normalize defaults to imagenet here).
        let x = (&io["u"] - 0.5) / 0.25;
        let logits = tch::no_grad(|| net.forward_t(&x, false).unwrap());
        let diff = (&logits - &io["logits"]).abs().max().double_value(&[]);
        assert!(diff <= 1e-5, "{name}: max |logit diff| = {diff}");
        // CAM layers like the other architectures, default the last block.
        assert_eq!(net.default_cam_layer(), cam);
        let fw = net.forward_with(&x, false, &[cam]).unwrap();
        assert_eq!(
            fw.activations[0].size()[..2],
            [3, if name == "resnet18" { 512 } else { 576 }]
        );

        // ImageNet's 1000-class head: all but the classifier loads, which stays as it was.
        let mut vs2 = nn::VarStore::new(Device::Cpu);
        let _net2 = build(&vs2.root(), &c).unwrap();
        let before: Vec<(String, Tensor)> = vs2
            .variables()
            .into_iter()
            .filter(|(k, _)| k.starts_with(head))
            .map(|(k, t)| (k, t.copy()))
            .collect();
        let r = load_pretrained(
            &mut vs2,
            &c,
            &dir.path().join(format!("{name}-1000.safetensors")),
        )
        .unwrap();
        assert_eq!(r.head_kept.len(), 2, "{name}: {r}");
        assert_eq!(r.loaded, n_vars - 2, "{name}: {r}");
        let shapes: Vec<&Vec<i64>> = r.head_kept.iter().filter_map(|(_, s)| s.as_ref()).collect();
        assert!(shapes.iter().any(|s| s[0] == 1000), "{name}: {r}");
        let vars = vs2.variables();
        for (k, t) in before {
            assert!(vars[&k].equal(&t), "{name}: head tensor {k} changed");
        }
    }
}

/// The model's own tensors under their names, as a state dict file would hold them.
fn own_state(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.detach().copy()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn cloned(v: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    v.iter()
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect()
}

fn write(path: &Path, tensors: &[(String, Tensor)]) {
    Tensor::write_safetensors(tensors, path).unwrap();
}

#[test]
fn init_errors_name_the_file_the_key_and_both_shapes() {
    let _g = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(Arch::Resnet18);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let _net = build(&vs.root(), &c).unwrap();
    let state = own_state(&vs);

    let e = load_pretrained(&mut vs, &c, &dir.path().join("nope.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.init") && e.contains("nope.safetensors") && e.contains("no such file"),
        "{e}"
    );

    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    let e = load_pretrained(&mut vs, &c, &junk).unwrap_err().to_string();
    assert!(e.contains("junk.safetensors"), "{e}");

    let mut wrong = cloned(&state);
    let i = wrong
        .iter()
        .position(|(k, _)| k == "layer2.0.conv1.weight")
        .unwrap();
    wrong[i].1 = Tensor::zeros([128, 64, 1, 1], (Kind::Float, Device::Cpu));
    let p = dir.path().join("wrong.safetensors");
    write(&p, &wrong);
    let e = load_pretrained(&mut vs, &c, &p).unwrap_err().to_string();
    assert!(
        e.contains("'layer2.0.conv1.weight'")
            && e.contains("[128, 64, 1, 1]")
            && e.contains("[128, 64, 3, 3]"),
        "{e}"
    );

    let mut extra = cloned(&state);
    extra.push((
        "layer5.0.conv1.weight".into(),
        Tensor::zeros([1], (Kind::Float, Device::Cpu)),
    ));
    // PyTorch's BatchNorm counter is not an unknown key.
    extra.push((
        "bn1.num_batches_tracked".into(),
        Tensor::zeros([], (Kind::Int64, Device::Cpu)),
    ));
    let p = dir.path().join("extra.safetensors");
    write(&p, &extra);
    let e = load_pretrained(&mut vs, &c, &p).unwrap_err().to_string();
    assert!(
        e.contains("1 key(s)") && e.contains("layer5.0.conv1.weight"),
        "{e}"
    );
    assert!(!e.contains("num_batches_tracked"), "{e}");

    let missing: Vec<(String, Tensor)> = state
        .iter()
        .filter(|(k, _)| k != "bn1.running_var")
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    let p = dir.path().join("missing.safetensors");
    write(&p, &missing);
    let e = load_pretrained(&mut vs, &c, &p).unwrap_err().to_string();
    assert!(
        e.contains("missing") && e.contains("bn1.running_var"),
        "{e}"
    );

    // An integer tensor, and values that are not finite (every score would be NaN).
    let i = state.iter().position(|(k, _)| k == "conv1.weight").unwrap();
    for (name, t, needle) in [
        ("int", state[i].1.to_kind(Kind::Int64), "Int64"),
        ("nan", state[i].1.full_like(f64::NAN), "non-finite"),
    ] {
        let mut bad = cloned(&state);
        bad[i].1 = t;
        let p = dir.path().join(format!("{name}.safetensors"));
        write(&p, &bad);
        let e = load_pretrained(&mut vs, &c, &p).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{name}.safetensors"))
                && e.contains("'conv1.weight'")
                && e.contains(needle),
            "{e}"
        );
    }

    // A file without a classifier (a backbone export) is fine: the head stays fresh.
    let backbone: Vec<(String, Tensor)> = state
        .iter()
        .filter(|(k, _)| !k.starts_with("fc."))
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    let p = dir.path().join("backbone.safetensors");
    write(&p, &backbone);
    let r = load_pretrained(&mut vs, &c, &p).unwrap();
    assert_eq!(r.head_kept.len(), 2);
    assert!(r
        .head_kept
        .iter()
        .all(|(k, s)| k.starts_with("fc.") && s.is_none()));
}

#[test]
fn freeze_stops_gradients_of_the_first_layers_only() {
    let _g = rng_lock();
    let c = ModelConfig {
        freeze: Some("layer1".into()),
        ..cfg(Arch::Resnet18)
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = build(&vs.root(), &c).unwrap();
    let n = apply_freeze(&vs, &c).unwrap();
    let vars = vs.variables();
    let frozen: Vec<&String> = vars
        .iter()
        .filter(|(k, t)| !t.requires_grad() && !k.contains("running_"))
        .map(|(k, _)| k)
        .collect();
    assert!(n > 0);
    assert!(!vars["conv1.weight"].requires_grad());
    assert!(!vars["layer1.1.conv2.weight"].requires_grad());
    assert!(vars["layer2.0.conv1.weight"].requires_grad());
    assert!(vars["fc.weight"].requires_grad());
    assert!(
        frozen
            .iter()
            .all(|k| k.starts_with("conv1.") || k.starts_with("bn1.") || k.starts_with("layer1.")),
        "{frozen:?}"
    );

    let m = ModelConfig {
        freeze: Some("stem".into()),
        ..cfg(Arch::MobilenetV3Small)
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = build(&vs.root(), &m).unwrap();
    apply_freeze(&vs, &m).unwrap();
    let vars = vs.variables();
    assert!(!vars["features.0.0.weight"].requires_grad());
    assert!(vars["features.1.block.0.0.weight"].requires_grad());

    let bad = ModelConfig {
        freeze: Some("layer9".into()),
        ..cfg(Arch::Resnet18)
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("layer9") && e.contains("stem, layer1, layer2, layer3, layer4"),
        "{e}"
    );
    let shallow = ModelConfig {
        freeze: Some("stem".into()),
        ..Default::default()
    };
    assert!(shallow
        .validate()
        .unwrap_err()
        .to_string()
        .contains("model.freeze"));
}

#[test]
fn torchvision_archs_have_torchvisions_parameter_counts() {
    let _g = rng_lock();
    // torchvision: resnet18 11,689,512 and mobilenet_v3_small 2,542,856 parameters with the
    // 1000-class head; with 2 classes the head shrinks by 998 × (512 + 1) and 998 × (1024 + 1).
    for (arch, imagenet, hidden) in [
        (Arch::Resnet18, 11_689_512i64, 512i64),
        (Arch::MobilenetV3Small, 2_542_856, 1024),
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = build(&vs.root(), &cfg(arch)).unwrap();
        let n: i64 = vs
            .variables()
            .iter()
            .filter(|(k, _)| !k.contains("running_"))
            .map(|(_, t)| t.numel() as i64)
            .sum();
        assert_eq!(n, imagenet - 998 * (hidden + 1), "{arch}");
    }
}

//! Numerical parity with pytorch-grad-cam 1.5.7 (scripts/parity/gradcam.py) on the same
//! weights, inputs and targets, for every architecture of the models crate.

use crate::common::{images, model};
use moirelab_gradcam::{compute, Method, Targets};
use moirelab_models::{Arch, ModelConfig};
use tch::Tensor;

const METHODS: [Method; 5] = [
    Method::GradCam,
    Method::GradCamPlusPlus,
    Method::HiResCam,
    Method::XGradCam,
    Method::LayerCam,
];

fn pearson(a: &Tensor, b: &Tensor) -> f64 {
    let a = Vec::<f32>::try_from(&a.flatten(0, -1)).unwrap();
    let b = Vec::<f32>::try_from(&b.flatten(0, -1)).unwrap();
    let a: Vec<f64> = a.into_iter().map(f64::from).collect();
    let b: Vec<f64> = b.into_iter().map(f64::from).collect();
    moirelab_gradcam::sanity::pearson(&a, &b)
}

/// A small config of each architecture and an input size it accepts.
fn small(arch: Arch) -> (ModelConfig, i64) {
    let cfg = ModelConfig {
        arch,
        width: 8,
        depth: if arch == Arch::Shallow { 3 } else { 2 },
        ..ModelConfig::default()
    };
    (cfg, 64)
}

#[test]
fn maps_match_pytorch_grad_cam_on_every_architecture() {
    let Some(py) = moirelab_testkit::python("the pytorch-grad-cam parity test") else {
        return;
    };
    let script = moirelab_testkit::parity_script("gradcam.py");
    let dir = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    // The torchvision architectures have no twin in scripts/parity/moirelab_torch.py (torchvision
    // itself is their twin; their logits are checked against it in moirelab-models).
    for (ai, &arch) in Arch::ALL
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.is_torchvision())
    {
        let (cfg, size) = small(arch);
        let (vs, net) = model(40 + ai as i64, &cfg);
        let xs = images(50 + ai as i64, 4, size);
        let layers = net.cam_layers();
        // The default (last) layer and one earlier, higher-resolution layer.
        let picks = [net.default_cam_layer(), layers[layers.len() / 2].clone()];
        let weights = dir.path().join(format!("{}.safetensors", arch.as_str()));
        vs.save(&weights).unwrap();
        let model_json = dir.path().join(format!("{}.json", arch.as_str()));
        std::fs::write(&model_json, serde_json::to_vec(&cfg).unwrap()).unwrap();
        for layer in picks.iter() {
            let ours = compute(
                net.as_ref(),
                &xs,
                &Targets::Pred,
                &[layer.as_str()],
                &METHODS,
            )
            .unwrap();
            let inputs = dir.path().join("inputs.safetensors");
            let targets = Tensor::from_slice(&ours.targets);
            Tensor::write_safetensors(&[("x", &xs), ("targets", &targets)], &inputs).unwrap();
            let out = dir.path().join("ref.safetensors");
            let names: Vec<&str> = METHODS.iter().map(|m| m.as_str()).collect();
            let res = std::process::Command::new(&py)
                .arg(&script)
                .args(["maps", "--model"])
                .arg(&model_json)
                .arg("--weights")
                .arg(&weights)
                .arg("--inputs")
                .arg(&inputs)
                .args(["--layer", layer, "--methods", &names.join(","), "--out"])
                .arg(&out)
                .output()
                .unwrap();
            assert!(
                res.status.success(),
                "{} {layer}: {}",
                arch.as_str(),
                String::from_utf8_lossy(&res.stderr)
            );
            let reference: std::collections::HashMap<String, Tensor> =
                Tensor::read_safetensors(&out)
                    .unwrap()
                    .into_iter()
                    .collect();
            for m in &ours.maps {
                let theirs = &reference[m.method.as_str()];
                assert_eq!(theirs.size(), m.normalized.size());
                for i in 0..4 {
                    let (a, b) = (m.normalized.get(i), theirs.get(i));
                    let flat = a.max().double_value(&[]) == 0.0 && b.max().double_value(&[]) == 0.0;
                    let r = if flat { 1.0 } else { pearson(&a, &b) };
                    report.push(format!(
                        "{} {layer} {} #{i}: r = {r:.6}",
                        arch.as_str(),
                        m.method
                    ));
                    assert!(r >= 0.999, "{}", report.join("\n"));
                }
            }
        }
    }
}

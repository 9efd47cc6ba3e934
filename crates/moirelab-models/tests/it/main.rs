//! Integration tests of moirelab-models (one binary so libtorch links once).

mod archs;
mod config;
mod interop;
mod summary;
mod torchvision;

use moirelab_models::{build, Arch, CamNet, InputFilter, ModelConfig, Norm};
use std::sync::{Mutex, MutexGuard};
use tch::{nn, Device, Kind, Tensor};

static RNG: Mutex<()> = Mutex::new(());

/// libtorch has one global generator and the test harness runs tests on several threads:
/// every test that seeds or draws from it (init, randn, dropout) holds this lock.
pub fn rng_lock() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Tiny configs covering every architecture (with and without BatchNorm) plus the input size
/// they are tested at.
pub fn tiny_configs() -> Vec<(&'static str, ModelConfig, i64)> {
    let base = ModelConfig {
        width: 4,
        depth: 3,
        classes: 3,
        ..Default::default()
    };
    vec![
        ("shallow", base.clone(), 16),
        (
            "shallow-nobn-1ch",
            ModelConfig {
                batch_norm: false,
                in_channels: 1,
                dropout: 0.3,
                ..base.clone()
            },
            16,
        ),
        (
            "vgg",
            ModelConfig {
                arch: Arch::Vgg,
                ..base.clone()
            },
            16,
        ),
        (
            "vgg-nobn",
            ModelConfig {
                arch: Arch::Vgg,
                batch_norm: false,
                blocks_per_stage: Some(1),
                depth: 2,
                ..base.clone()
            },
            12,
        ),
        (
            "resnet",
            ModelConfig {
                arch: Arch::Resnet,
                ..base.clone()
            },
            32,
        ),
        (
            "resnet-nobn",
            ModelConfig {
                arch: Arch::Resnet,
                batch_norm: false,
                blocks_per_stage: Some(1),
                depth: 2,
                ..base.clone()
            },
            24,
        ),
        (
            "mobilenet",
            ModelConfig {
                arch: Arch::Mobilenet,
                width: 8,
                depth: 4,
                ..base.clone()
            },
            32,
        ),
        (
            "mobilenet-nobn",
            ModelConfig {
                arch: Arch::Mobilenet,
                width: 8,
                depth: 2,
                batch_norm: false,
                ..base.clone()
            },
            16,
        ),
        (
            "vgg-laplacian",
            ModelConfig {
                arch: Arch::Vgg,
                input_filter: InputFilter::Laplacian,
                ..base.clone()
            },
            16,
        ),
        (
            "shallow-with-laplacian",
            ModelConfig {
                arch: Arch::Shallow,
                input_filter: InputFilter::WithLaplacian,
                ..base.clone()
            },
            16,
        ),
        // GroupNorm: 1 group (LayerNorm-like), 2 groups, the default (8: one channel per
        // group at width 4, InstanceNorm-like), and mobilenet's odd channel counts.
        (
            "shallow-gn1",
            ModelConfig {
                norm: Norm::Group,
                norm_groups: Some(1),
                ..base.clone()
            },
            16,
        ),
        (
            "vgg-gn",
            ModelConfig {
                arch: Arch::Vgg,
                norm: Norm::Group,
                norm_groups: Some(2),
                ..base.clone()
            },
            16,
        ),
        (
            "resnet-gn",
            ModelConfig {
                arch: Arch::Resnet,
                norm: Norm::Group,
                ..base.clone()
            },
            32,
        ),
        (
            "mobilenet-gn",
            ModelConfig {
                arch: Arch::Mobilenet,
                width: 8,
                depth: 2,
                norm: Norm::Group,
                norm_groups: Some(4),
                ..base.clone()
            },
            16,
        ),
    ]
}

/// Build `cfg` under a fresh VarStore with a fixed seed.
pub fn seeded(cfg: &ModelConfig, seed: i64) -> (nn::VarStore, Box<dyn CamNet>) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = build(&vs.root(), cfg).unwrap();
    (vs, net)
}

/// A seeded random `[n, C, size, size]` batch.
pub fn input(cfg: &ModelConfig, n: i64, size: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn([n, cfg.in_channels, size, size], (Kind::Float, Device::Cpu))
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}
